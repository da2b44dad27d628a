//! The model: one consistent snapshot of every resource `compute()` reads, and the parsing of
//! raw documents into it.
//!
//! Documents are accepted in calicoctl form (`apiVersion: projectcalico.org/v3`), in CRD form
//! (`crd.projectcalico.org/v1`), and for Kubernetes kinds in their core form (`v1` Secret,
//! Service and Node, `discovery.k8s.io/v1` EndpointSlice). `kind: List` / `…List` documents are
//! expanded. Each object is validated on its own: an invalid one becomes a [`Problem`] naming its
//! kind, name and field, and is left out; the others are kept.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::resources::*;
use crate::selector::Selector;

/// A resource that was left out of the model, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// Where it came from (file path, datastore key).
    pub source: String,
    /// Kind (`BGPPeer`, …), or `?` when unknown.
    pub kind: String,
    /// Object name, or `?`.
    pub name: String,
    /// Offending field path (`spec.peerIP`), empty when the whole object is wrong.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} {:?}", self.source, self.kind, self.name)?;
        if !self.field.is_empty() {
            write!(f, " field {}", self.field)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// A namespaced name.
pub type NsName = (String, String);

/// Every resource `compute()` reads, keyed by name (namespace and name for namespaced kinds).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Model {
    /// BGPConfigurations.
    pub bgp_configurations: BTreeMap<String, BgpConfiguration>,
    /// BGPPeers.
    pub bgp_peers: BTreeMap<String, BgpPeer>,
    /// BGPFilters.
    pub bgp_filters: BTreeMap<String, BgpFilter>,
    /// Calico Nodes.
    pub nodes: BTreeMap<String, Node>,
    /// IPPools.
    pub ip_pools: BTreeMap<String, IpPool>,
    /// BlockAffinities.
    pub block_affinities: BTreeMap<String, BlockAffinity>,
    /// Secrets.
    pub secrets: BTreeMap<NsName, Secret>,
    /// Services.
    pub services: BTreeMap<NsName, Service>,
    /// EndpointSlices.
    pub endpoint_slices: BTreeMap<NsName, EndpointSlice>,
    /// CalicoNodeStatuses.
    pub node_statuses: BTreeMap<String, CalicoNodeStatus>,
}

/// One parsed resource.
#[derive(Clone, Debug, PartialEq)]
pub enum Resource {
    /// BGPConfiguration.
    BgpConfiguration(BgpConfiguration),
    /// BGPPeer.
    BgpPeer(BgpPeer),
    /// BGPFilter.
    BgpFilter(BgpFilter),
    /// Node.
    Node(Node),
    /// IPPool.
    IpPool(IpPool),
    /// BlockAffinity.
    BlockAffinity(BlockAffinity),
    /// Secret.
    Secret(Secret),
    /// Service.
    Service(Service),
    /// EndpointSlice.
    EndpointSlice(EndpointSlice),
    /// CalicoNodeStatus.
    CalicoNodeStatus(CalicoNodeStatus),
}

/// Identity of a resource within a model.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ResourceKey {
    /// Kind.
    pub kind: &'static str,
    /// Namespace ("" for cluster-scoped kinds).
    pub namespace: String,
    /// Name.
    pub name: String,
}

fn ns(meta: &ObjectMeta) -> String {
    meta.namespace
        .clone()
        .unwrap_or_else(|| "default".to_string())
}

impl Resource {
    /// Kind and name.
    pub fn key(&self) -> ResourceKey {
        let (kind, namespace, name) = match self {
            Resource::BgpConfiguration(r) => ("BGPConfiguration", String::new(), &r.metadata.name),
            Resource::BgpPeer(r) => ("BGPPeer", String::new(), &r.metadata.name),
            Resource::BgpFilter(r) => ("BGPFilter", String::new(), &r.metadata.name),
            Resource::Node(r) => ("Node", String::new(), &r.metadata.name),
            Resource::IpPool(r) => ("IPPool", String::new(), &r.metadata.name),
            Resource::BlockAffinity(r) => ("BlockAffinity", String::new(), &r.metadata.name),
            Resource::Secret(r) => ("Secret", ns(&r.metadata), &r.metadata.name),
            Resource::Service(r) => ("Service", ns(&r.metadata), &r.metadata.name),
            Resource::EndpointSlice(r) => ("EndpointSlice", ns(&r.metadata), &r.metadata.name),
            Resource::CalicoNodeStatus(r) => ("CalicoNodeStatus", String::new(), &r.metadata.name),
        };
        ResourceKey {
            kind,
            namespace,
            name: name.clone(),
        }
    }

