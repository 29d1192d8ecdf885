//! keel-pause: the pod sandbox process.
//!
//! It is PID 1 of a pod's namespaces and does what Kubernetes' `pause.c` does: it holds the namespaces open,
//! reaps every child that exits (orphans of the pod are re-parented to it), exits 0 on SIGINT or SIGTERM, prints
//! `keel-pause <version>` for `-v`, and warns on stderr when it is not PID 1.
//!
//! It differs from `pause.c` in how it takes signals: it blocks SIGINT, SIGTERM and SIGCHLD and waits for them
//! with `rt_sigtimedwait`, so there are no signal handlers and all work runs in the main flow; a blocked signal
//! is queued even for a namespace init, whose default-action signals the kernel drops. The library is `no_std`
//! and makes raw syscalls ([`sys`]); `src/main.rs` is the binary's `_start`.

#![cfg_attr(not(any(test, feature = "std")), no_std)]
// The workspace denies `unsafe_code`; this crate is the exception: without libc, system calls are inline
// assembly (`sys`) and the arguments come from the raw initial stack (`Args`). Each unsafe block says why it is
// sound in a `// SAFETY:` comment.
#![allow(unsafe_code)]

#[cfg(feature = "std")]
pub mod footprint;
pub mod sys;

use sys::SigSet;

/// What `-v` prints.
pub const VERSION_LINE: &str = concat!("keel-pause ", env!("CARGO_PKG_VERSION"), "\n");

/// Printed on stderr when started as anything but PID 1 (not an error: it still works, as `pause.c` does).
pub const NOT_PID1_WARNING: &str = "Warning: keel-pause should be the first process in a pod\n";

/// The signals keel-pause acts on; they stay blocked and are taken with [`sys::wait_signal`].
pub const WAITED: SigSet = SigSet::EMPTY.with(sys::SIGINT).with(sys::SIGTERM).with(sys::SIGCHLD);

/// Everything blocked: [`WAITED`], plus SIGPIPE so that a closed stderr makes a write fail instead of killing us.
pub const BLOCKED: SigSet = WAITED.with(sys::SIGPIPE);

/// `-v` or `-V`, in any position, as `pause.c` accepts it.
pub fn is_version_flag(arg: &[u8]) -> bool {
    matches!(arg, [b'-', b'v' | b'V'])
}

/// The stderr line for a signal that ends keel-pause, or `None` when the signal means "reap and keep waiting".
pub fn shutdown_message(signo: isize) -> Option<&'static str> {
    match signo {
        s if s == sys::SIGTERM as isize => Some("Shutting down, got signal: Terminated\n"),
        s if s == sys::SIGINT as isize => Some("Shutting down, got signal: Interrupt\n"),
        _ => None,
    }
}

/// The command-line arguments, read straight from the initial process stack.
pub struct Args {
    argc: usize,
    argv: *const *const u8,
}

impl Args {
    /// # Safety
    /// `sp` must be the stack pointer the kernel handed to `_start`: `argc`, then `argc` pointers to
    /// NUL-terminated strings, all alive for the life of the process.
    pub unsafe fn from_initial_stack(sp: *const usize) -> Args {
        // SAFETY: per the contract, `sp` points at argc and argv follows it.
        unsafe {
            Args {
                argc: *sp,
                argv: sp.add(1) as *const *const u8,
            }
        }
    }

    /// Whether any argument after the program name satisfies `pred`.
    pub fn any(&self, pred: impl Fn(&[u8]) -> bool) -> bool {
        let mut i = 1;
        while i < self.argc {
            // SAFETY: i < argc, so argv[i] is one of the kernel-provided pointers to a NUL-terminated string;
            // `len` stops at its NUL, so the slice covers only that string's bytes. The reads are volatile only
            // so that LLVM does not turn the loop into a call to libc's `strlen`, which this binary lacks.
            let arg = unsafe {
                let s = *self.argv.add(i);
                let mut len = 0;
                while s.add(len).read_volatile() != 0 {
                    len += 1;
                }
                core::slice::from_raw_parts(s, len)
            };
            if pred(arg) {
                return true;
            }
            i += 1;
        }
        false
    }
}

