//! # rib — routing information bases and the decision process
//!
//! **Owns:** Adj-RIB-In per peer, the Loc-RIB, Adj-RIB-Out per update group, the BGP
//! decision process (RFC 4271 §9.1 with the usual extensions), ECMP sets, ADD-PATH
//! (RFC 7911), route reflection (RFC 4456), graceful-restart stale handling (RFC 4724, 8538,
//! 9494), and the evaluation of Tern's policy language (`tern_config::policy`).
//!
//! **Must not know:** sockets, timers of its own, netlink, or Calico. It is a pure library:
//! route changes and time in, route changes out. It uses `bgp-wire` only for attribute and
//! NLRI types.
//!
//! ## Driving it (the speaker's view)
//!
//! ```text
//!   config ──► Rib::new(RibConfig) · add_peer(PeerConfig) · reconfigure_peer · set_policies
//!   session ─► peer_up(peer, Session) · peer_down(peer, now, Down::Hard | Down::Graceful)
//!   UPDATEs ─► apply_update(peer, &Update) | announce / withdraw / end_of_rib
//!   kernel ──► originate(Local::Kernel | Static | Direct, prefix, attrs) · withdraw_local
//!   ROUTE-REFRESH received ─► route_refresh(peer)
//!   time ────► tick(now)  (ask poll_timeout() when to call it next)
//!
//!   ◄── poll_updates(): Vec<OutUpdate>  per update group (encode once, send to every
//!        member; `except` names the member that gets a withdrawal instead) or per peer
//!        (initial table, refresh, regrouping), each with End-of-RIB markers when due
//!   ◄── poll_fib(): Vec<FibChange>  kernel routes after the kernel policy (ECMP next hops,
//!        metric, tunnel device, blackhole)
//!   ◄── poll_requests(): Vec<Request>  ROUTE-REFRESH to send after an import change
//! ```
//!
//! A restarting speaker calls `defer_selection_until(deadline)` first (RFC 4724 §4.1): the
//! outputs stay empty until every peer is back and each GR-capable one has sent End-of-RIB,
//! or until the deadline.
//!
//! ```
//! use std::net::{IpAddr, Ipv4Addr};
//! use bgp_wire::{AsPath, Nlri, Origin, PathAttributes};
//! use rib::{PeerConfig, Rib, RibConfig, Session, Target};
//!
//! let me = Ipv4Addr::new(10, 0, 0, 1);
//! let mut rib = Rib::new(RibConfig::new(me, 64512));
//! let tor = rib.add_peer(PeerConfig::new("10.0.0.254".parse().unwrap(), 65000)).unwrap();
//! let node = rib.add_peer(PeerConfig::new("10.0.0.2".parse().unwrap(), 64512)).unwrap();
//! for (p, id) in [(tor, "10.0.0.254"), (node, "10.0.0.2")] {
//!     rib.peer_up(p, Session::new(id.parse().unwrap(), IpAddr::V4(me))).unwrap();
//! }
//! rib.poll_updates(); // initial (empty) tables and End-of-RIB
//! let attrs = PathAttributes {
//!     origin: Some(Origin::Igp),
//!     as_path: Some(AsPath::from_sequence(&[65000])),
//!     next_hop: Some("10.0.0.254".parse().unwrap()),
//!     ..Default::default()
//! };
//! rib.announce(tor, attrs, &[Nlri::new("0.0.0.0/0".parse().unwrap())]);
//! let out = rib.poll_updates();
//! let to_node = out.iter().find(|u| matches!(&u.target, Target::Group { members, .. } if members.contains(&node))).unwrap();
//! assert_eq!(to_node.announce[0].attrs.bgp.local_pref, Some(100)); // iBGP gets LOCAL_PREF
//! ```
//!
//! Nothing is queued per message: each update group and the FIB keep a *set of changed
//! prefixes*; the state sent is computed when polled (latest state wins), so a slow consumer
//! costs at most one entry per prefix.
//!
//! ## Storage
//!
//! * Attribute sets ([`RouteAttrs`]: BGP path attributes plus `krt_metric`, `ifname`,
//!   `krt_tunnel`, `preference`) are hash-consed in an [`attrs::Interner`] and referenced by
//!   4-byte ids with reference counts.
//! * The Loc-RIB is one hash table per family keyed by a compact prefix key (8 bytes for
//!   IPv4); each destination holds all its paths — that *is* the post-policy Adj-RIB-In of
//!   every peer — inline when there is one (16 bytes), with flags for best, ECMP, stale and
//!   long-lived stale.
//! * The pre-policy Adj-RIB-In of a peer exists only when `soft_reconfig_in` is set or the
//!   peer lacks ROUTE-REFRESH.
//! * The Adj-RIB-Out of an update group records what the group was sent (attribute id,
//!   ADD-PATH id, excluded member) per prefix.
//!
//! ## Rules implemented
//!
//! Decision process: see [`decision`]. Import: RFC 4271 §9.1.2 / RFC 4456 §8 loop detection
//! (own AS beyond `allow_local_as`, ORIGINATOR_ID = router id, own cluster id in
//! CLUSTER_LIST), LOCAL_PREF from eBGP ignored, then the import policy. Export: NO_ADVERTISE
//! / NO_EXPORT, RFC 4456 §6 reflection (client → all, non-client → clients, never back to
//! the sender), MED not passed between ASes, the export policy, then eBGP prepend of the
//! (possibly overridden) local AS and LOCAL_PREF / ORIGINATOR_ID / CLUSTER_LIST removal, or
//! iBGP LOCAL_PREF default and reflection attributes, and NEXT_HOP per `next_hop_mode`.
//! Graceful restart: stale marking on [`Down::Graceful`], End-of-RIB purge, purge at the
//! deadline, or LLGR (LLGR_STALE added, least preferred, exported to LLGR peers only,
//! NO_LLGR paths dropped).

#![forbid(unsafe_code)]

pub mod attrs;
pub mod decision;
pub mod key;
pub mod policy;
mod rib;
pub mod shards;
pub mod table;

pub use attrs::{AttrId, RouteAttrs};
pub use decision::Options as DecisionOptions;
pub use policy::{Policies, PolicyError};
pub use rib::{
    AddPathSend, Announce, Down, FibChange, FibRoute, Local, OutUpdate, PeerConfig, PeerId,
    Request, Rib, RibConfig, RibError, RouteInfo, Session, Source, Target,
};
