//! The BGP session finite state machine of RFC 4271 §8 as a sans-IO core.
//!
//! Shaped like `quinn-proto`: [`Session::handle`] takes an [`Event`] and the current time and
//! returns [`Action`]s; [`Session::handle_timeout`] fires due timers; [`Session::poll_timeout`]
//! says when to call it next. There is no socket, clock or runtime in here — the tokio driver
//! in [`session`](crate::session) owns those — so tests drive it with virtual time.
//!
//! One session may have two TCP connections in flight at once (ours and the peer's); each is a
//! [`ConnId`] with its own phase and Hold/Keepalive/DelayOpen timers, and connection collision
//! detection (RFC 4271 §6.8) picks the survivor by BGP identifier once an OPEN is in hand. The
//! session's [`State`] is that of its most advanced connection.
//!
//! Deviations from the letter of §8, on purpose:
//! - Passive sessions never connect out (RFC 4271's passive mode only delays the first
//!   connection); this is what Calico's mesh means by passive.
//! - Incoming connections are accepted in Connect and Active as well as later states, and
//!   resolved by collision detection, rather than dropping our own attempt (§8.2.1.2 allows it
//!   via the CollisionDetectEstablishedState-style options).
//! - Keepalives are sent every keepalive interval regardless of UPDATEs sent, which RFC 4271
//!   §4.4 permits and which keeps them from being starved by an UPDATE backlog.

mod config;
mod negotiate;
mod timer;

#[cfg(test)]
mod tests;

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use config::{IdleHold, LocalCapabilities, SessionConfig};
pub use negotiate::{Negotiated, check_open, local_open, negotiate};
pub use timer::Timer;

use crate::iana::{CeaseSubcode, ErrorCode, FsmSubcode};
use crate::message::{Decoded, Message, Notification, Open};

/// The session states of RFC 4271 §8.2.2.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum State {
    /// Refusing connections; waiting for a start or for the IdleHold back-off to end.
    Idle,
    /// Our TCP connection attempt is in progress.
    Connect,
    /// Waiting for the peer to connect (or for ConnectRetry to try again).
    Active,
    /// OPEN sent, waiting for the peer's.
    OpenSent,
    /// OPENs exchanged, waiting for the first KEEPALIVE.
    OpenConfirm,
    /// Up: UPDATEs flow.
    Established,
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            State::Idle => "Idle",
            State::Connect => "Connect",
            State::Active => "Active",
            State::OpenSent => "OpenSent",
            State::OpenConfirm => "OpenConfirm",
            State::Established => "Established",
        })
    }
}

/// Identifies one TCP connection of a session (assigned by the state machine).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "conn#{}", self.0)
    }
}

/// Who opened a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// We connected to the peer.
    Outbound,
    /// The peer connected to us.
    Inbound,
}

/// Inputs to the state machine (the RFC 4271 §8.1 events that are not timers).
// An event is moved straight into `handle` and never stored, so the size of the decoded UPDATE
// it carries costs nothing; boxing it would cost an allocation per message.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// ManualStart / AutomaticStart (passive per [`SessionConfig::passive`]).
    Start,
    /// ManualStop: send a Cease with this subcode and RFC 8203 shutdown communication on every
    /// connection that has sent an OPEN, close them all, and stay Idle until the next Start.
    Stop {
        /// Usually [`CeaseSubcode::AdministrativeShutdown`] or `PeerDeconfigured`.
        subcode: CeaseSubcode,
        /// Shutdown communication (RFC 8203 / RFC 9003), may be empty.
        message: String,
    },
    /// Administrative reset: Cease / Administrative Reset with this message, then start again.
    Reset {
        /// Shutdown communication.
        message: String,
    },
    /// Our connection attempt succeeded (TcpCRAcked / TcpConnectionConfirmed).
    Connected(ConnId),
    /// Our connection attempt failed.
    ConnectFailed(ConnId),
    /// The peer connected to us (TcpConnection_Valid). The state machine answers with
    /// [`Action::Accept`] naming the new connection, or [`Action::Refuse`].
    Incoming,
    /// The connection was closed or failed (TcpConnectionFails).
    Closed(ConnId),
    /// A message arrived, decoded with the context of this connection's phase. Non-fatal
    /// RFC 7606 errors ride along in [`Decoded::errors`].
    Received(ConnId, Decoded),
    /// A message could not be decoded and RFC 7606 says reset: send this NOTIFICATION
    /// (BGPHeaderErr / BGPOpenMsgErr / UpdateMsgErr).
    DecodeError(ConnId, Notification),
}

