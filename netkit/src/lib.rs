//! keel-netkit: the one crate in Keel that issues netlink calls and switches network namespaces.
//!
//! Everything else (keel-cni, later runtime-shim and the proxy) reaches the kernel's network configuration
//! through [`Netlink`] (rtnetlink over a socket opened inside a chosen network namespace) and [`netns`]
//! (run a closure with the calling thread inside a namespace). The `testing` feature adds namespaces and veth
//! underlays that remove themselves on drop.

pub mod netns;
mod nl;
pub mod sysctl;
#[cfg(feature = "testing")]
pub mod testing;

pub use nl::{Addr, Link, Neighbour, Netlink, Route};

use std::path::PathBuf;

/// Errors of netlink calls and namespace switches.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A network namespace file could not be opened or entered.
    #[error("network namespace {path}: {source}")]
    Netns {
        /// The namespace file (for example `/var/run/netns/pod1`).
        path: PathBuf,
        /// What the kernel said.
        source: std::io::Error,
    },
    /// A netlink request was refused by the kernel or failed on the socket.
    #[error("netlink {op}: {source}")]
    Netlink {
        /// What was asked, naming the object (`add veth kc1234 peer eth0`).
        op: String,
        /// The errno the kernel returned (0 when the failure was not an errno).
        errno: i32,
        /// The underlying error.
        source: rtnetlink::Error,
    },
    /// Opening the netlink socket or another local IO failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The IO error.
        source: std::io::Error,
    },
}

impl Error {
    /// The errno of a netlink error, if the kernel returned one.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Error::Netlink { errno, .. } if *errno != 0 => Some(*errno),
            Error::Netns { source, .. } | Error::Io { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }

    /// True when the kernel said the object already exists (EEXIST).
    pub fn is_exists(&self) -> bool {
        self.errno() == Some(nix::libc::EEXIST)
    }

    /// True when the kernel said the object does not exist (ENOENT, ENODEV, ESRCH, EADDRNOTAVAIL).
    pub fn is_not_found(&self) -> bool {
        matches!(
            self.errno(),
            Some(nix::libc::ENOENT | nix::libc::ENODEV | nix::libc::ESRCH | nix::libc::EADDRNOTAVAIL)
        )
    }
}

/// Result of netkit calls.
pub type Result<T> = std::result::Result<T, Error>;
