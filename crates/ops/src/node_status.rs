//! The CalicoNodeStatus reporter: what calico-node's status reporter writes (contract §4.7),
//! taken from the speaker instead of BIRD's control socket.
//!
//! [`run`] follows the CalicoNodeStatus resources that name this node (from the daemon's
//! datastore snapshots, through a `watch` channel), and for each one reports at once when it
//! appears or its spec changes, then every `updatePeriodSeconds` (0 = only then). A report
//! that equals the last one written (apart from `lastUpdated`) is not written again, as
//! calico-node does. Only the requested `classes` are filled:
//!
//! * **Agent** — `birdV4` and `birdV6` (one Tern serves both families): `Ready` while the
//!   speaker answers, version `v<version>+tern`, router id, start and last reconfiguration
//!   time (`%F %T`, UTC).
//! * **BGP** — peers named as confd names them (`Mesh_`, `Node_`, `Global_` → `NodeMesh`,
//!   `NodePeer`, `GlobalPeer`) by the family of their address, with the session state and
//!   `since` as BIRD prints it; other sessions (`Local_Workload_…`) and disabled ones are left
//!   out, as calico-node's parser drops them from `show protocols`. Established / not
//!   established counts per family.
//! * **Routes** — every path of every destination by family: the best one `FIB` (BIRD's
//!   primary `*`), others `RIB`; gateway = next hop or `N/A`; interface = the tunnel device,
//!   the kernel/connected interface, or `blackhole`; learned from `Kernel`, `Static`,
//!   `Direct`, `NodeMesh` (a `Mesh_` peer) or `BGPPeer` (any other peer) with its address.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bgp_wire::fsm::State;
use controller::node_status::{
    AgentStatus, BgpStatus, Classes, DaemonState, DaemonStatus, LearnedFrom, NodeStatusReport,
    PeerStatus as StatusPeer, PeerType, Route, RouteSourceType, RouteStatus, RouteType,
    SessionState, StatusError, StatusStore,
};
use controller::resources::CalicoNodeStatus;
use tern_speaker::{PeerStatus, RouteEntry, RouteFrom, Speaker, SpeakerStatus};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::clock;

/// The version reported as BIRD's (what follows `BIRD ` in `show status`).
pub const VERSION: &str = concat!("v", env!("CARGO_PKG_VERSION"), "+tern");

/// How soon a failed write is tried again when the resource asks for no periodic update.
const RETRY: Duration = Duration::from_secs(10);

/// What the speaker said, once per reporting round.
#[derive(Clone, Debug)]
pub struct Observed {
    /// Node status.
    pub status: SpeakerStatus,
    /// Every peer.
    pub peers: Vec<PeerStatus>,
    /// Every path (empty unless routes were asked for).
    pub routes: Vec<RouteEntry>,
}

impl Observed {
    /// Ask the speaker (routes only when `routes`).
    pub async fn collect(speaker: &Speaker, routes: bool) -> Result<Observed, tern_speaker::Error> {
        Ok(Observed {
            status: speaker.status().await?,
            peers: speaker.peers().await?,
            routes: if routes {
                speaker.all_routes().await?
            } else {
                Vec::new()
            },
        })
    }
}

fn session_state(s: State) -> SessionState {
    match s {
        State::Idle => SessionState::Idle,
        State::Connect => SessionState::Connect,
        State::Active => SessionState::Active,
        State::OpenSent => SessionState::OpenSent,
        State::OpenConfirm => SessionState::OpenConfirm,
        State::Established => SessionState::Established,
    }
}

