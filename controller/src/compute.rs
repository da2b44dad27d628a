//! `compute(model, env) -> DesiredConfig`: confd's rules, as a pure function.
//!
//! The structure follows confd (HEAD, contract §3): first the v3 BGPPeers are turned into
//! *v1 peerings* keyed by (peer address, port), global ones first, node-specific ones second,
//! automatic reverse peerings last, the first value for a key winning; then each peering is
//! rendered into a session for this node (`buildPeerFromData`), next to the node-to-node mesh.
//! Policies reproduce the generated BIRD filters (contract §2.4–§2.9) in the
//! [`tern_config::policy`] language, statement for statement and in the same order.
//!
//! Where confd iterates Go maps (random order), this module iterates names in sorted order, so
//! that the result is deterministic; confd's output only depends on that order when two
//! resources produce the same peering key.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};

use ipnet::IpNet;
use sha2::{Digest, Sha256};
use tern_config::policy::{
    Action, Community, Compare, Family, LargeCommunity, Match, PRIORITY_BASE, Policy, PrefixMatch,
    PrefixOp, RouteSource, Rule, SessionType, Verdict,
};
use tern_config::{
    AddPaths, DesiredConfig, Encapsulation, InterfacePattern, Kernel, Listen, LogLevel,
    NextHopMode, NormalRoutePriority, Password, Peer, PeerKind, Pool, StaticRoute, StaticTarget,
};

use crate::model::{CommunityValue, Model, parse_cidr, parse_cidr_or_ip, parse_community};
use crate::resources::{BgpFilterRule, BgpPeer, Node};
use crate::selector::Selector;

/// Default AS when neither the node nor the global BGPConfiguration sets one.
pub const DEFAULT_ASN: u32 = 64512;
/// BIRD's route preference for routes that must win over local workload routes.
const OVERRIDE_PREFERENCE: u32 = 200;
/// Name of the kernel export policy.
pub const KERNEL_POLICY: &str = "calico_kernel_programming";

/// Facts about this node that come from its environment rather than the datastore.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NodeEnv {
    /// `NODENAME`.
    pub node_name: String,
    /// `CALICO_ROUTER_ID` (an IPv4 address or `hash`).
    pub router_id: Option<String>,
    /// `CALICO_ADVERTISE_CLUSTER_IPS` (comma-separated CIDRs), overriding serviceClusterIPs.
    pub advertise_cluster_ips: Option<String>,
    /// Namespace of calico-node, where BGP password Secrets live (`NAMESPACE`, default
    /// `kube-system`).
    pub namespace: Option<String>,
    /// Local workloads wanting a BGP session (from Felix's endpoint-status files).
    pub local_workloads: Vec<LocalWorkload>,
}

/// One local workload BGP peer (Felix endpoint-status file).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LocalWorkload {
    /// Workload name (file name).
    pub name: String,
    /// IPv4 address, if any.
    pub ipv4: Option<IpAddr>,
    /// IPv6 address, if any.
    pub ipv6: Option<IpAddr>,
    /// The BGPPeer (`bgpPeerName`) this workload belongs to.
    pub bgp_peer_name: String,
}

/// Why no configuration can be computed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ComputeError {
    /// No Node resource for this node name.
    #[error("node {0:?} is not in the datastore (no Node resource)")]
    UnknownNode(String),
    /// No router id can be derived.
    #[error("node {0:?} has no IPv4 address; set CALICO_ROUTER_ID to an IPv4 address or \"hash\"")]
    NoRouterId(String),
    /// CALICO_ROUTER_ID is not an IPv4 address.
    #[error("CALICO_ROUTER_ID {0:?} is not an IPv4 address or \"hash\"")]
    BadRouterId(String),
}

/// The router id confd derives from a node name when `CALICO_ROUTER_ID=hash`: the first four
/// bytes of SHA-256(name), with 32 subtracted from the first when it is above 223 so the id is
/// never multicast or reserved.
pub fn hash_router_id(node_name: &str) -> Ipv4Addr {
    let h = Sha256::digest(node_name.as_bytes());
    let first = if h[0] > 223 { h[0] - 32 } else { h[0] };
    Ipv4Addr::new(first, h[1], h[2], h[3])
}

/// BIRD's 64-character symbol limit, applied to BGPFilter function names: names longer than 45
/// characters become their first 28 characters, `_`, and 16 uppercase hex digits of SHA-256.
pub fn truncate_filter_name(name: &str) -> String {
    const MAX: usize = 64 - "bgp__importFilterV4".len();
    if name.len() <= MAX {
        return name.to_string();
    }
    let h = Sha256::digest(name.as_bytes());
    let hex: String = h.iter().take(8).map(|b| format!("{b:02X}")).collect();
    let cut = MAX - 17;
    // Byte-based like Go; step back to a character boundary for non-ASCII names.
    let mut end = cut;
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}_{}", &name[..end], hex)
}

/// The policy name of one BGPFilter direction (BIRD's function name, unquoted).
pub fn filter_function_name(filter: &str, import: bool, family: Family) -> String {
    format!(
        "bgp_{}_{}Filter{}",
        truncate_filter_name(filter),
        if import { "import" } else { "export" },
        v(family)
    )
}

fn v(f: Family) -> &'static str {
    match f {
        Family::Ipv4 => "V4",
        Family::Ipv6 => "V6",
    }
}

/// The BGPFilters of a peer that have rules for this direction (`import`) and family, in the
/// peer's order, and the name of the peer policy that calls them (one policy per distinct list).
fn filter_calls<'a>(
    filters: &'a [String],
    present: &BTreeSet<(String, bool)>,
    import: bool,
    family: Family,
) -> (Vec<&'a String>, String) {
    let calls: Vec<&String> = filters
        .iter()
        .filter(|f| present.contains(&((*f).clone(), import)))
        .collect();
    let kind = if import { "import" } else { "export" };
    let base = format!("calico_{kind}_{}", v(family).to_lowercase());
    let name = if calls.is_empty() {
        base
    } else {
        let list: Vec<&str> = calls.iter().map(|s| s.as_str()).collect();
        format!("{base}({})", list.join(","))
    };
    (calls, name)
}

fn fam_of(ip: &IpAddr) -> Family {
    if ip.is_ipv4() {
        Family::Ipv4
    } else {
        Family::Ipv6
    }
}

fn net_family(n: &IpNet) -> Family {
    match n {
        IpNet::V4(_) => Family::Ipv4,
        IpNet::V6(_) => Family::Ipv6,
    }
}

// ===== confd's v1 view of nodes =====

/// What confd keeps per host under `/calico/bgp/v1/host/<name>/`.
#[derive(Clone, Debug, Default)]
struct Host {
    ip_v4: String,
    ip_v6: String,
    net_v4: Option<IpNet>,
    net_v6: Option<IpNet>,
    as_num: Option<u32>,
    rr_cluster_id: String,
    wireguard_v4: String,
    wireguard_v6: String,
    labels: BTreeMap<String, String>,
}

impl Host {
    fn from_node(n: &Node) -> Host {
        let mut h = Host {
            labels: n.metadata.labels.clone(),
            ..Host::default()
        };
        if let Some(b) = &n.spec.bgp {
            if let Ok(a) = parse_cidr_or_ip(&b.ipv4_address) {
                h.ip_v4 = a.addr().to_string();
                h.net_v4 = Some(a.trunc());
            }
            if let Ok(a) = parse_cidr_or_ip(&b.ipv6_address) {
                h.ip_v6 = a.addr().to_string();
                h.net_v6 = Some(a.trunc());
            }
            h.as_num = b.as_number.map(|a| a.0);
            h.rr_cluster_id = b.route_reflector_cluster_id.clone();
        }
        if let Some(w) = &n.spec.wireguard {
            h.wireguard_v4 = w.interface_ipv4_address.clone();
            h.wireguard_v6 = w.interface_ipv6_address.clone();
        }
        h
    }

