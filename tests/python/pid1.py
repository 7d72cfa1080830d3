"""Runs a program as PID 1 of a new PID namespace, as a container runs its
entry point, and signals it from outside, as `docker stop` does (SIGTERM,
then SIGKILL). For the Python binding's tests; Node's and Go's have the
same few lines of their own."""

import os
import select
import shutil
import signal
import subprocess
import time
from pathlib import Path


def why_not() -> str | None:
    """None when `unshare --pid --fork` works here, else why not (the
    tests skip with it)."""
    if shutil.which("unshare") is None:
        return "no unshare command (util-linux)"
    probe = subprocess.run(["unshare", "--pid", "--fork", "sh", "-c", "test $$ = 1"], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"unshare --pid --fork fails here: {probe.stderr.strip() or probe.returncode}"
    return None


class Pid1:
    """`argv` running as PID 1 of its own PID namespace; `pid` is its pid
    here, outside, where the signals come from."""

    def __init__(self, argv: list[str], **popen):
        given = popen.pop("preexec_fn", None)

        def as_a_container_starts():
            # A container's PID 1 starts with the default dispositions; a
            # test run from a background shell (SIGINT, SIGQUIT) or under
            # nohup (SIGHUP) inherits them ignored, and Python then installs
            # no KeyboardInterrupt handler: the SIGINT step waited forever.
            for signum in (signal.SIGHUP, signal.SIGINT, signal.SIGQUIT):
                signal.signal(signum, signal.SIG_DFL)
            if given is not None:
                given()

        # --kill-child: the program dies with unshare, should a test fail.
        self.unshare = subprocess.Popen(
            ["unshare", "--pid", "--fork", "--kill-child", *argv],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            preexec_fn=as_a_container_starts,
            **popen,
        )
        self.pid = self._child_of(self.unshare.pid)

    @staticmethod
    def _child_of(parent: int) -> int:
        children = Path(f"/proc/{parent}/task/{parent}/children")
        for _ in range(1000):
            found = children.read_text().split()
            if found:
                return int(found[0])
            time.sleep(0.01)
        raise RuntimeError(f"unshare {parent} started no program")

    def signal(self, signum: int) -> None:
        os.kill(self.pid, signum)

    def line(self, timeout: float = 60) -> str:
        """The program's next line of output ("" once it has ended). A
        line that never comes fails the test after `timeout` seconds: a
        clean clone's run waited for one 11 minutes (a SIGINT whose
        KeyboardInterrupt never reached the agent's readline). Read from
        the descriptor itself, a byte at a time, so that select sees
        everything not yet taken."""
        fd = self.unshare.stdout.fileno()
        got = bytearray()
        deadline = time.monotonic() + timeout
        while not got.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise TimeoutError(f"no line from the program in {timeout} s (so far {bytes(got)!r})")
            byte = os.read(fd, 1)
            if not byte:
                break
            got += byte
        return got.decode(errors="replace").strip()

    def say(self, text: str) -> None:
        self.unshare.stdin.write(text + "\n")
        self.unshare.stdin.flush()

    def wait(self, timeout: float = 30) -> int:
        """unshare's status: the program's (a signal's death as -N, but
        SIGKILL's, which unshare cannot pass on: then 1)."""
        return self.unshare.wait(timeout)

    def alive(self) -> bool:
        return self.unshare.poll() is None
