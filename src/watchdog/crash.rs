//! Crash signals (SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT). The handler runs
//! on an alternate stack and writes every unexported span of every tracer —
//! open ones included — as raw records to that tracer's pre-opened crash
//! file, using only write(2), rename(2) and sigaction(2): no allocation, no
//! lock, no curl, no formatting (on an alternate stack too small for that,
//! one a runtime swapped in since the thread's first span, the watchdog
//! thread writes them: `short_of_stack`). Then it chains to the handler
//! that was there before, or restores the default and re-raises, so the
//! process dies as it would have. A signal that is no fault and cannot
//! end the process (a container's PID 1 at the default) is left alone;
//! one the program's own handler returned from is over, and the tracers
//! are thawed (`take_back_after_return`). A fault goes to the program's
//! own handler first, when it has one: one it repairs (a garbage
//! collector's, a JIT's) is no crash, and only one it leaves to recur is
//! dumped (`program_handler_ended_fault`; one it seems to leave alone is
//! let run again first, and dumped when it comes straight back).
//! The next tracer start (or `spanguard recover`) sends what the file
//! holds.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::buffer::dump::{CrashFile, DumpHeader, PreparedFile};
use crate::pipeline::Pipeline;

pub const CRASH_SIGNALS: [libc::c_int; 5] = [
    libc::SIGSEGV,
    libc::SIGBUS,
    libc::SIGILL,
    libc::SIGFPE,
    libc::SIGABRT,
];

/// Makes a tracer's crash files in `dir`: the slot dump (`.sgdump-pending`,
/// published as `.sgdump`) now, and names the file for the batch in flight
/// (`.sgspool-pending`, published as an ordinary spool file), which the
/// exporter makes (`CrashFile::prepare_batch`).
///
/// Their names say whose spans they hold (`destination`: the tracer's
/// `Transport::sender_fingerprint`, `spool::destination_tag`): only a
/// sender set up alike recovers them (`SpoolDir::takes`).
pub fn create_crash_file(
    dir: &Path,
    tracer_tag: u64,
    destination: Option<u64>,
    header: DumpHeader,
) -> std::io::Result<CrashFile> {
    crate::buffer::files::ensure_private_dir(dir)?;
    let stem = format!(
        "{:020}-{:010}-{tracer_tag:x}{}",
        crate::span::clock::now_unix_ns(),
        std::process::id(),
        crate::export::spool::destination_tag_in(dir, destination)
    );
    let slots = PreparedFile::create(
        &dir.join(format!("{stem}.sgdump-pending")),
        &dir.join(format!("{stem}.sgdump")),
    )?;
    Ok(CrashFile::new(
        slots,
        dir.join(format!("{stem}.sgspool-pending")),
        dir.join(format!("{stem}{}", crate::export::spool::SUFFIX)),
        header,
    ))
}

/// What a shutdown does when the exporter did not stop in time
/// (`pipeline::LeftStuck`; frozen now if there is a crash dump): unless
/// every span was dealt with (`left` false), writes what is left (spans
/// still in the slab, the batch it holds) to the crash dump, as a fatal
/// signal would, so the next start sends them; with the flight recorder
/// they are in its file and the batch in its journal already. Without a
/// dump they stay with the exporter too, which sends or spools them if it
/// gets unstuck while the process lives. The batch it holds may arrive twice (it may yet finish
/// it): at least once, as after a crash. Said on stderr when it has room
/// (a full stderr pipe may be what the exporter is stuck on: the shutdown
/// must not block there too).
pub fn leave_stuck_exporter(p: &Pipeline, left: bool) {
    // Replaced by a stand-in (`export::stand_in`), it holds the batch of
    // its request: counted in no record yet.
    let held = if p.signal.request_watch.replaced_one_holds_a_batch()
        && !p.in_flight.body.load(Ordering::Acquire).is_null()
    {
        u64::from(p.in_flight.spans.load(Ordering::Relaxed))
    } else {
        0
    };
    let dumped = left && p.crash_file.is_some();
    if dumped {
        dump_now(p, 0);
    }
    if held > 0
        && let Some((record, _)) = p.signal.request_watch.record()
    {
        let kept_in = p
            .crash_file
            .as_ref()
            .filter(|_| dumped)
            .and_then(|c| c.batch())
            .map(|b| b.done_path())
            .filter(|path| path.exists());
        crate::export::outcome::note_held_at_stop(&record, held, kept_in);
    }
    if p.config.log_level >= crate::config::LogLevel::Warn {
        let whereabouts = if !left {
            "every span was dealt with"
        } else if dumped {
            "the spans it had not dealt with were written to the crash dump in the spool \
             directory, sent at the next start"
        } else if p.flight.is_some() {
            "the spans it had not dealt with stay in the flight recorder's file, sent at the \
             next start"
        } else {
            "the spans it had not dealt with are sent or spooled if it gets unstuck, lost if \
             the process ends first (no crash dump: signal handlers are off)"
        };
        let line = format!(
            "spanguard: warn: the exporter thread did not stop within the shutdown's timeout \
             (blocked in the error callback, a write or a lookup): left running; {whereabouts}\n"
        );
        crate::export::diagnostics::write_to_stderr_if_room(line.as_bytes());
    }
}

/// Async-signal-safe: writes a pipeline's live slots, then its batch in
/// flight, once: not while another thread dumps it (a crash beside a
/// shutdown's or the watchdog's dump), nor again once its dump is on disk
/// (`CrashFile::begin_dump`). A dump on disk holds everything there is
/// to hold: a pipeline is dumped when its shutdown left its exporter
/// stuck (shut down: it records nothing more, and the frozen exporter
/// takes nothing) or when a termination signal froze it (until a thaw,
/// which takes the dump back). A crash after either used to dump it
/// again. Each pipeline has its files, so dumps of different ones run at
/// once (the exit hook and the watchdog deal with every tracer at once);
/// one of the same pipeline on another thread is waited for.
pub fn dump_now(p: &Pipeline, signal: libc::c_int) {
    let Some(crash) = p.crash_file.as_ref() else {
        return;
    };
    // One another thread is writing ends first (then it is on disk), within
    // the signal budget: a crash beside it must not end the process with
    // it half written.
    let budget = p.config.signal_flush_timeout.as_nanos() as u64;
    crash.await_dump_elsewhere(crate::span::clock::monotonic_ns().saturating_add(budget));
    if crash.begin_dump() {
        crash.dump_slots(&p.slab, &p.pool, signal);
        dump_in_flight(p, crash);
        // No batch in flight: its file goes, as the slot dump's does when
        // no span was live, so that a process ended with nothing to keep
        // (a SIGTERM after its last flush) leaves no file behind.
        crash.discard_unwritten_batch();
        crash.end_dump();
    }
}

/// Async-signal-safe: whether a pipeline's dump is on disk already.
fn dumped(p: &Pipeline) -> bool {
    p.crash_file.as_ref().is_some_and(|c| c.is_on_disk())
}

