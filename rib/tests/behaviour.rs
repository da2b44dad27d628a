//! The RIB's protocol rules, one deterministic scenario each.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bgp_wire::{AsPath, AsSegment, Community, Family, Nlri, Origin, SegmentType, Update};
use common::*;
use rib::{
    AddPathSend, Down, FibChange, FibRoute, Local, Policies, Request, Rib, RouteAttrs, Target,
};
use tern_config::NextHopMode;
use tern_config::policy::{Policy, PrefixMatch, Rule, Verdict};

fn only(prefix: &str) -> Policy {
    Policy::new(vec![
        Rule::when(vec![PrefixMatch::within(prefix.parse().unwrap())]).verdict(Verdict::Accept),
    ])
}

fn reject(prefix: &str) -> Policy {
    Policy {
        rules: vec![
            Rule::when(vec![PrefixMatch::within(prefix.parse().unwrap())]).verdict(Verdict::Reject),
        ],
        default: Verdict::Accept,
    }
}

// ===== decision process =====

#[test]
fn local_pref_beats_path_length() {
    let mut rib = Rib::new(cfg());
    let a = up(&mut rib, "10.0.0.2", 65001, plain);
    let i = up(&mut rib, "10.0.0.4", 64512, plain);
    rib.announce(a, attrs(&[65001], "10.0.0.2"), &[nl("10.1.0.0/16")]);
    let mut lp = attrs(&[65009, 65008, 65007], "10.0.0.4");
    lp.local_pref = Some(200);
    rib.announce(i, lp, &[nl("10.1.0.0/16")]);
    assert_eq!(best_peer(&rib, "10.1.0.0/16"), Some(i));
}

#[test]
fn local_pref_from_ebgp_is_ignored() {
    let mut rib = Rib::new(cfg());
    let a = up(&mut rib, "10.0.0.2", 65001, plain);
    let b = up(&mut rib, "10.0.0.3", 65002, plain);
    let mut hi = attrs(&[65001, 65005], "10.0.0.2");
    hi.local_pref = Some(1000);
    rib.announce(a, hi, &[nl("10.1.0.0/16")]);
    rib.announce(b, attrs(&[65002], "10.0.0.3"), &[nl("10.1.0.0/16")]);
    assert_eq!(best_peer(&rib, "10.1.0.0/16"), Some(b));
    assert_eq!(
        rib.best(pfx("10.1.0.0/16")).unwrap().attrs.bgp.local_pref,
        None
    );
}

#[test]
fn as_path_length_counts_sets_once_and_confederations_not_at_all() {
    let mut rib = Rib::new(cfg());
    let a = up(&mut rib, "10.0.0.2", 65001, plain);
    let b = up(&mut rib, "10.0.0.3", 65002, plain);
    let mut set = attrs(&[65001], "10.0.0.2");
    set.as_path.as_mut().unwrap().segments.push(AsSegment {
        kind: SegmentType::AsSet,
        asns: vec![1, 2, 3].into(),
    });
    rib.announce(a, set, &[nl("10.1.0.0/16")]);
    rib.announce(
        b,
        attrs(&[65002, 65003, 65004], "10.0.0.3"),
        &[nl("10.1.0.0/16")],
    );
    assert_eq!(best_peer(&rib, "10.1.0.0/16"), Some(a));

    let mut confed = attrs(&[65001], "10.0.0.2");
    confed.as_path.as_mut().unwrap().segments.insert(
        0,
        AsSegment {
            kind: SegmentType::ConfedSequence,
            asns: vec![7, 8, 9].into(),
        },
    );
    rib.announce(a, confed, &[nl("10.2.0.0/16")]);
    rib.announce(b, attrs(&[65002, 65003], "10.0.0.3"), &[nl("10.2.0.0/16")]);
    assert_eq!(best_peer(&rib, "10.2.0.0/16"), Some(a));
}

#[test]
fn lowest_origin() {
    let mut rib = Rib::new(cfg());
    let a = up(&mut rib, "10.0.0.2", 65001, plain);
    let b = up(&mut rib, "10.0.0.3", 65002, plain);
    let mut inc = attrs(&[65001], "10.0.0.2");
    inc.origin = Some(Origin::Incomplete);
    rib.announce(a, inc, &[nl("10.1.0.0/16")]);
    let mut egp = attrs(&[65002], "10.0.0.3");
    egp.origin = Some(Origin::Egp);
    rib.announce(b, egp, &[nl("10.1.0.0/16")]);
    assert_eq!(best_peer(&rib, "10.1.0.0/16"), Some(b));
}

#[test]
fn med_only_within_a_neighbour_as_unless_always_compare() {
    for always in [false, true] {
        let mut c = cfg();
        c.decision.always_compare_med = always;
        let mut rib = Rib::new(c);
        let a1 = up(&mut rib, "10.0.0.2", 65001, plain);
        let a2 = up(&mut rib, "10.0.0.5", 65001, plain);
        let b = up(&mut rib, "10.0.0.3", 65002, plain);
        let med = |path: &[u32], nh: &str, m: u32| {
            let mut x = attrs(path, nh);
            x.med = Some(m);
            x
        };
        // Same neighbour AS: the lower MED wins over the lower router id.
        rib.announce(a1, med(&[65001], "10.0.0.2", 10), &[nl("10.1.0.0/16")]);
        rib.announce(a2, med(&[65001], "10.0.0.5", 5), &[nl("10.1.0.0/16")]);
        assert_eq!(best_peer(&rib, "10.1.0.0/16"), Some(a2));
        // Different neighbour ASes: MED ignored unless always-compare.
        rib.announce(a1, med(&[65001], "10.0.0.2", 10), &[nl("10.2.0.0/16")]);
        rib.announce(b, med(&[65002], "10.0.0.3", 5), &[nl("10.2.0.0/16")]);
        assert_eq!(
            best_peer(&rib, "10.2.0.0/16"),
            Some(if always { b } else { a1 })
        );
    }
}