    /// Parse one document (already decoded from YAML or JSON). `source` names where it came from
    /// for error messages. Lists yield several resources.
    pub fn parse(mut doc: Value, source: &str) -> Vec<Result<Resource, Problem>> {
        // Go decoders read `null` as the zero value; so do we, by dropping null members.
        drop_nulls(&mut doc);
        let kind = doc
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let api = doc
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let name = doc
            .get("metadata")
            .and_then(|m| m.get("name"))
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_string();
        let problem = |field: &str, message: String| Problem {
            source: source.to_string(),
            kind: if kind.is_empty() {
                "?".into()
            } else {
                kind.clone()
            },
            name: name.clone(),
            field: field.to_string(),
            message,
        };
        if kind == "List" || (kind.ends_with("List") && doc.get("items").is_some()) {
            let item_kind = kind.strip_suffix("List").unwrap_or("");
            let items = match doc.get("items") {
                Some(Value::Array(items)) => items.clone(),
                _ => return vec![Err(problem("items", "a List needs an items array".into()))],
            };
            return items
                .into_iter()
                .flat_map(|mut item| {
                    if let Value::Object(o) = &mut item {
                        if !item_kind.is_empty() && !o.contains_key("kind") {
                            o.insert("kind".into(), Value::String(item_kind.to_string()));
                        }
                        if !o.contains_key("apiVersion") {
                            o.insert("apiVersion".into(), Value::String(api.clone()));
                        }
                    }
                    Resource::parse(item, source)
                })
                .collect();
        }
        let calico = matches!(
            api.as_str(),
            "projectcalico.org/v3" | "crd.projectcalico.org/v1"
        );
        let parsed = match (kind.as_str(), calico, api.as_str()) {
            ("BGPConfiguration", true, _) => typed(doc).map(Resource::BgpConfiguration),
            ("BGPPeer", true, _) => typed(doc).map(Resource::BgpPeer),
            ("BGPFilter", true, _) => typed(doc).map(Resource::BgpFilter),
            ("Node", true, _) => typed(doc).map(Resource::Node),
            ("Node", false, "v1") => kubernetes_node(doc).map(Resource::Node),
            ("IPPool", true, _) => typed(doc).map(Resource::IpPool),
            ("BlockAffinity", true, _) => typed(doc).map(Resource::BlockAffinity),
            ("CalicoNodeStatus", true, _) => typed(doc).map(Resource::CalicoNodeStatus),
            ("Secret", false, "v1") => typed(doc).map(Resource::Secret),
            ("Service", false, "v1") => typed(doc).map(Resource::Service),
            ("EndpointSlice", false, "discovery.k8s.io/v1") => {
                typed(doc).map(Resource::EndpointSlice)
            }
            _ => {
                return vec![Err(problem(
                    if kind.is_empty() {
                        "kind"
                    } else {
                        "apiVersion"
                    },
                    format!("unsupported apiVersion/kind {api:?}/{kind:?}"),
                ))];
            }
        };
        let resource = match parsed {
            Ok(r) => r,
            Err((field, message)) => return vec![Err(problem(&field, message))],
        };
        if name == "?" || name.is_empty() {
            return vec![Err(problem("metadata.name", "missing name".into()))];
        }
        match resource.validate() {
            Ok(()) => vec![Ok(resource)],
            Err((field, message)) => vec![Err(problem(&field, message))],
        }
    }