/// Async-signal-safe: writes the batch in flight, if any, as a spool file.
fn dump_in_flight(p: &Pipeline, crash: &CrashFile) {
    let body = p.in_flight.body.load(Ordering::Acquire);
    if body.is_null() {
        return;
    }
    // The exporter made the file before it published any body; without
    // one, the batch's spans are in the slots just dumped.
    let Some(batch) = crash.batch() else {
        return;
    };
    let len = p.in_flight.len.load(Ordering::Relaxed);
    let flags = p.in_flight.flags.load(Ordering::Relaxed);
    let format = if flags & 1 != 0 {
        crate::export::transport::BodyFormat::Json
    } else {
        crate::export::transport::BodyFormat::Protobuf
    };
    let header = crate::export::spool::encode_header(
        format,
        flags & 2 != 0,
        p.in_flight.spans.load(Ordering::Relaxed),
        p.in_flight.cut_counted.load(Ordering::Relaxed),
        len,
    );
    batch.write_all(header.as_bytes());
    // SAFETY: the exporter keeps this buffer alive and unchanged while
    // the pointer is published.
    batch.write_all(unsafe { std::slice::from_raw_parts(body, len) });
    batch.publish();
}

/// For a process that `signal` may end: flushes until `deadline`, then
/// stops the exporter from taking more spans, waits for the batch it holds,
/// and writes every span still in the slab (ended since the flush, or
/// open: recovered as interrupted) to the crash file, so the next start
/// sends each exactly once. Recording calls fail with ShutDown afterwards,
/// until `Pipeline::thaw` by `thawer` (the thread that will thaw it if
/// the process lives on: the watchdog, which may run this on a thread of
/// its own per tracer). A tracer already shut down is left as it is; one
/// shutting down is frozen too (a worker whose exit hook is shutting it
/// down when its pool terminates it: its spans are not all sent yet).
pub fn freeze_and_dump(p: &Pipeline, signal: i32, deadline: Instant, thawer: i32) {
    if p.lifecycle() == crate::pipeline::LIFECYCLE_SHUT_DOWN {
        return;
    }
    let timeout = deadline.saturating_duration_since(Instant::now());
    p.signal
        .flushing_for_signal
        .store(signal, Ordering::Relaxed);
    // A quarter of the time is kept for the batch the exporter holds when
    // the flush gives up (a slow backend): dumping that batch while it is
    // still being sent is what would make it arrive twice. (So it is not
    // abandoned at the flush's deadline either, as an application's
    // flush abandons it.)
    let _ = p
        .signal
        .request_flush_and_wait_leaving_requests(timeout - timeout / 4);
    if !p.try_freeze_recording(thawer) {
        return; // shut down meanwhile
    }
    // SeqCst pairs with the exporter's busy/frozen handshake.
    p.signal.frozen.store(true, Ordering::SeqCst);
    while p.signal.busy.load(Ordering::SeqCst) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_micros(200));
    }
    dump_now(p, signal);
    p.mark_flight_signal(signal);
}

/// The dispositions we replaced, written once before our handlers go in and
/// only read afterwards (from the handler, so no lock).
static mut PREVIOUS: [Option<libc::sigaction>; 32] = [None; 32];
/// Whether the crash handlers are in: read and set only under the lock a
/// fork holds (`ensure_installed`), so a child gets the install done or not
/// begun, never running. Not a `ForkSafeOnce`, which may run it again in a
/// child: installed twice, ours would be the handler it chains to.
static INSTALLED: AtomicBool = AtomicBool::new(false);
/// The thread whose crash handler writes (or wrote) the dump, its kernel
/// id (`dump_once`); 0 until a crash, and again after a thaw.
static CRASH_DUMPER: AtomicI32 = AtomicI32::new(0);
/// Set once that thread's dump is written.
static CRASH_DUMP_DONE: AtomicBool = AtomicBool::new(false);

/// V8's `bool v8::TryHandleWebAssemblyTrapPosix(int, siginfo_t*, void*)`,
/// when the process embeds V8 and exports it (Node does): 0 otherwise.
/// Looked up once at install (dlsym is not async-signal-safe), read by the
/// handler.
static V8_WASM_TRAP: AtomicUsize = AtomicUsize::new(0);
const V8_WASM_TRAP_SYMBOL: &std::ffi::CStr =
    c"_ZN2v829TryHandleWebAssemblyTrapPosixEiP9siginfo_tPv";

/// Whether the fault is a WebAssembly out-of-bounds access that V8 turns
/// into an exception the program may catch (its trap handler: guard pages
/// instead of bounds checks, on by default in Node on linux-x64). V8 then
/// moved the context to its landing pad: returning resumes there. No
/// crash, so nothing to dump; the tracers record on. V8's check is made
/// for signal handlers (the embedder's are to call it first) and answers
/// false at once for a fault outside wasm code or a signal sent by kill.
fn v8_handled_wasm_trap(
    signal: libc::c_int,
    info: *mut libc::siginfo_t,
    context: *mut libc::c_void,
) -> bool {
    let f = V8_WASM_TRAP.load(Ordering::Relaxed);
    if f == 0 || (signal != libc::SIGSEGV && signal != libc::SIGBUS) {
        return false;
    }
    // SAFETY: `f` is V8's TryHandleWebAssemblyTrapPosix (looked up by its
    // mangled name), called with the arguments the kernel gave this handler.
    unsafe {
        let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) -> bool =
            std::mem::transmute(f);
        f(signal, info, context)
    }
}

