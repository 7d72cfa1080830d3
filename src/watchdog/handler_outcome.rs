//! What the program's own crash-signal handler left behind when it
//! returned, for the crash handler that chained to it: whether the process
//! goes on (a fault it repaired, a trap it stepped over, a SIGABRT it
//! raised to log something) or is on its way to dying (the fault meets the
//! same instruction again, abort() goes on to end the process). Read from
//! the signal's context, the mapping of the faulting address and the
//! interrupted thread's stack. Everything here is async-signal-safe:
//! syscalls and arithmetic on buffers of the caller's stack.

use std::sync::atomic::{AtomicI32, AtomicU64, AtomicUsize, Ordering};

/// The interrupted thread's program counter (where it resumes when the
/// handler returns) and stack pointer, from the signal's context; zeros
/// where this build does not know the context's layout.
fn interrupted_at(context: *mut libc::c_void) -> (usize, usize) {
    if context.is_null() {
        return (0, 0);
    }
    // SAFETY: the kernel's ucontext for the signal being handled.
    let uc = unsafe { &*(context as *const libc::ucontext_t) };
    #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
    return (
        uc.uc_mcontext.gregs[libc::REG_RIP as usize] as usize,
        uc.uc_mcontext.gregs[libc::REG_RSP as usize] as usize,
    );
    #[cfg(all(target_os = "linux", target_arch = "aarch64"))]
    return (uc.uc_mcontext.pc as usize, uc.uc_mcontext.sp as usize);
    #[cfg(not(all(
        target_os = "linux",
        any(target_arch = "x86_64", target_arch = "aarch64")
    )))]
    {
        let _ = uc;
        (0, 0)
    }
}

/// Where the interrupted thread resumes when the handler returns (0: not
/// known here).
pub(super) fn resume_pc(context: *mut libc::c_void) -> usize {
    interrupted_at(context).0
}

/// A fault as the interrupted thread meets it: the signal, its si_code
/// and address, and a fingerprint of the thread's registers (program
/// counter and stack pointer among them). Two faults alike are the same
/// instruction meeting the same fault from the same state: the one before
/// was left to run again, and nothing had changed when it did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct FaultAt {
    signal: libc::c_int,
    code: libc::c_int,
    addr: usize,
    registers: u64,
}

impl FaultAt {
    /// The fault `info` says, from the registers `context` holds now (as
    /// the fault arrived, or as the thread resumes once the handler
    /// returns). Async-signal-safe.
    pub(super) fn of(
        signal: libc::c_int,
        info: *mut libc::siginfo_t,
        context: *mut libc::c_void,
    ) -> FaultAt {
        let (code, addr) = if info.is_null() {
            (0, 0)
        } else {
            // SAFETY: the kernel's siginfo for a fault: si_addr is set.
            unsafe { ((*info).si_code, (*info).si_addr() as usize) }
        };
        FaultAt {
            signal,
            code,
            addr,
            registers: registers_fingerprint(context),
        }
    }
}

/// FNV-1a over the interrupted thread's general registers (not the flags
/// nor the fault's own words: error code, trap number, CR2), or over the
/// program counter and stack pointer where this build does not know the
/// context's layout beyond them.
fn registers_fingerprint(context: *mut libc::c_void) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    let mut feed = |word: u64| {
        for byte in word.to_ne_bytes() {
            hash = (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    if context.is_null() {
        return 0;
    }
    // SAFETY: the kernel's ucontext for the signal being handled.
    let uc = unsafe { &*(context as *const libc::ucontext_t) };
    #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
    for &r in &uc.uc_mcontext.gregs[..=libc::REG_RIP as usize] {
        feed(r as u64);
    }
    #[cfg(all(target_os = "linux", target_arch = "aarch64"))]
    {
        for &r in &uc.uc_mcontext.regs {
            feed(r);
        }
        feed(uc.uc_mcontext.sp);
        feed(uc.uc_mcontext.pc);
    }
    #[cfg(not(all(
        target_os = "linux",
        any(target_arch = "x86_64", target_arch = "aarch64")
    )))]
    {
        let _ = uc;
        let (pc, sp) = interrupted_at(context);
        feed(pc as u64);
        feed(sp as u64);
    }
    hash
}