#[test]
fn deterministic_med_is_order_independent() {
    // The classic MED cycle: a1(AS1, MED 10), a2(AS1, MED 5), b(AS2, MED 7). Pairwise
    // comparison can end at any of them depending on order; elimination always picks the
    // same one.
    let run = |order: &[usize]| {
        let mut rib = Rib::new(cfg());
        let peers = [
            up(&mut rib, "10.0.0.2", 65001, plain),
            up(&mut rib, "10.0.0.5", 65001, plain),
            up(&mut rib, "10.0.0.3", 65002, plain),
        ];
        let specs = [
            (&[65001u32][..], "10.0.0.2", 10),
            (&[65001][..], "10.0.0.5", 5),
            (&[65002][..], "10.0.0.3", 7),
        ];
        for &i in order {
            let mut x = attrs(specs[i].0, specs[i].1);
            x.med = Some(specs[i].2);
            rib.announce(peers[i], x, &[nl("10.1.0.0/16")]);
        }
        rib.best(pfx("10.1.0.0/16")).unwrap().attrs.next_hop()
    };
    let first = run(&[0, 1, 2]);
    for order in [[0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0]] {
        assert_eq!(run(&order), first);
    }
    // a1 is eliminated by a2's MED; between a2 and b, router id decides.
    assert_eq!(first, Some(ip("10.0.0.3")));
}

#[test]
fn ebgp_over_ibgp_then_igp_cost() {
    let mut rib = Rib::new(cfg());
    let a = up(&mut rib, "10.0.0.2", 65001, plain);
    let i1 = up(&mut rib, "10.0.0.4", 64512, plain);
    let i2 = up(&mut rib, "10.0.0.6", 64512, plain);
    rib.announce(i1, attrs(&[65003], "10.0.0.4"), &[nl("10.1.0.0/16")]);
    rib.announce(a, attrs(&[65001], "10.0.0.2"), &[nl("10.1.0.0/16")]);
    assert_eq!(best_peer(&rib, "10.1.0.0/16"), Some(a));

    rib.announce(i1, attrs(&[65003], "192.0.2.1"), &[nl("10.2.0.0/16")]);
    rib.announce(i2, attrs(&[65003], "192.0.2.2"), &[nl("10.2.0.0/16")]);
    assert_eq!(best_peer(&rib, "10.2.0.0/16"), Some(i1));
    rib.set_igp_cost(ip("192.0.2.1"), Some(10));
    rib.set_igp_cost(ip("192.0.2.2"), Some(5));
    assert_eq!(best_peer(&rib, "10.2.0.0/16"), Some(i2));
    rib.set_igp_cost(ip("192.0.2.2"), None);
    assert_eq!(
        best_peer(&rib, "10.2.0.0/16"),
        Some(i2),
        "unknown cost counts 0"
    );
}

#[test]
fn cluster_list_then_originator_id_then_peer_address() {
    let mut rib = Rib::new(cfg());
    let i1 = up(&mut rib, "10.0.0.4", 64512, plain);
    let i2 = up(&mut rib, "10.0.0.6", 64512, plain);
    let mut long = attrs(&[65003], "10.0.0.4");
    long.cluster_list = vec![ip4("9.9.9.9")];
    rib.announce(i1, long, &[nl("10.1.0.0/16")]);
    rib.announce(i2, attrs(&[65003], "10.0.0.6"), &[nl("10.1.0.0/16")]);
    assert_eq!(best_peer(&rib, "10.1.0.0/16"), Some(i2));

    // ORIGINATOR_ID replaces the router id in the comparison.
    let mut orig = attrs(&[65003], "10.0.0.4");
    orig.originator_id = Some(ip4("10.9.9.9"));
    rib.announce(i1, orig, &[nl("10.2.0.0/16")]);
    rib.announce(i2, attrs(&[65003], "10.0.0.6"), &[nl("10.2.0.0/16")]);
    assert_eq!(best_peer(&rib, "10.2.0.0/16"), Some(i2));

    // Same router id on two sessions: the lower peer address wins.
    let mut rib = Rib::new(cfg());
    let hi = up(&mut rib, "10.0.0.9", 64512, |_, s| {
        s.router_id = ip4("1.1.1.1")
    });
    let lo = up(&mut rib, "10.0.0.8", 64512, |_, s| {
        s.router_id = ip4("1.1.1.1")
    });
    rib.announce(hi, attrs(&[65003], "10.0.0.9"), &[nl("10.1.0.0/16")]);
    rib.announce(lo, attrs(&[65003], "10.0.0.8"), &[nl("10.1.0.0/16")]);
    assert_eq!(best_peer(&rib, "10.1.0.0/16"), Some(lo));
}

#[test]
fn route_preference_ranks_sources_first() {
    let mut rib = Rib::new(cfg());
    let a = up(&mut rib, "10.0.0.2", 65001, plain);
    rib.announce(a, attrs(&[65001], "10.0.0.2"), &[nl("192.168.1.0/26")]);
    // Kernel-learned (10) loses to BGP (100); static (200) wins.
    let mut k = RouteAttrs::bgp(Default::default());
    k.preference = rib::attrs::preference::KERNEL;
    rib.originate(Local::Kernel, pfx("192.168.1.0/26"), k);
    assert_eq!(best_peer(&rib, "192.168.1.0/26"), Some(a));
    let mut s = RouteAttrs::bgp(Default::default());
    s.preference = rib::attrs::preference::STATIC;
    rib.originate(Local::Static, pfx("192.168.1.0/26"), s);
    assert_eq!(
        rib.best(pfx("192.168.1.0/26")).unwrap().source,
        rib::Source::Local(Local::Static)
    );
    rib.withdraw_local(Local::Static, pfx("192.168.1.0/26"));
    assert_eq!(best_peer(&rib, "192.168.1.0/26"), Some(a));
}

