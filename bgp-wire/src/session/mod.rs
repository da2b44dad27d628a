//! The tokio driver around the sans-IO [`fsm`](crate::fsm): sockets, timers, one task per
//! session.
//!
//! An [`Endpoint`] listens (default `0.0.0.0:179` and `[::]:179`, or given addresses) and hands
//! each accepted connection to the session of the peer with that source address; a connection
//! from an address that is no configured peer is closed at once and logged. [`Endpoint::add_peer`]
//! spawns the session task and returns a [`Peer`]: [`Command`]s go in, [`SessionEvent`]s come
//! out, both over bounded channels.
//!
//! Bounded everywhere: a connection's read buffer holds at most two messages; decoding pauses
//! while [`PeerConfig::event_capacity`] events wait for the consumer (TCP then pushes back on
//! the peer); commands are taken only while less than [`PeerConfig::write_high_water`] octets
//! of UPDATEs wait to be written, so a slow peer pushes back on the caller. OPEN, KEEPALIVE and
//! NOTIFICATION go ahead of queued UPDATEs, at the next message boundary, so keepalives are
//! never starved by an UPDATE backlog.
//!
//! Note: the consumer must keep reading events; a consumer stalled for longer than the hold
//! time stops us reading the peer's keepalives, and the session ends with a hold timer expiry.

mod sockopt;

use std::collections::{HashMap, VecDeque};
use std::future::{Future, poll_fn};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio::io::AsyncWrite;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

pub use sockopt::MD5_MAX_KEY_LEN;

use crate::context::{DecodeContext, EncodeContext, HEADER_LEN, MAX_EXTENDED_MESSAGE_LEN};
use crate::framing::next_message;
use crate::fsm::{
    Action, ConnId, Direction, Event, Negotiated, Reason, Session, SessionConfig, State,
};
use crate::iana::{CeaseSubcode, MessageType, RouteRefreshSubtype};
use crate::message::{Decoded, Message, RouteRefresh, Update};
use crate::nlri::Family;

/// The BGP port (RFC 4271 §8.2.1).
pub const BGP_PORT: u16 = 179;

/// Transport settings of one peer, around its [`SessionConfig`].
#[derive(Clone, Debug)]
pub struct PeerConfig {
    /// The state machine's configuration.
    pub session: SessionConfig,
    /// The peer's address; incoming connections are matched on it.
    pub address: IpAddr,
    /// The peer's port for our connections (179).
    pub port: u16,
    /// Source address for our connections (none: chosen by the kernel).
    pub local_address: Option<IpAddr>,
    /// Source port for our connections (none: ephemeral).
    pub local_port: Option<u16>,
    /// TTL / hop limit of what we send (multihop); none: the system default.
    pub ttl: Option<u8>,
    /// GTSM (RFC 5082): the peer is at most this many hops away. We send with TTL 255 and
    /// drop segments that arrive with TTL below `256 - hops`.
    pub gtsm_hops: Option<u8>,
    /// TCP-MD5 key (RFC 2385), at most 80 octets, on the listening and connecting sockets.
    pub md5_key: Option<Vec<u8>>,
    /// Capacity of the command and event channels.
    pub event_capacity: usize,
    /// Octets of UPDATEs queued for writing above which no further command is taken.
    pub write_high_water: usize,
}

impl PeerConfig {
    /// A peer at `address` with default transport settings.
    pub fn new(session: SessionConfig, address: IpAddr) -> PeerConfig {
        PeerConfig {
            session,
            address,
            port: BGP_PORT,
            local_address: None,
            local_port: None,
            ttl: None,
            gtsm_hops: None,
            md5_key: None,
            event_capacity: 256,
            write_high_water: 256 * 1024,
        }
    }
}

