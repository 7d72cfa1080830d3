//! Trace and span ids. Each thread has its own generator, seeded once from
//! the kernel, so making an id takes no lock and no system call: the state
//! in its cache of free slots (`IdState`, one per cache, seeded as a
//! thread claims the cache), or for a thread without a cache its
//! thread-local one.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

thread_local! {
    // 0 means "not seeded yet"; a seeded state is never 0.
    static STATE: Cell<u64> = const { Cell::new(0) };
}

fn seed() -> u64 {
    let mut bytes = [0u8; 8];
    // SAFETY: the buffer is valid for 8 bytes.
    let n = unsafe { libc::getrandom(bytes.as_mut_ptr().cast(), 8, 0) };
    let mut s = u64::from_ne_bytes(bytes);
    if n != 8 {
        // No getrandom: mix time, pid and this thread's stack address.
        s = super::clock::now_unix_ns()
            ^ (std::process::id() as u64) << 32
            ^ (&bytes as *const _ as u64);
    }
    s | 1
}

/// The generator's step (wyrand's): the state advances by an odd constant
/// (a Weyl sequence, so a state repeats only after 2^64 steps), and each
/// number is the two halves of a 64x64->128-bit product of the state with
/// itself xored with a second constant, xored together. One multiply a
/// number, where splitmix64's output function took two multiplies and
/// three shift-xors: a root span's three numbers cost 40-odd instructions
/// of a begin, now about half. The output is not a bijection of the
/// state, so two states may give the same number, as two random numbers
/// may (a 64-bit birthday repeat), which is all ids need; it passes
/// BigCrush and PractRand (Wang Yi's wyhash tests), and the sanity test
/// below checks repeats, bit balance and neighbouring numbers.
#[inline(always)]
fn wyrand(s: &mut u64) -> u64 {
    *s = s.wrapping_add(0xA076_1D64_78BD_642F);
    let product = (*s as u128).wrapping_mul((*s ^ 0xE703_7ED1_A0B4_28DB) as u128);
    (product >> 64) as u64 ^ product as u64
}

/// `N` numbers from the generator whose state is `s`, which it advances.
#[inline(always)]
fn words_from<const N: usize>(s: &mut u64) -> [u64; N] {
    std::array::from_fn(|_| wyrand(s))
}

/// `N` numbers from this thread's generator, with one access to it: each
/// thread-local access from the shared library is a call to
/// `__tls_get_addr`, and a root span needs three numbers.
#[inline]
fn next_words<const N: usize>() -> [u64; N] {
    STATE.with(|state| {
        let mut s = state.get();
        if s == 0 {
            s = seed();
        }
        let words = words_from(&mut s);
        state.set(s);
        words
    })
}

/// `next_words` out of line, for a span whose thread has no cache: inlined,
/// the thread-local's address (the call to `__tls_get_addr`) was computed
/// ahead of the test for a cache, on every span.
#[cold]
#[inline(never)]
fn thread_local_words<const N: usize>() -> [u64; N] {
    next_words()
}

/// A generator's state kept in a thread's cache of free slots
/// (`slot_cache`), on the line its thread writes on every span: a begin
/// has the cache in hand already, where the thread-local generator cost a
/// call to `__tls_get_addr` a span. Only the thread that claimed the
/// cache draws from it; each claim seeds it anew from the kernel, so no
/// two threads (nor a thread and the one that held the cache before it)
/// share a sequence. A forked child never draws from its parent's: it
/// records only into tracers made in the child (`ffi::tracer`'s fork
/// handler lets go of the inherited ones), whose caches it claims, and
/// so seeds, itself.
pub struct IdState(AtomicU64);

impl IdState {
    /// Seeded by the first claim (a stack's caches are made at once, most
    /// never claimed: no system call for those).
    pub const fn unseeded() -> IdState {
        IdState(AtomicU64::new(0))
    }

    /// Seeds it anew, for the thread that just claimed its cache.
    pub fn reseed(&self) {
        self.0.store(seed(), Ordering::Relaxed);
    }

    /// `N` numbers: Relaxed, as only the claiming thread draws.
    #[inline(always)]
    fn words<const N: usize>(&self) -> [u64; N] {
        let mut s = self.0.load(Ordering::Relaxed);
        let words = words_from(&mut s);
        self.0.store(s, Ordering::Relaxed);
        words
    }
}

/// Where a span's new ids come from: its thread's cache's generator, or
/// (None: a thread without a cache) its thread-local one.
#[derive(Clone, Copy)]
pub struct IdSource<'a>(pub Option<&'a IdState>);

impl IdSource<'_> {
    #[inline(always)]
    fn words<const N: usize>(self) -> [u64; N] {
        match self.0 {
            Some(state) => state.words(),
            None => thread_local_words(),
        }
    }

    /// A new trace id and the id of its root span (`new_root_ids`).
    #[inline(always)]
    pub fn root_ids(self) -> ([u8; 16], [u8; 8]) {
        loop {
            let [high, low, span] = self.words();
            if high | low != 0 && span != 0 {
                return (trace_id_of(high, low), span.to_be_bytes());
            }
        }
    }

    /// A new span id (`new_span_id`).
    #[inline(always)]
    pub fn span_id(self) -> [u8; 8] {
        loop {
            let [id] = self.words();
            if id != 0 {
                return id.to_be_bytes();
            }
        }
    }
}

