//! serde types for the Calico v3 resources (and the few Kubernetes core kinds) Tern reads.
//!
//! Field names follow the `projectcalico.org/v3` API (`api/pkg/apis/projectcalico/v3`). Unknown
//! fields are ignored. Values that are syntactically valid for serde but semantically invalid
//! (a CIDR that does not parse, an unknown enum value) are caught by [`crate::model::Resource::parse`], which
//! reports the resource kind, name and field so that one bad object is skipped while the rest
//! are used.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize};

/// Object metadata (the parts Tern uses).
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ObjectMeta {
    /// Object name.
    #[serde(default)]
    pub name: String,
    /// Namespace (namespaced kinds only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Labels.
    #[serde(default, deserialize_with = "string_map")]
    pub labels: BTreeMap<String, String>,
    /// Annotations.
    #[serde(default, deserialize_with = "string_map")]
    pub annotations: BTreeMap<String, String>,
    /// Resource version (datastore revision).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_version: Option<String>,
}

/// A map of strings where YAML scalars of other types are read as their text, as Kubernetes'
/// YAML decoding does for string fields (`routeReflector: true` is the label value `"true"`).
pub fn string_map<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    let raw = BTreeMap::<String, serde_json::Value>::deserialize(d)?;
    raw.into_iter()
        .map(|(k, v)| {
            let s = match v {
                serde_json::Value::String(s) => s,
                serde_json::Value::Bool(b) => b.to_string(),
                serde_json::Value::Number(n) => n.to_string(),
                other => {
                    return Err(de::Error::custom(format!(
                        "value of {k:?} must be a string, not {other}"
                    )));
                }
            };
            Ok((k, s))
        })
        .collect()
}

/// A 32-bit AS number as Calico accepts it: an integer, a decimal string or asdot `a.b`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Default)]
pub struct Asn(pub u32);

impl fmt::Display for Asn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl Asn {
    /// Parse Calico's textual forms (`64512`, `1.10`).
    pub fn parse(s: &str) -> Option<Asn> {
        let s = s.trim();
        if let Some((hi, lo)) = s.split_once('.') {
            let hi: u16 = hi.parse().ok()?;
            let lo: u16 = lo.parse().ok()?;
            return Some(Asn((u32::from(hi) << 16) | u32::from(lo)));
        }
        s.parse().ok().map(Asn)
    }
}

impl<'de> Deserialize<'de> for Asn {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = Asn;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an AS number (integer, decimal string or asdot a.b)")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Asn, E> {
                u32::try_from(v)
                    .map(Asn)
                    .map_err(|_| E::custom(format!("AS number {v} out of range")))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Asn, E> {
                u32::try_from(v)
                    .map(Asn)
                    .map_err(|_| E::custom(format!("AS number {v} out of range")))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Asn, E> {
                // YAML reads asdot `1.10` as a float; the text is what matters.
                Asn::parse(&v.to_string())
                    .ok_or_else(|| E::custom(format!("invalid AS number {v}")))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Asn, E> {
                Asn::parse(v).ok_or_else(|| E::custom(format!("invalid AS number {v:?}")))
            }
        }
        d.deserialize_any(V)
    }
}

/// A Go `time.Duration` string (`"10s"`, `"1m30s"`, `"2h"`, `"1.5s"`, `"250ms"`).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct GoDuration(pub f64);

