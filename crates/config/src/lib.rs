//! # tern-config — what the speaker is asked to do
//!
//! **Owns:** the speaker's desired configuration as one plain, serialisable, diffable value:
//! router id, AS, listen address, peers, named policies (the policy language the RIB
//! evaluates), blackhole routes and kernel programming rules.
//!
//! **Must not know:** where the configuration came from (Calico, a file, an embedder) or how it
//! is carried out (wire, RIB, kernel). It depends on nothing of Tern's.
//!
//! ## Shape
//! [`DesiredConfig`] is one value for both address families: identity (`router_id`, `asn`,
//! `cluster_id`), `listen`, `peers` (each naming its `import`/`export` policy), `policies` (the
//! [`policy`] language, keyed by name), `blackholes` and `static_routes`, `kernel` (what is
//! installed into the FIB and how) and `interfaces` (which interfaces' networks are learned).
//! Its JSON is what `ternd --print-config` prints. Secrets never appear in serialised output:
//! a peer's password serialises as `"password_set": true|false`.

#![forbid(unsafe_code)]

pub mod policy;

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

use ipnet::IpNet;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use policy::{Family, Policy};

/// The speaker's whole desired configuration.
#[derive(Serialize, Deserialize, Clone, PartialEq, Debug)]
pub struct DesiredConfig {
    /// BGP identifier (also used by the IPv6 side).
    pub router_id: Ipv4Addr,
    /// This node's AS number.
    pub asn: u32,
    /// Route-reflector cluster id of this node (Calico `routeReflectorClusterID`); `Some` makes
    /// this node a route reflector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_id: Option<Ipv4Addr>,
    /// This node's IPv4 address with its subnet, when IPv4 is enabled on the node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_ipv4: Option<IpNet>,
    /// This node's IPv6 address with its subnet, when IPv6 is enabled on the node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_ipv6: Option<IpNet>,
    /// Where to accept BGP connections.
    pub listen: Listen,
    /// Every BGP session, sorted by name.
    pub peers: Vec<Peer>,
    /// Named policies referenced by peers and the kernel.
    pub policies: BTreeMap<String, Policy>,
    /// Blackhole routes originated by this node (its affine IPAM blocks), sorted.
    pub blackholes: Vec<IpNet>,
    /// Other static routes originated by this node: service ranges (blackhole) and
    /// `reachableBy` gateways.
    #[serde(default)]
    pub static_routes: Vec<StaticRoute>,
    /// Kernel (FIB) programming.
    pub kernel: Kernel,
    /// Which interfaces' connected networks are learned (BIRD `protocol direct`), first match
    /// wins.
    #[serde(default)]
    pub interfaces: Vec<InterfacePattern>,
    /// BIRD-style debug level for logs: `none`, `states` or `all`.
    #[serde(default)]
    pub log_level: LogLevel,
}

/// Listening socket parameters.
#[derive(Serialize, Deserialize, Clone, PartialEq, Eq, Debug)]
pub struct Listen {
    /// Bind address for IPv4 (Calico `bindMode: NodeIP`); `None` = any.
    #[serde(default)]
    pub address: Option<IpAddr>,
    /// Bind address for IPv6; `None` = any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address_v6: Option<IpAddr>,
    /// TCP port (179 unless configured).
    pub port: u16,
}

impl Default for Listen {
    fn default() -> Self {
        Listen {
            address: None,
            address_v6: None,
            port: 179,
        }
    }
}

/// Why a session exists (Calico's naming and `calicoctl node status` peer types).
#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Hash, Debug)]
#[serde(rename_all = "snake_case")]
pub enum PeerKind {
    /// Node-to-node mesh (`Mesh_…`).
    Mesh,
    /// Global BGPPeer (`Global_…`).
    Global,
    /// Node-specific BGPPeer (`Node_…`).
    Node,
    /// Local workload peer (`Local_Workload_…`).
    LocalWorkload,
}

