//! Policy evaluation, and Calico's filters (contract §2.4–§2.9) written in the policy
//! language and checked rule by rule.

use super::*;
use bgp_wire::{AsPath, PathAttributes};
use lang::{Compare, LargeCommunity as LC, PRIORITY_BASE, Rule};

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn pfx(s: &str) -> Prefix {
    s.parse().unwrap()
}

fn within(s: &str) -> Match {
    lang::PrefixMatch::within(net(s))
}

fn ctx(origin: Origin, session: Option<SessionType>) -> Context {
    Context {
        session,
        origin,
        neighbour: Some("10.192.0.3".parse().unwrap()),
        local_address: Some("10.192.0.2".parse().unwrap()),
    }
}

fn kernel_route(ifname: &str, metric: Option<u32>) -> RouteAttrs {
    let mut a = RouteAttrs::bgp(PathAttributes::default());
    a.ifname = Some(Arc::from(ifname));
    a.krt_metric = metric;
    a.preference = crate::attrs::preference::KERNEL;
    a
}

fn static_route() -> RouteAttrs {
    let mut a = RouteAttrs::bgp(PathAttributes::default());
    a.preference = crate::attrs::preference::STATIC;
    a
}

fn bgp_route(next_hop: &str, lp: Option<u32>) -> RouteAttrs {
    RouteAttrs::bgp(PathAttributes {
        next_hop: Some(next_hop.parse().unwrap()),
        local_pref: lp,
        as_path: Some(AsPath::from_sequence(&[65001, 65002, 65003])),
        ..Default::default()
    })
}

/// Evaluates `name` and returns the outcome and the final attributes.
fn eval(
    p: &Policies,
    name: &str,
    prefix: &str,
    a: &RouteAttrs,
    c: &Context,
) -> (Outcome, RouteAttrs) {
    let mut cand = Candidate::new(pfx(prefix), a);
    let out = p.evaluate(name, &mut cand, c).unwrap();
    (out, cand.attrs().clone())
}

fn accepts(p: &Policies, name: &str, prefix: &str, a: &RouteAttrs, c: &Context) -> bool {
    eval(p, name, prefix, a, c).0 == Outcome::Accept
}

// ===== language semantics =====

#[test]
fn builtins_unknown_names_and_cycles() {
    let mut m = BTreeMap::new();
    m.insert(
        "loop".to_string(),
        Policy::new(vec![
            Rule::always(Verdict::Continue).then(vec![Action::Call("loop".into())]),
        ]),
    );
    m.insert(
        "calls_missing".to_string(),
        Policy::new(vec![
            Rule::always(Verdict::Continue).then(vec![Action::Call("nope".into())]),
        ]),
    );
    let p = Policies::new(m);
    let a = static_route();
    let c = ctx(Origin::Static, None);
    let mut cand = Candidate::new(pfx("10.0.0.0/8"), &a);
    assert_eq!(p.evaluate("all", &mut cand, &c), Ok(Outcome::Accept));
    assert_eq!(p.evaluate("none", &mut cand, &c), Ok(Outcome::Reject));
    assert_eq!(
        p.evaluate("x", &mut cand, &c),
        Err(PolicyError::Unknown("x".into()))
    );
    assert_eq!(
        p.evaluate("calls_missing", &mut cand, &c),
        Err(PolicyError::Unknown("nope".into()))
    );
    assert!(matches!(
        p.evaluate("loop", &mut cand, &c),
        Err(PolicyError::TooDeep(_))
    ));
    assert!(cand.into_modified().is_none());
}

#[test]
fn call_falls_through_and_verdicts_inside_calls_are_final() {
    let mut m = BTreeMap::new();
    // A filter that decides only for 10/8 and otherwise returns.
    m.insert(
        "f".to_string(),
        Policy::new(vec![
            Rule::when(vec![within("10.1.0.0/16")]).verdict(Verdict::Reject),
            Rule::when(vec![within("10.0.0.0/8")]).verdict(Verdict::Accept),
        ]),
    );
    m.insert(
        "top".to_string(),
        Policy::new(vec![
            Rule::always(Verdict::Continue).then(vec![
                Action::Call("f".into()),
                // Runs only when `f` fell through.
                Action::SetMed(7),
            ]),
            Rule::when(vec![within("172.16.0.0/12")]).verdict(Verdict::Accept),
        ]),
    );
    let p = Policies::new(m);
    let a = static_route();
    let c = ctx(Origin::Static, None);
    assert!(accepts(&p, "top", "10.2.0.0/16", &a, &c));
    assert_eq!(eval(&p, "top", "10.2.0.0/16", &a, &c).1.bgp.med, None);
    assert!(!accepts(&p, "top", "10.1.2.0/24", &a, &c));
    let (o, attrs) = eval(&p, "top", "172.16.1.0/24", &a, &c);
    assert_eq!((o, attrs.bgp.med), (Outcome::Accept, Some(7)));
    // Off the end of the top-level policy: its default (reject).
    assert!(!accepts(&p, "top", "192.0.2.0/24", &a, &c));
}

