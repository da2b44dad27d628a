//! A hash map split into sub-tables of graded sizes, for the per-prefix tables.
//!
//! A single hash table of power-of-two capacity costs its entry size divided by a load
//! factor between 7/16 and 7/8, depending on where the route count falls: 1M IPv4 routes land
//! just past a doubling (2^21 buckets at 48 % load, 52 bytes per route), and while it doubles
//! the old and the new table are live at once (another 26 bytes per route at the peak).
//!
//! [`Shards`] spreads the keys over [`SHARDS`] hash tables whose shares of the keys grow
//! geometrically from the first to the last (shard `i` gets a share ∝ 2^(i/16)), so the
//! tables cross their doubling thresholds at route counts spread evenly over each octave:
//! the total size follows the route count smoothly (≈ 1.7× the entry bytes per route at
//! every size, instead of 1.1–2.3×), and a doubling only ever copies one shard, at most
//! 1/11 of the table.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::hash::BuildHasher;

use crate::key::FxBuild;

/// Number of sub-tables.
pub const SHARDS: usize = 16;

/// How many of the 256 values of the selector byte each shard takes: round(256 · 2^(i/16) /
/// Σ 2^(j/16)), the last one absorbing the rounding.
const SHARE: [u8; SHARDS] = [
    11, 12, 12, 13, 13, 14, 15, 15, 16, 17, 17, 18, 19, 20, 21, 23,
];

/// Selector byte → shard.
const SELECT: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut shard = 0;
    let mut used = 0;
    let mut i = 0;
    while i < 256 {
        while used == SHARE[shard] as usize {
            shard += 1;
            used = 0;
        }
        t[i] = shard as u8;
        used += 1;
        i += 1;
    }
    t
};

/// A hash map of `K` to `V` in [`SHARDS`] graded sub-tables (see the module docs). Iteration
/// order is unspecified, as for [`HashMap`].
#[derive(Clone, Debug)]
pub struct Shards<K, V> {
    shards: Vec<HashMap<K, V, FxBuild>>,
    len: usize,
}

impl<K, V> Default for Shards<K, V> {
    fn default() -> Self {
        Shards {
            shards: (0..SHARDS).map(|_| HashMap::default()).collect(),
            len: 0,
        }
    }
}

impl<K: std::hash::Hash + Eq, V> Shards<K, V> {
    /// The shard of `key`: the top byte of its hash multiplied once more. The tables take
    /// bucket indices from the hash's low bits and tag bytes from its top seven, and the Fx
    /// hash folds bits 29–63 into the low ones, so a selector taken from any bit range of the
    /// hash itself would leave each shard only part of its buckets (a first version that
    /// used bits 40–47 made ingest 3× slower); a second multiplication mixes every bit into
    /// the top byte.
    #[inline]
    fn index(key: &K) -> usize {
        let h = FxBuild::default().hash_one(key);
        usize::from(SELECT[usize::from((h.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 56) as u8)])
    }

    #[inline]
    fn shard(&self, key: &K) -> &HashMap<K, V, FxBuild> {
        &self.shards[Self::index(key)]
    }

    /// Number of entries.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when there are no entries.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The value of `key`.
    #[inline]
    pub fn get(&self, key: &K) -> Option<&V> {
        self.shard(key).get(key)
    }

