//! The signal watchdog. Termination signals (SIGTERM, SIGINT, SIGHUP,
//! SIGQUIT) are turned into a byte on a self-pipe by a handler that does
//! nothing else; a dedicated thread wakes on it, flushes every live tracer
//! within a deadline and dumps what is left (open spans, spans ended during
//! the flush), then restores the disposition that was there before and
//! re-raises, so the process ends (or the host's own handler runs) exactly as
//! it would have without us. A host handler may end the process itself
//! (`_exit`): the dump is already on disk. If it returns and the process
//! lives on, the dump is taken back and the tracers go on. A container's
//! PID 1 whose disposition is the default cannot die of the signal
//! (`signal_can_end_process`): the watchdog only flushes, the tracers
//! recording throughout. Handlers are installed with SA_ONSTACK so that Go
//! hosts, which run signal handlers on alternate stacks, keep working.
//!
//! Crash signals are in `crash.rs`.

use std::cell::{Cell, RefCell};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{
    AtomicBool, AtomicI32, AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering,
};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, SigmaskHow, Signal, sigaction};

use super::pipe::{PIPE_WRITE, ask_watchdog};
use super::shield::{TERMINATION_SIGNALS, asynchronous_signals, spawn_shielded};

/// The dispositions we replaced, indexed by signal number. A fork waits
/// for this lock (`hold_across_fork`): a fork that landed while another
/// thread held it (installing the handlers, or re-raising a signal) gave
/// a child with the handlers half installed and this lock held forever by
/// a thread it does not have; SIGTERM then ended the child unflushed, or
/// its watchdog waited forever to put the host's disposition back and the
/// child never died.
static PREVIOUS: Mutex<Previous> = Mutex::new(Previous {
    actions: Vec::new(),
    installed: false,
});

struct Previous {
    /// By signal number.
    actions: Vec<Option<SigAction>>,
    /// Whether `ensure_installed` ran in this process (or in the parent
    /// it was forked from): a flag under the lock rather than a `Once`,
    /// whose "running" state a child forked during the install kept,
    /// waiting forever at its own first tracer.
    installed: bool,
}

thread_local! {
    /// The lock a fork holds, from the prepare handler (`hold_across_fork`)
    /// to the parent's or the child's (the same thread on both sides),
    /// with the signals blocked meanwhile.
    static HELD_ACROSS_FORK: RefCell<Option<(MutexGuard<'static, Previous>, AsyncSignalsBlocked)>> =
        const { RefCell::new(None) };
    /// Whether this thread holds `PREVIOUS`, or waits for it (outside a
    /// fork): a signal handler of the host that forks on it must not wait
    /// for itself.
    static HOLDING: Cell<bool> = const { Cell::new(false) };
}

/// The asynchronous signals blocked on this thread, for as long as it
/// holds `PREVIOUS` (or waits for it), and put back as they were once it
/// let go: a handler of the host that ran meanwhile on this thread (an
/// application's SIGCHLD or SIGUSR1 handler, one that forks) found the
/// lock held by the thread it interrupted. Its fork's prepare handler then
/// let that be, and the child had the lock held for good: its first
/// tracer waited for it forever; a handler calling into spanguard waited
/// for itself. Blocked, such a signal waits for the lock to be free, and
/// its handler runs as soon as it is. Not the synchronous ones (a fault
/// on this thread, abort): blocked, the kernel kills the process at once,
/// with no crash dump.
struct AsyncSignalsBlocked {
    /// The mask before, to put back (None: it could not be changed).
    before: Option<SigSet>,
}

impl AsyncSignalsBlocked {
    fn now() -> Self {
        let before = asynchronous_signals()
            .thread_swap_mask(SigmaskHow::SIG_BLOCK)
            .ok();
        AsyncSignalsBlocked { before }
    }
}

impl Drop for AsyncSignalsBlocked {
    fn drop(&mut self) {
        if let Some(before) = self.before.take() {
            let _ = before.thread_set_mask();
        }
    }
}

/// `PREVIOUS`, locked, known to this thread's fork handler as held, with
/// the asynchronous signals blocked on this thread until it is let go.
fn lock_previous() -> PreviousGuard {
    let blocked = AsyncSignalsBlocked::now();
    let _ = HOLDING.try_with(|h| h.set(true));
    let guard = PREVIOUS.lock().unwrap_or_else(|p| p.into_inner());
    PreviousGuard {
        guard: std::mem::ManuallyDrop::new(guard),
        _blocked: blocked,
    }
}

struct PreviousGuard {
    guard: std::mem::ManuallyDrop<MutexGuard<'static, Previous>>,
    /// Dropped after `drop` below: the signals wait for the lock to be free.
    _blocked: AsyncSignalsBlocked,
}

impl Drop for PreviousGuard {
    fn drop(&mut self) {
        // SAFETY: dropped once, here; the flag goes down only once the
        // lock is free.
        unsafe { std::mem::ManuallyDrop::drop(&mut self.guard) };
        let _ = HOLDING.try_with(|h| h.set(false));
    }
}

impl std::ops::Deref for PreviousGuard {
    type Target = Previous;
    fn deref(&self) -> &Previous {
        &self.guard
    }
}

impl std::ops::DerefMut for PreviousGuard {
    fn deref_mut(&mut self) -> &mut Previous {
        &mut self.guard
    }
}

/// The fork's prepare handler: waits for an install or a re-raise on
/// another thread to finish and keeps the lock until the fork is done,
/// so the child gets the handlers all in or all out and the lock free.
/// The asynchronous signals stay blocked on this thread as long (see
/// `AsyncSignalsBlocked`): a host's handler that ran between the prepare
/// handler and the parent's found the lock held by the fork it
/// interrupted; one that forked again let go of it in its own parent
/// handler, before the first fork was done, whose child then skipped the
/// child handler and sent its SIGTERM to the parent's watchdog.
/// Not when this thread holds it (a host's crash handler forking in the
/// middle of ours: the other signals are blocked there): the child then
/// finds it held (`detach_after_fork`).
pub fn hold_across_fork() {
    if HOLDING.try_with(|h| h.get()).unwrap_or(true) {
        return;
    }
    let blocked = AsyncSignalsBlocked::now();
    let guard = PREVIOUS.lock().unwrap_or_else(|p| p.into_inner());
    let _ = HELD_ACROSS_FORK.try_with(|held| *held.borrow_mut() = Some((guard, blocked)));
}

/// The fork's parent handler: lets go of what `hold_across_fork` took,
/// the lock first, then the signals.
pub fn release_after_fork_in_parent() {
    let _ = HELD_ACROSS_FORK.try_with(|held| held.borrow_mut().take());
}

/// The thread each termination signal last arrived on, by signal number
/// (0: none yet). The host's handler is delivered there again: the kernel
/// chose that thread, and a runtime may need it to be the one. CPython
/// acts on a signal promptly only when its handler runs on the main
/// thread: run on the watchdog's, Ctrl-C reached a `time.sleep(20)` 20 s
/// later, and a busy loop never.
static RECEIVER: [AtomicI32; 32] = [const { AtomicI32::new(0) }; 32];

/// The host's disposition of each termination signal that ours replaced,
/// as `PREVIOUS` has it, for the handler (which takes no lock): its handler
/// (0: the default, or none), whether it takes a siginfo, and the signals
/// it blocks while it runs (`host_mask_bits`).
static HOST_HANDLER_OF: [AtomicUsize; 32] = [const { AtomicUsize::new(0) }; 32];
static HOST_SIGINFO_OF: [AtomicBool; 32] = [const { AtomicBool::new(false) }; 32];
static HOST_MASK_OF: [AtomicU64; 32] = [const { AtomicU64::new(0) }; 32];

/// Keeps the handler's copy of the host's disposition of `signal` in step
/// with `PREVIOUS` (called wherever that changes).
fn mirror_previous(signal: Signal, old: Option<&SigAction>) {
    let (handler, siginfo) = match old.map(|o| o.handler()) {
        Some(SigHandler::Handler(f)) => (f as usize, false),
        Some(SigHandler::SigAction(f)) => (f as usize, true),
        _ => (0, false),
    };
    let Some(slot) = HOST_HANDLER_OF.get(signal as usize) else {
        return;
    };
    HOST_SIGINFO_OF[signal as usize].store(siginfo, Ordering::Relaxed);
    HOST_MASK_OF[signal as usize].store(
        old.map_or(0, |o| host_mask_bits(signal, o)),
        Ordering::Relaxed,
    );
    // Release pairs with the Acquire in `pass_on_during_crash`.
    slot.store(handler, Ordering::Release);
}

/// For a SIGQUIT this process sent itself while a crash handler runs
/// (`crash::crash_under_way`), that the host has a handler for: that
/// handler, here and now, on this thread, with the signals it asked to
/// block blocked, as the kernel would have called it; true then.
/// It is part of the crash: Go's runtime, dying of a fault in C code at
/// the "crash" traceback level (which the binding sets), relays SIGQUIT
/// to the process, each thread's handler sending the next, and ends the
/// process once every one of its threads has had it. The watchdog took
/// the relay, flushed and dumped, handed it on from its own thread, waited
/// a second for Go's handler (which never returns), then thawed the
/// tracers and took its dump back while the crash went on. A
/// SIGQUIT from another process (`kill -QUIT`, a healthy program's
/// goroutine dump) still goes to the watchdog, as does any signal with no
/// crash under way, and any other termination signal: a program sends
/// itself SIGTERM to stop (Python's `os.kill(os.getpid(), ...)`, Node's
/// `process.kill(process.pid)`), and a crash handler a program's handler
/// left by siglongjmp stays counted as running; such a SIGTERM must still
/// be flushed and dumped. Async-signal-safe: atomics, pthread_sigmask(3).
fn pass_on_during_crash(
    signal: libc::c_int,
    info: *mut libc::siginfo_t,
    context: *mut libc::c_void,
) -> bool {
    let Some(slot) = HOST_HANDLER_OF.get(signal as usize) else {
        return false;
    };
    if signal != libc::SIGQUIT
        || !super::crash::crash_under_way()
        || !super::crash::sent_by_this_process(info)
    {
        return false;
    }
    let handler = slot.load(Ordering::Acquire);
    if handler == 0 {
        return false;
    }
    let bits = HOST_MASK_OF[signal as usize].load(Ordering::Relaxed);
    let siginfo = HOST_SIGINFO_OF[signal as usize].load(Ordering::Relaxed);
    // SAFETY: this thread's mask (put back by the sigreturn after ours);
    // `handler` is the host's, of the kind `siginfo` says, given the
    // kernel's arguments.
    unsafe {
        libc::pthread_sigmask(libc::SIG_BLOCK, &sigset_of_bits(bits), std::ptr::null_mut());
        super::call_handler(handler, siginfo, signal, info, context);
    }
    true
}

/// The set of signals whose bits `bits` has (signal n: bit n - 1).
/// Async-signal-safe: sigemptyset, sigaddset.
fn sigset_of_bits(bits: u64) -> libc::sigset_t {
    // SAFETY: a set of our own, zeroed then emptied before use.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for n in 1..=64 {
            if bits & (1u64 << (n - 1)) != 0 {
                libc::sigaddset(&mut set, n);
            }
        }
        set
    }
}