/// The status of the requested `classes` at `now` (`lastUpdated` is left empty: the writer
/// sets it).
pub fn build_report(obs: &Observed, classes: Classes, now: SystemTime) -> NodeStatusReport {
    let mut report = NodeStatusReport::default();
    if classes.agent {
        let s = &obs.status;
        let daemon = DaemonStatus {
            state: DaemonState::Ready,
            version: VERSION.to_string(),
            router_id: s.router_id.to_string(),
            last_boot_time: clock::datetime(s.started),
            last_reconfiguration_time: clock::datetime(s.last_reconfigured.unwrap_or(s.started)),
        };
        report.agent = Some(AgentStatus {
            bird_v4: daemon.clone(),
            bird_v6: daemon,
        });
    }
    if classes.bgp {
        let mut bgp = BgpStatus::default();
        for p in obs.peers.iter().filter(|p| p.enabled) {
            let Some(peer_type) = PeerType::from_session_name(&p.name) else {
                continue;
            };
            let up = p.state == State::Established;
            let peer = StatusPeer {
                peer_ip: p.address.to_string(),
                peer_type,
                state: session_state(p.state),
                since: clock::bird_since(p.since_wall, now),
            };
            let (peers, established, not_established) = if p.address.is_ipv4() {
                (
                    &mut bgp.peers_v4,
                    &mut bgp.number_established_v4,
                    &mut bgp.number_not_established_v4,
                )
            } else {
                (
                    &mut bgp.peers_v6,
                    &mut bgp.number_established_v6,
                    &mut bgp.number_not_established_v6,
                )
            };
            peers.push(peer);
            *if up { established } else { not_established } += 1;
        }
        report.bgp = Some(bgp);
    }
    if classes.routes {
        let addresses: BTreeMap<&str, IpAddr> = obs
            .peers
            .iter()
            .map(|p| (p.name.as_str(), p.address))
            .collect();
        let mut routes = RouteStatus::default();
        for r in &obs.routes {
            let route = status_route(r, &addresses);
            if route.destination.contains(':') {
                routes.routes_v6.push(route);
            } else {
                routes.routes_v4.push(route);
            }
        }
        report.routes = Some(routes);
    }
    report
}

fn status_route(r: &RouteEntry, addresses: &BTreeMap<&str, IpAddr>) -> Route {
    let learned_from = match &r.from {
        RouteFrom::Kernel => LearnedFrom {
            source_type: RouteSourceType::Kernel,
            peer_ip: String::new(),
        },
        RouteFrom::Static => LearnedFrom {
            source_type: RouteSourceType::Static,
            peer_ip: String::new(),
        },
        RouteFrom::Direct => LearnedFrom {
            source_type: RouteSourceType::Direct,
            peer_ip: String::new(),
        },
        RouteFrom::Peer(name) => LearnedFrom {
            source_type: if PeerType::from_session_name(name) == Some(PeerType::NodeMesh) {
                RouteSourceType::NodeMesh
            } else {
                RouteSourceType::BGPPeer
            },
            peer_ip: addresses
                .get(name.as_str())
                .map(ToString::to_string)
                .unwrap_or_default(),
        },
    };
    let blackhole = r.next_hop.is_none() && matches!(r.from, RouteFrom::Static);
    let interface = if blackhole {
        "blackhole".to_string()
    } else {
        r.attrs
            .krt_tunnel
            .as_deref()
            .filter(|t| !t.is_empty())
            .or(r.attrs.ifname.as_deref())
            .unwrap_or_default()
            .to_string()
    };
    Route {
        route_type: if r.best {
            RouteType::FIB
        } else {
            RouteType::RIB
        },
        destination: r.prefix.to_string(),
        gateway: r
            .next_hop
            .map_or_else(|| "N/A".to_string(), |a| a.to_string()),
        interface,
        learned_from,
    }
}

/// One resource being reported.
struct Tracked {
    resource: CalicoNodeStatus,
    due: Option<Instant>,
    /// The last report written (with `lastUpdated` cleared).
    written: Option<NodeStatusReport>,
    /// The last write failed (warned once, not every period).
    failing: bool,
}