// ===== loop detection =====

#[test]
fn loops_are_treated_as_withdraw() {
    let mut c = cfg();
    c.cluster_id = Some(ip4("1.1.1.1"));
    let mut rib = Rib::new(c);
    let a = up(&mut rib, "10.0.0.2", 65001, plain);
    let allow = up(&mut rib, "10.0.0.3", 65002, |p, _| p.allow_local_as = 1);
    let i = up(&mut rib, "10.0.0.4", 64512, |p, _| {
        p.rr_cluster_id = Some(ip4("2.2.2.2"))
    });
    rib.announce(a, attrs(&[65001], "10.0.0.2"), &[nl("10.1.0.0/16")]);
    assert_eq!(rib.len(), 1);
    // Own AS in the path replaces (withdraws) the earlier path.
    rib.announce(a, attrs(&[65001, 64512], "10.0.0.2"), &[nl("10.1.0.0/16")]);
    assert_eq!(rib.len(), 0);
    // allow_local_as = 1 tolerates one occurrence, not two.
    rib.announce(
        allow,
        attrs(&[65002, 64512], "10.0.0.3"),
        &[nl("10.2.0.0/16")],
    );
    rib.announce(
        allow,
        attrs(&[65002, 64512, 64512], "10.0.0.3"),
        &[nl("10.3.0.0/16")],
    );
    assert!(rib.best(pfx("10.2.0.0/16")).is_some());
    assert!(rib.best(pfx("10.3.0.0/16")).is_none());
    // ORIGINATOR_ID = our router id; our cluster id (node or per-peer) in CLUSTER_LIST.
    let mut o = attrs(&[], "10.0.0.4");
    o.originator_id = Some(ip4(ME));
    rib.announce(i, o, &[nl("10.4.0.0/16")]);
    for cl in ["1.1.1.1", "2.2.2.2"] {
        let mut x = attrs(&[], "10.0.0.4");
        x.cluster_list = vec![ip4("9.9.9.9"), ip4(cl)];
        rib.announce(i, x, &[nl("10.5.0.0/16")]);
        assert!(rib.best(pfx("10.5.0.0/16")).is_none(), "{cl}");
    }
    assert!(rib.best(pfx("10.4.0.0/16")).is_none());
    let mut ok = attrs(&[], "10.0.0.4");
    ok.cluster_list = vec![ip4("9.9.9.9")];
    rib.announce(i, ok, &[nl("10.5.0.0/16")]);
    assert!(rib.best(pfx("10.5.0.0/16")).is_some());
}

// ===== ECMP and the FIB =====

#[test]
fn ecmp_set_becomes_a_multipath_kernel_route() {
    let mut c = cfg();
    c.kernel_policy = Some("all".into());
    let mut rib = Rib::new(c);
    let a1 = up(&mut rib, "10.0.0.2", 65001, plain);
    let a2 = up(&mut rib, "10.0.0.5", 65001, plain);
    let b = up(&mut rib, "10.0.0.3", 65002, plain);
    rib.announce(a1, attrs(&[65001], "10.0.0.2"), &[nl("10.1.0.0/16")]);
    rib.announce(a2, attrs(&[65001], "10.0.0.5"), &[nl("10.1.0.0/16")]);
    // Longer path: not in the set.
    rib.announce(b, attrs(&[65002, 65003], "10.0.0.3"), &[nl("10.1.0.0/16")]);
    let routes = rib.routes(pfx("10.1.0.0/16"));
    assert_eq!(routes.iter().filter(|r| r.multipath).count(), 2);
    assert_eq!(
        rib.poll_fib(),
        vec![FibChange::Install(FibRoute {
            prefix: pfx("10.1.0.0/16"),
            next_hops: vec![ip("10.0.0.2"), ip("10.0.0.5")],
            blackhole: false,
            metric: None,
            tunnel: None,
        })]
    );
    // Losing one member shrinks the set; losing all removes the route.
    rib.withdraw(a1, &[nl("10.1.0.0/16")]);
    let fib = rib.poll_fib();
    assert!(matches!(&fib[..], [FibChange::Install(r)] if r.next_hops == vec![ip("10.0.0.5")]));
    rib.withdraw(a2, &[nl("10.1.0.0/16")]);
    rib.withdraw(b, &[nl("10.1.0.0/16")]);
    assert_eq!(rib.poll_fib(), vec![FibChange::Remove(pfx("10.1.0.0/16"))]);
    assert!(rib.poll_fib().is_empty());
}

#[test]
fn kernel_gets_blackholes_but_never_its_own_routes() {
    let mut c = cfg();
    c.kernel_policy = Some("all".into());
    let mut rib = Rib::new(c);
    rib.originate(
        Local::Static,
        pfx("192.168.221.64/26"),
        RouteAttrs::bgp(Default::default()),
    );
    let mut k = RouteAttrs::bgp(Default::default());
    k.ifname = Some(Arc::from("cali1234"));
    rib.originate(Local::Kernel, pfx("192.168.221.70/32"), k);
    assert_eq!(
        rib.poll_fib(),
        vec![
            FibChange::Install(FibRoute {
                prefix: pfx("192.168.221.64/26"),
                next_hops: vec![],
                blackhole: true,
                metric: None,
                tunnel: None
            }),
            FibChange::Remove(pfx("192.168.221.70/32")),
        ]
    );
}