extern "C" fn on_termination_signal(
    signal: libc::c_int,
    info: *mut libc::siginfo_t,
    context: *mut libc::c_void,
) {
    if pass_on_during_crash(signal, info, context) {
        return;
    }
    // Async-signal-safe: gettid(2) and one write(2) of one byte (with no
    // watchdog, sigaction(2) and kill(2)), errno preserved.
    // SAFETY: __errno_location is this thread's errno; write on a raw fd.
    unsafe {
        let saved = *libc::__errno_location();
        if let Some(receiver) = RECEIVER.get(signal as usize) {
            receiver.store(libc::gettid(), Ordering::Relaxed);
        }
        // No watchdog: it stood down (`stand_down`) between this signal's
        // arrival and the read of the pipe, and put the host's disposition
        // back. Sent again, the signal goes to that.
        if !ask_watchdog(signal as u8)
            && let Ok(sig) = Signal::try_from(signal)
            && !ours_installed(sig)
        {
            libc::kill(libc::getpid(), signal);
        }
        *libc::__errno_location() = saved;
    }
}

/// Makes the self-pipe and the thread that reads it. False when the
/// process cannot have them (then no handler is installed).
fn start_watchdog_thread() -> bool {
    let (read_end, write_end) = match nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC) {
        Ok(p) => p,
        Err(_) => return false,
    };
    // The handler must never block on a full pipe.
    // SAFETY: fcntl on our own fd.
    unsafe {
        let flags = libc::fcntl(write_end.as_raw_fd(), libc::F_GETFL);
        libc::fcntl(
            write_end.as_raw_fd(),
            libc::F_SETFL,
            flags | libc::O_NONBLOCK,
        );
    }
    let old = PIPE_WRITE.swap(
        std::os::fd::IntoRawFd::into_raw_fd(write_end),
        Ordering::AcqRel,
    );
    // SAFETY: getpid has no preconditions.
    super::pipe::PIPE_HOME.store(unsafe { libc::getpid() }, Ordering::Release);
    if old >= 0 {
        // SAFETY: the previous write end (a forked child's copy of the
        // parent's pipe) is ours to close; the handler now uses the new one.
        unsafe { libc::close(old) };
    }
    spawn_shielded(
        crate::config::thread_builder("spanguard-watchdog"),
        move || watch(read_end),
    )
    .is_ok()
}

/// Where a forked child's watchdog, put off by the fork
/// (`detach_after_fork`) until the child makes a tracer, is:
/// `RESTART_PENDING` until then, `RESTARTING` while a first tracer starts
/// it (`restart_after_fork`), `NOTHING_PENDING` otherwise.
static RESTART: AtomicU8 = AtomicU8::new(NOTHING_PENDING);
const NOTHING_PENDING: u8 = 0;
const RESTART_PENDING: u8 = 1;
const RESTARTING: u8 = 2;

/// In a forked child, at the fork: the watchdog thread did not come along
/// and the pipe is shared with the parent (whose watchdog would read the
/// child's signals). A child with no tracer of its own yet has nothing to
/// flush, and most children exec at once (Node's child_process forks for
/// every command an agent runs): so rather than a pipe and a thread now,
/// the host's dispositions are put back until the child makes a tracer.
/// The fork waits for an install or a re-raise on another thread
/// (`hold_across_fork`); when the list of dispositions is held all the
/// same (by the thread that forked, from a signal handler in the middle
/// of ours), the child gets its pipe and thread now, as it did before:
/// signals must never go to nobody. So it
/// does when the application installed a handler over one of ours (it
/// may call ours in turn, which must then reach a watchdog): put back,
/// the dispositions from before ours went over the application's own,
/// and SIGTERM killed a child whose handler the application had set.
///
/// A parent that was itself a child starting its put-off watchdog at the
/// fork (its first tracer being made on another thread) passes that on:
/// the start did not come along, so this child starts its own at its
/// first tracer. It was taken for started, and a grandchild forked then
/// made its tracer with no watchdog, the host's handlers in place: SIGTERM
/// ended it with its spans neither flushed nor dumped.
pub fn detach_after_fork() {
    // The lock the fork held (`hold_across_fork`): no install or re-raise
    // is half done. None when this thread held it at the fork.
    // The signals blocked with it stay so until the end of this function
    // (declared first, dropped last): the child has one thread, and a
    // handler running on it now would find the lock held.
    let _blocked;
    let held;
    (held, _blocked) = HELD_ACROSS_FORK
        .try_with(|held| held.borrow_mut().take())
        .ok()
        .flatten()
        .unzip();
    let interrupted = RESTART.load(Ordering::Acquire) == RESTARTING;
    // Forked while the parent's watchdog delivered a signal to the host's
    // handler (maybe from inside that handler): the trampoline is the
    // parent's, for that delivery; ours goes back in its place, and the
    // child's tracers, its own, have no thaw to wait for.
    thawed_after_delivery();
    // The parent's stand-ins did not come along (the thread that forked,
    // if it was one, ends once its handler returns, `stand_in_main`): a
    // child asking one would wait for a handler that never ran.
    STAND_IN_WAITING.store(0, Ordering::Release);
    STAND_IN_ASKED.store(0, Ordering::Release);
    for signal in TERMINATION_SIGNALS {
        if trampoline_installed(signal) {
            // SAFETY: our async-signal-safe handler, as installed.
            let _ = unsafe { sigaction(signal, &our_action()) };
        }
    }
    if PIPE_WRITE.load(Ordering::Acquire) < 0 {
        // The host's dispositions are in place (put back at the fork that
        // made the parent, and ours not installed again yet).
        if interrupted {
            RESTART.store(RESTART_PENDING, Ordering::Release);
        }
        return;
    }
    let previous = match held.map(Ok).unwrap_or_else(|| PREVIOUS.try_lock()) {
        Ok(previous) => previous,
        Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
        Err(std::sync::TryLockError::WouldBlock) => {
            RESTART.store(NOTHING_PENDING, Ordering::Release);
            restart_now(None);
            return;
        }
    };
    // The parent's start had not installed ours yet: the dispositions are
    // what it had before (the host's, or the application's own since),
    // and stay; only the pipe it made is the parent's.
    let before_ours = interrupted && !TERMINATION_SIGNALS.into_iter().any(ours_installed);
    let replaced = !before_ours && ours_replaced(&previous);
    if replaced {
        RESTART.store(NOTHING_PENDING, Ordering::Release);
        restart_now(Some(&previous));
        return;
    }
    if !before_ours {
        restore(&previous.actions);
    }
    drop(previous);
    let old = PIPE_WRITE.swap(-1, Ordering::AcqRel);
    if old >= 0 {
        // SAFETY: the child's copy of the parent's write end is ours to
        // close; no handler of ours is installed any more to write to it.
        unsafe { libc::close(old) };
    }
    RESTART.store(RESTART_PENDING, Ordering::Release);
}

/// In a forked child, as it makes its first tracer: its own pipe, watchdog
/// thread and handlers, if the fork put them off (`detach_after_fork`).
/// Does nothing otherwise (a parent, a child that has them already, one
/// whose other thread is starting them).
pub fn restart_after_fork() {
    if RESTART
        .compare_exchange(
            RESTART_PENDING,
            RESTARTING,
            Ordering::AcqRel,
            Ordering::Acquire,
        )
        .is_ok()
    {
        if start_watchdog_thread() {
            install_handlers(&mut lock_previous());
        }
        // Only now: a fork before this line passes the start on.
        RESTART.store(NOTHING_PENDING, Ordering::Release);
    }
}

/// The watchdog in a child now (see `detach_after_fork`), given the
/// dispositions ours replaced unless the lock over them was held at the
/// fork by this very thread (then they are left as they are: waiting for
/// the lock here would wait forever).
fn restart_now(previous: Option<&Previous>) {
    if !start_watchdog_thread() {
        // No watchdog: put the host's dispositions back rather than swallow
        // signals that nobody would act on.
        if let Some(previous) = previous {
            restore(&previous.actions);
        }
        PIPE_WRITE.store(-1, Ordering::Release);
    }
}

