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
# bench/compare.sh BASE [PAIRS] [--quick]; COMPARE_HEAD=<commit> puts that
# commit's library in place of this tree's build/lib.
set -eu
base=${1:?usage: bench/compare.sh BASE [PAIRS] [--quick]}
pairs=${2:-5}
quick=${3:-}
repo=$(cd "$(dirname "$0")/.." && pwd)
cc=${CC:-gcc}
out="$repo/build/compare"
mkdir -p "$out"

# Builds the library at commit $1 (once), then hot_path.c against it;
# prints the program's path.
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
    # Today's source against that commit's header; the program finds its
    # library through its rpath.
    "$cc" -std=c11 -Wall -Wextra -Werror -O2 -I"$out/include-$rev" "$repo/bench/c/hot_path.c" \
        -L"$out/lib-$rev" -lspanguard -Wl,-rpath,"$out/lib-$rev" -o "$out/hot_path-$rev"
    echo "$rev=$out/hot_path-$rev"
}

first=$(program_at "$base")
if [ -n "${COMPARE_HEAD:-}" ]; then
    second=$(program_at "$COMPARE_HEAD")
else
    "$cc" -std=c11 -Wall -Wextra -Werror -O2 -I"$repo/include" "$repo/bench/c/hot_path.c" \
        -L"$repo/build/lib" -lspanguard -Wl,-rpath,"$repo/build/lib" -o "$out/hot_path-head"
    second="this tree=$out/hot_path-head"
fi

exec python3 "$repo/bench/compare.py" --pairs "$pairs" $quick "$first" "$second"