// ===== ADD-PATH =====

#[test]
fn add_path_receive_and_send() {
    let mut rib = Rib::new(cfg());
    let a = up(&mut rib, "10.0.0.2", 64512, |_, s| s.add_path_rx = true);
    let all = up(&mut rib, "10.0.0.7", 65007, |_, s| {
        s.add_path_tx = AddPathSend::All
    });
    let best1 = up(&mut rib, "10.0.0.8", 65008, |_, s| {
        s.add_path_tx = AddPathSend::Best(1)
    });
    let p = pfx("10.1.0.0/16");
    let mut long = attrs(&[65001, 65002], "10.0.0.21");
    long.local_pref = Some(100);
    rib.announce(a, long, &[Nlri::with_path_id(p, 1)]);
    rib.announce(a, attrs(&[65001], "10.0.0.22"), &[Nlri::with_path_id(p, 2)]);
    assert_eq!(rib.routes(p).len(), 2);
    assert_eq!(rib.best(p).unwrap().path_id, 2);
    let outs = rib.poll_updates();
    let v = view(&outs, all);
    assert_eq!(v.len(), 2);
    assert!(v.keys().all(|n| n.path_id.is_some()));
    let v1 = view(&outs, best1);
    assert_eq!(v1.len(), 1);
    let (n, a1) = v1.iter().next().unwrap();
    assert_eq!(n.path_id, Some(rib.best(p).unwrap().tx_path_id));
    assert_eq!(
        a1.as_ref()
            .unwrap()
            .bgp
            .as_path
            .as_ref()
            .unwrap()
            .to_string(),
        "64512 65001"
    );
    // Withdrawing path 2 leaves path 1, which keeps its send id.
    let tx1 = rib
        .routes(p)
        .iter()
        .find(|r| r.path_id == 1)
        .unwrap()
        .tx_path_id;
    rib.withdraw(a, &[Nlri::with_path_id(p, 2)]);
    assert_eq!(rib.routes(p).len(), 1);
    assert_eq!(rib.routes(p)[0].tx_path_id, tx1);
    let outs = rib.poll_updates();
    let v = view(&outs, all);
    assert_eq!(v.len(), 1);
    assert!(
        v.values().all(|x| x.is_none()),
        "only the withdrawal of path 2: {v:?}"
    );
    let v1 = view(&outs, best1);
    assert_eq!(
        v1.get(&Nlri::with_path_id(p, tx1)).map(|x| x.is_some()),
        Some(true)
    );
}

/// A hostile ADD-PATH peer may put thousands of paths on one destination: each insertion
/// must stay linear (send-id allocation and the MED step used to compare every pair, which
/// made this test run for minutes), and the result must still be right.
#[test]
fn thousands_of_add_path_paths_on_one_destination() {
    let mut rib = Rib::new(cfg());
    let a = up(&mut rib, "10.0.0.2", 64512, |_, s| s.add_path_rx = true);
    let all = up(&mut rib, "10.0.0.7", 65007, |_, s| {
        s.add_path_tx = AddPathSend::All
    });
    let p = pfx("10.1.0.0/16");
    const N: u32 = 2000;
    for id in 1..=N {
        let mut at = attrs(&[65001], "10.0.0.21");
        // Two MEDs, so the MED step has work to do: odd ids lose.
        at.med = Some(id % 2);
        rib.announce(a, at, &[Nlri::with_path_id(p, id)]);
    }
    let routes = rib.routes(p);
    assert_eq!(routes.len(), N as usize);
    let mut tx: Vec<u32> = routes.iter().map(|r| r.tx_path_id).collect();
    tx.sort_unstable();
    assert_eq!(
        tx,
        (1..=N).collect::<Vec<_>>(),
        "send ids are 1..=N, each once"
    );
    // MED 0 paths win; among them the lowest receive id.
    assert_eq!(rib.best(p).unwrap().path_id, 2);
    assert_eq!(view(&rib.poll_updates(), all).len(), N as usize);
}

// ===== export rules, route reflection =====

#[test]
fn route_reflection_rules() {
    let mut c = cfg();
    c.cluster_id = Some(ip4("1.1.1.1"));
    let mut rib = Rib::new(c);
    let c1 = up(&mut rib, "10.0.1.1", 64512, |p, _| p.rr_client = true);
    let c2 = up(&mut rib, "10.0.1.2", 64512, |p, _| p.rr_client = true);
    let n1 = up(&mut rib, "10.0.2.1", 64512, plain);
    let e = up(&mut rib, "10.0.3.1", 65001, plain);
    assert_eq!(rib.group_of(c1), rib.group_of(c2));
    assert_ne!(rib.group_of(c1), rib.group_of(n1));
    rib.poll_updates();

    rib.announce(c1, attrs(&[], "10.0.1.1"), &[nl("10.10.0.0/16")]);
    rib.announce(n1, attrs(&[], "10.0.2.1"), &[nl("10.20.0.0/16")]);
    let outs = rib.poll_updates();
    // From a client: to the other clients (never back to the sender), to non-clients, to eBGP.
    let to_c2 = view(&outs, c2);
    let r = to_c2[&nl("10.10.0.0/16")].clone().unwrap();
    assert_eq!(r.bgp.originator_id, Some(ip4("10.0.1.1")));
    assert_eq!(r.bgp.cluster_list, vec![ip4("1.1.1.1")]);
    assert_eq!(r.bgp.next_hop, Some(ip4("10.0.1.1")));
    assert_eq!(r.bgp.local_pref, Some(100));
    assert_eq!(view(&outs, c1).get(&nl("10.10.0.0/16")), Some(&None));
    assert!(view(&outs, n1)[&nl("10.10.0.0/16")].is_some());
    let to_e = view(&outs, e)[&nl("10.10.0.0/16")].clone().unwrap();
    assert_eq!(to_e.bgp.as_path.as_ref().unwrap().to_string(), "64512");
    assert_eq!(
        (to_e.bgp.originator_id, to_e.bgp.cluster_list.len()),
        (None, 0)
    );
    assert_eq!(
        (to_e.bgp.next_hop, to_e.bgp.local_pref),
        (Some(ip4(ME)), None)
    );
    // From a non-client: to clients and eBGP only.
    assert!(to_c2[&nl("10.20.0.0/16")].is_some());
    assert!(!view(&outs, n1).contains_key(&nl("10.20.0.0/16")));
    assert!(view(&outs, e)[&nl("10.20.0.0/16")].is_some());
}