/// What the session task is asked to do.
#[derive(Clone, Debug)]
pub enum Command {
    /// Start (or restart after a stop).
    Start,
    /// Administrative stop with an RFC 8203 shutdown communication.
    Stop {
        /// Cease subcode (administrative shutdown, peer de-configured, ...).
        subcode: CeaseSubcode,
        /// Shutdown communication, may be empty.
        message: String,
    },
    /// Administrative reset (Cease / Administrative Reset), then start again.
    Reset {
        /// Shutdown communication, may be empty.
        message: String,
    },
    /// Encode these UPDATEs with the negotiated context and send them.
    SendUpdates(Vec<Update>),
    /// Send these already encoded messages (encoded once for an update group with
    /// [`Negotiated::encode_context`]).
    SendEncoded(Vec<Bytes>),
    /// Ask the peer to re-send a family (RFC 2918).
    RouteRefresh(Family),
}

/// What the session task reports.
// Nearly every event is `Received`, so boxing it would add an allocation per UPDATE without
// shrinking the queues.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
pub enum SessionEvent {
    /// The session state changed.
    StateChange {
        /// Previous state.
        from: State,
        /// New state.
        to: State,
        /// Why.
        reason: Reason,
    },
    /// Established, with what was negotiated.
    Established(Arc<Negotiated>),
    /// The Established session ended.
    Down(Reason),
    /// An UPDATE or ROUTE-REFRESH from the peer, with its non-fatal RFC 7606 errors.
    Received(Decoded),
    /// Something we were asked to send could not be encoded (and was dropped).
    SendFailed(String),
    /// Both sides had connected; collision detection kept the connection opened by `kept`.
    CollisionResolved {
        /// Who opened the surviving connection.
        kept: Direction,
    },
}

/// A running session: the handle to its task.
#[derive(Debug)]
pub struct Peer {
    /// Commands in (bounded: `send().await` waits while the peer is slow).
    pub commands: mpsc::Sender<Command>,
    /// Events out (bounded: read them, or the session stops reading from the peer).
    pub events: mpsc::Receiver<SessionEvent>,
    task: JoinHandle<()>,
}

impl Peer {
    /// Waits for the session task to end (after `commands` is dropped it sends Cease / Peer
    /// De-configured and exits).
    pub async fn join(self) {
        let Peer {
            commands,
            events,
            task,
        } = self;
        drop(commands);
        drop(events);
        let _ = task.await;
    }
}

/// Listening sockets plus the table of configured peers they accept connections for.
#[derive(Debug)]
pub struct Endpoint {
    shared: Arc<Shared>,
    accept_tasks: Vec<JoinHandle<()>>,
}

#[derive(Debug, Default)]
struct Shared {
    listeners: Vec<Arc<TcpListener>>,
    peers: Mutex<HashMap<IpAddr, mpsc::Sender<TcpStream>>>,
}