/// Forgets this thread's seed, so a forked child does not repeat its
/// parent's ids.
pub fn reseed_after_fork() {
    STATE.with(|state| state.set(0));
}

/// A random nonzero number, for unique file names.
pub fn new_span_id_u64() -> u64 {
    u64::from_be_bytes(new_span_id())
}

fn trace_id_of(high: u64, low: u64) -> [u8; 16] {
    ((high as u128) << 64 | low as u128).to_be_bytes()
}

/// A new span id from this thread's thread-local generator.
pub fn new_span_id() -> [u8; 8] {
    IdSource(None).span_id()
}

/// A new trace id and the id of its root span, from one access to this
/// thread's thread-local generator.
#[inline]
pub fn new_root_ids() -> ([u8; 16], [u8; 8]) {
    IdSource(None).root_ids()
}

/// Lower-case hex of `bytes` into `out` (which must be twice as long).
pub fn write_hex(bytes: &[u8], out: &mut [u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for (i, b) in bytes.iter().enumerate() {
        out[2 * i] = HEX[(b >> 4) as usize];
        out[2 * i + 1] = HEX[(b & 15) as usize];
    }
}

/// Parses lower- or upper-case hex into `out`; false on any other byte or
/// length.
pub fn parse_hex(text: &[u8], out: &mut [u8]) -> bool {
    if text.len() != out.len() * 2 {
        return false;
    }
    fn nibble(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    }
    for (i, o) in out.iter_mut().enumerate() {
        match (nibble(text[2 * i]), nibble(text[2 * i + 1])) {
            (Some(h), Some(l)) => *o = h << 4 | l,
            _ => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_nonzero_and_distinct() {
        let (a, span) = new_root_ids();
        let (b, _) = new_root_ids();
        assert_ne!(a, [0; 16]);
        assert_ne!(span, [0; 8]);
        assert_ne!(a, b);
        assert_ne!(new_span_id(), new_span_id());
    }

    #[test]
    fn ids_from_two_threads_do_not_repeat() {
        // 2 x 100,000 span ids and trace ids: a repeat would mean a broken
        // generator (a birthday repeat among 64-bit numbers is ~1e-9 here).
        let draw = || {
            (0..100_000)
                .map(|_| {
                    let (trace, span) = new_root_ids();
                    (u128::from_be_bytes(trace), u64::from_be_bytes(span))
                })
                .collect::<Vec<_>>()
        };
        let other = std::thread::spawn(draw);
        let mine = draw();
        let all: Vec<_> = mine.into_iter().chain(other.join().unwrap()).collect();
        let traces: std::collections::HashSet<u128> = all.iter().map(|a| a.0).collect();
        let spans: std::collections::HashSet<u64> = all.iter().map(|a| a.1).collect();
        assert_eq!(traces.len(), all.len());
        assert_eq!(spans.len(), all.len());
        assert!(!traces.contains(&0) && !spans.contains(&0));
    }

    #[test]
    fn a_caches_generator_passes_a_statistical_sanity_check() {
        // The numbers of 350,000 root spans' ids (1.05M), drawn as a begin
        // draws them from its cache's generator: no repeat (one among 1M
        // random 64-bit numbers has odds of about 3e-8), every bit set
        // about half the time, and every bit the same in two neighbouring
        // numbers about half the time (a weak step, such as the bare Weyl
        // state, fails this: its low bit alternates). Bounds of 6 standard
        // deviations (sd = sqrt(n)/2, about 512): a good generator fails
        // one of the 128 checks about once in 10^7 runs.
        let state = IdState::unseeded();
        state.reseed();
        let words: Vec<u64> = (0..350_000)
            .flat_map(|_| {
                let (trace, span) = IdSource(Some(&state)).root_ids();
                let trace = u128::from_be_bytes(trace);
                [(trace >> 64) as u64, trace as u64, u64::from_be_bytes(span)]
            })
            .collect();
        let distinct: std::collections::HashSet<u64> = words.iter().copied().collect();
        assert_eq!(distinct.len(), words.len(), "a repeated number");
        let n = words.len() as f64;
        let bound = 6.0 * n.sqrt() / 2.0;
        for bit in 0..64 {
            let ones = words.iter().filter(|&&w| w >> bit & 1 == 1).count() as f64;
            assert!(
                (ones - n / 2.0).abs() < bound,
                "bit {bit} set in {ones} of {n}"
            );
            let same = words
                .windows(2)
                .filter(|w| (w[0] ^ w[1]) >> bit & 1 == 0)
                .count() as f64;
            assert!(
                (same - (n - 1.0) / 2.0).abs() < bound,
                "bit {bit} the same in {same} of {n} neighbours"
            );
        }
    }

    #[test]
    fn hex_round_trips() {
        let id = [0xde, 0xad, 0xbe, 0xef];
        let mut hex = [0u8; 8];
        write_hex(&id, &mut hex);
        assert_eq!(&hex, b"deadbeef");
        let mut back = [0u8; 4];
        assert!(parse_hex(b"DEADbeef", &mut back));
        assert_eq!(back, id);
        assert!(!parse_hex(b"deadbeeg", &mut back));
    }
}
