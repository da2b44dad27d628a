//! # tern-speaker — the embeddable BGP speaker
//!
//! **Owns:** wiring sessions (`bgp-wire`), the RIB (`rib`) and the kernel (`fib-netlink`)
//! together as tasks joined by bounded channels; applying a `tern_config::DesiredConfig` by
//! diffing it against the running one, so that unchanged sessions are never reset; the typed
//! query API and event stream used by embedders and the control socket.
//!
//! **Must not know:** Calico or any datastore: it is told what to do by a `DesiredConfig`.
//!
//! ## Tasks
//!
//! ```text
//!  Speaker handle ──requests──► core task (RIB, session table, FIB glue)
//!                                 ▲   │ encoded UPDATEs (try_send, bounded)
//!        session events (bounded) │   ▼
//!                        one bridge task per session ◄──► bgp-wire session driver ◄──► TCP
//!                                 ▲   │ kernel routes (coalescing FibHandle)
//!         learned / connected     │   ▼
//!                           fib-netlink driver task ◄──► rtnetlink
//! ```
//!
//! * Received UPDATEs go to the RIB; RFC 7606 treat-as-withdraw withdraws the NLRI instead
//!   (and eBGP UPDATEs get the external-peer checks first).
//! * The RIB's output per update group is encoded **once** per encoding context and the same
//!   `Bytes` are queued to every member. The core never waits for a peer: a peer whose queue
//!   is full has its session reset (Cease / Out of Resources) rather than stalling the others.
//! * Best paths accepted by the kernel policy become kernel routes: `via` the next hops (ECMP),
//!   `onlink` through the tunnel device the policy names (Calico IPIP: `tunl0`), blackholes
//!   for own blocks, with the configured protocol (12 = `proto bird`).
//! * Kernel-learned routes (e.g. Felix's workload /32s on `cali*`) and connected networks enter
//!   the RIB as local routes, so the export policy decides what peers see.
//!
//! ## Reconfiguration
//! [`Speaker::apply`] diffs per peer and per field ([`ApplySummary`] says what happened):
//! unchanged peers are untouched; policy, reflection and next-hop changes are applied live
//! (export re-run, ROUTE-REFRESH on import changes); fields carried in the OPEN or the
//! transport (AS, address, password, timers, families) reset that one session; node identity,
//! listening sockets or ECMP changes restart every session.
//!
//! ## Example: two speakers in one process
//! One speaker listens on `127.0.0.1`, the other connects from `127.0.0.2` and announces a
//! blackhole block; the first learns it. (No FIB: `SpeakerOptions::default()`.)
//!
//! ```
//! use std::time::Duration;
//! use tern_config::*;
//! use tern_speaker::{RouteFrom, Speaker, SpeakerOptions};
//!
//! fn node(addr: &str, port: u16, peer: &str, peer_port: u16, passive: bool) -> DesiredConfig {
//!     let json = format!(r#"{{
//!         "router_id": "{addr}", "asn": 64512,
//!         "listen": {{ "address": "{addr}", "port": {port} }},
//!         "peers": [{{ "name": "Mesh_peer", "kind": "mesh", "address": "{peer}",
//!                      "port": {peer_port}, "remote_as": 64512, "passive": {passive},
//!                      "source_address": "{addr}", "families": ["ipv4"],
//!                      "import": "all", "export": "all" }}],
//!         "policies": {{}}, "blackholes": [],
//!         "kernel": {{ "export": "all", "learn": false, "persist": true, "scan_time": 10,
//!                      "graceful_restart": false, "merge_paths": true, "route_protocol": 12,
//!                      "normal_route_priority": {{ "ipv4": 1024, "ipv6": 1024 }} }}
//!     }}"#);
//!     serde_json::from_str(&json).unwrap()
//! }
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! // A listens on an ephemeral port and waits for B.
//! let a = Speaker::new(SpeakerOptions::default());
//! a.apply(node("127.0.0.1", 0, "127.0.0.2", 179, true)).await.unwrap();
//! let port = a.listening().await.unwrap()[0].port();
//!
//! // B connects to A and originates 10.65.1.0/26.
//! let b = Speaker::new(SpeakerOptions::default());
//! let mut cfg = node("127.0.0.2", 0, "127.0.0.1", port, false);
//! cfg.blackholes.push("10.65.1.0/26".parse().unwrap());
//! b.apply(cfg).await.unwrap();
//!
//! // A learns the block from B, with B as next hop.
//! let mut events = a.subscribe();
//! let route = loop {
//!     let routes = a.routes().await.unwrap();
//!     if let Some(r) = routes.into_iter().find(|r| r.prefix.to_string() == "10.65.1.0/26") {
//!         break r;
//!     }
//!     tokio::time::timeout(Duration::from_secs(10), events.recv()).await.unwrap().ok();
//! };
//! assert_eq!(route.from, RouteFrom::Peer("Mesh_peer".into()));
//! assert_eq!(route.next_hop, Some("127.0.0.2".parse().unwrap()));
//! let peers = a.peers().await.unwrap();
//! assert_eq!(peers[0].state, bgp_wire::fsm::State::Established);
//! assert!(peers[0].uptime.is_some());
//!
//! // A graceful stop: Cease / Administrative Shutdown with a message.
//! b.shutdown("maintenance").await.unwrap();
//! a.shutdown("done").await.unwrap();
//! # });
//! ```