#[test]
fn default_verdict_and_copy_on_write() {
    let mut m = BTreeMap::new();
    m.insert(
        "open".to_string(),
        Policy {
            rules: vec![],
            default: Verdict::Accept,
        },
    );
    m.insert(
        "lp".to_string(),
        Policy::new(vec![
            Rule::always(Verdict::Accept).then(vec![Action::SetLocalPref(100)]),
        ]),
    );
    let p = Policies::new(m);
    let a = bgp_route("10.0.0.1", Some(100));
    let c = ctx(Origin::Ibgp, Some(SessionType::Ibgp));
    assert!(accepts(&p, "open", "10.0.0.0/8", &a, &c));
    // Setting a value to what it already is is no modification.
    let mut cand = Candidate::new(pfx("10.0.0.0/8"), &a);
    assert_eq!(p.evaluate("lp", &mut cand, &c), Ok(Outcome::Accept));
    assert!(cand.into_modified().is_none());
}

#[test]
fn every_match_variant() {
    let mut a = bgp_route("10.192.0.3", Some(200));
    a.bgp.communities.push(Community((65000 << 16) | 100));
    a.bgp.large_communities.push(LargeCommunity {
        global_admin: 1,
        local_data_1: 2,
        local_data_2: 3,
    });
    a.krt_metric = Some(512);
    a.ifname = Some(Arc::from("vxlan.calico"));
    let c = ctx(Origin::Ebgp, Some(SessionType::Ibgp));
    let p = Policies::default();
    let r = Candidate::new(pfx("192.168.1.0/24"), &a);
    let t = |m: Match| matches(&m, &r, &c);
    assert!(t(Match::Family(Family::Ipv4)) && !t(Match::Family(Family::Ipv6)));
    assert!(t(Match::Source(RouteSource::Bgp)) && t(Match::Source(RouteSource::Ebgp)));
    assert!(!t(Match::Source(RouteSource::Ibgp)) && !t(Match::Source(RouteSource::Kernel)));
    assert!(t(Match::Session(SessionType::Ibgp)) && !t(Match::Session(SessionType::Ebgp)));
    assert!(t(Match::Neighbour("10.192.0.3".parse().unwrap())));
    assert!(!t(Match::Neighbour("10.192.0.4".parse().unwrap())));
    assert!(t(Match::Interface("*.calico".into())) && !t(Match::Interface("*.cali".into())));
    assert!(
        t(Match::Community(lang::Community(65000, 100)))
            && !t(Match::Community(lang::Community(65000, 1)))
    );
    assert!(t(Match::LargeCommunity(LC(1, 2, 3))) && !t(Match::LargeCommunity(LC(1, 2, 4))));
    assert!(t(Match::AsPathPrefix(vec![65001, 65002])) && !t(Match::AsPathPrefix(vec![65002])));
    assert!(
        t(Match::AsPathPrefix(vec![])) && !t(Match::AsPathPrefix(vec![65001, 65002, 65003, 1]))
    );
    assert!(t(Match::LocalPrefDefined) && t(Match::LocalPref(Compare::Eq, 200)));
    assert!(t(Match::KrtMetricDefined) && t(Match::KrtMetric(Compare::Lt, 1024)));
    assert!(t(Match::NextHopDefined) && t(Match::NextHopIn(net("10.192.0.0/16"))));
    assert!(
        t(Match::NextHopIs("10.192.0.3".parse().unwrap()))
            && !t(Match::NextHopIn(net("10.0.0.0/16")))
    );
    assert!(t(Match::Not(Box::new(Match::LocalPref(Compare::Gt, 200)))));
    assert!(!t(Match::Any(vec![])) && t(Match::All(vec![])));
    // Undefined attributes: comparisons are false.
    let bare = static_route();
    let r2 = Candidate::new(pfx("192.168.1.0/24"), &bare);
    for m in [
        Match::LocalPref(Compare::Ne, 1),
        Match::KrtMetric(Compare::Ne, 1),
        Match::NextHopIn(net("0.0.0.0/0")),
        Match::Interface("*".into()),
    ] {
        assert!(!matches(&m, &r2, &c), "{m:?}");
    }
    let _ = p;
}