    /// Semantic validation (what the Calico API server would refuse).
    fn validate(&self) -> Result<(), (String, String)> {
        let err = |f: &str, m: String| Err((f.to_string(), m));
        match self {
            Resource::BgpConfiguration(c) => {
                let n = &c.metadata.name;
                if n != "default" && !n.starts_with("node.") {
                    return err(
                        "metadata.name",
                        format!("must be \"default\" or \"node.<nodename>\", not {n:?}"),
                    );
                }
                let s = &c.spec;
                for (f, list) in [
                    ("spec.serviceClusterIPs", &s.service_cluster_ips),
                    ("spec.serviceExternalIPs", &s.service_external_ips),
                    ("spec.serviceLoadBalancerIPs", &s.service_load_balancer_ips),
                ] {
                    for e in list.iter().filter(|e| !e.cidr.is_empty()) {
                        parse_cidr(&e.cidr).map_err(|m| (f.to_string(), m))?;
                    }
                }
                for e in s.prefix_advertisements.iter().flatten() {
                    parse_cidr(&e.cidr)
                        .map_err(|m| ("spec.prefixAdvertisements.cidr".to_string(), m))?;
                }
                for c in &s.communities {
                    if !is_community(&c.value) {
                        return err(
                            "spec.communities.value",
                            format!("invalid community {:?}", c.value),
                        );
                    }
                }
                one_of(&s.bind_mode, "spec.bindMode", &["None", "NodeIP"])?;
                one_of(
                    &s.program_cluster_routes,
                    "spec.programClusterRoutes",
                    &[
                        "Enabled",
                        "Disabled",
                        "EnabledIPIPOnly",
                        "EnabledNoEncapOnly",
                    ],
                )?;
                one_of(
                    &s.service_load_balancer_aggregation,
                    "spec.serviceLoadBalancerAggregation",
                    &["Enabled", "Disabled"],
                )?;
                for (f, p) in [
                    ("spec.ipv4NormalRoutePriority", s.ipv4_normal_route_priority),
                    ("spec.ipv6NormalRoutePriority", s.ipv6_normal_route_priority),
                ] {
                    if let Some(p) = p
                        && !(1..=2_147_483_646).contains(&p)
                    {
                        return err(f, format!("{p} is outside 1..2147483646"));
                    }
                }
                if s.listen_port == Some(0) {
                    return err("spec.listenPort", "must be 1..65535".into());
                }
                Ok(())
            }
            Resource::BgpPeer(p) => {
                let s = &p.spec;
                if !s.node.is_empty() && !s.node_selector.is_empty() {
                    return err(
                        "spec.nodeSelector",
                        "node and nodeSelector are mutually exclusive".into(),
                    );
                }
                for (f, sel) in [
                    ("spec.nodeSelector", &s.node_selector),
                    ("spec.peerSelector", &s.peer_selector),
                    ("spec.localWorkloadSelector", &s.local_workload_selector),
                ] {
                    if !sel.is_empty() {
                        Selector::parse(sel).map_err(|e| (f.to_string(), e.to_string()))?;
                    }
                }
                if !s.peer_selector.is_empty() && !s.peer_ip.is_empty() {
                    return err(
                        "spec.peerSelector",
                        "peerSelector and peerIP are mutually exclusive".into(),
                    );
                }
                one_of(
                    &s.next_hop_mode,
                    "spec.nextHopMode",
                    &["Auto", "Self", "Keep"],
                )?;
                one_of(
                    &s.source_address,
                    "spec.sourceAddress",
                    &["UseNodeIP", "None", ""],
                )?;
                one_of(
                    &s.reverse_peering,
                    "spec.reversePeering",
                    &["Auto", "Manual"],
                )?;
                if !s.peer_ip.is_empty() {
                    let (host, _) = crate::compute::parse_ip_port(&s.peer_ip);
                    if host.parse::<IpAddr>().is_err() {
                        return err(
                            "spec.peerIP",
                            format!("{:?} is not an IP, IP:port or [IPv6]:port", s.peer_ip),
                        );
                    }
                }
                if !s.reachable_by.is_empty() && s.reachable_by.parse::<IpAddr>().is_err() {
                    return err(
                        "spec.reachableBy",
                        format!("invalid address {:?}", s.reachable_by),
                    );
                }
                Ok(())
            }
            Resource::BgpFilter(f) => {
                for (dir, rules) in [
                    ("spec.exportV4", &f.spec.export_v4),
                    ("spec.importV4", &f.spec.import_v4),
                    ("spec.exportV6", &f.spec.export_v6),
                    ("spec.importV6", &f.spec.import_v6),
                ] {
                    for (i, r) in rules.iter().enumerate() {
                        validate_filter_rule(r)
                            .map_err(|(field, m)| (format!("{dir}[{i}].{field}"), m))?;
                    }
                }
                Ok(())
            }
            Resource::Node(n) => {
                if let Some(b) = &n.spec.bgp {
                    if !b.ipv4_address.is_empty() {
                        let a = parse_cidr_or_ip(&b.ipv4_address)
                            .map_err(|m| ("spec.bgp.ipv4Address".to_string(), m))?;
                        if !matches!(a, IpNet::V4(_)) {
                            return err("spec.bgp.ipv4Address", "not an IPv4 address".into());
                        }
                    }
                    if !b.ipv6_address.is_empty() {
                        let a = parse_cidr_or_ip(&b.ipv6_address)
                            .map_err(|m| ("spec.bgp.ipv6Address".to_string(), m))?;
                        if !matches!(a, IpNet::V6(_)) {
                            return err("spec.bgp.ipv6Address", "not an IPv6 address".into());
                        }
                    }
                    if !b.route_reflector_cluster_id.is_empty()
                        && b.route_reflector_cluster_id
                            .parse::<std::net::Ipv4Addr>()
                            .is_err()
                    {
                        return err(
                            "spec.bgp.routeReflectorClusterID",
                            "must be IPv4-formatted".into(),
                        );
                    }
                }
                Ok(())
            }
            Resource::IpPool(p) => {
                parse_cidr(&p.spec.cidr).map_err(|m| ("spec.cidr".to_string(), m))?;
                one_of(
                    &p.spec.ipip_mode,
                    "spec.ipipMode",
                    &["Never", "Always", "CrossSubnet", ""],
                )?;
                one_of(
                    &p.spec.vxlan_mode,
                    "spec.vxlanMode",
                    &["Never", "Always", "CrossSubnet", ""],
                )?;
                Ok(())
            }
            Resource::BlockAffinity(a) => {
                parse_cidr(&a.spec.cidr).map_err(|m| ("spec.cidr".to_string(), m))?;
                if !matches!(
                    a.spec.state.as_str(),
                    "" | "confirmed" | "pending" | "pendingDeletion"
                ) {
                    return err("spec.state", format!("unknown state {:?}", a.spec.state));
                }
                Ok(())
            }
            Resource::Secret(_)
            | Resource::Service(_)
            | Resource::EndpointSlice(_)
            | Resource::CalicoNodeStatus(_) => Ok(()),
        }
    }
}

