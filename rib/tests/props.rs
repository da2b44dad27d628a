//! Property tests: the RIB's invariants over random inputs.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use bgp_wire::{Nlri, Origin, PathAttributes, Prefix};
use common::*;
use proptest::prelude::*;
use rib::{AddPathSend, Down, PeerId, Rib, Source, Target};

/// Peers of the test topology: (address, AS, rr client, add-path rx, soft reconfig).
const PEERS: [(&str, u32, bool, bool, bool); 6] = [
    ("10.0.0.2", 65001, false, false, false),
    ("10.0.0.3", 65001, false, false, true),
    ("10.0.0.4", 65002, false, true, false),
    ("10.0.1.1", 64512, true, false, false),
    ("10.0.1.2", 64512, true, true, false),
    ("10.0.2.1", 64512, false, false, false),
];

const PREFIXES: [&str; 5] = [
    "10.1.0.0/16",
    "10.2.0.0/16",
    "10.1.2.0/24",
    "2001:db8::/32",
    "0.0.0.0/0",
];

#[derive(Clone, Debug)]
struct Ann {
    peer: usize,
    prefix: usize,
    path_id: u32,
    lp: Option<u32>,
    len: usize,
    origin: u8,
    med: Option<u32>,
    nh: u8,
}

fn ann() -> impl Strategy<Value = Ann> {
    (
        0..PEERS.len(),
        0..PREFIXES.len(),
        0u32..3,
        prop::option::of(prop_oneof![Just(100u32), Just(200)]),
        1usize..4,
        0u8..3,
        prop::option::of(0u32..3),
        0u8..3,
    )
        .prop_map(|(peer, prefix, path_id, lp, len, origin, med, nh)| Ann {
            peer,
            prefix,
            path_id,
            lp,
            len,
            origin,
            med,
            nh,
        })
}

fn build(cluster: bool) -> (Rib, Vec<PeerId>) {
    let mut c = cfg();
    if cluster {
        c.cluster_id = Some(ip4("1.1.1.1"));
    }
    let mut rib = Rib::new(c);
    let peers = PEERS
        .iter()
        .map(|&(addr, asn, client, ap, soft)| {
            up(&mut rib, addr, asn, |p, s| {
                p.rr_client = client;
                p.soft_reconfig_in = soft;
                s.add_path_rx = ap;
                if ap {
                    s.add_path_tx = AddPathSend::All;
                }
            })
        })
        .collect();
    (rib, peers)
}

fn nlri(a: &Ann) -> Nlri {
    let prefix: Prefix = PREFIXES[a.prefix].parse().unwrap();
    if PEERS[a.peer].3 {
        Nlri::with_path_id(prefix, a.path_id)
    } else {
        Nlri::new(prefix)
    }
}

fn apply(rib: &mut Rib, peers: &[PeerId], a: &Ann) {
    let (addr, asn, ..) = PEERS[a.peer];
    let mut path = vec![asn; 1];
    path.extend((1..a.len).map(|i| 65100 + i as u32));
    if asn == 64512 {
        path.remove(0);
        path.push(65200);
    }
    let mut at: PathAttributes = attrs(&path, addr);
    at.next_hop = Some(ip4(&format!("192.0.2.{}", a.nh + 1)));
    if a.prefix == 3 {
        at.mp_next_hop = Some(bgp_wire::NextHop::V6 {
            global: format!("2001:db8::{}", a.nh + 1).parse().unwrap(),
            link_local: None,
        });
    }
    at.local_pref = a.lp;
    at.med = a.med;
    at.origin = Some(match a.origin {
        0 => Origin::Igp,
        1 => Origin::Egp,
        _ => Origin::Incomplete,
    });
    rib.announce(peers[a.peer], at, &[nlri(a)]);
}

