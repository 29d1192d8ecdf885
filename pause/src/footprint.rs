//! What keel-pause costs a node, for the tests and `keel bench pods`: the size of the binary, whether it is
//! static, and the resident memory of a running one.
//!
//! Host-side helpers (std); enabled by the `std` feature and never part of the keel-pause binary.

use std::fs;
use std::io;
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::sys::{self, SigSet};

/// The figures `keel bench pods` prints beside `pause.c`'s.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Footprint {
    /// Size of the executable file.
    pub binary_bytes: u64,
    /// `VmRSS` of a running, idle keel-pause (KiB, as the kernel reports it; "kB" in /proc).
    pub rss_kib: u64,
}

/// Size of the executable at `bin`.
pub fn binary_size(bin: &Path) -> io::Result<u64> {
    fs::metadata(bin)
        .map(|m| m.len())
        .map_err(|e| io::Error::new(e.kind(), format!("keel-pause binary {}: {e}", bin.display())))
}

/// One field of `/proc/PID/status` (for example `VmRSS`, `SigBlk`, `State`), without the name and colon.
pub fn status_field(pid: u32, field: &str) -> io::Result<String> {
    let path = format!("/proc/{pid}/status");
    let status = fs::read_to_string(&path).map_err(|e| io::Error::new(e.kind(), format!("{path}: {e}")))?;
    status
        .lines()
        .find_map(|line| {
            line.strip_prefix(field)?
                .strip_prefix(':')
                .map(|v| v.trim().to_string())
        })
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, format!("{path} has no {field} field")))
}

/// `VmRSS` of process `pid`, in KiB.
pub fn rss_kib(pid: u32) -> io::Result<u64> {
    let value = status_field(pid, "VmRSS")?;
    value
        .strip_suffix(" kB")
        .and_then(|n| n.trim().parse().ok())
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("pid {pid}: VmRSS is {value:?}, not \"N kB\""),
            )
        })
}

/// Whether keel-pause `pid` has finished starting: its signals are blocked, so a SIGTERM now ends it with 0
/// (before, it would kill it by the default action).
///
/// `SigBlk` shows SIGPIPE from then on; it does not always show the waited-for signals, because while
/// `rt_sigtimedwait` sleeps the kernel keeps those in the saved mask it restores afterwards, not in `SigBlk`.
pub fn is_ready(pid: u32) -> io::Result<bool> {
    let mask = status_field(pid, "SigBlk")?;
    let mask = u64::from_str_radix(&mask, 16)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("pid {pid}: SigBlk {mask:?}: {e}")))?;
    Ok(SigSet::EMPTY.with(sys::SIGPIPE).bits() & mask != 0)
}

/// Polls [`is_ready`] until it holds, for at most `timeout`.
pub fn wait_ready(pid: u32, timeout: Duration) -> io::Result<()> {
    let start = Instant::now();
    while !is_ready(pid)? {
        if start.elapsed() > timeout {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("keel-pause pid {pid} not ready after {timeout:?}"),
            ));
        }
        thread::sleep(Duration::from_millis(5));
    }
    Ok(())
}

/// Whether the ELF executable at `bin` is statically linked: it has neither a `PT_INTERP` (program interpreter)
/// nor a `PT_DYNAMIC` segment.
pub fn is_static_elf(bin: &Path) -> io::Result<bool> {
    const PT_DYNAMIC: u32 = 2;
    const PT_INTERP: u32 = 3;
    let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, format!("{}: {what}", bin.display()));
    let elf = fs::read(bin).map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", bin.display())))?;
    if elf.get(..5) != Some(b"\x7fELF\x02") || elf.get(5) != Some(&1) {
        return Err(bad("not a little-endian ELF64 file"));
    }
    let u16_at = |at: usize| elf.get(at..at + 2).map(|b| u16::from_le_bytes([b[0], b[1]]) as usize);
    let u32_at = |at: usize| {
        elf.get(at..at + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let u64_at = |at: usize| {
        elf.get(at..at + 8)
            .map(|b| u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as usize)
    };
    let (phoff, phentsize, phnum) = match (u64_at(0x20), u16_at(0x36), u16_at(0x38)) {
        (Some(off), Some(size), Some(num)) => (off, size, num),
        _ => return Err(bad("truncated ELF header")),
    };
    for i in 0..phnum {
        match u32_at(phoff + i * phentsize) {
            Some(PT_INTERP | PT_DYNAMIC) => return Ok(false),
            Some(_) => {}
            None => return Err(bad("truncated program headers")),
        }
    }
    Ok(true)
}

/// Measures the keel-pause binary at `bin`: its size, and the RSS of one started from it once it is idle. The
/// process is killed (by its pid, which this function started) before returning.
pub fn measure(bin: &Path) -> io::Result<Footprint> {
    let binary_bytes = binary_size(bin)?;
    let mut child = Command::new(bin)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| io::Error::new(e.kind(), format!("starting {}: {e}", bin.display())))?;
    let rss = wait_ready(child.id(), Duration::from_secs(10)).and_then(|()| rss_kib(child.id()));
    let _ = child.kill();
    let _ = child.wait();
    Ok(Footprint {
        binary_bytes,
        rss_kib: rss?,
    })
}
