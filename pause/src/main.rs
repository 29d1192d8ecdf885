//! The `keel-pause` binary: `_start` and nothing else; the program is `keel_pause::run`.
//!
//! Static, without libc or the std runtime: see `build.rs` and `link.ld` for how it is linked.

#![no_std]
#![no_main]
// `_start` must be exported under its fixed name and written in assembly (`#[unsafe(no_mangle)]`, naked).
#![allow(unsafe_code)]

// Cargo builds every workspace crate with panic=unwind, and rustc rejects a `no_std` executable under unwind
// because the `eh_personality` lang item lives in std. Linking std satisfies it; `link.ld` then discards all of
// std (and any reference to it fails the link), so this costs nothing in the binary.
extern crate std as _;

/// Never asked for memory (nothing in keel-pause allocates); it stands in for std's allocator, which `link.ld`
/// discards, so that rustc's allocator shim links.
struct NoAlloc;

// SAFETY: `alloc` always reports failure (null), which `GlobalAlloc` permits; `dealloc` is never given a block
// because none is ever handed out.
unsafe impl core::alloc::GlobalAlloc for NoAlloc {
    unsafe fn alloc(&self, _layout: core::alloc::Layout) -> *mut u8 {
        core::ptr::null_mut()
    }

    unsafe fn dealloc(&self, _ptr: *mut u8, _layout: core::alloc::Layout) {}
}

#[global_allocator]
static ALLOCATOR: NoAlloc = NoAlloc;

/// The entry point the kernel jumps to, with `rsp` at `argc`.
#[unsafe(naked)]
#[unsafe(no_mangle)]
unsafe extern "C" fn _start() -> ! {
    core::arch::naked_asm!(
        "xor ebp, ebp", // the outermost frame
        "mov rdi, rsp", // entry(sp): argc, argv..., NULL, envp..., NULL, auxv
        "and rsp, -16", // the ABI's stack alignment at a call
        "call {entry}",
        "ud2",
        entry = sym entry,
    )
}

// "C-unwind" rather than "C": nothing here unwinds (a panic could not even link), and a "C" function would get an
// abort-on-unwind landing pad that refers to the std panic runtime.
extern "C-unwind" fn entry(sp: *const usize) -> ! {
    // SAFETY: `_start` passes the untouched initial stack pointer, which is what `from_initial_stack` requires.
    let args = unsafe { keel_pause::Args::from_initial_stack(sp) };
    keel_pause::run(&args)
}