/// Reports the status of every CalicoNodeStatus naming `node`, for as long as `requests`
/// (the datastore's CalicoNodeStatus resources by name, as in `Model::node_statuses`) has a
/// sender and the speaker runs.
pub async fn run(
    store: StatusStore,
    node: String,
    speaker: Arc<Speaker>,
    mut requests: watch::Receiver<BTreeMap<String, CalicoNodeStatus>>,
) {
    let mut tracked: BTreeMap<String, Tracked> = BTreeMap::new();
    let current = requests.borrow_and_update().clone();
    reconcile(&store, &node, &mut tracked, &current).await;
    loop {
        let next = tracked.values().filter_map(|t| t.due).min();
        tokio::select! {
            changed = requests.changed() => {
                if changed.is_err() {
                    return;
                }
                let current = requests.borrow_and_update().clone();
                reconcile(&store, &node, &mut tracked, &current).await;
            }
            _ = tokio::time::sleep_until(next.unwrap_or_else(Instant::now)), if next.is_some() => {
                if report_due(&store, &speaker, &mut tracked).await.is_err() {
                    tracing::info!("speaker stopped; CalicoNodeStatus reporter ends");
                    return;
                }
            }
        }
    }
}

/// Start reporting new or changed resources at once; forget deleted ones.
async fn reconcile(
    store: &StatusStore,
    node: &str,
    tracked: &mut BTreeMap<String, Tracked>,
    current: &BTreeMap<String, CalicoNodeStatus>,
) {
    let wanted: BTreeMap<&String, &CalicoNodeStatus> = current
        .iter()
        .filter(|(_, r)| r.spec.node == node && r.spec.update_period_seconds.is_some())
        .collect();
    let gone: Vec<String> = tracked
        .keys()
        .filter(|name| !wanted.contains_key(name))
        .cloned()
        .collect();
    for name in gone {
        tracked.remove(&name);
        tracing::info!(resource = %name, "CalicoNodeStatus gone; no longer reported");
        if let Err(e) = store.forget(&name).await {
            tracing::warn!(resource = %name, error = %e, "cannot remove the status");
        }
    }
    for (name, resource) in wanted {
        match tracked.get_mut(name) {
            // Our own write coming back, or a metadata change: nothing to report.
            Some(t) if t.resource.spec == resource.spec => {}
            Some(t) => {
                t.resource = resource.clone();
                t.due = Some(Instant::now());
            }
            None => {
                tracing::info!(resource = %name, period = ?resource.spec.update_period_seconds, "reporting CalicoNodeStatus");
                tracked.insert(
                    name.clone(),
                    Tracked {
                        resource: resource.clone(),
                        due: Some(Instant::now()),
                        written: None,
                        failing: false,
                    },
                );
            }
        }
    }
}