fn drop_nulls(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|_, x| !x.is_null());
            m.values_mut().for_each(drop_nulls);
        }
        Value::Array(a) => a.iter_mut().for_each(drop_nulls),
        _ => {}
    }
}

fn validate_filter_rule(r: &BgpFilterRule) -> Result<(), (String, String)> {
    if !matches!(r.action.as_str(), "Accept" | "Reject") {
        return Err((
            "action".into(),
            format!("must be Accept or Reject, not {:?}", r.action),
        ));
    }
    if r.cidr.is_empty() != r.match_operator.is_empty() {
        return Err((
            "matchOperator".into(),
            "cidr and matchOperator go together".into(),
        ));
    }
    if !r.cidr.is_empty() {
        parse_cidr(&r.cidr).map_err(|m| ("cidr".to_string(), m))?;
        if !matches!(
            r.match_operator.as_str(),
            "Equal" | "NotEqual" | "In" | "NotIn"
        ) {
            return Err((
                "matchOperator".into(),
                format!("unknown operator {:?}", r.match_operator),
            ));
        }
    } else if r.prefix_length.is_some() {
        return Err(("prefixLength".into(), "requires cidr".into()));
    }
    if !r.source.is_empty() && r.source != "RemotePeers" {
        return Err(("source".into(), format!("unknown source {:?}", r.source)));
    }
    if !matches!(r.peer_type.as_str(), "" | "iBGP" | "eBGP") {
        return Err((
            "peerType".into(),
            format!("unknown peer type {:?}", r.peer_type),
        ));
    }
    if let Some(c) = &r.communities
        && (c.values.len() != 1 || !is_community(&c.values[0]))
    {
        return Err((
            "communities.values".into(),
            "exactly one aa:nn or aa:nn:mm value".into(),
        ));
    }
    if let Some(p) = r.priority
        && !(1..=2_147_483_646).contains(&p)
    {
        return Err(("priority".into(), format!("{p} is outside 1..2147483646")));
    }
    if !r.operations.is_empty() && r.action != "Accept" {
        return Err((
            "operations".into(),
            "operations are allowed on Accept rules only".into(),
        ));
    }
    for op in &r.operations {
        let set = [
            op.add_community.is_some(),
            op.prepend_as_path.is_some(),
            op.set_priority.is_some(),
        ];
        if set.iter().filter(|b| **b).count() != 1 {
            return Err((
                "operations".into(),
                "each operation sets exactly one field".into(),
            ));
        }
        if let Some(c) = &op.add_community
            && !c.value.as_deref().is_some_and(is_community)
        {
            return Err((
                "operations.addCommunity.value".into(),
                "aa:nn or aa:nn:mm".into(),
            ));
        }
        if let Some(p) = &op.set_priority
            && !p.value.is_some_and(|v| (1..=2_147_483_646).contains(&v))
        {
            return Err((
                "operations.setPriority.value".into(),
                "1..2147483646".into(),
            ));
        }
        if let Some(p) = &op.prepend_as_path
            && !(1..=10).contains(&p.prefix.len())
        {
            return Err((
                "operations.prependASPath.prefix".into(),
                "1 to 10 AS numbers".into(),
            ));
        }
    }
    Ok(())
}

