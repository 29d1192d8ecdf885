//! IPAM from the node's podCIDR, persisted as files under `dataDir/<network name>/` and serialised across processes
//! by an exclusive `flock` on `dataDir/<network>/lock`.
//!
//! Files: `<a.b.c.d>` (one per reserved address, holding `containerID\nifname\n`), `o-<hash>` (one per attachment,
//! holding `a.b.c.d\ncontainerID\nifname\n`, so a second reservation for one attachment is refused in O(1)), and
//! `last_reserved_ip` (allocation resumes after it, round-robin like host-local, so a freed address is not handed out
//! again at once). Reserve writes the address file before the owner file; release removes them in the same order,
//! so a crash at any point leaves files that DEL of the attachment or GC removes.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use crate::cidr::Ipv4Net;

/// Who holds an address: the attachment's CNI_CONTAINERID and CNI_IFNAME.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Owner {
    /// CNI_CONTAINERID.
    pub container_id: String,
    /// CNI_IFNAME.
    pub ifname: String,
}

impl Owner {
    /// An owner.
    pub fn new(container_id: &str, ifname: &str) -> Self {
        Owner {
            container_id: container_id.into(),
            ifname: ifname.into(),
        }
    }

    /// A stable 64-bit FNV-1a hash of the attachment (names its owner file and its host veth).
    pub fn hash(&self) -> u64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in self.container_id.bytes().chain([0]).chain(self.ifname.bytes()) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        h
    }
}

/// IPAM errors.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Every address of the range is reserved.
    #[error("no free address left in podCIDR {0}: DEL unused pods, run GC, or give the node a larger podCIDR")]
    Exhausted(Ipv4Net),
    /// The attachment already holds an address.
    #[error("attachment {container_id}/{ifname} already holds {ip}; DEL it first")]
    AlreadyReserved {
        /// Container id.
        container_id: String,
        /// Interface name.
        ifname: String,
        /// The address it holds.
        ip: Ipv4Addr,
    },
    /// The data directory could not be read or written.
    #[error("IPAM store {path}: {source}; check that dataDir is a writable local directory")]
    Io {
        /// File or directory.
        path: PathBuf,
        /// The IO error.
        source: std::io::Error,
    },
}

/// IPAM result.
pub type Result<T> = std::result::Result<T, Error>;

/// Every address of `first..=last` once, starting right after `after` (or at `first`), wrapping around.
pub fn candidates(first: Ipv4Addr, last: Ipv4Addr, after: Option<Ipv4Addr>) -> impl Iterator<Item = Ipv4Addr> {
    let (f, l) = (u32::from(first), u32::from(last));
    let size = l.saturating_sub(f) + 1;
    let start = match after.map(u32::from) {
        Some(a) if (f..=l).contains(&a) => (a - f + 1) % size,
        _ => 0,
    };
    (0..size).map(move |i| Ipv4Addr::from(f + (start + i) % size))
}

/// The file-backed allocator for one network.
pub struct Ipam {
    dir: PathBuf,
    range: Ipv4Net,
}