#[test]
fn prefix_operators_and_length_ranges() {
    let pm = |op, cidr: &str, min, max| PrefixMatch {
        op,
        prefix: net(cidr),
        min_len: min,
        max_len: max,
    };
    let r = pfx("77.1.3.0/24");
    assert!(prefix_matches(
        &pm(PrefixOp::In, "77.1.0.0/16", None, None),
        &r
    ));
    assert!(!prefix_matches(
        &pm(PrefixOp::NotIn, "77.1.0.0/16", None, None),
        &r
    ));
    assert!(prefix_matches(
        &pm(PrefixOp::NotIn, "77.2.0.0/16", None, None),
        &r
    ));
    assert!(prefix_matches(
        &pm(PrefixOp::Equal, "77.1.3.0/24", None, None),
        &r
    ));
    assert!(!prefix_matches(
        &pm(PrefixOp::Equal, "77.1.0.0/16", None, None),
        &r
    ));
    assert!(prefix_matches(
        &pm(PrefixOp::NotEqual, "77.1.0.0/16", None, None),
        &r
    ));
    assert!(prefix_matches(
        &pm(PrefixOp::In, "77.1.0.0/16", Some(24), Some(28)),
        &r
    ));
    assert!(!prefix_matches(
        &pm(PrefixOp::In, "77.1.0.0/16", Some(25), Some(28)),
        &r
    ));
    assert!(prefix_matches(
        &pm(PrefixOp::NotIn, "77.1.0.0/16", Some(25), Some(28)),
        &r
    ));
    // A prefix contains itself; a shorter one is not inside.
    assert!(prefix_matches(
        &pm(PrefixOp::In, "77.1.3.0/24", None, None),
        &r
    ));
    assert!(!prefix_matches(
        &pm(PrefixOp::In, "77.1.3.0/25", None, None),
        &r
    ));
    // Families never mix.
    assert!(!prefix_matches(&pm(PrefixOp::In, "::/0", None, None), &r));
    assert!(prefix_matches(
        &pm(PrefixOp::In, "2001:db8::/32", None, None),
        &pfx("2001:db8:1::/48")
    ));
}

#[test]
fn globs() {
    assert!(glob("*.cali", "wireguard.cali"));
    assert!(glob("bpf*.cali", "bpfout.cali"));
    assert!(!glob("bpf*.cali", "wireguard.cali"));
    assert!(glob("eth?", "eth0") && !glob("eth?", "eth10"));
    assert!(glob("*", "") && glob("**a*", "bab") && !glob("a", "") && glob("tunl0", "tunl0"));
    assert!(
        !glob("*.calico", "vxlan.cali") && glob("a*b*c", "aXXbYYc") && !glob("a*b*c", "aXXbYY")
    );
}

#[test]
fn every_action_variant() {
    let a = bgp_route("10.192.0.3", Some(PRIORITY_BASE - 512));
    let c = ctx(Origin::Ibgp, Some(SessionType::Ibgp));
    let mut m = BTreeMap::new();
    m.insert(
        "x".to_string(),
        Policy::new(vec![Rule::always(Verdict::Accept).then(vec![
            Action::AddCommunity(lang::Community(65000, 100)),
            Action::AddCommunity(lang::Community(65000, 100)),
            Action::AddLargeCommunity(LC(1, 2, 3)),
            Action::SetMed(5),
            Action::Prepend(vec![64512, 64513]),
            Action::SetKrtMetricFromLocalPref,
            Action::SetPreference(200),
            Action::SetKrtTunnel("tunl0".into()),
            Action::SetNextHop(NextHop::SelfAddress),
        ])]),
    );
    m.insert(
        "y".to_string(),
        Policy::new(vec![Rule::always(Verdict::Accept).then(vec![
            Action::SetKrtMetric(300),
            Action::SetLocalPrefFromKrtMetric,
            Action::SetNextHop(NextHop::Address("2001:db8::5".parse().unwrap())),
            Action::SetKrtTunnel(String::new()),
        ])]),
    );
    let p = Policies::new(m);
    let (_, x) = eval(&p, "x", "10.0.0.0/8", &a, &c);
    assert_eq!(x.bgp.communities, vec![Community((65000 << 16) | 100)]);
    assert_eq!(x.bgp.large_communities.len(), 1);
    assert_eq!(x.bgp.med, Some(5));
    assert_eq!(
        x.bgp.as_path.as_ref().unwrap().to_string(),
        "64512 64513 65001 65002 65003"
    );
    assert_eq!(x.krt_metric, Some(512));
    assert_eq!(x.preference, 200);
    assert_eq!(x.krt_tunnel.as_deref(), Some("tunl0"));
    assert_eq!(x.next_hop(), Some("10.192.0.2".parse().unwrap()));
    let (_, y) = eval(&p, "y", "10.0.0.0/8", &x, &c);
    assert_eq!(y.krt_metric, Some(300));
    assert_eq!(y.bgp.local_pref, Some(PRIORITY_BASE - 300));
    assert_eq!(
        y.bgp.mp_next_hop,
        Some(bgp_wire::NextHop::V6 {
            global: "2001:db8::5".parse().unwrap(),
            link_local: None
        })
    );
    assert_eq!(y.krt_tunnel, None);
}

