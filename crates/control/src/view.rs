//! What the control socket shows, as plain values built from the speaker's answers.
//!
//! Every command is answered from one of these views: [`crate::format`] renders them as
//! BIRD's text, `serde_json` as Tern's JSON. Building a view is where Tern's state is mapped
//! onto BIRD's vocabulary (protocol states, BGP state descriptions, error classes).

use std::net::{IpAddr, Ipv4Addr};
use std::time::SystemTime;

use bgp_wire::fsm::{Negotiated, State};
use bgp_wire::iana::{AddPathMode, ErrorCode};
use bgp_wire::{Capability, Prefix};
use serde::Serialize;
use tern_config::DesiredConfig;
use tern_speaker::{PeerStatus, RouteEntry, RouteFrom, SpeakerStatus};

use crate::clock;
use crate::iface::Resolver;

/// Which address family a socket shows (BIRD runs `bird` and `bird6`; Tern serves both
/// sockets from one process).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FamilyView {
    /// `bird.ctl`: IPv4 routes and peers.
    V4,
    /// `bird6.ctl`: IPv6 routes and peers.
    V6,
}

impl FamilyView {
    /// Whether an address belongs to this view.
    pub fn has(self, addr: IpAddr) -> bool {
        matches!(
            (self, addr),
            (FamilyView::V4, IpAddr::V4(_)) | (FamilyView::V6, IpAddr::V6(_))
        )
    }
}

/// Names of the pseudo-protocols Calico's BIRD configuration defines; calico-node and
/// operators expect to see them in `show protocols` and as route sources.
pub mod names {
    /// Originated routes (own blocks, service ranges).
    pub const STATIC: &str = "static1";
    /// Kernel routing table synchronisation.
    pub const KERNEL: &str = "kernel1";
    /// Interface scanning.
    pub const DEVICE: &str = "device1";
    /// Connected networks.
    pub const DIRECT: &str = "direct1";
}

// ===== show status =====

/// `show status`.
#[derive(Clone, Debug, Serialize)]
pub struct StatusView {
    /// Version text (begins with `v`: calico-node takes what follows `BIRD `).
    pub version: String,
    /// BGP identifier.
    pub router_id: Ipv4Addr,
    /// Local AS.
    pub asn: u32,
    /// Now.
    #[serde(serialize_with = "clock::serialize")]
    pub server_time: SystemTime,
    /// When the speaker started.
    #[serde(serialize_with = "clock::serialize")]
    pub last_reboot: SystemTime,
    /// Last successful reconfiguration (the start when none yet).
    #[serde(serialize_with = "clock::serialize")]
    pub last_reconfiguration: SystemTime,
    /// Kernel routes of a previous run are kept until every peer sent End-of-RIB (BIRD's
    /// `0024` graceful restart recovery).
    pub graceful_restart_recovery: bool,
    /// Destinations in the RIB.
    pub rib_destinations: usize,
    /// Paths in the RIB.
    pub rib_paths: usize,
    /// Distinct (interned) attribute sets.
    pub rib_attribute_sets: usize,
    /// Kernel programming, when the FIB is on.
    pub fib: Option<FibView>,
}

/// FIB counters.
#[derive(Clone, Debug, Serialize)]
pub struct FibView {
    /// Routes of ours in the kernel.
    pub installed: usize,
    /// Route writes sent.
    pub operations: u64,
    /// Writes the kernel refused.
    pub errors: u64,
}

impl StatusView {
    /// From the speaker's status.
    pub fn new(version: &str, s: &SpeakerStatus, now: SystemTime) -> StatusView {
        StatusView {
            version: version.to_string(),
            router_id: s.router_id,
            asn: s.asn,
            server_time: now,
            last_reboot: s.started,
            last_reconfiguration: s.last_reconfigured.unwrap_or(s.started),
            graceful_restart_recovery: s.graceful_restart_recovery,
            rib_destinations: s.rib_destinations,
            rib_paths: s.rib_paths,
            rib_attribute_sets: s.rib_attribute_sets,
            fib: s.fib.as_ref().map(|f| FibView {
                installed: f.installed,
                operations: f.operations,
                errors: f.errors,
            }),
        }
    }
}

