//! Link settings for the `keel-pause` binary: a static, libc-free executable with its own `_start`.
//!
//! Everything here applies to the bin target only (`rustc-link-arg-bins`), never to the library or the tests.
//! See `link.ld` for why the sysroot is linked nominally and then discarded.

use std::path::PathBuf;
use std::{env, fs, io};

/// The native libraries rustc names for std on x86_64-unknown-linux-gnu (`-lgcc_s -lutil -lrt -lpthread -lm -ldl
/// -lc`). Empty archives of these names are found first, so no shared library takes part in the link and the
/// output has no `.dynamic`/`PT_INTERP`: it is static, and any real use of libc would be an undefined symbol.
const STD_NATIVE_LIBS: &[&str] = &["gcc_s", "util", "rt", "pthread", "m", "dl", "c"];

fn main() -> io::Result<()> {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=link.ld");

    let arch = env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let os = env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if arch != "x86_64" || os != "linux" {
        return Err(io::Error::other(format!(
            "keel-pause uses raw x86_64 Linux syscalls; target {arch}-{os} is not supported (port src/sys.rs first)"
        )));
    }

    let out_dir = PathBuf::from(env::var_os("OUT_DIR").ok_or_else(|| io::Error::other("OUT_DIR is not set"))?);
    let manifest_dir = PathBuf::from(
        env::var_os("CARGO_MANIFEST_DIR").ok_or_else(|| io::Error::other("CARGO_MANIFEST_DIR is not set"))?,
    );

    let nolibc = out_dir.join("nolibc");
    fs::create_dir_all(&nolibc)?;
    for lib in STD_NATIVE_LIBS {
        // An empty ar archive is just its magic line.
        fs::write(nolibc.join(format!("lib{lib}.a")), b"!<arch>\n")?;
    }

    for arg in [
        // Our own `_start` (src/main.rs) instead of crt1.o; no libc start-up code.
        "-nostartfiles".to_string(),
        "-static".to_string(),
        // Fixed load address; rustc asks for a PIE, which a static binary without a self-relocator cannot be.
        "-no-pie".to_string(),
        format!("-Wl,-T,{}", manifest_dir.join("link.ld").display()),
        "-Wl,--build-id=none".to_string(),
        // A link-arg `-L` (not `rustc-link-search`) so that only the binary, not the test executables, sees it.
        format!("-L{}", nolibc.display()),
    ] {
        println!("cargo:rustc-link-arg-bins={arg}");
    }
    Ok(())
}
