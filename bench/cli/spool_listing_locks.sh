#!/bin/sh
# What `spanguard spool` costs over a spool of FILES files while another
# process holds LOCKS flock locks (another user's, in the case it stands
# for): wall time, readings of /proc/locks, and system calls.
#
#   bench/cli/spool_listing_locks.sh [BIN] [FILES] [LOCKS]
#   (defaults: target/release/spanguard 5000 5000)
set -eu
BIN=${1:-target/release/spanguard}
FILES=${2:-5000}
LOCKS=${3:-5000}
work=$(mktemp -d)
trap 'kill "$holder" 2>/dev/null || true; rm -rf "$work"' EXIT
mkdir "$work/spool" "$work/locks"
python3 - "$work/spool" "$FILES" <<'PY'
import os, sys
d, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    with open(os.path.join(d, f"f{i:06}.sgspool"), "wb") as f:
        f.write(b"not a spool file")
PY
# The lock holder: LOCKS files, each flock'ed, held until killed.
python3 - "$work/locks" "$LOCKS" "$work/ready" <<'PY' &
import fcntl, os, sys, time
d, n, ready = sys.argv[1], int(sys.argv[2]), sys.argv[3]
import resource
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, n + 64)), hard))
held = []
for i in range(n):
    f = open(os.path.join(d, str(i)), "w")
    fcntl.flock(f, fcntl.LOCK_EX)
    held.append(f)
open(ready, "w").close()
time.sleep(3600)
PY
holder=$!
while [ ! -e "$work/ready" ]; do sleep 0.1; done
echo "locks in /proc/locks: $(wc -l < /proc/locks)"
start=$(date +%s.%N)
"$BIN" spool "$work/spool" > /dev/null
end=$(date +%s.%N)
echo "spool of $FILES files: $(echo "$end - $start" | bc) s"
strace -f -o "$work/trace" -e trace=openat "$BIN" spool "$work/spool" > /dev/null
echo "readings of /proc/locks: $(grep -c '"/proc/locks"' "$work/trace")"
strace -c -f -o "$work/count" "$BIN" spool "$work/spool" > /dev/null
echo "system calls: $(awk '/ total$/{print $4}' "$work/count")"