impl GoDuration {
    /// Parse Go's duration syntax into seconds.
    pub fn parse(s: &str) -> Option<GoDuration> {
        let s = s.trim();
        if s == "0" {
            return Some(GoDuration(0.0));
        }
        let (neg, mut rest) = match s.strip_prefix('-') {
            Some(r) => (true, r),
            None => (false, s.strip_prefix('+').unwrap_or(s)),
        };
        if rest.is_empty() {
            return None;
        }
        let mut total = 0.0;
        while !rest.is_empty() {
            let num_end = rest
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .unwrap_or(rest.len());
            if num_end == 0 {
                return None;
            }
            let n: f64 = rest[..num_end].parse().ok()?;
            rest = &rest[num_end..];
            let unit_end = rest
                .find(|c: char| c.is_ascii_digit() || c == '.')
                .unwrap_or(rest.len());
            let unit = &rest[..unit_end];
            rest = &rest[unit_end..];
            let scale = match unit {
                "ns" => 1e-9,
                "us" | "µs" | "μs" => 1e-6,
                "ms" => 1e-3,
                "s" => 1.0,
                "m" => 60.0,
                "h" => 3600.0,
                _ => return None,
            };
            total += n * scale;
        }
        Some(GoDuration(if neg { -total } else { total }))
    }

    /// Whole seconds, rounded half away from zero (Go `math.Round(d.Seconds())`).
    pub fn round_seconds(self) -> i64 {
        self.0.round() as i64
    }
}

impl<'de> Deserialize<'de> for GoDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        GoDuration::parse(&s).ok_or_else(|| de::Error::custom(format!("invalid duration {s:?}")))
    }
}

/// `secretKeyRef`.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Secret name (in calico-node's namespace).
    #[serde(default)]
    pub name: String,
    /// Key in the Secret's data.
    #[serde(default)]
    pub key: String,
}

/// A password reference (`password: {secretKeyRef: …}`).
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct PasswordRef {
    /// The Secret key holding the password.
    #[serde(default)]
    pub secret_key_ref: Option<SecretKeyRef>,
}

// ===== BGPConfiguration =====

/// `BGPConfiguration` (`default` = global, `node.<name>` = per node).
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Default)]
pub struct BgpConfiguration {
    /// Metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// Spec.
    #[serde(default)]
    pub spec: BgpConfigurationSpec,
}

/// A `{cidr}` entry of the service IP lists.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Default)]
pub struct CidrEntry {
    /// The CIDR; empty entries are ignored (the CRD allows them).
    #[serde(default)]
    pub cidr: String,
}

/// A named community.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Default)]
pub struct NamedCommunity {
    /// Name used by `prefixAdvertisements`.
    #[serde(default)]
    pub name: String,
    /// `aa:nn` or `aa:nn:mm`.
    #[serde(default)]
    pub value: String,
}

/// A prefix advertisement.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Default)]
pub struct PrefixAdvertisement {
    /// CIDR the communities apply to.
    #[serde(default)]
    pub cidr: String,
    /// Community values or names.
    #[serde(default)]
    pub communities: Vec<String>,
}

/// `BGPConfiguration.spec`.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct BgpConfigurationSpec {
    /// BIRD log level source.
    #[serde(default)]
    pub log_severity_screen: Option<String>,
    /// Full mesh on/off (default on).
    #[serde(default)]
    pub node_to_node_mesh_enabled: Option<bool>,
    /// Default AS (64512 when unset).
    #[serde(default, rename = "asNumber")]
    pub as_number: Option<Asn>,
    /// Service cluster IP ranges to advertise.
    #[serde(default, rename = "serviceClusterIPs")]
    pub service_cluster_ips: Vec<CidrEntry>,
    /// Service external IP ranges to advertise.
    #[serde(default, rename = "serviceExternalIPs")]
    pub service_external_ips: Vec<CidrEntry>,
    /// Service load-balancer IP ranges to advertise.
    #[serde(default, rename = "serviceLoadBalancerIPs")]
    pub service_load_balancer_ips: Vec<CidrEntry>,
    /// `Enabled` (default) or `Disabled`.
    #[serde(default)]
    pub service_load_balancer_aggregation: Option<String>,
    /// Named communities.
    #[serde(default)]
    pub communities: Vec<NamedCommunity>,
    /// Communities per CIDR.
    #[serde(default)]
    pub prefix_advertisements: Option<Vec<PrefixAdvertisement>>,
    /// BGP listen port.
    #[serde(default)]
    pub listen_port: Option<u16>,
    /// Mesh password.
    #[serde(default)]
    pub node_mesh_password: Option<PasswordRef>,
    /// Mesh graceful-restart time.
    #[serde(default)]
    pub node_mesh_max_restart_time: Option<GoDuration>,
    /// `None` (default) or `NodeIP`.
    #[serde(default)]
    pub bind_mode: Option<String>,
    /// Interface globs never learned.
    #[serde(default)]
    pub ignored_interfaces: Vec<String>,
    /// Who programs cluster routes.
    #[serde(default)]
    pub program_cluster_routes: Option<String>,
    /// NormalRoutePriority for IPv4.
    #[serde(default, rename = "ipv4NormalRoutePriority")]
    pub ipv4_normal_route_priority: Option<i64>,
    /// NormalRoutePriority for IPv6.
    #[serde(default, rename = "ipv6NormalRoutePriority")]
    pub ipv6_normal_route_priority: Option<i64>,
}

