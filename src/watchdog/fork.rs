//! fork(2) without exec: what a child must do before it records anything.

use std::cell::Cell;
use std::sync::atomic::{AtomicI32, AtomicPtr, AtomicU32, AtomicUsize, Ordering};
use std::time::Duration;

/// Whether the fork handlers are registered in this process.
static HOOK: ForkSafeOnce = ForkSafeOnce::new();

/// A one-time install that a fork cannot leave running for good: a `Once`
/// a fork caught running stayed so in the child, whose first tracer then
/// waited for it forever (a worker forked while the parent's first tracer
/// was being made on another thread). Which process image is running the
/// install is kept in a page the kernel wipes in every child
/// (`this_image_claims`): a child forked before the install was over finds
/// it unclaimed and runs it itself. So the install must do no harm run
/// twice in one process (the fork may have come between its work and the
/// `DONE`). It was the pid of the installing process, compared with the
/// child's: a grandchild given the pid of a dead ancestor that had been
/// installing (pids are small and soon reused in a container) took the
/// install for its own, running, and waited for it forever. The pid is
/// still what a kernel without MADV_WIPEONFORK (before 4.14) goes by.
pub(crate) struct ForkSafeOnce {
    /// `NOT_DONE`, `DONE`, or (no wiped page) the installing process's pid.
    state: AtomicI32,
    /// This once's claim in `this_image_claims`, plus one (0: none yet).
    claim: AtomicUsize,
}
const NOT_DONE: i32 = 0;
const DONE: i32 = -1;

impl ForkSafeOnce {
    pub(crate) const fn new() -> Self {
        ForkSafeOnce {
            state: AtomicI32::new(NOT_DONE),
            claim: AtomicUsize::new(0),
        }
    }

    /// Runs `install` unless it ran in this process (or in the one it was
    /// forked from, to the end); waits for another thread running it.
    pub(crate) fn call_once(&self, install: impl FnOnce()) {
        if self.state.load(Ordering::Acquire) == DONE {
            return;
        }
        let Some(claim) = self.claim_in_this_image() else {
            return self.call_once_by_pid(install);
        };
        loop {
            if self.state.load(Ordering::Acquire) == DONE {
                return;
            }
            // 0: no thread of this process image has begun it (a fork
            // wipes it, whatever a thread of the parent was at).
            if claim
                .compare_exchange(0, 1, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                install();
                self.state.store(DONE, Ordering::Release);
                return;
            }
            // Another thread of this process is at it: a few microseconds.
            std::thread::sleep(Duration::from_micros(50));
        }
    }

    /// `call_once` with the installing process's pid in `state`: a child
    /// finds another's there and runs the install itself.
    fn call_once_by_pid(&self, install: impl FnOnce()) {
        // SAFETY: getpid has no preconditions.
        let this_process = unsafe { libc::getpid() };
        loop {
            match self.state.load(Ordering::Acquire) {
                DONE => return,
                running if running == this_process => std::thread::sleep(Duration::from_micros(50)),
                seen => {
                    if self
                        .state
                        .compare_exchange(seen, this_process, Ordering::AcqRel, Ordering::Acquire)
                        .is_ok()
                    {
                        install();
                        self.state.store(DONE, Ordering::Release);
                        return;
                    }
                }
            }
        }
    }

    /// This once's claim in this process image's wiped page; None when
    /// there is none (no MADV_WIPEONFORK, no memory, no claim left).
    fn claim_in_this_image(&self) -> Option<&'static AtomicU32> {
        let claims = this_image_claims()?;
        let mut index = self.claim.load(Ordering::Acquire);
        if index == 0 {
            let next = NEXT_CLAIM.fetch_add(1, Ordering::Relaxed) + 1;
            index = match self
                .claim
                .compare_exchange(0, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => next,
                Err(theirs) => theirs,
            };
        }
        claims.get(index - 1)
    }

    /// Marks it done: in a forked child that knows the install went through.
    pub(crate) fn mark_done(&self) {
        self.state.store(DONE, Ordering::Release);
    }

    /// As a process with pid `pid` left it when it forked this one's
    /// ancestor in the middle of the install (in a child, the child's own
    /// pid: a reused one). The wiped page has nothing of it to keep.
    #[cfg(test)]
    fn left_running_by(&self, pid: i32) {
        if self.claim_in_this_image().is_none() {
            self.state.store(pid, Ordering::Release);
        }
    }
}