// ===== show protocols =====

/// One row of `show protocols` with its `all` details.
#[derive(Clone, Debug, Serialize)]
pub struct ProtocolView {
    /// Protocol name (`Mesh_10_0_0_2`, `static1`).
    pub name: String,
    /// `BGP`, `Static`, `Kernel`, `Device`, `Direct`.
    pub proto: &'static str,
    /// Routing table (always `master`).
    pub table: &'static str,
    /// BIRD protocol state: `up`, `start` or `down`.
    pub state: &'static str,
    /// When the protocol entered its state.
    #[serde(serialize_with = "clock::serialize")]
    pub since: SystemTime,
    /// The info column (BGP: state description padded to 14, then the last error).
    pub info: String,
    /// Description, when configured.
    pub description: Option<String>,
    /// Route preference of the protocol's routes.
    pub preference: u32,
    /// Import policy name.
    pub input_filter: String,
    /// Export policy name.
    pub output_filter: String,
    /// Route counts.
    pub routes: RouteCounts,
    /// BGP session details.
    pub bgp: Option<BgpView>,
}

/// `Routes: N imported, N exported, N preferred`.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct RouteCounts {
    /// Routes accepted from the protocol.
    pub imported: usize,
    /// Routes sent to the protocol.
    pub exported: usize,
    /// Imported routes that are the best path of their network.
    pub preferred: usize,
}

/// The BGP part of `show protocols all NAME`, with Tern's counters.
#[derive(Clone, Debug, Serialize)]
pub struct BgpView {
    /// BIRD's BGP state description: `Idle`, `Connect`, `Active`, `OpenSent`,
    /// `OpenConfirm`, `Established`, `Passive`, `Down`.
    pub state: &'static str,
    /// The session's FSM state.
    pub fsm_state: String,
    /// False after `disable`.
    pub enabled: bool,
    /// Neighbour address.
    pub neighbor_address: IpAddr,
    /// Neighbour AS.
    pub neighbor_as: u32,
    /// Our AS on this session.
    pub local_as: u32,
    /// The neighbour's BGP identifier, once known.
    pub neighbor_id: Option<Ipv4Addr>,
    /// Capabilities the neighbour announced, in BIRD's words (`refresh restart-able AS4
    /// add-path-rx ...`); empty unless Established.
    pub neighbor_caps: Vec<&'static str>,
    /// Session properties in BIRD's words (`internal multihop AS4 ...`).
    pub session: Vec<&'static str>,
    /// Local address of the session.
    pub source_address: IpAddr,
    /// Negotiated hold time (seconds), while Established.
    pub hold_time: Option<u16>,
    /// Keepalive interval (seconds), while Established.
    pub keepalive_time: Option<u16>,
    /// Time Established, seconds.
    pub uptime_seconds: Option<u64>,
    /// Last error in BIRD's form (`Received: Administrative Shutdown`, `Socket: ...`).
    pub last_error: Option<String>,
    /// Last error as the speaker reported it.
    pub last_error_detail: Option<String>,
    /// Last NOTIFICATION code and subcode sent or received.
    pub last_error_code: Option<(u8, u8)>,
    /// What was negotiated, while Established.
    pub negotiated: Option<NegotiatedView>,
    /// Counters.
    pub counters: Counters,
}

/// Negotiated session parameters.
#[derive(Clone, Debug, Serialize)]
pub struct NegotiatedView {
    /// Families both sides announced.
    pub families: Vec<String>,
    /// 4-octet AS numbers.
    pub four_octet_as: bool,
    /// Route refresh.
    pub route_refresh: bool,
    /// Enhanced route refresh.
    pub enhanced_route_refresh: bool,
    /// Extended messages.
    pub extended_message: bool,
    /// Families in which we send path identifiers.
    pub add_path_send: Vec<String>,
    /// Families in which the peer sends path identifiers.
    pub add_path_receive: Vec<String>,
    /// The peer's graceful restart time, when negotiated.
    pub graceful_restart_time: Option<u16>,
    /// Every capability the peer announced, by name.
    pub peer_capabilities: Vec<String>,
}