// ===== BGPPeer =====

/// `BGPPeer`.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Default)]
pub struct BgpPeer {
    /// Metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// Spec.
    #[serde(default)]
    pub spec: BgpPeerSpec,
}

/// `BGPPeer.spec`.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct BgpPeerSpec {
    /// Local node name.
    #[serde(default)]
    pub node: String,
    /// Local node selector.
    #[serde(default)]
    pub node_selector: String,
    /// Remote address (`IP`, `IP:port`, `[IPv6]:port`).
    #[serde(default, rename = "peerIP")]
    pub peer_ip: String,
    /// Remote AS.
    #[serde(default, rename = "asNumber")]
    pub as_number: Asn,
    /// Local AS override.
    #[serde(default, rename = "localASNumber")]
    pub local_as_number: Option<Asn>,
    /// Remote Calico nodes by selector.
    #[serde(default)]
    pub peer_selector: String,
    /// Legacy next-hop keep (eBGP only).
    #[serde(default)]
    pub keep_original_next_hop: bool,
    /// `Auto`, `Self`, `Keep`.
    #[serde(default)]
    pub next_hop_mode: Option<String>,
    /// Password reference.
    #[serde(default)]
    pub password: Option<PasswordRef>,
    /// `UseNodeIP` (default) or `None`.
    #[serde(default)]
    pub source_address: Option<String>,
    /// Graceful-restart time.
    #[serde(default)]
    pub max_restart_time: Option<GoDuration>,
    /// Keepalive time.
    #[serde(default)]
    pub keepalive_time: Option<GoDuration>,
    /// `allow local as N`.
    #[serde(default, rename = "numAllowedLocalASNumbers")]
    pub num_allowed_local_as_numbers: Option<i32>,
    /// GTSM hop count.
    #[serde(default)]
    pub ttl_security: Option<u8>,
    /// Gateway to reach the peer.
    #[serde(default)]
    pub reachable_by: String,
    /// BGPFilter names, in order.
    #[serde(default)]
    pub filters: Vec<String>,
    /// Local workload peering selector.
    #[serde(default)]
    pub local_workload_selector: String,
    /// `Auto` (default) or `Manual`.
    #[serde(default)]
    pub reverse_peering: Option<String>,
}

// ===== BGPFilter =====

/// `BGPFilter`.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Default)]
pub struct BgpFilter {
    /// Metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// Spec.
    #[serde(default)]
    pub spec: BgpFilterSpec,
}

/// `BGPFilter.spec`.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Default)]
pub struct BgpFilterSpec {
    /// IPv4 export rules.
    #[serde(default, rename = "exportV4")]
    pub export_v4: Vec<BgpFilterRule>,
    /// IPv4 import rules.
    #[serde(default, rename = "importV4")]
    pub import_v4: Vec<BgpFilterRule>,
    /// IPv6 export rules.
    #[serde(default, rename = "exportV6")]
    pub export_v6: Vec<BgpFilterRule>,
    /// IPv6 import rules.
    #[serde(default, rename = "importV6")]
    pub import_v6: Vec<BgpFilterRule>,
}