// ===== Calico's filters =====

/// The filters confd renders for one node, in the policy language, as the controller
/// generates them (contract §2.3–§2.9). `rr` = this node is a route reflector.
fn calico(rr: bool) -> Policies {
    let mut m = BTreeMap::new();
    let nrp = 1024;
    // §2.4 step 3.
    m.insert(
        "reject_local_routes".to_string(),
        Policy::new(vec![
            Rule::when(vec![Match::Interface("bpf*.cali".into())]).verdict(Verdict::Reject),
        ]),
    );
    // §2.7: prefixAdvertisements for the block.
    m.insert(
        "apply_communities".to_string(),
        Policy::new(vec![Rule::when(vec![within("192.168.221.64/26")]).then(
            vec![
                Action::AddCommunity(lang::Community(65000, 100)),
                Action::AddLargeCommunity(LC(65000, 1, 2)),
            ],
        )]),
    );
    // §2.3: one confirmed block.
    let block = net("192.168.221.64/26");
    m.insert(
        "calico_aggr".to_string(),
        Policy::new(vec![
            Rule::when(vec![lang::PrefixMatch::exactly(block)]).verdict(Verdict::Accept),
            Rule::when(vec![
                lang::PrefixMatch::within(block),
                Match::KrtMetric(Compare::Lt, nrp),
            ])
            .verdict(Verdict::Accept),
            Rule::when(vec![lang::PrefixMatch::within(block)]).verdict(Verdict::Reject),
        ]),
    );
    // §2.4 calico_export_to_bgp_peers.
    let mut rules = vec![
        // 1. disabled-export pool.
        Rule::when(vec![within("10.9.0.0/16")]).verdict(Verdict::Reject),
        // 2. Felix tunnel devices, internal peers only.
        Rule::when(vec![
            Match::Session(SessionType::Ibgp),
            Match::Any(vec![
                Match::Interface("*.cali".into()),
                Match::Interface("*.calico".into()),
                Match::Interface("tunl0".into()),
            ]),
        ])
        .verdict(Verdict::Reject),
        // 3.–5.
        Rule::always(Verdict::Continue).then(vec![
            Action::Call("reject_local_routes".into()),
            Action::Call("apply_communities".into()),
            Action::Call("calico_aggr".into()),
        ]),
        // 6. static routes (service cluster range and one service /32).
        Rule::when(vec![within("10.96.0.0/12")]).verdict(Verdict::Accept),
        Rule::when(vec![within("10.100.5.5/32")]).verdict(Verdict::Accept),
    ];
    // 7. LB ranges on RR nodes only.
    if rr {
        rules.push(Rule::when(vec![within("10.200.0.0/24")]).verdict(Verdict::Accept));
    }
    // 8. exported pools (sorted).
    rules.push(Rule::when(vec![within("172.16.0.0/16")]).verdict(Verdict::Accept));
    rules.push(Rule::when(vec![within("192.168.0.0/16")]).verdict(Verdict::Accept));
    m.insert("calico_export_to_bgp_peers".to_string(), Policy::new(rules));

    // §2.6: one BGPFilter, export direction, with v3.32 fields.
    m.insert(
        "bgp_f_exportFilterV4".to_string(),
        Policy::new(vec![
            // Equal before the broader In: order matters.
            Rule::when(vec![lang::PrefixMatch::exactly(net("77.1.2.0/24"))])
                .verdict(Verdict::Reject),
            Rule::when(vec![Match::Prefix(PrefixMatch {
                op: PrefixOp::In,
                prefix: net("77.1.0.0/16"),
                min_len: Some(24),
                max_len: Some(28),
            })])
            .then(vec![
                Action::AddCommunity(lang::Community(65000, 7)),
                Action::Prepend(vec![65101, 65102]),
                Action::SetLocalPref(PRIORITY_BASE - 512),
            ])
            .verdict(Verdict::Accept),
            // source: RemotePeers + NotIn
            Rule::when(vec![
                Match::Source(RouteSource::Bgp),
                Match::Prefix(PrefixMatch {
                    op: PrefixOp::NotIn,
                    prefix: net("77.0.0.0/8"),
                    min_len: None,
                    max_len: None,
                }),
            ])
            .verdict(Verdict::Reject),
            // interface glob
            Rule::when(vec![Match::Interface("eth*".into())]).verdict(Verdict::Accept),
            // peerType: eBGP wraps the rule.
            Rule::when(vec![
                Match::Session(SessionType::Ebgp),
                Match::Community(lang::Community(65000, 9)),
            ])
            .verdict(Verdict::Accept),
            // asPathPrefix
            Rule::when(vec![Match::AsPathPrefix(vec![65001, 65002])]).verdict(Verdict::Reject),
            // NotEqual
            Rule::when(vec![
                Match::Prefix(PrefixMatch {
                    op: PrefixOp::NotEqual,
                    prefix: net("77.3.0.0/16"),
                    min_len: None,
                    max_len: None,
                }),
                within("77.3.0.0/16"),
            ])
            .verdict(Verdict::Accept),
        ]),
    );
    m.insert(
        "bgp_f_importFilterV4".to_string(),
        Policy::new(vec![
            // priority P → local pref match
            Rule::when(vec![
                Match::LocalPrefDefined,
                Match::LocalPref(Compare::Eq, PRIORITY_BASE - 300),
            ])
            .verdict(Verdict::Reject),
            Rule::when(vec![within("66.0.0.0/8")]).verdict(Verdict::Reject),
        ]),
    );

    // §2.9 export prefix + filters + calico_export_to_bgp_peers + reject.
    let bgp_with_lp = Match::All(vec![
        Match::Source(RouteSource::Bgp),
        Match::LocalPrefDefined,
    ]);
    let export_head = vec![
        Rule::when(vec![bgp_with_lp.clone()]).then(vec![Action::SetKrtMetricFromLocalPref]),
        Rule::when(vec![
            Match::Not(Box::new(bgp_with_lp.clone())),
            Match::Not(Box::new(Match::KrtMetricDefined)),
        ])
        .then(vec![Action::SetKrtMetric(nrp)]),
        Rule::when(vec![Match::Not(Box::new(bgp_with_lp))])
            .then(vec![Action::SetLocalPrefFromKrtMetric]),
    ];
    let mut peer_export = export_head.clone();
    peer_export.push(Rule::always(Verdict::Reject).then(vec![
        Action::Call("bgp_f_exportFilterV4".into()),
        Action::Call("calico_export_to_bgp_peers".into()),
    ]));
    m.insert(
        "export_Global_10_0_0_1".to_string(),
        Policy::new(peer_export),
    );
    let mut mesh_export = export_head;
    mesh_export.push(
        Rule::always(Verdict::Reject).then(vec![Action::Call("calico_export_to_bgp_peers".into())]),
    );
    m.insert("export_mesh".to_string(), Policy::new(mesh_export));
    // Import: filters, priority → preference, accept.
    m.insert(
        "import_Global_10_0_0_1".to_string(),
        Policy::new(vec![
            Rule::always(Verdict::Continue).then(vec![Action::Call("bgp_f_importFilterV4".into())]),
            Rule::when(vec![Match::LocalPref(Compare::Gt, PRIORITY_BASE - nrp)])
                .then(vec![Action::SetPreference(200)]),
            Rule::always(Verdict::Accept),
        ]),
    );

    // §2.4 calico_kernel_programming, §2.5 pools (≤v3.31 / `Enabled`: BIRD programs IPIP).
    m.insert(
        "calico_kernel_programming".to_string(),
        Policy::new(vec![
            // 1. reject CIDRs (service ranges).
            Rule::when(vec![within("10.96.0.0/12")]).verdict(Verdict::Reject),
            // 2. metric normalisation for BGP routes.
            Rule::when(vec![
                Match::Source(RouteSource::Bgp),
                Match::Not(Box::new(Match::KrtMetricDefined)),
                Match::LocalPrefDefined,
            ])
            .then(vec![Action::SetKrtMetricFromLocalPref]),
            Rule::when(vec![
                Match::Source(RouteSource::Bgp),
                Match::Not(Box::new(Match::KrtMetricDefined)),
            ])
            .then(vec![Action::SetKrtMetric(nrp)]),
            // 3. WireGuard peer next hop.
            Rule::when(vec![Match::NextHopIs("10.192.0.9".parse().unwrap())])
                .verdict(Verdict::Reject),
            // 4. pools: VXLAN → Felix; IPIP always; IPIP cross-subnet; no-encap.
            Rule::when(vec![within("10.101.0.0/16")]).verdict(Verdict::Reject),
            Rule::when(vec![within("192.168.0.0/16")])
                .then(vec![Action::SetKrtTunnel("tunl0".into())])
                .verdict(Verdict::Accept),
            Rule::when(vec![
                within("172.16.0.0/16"),
                Match::NextHopIn(net("10.192.0.0/24")),
            ])
            .then(vec![Action::SetKrtTunnel(String::new())])
            .verdict(Verdict::Accept),
            Rule::when(vec![within("172.16.0.0/16")])
                .then(vec![Action::SetKrtTunnel("tunl0".into())])
                .verdict(Verdict::Accept),
            Rule::when(vec![within("10.50.0.0/16")])
                .then(vec![Action::SetKrtTunnel(String::new())])
                .verdict(Verdict::Accept),
            // 5.
            Rule::always(Verdict::Accept),
        ]),
    );
    Policies::new(m)
}

