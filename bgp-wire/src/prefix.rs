//! IP prefixes as BGP carries them: canonical (host bits zero), `Copy`, 18 bytes, no heap.
//!
//! The crate has its own type rather than `ipnet` so that `bgp-wire` stays free of serde and
//! so that a prefix is canonical by construction (two equal routes always compare equal).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use crate::iana::Afi;

/// An IPv4 or IPv6 prefix with all host bits zero.
///
/// Ordering is IPv4 before IPv6, then by address, then by length, so a sorted list keeps a
/// covering prefix right before its first more-specific (`10.0.0.0/8` < `10.0.0.0/16`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Prefix {
    /// IPv4 prefix; length ≤ 32.
    V4 {
        /// Network address (host bits zero).
        addr: Ipv4Addr,
        /// Prefix length in bits.
        len: u8,
    },
    /// IPv6 prefix; length ≤ 128.
    V6 {
        /// Network address (host bits zero).
        addr: Ipv6Addr,
        /// Prefix length in bits.
        len: u8,
    },
}

/// Why a prefix could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrefixError {
    /// The length is longer than the address.
    #[error("prefix length {0} is too long for the address family")]
    TooLong(u8),
    /// The text is not `address/length`.
    #[error("not a prefix in address/length form")]
    Syntax,
}

impl Prefix {
    /// An IPv4 prefix; host bits of `addr` are cleared.
    pub fn v4(addr: Ipv4Addr, len: u8) -> Result<Self, PrefixError> {
        if len > 32 {
            return Err(PrefixError::TooLong(len));
        }
        Ok(Self::V4 {
            addr: Ipv4Addr::from(u32::from(addr) & mask_v4(len)),
            len,
        })
    }

    /// An IPv6 prefix; host bits of `addr` are cleared.
    pub fn v6(addr: Ipv6Addr, len: u8) -> Result<Self, PrefixError> {
        if len > 128 {
            return Err(PrefixError::TooLong(len));
        }
        Ok(Self::V6 {
            addr: Ipv6Addr::from(u128::from(addr) & mask_v6(len)),
            len,
        })
    }

    /// A prefix of either family; host bits of `addr` are cleared.
    pub fn new(addr: IpAddr, len: u8) -> Result<Self, PrefixError> {
        match addr {
            IpAddr::V4(a) => Self::v4(a, len),
            IpAddr::V6(a) => Self::v6(a, len),
        }
    }

    /// The network address.
    pub fn addr(&self) -> IpAddr {
        match *self {
            Self::V4 { addr, .. } => IpAddr::V4(addr),
            Self::V6 { addr, .. } => IpAddr::V6(addr),
        }
    }

    /// The prefix length in bits.
    #[allow(clippy::len_without_is_empty)] // a prefix is never "empty"
    pub fn len(&self) -> u8 {
        match *self {
            Self::V4 { len, .. } | Self::V6 { len, .. } => len,
        }
    }

    /// True for a default route (`0.0.0.0/0`, `::/0`).
    pub fn is_default(&self) -> bool {
        self.len() == 0
    }

    /// The address family.
    pub fn afi(&self) -> Afi {
        match self {
            Self::V4 { .. } => Afi::Ipv4,
            Self::V6 { .. } => Afi::Ipv6,
        }
    }

    /// True when `other` lies inside this prefix (a prefix contains itself).
    pub fn contains(&self, other: &Prefix) -> bool {
        match (*self, *other) {
            (Self::V4 { addr: a, len: l }, Self::V4 { addr: b, len: m }) => {
                l <= m && u32::from(b) & mask_v4(l) == u32::from(a)
            }
            (Self::V6 { addr: a, len: l }, Self::V6 { addr: b, len: m }) => {
                l <= m && u128::from(b) & mask_v6(l) == u128::from(a)
            }
            _ => false,
        }
    }
}

/// Netmask of an IPv4 prefix of `len` ≤ 32 bits.
#[inline]
pub(crate) fn mask_v4(len: u8) -> u32 {
    // Branch-free: shifting a 64-bit value by 32 leaves zero in the low half for /0.
    (u64::MAX << (32 - u32::from(len.min(32)))) as u32
}

/// Netmask of an IPv6 prefix of `len` ≤ 128 bits.
#[inline]
pub(crate) fn mask_v6(len: u8) -> u128 {
    if len == 0 {
        0
    } else {
        u128::MAX << (128 - u32::from(len.min(128)))
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::V4 { addr, len } => write!(f, "{addr}/{len}"),
            Self::V6 { addr, len } => write!(f, "{addr}/{len}"),
        }
    }
}

impl fmt::Debug for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Prefix {
    type Err = PrefixError;

    /// Parses `address/length`; host bits are cleared (`10.1.2.3/8` gives `10.0.0.0/8`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr, len) = s.split_once('/').ok_or(PrefixError::Syntax)?;
        let addr: IpAddr = addr.parse().map_err(|_| PrefixError::Syntax)?;
        let len: u8 = len.parse().map_err(|_| PrefixError::Syntax)?;
        Self::new(addr, len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_and_display() {
        let p: Prefix = "10.1.2.3/8".parse().unwrap();
        assert_eq!(p.to_string(), "10.0.0.0/8");
        let q: Prefix = "2001:db8::1/32".parse().unwrap();
        assert_eq!(q.to_string(), "2001:db8::/32");
        assert!(Prefix::v4(Ipv4Addr::UNSPECIFIED, 33).is_err());
        assert!(Prefix::v6(Ipv6Addr::UNSPECIFIED, 129).is_err());
        assert_eq!("0.0.0.0/0".parse::<Prefix>().unwrap().len(), 0);
        assert_eq!(
            "1.2.3.4/32".parse::<Prefix>().unwrap().to_string(),
            "1.2.3.4/32"
        );
        assert!("1.2.3.4".parse::<Prefix>().is_err());
    }

    #[test]
    fn order_and_containment() {
        let a: Prefix = "10.0.0.0/8".parse().unwrap();
        let b: Prefix = "10.0.0.0/16".parse().unwrap();
        let c: Prefix = "::/0".parse().unwrap();
        assert!(a < b && b < c);
        assert!(a.contains(&b) && !b.contains(&a) && !c.contains(&a));
        assert_eq!(std::mem::size_of::<Prefix>(), 18);
    }
}