#[test]
fn ibgp_routes_are_not_passed_between_non_clients() {
    let mut rib = Rib::new(cfg());
    let n1 = up(&mut rib, "10.0.2.1", 64512, plain);
    let n2 = up(&mut rib, "10.0.2.2", 64512, plain);
    rib.poll_updates();
    rib.announce(n1, attrs(&[], "10.0.2.1"), &[nl("10.20.0.0/16")]);
    let outs = rib.poll_updates();
    assert!(view(&outs, n2).is_empty());
}

#[test]
fn ebgp_export_prepend_local_as_override_med_and_next_hop_modes() {
    let mut rib = Rib::new(cfg());
    let a = up(&mut rib, "10.0.0.2", 65001, plain);
    let e_override = up(&mut rib, "10.0.3.2", 65002, |p, _| p.local_as = Some(65500));
    let e_keep = up(&mut rib, "10.0.3.3", 65003, |p, _| {
        p.next_hop_mode = NextHopMode::Keep
    });
    let i_auto = up(&mut rib, "10.0.2.1", 64512, plain);
    let i_self = up(&mut rib, "10.0.2.2", 64512, |p, _| {
        p.next_hop_mode = NextHopMode::SelfAddress
    });
    rib.poll_updates();
    let mut x = attrs(&[65001], "10.0.0.2");
    x.med = Some(50);
    rib.announce(a, x, &[nl("10.1.0.0/16")]);
    rib.originate(
        Local::Static,
        pfx("192.168.0.0/26"),
        RouteAttrs::bgp(Default::default()),
    );
    let outs = rib.poll_updates();
    let r = view(&outs, e_override)[&nl("10.1.0.0/16")].clone().unwrap();
    assert_eq!(r.bgp.as_path.as_ref().unwrap().to_string(), "65500 65001");
    assert_eq!(r.bgp.med, None, "MED is not passed to another AS");
    assert_eq!(r.bgp.next_hop, Some(ip4(ME)));
    let r = view(&outs, e_keep)[&nl("10.1.0.0/16")].clone().unwrap();
    assert_eq!(r.bgp.as_path.as_ref().unwrap().to_string(), "64512 65001");
    assert_eq!(r.bgp.next_hop, Some(ip4("10.0.0.2")));
    let r = view(&outs, i_auto)[&nl("10.1.0.0/16")].clone().unwrap();
    assert_eq!(
        (r.bgp.next_hop, r.bgp.med, r.bgp.local_pref),
        (Some(ip4("10.0.0.2")), Some(50), Some(100))
    );
    assert_eq!(r.bgp.as_path.as_ref().unwrap().to_string(), "65001");
    let r = view(&outs, i_self)[&nl("10.1.0.0/16")].clone().unwrap();
    assert_eq!(r.bgp.next_hop, Some(ip4(ME)));
    // A local route goes out with next hop self, ORIGIN IGP and an empty (iBGP) or our (eBGP) path.
    let r = view(&outs, i_auto)[&nl("192.168.0.0/26")].clone().unwrap();
    assert_eq!(
        (r.bgp.next_hop, r.bgp.origin),
        (Some(ip4(ME)), Some(Origin::Igp))
    );
    assert_eq!(r.bgp.as_path, Some(AsPath::default()));
    let r = view(&outs, e_keep)[&nl("192.168.0.0/26")].clone().unwrap();
    assert_eq!(r.bgp.as_path.as_ref().unwrap().to_string(), "64512");
}

#[test]
fn well_known_communities_limit_export() {
    let mut rib = Rib::new(cfg());
    let a = up(&mut rib, "10.0.0.2", 65001, plain);
    let e = up(&mut rib, "10.0.3.2", 65002, plain);
    let i = up(&mut rib, "10.0.2.1", 64512, plain);
    rib.poll_updates();
    let mut noexp = attrs(&[65001], "10.0.0.2");
    noexp.communities = vec![Community::NO_EXPORT].into();
    rib.announce(a, noexp, &[nl("10.1.0.0/16")]);
    let mut noadv = attrs(&[65001], "10.0.0.2");
    noadv.communities = vec![Community::NO_ADVERTISE].into();
    rib.announce(a, noadv, &[nl("10.2.0.0/16")]);
    let outs = rib.poll_updates();
    assert!(view(&outs, e).is_empty());
    let vi = view(&outs, i);
    assert!(vi.contains_key(&nl("10.1.0.0/16")) && !vi.contains_key(&nl("10.2.0.0/16")));
}

// ===== update groups, coalescing, refresh =====