/// `prefixLength`.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Default)]
pub struct PrefixLength {
    /// Minimum length.
    #[serde(default)]
    pub min: Option<i32>,
    /// Maximum length.
    #[serde(default)]
    pub max: Option<i32>,
}

/// `communities` match.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Default)]
pub struct CommunityMatch {
    /// Exactly one value.
    #[serde(default)]
    pub values: Vec<String>,
}

/// One operation of an Accept rule.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct FilterOperation {
    /// `addCommunity: {value}`.
    #[serde(default)]
    pub add_community: Option<ValueOf<String>>,
    /// `prependASPath: {prefix}`.
    #[serde(default, rename = "prependASPath")]
    pub prepend_as_path: Option<PrependAsPath>,
    /// `setPriority: {value}`.
    #[serde(default)]
    pub set_priority: Option<ValueOf<i64>>,
}

/// `{value: X}`.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Default)]
pub struct ValueOf<T> {
    /// The value.
    #[serde(default)]
    pub value: Option<T>,
}

/// `prependASPath`.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Default)]
pub struct PrependAsPath {
    /// ASNs, the path will start with them in this order.
    #[serde(default)]
    pub prefix: Vec<Asn>,
}

/// One BGPFilter rule.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct BgpFilterRule {
    /// CIDR to match.
    #[serde(default)]
    pub cidr: String,
    /// `Equal`, `NotEqual`, `In`, `NotIn`.
    #[serde(default)]
    pub match_operator: String,
    /// Prefix length bounds.
    #[serde(default)]
    pub prefix_length: Option<PrefixLength>,
    /// `RemotePeers`.
    #[serde(default)]
    pub source: String,
    /// Interface glob.
    #[serde(default)]
    pub interface: String,
    /// `iBGP` or `eBGP`.
    #[serde(default)]
    pub peer_type: String,
    /// Community match.
    #[serde(default)]
    pub communities: Option<CommunityMatch>,
    /// AS path prefix.
    #[serde(default, rename = "asPathPrefix")]
    pub as_path_prefix: Vec<Asn>,
    /// Priority match.
    #[serde(default)]
    pub priority: Option<i64>,
    /// Operations (Accept only).
    #[serde(default)]
    pub operations: Vec<FilterOperation>,
    /// `Accept` or `Reject`.
    #[serde(default)]
    pub action: String,
}

// ===== Node =====

/// Calico `Node`.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Default)]
pub struct Node {
    /// Metadata (labels are used by selectors).
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// Spec.
    #[serde(default)]
    pub spec: NodeSpec,
    /// Status.
    #[serde(default)]
    pub status: NodeStatus,
}

/// `Node.spec`.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Default)]
pub struct NodeSpec {
    /// BGP identity.
    #[serde(default)]
    pub bgp: Option<NodeBgpSpec>,
    /// WireGuard addresses.
    #[serde(default)]
    pub wireguard: Option<NodeWireguardSpec>,
}

/// `Node.spec.bgp`.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct NodeBgpSpec {
    /// `a.b.c.d/len` (or a bare address).
    #[serde(default, rename = "ipv4Address")]
    pub ipv4_address: String,
    /// IPv6 address with prefix length.
    #[serde(default, rename = "ipv6Address")]
    pub ipv6_address: String,
    /// Node AS override.
    #[serde(default, rename = "asNumber")]
    pub as_number: Option<Asn>,
    /// IPIP tunnel address.
    #[serde(default, rename = "ipv4IPIPTunnelAddr")]
    pub ipv4_ipip_tunnel_addr: String,
    /// Route-reflector cluster id.
    #[serde(default, rename = "routeReflectorClusterID")]
    pub route_reflector_cluster_id: String,
}

