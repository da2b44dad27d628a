//! The policy language: named, ordered rules the RIB evaluates on import, on export and on the
//! way into the kernel.
//!
//! A [`Policy`] is a list of [`Rule`]s evaluated top to bottom. A rule whose conditions all hold
//! runs its [`Action`]s in order and then applies its [`Verdict`]:
//!
//! * [`Verdict::Accept`] / [`Verdict::Reject`] end the evaluation of the whole policy chain —
//!   also from inside a called policy (BIRD's `accept;`/`reject;` inside a function ends the
//!   filter, and Calico relies on that).
//! * [`Verdict::Continue`] falls through to the next rule.
//!
//! [`Action::Call`] evaluates another named policy in place: if that policy reaches an
//! accept/reject verdict, the verdict is final; if it runs off its end, evaluation continues with
//! the caller's next action. That is exactly how Calico chains its filter functions
//! (`bgp_<name>_exportFilterV4()`, `calico_export_to_bgp_peers()`, `calico_aggr()`): a BGPFilter
//! whose rules do not match returns to the peer filter, which goes on.
//!
//! Running off the end of the top-level policy is governed by [`Policy::default`], normally
//! `Reject` (Calico always ends its peer filters with an explicit verdict anyway).
//!
//! ## Undefined attributes
//! A comparison on an attribute the route does not carry (`krt_metric`, `bgp_local_pref`,
//! next hop, interface) is **false**, and so is its negation's inner test: write
//! `Match::Not(Match::LocalPrefDefined)` to ask for absence explicitly. (BIRD 1.6 aborts the
//! filter on such a comparison; Calico always guards them with `defined(..)`, so no Calico rule
//! depends on the difference.)
//!
//! ## Example
//! Calico's import block for a mesh peer, `if (defined(bgp_local_pref)&&(bgp_local_pref >
//! 2147482623)) then preference = 200; accept;`:
//! ```
//! use tern_config::policy::*;
//! let import = Policy::new(vec![
//!     Rule::when(vec![Match::LocalPref(Compare::Gt, 2_147_482_623)])
//!         .then(vec![Action::SetPreference(200)])
//!         .verdict(Verdict::Continue),
//!     Rule::always(Verdict::Accept),
//! ]);
//! let json = serde_json::to_string(&import).unwrap();
//! let back: Policy = serde_json::from_str(&json).unwrap();
//! assert_eq!(back, import);
//! ```

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// The reserved policy name that accepts every route.
pub const ALL: &str = "all";
/// The reserved policy name that rejects every route.
pub const NONE: &str = "none";

/// `2^31 - 1`: Calico maps route priority (kernel metric) to LOCAL_PREF as
/// `bgp_local_pref = 2147483647 - krt_metric` and back (contract §2.9).
pub const PRIORITY_BASE: u32 = 2_147_483_647;

/// A named policy: ordered rules plus what happens when none decides.
#[derive(Serialize, Deserialize, Clone, PartialEq, Eq, Debug)]
pub struct Policy {
    /// Evaluated in order.
    pub rules: Vec<Rule>,
    /// Verdict when the top-level policy runs off its end without accept/reject. When the
    /// policy is *called* from another one, this is ignored and control returns to the caller.
    #[serde(default = "default_reject")]
    pub default: Verdict,
}

fn default_reject() -> Verdict {
    Verdict::Reject
}

impl Policy {
    /// A policy with the given rules whose top-level default is `Reject`.
    pub fn new(rules: Vec<Rule>) -> Self {
        Policy {
            rules,
            default: Verdict::Reject,
        }
    }
}

/// One rule: if every condition in `when` holds, run `then` in order, then apply `verdict`.
/// An empty `when` always holds.
#[derive(Serialize, Deserialize, Clone, PartialEq, Eq, Debug)]
pub struct Rule {
    /// Conjunction of conditions (BIRD `c1 && c2 && …`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub when: Vec<Match>,
    /// Operations run in order when the rule matches. A [`Action::Call`] may end the evaluation.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub then: Vec<Action>,
    /// What happens after the operations.
    pub verdict: Verdict,
}