/// The fault a thread's handler returned from with no repair to be seen,
/// left to run again: the thread's id, and the fault as the thread resumed.
struct LeftToRunAgain {
    tid: AtomicI32,
    signal: AtomicI32,
    code: AtomicI32,
    addr: AtomicUsize,
    registers: AtomicU64,
}

/// One per thread, by thread id modulo their number: a thread reads and
/// writes only its own, from its own signal handler, so Relaxed is
/// enough. Two threads that share one, each meeting a fault the other
/// overwrites, at worst take one more run each before the judgment.
static LEFT_TO_RUN_AGAIN: [LeftToRunAgain; 64] = [const {
    LeftToRunAgain {
        tid: AtomicI32::new(0),
        signal: AtomicI32::new(0),
        code: AtomicI32::new(0),
        addr: AtomicUsize::new(0),
        registers: AtomicU64::new(0),
    }
}; 64];

fn left_to_run_again_of(tid: libc::pid_t) -> &'static LeftToRunAgain {
    &LEFT_TO_RUN_AGAIN[tid as usize % LEFT_TO_RUN_AGAIN.len()]
}

/// For a fault the program's handler returned from with nothing repaired
/// that can be seen (the program counter where it was, the page's
/// permission not enough or never the matter: a SIGBUS past a file's end
/// that the handler ended by growing the file, a page mapped anew with
/// the same permission, a userfaultfd's copy): whether `arrived` is the
/// fault the thread was left to run again from just before, met again
/// (the instruction ran again and nothing had changed: no repair), and
/// records `resumes`, the state the thread resumes in now, for the next
/// one. The first time, the instruction is let run again: repaired, it
/// goes on and nothing is dumped; unrepaired, the same fault comes
/// straight back, and that one is judged so. Async-signal-safe.
pub(super) fn met_again_after_run_again(arrived: &FaultAt, resumes: &FaultAt) -> bool {
    // SAFETY: gettid has no preconditions.
    let tid = unsafe { libc::gettid() };
    let left = left_to_run_again_of(tid);
    let again = left.tid.load(Ordering::Relaxed) == tid
        && FaultAt {
            signal: left.signal.load(Ordering::Relaxed),
            code: left.code.load(Ordering::Relaxed),
            addr: left.addr.load(Ordering::Relaxed),
            registers: left.registers.load(Ordering::Relaxed),
        } == *arrived;
    left.tid.store(tid, Ordering::Relaxed);
    left.signal.store(resumes.signal, Ordering::Relaxed);
    left.code.store(resumes.code, Ordering::Relaxed);
    left.addr.store(resumes.addr, Ordering::Relaxed);
    left.registers.store(resumes.registers, Ordering::Relaxed);
    again
}

/// This thread left no fault to run again any more: the one it met was
/// repaired where it can be seen, or ended the process's way. A later
/// fault alike is judged afresh. Async-signal-safe.
pub(super) fn forget_left_to_run_again() {
    // SAFETY: gettid has no preconditions.
    let tid = unsafe { libc::gettid() };
    let left = left_to_run_again_of(tid);
    if left.tid.load(Ordering::Relaxed) == tid {
        left.tid.store(0, Ordering::Relaxed);
    }
}

/// SIGSEGV's si_code for an address with no mapping, and for an access
/// its mapping does not allow (Linux's asm-generic/siginfo.h; the libc
/// crate has them for other systems only).
const SEGV_MAPERR: libc::c_int = 1;
const SEGV_ACCERR: libc::c_int = 2;

/// What a faulting access needed of its page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Access {
    write: bool,
    execute: bool,
}