const IBGP: Option<SessionType> = Some(SessionType::Ibgp);
const EBGP: Option<SessionType> = Some(SessionType::Ebgp);

#[test]
fn calico_export_order_disabled_pools_first() {
    let p = calico(false);
    // A kernel route inside the disabled pool is rejected even though nothing later would
    // reject it; a static route there too (step 1 precedes step 6).
    let k = kernel_route("cali123", None);
    assert!(!accepts(
        &p,
        "export_mesh",
        "10.9.1.0/26",
        &k,
        &ctx(Origin::Kernel, IBGP)
    ));
    assert!(!accepts(
        &p,
        "export_mesh",
        "10.9.0.0/16",
        &static_route(),
        &ctx(Origin::Static, EBGP)
    ));
}

#[test]
fn calico_export_tunnel_devices_only_to_internal_peers() {
    let p = calico(false);
    for dev in ["vxlan.calico", "wireguard.cali", "tunl0"] {
        let k = kernel_route(dev, None);
        assert!(
            !accepts(
                &p,
                "export_mesh",
                "192.168.5.0/26",
                &k,
                &ctx(Origin::Kernel, IBGP)
            ),
            "{dev}"
        );
        // eBGP peers still get pool routes on tunnel devices.
        assert!(
            accepts(
                &p,
                "export_mesh",
                "192.168.5.0/26",
                &k,
                &ctx(Origin::Kernel, EBGP)
            ),
            "{dev}"
        );
    }
    // eBPF local routes are rejected for every peer.
    let bpf = kernel_route("bpfout.cali", None);
    assert!(!accepts(
        &p,
        "export_mesh",
        "192.168.5.0/26",
        &bpf,
        &ctx(Origin::Kernel, EBGP)
    ));
}

