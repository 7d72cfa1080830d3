//! Puts a batch's slot numbers in ascending order before the exporter gives
//! the slots back, so that the free stack's chain runs through consecutive
//! slots (see `Exporter::export_taken`).
//!
//! A radix sort, not `sort_unstable`: slot numbers are small integers
//! (below 2^24), a batch is hundreds of them, and they arrive in nearly
//! random order. The comparison sort spent 124 instructions a span on the
//! exporter (11% of its instructions in a regime (b) loop, callgrind),
//! with branches that random input mispredicts; this one spends 46 in the
//! same loop, none of its branches depending on the numbers' order. The
//! exporter shares its core with the recording thread on hosts whose
//! vCPUs are hardware threads of one core.
//!
//! Numbers that come as a few ascending runs are merged instead: with one
//! recording thread and the exporter busy (regime (b)), nearly every
//! batch that is not in order already is two runs (the thread's slots
//! wrap around the slab: 2,366 of 2,479 batches in a `regime_loop b` run,
//! the rest three or four), which one merge pass puts in order: the
//! sort took 44 instructions a span on the exporter in that loop, now 15
//! (callgrind, `--toggle-collect='*Exporter::run*'`).

/// Under this many numbers the radix sort's fixed cost (256 counts
/// cleared and summed a pass) is about a comparison sort's whole work, so
/// the simpler sort does them (a part of a batch can be that small; a
/// full batch is 512).
const SMALL: usize = 64;

/// Sorts `numbers` ascending. `scratch` is working space, grown to the
/// length of `numbers` on first use and kept by the caller, so that a
/// batch allocates nothing once warm. Numbers in up to `MAX_RUNS`
/// ascending runs are merged, others radix sorted.
pub fn sort_slot_numbers(numbers: &mut [u32], scratch: &mut Vec<u32>) {
    let n = numbers.len();
    if n < SMALL {
        numbers.sort_unstable();
        return;
    }
    // Already in order: the common case with one recording thread, whose
    // slots come off the free stack in the order the last release put them
    // (ascending), and end, so are queued and taken, in that order. A look
    // costs a comparison a number (and stops after MAX_RUNS runs: random
    // numbers end it within a few); the radix passes cost 43 instructions
    // a span on the exporter (callgrind, `make bench-compare
    // COMPARE_ARGS=--instructions`).
    let Some(runs) = few_runs(numbers) else {
        return radix_sort(numbers, scratch);
    };
    if runs.len() == 1 {
        return;
    }
    merge_runs(numbers, scratch, runs);
}

/// The most ascending runs `merge_runs` merges: two passes at most, each
/// a few instructions a number where the radix sort's two passes (slot
/// numbers over 255) are about 44 (callgrind).
const MAX_RUNS: usize = 4;

/// Where each ascending run of `numbers` ends, in order (the last is
/// `numbers.len()`); None when there are more than `MAX_RUNS` of them.
fn few_runs(numbers: &[u32]) -> Option<Runs> {
    let mut runs = Runs {
        ends: [0; MAX_RUNS],
        len: 0,
    };
    for i in 1..numbers.len() {
        if numbers[i] < numbers[i - 1] {
            if runs.len == MAX_RUNS - 1 {
                return None;
            }
            runs.ends[runs.len] = i;
            runs.len += 1;
        }
    }
    runs.ends[runs.len] = numbers.len();
    runs.len += 1;
    Some(runs)
}

/// The ends of a slice's ascending runs (`few_runs`).
#[derive(Clone, Copy)]
struct Runs {
    ends: [usize; MAX_RUNS],
    len: usize,
}

impl Runs {
    fn len(&self) -> usize {
        self.len
    }
}

/// Sorts `numbers`, made of the ascending `runs`, by merging neighbouring
/// runs pass by pass between `numbers` and `scratch` until one is left.
fn merge_runs(numbers: &mut [u32], scratch: &mut Vec<u32>, mut runs: Runs) {
    let n = numbers.len();
    if scratch.len() < n {
        scratch.resize(n, 0);
    }
    let scratch = &mut scratch[..n];
    let mut in_scratch = false;
    while runs.len > 1 {
        let (from, to): (&[u32], &mut [u32]) = if in_scratch {
            (&*scratch, &mut *numbers)
        } else {
            (&*numbers, &mut *scratch)
        };
        let mut merged = Runs {
            ends: [0; MAX_RUNS],
            len: 0,
        };
        let mut start = 0;
        let mut r = 0;
        while r < runs.len {
            let mid = runs.ends[r];
            // A run without a neighbour is copied as it is.
            let end = if r + 1 < runs.len {
                runs.ends[r + 1]
            } else {
                mid
            };
            merge(&from[start..mid], &from[mid..end], &mut to[start..end]);
            merged.ends[merged.len] = end;
            merged.len += 1;
            start = end;
            r += 2;
        }
        runs = merged;
        in_scratch = !in_scratch;
    }
    if in_scratch {
        numbers.copy_from_slice(scratch);
    }
}

/// Merges the ascending `a` and `b` into `out` (`a.len() + b.len()` long).
/// The step picks with a select, not a branch: two runs that interleave
/// would mispredict one.
#[inline]
fn merge(a: &[u32], b: &[u32], out: &mut [u32]) {
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        let take_b = b[j] < a[i];
        out[i + j] = if take_b { b[j] } else { a[i] };
        j += take_b as usize;
        i += !take_b as usize;
    }
    // What is left of one of them, already above all that was merged.
    out[i + j..i + j + (a.len() - i)].copy_from_slice(&a[i..]);
    out[a.len() + j..].copy_from_slice(&b[j..]);
}