/// `Node.spec.wireguard`.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Default)]
pub struct NodeWireguardSpec {
    /// IPv4 WireGuard interface address.
    #[serde(default, rename = "interfaceIPv4Address")]
    pub interface_ipv4_address: String,
    /// IPv6 WireGuard interface address.
    #[serde(default, rename = "interfaceIPv6Address")]
    pub interface_ipv6_address: String,
}

/// `Node.status`.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct NodeStatus {
    /// Pod CIDRs (host-local IPAM, `USE_POD_CIDR`).
    #[serde(default, rename = "podCIDRs")]
    pub pod_cidrs: Vec<String>,
}

// ===== IPPool =====

/// `IPPool`.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Default)]
pub struct IpPool {
    /// Metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// Spec.
    #[serde(default)]
    pub spec: IpPoolSpec,
}

/// `IPPool.spec`.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct IpPoolSpec {
    /// Pool CIDR.
    #[serde(default)]
    pub cidr: String,
    /// `Never`, `Always`, `CrossSubnet`.
    #[serde(default)]
    pub vxlan_mode: Option<String>,
    /// `Never`, `Always`, `CrossSubnet`.
    #[serde(default)]
    pub ipip_mode: Option<String>,
    /// SNAT outgoing.
    #[serde(default)]
    pub nat_outgoing: bool,
    /// No new allocations (routing unaffected).
    #[serde(default)]
    pub disabled: bool,
    /// Never export routes inside the pool.
    #[serde(default, rename = "disableBGPExport")]
    pub disable_bgp_export: bool,
    /// Block size.
    #[serde(default)]
    pub block_size: Option<u8>,
    /// Node selector (IPAM only).
    #[serde(default)]
    pub node_selector: String,
}

// ===== BlockAffinity =====

/// `BlockAffinity`.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Default)]
pub struct BlockAffinity {
    /// Metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// Spec.
    #[serde(default)]
    pub spec: BlockAffinitySpec,
}

/// `BlockAffinity.spec`.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Default)]
pub struct BlockAffinitySpec {
    /// Node name.
    #[serde(default)]
    pub node: String,
    /// Block CIDR.
    #[serde(default)]
    pub cidr: String,
    /// `""` (implicitly confirmed), `confirmed`, `pending`, `pendingDeletion`.
    #[serde(default)]
    pub state: String,
    /// `host` (default) or `virtual`.
    #[serde(default, rename = "type")]
    pub affinity_type: String,
    /// Marked for deletion.
    #[serde(default, deserialize_with = "bool_or_string")]
    pub deleted: bool,
}

fn bool_or_string<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum B {
        B(bool),
        S(String),
    }
    Ok(match B::deserialize(d)? {
        B::B(b) => b,
        B::S(s) => s.eq_ignore_ascii_case("true"),
    })
}

// ===== Kubernetes core kinds =====

/// `v1 Secret`.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Secret {
    /// Metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// Base64 values.
    #[serde(default)]
    pub data: BTreeMap<String, String>,
    /// Plain values (merged over `data`, as the API server does).
    #[serde(default, deserialize_with = "string_map")]
    pub string_data: BTreeMap<String, String>,
}

/// `v1 Service` (the parts service advertisement uses).
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Default)]
pub struct Service {
    /// Metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// Spec.
    #[serde(default)]
    pub spec: ServiceSpec,
    /// Status.
    #[serde(default)]
    pub status: ServiceStatus,
}

/// `Service.spec`.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ServiceSpec {
    /// `ClusterIP`, `NodePort`, `LoadBalancer`, `ExternalName`.
    #[serde(default, rename = "type")]
    pub service_type: String,
    /// Cluster IP (`None` for headless).
    #[serde(default, rename = "clusterIP")]
    pub cluster_ip: String,
    /// Cluster IPs (dual stack).
    #[serde(default, rename = "clusterIPs")]
    pub cluster_ips: Vec<String>,
    /// External IPs.
    #[serde(default, rename = "externalIPs")]
    pub external_ips: Vec<String>,
    /// `Cluster` (default) or `Local`.
    #[serde(default)]
    pub external_traffic_policy: String,
    /// IP families (`IPv4`, `IPv6`); defaulted from the cluster IPs when absent.
    #[serde(default)]
    pub ip_families: Vec<String>,
    /// Requested LB IP.
    #[serde(default, rename = "loadBalancerIP")]
    pub load_balancer_ip: String,
}