/// The exclusive lock; released on drop (closing the file releases the flock).
struct Locked(#[allow(dead_code)] File);

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl Ipam {
    /// The allocator for `network` under `data_dir`, handing out addresses of `range`.
    pub fn new(data_dir: &Path, network: &str, range: Ipv4Net) -> Self {
        Ipam {
            dir: data_dir.join(network),
            range,
        }
    }

    /// The network's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn lock(&self) -> Result<Locked> {
        std::fs::create_dir_all(&self.dir).map_err(io(&self.dir))?;
        let path = self.dir.join("lock");
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io(&path))?;
        f.lock().map_err(io(&path))?;
        Ok(Locked(f))
    }

    fn owner_path(&self, o: &Owner) -> PathBuf {
        self.dir.join(format!("o-{:016x}", o.hash()))
    }

    fn write_new(path: &Path, body: &str) -> std::io::Result<bool> {
        match OpenOptions::new().write(true).create_new(true).open(path) {
            Ok(mut f) => f.write_all(body.as_bytes()).map(|_| true),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn read_owner_file(&self, o: &Owner) -> Result<Option<Option<Ipv4Addr>>> {
        let path = self.owner_path(o);
        match std::fs::read_to_string(&path) {
            Ok(s) => Ok(Some(s.lines().next().and_then(|l| l.parse().ok()))),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(&path)(e)),
        }
    }

    /// Reserve the next free address for `owner`.
    pub fn reserve(&self, owner: &Owner) -> Result<Ipv4Addr> {
        let (first, last) = self.range.host_range().ok_or(Error::Exhausted(self.range))?;
        let _lock = self.lock()?;
        if let Some(ip) = self.read_owner_file(owner)? {
            return Err(Error::AlreadyReserved {
                container_id: owner.container_id.clone(),
                ifname: owner.ifname.clone(),
                ip: ip.unwrap_or(Ipv4Addr::UNSPECIFIED),
            });
        }
        let last_path = self.dir.join("last_reserved_ip");
        let after = std::fs::read_to_string(&last_path)
            .ok()
            .and_then(|s| s.trim().parse().ok());
        let body = format!("{}\n{}\n", owner.container_id, owner.ifname);
        for ip in candidates(first, last, after) {
            let path = self.dir.join(ip.to_string());
            if Self::write_new(&path, &body).map_err(io(&path))? {
                let opath = self.owner_path(owner);
                if let Err(e) = Self::write_new(&opath, &format!("{ip}\n{body}")) {
                    let _ = std::fs::remove_file(&path);
                    return Err(io(&opath)(e));
                }
                write_last(&last_path, ip).map_err(io(&last_path))?;
                return Ok(ip);
            }
        }
        Err(Error::Exhausted(self.range))
    }

    /// The address `owner` holds, if any.
    pub fn find(&self, owner: &Owner) -> Result<Option<Ipv4Addr>> {
        Ok(self.read_owner_file(owner)?.flatten())
    }

    /// Release what `owner` holds; `Ok(None)` when it held nothing (DEL is idempotent).
    pub fn release(&self, owner: &Owner) -> Result<Option<Ipv4Addr>> {
        if !self.dir.exists() {
            return Ok(None);
        }
        let _lock = self.lock()?;
        self.release_locked(owner)
    }

    fn release_locked(&self, owner: &Owner) -> Result<Option<Ipv4Addr>> {
        let ip = self.read_owner_file(owner)?.flatten();
        if let Some(ip) = ip {
            let path = self.dir.join(ip.to_string());
            // Remove the address only if it is still this owner's.
            if let Ok(s) = std::fs::read_to_string(&path)
                && parse_owner(&s).as_ref() == Some(owner)
            {
                remove(&path)?;
            }
        }
        remove(&self.owner_path(owner))?;
        Ok(ip)
    }

    /// Every reservation: address and owner (an address file that cannot be read names no owner).
    pub fn list(&self) -> Result<Vec<(Ipv4Addr, Option<Owner>)>> {
        let mut out = Vec::new();
        let rd = match std::fs::read_dir(&self.dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(io(&self.dir)(e)),
        };
        for entry in rd {
            let entry = entry.map_err(io(&self.dir))?;
            let Some(ip) = entry.file_name().to_str().and_then(|n| n.parse::<Ipv4Addr>().ok()) else {
                continue;
            };
            let owner = std::fs::read_to_string(entry.path()).ok().and_then(|s| parse_owner(&s));
            out.push((ip, owner));
        }
        out.sort_by_key(|(ip, _)| *ip);
        Ok(out)
    }

    /// Number of addresses still free.
    pub fn free(&self) -> Result<usize> {
        let (first, last) = self.range.host_range().ok_or(Error::Exhausted(self.range))?;
        let size = (u32::from(last) - u32::from(first) + 1) as usize;
        let used = self.list()?.iter().filter(|(ip, _)| self.range.contains(*ip)).count();
        Ok(size.saturating_sub(used))
    }

    /// GC: release every reservation whose owner is not in `keep` (and owner files left by a crash). Returns the
    /// owners released, so their host links can be removed too.
    pub fn retain(&self, keep: &HashSet<Owner>) -> Result<Vec<Owner>> {
        if !self.dir.exists() {
            return Ok(Vec::new());
        }
        let _lock = self.lock()?;
        let mut gone = Vec::new();
        for entry in std::fs::read_dir(&self.dir).map_err(io(&self.dir))? {
            let entry = entry.map_err(io(&self.dir))?;
            let name = entry.file_name().to_string_lossy().to_string();
            let body = std::fs::read_to_string(entry.path()).unwrap_or_default();
            if name.parse::<Ipv4Addr>().is_ok() {
                match parse_owner(&body) {
                    Some(o) if keep.contains(&o) => {}
                    Some(o) => {
                        remove(&entry.path())?;
                        gone.push(o);
                    }
                    None => remove(&entry.path())?,
                }
            } else if name.starts_with("o-") {
                let o = parse_owner(body.split_once('\n').map(|(_, rest)| rest).unwrap_or(""));
                match o {
                    Some(o) if keep.contains(&o) => {}
                    Some(o) => {
                        remove(&entry.path())?;
                        if !gone.contains(&o) {
                            gone.push(o);
                        }
                    }
                    None => remove(&entry.path())?,
                }
            }
        }
        Ok(gone)
    }
}