/// Whether the application installed a handler over one of ours (it may
/// call ours in turn, which must then reach a watchdog).
fn ours_replaced(previous: &Previous) -> bool {
    TERMINATION_SIGNALS.into_iter().any(|signal| {
        previous
            .actions
            .get(signal as usize)
            .copied()
            .flatten()
            .is_some()
            && !ours_installed(signal)
    })
}

/// Whether our handler is `signal`'s disposition now (the application
/// may have installed its own over it).
fn ours_installed(signal: Signal) -> bool {
    // SAFETY: a sigaction that only reads the disposition into `now`.
    let mut now: libc::sigaction = unsafe { std::mem::zeroed() };
    let read = unsafe { libc::sigaction(signal as libc::c_int, std::ptr::null(), &mut now) };
    read == 0 && now.sa_sigaction == termination_handler_address()
}

/// Our termination handler's address, as sigaction reports it.
fn termination_handler_address() -> usize {
    on_termination_signal as extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void)
        as usize
}

/// Whether `signal`'s disposition is the trampoline (`deliver_to_host`).
fn trampoline_installed(signal: Signal) -> bool {
    // SAFETY: a sigaction that only reads the disposition into `now`.
    let mut now: libc::sigaction = unsafe { std::mem::zeroed() };
    let read = unsafe { libc::sigaction(signal as libc::c_int, std::ptr::null(), &mut now) };
    read == 0
        && now.sa_sigaction
            == host_handler_trampoline
                as extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void)
                as usize
}

/// Our handler's disposition, as `install_handlers` puts it in.
fn our_action() -> SigAction {
    SigAction::new(
        SigHandler::SigAction(on_termination_signal),
        SaFlags::SA_ONSTACK | SaFlags::SA_RESTART | SaFlags::SA_SIGINFO,
        SigSet::empty(),
    )
}

/// Puts back the dispositions ours replaced.
fn restore(previous: &[Option<SigAction>]) {
    for signal in TERMINATION_SIGNALS {
        if let Some(old) = previous.get(signal as usize).copied().flatten() {
            // SAFETY: restores a disposition the process had before.
            let _ = unsafe { sigaction(signal, &old) };
        }
    }
}

/// Installs the handlers and starts the watchdog thread, once per process.
/// Signals the host ignores (SIG_IGN, e.g. under nohup) are left alone.
/// Then runs `also` (the crash handlers' install), under the same lock:
/// no fork lands in the middle of either.
pub fn ensure_installed(also: impl FnOnce()) {
    let mut previous = lock_previous();
    if !previous.installed {
        previous.installed = true;
        if start_watchdog_thread() {
            install_handlers(&mut previous);
        }
    }
    also();
}

/// Puts ours back over the default disposition of `signal` (a
/// termination signal) that the host set over ours, which becomes what
/// ours re-raises with. Python keeps its own record of each signal's
/// handler, taken at start-up, and so reports SIG_DFL where ours is:
/// a server that swaps a handler in and later puts back "what was
/// there" (uvicorn, at the end of its graceful shutdown, before it
/// re-raises the signal it caught) set SIG_DFL over ours, and the
/// re-raise killed the process unflushed. The binding calls this after
/// such a `signal.signal(signum, SIG_DFL)`. Nothing (false) unless this
/// process has its watchdog (a forked child gets its own at its first
/// tracer: ours with nobody reading the pipe would swallow the signal)
/// and the disposition is SIG_DFL now.
pub fn reclaim_from_default(signal: libc::c_int) -> bool {
    let Some(signal) = TERMINATION_SIGNALS
        .into_iter()
        .find(|&s| s as libc::c_int == signal)
    else {
        return false;
    };
    let mut previous = lock_previous();
    if !previous.installed || PIPE_WRITE.load(Ordering::Acquire) < 0 {
        return false;
    }
    // Looked at first, changed only if it is the default: swapped in and
    // then put back, ours stood over a handler the host had installed
    // since the default (a new listener's, in Node), and a signal in
    // between came to ours, which re-raised it with the default: the
    // process died of a signal the host's handler was there to take.
    if !disposition_is_default(signal) {
        return false;
    }
    // SAFETY: the handler is async-signal-safe (see above).
    let Ok(old) = (unsafe { sigaction(signal, &our_action()) }) else {
        return false;
    };
    if !matches!(old.handler(), SigHandler::SigDfl) {
        // The host's own, installed by another thread since the look
        // above: put back exactly what was there.
        // SAFETY: restores the disposition just read.
        let _ = unsafe { sigaction(signal, &old) };
        return false;
    }
    if previous.actions.len() <= signal as usize {
        previous.actions.resize(65, None);
    }
    previous.actions[signal as usize] = Some(old);
    mirror_previous(signal, Some(&old));
    true
}

/// Whether `signal`'s disposition is the default, read without changing
/// it (nix's `sigaction` always sets one).
fn disposition_is_default(signal: Signal) -> bool {
    // SAFETY: a zeroed sigaction is a valid out-parameter; a null new
    // action only reads the current one.
    let mut now: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: see above; `now` outlives the call.
    let read = unsafe { libc::sigaction(signal as libc::c_int, std::ptr::null(), &mut now) };
    read == 0 && now.sa_sigaction == libc::SIG_DFL && now.sa_flags & libc::SA_SIGINFO == 0
}

/// Installs our handler for each termination signal the host does not
/// ignore, keeping what was there in `previous`.
fn install_handlers(previous: &mut Previous) {
    let previous = &mut previous.actions;
    previous.clear();
    previous.resize(65, None);
    for signal in TERMINATION_SIGNALS {
        // SAFETY: the handler is async-signal-safe (see above).
        if let Ok(old) = unsafe { sigaction(signal, &our_action()) } {
            if matches!(old.handler(), SigHandler::SigIgn) {
                // SAFETY: puts back exactly what was there.
                let _ = unsafe { sigaction(signal, &old) };
                continue;
            }
            previous[signal as usize] = Some(old);
        }
    }
    // A forked child's copy may hold its parent's: each is set again.
    for signal in TERMINATION_SIGNALS {
        mirror_previous(signal, previous[signal as usize].as_ref());
    }
}

/// What a binding runs when a termination signal arrives, before the
/// watchdog flushes and freezes the tracers: handing spanguard the spans
/// something in the host still holds for it. The Python binding's runs
/// the OpenTelemetry SDK's `force_flush`, whose BatchSpanProcessor queue
/// feeds spanguard's exporter: frozen first, the tracers refused those
/// spans and they died with the process. Given the flush deadline.
pub type BeforeSignalFlush = fn(Duration);

/// The `BeforeSignalFlush` as an address (0: none). An atomic, not a
/// lock: a fork that landed while another thread held a lock over it (the
/// binding setting it, the parent's watchdog reading it at a signal) gave
/// a child whose copy was locked for good, and whose watchdog then waited
/// for it forever at SIGTERM: the child never died of it, unflushed.
static BEFORE_FLUSH: AtomicUsize = AtomicUsize::new(0);

/// Sets the function the watchdog runs before its flush (see
/// `BeforeSignalFlush`); `None` takes it away.
pub fn set_before_signal_flush(hook: Option<BeforeSignalFlush>) {
    BEFORE_FLUSH.store(hook.map_or(0, |f| f as usize), Ordering::Release);
}

/// The `BeforeSignalFlush` set, if any.
fn before_signal_flush() -> Option<BeforeSignalFlush> {
    match BEFORE_FLUSH.load(Ordering::Acquire) {
        0 => None,
        // SAFETY: a non-zero value is a `BeforeSignalFlush` stored by
        // `set_before_signal_flush`.
        hook => Some(unsafe { std::mem::transmute::<usize, BeforeSignalFlush>(hook) }),
    }
}

/// Runs the binding's `BeforeSignalFlush`, if any, on a thread of its own,
/// waiting for it `deadline` at most: it may wait for what never comes
/// (the Python interpreter's lock, held by a thread stuck in native code;
/// an SDK waiting on an exporter that never answers), and the signal must
/// still be acted on. A hook still running past that is left to the
/// process's end (or finishes, harmlessly, when the process lives on).
fn run_before_signal_flush(deadline: Duration) {
    let Some(hook) = before_signal_flush() else {
        return;
    };
    let (done, finished) = std::sync::mpsc::channel();
    let spawned = spawn_shielded(
        crate::config::thread_builder("spanguard-before-flush"),
        move || {
            let _ = std::panic::catch_unwind(|| hook(deadline));
            let _ = done.send(());
        },
    );
    if spawned.is_ok() {
        let _ = finished.recv_timeout(deadline);
    }
}

/// How long the watchdog flushes: the longest of the tracers' timeouts,
/// for all of them at once (`freeze_and_dump` on `all_at_once`). The
/// process waits that long for the slowest anyway, and a tracer with a
/// shorter timeout uses the time to deliver rather than dump.
fn flush_deadline() -> Duration {
    let mut longest = Duration::ZERO;
    crate::registry::for_each(|p| longest = longest.max(p.config.signal_flush_timeout));
    if longest.is_zero() {
        Duration::from_secs(3)
    } else {
        longest
    }
}