/// Session counters.
#[derive(Clone, Debug, Serialize)]
pub struct Counters {
    /// Times the session reached Established.
    pub established: u64,
    /// Established → down transitions.
    pub flaps: u64,
    /// Messages received.
    pub messages_received: u64,
    /// Messages sent.
    pub messages_sent: u64,
    /// UPDATEs received.
    pub updates_received: u64,
    /// UPDATEs sent.
    pub updates_sent: u64,
    /// Paths received (before import policy).
    pub prefixes_received: usize,
    /// Paths accepted (after import policy).
    pub prefixes_accepted: usize,
    /// Paths advertised (Adj-RIB-Out).
    pub prefixes_advertised: usize,
    /// Configured prefix limit.
    pub max_prefixes: Option<u32>,
}

/// Inputs for building protocol views.
pub struct ProtocolInputs<'a> {
    /// Node status.
    pub status: &'a SpeakerStatus,
    /// Every peer.
    pub peers: &'a [PeerStatus],
    /// The running configuration.
    pub config: Option<&'a DesiredConfig>,
    /// Best paths (for per-protocol route counts: `preferred`, and `imported` of the
    /// pseudo-protocols, whose routes are always best).
    pub routes: &'a [RouteEntry],
    /// The socket's family.
    pub family: FamilyView,
}

/// Every protocol of the view: the four pseudo-protocols, then BGP peers by name.
pub fn protocols(inp: &ProtocolInputs<'_>) -> Vec<ProtocolView> {
    let s = inp.status;
    let in_view = |r: &&RouteEntry| inp.family.has(r.prefix.addr());
    let count = |pred: &dyn Fn(&RouteEntry) -> bool| -> RouteCounts {
        let mut c = RouteCounts::default();
        for r in inp.routes.iter().filter(in_view).filter(|r| pred(r)) {
            c.imported += 1;
            c.preferred += usize::from(r.best);
        }
        c
    };
    let reconfigured = s.last_reconfigured.unwrap_or(s.started);
    let fib_state = if s.fib.is_some() { "up" } else { "down" };
    let pseudo =
        |name: &str, proto, state, preference, input: &str, output: &str, routes| ProtocolView {
            name: name.to_string(),
            proto,
            table: "master",
            state,
            since: if proto == "Static" {
                reconfigured
            } else {
                s.started
            },
            info: String::new(),
            description: None,
            preference,
            input_filter: input.to_string(),
            output_filter: output.to_string(),
            routes,
            bgp: None,
        };
    let mut kernel_counts = count(&|r| r.from == RouteFrom::Kernel);
    kernel_counts.exported = s.fib.as_ref().map_or(0, |f| f.installed);
    let mut out = vec![
        pseudo(
            names::STATIC,
            "Static",
            "up",
            rib::attrs::preference::STATIC,
            "ACCEPT",
            "REJECT",
            count(&|r| r.from == RouteFrom::Static),
        ),
        pseudo(
            names::KERNEL,
            "Kernel",
            fib_state,
            rib::attrs::preference::KERNEL,
            "ACCEPT",
            "ACCEPT",
            kernel_counts,
        ),
        pseudo(
            names::DEVICE,
            "Device",
            fib_state,
            rib::attrs::preference::DIRECT,
            "ACCEPT",
            "REJECT",
            RouteCounts::default(),
        ),
        pseudo(
            names::DIRECT,
            "Direct",
            fib_state,
            rib::attrs::preference::DIRECT,
            "ACCEPT",
            "REJECT",
            count(&|r| r.from == RouteFrom::Direct),
        ),
    ];
    for p in inp.peers.iter().filter(|p| inp.family.has(p.address)) {
        let cfg = inp
            .config
            .and_then(|c| c.peers.iter().find(|c| c.name == p.name));
        let mut routes = count(&|r| matches!(&r.from, RouteFrom::Peer(n) if *n == p.name));
        routes.imported = p.prefixes_accepted;
        routes.exported = p.prefixes_advertised;
        out.push(bgp_protocol(p, cfg, routes));
    }
    out
}