/// The claims handed out so far (`ForkSafeOnce::claim`).
static NEXT_CLAIM: AtomicUsize = AtomicUsize::new(0);

/// A page of claims, one for each `ForkSafeOnce`: 1 while (or once) a
/// thread of this process image took it on, 0 otherwise. Mapped
/// MADV_WIPEONFORK: the kernel gives a forked child this page zeroed, so
/// nothing of the parent's (nor of any ancestor's) claims reaches it.
/// Null until first needed; `NO_WIPED_PAGE` when the kernel has none.
static CLAIMS: AtomicPtr<AtomicU32> = AtomicPtr::new(std::ptr::null_mut());
/// Never a mapping (mmap gives page-aligned addresses).
const NO_WIPED_PAGE: *mut AtomicU32 = std::ptr::dangling_mut();
const CLAIMS_BYTES: usize = 4096;

/// This process image's claims (`CLAIMS`); None without a wiped page.
fn this_image_claims() -> Option<&'static [AtomicU32]> {
    let mut page = CLAIMS.load(Ordering::Acquire);
    if page.is_null() {
        let mapped = map_wiped_page();
        page = match CLAIMS.compare_exchange(
            std::ptr::null_mut(),
            mapped,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => mapped,
            Err(theirs) => {
                if mapped != NO_WIPED_PAGE {
                    // SAFETY: our own mapping, which nothing else has seen.
                    unsafe { libc::munmap(mapped.cast(), CLAIMS_BYTES) };
                }
                theirs
            }
        };
    }
    if page == NO_WIPED_PAGE {
        return None;
    }
    // SAFETY: `page` is a mapping of CLAIMS_BYTES, zeroed, read-write,
    // never unmapped (a child's copy is there too, wiped), of atomics.
    Some(unsafe {
        std::slice::from_raw_parts(page, CLAIMS_BYTES / std::mem::size_of::<AtomicU32>())
    })
}

/// A fresh page, MADV_WIPEONFORK; `NO_WIPED_PAGE` if either fails.
fn map_wiped_page() -> *mut AtomicU32 {
    // SAFETY: an anonymous private mapping of our own, then advice on it.
    unsafe {
        let page = libc::mmap(
            std::ptr::null_mut(),
            CLAIMS_BYTES,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        if page == libc::MAP_FAILED {
            return NO_WIPED_PAGE;
        }
        if libc::madvise(page, CLAIMS_BYTES, libc::MADV_WIPEONFORK) != 0 {
            libc::munmap(page, CLAIMS_BYTES);
            return NO_WIPED_PAGE;
        }
        page.cast()
    }
}

/// What `child` runs (`ensure_fork_hook`'s argument).
static CHILD: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// Whether this thread is forking: between the prepare handler and the
    /// parent's or the child's. The handlers may be registered twice (a
    /// registration during another fork's prepare handlers, which glibc
    /// does not run in that fork's child, reaches the child all the same,
    /// which may register them again): each runs once per fork all the
    /// same. Twice, the second prepare waited for the lock the first took.
    static FORKING: Cell<bool> = const { Cell::new(false) };
}

/// Registers `child` to run in the child after every fork, once per process,
/// with the fork kept out of the signal handlers' install (prepare and
/// parent: `signals::hold_across_fork`; `child` lets go of it through
/// `reset_process_state_in_child`).
pub fn ensure_fork_hook(child: unsafe extern "C" fn()) {
    HOOK.call_once(|| {
        CHILD.store(child as usize, Ordering::Release);
        // SAFETY: registers plain functions.
        unsafe { libc::pthread_atfork(Some(prepare), Some(parent), Some(run_child)) };
    });
}

