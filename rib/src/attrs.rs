//! Route attributes and their interning (hash-consing).
//!
//! A route's attributes are one [`RouteAttrs`]: the BGP path attributes plus the few
//! non-BGP attributes Calico's filters read and write (`krt_metric`, `ifname`, `krt_tunnel`,
//! `preference`). Every distinct set is stored once in the [`Interner`] and routes refer to it
//! by a 4-byte [`AttrId`] with a reference count — BIRD's `rta_lookup` idea, so that a table of
//! a million prefixes sharing a thousand attribute sets holds a thousand sets.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;

use bgp_wire::{NextHop, PathAttributes};

use crate::key::FxBuild;

/// BIRD's default route preferences (contract §2.1), used to rank routes of different
/// sources for the same prefix before the BGP decision process.
pub mod preference {
    /// Kernel-learned (alien) routes.
    pub const KERNEL: u32 = 10;
    /// BGP routes.
    pub const BGP: u32 = 100;
    /// Static routes (and Calico's elevated-priority BGP routes).
    pub const STATIC: u32 = 200;
    /// Directly connected networks.
    pub const DIRECT: u32 = 240;
}

/// The attributes of one route: BGP path attributes plus the route attributes Calico's
/// filters use (contract §2.10).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RouteAttrs {
    /// BGP path attributes (next hop included).
    pub bgp: PathAttributes,
    /// Kernel metric (`krt_metric`, RTA_PRIORITY): learned from the kernel or set by policy.
    pub krt_metric: Option<u32>,
    /// Outgoing interface of a kernel-learned or connected route (`ifname`).
    pub ifname: Option<Arc<str>>,
    /// Tunnel device to install through (Calico's `krt_tunnel`); empty = none.
    pub krt_tunnel: Option<Arc<str>>,
    /// Route preference across sources (BIRD `preference`): higher wins before BGP's own
    /// decision process.
    pub preference: u32,
}

impl RouteAttrs {
    /// Attributes of a BGP route with BGP's default preference.
    pub fn bgp(bgp: PathAttributes) -> Self {
        RouteAttrs {
            bgp,
            krt_metric: None,
            ifname: None,
            krt_tunnel: None,
            preference: preference::BGP,
        }
    }

    /// The next hop as an address: NEXT_HOP, else the MP_REACH global address.
    pub fn next_hop(&self) -> Option<IpAddr> {
        if let Some(nh) = self.bgp.next_hop {
            return Some(IpAddr::V4(nh));
        }
        match self.bgp.mp_next_hop {
            Some(NextHop::V4(a)) => Some(IpAddr::V4(a)),
            Some(NextHop::V6 { global, .. }) => Some(IpAddr::V6(global)),
            None => None,
        }
    }

    /// Sets the next hop: IPv4 into NEXT_HOP (and an IPv4 MP next hop, if one is used),
    /// IPv6 into the MP_REACH next hop (dropping a stale link-local address).
    pub fn set_next_hop(&mut self, addr: IpAddr) {
        match addr {
            IpAddr::V4(a) => {
                if matches!(self.bgp.mp_next_hop, Some(NextHop::V4(_))) {
                    self.bgp.mp_next_hop = Some(NextHop::V4(a));
                }
                if self.bgp.mp_next_hop.is_none() || self.bgp.next_hop.is_some() {
                    self.bgp.next_hop = Some(a);
                }
            }
            IpAddr::V6(global) => {
                self.bgp.mp_next_hop = Some(NextHop::V6 {
                    global,
                    link_local: None,
                });
            }
        }
    }

    /// LOCAL_PREF for the decision process: absent counts as 100 (RFC 4271 §9.1.1 leaves it
    /// to local policy; 100 is the universal default).
    pub fn effective_local_pref(&self) -> u32 {
        self.bgp.local_pref.unwrap_or(DEFAULT_LOCAL_PREF)
    }
}

/// The LOCAL_PREF assumed when a route carries none.
pub const DEFAULT_LOCAL_PREF: u32 = 100;

/// A handle to an interned attribute set. Never zero, so `Option<AttrId>` and enums holding
/// one stay 4 bytes wide.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AttrId(NonZeroU32);

impl AttrId {
    fn index(self) -> usize {
        (self.0.get() - 1) as usize
    }

    fn from_index(i: usize) -> Self {
        // Slots are bounded by `u32::MAX - 1` in `Interner::intern`.
        AttrId(NonZeroU32::MIN.saturating_add(i as u32))
    }
}

struct Slot {
    attrs: Arc<RouteAttrs>,
    refs: u32,
}