fn one_of(v: &Option<String>, field: &str, allowed: &[&str]) -> Result<(), (String, String)> {
    match v {
        Some(x) if !allowed.contains(&x.as_str()) => Err((
            field.to_string(),
            format!("{x:?} is not one of {}", allowed.join(", ")),
        )),
        _ => Ok(()),
    }
}

/// `aa:nn` (16-bit parts) or `aa:nn:mm` (32-bit parts).
pub fn is_community(s: &str) -> bool {
    parse_community(s).is_some()
}

/// A parsed community value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommunityValue {
    /// RFC 1997.
    Standard(u16, u16),
    /// RFC 8092.
    Large(u32, u32, u32),
}

/// Parse `aa:nn` / `aa:nn:mm`.
pub fn parse_community(s: &str) -> Option<CommunityValue> {
    let parts: Vec<&str> = s.split(':').collect();
    let digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    if !parts.iter().all(|p| digits(p)) {
        return None;
    }
    match parts.as_slice() {
        [a, b] => Some(CommunityValue::Standard(a.parse().ok()?, b.parse().ok()?)),
        [a, b, c] => Some(CommunityValue::Large(
            a.parse().ok()?,
            b.parse().ok()?,
            c.parse().ok()?,
        )),
        _ => None,
    }
}

/// Parse a CIDR; host bits must be zero? Calico masks them, and so do we.
pub fn parse_cidr(s: &str) -> Result<IpNet, String> {
    s.trim()
        .parse::<IpNet>()
        .map(|n| n.trunc())
        .map_err(|_| format!("invalid CIDR {s:?}"))
}

/// Parse `a.b.c.d/len` keeping the host address (Go `ParseCIDROrIP`); a bare address gets a
/// full-length prefix.
pub fn parse_cidr_or_ip(s: &str) -> Result<IpNet, String> {
    let s = s.trim();
    if let Ok(n) = s.parse::<IpNet>() {
        return Ok(n);
    }
    s.parse::<IpAddr>()
        .map(IpNet::from)
        .map_err(|_| format!("invalid address {s:?}"))
}

type FieldError = (String, String);