/// Why the session changed state or went down.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reason {
    /// Started by the operator or automatically.
    Start,
    /// Stopped by the operator (the NOTIFICATION we sent).
    AdminStop(Notification),
    /// IdleHold back-off ended; trying again.
    IdleHoldExpired,
    /// ConnectRetry expired; trying again.
    ConnectRetry,
    /// The TCP connection attempt failed.
    ConnectFailed,
    /// The TCP connection closed.
    ConnectionClosed,
    /// The peer sent this NOTIFICATION.
    NotificationReceived(Notification),
    /// We sent this NOTIFICATION (protocol error, hold timer expiry, collision, ...).
    NotificationSent(Notification),
    /// Progress: OPEN sent, OPEN received, KEEPALIVE received.
    Progress,
    /// The peer opened a new session while the old one was Established with graceful restart
    /// negotiated (RFC 4724 §4.2): the old one is closed, its routes kept stale.
    PeerRestarted,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let notif = |f: &mut fmt::Formatter<'_>, dir: &str, n: &Notification| {
            write!(f, "{dir} {} subcode {}", n.code, n.subcode)?;
            if let Some(text) = n.shutdown_communication() {
                write!(f, " \"{text}\"")?;
            }
            Ok(())
        };
        match self {
            Reason::Start => f.write_str("start"),
            Reason::AdminStop(n) => notif(f, "administratively stopped, sent", n),
            Reason::IdleHoldExpired => f.write_str("idle hold expired"),
            Reason::ConnectRetry => f.write_str("connect retry"),
            Reason::ConnectFailed => f.write_str("connection attempt failed"),
            Reason::ConnectionClosed => f.write_str("connection closed"),
            Reason::NotificationReceived(n) => notif(f, "received", n),
            Reason::NotificationSent(n) => notif(f, "sent", n),
            Reason::Progress => f.write_str("progress"),
            Reason::PeerRestarted => f.write_str("peer restarted (graceful restart)"),
        }
    }
}

/// Outputs of the state machine, to be carried out in order.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Open a TCP connection to the peer; report back with `Connected` or `ConnectFailed`.
    Connect(ConnId),
    /// Bind the connection just reported by [`Event::Incoming`] to this id.
    Accept(ConnId),
    /// Close the connection just reported by [`Event::Incoming`] without a word.
    Refuse,
    /// Send this message on the connection.
    Send(ConnId, Message),
    /// Close the connection once what was sent on it is flushed.
    Close(ConnId),
    /// The session's state changed.
    StateChange {
        /// Previous state.
        from: State,
        /// New state.
        to: State,
        /// Why.
        reason: Reason,
    },
    /// The session is Established on this connection: UPDATEs may flow, encoded and decoded
    /// with the contexts of `negotiated`.
    Established(ConnId, Arc<Negotiated>),
    /// An UPDATE or ROUTE-REFRESH for the layer above.
    Deliver(Decoded),
    /// The Established session ended (the layer above withdraws, or keeps stale under GR).
    Down(Reason),
    /// Connection collision detection (RFC 4271 §6.8) closed one of two connections.
    CollisionResolved {
        /// Who opened the connection that was kept.
        kept: Direction,
    },
}

/// The phase of one connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// TCP handshake in progress (outbound only).
    Connecting,
    /// TCP up, DelayOpen timer running, our OPEN not yet sent.
    DelayOpen,
    OpenSent,
    OpenConfirm,
    Established,
}

#[derive(Debug)]
struct Conn {
    id: ConnId,
    dir: Direction,
    phase: Phase,
    hold: Timer,
    keepalive: Timer,
    delay_open: Timer,
    negotiated: Option<Arc<Negotiated>>,
}

impl Conn {
    fn new(id: ConnId, dir: Direction, phase: Phase) -> Conn {
        Conn {
            id,
            dir,
            phase,
            hold: Timer::default(),
            keepalive: Timer::default(),
            delay_open: Timer::default(),
            negotiated: None,
        }
    }