impl Shared {
    fn peers(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, mpsc::Sender<TcpStream>>> {
        self.peers.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Dropping the endpoint stops accepting; running sessions go on until their handles drop.
impl Drop for Endpoint {
    fn drop(&mut self) {
        for t in &self.accept_tasks {
            t.abort();
        }
    }
}

impl Endpoint {
    /// Listens on `0.0.0.0:179` and `[::]:179`.
    pub fn bind_default() -> io::Result<Endpoint> {
        Endpoint::bind(&[
            SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), BGP_PORT),
            SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), BGP_PORT),
        ])
    }

    /// Listens on each address (none: accept nothing, connect out only). Must be called
    /// inside a tokio runtime.
    pub fn bind(addrs: &[SocketAddr]) -> io::Result<Endpoint> {
        let mut listeners = Vec::new();
        for addr in addrs {
            let sock = match addr {
                SocketAddr::V4(_) => TcpSocket::new_v4()?,
                SocketAddr::V6(_) => {
                    let s = TcpSocket::new_v6()?;
                    sockopt::set_v6_only(&s)?;
                    s
                }
            };
            sock.set_reuseaddr(true)?;
            // For GTSM peers: their SYN's TTL is checked at accept (see `prepare_accepted`).
            if let Err(e) = sockopt::set_save_syn(&sock) {
                tracing::debug!(error = %e, "TCP_SAVE_SYN unavailable: GTSM checks start at accept");
            }
            sock.bind(*addr)?;
            listeners.push(Arc::new(sock.listen(128)?));
        }
        let shared = Arc::new(Shared {
            listeners,
            peers: Mutex::default(),
        });
        let accept_tasks = shared
            .listeners
            .iter()
            .map(|l| tokio::spawn(accept_loop(l.clone(), shared.clone())))
            .collect();
        Ok(Endpoint {
            shared,
            accept_tasks,
        })
    }

    /// The addresses actually listened on (useful with port 0).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.shared
            .listeners
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .collect()
    }

    /// Configures a peer and spawns its session task (not started: send [`Command::Start`]).
    pub fn add_peer(&self, config: PeerConfig) -> io::Result<Peer> {
        let address = canonical(config.address);
        if let Some(key) = &config.md5_key {
            for l in &self.shared.listeners {
                let same_family = l
                    .local_addr()
                    .is_ok_and(|a| a.is_ipv4() == address.is_ipv4());
                if same_family {
                    sockopt::set_tcp_md5(l.as_ref(), address, key)?;
                }
            }
        }
        if config.gtsm_hops.is_some() {
            // The kernel answers SYNs with the listener's TTL before we see the connection;
            // a GTSM peer drops a SYN-ACK below 255. (The minimum TTL we require is set on the
            // accepted connection: the listener is shared by peers with different settings.)
            for l in &self.shared.listeners {
                if let Ok(local) = l.local_addr()
                    && local.is_ipv4() == address.is_ipv4()
                {
                    sockopt::set_ttl(l.as_ref(), local, 255)?;
                }
            }
        }
        let (incoming_tx, incoming_rx) = mpsc::channel(4);
        {
            let mut peers = self.shared.peers();
            if peers.contains_key(&address) {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("peer {address} is already configured"),
                ));
            }
            peers.insert(address, incoming_tx);
        }
        let (cmd_tx, cmd_rx) = mpsc::channel(config.event_capacity.max(1));
        let (ev_tx, ev_rx) = mpsc::channel(config.event_capacity.max(1));
        let driver = Driver::new(config, cmd_rx, ev_tx, incoming_rx);
        let shared = self.shared.clone();
        let task = tokio::spawn(async move {
            let md5 = driver.transport.md5_key.is_some();
            driver.run().await;
            shared.peers().remove(&address);
            if md5 {
                for l in &shared.listeners {
                    let same_family = l
                        .local_addr()
                        .is_ok_and(|a| a.is_ipv4() == address.is_ipv4());
                    if same_family {
                        let _ = sockopt::set_tcp_md5(l.as_ref(), address, &[]);
                    }
                }
            }
        });
        Ok(Peer {
            commands: cmd_tx,
            events: ev_rx,
            task,
        })
    }
}

/// IPv4-mapped IPv6 addresses are IPv4 peers.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