/// How NEXT_HOP is set on routes sent to a peer (Calico `nextHopMode`).
#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
#[serde(rename_all = "snake_case")]
pub enum NextHopMode {
    /// BGP's default rules (self on eBGP, unchanged on iBGP).
    #[default]
    Auto,
    /// Always this speaker's address (BIRD `next hop self`).
    #[serde(rename = "self")]
    SelfAddress,
    /// Never change it (BIRD `next hop keep`).
    Keep,
}

/// Which ADD-PATH directions are offered (RFC 7911).
#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
#[serde(rename_all = "snake_case")]
pub enum AddPaths {
    /// Not negotiated.
    Off,
    /// Receive only.
    Rx,
    /// Send only.
    Tx,
    /// Both (Calico's `add paths on`).
    #[default]
    RxTx,
}

/// A BGP session.
#[derive(Serialize, Deserialize, Clone, PartialEq, Debug)]
pub struct Peer {
    /// Calico/BIRD protocol name (`Mesh_10_0_0_2`, `Global_…_port_N`, `Node_2001__102`).
    pub name: String,
    /// Why this session exists.
    pub kind: PeerKind,
    /// Neighbour address.
    pub address: IpAddr,
    /// Neighbour port (179 unless set).
    pub port: u16,
    /// Neighbour AS.
    pub remote_as: u32,
    /// Local AS override for this session (`localASNumber`); `None` = [`DesiredConfig::asn`].
    #[serde(default)]
    pub local_as: Option<u32>,
    /// Wait for the neighbour to connect.
    #[serde(default)]
    pub passive: bool,
    /// The neighbour is a route-reflector client of this node.
    #[serde(default)]
    pub rr_client: bool,
    /// Cluster id used towards this client (set with `rr_client`).
    #[serde(default)]
    pub rr_cluster_id: Option<Ipv4Addr>,
    /// Local address for the TCP connection; `None` = chosen by the kernel.
    #[serde(default)]
    pub source_address: Option<IpAddr>,
    /// TCP MD5 password (RFC 2385). Serialised only as `password_set: bool`.
    #[serde(default, rename = "password_set")]
    pub password: Password,
    /// GTSM (RFC 5082) with this many hops; `None` = TTL security off.
    #[serde(default)]
    pub ttl_security: Option<u8>,
    /// Multihop session (no directly-connected check; Calico sets it on every session).
    #[serde(default = "yes")]
    pub multihop: bool,
    /// Next-hop rewriting towards this peer.
    #[serde(default)]
    pub next_hop_mode: NextHopMode,
    /// Graceful-restart time advertised (seconds); `None` = 120.
    #[serde(default)]
    pub restart_time: Option<u32>,
    /// Keepalive time (seconds); `None` = hold time / 3.
    #[serde(default)]
    pub keepalive_time: Option<u32>,
    /// Hold time offered (seconds).
    #[serde(default = "default_hold_time")]
    pub hold_time: u16,
    /// Delay before the first connect attempt (seconds).
    #[serde(default = "default_connect_delay")]
    pub connect_delay_time: u32,
    /// Connect retry interval (seconds).
    #[serde(default = "default_connect_retry")]
    pub connect_retry_time: u32,
    /// Error-wait back-off bounds (seconds): first wait, maximum wait.
    #[serde(default = "default_error_wait")]
    pub error_wait_time: (u32, u32),
    /// Graceful restart (RFC 4724) capability.
    #[serde(default = "yes")]
    pub graceful_restart: bool,
    /// ADD-PATH directions.
    #[serde(default)]
    pub add_paths: AddPaths,
    /// Accept routes whose AS_PATH contains the local AS up to this many times.
    #[serde(default)]
    pub allow_local_as: Option<u32>,
    /// Address families carried on this session.
    pub families: Vec<Family>,
    /// Gateway through which the neighbour is reached (Calico `reachableBy`).
    #[serde(default)]
    pub reachable_by: Option<IpAddr>,
    /// Import policy name, or `"all"`/`"none"`.
    pub import: String,
    /// Export policy name, or `"all"`/`"none"`.
    pub export: String,
    /// Keep the peer's routes as received, before import policy (BIRD `import table`), so an
    /// import policy change re-runs locally instead of asking for ROUTE-REFRESH. Kept anyway
    /// for peers without route refresh.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub soft_reconfiguration: bool,
    /// Accept and send LOCAL_PREF on this eBGP session (BIRD `allow bgp_local_pref`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_local_pref: bool,
    /// Limit on the routes accepted from this peer (RFC 4486); `None` = no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_prefixes: Option<MaxPrefixes>,
}

