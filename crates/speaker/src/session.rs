//! One task per session: the bridge between a `bgp_wire::session` driver and the core.
//!
//! The core never waits for a peer: it hands commands and encoded UPDATEs to this task over
//! bounded channels with `try_send`. This task holds at most the messages queued in those
//! channels plus the driver's own bounded write queue, so a stuck peer fills its own queues
//! and then has its session reset (Cease / Out of Resources), while the others go on.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use bgp_wire::fsm::{Negotiated, SessionConfig};
use bgp_wire::iana::{AddPathMode, CeaseSubcode};
use bgp_wire::session::{
    Command, Endpoint, Peer as WirePeer, PeerConfig as WireConfig, SessionEvent,
};
use bgp_wire::{AddPathFamily, Family, GracefulRestart, GracefulRestartFamily};
use bytes::Bytes;
use tern_config::policy::Family as ConfigFamily;
use tern_config::{AddPaths, DesiredConfig, Peer};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::Instrument;

/// Encoded UPDATEs queued per peer before its session is reset for being too slow.
pub const DATA_QUEUE: usize = 1024;
/// Control commands queued per peer.
const CONTROL_QUEUE: usize = 16;
/// Session events handed to the core in one message at most: what the driver has ready
/// goes in one channel send (and at most one wake-up of the core) instead of one each.
pub const EVENT_BATCH: usize = 32;

/// What the core tells a session task.
#[derive(Debug)]
pub enum Control {
    /// Pass this command to the driver (ahead of queued UPDATEs).
    Command(Command),
    /// Drop the queued UPDATEs and reset the session (Cease / Out of Resources).
    Overflow,
    /// Stop the session with this Cease subcode and message, then end the task.
    Shutdown(CeaseSubcode, String),
}

/// Session events, in order, tagged with the session they belong to.
#[derive(Debug)]
pub struct Tagged {
    /// The peer's name.
    pub name: Arc<str>,
    /// Generation of the session task (events of a replaced task are ignored).
    pub generation: u64,
    /// The events (1 to [`EVENT_BATCH`]).
    pub events: Vec<SessionEvent>,
}

/// The core's handle to one session task.
#[derive(Debug)]
pub struct SessionHandle {
    pub control: mpsc::Sender<Control>,
    pub data: mpsc::Sender<Vec<Bytes>>,
    pub task: JoinHandle<()>,
}

fn wire_family(f: ConfigFamily) -> Family {
    match f {
        ConfigFamily::Ipv4 => Family::IPV4_UNICAST,
        ConfigFamily::Ipv6 => Family::IPV6_UNICAST,
    }
}

/// The local address this speaker uses on the session: the configured source address, else
/// this node's address of the peer's family, else the listening address, else (IPv4) the
/// router id. Used as NEXT_HOP when announcing "next hop self".
pub fn local_address(c: &DesiredConfig, p: &Peer) -> IpAddr {
    if let Some(a) = p.source_address {
        return a;
    }
    let node = if p.address.is_ipv4() {
        c.node_ipv4.map(|n| n.addr()).or(c.listen.address)
    } else {
        c.node_ipv6.map(|n| n.addr()).or(c.listen.address_v6)
    };
    node.filter(|a| !a.is_unspecified())
        .unwrap_or(IpAddr::V4(c.router_id))
}

/// The driver configuration of a configured peer. `recovering`: this speaker restarted and
/// keeps its previous kernel routes until it has converged (BIRD's `-R`): the OPEN carries
/// the graceful-restart Restart State bit (RFC 4724 §3), so helpers keep our routes stale and
/// send theirs without waiting for our End-of-RIB.
pub fn wire_config(c: &DesiredConfig, p: &Peer, recovering: bool) -> WireConfig {
    let local_as = p.effective_local_as(c.asn);
    let mut s = SessionConfig::new(local_as, c.router_id, p.remote_as);
    s.passive = p.passive;
    s.hold_time = p.hold_time;
    s.keepalive_time = p
        .keepalive_time
        .map(|k| u16::try_from(k).unwrap_or(u16::MAX));
    s.connect_retry = Duration::from_secs(u64::from(p.connect_retry_time.max(1)));
    s.idle_hold.min = Duration::from_secs(u64::from(p.error_wait_time.0));
    s.idle_hold.max = Duration::from_secs(u64::from(p.error_wait_time.1.max(p.error_wait_time.0)));
    let families: Vec<Family> = p.families.iter().map(|f| wire_family(*f)).collect();
    s.capabilities.families.clone_from(&families);
    let mode = match p.add_paths {
        AddPaths::Off => None,
        AddPaths::Rx => Some(AddPathMode::Receive),
        AddPaths::Tx => Some(AddPathMode::Send),
        AddPaths::RxTx => Some(AddPathMode::SendReceive),
    };
    if let Some(mode) = mode {
        s.capabilities.add_path = families
            .iter()
            .map(|&family| AddPathFamily { family, mode })
            .collect();
    }
    if p.graceful_restart {
        let time = p.restart_time.unwrap_or(tern_config::DEFAULT_RESTART_TIME);
        s.capabilities.graceful_restart = Some(GracefulRestart {
            restart_state: recovering,
            notification: true,
            restart_time: u16::try_from(time.min(4095)).unwrap_or(4095),
            families: families
                .iter()
                .map(|&family| GracefulRestartFamily {
                    family,
                    forwarding_preserved: c.kernel.persist,
                })
                .collect(),
        });
    }
    let mut w = WireConfig::new(s, p.address);
    w.port = p.port;
    w.local_address = p.source_address;
    w.md5_key = p.password.secret().map(|s| s.as_bytes().to_vec());
    w.gtsm_hops = p.ttl_security;
    if p.multihop && p.ttl_security.is_none() {
        w.ttl = Some(64);
    }
    w
}