/// Report every resource that is due. Errs only when the speaker has stopped.
async fn report_due(
    store: &StatusStore,
    speaker: &Speaker,
    tracked: &mut BTreeMap<String, Tracked>,
) -> Result<(), tern_speaker::Error> {
    let now = Instant::now();
    let due: Vec<String> = tracked
        .iter()
        .filter(|(_, t)| t.due.is_some_and(|d| d <= now))
        .map(|(n, _)| n.clone())
        .collect();
    if due.is_empty() {
        return Ok(());
    }
    let want_routes = due.iter().any(|n| {
        tracked
            .get(n)
            .is_some_and(|t| Classes::from_spec(&t.resource.spec.classes).routes)
    });
    let obs = Observed::collect(speaker, want_routes).await?;
    let wall = SystemTime::now();
    for name in due {
        let Some(t) = tracked.get_mut(&name) else {
            continue;
        };
        let period = u64::from(t.resource.spec.update_period_seconds.unwrap_or(0));
        let classes = Classes::from_spec(&t.resource.spec.classes);
        let report = build_report(&obs, classes, wall);
        t.due = (period > 0).then(|| now + Duration::from_secs(period));
        if t.written.as_ref() == Some(&report) {
            continue;
        }
        let stamped = NodeStatusReport {
            last_updated: clock::rfc3339(wall),
            ..report.clone()
        };
        match store.write(&t.resource, &stamped).await {
            Ok(_) => {
                t.written = Some(report);
                if std::mem::take(&mut t.failing) {
                    tracing::info!(resource = %name, "CalicoNodeStatus written again");
                }
                tracing::debug!(resource = %name, "CalicoNodeStatus written");
            }
            Err(StatusError::NotFound(_)) => {
                tracing::info!(resource = %name, "CalicoNodeStatus deleted; no longer reported");
                tracked.remove(&name);
            }
            Err(e) => {
                if std::mem::replace(&mut t.failing, true) {
                    tracing::debug!(resource = %name, error = %e, "cannot write CalicoNodeStatus");
                } else {
                    tracing::warn!(resource = %name, error = %e, "cannot write CalicoNodeStatus; will retry");
                }
                let retry = if period > 0 {
                    Duration::from_secs(period)
                } else {
                    RETRY
                };
                t.due = Some(now + retry);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;
    use std::time::UNIX_EPOCH;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn peer(name: &str, address: &str, state: State, enabled: bool) -> PeerStatus {
        PeerStatus {
            name: name.into(),
            address: address.parse().unwrap(),
            remote_as: 64512,
            state,
            since: Duration::from_secs(60),
            uptime: None,
            since_wall: at(1_795_453_200),
            enabled,
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

    fn status() -> SpeakerStatus {
        SpeakerStatus {
            router_id: Ipv4Addr::new(10, 0, 0, 1),
            asn: 64512,
            started: at(1_795_453_000),
            last_reconfigured: Some(at(1_795_453_100)),
            graceful_restart_recovery: false,
            rib_destinations: 0,
            rib_paths: 0,
            rib_attribute_sets: 0,
            fib: None,
        }
    }

    #[test]
    fn agent_and_peers_as_calico_reports_them() {
        let obs = Observed {
            status: status(),
            peers: vec![
                peer("Global_192_0_2_1", "192.0.2.1", State::Active, true),
                peer(
                    "Local_Workload_10_65_0_5",
                    "10.65.0.5",
                    State::Established,
                    true,
                ),
                peer("Mesh_10_0_0_2", "10.0.0.2", State::Established, true),
                peer("Mesh_10_0_0_3", "10.0.0.3", State::Established, false),
                peer("Node_fd00__2", "fd00::2", State::OpenSent, true),
            ],
            routes: vec![],
        };
        let all = Classes {
            agent: true,
            bgp: true,
            routes: false,
        };
        let r = build_report(&obs, all, at(1_795_453_200 + 30));
        let agent = r.agent.unwrap();
        assert_eq!(agent.bird_v4, agent.bird_v6);
        assert_eq!(agent.bird_v4.state, DaemonState::Ready);
        assert_eq!(agent.bird_v4.version, VERSION);
        assert!(agent.bird_v4.version.starts_with('v'));
        assert_eq!(agent.bird_v4.router_id, "10.0.0.1");
        assert_eq!(agent.bird_v4.last_boot_time, "2026-11-23 16:56:40");
        assert_eq!(
            agent.bird_v4.last_reconfiguration_time,
            "2026-11-23 16:58:20"
        );
        let bgp = r.bgp.unwrap();
        let v4: Vec<(&str, PeerType, SessionState, &str)> = bgp
            .peers_v4
            .iter()
            .map(|p| (p.peer_ip.as_str(), p.peer_type, p.state, p.since.as_str()))
            .collect();
        assert_eq!(
            v4,
            [
                (
                    "192.0.2.1",
                    PeerType::GlobalPeer,
                    SessionState::Active,
                    "17:00:00"
                ),
                (
                    "10.0.0.2",
                    PeerType::NodeMesh,
                    SessionState::Established,
                    "17:00:00"
                ),
            ]
        );
        assert_eq!(bgp.number_established_v4, 1);
        assert_eq!(bgp.number_not_established_v4, 1);
        assert_eq!(bgp.peers_v6.len(), 1);
        assert_eq!(bgp.peers_v6[0].peer_type, PeerType::NodePeer);
        assert_eq!(bgp.peers_v6[0].state, SessionState::OpenSent);
        assert_eq!(bgp.number_not_established_v6, 1);
        assert!(r.routes.is_none());
        // A day later the date is shown instead of the time.
        let later = build_report(&obs, all, at(1_795_453_200 + 86_400));
        assert_eq!(later.bgp.unwrap().peers_v4[0].since, "2026-11-23");
    }

    fn route(prefix: &str, from: RouteFrom, nh: Option<&str>, best: bool) -> RouteEntry {
        let mut attrs = rib::RouteAttrs::bgp(bgp_wire::PathAttributes::default());
        if prefix == "10.65.2.0/26" {
            attrs.krt_tunnel = Some("tunl0".into());
        }
        if matches!(from, RouteFrom::Kernel | RouteFrom::Direct) {
            attrs.ifname = Some("eth0".into());
        }
        RouteEntry {
            prefix: prefix.parse().unwrap(),
            from,
            next_hop: nh.map(|a| a.parse().unwrap()),
            best,
            multipath: false,
            stale: false,
            attrs: Arc::new(attrs),
        }
    }

    #[test]
    fn routes_by_source_as_calico_reports_them() {
        let obs = Observed {
            status: status(),
            peers: vec![
                peer("Mesh_10_0_0_2", "10.0.0.2", State::Established, true),
                peer("Global_192_0_2_1", "192.0.2.1", State::Established, true),
            ],
            routes: vec![
                route("0.0.0.0/0", RouteFrom::Kernel, Some("172.17.0.1"), true),
                route("10.0.0.0/16", RouteFrom::Direct, None, true),
                route("10.65.0.0/26", RouteFrom::Static, None, true),
                route(
                    "10.65.2.0/26",
                    RouteFrom::Peer("Mesh_10_0_0_2".into()),
                    Some("10.0.0.2"),
                    true,
                ),
                route(
                    "10.65.2.0/26",
                    RouteFrom::Peer("Global_192_0_2_1".into()),
                    Some("192.0.2.1"),
                    false,
                ),
                route(
                    "10.65.9.0/26",
                    RouteFrom::Peer("Mesh_gone".into()),
                    Some("10.0.0.9"),
                    true,
                ),
                route("fd00:65::/122", RouteFrom::Static, None, true),
            ],
        };
        let only_routes = Classes {
            agent: false,
            bgp: false,
            routes: true,
        };
        let r = build_report(&obs, only_routes, at(1_795_453_200));
        assert!(r.agent.is_none() && r.bgp.is_none());
        let routes = r.routes.unwrap();
        let rows: Vec<(&str, RouteType, &str, &str, RouteSourceType, &str)> = routes
            .routes_v4
            .iter()
            .map(|r| {
                (
                    r.destination.as_str(),
                    r.route_type,
                    r.gateway.as_str(),
                    r.interface.as_str(),
                    r.learned_from.source_type,
                    r.learned_from.peer_ip.as_str(),
                )
            })
            .collect();
        use RouteSourceType::*;
        use RouteType::*;
        assert_eq!(
            rows,
            [
                ("0.0.0.0/0", FIB, "172.17.0.1", "eth0", Kernel, ""),
                ("10.0.0.0/16", FIB, "N/A", "eth0", Direct, ""),
                ("10.65.0.0/26", FIB, "N/A", "blackhole", Static, ""),
                (
                    "10.65.2.0/26",
                    FIB,
                    "10.0.0.2",
                    "tunl0",
                    NodeMesh,
                    "10.0.0.2"
                ),
                (
                    "10.65.2.0/26",
                    RIB,
                    "192.0.2.1",
                    "tunl0",
                    BGPPeer,
                    "192.0.2.1"
                ),
                // A peer no longer configured: its address is unknown.
                ("10.65.9.0/26", FIB, "10.0.0.9", "", NodeMesh, ""),
            ]
        );
        assert_eq!(routes.routes_v6.len(), 1);
        assert_eq!(routes.routes_v6[0].destination, "fd00:65::/122");
        assert_eq!(routes.routes_v6[0].interface, "blackhole");
    }
}