impl Rule {
    /// A rule that matches when all `conditions` hold; no operations, verdict `Continue`.
    pub fn when(conditions: Vec<Match>) -> Self {
        Rule {
            when: conditions,
            then: Vec::new(),
            verdict: Verdict::Continue,
        }
    }

    /// An unconditional rule with just a verdict (`accept;` / `reject;`).
    pub fn always(verdict: Verdict) -> Self {
        Rule {
            when: Vec::new(),
            then: Vec::new(),
            verdict,
        }
    }

    /// Replace the operations.
    pub fn then(mut self, actions: Vec<Action>) -> Self {
        self.then = actions;
        self
    }

    /// Replace the verdict.
    pub fn verdict(mut self, verdict: Verdict) -> Self {
        self.verdict = verdict;
        self
    }
}

/// The outcome of a matching rule.
#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Hash, Debug)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Accept the route (final, also from a called policy).
    Accept,
    /// Reject the route (final, also from a called policy).
    Reject,
    /// Fall through to the next rule.
    Continue,
}

/// A condition on the route under evaluation (and the session it crosses).
#[derive(Serialize, Deserialize, Clone, PartialEq, Eq, Debug)]
#[serde(rename_all = "snake_case")]
pub enum Match {
    /// The route's prefix against a CIDR (Calico `cidr` + `matchOperator` + `prefixLength`).
    Prefix(PrefixMatch),
    /// The route's address family.
    Family(Family),
    /// Where the route came from (BIRD `source`).
    Source(RouteSource),
    /// The session this policy is applied to is iBGP (peer AS == effective local AS: Calico's
    /// `internal_peer` / `is_same_as`) or eBGP.
    Session(SessionType),
    /// The route was learned from this BGP neighbour.
    Neighbour(IpAddr),
    /// The route's outgoing interface (`ifname`) matches a shell glob (`*`, `?`). False when the
    /// route has no interface (BIRD `defined(ifname) && ifname ~ "glob"`).
    Interface(String),
    /// The route carries this standard community (RFC 1997).
    Community(Community),
    /// The route carries this large community (RFC 8092).
    LargeCommunity(LargeCommunity),
    /// The AS_PATH starts with these ASNs, in order (BIRD `bgp_path ~ [= A B * =]`).
    AsPathPrefix(Vec<u32>),
    /// LOCAL_PREF is present.
    LocalPrefDefined,
    /// LOCAL_PREF compared with a value (false when absent).
    LocalPref(Compare, u32),
    /// The kernel route metric attribute (`krt_metric`, RTA_PRIORITY) is present.
    KrtMetricDefined,
    /// The kernel metric compared with a value (false when absent).
    KrtMetric(Compare, u32),
    /// The BGP next hop is present.
    NextHopDefined,
    /// The BGP next hop lies inside this network (false when absent). Calico's IPIP
    /// cross-subnet rule: same subnet as this node → no tunnel.
    NextHopIn(IpNet),
    /// The BGP next hop equals this address (false when absent).
    NextHopIs(IpAddr),
    /// Negation.
    Not(Box<Match>),
    /// Disjunction: at least one holds (an empty list never holds).
    Any(Vec<Match>),
    /// Conjunction: all hold (an empty list always holds).
    All(Vec<Match>),
}

/// A prefix condition with Calico's four operators.
///
/// * `In`: the route's prefix lies inside `prefix` (BIRD `net ~ CIDR`: same leading bits,
///   length ≥ `prefix`'s) and its length is within `[min_len, max_len]` when given (BIRD
///   `net ~ [ CIDR{min,max} ]`).
/// * `NotIn`: the negation of `In`.
/// * `Equal`: the route's prefix is exactly `prefix` (BIRD `net = CIDR`); with a length range,
///   it must also lie within it.
/// * `NotEqual`: the negation of `Equal`.
#[derive(Serialize, Deserialize, Clone, PartialEq, Eq, Debug)]
pub struct PrefixMatch {
    /// The operator.
    pub op: PrefixOp,
    /// The CIDR.
    pub prefix: IpNet,
    /// Minimum prefix length (inclusive), when restricted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_len: Option<u8>,
    /// Maximum prefix length (inclusive), when restricted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_len: Option<u8>,
}