    fn ip(&self, f: Family) -> &str {
        match f {
            Family::Ipv4 => &self.ip_v4,
            Family::Ipv6 => &self.ip_v6,
        }
    }
}

/// A v1 peering (confd `backends.BGPPeer`).
#[derive(Clone, Debug, Default, PartialEq)]
struct V1Peer {
    ip: Option<IpAddr>,
    port: u16,
    as_num: u32,
    local_as_num: u32,
    rr_cluster_id: String,
    password: Option<String>,
    source_addr: String,
    restart_time: Option<i64>,
    keepalive_time: Option<i64>,
    keep_next_hop: bool,
    next_hop_mode: String,
    calico_node: bool,
    num_allow_local_as: i32,
    ttl_security: u8,
    filters: Vec<String>,
    reachable_by: String,
    passive_mode: bool,
    local_bgp_peer: bool,
}

/// Peering key (peer address, port).
type PeerKey = (IpAddr, u16);

struct Ctx<'a> {
    model: &'a Model,
    env: &'a NodeEnv,
    hosts: BTreeMap<String, Host>,
    global_as: u32,
    global_listen_port: u16,
    node_listen_ports: BTreeMap<String, u16>,
    node_ips: BTreeSet<String>,
}

impl Ctx<'_> {
    fn nodes_matching(&self, sel: &str) -> Vec<String> {
        let Ok(s) = Selector::parse(sel) else {
            return Vec::new();
        };
        self.hosts
            .iter()
            .filter(|(_, h)| s.matches(&h.labels))
            .map(|(n, _)| n.clone())
            .collect()
    }

    fn secret(&self, r: &Option<crate::resources::PasswordRef>) -> Option<String> {
        let k = r.as_ref()?.secret_key_ref.as_ref()?;
        let ns = self.env.namespace.as_deref().unwrap_or("kube-system");
        self.model.secret_value(ns, &k.name, &k.key)
    }

    /// `nodesWithIPPortAndAS`, including its quirk: with a port given, a node whose own listen
    /// port matches is still skipped when a different global listen port is set.
    fn nodes_with_ip_port_as(&self, ip: &str, asn: u32, port: u16) -> Vec<String> {
        let want_as = if asn == 0 { self.global_as } else { asn };
        let mut out = Vec::new();
        for (name, h) in &self.hosts {
            if h.ip_v4 != ip && h.ip_v6 != ip {
                continue;
            }
            if h.as_num.unwrap_or(self.global_as) != want_as {
                continue;
            }
            if port != 0 {
                match self.node_listen_ports.get(name) {
                    Some(p) if *p != port => continue,
                    _ => {
                        if self.global_listen_port != 0 && self.global_listen_port != port {
                            continue;
                        }
                    }
                }
            }
            out.push(name.clone());
        }
        out
    }

    fn node_listen_port(&self, node: &str) -> u16 {
        self.node_listen_ports
            .get(node)
            .copied()
            .unwrap_or(self.global_listen_port)
    }

    /// `nodeAsBGPPeers`.
    fn node_as_peers(&self, node: &str, v4: bool, v6: bool, p: &BgpPeer) -> Vec<V1Peer> {
        let Some(h) = self.hosts.get(node) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (want, ip) in [(v4, &h.ip_v4), (v6, &h.ip_v6)] {
            if !want || ip.is_empty() {
                continue;
            }
            let Ok(addr) = ip.parse::<IpAddr>() else {
                continue;
            };
            let (keep, mode) = next_hop_mode(p);
            out.push(V1Peer {
                ip: Some(addr),
                ttl_security: p.spec.ttl_security.unwrap_or(0),
                filters: p.spec.filters.clone(),
                reachable_by: p.spec.reachable_by.clone(),
                port: self.node_listen_port(node),
                as_num: h.as_num.unwrap_or(self.global_as),
                rr_cluster_id: h.rr_cluster_id.clone(),
                keep_next_hop: keep,
                next_hop_mode: mode,
                ..V1Peer::default()
            });
        }
        out
    }

    /// `setPeerConfigFieldsFromV3Resource`.
    fn set_common(&self, peers: &mut [V1Peer], p: &BgpPeer) {
        let password = self.secret(&p.spec.password);
        for peer in peers {
            peer.password = password.clone();
            peer.source_addr = match p.spec.source_address.as_deref() {
                Some(s) if !s.is_empty() => s.to_string(),
                _ => "UseNodeIP".to_string(),
            };
            if let Some(d) = p.spec.max_restart_time {
                peer.restart_time = Some(d.round_seconds());
            }
            if let Some(d) = p.spec.keepalive_time {
                peer.keepalive_time = Some(d.round_seconds());
            }
        }
    }
}

fn next_hop_mode(p: &BgpPeer) -> (bool, String) {
    match &p.spec.next_hop_mode {
        Some(m) => (false, m.clone()),
        None => (p.spec.keep_original_next_hop, String::new()),
    }
}

/// `BGPPeer.spec.peerIP` as confd reads it: Go `net.SplitHostPort` and a port parse; anything
/// else is a bare host with port 0.
pub fn parse_ip_port(s: &str) -> (String, u16) {
    let split = if let Some(rest) = s.strip_prefix('[') {
        rest.split_once("]:").map(|(h, p)| (h.to_string(), p))
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') => Some((h.to_string(), p)),
            _ => None,
        }
    };
    match split {
        Some((h, p)) => match parse_go_uint16(p) {
            Some(port) => (h, port),
            None => (s.to_string(), 0),
        },
        None => (s.to_string(), 0),
    }
}

/// `strconv.ParseUint(p, 0, 16)`: decimal, `0x` hex, `0o`/leading-0 octal, `0b` binary.
fn parse_go_uint16(p: &str) -> Option<u16> {
    let p = p.replace('_', "");
    let (digits, radix) = if let Some(h) = p.strip_prefix("0x").or_else(|| p.strip_prefix("0X")) {
        (h.to_string(), 16)
    } else if let Some(b) = p.strip_prefix("0b").or_else(|| p.strip_prefix("0B")) {
        (b.to_string(), 2)
    } else if let Some(o) = p.strip_prefix("0o").or_else(|| p.strip_prefix("0O")) {
        (o.to_string(), 8)
    } else if p.len() > 1 && p.starts_with('0') {
        (p[1..].to_string(), 8)
    } else {
        (p.clone(), 10)
    };
    if digits.is_empty() {
        return None;
    }
    u16::from_str_radix(&digits, radix).ok()
}

/// The v1 peerings relevant to one node: global ones and this node's node-specific ones.
#[derive(Default)]
struct Peerings {
    global: BTreeMap<PeerKey, V1Peer>,
    node: BTreeMap<PeerKey, V1Peer>,
}