/// rib's view of what the session negotiated.
pub fn rib_session(n: &Negotiated, local_address: IpAddr) -> rib::Session {
    let gr = n.graceful_restart.as_ref();
    rib::Session {
        router_id: n.peer_id,
        local_address,
        route_refresh: n.route_refresh,
        families: n.families.clone(),
        add_path_rx: !n.add_path_receive.is_empty(),
        add_path_tx: if n.add_path_send.is_empty() {
            rib::AddPathSend::Off
        } else {
            rib::AddPathSend::All
        },
        gr_restart_time: gr.map(|g| Duration::from_secs(u64::from(g.restart_time))),
        gr_forwarding_preserved: gr
            .is_some_and(|g| g.families.iter().all(|f| f.forwarding_preserved)),
        llgr_stale_time: None,
    }
}

/// Spawns the session: registers it with the endpoint, starts it, and runs the bridge task.
pub fn spawn(
    endpoint: &Endpoint,
    config: WireConfig,
    name: Arc<str>,
    generation: u64,
    to_core: mpsc::Sender<Tagged>,
) -> std::io::Result<SessionHandle> {
    let peer = endpoint.add_peer(config)?;
    let (control_tx, control_rx) = mpsc::channel(CONTROL_QUEUE);
    let (data_tx, data_rx) = mpsc::channel(DATA_QUEUE);
    // Every log line of this session's bridge carries the peer's name.
    let span = tracing::info_span!("peer", name = %name);
    let task =
        tokio::spawn(bridge(peer, name, generation, control_rx, data_rx, to_core).instrument(span));
    Ok(SessionHandle {
        control: control_tx,
        data: data_tx,
        task,
    })
}

async fn bridge(
    mut peer: WirePeer,
    name: Arc<str>,
    generation: u64,
    mut control: mpsc::Receiver<Control>,
    mut data: mpsc::Receiver<Vec<Bytes>>,
    to_core: mpsc::Sender<Tagged>,
) {
    let mut pending: VecDeque<Command> = VecDeque::new();
    pending.push_back(Command::Start);
    let mut events_open = true;
    let stop = loop {
        tokio::select! {
            biased;
            c = control.recv() => match c {
                Some(Control::Command(cmd)) => pending.push_front(cmd),
                Some(Control::Overflow) => {
                    pending.retain(|c| !matches!(c, Command::SendEncoded(_)));
                    while data.try_recv().is_ok() {}
                    pending.push_front(Command::Stop {
                        subcode: CeaseSubcode::OutOfResources,
                        message: "send queue overflow".into(),
                    });
                    pending.push_back(Command::Start);
                }
                Some(Control::Shutdown(subcode, message)) => break Some((subcode, message)),
                None => break None,
            },
            ev = peer.events.recv(), if events_open => match ev {
                Some(event) => {
                    let mut events = vec![event];
                    while events.len() < EVENT_BATCH {
                        match peer.events.try_recv() {
                            Ok(e) => events.push(e),
                            Err(_) => break,
                        }
                    }
                    let t = Tagged { name: name.clone(), generation, events };
                    if to_core.send(t).await.is_err() {
                        break None;
                    }
                }
                None => events_open = false,
            },
            permit = peer.commands.reserve(), if !pending.is_empty() => match permit {
                Ok(permit) => {
                    if let Some(cmd) = pending.pop_front() {
                        permit.send(cmd);
                    }
                }
                Err(_) => break None,
            },
            d = data.recv(), if pending.is_empty() => match d {
                Some(msgs) => pending.push_back(Command::SendEncoded(msgs)),
                None => break None,
            },
        }
    };
    if let Some((subcode, message)) = stop {
        let cmd = Command::Stop { subcode, message };
        let _ = tokio::time::timeout(Duration::from_secs(2), peer.commands.send(cmd)).await;
        // Let the driver write the NOTIFICATION before the handle is dropped.
        let _ = tokio::time::timeout(Duration::from_millis(500), async {
            while let Some(ev) = peer.events.recv().await {
                if matches!(
                    ev,
                    SessionEvent::StateChange {
                        to: bgp_wire::fsm::State::Idle,
                        ..
                    }
                ) {
                    break;
                }
            }
        })
        .await;
    }
    let _ = tokio::time::timeout(Duration::from_secs(5), peer.join()).await;
}