#![forbid(unsafe_code)]

mod core;
pub mod diff;
mod session;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bgp_wire::Prefix;
use bgp_wire::fsm::{Negotiated, State};
use ipnet::IpNet;
use rib::RouteAttrs;
use tern_config::DesiredConfig;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::core::{Core, Request};

/// How the engine runs (what does not come from the [`DesiredConfig`]).
#[derive(Clone, Debug)]
pub struct SpeakerOptions {
    /// Program the kernel (and learn kernel routes and connected networks) through
    /// rtnetlink. Off for a pure route reflector or an embedder that programs nothing.
    pub fib: bool,
    /// With graceful restart: how long stale kernel routes of ours are kept when peers do
    /// not all send End-of-RIB.
    pub fib_converge_deadline: Duration,
    /// Capacity of the event stream (slow subscribers lose the oldest events).
    pub event_capacity: usize,
}

impl Default for SpeakerOptions {
    fn default() -> Self {
        SpeakerOptions {
            fib: false,
            fib_converge_deadline: Duration::from_secs(120),
            event_capacity: 1024,
        }
    }
}

/// Errors of the speaker's API.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The listening sockets could not be opened.
    #[error("cannot listen: {0}")]
    Listen(std::io::Error),
    /// The kernel routing sockets could not be opened.
    #[error("cannot open the kernel routing table: {0}")]
    Fib(std::io::Error),
    /// A peer could not be configured.
    #[error("peer: {0}")]
    Peer(String),
    /// No configuration was applied yet.
    #[error("no configuration applied")]
    NotConfigured,
    /// The speaker has stopped.
    #[error("the speaker has stopped")]
    Stopped,
    /// No peer has this name.
    #[error("no such peer: {0}")]
    UnknownPeer(String),
}

/// Administrative control of one session (BIRD's `disable`, `enable`, `restart`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerAdmin {
    /// Close the session (Cease / Administrative Shutdown) and keep it down.
    Disable,
    /// Start a disabled (or prefix-limited) session again.
    Enable,
    /// Close the session (Cease / Administrative Reset) and start it again.
    Restart,
}

/// Node-level state, for `show status`-like queries and metrics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpeakerStatus {
    /// BGP identifier of the running configuration (0.0.0.0 before the first apply).
    pub router_id: Ipv4Addr,
    /// Local AS of the running configuration.
    pub asn: u32,
    /// When the engine started.
    pub started: SystemTime,
    /// When the last configuration was applied.
    pub last_reconfigured: Option<SystemTime>,
    /// Graceful-restart recovery: kernel routes of a previous run are kept until every
    /// peer has sent End-of-RIB (BIRD reports this as `0024`).
    pub graceful_restart_recovery: bool,
    /// Destinations in the Loc-RIB.
    pub rib_destinations: usize,
    /// Paths in the Loc-RIB (all peers and local sources).
    pub rib_paths: usize,
    /// Distinct interned attribute sets.
    pub rib_attribute_sets: usize,
    /// Kernel programming counters, when the FIB is on.
    pub fib: Option<FibStats>,
}

/// Kernel programming counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FibStats {
    /// Our routes in the kernel (as requested of the FIB driver).
    pub installed: usize,
    /// Route writes (installs and removals) handed to the FIB driver.
    pub operations: u64,
    /// Routes the kernel refused.
    pub errors: u64,
}