/// `updatePeersV1`, restricted to the keys this node reads.
fn peerings(ctx: &Ctx<'_>) -> Peerings {
    let me = ctx.env.node_name.as_str();
    let mut out = Peerings::default();
    // All keys emitted for any node matter for "first wins" only per key; we keep ours.
    let emit_global = |out: &mut Peerings, peer: V1Peer| {
        if let Some(ip) = peer.ip {
            out.global.entry((ip, peer.port)).or_insert(peer);
        }
    };
    let emit_node = |out: &mut Peerings, node: &str, peer: V1Peer| {
        let Some(ip) = peer.ip else { return };
        if node != me {
            return;
        }
        let key = (ip, peer.port);
        if out.node.contains_key(&key) || out.global.contains_key(&key) {
            return;
        }
        out.node.insert(key, peer);
    };

    for global_pass in [true, false] {
        for p in ctx.model.bgp_peers.values() {
            let s = &p.spec;
            let is_global = s.node_selector.is_empty() && s.node.is_empty();
            if global_pass != is_global {
                continue;
            }
            let local_nodes: Vec<String> = if !s.node_selector.is_empty() {
                ctx.nodes_matching(&s.node_selector)
            } else if !s.node.is_empty() {
                vec![s.node.clone()]
            } else {
                Vec::new()
            };
            let mut peers = Vec::new();
            if !s.local_workload_selector.is_empty() {
                for w in ctx
                    .env
                    .local_workloads
                    .iter()
                    .filter(|w| w.bgp_peer_name == p.metadata.name)
                {
                    for ip in [w.ipv4, w.ipv6].into_iter().flatten() {
                        peers.push(V1Peer {
                            ip: Some(ip),
                            local_as_num: s.local_as_number.map(|a| a.0).unwrap_or(0),
                            filters: s.filters.clone(),
                            as_num: s.as_number.0,
                            source_addr: "None".into(),
                            passive_mode: true,
                            local_bgp_peer: true,
                            ..V1Peer::default()
                        });
                    }
                }
            } else if !s.peer_selector.is_empty() {
                for n in ctx.nodes_matching(&s.peer_selector) {
                    peers.extend(ctx.node_as_peers(&n, true, true, p));
                }
                ctx.set_common(&mut peers, p);
            } else {
                let (host, mut port) = parse_ip_port(&s.peer_ip);
                let Ok(ip) = host.parse::<IpAddr>() else {
                    continue;
                };
                if port == 0 {
                    let nodes = ctx.nodes_with_ip_port_as(&host, s.as_number.0, port);
                    if let Some(first) = nodes.first() {
                        port = ctx.node_listen_port(first);
                    }
                }
                let calico_node = ctx.node_ips.contains(&host);
                let reachable_by = if s.reachable_by.is_empty() {
                    String::new()
                } else {
                    match s.reachable_by.parse::<IpAddr>() {
                        Ok(r) if r.is_ipv4() == ip.is_ipv4() => s.reachable_by.clone(),
                        _ => continue,
                    }
                };
                let (keep, mode) = next_hop_mode(p);
                peers.push(V1Peer {
                    ip: Some(ip),
                    as_num: s.as_number.0,
                    local_as_num: s.local_as_number.map(|a| a.0).unwrap_or(0),
                    port,
                    keep_next_hop: keep,
                    next_hop_mode: mode,
                    calico_node,
                    ttl_security: s.ttl_security.unwrap_or(0),
                    filters: s.filters.clone(),
                    num_allow_local_as: s.num_allowed_local_as_numbers.unwrap_or(0),
                    reachable_by,
                    ..V1Peer::default()
                });
                ctx.set_common(&mut peers, p);
            }
            for peer in peers {
                if global_pass {
                    emit_global(&mut out, peer);
                } else {
                    for n in &local_nodes {
                        emit_node(&mut out, n, peer.clone());
                    }
                }
            }
        }
    }

    // Automatic reverse peerings.
    for p in ctx.model.bgp_peers.values() {
        let s = &p.spec;
        if s.reverse_peering.as_deref() == Some("Manual") || !s.local_workload_selector.is_empty() {
            continue;
        }
        let (local_nodes, v4, v6) = if !s.peer_selector.is_empty() {
            (ctx.nodes_matching(&s.peer_selector), true, true)
        } else {
            let (host, port) = parse_ip_port(&s.peer_ip);
            let v6 = host.contains(':');
            (
                ctx.nodes_with_ip_port_as(&host, s.as_number.0, port),
                !v6,
                v6,
            )
        };
        if local_nodes.is_empty() {
            continue;
        }
        let peer_nodes = if !s.node_selector.is_empty() {
            ctx.nodes_matching(&s.node_selector)
        } else if !s.node.is_empty() {
            vec![s.node.clone()]
        } else {
            ctx.nodes_matching("all()")
        };
        let mut peers: Vec<V1Peer> = peer_nodes
            .iter()
            .flat_map(|n| ctx.node_as_peers(n, v4, v6, p))
            .collect();
        if peers.is_empty() {
            continue;
        }
        ctx.set_common(&mut peers, p);
        for peer in peers {
            for n in &local_nodes {
                emit_node(&mut out, n, peer.clone());
            }
        }
    }
    out
}

// ===== policies =====

struct PolicyBuilder {
    policies: BTreeMap<String, Policy>,
}

fn prefix(op: PrefixOp, prefix: IpNet) -> Match {
    Match::Prefix(PrefixMatch {
        op,
        prefix,
        min_len: None,
        max_len: None,
    })
}

fn community_action(c: CommunityValue) -> Action {
    match c {
        CommunityValue::Standard(a, b) => Action::AddCommunity(Community(a, b)),
        CommunityValue::Large(a, b, c) => Action::AddLargeCommunity(LargeCommunity(a, b, c)),
    }
}

fn priority_to_local_pref(p: i64) -> u32 {
    u32::try_from(i64::from(PRIORITY_BASE) - p).unwrap_or(0)
}

/// One BGPFilter rule in the policy language (contract §2.6: condition order cidr, source,
/// interface, communities, AS path, priority; operations then the action).
fn filter_rule(r: &BgpFilterRule, family: Family) -> Option<Rule> {
    let mut when = Vec::new();
    match r.peer_type.as_str() {
        "iBGP" => when.push(Match::Session(SessionType::Ibgp)),
        "eBGP" => when.push(Match::Session(SessionType::Ebgp)),
        _ => {}
    }
    if !r.cidr.is_empty() {
        let net = parse_cidr(&r.cidr).ok()?;
        let op = match r.match_operator.as_str() {
            "In" => PrefixOp::In,
            "NotIn" => PrefixOp::NotIn,
            "Equal" => PrefixOp::Equal,
            "NotEqual" => PrefixOp::NotEqual,
            _ => return None,
        };
        let (min_len, max_len) = match &r.prefix_length {
            Some(pl) => {
                let full: i32 = if family == Family::Ipv4 { 32 } else { 128 };
                let lo = pl.min.map_or(i32::from(net.prefix_len()), |m| {
                    m.max(i32::from(net.prefix_len()))
                });
                let hi = pl.max.map_or(full, |m| m.min(full));
                (u8::try_from(lo).ok(), u8::try_from(hi.max(0)).ok())
            }
            None => (None, None),
        };
        when.push(Match::Prefix(PrefixMatch {
            op,
            prefix: net,
            min_len,
            max_len,
        }));
    }
    if r.source == "RemotePeers" {
        when.push(Match::Source(RouteSource::Bgp));
    }
    if !r.interface.is_empty() {
        when.push(Match::Interface(r.interface.clone()));
    }
    if let Some(c) = r.communities.as_ref().and_then(|c| c.values.first()) {
        match parse_community(c)? {
            CommunityValue::Standard(a, b) => when.push(Match::Community(Community(a, b))),
            CommunityValue::Large(a, b, c) => {
                when.push(Match::LargeCommunity(LargeCommunity(a, b, c)))
            }
        }
    }
    if !r.as_path_prefix.is_empty() {
        when.push(Match::AsPathPrefix(
            r.as_path_prefix.iter().map(|a| a.0).collect(),
        ));
    }
    if let Some(p) = r.priority {
        when.push(Match::LocalPref(Compare::Eq, priority_to_local_pref(p)));
    }
    let mut then = Vec::new();
    for op in &r.operations {
        if let Some(c) = op.add_community.as_ref().and_then(|c| c.value.as_deref()) {
            then.push(community_action(parse_community(c)?));
        } else if let Some(p) = &op.prepend_as_path {
            then.push(Action::Prepend(p.prefix.iter().map(|a| a.0).collect()));
        } else if let Some(p) = op.set_priority.as_ref().and_then(|p| p.value) {
            then.push(Action::SetLocalPref(priority_to_local_pref(p)));
        }
    }
    let verdict = if r.action == "Accept" {
        Verdict::Accept
    } else {
        Verdict::Reject
    };
    Some(Rule {
        when,
        then,
        verdict,
    })
}