unsafe extern "C" fn prepare() {
    // A unit test's fork beside other tests is a test's mistake: said, and
    // the tests ended, before it can make another one fail.
    #[cfg(test)]
    crate::forking_tests::refuse_fork_beside_other_tests();
    // First, whatever else: a file another thread is opening to lock is
    // then not locked on a descriptor the child may share.
    crate::buffer::files::fork_coming();
    if FORKING.try_with(|f| f.replace(true)).unwrap_or(true) {
        return;
    }
    let _ = std::panic::catch_unwind(super::signals::hold_across_fork);
}

unsafe extern "C" fn parent() {
    if FORKING.try_with(|f| f.replace(false)).unwrap_or(false) {
        let _ = std::panic::catch_unwind(super::signals::release_after_fork_in_parent);
    }
}

unsafe extern "C" fn run_child() {
    if !FORKING.try_with(|f| f.replace(false)).unwrap_or(false) {
        return;
    }
    let child = CHILD.load(Ordering::Acquire);
    if child != 0 {
        // SAFETY: `child` is the `unsafe extern "C" fn()` stored by
        // `ensure_fork_hook` before registering this handler.
        unsafe {
            let child: unsafe extern "C" fn() = std::mem::transmute(child);
            child();
        }
    }
}

/// In a forked child, which has one thread (the one that forked), before
/// its tracers are let go of: lets go of the parent's locks, so a parent
/// that dies first leaves files the next tracer can recover whatever the
/// child does; gives the child its own ids and clock, and takes the
/// parent's signal watchdog out of its way. The child's own watchdog
/// starts with its first tracer (`signals::restart_after_fork`): a child
/// that execs or exits without one starts no thread.
pub fn reset_process_state_in_child() {
    // Run by the fork handlers: this child has them, whatever the fork
    // caught their registration at (glibc keeps a registration and a fork
    // apart: a child forked before it has none, and registers them).
    HOOK.mark_done();
    crate::buffer::files::close_held_locks_in_child();
    crate::span::ids::reseed_after_fork();
    crate::span::clock::after_fork_in_child();
    crate::config::after_fork_in_child();
    super::signals::detach_after_fork();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A child forked while another thread of its parent runs the install,
    /// whose pid is the one the installer was recorded by (a grandchild
    /// given a dead ancestor's pid, as in a container): it runs the
    /// install itself. It took it for its own, running, and waited forever.
    #[test]
    fn a_child_with_the_installers_pid_installs_itself() {
        if !crate::forking_tests::run_alone(
            module_path!(),
            "a_child_with_the_installers_pid_installs_itself",
        ) {
            return;
        }
        static ONCE: ForkSafeOnce = ForkSafeOnce::new();
        let (started, installing) = std::sync::mpsc::channel();
        let (release, released) = std::sync::mpsc::channel::<()>();
        let installer = std::thread::spawn(move || {
            ONCE.call_once(|| {
                started.send(()).unwrap();
                let _ = released.recv();
            })
        });
        installing.recv().unwrap();
        // The child touches atomics and sleeps, then _exits.
        let pid = crate::forking_tests::fork();
        if pid == 0 {
            // SAFETY: getpid has no preconditions; _exit ends the child.
            unsafe {
                ONCE.left_running_by(libc::getpid());
                let mut ran = false;
                ONCE.call_once(|| ran = true);
                libc::_exit(if ran { 0 } else { 1 });
            }
        }
        assert!(pid > 0);
        let ok = crate::forking_tests::exited_ok_within(pid, 5);
        release.send(()).unwrap();
        installer.join().unwrap();
        assert!(ok, "the child waited for an install nobody in it ran");
        let mut again = false;
        ONCE.call_once(|| again = true);
        assert!(!again, "the parent's install is done, once");
    }
}