fn bgp_protocol(
    p: &PeerStatus,
    cfg: Option<&tern_config::Peer>,
    routes: RouteCounts,
) -> ProtocolView {
    let passive = cfg.is_some_and(|c| c.passive);
    let multihop = cfg.is_none_or(|c| c.multihop);
    let limited = p.state == State::Idle
        && p.last_error
            .as_deref()
            .is_some_and(|e| e.contains("prefix limit"));
    let error = bird_error(p);
    let (proto_state, dsc) = if !p.enabled || limited {
        ("down", "Down")
    } else if p.state == State::Established {
        ("up", "Established")
    } else {
        let dsc = match p.state {
            State::Idle | State::Active if passive => "Passive",
            State::Idle => "Idle",
            State::Connect => "Connect",
            State::Active => "Active",
            State::OpenSent => "OpenSent",
            State::OpenConfirm => "OpenConfirm",
            State::Established => "Established",
        };
        ("start", dsc)
    };
    // BIRD: a down protocol shows only its error; a running one the padded state
    // description and the error (`%-14s%s%s`). A manual `disable` shows no error.
    let info = match proto_state {
        "down" if !p.enabled => String::new(),
        "down" => error.clone().unwrap_or_default(),
        "up" => format!("{dsc:<14}"),
        _ => format!("{dsc:<14}{}", error.as_deref().unwrap_or("")),
    };
    let negotiated = p
        .negotiated
        .as_deref()
        .filter(|_| p.state == State::Established);
    let mut session = vec![if p.internal { "internal" } else { "external" }];
    if multihop {
        session.push("multihop");
    }
    if p.route_reflector_client {
        session.push("route-reflector");
    }
    if let Some(n) = negotiated {
        if n.four_octet_as {
            session.push("AS4");
        }
        if !n.add_path_receive.is_empty() {
            session.push("add-path-rx");
        }
        if !n.add_path_send.is_empty() {
            session.push("add-path-tx");
        }
        if n.extended_message {
            session.push("ext-messages");
        }
    }
    ProtocolView {
        name: p.name.clone(),
        proto: "BGP",
        table: "master",
        state: proto_state,
        since: p.since_wall,
        info,
        // Calico's templates describe every session so.
        description: Some("Connection to BGP peer".to_string()),
        preference: rib::attrs::preference::BGP,
        input_filter: cfg.map_or_else(|| "ACCEPT".into(), |c| c.import.clone()),
        output_filter: cfg.map_or_else(|| "ACCEPT".into(), |c| c.export.clone()),
        routes,
        bgp: Some(BgpView {
            state: if proto_state == "down" { "Down" } else { dsc },
            fsm_state: p.state.to_string(),
            enabled: p.enabled,
            neighbor_address: p.address,
            neighbor_as: p.remote_as,
            local_as: p.local_as,
            neighbor_id: p.peer_router_id,
            neighbor_caps: negotiated.map(neighbor_caps).unwrap_or_default(),
            session,
            source_address: p.local_address,
            hold_time: negotiated.map(|n| n.hold_time),
            keepalive_time: negotiated.map(|n| n.keepalive_time),
            uptime_seconds: p.uptime.map(|u| u.as_secs()),
            last_error: error,
            last_error_detail: p.last_error.clone(),
            last_error_code: p.last_error_code,
            negotiated: negotiated.map(negotiated_view),
            counters: Counters {
                established: p.established_count,
                flaps: p.flaps,
                messages_received: p.messages_received,
                messages_sent: p.messages_sent,
                updates_received: p.updates_received,
                updates_sent: p.updates_sent,
                prefixes_received: p.prefixes_received,
                prefixes_accepted: p.prefixes_accepted,
                prefixes_advertised: p.prefixes_advertised,
                max_prefixes: p.max_prefixes,
            },
        }),
    }
}