/// Best path and ECMP set per prefix, in a comparable form.
fn outcome(rib: &Rib) -> Vec<(Prefix, String)> {
    PREFIXES
        .iter()
        .map(|p| {
            let p: Prefix = p.parse().unwrap();
            let routes = rib.routes(p);
            let best = routes
                .iter()
                .find(|r| r.best)
                .map(|r| format!("{:?}/{}/{:?}", r.source, r.path_id, r.attrs));
            let multi: BTreeSet<String> = routes
                .iter()
                .filter(|r| r.multipath)
                .map(|r| format!("{:?}/{}", r.source, r.path_id))
                .collect();
            (p, format!("{best:?} {multi:?}"))
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    /// The decision process depends on the set of paths, never on their arrival order.
    #[test]
    fn best_path_is_independent_of_arrival_order(
        anns in prop::collection::vec(ann(), 1..24).prop_flat_map(|v| {
            // Keep the last announcement per path so both orders describe the same set.
            let mut last: BTreeMap<(usize, usize, u32), Ann> = BTreeMap::new();
            for a in v {
                let id = if PEERS[a.peer].3 { a.path_id } else { 0 };
                last.insert((a.peer, a.prefix, id), a);
            }
            let set: Vec<Ann> = last.into_values().collect();
            (Just(set.clone()), Just(set).prop_shuffle())
        })
    ) {
        let (set, shuffled) = anns;
        let (mut r1, p1) = build(true);
        let (mut r2, p2) = build(true);
        for a in &set { apply(&mut r1, &p1, a); }
        for a in &shuffled { apply(&mut r2, &p2, a); }
        prop_assert_eq!(outcome(&r1), outcome(&r2));
    }

    /// Withdrawing everything (or losing the sessions) leaves every table empty: Loc-RIB,
    /// Adj-RIB-In (pre and post policy), Adj-RIB-Out, and the attribute store.
    #[test]
    fn withdrawing_everything_empties_every_table(
        anns in prop::collection::vec(ann(), 1..40),
        drop_sessions in any::<bool>(),
    ) {
        let (mut rib, peers) = build(true);
        for (i, a) in anns.iter().enumerate() {
            apply(&mut rib, &peers, a);
            if i % 7 == 0 { rib.poll_updates(); }
        }
        rib.poll_updates();
        if drop_sessions {
            for p in &peers { rib.peer_down(*p, Instant::now(), Down::Hard).unwrap(); }
        } else {
            for a in &anns { rib.withdraw(peers[a.peer], &[nlri(a)]); }
        }
        rib.poll_updates();
        prop_assert!(rib.is_empty());
        for p in &peers {
            prop_assert_eq!(rib.peer_paths(*p), 0);
            prop_assert_eq!(rib.pre_policy_paths(*p), 0);
            prop_assert!(rib.adj_rib_out(*p).is_empty());
        }
        prop_assert_eq!(rib.attribute_sets(), 0);
    }

    /// No announcement ever reaches the peer the route came from, nor a peer whose router id
    /// is the route's ORIGINATOR_ID.
    #[test]
    fn reflected_routes_never_return_to_their_originator(
        batches in prop::collection::vec(prop::collection::vec(ann(), 1..8), 1..6),
    ) {
        let (mut rib, peers) = build(true);
        for batch in &batches {
            for a in batch { apply(&mut rib, &peers, a); }
            for o in rib.poll_updates() {
                let recipients: Vec<PeerId> = match &o.target {
                    Target::Group { members, .. } => members.clone(),
                    Target::Peer(p) => vec![*p],
                };
                for ann in &o.announce {
                    for r in recipients.iter().filter(|r| Some(**r) != ann.except) {
                        let rid = ip4(PEERS[peers.iter().position(|p| p == r).unwrap()].0);
                        prop_assert_ne!(ann.attrs.bgp.originator_id, Some(rid));
                        for n in &ann.nlri {
                            // The state sent is that of the Loc-RIB at poll time.
                            for route in rib.routes(n.prefix) {
                                if n.path_id.is_none_or(|id| id == route.tx_path_id) && (route.best || n.path_id.is_some()) {
                                    prop_assert_ne!(route.source, Source::Peer(*r));
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// ADD-PATH send ids stay with their path for its whole life and are unique per prefix.
    #[test]
    fn add_path_ids_are_stable(
        ops in prop::collection::vec((0usize..3, 0u32..4, any::<bool>(), 1usize..4), 1..60),
    ) {
        let mut rib = Rib::new(cfg());
        let peers: Vec<PeerId> = ["10.0.0.2", "10.0.0.3", "10.0.0.4"]
            .iter()
            .enumerate()
            .map(|(i, a)| up(&mut rib, a, 65001 + i as u32, |_, s| s.add_path_rx = true))
            .collect();
        let p = pfx("10.1.0.0/16");
        let mut ids: BTreeMap<(Source, u32), u32> = BTreeMap::new();
        for (peer, pid, announce, len) in ops {
            let n = Nlri::with_path_id(p, pid);
            if announce {
                let path: Vec<u32> = (0..len as u32).map(|i| 65001 + peer as u32 + i).collect();
                rib.announce(peers[peer], attrs(&path, "192.0.2.1"), &[n]);
            } else {
                rib.withdraw(peers[peer], &[n]);
            }
            let now: BTreeMap<(Source, u32), u32> =
                rib.routes(p).iter().map(|r| ((r.source, r.path_id), r.tx_path_id)).collect();
            let unique: BTreeSet<u32> = now.values().copied().collect();
            prop_assert_eq!(unique.len(), now.len());
            for (k, tx) in &now {
                if let Some(old) = ids.get(k) { prop_assert_eq!(old, tx); }
            }
            ids = now;
        }
    }

    /// Graceful-restart stale paths stay until exactly their deadline and not a tick longer.
    #[test]
    fn gr_stale_paths_are_purged_exactly_at_their_deadline(
        restart_ms in 1u64..600_000,
        ticks in prop::collection::vec(0u64..1_200_000, 1..10),
        n in 1usize..20,
    ) {
        let t0 = Instant::now();
        let mut rib = Rib::new(cfg());
        let a = up(&mut rib, "10.0.0.2", 65001, |_, s| s.gr_restart_time = Some(Duration::from_millis(restart_ms)));
        let nlri: Vec<Nlri> = (0..n).map(|i| Nlri::new(Prefix::v4(ip4(&format!("10.{i}.0.0")), 16).unwrap())).collect();
        rib.announce(a, attrs(&[65001], "10.0.0.2"), &nlri);
        rib.peer_down(a, t0, Down::Graceful).unwrap();
        let deadline = t0 + Duration::from_millis(restart_ms);
        prop_assert_eq!(rib.poll_timeout(), Some(deadline));
        let mut ticks = ticks;
        ticks.sort_unstable();
        ticks.push(restart_ms - 1);
        ticks.push(restart_ms);
        ticks.sort_unstable();
        for t in ticks {
            let now = t0 + Duration::from_millis(t);
            rib.tick(now);
            if now < deadline {
                prop_assert_eq!(rib.len(), n);
                prop_assert!(rib.routes(nlri[0].prefix)[0].stale);
            } else {
                prop_assert!(rib.is_empty());
                prop_assert_eq!(rib.poll_timeout(), None);
            }
        }
    }
}
