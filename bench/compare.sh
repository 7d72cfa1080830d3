#!/bin/sh
# The small-span rows of bench/c/hot_path.c against another commit's
# library, in the same run: `make bench-compare BASE=<commit>`.
#
# Builds the library at BASE in a temporary git worktree (its own cargo
# target directory, kept under build/compare/ so a second run is quick),
# compiles today's bench/c/hot_path.c once against BASE's header and once
# against this tree's, and runs the two programs in turn, PAIRS times,
# alternating which goes first. bench/compare.py prints, for each case and
# regime, both medians and the median of the pairs' ratios: the judge of
# "did this change make small spans slower", since one run's absolute
# figures move with the host.
#
# bench/compare.sh BASE [PAIRS] [--quick|--instructions|--interleaved|--llm];
# COMPARE_HEAD=<commit> puts that commit's library in place of this tree's
# build/lib. --instructions counts instead, with callgrind, the instructions
# a span takes on the recording path (bench/c/span_instructions.c) with
# each library: exact and repeatable where timings are not; and, as
# "export", those the exporter thread takes for each of the "calls" case's
# spans (everything under Exporter::run: taking, encoding, giving back;
# the exporter sleeps until the flushes, so its batches do not depend on
# timing), and as "export-gzip" the same with gzip on (OTEL_EXPORTER_OTLP_
# COMPRESSION=gzip; off by default) and the bytes sent, and as "handlers" the "calls" case's recording path with the
# crash and signal handlers installed (the users' default; the other rows
# run without), and as "llm" an LLM call's span (an 8 KB prompt and a 2 KB
# completion of ASCII text, two token counts), and as "nobias" the "calls"
# case's recording path with SPANGUARD_NO_BIAS=1: no span biased to its
# thread, so every call takes the slot's lock, as in thread pools,
# goroutines and spans ended on another thread (a BASE older than biasing
# counts the same path as "calls" there). --interleaved
# times begin+3 attrs+end with both libraries loaded in one process,
# sample by sample (bench/c/interleaved.c), PAIRS pairs in each order and
# regime: on a host whose state moves within minutes, two processes in
# turn meet different minutes; `--interleaved --defaults` the same with the
# settings users get (bench/c/common.h's bench_default_settings: a
# 4,096-slot slab, whose slot hold of src/buffer/aging.rs is 1,024 slots
# once all its slots have been used). --llm times LLM-sized spans instead (an
# 8 KB prompt and a 2 KB completion, bench/c/llm_spans.c; ASCII text, then
# text with a non-ASCII character every 40 bytes or so), the two programs
# in turn, PAIRS pairs, alternating which goes first.
set -eu
base=${1:?usage: bench/compare.sh BASE [PAIRS] [--quick|--instructions|--interleaved|--llm]}
pairs=${2:-5}
quick=${3:-}
settings=${4:-}
case "$quick $settings" in
*" " | "--interleaved --defaults") ;;
*) echo "bench/compare.sh: a fourth argument may only be --defaults, after --interleaved" >&2; exit 2 ;;
esac
repo=$(cd "$(dirname "$0")/.." && pwd)
cc=${CC:-gcc}
out="$repo/build/compare"
mkdir -p "$out"

# Builds the library at commit $1 (once), then the bench programs against
# it; prints what build_against prints.
program_at() {
    rev=$(git -C "$repo" rev-parse --short "$1^{commit}")
    tree="$out/tree-$rev"
    if [ ! -f "$out/lib-$rev/libspanguard.so.0" ]; then
        if [ ! -d "$tree" ]; then
            git -C "$repo" worktree add --force --detach "$tree" "$rev" >/dev/null
        fi
        (cd "$tree" && CARGO_TARGET_DIR="$out/target-$rev" cargo build --release --lib --quiet) >&2
        mkdir -p "$out/lib-$rev" "$out/include-$rev"
        cp "$out/target-$rev/release/libspanguard.so" "$out/lib-$rev/libspanguard.so.0"
        ln -sf libspanguard.so.0 "$out/lib-$rev/libspanguard.so"
        cp "$tree/include/spanguard.h" "$out/include-$rev/"
        git -C "$repo" worktree remove --force "$tree"
    fi
    build_against "$rev" "$out/include-$rev" "$out/lib-$rev"
}

# Today's sources against a header and library; each program finds its
# library through its rpath. Prints LABEL=PATTERN, the programs' path with
# %s for the program's name.
build_against() {
    for program in hot_path span_instructions llm_spans; do
        "$cc" -std=c11 -Wall -Wextra -Werror -O2 -I"$2" "$repo/bench/c/$program.c" \
            -L"$3" -lspanguard -Wl,-rpath,"$3" -o "$out/$program-$1"
    done
    echo "$1=$out/%s-$1"
}

first=$(program_at "$base")
if [ -n "${COMPARE_HEAD:-}" ]; then
    second=$(program_at "$COMPARE_HEAD")
else
    second=$(build_against head "$repo/include" "$repo/build/lib" | sed 's/^head=/this tree=/')
fi