fn typed<T: DeserializeOwned>(doc: Value) -> Result<T, FieldError> {
    serde_path_to_error::deserialize(doc).map_err(|e| (e.path().to_string(), e.inner().to_string()))
}

/// A Kubernetes core Node: BGP identity lives in `projectcalico.org/*` annotations.
fn kubernetes_node(doc: Value) -> Result<Node, FieldError> {
    #[derive(serde::Deserialize)]
    struct K8sNode {
        #[serde(default)]
        metadata: ObjectMeta,
        #[serde(default)]
        spec: K8sNodeSpec,
    }
    #[derive(serde::Deserialize, Default)]
    #[serde(rename_all = "camelCase")]
    struct K8sNodeSpec {
        #[serde(default, rename = "podCIDRs")]
        pod_cidrs: Vec<String>,
    }
    let n: K8sNode = typed(doc)?;
    let a = &n.metadata.annotations;
    let get = |k: &str| {
        a.get(&format!("projectcalico.org/{k}"))
            .cloned()
            .unwrap_or_default()
    };
    let as_number = match a.get("projectcalico.org/ASNumber") {
        Some(s) => Some(Asn::parse(s).ok_or_else(|| {
            (
                "metadata.annotations.projectcalico.org/ASNumber".to_string(),
                format!("invalid AS {s:?}"),
            )
        })?),
        None => None,
    };
    let bgp = NodeBgpSpec {
        ipv4_address: get("IPv4Address"),
        ipv6_address: get("IPv6Address"),
        as_number,
        ipv4_ipip_tunnel_addr: get("IPv4IPIPTunnelAddr"),
        route_reflector_cluster_id: get("RouteReflectorClusterID"),
    };
    let has_bgp = !bgp.ipv4_address.is_empty() || !bgp.ipv6_address.is_empty();
    let wg = NodeWireguardSpec {
        interface_ipv4_address: get("IPv4WireguardInterfaceAddr"),
        interface_ipv6_address: get("IPv6WireguardInterfaceAddr"),
    };
    let mut labels = n.metadata.labels.clone();
    if let Some(kl) = a.get("projectcalico.org/kube-labels")
        && let Ok(extra) = serde_json::from_str::<BTreeMap<String, String>>(kl)
    {
        labels.extend(extra);
    }
    Ok(Node {
        metadata: ObjectMeta {
            labels,
            ..n.metadata.clone()
        },
        spec: NodeSpec {
            bgp: has_bgp.then_some(bgp),
            wireguard: (!wg.interface_ipv4_address.is_empty()
                || !wg.interface_ipv6_address.is_empty())
            .then_some(wg),
        },
        status: NodeStatus {
            pod_cidrs: n.spec.pod_cidrs,
        },
    })
}

impl Model {
    /// Insert or replace a resource.
    pub fn upsert(&mut self, r: Resource) {
        match r {
            Resource::BgpConfiguration(x) => {
                self.bgp_configurations.insert(x.metadata.name.clone(), x);
            }
            Resource::BgpPeer(x) => {
                self.bgp_peers.insert(x.metadata.name.clone(), x);
            }
            Resource::BgpFilter(x) => {
                self.bgp_filters.insert(x.metadata.name.clone(), x);
            }
            Resource::Node(x) => {
                self.nodes.insert(x.metadata.name.clone(), x);
            }
            Resource::IpPool(x) => {
                self.ip_pools.insert(x.metadata.name.clone(), x);
            }
            Resource::BlockAffinity(x) => {
                self.block_affinities.insert(x.metadata.name.clone(), x);
            }
            Resource::CalicoNodeStatus(x) => {
                self.node_statuses.insert(x.metadata.name.clone(), x);
            }
            Resource::Secret(x) => {
                self.secrets
                    .insert((ns(&x.metadata), x.metadata.name.clone()), x);
            }
            Resource::Service(x) => {
                self.services
                    .insert((ns(&x.metadata), x.metadata.name.clone()), x);
            }
            Resource::EndpointSlice(x) => {
                self.endpoint_slices
                    .insert((ns(&x.metadata), x.metadata.name.clone()), x);
            }
        }
    }

