//! Network namespace switching. A namespace is entered only by a short-lived thread made for the purpose, so the
//! caller's threads (and a tokio runtime's workers) never change namespace.

use std::fs::File;
use std::path::{Path, PathBuf};

use nix::sched::{CloneFlags, setns};

use crate::{Error, Result};

/// Where `ip netns` keeps named network namespaces.
pub const NETNS_RUN_DIR: &str = "/var/run/netns";

/// The path of a named network namespace (`/var/run/netns/NAME`).
pub fn named(name: &str) -> PathBuf {
    Path::new(NETNS_RUN_DIR).join(name)
}

/// Open a network namespace file (a bind mount under `/var/run/netns`, or `/proc/PID/ns/net`).
pub fn open(path: &Path) -> Result<File> {
    File::open(path).map_err(|source| Error::Netns {
        path: path.to_path_buf(),
        source,
    })
}

/// Run `f` on a new thread whose network namespace is `path`, and return what it returns. Sockets created by `f`
/// stay bound to that namespace after the thread ends; processes spawned by `f` start inside it.
pub fn run_in<T: Send>(path: &Path, f: impl FnOnce() -> T + Send) -> Result<T> {
    let ns = open(path)?;
    run_in_file(path, &ns, f)
}

/// Like [`run_in`] with a namespace file already open (`path` is only used in errors).
pub fn run_in_file<T: Send>(path: &Path, ns: &File, f: impl FnOnce() -> T + Send) -> Result<T> {
    std::thread::scope(|s| {
        s.spawn(|| {
            setns(ns, CloneFlags::CLONE_NEWNET).map_err(|e| Error::Netns {
                path: path.to_path_buf(),
                source: std::io::Error::from(e),
            })?;
            Ok(f())
        })
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// Run `f` with the *calling* thread inside the namespace `ns`, then switch the thread back to the namespace it was
/// in, also when `f` panics. No new thread, so no scheduling hand-off (which costs milliseconds on a loaded
/// machine). Only for a thread that runs nothing else meanwhile, such as a single-threaded CLI like keel-cni; a
/// tokio worker must use [`run_in_file`] instead.
pub fn run_here_in<T>(path: &Path, ns: &File, f: impl FnOnce() -> T) -> Result<T> {
    let back_path = Path::new("/proc/thread-self/ns/net");
    let back = open(back_path)?;
    let err = |p: &Path| {
        let p = p.to_path_buf();
        move |e: nix::Error| Error::Netns {
            path: p,
            source: std::io::Error::from(e),
        }
    };
    setns(ns, CloneFlags::CLONE_NEWNET).map_err(err(path))?;
    struct Restore<'a>(&'a File);
    impl Drop for Restore<'_> {
        fn drop(&mut self) {
            // Failing to return would leave the thread in the pod's namespace: nothing sane can follow.
            if let Err(e) = setns(self.0, CloneFlags::CLONE_NEWNET) {
                eprintln!("fatal: cannot return to the original network namespace: {e}");
                std::process::abort();
            }
        }
    }
    let _restore = Restore(&back);
    Ok(f())
}