/// Whether a crash signal that is no fault can end this process: one
/// another process sent (`kill`, `docker kill --signal=SIGABRT`) or one
/// the process raised on itself (`raise`, `kill(getpid(), ...)`,
/// `sigqueue`; Python's `os.kill(os.getpid(), ...)`, Node's
/// `process.kill(process.pid, ...)`); true for a fault (si_code above 0,
/// the kernel's). Not for a container's PID 1 with no handler of the
/// program's own for it (`namespace_init::raised_signal_can_end_process`):
/// the kernel drops a signal init does not handle whoever sent it, the
/// process itself included, and would drop the re-raise. Dumped and
/// frozen for a death that never came, every tracer refused every span
/// from then on. Left alone, the process goes on as it would have
/// without us. A fault always ends it: forced, the kernel's own signal
/// ends even init once the disposition is the default. A SIGABRT the
/// process raised on itself may be abort()'s and is dumped. Up to glibc
/// 2.40 abort() unblocks SIGABRT, raises it, then puts the default back
/// and raises again; for a PID 1 that one is dropped too, and glibc falls
/// back to its ABORT_INSTRUCTION (`hlt` on x86-64, a SIGSEGV from the
/// kernel; `brk #1000` on arm64, a SIGTRAP, none of ours;
/// `__builtin_trap()` on ports without their own; musl's `a_crash`) or,
/// should that return, `_exit(127)`, which no handler sees. From 2.41
/// (BZ 26275) abort() raises SIGABRT without unblocking it, then blocks
/// every signal, puts the default back, raises again and unblocks
/// SIGABRT alone: the SIGABRT at the default ends the process without
/// asking this handler again (a PID 1's is dropped, and the trap ends
/// it). Either way the dump is the first raise's. A program that blocks
/// SIGABRT when it calls abort() under glibc 2.41 leaves that first
/// raise pending until the default is in place: no handler runs, nothing
/// is dumped, and no handler can change that (with the flight recorder
/// the spans are in its file all the same). Async-signal-safe.
fn signal_not_a_fault_can_end_process(signal: libc::c_int, info: *mut libc::siginfo_t) -> bool {
    if info.is_null() {
        return true;
    }
    // SAFETY: the kernel's siginfo for this signal; si_code is set for
    // every signal.
    if unsafe { (*info).si_code } > 0 {
        return true;
    }
    if signal == libc::SIGABRT && raised_by_this_process(info) {
        // abort()'s own raise, which cannot be told from a program's
        // raise(SIGABRT): dumped, as abort() may end the process by
        // something no handler sees. After its two raises glibc executes
        // its ABORT_INSTRUCTION (a SIGSEGV on x86-64, a SIGTRAP on arm64),
        // then _exit(127): left alone, that abort() ended a PID 1
        // with nothing dumped, every span it held lost uncounted. A
        // PID 1 that raises SIGABRT on itself meant to die; it lives on
        // frozen, as before.
        return true;
    }
    super::namespace_init::raised_signal_can_end_process(|| {
        // SAFETY: PREVIOUS was written before this handler was installed
        // and is never written again.
        let previous = unsafe { (*std::ptr::addr_of!(PREVIOUS))[signal as usize] };
        previous.is_some_and(|old| old.sa_sigaction != libc::SIG_DFL)
    })
}

/// Whether the process sent `info`'s signal to itself (raise, kill or
/// sigqueue of its own pid). Async-signal-safe.
fn raised_by_this_process(info: *mut libc::siginfo_t) -> bool {
    // SAFETY: the kernel's siginfo; si_pid is set for SI_USER, SI_TKILL
    // and SI_QUEUE, the only codes at or below 0 a crash signal comes with
    // from a process (the caller took si_code > 0 already).
    let sender = unsafe { (*info).si_pid() };
    // SAFETY: getpid has no preconditions.
    sender == unsafe { libc::getpid() }
}

/// Whether another of this process's threads, or this one, sent `info`'s
/// signal (kill, tgkill, raise or sigqueue of its own pid): Go's runtime
/// relays SIGQUIT so as it dies (`signals::pass_on_during_crash`).
/// Async-signal-safe.
pub(super) fn sent_by_this_process(info: *mut libc::siginfo_t) -> bool {
    if info.is_null() {
        return false;
    }
    // SAFETY: the kernel's siginfo; si_code is set for every signal.
    let code = unsafe { (*info).si_code };
    matches!(code, libc::SI_USER | libc::SI_TKILL | libc::SI_QUEUE) && raised_by_this_process(info)
}

/// The crash handler's dump of every tracer for `signal`, which arrived on
/// thread `crashed` (this one, or the one whose handler handed the dump
/// to the watchdog: `dumped_by_watchdog`). Async-signal-safe.
fn dump_for_crash(signal: libc::c_int, crashed: libc::pid_t) {
    crate::registry::for_each(|p| dump_tracer_for_crash(p, signal, crashed));
}

/// `dump_for_crash` for one tracer. Async-signal-safe.
fn dump_tracer_for_crash(p: &Pipeline, signal: libc::c_int, crashed: libc::pid_t) {
    // Held first: a dump found on disk below is the one the process dies
    // with, not taken back by the watchdog's thaw meanwhile.
    if let Some(crash) = p.crash_file.as_ref() {
        let budget = p.config.signal_flush_timeout.as_nanos() as u64;
        crash.hold_for_crash(crate::span::clock::monotonic_ns().saturating_add(budget));
    }
    if dumped(p) {
        return; // nothing new since (`dump_now`); nothing to wait for
    }
    // Stop the exporter taking more spans and let the batch it holds
    // finish, within the signal budget, so that dumped spans are not
    // also sent: a batch still unanswered at the end of it is dumped
    // too (at-least-once, as documented). No wait when the crashing
    // thread is the exporter: it will not finish anything.
    p.freeze_recording();
    p.signal.frozen.store(true, Ordering::SeqCst);
    if p.exporter_tid.load(Ordering::Relaxed) != crashed {
        let now = crate::span::clock::monotonic_ns;
        let until = now().saturating_add(p.config.signal_flush_timeout.as_nanos() as u64);
        while p.signal.busy.load(Ordering::SeqCst) && now() < until {
            pause_100us();
        }
    }
    dump_now(p, signal);
    p.mark_flight_signal(signal);
}

/// Async-signal-safe: nanosleep.
fn pause_100us() {
    let pause = libc::timespec {
        tv_sec: 0,
        tv_nsec: 100_000,
    };
    // SAFETY: nanosleep is async-signal-safe.
    unsafe { libc::nanosleep(&pause, std::ptr::null_mut()) };
}

/// What the crash handler needs of the stack it runs on, beside the
/// kernel's signal frame (see `host_alt_stack_kept`).
const HANDLER_STACK: usize = 12 * 1024;

/// Whether the crash handler runs on an alternate stack with less than
/// `HANDLER_STACK` left below it. A thread's is checked at its first span
/// (`ensure_alt_stack`), but a runtime may swap in a smaller one later
/// (Go's or a JIT's per-thread stacks, sigaltstack called again): the
/// dump overflowed it, the kernel killed the process at its end with
/// SIGSEGV blocked, nothing dumped. Checked here, at the signal, the one
/// time the answer matters: a stack in use cannot be swapped (EPERM),
/// so the dump goes to a thread with room (`dumped_by_watchdog`).
/// Async-signal-safe: one sigaltstack(2) that changes nothing.
#[inline(never)]
fn short_of_stack() -> bool {
    // SAFETY: sigaltstack with no new stack only reads this thread's.
    let mut now: libc::stack_t = unsafe { std::mem::zeroed() };
    if unsafe { libc::sigaltstack(std::ptr::null(), &mut now) } != 0
        || now.ss_flags & libc::SS_ONSTACK == 0
    {
        return false; // on the thread's own stack, as large as the thread's
    }
    let here = 0u8;
    let left = (std::ptr::addr_of!(here) as usize).saturating_sub(now.ss_sp as usize);
    left < HANDLER_STACK
}

