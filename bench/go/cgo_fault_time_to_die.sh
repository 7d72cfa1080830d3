#!/bin/sh
# How long a Go program with the crash handlers on takes to die of a fault
# in C code called through cgo: the "cfault" child of the Go binding's
# crash tests (bindings/go/crash_handlers_test.go: five spans ended, one
# open, then a write through NULL in C), from its start to its death, RUNS
# times, one at a time, each time and the median printed. A timing, so a
# benchmark, not a test (TestCgoFaultRelaysQuitAsGoDoes counts what made
# the difference: the relayed SIGQUIT Go's faulting thread took inside its
# own crash, and those the watchdog handed on).
#
# bench/go/cgo_fault_time_to_die.sh [RUNS]   (5 by default)
#
# Builds the binding's test binary against build/dev-prefix (make
# dev-install first). SPANGUARD_LIB_DIR=<dir> runs it with the
# libspanguard.so.0 in <dir> instead (LD_LIBRARY_PATH goes before the
# binary's RUNPATH): another commit's library, in the same run.
set -eu
runs=${1:-5}
root=$(cd "$(dirname "$0")/../.." && pwd)
work=$root/build/bench-cgo-fault
mkdir -p "$work"
(cd "$root/bindings/go" &&
  PKG_CONFIG_PATH=$root/build/dev-prefix/lib/pkgconfig go test -c -o "$work/gotest" .)
if [ -n "${SPANGUARD_LIB_DIR:-}" ]; then
  LD_LIBRARY_PATH=$SPANGUARD_LIB_DIR
  export LD_LIBRARY_PATH
fi
times=""
i=0
while [ "$i" -lt "$runs" ]; do
  i=$((i + 1))
  dir=$work/run-$i
  rm -rf "$dir"
  mkdir -p "$dir"
  start=$(date +%s%N)
  status=0
  XDG_STATE_HOME=$dir/state SPANGUARD_CRASH_CHILD=cfault SPANGUARD_SIGNAL_DIR=$dir \
    GOTRACEBACK=single SPANGUARD_SIGNAL_HANDLERS=true \
    "$work/gotest" -test.run='^$' >"$dir/stdout" 2>"$dir/stderr" || status=$?
  end=$(date +%s%N)
  ms=$(((end - start) / 1000000))
  echo "run $i: died after $ms ms (exit status $status: 134 is SIGABRT)"
  times="$times $ms"
done
echo "$times" | tr ' ' '\n' | grep . | sort -n |
  awk '{ t[NR] = $1 } END { m = (NR % 2) ? t[(NR + 1) / 2] : (t[NR / 2] + t[NR / 2 + 1]) / 2;
         printf "median of %d runs: %d ms\n", NR, m }'
