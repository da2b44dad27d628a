//! Route tables for the RIB benches: `n` IPv4 /24s spread over `sets` attribute sets,
//! packed as UPDATEs (one per attribute set), as a full table from one peer arrives.

use std::net::{IpAddr, Ipv4Addr};

use bgp_wire::{AsPath, Community, Nlri, Origin, PathAttributes, Prefix};
use rib::{PeerConfig, PeerId, Rib, RibConfig, Session};

/// The full-table size the goals are stated for.
pub const ROUTES: usize = 1_000_000;
/// Distinct attribute sets in the full table.
pub const ATTR_SETS: usize = 1_000;

pub fn me() -> Ipv4Addr {
    Ipv4Addr::new(10, 0, 0, 1)
}

/// The `j`-th /24 (1.0.0.0/24, 1.0.1.0/24, ...).
pub fn prefix(j: usize) -> Prefix {
    let addr = (1u32 << 24) + ((j as u32) << 8);
    Prefix::V4 {
        addr: Ipv4Addr::from(addr),
        len: 24,
    }
}

/// Attribute set `i` of a peer in `first_as`: AS paths of 2–6 hops, MED on some, 0–2
/// communities, like a transit table.
pub fn attrs(i: usize, first_as: u32, next_hop: Ipv4Addr, extra_hops: usize) -> PathAttributes {
    let hops = 2 + i % 5 + extra_hops;
    let mut path = vec![first_as];
    path.extend((1..hops).map(|h| 3000 + ((i * 7 + h * 13) % 4000) as u32));
    *path.last_mut().unwrap_or(&mut 0) = 10_000 + i as u32;
    PathAttributes {
        origin: Some(if i.is_multiple_of(3) {
            Origin::Incomplete
        } else {
            Origin::Igp
        }),
        as_path: Some(AsPath::from_sequence(&path)),
        next_hop: Some(next_hop),
        med: i.is_multiple_of(4).then_some(i as u32),
        communities: (0..i % 3)
            .map(|c| Community((first_as << 16) | (c as u32 + i as u32 % 50)))
            .collect(),
        ..Default::default()
    }
}

/// `n` prefixes in `sets` UPDATEs: prefix `j` carries attribute set `j % sets`.
pub fn table(
    n: usize,
    sets: usize,
    first_as: u32,
    next_hop: Ipv4Addr,
    extra_hops: usize,
) -> Vec<(PathAttributes, Vec<Nlri>)> {
    let mut updates: Vec<(PathAttributes, Vec<Nlri>)> = (0..sets)
        .map(|i| {
            (
                attrs(i, first_as, next_hop, extra_hops),
                Vec::with_capacity(n / sets + 1),
            )
        })
        .collect();
    for j in 0..n {
        updates[j % sets].1.push(Nlri::new(prefix(j)));
    }
    updates
}

/// Adds a peer and brings it up; its router id is its address.
pub fn peer(rib: &mut Rib, addr: Ipv4Addr, asn: u32, f: impl FnOnce(&mut PeerConfig)) -> PeerId {
    let mut pc = PeerConfig::new(IpAddr::V4(addr), asn);
    f(&mut pc);
    let Ok(id) = rib.add_peer(pc) else {
        panic!("add_peer")
    };
    let mut s = Session::new(addr, IpAddr::V4(me()));
    s.families = vec![bgp_wire::Family::IPV4_UNICAST];
    if rib.peer_up(id, s).is_err() {
        panic!("peer_up");
    }
    id
}

/// A RIB with no peers.
pub fn rib() -> Rib {
    Rib::new(RibConfig::new(me(), 64512))
}

/// Feeds a table to `peer`.
pub fn feed(rib: &mut Rib, peer: PeerId, updates: &[(PathAttributes, Vec<Nlri>)]) {
    for (a, n) in updates {
        rib.announce(peer, a.clone(), n);
    }
}