/// Record the last address handed out. Written in place, padded to a fixed width, never truncated: on ext4 a
/// truncate-and-rewrite forces a flush at close (auto_da_alloc), which cost ~2.5 ms per ADD here.
fn write_last(path: &Path, ip: Ipv4Addr) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    let f = OpenOptions::new().create(true).truncate(false).write(true).open(path)?;
    f.write_all_at(format!("{:<15}\n", ip.to_string()).as_bytes(), 0)
}

fn parse_owner(s: &str) -> Option<Owner> {
    let mut l = s.lines();
    let (c, i) = (l.next()?, l.next()?);
    (!c.is_empty() && !i.is_empty()).then(|| Owner::new(c, i))
}

fn remove(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io(path)(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn candidates_resume_after_the_last_and_wrap() {
        let (f, l) = (ip("10.0.0.1"), ip("10.0.0.4"));
        let all = |after| {
            candidates(f, l, after)
                .map(|i: Ipv4Addr| i.octets()[3])
                .collect::<Vec<_>>()
        };
        assert_eq!(all(None), vec![1, 2, 3, 4]);
        assert_eq!(all(Some(ip("10.0.0.2"))), vec![3, 4, 1, 2]);
        assert_eq!(all(Some(ip("10.0.0.4"))), vec![1, 2, 3, 4]);
        assert_eq!(
            all(Some(ip("192.168.0.1"))),
            vec![1, 2, 3, 4],
            "an address outside the range restarts"
        );
    }

    #[test]
    fn reserve_release_round_robin_and_exhaustion() {
        let dir = tempfile::tempdir().unwrap();
        let ipam = Ipam::new(dir.path(), "net", "10.1.0.0/29".parse().unwrap());
        let a = Owner::new("a", "eth0");
        let ips: Vec<_> = (0..6)
            .map(|i| ipam.reserve(&Owner::new(&format!("c{i}"), "eth0")).unwrap().octets()[3])
            .collect();
        assert_eq!(ips, vec![1, 2, 3, 4, 5, 6]);
        assert!(matches!(ipam.reserve(&a), Err(Error::Exhausted(_))));
        assert_eq!(ipam.free().unwrap(), 0);
        assert_eq!(ipam.release(&Owner::new("c1", "eth0")).unwrap(), Some(ip("10.1.0.2")));
        assert_eq!(
            ipam.release(&Owner::new("c1", "eth0")).unwrap(),
            None,
            "DEL twice is fine"
        );
        assert_eq!(ipam.reserve(&a).unwrap(), ip("10.1.0.2"));
        assert!(matches!(ipam.reserve(&a), Err(Error::AlreadyReserved { .. })));
        assert_eq!(ipam.find(&a).unwrap(), Some(ip("10.1.0.2")));
        // Not reused at once: after freeing .3, the next free address after the last one handed out wins.
        ipam.release(&Owner::new("c2", "eth0")).unwrap();
        ipam.release(&Owner::new("c5", "eth0")).unwrap();
        assert_eq!(ipam.reserve(&Owner::new("b", "eth0")).unwrap(), ip("10.1.0.3"));
        assert_eq!(ipam.reserve(&Owner::new("d", "eth0")).unwrap(), ip("10.1.0.6"));
    }

    #[test]
    fn retain_releases_everything_not_listed_including_crash_leftovers() {
        let dir = tempfile::tempdir().unwrap();
        let ipam = Ipam::new(dir.path(), "net", "10.1.0.0/24".parse().unwrap());
        let (a, b) = (Owner::new("a", "eth0"), Owner::new("b", "eth0"));
        ipam.reserve(&a).unwrap();
        ipam.reserve(&b).unwrap();
        // A crash after the address file was written, before the owner file.
        std::fs::write(ipam.dir().join("10.1.0.77"), "c\neth0\n").unwrap();
        std::fs::write(ipam.dir().join("10.1.0.78"), "").unwrap();
        let gone = ipam.retain(&HashSet::from([a.clone()])).unwrap();
        assert_eq!(gone.len(), 2, "{gone:?}");
        assert!(gone.contains(&b) && gone.contains(&Owner::new("c", "eth0")));
        let left: Vec<_> = ipam.list().unwrap();
        assert_eq!(left, vec![(ip("10.1.0.1"), Some(a.clone()))]);
        assert_eq!(ipam.find(&b).unwrap(), None);
    }

    #[test]
    fn concurrent_reservations_never_share_an_address() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_path_buf();
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let path = path.clone();
                std::thread::spawn(move || {
                    let ipam = Ipam::new(&path, "net", "10.2.0.0/24".parse().unwrap());
                    (0..20)
                        .map(|i| ipam.reserve(&Owner::new(&format!("t{t}-{i}"), "eth0")).unwrap())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let all: Vec<Ipv4Addr> = threads.into_iter().flat_map(|t| t.join().unwrap()).collect();
        let unique: HashSet<_> = all.iter().collect();
        assert_eq!((all.len(), unique.len()), (160, 160));
    }
}