#[test]
fn update_groups_compute_once_and_coalesce() {
    let mut rib = Rib::new(cfg());
    let a = up(&mut rib, "10.0.0.2", 65001, plain);
    let m1 = up(&mut rib, "10.0.2.1", 64512, plain);
    let m2 = up(&mut rib, "10.0.2.2", 64512, plain);
    assert_eq!(rib.group_of(m1), rib.group_of(m2));
    let first = rib.poll_updates();
    // The group was created for m1 (EoR after its empty table), m2 joined it (dump + EoR).
    assert!(first.iter().any(|o| o.target == Target::Peer(m1)
        && o.end_of_rib == vec![Family::IPV4_UNICAST, Family::IPV6_UNICAST]));
    assert!(
        first
            .iter()
            .any(|o| o.target == Target::Peer(m2) && !o.end_of_rib.is_empty())
    );

    rib.announce(a, attrs(&[65001], "10.0.0.2"), &[nl("10.1.0.0/16")]);
    rib.announce(a, attrs(&[65001, 65009], "10.0.0.2"), &[nl("10.1.0.0/16")]);
    rib.announce(a, attrs(&[65001], "10.0.0.2"), &[nl("10.2.0.0/16")]);
    rib.withdraw(a, &[nl("10.2.0.0/16")]);
    let outs = rib.poll_updates();
    let groups: Vec<_> = outs
        .iter()
        .filter(|o| matches!(o.target, Target::Group { .. }))
        .collect();
    // One update for both members (plus the eBGP peer's own group, which gets nothing back).
    let ours = groups
        .iter()
        .find(|o| matches!(&o.target, Target::Group { members, .. } if members.contains(&m1)))
        .unwrap();
    assert!(matches!(&ours.target, Target::Group { members, .. } if members == &vec![m1, m2]));
    // Latest state only: one announcement with the second path, nothing for 10.2/16.
    assert!(ours.withdraw.is_empty());
    assert_eq!(ours.announce.len(), 1);
    assert_eq!(ours.announce[0].nlri, vec![nl("10.1.0.0/16")]);
    assert_eq!(
        ours.announce[0]
            .attrs
            .bgp
            .as_path
            .as_ref()
            .unwrap()
            .to_string(),
        "65001 65009"
    );
    assert!(rib.poll_updates().is_empty());
    // Re-announcing the same thing sends nothing.
    rib.announce(a, attrs(&[65001, 65009], "10.0.0.2"), &[nl("10.1.0.0/16")]);
    assert!(rib.poll_updates().is_empty());
    assert_eq!(rib.adj_rib_out(m1).len(), 1);

    // Route refresh: the whole Adj-RIB-Out to that peer alone, then End-of-RIB.
    rib.route_refresh(m2);
    let outs = rib.poll_updates();
    assert_eq!(outs.len(), 1);
    assert_eq!(outs[0].target, Target::Peer(m2));
    assert_eq!(outs[0].announce[0].nlri, vec![nl("10.1.0.0/16")]);
    assert_eq!(outs[0].end_of_rib.len(), 2);
}

#[test]
fn export_policy_change_regroups_with_withdrawals() {
    let mut c = cfg();
    let mut pols = BTreeMap::new();
    pols.insert("only_10_2".to_string(), only("10.2.0.0/16"));
    c.policies = Policies::new(pols);
    let mut rib = Rib::new(c);
    let a = up(&mut rib, "10.0.0.2", 65001, plain);
    let n = up(&mut rib, "10.0.2.1", 64512, plain);
    rib.announce(
        a,
        attrs(&[65001], "10.0.0.2"),
        &[nl("10.1.0.0/16"), nl("10.2.0.0/16")],
    );
    let outs = rib.poll_updates();
    assert_eq!(view(&outs, n).len(), 2);
    let mut pc = rib::PeerConfig::new(ip("10.0.2.1"), 64512);
    pc.export = "only_10_2".into();
    rib.reconfigure_peer(n, pc).unwrap();
    let outs = rib.poll_updates();
    let v = view(&outs, n);
    assert_eq!(v.get(&nl("10.1.0.0/16")), Some(&None));
    assert!(v[&nl("10.2.0.0/16")].is_some());
    assert_eq!(rib.adj_rib_out(n).len(), 1);
}

#[test]
fn import_policy_change_uses_pre_policy_table_or_asks_for_refresh() {
    let mut c = cfg();
    let mut pols = BTreeMap::new();
    pols.insert("no_10_1".to_string(), reject("10.1.0.0/16"));
    c.policies = Policies::new(pols);
    let mut rib = Rib::new(c);
    let soft = up(&mut rib, "10.0.0.2", 65001, |p, _| {
        p.soft_reconfig_in = true
    });
    let rr = up(&mut rib, "10.0.0.3", 65002, plain);
    let no_rr = up(&mut rib, "10.0.0.4", 65003, |_, s| s.route_refresh = false);
    for (p, nh) in [(soft, "10.0.0.2"), (rr, "10.0.0.3"), (no_rr, "10.0.0.4")] {
        let asn = match nh {
            "10.0.0.2" => 65001,
            "10.0.0.3" => 65002,
            _ => 65003,
        };
        rib.announce(
            p,
            attrs(&[asn], nh),
            &[nl("10.1.0.0/16"), nl("10.2.0.0/16")],
        );
    }
    assert_eq!(rib.pre_policy_paths(soft), 2);
    assert_eq!(rib.pre_policy_paths(rr), 0);
    assert_eq!(
        rib.pre_policy_paths(no_rr),
        2,
        "kept because the peer cannot refresh"
    );
    for (p, asn) in [(soft, 65001), (rr, 65002), (no_rr, 65003)] {
        let mut pc = rib::PeerConfig::new(
            rib_addr(
                p,
                &[(soft, "10.0.0.2"), (rr, "10.0.0.3"), (no_rr, "10.0.0.4")],
            ),
            asn,
        );
        if p == soft {
            pc.soft_reconfig_in = true;
        }
        pc.import = "no_10_1".into();
        rib.reconfigure_peer(p, pc).unwrap();
    }
    assert_eq!(rib.peer_paths(soft), 1);
    assert_eq!(rib.peer_paths(no_rr), 1);
    assert_eq!(rib.peer_paths(rr), 2, "unchanged until the refresh arrives");
    assert_eq!(rib.poll_requests(), vec![Request::RouteRefresh(rr)]);
}