impl PolicyBuilder {
    /// The BGPFilter functions that exist for this family (rules present), by filter name.
    fn add_filter_functions(&mut self, model: &Model, family: Family) -> BTreeSet<(String, bool)> {
        let mut present = BTreeSet::new();
        for (name, f) in &model.bgp_filters {
            for import in [true, false] {
                let rules = match (import, family) {
                    (true, Family::Ipv4) => &f.spec.import_v4,
                    (true, Family::Ipv6) => &f.spec.import_v6,
                    (false, Family::Ipv4) => &f.spec.export_v4,
                    (false, Family::Ipv6) => &f.spec.export_v6,
                };
                if rules.is_empty() {
                    continue;
                }
                let rules: Vec<Rule> = rules
                    .iter()
                    .filter_map(|r| filter_rule(r, family))
                    .collect();
                // A BIRD function has no default: falling off its end returns to the caller.
                self.policies.insert(
                    filter_function_name(name, import, family),
                    Policy {
                        rules,
                        default: Verdict::Continue,
                    },
                );
                present.insert((name.clone(), import));
            }
        }
        present
    }

    fn peer_import(
        &mut self,
        filters: &[String],
        present: &BTreeSet<(String, bool)>,
        family: Family,
        nrp: u32,
    ) -> String {
        let (calls, name) = filter_calls(filters, present, true, family);
        if !self.policies.contains_key(&name) {
            let mut rules: Vec<Rule> = calls
                .iter()
                .map(|f| {
                    Rule::always(Verdict::Continue)
                        .then(vec![Action::Call(filter_function_name(f, true, family))])
                })
                .collect();
            rules.push(
                Rule::when(vec![Match::LocalPref(Compare::Gt, PRIORITY_BASE - nrp)])
                    .then(vec![Action::SetPreference(OVERRIDE_PREFERENCE)]),
            );
            rules.push(Rule::always(Verdict::Accept));
            self.policies.insert(name.clone(), Policy::new(rules));
        }
        name
    }

    fn peer_export(
        &mut self,
        filters: &[String],
        present: &BTreeSet<(String, bool)>,
        family: Family,
        nrp: u32,
    ) -> String {
        let (calls, name) = filter_calls(filters, present, false, family);
        if !self.policies.contains_key(&name) {
            let bgp_lp = Match::All(vec![
                Match::Source(RouteSource::Bgp),
                Match::LocalPrefDefined,
            ]);
            let not_bgp_lp = Match::Not(Box::new(bgp_lp.clone()));
            let mut rules = vec![
                Rule::when(vec![bgp_lp]).then(vec![Action::SetKrtMetricFromLocalPref]),
                Rule::when(vec![
                    not_bgp_lp.clone(),
                    Match::Not(Box::new(Match::KrtMetricDefined)),
                ])
                .then(vec![Action::SetKrtMetric(nrp)]),
                Rule::when(vec![not_bgp_lp]).then(vec![Action::SetLocalPrefFromKrtMetric]),
            ];
            for f in calls {
                rules.push(
                    Rule::always(Verdict::Continue)
                        .then(vec![Action::Call(filter_function_name(f, false, family))]),
                );
            }
            rules.push(
                Rule::always(Verdict::Continue)
                    .then(vec![Action::Call(export_to_peers_name(family))]),
            );
            rules.push(Rule::always(Verdict::Reject));
            self.policies.insert(name.clone(), Policy::new(rules));
        }
        name
    }
}

fn export_to_peers_name(f: Family) -> String {
    format!("calico_export_to_bgp_peers_{}", v(f).to_lowercase())
}

fn aggr_name(f: Family) -> String {
    format!("calico_aggr_{}", v(f).to_lowercase())
}

fn kernel_name(f: Family) -> String {
    format!("{KERNEL_POLICY}_{}", v(f).to_lowercase())
}

fn kernel_metric_name(f: Family) -> String {
    format!("calico_bgp_krt_metric_{}", v(f).to_lowercase())
}

/// Pool handling per contract §2.5 and `clusterRoutePolicyFromBGPConfig`.
#[derive(Clone, Copy)]
struct ClusterRoutePolicy {
    ipip: bool,
    no_encap: bool,
}

fn cluster_route_policy(v: Option<&str>) -> ClusterRoutePolicy {
    match v {
        Some("Disabled") => ClusterRoutePolicy {
            ipip: false,
            no_encap: false,
        },
        Some("Enabled") => ClusterRoutePolicy {
            ipip: true,
            no_encap: true,
        },
        Some("EnabledIPIPOnly") => ClusterRoutePolicy {
            ipip: true,
            no_encap: false,
        },
        _ => ClusterRoutePolicy {
            ipip: false,
            no_encap: true,
        },
    }
}

struct PoolInfo {
    cidr: IpNet,
    /// confd's textual CIDR (Go `IPNet.String()`), used for its statement sort order.
    text: String,
    ipip: Option<String>,
    vxlan: bool,
    disable_export: bool,
}

impl PoolInfo {
    fn uses_ipip(&self) -> bool {
        matches!(self.ipip.as_deref(), Some("Always" | "CrossSubnet"))
    }
}

// ===== compute =====