#[test]
fn calico_export_block_aggregation_and_priority_escape() {
    let p = calico(false);
    let c = ctx(Origin::Static, IBGP);
    // The block aggregate (static blackhole) is exported with the block's communities.
    let (o, a) = eval(&p, "export_mesh", "192.168.221.64/26", &static_route(), &c);
    assert_eq!(o, Outcome::Accept);
    assert_eq!(a.bgp.communities, vec![Community((65000 << 16) | 100)]);
    assert_eq!(
        a.bgp.large_communities,
        vec![LargeCommunity {
            global_admin: 65000,
            local_data_1: 1,
            local_data_2: 2
        }]
    );
    // §2.9 export prefix: no krt_metric → NormalRoutePriority, local pref derived from it.
    assert_eq!(a.krt_metric, Some(1024));
    assert_eq!(a.bgp.local_pref, Some(PRIORITY_BASE - 1024));
    // A workload /32 inside the block is suppressed...
    let k = kernel_route("cali0ef24ba", Some(1024));
    assert!(!accepts(
        &p,
        "export_mesh",
        "192.168.221.70/32",
        &k,
        &ctx(Origin::Kernel, IBGP)
    ));
    // ...unless it carries an elevated priority (live migration), then it escapes.
    let elevated = kernel_route("cali0ef24ba", Some(512));
    let (o, a) = eval(
        &p,
        "export_mesh",
        "192.168.221.70/32",
        &elevated,
        &ctx(Origin::Kernel, IBGP),
    );
    assert_eq!(o, Outcome::Accept);
    assert_eq!(a.bgp.local_pref, Some(PRIORITY_BASE - 512));
    // Outside the block but inside the pool: accepted by step 8, no community.
    let (o, a) = eval(&p, "export_mesh", "192.168.5.0/26", &static_route(), &c);
    assert_eq!(o, Outcome::Accept);
    assert!(a.bgp.communities.is_empty());
}

