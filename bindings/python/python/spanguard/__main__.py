"""The `spanguard` command: `python -m spanguard show`, and the `spanguard`
console script the wheel installs. The command line is the spanguard
binary's own, compiled into the extension module: the same output, exit
statuses and signals (`spanguard --help` lists the commands)."""

import os
import signal
import sys

from spanguard import _native


def main() -> int:
    # This process is the command now: Ctrl-C ends it as it ends the
    # binary (`tail` installs its own handler and stops cleanly). Python's
    # handler would only note it, to raise once the command has returned.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    # The arguments' bytes, as the binary gets them (sys.argv holds an
    # argument that is not UTF-8 with its bytes escaped).
    return _native.run_command([os.fsencode(a) for a in sys.argv[1:]])


if __name__ == "__main__":
    sys.exit(main())
