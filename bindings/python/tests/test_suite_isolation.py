"""The suite keeps out of the user's own spanguard state.

A tracer a test makes without naming a spool (many do: `from_env=False,
sink_dir=...`) took the default state directory, the user's
~/.local/state/spanguard. Its start sent the crash dumps waiting in the
user's spool (an agent of theirs stopped by SIGTERM, to be replayed) to
the test's temporary sink, gone with it; and the dump of an agent killed
by anything else on the machine arrived in a test's sink as spans it never
made (seen: a LangChain agent's interrupted spans, SIGTERM'd from another
shell, in the sink of test_a_wrong_cap_given_in_code_is_a_clear_error)."""

from pathlib import Path

import spanguard
from conftest import USERS_STATE


def test_a_tracer_that_names_no_directory_keeps_out_of_the_users_state(tmp_path):
    tracer = spanguard.Tracer(from_env=False, service_name="isolation", install_signal_handlers=False)
    try:
        sink = Path(tracer.sink_path())
    finally:
        tracer.close()
    assert not sink.is_relative_to(USERS_STATE), f"a test's default sink is the user's: {sink}"