/// The watchdog thread: one signal at a time.
fn watch(read_end: OwnedFd) {
    // SAFETY: getpid has no preconditions.
    let home = unsafe { libc::getpid() };
    super::crash::watchdog_takes_dumps();
    // When to look for exporters stuck in a request (`stuck_exporter`).
    let mut look_at = look_for_stuck_exporters();
    loop {
        if !byte_before(&read_end, look_at) {
            look_at = look_for_stuck_exporters();
            continue;
        }
        let mut byte = [0u8; 1];
        match nix::unistd::read(&read_end, &mut byte) {
            Ok(1) => {}
            Ok(_) => return,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return,
        }
        if byte[0] == super::stuck_exporter::LOOK_REQUEST {
            look_at = look_for_stuck_exporters();
            continue;
        }
        if byte[0] == super::crash::DUMP_REQUEST {
            super::crash::take_handed_dump();
            continue;
        }
        if byte[0] == super::crash::THAW_REQUEST {
            let _ = std::panic::catch_unwind(super::crash::thaw_after_returned_handler);
            continue;
        }
        if byte[0] == STAND_DOWN_REQUEST {
            let stood_down = stand_down(home);
            STAND_DOWNS_ANSWERED.fetch_add(1, Ordering::AcqRel);
            crate::buffer::let_go::futex_wake_all(&STAND_DOWNS_ANSWERED);
            if stood_down {
                pass_on_left_in_pipe(&read_end);
                return;
            }
            continue;
        }
        let Ok(signal) = Signal::try_from(byte[0] as i32) else {
            continue;
        };
        // Whatever follows (the default action, or a host handler that
        // may end the process itself, e.g. with _exit), flush and then dump
        // what is left, so nothing ended or open is lost. If the process
        // lives on (a host handler returned), the dump is taken back and
        // the tracers go on: nothing is sent twice.
        //
        // Every tracer at once, against one deadline: one after another,
        // each with the whole timeout, N tracers whose backend did not
        // answer held the signal for N timeouts, and a container's grace
        // (10 s in all, often) ran out before the last ones were flushed
        // or dumped. This thread thaws them if the process lives on. The
        // binding's hook runs first, for half the timeout at most, and the
        // tracers get what is left: the whole stays within the timeout (a
        // container's stop grace counts from the signal; the hook, given
        // all of it, made a signal take twice the timeout), and an SDK
        // flush held up by another, slow exporter leaves them half of it.
        let timeout = flush_deadline();
        let deadline = crate::span::clock::instant_after(Instant::now(), timeout);
        if !signal_can_end_process(signal) {
            run_before_signal_flush(timeout / 2);
            super::all_at_once::for_each_at_once(|p| flush_only(p, deadline));
            continue;
        }
        freeze_ends_within(timeout);
        run_before_signal_flush(timeout / 2);
        // SAFETY: gettid has no preconditions.
        let watchdog = unsafe { libc::gettid() };
        announce_delivery(signal);
        super::all_at_once::for_each_at_once(|p| {
            super::crash::freeze_and_dump(p, signal as i32, deadline, watchdog);
        });
        reraise_with_previous(signal, home);
        let _ = std::panic::catch_unwind(|| crate::registry::for_each(|p| p.thaw()));
        thawed_after_delivery();
    }
}

/// Starts the stand-in of every exporter stuck in a request
/// (`stuck_exporter`), and says when to look again (None: at the next
/// tracer made).
fn look_for_stuck_exporters() -> Option<Instant> {
    let wait = std::panic::catch_unwind(super::stuck_exporter::look_at_every_tracer)
        .ok()
        .flatten()?;
    Some(crate::span::clock::instant_after(Instant::now(), wait))
}

/// Whether a byte is there to read on `read_end` before `until` (None:
/// wait for one however long); false when the time came first.
fn byte_before(read_end: &OwnedFd, until: Option<Instant>) -> bool {
    let Some(until) = until else {
        return true;
    };
    let wait = until.saturating_duration_since(Instant::now());
    let mut fds = [libc::pollfd {
        fd: read_end.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    }];
    // Rounded up: woken a hair early, the look finds nothing stuck yet.
    let ms = wait.as_micros().div_ceil(1000).min(i32::MAX as u128) as libc::c_int;
    // SAFETY: one pollfd of our own, its length given.
    match unsafe { libc::poll(fds.as_mut_ptr(), 1, ms) } {
        0 => false,
        // Interrupted: look (early looks find nothing stuck), then wait again.
        -1 if nix::errno::Errno::last() == nix::errno::Errno::EINTR => false,
        // Readable, or closed or failed: the read says which.
        _ => true,
    }
}

/// The byte on the watchdog's pipe that asks it to stand down
/// (`stand_down_if_no_tracer_left`): no signal's number, nor a crash
/// handler's request, nor `stuck_exporter::LOOK_REQUEST`.
const STAND_DOWN_REQUEST: u8 = 0xfd;

/// How many stand-down requests the watchdog has answered (stood down or
/// not): the word `stand_down_if_no_tracer_left` waits on.
static STAND_DOWNS_ANSWERED: AtomicU32 = AtomicU32::new(0);

/// How long `stand_down_if_no_tracer_left` waits for the watchdog's
/// answer at most: it may be flushing for a signal first.
const STAND_DOWN_WAIT: Duration = Duration::from_secs(2);

/// Called once a tracer has been shut down or freed: when no tracer is
/// live in this process any more, asks the watchdog to stand down
/// (`stand_down`) and waits for its answer (`STAND_DOWN_WAIT` at most;
/// not on the watchdog's own thread, nor while it delivers a signal to
/// the host's handler, which may be the caller). The process is left as
/// spanguard found it: it stayed, and a program that shut its last tracer
/// down and ended `main` with `pthread_exit` never exited (the watchdog
/// was its last thread, and it blocks every asynchronous signal, so a
/// SIGTERM stayed pending: only SIGKILL ended it); its SIGTERM still went
/// through our handler. A tracer made later installs it all again
/// (`ensure_installed`). Not async-signal-safe (a futex wait).
pub fn stand_down_if_no_tracer_left() {
    if !crate::registry::none_live() || !super::pipe::pipe_is_this_process() {
        return;
    }
    let answered = STAND_DOWNS_ANSWERED.load(Ordering::Acquire);
    if !ask_watchdog(STAND_DOWN_REQUEST) {
        return;
    }
    // SAFETY: gettid has no preconditions.
    let here = unsafe { libc::gettid() };
    if super::crash::watchdog_thread() == here || DELIVERY.load(Ordering::Acquire) != 0 {
        return;
    }
    let deadline = Instant::now() + STAND_DOWN_WAIT;
    while STAND_DOWNS_ANSWERED.load(Ordering::Acquire) == answered {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        crate::buffer::let_go::futex_wait(&STAND_DOWNS_ANSWERED, answered, left);
    }
}

/// On the watchdog thread, asked to stand down: if still no tracer is
/// live (a tracer made since keeps it) and every termination signal that
/// ours replaced still has ours as its disposition, puts the host's
/// dispositions back and closes the pipe's write end (the handlers of
/// ours still running find no watchdog), all under the lock a fork waits
/// for; true then, and the thread ends. `installed` goes down, so the
/// next tracer installs ours again over what the program has by then. A
/// handler the application installed over ours may call ours in turn,
/// which must reach a watchdog (as at a fork, `detach_after_fork`): the
/// watchdog stays then.
fn stand_down(home: libc::pid_t) -> bool {
    let mut previous = lock_previous();
    // SAFETY: getpid has no preconditions.
    if !crate::registry::none_live() || unsafe { libc::getpid() } != home {
        return false;
    }
    if ours_replaced(&previous) {
        return false;
    }
    restore(&previous.actions);
    previous.actions.clear();
    for signal in TERMINATION_SIGNALS {
        mirror_previous(signal, None);
    }
    previous.installed = false;
    super::crash::watchdog_stands_down();
    let write_end = PIPE_WRITE.swap(-1, Ordering::AcqRel);
    if write_end >= 0 {
        // SAFETY: our write end; no handler of ours is installed any more
        // to write to it.
        unsafe { libc::close(write_end) };
    }
    true
}

/// After the watchdog stood down: a termination signal that came to ours
/// before the host's disposition went back is in the pipe still, and goes
/// to the process again, now to the host's disposition, as it would have
/// without us (a thread of the application takes it). The read end is
/// read without waiting: a child a raw fork made may hold a write end.
fn pass_on_left_in_pipe(read_end: &OwnedFd) {
    // SAFETY: fcntl on our own fd.
    unsafe {
        let flags = libc::fcntl(read_end.as_raw_fd(), libc::F_GETFL);
        libc::fcntl(
            read_end.as_raw_fd(),
            libc::F_SETFL,
            flags | libc::O_NONBLOCK,
        );
    }
    let mut byte = [0u8; 1];
    while let Ok(1) = nix::unistd::read(read_end, &mut byte) {
        if TERMINATION_SIGNALS.iter().any(|&s| s as u8 == byte[0]) {
            // SAFETY: kill to this very process, with a termination signal.
            unsafe { libc::kill(libc::getpid(), byte[0] as libc::c_int) };
        }
    }
}

/// Whether `signal`, handed back to the host, can end this process
/// (`namespace_init::raised_signal_can_end_process`, the host's disposition being the one
/// the watchdog replaced). Frozen and dumped for a death that never
/// came, a PID 1's tracers refused every span begun or ended from the
/// freeze to the thaw (a busy agent's, lost uncounted) and wrote a dump
/// only to take it back.
fn signal_can_end_process(signal: Signal) -> bool {
    super::namespace_init::raised_signal_can_end_process(|| {
        let previous = lock_previous();
        !previous
            .actions
            .get(signal as usize)
            .copied()
            .flatten()
            .is_some_and(|old| matches!(old.handler(), SigHandler::SigDfl))
    })
}

