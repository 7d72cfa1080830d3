"""A test suite's own state directory, shared by the suites that start
programs without naming a spool (tests/python, bindings/python/tests)."""

import os


def own_state_directory(tmp_path_factory):
    """A pytest fixture's body: XDG_STATE_HOME points at a fresh temporary
    directory for the session (each xdist worker's), and back after. In
    the user's own, a program's start sent what waited in the default
    spool (crash dumps and spool files of anything else run or killed on
    the machine) to the test's sink or receiver, as spans it never made."""
    before = os.environ.get("XDG_STATE_HOME")
    os.environ["XDG_STATE_HOME"] = str(tmp_path_factory.mktemp("state"))
    yield
    if before is None:
        del os.environ["XDG_STATE_HOME"]
    else:
        os.environ["XDG_STATE_HOME"] = before