    /// The value of `key`, mutably.
    #[inline]
    pub fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        self.shards[Self::index(key)].get_mut(key)
    }

    /// True when `key` has an entry.
    #[inline]
    pub fn contains_key(&self, key: &K) -> bool {
        self.shard(key).contains_key(key)
    }

    /// Inserts or replaces; returns the old value.
    #[inline]
    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        let old = self.shards[Self::index(&key)].insert(key, value);
        if old.is_none() {
            self.len += 1;
        }
        old
    }

    /// Removes `key`; returns its value.
    #[inline]
    pub fn remove(&mut self, key: &K) -> Option<V> {
        let old = self.shards[Self::index(key)].remove(key);
        if old.is_some() {
            self.len -= 1;
        }
        old
    }

    /// Runs `f` on the entry of `key`; `f` reports whether it inserted or removed the key
    /// (the entry API cannot tell the map), and its other result is returned.
    #[inline]
    pub fn with_entry<R>(&mut self, key: K, f: impl FnOnce(Entry<'_, K, V>) -> (R, Delta)) -> R {
        let (r, d) = f(self.shards[Self::index(&key)].entry(key));
        match d {
            Delta::Inserted => self.len += 1,
            Delta::Removed => self.len -= 1,
            Delta::Same => {}
        }
        r
    }

    /// Keeps the entries for which `f` returns true.
    pub fn retain(&mut self, mut f: impl FnMut(&K, &mut V) -> bool) {
        for s in &mut self.shards {
            s.retain(&mut f);
        }
        self.len = self.shards.iter().map(HashMap::len).sum();
    }

    /// Every entry.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.shards.iter().flat_map(|s| s.iter())
    }

    /// Every entry, values mutable.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&K, &mut V)> {
        self.shards.iter_mut().flat_map(|s| s.iter_mut())
    }

    /// Every key.
    pub fn keys(&self) -> impl Iterator<Item = &K> {
        self.shards.iter().flat_map(|s| s.keys())
    }

    /// Every value.
    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.shards.iter().flat_map(|s| s.values())
    }

    /// Every value, mutable.
    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut V> {
        self.shards.iter_mut().flat_map(|s| s.values_mut())
    }

    /// Every value, consuming the map.
    pub fn into_values(self) -> impl Iterator<Item = V> {
        self.shards.into_iter().flat_map(|s| s.into_values())
    }
}

/// What an entry closure did to the number of entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delta {
    /// Inserted a new key.
    Inserted,
    /// Removed the key.
    Removed,
    /// Neither.
    Same,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_cover_the_selector_and_grow() {
        assert_eq!(SHARE.iter().map(|&s| usize::from(s)).sum::<usize>(), 256);
        assert!(SHARE.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(SELECT[0], 0);
        assert_eq!(usize::from(SELECT[255]), SHARDS - 1);
        for (s, &share) in SHARE.iter().enumerate() {
            let n = SELECT.iter().filter(|&&x| usize::from(x) == s).count();
            assert_eq!(n, usize::from(share));
        }
    }

    #[test]
    fn behaves_as_a_map() {
        let mut m: Shards<u64, u32> = Shards::default();
        let mut reference = HashMap::new();
        for i in 0..20_000u64 {
            let k = i.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 20;
            assert_eq!(m.insert(k, i as u32), reference.insert(k, i as u32));
        }
        assert_eq!(m.len(), reference.len());
        for i in (0..20_000u64).step_by(3) {
            let k = i.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 20;
            assert_eq!(m.remove(&k), reference.remove(&k));
        }
        assert_eq!(m.len(), reference.len());
        m.retain(|k, _| k % 2 == 0);
        reference.retain(|k, _| k % 2 == 0);
        assert_eq!(m.len(), reference.len());
        let mut a: Vec<(u64, u32)> = m.iter().map(|(k, v)| (*k, *v)).collect();
        let mut b: Vec<(u64, u32)> = reference.iter().map(|(k, v)| (*k, *v)).collect();
        a.sort_unstable();
        b.sort_unstable();
        assert_eq!(a, b);
        for (k, v) in &reference {
            assert_eq!(m.get(k), Some(v));
            assert!(m.contains_key(k));
        }
        let added = m.with_entry(7, |e| match e {
            Entry::Vacant(v) => {
                v.insert(1);
                (true, Delta::Inserted)
            }
            Entry::Occupied(_) => (false, Delta::Same),
        });
        assert_eq!(m.len(), reference.len() + usize::from(added));
    }

    #[test]
    fn keys_spread_over_every_shard_by_share() {
        // Sequential IPv4 /24 keys (address << 8 | 24) as the Loc-RIB stores them.
        let mut counts = [0usize; SHARDS];
        let n = 256_000u64;
        for j in 0..n {
            let key = (((1u64 << 24) + (j << 8)) << 8) | 24;
            counts[Shards::<u64, ()>::index(&key)] += 1;
        }
        for (s, &c) in counts.iter().enumerate() {
            let want = n as f64 * f64::from(SHARE[s]) / 256.0;
            assert!(
                (c as f64 - want).abs() < want * 0.1,
                "shard {s}: {c} vs {want}"
            );
        }
    }
}