/// The last error in BIRD's classes (`Socket: `, `Received: `, `BGP Error: `, `Automatic
/// shutdown: `, `Error: `); `None` for none or an administrative stop (BIRD hides those).
fn bird_error(p: &PeerStatus) -> Option<String> {
    let text = p.last_error.as_deref()?;
    let notification = || {
        let (code, sub) = p.last_error_code?;
        let code = ErrorCode::from(code);
        let sub_name = code.subcode_name(sub).filter(|n| *n != "Unspecific");
        Some(match (code, sub_name) {
            (ErrorCode::Cease, Some(s)) => s.to_string(),
            (_, Some(s)) => format!("{code}: {s}"),
            (_, None) => code.to_string(),
        })
    };
    let described = if text.starts_with("administratively stopped") {
        return None;
    } else if text.starts_with("received") {
        format!(
            "Received: {}",
            notification().unwrap_or_else(|| text.to_string())
        )
    } else if text.starts_with("sent") {
        format!(
            "BGP Error: {}",
            notification().unwrap_or_else(|| text.to_string())
        )
    } else if text.contains("prefix limit") {
        "Automatic shutdown: Route limit exceeded".to_string()
    } else if text.starts_with("connection") {
        let mut t = text.to_string();
        if let Some(first) = t.get_mut(..1) {
            first.make_ascii_uppercase();
        }
        format!("Socket: {t}")
    } else {
        format!("Error: {text}")
    };
    Some(described)
}

fn neighbor_caps(n: &Negotiated) -> Vec<&'static str> {
    let caps = &n.peer_capabilities;
    let mut out = Vec::new();
    let has = |f: &dyn Fn(&Capability) -> bool| caps.iter().any(f);
    if has(&|c| {
        matches!(c, Capability::RouteRefresh)
            || matches!(c, Capability::Unknown { code, .. } if u8::from(*code) == 128)
    }) {
        out.push("refresh");
    }
    if has(&|c| matches!(c, Capability::EnhancedRouteRefresh)) {
        out.push("enhanced-refresh");
    }
    for c in caps {
        if let Capability::GracefulRestart(gr) = c {
            out.push(if gr.families.is_empty() {
                "restart-aware"
            } else {
                "restart-able"
            });
            break;
        }
    }
    for c in caps {
        if let Capability::LongLivedGracefulRestart(f) = c {
            out.push(if f.is_empty() {
                "llgr-aware"
            } else {
                "llgr-able"
            });
            break;
        }
    }
    if has(&|c| matches!(c, Capability::FourOctetAs(_))) {
        out.push("AS4");
    }
    let add_path = |want: AddPathMode| {
        has(&|c| match c {
            Capability::AddPath(fams) => fams
                .iter()
                .any(|f| f.mode == want || f.mode == AddPathMode::SendReceive),
            _ => false,
        })
    };
    if add_path(AddPathMode::Receive) {
        out.push("add-path-rx");
    }
    if add_path(AddPathMode::Send) {
        out.push("add-path-tx");
    }
    if has(&|c| matches!(c, Capability::ExtendedMessage)) {
        out.push("ext-messages");
    }
    out
}

fn negotiated_view(n: &Negotiated) -> NegotiatedView {
    let names = |f: &[bgp_wire::Family]| f.iter().map(ToString::to_string).collect();
    NegotiatedView {
        families: names(&n.families),
        four_octet_as: n.four_octet_as,
        route_refresh: n.route_refresh,
        enhanced_route_refresh: n.enhanced_route_refresh,
        extended_message: n.extended_message,
        add_path_send: names(&n.add_path_send),
        add_path_receive: names(&n.add_path_receive),
        graceful_restart_time: n.graceful_restart.as_ref().map(|g| g.restart_time),
        peer_capabilities: n
            .peer_capabilities
            .iter()
            .map(|c| c.code().to_string())
            .collect(),
    }
}

// ===== show route =====

/// How a route is forwarded, as BIRD prints it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Via {
    /// `via GW on IFACE`
    Router {
        /// Next hop.
        gateway: IpAddr,
        /// Interface it is reached through.
        interface: String,
    },
    /// `dev IFACE`
    Device {
        /// Interface.
        interface: String,
    },
    /// `blackhole`
    Blackhole,
    /// `unreachable`: a BGP next hop that no connected network reaches (BIRD's
    /// unresolvable recursive next hop).
    Unreachable {
        /// The unresolved next hop.
        gateway: Option<IpAddr>,
    },
}