/// The access that faulted: x86-64's page-fault error code says whether
/// it was a write or an instruction fetch. Elsewhere a fetch is a fault at
/// the program counter, and any other access is taken for a write (a page
/// made writable allows a read too; one made only readable is not taken
/// as repaired: the process stays dumped and frozen, as before).
fn faulting_access(info: *mut libc::siginfo_t, context: *mut libc::c_void) -> Access {
    // SAFETY: the kernel's siginfo for a fault: si_addr is set.
    let addr = unsafe { (*info).si_addr() } as usize;
    #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
    if !context.is_null() {
        // SAFETY: the kernel's ucontext for the signal being handled.
        let err = unsafe { (*(context as *const libc::ucontext_t)).uc_mcontext.gregs }
            [libc::REG_ERR as usize];
        return Access {
            write: err & 2 != 0,
            execute: err & 16 != 0,
        };
    }
    let execute = resume_pc(context) == addr;
    Access {
        write: !execute,
        execute,
    }
}

/// Whether the access that raised this SIGSEGV (a write to a page mapped
/// read-only, a read of one unmapped) is one the address's mapping allows
/// now: the program's handler repaired it (mprotect, mmap: a garbage
/// collector's write barrier, a userfault-style allocator), and the
/// instruction will not fault again. Only for the kernel's SEGV_MAPERR and
/// SEGV_ACCERR: a protection key's or a tag's fault is not told by the
/// mapping. False when /proc is not there to ask.
pub(super) fn access_allowed_now(info: *mut libc::siginfo_t, context: *mut libc::c_void) -> bool {
    if info.is_null() {
        return false;
    }
    // SAFETY: the kernel's siginfo for this signal.
    let (code, addr) = unsafe { ((*info).si_code, (*info).si_addr() as usize) };
    if code != SEGV_MAPERR && code != SEGV_ACCERR {
        return false;
    }
    let need = faulting_access(info, context);
    mapping_permissions(addr).is_some_and(|perms| {
        perms[0] == b'r' && (!need.write || perms[1] == b'w') && (!need.execute || perms[2] == b'x')
    })
}

/// The permissions ("rwxp") of the mapping that holds `addr`, read from
/// /proc/self/maps; None when none holds it or the file cannot be read.
/// open(2), read(2), close(2) into a buffer on the stack.
fn mapping_permissions(addr: usize) -> Option<[u8; 4]> {
    // SAFETY: a NUL-terminated path; the descriptor is closed below.
    let fd = unsafe {
        libc::open(
            c"/proc/self/maps".as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return None;
    }
    let mut line = MapsLine::default();
    let mut buf = [0u8; 512];
    let mut found = None;
    'file: loop {
        // SAFETY: reads into the buffer, at most its length.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
            continue;
        }
        if n <= 0 {
            break;
        }
        for &b in &buf[..n as usize] {
            if let Some(perms) = line.feed(b, addr) {
                found = Some(perms);
                break 'file;
            }
        }
    }
    // SAFETY: our descriptor, closed once.
    unsafe { libc::close(fd) };
    found
}

/// One /proc/self/maps line ("start-end perms offset dev inode path") read
/// a byte at a time, as the file comes in pieces.
#[derive(Default)]
struct MapsLine {
    field: u8,
    start: usize,
    end: usize,
    perms: [u8; 4],
    perms_len: usize,
}

impl MapsLine {
    /// Takes the next byte; at a line's end, its permissions when its
    /// range holds `addr`.
    fn feed(&mut self, b: u8, addr: usize) -> Option<[u8; 4]> {
        let hex = |b: u8| (b as char).to_digit(16).unwrap_or(0) as usize;
        match (self.field, b) {
            (_, b'\n') => {
                let hit = self.perms_len == 4 && self.start <= addr && addr < self.end;
                let perms = self.perms;
                *self = Self::default();
                return hit.then_some(perms);
            }
            (0, b'-') | (1, b' ') | (2, b' ') => self.field += 1,
            (0, _) => self.start = self.start.wrapping_mul(16).wrapping_add(hex(b)),
            (1, _) => self.end = self.end.wrapping_mul(16).wrapping_add(hex(b)),
            (2, _) if self.perms_len < 4 => {
                self.perms[self.perms_len] = b;
                self.perms_len += 1;
            }
            _ => {}
        }
        None
    }
}