/// The hash-consed store of attribute sets, with reference counts.
///
/// [`intern`](Self::intern) returns the id of an equal set if one exists (taking a
/// reference), else stores it. [`release`](Self::release) drops a reference and frees the
/// set with the last one. Sets are also handed out as `Arc<RouteAttrs>` so that an encoder
/// can keep one alive without touching the interner.
#[derive(Default)]
pub struct Interner {
    slots: Vec<Option<Slot>>,
    free: Vec<u32>,
    index: HashMap<Arc<RouteAttrs>, AttrId, FxBuild>,
}

impl Interner {
    /// Interns `attrs` and takes one reference.
    pub fn intern(&mut self, attrs: RouteAttrs) -> AttrId {
        if let Some(&id) = self.index.get(&attrs) {
            self.retain(id);
            return id;
        }
        self.insert_new(Arc::new(attrs))
    }

    /// Interns an already shared set and takes one reference.
    pub fn intern_arc(&mut self, attrs: &Arc<RouteAttrs>) -> AttrId {
        if let Some(&id) = self.index.get(&**attrs) {
            self.retain(id);
            return id;
        }
        self.insert_new(attrs.clone())
    }

    fn insert_new(&mut self, attrs: Arc<RouteAttrs>) -> AttrId {
        let slot = Slot {
            attrs: attrs.clone(),
            refs: 1,
        };
        let id = match self.free.pop() {
            Some(i) => {
                self.slots[i as usize] = Some(slot);
                AttrId::from_index(i as usize)
            }
            None => {
                self.slots.push(Some(slot));
                AttrId::from_index(self.slots.len() - 1)
            }
        };
        self.index.insert(attrs, id);
        id
    }

    /// Takes one more reference to `id`.
    pub fn retain(&mut self, id: AttrId) {
        if let Some(Some(slot)) = self.slots.get_mut(id.index()) {
            slot.refs = slot.refs.saturating_add(1);
        }
    }

    /// Drops one reference; the last one frees the set.
    pub fn release(&mut self, id: AttrId) {
        let i = id.index();
        let Some(Some(slot)) = self.slots.get_mut(i) else {
            return;
        };
        slot.refs -= 1;
        if slot.refs == 0 {
            if let Some(slot) = self.slots[i].take() {
                self.index.remove(&*slot.attrs);
            }
            self.free.push(i as u32);
        }
    }

    /// The attribute set of `id`.
    ///
    /// Every id handed out by this interner stays valid while referenced; an id that was
    /// released is a caller bug and yields an empty default set rather than a panic.
    pub fn get(&self, id: AttrId) -> &Arc<RouteAttrs> {
        match self.slots.get(id.index()) {
            Some(Some(slot)) => &slot.attrs,
            _ => &EMPTY,
        }
    }

    /// Number of distinct attribute sets held.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// True when no set is held.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// The reference count of `id` (0 when free).
    pub fn refs(&self, id: AttrId) -> u32 {
        match self.slots.get(id.index()) {
            Some(Some(slot)) => slot.refs,
            _ => 0,
        }
    }
}

static EMPTY: std::sync::LazyLock<Arc<RouteAttrs>> =
    std::sync::LazyLock::new(|| Arc::new(RouteAttrs::bgp(PathAttributes::default())));

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(lp: u32) -> RouteAttrs {
        RouteAttrs::bgp(PathAttributes {
            local_pref: Some(lp),
            ..Default::default()
        })
    }

    #[test]
    fn equal_sets_are_stored_once_and_freed_with_the_last_reference() {
        let mut i = Interner::default();
        let a = i.intern(attrs(1));
        let b = i.intern(attrs(1));
        let c = i.intern(attrs(2));
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(i.len(), 2);
        assert_eq!(i.refs(a), 2);
        i.release(a);
        assert_eq!(i.len(), 2);
        i.release(b);
        assert_eq!(i.len(), 1);
        assert_eq!(i.refs(a), 0);
        // The freed slot is reused.
        let d = i.intern(attrs(3));
        assert_eq!(d, a);
        assert_eq!(i.get(d).bgp.local_pref, Some(3));
        assert_eq!(i.get(c).bgp.local_pref, Some(2));
    }

    #[test]
    fn next_hop_setting_follows_the_family() {
        let mut a = attrs(1);
        a.set_next_hop("192.0.2.1".parse().unwrap());
        assert_eq!(a.next_hop(), Some("192.0.2.1".parse().unwrap()));
        a.set_next_hop("2001:db8::1".parse().unwrap());
        // NEXT_HOP (v4) wins in `next_hop()` when both exist; v6 routes carry no NEXT_HOP.
        a.bgp.next_hop = None;
        assert_eq!(a.next_hop(), Some("2001:db8::1".parse().unwrap()));
        assert_eq!(std::mem::size_of::<Option<AttrId>>(), 4);
    }
}