async fn accept_loop(listener: Arc<TcpListener>, shared: Arc<Shared>) {
    loop {
        match listener.accept().await {
            Ok((stream, remote)) => {
                let ip = canonical(remote.ip());
                let tx = shared.peers().get(&ip).cloned();
                match tx {
                    Some(tx) => {
                        if tx.try_send(stream).is_err() {
                            tracing::warn!(%remote, "peer busy with other connections, closed");
                        }
                    }
                    None => {
                        tracing::warn!(%remote, "connection from unconfigured address, closed");
                        drop(stream);
                    }
                }
            }
            Err(e) => {
                // Out of descriptors and the like: wait a little instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// How many decoded events may wait for the consumer before we stop decoding.
const PENDING_EVENTS: usize = 64;
/// How long a closing connection may take to flush its last messages.
const CLOSE_FLUSH: Duration = Duration::from_secs(2);

/// One TCP connection of the session.
struct ConnIo {
    id: ConnId,
    stream: TcpStream,
    rbuf: BytesMut,
    eof: bool,
    /// OPEN, KEEPALIVE, NOTIFICATION: written before any queued UPDATE.
    control: VecDeque<Bytes>,
    /// UPDATEs and ROUTE-REFRESH.
    bulk: VecDeque<Bytes>,
    bulk_bytes: usize,
    /// The message being written (never interrupted, so messages stay whole).
    current: Option<Bytes>,
    decode: DecodeContext,
    encode: EncodeContext,
    /// Close once written out, or at this deadline.
    closing: Option<Instant>,
}

impl ConnIo {
    fn new(id: ConnId, stream: TcpStream) -> ConnIo {
        ConnIo {
            id,
            stream,
            rbuf: BytesMut::with_capacity(8192),
            eof: false,
            control: VecDeque::new(),
            bulk: VecDeque::new(),
            bulk_bytes: 0,
            current: None,
            decode: DecodeContext::default(),
            encode: EncodeContext::default(),
            closing: None,
        }
    }

    /// Whether a KEEPALIVE is queued and not yet started.
    fn keepalive_queued(&self) -> bool {
        self.control
            .iter()
            .any(|m| m.get(HEADER_LEN - 1) == Some(&u8::from(MessageType::Keepalive)))
    }

    /// Writes as much as the socket takes. `Ready(Err)` on a write error.
    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            if self.current.is_none() {
                self.current = match self.control.pop_front() {
                    Some(m) => Some(m),
                    None => {
                        let m = self.bulk.pop_front();
                        if let Some(m) = &m {
                            self.bulk_bytes -= m.len();
                        }
                        m
                    }
                };
            }
            let Some(cur) = self.current.as_mut() else {
                return Poll::Ready(Ok(()));
            };
            match Pin::new(&mut self.stream).poll_write(cx, cur) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => {
                    cur.advance(n);
                    if cur.is_empty() {
                        self.current = None;
                    }
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    /// Whether a whole message is buffered.
    fn has_frame(&self) -> bool {
        matches!(
            crate::framing::frame(&self.rbuf, self.decode.max_message_len()),
            Ok(Some(_)) | Err(_)
        )
    }

    /// Reads once into the buffer (bounded to two maximum-size messages).
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let limit = 2 * MAX_EXTENDED_MESSAGE_LEN;
        if self.rbuf.len() >= limit {
            return Poll::Pending;
        }
        let room = (limit - self.rbuf.len()).min(64 * 1024);
        self.rbuf.reserve(room);
        loop {
            match self.stream.poll_read_ready(cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
            match self.stream.try_read_buf(&mut (&mut self.rbuf).limit(room)) {
                Ok(n) => return Poll::Ready(Ok(n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

/// Why the driver woke up.
enum Wake {
    Timer,
    Command(Option<Command>),
    Incoming(TcpStream),
    Connected(ConnId, io::Result<TcpStream>),
    Readable(ConnId),
    Lost(ConnId),
    EventSent,
}

type ReserveFuture = Pin<
    Box<
        dyn Future<Output = Result<mpsc::OwnedPermit<SessionEvent>, mpsc::error::SendError<()>>>
            + Send,
    >,
>;

/// Transport settings, without the FSM's configuration.
#[derive(Clone, Debug)]
struct Transport {
    address: IpAddr,
    port: u16,
    local_address: Option<IpAddr>,
    local_port: Option<u16>,
    ttl: Option<u8>,
    gtsm_hops: Option<u8>,
    md5_key: Option<Vec<u8>>,
    connect_timeout: Duration,
    write_high_water: usize,
}

struct Driver {
    fsm: Session,
    transport: Transport,
    commands: mpsc::Receiver<Command>,
    commands_open: bool,
    events: mpsc::Sender<SessionEvent>,
    pending: VecDeque<SessionEvent>,
    reserve: Option<ReserveFuture>,
    incoming: mpsc::Receiver<TcpStream>,
    /// Stream of the connection just reported with `Event::Incoming`.
    accepting: Option<TcpStream>,
    conns: Vec<ConnIo>,
    connecting: Vec<(ConnId, JoinHandle<()>)>,
    connect_tx: mpsc::Sender<(ConnId, io::Result<TcpStream>)>,
    connect_rx: mpsc::Receiver<(ConnId, io::Result<TcpStream>)>,
    established: Option<ConnId>,
    sleep: Pin<Box<tokio::time::Sleep>>,
    sleep_armed: bool,
}

impl Driver {
    fn new(
        config: PeerConfig,
        commands: mpsc::Receiver<Command>,
        events: mpsc::Sender<SessionEvent>,
        incoming: mpsc::Receiver<TcpStream>,
    ) -> Driver {
        let transport = Transport {
            address: canonical(config.address),
            port: config.port,
            local_address: config.local_address,
            local_port: config.local_port,
            ttl: config.ttl,
            gtsm_hops: config.gtsm_hops,
            md5_key: config.md5_key,
            connect_timeout: config.session.connect_retry.max(Duration::from_secs(1)),
            write_high_water: config.write_high_water,
        };
        let (connect_tx, connect_rx) = mpsc::channel(4);
        Driver {
            fsm: Session::new(config.session),
            transport,
            commands,
            commands_open: true,
            events,
            pending: VecDeque::new(),
            reserve: None,
            incoming,
            accepting: None,
            conns: Vec::new(),
            connecting: Vec::new(),
            connect_tx,
            connect_rx,
            established: None,
            sleep: Box::pin(tokio::time::sleep(Duration::ZERO)),
            sleep_armed: false,
        }
    }

    async fn run(mut self) {
        loop {
            self.arm_timer();
            let wake = poll_fn(|cx| self.poll_wake(cx)).await;
            let now = Instant::now();
            match wake {
                Wake::Timer => {
                    let actions = self.fsm.handle_timeout(now);
                    self.apply(actions);
                }
                Wake::Command(Some(cmd)) => self.command(cmd, now),
                Wake::Command(None) => {
                    // The handle was dropped: the peer is de-configured.
                    self.commands_open = false;
                    let actions = self.fsm.handle(
                        Event::Stop {
                            subcode: CeaseSubcode::PeerDeconfigured,
                            message: String::new(),
                        },
                        now,
                    );
                    self.apply(actions);
                    self.drain_closing().await;
                    for (_, task) in self.connecting.drain(..) {
                        task.abort();
                    }
                    return;
                }
                Wake::Incoming(stream) => {
                    self.accepting = Some(stream);
                    let actions = self.fsm.handle(Event::Incoming, now);
                    self.apply(actions);
                    self.accepting = None;
                }
                Wake::Connected(id, result) => {
                    self.connecting.retain(|(c, _)| *c != id);
                    let event = match result {
                        Ok(stream) => {
                            self.conns.push(ConnIo::new(id, stream));
                            Event::Connected(id)
                        }
                        Err(e) => {
                            tracing::debug!(peer = %self.transport.address, error = %e, "connect failed");
                            Event::ConnectFailed(id)
                        }
                    };
                    let actions = self.fsm.handle(event, now);
                    self.apply(actions);
                }
                Wake::Readable(id) => self.decode(id, now),
                Wake::Lost(id) => {
                    self.conns.retain(|c| c.id != id);
                    let actions = self.fsm.handle(Event::Closed(id), now);
                    self.apply(actions);
                }
                Wake::EventSent => {}
            }
        }
    }

    fn arm_timer(&mut self) {
        let mut next = self.fsm.poll_timeout();
        for c in &self.conns {
            if let Some(at) = c.closing {
                next = Some(next.map_or(at, |n| n.min(at)));
            }
        }
        match next {
            Some(at) => {
                self.sleep
                    .as_mut()
                    .reset(tokio::time::Instant::from_std(at));
                self.sleep_armed = true;
            }
            None => self.sleep_armed = false,
        }
    }

    fn poll_wake(&mut self, cx: &mut Context<'_>) -> Poll<Wake> {
        // Writes first: they only make progress, and wake us again when the socket drains.
        let mut lost = None;
        for c in &mut self.conns {
            match c.poll_flush(cx) {
                Poll::Ready(Err(_)) => lost = Some(c.id),
                Poll::Ready(Ok(())) if c.closing.is_some() => lost = Some(c.id),
                _ => {}
            }
        }
        if let Some(id) = lost {
            return self.lose(id);
        }

        if self.sleep_armed && self.sleep.as_mut().poll(cx).is_ready() {
            self.sleep_armed = false;
            let now = Instant::now();
            if let Some(c) = self
                .conns
                .iter()
                .find(|c| c.closing.is_some_and(|at| at <= now))
            {
                let id = c.id;
                return self.lose(id);
            }
            return Poll::Ready(Wake::Timer);
        }

        // Deliver pending events to the consumer.
        if !self.pending.is_empty() {
            let fut = self
                .reserve
                .get_or_insert_with(|| Box::pin(self.events.clone().reserve_owned()));
            if let Poll::Ready(res) = fut.as_mut().poll(cx) {
                self.reserve = None;
                if let (Ok(permit), Some(ev)) = (res, self.pending.pop_front()) {
                    permit.send(ev);
                } else {
                    // Nobody listens any more: drop what is pending.
                    self.pending.clear();
                }
                return Poll::Ready(Wake::EventSent);
            }
        }

        if let Poll::Ready(Some((id, res))) = self.connect_rx.poll_recv(cx) {
            return Poll::Ready(Wake::Connected(id, res));
        }
        if let Poll::Ready(Some(stream)) = self.incoming.poll_recv(cx) {
            return Poll::Ready(Wake::Incoming(stream));
        }

        // Reads, while the consumer keeps up.
        if self.pending.len() < PENDING_EVENTS {
            for i in 0..self.conns.len() {
                let c = &mut self.conns[i];
                if c.closing.is_some() {
                    continue;
                }
                if c.has_frame() {
                    return Poll::Ready(Wake::Readable(c.id));
                }
                if c.eof {
                    continue;
                }
                match c.poll_fill(cx) {
                    Poll::Ready(Ok(0)) => {
                        c.eof = true;
                        let id = c.id;
                        return self.lose(id);
                    }
                    Poll::Ready(Ok(_)) => return Poll::Ready(Wake::Readable(c.id)),
                    Poll::Ready(Err(_)) => {
                        let id = c.id;
                        return self.lose(id);
                    }
                    Poll::Pending => {}
                }
            }
        }

        // Commands, while the established connection's UPDATE queue is below high water.
        let backlog = self
            .established
            .and_then(|id| self.conns.iter().find(|c| c.id == id))
            .map_or(0, |c| c.bulk_bytes);
        if self.commands_open
            && backlog < self.transport.write_high_water
            && let Poll::Ready(cmd) = self.commands.poll_recv(cx)
        {
            return Poll::Ready(Wake::Command(cmd));
        }
        Poll::Pending
    }

    /// A connection is gone (closed by us and flushed, or lost).
    fn lose(&mut self, id: ConnId) -> Poll<Wake> {
        let closing = self.conns.iter().any(|c| c.id == id && c.closing.is_some());
        self.conns.retain(|c| c.id != id);
        if closing {
            // We closed it: the state machine already forgot it.
            Poll::Ready(Wake::EventSent)
        } else {
            Poll::Ready(Wake::Lost(id))
        }
    }

    fn command(&mut self, cmd: Command, now: Instant) {
        match cmd {
            Command::Start => {
                let a = self.fsm.handle(Event::Start, now);
                self.apply(a);
            }
            Command::Stop { subcode, message } => {
                let a = self.fsm.handle(Event::Stop { subcode, message }, now);
                self.apply(a);
            }
            Command::Reset { message } => {
                let a = self.fsm.handle(Event::Reset { message }, now);
                self.apply(a);
            }
            Command::SendUpdates(updates) => {
                for u in updates {
                    self.send_bulk(&Message::Update(u));
                }
            }
            Command::SendEncoded(messages) => {
                if let Some(c) = self.established_conn() {
                    for m in messages {
                        c.bulk_bytes += m.len();
                        c.bulk.push_back(m);
                    }
                }
            }
            Command::RouteRefresh(family) => {
                // RFC 2918 §4: only to a peer that announced the capability, for a family
                // that was negotiated.
                let allowed = self
                    .fsm
                    .established()
                    .is_some_and(|(_, n)| n.route_refresh && n.families.contains(&family));
                if !allowed {
                    self.pending.push_back(SessionEvent::SendFailed(format!(
                        "route refresh for {}/{} not negotiated",
                        family.afi, family.safi
                    )));
                    return;
                }
                let rr = RouteRefresh {
                    family,
                    subtype: RouteRefreshSubtype::Request,
                };
                self.send_bulk(&Message::RouteRefresh(rr));
            }
        }
    }

    fn established_conn(&mut self) -> Option<&mut ConnIo> {
        let id = self.established?;
        self.conns.iter_mut().find(|c| c.id == id)
    }

    fn send_bulk(&mut self, m: &Message) {
        let Some(c) = self.established_conn() else {
            return;
        };
        let mut buf = BytesMut::new();
        match m.encode(&c.encode, &mut buf) {
            Ok(()) => {
                c.bulk_bytes += buf.len();
                c.bulk.push_back(buf.freeze());
            }
            Err(e) => self
                .pending
                .push_back(SessionEvent::SendFailed(e.to_string())),
        }
    }

    /// Frames and decodes what is buffered on `id`, one message at a time, feeding the state
    /// machine before decoding the next (the context may change after an OPEN).
    fn decode(&mut self, id: ConnId, now: Instant) {
        while self.pending.len() < PENDING_EVENTS {
            let Some(c) = self.conns.iter_mut().find(|c| c.id == id) else {
                return;
            };
            if c.closing.is_some() {
                return;
            }
            let event = match next_message(&mut c.rbuf, c.decode.max_message_len()) {
                Ok(None) => return,
                Ok(Some(frame)) => match Message::decode(frame, &c.decode) {
                    Ok(d) => Event::Received(id, d),
                    Err(e) => Event::DecodeError(id, e.notification()),
                },
                Err(e) => Event::DecodeError(id, e.notification()),
            };
            let actions = self.fsm.handle(event, now);
            self.apply(actions);
            if let Some(n) = self.fsm.negotiated(id).cloned()
                && let Some(c) = self.conns.iter_mut().find(|c| c.id == id)
            {
                c.decode = n.decode_context();
                c.encode = n.encode_context();
            }
        }
    }

    fn apply(&mut self, actions: Vec<Action>) {
        let mut rejected = Vec::new();
        for action in actions {
            match action {
                Action::Connect(id) => self.connect(id),
                Action::Accept(id) => {
                    if let Some(stream) = self.accepting.take() {
                        match self.prepare_accepted(&stream) {
                            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                                // GTSM violation: close it before reading a byte.
                                tracing::warn!(peer = %self.transport.address, error = %e, "connection refused");
                                drop(stream);
                                rejected.push(id);
                                continue;
                            }
                            Err(e) => {
                                tracing::warn!(peer = %self.transport.address, error = %e, "socket options");
                            }
                            Ok(()) => {}
                        }
                        self.conns.push(ConnIo::new(id, stream));
                    }
                }
                Action::Refuse => {
                    self.accepting = None;
                }
                Action::Send(id, m) => {
                    let Some(c) = self.conns.iter_mut().find(|c| c.id == id) else {
                        continue;
                    };
                    // A KEEPALIVE still waiting behind a blocked socket is as good as two:
                    // the control queue stays bounded however long the peer does not read.
                    if matches!(m, Message::Keepalive) && c.keepalive_queued() {
                        continue;
                    }
                    let mut buf = BytesMut::new();
                    match m.encode(&c.encode, &mut buf) {
                        Ok(()) => {
                            if matches!(m, Message::Update(_) | Message::RouteRefresh(_)) {
                                c.bulk_bytes += buf.len();
                                c.bulk.push_back(buf.freeze());
                            } else {
                                c.control.push_back(buf.freeze());
                            }
                        }
                        Err(e) => self
                            .pending
                            .push_back(SessionEvent::SendFailed(e.to_string())),
                    }
                }
                Action::Close(id) => {
                    if let Some(pos) = self.connecting.iter().position(|(c, _)| *c == id) {
                        self.connecting.swap_remove(pos).1.abort();
                    }
                    if let Some(c) = self.conns.iter_mut().find(|c| c.id == id) {
                        // Queued UPDATEs are moot; control messages (the NOTIFICATION) go out.
                        c.bulk.clear();
                        c.bulk_bytes = 0;
                        c.closing = Some(Instant::now() + CLOSE_FLUSH);
                    }
                    if self.established == Some(id) {
                        self.established = None;
                    }
                }
                Action::StateChange { from, to, reason } => {
                    tracing::info!(peer = %self.transport.address, %from, %to, %reason, "BGP state");
                    self.pending
                        .push_back(SessionEvent::StateChange { from, to, reason });
                }
                Action::Established(id, n) => {
                    self.established = Some(id);
                    if let Some(c) = self.conns.iter_mut().find(|c| c.id == id) {
                        c.decode = n.decode_context();
                        c.encode = n.encode_context();
                    }
                    self.pending.push_back(SessionEvent::Established(n));
                }
                Action::Deliver(d) => self.pending.push_back(SessionEvent::Received(d)),
                Action::CollisionResolved { kept } => {
                    tracing::info!(peer = %self.transport.address, ?kept, "connection collision resolved");
                    self.pending
                        .push_back(SessionEvent::CollisionResolved { kept });
                }
                Action::Down(reason) => {
                    self.established = None;
                    self.pending.push_back(SessionEvent::Down(reason));
                }
            }
        }
        for id in rejected {
            let actions = self.fsm.handle(Event::Closed(id), Instant::now());
            self.apply(actions);
        }
    }

    fn prepare_accepted(&self, stream: &TcpStream) -> io::Result<()> {
        stream.set_nodelay(true)?;
        let peer = stream.peer_addr()?;
        if let Some(hops) = self.transport.gtsm_hops {
            let min = 255u8.saturating_sub(hops).saturating_add(1);
            sockopt::set_ttl(stream, peer, 255)?;
            sockopt::set_min_ttl(stream, peer, min)?;
            // RFC 5082 §3: the minimum TTL applies from the first segment. Segments that
            // arrived before IP_MINTTL was set were not checked, so the SYN's TTL decides.
            if let Some(ttl) = sockopt::saved_syn_ttl(stream)?
                && ttl < min
            {
                return Err(io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    format!("GTSM: SYN arrived with TTL {ttl}, below {min}"),
                ));
            }
        } else if let Some(ttl) = self.transport.ttl {
            sockopt::set_ttl(stream, peer, ttl)?;
        }
        Ok(())
    }

    fn connect(&mut self, id: ConnId) {
        let t = self.transport.clone();
        let tx = self.connect_tx.clone();
        let task = tokio::spawn(async move {
            let res = match tokio::time::timeout(t.connect_timeout, connect(&t)).await {
                Ok(r) => r,
                Err(_) => Err(io::ErrorKind::TimedOut.into()),
            };
            let _ = tx.send((id, res)).await;
        });
        self.connecting.push((id, task));
    }

    /// Flushes closing connections (the final NOTIFICATIONs) for at most [`CLOSE_FLUSH`].
    async fn drain_closing(&mut self) {
        let deadline = tokio::time::Instant::now() + CLOSE_FLUSH;
        let flush = poll_fn(|cx| {
            self.conns
                .retain_mut(|c| !matches!(c.poll_flush(cx), Poll::Ready(_)));
            if self.conns.is_empty() {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        });
        let _ = tokio::time::timeout_at(deadline, flush).await;
    }
}

/// Opens our connection to the peer with the configured source, TTL/GTSM and MD5 key.
async fn connect(t: &Transport) -> io::Result<TcpStream> {
    let remote = SocketAddr::new(t.address, t.port);
    let sock = match remote {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    if let Some(key) = &t.md5_key {
        sockopt::set_tcp_md5(&sock, t.address, key)?;
    }
    if let Some(hops) = t.gtsm_hops {
        sockopt::set_ttl(&sock, remote, 255)?;
        sockopt::set_min_ttl(&sock, remote, 255u8.saturating_sub(hops).saturating_add(1))?;
    } else if let Some(ttl) = t.ttl {
        sockopt::set_ttl(&sock, remote, ttl)?;
    }
    if t.local_address.is_some() || t.local_port.is_some() {
        let ip = t.local_address.unwrap_or(match remote {
            SocketAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            SocketAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        });
        sock.set_reuseaddr(true)?;
        sock.bind(SocketAddr::new(ip, t.local_port.unwrap_or(0)))?;
    }
    let stream = sock.connect(remote).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

#[cfg(test)]
mod tests;
