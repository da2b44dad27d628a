//! Helpers shared by the RIB's integration tests.
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use bgp_wire::{AsPath, Nlri, Origin, PathAttributes, Prefix};
use rib::{OutUpdate, PeerConfig, PeerId, Rib, RibConfig, RouteAttrs, Session, Target};

pub const ME: &str = "10.0.0.1";

pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

pub fn ip4(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

pub fn pfx(s: &str) -> Prefix {
    s.parse().unwrap()
}

pub fn nl(s: &str) -> Nlri {
    Nlri::new(pfx(s))
}

pub fn cfg() -> RibConfig {
    RibConfig::new(ip4(ME), 64512)
}

/// Attributes with ORIGIN IGP, an AS_SEQUENCE and an IPv4 next hop.
pub fn attrs(path: &[u32], nh: &str) -> PathAttributes {
    PathAttributes {
        origin: Some(Origin::Igp),
        as_path: Some(AsPath::from_sequence(path)),
        next_hop: Some(ip4(nh)),
        ..Default::default()
    }
}

/// Adds a peer (router id = its address) and brings its session up.
pub fn up(
    rib: &mut Rib,
    addr: &str,
    asn: u32,
    f: impl FnOnce(&mut PeerConfig, &mut Session),
) -> PeerId {
    let mut pc = PeerConfig::new(ip(addr), asn);
    let mut s = Session::new(ip4(addr), ip(ME));
    f(&mut pc, &mut s);
    let id = rib.add_peer(pc).unwrap();
    rib.peer_up(id, s).unwrap();
    id
}

pub fn plain(_: &mut PeerConfig, _: &mut Session) {}

/// What `peer` ends up having been told, per NLRI: `Some(attrs)` announced, `None` withdrawn.
pub fn view(outs: &[OutUpdate], peer: PeerId) -> BTreeMap<Nlri, Option<Arc<RouteAttrs>>> {
    let mut m = BTreeMap::new();
    for o in outs {
        let mine = match &o.target {
            Target::Group { members, .. } => members.contains(&peer),
            Target::Peer(p) => *p == peer,
        };
        if !mine {
            continue;
        }
        for w in &o.withdraw {
            m.insert(*w, None);
        }
        for a in &o.announce {
            for n in &a.nlri {
                m.insert(
                    *n,
                    if a.except == Some(peer) {
                        None
                    } else {
                        Some(a.attrs.clone())
                    },
                );
            }
        }
    }
    m
}

/// The source peer of the best path to `prefix`.
pub fn best_peer(rib: &Rib, prefix: &str) -> Option<PeerId> {
    match rib.best(pfx(prefix))?.source {
        rib::Source::Peer(p) => Some(p),
        rib::Source::Local(_) => None,
    }
}
