"""A directory that another user can write may hold, besides their sink
files, a hard link to a third user's: another name for that user's file,
whose spans root (or anyone who can read it) was shown as the directory's.
Found by listing the directory, such a file is refused and said; named on
the command line, it is read. Making the link needs root here (with
fs.protected_hardlinks set, as it usually is, only the file's owner or
root may link a file they cannot write); so does giving files away."""

import os
import shutil
import subprocess
import time

import pytest
from test_tail import Follower

THEM = 65534  # can write the directory
VICTIM = 65533  # whose sink file is linked into it


def given_to(path, uid, mode):
    os.chown(path, uid, uid)
    os.chmod(path, mode)
    return path


@pytest.fixture
def shared(sample, tmp_path):
    """A directory of THEM's with a sink file of theirs and, as svc-1.jsonl,
    a hard link to VICTIM's private one (billing-api: POST /refunds)."""
    private = tmp_path / "victim"
    private.mkdir()
    theirs = private / "billing-api-7120.jsonl"
    shutil.copy(sample / "billing-api-7120.jsonl", theirs)
    given_to(theirs, VICTIM, 0o600)
    given_to(private, VICTIM, 0o700)
    shared = tmp_path / "shared"
    shared.mkdir()
    own = shared / "support-agent-41872.jsonl"
    shutil.copy(sample / "support-agent-41872.jsonl", own)
    given_to(own, THEM, 0o600)
    os.link(theirs, shared / "svc-1.jsonl")
    given_to(shared, THEM, 0o755)
    return shared


@pytest.mark.skipif(os.geteuid() != 0, reason="giving files to other users and linking theirs needs root")
def test_show_refuses_a_hard_link_to_a_third_users_file_in_a_listed_directory(cli, shared):
    shown = subprocess.run([str(cli), "show", "--color", "never", str(shared)], capture_output=True, text=True,
                           timeout=60)
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert "POST /refunds" not in shown.stdout, shown.stdout
    assert "agent.session" in shown.stdout, shown.stdout
    said = [line for line in shown.stderr.splitlines() if "svc-1.jsonl" in line]
    assert len(said) == 1 and "hard link" in said[0] and str(VICTIM) in said[0], shown.stderr
    # Named, it is the person's own choice to read it.
    named = subprocess.run([str(cli), "show", "--color", "never", str(shared / "svc-1.jsonl")],
                           capture_output=True, text=True, timeout=60)
    assert named.returncode == 0 and "POST /refunds" in named.stdout, named.stdout + named.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="giving files to other users and linking theirs needs root")
def test_show_reads_a_hard_link_the_directorys_owner_made_to_their_own_file(cli, shared):
    """Only the directory's owner can write it, and the file is theirs:
    nothing in it they could not read themselves."""
    os.unlink(shared / "svc-1.jsonl")
    os.link(shared / "support-agent-41872.jsonl", shared / "again.jsonl")
    shown = subprocess.run([str(cli), "show", "--color", "never", str(shared)], capture_output=True, text=True,
                           timeout=60)
    assert shown.returncode == 0 and not shown.stderr, shown.stdout + shown.stderr
    assert "agent.session" in shown.stdout, shown.stdout


@pytest.mark.skipif(os.geteuid() != 0, reason="giving files to other users and linking theirs needs root")
def test_tail_refuses_a_hard_link_to_a_third_users_file_and_says_so_once(cli, shared):
    f = Follower(cli, shared, "--from-start")
    lines = f.wait_for(6, "the directory owner's spans")
    time.sleep(0.5)  # ten more polls, to say it again if it would; nothing is timed
    assert f.stop() == 0
    err = f.proc.stderr.read()
    assert "POST /refunds" not in "\n".join(lines), lines
    assert sum("agent.session" in line for line in f.lines) == 1, f.lines
    said = [line for line in err.splitlines() if "svc-1.jsonl" in line]
    assert len(said) == 1 and "hard link" in said[0], err