/// The watchdog's flush for a signal that cannot end the process
/// (`signal_can_end_process`): what has ended is delivered by
/// `deadline`, and the tracer records on throughout.
fn flush_only(p: &crate::pipeline::Pipeline, deadline: Instant) {
    if p.lifecycle() == crate::pipeline::LIFECYCLE_SHUT_DOWN {
        return;
    }
    let _ = p
        .signal
        .request_flush_and_wait(deadline.saturating_duration_since(Instant::now()));
}

/// In a child the host's handler forked on this thread (a stand-in, or
/// the watchdog's when none could be made: the thread the signal arrived
/// on was gone or did not take it, `deliver_to_host`), once that handler
/// returned: this thread is the child's only thread of the application,
/// standing in for one that had ended, so the child ends as it would
/// have when that thread did: `exit(0)`, its own tracers flushed by the
/// exit hook. On the watchdog's thread, it went on as the parent's
/// watchdog instead, reading the parent's self-pipe: the worker (a
/// pre-fork server's, started on SIGHUP) never ended, and took some of
/// the parent's signals for itself.
/// Nothing of the parent's delivery is put back here: its dispositions in
/// this child are the child's (`detach_after_fork`).
fn forked_by_host_handler_here() -> ! {
    // SAFETY: exit runs the atexit handlers (ours flushes the child's
    // tracers on this thread, with their exporters still running).
    unsafe { libc::exit(0) }
}

/// Puts the host's disposition back and raises the signal again, so it
/// acts as it would have without us: the default action ends the process
/// with the signal's own exit status; a host handler runs on the thread
/// the signal arrived on (`deliver_to_host`). When the process survives
/// it (the host's handler returned), ours goes back in. `home`: the
/// process this watchdog thread was started in.
fn reraise_with_previous(signal: Signal, home: libc::pid_t) {
    let previous = lock_previous();
    let Some(old) = previous.actions.get(signal as usize).copied().flatten() else {
        return;
    };
    let ours = match old.handler() {
        // Not under the lock: a host handler that forks (a pre-fork
        // server's SIGHUP) had its fork wait for it (`hold_across_fork`)
        // as long as we waited for that handler, a whole second. A child
        // forked meanwhile puts ours back over the trampoline itself
        // (`detach_after_fork`).
        SigHandler::Handler(_) | SigHandler::SigAction(_) => {
            drop(previous);
            let ours = deliver_to_host(signal, &old);
            // SAFETY: getpid has no preconditions.
            if unsafe { libc::getpid() } != home {
                forked_by_host_handler_here();
            }
            if let Ok(ours) = ours {
                take_back_from_host(signal, &ours, &mut lock_previous());
            }
            return;
        }
        SigHandler::SigDfl | SigHandler::SigIgn => {
            drop(previous);
            // SAFETY: restores a disposition the process had before.
            let ours = unsafe { sigaction(signal, &old) };
            raise_here(signal);
            ours
        }
    };
    if let Ok(ours) = ours {
        // SAFETY: reinstalls our async-signal-safe handler.
        let _ = unsafe { sigaction(signal, &ours) };
    }
}

/// Puts ours back after the host's handler ran (`deliver_to_host`). If
/// the trampoline is no longer there, the host changed the disposition
/// meanwhile: its handler set SIG_DFL to re-raise and die of the signal
/// (a C cleanup handler; the re-raise is pending until the handler
/// returns), or SA_RESETHAND reset it (a one-shot handler). That is the
/// host's disposition from now on, acted on at the next signal: put back
/// over it, the pending re-raise came to ours, which ran the host's
/// handler again, forever, and a one-shot handler ran at every signal;
/// the process never died of it.
fn take_back_from_host(signal: Signal, ours: &SigAction, previous: &mut Previous) {
    // SAFETY: reinstalls our async-signal-safe handler.
    let Ok(now) = (unsafe { sigaction(signal, ours) }) else {
        return;
    };
    let trampoline = host_handler_trampoline
        as extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void)
        as usize;
    let still_trampoline = match now.handler() {
        SigHandler::SigAction(f) => f as usize == trampoline,
        _ => false,
    };
    // Ours already: the host's handler set the default and a reclaim put
    // ours back over it meanwhile (`reclaim_from_default`, which recorded
    // that default). Taken for the host's, ours was what the next signal
    // was handed on to: it came back to ours, forever.
    let ours_already = matches!(now.handler(), SigHandler::SigAction(f) if f as usize == termination_handler_address());
    if !still_trampoline
        && !ours_already
        && let Some(slot) = previous.actions.get_mut(signal as usize)
    {
        *slot = Some(now);
        mirror_previous(signal, Some(&now));
    }
}

/// Raises `signal` on this thread. It blocks it (`spawn_shielded`):
/// unblocked, the raise is delivered here and now.
fn raise_here(signal: Signal) {
    let mut set = SigSet::empty();
    set.add(signal);
    let _ = set.thread_unblock();
    let _ = nix::sys::signal::raise(signal);
    let _ = set.thread_block();
}

/// The host's handler `host_handler_trampoline` calls, and whether it
/// takes three arguments (SA_SIGINFO). One signal is delivered again at a
/// time: only the watchdog thread sets them.
static HOST_HANDLER: AtomicUsize = AtomicUsize::new(0);
static HOST_SIGINFO: AtomicBool = AtomicBool::new(false);

/// The handshake between the watchdog and the trampoline, by delivery
/// (a number the watchdog counts up): which delivery is under way (0:
/// none), to which thread, which the host's handler returned from, and
/// which the tracers have been thawed after.
static DELIVERY: AtomicU32 = AtomicU32::new(0);
static DELIVERED_TO: AtomicI32 = AtomicI32::new(0);
static HOST_RETURNED: AtomicU32 = AtomicU32::new(0);
static THAWED: AtomicU32 = AtomicU32::new(0);
static DELIVERIES: AtomicU32 = AtomicU32::new(0);
/// The delivery whose host handler the trampoline has called, and where:
/// the trampoline's frame, and whether it ran on an alternate signal
/// stack. A call into us on that thread from outside that frame means the
/// handler was left without returning (`host_handler_left_here`).
static ENTERED: AtomicU32 = AtomicU32::new(0);
/// The host's handler is being run on a thread of ours (`stand_in`), not
/// on the thread the signal arrived on: that thread was gone, or did not
/// take the copy sent to it within the wait (`deliver_to_host`).
static RAISED_HERE: AtomicBool = AtomicBool::new(false);
/// The delivery whose host handler has been claimed: by the trampoline
/// as it runs it (on the copy `deliver_to_host` sent, or on a signal of
/// the host's own), or by the watchdog when its wait ran out first, to
/// run it on a stand-in. Whoever claims a delivery second does not run
/// the handler for it: a copy taken after the wait ran out is dropped.
static CLAIMED: AtomicU32 = AtomicU32::new(0);
/// What the copies `deliver_to_host` sends carry as their value: its
/// address, which no other sender's value is.
static RESENT_TAG: u8 = 0;
/// The thread of the stand-in running the host's handler now (0 until it
/// takes the delivery): the watchdog's wait ends early when it is gone
/// (the handler ended its thread).
static STAND_IN: AtomicI32 = AtomicI32::new(0);
/// The process the stand-ins were started in: one found elsewhere is the
/// parent's, which a fork did not bring along (a raw fork runs no fork
/// handler to say so, `detach_after_fork`).
static STAND_IN_HOME: AtomicI32 = AtomicI32::new(0);
/// A stand-in whose handler returned, waiting to be asked to run the next
/// one (its thread id; 0: none known). It lives on after the handler, as
/// the thread it stood in for would have: a worker the handler forked
/// with PR_SET_PDEATHSIG (bound to the thread that forked it, a
/// gunicorn-style graceful handoff's) was killed as the stand-in ended
/// (test_host_handler_receiver_holds, fork-handoff, 10 of 10 runs).
static STAND_IN_WAITING: AtomicI32 = AtomicI32::new(0);
/// The signal the watchdog asks a waiting stand-in to raise (0: none):
/// the word the stand-ins wait on (`wait_to_be_asked`).
static STAND_IN_ASKED: AtomicU32 = AtomicU32::new(0);
static ENTERED_FRAME: AtomicUsize = AtomicUsize::new(0);
static ENTERED_ON_ALT_STACK: AtomicBool = AtomicBool::new(false);

/// How long the watchdog waits for the host's handler to be delivered and
/// return on the thread the signal arrived on, and that thread then for
/// the tracers to be thawed. A thread that has not taken it by then (it
/// blocks the signal, or was not scheduled) has its copy dropped, and the
/// handler runs on a stand-in, waited for as long (`deliver_to_host`).
pub const HOST_HANDLER_WAIT: Duration = Duration::from_secs(1);

/// Waits for a host's handler (`deliver_to_host`, `stand_in`) that ran
/// out `HOST_HANDLER_WAIT`: the handler neither returned, nor ended its
/// thread, nor was found done (an `exit()` from it, a `siglongjmp` back
/// into the program), while the tracers stayed frozen. Process-wide, as
/// the handlers are; every tracer's stats report it
/// (`host_handler_waits_ran_out`). Tests count it instead of timing the
/// second such a wait costs.
static HOST_HANDLER_WAITS_RAN_OUT: AtomicU64 = AtomicU64::new(0);