/// A per-peer prefix limit, like BIRD's `import limit N action restart` or FRR's
/// `maximum-prefix N restart M`. Counts the routes accepted after the import policy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaxPrefixes {
    /// More accepted routes than this closes the session with Cease / Maximum Number of
    /// Prefixes Reached (RFC 4486 subcode 1).
    pub limit: u32,
    /// Seconds until the session is started again; `None` = it stays down until an operator
    /// enables it.
    #[serde(default)]
    pub restart_after: Option<u32>,
    /// Only log a warning when the limit is crossed (the session stays up).
    #[serde(default)]
    pub warning_only: bool,
}

fn yes() -> bool {
    true
}
fn default_hold_time() -> u16 {
    DEFAULT_HOLD_TIME
}
fn default_connect_delay() -> u32 {
    DEFAULT_CONNECT_DELAY
}
fn default_connect_retry() -> u32 {
    DEFAULT_CONNECT_RETRY
}
fn default_error_wait() -> (u32, u32) {
    DEFAULT_ERROR_WAIT
}

/// BIRD 1.6's hold time, which Calico never changes.
pub const DEFAULT_HOLD_TIME: u16 = 240;
/// Calico's `connect delay time 2`.
pub const DEFAULT_CONNECT_DELAY: u32 = 2;
/// Calico's `connect retry time 5`.
pub const DEFAULT_CONNECT_RETRY: u32 = 5;
/// Calico's `error wait time 5,30`.
pub const DEFAULT_ERROR_WAIT: (u32, u32) = (5, 30);
/// BIRD's default graceful-restart time.
pub const DEFAULT_RESTART_TIME: u32 = 120;

/// A session password. Never printed: `Debug` shows `<redacted>`, serde writes only whether it
/// is set. Deserialising `true` yields [`Password::Redacted`] (the secret is not in the text).
#[derive(Clone, PartialEq, Eq, Default)]
pub enum Password {
    /// No password.
    #[default]
    Unset,
    /// The secret value.
    Set(String),
    /// A password exists but its value was not available (read back from printed config).
    Redacted,
}

impl Password {
    /// Whether a password is configured.
    pub fn is_set(&self) -> bool {
        !matches!(self, Password::Unset)
    }

    /// The secret, when known.
    pub fn secret(&self) -> Option<&str> {
        match self {
            Password::Set(s) => Some(s),
            _ => None,
        }
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Password::Unset => f.write_str("Unset"),
            Password::Set(_) | Password::Redacted => f.write_str("<redacted>"),
        }
    }
}

impl Serialize for Password {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bool(self.is_set())
    }
}

impl<'de> Deserialize<'de> for Password {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(if bool::deserialize(d)? {
            Password::Redacted
        } else {
            Password::Unset
        })
    }
}

/// A static route originated by this node.
#[derive(Serialize, Deserialize, Clone, PartialEq, Eq, Debug)]
pub struct StaticRoute {
    /// Destination.
    pub prefix: IpNet,
    /// Where it points.
    pub target: StaticTarget,
}

/// Target of a static route.
#[derive(Serialize, Deserialize, Clone, PartialEq, Eq, Debug)]
#[serde(rename_all = "snake_case")]
pub enum StaticTarget {
    /// Drop (also the form Calico uses to originate aggregates and service ranges).
    Blackhole,
    /// Via a gateway (recursively resolved).
    Via(IpAddr),
}