fn rib_addr(p: rib::PeerId, table: &[(rib::PeerId, &str)]) -> std::net::IpAddr {
    ip(table.iter().find(|(q, _)| *q == p).unwrap().1)
}

// ===== graceful restart =====

fn gr_session(
    restart: u64,
    llgr: Option<u64>,
) -> impl FnOnce(&mut rib::PeerConfig, &mut rib::Session) {
    move |_, s| {
        s.gr_restart_time = Some(Duration::from_secs(restart));
        s.llgr_stale_time = llgr.map(Duration::from_secs);
    }
}

#[test]
fn graceful_restart_helper() {
    let t0 = Instant::now();
    let mut rib = Rib::new(cfg());
    let a = up(&mut rib, "10.0.0.2", 65001, gr_session(120, None));
    let n = up(&mut rib, "10.0.2.1", 64512, plain);
    rib.announce(
        a,
        attrs(&[65001], "10.0.0.2"),
        &[nl("10.1.0.0/16"), nl("10.2.0.0/16")],
    );
    rib.poll_updates();
    rib.peer_down(a, t0, Down::Graceful).unwrap();
    assert!(rib.best(pfx("10.1.0.0/16")).unwrap().stale);
    assert_eq!(rib.poll_timeout(), Some(t0 + Duration::from_secs(120)));
    // Stale routes stay advertised: nothing changes for the other peers.
    assert!(view(&rib.poll_updates(), n).is_empty());
    // The peer comes back; it re-announces one prefix and ends with End-of-RIB.
    let mut s = rib::Session::new(ip4("10.0.0.2"), ip(ME));
    s.gr_restart_time = Some(Duration::from_secs(120));
    rib.peer_up(a, s).unwrap();
    rib.apply_update(
        a,
        &Update {
            attributes: attrs(&[65001], "10.0.0.2"),
            nlri: vec![nl("10.1.0.0/16")],
            ..Default::default()
        },
    );
    assert!(!rib.best(pfx("10.1.0.0/16")).unwrap().stale);
    assert!(rib.best(pfx("10.2.0.0/16")).unwrap().stale);
    rib.apply_update(a, &Update::end_of_rib(Family::IPV4_UNICAST));
    assert!(rib.best(pfx("10.2.0.0/16")).is_none());
    assert_eq!(rib.poll_timeout(), None);
    assert_eq!(
        view(&rib.poll_updates(), n).get(&nl("10.2.0.0/16")),
        Some(&None)
    );

    // Deadline: purged exactly then — also paths re-sent on a session that failed again
    // before its End-of-RIB (the first deadline keeps running).
    rib.peer_down(a, t0, Down::Graceful).unwrap();
    let mut s = rib::Session::new(ip4("10.0.0.2"), ip(ME));
    s.gr_restart_time = Some(Duration::from_secs(120));
    rib.peer_up(a, s).unwrap();
    rib.announce(a, attrs(&[65001], "10.0.0.2"), &[nl("10.5.0.0/16")]);
    rib.peer_down(a, t0 + Duration::from_secs(60), Down::Graceful)
        .unwrap();
    assert!(rib.best(pfx("10.5.0.0/16")).unwrap().stale);
    rib.tick(t0 + Duration::from_secs(119));
    assert!(rib.best(pfx("10.1.0.0/16")).is_some());
    rib.tick(t0 + Duration::from_secs(120));
    assert!(rib.is_empty());

    // Forwarding state not preserved across the restart: stale routes go at session up.
    let b = up(&mut rib, "10.0.0.3", 65002, gr_session(120, None));
    rib.announce(b, attrs(&[65002], "10.0.0.3"), &[nl("10.3.0.0/16")]);
    rib.peer_down(b, t0, Down::Graceful).unwrap();
    let mut s = rib::Session::new(ip4("10.0.0.3"), ip(ME));
    s.gr_forwarding_preserved = false;
    rib.peer_up(b, s).unwrap();
    assert!(rib.is_empty());
    // A hard reset withdraws at once; so does a graceful one from a peer without GR.
    rib.announce(b, attrs(&[65002], "10.0.0.3"), &[nl("10.3.0.0/16")]);
    rib.peer_down(b, t0, Down::Hard).unwrap();
    assert!(rib.is_empty());
    rib.announce(n, attrs(&[], "10.0.2.1"), &[nl("10.4.0.0/16")]);
    rib.peer_down(n, t0, Down::Graceful).unwrap();
    assert!(rib.is_empty());
}

