//! Per-prefix storage: the paths of one destination, 16 bytes each.
//!
//! A destination with one path (the common case: a full table from one peer) stores it
//! inline; two paths share one boxed allocation, more move to a boxed vector. With [`AttrId`] being non-zero the whole
//! [`Paths`] value is 16 bytes, so an IPv4 Loc-RIB entry (8-byte key + paths) is 24 bytes.

use crate::attrs::AttrId;

/// Path flags.
pub mod flag {
    /// Selected best path of the destination.
    pub const BEST: u8 = 1;
    /// Member of the destination's ECMP (multipath) set.
    pub const ECMP: u8 = 2;
    /// Stale: kept for a gracefully restarting peer (RFC 4724 §4.2).
    pub const STALE: u8 = 4;
    /// Long-lived stale (RFC 9494): least preferred, exported only to LLGR peers.
    pub const LLGR: u8 = 8;
}

/// One path to a destination.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Path {
    /// Interned attributes (post-import-policy).
    pub attrs: AttrId,
    /// ADD-PATH identifier the peer sent (0 without ADD-PATH).
    pub rx_id: u32,
    /// ADD-PATH identifier this speaker uses when sending the path (unique per destination,
    /// stable for the path's lifetime).
    pub tx_id: u32,
    /// Source (peer or local protocol) index.
    pub src: u16,
    /// [`flag`] bits.
    pub flags: u8,
}

impl Path {
    /// True when `bit` is set.
    #[inline]
    pub fn has(&self, bit: u8) -> bool {
        self.flags & bit != 0
    }
}

/// All paths of one destination, in arrival order.
#[derive(Clone, Debug)]
pub enum Paths {
    /// Exactly one path.
    One(Path),
    /// Two or more paths (boxed: one pointer keeps the enum at 16 bytes).
    Many(Box<MorePaths>),
}

/// The paths of a destination that has several: two in one allocation (a prefix learned
/// from two peers, the usual multipath case), more in a vector.
#[derive(Clone, Debug)]
pub enum MorePaths {
    /// Exactly two paths.
    Two([Path; 2]),
    /// Three or more paths.
    More(Vec<Path>),
}

impl Paths {
    /// The paths as a slice.
    #[inline]
    pub fn as_slice(&self) -> &[Path] {
        match self {
            Paths::One(p) => std::slice::from_ref(p),
            Paths::Many(m) => match &**m {
                MorePaths::Two(t) => t,
                MorePaths::More(v) => v,
            },
        }
    }

    /// The paths as a mutable slice.
    #[inline]
    pub fn as_mut_slice(&mut self) -> &mut [Path] {
        match self {
            Paths::One(p) => std::slice::from_mut(p),
            Paths::Many(m) => match &mut **m {
                MorePaths::Two(t) => t,
                MorePaths::More(v) => v,
            },
        }
    }

    /// Number of paths (≥ 1).
    #[inline]
    pub fn len(&self) -> usize {
        self.as_slice().len()
    }

    /// Never empty by construction; for clippy's `len_without_is_empty`.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Index of the path from `src` with receive id `rx_id`.
    #[inline]
    pub fn find(&self, src: u16, rx_id: u32) -> Option<usize> {
        self.as_slice()
            .iter()
            .position(|p| p.src == src && p.rx_id == rx_id)
    }

    /// Appends a path.
    pub fn push(&mut self, path: Path) {
        match self {
            Paths::One(p) => *self = Paths::Many(Box::new(MorePaths::Two([*p, path]))),
            Paths::Many(m) => match &mut **m {
                MorePaths::Two([a, b]) => **m = MorePaths::More(vec![*a, *b, path]),
                MorePaths::More(v) => v.push(path),
            },
        }
    }