if [ "$quick" = --instructions ]; then
    for pair in "$first" "$second"; do
        label=${pair%%=*}
        program=$(printf "${pair#*=}" span_instructions)
        for case in plain calls array begin child export export-gzip handlers llm nobias; do
            # The exporter's share of the "calls" spans ("export-gzip": with
            # gzip on, and the bytes it sent), or the recording
            # path; "handlers": the "calls" spans with the crash and signal
            # handlers installed, as users' tracers have them by default;
            # "nobias": the "calls" spans with biasing off, every call
            # through the slot's lock.
            run=$case collect='spanguard_span_*' with= env=
            [ "$case" = export ] && run=calls collect='*Exporter::run*'
            [ "$case" = export-gzip ] && run=calls collect='*Exporter::run*' with=gzip
            [ "$case" = handlers ] && run=calls with=handlers
            [ "$case" = nobias ] && run=calls env=SPANGUARD_NO_BIAS=1
            spans=$(env $env "$program" "$run" $with 2>"$out/gzip-sent")
            env $env valgrind --tool=callgrind --toggle-collect="$collect" \
                --callgrind-out-file="$out/callgrind.out" "$program" "$run" $with >/dev/null 2>&1
            total=$(callgrind_annotate "$out/callgrind.out" 2>/dev/null | sed -n 's/^ *\([0-9,]*\) .*PROGRAM TOTALS.*/\1/p' | tr -d ,)
            echo "$label: $case: $((total / spans)) instructions a span (callgrind, $spans spans)"
            if [ "$case" = export-gzip ]; then
                echo "$label: $case: $(grep '^gzip:' "$out/gzip-sent")"
            else
                cat "$out/gzip-sent" >&2
            fi
        done
    done
    exit 0
fi

if [ "$quick" = --llm ]; then
    exec python3 "$repo/bench/compare.py" --pairs "$pairs" --name bench/c/llm_spans.c \
        "${first%%=*}=$(printf "${first#*=}" llm_spans)" "${second%%=*}=$(printf "${second#*=}" llm_spans)"
fi

if [ "$quick" = --interleaved ]; then
    # Both libraries in one process, sample by sample (bench/c/interleaved.c),
    # in both orders: the library loaded second ran about 2% apart from the
    # first with the same library twice (A against A), so each order alone
    # carries that; the geometric mean of the two orders' ratios cancels it.
    "$cc" -std=c11 -Wall -Wextra -Werror -O2 -I"$repo/include" "$repo/bench/c/interleaved.c" -ldl \
        -o "$out/interleaved"
    libdir() {
        case "$1" in
        "this tree") echo "$repo/build/lib" ;;
        *) echo "$out/lib-$1" ;;
        esac
    }
    a=$(libdir "${first%%=*}")/libspanguard.so.0
    b=$(libdir "${second%%=*}")/libspanguard.so.0
    for regime in "" --idle; do
        ab_all=$("$out/interleaved" "$a" "$b" "$pairs" $regime $settings)
        ba_all=$("$out/interleaved" "$b" "$a" "$pairs" $regime $settings)
        ab=$(echo "$ab_all" | tail -1)
        ba=$(echo "$ba_all" | tail -1)
        echo "A=${first%%=*} B=${second%%=*}: $ab"
        echo "A=${second%%=*} B=${first%%=*}: $ba"
        echo "$ab|$ba" | awk -F'|' -v base="${first%%=*}" -v head="${second%%=*}" '{
            split($1, x, "pair ratio B/A "); split($2, y, "pair ratio B/A ");
            r = sqrt((x[2] + 0) / (y[2] + 0));
            printf "%s over %s, both orders: %.3f (geometric mean of the two medians)\n", head, base, r }'
        # The same from the recording thread's CPU time (a loaded machine's
        # waits for a CPU left out).
        printf '%s|%s\n' "$(echo "$ab_all" | grep '^thread CPU')" "$(echo "$ba_all" | grep '^thread CPU')" |
            awk -F'|' -v base="${first%%=*}" -v head="${second%%=*}" '{
            split($1, x, "ratio B/A "); split($2, y, "ratio B/A ");
            printf "%s over %s, both orders, thread CPU: %.3f (%.3f with the base loaded first, %.3f with it second)\n", head, base,
                sqrt((x[2] + 0) / (y[2] + 0)), x[2] + 0, 1 / (y[2] + 0) }'
        # Each library's recording thread CPU a span and slot waits a
        # sample (counts to set beside make bench's default row).
        echo "$ab_all" | grep '^recording thread CPU' | sed "s/^/A=${first%%=*} B=${second%%=*}: /"
        echo "$ba_all" | grep '^recording thread CPU' | sed "s/^/A=${second%%=*} B=${first%%=*}: /"
        # The same in each host state (bench/c/probe.h): a change may pay
        # in one and cost in the other; "none" where an order met no pair
        # in that state.
        echo "$ab_all" | grep '^by host state' | sed "s/^/A=${first%%=*} B=${second%%=*}: /"
        echo "$ba_all" | grep '^by host state' | sed "s/^/A=${second%%=*} B=${first%%=*}: /"
        printf '%s|%s\n' "$(echo "$ab_all" | grep '^by host state')" "$(echo "$ba_all" | grep '^by host state')" |
            awk -F'|' -v base="${first%%=*}" -v head="${second%%=*}" '{
            n = split($1, x, "ratio B/A "); split($2, y, "ratio B/A ");
            split(x[1], xc, "whole core "); split(y[1], yc, "whole core ");
            split(x[2], xs, "shared core "); split(y[2], ys, "shared core ");
            w = (xc[2] + 0 > 0 && yc[2] + 0 > 0) ? sprintf("%.3f", sqrt((x[2] + 0) / (y[2] + 0))) : "none";
            s = (xs[2] + 0 > 0 && ys[2] + 0 > 0) ? sprintf("%.3f", sqrt((x[3] + 0) / (y[3] + 0))) : "none";
            printf "%s over %s, both orders, whole core: %s; shared core: %s\n", head, base, w, s }'
    done
    exit 0
fi

exec python3 "$repo/bench/compare.py" --pairs "$pairs" $quick \
    "${first%%=*}=$(printf "${first#*=}" hot_path)" "${second%%=*}=$(printf "${second#*=}" hot_path)"