    fn open_sent(&self) -> bool {
        matches!(
            self.phase,
            Phase::OpenSent | Phase::OpenConfirm | Phase::Established
        )
    }
}

/// The shortest IdleHold wait after an error, whatever the configuration says.
pub const MIN_IDLE_HOLD: Duration = Duration::from_millis(100);

/// One BGP session (one configured peer): the RFC 4271 §8 state machine.
#[derive(Debug)]
pub struct Session {
    config: SessionConfig,
    local_open: Open,
    /// Start received and no Stop since: the session restarts by itself after errors.
    enabled: bool,
    conns: Vec<Conn>,
    next_conn: u64,
    connect_retry: Timer,
    idle_hold: Timer,
    /// Last IdleHold wait and when the error that caused it happened.
    last_backoff: Option<(Duration, Instant)>,
    state: State,
    reason: Reason,
}

impl Session {
    /// A session in Idle; nothing happens until [`Event::Start`].
    pub fn new(config: SessionConfig) -> Session {
        let local_open = local_open(&config);
        Session {
            config,
            local_open,
            enabled: false,
            conns: Vec::new(),
            next_conn: 0,
            connect_retry: Timer::default(),
            idle_hold: Timer::default(),
            last_backoff: None,
            state: State::Idle,
            reason: Reason::Start,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// The Established connection and what was negotiated on it.
    pub fn established(&self) -> Option<(ConnId, &Arc<Negotiated>)> {
        self.conns
            .iter()
            .find(|c| c.phase == Phase::Established)
            .and_then(|c| c.negotiated.as_ref().map(|n| (c.id, n)))
    }

    /// The negotiated capabilities of a connection that has the peer's OPEN (OpenConfirm or
    /// Established): the driver decodes with its [`Negotiated::decode_context`].
    pub fn negotiated(&self, conn: ConnId) -> Option<&Arc<Negotiated>> {
        self.conns
            .iter()
            .find(|c| c.id == conn)
            .and_then(|c| c.negotiated.as_ref())
    }

    /// Connections currently open or opening.
    pub fn connections(&self) -> impl Iterator<Item = (ConnId, Direction)> + '_ {
        self.conns.iter().map(|c| (c.id, c.dir))
    }

    /// When [`handle_timeout`](Self::handle_timeout) must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        timer::earliest(
            [self.connect_retry.deadline(), self.idle_hold.deadline()]
                .into_iter()
                .chain(self.conns.iter().flat_map(|c| {
                    [
                        c.hold.deadline(),
                        c.keepalive.deadline(),
                        c.delay_open.deadline(),
                    ]
                })),
        )
    }

    /// Handles one event at time `now`.
    pub fn handle(&mut self, event: Event, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        match event {
            Event::Start => {
                if !self.enabled {
                    self.enabled = true;
                    self.last_backoff = None;
                    self.reason = Reason::Start;
                    self.begin(now, &mut out);
                }
            }
            Event::Stop { subcode, message } => {
                // RFC 8203 communications belong to Administrative Shutdown and Reset only;
                // other Cease subcodes (e.g. RFC 4486 Maximum Number of Prefixes) carry none.
                let n = if matches!(
                    subcode,
                    CeaseSubcode::AdministrativeShutdown | CeaseSubcode::AdministrativeReset
                ) {
                    Notification::cease_with_communication(subcode, &message)
                } else {
                    Notification::new(ErrorCode::Cease, subcode)
                };
                self.reason = Reason::AdminStop(n.clone());
                self.enabled = false;
                self.shut_all(&n, &mut out);
                self.connect_retry.stop();
                self.idle_hold.stop();
                self.last_backoff = None;
            }
            Event::Reset { message } => {
                let n = Notification::cease_with_communication(
                    CeaseSubcode::AdministrativeReset,
                    &message,
                );
                self.reason = Reason::AdminStop(n.clone());
                self.shut_all(&n, &mut out);
                self.connect_retry.stop();
                self.idle_hold.stop();
                if self.enabled {
                    self.begin(now, &mut out);
                }
            }
            Event::Connected(id) => self.on_connected(id, now, &mut out),
            Event::ConnectFailed(id) => {
                if self.conn(id).is_some_and(|c| c.phase == Phase::Connecting) {
                    self.remove(id);
                    self.reason = Reason::ConnectFailed;
                    self.ensure_retry(now);
                }
            }
            Event::Incoming => self.on_incoming(now, &mut out),
            Event::Closed(id) => self.on_closed(id, now, &mut out),
            Event::Received(id, decoded) => self.on_message(id, decoded, now, &mut out),
            Event::DecodeError(id, n) => {
                if self.conn(id).is_some() {
                    self.fail(
                        id,
                        Some(n.clone()),
                        Reason::NotificationSent(n),
                        now,
                        &mut out,
                    );
                }
            }
        }
        self.report(&mut out);
        out
    }

    /// Fires every timer due at `now` (ConnectRetry, IdleHold, and per connection DelayOpen,
    /// Hold and Keepalive).
    pub fn handle_timeout(&mut self, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        if self.idle_hold.fire(now) && self.enabled {
            self.reason = Reason::IdleHoldExpired;
            self.begin(now, &mut out);
        }
        if self.connect_retry.fire(now) && self.enabled {
            self.on_connect_retry(now, &mut out);
        }
        let ids: Vec<ConnId> = self.conns.iter().map(|c| c.id).collect();
        for id in ids {
            let Some(conn) = self.conn_mut(id) else {
                continue;
            };
            if conn.delay_open.fire(now) {
                self.send_open(id, now, &mut out);
            }
            let Some(conn) = self.conn_mut(id) else {
                continue;
            };
            if conn.hold.fire(now) {
                let n = Notification::new(ErrorCode::HoldTimerExpired, 0);
                self.fail(
                    id,
                    Some(n.clone()),
                    Reason::NotificationSent(n),
                    now,
                    &mut out,
                );
                continue;
            }
            if conn.keepalive.fire(now) {
                let every = conn
                    .negotiated
                    .as_ref()
                    .map_or(0, |n| u64::from(n.keepalive_time));
                if every > 0 {
                    conn.keepalive.start(now, Duration::from_secs(every));
                }
                out.push(Action::Send(id, Message::Keepalive));
            }
        }
        self.report(&mut out);
        out
    }

    // ===== transitions =====

    /// Idle → Connect (active) or Active (passive).
    fn begin(&mut self, now: Instant, out: &mut Vec<Action>) {
        self.idle_hold.stop();
        if self.config.passive {
            self.connect_retry.stop();
        } else {
            self.connect(now, out);
        }
    }

    /// Starts an outbound connection attempt and the ConnectRetry timer.
    fn connect(&mut self, now: Instant, out: &mut Vec<Action>) {
        let id = self.new_id();
        self.conns
            .push(Conn::new(id, Direction::Outbound, Phase::Connecting));
        self.connect_retry.start(now, self.config.connect_retry);
        out.push(Action::Connect(id));
    }

    fn ensure_retry(&mut self, now: Instant) {
        if !self.config.passive && self.enabled && !self.connect_retry.is_running() {
            self.connect_retry.start(now, self.config.connect_retry);
        }
    }

    /// ConnectRetry expired: in Connect drop the attempt and try again; in Active try again.
    /// Once any connection has progressed past the TCP handshake we stop retrying (§8.2.2).
    fn on_connect_retry(&mut self, now: Instant, out: &mut Vec<Action>) {
        if self.config.passive || self.conns.iter().any(|c| c.phase != Phase::Connecting) {
            return;
        }
        let stale: Vec<ConnId> = self.conns.iter().map(|c| c.id).collect();
        for id in stale {
            self.remove(id);
            out.push(Action::Close(id));
        }
        self.reason = Reason::ConnectRetry;
        self.connect(now, out);
    }

    fn on_connected(&mut self, id: ConnId, now: Instant, out: &mut Vec<Action>) {
        if !self.conn(id).is_some_and(|c| c.phase == Phase::Connecting) {
            return;
        }
        // §8.2.2 Connect, TcpConnectionConfirmed: ConnectRetry stops.
        self.connect_retry.stop();
        self.tcp_up(id, now, out);
    }

    fn on_incoming(&mut self, now: Instant, out: &mut Vec<Action>) {
        // §8.2.2 Idle refuses connections (also while the IdleHold back-off runs).
        if !self.enabled || self.idle_hold.is_running() {
            out.push(Action::Refuse);
            return;
        }
        // A peer that connects again has given up on its previous, unfinished attempt.
        let old: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|c| c.dir == Direction::Inbound && c.phase != Phase::Established)
            .map(|c| c.id)
            .collect();
        for old in old {
            let n = Notification::new(
                ErrorCode::Cease,
                CeaseSubcode::ConnectionCollisionResolution,
            );
            self.close_conn(old, Some(n), out);
        }
        let id = self.new_id();
        self.conns
            .push(Conn::new(id, Direction::Inbound, Phase::Connecting));
        out.push(Action::Accept(id));
        self.tcp_up(id, now, out);
    }

    /// TCP is up on `id`: send our OPEN now, or start DelayOpen.
    fn tcp_up(&mut self, id: ConnId, now: Instant, out: &mut Vec<Action>) {
        let delay = self.config.delay_open;
        let open_hold = self.config.open_hold_time;
        let Some(conn) = self.conn_mut(id) else {
            return;
        };
        match delay {
            Some(d) if !d.is_zero() => {
                conn.phase = Phase::DelayOpen;
                conn.delay_open.start(now, d);
                // While DelayOpen runs the peer's OPEN is awaited under the large hold value.
                conn.hold.start(now, open_hold);
            }
            _ => self.send_open(id, now, out),
        }
    }

    fn send_open(&mut self, id: ConnId, now: Instant, out: &mut Vec<Action>) {
        let open_hold = self.config.open_hold_time;
        let Some(conn) = self.conn_mut(id) else {
            return;
        };
        conn.delay_open.stop();
        conn.phase = Phase::OpenSent;
        conn.hold.start(now, open_hold);
        self.reason = Reason::Progress;
        out.push(Action::Send(id, Message::Open(self.local_open.clone())));
    }

    fn on_closed(&mut self, id: ConnId, now: Instant, out: &mut Vec<Action>) {
        let Some(conn) = self.conn(id) else { return };
        match conn.phase {
            Phase::Connecting => {
                self.remove(id);
                self.reason = Reason::ConnectFailed;
                self.ensure_retry(now);
            }
            // §8.2.2 OpenSent, TcpConnectionFails: back to Active, ConnectRetry restarted.
            Phase::DelayOpen | Phase::OpenSent => {
                self.remove(id);
                self.reason = Reason::ConnectionClosed;
                if self.conns.is_empty() {
                    self.connect_retry.stop();
                    self.ensure_retry(now);
                }
            }
            Phase::OpenConfirm | Phase::Established => {
                self.fail(id, None, Reason::ConnectionClosed, now, out);
            }
        }
    }

    fn on_message(&mut self, id: ConnId, decoded: Decoded, now: Instant, out: &mut Vec<Action>) {
        let Some(conn) = self.conn(id) else { return };
        let phase = conn.phase;
        if let Message::Notification(n) = &decoded.message {
            // §8.2.2: NotifMsg in any state closes the connection; no NOTIFICATION back.
            let n = n.clone();
            self.fail(id, None, Reason::NotificationReceived(n), now, out);
            return;
        }
        match (phase, decoded.message) {
            (Phase::Connecting, _) => {}
            (Phase::DelayOpen | Phase::OpenSent, Message::Open(open)) => {
                self.on_open(id, phase, open, now, out);
            }
            (Phase::OpenSent, _) => {
                self.fsm_error(id, FsmSubcode::UnexpectedMessageInOpenSent, now, out);
            }
            (Phase::DelayOpen, _) => {
                self.fsm_error(id, FsmSubcode::Unspecified, now, out);
            }
            (Phase::OpenConfirm, Message::Keepalive) => {
                self.on_established(id, now, out);
            }
            (Phase::OpenConfirm, _) => {
                self.fsm_error(id, FsmSubcode::UnexpectedMessageInOpenConfirm, now, out);
            }
            (Phase::Established, Message::Open(_)) => {
                self.fsm_error(id, FsmSubcode::UnexpectedMessageInEstablished, now, out);
            }
            (Phase::Established, message) => {
                self.restart_hold(id, now);
                if !matches!(message, Message::Keepalive) {
                    out.push(Action::Deliver(Decoded {
                        message,
                        errors: decoded.errors,
                    }));
                }
            }
        }
    }

    /// The peer's OPEN on `id` (in OpenSent, or DelayOpen): check, resolve collisions,
    /// negotiate, and move to OpenConfirm.
    fn on_open(
        &mut self,
        id: ConnId,
        phase: Phase,
        open: Open,
        now: Instant,
        out: &mut Vec<Action>,
    ) {
        if let Err(n) = check_open(&self.config, &open) {
            if phase == Phase::DelayOpen {
                // §8.2.2: with DelayOpen running our OPEN goes out first, then the error.
                out.push(Action::Send(id, Message::Open(self.local_open.clone())));
            }
            self.fail(id, Some(n.clone()), Reason::NotificationSent(n), now, out);
            return;
        }
        if !self.resolve_collision(id, &open, now, out) {
            return;
        }
        if phase == Phase::DelayOpen {
            out.push(Action::Send(id, Message::Open(self.local_open.clone())));
        }
        let negotiated = Arc::new(negotiate(&self.config, &open));
        let hold = u64::from(negotiated.hold_time);
        let keepalive = u64::from(negotiated.keepalive_time);
        let Some(conn) = self.conn_mut(id) else {
            return;
        };
        conn.delay_open.stop();
        conn.phase = Phase::OpenConfirm;
        conn.negotiated = Some(negotiated);
        if hold > 0 {
            conn.hold.start(now, Duration::from_secs(hold));
            conn.keepalive.start(now, Duration::from_secs(keepalive));
        } else {
            conn.hold.stop();
            conn.keepalive.stop();
        }
        self.reason = Reason::Progress;
        out.push(Action::Send(id, Message::Keepalive));
    }

    /// RFC 4271 §6.8: the peer's OPEN arrived on `id`; if another connection already has the
    /// peer's OPEN, keep the one opened by the side with the higher BGP identifier. Returns
    /// whether `id` survives.
    fn resolve_collision(
        &mut self,
        id: ConnId,
        open: &Open,
        now: Instant,
        out: &mut Vec<Action>,
    ) -> bool {
        let collision = Notification::new(
            ErrorCode::Cease,
            CeaseSubcode::ConnectionCollisionResolution,
        );
        let Some(other) = self
            .conns
            .iter()
            .find(|c| c.id != id && matches!(c.phase, Phase::OpenConfirm | Phase::Established))
        else {
            return true;
        };
        let other_id = other.id;
        let other_dir = other.dir;
        if other.phase == Phase::Established {
            let gr = other
                .negotiated
                .as_ref()
                .is_some_and(|n| n.graceful_restart.is_some());
            if gr {
                // RFC 4724 §4.2: the peer restarted; drop the old session, keep its routes.
                self.close_conn(other_id, None, out);
                out.push(Action::Down(Reason::PeerRestarted));
                self.reason = Reason::PeerRestarted;
                return true;
            }
            let kept = other_dir;
            self.fail(
                id,
                Some(collision.clone()),
                Reason::NotificationSent(collision),
                now,
                out,
            );
            out.push(Action::CollisionResolved { kept });
            return false;
        }
        let Some(this_dir) = self.conn(id).map(|c| c.dir) else {
            return false;
        };
        // The connection initiated by the higher identifier survives.
        let keep_ours = u32::from(self.config.local_id) > u32::from(open.bgp_id);
        let loser = if (this_dir == Direction::Outbound) == keep_ours {
            other_id
        } else {
            id
        };
        let kept = if loser == id { other_dir } else { this_dir };
        self.close_conn(loser, Some(collision.clone()), out);
        self.reason = Reason::NotificationSent(collision);
        out.push(Action::CollisionResolved { kept });
        loser != id
    }

    fn on_established(&mut self, id: ConnId, now: Instant, out: &mut Vec<Action>) {
        let Some(conn) = self.conn_mut(id) else {
            return;
        };
        conn.phase = Phase::Established;
        let negotiated = conn.negotiated.clone();
        self.restart_hold(id, now);
        // Our own attempts still in the TCP handshake are no longer needed.
        let pending: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|c| c.phase == Phase::Connecting)
            .map(|c| c.id)
            .collect();
        for p in pending {
            self.close_conn(p, None, out);
        }
        self.connect_retry.stop();
        self.reason = Reason::Progress;
        if let Some(n) = negotiated {
            out.push(Action::Established(id, n));
        }
    }

    fn restart_hold(&mut self, id: ConnId, now: Instant) {
        let Some(conn) = self.conn_mut(id) else {
            return;
        };
        let hold = conn
            .negotiated
            .as_ref()
            .map_or(0, |n| u64::from(n.hold_time));
        if hold > 0 {
            conn.hold.start(now, Duration::from_secs(hold));
        }
    }

    fn fsm_error(&mut self, id: ConnId, sub: FsmSubcode, now: Instant, out: &mut Vec<Action>) {
        let n = Notification::new(ErrorCode::FiniteStateMachine, sub);
        self.fail(id, Some(n.clone()), Reason::NotificationSent(n), now, out);
    }

    /// A protocol error (or loss of an OpenConfirm/Established connection) on `id`: send the
    /// NOTIFICATION if any, close, and when nothing else is in flight go Idle with back-off.
    fn fail(
        &mut self,
        id: ConnId,
        n: Option<Notification>,
        reason: Reason,
        now: Instant,
        out: &mut Vec<Action>,
    ) {
        let was_established = self.conn(id).is_some_and(|c| c.phase == Phase::Established);
        self.close_conn(id, n, out);
        if was_established {
            out.push(Action::Down(reason.clone()));
        }
        self.reason = reason;
        if self.conns.is_empty() {
            self.connect_retry.stop();
            if self.enabled {
                let wait = match self.last_backoff {
                    Some((prev, at))
                        if now.saturating_duration_since(at) < self.config.idle_hold.forget =>
                    {
                        self.config.idle_hold.next(Some(prev))
                    }
                    _ => self.config.idle_hold.next(None),
                };
                // A zero error wait (configurable) would retry in the same instant, again and
                // again against a peer that refuses: never wait less than this.
                let wait = wait.max(MIN_IDLE_HOLD);
                self.last_backoff = Some((wait, now));
                self.idle_hold.start(now, wait);
            }
        }
    }

    /// Sends `n` when an OPEN went out on the connection (a NOTIFICATION before our OPEN would
    /// confuse the peer), closes it and forgets it.
    fn close_conn(&mut self, id: ConnId, n: Option<Notification>, out: &mut Vec<Action>) {
        let Some(conn) = self.conn(id) else { return };
        if let Some(n) = n
            && conn.open_sent()
        {
            out.push(Action::Send(id, Message::Notification(n)));
        }
        out.push(Action::Close(id));
        self.remove(id);
    }

    fn shut_all(&mut self, n: &Notification, out: &mut Vec<Action>) {
        let ids: Vec<(ConnId, bool)> = self
            .conns
            .iter()
            .map(|c| (c.id, c.phase == Phase::Established))
            .collect();
        for (id, established) in ids {
            self.close_conn(id, Some(n.clone()), out);
            if established {
                out.push(Action::Down(Reason::AdminStop(n.clone())));
            }
        }
    }

    /// Emits a StateChange if the derived state moved.
    fn report(&mut self, out: &mut Vec<Action>) {
        let now = self.derive_state();
        if now != self.state {
            out.push(Action::StateChange {
                from: self.state,
                to: now,
                reason: self.reason.clone(),
            });
            self.state = now;
        }
    }

    fn derive_state(&self) -> State {
        let best = self.conns.iter().map(|c| match (c.phase, c.dir) {
            (Phase::Established, _) => State::Established,
            (Phase::OpenConfirm, _) => State::OpenConfirm,
            (Phase::OpenSent, _) => State::OpenSent,
            (Phase::Connecting | Phase::DelayOpen, Direction::Outbound) => State::Connect,
            (Phase::Connecting | Phase::DelayOpen, Direction::Inbound) => State::Active,
        });
        match best.max() {
            Some(s) => s,
            None if self.enabled && !self.idle_hold.is_running() => State::Active,
            None => State::Idle,
        }
    }

    // ===== helpers =====

    fn new_id(&mut self) -> ConnId {
        self.next_conn += 1;
        ConnId(self.next_conn)
    }

    fn conn(&self, id: ConnId) -> Option<&Conn> {
        self.conns.iter().find(|c| c.id == id)
    }

    fn conn_mut(&mut self, id: ConnId) -> Option<&mut Conn> {
        self.conns.iter_mut().find(|c| c.id == id)
    }

    fn remove(&mut self, id: ConnId) {
        self.conns.retain(|c| c.id != id);
    }
}