/// Reaps every child that has exited; returns when none is left to reap now.
pub fn reap_children() {
    while sys::reap_one() > 0 {}
}

/// The whole program.
pub fn run(args: &Args) -> ! {
    if args.any(is_version_flag) {
        sys::write(sys::STDOUT, VERSION_LINE.as_bytes());
        sys::exit(0);
    }
    if sys::block(BLOCKED) < 0 {
        sys::write(sys::STDERR, b"keel-pause: cannot block signals\n");
        sys::exit(1);
    }
    if sys::getpid() != 1 {
        sys::write(sys::STDERR, NOT_PID1_WARNING.as_bytes());
    }
    loop {
        // Reap first: children may have exited before SIGCHLD was blocked, and one SIGCHLD can stand for many.
        reap_children();
        if let Some(message) = shutdown_message(sys::wait_signal(WAITED)) {
            sys::write(sys::STDERR, message.as_bytes());
            sys::exit(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Seek};
    use std::os::fd::AsRawFd;

    #[test]
    fn version_flag_is_dash_v_in_either_case() {
        assert!(is_version_flag(b"-v"));
        assert!(is_version_flag(b"-V"));
        for arg in [&b""[..], b"-", b"v", b"-vv", b"--version", b"-v ", b"-x"] {
            assert!(!is_version_flag(arg), "{:?}", String::from_utf8_lossy(arg));
        }
        assert_eq!(VERSION_LINE, format!("keel-pause {}\n", env!("CARGO_PKG_VERSION")));
    }

    #[test]
    fn sigsets_use_the_kernel_bit_layout() {
        // As /proc/PID/status shows them: SIGINT 0x2, SIGTERM 0x4000, SIGCHLD 0x10000, SIGPIPE 0x1000.
        assert_eq!(WAITED.bits(), 0x2 | 0x4000 | 0x1_0000);
        assert_eq!(BLOCKED.bits(), WAITED.bits() | 0x1000);
        assert!(WAITED.contains(sys::SIGCHLD) && !WAITED.contains(sys::SIGPIPE));
        assert!(!WAITED.contains(0) && !WAITED.contains(65));
    }

    #[test]
    fn only_sigint_and_sigterm_end_it() {
        assert!(shutdown_message(sys::SIGTERM as isize).is_some_and(|m| m.contains("Terminated")));
        assert!(shutdown_message(sys::SIGINT as isize).is_some_and(|m| m.contains("Interrupt")));
        assert_eq!(shutdown_message(sys::SIGCHLD as isize), None);
        assert_eq!(shutdown_message(-4), None, "EINTR means wait again");
    }

    #[test]
    fn args_are_read_from_an_initial_stack_image() {
        let (prog, flag) = (c"keel-pause", c"-V");
        let stack = [2usize, prog.as_ptr() as usize, flag.as_ptr() as usize, 0];
        // SAFETY: the array has the layout of an initial stack (argc, argv, NULL) and outlives `args`.
        let args = unsafe { Args::from_initial_stack(stack.as_ptr()) };
        assert!(args.any(is_version_flag));
        assert!(!args.any(|a| a == b"keel-pause"), "argv[0] is not an argument");
        let stack = [1usize, prog.as_ptr() as usize, 0];
        // SAFETY: as above.
        let args = unsafe { Args::from_initial_stack(stack.as_ptr()) };
        assert!(!args.any(|_| true));
    }

    #[test]
    fn raw_syscalls_agree_with_std() {
        assert_eq!(sys::getpid() as u32, std::process::id());
        let mut file = tempfile::tempfile().unwrap();
        assert_eq!(sys::write(file.as_raw_fd(), b"keel"), 4);
        assert_eq!(sys::write(-1, b"x"), -9, "EBADF");
        let mut back = String::new();
        file.rewind().unwrap();
        file.read_to_string(&mut back).unwrap();
        assert_eq!(back, "keel");
    }
}