impl PrefixMatch {
    /// `net ~ prefix`.
    pub fn within(prefix: IpNet) -> Match {
        Match::Prefix(PrefixMatch {
            op: PrefixOp::In,
            prefix,
            min_len: None,
            max_len: None,
        })
    }

    /// `net = prefix`.
    pub fn exactly(prefix: IpNet) -> Match {
        Match::Prefix(PrefixMatch {
            op: PrefixOp::Equal,
            prefix,
            min_len: None,
            max_len: None,
        })
    }
}

/// Calico's BGPFilter `matchOperator`.
#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum PrefixOp {
    /// Inside the CIDR (BIRD `~`).
    In,
    /// Not inside the CIDR (BIRD `!~`).
    NotIn,
    /// Exactly the CIDR (BIRD `=`).
    Equal,
    /// Anything but the CIDR (BIRD `!=`).
    NotEqual,
}

/// Integer comparison.
#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Hash, Debug)]
#[serde(rename_all = "snake_case")]
pub enum Compare {
    /// `=`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

impl Compare {
    /// Apply the comparison `lhs <op> rhs`.
    pub fn holds(self, lhs: u32, rhs: u32) -> bool {
        match self {
            Compare::Eq => lhs == rhs,
            Compare::Ne => lhs != rhs,
            Compare::Lt => lhs < rhs,
            Compare::Le => lhs <= rhs,
            Compare::Gt => lhs > rhs,
            Compare::Ge => lhs >= rhs,
        }
    }
}

/// Address family of a route.
#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
#[serde(rename_all = "snake_case")]
pub enum Family {
    /// IPv4 unicast.
    Ipv4,
    /// IPv6 unicast.
    Ipv6,
}

/// Where a route came from (BIRD's `source` attribute and protocol kinds).
#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Hash, Debug)]
#[serde(rename_all = "snake_case")]
pub enum RouteSource {
    /// Learned from any BGP peer (BIRD `RTS_BGP`; Calico `source: RemotePeers`).
    Bgp,
    /// Learned from an iBGP peer.
    Ibgp,
    /// Learned from an eBGP peer.
    Ebgp,
    /// Learned from the kernel routing table (alien routes, e.g. Felix's workload routes).
    Kernel,
    /// Configured static route (blocks' blackholes, service ranges, `reachableBy`).
    Static,
    /// A directly connected interface network (BIRD `protocol direct`).
    Direct,
}

/// The kind of session a policy is applied to.
#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Hash, Debug)]
#[serde(rename_all = "snake_case")]
pub enum SessionType {
    /// Peer AS equals the effective local AS.
    Ibgp,
    /// Peer AS differs from the effective local AS.
    Ebgp,
}

/// A standard community `asn:value` (RFC 1997).
#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct Community(pub u16, pub u16);

/// A large community `global:local1:local2` (RFC 8092).
#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct LargeCommunity(pub u32, pub u32, pub u32);

/// An operation on the route under evaluation, or a call.
#[derive(Serialize, Deserialize, Clone, PartialEq, Eq, Debug)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Evaluate the named policy in place (see the module docs for verdict propagation).
    Call(String),
    /// Add a standard community (no duplicate if present).
    AddCommunity(Community),
    /// Add a large community (no duplicate if present).
    AddLargeCommunity(LargeCommunity),
    /// Set the BGP next hop.
    SetNextHop(NextHop),
    /// Set LOCAL_PREF.
    SetLocalPref(u32),
    /// Set MULTI_EXIT_DISC.
    SetMed(u32),
    /// Prepend these ASNs so that the AS_PATH then *starts* with them in this order
    /// (Calico `prependASPath.prefix: [A, B]` → path `A B …`).
    Prepend(Vec<u32>),
    /// Set the kernel metric (`krt_metric`, RTA_PRIORITY on install).
    SetKrtMetric(u32),
    /// `krt_metric = 2147483647 - bgp_local_pref` (no-op without LOCAL_PREF).
    SetKrtMetricFromLocalPref,
    /// `bgp_local_pref = 2147483647 - krt_metric` (no-op without a kernel metric).
    SetLocalPrefFromKrtMetric,
    /// Set the route's preference for route selection across sources (BIRD `preference`:
    /// kernel 10, BGP 100, static 200, direct 240; Calico raises elevated-priority BGP routes
    /// to 200).
    SetPreference(u32),
    /// Set the kernel tunnel device (Calico's `krt_tunnel`): when the route is installed in the
    /// kernel and the device exists, install `via <next hop> dev <device> onlink`. An empty
    /// string means no tunnel (plain `via`).
    SetKrtTunnel(String),
}