    /// Remove a resource; returns whether it existed.
    pub fn remove(&mut self, key: &ResourceKey) -> bool {
        let nsn = (key.namespace.clone(), key.name.clone());
        match key.kind {
            "BGPConfiguration" => self.bgp_configurations.remove(&key.name).is_some(),
            "BGPPeer" => self.bgp_peers.remove(&key.name).is_some(),
            "BGPFilter" => self.bgp_filters.remove(&key.name).is_some(),
            "Node" => self.nodes.remove(&key.name).is_some(),
            "IPPool" => self.ip_pools.remove(&key.name).is_some(),
            "BlockAffinity" => self.block_affinities.remove(&key.name).is_some(),
            "CalicoNodeStatus" => self.node_statuses.remove(&key.name).is_some(),
            "Secret" => self.secrets.remove(&nsn).is_some(),
            "Service" => self.services.remove(&nsn).is_some(),
            "EndpointSlice" => self.endpoint_slices.remove(&nsn).is_some(),
            _ => false,
        }
    }

    /// Build a model from documents, in order (a later document with the same kind and name
    /// replaces an earlier one). Returns the model and the problems found.
    pub fn from_documents(
        docs: impl IntoIterator<Item = (String, Value)>,
    ) -> (Model, Vec<Problem>) {
        let mut model = Model::default();
        let mut problems = Vec::new();
        for (source, doc) in docs {
            for r in Resource::parse(doc, &source) {
                match r {
                    Ok(r) => model.upsert(r),
                    Err(p) => problems.push(p),
                }
            }
        }
        (model, problems)
    }

    /// The `default` BGPConfiguration.
    pub fn global_config(&self) -> Option<&BgpConfigurationSpec> {
        self.bgp_configurations.get("default").map(|c| &c.spec)
    }

    /// The `node.<name>` BGPConfiguration.
    pub fn node_config(&self, node: &str) -> Option<&BgpConfigurationSpec> {
        self.bgp_configurations
            .get(&format!("node.{node}"))
            .map(|c| &c.spec)
    }

    /// A secret value (Kubernetes semantics: `stringData` over base64 `data`).
    pub fn secret_value(&self, namespace: &str, name: &str, key: &str) -> Option<String> {
        let s = self
            .secrets
            .get(&(namespace.to_string(), name.to_string()))?;
        if let Some(v) = s.string_data.get(key) {
            return Some(v.clone());
        }
        let b = s.data.get(key)?;
        let bytes = base64_decode(b)?;
        String::from_utf8(bytes).ok()
    }
}