/// The watchdog thread that takes a crash handler's dump
/// (`dumped_by_watchdog`): its thread id and the process it runs in (a
/// forked child has none until its first tracer starts its own), set by
/// that thread as it starts. Its pipe is `pipe::PIPE_WRITE`.
static WATCHDOG_TID: AtomicI32 = AtomicI32::new(0);
static WATCHDOG_HOME: AtomicI32 = AtomicI32::new(0);
/// The dump asked of it: the signal (0: none) and the thread it arrived
/// on; `HANDED_DUMP_DONE` once it is written.
static HANDED_SIGNAL: AtomicI32 = AtomicI32::new(0);
static HANDED_THREAD: AtomicI32 = AtomicI32::new(0);
static HANDED_DUMP_DONE: AtomicBool = AtomicBool::new(false);
/// Set by the watchdog once it thawed the tracers for a `THAW_REQUEST`.
static THAW_DONE: AtomicBool = AtomicBool::new(false);

/// The byte on the watchdog's pipe that asks for a crash dump (a signal's
/// is its number, never 0).
pub(super) const DUMP_REQUEST: u8 = 0;
/// The byte that asks it to thaw the tracers a crash signal froze, the
/// process having lived through it (no signal's number).
pub(super) const THAW_REQUEST: u8 = 0xff;

/// Called by the watchdog thread as it starts: it takes the dumps of
/// crash handlers short of stack from now on.
pub(super) fn watchdog_takes_dumps() {
    // SAFETY: getpid and gettid have no preconditions.
    let (home, tid) = unsafe { (libc::getpid(), libc::gettid()) };
    WATCHDOG_TID.store(tid, Ordering::Relaxed);
    // Release pairs with the Acquire in `dumped_by_watchdog`.
    WATCHDOG_HOME.store(home, Ordering::Release);
}

/// The watchdog thread's id (0: none started in this process yet).
pub(super) fn watchdog_thread() -> libc::pid_t {
    WATCHDOG_TID.load(Ordering::Relaxed)
}

/// Called by the watchdog thread as it stands down (no tracer left,
/// `signals::stand_down`): a crash handler short of stack dumps on the
/// stack it has (there is nothing to dump), rather than wait for a
/// thread that is gone.
pub(super) fn watchdog_stands_down() {
    WATCHDOG_HOME.store(0, Ordering::Release);
    WATCHDOG_TID.store(0, Ordering::Relaxed);
}

/// On the watchdog thread, for a `DUMP_REQUEST`: the dump a crash
/// handler asked for, then the word that it is on disk.
pub(super) fn take_handed_dump() {
    let signal = HANDED_SIGNAL.load(Ordering::Acquire);
    if signal == 0 {
        return;
    }
    dump_for_crash(signal, HANDED_THREAD.load(Ordering::Relaxed));
    // Release pairs with the crash handler's Acquire.
    HANDED_DUMP_DONE.store(true, Ordering::Release);
}

/// The longest signal flush timeout of the live tracers, in nanoseconds.
/// Async-signal-safe.
fn longest_signal_budget_ns() -> u64 {
    let mut budget = 0u64;
    crate::registry::for_each(|p| {
        budget = budget.max(p.config.signal_flush_timeout.as_nanos() as u64);
    });
    budget
}

/// From a crash handler short of stack: has the watchdog thread, on its
/// own stack, write the dump, and waits for it (the longest signal budget
/// and a second more, at most; the watchdog may be flushing for a
/// termination signal first). False when there is no watchdog to ask in
/// this process, or it is this very thread, or it did not finish: the
/// handler then dumps on the stack it has, as it did before.
/// Async-signal-safe: atomics, write(2), nanosleep.
fn dumped_by_watchdog(signal: libc::c_int, this_thread: libc::pid_t) -> bool {
    // SAFETY: getpid has no preconditions.
    let here = unsafe { libc::getpid() };
    let watchdog = WATCHDOG_TID.load(Ordering::Relaxed);
    // A watchdog started in this process, or starting: a forked child's
    // is started by its first tracer use, and a crash signal right after
    // came before the thread ran. The handler then dumped on the small
    // stack it found itself short of, overflowed it and the child died
    // with nothing dumped (fork_child_signals' "small stack" case, about
    // 1 run in 6 in a debug build). The request waits in the pipe, made
    // before the thread, which reads it once it runs.
    let running = WATCHDOG_HOME.load(Ordering::Acquire) == here;
    if !(running || super::pipe::pipe_is_this_process()) || (running && watchdog == this_thread) {
        return false;
    }
    HANDED_THREAD.store(this_thread, Ordering::Relaxed);
    HANDED_SIGNAL.store(signal, Ordering::Release);
    if !super::pipe::ask_watchdog(DUMP_REQUEST) {
        return false;
    }
    let until = crate::span::clock::monotonic_ns()
        .saturating_add(longest_signal_budget_ns())
        .saturating_add(1_000_000_000);
    while !HANDED_DUMP_DONE.load(Ordering::Acquire) {
        if crate::span::clock::monotonic_ns() >= until {
            return false;
        }
        pause_100us();
    }
    true
}

/// How many crash handlers are running now, on any thread
/// (`crash_under_way`).
static CRASH_HANDLERS_RUNNING: AtomicU32 = AtomicU32::new(0);

/// Counts a crash handler in `CRASH_HANDLERS_RUNNING` for as long as it
/// runs (one the program's handler never returns from, as Go's runtime
/// does with a fault in C code, stays counted until the process dies; so
/// does one a program's handler leaves by siglongjmp, for good: only a
/// SIGQUIT the process sends itself is taken for part of a crash).
struct CrashHandlerRunning;

impl CrashHandlerRunning {
    fn enter() -> Self {
        CRASH_HANDLERS_RUNNING.fetch_add(1, Ordering::AcqRel);
        CrashHandlerRunning
    }
}