/// A next-hop rewrite.
#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Hash, Debug)]
#[serde(rename_all = "snake_case")]
pub enum NextHop {
    /// This speaker's session address.
    SelfAddress,
    /// A fixed address.
    Address(IpAddr),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_round_trips_through_json() {
        let p = Policy {
            rules: vec![
                Rule {
                    when: vec![
                        Match::Prefix(PrefixMatch {
                            op: PrefixOp::NotIn,
                            prefix: "10.0.0.0/8".parse().unwrap(),
                            min_len: Some(16),
                            max_len: Some(24),
                        }),
                        Match::Family(Family::Ipv6),
                        Match::Source(RouteSource::Kernel),
                        Match::Session(SessionType::Ebgp),
                        Match::Neighbour("192.0.2.1".parse().unwrap()),
                        Match::Interface("*.cali".into()),
                        Match::Community(Community(65000, 100)),
                        Match::LargeCommunity(LargeCommunity(1, 2, 3)),
                        Match::AsPathPrefix(vec![65000, 65001]),
                        Match::LocalPrefDefined,
                        Match::LocalPref(Compare::Ge, 5),
                        Match::KrtMetricDefined,
                        Match::KrtMetric(Compare::Lt, 1024),
                        Match::NextHopDefined,
                        Match::NextHopIn("10.192.0.0/16".parse().unwrap()),
                        Match::NextHopIs("10.192.0.3".parse().unwrap()),
                        Match::Not(Box::new(Match::Any(vec![Match::All(vec![])]))),
                    ],
                    then: vec![
                        Action::Call("f".into()),
                        Action::AddCommunity(Community(1, 2)),
                        Action::AddLargeCommunity(LargeCommunity(1, 2, 3)),
                        Action::SetNextHop(NextHop::SelfAddress),
                        Action::SetNextHop(NextHop::Address("2001:db8::1".parse().unwrap())),
                        Action::SetLocalPref(7),
                        Action::SetMed(8),
                        Action::Prepend(vec![1, 2]),
                        Action::SetKrtMetric(1024),
                        Action::SetKrtMetricFromLocalPref,
                        Action::SetLocalPrefFromKrtMetric,
                        Action::SetPreference(200),
                        Action::SetKrtTunnel("tunl0".into()),
                    ],
                    verdict: Verdict::Continue,
                },
                Rule::always(Verdict::Accept),
            ],
            default: Verdict::Reject,
        };
        let json = serde_json::to_string_pretty(&p).unwrap();
        let back: Policy = serde_json::from_str(&json).unwrap();
        assert_eq!(back, p);
    }