/// Compute the desired configuration of node `env.node_name`.
pub fn compute(model: &Model, env: &NodeEnv) -> Result<DesiredConfig, ComputeError> {
    let me = env.node_name.as_str();
    let hosts: BTreeMap<String, Host> = model
        .nodes
        .iter()
        .map(|(n, node)| (n.clone(), Host::from_node(node)))
        .collect();
    let Some(own) = hosts.get(me).cloned() else {
        return Err(ComputeError::UnknownNode(me.to_string()));
    };
    let global = model.global_config().cloned().unwrap_or_default();
    let node_cfg = model.node_config(me).cloned();
    let global_as = global.as_number.map_or(DEFAULT_ASN, |a| a.0);
    let node_listen_ports: BTreeMap<String, u16> = model
        .bgp_configurations
        .iter()
        .filter_map(|(n, c)| {
            Some((
                n.strip_prefix("node.")?.to_string(),
                c.spec.listen_port.filter(|p| *p != 0)?,
            ))
        })
        .collect();
    let node_ips: BTreeSet<String> = hosts
        .values()
        .flat_map(|h| [h.ip_v4.clone(), h.ip_v6.clone()])
        .filter(|s| !s.is_empty())
        .collect();
    let ctx = Ctx {
        model,
        env,
        hosts,
        global_as,
        global_listen_port: global.listen_port.unwrap_or(0),
        node_listen_ports,
        node_ips,
    };

    let asn = own.as_num.unwrap_or(global_as);
    let router_id = match env.router_id.as_deref().filter(|s| !s.is_empty()) {
        Some("hash") => hash_router_id(me),
        Some(r) => r
            .parse()
            .map_err(|_| ComputeError::BadRouterId(r.to_string()))?,
        None => own
            .ip_v4
            .parse()
            .map_err(|_| ComputeError::NoRouterId(me.to_string()))?,
    };
    let cluster_id: Option<Ipv4Addr> = own.rr_cluster_id.parse().ok();
    let own_cluster = own.rr_cluster_id.clone();

    let nrp = NormalRoutePriority {
        ipv4: global
            .ipv4_normal_route_priority
            .and_then(|p| u32::try_from(p).ok())
            .unwrap_or(1024),
        ipv6: global
            .ipv6_normal_route_priority
            .and_then(|p| u32::try_from(p).ok())
            .unwrap_or(1024),
    };
    let nrp_of = |f: Family| {
        if f == Family::Ipv4 {
            nrp.ipv4
        } else {
            nrp.ipv6
        }
    };

    let listen_port = node_cfg
        .as_ref()
        .and_then(|c| c.listen_port)
        .filter(|p| *p != 0)
        .or(global.listen_port.filter(|p| *p != 0));
    let bind_node_ip = global.bind_mode.as_deref() == Some("NodeIP");
    let listen = Listen {
        address: if bind_node_ip {
            own.ip_v4.parse().ok()
        } else {
            None
        },
        address_v6: if bind_node_ip {
            own.ip_v6.parse().ok()
        } else {
            None
        },
        port: listen_port.unwrap_or(179),
    };

    let log_level = {
        let raw = node_cfg
            .as_ref()
            .and_then(|c| c.log_severity_screen.clone())
            .filter(|s| !s.is_empty())
            .or_else(|| global.log_severity_screen.clone().filter(|s| !s.is_empty()));
        match raw.map(|s| s.to_lowercase()).as_deref() {
            None | Some("info") => LogLevel::States,
            Some("debug") => LogLevel::All,
            Some(_) => LogLevel::None,
        }
    };

    let v1 = peerings(&ctx);
    let mut pb = PolicyBuilder {
        policies: BTreeMap::new(),
    };
    let mut peers: Vec<Peer> = Vec::new();
    let mesh_enabled = global.node_to_node_mesh_enabled.unwrap_or(true);
    let mesh_password = ctx.secret(&global.node_mesh_password);
    let mesh_restart = global.node_mesh_max_restart_time.map(|d| d.round_seconds());

    // Service advertisement: global ranges (static routes + reject CIDRs) and per-service /32s.
    let services = crate::services::service_routes(model, env, &global, &own.labels);

    let pools: Vec<PoolInfo> = model
        .ip_pools
        .values()
        .filter_map(|p| {
            let cidr = parse_cidr(&p.spec.cidr).ok()?;
            Some(PoolInfo {
                text: cidr.to_string(),
                cidr,
                ipip: p.spec.ipip_mode.clone(),
                vxlan: matches!(p.spec.vxlan_mode.as_deref(), Some("Always" | "CrossSubnet")),
                disable_export: p.spec.disable_bgp_export,
            })
        })
        .collect();
    let crp = cluster_route_policy(global.program_cluster_routes.as_deref());
    let programs = |p: &PoolInfo| {
        !p.vxlan
            && if p.uses_ipip() {
                crp.ipip
            } else {
                crp.no_encap
            }
    };

    let mut blackholes = Vec::new();
    let mut static_routes = Vec::new();
    let mut reject_cidrs = Vec::new();
    let mut kernel_dispatch = Vec::new();

    for family in [Family::Ipv4, Family::Ipv6] {
        let nrp_f = nrp_of(family);
        let own_ip = own.ip(family).to_string();
        let present = pb.add_filter_functions(model, family);

        // --- sessions (only when this node has an address of the family) ---
        if !own_ip.is_empty() {
            let mut fam_peers = Vec::new();
            if own_cluster.is_empty() && mesh_enabled {
                for (host, h) in &ctx.hosts {
                    let peer_ip = h.ip(family);
                    if peer_ip.is_empty() || peer_ip == own_ip || !h.rr_cluster_id.is_empty() {
                        continue;
                    }
                    let Ok(addr) = peer_ip.parse::<IpAddr>() else {
                        continue;
                    };
                    let remote_as = h.as_num.unwrap_or(asn);
                    let port = ctx.node_listen_port(host);
                    let name = format!("Mesh_{}", peer_ip.replace(['.', ':'], "_"));
                    fam_peers.push(Peer {
                        name,
                        kind: PeerKind::Mesh,
                        address: addr,
                        port: if port == 0 { 179 } else { port },
                        remote_as,
                        local_as: None,
                        passive: peer_ip > own_ip.as_str(),
                        rr_client: false,
                        rr_cluster_id: None,
                        source_address: own_ip.parse().ok(),
                        password: mesh_password
                            .clone()
                            .filter(|p| !p.is_empty())
                            .map_or(Password::Unset, Password::Set),
                        ttl_security: None,
                        multihop: true,
                        next_hop_mode: NextHopMode::Auto,
                        restart_time: mesh_restart.and_then(|t| u32::try_from(t).ok()),
                        keepalive_time: None,
                        hold_time: tern_config::DEFAULT_HOLD_TIME,
                        connect_delay_time: tern_config::DEFAULT_CONNECT_DELAY,
                        connect_retry_time: tern_config::DEFAULT_CONNECT_RETRY,
                        error_wait_time: tern_config::DEFAULT_ERROR_WAIT,
                        graceful_restart: true,
                        add_paths: AddPaths::RxTx,
                        allow_local_as: None,
                        families: vec![family],
                        reachable_by: None,
                        import: pb.peer_import(&[], &present, family, nrp_f),
                        export: pb.peer_export(&[], &present, family, nrp_f),
                        soft_reconfiguration: false,
                        allow_local_pref: false,
                        max_prefixes: None,
                    });
                }
            }
            for (kind_global, map) in [(true, &v1.global), (false, &v1.node)] {
                for ((ip, _), p) in map.iter() {
                    if fam_of(ip) != family {
                        continue;
                    }
                    if let Some(peer) = build_peer(
                        p,
                        kind_global,
                        family,
                        &own_ip,
                        asn,
                        &own_cluster,
                        &mut pb,
                        &present,
                        nrp_f,
                    ) {
                        fam_peers.push(peer);
                    }
                }
            }
            peers.extend(fam_peers);
        }

        // --- blackholes for this node's affine blocks, and calico_aggr ---
        let mut blocks: Vec<(String, IpNet, String)> = model
            .block_affinities
            .values()
            .filter(|a| a.spec.node == me && matches!(a.spec.affinity_type.as_str(), "" | "host"))
            .filter(|a| a.spec.state != "pending")
            .filter_map(|a| {
                let net = parse_cidr(&a.spec.cidr).ok()?;
                (net_family(&net) == family).then(|| {
                    (
                        net.to_string().replacen('/', "-", 1),
                        net,
                        a.spec.state.clone(),
                    )
                })
            })
            .collect();
        blocks.sort_by(|a, b| a.0.cmp(&b.0));
        blocks.dedup_by(|a, b| a.0 == b.0);
        let mut aggr = Vec::new();
        for (_, net, state) in &blocks {
            if net.prefix_len() != net.max_prefix_len() {
                blackholes.push(*net);
            }
            if state.is_empty() || state == "confirmed" {
                aggr.push(Rule::when(vec![prefix(PrefixOp::Equal, *net)]).verdict(Verdict::Accept));
                aggr.push(
                    Rule::when(vec![
                        prefix(PrefixOp::In, *net),
                        Match::KrtMetric(Compare::Lt, nrp_f),
                    ])
                    .verdict(Verdict::Accept),
                );
                aggr.push(Rule::when(vec![prefix(PrefixOp::In, *net)]).verdict(Verdict::Reject));
            }
        }
        pb.policies.insert(
            aggr_name(family),
            Policy {
                rules: aggr,
                default: Verdict::Continue,
            },
        );

        // --- service routes ---
        let fam_static: Vec<IpNet> = services
            .static_routes
            .iter()
            .filter(|n| net_family(n) == family)
            .copied()
            .collect();
        let fam_reject: Vec<IpNet> = services
            .reject_cidrs
            .iter()
            .filter(|n| net_family(n) == family)
            .copied()
            .collect();
        for n in &fam_static {
            static_routes.push(StaticRoute {
                prefix: *n,
                target: StaticTarget::Blackhole,
            });
        }
        reject_cidrs.extend(fam_reject.iter().copied());
        // reachableBy routes for global then node-specific peerings of this family.
        for map in [&v1.global, &v1.node] {
            for ((ip, _), p) in map.iter() {
                if fam_of(ip) != family || p.reachable_by.is_empty() {
                    continue;
                }
                if let Ok(gw) = p.reachable_by.parse::<IpAddr>() {
                    static_routes.push(StaticRoute {
                        prefix: IpNet::from(*ip),
                        target: StaticTarget::Via(gw),
                    });
                }
            }
        }

        // --- calico_export_to_bgp_peers ---
        let fam_pools: Vec<&PoolInfo> = pools
            .iter()
            .filter(|p| net_family(&p.cidr) == family)
            .collect();
        let mut rules = Vec::new();
        let mut disabled: Vec<&PoolInfo> = fam_pools
            .iter()
            .copied()
            .filter(|p| p.disable_export)
            .collect();
        disabled.sort_by(|a, b| a.text.cmp(&b.text));
        for p in disabled {
            rules.push(Rule::when(vec![prefix(PrefixOp::In, p.cidr)]).verdict(Verdict::Reject));
        }
        let mut tunnels = vec![
            Match::Interface("*.cali".into()),
            Match::Interface("*.calico".into()),
        ];
        if !crp.ipip {
            tunnels.push(Match::Interface("tunl0".into()));
        }
        rules.push(
            Rule::when(vec![Match::Session(SessionType::Ibgp), Match::Any(tunnels)])
                .verdict(Verdict::Reject),
        );
        rules.push(Rule::when(vec![Match::Interface("bpf*.cali".into())]).verdict(Verdict::Reject));
        for (cidr, comms) in communities(model, me, family) {
            rules.push(Rule::when(vec![prefix(PrefixOp::In, cidr)]).then(comms));
        }
        rules.push(Rule::always(Verdict::Continue).then(vec![Action::Call(aggr_name(family))]));
        let mut sorted_static = fam_static.clone();
        sorted_static.sort_by_key(|n| n.to_string().replacen('/', "-", 1));
        for n in &sorted_static {
            rules.push(Rule::when(vec![prefix(PrefixOp::In, *n)]).verdict(Verdict::Accept));
        }
        if !own_cluster.is_empty() {
            for list in [
                &global.service_load_balancer_ips,
                &global.service_external_ips,
            ] {
                for e in list.iter().filter(|e| !e.cidr.is_empty()) {
                    if e.cidr.contains(':') != (family == Family::Ipv6) {
                        continue;
                    }
                    if let Ok(n) = parse_cidr(&e.cidr) {
                        rules.push(
                            Rule::when(vec![prefix(PrefixOp::In, n)]).verdict(Verdict::Accept),
                        );
                    }
                }
            }
        }
        let mut enabled: Vec<&PoolInfo> = fam_pools
            .iter()
            .copied()
            .filter(|p| !p.disable_export)
            .collect();
        enabled.sort_by(|a, b| a.text.cmp(&b.text));
        for p in enabled {
            rules.push(Rule::when(vec![prefix(PrefixOp::In, p.cidr)]).verdict(Verdict::Accept));
        }
        pb.policies.insert(
            export_to_peers_name(family),
            Policy {
                rules,
                default: Verdict::Continue,
            },
        );

        // --- calico_kernel_programming ---
        let mut k = Vec::new();
        let mut sorted_reject = fam_reject.clone();
        sorted_reject.sort_by_key(|n| n.to_string().replacen('/', "-", 1));
        for n in &sorted_reject {
            k.push(Rule::when(vec![prefix(PrefixOp::In, *n)]).verdict(Verdict::Reject));
        }
        k.push(
            Rule::when(vec![
                Match::Source(RouteSource::Bgp),
                Match::Not(Box::new(Match::KrtMetricDefined)),
            ])
            .then(vec![
                Action::SetKrtMetric(nrp_f),
                Action::Call(kernel_metric_name(family)),
            ]),
        );
        pb.policies.insert(
            kernel_metric_name(family),
            Policy {
                rules: vec![
                    Rule::when(vec![Match::LocalPrefDefined])
                        .then(vec![Action::SetKrtMetricFromLocalPref]),
                    Rule::when(vec![Match::KrtMetric(Compare::Lt, nrp_f)])
                        .then(vec![Action::SetPreference(OVERRIDE_PREFERENCE)]),
                ],
                default: Verdict::Continue,
            },
        );
        // WireGuard: on a WireGuard node, routes via other WireGuard nodes are Felix's.
        let own_wg = if family == Family::Ipv4 {
            &own.wireguard_v4
        } else {
            &own.wireguard_v6
        };
        if !own_wg.is_empty() {
            let mut wg: Vec<(String, IpAddr)> = ctx
                .hosts
                .iter()
                .filter(|(n, h)| {
                    n.as_str() != me
                        && !(if family == Family::Ipv4 {
                            &h.wireguard_v4
                        } else {
                            &h.wireguard_v6
                        })
                        .is_empty()
                })
                .filter_map(|(_, h)| {
                    let ip = h.ip(family);
                    Some((ip.to_string(), ip.parse().ok()?))
                })
                .collect();
            wg.sort();
            for (_, ip) in wg {
                k.push(Rule::when(vec![Match::NextHopIs(ip)]).verdict(Verdict::Reject));
            }
        }
        let own_net = if family == Family::Ipv4 {
            own.net_v4
        } else {
            own.net_v6
        };
        if family == Family::Ipv6 || own_net.is_some() {
            let mut stmts: Vec<(String, Vec<Rule>)> = Vec::new();
            for p in &fam_pools {
                let (text, rules) = kernel_pool_rules(p, programs(p), family, own_net);
                if let Some(rules) = rules {
                    stmts.push((text, rules));
                }
            }
            stmts.sort_by(|a, b| a.0.cmp(&b.0));
            for (_, r) in stmts {
                k.extend(r);
            }
        }
        k.push(Rule::always(Verdict::Accept));
        pb.policies.insert(kernel_name(family), Policy::new(k));
        kernel_dispatch.push(
            Rule::when(vec![Match::Family(family)])
                .then(vec![Action::Call(kernel_name(family))])
                .verdict(Verdict::Continue),
        );
    }
    kernel_dispatch.push(Rule::always(Verdict::Accept));
    pb.policies
        .insert(KERNEL_POLICY.to_string(), Policy::new(kernel_dispatch));

    peers.sort_by(|a, b| a.name.cmp(&b.name));
    blackholes.sort();
    blackholes.dedup();

    let mut interfaces: Vec<InterfacePattern> = global
        .ignored_interfaces
        .iter()
        .map(|g| InterfacePattern {
            glob: g.clone(),
            include: false,
        })
        .collect();
    interfaces.push(InterfacePattern {
        glob: "cali*".into(),
        include: false,
    });
    interfaces.push(InterfacePattern {
        glob: "kube-ipvs*".into(),
        include: false,
    });
    interfaces.push(InterfacePattern {
        glob: "*".into(),
        include: true,
    });

    let kernel_pools = pools
        .iter()
        .map(|p| Pool {
            cidr: p.cidr,
            encapsulation: if p.vxlan {
                Encapsulation::Vxlan
            } else {
                match p.ipip.as_deref() {
                    Some("Always") => Encapsulation::IpipAlways,
                    Some("CrossSubnet") => Encapsulation::IpipCrossSubnet,
                    _ => Encapsulation::None,
                }
            },
            export: !p.disable_export,
            programmed: programs(p),
        })
        .collect();

    Ok(DesiredConfig {
        router_id,
        asn,
        cluster_id,
        node_ipv4: own
            .ip_v4
            .parse::<IpAddr>()
            .ok()
            .and_then(|a| own.net_v4.and_then(|n| IpNet::new(a, n.prefix_len()).ok())),
        node_ipv6: own
            .ip_v6
            .parse::<IpAddr>()
            .ok()
            .and_then(|a| own.net_v6.and_then(|n| IpNet::new(a, n.prefix_len()).ok())),
        listen,
        peers,
        policies: pb.policies,
        blackholes,
        static_routes,
        kernel: Kernel {
            export: KERNEL_POLICY.to_string(),
            learn: true,
            persist: true,
            scan_time: 2,
            graceful_restart: true,
            merge_paths: true,
            route_protocol: 12,
            normal_route_priority: nrp,
            reject_cidrs,
            pools: kernel_pools,
        },
        interfaces,
        log_level,
    })
}