/// Kernel routing-table programming (BIRD `protocol kernel` as Calico configures it).
#[derive(Serialize, Deserialize, Clone, PartialEq, Debug)]
pub struct Kernel {
    /// Policy deciding which routes are installed, and how (tunnel, metric).
    pub export: String,
    /// Import alien kernel routes (protocol not kernel/ours) as routes.
    pub learn: bool,
    /// Leave installed routes in place on shutdown.
    pub persist: bool,
    /// Full table scan interval (seconds).
    pub scan_time: u32,
    /// Keep installed routes during graceful restart until the RIB has converged.
    pub graceful_restart: bool,
    /// Install ECMP (multipath) routes.
    pub merge_paths: bool,
    /// `rtm_protocol` of installed routes (12 = `bird`, which Felix and operators recognise).
    pub route_protocol: u8,
    /// Metric for BGP routes without a kernel metric (Calico NormalRoutePriority), per family.
    pub normal_route_priority: NormalRoutePriority,
    /// Never installed (service ranges), per family.
    #[serde(default)]
    pub reject_cidrs: Vec<IpNet>,
    /// Calico IP pools and how their routes are programmed.
    #[serde(default)]
    pub pools: Vec<Pool>,
}

/// NormalRoutePriority per family (default 1024).
#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
pub struct NormalRoutePriority {
    /// IPv4.
    pub ipv4: u32,
    /// IPv6.
    pub ipv6: u32,
}

impl Default for NormalRoutePriority {
    fn default() -> Self {
        NormalRoutePriority {
            ipv4: 1024,
            ipv6: 1024,
        }
    }
}

/// An IP pool as relevant to routing.
#[derive(Serialize, Deserialize, Clone, PartialEq, Eq, Debug)]
pub struct Pool {
    /// The pool CIDR.
    pub cidr: IpNet,
    /// Encapsulation.
    pub encapsulation: Encapsulation,
    /// Routes inside the pool are exported to peers (`disableBGPExport: false`).
    pub export: bool,
    /// This speaker installs the pool's routes learned from peers (otherwise Felix does and the
    /// kernel policy rejects them).
    pub programmed: bool,
}

/// Pool encapsulation.
#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
#[serde(rename_all = "snake_case")]
pub enum Encapsulation {
    /// Plain routing.
    None,
    /// IP-in-IP always (`via <peer> dev tunl0 onlink`).
    IpipAlways,
    /// IP-in-IP only towards next hops outside this node's subnet.
    IpipCrossSubnet,
    /// VXLAN (always or cross-subnet): Felix programs it.
    Vxlan,
}

/// One entry of the interface learning list.
#[derive(Serialize, Deserialize, Clone, PartialEq, Eq, Debug)]
pub struct InterfacePattern {
    /// Shell glob on the interface name.
    pub glob: String,
    /// `true` = learn, `false` = ignore.
    pub include: bool,
}

/// Debug verbosity in BIRD's terms.
#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Debug, Default)]
#[serde(rename_all = "snake_case")]
pub enum LogLevel {
    /// No protocol debugging.
    None,
    /// State changes (`debug { states }`).
    #[default]
    States,
    /// Everything (`debug all`).
    All,
}

impl Peer {
    /// The local AS used on this session.
    pub fn effective_local_as(&self, node_asn: u32) -> u32 {
        self.local_as.unwrap_or(node_asn)
    }
}