#[test]
fn calico_export_static_routes_lb_ranges_pools_else_reject() {
    let c = ctx(Origin::Static, IBGP);
    let plain = calico(false);
    let rr = calico(true);
    assert!(accepts(
        &plain,
        "export_mesh",
        "10.96.0.0/12",
        &static_route(),
        &c
    ));
    assert!(accepts(
        &plain,
        "export_mesh",
        "10.100.5.5/32",
        &static_route(),
        &c
    ));
    // LB range learned from a client: accepted only on route reflectors (step 7).
    let learned = bgp_route("10.192.0.7", Some(100));
    let lc = ctx(Origin::Ibgp, IBGP);
    assert!(!accepts(
        &plain,
        "export_mesh",
        "10.200.0.5/32",
        &learned,
        &lc
    ));
    assert!(accepts(&rr, "export_mesh", "10.200.0.5/32", &learned, &lc));
    // Pools accept; host interface routes, default routes and foreign routes are rejected.
    assert!(accepts(
        &plain,
        "export_mesh",
        "172.16.3.0/26",
        &learned,
        &lc
    ));
    assert!(!accepts(&plain, "export_mesh", "0.0.0.0/0", &learned, &lc));
    assert!(!accepts(
        &plain,
        "export_mesh",
        "10.192.0.0/24",
        &kernel_route("eth0", None),
        &ctx(Origin::Direct, IBGP)
    ));
    assert!(!accepts(&plain, "export_mesh", "8.8.8.0/24", &learned, &lc));
    // A BGP route with local pref keeps it and derives krt_metric from it (§2.9).
    let (_, a) = eval(
        &plain,
        "export_mesh",
        "172.16.3.0/26",
        &bgp_route("10.192.0.7", Some(PRIORITY_BASE - 700)),
        &lc,
    );
    assert_eq!(a.krt_metric, Some(700));
}

#[test]
fn bgpfilter_rules_in_order_then_calico_export() {
    let p = calico(false);
    let e = "export_Global_10_0_0_1";
    let k = ctx(Origin::Kernel, EBGP);
    let b = ctx(Origin::Ebgp, EBGP);
    let km = kernel_route("cali1", None);
    // Equal rule before the In rule.
    assert!(!accepts(&p, e, "77.1.2.0/24", &km, &k));
    // In + prefixLength range, with operations (addCommunity, prependASPath, setPriority).
    let (o, a) = eval(&p, e, "77.1.3.0/24", &km, &k);
    assert_eq!(o, Outcome::Accept);
    assert_eq!(a.bgp.communities, vec![Community((65000 << 16) | 7)]);
    assert_eq!(a.bgp.as_path.as_ref().unwrap().to_string(), "65101 65102");
    assert_eq!(a.bgp.local_pref, Some(PRIORITY_BASE - 512));
    // Outside the length range: the rule does not match; nothing else in the filter does
    // for a kernel route, so calico_export_to_bgp_peers decides (not in a pool: reject).
    assert!(!accepts(&p, e, "77.1.3.0/30", &km, &k));
    // source RemotePeers + NotIn: BGP routes outside 77/8 are rejected by the filter even if
    // calico_export would accept them (pool 192.168/16); kernel routes fall through to it.
    let learned = bgp_route("10.0.0.1", None);
    assert!(!accepts(&p, e, "192.168.7.0/26", &learned, &b));
    assert!(accepts(&p, e, "192.168.7.0/26", &km, &k));
    // interface glob
    assert!(accepts(
        &p,
        e,
        "77.9.0.0/16",
        &kernel_route("eth1", None),
        &k
    ));
    assert!(!accepts(
        &p,
        e,
        "77.9.0.0/16",
        &kernel_route("ens1", None),
        &k
    ));
    // peerType eBGP + community
    let mut tagged = bgp_route("10.0.0.1", None);
    tagged.bgp.communities.push(Community((65000 << 16) | 9));
    tagged.bgp.as_path = None;
    assert!(accepts(&p, e, "77.8.0.0/16", &tagged, &b));
    assert!(!accepts(
        &p,
        e,
        "77.8.0.0/16",
        &tagged,
        &ctx(Origin::Ebgp, IBGP)
    ));
    // asPathPrefix
    assert!(!accepts(&p, e, "77.5.0.0/16", &learned, &b));
    // NotEqual: inside 77.3/16 but not 77.3/16 itself.
    let mut other = bgp_route("10.0.0.1", None);
    other.bgp.as_path = Some(AsPath::from_sequence(&[65009]));
    assert!(accepts(&p, e, "77.3.1.0/24", &other, &b));
    assert!(!accepts(&p, e, "77.3.0.0/16", &other, &b));
}