#[test]
fn long_lived_graceful_restart() {
    let t0 = Instant::now();
    let mut rib = Rib::new(cfg());
    let a = up(&mut rib, "10.0.0.2", 65001, gr_session(10, Some(3600)));
    let b = up(&mut rib, "10.0.0.3", 65002, plain);
    let llgr_peer = up(&mut rib, "10.0.2.1", 64512, |_, s| {
        s.llgr_stale_time = Some(Duration::from_secs(60))
    });
    let plain_peer = up(&mut rib, "10.0.2.2", 64512, plain);
    rib.announce(
        a,
        attrs(&[65001], "10.0.0.2"),
        &[nl("10.1.0.0/16"), nl("10.2.0.0/16")],
    );
    let mut no_llgr = attrs(&[65001], "10.0.0.2");
    no_llgr.communities = vec![Community::NO_LLGR].into();
    rib.announce(a, no_llgr, &[nl("10.3.0.0/16")]);
    rib.announce(b, attrs(&[65002, 65009], "10.0.0.3"), &[nl("10.1.0.0/16")]);
    assert_eq!(best_peer(&rib, "10.1.0.0/16"), Some(a));
    rib.poll_updates();
    rib.peer_down(a, t0, Down::Graceful).unwrap();
    rib.tick(t0 + Duration::from_secs(10));
    // Long-lived stale: least preferred, tagged LLGR_STALE, NO_LLGR routes gone.
    assert_eq!(best_peer(&rib, "10.1.0.0/16"), Some(b));
    let r = rib.best(pfx("10.2.0.0/16")).unwrap();
    assert!(r.llgr_stale && r.attrs.bgp.communities.contains(&Community::LLGR_STALE));
    assert!(rib.best(pfx("10.3.0.0/16")).is_none());
    let outs = rib.poll_updates();
    let to_llgr = view(&outs, llgr_peer);
    assert!(
        to_llgr[&nl("10.2.0.0/16")]
            .as_ref()
            .unwrap()
            .bgp
            .communities
            .contains(&Community::LLGR_STALE)
    );
    assert_eq!(view(&outs, plain_peer).get(&nl("10.2.0.0/16")), Some(&None));
    assert_eq!(rib.poll_timeout(), Some(t0 + Duration::from_secs(3610)));
    rib.tick(t0 + Duration::from_secs(3609));
    assert!(rib.best(pfx("10.2.0.0/16")).is_some());
    rib.tick(t0 + Duration::from_secs(3610));
    assert!(rib.best(pfx("10.2.0.0/16")).is_none());
    assert_eq!(best_peer(&rib, "10.1.0.0/16"), Some(b));
}

#[test]
fn wire_updates_with_mp_reach() {
    let mut rib = Rib::new(cfg());
    let a = up(&mut rib, "10.0.0.2", 65001, plain);
    let mut at = attrs(&[65001], "10.0.0.2");
    at.mp_next_hop = Some(bgp_wire::NextHop::V6 {
        global: "2001:db8::2".parse().unwrap(),
        link_local: None,
    });
    let u = Update {
        attributes: at,
        nlri: vec![nl("10.1.0.0/16")],
        mp_reach: Some(bgp_wire::MpReach {
            family: Family::IPV6_UNICAST,
            nlri: vec![nl("2001:db8:1::/48")],
        }),
        ..Default::default()
    };
    rib.apply_update(a, &u);
    assert_eq!(rib.len(), 2);
    assert_eq!(rib.attribute_sets(), 1);
    let w = Update {
        withdrawn: vec![nl("10.1.0.0/16")],
        mp_unreach: Some(bgp_wire::MpUnreach {
            family: Family::IPV6_UNICAST,
            withdrawn: vec![nl("2001:db8:1::/48")],
        }),
        ..Default::default()
    };
    rib.apply_update(a, &w);
    assert!(rib.is_empty());
    assert_eq!(rib.attribute_sets(), 0);
}

#[test]
fn restarting_speaker_defers_selection_until_end_of_rib_or_deadline() {
    let t0 = Instant::now();
    let mut c = cfg();
    c.kernel_policy = Some("all".into());
    let mut rib = Rib::new(c);
    rib.defer_selection_until(t0 + Duration::from_secs(360));
    let a = up(&mut rib, "10.0.0.2", 65001, |_, s| {
        s.gr_restart_time = Some(Duration::from_secs(120));
        s.families = vec![Family::IPV4_UNICAST];
    });
    let b = up(&mut rib, "10.0.0.3", 65002, |_, s| {
        s.gr_restart_time = Some(Duration::from_secs(120));
        s.families = vec![Family::IPV4_UNICAST];
    });
    rib.announce(a, attrs(&[65001], "10.0.0.2"), &[nl("10.1.0.0/16")]);
    rib.end_of_rib(a, Family::IPV4_UNICAST);
    assert!(
        rib.poll_updates().is_empty() && rib.poll_fib().is_empty(),
        "b has not sent End-of-RIB"
    );
    assert_eq!(rib.poll_timeout(), Some(t0 + Duration::from_secs(360)));
    rib.end_of_rib(b, Family::IPV4_UNICAST);
    assert_eq!(rib.poll_fib().len(), 1);
    assert!(view(&rib.poll_updates(), b).contains_key(&nl("10.1.0.0/16")));

    // The deferral timer releases it too.
    let mut rib = Rib::new(cfg());
    rib.defer_selection_until(t0 + Duration::from_secs(5));
    let a = up(&mut rib, "10.0.0.2", 65001, |_, s| {
        s.gr_restart_time = Some(Duration::from_secs(120))
    });
    let n = up(&mut rib, "10.0.2.1", 64512, plain);
    rib.announce(a, attrs(&[65001], "10.0.0.2"), &[nl("10.1.0.0/16")]);
    rib.tick(t0 + Duration::from_secs(4));
    assert!(rib.poll_updates().is_empty());
    rib.tick(t0 + Duration::from_secs(5));
    assert!(view(&rib.poll_updates(), n).contains_key(&nl("10.1.0.0/16")));
}