/// One path of `show route`.
#[derive(Clone, Debug, Serialize)]
pub struct RouteView {
    /// Network.
    pub prefix: String,
    /// Protocol the path came from (`Mesh_10_0_0_2`, `static1`, `kernel1`, `direct1`).
    pub protocol: String,
    /// Source kind: `bgp`, `static`, `kernel`, `direct`.
    pub source: &'static str,
    /// Forwarding.
    pub via: Via,
    /// The best path of its network (`*`).
    pub primary: bool,
    /// In the ECMP set.
    pub multipath: bool,
    /// Kept stale during a peer's graceful restart.
    pub stale: bool,
    /// When the path's protocol last changed it (for BGP paths: when the session came up).
    #[serde(serialize_with = "clock::serialize")]
    pub since: SystemTime,
    /// Route preference.
    pub preference: u32,
    /// IGP metric to the next hop (BGP paths): 0 via a connected network, `None` if
    /// unresolved.
    pub igp_metric: Option<u32>,
    /// The peer's address when it differs from the next hop (BIRD's `from`).
    pub from: Option<IpAddr>,
    /// Kernel metric.
    pub krt_metric: Option<u32>,
    /// Tunnel device for installation.
    pub krt_tunnel: Option<String>,
    /// BGP attributes.
    pub bgp: Option<BgpAttrsView>,
}

/// BGP path attributes.
#[derive(Clone, Debug, Serialize)]
pub struct BgpAttrsView {
    /// `igp`, `egp`, `incomplete`.
    pub origin: Option<String>,
    /// AS_PATH as text (`64512 {64513 64514}`).
    pub as_path: String,
    /// The AS that originated the route (last of the path), when any.
    pub origin_as: Option<u32>,
    /// Next hop.
    pub next_hop: Option<IpAddr>,
    /// MULTI_EXIT_DISC.
    pub med: Option<u32>,
    /// LOCAL_PREF.
    pub local_pref: Option<u32>,
    /// ATOMIC_AGGREGATE.
    pub atomic_aggregate: bool,
    /// AGGREGATOR (`AS`, address).
    pub aggregator: Option<(u32, Ipv4Addr)>,
    /// COMMUNITIES as `asn:value`.
    pub communities: Vec<String>,
    /// LARGE_COMMUNITY as `a:b:c`.
    pub large_communities: Vec<String>,
    /// EXTENDED_COMMUNITIES.
    pub extended_communities: Vec<String>,
    /// ORIGINATOR_ID.
    pub originator_id: Option<Ipv4Addr>,
    /// CLUSTER_LIST.
    pub cluster_list: Vec<Ipv4Addr>,
    /// Only to Customer.
    pub otc: Option<u32>,
}

/// Inputs for building route views.
pub struct RouteInputs<'a> {
    /// Node status (times of the pseudo-protocols).
    pub status: &'a SpeakerStatus,
    /// Every peer (addresses and session times).
    pub peers: &'a [PeerStatus],
    /// Next-hop interface resolution.
    pub resolver: &'a Resolver,
}