/// Kernel statements for one pool (`processIPPool(.., forProgrammingKernel=true, ..)`), with
/// confd's statement text as sort key. IPv6 keeps only rejecting statements.
fn kernel_pool_rules(
    p: &PoolInfo,
    programmed: bool,
    family: Family,
    own_net: Option<IpNet>,
) -> (String, Option<Vec<Rule>>) {
    let within = prefix(PrefixOp::In, p.cidr);
    let key = format!("  if (net ~ {}) then {{", p.text);
    if p.vxlan || !programmed {
        return (
            format!("{key} reject; }}"),
            Some(vec![Rule::when(vec![within]).verdict(Verdict::Reject)]),
        );
    }
    if family == Family::Ipv6 {
        return (key, None);
    }
    let rules = match p.ipip.as_deref() {
        Some("Always") => vec![
            Rule::when(vec![within])
                .then(vec![Action::SetKrtTunnel("tunl0".into())])
                .verdict(Verdict::Accept),
        ],
        Some("CrossSubnet") => {
            let local = own_net.map_or_else(|| "<nil>".to_string(), |n| n.to_string());
            let mut r = Vec::new();
            if let Some(n) = own_net {
                r.push(
                    Rule::when(vec![within.clone(), Match::NextHopIn(n)])
                        .then(vec![Action::SetKrtTunnel(String::new())])
                        .verdict(Verdict::Accept),
                );
            }
            r.push(
                Rule::when(vec![within])
                    .then(vec![Action::SetKrtTunnel("tunl0".into())])
                    .verdict(Verdict::Accept),
            );
            return (
                format!("{key} if (defined(bgp_next_hop)&&(bgp_next_hop ~ {local}))"),
                Some(r),
            );
        }
        _ => vec![Rule::when(vec![within]).verdict(Verdict::Accept)],
    };
    (format!("{key} accept; }}"), Some(rules))
}