/// Least significant byte first, one pass per byte the largest number
/// uses; a pass in which every number has the same byte moves nothing.
fn radix_sort(numbers: &mut [u32], scratch: &mut Vec<u32>) {
    let n = numbers.len();
    let all_bits = numbers.iter().fold(0u32, |acc, &x| acc | x);
    let bytes = (u32::BITS - all_bits.leading_zeros()).div_ceil(8);
    if scratch.len() < n {
        scratch.resize(n, 0);
    }
    let scratch = &mut scratch[..n];
    // Where the numbers are after each pass: a pass copies them from one
    // buffer to the other.
    let mut in_scratch = false;
    for byte in 0..bytes {
        let shift = byte * 8;
        let digit = |x: u32| ((x >> shift) & 0xff) as usize;
        let (from, to): (&[u32], &mut [u32]) = if in_scratch {
            (&*scratch, &mut *numbers)
        } else {
            (&*numbers, &mut *scratch)
        };
        let mut starts = [0u32; 256];
        for &x in from.iter() {
            starts[digit(x)] += 1;
        }
        if starts[digit(from[0])] as usize == n {
            continue; // one digit for all: already in order by it
        }
        let mut sum = 0;
        for s in starts.iter_mut() {
            let count = *s;
            *s = sum;
            sum += count;
        }
        for &x in from.iter() {
            let d = digit(x);
            to[starts[d] as usize] = x;
            starts[d] += 1;
        }
        in_scratch = !in_scratch;
    }
    if in_scratch {
        numbers.copy_from_slice(scratch);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small deterministic generator (xorshift), so a failure repeats.
    fn numbers(len: usize, below: u32, seed: u64) -> Vec<u32> {
        let mut s = seed | 1;
        (0..len)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s % below as u64) as u32
            })
            .collect()
    }

    fn check(mut v: Vec<u32>, scratch: &mut Vec<u32>) {
        let mut expected = v.clone();
        expected.sort_unstable();
        sort_slot_numbers(&mut v, scratch);
        assert_eq!(v, expected);
    }

    #[test]
    fn sorts_every_size_and_range_a_batch_can_have() {
        let mut scratch = Vec::new();
        for len in [0, 1, 2, 63, 64, 65, 511, 512, 513, 4096] {
            // One, two, three and four bytes of slot number (a pass of
            // each parity, so the result ends in either buffer).
            for below in [200, 1 << 12, 70_000, 1 << 24, u32::MAX] {
                for seed in 1..4 {
                    check(numbers(len, below, seed), &mut scratch);
                }
            }
        }
    }

    #[test]
    fn keeps_repeats_and_runs_that_are_already_in_order() {
        let mut scratch = Vec::new();
        check(vec![7; 300], &mut scratch);
        check((0..1000).collect(), &mut scratch);
        check((0..1000).rev().collect(), &mut scratch);
        // A byte shared by every number but the lowest: that pass is skipped.
        check(
            (0..300).map(|i| 0x0100_0000 | ((i * 7919) % 256)).collect(),
            &mut scratch,
        );
    }

    #[test]
    fn numbers_already_in_order_are_left_as_they_are_without_a_pass() {
        // Scratch untouched: no radix pass ran (each pass writes into it).
        let mut scratch = Vec::new();
        let mut v: Vec<u32> = (0..4096).map(|i| i * 3 + 1).collect();
        let want = v.clone();
        sort_slot_numbers(&mut v, &mut scratch);
        assert_eq!(v, want);
        assert_eq!(scratch.capacity(), 0, "a radix pass ran on sorted numbers");
        // One out of order at the very end is still sorted.
        v.push(0);
        check(v, &mut scratch);
    }

    #[test]
    fn a_few_ascending_runs_are_merged_into_order() {
        let mut scratch = Vec::new();
        // Two runs as regime (b) makes them (the thread's slots wrapped
        // around the slab: every number of the second below the first's),
        // runs that interleave, repeats across runs, and two to five runs
        // (five: past MAX_RUNS, radix sorted) of every length to 600.
        check((7205..7680).chain(0..37).collect(), &mut scratch);
        check(
            (0..300)
                .map(|i| i * 2)
                .chain((0..300).map(|i| i * 2 + 1))
                .collect(),
            &mut scratch,
        );
        check(vec![5, 5, 9, 1, 5, 5, 5, 9, 9], &mut scratch);
        for runs in 2..=5u64 {
            for len in [2, 3, 63, 64, 65, 200, 511, 512, 600] {
                for seed in 1..6 {
                    let mut v = numbers(len, 70_000, seed * 31 + runs);
                    // Sorted pieces at places the seed picks.
                    let cuts = numbers(runs as usize - 1, len as u32, seed);
                    let mut bounds: Vec<usize> = cuts.iter().map(|&c| c as usize).collect();
                    bounds.push(0);
                    bounds.push(len);
                    bounds.sort_unstable();
                    for w in bounds.windows(2) {
                        v[w[0]..w[1]].sort_unstable();
                    }
                    check(v, &mut scratch);
                }
            }
        }
    }

    #[test]
    fn a_warm_scratch_is_not_grown_again() {
        let mut scratch = Vec::new();
        check(numbers(512, 70_000, 9), &mut scratch);
        let (ptr, cap) = (scratch.as_ptr(), scratch.capacity());
        check(numbers(512, 70_000, 10), &mut scratch);
        check(numbers(300, 70_000, 11), &mut scratch);
        assert_eq!((scratch.as_ptr(), scratch.capacity()), (ptr, cap));
    }
}