/// The view of one path.
pub fn route(inp: &RouteInputs<'_>, r: &RouteEntry) -> RouteView {
    let a = &r.attrs;
    let s = inp.status;
    let ifname = a.ifname.as_deref().map(str::to_string);
    let mut igp_metric = None;
    let mut from = None;
    let (protocol, source, since) = match &r.from {
        RouteFrom::Peer(name) => {
            let peer = inp.peers.iter().find(|p| p.name == *name);
            from = peer
                .map(|p| p.address)
                .filter(|addr| Some(*addr) != r.next_hop);
            let since = peer.map_or(s.started, |p| p.since_wall);
            (name.clone(), "bgp", since)
        }
        RouteFrom::Static => (
            names::STATIC.to_string(),
            "static",
            s.last_reconfigured.unwrap_or(s.started),
        ),
        RouteFrom::Kernel => (names::KERNEL.to_string(), "kernel", s.started),
        RouteFrom::Direct => (names::DIRECT.to_string(), "direct", s.started),
    };
    let via = match (&r.from, r.next_hop, ifname) {
        (RouteFrom::Peer(_), Some(gw), _) => match inp.resolver.interface(gw) {
            Some(i) => {
                igp_metric = Some(0);
                Via::Router {
                    gateway: gw,
                    interface: i.to_string(),
                }
            }
            None => Via::Unreachable { gateway: Some(gw) },
        },
        (RouteFrom::Peer(_), None, _) => Via::Unreachable { gateway: None },
        (_, Some(gw), Some(i)) => Via::Router {
            gateway: gw,
            interface: i,
        },
        (_, Some(gw), None) => match inp.resolver.interface(gw) {
            Some(i) => Via::Router {
                gateway: gw,
                interface: i.to_string(),
            },
            None => Via::Unreachable { gateway: Some(gw) },
        },
        (_, None, Some(i)) => Via::Device { interface: i },
        (_, None, None) => Via::Blackhole,
    };
    let bgp = matches!(r.from, RouteFrom::Peer(_)).then(|| {
        let b = &a.bgp;
        BgpAttrsView {
            origin: b.origin.map(|o| o.to_string()),
            as_path: b
                .as_path
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
            origin_as: b.as_path.as_ref().and_then(last_as),
            next_hop: a.next_hop(),
            med: b.med,
            local_pref: b.local_pref,
            atomic_aggregate: b.atomic_aggregate,
            aggregator: b.aggregator.as_ref().map(|g| (g.asn, g.address)),
            communities: b.communities.iter().map(ToString::to_string).collect(),
            large_communities: b
                .large_communities
                .iter()
                .map(ToString::to_string)
                .collect(),
            extended_communities: b
                .extended_communities
                .iter()
                .map(ToString::to_string)
                .collect(),
            originator_id: b.originator_id,
            cluster_list: b.cluster_list.clone(),
            otc: b.otc,
        }
    });
    RouteView {
        prefix: r.prefix.to_string(),
        protocol,
        source,
        via,
        primary: r.best,
        multipath: r.multipath,
        stale: r.stale,
        since,
        preference: a.preference,
        igp_metric,
        from,
        krt_metric: a.krt_metric,
        krt_tunnel: a.krt_tunnel.as_deref().map(str::to_string),
        bgp,
    }
}

/// The last AS of the path's last AS_SEQUENCE (the originating AS, BIRD's `[AS64513i]`).
fn last_as(path: &bgp_wire::AsPath) -> Option<u32> {
    let seg = path.segments.last()?;
    (seg.kind == bgp_wire::iana::SegmentType::AsSequence)
        .then(|| seg.asns.last().copied())
        .flatten()
}