#[test]
fn calico_import_priority_and_filters() {
    let p = calico(false);
    let i = "import_Global_10_0_0_1";
    let b = ctx(Origin::Ebgp, EBGP);
    // Elevated priority (local pref above MAX - NormalRoutePriority) → preference 200.
    let (o, a) = eval(
        &p,
        i,
        "192.168.1.0/26",
        &bgp_route("10.0.0.1", Some(PRIORITY_BASE - 512)),
        &b,
    );
    assert_eq!((o, a.preference), (Outcome::Accept, 200));
    let (o, a) = eval(
        &p,
        i,
        "192.168.1.0/26",
        &bgp_route("10.0.0.1", Some(PRIORITY_BASE - 1024)),
        &b,
    );
    assert_eq!((o, a.preference), (Outcome::Accept, 100));
    // Filter rules: priority match and a CIDR reject; everything else is accepted.
    assert!(!accepts(
        &p,
        i,
        "192.168.1.0/26",
        &bgp_route("10.0.0.1", Some(PRIORITY_BASE - 300)),
        &b
    ));
    assert!(!accepts(
        &p,
        i,
        "66.1.0.0/16",
        &bgp_route("10.0.0.1", None),
        &b
    ));
    assert!(accepts(
        &p,
        i,
        "8.8.8.0/24",
        &bgp_route("10.0.0.1", None),
        &b
    ));
}

#[test]
fn calico_kernel_programming() {
    let p = calico(false);
    let k = "calico_kernel_programming";
    let c = ctx(Origin::Ibgp, None);
    // Reject CIDRs are never installed.
    assert!(!accepts(
        &p,
        k,
        "10.96.0.1/32",
        &bgp_route("10.192.0.3", None),
        &c
    ));
    // VXLAN pool: Felix's.
    assert!(!accepts(
        &p,
        k,
        "10.101.3.0/26",
        &bgp_route("10.192.0.3", None),
        &c
    ));
    // IPIP always: via tunl0.
    let (o, a) = eval(&p, k, "192.168.3.0/26", &bgp_route("10.192.0.3", None), &c);
    assert_eq!(
        (o, a.krt_tunnel.as_deref(), a.krt_metric),
        (Outcome::Accept, Some("tunl0"), Some(1024))
    );
    // IPIP cross-subnet: same subnet → plain, other subnet → tunl0.
    let (_, a) = eval(&p, k, "172.16.3.0/26", &bgp_route("10.192.0.3", None), &c);
    assert_eq!(a.krt_tunnel, None);
    let (_, a) = eval(&p, k, "172.16.3.0/26", &bgp_route("10.192.1.3", None), &c);
    assert_eq!(a.krt_tunnel.as_deref(), Some("tunl0"));
    // No-encap pool, and routes outside every pool (e.g. from a ToR): installed.
    let (_, a) = eval(
        &p,
        k,
        "10.50.1.0/26",
        &bgp_route("10.192.0.3", Some(PRIORITY_BASE - 600)),
        &c,
    );
    assert_eq!((a.krt_tunnel, a.krt_metric), (None, Some(600)));
    assert!(accepts(
        &p,
        k,
        "8.8.8.0/24",
        &bgp_route("10.192.0.3", None),
        &c
    ));
    // WireGuard peer next hop: rejected.
    assert!(!accepts(
        &p,
        k,
        "8.8.8.0/24",
        &bgp_route("10.192.0.9", None),
        &c
    ));
    // The kernel metric of a non-BGP route is left alone.
    let (_, a) = eval(
        &p,
        k,
        "8.8.8.0/24",
        &static_route(),
        &ctx(Origin::Static, None),
    );
    assert_eq!(a.krt_metric, None);
}