/// `apply_communities()`: per-CIDR community additions for this family (node-specific list wins
/// over the global one, whole list).
fn communities(model: &Model, me: &str, family: Family) -> Vec<(IpNet, Vec<Action>)> {
    let pick = |spec: Option<&crate::resources::BgpConfigurationSpec>| {
        let spec = spec?;
        let advs = spec.prefix_advertisements.as_ref()?;
        Some((advs.clone(), spec.communities.clone()))
    };
    let Some((advs, defined)) = pick(model.node_config(me)).or_else(|| pick(model.global_config()))
    else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for adv in advs {
        if adv.cidr.is_empty() || adv.cidr.contains(':') != (family == Family::Ipv6) {
            continue;
        }
        let mut values = BTreeSet::new();
        for c in &adv.communities {
            if parse_community(c).is_some() {
                values.insert(c.clone());
            } else if let Some(d) = defined.iter().find(|d| &d.name == c) {
                values.insert(d.value.clone());
            }
        }
        let actions: Vec<Action> = values
            .iter()
            .filter_map(|c| parse_community(c))
            .map(community_action)
            .collect();
        if actions.is_empty() {
            continue;
        }
        if let Ok(n) = parse_cidr(&adv.cidr) {
            out.push((n, actions));
        }
    }
    out
}