/// libc's abort(): where its code starts and how long it is (0: not
/// known), looked up once at install (dlsym and dladdr1 are not
/// async-signal-safe), read by the crash handler.
static ABORT_START: AtomicUsize = AtomicUsize::new(0);
static ABORT_LEN: AtomicUsize = AtomicUsize::new(0);

/// glibc's `RTLD_DL_SYMENT`: dladdr1 gives the symbol's ELF entry.
const RTLD_DL_SYMENT: libc::c_int = 1;

/// Finds abort()'s code: its address, and its size from its ELF symbol.
/// dladdr1 is looked up by name, not linked: a C library without it (musl)
/// leaves the size unknown, and every SIGABRT the process raises on itself
/// is taken for abort()'s, as before.
pub(super) fn find_abort() {
    type Dladdr1 = unsafe extern "C" fn(
        *const libc::c_void,
        *mut libc::Dl_info,
        *mut *mut libc::c_void,
        libc::c_int,
    ) -> libc::c_int;
    // SAFETY: dlsym with NUL-terminated names; dladdr1, when there, has
    // glibc's signature and fills in what it is given; the ELF symbol it
    // points at lives as long as libc.
    unsafe {
        let abort = libc::dlsym(libc::RTLD_DEFAULT, c"abort".as_ptr());
        let dladdr1 = libc::dlsym(libc::RTLD_DEFAULT, c"dladdr1".as_ptr());
        if abort.is_null() || dladdr1.is_null() {
            return;
        }
        let dladdr1: Dladdr1 = std::mem::transmute(dladdr1);
        let mut info: libc::Dl_info = std::mem::zeroed();
        let mut sym: *mut libc::c_void = std::ptr::null_mut();
        if dladdr1(abort, &mut info, &mut sym, RTLD_DL_SYMENT) == 0 || sym.is_null() {
            return;
        }
        #[cfg(target_pointer_width = "64")]
        let size = (*(sym as *const libc::Elf64_Sym)).st_size as usize;
        #[cfg(target_pointer_width = "32")]
        let size = (*(sym as *const libc::Elf32_Sym)).st_size as usize;
        if info.dli_saddr != abort || size == 0 {
            return;
        }
        ABORT_START.store(abort as usize, Ordering::Relaxed);
        ABORT_LEN.store(size, Ordering::Relaxed);
    }
}

/// How far above the interrupted stack pointer abort()'s return address
/// is looked for: raise(), pthread_kill's frame (a signal set on it) and
/// the syscall's take a few hundred bytes in glibc 2.36 and 2.41.
const ABORT_FRAME_REACH: usize = 2048;