/// The longest prefix in `routes` containing `target` (BIRD's `show route for`).
pub fn longest_match(routes: &[RouteEntry], target: &Prefix) -> Option<Prefix> {
    routes
        .iter()
        .map(|r| r.prefix)
        .filter(|p| p.contains(target))
        .max_by_key(Prefix::len)
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    fn status() -> SpeakerStatus {
        SpeakerStatus {
            router_id: "10.0.0.1".parse().unwrap(),
            asn: 64512,
            started: UNIX_EPOCH,
            last_reconfigured: None,
            graceful_restart_recovery: false,
            rib_destinations: 0,
            rib_paths: 0,
            rib_attribute_sets: 0,
            fib: None,
        }
    }

    fn peer(name: &str, addr: &str, state: State) -> PeerStatus {
        PeerStatus {
            name: name.into(),
            address: addr.parse().unwrap(),
            remote_as: 64512,
            state,
            since: Duration::ZERO,
            uptime: None,
            since_wall: UNIX_EPOCH,
            enabled: true,
            local_as: 64512,
            local_address: "10.0.0.1".parse().unwrap(),
            internal: true,
            route_reflector_client: false,
            established_count: 0,
            flaps: 0,
            updates_received: 0,
            messages_received: 0,
            messages_sent: 0,
            updates_sent: 0,
            prefixes_received: 0,
            prefixes_accepted: 0,
            prefixes_advertised: 0,
            max_prefixes: None,
            peer_router_id: None,
            negotiated: None,
            last_error: None,
            last_error_code: None,
        }
    }

    fn config(passive: &[&str]) -> DesiredConfig {
        let peers: Vec<String> = passive
            .iter()
            .map(|n| {
                format!(
                    r#"{{ "name": "{n}", "kind": "mesh", "address": "10.0.0.9", "port": 179,
                         "remote_as": 64512, "passive": true, "families": ["ipv4"],
                         "import": "all", "export": "all" }}"#
                )
            })
            .collect();
        serde_json::from_str(&format!(
            r#"{{ "router_id": "10.0.0.1", "asn": 64512, "listen": {{ "port": 179 }},
                 "peers": [{}], "policies": {{}}, "blackholes": [],
                 "kernel": {{ "export": "all", "learn": false, "persist": true, "scan_time": 10,
                     "graceful_restart": false, "merge_paths": true, "route_protocol": 12,
                     "normal_route_priority": {{ "ipv4": 1024, "ipv6": 1024 }} }} }}"#,
            peers.join(",")
        ))
        .unwrap()
    }

    fn rows(
        peers: &[PeerStatus],
        cfg: &DesiredConfig,
        family: FamilyView,
    ) -> Vec<(String, &'static str, String)> {
        protocols(&ProtocolInputs {
            status: &status(),
            peers,
            config: Some(cfg),
            routes: &[],
            family,
        })
        .into_iter()
        .map(|p| (p.name, p.state, p.info))
        .collect()
    }

    #[test]
    fn bird_states_and_error_classes() {
        let mut refused = peer("Global_10_0_0_3", "10.0.0.3", State::Active);
        refused.last_error = Some("connection attempt failed".into());
        let mut reset = peer("Mesh_10_0_0_4", "10.0.0.4", State::Connect);
        reset.last_error = Some("received Cease subcode 2".into());
        reset.last_error_code = Some((6, 2));
        let mut hold = peer("Mesh_10_0_0_5", "10.0.0.5", State::Idle);
        hold.last_error = Some("sent Hold Timer Expired subcode 0".into());
        hold.last_error_code = Some((4, 0));
        let mut disabled = peer("Mesh_10_0_0_6", "10.0.0.6", State::Idle);
        disabled.enabled = false;
        disabled.last_error = Some("administratively stopped, sent Cease subcode 2".into());
        let mut limited = peer("Mesh_10_0_0_7", "10.0.0.7", State::Idle);
        limited.last_error = Some("prefix limit 10 exceeded".into());
        let passive = peer("Mesh_10_0_0_8", "10.0.0.8", State::Active);
        let up = peer("Mesh_10_0_0_2", "10.0.0.2", State::Established);
        let v6 = peer("Mesh_fd00__2", "fd00::2", State::Established);
        let peers = [refused, reset, hold, disabled, limited, passive, up, v6];
        let cfg = config(&["Mesh_10_0_0_8"]);
        let got = rows(&peers, &cfg, FamilyView::V4);
        let want = [
            ("static1", "up", ""),
            ("kernel1", "down", ""),
            ("device1", "down", ""),
            ("direct1", "down", ""),
            (
                "Global_10_0_0_3",
                "start",
                "Active        Socket: Connection attempt failed",
            ),
            (
                "Mesh_10_0_0_4",
                "start",
                "Connect       Received: Administrative Shutdown",
            ),
            (
                "Mesh_10_0_0_5",
                "start",
                "Idle          BGP Error: Hold Timer Expired",
            ),
            ("Mesh_10_0_0_6", "down", ""),
            (
                "Mesh_10_0_0_7",
                "down",
                "Automatic shutdown: Route limit exceeded",
            ),
            ("Mesh_10_0_0_8", "start", "Passive       "),
            ("Mesh_10_0_0_2", "up", "Established   "),
        ];
        let got: Vec<_> = got
            .iter()
            .map(|(n, s, i)| (n.as_str(), *s, i.as_str()))
            .collect();
        assert_eq!(got, want);
        let v6rows = rows(&peers, &cfg, FamilyView::V6);
        assert_eq!(v6rows.len(), 5);
        assert_eq!(v6rows[4].0, "Mesh_fd00__2");
    }
}