    #[test]
    fn json_shape_is_readable() {
        let rule = Rule::when(vec![PrefixMatch::within("192.168.0.0/16".parse().unwrap())])
            .then(vec![Action::SetKrtTunnel("tunl0".into())])
            .verdict(Verdict::Accept);
        let json = serde_json::to_value(&rule).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "when": [{"prefix": {"op": "In", "prefix": "192.168.0.0/16"}}],
                "then": [{"set_krt_tunnel": "tunl0"}],
                "verdict": "accept"
            })
        );
    }

    /// Calico's built-in filters (contract §2.4, §2.9), written in this language. The
    /// controller generates exactly these shapes; the RIB evaluates them.
    #[test]
    fn calico_builtins_are_expressible() {
        let net = |s: &str| -> IpNet { s.parse().unwrap() };
        let bgp_with_lp = Match::All(vec![
            Match::Source(RouteSource::Bgp),
            Match::LocalPrefDefined,
        ]);
        // Export prefix: if (source = RTS_BGP && defined(bgp_local_pref)) then krt_metric = MAX - lp;
        // else { if !defined(krt_metric) then krt_metric = 1024; bgp_local_pref = MAX - krt_metric; }
        // then calico_export_to_bgp_peers(..); reject;
        let export = Policy::new(vec![
            Rule::when(vec![bgp_with_lp.clone()]).then(vec![Action::SetKrtMetricFromLocalPref]),
            Rule::when(vec![
                Match::Not(Box::new(bgp_with_lp.clone())),
                Match::Not(Box::new(Match::KrtMetricDefined)),
            ])
            .then(vec![Action::SetKrtMetric(1024)]),
            Rule::when(vec![Match::Not(Box::new(bgp_with_lp))])
                .then(vec![Action::SetLocalPrefFromKrtMetric]),
            Rule::always(Verdict::Continue)
                .then(vec![Action::Call("calico_export_to_bgp_peers".into())]),
            Rule::always(Verdict::Reject),
        ]);
        // calico_export_to_bgp_peers: disabled pools, tunnel devices on iBGP, local BPF routes,
        // communities, aggregation, static routes, pools.
        let to_peers = Policy::new(vec![
            Rule::when(vec![PrefixMatch::within(net("10.9.0.0/16"))]).verdict(Verdict::Reject),
            Rule::when(vec![
                Match::Session(SessionType::Ibgp),
                Match::Any(vec![
                    Match::Interface("*.cali".into()),
                    Match::Interface("*.calico".into()),
                ]),
            ])
            .verdict(Verdict::Reject),
            Rule::when(vec![Match::Interface("bpf*.cali".into())]).verdict(Verdict::Reject),
            Rule::when(vec![PrefixMatch::within(net("192.168.0.0/16"))])
                .then(vec![Action::AddCommunity(Community(65000, 100))]),
            Rule::always(Verdict::Continue).then(vec![Action::Call("calico_aggr".into())]),
            Rule::when(vec![PrefixMatch::within(net("192.168.0.0/16"))]).verdict(Verdict::Accept),
        ]);
        // calico_aggr for one block: export the block, hide what is beneath unless elevated.
        let block = net("192.168.221.64/26");
        let aggr = Policy::new(vec![
            Rule::when(vec![PrefixMatch::exactly(block)]).verdict(Verdict::Accept),
            Rule::when(vec![
                PrefixMatch::within(block),
                Match::KrtMetric(Compare::Lt, 1024),
            ])
            .verdict(Verdict::Accept),
            Rule::when(vec![PrefixMatch::within(block)]).verdict(Verdict::Reject),
        ]);
        // Kernel: IPIP cross-subnet pool, then install the rest.
        let kernel = Policy::new(vec![
            Rule::when(vec![PrefixMatch::within(net("10.101.0.0/16"))]).verdict(Verdict::Reject),
            Rule::when(vec![
                PrefixMatch::within(net("172.16.0.0/16")),
                Match::NextHopIn(net("10.192.0.0/16")),
            ])
            .then(vec![Action::SetKrtTunnel(String::new())])
            .verdict(Verdict::Accept),
            Rule::when(vec![PrefixMatch::within(net("172.16.0.0/16"))])
                .then(vec![Action::SetKrtTunnel("tunl0".into())])
                .verdict(Verdict::Accept),
            Rule::always(Verdict::Accept),
        ]);
        for p in [export, to_peers, aggr, kernel] {
            let back: Policy = serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
            assert_eq!(back, p);
        }
    }

    #[test]
    fn missing_default_means_reject() {
        let p: Policy = serde_json::from_str(r#"{"rules": []}"#).unwrap();
        assert_eq!(p.default, Verdict::Reject);
    }

    #[test]
    fn compare_operators() {
        assert!(Compare::Lt.holds(512, 1024));
        assert!(!Compare::Lt.holds(1024, 1024));
        assert!(Compare::Le.holds(1024, 1024));
        assert!(Compare::Gt.holds(2, 1));
        assert!(Compare::Ge.holds(2, 2));
        assert!(Compare::Eq.holds(3, 3));
        assert!(Compare::Ne.holds(3, 4));
    }
}