/// Whether a SIGABRT the process raised on itself came from abort(): a
/// return address into abort() among the words just above the interrupted
/// stack pointer (abort() calls raise(), which raises it). A program's
/// own raise(SIGABRT) has none there: above it are live frames of its
/// callers, none in abort(), which never returns. The stack is read with
/// process_vm_readv(2), which stops at an unmapped page instead of
/// faulting. True (abort()'s, maybe) when it cannot be told: abort()'s
/// code not found at install, the context's layout not known here, the
/// read refused (a seccomp filter without process_vm_readv).
pub(super) fn raised_by_abort(context: *mut libc::c_void) -> bool {
    let start = ABORT_START.load(Ordering::Relaxed);
    let len = ABORT_LEN.load(Ordering::Relaxed);
    let sp = interrupted_at(context).1;
    if start == 0 || len == 0 || sp == 0 {
        return true;
    }
    // Read a piece at a time: the handler may be on a small alternate
    // stack (`crash::short_of_stack`).
    const PIECE: usize = 256;
    let mut words = [0usize; PIECE / std::mem::size_of::<usize>()];
    for offset in (0..ABORT_FRAME_REACH).step_by(PIECE) {
        let local = libc::iovec {
            iov_base: words.as_mut_ptr().cast(),
            iov_len: PIECE,
        };
        let remote = libc::iovec {
            iov_base: (sp + offset) as *mut libc::c_void,
            iov_len: PIECE,
        };
        // SAFETY: reads this process's own memory into `words`, at most
        // its length; an unmapped part ends the read short instead of
        // faulting.
        let read = unsafe { libc::process_vm_readv(libc::getpid(), &local, 1, &remote, 1, 0) };
        if read <= 0 {
            // Refused: abort()'s, maybe. Past the stack's top: not there.
            return offset == 0;
        }
        let read_words = read as usize / std::mem::size_of::<usize>();
        // A return address points just past a call: above abort()'s
        // start, at most at its end.
        if words[..read_words]
            .iter()
            .any(|&w| w > start && w <= start + len)
        {
            return true;
        }
        if (read as usize) < PIECE {
            return false; // the stack's top
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn perms_of(maps: &str, addr: usize) -> Option<[u8; 4]> {
        let mut line = MapsLine::default();
        maps.bytes().find_map(|b| line.feed(b, addr))
    }

    /// A /proc/self/maps line's range and permissions, as the file gives
    /// them; an address at a mapping's end belongs to the next one.
    #[test]
    fn maps_lines_give_the_permissions_of_the_mapping_holding_an_address() {
        let maps = "55d0c0a00000-55d0c0a21000 r--p 00000000 08:01 1234 /usr/bin/x\n\
                    7f0000001000-7f0000002000 rw-p 00000000 00:00 0 \n\
                    7f0000002000-7f0000003000 ---p 00000000 00:00 0\n";
        assert_eq!(perms_of(maps, 0x55d0c0a00000), Some(*b"r--p"));
        assert_eq!(perms_of(maps, 0x7f0000001fff), Some(*b"rw-p"));
        assert_eq!(perms_of(maps, 0x7f0000002000), Some(*b"---p"));
        assert_eq!(perms_of(maps, 0x7f0000003000), None);
        assert_eq!(perms_of(maps, 0x1000), None);
    }

    /// A fault left to run again is judged unrepaired only when the same
    /// fault comes back from the state the thread resumed in: not the
    /// first time, not one met from other registers (the thread went on
    /// and came back another way), not once forgotten (repaired where it
    /// could be seen).
    #[test]
    fn only_the_same_fault_met_straight_back_is_met_again() {
        let fault = |registers| FaultAt {
            signal: libc::SIGBUS,
            code: 2,
            addr: 0x7f00_0000_1000,
            registers,
        };
        let met = |arrived, resumes| met_again_after_run_again(&fault(arrived), &fault(resumes));
        assert!(!met(1, 1), "the first time");
        assert!(met(1, 1), "straight back");
        assert!(!met(2, 2), "other registers");
        assert!(!met(3, 4), "changed by the handler");
        assert!(met(4, 4), "as it resumed");
        forget_left_to_run_again();
        assert!(!met(4, 4), "forgotten");
    }

    /// This process's own maps: a page mapped read-only, then made
    /// writable, then unmapped, as a handler repairs or a fault finds it.
    #[test]
    fn the_maps_follow_mprotect_and_munmap() {
        // SAFETY: maps, changes and unmaps a page of its own.
        unsafe {
            let size = libc::sysconf(libc::_SC_PAGESIZE) as usize;
            let page = libc::mmap(
                std::ptr::null_mut(),
                size,
                libc::PROT_READ,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            );
            assert_ne!(page, libc::MAP_FAILED);
            let addr = page as usize + 8;
            assert_eq!(&mapping_permissions(addr).expect("mapped")[..2], b"r-");
            assert_eq!(
                libc::mprotect(page, size, libc::PROT_READ | libc::PROT_WRITE),
                0
            );
            assert_eq!(&mapping_permissions(addr).expect("mapped")[..2], b"rw");
            libc::munmap(page, size);
            assert_eq!(mapping_permissions(addr), None);
        }
    }
}