/// How many waits for a host's handler ran out (`HOST_HANDLER_WAITS_RAN_OUT`).
pub fn host_handler_waits_ran_out() -> u64 {
    HOST_HANDLER_WAITS_RAN_OUT.load(Ordering::Relaxed)
}

/// Waits, `HOST_HANDLER_WAIT` at most, for the host's handler of
/// `delivery` to return, or for `gone` to say it ended its thread; counts
/// a wait that runs out (`HOST_HANDLER_WAITS_RAN_OUT`).
fn await_host_handler(delivery: u32, gone: impl Fn() -> bool) {
    let waited_since = Instant::now();
    while HOST_RETURNED.load(Ordering::Acquire) != delivery {
        if gone() {
            return;
        }
        if waited_since.elapsed() >= HOST_HANDLER_WAIT {
            HOST_HANDLER_WAITS_RAN_OUT.fetch_add(1, Ordering::Relaxed);
            return;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// When, at the latest, the tracers frozen for the signal under way are
/// thawed if the process lives on (`CLOCK_MONOTONIC` nanoseconds; set by
/// `freeze_ends_within` before the delivery is announced).
static FREEZE_ENDS_BY: AtomicU64 = AtomicU64::new(0);

/// Sets `FREEZE_ENDS_BY` for a signal whose flush may take `timeout`: the
/// flush and the wait for the batch the exporter still sends end by then
/// (`freeze_and_dump`), the host's handler is waited for
/// `HOST_HANDLER_WAIT` after the dump on the thread the signal arrived
/// on, as long again on a stand-in when that thread did not take it, and
/// one more is left for the dump and the thaw. Every part of it is
/// bounded, so the freeze is: a host handler that never returns is given
/// up on by the watchdog, which thaws after that wait (and when it runs
/// on the watchdog's own thread, no stand-in being possible, the callers
/// waiting for the thaw give up at this time).
fn freeze_ends_within(timeout: Duration) {
    let bound = timeout.saturating_add(HOST_HANDLER_WAIT.saturating_mul(3));
    let nanos = u64::try_from(bound.as_nanos()).unwrap_or(u64::MAX);
    let by = crate::span::clock::monotonic_ns().saturating_add(nanos);
    FREEZE_ENDS_BY.store(by, Ordering::Release);
}

/// How long a span begun, changed or ended while the tracers are frozen
/// for a signal whose host handler is to run waits for the thaw
/// (`Tracer::lifecycle_after_host_handler`): until the freeze ends at the
/// latest (`FREEZE_ENDS_BY`), and `HOST_HANDLER_WAIT` at least. A second
/// only, a backend that held the flush kept the tracers frozen longer (a
/// quarter of the signal flush timeout more, waiting for the exporter's
/// batch; until the slowest tracer's flush ended, for the others): a
/// change was refused as shut down and the end after it, past the thaw,
/// accepted, and the span arrived without it; a begin lost its span.
pub fn thaw_wait() -> Duration {
    let by = FREEZE_ENDS_BY.load(Ordering::Acquire);
    let left = by.saturating_sub(crate::span::clock::monotonic_ns());
    Duration::from_nanos(left).max(HOST_HANDLER_WAIT)
}

/// Whether the host's handler is being delivered on another thread than
/// this one: the flush is over, and the tracers are thawed as soon as
/// that handler returns (unless it ends the process). A span begun
/// meanwhile waits for that thaw (`Tracer::lifecycle_after_host_handler`):
/// the handler may have woken this thread to act on the signal (Go's
/// wakes the goroutine signal.Notify feeds, a server's its shutdown
/// thread) before it returned, and the spans that thread records as it
/// stops were refused as shut down. Not on the handler's own thread,
/// which would wait for its own return.
pub fn host_handler_running_elsewhere() -> bool {
    // SAFETY: gettid has no preconditions.
    DELIVERY.load(Ordering::Acquire) != 0
        && DELIVERED_TO.load(Ordering::Acquire) != unsafe { libc::gettid() }
}

/// The host's handler, delivered again (`deliver_to_host`). Once it
/// returns, the thread it ran on waits for the watchdog to thaw the
/// tracers before going back to what the signal interrupted: it acts on
/// the signal next (Python raises KeyboardInterrupt; a graceful stop
/// records its last spans and shuts down), and the tracers, still frozen,
/// refused that as shut down. Async-signal-safe: atomics, nanosleep.
extern "C" fn host_handler_trampoline(
    signal: libc::c_int,
    info: *mut libc::siginfo_t,
    context: *mut libc::c_void,
) {
    let delivery = DELIVERY.load(Ordering::Acquire);
    let handler = HOST_HANDLER.load(Ordering::Acquire);
    // SAFETY: gettid has no preconditions.
    let here = unsafe { libc::gettid() };
    // Read now: the watchdog may stop waiting for a stand-in's handler
    // (and lower the flag) before it returns.
    let stand_in = delivery != 0
        && RAISED_HERE.load(Ordering::Acquire)
        && DELIVERED_TO.load(Ordering::Acquire) == here;
    if is_resent_copy(info) {
        // The copy `deliver_to_host` sent: the host's handler runs for it
        // unless it ran (or runs) for this delivery already, or the
        // watchdog, done waiting, runs it elsewhere: the copy was held
        // blocked, or its thread was not scheduled, past the wait. A
        // copy outside any delivery is one such, taken off the queue just
        // before its delivery ended.
        if delivery == 0 || CLAIMED.swap(delivery, Ordering::AcqRel) == delivery {
            return;
        }
    } else if delivery != 0 && !stand_in {
        // A signal of the host's own while a delivery is under way: the
        // handler runs for it, and the watchdog needs to run it no more.
        CLAIMED.store(delivery, Ordering::Release);
    }
    if delivery != 0 {
        let frame = 0u8;
        ENTERED_FRAME.store(std::ptr::addr_of!(frame) as usize, Ordering::Relaxed);
        ENTERED_ON_ALT_STACK.store(on_alt_stack(), Ordering::Relaxed);
        ENTERED.store(delivery, Ordering::Release);
    }
    if stand_in {
        mask_as_the_host_asked();
    }
    if handler != 0 {
        // SAFETY: `handler` is the host's handler as its sigaction gave
        // it, called with the arguments the kernel gave us, the kind it
        // was installed as (SA_SIGINFO or not).
        unsafe {
            let siginfo = HOST_SIGINFO.load(Ordering::Acquire);
            super::call_handler(handler, siginfo, signal, info, context);
        }
    }
    if delivery == 0 {
        return;
    }
    HOST_RETURNED.store(delivery, Ordering::Release);
    if stand_in {
        return; // the watchdog thaws once this returns; nothing waits here
    }
    let pause = libc::timespec {
        tv_sec: 0,
        tv_nsec: 1_000_000,
    };
    for _ in 0..HOST_HANDLER_WAIT.as_millis() {
        if THAWED.load(Ordering::Acquire) == delivery {
            return;
        }
        // SAFETY: nanosleep is async-signal-safe; errno is the host
        // handler's to have set, and EINTR here changes nothing.
        unsafe {
            let saved = *libc::__errno_location();
            libc::nanosleep(&pause, std::ptr::null_mut());
            *libc::__errno_location() = saved;
        }
    }
}

/// The signals the host's handler blocks while it runs (its sa_mask, and
/// the signal unless SA_NODEFER), by bit (signal n: bit n - 1), for the
/// trampoline on the watchdog's own thread (`deliver_to_host`).
static HOST_MASK: AtomicU64 = AtomicU64::new(0);

/// On the watchdog's own thread, in the trampoline: this thread's mask
/// becomes `HOST_MASK`, as on a thread of the application that blocks
/// nothing. Ours blocks the termination signals (`spawn_shielded`): a
/// child the handler forked (a pre-fork server's worker) inherited them
/// blocked, exec'd with them so, and never died of SIGTERM. The mask from
/// before comes back when the handler returns (sigreturn).
/// Async-signal-safe: sigemptyset, sigaddset, pthread_sigmask.
fn mask_as_the_host_asked() {
    let mask = sigset_of_bits(HOST_MASK.load(Ordering::Acquire));
    // SAFETY: this thread's mask, set to a set of our own.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &mask, std::ptr::null_mut()) };
}

/// `HOST_MASK`'s bits for the host's disposition `old` of `signal`.
fn host_mask_bits(signal: Signal, old: &SigAction) -> u64 {
    let mask = old.mask();
    let mut bits = 0u64;
    for n in 1..=64 {
        // SAFETY: sigismember reads a set of our own.
        if unsafe { libc::sigismember(mask.as_ref(), n) } == 1 {
            bits |= 1u64 << (n - 1);
        }
    }
    if !old.flags().contains(SaFlags::SA_NODEFER) {
        bits |= 1u64 << (signal as i32 - 1);
    }
    bits
}

/// Whether this thread runs on its alternate signal stack now.
/// Async-signal-safe: one sigaltstack(2) that changes nothing.
fn on_alt_stack() -> bool {
    // SAFETY: sigaltstack with no new stack only reads this thread's.
    let mut now: libc::stack_t = unsafe { std::mem::zeroed() };
    let read = unsafe { libc::sigaltstack(std::ptr::null(), &mut now) };
    read == 0 && now.ss_flags & libc::SS_ONSTACK != 0
}

/// The delivery under way on this thread whose host handler has not
/// returned, if any.
fn delivery_here() -> Option<u32> {
    let delivery = DELIVERY.load(Ordering::Acquire);
    // SAFETY: gettid has no preconditions.
    let here = DELIVERED_TO.load(Ordering::Acquire) == unsafe { libc::gettid() };
    (delivery != 0 && here && HOST_RETURNED.load(Ordering::Acquire) != delivery).then_some(delivery)
}

/// For a span begun on the thread the host's handler was delivered to:
/// whether that handler was left without returning (it siglongjmp'd back
/// into the program's main loop, a REPL's Ctrl-C); then the watchdog is
/// told it is done with the signal, as by a return, and thaws the
/// tracers. It waited for that return a whole second, and the spans the
/// program recorded back in its loop were refused meanwhile. A span begun
/// from inside the handler (deeper on the stack than the trampoline, or
/// on the alternate stack it ran on) is not: the handler may still end
/// the process with `_exit`, and the dump must stay. A call chain back in
/// the loop that reaches below where the trampoline's frame was is taken
/// for inside (refused as before, until the watchdog's wait ends).
#[inline(never)]
pub fn host_handler_left_here() -> bool {
    let Some(delivery) = delivery_here() else {
        return false;
    };
    if ENTERED.load(Ordering::Acquire) != delivery {
        return false; // not delivered yet: it will interrupt this thread
    }
    let frame = 0u8;
    let left = if ENTERED_ON_ALT_STACK.load(Ordering::Relaxed) {
        !on_alt_stack()
    } else {
        !on_alt_stack()
            && std::ptr::addr_of!(frame) as usize > ENTERED_FRAME.load(Ordering::Relaxed)
    };
    if left {
        HOST_RETURNED.store(delivery, Ordering::Release);
    }
    left
}

/// For a span begun on the thread the host's handler is about to be
/// delivered to (`announce_delivery`): it waits for the thaw too; the
/// delivery interrupts that wait, and the thaw follows the handler.
pub fn host_handler_pending_here() -> bool {
    delivery_here().is_some_and(|delivery| ENTERED.load(Ordering::Acquire) != delivery)
}

/// For the exit hook, on the exiting thread: if the host's handler was
/// delivered here and has not returned, it called exit() (or left for
/// code that did): the watchdog is told it is done with the signal, as
/// by a return, and thaws the tracers, which the exit hook then shuts
/// down. It waited for that return a whole second while the exit hook
/// waited for its thaw.
pub fn host_handler_exiting_here() {
    if let Some(delivery) = delivery_here()
        && ENTERED.load(Ordering::Acquire) == delivery
    {
        HOST_RETURNED.store(delivery, Ordering::Release);
    }
}

/// After the tracers were thawed (the process lived on): lets the thread
/// the host's handler ran on go on (`host_handler_trampoline`).
fn thawed_after_delivery() {
    THAWED.store(DELIVERY.swap(0, Ordering::AcqRel), Ordering::Release);
}

/// Before the watchdog freezes the tracers for `signal`: if the host has
/// a handler for it (the process may live on), the delivery to come is
/// announced, so a span begun meanwhile waits for the thaw after it
/// (`host_handler_running_elsewhere`, `host_handler_pending_here`)
/// rather than be refused. Only the time the host's handler ran was
/// covered: the dump before it refused them, and a program stopping
/// gracefully on a first signal lost the spans it recorded as a second
/// one (SIGINT after SIGTERM, a second Ctrl-C) froze the tracers again.
fn announce_delivery(signal: Signal) {
    let handler = lock_previous()
        .actions
        .get(signal as usize)
        .copied()
        .flatten()
        .is_some_and(|old| {
            matches!(
                old.handler(),
                SigHandler::Handler(_) | SigHandler::SigAction(_)
            )
        });
    if handler {
        announce(signal);
    }
}

/// Numbers the delivery of `signal` to the thread it arrived on and
/// makes it the one under way.
fn announce(signal: Signal) -> u32 {
    let receiver = RECEIVER
        .get(signal as usize)
        .map_or(0, |r| r.load(Ordering::Relaxed));
    // Never 0: that is "on the watchdog's thread".
    let delivery = DELIVERIES
        .fetch_add(1, Ordering::Relaxed)
        .wrapping_add(1)
        .max(1);
    DELIVERED_TO.store(receiver, Ordering::Release);
    DELIVERY.store(delivery, Ordering::Release);
    delivery
}

/// Delivers the signal again to the host's handler, on the thread it
/// arrived on, and waits (`HOST_HANDLER_WAIT` at most) for that handler
/// to return: one that ends the process (`_exit`) finds the dump on disk,
/// one that returns lets the tracers go on after it. Raised on the
/// watchdog's own thread, a handler that only notes the signal for its
/// thread to act on later (CPython's, for the main thread) was never
/// acted on: nothing woke that thread. The host's handler is called by
/// a trampoline installed with the host's own flags and mask, so an
/// interrupted call returns EINTR or restarts as it would have. Answers
/// what sigaction answered when the trampoline went in (ours).
///
/// The handler runs once for the delivery, whatever that thread does. A
/// thread that blocks the signal again (a thread that masks signals
/// around its own work, one stuck in a long call with them blocked), or
/// is not scheduled within the wait, held the copy: the watchdog gave up,
/// and the host's handler did not run while it held it (never, if it
/// never let go); let go later, the copy came to ours, which flushed,
/// froze and dumped all over again before the handler ran. Now the wait
/// running out makes the watchdog claim the delivery (`CLAIMED`), drop
/// the copy wherever it is pending, and run the handler on a stand-in
/// thread while the dump is still on disk; a copy taken off the queue
/// just before the drop finds the delivery claimed and runs nothing.
/// Waiting on for that thread instead (no deadline) would leave the
/// tracers frozen and the watchdog deaf to the next signal for as long as
/// it holds the signal; thawed meanwhile, a handler that ends with
/// `_exit` would lose what was recorded since.
fn deliver_to_host(signal: Signal, old: &SigAction) -> nix::Result<SigAction> {
    let (handler, siginfo) = match old.handler() {
        SigHandler::Handler(f) => (f as usize, false),
        SigHandler::SigAction(f) => (f as usize, true),
        SigHandler::SigDfl | SigHandler::SigIgn => (0, false),
    };
    HOST_HANDLER.store(handler, Ordering::Release);
    HOST_SIGINFO.store(siginfo, Ordering::Release);
    let trampoline = SigAction::new(
        SigHandler::SigAction(host_handler_trampoline),
        old.flags() | SaFlags::SA_SIGINFO,
        old.mask(),
    );
    // SAFETY: the trampoline only calls the host's own handler.
    let ours = unsafe { sigaction(signal, &trampoline) };
    let delivery = match DELIVERY.load(Ordering::Acquire) {
        0 => announce(signal),
        announced => announced,
    };
    let receiver = DELIVERED_TO.load(Ordering::Acquire);
    // A thread that has exited since answers ESRCH (a reused id would be
    // another of our threads: the handler still runs once, on it).
    let sent = receiver > 0 && resend(receiver, signal).is_ok();
    let mut held = false;
    if sent {
        // A receiver that blocked the signal and exited meanwhile took
        // it, pending, into its exit: the host's handler never ran there.
        // Unless it was entered there (the claim says): it ended its own
        // thread (pthread_exit, a pool's "stop this worker"), and is done
        // with the signal. Run again, it ran twice, and its pthread_exit
        // on the watchdog's thread aborted the process.
        await_host_handler(delivery, || thread_gone(receiver));
        held = !thread_gone(receiver);
    }
    // Claimed already: the handler ran, or runs, for this delivery.
    if CLAIMED.swap(delivery, Ordering::AcqRel) != delivery {
        if sent {
            drop_pending_copy(signal, &trampoline);
        }
        HOST_MASK.store(host_mask_bits(signal, old), Ordering::Release);
        if held {
            stand_in(signal, delivery);
        } else {
            // The receiver is gone: the handler runs on this thread, which
            // lives as long as the process, as the receiver's would have
            // been to it. On a stand-in that ended once the handler
            // returned (as they all did then), a worker the handler forked
            // with PR_SET_PDEATHSIG (bound to the thread that forked it)
            // was killed at once (test_host_handler_fork_handoff, 2 of 5
            // runs).
            RAISED_HERE.store(true, Ordering::Release);
            run_here(signal);
        }
    }
    ours
}

/// Runs the host's handler on the watchdog's own thread: the delivery
/// moves here (`RAISED_HERE` set by the caller), and the signal is raised.
fn run_here(signal: Signal) {
    // SAFETY: gettid has no preconditions.
    DELIVERED_TO.store(unsafe { libc::gettid() }, Ordering::Release);
    raise_here(signal);
    RAISED_HERE.store(false, Ordering::Release);
}

/// Drops the copy `deliver_to_host` sent, pending on a thread that holds
/// the signal blocked (or not yet scheduled): setting a signal to SIG_IGN
/// discards it wherever it is pending (POSIX), and this is the only way
/// to take a signal off another thread's queue. A signal of the host's
/// that came meanwhile goes with it, as signals that arrive together are
/// one: the host's handler runs next, after all of them. Then the
/// disposition goes back as it was; a one-shot handler (SA_RESETHAND)
/// whose disposition a copy reset to SIG_DFL as it was taken off the
/// queue (and then found the delivery claimed) gets the trampoline back,
/// for the stand-in to run it through once.
fn drop_pending_copy(signal: Signal, trampoline: &SigAction) {
    let ignore = SigAction::new(SigHandler::SigIgn, SaFlags::empty(), SigSet::empty());
    // SAFETY: SIG_IGN, then what was there, for a moment.
    let Ok(was) = (unsafe { sigaction(signal, &ignore) }) else {
        return;
    };
    let reset = matches!(was.handler(), SigHandler::SigDfl)
        && trampoline.flags().contains(SaFlags::SA_RESETHAND);
    let back = if reset { trampoline } else { &was };
    // SAFETY: the disposition that was there, or the trampoline.
    let _ = unsafe { sigaction(signal, back) };
}

/// Runs the host's handler for `delivery` on a thread of its own, the
/// stand-in for the thread the signal arrived on, and waits
/// (`HOST_HANDLER_WAIT` at most) for it to return or end its thread. Not
/// on the watchdog's thread: a handler that ends its thread
/// (`pthread_exit`) ended the watchdog there (the process aborted), and
/// one that never returns left every later signal unanswered. The
/// trampoline masks the stand-in as the host's handler asks, and does
/// not wait for a thaw there. A stand-in whose handler returned waits for
/// the next (`stand_in_main`), and is asked again rather than a thread
/// made each time. When no thread can be made, the watchdog's own thread
/// stands in.
fn stand_in(signal: Signal, delivery: u32) {
    STAND_IN.store(0, Ordering::Release);
    RAISED_HERE.store(true, Ordering::Release);
    if !ask_waiting_stand_in(signal) && !start_stand_in(signal) {
        run_here(signal);
        return;
    }
    // Gone: the handler ended its thread.
    await_host_handler(delivery, || {
        let tid = STAND_IN.load(Ordering::Acquire);
        tid != 0 && thread_gone(tid)
    });
    RAISED_HERE.store(false, Ordering::Release);
}

/// Asks a stand-in that waits (`STAND_IN_WAITING`) to raise `signal`;
/// whether there was one in this process. One of the parent's, in a
/// child a raw fork made, is not there: forgotten, with its ask.
fn ask_waiting_stand_in(signal: Signal) -> bool {
    let waiting = STAND_IN_WAITING.swap(0, Ordering::AcqRel);
    // SAFETY: getpid has no preconditions.
    let home = unsafe { libc::getpid() };
    if STAND_IN_HOME.load(Ordering::Acquire) != home {
        STAND_IN_ASKED.store(0, Ordering::Release);
        return false;
    }
    if waiting == 0 || thread_gone(waiting) {
        return false;
    }
    // Release pairs with the Acquire in `wait_to_be_asked`: the stand-in
    // sees the delivery set up (`RAISED_HERE`, `HOST_MASK`, the trampoline).
    STAND_IN_ASKED.store(signal as u32, Ordering::Release);
    crate::buffer::let_go::futex_wake_all(&STAND_IN_ASKED);
    true
}

/// Starts a stand-in thread that raises `signal` (`stand_in_main`);
/// whether it could be made.
fn start_stand_in(signal: Signal) -> bool {
    // SAFETY: getpid has no preconditions.
    let home = unsafe { libc::getpid() };
    if STAND_IN_HOME.swap(home, Ordering::AcqRel) != home {
        STAND_IN_ASKED.store(0, Ordering::Release); // the parent's
    }
    // SAFETY: a detached thread running `stand_in_main`, which takes the
    // signal number as its argument and touches nothing of ours but
    // atomics; the thread inherits this one's mask (every asynchronous
    // signal blocked, `spawn_shielded`).
    unsafe {
        let mut thread: libc::pthread_t = std::mem::zeroed();
        let made = libc::pthread_create(
            &mut thread,
            std::ptr::null(),
            stand_in_main,
            signal as libc::c_int as usize as *mut libc::c_void,
        );
        if made == 0 {
            libc::pthread_detach(thread);
        }
        made == 0
    }
}

/// The stand-in's body: the delivery moves to this thread (a span another
/// thread begins meanwhile waits for the thaw after the handler,
/// `host_handler_running_elsewhere`), and the signal is raised here. In
/// a child the handler forked, this is the only thread, standing in for
/// one that is not there: the child ends as a program does when its
/// last thread does, `exit(0)`, its own tracers flushed by the exit hook.
/// Otherwise the thread lives on, as the one it stood in for would have
/// (a worker the handler forked may be bound to it), and waits, every
/// asynchronous signal blocked, to stand in again; named as spanguard's
/// (`spanguard-stand`), so a process whose own threads have all ended
/// still exits (`export::last_thread`). No value with a destructor lives
/// here: a handler's `pthread_exit` unwinds through.
extern "C" fn stand_in_main(arg: *mut libc::c_void) -> *mut libc::c_void {
    let mut signal = arg as usize as libc::c_int;
    // SAFETY: getpid and gettid have no preconditions; PR_SET_NAME names
    // this thread with a NUL-terminated string of 16 bytes at most.
    let (home, here) = unsafe {
        libc::prctl(libc::PR_SET_NAME, c"spanguard-stand".as_ptr());
        (libc::getpid(), libc::gettid())
    };
    loop {
        STAND_IN.store(here, Ordering::Release);
        DELIVERED_TO.store(here, Ordering::Release);
        if let Ok(signal) = Signal::try_from(signal) {
            raise_here(signal);
        }
        // SAFETY: getpid has no preconditions.
        if unsafe { libc::getpid() } != home {
            forked_by_host_handler_here();
        }
        // Another stand-in may wait already (this one outlived the wait
        // for its handler, and one was made for the next signal): both
        // wait, and either takes an ask.
        let _ = STAND_IN_WAITING.compare_exchange(0, here, Ordering::AcqRel, Ordering::Acquire);
        signal = wait_to_be_asked();
    }
}

/// Waits until the watchdog asks a stand-in to raise a signal
/// (`ask_waiting_stand_in`), and takes the ask: that signal.
fn wait_to_be_asked() -> libc::c_int {
    loop {
        // Acquire pairs with the Release in `ask_waiting_stand_in`.
        let asked = STAND_IN_ASKED.swap(0, Ordering::AcqRel);
        if asked != 0 {
            return asked as libc::c_int;
        }
        crate::buffer::let_go::futex_wait(&STAND_IN_ASKED, 0, Duration::from_secs(3600));
    }
}

/// The head of a `siginfo_t` as a sender fills it in for a signal with a
/// value (the kernel's `_rt` member): what `resend` sends and
/// `is_resent_copy` reads back. The union after the first three fields
/// is aligned as a pointer, as here.
#[repr(C)]
struct QueuedInfo {
    signo: libc::c_int,
    errno: libc::c_int,
    code: libc::c_int,
    rt: RtFields,
}

#[repr(C)]
struct RtFields {
    pid: libc::pid_t,
    uid: libc::uid_t,
    value: *mut libc::c_void,
}

const _: () = assert!(
    std::mem::size_of::<QueuedInfo>() <= std::mem::size_of::<libc::siginfo_t>()
        && std::mem::align_of::<QueuedInfo>() <= std::mem::align_of::<libc::siginfo_t>()
);

/// Sends `signal` to this process's thread `tid`, as the copy the
/// trampoline knows for ours (`is_resent_copy`): a signal sent with a
/// value (SI_QUEUE) whose value is `RESENT_TAG`'s address.
fn resend(tid: i32, signal: Signal) -> std::io::Result<()> {
    // SAFETY: a zeroed siginfo_t is valid; its head is written as the
    // `QueuedInfo` it starts with (size and alignment checked above).
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    let head = std::ptr::addr_of_mut!(info).cast::<QueuedInfo>();
    // SAFETY: see above; getpid and getuid have no preconditions.
    unsafe {
        (*head).signo = signal as libc::c_int;
        (*head).code = libc::SI_QUEUE;
        (*head).rt.pid = libc::getpid();
        (*head).rt.uid = libc::getuid();
        (*head).rt.value = std::ptr::addr_of!(RESENT_TAG).cast_mut().cast();
    }
    // SAFETY: rt_tgsigqueueinfo names a thread of this process by its id
    // (a thread that has exited answers ESRCH) with a siginfo of ours; a
    // process may send itself any si_code.
    match unsafe {
        libc::syscall(
            libc::SYS_rt_tgsigqueueinfo,
            libc::getpid(),
            tid,
            signal as libc::c_int,
            std::ptr::addr_of!(info),
        )
    } {
        0 => Ok(()),
        _ => Err(std::io::Error::last_os_error()),
    }
}

/// Whether the signal `info` describes is a copy `resend` sent.
/// Async-signal-safe: getpid(2).
fn is_resent_copy(info: *const libc::siginfo_t) -> bool {
    if info.is_null() {
        return false;
    }
    // SAFETY: the kernel's siginfo for the signal being handled (the
    // trampoline is installed with SA_SIGINFO); its head is a
    // `QueuedInfo`, whose `pid` fields a sender of another kind left as
    // its own union member's bytes, read as plain integers.
    let head = unsafe { &*info.cast::<QueuedInfo>() };
    head.code == libc::SI_QUEUE
        && head.rt.value == std::ptr::addr_of!(RESENT_TAG).cast_mut().cast()
        // SAFETY: getpid has no preconditions.
        && head.rt.pid == unsafe { libc::getpid() }
}

/// Whether this process has no thread `tid` any more (signal 0 only
/// checks that it exists).
fn thread_gone(tid: i32) -> bool {
    tgkill(tid, 0).err().and_then(|e| e.raw_os_error()) == Some(libc::ESRCH)
}

/// Sends `signal` to this process's thread `tid`.
fn tgkill(tid: i32, signal: libc::c_int) -> std::io::Result<()> {
    // SAFETY: tgkill names a thread of this process by its id; a thread
    // that has exited answers ESRCH.
    match unsafe { libc::syscall(libc::SYS_tgkill, libc::getpid(), tid, signal) } {
        0 => Ok(()),
        _ => Err(std::io::Error::last_os_error()),
    }
}