/// `Service.status`.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ServiceStatus {
    /// Load balancer status.
    #[serde(default)]
    pub load_balancer: LoadBalancerStatus,
}

/// `status.loadBalancer`.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Default)]
pub struct LoadBalancerStatus {
    /// Ingress points.
    #[serde(default)]
    pub ingress: Vec<LoadBalancerIngress>,
}

/// One ingress point.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Default)]
pub struct LoadBalancerIngress {
    /// Address.
    #[serde(default)]
    pub ip: String,
}

/// `discovery.k8s.io/v1 EndpointSlice`.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct EndpointSlice {
    /// Metadata (`kubernetes.io/service-name` label names the Service).
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// `IPv4`, `IPv6`, `FQDN`.
    #[serde(default)]
    pub address_type: String,
    /// Endpoints.
    #[serde(default)]
    pub endpoints: Vec<Endpoint>,
}

/// One endpoint of a slice.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Endpoint {
    /// Addresses.
    #[serde(default)]
    pub addresses: Vec<String>,
    /// Conditions.
    #[serde(default)]
    pub conditions: EndpointConditions,
    /// Node hosting the endpoint.
    #[serde(default)]
    pub node_name: Option<String>,
}

/// Endpoint conditions.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Default)]
pub struct EndpointConditions {
    /// Ready (unset = ready, per the API).
    #[serde(default)]
    pub ready: Option<bool>,
}

/// `CalicoNodeStatus`.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Default)]
pub struct CalicoNodeStatus {
    /// Metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// Spec.
    #[serde(default)]
    pub spec: CalicoNodeStatusSpec,
}

/// `CalicoNodeStatus.spec`.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct CalicoNodeStatusSpec {
    /// Node reporting.
    #[serde(default)]
    pub node: String,
    /// `Agent`, `BGP`, `Routes`.
    #[serde(default)]
    pub classes: Vec<String>,
    /// Reporting period.
    #[serde(default)]
    pub update_period_seconds: Option<u32>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asn_forms() {
        assert_eq!(Asn::parse("64512"), Some(Asn(64512)));
        assert_eq!(Asn::parse("1.10"), Some(Asn(65546)));
        assert_eq!(Asn::parse("x"), None);
        let a: Asn = serde_json::from_str("65000").unwrap();
        assert_eq!(a, Asn(65000));
        let a: Asn = serde_json::from_str("\"4294967295\"").unwrap();
        assert_eq!(a, Asn(u32::MAX));
        assert!(serde_json::from_str::<Asn>("4294967296").is_err());
    }

    #[test]
    fn go_durations() {
        assert_eq!(GoDuration::parse("10s").unwrap().round_seconds(), 10);
        assert_eq!(GoDuration::parse("1m30s").unwrap().round_seconds(), 90);
        assert_eq!(GoDuration::parse("2h").unwrap().round_seconds(), 7200);
        assert_eq!(GoDuration::parse("1500ms").unwrap().round_seconds(), 2);
        assert_eq!(GoDuration::parse("0").unwrap().round_seconds(), 0);
        assert!(GoDuration::parse("10").is_none());
        assert!(GoDuration::parse("s").is_none());
        assert!(GoDuration::parse("").is_none());
    }

    #[test]
    fn unknown_fields_are_ignored() {
        let p: BgpPeer = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "uid": "x"},
            "spec": {"peerIP": "10.0.0.1", "asNumber": 65000, "futureField": true}
        }))
        .unwrap();
        assert_eq!(p.spec.peer_ip, "10.0.0.1");
        assert_eq!(p.spec.as_number, Asn(65000));
    }
}