impl DesiredConfig {
    /// The peer with this name.
    pub fn peer(&self, name: &str) -> Option<&Peer> {
        self.peers.iter().find(|p| p.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::policy::{Rule, Verdict};
    use super::*;

    fn sample() -> DesiredConfig {
        let mut policies = BTreeMap::new();
        policies.insert(
            "calico_import".to_string(),
            Policy::new(vec![Rule::always(Verdict::Accept)]),
        );
        DesiredConfig {
            router_id: Ipv4Addr::new(10, 192, 0, 2),
            asn: 64512,
            cluster_id: None,
            node_ipv4: Some("10.192.0.2/16".parse().unwrap()),
            node_ipv6: None,
            listen: Listen::default(),
            peers: vec![Peer {
                name: "Mesh_10_192_0_3".into(),
                kind: PeerKind::Mesh,
                address: "10.192.0.3".parse().unwrap(),
                port: 179,
                remote_as: 64512,
                local_as: None,
                passive: true,
                rr_client: false,
                rr_cluster_id: None,
                source_address: Some("10.192.0.2".parse().unwrap()),
                password: Password::Unset,
                ttl_security: None,
                multihop: true,
                next_hop_mode: NextHopMode::Auto,
                restart_time: Some(120),
                keepalive_time: None,
                hold_time: DEFAULT_HOLD_TIME,
                connect_delay_time: DEFAULT_CONNECT_DELAY,
                connect_retry_time: DEFAULT_CONNECT_RETRY,
                error_wait_time: DEFAULT_ERROR_WAIT,
                graceful_restart: true,
                add_paths: AddPaths::RxTx,
                allow_local_as: None,
                families: vec![Family::Ipv4],
                reachable_by: None,
                import: "calico_import".into(),
                export: policy::NONE.into(),
                soft_reconfiguration: false,
                allow_local_pref: false,
                max_prefixes: None,
            }],
            policies,
            blackholes: vec!["192.168.221.64/26".parse().unwrap()],
            static_routes: vec![StaticRoute {
                prefix: "10.101.0.0/16".parse().unwrap(),
                target: StaticTarget::Blackhole,
            }],
            kernel: Kernel {
                export: "calico_kernel_programming".into(),
                learn: true,
                persist: true,
                scan_time: 2,
                graceful_restart: true,
                merge_paths: true,
                route_protocol: 12,
                normal_route_priority: NormalRoutePriority::default(),
                reject_cidrs: vec![],
                pools: vec![Pool {
                    cidr: "192.168.0.0/16".parse().unwrap(),
                    encapsulation: Encapsulation::IpipCrossSubnet,
                    export: true,
                    programmed: false,
                }],
            },
            interfaces: vec![InterfacePattern {
                glob: "*".into(),
                include: true,
            }],
            log_level: LogLevel::States,
        }
    }

    #[test]
    fn round_trips_through_json() {
        let c = sample();
        let json = serde_json::to_string(&c).unwrap();
        let back: DesiredConfig = serde_json::from_str(&json).unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn password_value_is_never_serialised() {
        let mut c = sample();
        c.peers[0].password = Password::Set("very-secret".into());
        let json = serde_json::to_string(&c).unwrap();
        assert!(!json.contains("very-secret"));
        assert!(json.contains(r#""password_set":true"#));
        assert!(!format!("{c:?}").contains("very-secret"));
        let back: DesiredConfig = serde_json::from_str(&json).unwrap();
        assert_eq!(back.peers[0].password, Password::Redacted);
        assert!(back.peers[0].password.is_set());
        assert_eq!(back.peers[0].password.secret(), None);
    }

    #[test]
    fn issue_field_names_are_present() {
        let v = serde_json::to_value(sample()).unwrap();
        for k in [
            "router_id",
            "asn",
            "listen",
            "peers",
            "policies",
            "blackholes",
            "kernel",
        ] {
            assert!(v.get(k).is_some(), "missing {k}");
        }
        assert!(v["listen"].get("address").is_some() && v["listen"].get("port").is_some());
        let peer = &v["peers"][0];
        for k in [
            "name",
            "address",
            "port",
            "remote_as",
            "local_as",
            "passive",
            "rr_client",
            "rr_cluster_id",
            "source_address",
            "password_set",
            "ttl_security",
            "next_hop_mode",
            "restart_time",
            "keepalive_time",
            "import",
            "export",
        ] {
            assert!(peer.get(k).is_some(), "peer missing {k}");
        }
    }

    #[test]
    fn timers_default_when_absent() {
        let mut v = serde_json::to_value(sample()).unwrap();
        let peer = v["peers"][0].as_object_mut().unwrap();
        for k in [
            "hold_time",
            "connect_delay_time",
            "connect_retry_time",
            "error_wait_time",
            "graceful_restart",
            "multihop",
            "add_paths",
        ] {
            peer.remove(k);
        }
        let back: DesiredConfig = serde_json::from_value(v).unwrap();
        assert_eq!(back, sample());
    }
}