    /// Removes path `i`; returns `false` when it is the only one (the caller then drops the
    /// whole destination).
    pub fn remove_at(&mut self, i: usize) -> bool {
        match self {
            Paths::One(_) => false,
            Paths::Many(m) => {
                match &mut **m {
                    MorePaths::Two([a, b]) => {
                        // An index past the end removes nothing (as for a vector).
                        match i {
                            0 => *self = Paths::One(*b),
                            1 => *self = Paths::One(*a),
                            _ => {}
                        }
                    }
                    MorePaths::More(v) => {
                        if i < v.len() {
                            v.remove(i);
                        }
                        if let [a, b] = v[..] {
                            **m = MorePaths::Two([a, b]);
                        }
                    }
                }
                true
            }
        }
    }

    /// The selected best path.
    pub fn best(&self) -> Option<&Path> {
        self.as_slice().iter().find(|p| p.has(flag::BEST))
    }

    /// The smallest ADD-PATH send id (≥ 1) not used by any path.
    pub fn free_tx_id(&self) -> u32 {
        let s = self.as_slice();
        // With `len` paths one of 1..=len+1 is free. A bitmap keeps this linear: an ADD-PATH
        // peer can put thousands of paths on one destination, and a scan per candidate id
        // made every insertion quadratic.
        let mut used = vec![false; s.len() + 1];
        for p in s {
            let slot = usize::try_from(p.tx_id)
                .ok()
                .and_then(|i| i.checked_sub(1))
                .and_then(|i| used.get_mut(i));
            if let Some(slot) = slot {
                *slot = true;
            }
        }
        used.iter()
            .position(|u| !u)
            .and_then(|i| u32::try_from(i + 1).ok())
            .unwrap_or(u32::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(tx_id: u32) -> Path {
        let mut interner = crate::attrs::Interner::default();
        Path {
            attrs: interner.intern(crate::RouteAttrs::bgp(Default::default())),
            rx_id: tx_id,
            tx_id,
            src: 3,
            flags: 0,
        }
    }

    #[test]
    fn free_tx_id_is_the_smallest_unused() {
        let mut paths = Paths::One(path(1));
        assert_eq!(paths.free_tx_id(), 2);
        paths.push(path(3));
        assert_eq!(paths.free_tx_id(), 2);
        paths.push(path(2));
        assert_eq!(paths.free_tx_id(), 4);
        paths.push(path(u32::MAX));
        assert_eq!(paths.free_tx_id(), 4);
        let mut paths = Paths::One(path(7));
        assert_eq!(paths.free_tx_id(), 1);
        paths.push(path(1));
        assert_eq!(paths.free_tx_id(), 2);
    }

    #[test]
    fn push_and_remove_keep_arrival_order_across_representations() {
        let mut paths = Paths::One(path(1));
        for tx in 2..=5 {
            paths.push(path(tx));
        }
        let ids = |p: &Paths| p.as_slice().iter().map(|p| p.tx_id).collect::<Vec<_>>();
        assert_eq!(ids(&paths), [1, 2, 3, 4, 5]);
        assert!(paths.remove_at(1));
        assert!(paths.remove_at(2));
        assert_eq!(ids(&paths), [1, 3, 5]);
        assert!(paths.remove_at(0));
        assert!(matches!(&paths, Paths::Many(m) if matches!(**m, MorePaths::Two(_))));
        assert_eq!(ids(&paths), [3, 5]);
        assert!(paths.remove_at(7)); // out of range: nothing removed
        assert_eq!(ids(&paths), [3, 5]);
        assert!(paths.remove_at(1));
        assert!(matches!(paths, Paths::One(_)));
        assert_eq!(ids(&paths), [3]);
        assert!(!paths.remove_at(0));
        paths.push(path(9));
        assert!(paths.remove_at(0));
        assert_eq!(ids(&paths), [9]);
    }

    #[test]
    fn sizes() {
        assert_eq!(std::mem::size_of::<Path>(), 16);
        assert_eq!(std::mem::size_of::<Paths>(), 16);
    }
}
