//! Compact prefix keys and a fast, deterministic hasher for the tables.
//!
//! The Loc-RIB keeps one hash table per address family so that an IPv4 key is one `u64`
//! (address and length packed) instead of the 18-byte [`Prefix`]; an IPv6 key is 17 bytes
//! padded to 24. The hasher is a multiply-rotate hash (the rustc "Fx" scheme): prefixes are
//! not attacker-chosen in a way that matters here (a peer can only send as many prefixes as
//! its session and import limits allow), and it is an order of magnitude faster than SipHash.

use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::net::{Ipv4Addr, Ipv6Addr};

use bgp_wire::Prefix;

/// Multiply-rotate hasher (Fx).
#[derive(Default, Clone, Copy)]
pub struct FxHasher {
    hash: u64,
}

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FxHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.add(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(w));
        }
    }
    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }
    #[inline]
    fn write_u16(&mut self, i: u16) {
        self.add(u64::from(i));
    }
    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }
    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }
    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
    #[inline]
    fn finish(&self) -> u64 {
        // Fold the high bits down: hashbrown takes its control byte from the top 7 bits and
        // the bucket from the low bits; a multiply leaves the low bits weak.
        self.hash ^ (self.hash >> 29)
    }
}

/// `BuildHasher` for [`FxHasher`].
pub type FxBuild = BuildHasherDefault<FxHasher>;

/// A prefix key of one address family.
pub trait FamilyKey: Copy + Eq + Hash + Ord + std::fmt::Debug {
    /// The key of `prefix`, `None` for the other family.
    fn from_prefix(prefix: &Prefix) -> Option<Self>;
    /// The prefix of this key.
    fn prefix(self) -> Prefix;
}

/// IPv4 key: address in the high 32 bits, length in the low 8.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct V4Key(u64);

impl FamilyKey for V4Key {
    #[inline]
    fn from_prefix(prefix: &Prefix) -> Option<Self> {
        match *prefix {
            Prefix::V4 { addr, len } => {
                Some(V4Key((u64::from(u32::from(addr)) << 8) | u64::from(len)))
            }
            Prefix::V6 { .. } => None,
        }
    }
    #[inline]
    fn prefix(self) -> Prefix {
        Prefix::V4 {
            addr: Ipv4Addr::from((self.0 >> 8) as u32),
            len: (self.0 & 0xff) as u8,
        }
    }
}

/// IPv6 key: address halves and length.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct V6Key {
    hi: u64,
    lo: u64,
    len: u8,
}

impl FamilyKey for V6Key {
    #[inline]
    fn from_prefix(prefix: &Prefix) -> Option<Self> {
        match *prefix {
            Prefix::V6 { addr, len } => {
                let a = u128::from(addr);
                Some(V6Key {
                    hi: (a >> 64) as u64,
                    lo: a as u64,
                    len,
                })
            }
            Prefix::V4 { .. } => None,
        }
    }
    #[inline]
    fn prefix(self) -> Prefix {
        Prefix::V6 {
            addr: Ipv6Addr::from((u128::from(self.hi) << 64) | u128::from(self.lo)),
            len: self.len,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip() {
        for s in [
            "0.0.0.0/0",
            "10.0.0.0/8",
            "255.255.255.255/32",
            "192.168.1.0/24",
        ] {
            let p: Prefix = s.parse().unwrap();
            assert_eq!(V4Key::from_prefix(&p).unwrap().prefix(), p);
            assert!(V6Key::from_prefix(&p).is_none());
        }
        for s in ["::/0", "2001:db8::/32", "ffff::1/128"] {
            let p: Prefix = s.parse().unwrap();
            assert_eq!(V6Key::from_prefix(&p).unwrap().prefix(), p);
            assert!(V4Key::from_prefix(&p).is_none());
        }
        assert_eq!(std::mem::size_of::<V4Key>(), 8);
    }

    #[test]
    fn hasher_spreads_sequential_keys() {
        use std::hash::BuildHasher;
        let b = FxBuild::default();
        let mut low = std::collections::HashSet::new();
        for i in 0..4096u32 {
            let p = Prefix::v4(Ipv4Addr::from(i << 8), 24).unwrap();
            low.insert(b.hash_one(V4Key::from_prefix(&p).unwrap()) & 0xfff);
        }
        // Sequential /24s must land in many different buckets of a 4096-bucket table.
        assert!(low.len() > 2000, "{}", low.len());
    }
}