/// `buildPeerFromData` for one v1 peering.
#[allow(clippy::too_many_arguments)]
fn build_peer(
    p: &V1Peer,
    global_key: bool,
    family: Family,
    own_ip: &str,
    node_as: u32,
    own_cluster: &str,
    pb: &mut PolicyBuilder,
    present: &BTreeSet<(String, bool)>,
    nrp: u32,
) -> Option<Peer> {
    let ip = p.ip?;
    let ip_text = ip.to_string();
    if ip_text == own_ip {
        return None;
    }
    let (prefix, kind) = if p.local_bgp_peer {
        ("Local_Workload", PeerKind::LocalWorkload)
    } else if global_key {
        ("Global", PeerKind::Global)
    } else {
        ("Node", PeerKind::Node)
    };
    let mut name = format!("{prefix}_{}", ip_text.replace(['.', ':'], "_"));
    if p.port > 0 {
        name = format!("{name}_port_{}", p.port);
    }
    let local_as = (p.local_as_num != 0).then_some(p.local_as_num);
    let effective = local_as.unwrap_or(node_as);
    let mut next_hop_mode = match p.next_hop_mode.as_str() {
        "Self" => NextHopMode::SelfAddress,
        "Keep" => NextHopMode::Keep,
        _ => NextHopMode::Auto,
    };
    if p.keep_next_hop && p.as_num != effective {
        next_hop_mode = NextHopMode::Keep;
    }
    let rr = p.as_num == effective && !own_cluster.is_empty() && p.rr_cluster_id != own_cluster;
    let mut passive = p.passive_mode;
    if matches!(kind, PeerKind::Global | PeerKind::LocalWorkload)
        && !passive
        && p.calico_node
        && ip_text.as_str() > own_ip
    {
        passive = true;
    }
    Some(Peer {
        name,
        kind,
        address: ip,
        port: if p.port == 0 { 179 } else { p.port },
        remote_as: p.as_num,
        local_as,
        passive,
        rr_client: rr,
        rr_cluster_id: if rr { own_cluster.parse().ok() } else { None },
        source_address: if p.source_addr == "UseNodeIP" {
            own_ip.parse().ok()
        } else {
            None
        },
        password: p.password.clone().map_or(Password::Unset, Password::Set),
        ttl_security: (p.ttl_security > 0).then_some(p.ttl_security),
        multihop: true,
        next_hop_mode,
        restart_time: p
            .restart_time
            .filter(|_| true)
            .and_then(|t| u32::try_from(t).ok()),
        keepalive_time: p.keepalive_time.and_then(|t| u32::try_from(t).ok()),
        hold_time: tern_config::DEFAULT_HOLD_TIME,
        connect_delay_time: tern_config::DEFAULT_CONNECT_DELAY,
        connect_retry_time: tern_config::DEFAULT_CONNECT_RETRY,
        error_wait_time: tern_config::DEFAULT_ERROR_WAIT,
        graceful_restart: true,
        add_paths: AddPaths::RxTx,
        allow_local_as: (p.num_allow_local_as > 0).then(|| p.num_allow_local_as.unsigned_abs()),
        families: vec![family],
        reachable_by: p.reachable_by.parse().ok(),
        import: pb.peer_import(&p.filters, present, family, nrp),
        export: pb.peer_export(&p.filters, present, family, nrp),
        soft_reconfiguration: false,
        allow_local_pref: false,
        max_prefixes: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashed_router_id_matches_confd() {
        // Calico's golden `mesh/hash/bird.cfg` for node kube-master.
        assert_eq!(hash_router_id("kube-master"), Ipv4Addr::new(25, 79, 212, 8));
        // Names whose hash starts above 223 are moved out of the multicast/reserved range.
        let name = (0..1000)
            .map(|i| format!("node-{i}"))
            .find(|n| Sha256::digest(n.as_bytes())[0] > 223)
            .unwrap();
        let h = Sha256::digest(name.as_bytes());
        assert_eq!(
            hash_router_id(&name).octets(),
            [h[0] - 32, h[1], h[2], h[3]]
        );
    }

    #[test]
    fn long_filter_names_are_truncated_and_hashed() {
        let short = "a".repeat(45);
        assert_eq!(truncate_filter_name(&short), short);
        let long = "b".repeat(46);
        let t = truncate_filter_name(&long);
        assert_eq!(t.len(), 45);
        assert!(t.starts_with(&"b".repeat(28)));
        assert_eq!(&t[28..29], "_");
        assert!(
            t[29..]
                .chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_lowercase())
        );
    }

    fn model(yaml: &str) -> Model {
        let (docs, p) = crate::datastore::file::parse_files(&[("t".to_string(), yaml.to_string())]);
        assert!(p.is_empty(), "{p:?}");
        let (m, p) = Model::from_documents(docs);
        assert!(p.is_empty(), "{p:?}");
        m
    }

    const NODES: &str = "apiVersion: projectcalico.org/v3\nkind: Node\nmetadata: {name: a}\nspec: {bgp: {ipv6Address: 'fd00::1/64'}}\n---\napiVersion: projectcalico.org/v3\nkind: Node\nmetadata: {name: b, labels: {rr: 'yes'}}\nspec: {bgp: {ipv4Address: 10.0.0.10/24, ipv6Address: 'fd00::2/64', routeReflectorClusterID: 1.1.1.1, asNumber: 65010}}\n---\napiVersion: projectcalico.org/v3\nkind: Node\nmetadata: {name: c}\nspec: {bgp: {ipv4Address: 10.0.0.9/24}}\n";

    fn env(node: &str, router_id: Option<&str>) -> NodeEnv {
        NodeEnv {
            node_name: node.into(),
            router_id: router_id.map(String::from),
            ..NodeEnv::default()
        }
    }

    #[test]
    fn identity_errors_are_explicit() {
        let m = model(NODES);
        assert_eq!(
            compute(&m, &env("zz", None)),
            Err(ComputeError::UnknownNode("zz".into()))
        );
        // IPv6-only node: a router id must come from CALICO_ROUTER_ID.
        assert_eq!(
            compute(&m, &env("a", None)),
            Err(ComputeError::NoRouterId("a".into()))
        );
        assert_eq!(
            compute(&m, &env("a", Some("nope"))),
            Err(ComputeError::BadRouterId("nope".into()))
        );
        let cfg = compute(&m, &env("a", Some("192.0.2.7"))).unwrap();
        assert_eq!(cfg.router_id, Ipv4Addr::new(192, 0, 2, 7));
        assert_eq!(cfg.asn, DEFAULT_ASN);
        // Only an IPv6 mesh session (b is a route reflector, so not meshed).
        assert!(cfg.peers.is_empty(), "{:?}", cfg.peers);
    }

    #[test]
    fn mesh_passive_rule_is_string_order_and_rr_clients_get_the_cluster_id() {
        // c (10.0.0.9) and d (10.0.0.100) mesh; b is a route reflector, reached by a selector peer.
        let yaml = format!(
            "{NODES}---\napiVersion: projectcalico.org/v3\nkind: Node\nmetadata: {{name: d}}\nspec: {{bgp: {{ipv4Address: 10.0.0.100/24}}}}\n---\napiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata: {{name: to-rr}}\nspec: {{nodeSelector: '!has(rr)', peerSelector: has(rr)}}\n"
        );
        let m = model(&yaml);
        let c = compute(&m, &env("c", None)).unwrap();
        let mesh = c.peer("Mesh_10_0_0_100").unwrap();
        // "10.0.0.100" > "10.0.0.9" as strings is false ('1' < '9'), so c initiates.
        assert!(!mesh.passive);
        let d = compute(&m, &env("d", None)).unwrap();
        assert!(d.peer("Mesh_10_0_0_9").unwrap().passive);
        // c peers with the RR b (node-specific, from the selector) in b's AS.
        let to_rr = c.peer("Node_10_0_0_10").unwrap();
        assert_eq!(to_rr.remote_as, 65010);
        assert!(!to_rr.rr_client);
        // On b, the reverse peering makes c a route-reflector client with b's cluster id.
        let b = compute(&m, &env("b", None)).unwrap();
        assert_eq!(b.cluster_id, Some(Ipv4Addr::new(1, 1, 1, 1)));
        assert!(b.peers.iter().all(|p| p.kind != PeerKind::Mesh));
        // c is in AS 64512, b in 65010: eBGP, so no RR client flag.
        let rev = b.peer("Node_10_0_0_9").unwrap();
        assert_eq!((rev.remote_as, rev.rr_client), (DEFAULT_ASN, false));
    }

    #[test]
    fn peer_ip_port_parsing_follows_go() {
        assert_eq!(parse_ip_port("10.0.0.1"), ("10.0.0.1".into(), 0));
        assert_eq!(parse_ip_port("10.0.0.1:179"), ("10.0.0.1".into(), 179));
        assert_eq!(parse_ip_port("[2001::1]:180"), ("2001::1".into(), 180));
        assert_eq!(parse_ip_port("2001::1"), ("2001::1".into(), 0));
        assert_eq!(
            parse_ip_port("10.0.0.1:99999"),
            ("10.0.0.1:99999".into(), 0)
        );
        assert_eq!(parse_ip_port("10.0.0.1:0x10"), ("10.0.0.1".into(), 16));
    }
}