/// What an [`apply`](Speaker::apply) did, by peer name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ApplySummary {
    /// Node identity, listening sockets or ECMP changed: every session was restarted.
    pub full_restart: bool,
    /// Policies changed: exports re-run (ROUTE-REFRESH sent where imports changed).
    pub policies_changed: bool,
    /// New sessions.
    pub added: Vec<String>,
    /// Sessions removed (Cease / Peer De-configured).
    pub removed: Vec<String>,
    /// Sessions reset because a field the protocol cannot change live changed.
    pub reset: Vec<String>,
    /// Sessions reconfigured without a reset.
    pub reconfigured: Vec<String>,
    /// Sessions not touched.
    pub unchanged: Vec<String>,
    /// Peers that could not be configured.
    pub errors: Vec<String>,
}

/// A peer as seen by queries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerStatus {
    /// Protocol name (`Mesh_10_0_0_2`).
    pub name: String,
    /// Neighbour address.
    pub address: IpAddr,
    /// Neighbour AS.
    pub remote_as: u32,
    /// Session state.
    pub state: State,
    /// Time in the current state.
    pub since: Duration,
    /// Time since the session was established, while it is.
    pub uptime: Option<Duration>,
    /// Wall-clock time at which the current state began.
    pub since_wall: SystemTime,
    /// False after [`PeerAdmin::Disable`] (or while held down by its prefix limit).
    pub enabled: bool,
    /// Local AS on this session.
    pub local_as: u32,
    /// Local address of the session (the next hop we announce as "self").
    pub local_address: IpAddr,
    /// iBGP session.
    pub internal: bool,
    /// The peer is a route-reflector client of ours.
    pub route_reflector_client: bool,
    /// How many times the session reached Established.
    pub established_count: u64,
    /// Established sessions that went down.
    pub flaps: u64,
    /// UPDATE messages received.
    pub updates_received: u64,
    /// Messages received after the OPEN exchange (UPDATE, ROUTE-REFRESH).
    pub messages_received: u64,
    /// UPDATE messages queued to the peer.
    pub messages_sent: u64,
    /// UPDATE messages queued to the peer (same count as `messages_sent`: keepalives are the
    /// session driver's and not counted).
    pub updates_sent: u64,
    /// Paths kept from the peer before import policy (0 unless the pre-policy table is kept).
    pub prefixes_received: usize,
    /// Paths accepted from the peer (post-policy Adj-RIB-In).
    pub prefixes_accepted: usize,
    /// Routes in the Adj-RIB-Out towards the peer (its update group's).
    pub prefixes_advertised: usize,
    /// Configured prefix limit.
    pub max_prefixes: Option<u32>,
    /// The peer's BGP identifier, once known.
    pub peer_router_id: Option<Ipv4Addr>,
    /// What was negotiated, while Established.
    pub negotiated: Option<Arc<Negotiated>>,
    /// The last error (NOTIFICATION sent or received, connection failure, ...).
    pub last_error: Option<String>,
    /// Code and subcode of the last NOTIFICATION sent or received.
    pub last_error_code: Option<(u8, u8)>,
}

/// Where a route came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RouteFrom {
    /// A BGP peer, by name.
    Peer(String),
    /// A configured static route (own blocks, service ranges).
    Static,
    /// Learned from the kernel.
    Kernel,
    /// A connected network.
    Direct,
}

/// One path of a destination.
#[derive(Clone, Debug)]
pub struct RouteEntry {
    /// Destination.
    pub prefix: Prefix,
    /// Source.
    pub from: RouteFrom,
    /// Next hop, if any.
    pub next_hop: Option<IpAddr>,
    /// Selected best path.
    pub best: bool,
    /// In the ECMP set.
    pub multipath: bool,
    /// Kept as stale during a peer's graceful restart.
    pub stale: bool,
    /// Attributes after import policy.
    pub attrs: Arc<RouteAttrs>,
}

