//! The raw x86_64 Linux system calls keel-pause makes, behind safe wrappers: the crate's one seam to the kernel.
//!
//! No libc: each wrapper is a `syscall` instruction. Return values follow the kernel convention (a value >= 0, or
//! `-errno`).

use core::arch::asm;

const SYS_WRITE: usize = 1;
const SYS_RT_SIGPROCMASK: usize = 14;
const SYS_GETPID: usize = 39;
const SYS_WAIT4: usize = 61;
const SYS_RT_SIGTIMEDWAIT: usize = 128;
const SYS_EXIT_GROUP: usize = 231;

pub const STDOUT: i32 = 1;
pub const STDERR: i32 = 2;

pub const SIGINT: i32 = 2;
pub const SIGPIPE: i32 = 13;
pub const SIGTERM: i32 = 15;
pub const SIGCHLD: i32 = 17;

/// `errno` for "no child processes", as a negative return value of `wait4`.
pub const ECHILD: isize = -10;

const SIG_BLOCK: usize = 0;
const WNOHANG: usize = 1;
/// Wait for every kind of child, whatever signal it reports its exit with.
const WALL: usize = 0x4000_0000;
/// The kernel's `sigset_t` is 64 bits on x86_64 (glibc's 1024-bit one is a userspace affair).
const KERNEL_SIGSET_BYTES: usize = 8;

/// A set of signals as the kernel sees it: bit `n - 1` is signal `n`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SigSet(u64);

impl SigSet {
    pub const EMPTY: SigSet = SigSet(0);

    /// The set plus `signo` (1..=64).
    pub const fn with(self, signo: i32) -> SigSet {
        SigSet(self.0 | 1u64 << ((signo - 1) as u32 & 63))
    }

    pub const fn contains(self, signo: i32) -> bool {
        signo >= 1 && signo <= 64 && self.0 & (1u64 << ((signo - 1) as u32)) != 0
    }

    /// The mask as `/proc/PID/status` prints it in `SigBlk`/`SigPnd`.
    pub const fn bits(self) -> u64 {
        self.0
    }
}

/// # Safety
/// The caller must pass arguments that are valid for system call `nr` (pointers to memory of the size the call
/// reads or writes, alive for the call).
#[inline(always)]
unsafe fn syscall4(nr: usize, a1: usize, a2: usize, a3: usize, a4: usize) -> isize {
    let ret: isize;
    // SAFETY: the x86_64 Linux syscall ABI: number in rax, arguments in rdi, rsi, rdx, r10; the kernel clobbers
    // rcx and r11 and returns in rax. It does not touch our stack. Argument validity is the caller's contract.
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") nr as isize => ret,
            in("rdi") a1,
            in("rsi") a2,
            in("rdx") a3,
            in("r10") a4,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    ret
}

/// `write(fd, buf)`: the number of bytes written or `-errno`.
pub fn write(fd: i32, buf: &[u8]) -> isize {
    // SAFETY: buf is a live slice; the kernel reads at most buf.len() bytes from it.
    unsafe { syscall4(SYS_WRITE, fd as usize, buf.as_ptr() as usize, buf.len(), 0) }
}

/// `getpid()`, as seen from the caller's pid namespace.
pub fn getpid() -> i32 {
    // SAFETY: getpid takes no arguments and cannot fail.
    unsafe { syscall4(SYS_GETPID, 0, 0, 0, 0) as i32 }
}

/// Adds `set` to the blocked signals: `0` or `-errno`. A blocked signal stays pending until it is waited for,
/// also for a pid namespace's init, which the kernel otherwise shields from signals left at their default action.
pub fn block(set: SigSet) -> isize {
    let bits = set.0;
    // SAFETY: `bits` is a live 8-byte kernel sigset the kernel only reads; the old-set pointer is NULL.
    unsafe {
        syscall4(
            SYS_RT_SIGPROCMASK,
            SIG_BLOCK,
            &bits as *const u64 as usize,
            0,
            KERNEL_SIGSET_BYTES,
        )
    }
}

/// Sleeps until one of `set` (which must be blocked) is pending and takes it: the signal number, or `-errno`
/// (`-EINTR` after a stop/continue, for instance).
pub fn wait_signal(set: SigSet) -> isize {
    let bits = set.0;
    // SAFETY: `bits` is a live 8-byte kernel sigset the kernel only reads; no siginfo is asked for (NULL) and a
    // NULL timeout means wait without limit.
    unsafe {
        syscall4(
            SYS_RT_SIGTIMEDWAIT,
            &bits as *const u64 as usize,
            0,
            0,
            KERNEL_SIGSET_BYTES,
        )
    }
}

/// Reaps one exited child of any kind without waiting: its pid, `0` if children remain but none has exited,
/// or `-errno` ([`ECHILD`] when there are no children).
pub fn reap_one() -> isize {
    // SAFETY: wait4(-1, NULL, WNOHANG | __WALL, NULL): the status and rusage pointers are NULL, nothing is written.
    unsafe { syscall4(SYS_WAIT4, -1isize as usize, 0, WNOHANG | WALL, 0) }
}

/// `exit_group(code)`: ends the process.
pub fn exit(code: i32) -> ! {
    // SAFETY: exit_group takes an integer and does not return.
    unsafe {
        asm!("syscall", in("rax") SYS_EXIT_GROUP, in("rdi") code as usize, options(noreturn, nostack));
    }
}