impl Drop for CrashHandlerRunning {
    fn drop(&mut self) {
        CRASH_HANDLERS_RUNNING.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Whether a crash is under way: a crash handler is running on some
/// thread, or its dump is written (not taken back by a thaw). A SIGQUIT
/// the process sends itself then is part of the crash: Go's runtime
/// relays one to each of its threads as it dies of a fault in C code,
/// and ends the process once each has had it
/// (`signals::pass_on_during_crash`). Async-signal-safe.
pub(super) fn crash_under_way() -> bool {
    CRASH_HANDLERS_RUNNING.load(Ordering::Acquire) != 0 || CRASH_DUMPER.load(Ordering::Acquire) != 0
}

extern "C" fn on_crash(
    signal: libc::c_int,
    info: *mut libc::siginfo_t,
    context: *mut libc::c_void,
) {
    if v8_handled_wasm_trap(signal, info, context) {
        return;
    }
    if !signal_not_a_fault_can_end_process(signal, info) {
        return;
    }
    let _running = CrashHandlerRunning::enter();
    if is_fault(info)
        && let Some(program) = program_handler(signal)
    {
        if !program_handler_ended_fault(signal, info, context, &program) {
            dump_once(signal);
        }
        return;
    }
    dump_once(signal);
    // SAFETY: PREVIOUS was written before this handler was installed and is
    // never written again; sigaction and raise are async-signal-safe.
    unsafe {
        if let Some(old) = program_handler(signal) {
            libc::sigaction(signal, &old, std::ptr::null_mut());
            call_program_handler(&old, signal, info, context);
            if lives_on_after_return(signal, info, context) {
                take_back_after_return(signal, &old);
            }
            return;
        }
        let mut default: libc::sigaction = std::mem::zeroed();
        default.sa_sigaction = libc::SIG_DFL;
        libc::sigaction(signal, &default, std::ptr::null_mut());
        // Pending until the handler returns (the signal is blocked in its
        // own handler): then the default action ends the process with it. A
        // hardware fault would also recur on return; an explicit raise would
        // not, hence the raise.
        libc::raise(signal);
    }
}

/// Dumps every tracer for `signal` on this thread, or on the watchdog's
/// when this one is short of stack; once until a thaw (a crash inside the
/// dump itself must not recurse into another dump). A crash signal on
/// another thread while that dump is written waits for it to end
/// (`await_crash_dump`): it went on to the program's handler or the
/// default at once, and ended the process in the middle of the dump. Go's
/// runtime ends a fault in cgo C code so: its crashing thread and each
/// thread its SIGQUIT reached raise SIGABRT, often two at the same
/// moment, and the second's put the default back and raised it again
/// (seen: the dump left empty or unpublished, the open span lost, in 3 of
/// 16 runs). Async-signal-safe.
fn dump_once(signal: libc::c_int) {
    // SAFETY: gettid has no preconditions and is async-signal-safe.
    let this_thread = unsafe { libc::gettid() };
    match CRASH_DUMPER.compare_exchange(0, this_thread, Ordering::AcqRel, Ordering::Acquire) {
        Ok(_) => {
            if !(short_of_stack() && dumped_by_watchdog(signal, this_thread)) {
                dump_for_crash(signal, this_thread);
            }
            // Release pairs with the Acquire in `await_crash_dump`.
            CRASH_DUMP_DONE.store(true, Ordering::Release);
        }
        // A crash in this thread's own dump: it will not end.
        Err(dumper) if dumper == this_thread => {}
        Err(_) => await_crash_dump(),
    }
}

/// Waits for the dump another thread's crash handler is writing
/// (`dump_once`) to be written: as long as that thread may take, at most
/// (the watchdog it may hand the dump to, `dumped_by_watchdog`, then its
/// own wait for the exporter and for a dump under way elsewhere, each
/// within the longest signal budget), and a second more.
/// Async-signal-safe: atomics, nanosleep.
fn await_crash_dump() {
    let until = crate::span::clock::monotonic_ns()
        .saturating_add(longest_signal_budget_ns().saturating_mul(3))
        .saturating_add(2_000_000_000);
    while !CRASH_DUMP_DONE.load(Ordering::Acquire) && crate::span::clock::monotonic_ns() < until {
        pause_100us();
    }
}

/// Whether the kernel raised the signal for a fault of the interrupted
/// instruction (si_code above 0), not a process by kill, raise or
/// sigqueue. Async-signal-safe.
fn is_fault(info: *mut libc::siginfo_t) -> bool {
    // SAFETY: the kernel's siginfo for this signal; si_code is set for
    // every signal.
    !info.is_null() && unsafe { (*info).si_code } > 0
}

/// The program's own handler for `signal` that ours replaced: not the
/// default, not ignored. Async-signal-safe.
fn program_handler(signal: libc::c_int) -> Option<libc::sigaction> {
    // SAFETY: PREVIOUS was written before this handler was installed and
    // is never written again.
    let previous = unsafe { (*std::ptr::addr_of!(PREVIOUS))[signal as usize] };
    previous.filter(|old| old.sa_sigaction != libc::SIG_DFL && old.sa_sigaction != libc::SIG_IGN)
}

/// For a fault when the program has a handler of its own for it: that
/// handler first, as the kernel would have called it without us, and
/// whether the process goes on past the fault. A garbage collector, a JVM,
/// Mono or a userfault-style allocator takes such faults in its normal
/// work: it repairs the page (mprotect, mmap) or moves the program
/// counter on (a JIT's trap: a null check, a safepoint) and returns. The
/// crash handler dumped and froze every tracer before calling it: the
/// process went on with every later span refused, and the next start sent
/// the dumped spans again (the dump of a fault is never taken back). Now
/// nothing is dumped unless the handler leaves the fault to recur. Put
/// the default back, or raised the signal again at the default (as a
/// handler does with a fault that is not its own): dumped at once, before
/// the fault ends the process. The program counter moved on, or the
/// access allowed now: repaired. Neither to be seen (a SIGBUS past a
/// file's end that the handler ended by growing the file, a page mapped
/// anew with the same permission): it was judged unrepaired, and the
/// program went on with every tracer frozen. Now the instruction is let
/// run again, and only the same fault met straight back
/// (`handler_outcome::met_again_after_run_again`) is dumped: then the
/// process dies of the default the handler put back, or loops on the
/// fault with its handler as it would without us. One that ends the
/// process itself without returning (`_exit`) leaves no dump; one that
/// calls abort() is dumped by the SIGABRT's handler. A handler installed
/// after ours gets the fault first anyway; this is the same order.
/// Async-signal-safe.
fn program_handler_ended_fault(
    signal: libc::c_int,
    info: *mut libc::siginfo_t,
    context: *mut libc::c_void,
    program: &libc::sigaction,
) -> bool {
    use super::handler_outcome as outcome;
    let pc = outcome::resume_pc(context);
    let arrived = outcome::FaultAt::of(signal, info, context);
    // SAFETY: sets this signal's disposition as the kernel would have
    // (SA_RESETHAND: back to the default as the handler is called), then
    // calls the program's handler with the kernel's arguments.
    unsafe {
        if program.sa_flags & libc::SA_RESETHAND != 0 {
            let mut default: libc::sigaction = std::mem::zeroed();
            default.sa_sigaction = libc::SIG_DFL;
            libc::sigaction(signal, &default, std::ptr::null_mut());
        }
        call_program_handler(program, signal, info, context);
    }
    if raised_again_to_end(signal) || at_default(signal) {
        outcome::forget_left_to_run_again();
        return false;
    }
    if (pc != 0 && outcome::resume_pc(context) != pc)
        || (signal == libc::SIGSEGV && outcome::access_allowed_now(info, context))
    {
        outcome::forget_left_to_run_again();
        return true;
    }
    !outcome::met_again_after_run_again(&arrived, &outcome::FaultAt::of(signal, info, context))
}

/// Calls the program's own handler for `signal` as the kernel would have:
/// with the signals it blocks while it runs (its sa_mask, and the signal
/// unless SA_NODEFER) blocked on this thread, the mask from before put
/// back if it returns. Ours blocks none: Go's runtime, whose handler
/// blocks every signal, relays SIGQUIT to its other threads as it dies of
/// a fault in C code, and the relay came back to the crashing thread
/// itself, inside its own handler, where it waited out its 10 s.
/// Async-signal-safe: pthread_sigmask(3).
///
/// # Safety
/// `program` is the program's handler for `signal` (not SIG_DFL or
/// SIG_IGN); `info`/`context` what the kernel gave ours.
unsafe fn call_program_handler(
    program: &libc::sigaction,
    signal: libc::c_int,
    info: *mut libc::siginfo_t,
    context: *mut libc::c_void,
) {
    // SAFETY: sets this thread's mask from a copy of the program's own,
    // then calls its handler as the caller promises.
    unsafe {
        let mut mask = program.sa_mask;
        if program.sa_flags & libc::SA_NODEFER == 0 {
            libc::sigaddset(&mut mask, signal);
        }
        let mut before: libc::sigset_t = std::mem::zeroed();
        libc::pthread_sigmask(libc::SIG_BLOCK, &mask, &mut before);
        let siginfo = program.sa_flags & libc::SA_SIGINFO != 0;
        super::call_handler(program.sa_sigaction, siginfo, signal, info, context);
        libc::pthread_sigmask(libc::SIG_SETMASK, &before, std::ptr::null_mut());
    }
}

/// Whether `signal`'s disposition is the default now. Async-signal-safe.
fn at_default(signal: libc::c_int) -> bool {
    // SAFETY: sigaction only fills in what it is given.
    unsafe {
        let mut now: libc::sigaction = std::mem::zeroed();
        libc::sigaction(signal, std::ptr::null(), &mut now) == 0
            && now.sa_sigaction == libc::SIG_DFL
    }
}

/// Whether the process lives on once the program's own handler for
/// `signal` returned: a signal that is no fault (sent by another process,
/// or raised by this one) is over then. Not a fault, which the faulting
/// instruction meets again on return (and may end the process at the
/// default the program's handler put back), nor abort()'s SIGABRT
/// (`handler_outcome::raised_by_abort`): abort() goes on to end the
/// process by means no handler may see (glibc 2.41 blocks every signal,
/// puts the default back and raises again; arm64's `brk` is a SIGTRAP;
/// `_exit(127)`). A SIGABRT the program raised on itself to log something
/// is over, as any raised signal: it stayed frozen for good, every later
/// span refused. Nor one the program's handler raised again at the
/// default to die of (`signal(sig, SIG_DFL); raise(sig)`): pending until
/// this handler returns, it then ends the process, which must leave its
/// dump. Async-signal-safe.
fn lives_on_after_return(
    signal: libc::c_int,
    info: *mut libc::siginfo_t,
    context: *mut libc::c_void,
) -> bool {
    if info.is_null() || is_fault(info) {
        return false;
    }
    if signal == libc::SIGABRT
        && raised_by_this_process(info)
        && super::handler_outcome::raised_by_abort(context)
    {
        return false;
    }
    !raised_again_to_end(signal)
}

/// Whether `signal` is pending at its default action, which ends the
/// process once this handler returns (not a PID 1's: the kernel drops
/// it). Async-signal-safe: sigpending(2), sigaction(2).
fn raised_again_to_end(signal: libc::c_int) -> bool {
    // SAFETY: sigpending and sigaction only fill in what they are given.
    let (pending, now) = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        let mut now: libc::sigaction = std::mem::zeroed();
        if libc::sigpending(&mut set) != 0
            || libc::sigaction(signal, std::ptr::null(), &mut now) != 0
        {
            return false;
        }
        (libc::sigismember(&set, signal) == 1, now)
    };
    pending
        && now.sa_sigaction == libc::SIG_DFL
        && super::namespace_init::raised_signal_can_end_process(|| false)
}

/// After the program's own handler returned from a signal the process
/// lives through (`lives_on_after_return`: `docker kill --signal=SIGSEGV`
/// to a program that logs it, a PID 1's included): our handler goes back
/// in, unless the program's handler changed the disposition itself, and
/// the watchdog thread thaws the tracers and takes the dump back
/// (`thaw_after_returned_handler`; a thaw takes a lock, which a signal
/// handler must not). The tracers stayed frozen for good, every later
/// span refused, and the next crash went to the program's handler alone,
/// nothing dumped. Without a watchdog to ask they stay frozen, dumped.
/// Async-signal-safe: sigaction(2), write(2).
fn take_back_after_return(signal: libc::c_int, program_handler: &libc::sigaction) {
    // SAFETY: queries and sets this signal's disposition.
    unsafe {
        let mut now: libc::sigaction = std::mem::zeroed();
        if libc::sigaction(signal, std::ptr::null(), &mut now) == 0
            && now.sa_sigaction == program_handler.sa_sigaction
        {
            libc::sigaction(signal, &our_action(), std::ptr::null_mut());
        }
    }
    THAW_DONE.store(false, Ordering::Relaxed);
    if !super::pipe::ask_watchdog(THAW_REQUEST) {
        return;
    }
    // SAFETY: gettid has no preconditions.
    if WATCHDOG_TID.load(Ordering::Relaxed) == unsafe { libc::gettid() } {
        return; // it thaws once this returns
    }
    // Waited for (a second at most: the watchdog may be flushing for a
    // termination signal, or not be running yet, a signal right after the
    // first tracer started), so that the program's next span, once its
    // raise() returns, is recorded.
    let until = crate::span::clock::monotonic_ns().saturating_add(1_000_000_000);
    while !THAW_DONE.load(Ordering::Acquire) && crate::span::clock::monotonic_ns() < until {
        pause_100us();
    }
}

/// On the watchdog thread, for a `THAW_REQUEST`: the crash handler's
/// freeze undone for a process that lived through the signal. The
/// handler is armed again first: a crash during the thaw finds the dump
/// still on disk (`dumped`) and leaves it there.
pub(super) fn thaw_after_returned_handler() {
    HANDED_DUMP_DONE.store(false, Ordering::Release);
    HANDED_SIGNAL.store(0, Ordering::Relaxed);
    CRASH_DUMP_DONE.store(false, Ordering::Relaxed);
    CRASH_DUMPER.store(0, Ordering::Release);
    crate::registry::for_each(|p| {
        if let Some(crash) = p.crash_file.as_ref() {
            crash.release_from_crash();
        }
        p.thaw();
    });
    // Release pairs with the crash handler's Acquire.
    THAW_DONE.store(true, Ordering::Release);
}

/// The crash handler's disposition: on the alternate stack, with the
/// siginfo that tells a fault from a sent signal. Async-signal-safe.
fn our_action() -> libc::sigaction {
    // SAFETY: an all-zero sigaction is a valid value to fill in.
    let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
    action.sa_sigaction = on_crash as *const () as usize;
    action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
    // SAFETY: sa_mask is ours to initialize.
    unsafe { libc::sigemptyset(&mut action.sa_mask) };
    action
}

/// A thread's alternate signal stack, unmapped when the thread exits.
struct AltStack {
    mem: *mut libc::c_void,
    size: usize,
}

/// The smallest alternate stack of the host's that the crash handler is
/// left to run on. The handler and the kernel's signal frame (3376 bytes
/// with AVX-512's state) took more than 6 KiB of it in a release build,
/// more in a debug one: Rust's standard library gives each of its threads
/// an 8 KiB one (for its stack overflow message), and a dump on it
/// overflowed into its guard page with SIGSEGV blocked, so the kernel
/// killed the process with nothing dumped (a Rust host's SIGSEGV, or a
/// smaller stack's, lost every unexported span). Go's (32 KiB) and
/// CPython faulthandler's (16 KiB and more) are left alone. The kernel's
/// frame is larger on some machines (AMX's state: over 10 KiB), so what the
/// handler needs beside it is added to the frame's size the kernel gives.
fn host_alt_stack_kept() -> usize {
    // SAFETY: getauxval has no preconditions (0 when the kernel says none).
    let frame = unsafe { libc::getauxval(libc::AT_MINSIGSTKSZ) } as usize;
    (frame + HANDLER_STACK).max(16 * 1024)
}

impl AltStack {
    /// Maps and installs one, unless the thread already has one large
    /// enough for the crash handler (`host_alt_stack_kept`: Go and other
    /// runtimes set their own; those are left alone). A smaller one is
    /// replaced while the thread is not on it; its owner's memory stays
    /// its own (the standard library unmaps its own at the thread's end,
    /// after disabling whatever stack is in place then).
    fn install() -> Option<AltStack> {
        // SAFETY: queries, then maps fresh memory and points this thread's
        // alternate stack at it.
        unsafe {
            let mut current: libc::stack_t = std::mem::zeroed();
            if libc::sigaltstack(std::ptr::null(), &mut current) == 0
                && current.ss_flags & libc::SS_DISABLE == 0
                && (current.ss_size >= host_alt_stack_kept()
                    || current.ss_flags & libc::SS_ONSTACK != 0)
            {
                return None;
            }
            let size = 64 * 1024;
            let mem = libc::mmap(
                std::ptr::null_mut(),
                size,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            );
            if mem == libc::MAP_FAILED {
                return None;
            }
            let stack = libc::stack_t {
                ss_sp: mem,
                ss_flags: 0,
                ss_size: size,
            };
            if libc::sigaltstack(&stack, std::ptr::null_mut()) != 0 {
                libc::munmap(mem, size);
                return None;
            }
            Some(AltStack { mem, size })
        }
    }
}

impl Drop for AltStack {
    fn drop(&mut self) {
        // SAFETY: the thread is exiting; it stops using the stack before it
        // is unmapped.
        unsafe {
            let off = libc::stack_t {
                ss_sp: std::ptr::null_mut(),
                ss_flags: libc::SS_DISABLE,
                ss_size: 0,
            };
            libc::sigaltstack(&off, std::ptr::null_mut());
            libc::munmap(self.mem, self.size);
        }
    }
}

thread_local! {
    static ALT_STACK: std::cell::OnceCell<Option<AltStack>> = const { std::cell::OnceCell::new() };
}

/// Gives the calling thread an alternate signal stack, so a stack overflow
/// can still run the crash handler. Called on each thread's first span (its
/// warm-up); afterwards one thread-local check. A smaller one a runtime
/// swaps in later is found at the signal (`short_of_stack`).
#[inline]
pub fn ensure_alt_stack() {
    let _ = ALT_STACK.try_with(|cell| {
        cell.get_or_init(AltStack::install);
    });
}

/// Installs the crash handlers once per process. Only under the lock a
/// fork holds: `signals::ensure_installed` calls it so.
pub(super) fn ensure_installed() {
    if !INSTALLED.swap(true, Ordering::AcqRel) {
        ensure_alt_stack();
        // SAFETY: dlsym with a NUL-terminated name; a null answer is kept as 0.
        let trap = unsafe { libc::dlsym(libc::RTLD_DEFAULT, V8_WASM_TRAP_SYMBOL.as_ptr()) };
        V8_WASM_TRAP.store(trap as usize, Ordering::Relaxed);
        super::handler_outcome::find_abort();
        // SAFETY: PREVIOUS is filled before any handler that reads it exists;
        // the handler is written to be async-signal-safe.
        unsafe {
            let previous = &mut *std::ptr::addr_of_mut!(PREVIOUS);
            for &signal in &CRASH_SIGNALS {
                let mut old: libc::sigaction = std::mem::zeroed();
                if libc::sigaction(signal, std::ptr::null(), &mut old) != 0
                    || old.sa_sigaction == libc::SIG_IGN
                {
                    continue;
                }
                previous[signal as usize] = Some(old);
            }
            for &signal in &CRASH_SIGNALS {
                if previous[signal as usize].is_none() {
                    continue;
                }
                libc::sigaction(signal, &our_action(), std::ptr::null_mut());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::config::TracerConfig;
    use crate::tracer::{Parent, Tracer};

    /// A tracer with a crash dump in a fresh directory named after `test`
    /// (returned), nothing exported before a minute, and one span open.
    fn tracer_with_an_open_span(test: &str) -> (std::path::PathBuf, Tracer) {
        let dir = std::env::temp_dir().join(format!("{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let tracer = Tracer::new(TracerConfig {
            endpoint: None,
            sink_dir: dir.join("spans"),
            spool_dir: dir.join("spool"),
            install_signal_handlers: true,
            signal_flush_timeout: Duration::from_secs(10),
            schedule_delay: Duration::from_secs(60),
            ..TracerConfig::default()
        })
        .expect("tracer");
        let (_open, _) = tracer.begin(b"open", Parent::None, 1).expect("begin");
        (dir, tracer)
    }

    /// A crash (or the watchdog, or a shutdown) dumping a tracer while
    /// another thread is writing its dump: it waits for that dump to be
    /// on disk. It skipped it as done, and a crash then ended the process
    /// with the dump half written.
    #[test]
    fn a_dump_waits_for_one_in_progress_elsewhere() {
        let (dir, tracer) = tracer_with_an_open_span("sg-dump-beside");
        let p = tracer.pipeline();
        let crash = p.crash_file.as_ref().expect("a crash dump");
        assert!(crash.begin_dump(), "this thread writes a dump");
        let beside = {
            let p = std::sync::Arc::clone(p);
            std::thread::spawn(move || {
                dump_now(&p, libc::SIGSEGV);
                Instant::now()
            })
        };
        std::thread::sleep(Duration::from_millis(300));
        crash.dump_slots(&p.slab, &p.pool, libc::SIGTERM);
        let ended = Instant::now();
        crash.end_dump();
        let returned = beside.join().expect("beside");
        assert!(
            returned >= ended,
            "returned {:?} before the dump ended",
            ended - returned
        );
        assert!(crash.is_on_disk());
        crash.unpublish();
        drop(tracer);
        std::fs::remove_dir_all(&dir).ok();
    }

    /// A crash signal while the termination watchdog's dump is on disk,
    /// then the watchdog's thaw (the host's handler it delivered the signal
    /// to did not return within its second: Go's, for the SIGQUIT its
    /// runtime relays as it crashes): the dump stays on disk, for the
    /// process the crash is ending. The crash handler found the dump
    /// written and went on to end the process with it, and the thaw took
    /// it back meanwhile: the process died with its dump emptied.
    #[test]
    fn a_thaw_leaves_the_dump_a_crash_ends_the_process_with() {
        let (dir, tracer) = tracer_with_an_open_span("sg-crash-keeps");
        let p = tracer.pipeline();
        // SAFETY: gettid has no preconditions.
        let this_thread = unsafe { libc::gettid() };
        let deadline = Instant::now() + Duration::from_secs(10);
        freeze_and_dump(p, libc::SIGQUIT, deadline, this_thread);
        dump_tracer_for_crash(p, libc::SIGABRT, this_thread);
        p.thaw();
        let dumps: Vec<u64> = std::fs::read_dir(dir.join("spool"))
            .expect("spool")
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".sgdump"))
            .filter_map(|e| e.metadata().ok().map(|m| m.len()))
            .collect();
        let header = std::mem::size_of::<DumpHeader>() as u64;
        assert!(
            dumps.len() == 1 && dumps[0] > header,
            "the dump on disk: {dumps:?} bytes"
        );
        assert_eq!(p.lifecycle(), crate::pipeline::LIFECYCLE_FROZEN);
        // The process lived on after all (the crash handler's own thaw).
        p.crash_file
            .as_ref()
            .expect("a crash dump")
            .release_from_crash();
        p.thaw();
        assert_eq!(p.lifecycle(), crate::pipeline::LIFECYCLE_RUNNING);
        drop(tracer);
        std::fs::remove_dir_all(&dir).ok();
    }

    /// A crash signal froze a tracer already shut down, and the process
    /// lived through it (the program's own handler returned: the crash
    /// handler has the watchdog thaw): it stays shut down. The crash's
    /// freeze kept nothing to go back to, and the thaw made it running,
    /// with no exporter to take its spans.
    #[test]
    fn a_thaw_after_a_crash_signal_puts_back_what_was() {
        let dir = std::env::temp_dir().join(format!("sg-crash-thaw-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let tracer = Tracer::new(TracerConfig {
            endpoint: None,
            sink_dir: dir.join("spans"),
            spool_dir: dir.join("spool"),
            ..TracerConfig::default()
        })
        .expect("tracer");
        let p = std::sync::Arc::clone(tracer.pipeline());
        p.freeze_recording();
        p.thaw();
        assert_eq!(p.lifecycle(), crate::pipeline::LIFECYCLE_RUNNING);
        tracer.shutdown(Duration::from_secs(10)).expect("shutdown");
        p.freeze_recording();
        p.thaw();
        assert_eq!(p.lifecycle(), crate::pipeline::LIFECYCLE_SHUT_DOWN);
        drop(tracer);
        std::fs::remove_dir_all(&dir).ok();
    }

    /// A termination signal froze the tracer and the process lived on (the
    /// host's handler returned): the thaw wakes the exporter, idle while
    /// frozen, so a flush right after it (a graceful stop's) is answered at
    /// once. The exporter idled until the stop alone, and such a flush
    /// waited for the schedule delay (Go's signal.NotifyContext beside the
    /// watchdog: Close took 5 s, one time in four).
    #[test]
    fn a_thaw_wakes_the_exporter() {
        let dir = std::env::temp_dir().join(format!("sg-thaw-wakes-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let tracer = Tracer::new(TracerConfig {
            endpoint: None,
            sink_dir: dir.join("spans"),
            spool_dir: dir.join("spool"),
            install_signal_handlers: true,
            schedule_delay: Duration::from_secs(60),
            ..TracerConfig::default()
        })
        .expect("tracer");
        let p = tracer.pipeline();
        let end = |name: &[u8]| {
            let (s, _) = tracer.begin(name, Parent::None, 1).expect("begin");
            tracer.end(s, 0).expect("end");
        };
        end(b"before");
        // SAFETY: gettid has no preconditions.
        let this_thread = unsafe { libc::gettid() };
        let deadline = Instant::now() + Duration::from_secs(5);
        freeze_and_dump(p, libc::SIGTERM, deadline, this_thread);
        // A flush while frozen finds the exporter idle: it is asleep now.
        let _ = p.signal.request_flush_and_wait(Duration::from_millis(200));
        p.thaw();
        end(b"after");
        let started = Instant::now();
        // Half the schedule delay: a loaded machine's margin, and still a
        // flush that did not wait for the delay.
        let outcome = tracer.flush(Duration::from_secs(30)).expect("flush");
        assert_eq!(
            outcome,
            crate::pipeline::FlushOutcome::Delivered,
            "after {:?}",
            started.elapsed()
        );
        drop(tracer);
        std::fs::remove_dir_all(&dir).ok();
    }

    /// A flush while a signal's flush holds the tracer frozen, given less
    /// time than the freeze lasts (Go's `Flush(0)` as the program's own
    /// handler wakes): it times out, the spans go out after the thaw. It
    /// answered "shut down", while the same tracer's next calls succeeded.
    /// One given the time waits for the thaw and delivers.
    #[test]
    fn a_flush_while_frozen_times_out_rather_than_says_shut_down() {
        let dir = std::env::temp_dir().join(format!("sg-flush-frozen-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let tracer = Tracer::new(TracerConfig {
            endpoint: None,
            sink_dir: dir.join("spans"),
            spool_dir: dir.join("spool"),
            // The span stays queued: the flush has one to wait for.
            schedule_delay: Duration::from_secs(60),
            ..TracerConfig::default()
        })
        .expect("tracer");
        let (s, _) = tracer.begin(b"before", Parent::None, 1).expect("begin");
        tracer.end(s, 0).expect("end");
        let p = std::sync::Arc::clone(tracer.pipeline());
        // The thawer: another thread, as the watchdog's is.
        let (tid_tx, tid_rx) = std::sync::mpsc::channel();
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        let thawer = {
            let p = std::sync::Arc::clone(&p);
            std::thread::spawn(move || {
                // SAFETY: gettid has no preconditions.
                tid_tx.send(unsafe { libc::gettid() }).expect("tid");
                go_rx.recv().expect("go");
                std::thread::sleep(Duration::from_millis(200));
                p.thaw();
            })
        };
        assert!(p.try_freeze_recording(tid_rx.recv().expect("tid")));
        assert_eq!(
            tracer.flush(Duration::ZERO),
            Ok(crate::pipeline::FlushOutcome::TimedOut),
            "a flush given no time while frozen"
        );
        go_tx.send(()).expect("go");
        // 30 s: the thaw comes 200 ms after the go; the rest is a loaded
        // machine's margin, not a measure.
        assert_eq!(
            tracer.flush(Duration::from_secs(30)),
            Ok(crate::pipeline::FlushOutcome::Delivered),
            "a flush that waited for the thaw"
        );
        thawer.join().expect("thawer");
        drop(tracer);
        std::fs::remove_dir_all(&dir).ok();
    }
}