/// Standard base64 (RFC 4648 §4) with padding, as Kubernetes stores Secret data.
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        })
    };
    let s: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    if !s.len().is_multiple_of(4) {
        return None;
    }
    let mut out = Vec::with_capacity(s.len() / 4 * 3);
    for chunk in s.chunks(4) {
        let pad = chunk.iter().rev().take_while(|b| **b == b'=').count();
        if pad > 2 {
            return None;
        }
        let mut n = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            let v = if i >= 4 - pad { 0 } else { val(*c)? };
            n = (n << 6) | v;
        }
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..3 - pad]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn invalid_resources_are_reported_and_skipped() {
        let docs = vec![
            (
                "a.yaml".to_string(),
                json!({"apiVersion": "projectcalico.org/v3", "kind": "IPPool",
                "metadata": {"name": "bad"}, "spec": {"cidr": "10.0.0.0/33"}}),
            ),
            (
                "a.yaml".to_string(),
                json!({"apiVersion": "projectcalico.org/v3", "kind": "IPPool",
                "metadata": {"name": "good"}, "spec": {"cidr": "10.0.0.0/16", "ipipMode": "Always"}}),
            ),
            (
                "b.yaml".to_string(),
                json!({"apiVersion": "projectcalico.org/v3", "kind": "BGPPeer",
                "metadata": {"name": "p"}, "spec": {"asNumber": "not-an-as"}}),
            ),
            (
                "b.yaml".to_string(),
                json!({"apiVersion": "projectcalico.org/v3", "kind": "BGPPeer",
                "metadata": {"name": "q"}, "spec": {"peerIP": "10.0.0.300", "asNumber": 1}}),
            ),
            (
                "c.yaml".to_string(),
                json!({"apiVersion": "projectcalico.org/v3", "kind": "Widget",
                "metadata": {"name": "w"}}),
            ),
        ];
        let (m, problems) = Model::from_documents(docs);
        assert_eq!(m.ip_pools.len(), 1);
        assert!(m.ip_pools.contains_key("good"));
        assert_eq!(problems.len(), 4);
        assert_eq!(problems[0].kind, "IPPool");
        assert_eq!(problems[0].name, "bad");
        assert_eq!(problems[0].field, "spec.cidr");
        assert_eq!(problems[1].field, "spec.asNumber");
        assert_eq!(
            (problems[2].name.as_str(), problems[2].field.as_str()),
            ("q", "spec.peerIP")
        );
        assert!(
            problems[3].to_string().contains("Widget"),
            "{}",
            problems[3]
        );
    }

    #[test]
    fn later_documents_replace_earlier_ones() {
        let doc = |port: u16| {
            (
                "x".to_string(),
                json!({"apiVersion": "projectcalico.org/v3", "kind": "BGPConfiguration",
                "metadata": {"name": "default"}, "spec": {"listenPort": port}}),
            )
        };
        let (m, p) = Model::from_documents(vec![doc(500), doc(600)]);
        assert!(p.is_empty());
        assert_eq!(m.global_config().unwrap().listen_port, Some(600));
    }

    #[test]
    fn kubernetes_nodes_read_annotations() {
        let (m, p) = Model::from_documents(vec![(
            "k".to_string(),
            json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": "n1", "labels": {"a": "b"}, "annotations": {
                "projectcalico.org/IPv4Address": "10.0.0.1/24",
                "projectcalico.org/ASNumber": "65001",
                "projectcalico.org/RouteReflectorClusterID": "1.2.3.4"}}}),
        )]);
        assert!(p.is_empty(), "{p:?}");
        let n = &m.nodes["n1"];
        let bgp = n.spec.bgp.as_ref().unwrap();
        assert_eq!(bgp.ipv4_address, "10.0.0.1/24");
        assert_eq!(bgp.as_number, Some(Asn(65001)));
        assert_eq!(bgp.route_reflector_cluster_id, "1.2.3.4");
        assert_eq!(n.metadata.labels["a"], "b");
    }

    #[test]
    fn lists_are_expanded() {
        let (m, p) = Model::from_documents(vec![(
            "l".to_string(),
            json!({
            "apiVersion": "projectcalico.org/v3", "kind": "IPPoolList",
            "items": [{"metadata": {"name": "a"}, "spec": {"cidr": "10.0.0.0/8"}},
                      {"metadata": {"name": "b"}, "spec": {"cidr": "11.0.0.0/8"}}]}),
        )]);
        assert!(p.is_empty(), "{p:?}");
        assert_eq!(m.ip_pools.len(), 2);
    }

    #[test]
    fn secrets_decode_base64_and_prefer_string_data() {
        let (m, _) = Model::from_documents(vec![(
            "s".to_string(),
            json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "s", "namespace": "kube-system"},
            "data": {"a": "cGFzc3dvcmQtYQ==", "b": "eA=="}, "stringData": {"b": "plain"}}),
        )]);
        assert_eq!(
            m.secret_value("kube-system", "s", "a").as_deref(),
            Some("password-a")
        );
        assert_eq!(
            m.secret_value("kube-system", "s", "b").as_deref(),
            Some("plain")
        );
        assert_eq!(m.secret_value("kube-system", "s", "c"), None);
        assert_eq!(m.secret_value("default", "s", "a"), None);
    }

    #[test]
    fn communities() {
        assert_eq!(
            parse_community("65000:100"),
            Some(CommunityValue::Standard(65000, 100))
        );
        assert_eq!(
            parse_community("1:2:3"),
            Some(CommunityValue::Large(1, 2, 3))
        );
        assert_eq!(parse_community("70000:1"), None);
        assert_eq!(parse_community("a:b"), None);
        assert_eq!(parse_community("1"), None);
    }
}
