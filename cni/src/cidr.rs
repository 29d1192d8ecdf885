//! IPv4 prefixes: parsing, containment, overlap, host ranges. Pure arithmetic, no IO.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// An IPv4 prefix such as `10.42.1.0/24`, always stored with host bits cleared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ipv4Net {
    addr: Ipv4Addr,
    prefix: u8,
}

impl Ipv4Net {
    /// A prefix from an address (host bits are cleared) and a length; `None` when the length exceeds 32.
    pub fn new(addr: Ipv4Addr, prefix: u8) -> Option<Self> {
        (prefix <= 32).then(|| Ipv4Net {
            addr: Ipv4Addr::from(u32::from(addr) & mask(prefix)),
            prefix,
        })
    }

    /// The network address.
    pub fn network(&self) -> Ipv4Addr {
        self.addr
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// The broadcast (last) address.
    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) | !mask(self.prefix))
    }

    /// Whether `ip` is inside.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & mask(self.prefix) == u32::from(self.addr)
    }

    /// Whether `other` lies entirely inside this prefix.
    pub fn contains_net(&self, other: &Ipv4Net) -> bool {
        other.prefix >= self.prefix && self.contains(other.addr)
    }

    /// Whether the two prefixes share any address.
    pub fn overlaps(&self, other: &Ipv4Net) -> bool {
        self.contains(other.addr) || other.contains(self.addr)
    }

    /// The first and last address pods may get: the network and broadcast addresses excluded.
    /// `None` for /31 and /32, which leave no such address.
    pub fn host_range(&self) -> Option<(Ipv4Addr, Ipv4Addr)> {
        if self.prefix >= 31 {
            return None;
        }
        Some((
            Ipv4Addr::from(u32::from(self.addr) + 1),
            Ipv4Addr::from(u32::from(self.broadcast()) - 1),
        ))
    }
}

fn mask(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix))
    }
}

impl fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// Why a prefix did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Not of the form `A.B.C.D/N`.
    #[error("{0:?} is not an IPv4 prefix of the form A.B.C.D/N")]
    Syntax(String),
    /// Host bits set (`10.42.1.5/24`): ambiguous, so refused.
    #[error("{0:?} has host bits set; write the network address (for example {1})")]
    HostBits(String, Ipv4Net),
}

impl FromStr for Ipv4Net {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, ParseError> {
        let syntax = || ParseError::Syntax(s.to_string());
        let (a, p) = s.split_once('/').ok_or_else(syntax)?;
        let addr: Ipv4Addr = a.parse().map_err(|_| syntax())?;
        if p.is_empty() || p.len() > 2 || !p.bytes().all(|b| b.is_ascii_digit()) {
            return Err(syntax());
        }
        let prefix: u8 = p.parse().map_err(|_| syntax())?;
        let net = Ipv4Net::new(addr, prefix).ok_or_else(syntax)?;
        if net.addr != addr {
            return Err(ParseError::HostBits(s.to_string(), net));
        }
        Ok(net)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rejects() {
        let n: Ipv4Net = "10.42.1.0/24".parse().unwrap();
        assert_eq!((n.network(), n.prefix()), (Ipv4Addr::new(10, 42, 1, 0), 24));
        assert_eq!(n.broadcast(), Ipv4Addr::new(10, 42, 1, 255));
        assert_eq!(
            n.host_range(),
            Some((Ipv4Addr::new(10, 42, 1, 1), Ipv4Addr::new(10, 42, 1, 254)))
        );
        for bad in [
            "",
            "10.42.1.0",
            "10.42.1.0/",
            "10.42.1.0/33",
            "10.42.1/24",
            "x/24",
            "10.42.1.0/+4",
            "::/0",
        ] {
            assert!(matches!(bad.parse::<Ipv4Net>(), Err(ParseError::Syntax(_))), "{bad}");
        }
        assert!(matches!(
            "10.42.1.5/24".parse::<Ipv4Net>(),
            Err(ParseError::HostBits(..))
        ));
        assert_eq!("0.0.0.0/0".parse::<Ipv4Net>().unwrap().broadcast(), Ipv4Addr::BROADCAST);
        assert_eq!("10.0.0.0/31".parse::<Ipv4Net>().unwrap().host_range(), None);
    }

    #[test]
    fn containment_and_overlap() {
        let cluster: Ipv4Net = "10.42.0.0/16".parse().unwrap();
        let pod: Ipv4Net = "10.42.1.0/24".parse().unwrap();
        let other: Ipv4Net = "10.43.0.0/24".parse().unwrap();
        assert!(cluster.contains_net(&pod) && !pod.contains_net(&cluster));
        assert!(cluster.overlaps(&pod) && pod.overlaps(&cluster));
        assert!(!pod.overlaps(&other) && !cluster.overlaps(&other));
        assert!(pod.contains(Ipv4Addr::new(10, 42, 1, 200)) && !pod.contains(Ipv4Addr::new(10, 42, 2, 1)));
    }
}