/// What the event stream reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A session changed state.
    PeerState {
        /// Peer name.
        name: String,
        /// Previous state.
        from: State,
        /// New state.
        to: State,
        /// Why.
        reason: String,
    },
    /// A peer was removed from the configuration.
    PeerRemoved {
        /// Peer name.
        name: String,
    },
    /// A best path reached (or left) the kernel.
    KernelRoute {
        /// Destination.
        prefix: IpNet,
        /// Installed (or removed).
        installed: bool,
    },
    /// The best path of a destination changed (`next_hop` and `from` are `None` when the
    /// destination became unreachable). Reported for destinations that reach the kernel
    /// policy, i.e. with the FIB on.
    BestPath {
        /// Destination.
        prefix: Prefix,
        /// Next hop of the new best path.
        next_hop: Option<IpAddr>,
        /// Source of the new best path.
        from: Option<RouteFrom>,
    },
    /// The kernel refused a route.
    KernelRouteFailed {
        /// Destination.
        prefix: IpNet,
        /// The kernel's error.
        error: String,
    },
}

/// The running engine. Cheap to share by reference; dropping it stops every session
/// (Cease / Administrative Shutdown).
#[derive(Debug)]
pub struct Speaker {
    requests: mpsc::Sender<Request>,
    events: broadcast::Sender<Event>,
    task: JoinHandle<()>,
}

impl Speaker {
    /// Starts the engine (idle until the first [`apply`](Self::apply)). Must be called inside
    /// a tokio runtime with I/O and time enabled.
    pub fn new(options: SpeakerOptions) -> Speaker {
        let (events, _) = broadcast::channel(options.event_capacity.max(1));
        let (requests, rx) = mpsc::channel(16);
        let core = Core::new(options, events.clone());
        let task = tokio::spawn(core.run(rx));
        Speaker {
            requests,
            events,
            task,
        }
    }

    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Request) -> Result<T, Error> {
        let (tx, rx) = oneshot::channel();
        self.requests
            .send(make(tx))
            .await
            .map_err(|_| Error::Stopped)?;
        rx.await.map_err(|_| Error::Stopped)
    }

    /// Makes `config` the running configuration, touching only what changed.
    pub async fn apply(&self, config: DesiredConfig) -> Result<ApplySummary, Error> {
        self.ask(|tx| Request::Apply(Box::new(config), tx)).await?
    }

    /// Every configured peer with its state and counters, sorted by name.
    pub async fn peers(&self) -> Result<Vec<PeerStatus>, Error> {
        self.ask(Request::Peers).await
    }

    /// The best path of every destination, sorted by prefix.
    pub async fn routes(&self) -> Result<Vec<RouteEntry>, Error> {
        self.ask(|tx| Request::Routes(None, tx)).await
    }

    /// Every path to `prefix`, best first.
    pub async fn routes_for(&self, prefix: Prefix) -> Result<Vec<RouteEntry>, Error> {
        self.ask(|tx| Request::Routes(Some(prefix), tx)).await
    }

    /// Every path of every destination (best first within a destination), sorted by prefix.
    pub async fn all_routes(&self) -> Result<Vec<RouteEntry>, Error> {
        self.ask(Request::AllRoutes).await
    }

    /// Disables, enables or restarts one session; `message` is the shutdown communication
    /// (RFC 9003) sent with disable and restart.
    pub async fn peer_admin(&self, name: &str, op: PeerAdmin, message: &str) -> Result<(), Error> {
        let (name, message) = (name.to_string(), message.to_string());
        self.ask(|tx| Request::Admin(name, op, message, tx)).await?
    }

    /// Node-level status and counters.
    pub async fn status(&self) -> Result<SpeakerStatus, Error> {
        self.ask(Request::Status).await
    }

    /// The addresses the speaker listens on (useful with port 0).
    pub async fn listening(&self) -> Result<Vec<SocketAddr>, Error> {
        self.ask(Request::Listening).await
    }

    /// The running configuration.
    pub async fn config(&self) -> Result<Option<DesiredConfig>, Error> {
        self.ask(Request::Config).await
    }

    /// Session state changes and kernel route changes from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    /// Stops every session with Cease / Administrative Shutdown and `message` (RFC 9003),
    /// leaves kernel routes in place when `persist` is configured, and ends the engine.
    pub async fn shutdown(self, message: &str) -> Result<(), Error> {
        let Speaker {
            requests,
            events: _,
            task,
        } = self;
        let (tx, rx) = oneshot::channel();
        requests
            .send(Request::Shutdown(message.to_string(), tx))
            .await
            .map_err(|_| Error::Stopped)?;
        let _ = rx.await;
        let _ = task.await;
        Ok(())
    }
}
