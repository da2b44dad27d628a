//! The core task: owns the RIB, the table of sessions and the FIB handle; applies
//! configurations; turns session events and kernel events into RIB inputs, and RIB outputs
//! into encoded UPDATEs and kernel routes.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bgp_wire::fsm::{Negotiated, Reason, State};
use bgp_wire::iana::{CeaseSubcode, ErrorCode};
use bgp_wire::session::{Command, Endpoint, SessionEvent};
use bgp_wire::{
    EncodeContext, MAX_EXTENDED_MESSAGE_LEN, MAX_MESSAGE_LEN, Message, Prefix, UpdatePacker,
    next_message,
};
use bytes::{Bytes, BytesMut};
use fib_netlink::{
    Device, Fib, FibConfig, FibEvent, FibHandle, InterfacePatterns, NextHop, Reconcile, Route,
    RouteKey,
};
use ipnet::IpNet;
use rib::attrs::preference;
use rib::policy::to_prefix;
use rib::{Down, FibChange, Local, OutUpdate, PeerId, Rib, RibConfig, RouteAttrs, Target};
use tern_config::{DesiredConfig, NormalRoutePriority, Peer, StaticRoute, StaticTarget};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::diff::{self, PeerChange};
use crate::session::{self, Control, SessionHandle, Tagged};
use crate::{
    ApplySummary, Error, Event, FibStats, PeerAdmin, PeerStatus, RouteEntry, RouteFrom,
    SpeakerOptions, SpeakerStatus,
};

/// Requests from the [`Speaker`](crate::Speaker) handle.
pub(crate) enum Request {
    Apply(
        Box<DesiredConfig>,
        oneshot::Sender<Result<ApplySummary, Error>>,
    ),
    Peers(oneshot::Sender<Vec<PeerStatus>>),
    Routes(Option<Prefix>, oneshot::Sender<Vec<RouteEntry>>),
    AllRoutes(oneshot::Sender<Vec<RouteEntry>>),
    Admin(
        String,
        PeerAdmin,
        String,
        oneshot::Sender<Result<(), Error>>,
    ),
    Status(oneshot::Sender<SpeakerStatus>),
    Listening(oneshot::Sender<Vec<SocketAddr>>),
    Config(oneshot::Sender<Option<DesiredConfig>>),
    Shutdown(String, oneshot::Sender<()>),
}

/// Messages of session events queued for the core (all sessions share it; each session task
/// waits when it is full, which pushes back on that peer's TCP stream only). Each holds up to
/// [`session::EVENT_BATCH`] events, so at most 1,024 decoded messages wait here, as before
/// events were batched.
const SESSION_QUEUE: usize = 1024 / session::EVENT_BATCH;
/// Events handled before the RIB's output is flushed (larger batches encode fewer UPDATEs).
const BATCH: usize = 256;

struct PeerSlot {
    cfg: Peer,
    id: PeerId,
    handle: SessionHandle,
    local_address: IpAddr,
    state: State,
    since: Instant,
    since_wall: SystemTime,
    established_at: Option<Instant>,
    /// Administratively enabled (false after `disable`).
    enabled: bool,
    /// Held down by its prefix limit; started again at `restart_at` (or by `enable`).
    limited: bool,
    restart_at: Option<Instant>,
    negotiated: Option<Arc<Negotiated>>,
    encode: Option<EncodeContext>,
    end_of_rib: bool,
    overflowed: bool,
    updates_received: u64,
    messages_received: u64,
    messages_sent: u64,
    established_count: u64,
    flaps: u64,
    last_error: Option<String>,
    last_error_code: Option<(u8, u8)>,
}

struct FibGlue {
    handle: FibHandle,
    /// The key of our kernel route for the RIB prefixes whose route is not at the default
    /// key ([`default_key`]: main table, NormalRoutePriority), i.e. whose kernel policy set a
    /// metric. Every other installed prefix is at its default key, so a full table costs no
    /// entry here (the FIB's desired state already holds each route once).
    other_keys: HashMap<Prefix, RouteKey>,
    /// The NormalRoutePriority the default keys were written with, fixed from the first
    /// write until everything is removed: a live change of the priority must still find the
    /// routes written before it (new ones then differ from this default and are recorded in
    /// `other_keys`, which removes the old key).
    priority: Option<NormalRoutePriority>,
    converged: bool,
    task: JoinHandle<()>,
}

pub(crate) struct Core {
    options: SpeakerOptions,
    events: broadcast::Sender<Event>,
    session_tx: mpsc::Sender<Tagged>,
    session_rx: mpsc::Receiver<Tagged>,
    deferred: Vec<Tagged>,
    running: Option<DesiredConfig>,
    rib: Rib,
    endpoint: Option<Endpoint>,
    peers: BTreeMap<Arc<str>, PeerSlot>,
    by_id: HashMap<PeerId, Arc<str>>,
    generations: HashMap<Arc<str>, u64>,
    next_generation: u64,
    fib: Option<FibGlue>,
    new_fib_events: Option<mpsc::Receiver<FibEvent>>,
    /// Kernel-learned routes: prefix → metric → attributes (the lowest metric is originated).
    kernel_routes: HashMap<IpNet, BTreeMap<u32, RouteAttrs>>,
    /// Connected networks: prefix → interface name.
    connected: HashMap<IpNet, RouteAttrs>,
    started: SystemTime,
    last_reconfigured: Option<SystemTime>,
    fib_operations: u64,
    fib_errors: u64,
}

async fn recv_opt<T>(rx: &mut Option<mpsc::Receiver<T>>) -> Option<T> {
    match rx {
        Some(r) => r.recv().await,
        None => std::future::pending().await,
    }
}

impl Core {
    pub(crate) fn new(options: SpeakerOptions, events: broadcast::Sender<Event>) -> Core {
        let (session_tx, session_rx) = mpsc::channel(SESSION_QUEUE);
        Core {
            options,
            events,
            session_tx,
            session_rx,
            deferred: Vec::new(),
            running: None,
            rib: Rib::new(RibConfig::new(Ipv4Addr::UNSPECIFIED, 0)),
            endpoint: None,
            peers: BTreeMap::new(),
            by_id: HashMap::new(),
            generations: HashMap::new(),
            next_generation: 0,
            fib: None,
            new_fib_events: None,
            kernel_routes: HashMap::new(),
            connected: HashMap::new(),
            started: SystemTime::now(),
            last_reconfigured: None,
            fib_operations: 0,
            fib_errors: 0,
        }
    }

    pub(crate) async fn run(mut self, mut requests: mpsc::Receiver<Request>) {
        let mut fib_events: Option<mpsc::Receiver<FibEvent>> = None;
        loop {
            let timeout = earliest(self.rib.poll_timeout(), self.next_restart());
            tokio::select! {
                r = requests.recv() => match r {
                    Some(Request::Shutdown(message, done)) => {
                        self.shutdown(&message).await;
                        let _ = done.send(());
                        return;
                    }
                    Some(r) => self.request(r).await,
                    None => {
                        self.shutdown("speaker dropped").await;
                        return;
                    }
                },
                t = self.session_rx.recv() => {
                    let mut handled = 0;
                    if let Some(t) = t {
                        handled += t.events.len();
                        self.session_event(t);
                    }
                    while handled < BATCH {
                        match self.session_rx.try_recv() {
                            Ok(t) => {
                                handled += t.events.len();
                                self.session_event(t);
                            }
                            Err(_) => break,
                        }
                    }
                }
                ev = recv_opt(&mut fib_events) => match ev {
                    Some(ev) => {
                        self.fib_event(ev);
                        if let Some(rx) = fib_events.as_mut() {
                            for _ in 0..BATCH {
                                match rx.try_recv() {
                                    Ok(ev) => self.fib_event(ev),
                                    Err(_) => break,
                                }
                            }
                        }
                    }
                    None => {
                        tracing::error!("the FIB task ended; kernel routes are no longer programmed");
                        fib_events = None;
                    }
                },
                _ = sleep_until(timeout) => {
                    let now = Instant::now();
                    self.rib.tick(now);
                    self.restart_limited(now);
                }
            }
            if let Some(rx) = self.new_fib_events.take() {
                fib_events = Some(rx);
            }
            for t in std::mem::take(&mut self.deferred) {
                self.session_event(t);
            }
            self.flush();
        }
    }

    async fn request(&mut self, r: Request) {
        match r {
            Request::Apply(c, reply) => {
                let res = self.apply(*c).await;
                if res.is_ok() {
                    self.last_reconfigured = Some(SystemTime::now());
                }
                let _ = reply.send(res);
            }
            Request::Peers(reply) => {
                let _ = reply.send(self.peer_status());
            }
            Request::Routes(prefix, reply) => {
                let _ = reply.send(self.route_entries(prefix));
            }
            Request::AllRoutes(reply) => {
                let _ = reply.send(self.all_route_entries());
            }
            Request::Admin(name, op, message, reply) => {
                let _ = reply.send(self.admin(&name, op, &message));
            }
            Request::Status(reply) => {
                let _ = reply.send(self.status());
            }
            Request::Listening(reply) => {
                let addrs = self
                    .endpoint
                    .as_ref()
                    .map(Endpoint::local_addrs)
                    .unwrap_or_default();
                let _ = reply.send(addrs);
            }
            Request::Config(reply) => {
                let _ = reply.send(self.running.clone());
            }
            Request::Shutdown(..) => {}
        }
    }

    // ===== configuration =====

    async fn apply(&mut self, new: DesiredConfig) -> Result<ApplySummary, Error> {
        let full = match &self.running {
            None => true,
            Some(old) => diff::needs_full_restart(old, &new),
        };
        if full {
            return self.full_restart(new).await;
        }
        let Some(old) = self.running.take() else {
            return self.full_restart(new).await;
        };
        let mut summary = ApplySummary::default();
        if diff::policies_changed(&old, &new) {
            let kernel = self.fib.is_some().then(|| new.kernel.export.clone());
            self.rib
                .set_policies(rib::Policies::new(new.policies.clone()), kernel);
            summary.policies_changed = true;
        }
        let (withdraw, originate) =
            diff::static_diff(&diff::static_routes(&old), &diff::static_routes(&new));
        for p in withdraw {
            self.rib.withdraw_local(Local::Static, to_prefix(&p));
        }
        for s in originate {
            self.originate_static(&s);
        }
        if old.kernel.learn != new.kernel.learn
            || old.interfaces != new.interfaces
            || old.kernel.route_protocol != new.kernel.route_protocol
        {
            tracing::warn!(
                "kernel learning, interface patterns and the route protocol take effect at the next start"
            );
        }
        // Peers, by name.
        let removed: Vec<Arc<str>> = self
            .peers
            .keys()
            .filter(|n| new.peer(n).is_none())
            .cloned()
            .collect();
        for name in removed {
            self.remove_peer(
                &name,
                CeaseSubcode::PeerDeconfigured,
                "peer removed from configuration",
            )
            .await;
            summary.removed.push(name.to_string());
        }
        for p in &new.peers {
            let name: Arc<str> = Arc::from(p.name.as_str());
            let change = self
                .peers
                .get(&name)
                .map(|slot| diff::peer_change(&slot.cfg, p));
            match change {
                None => match self.add_peer(&new, p) {
                    Ok(()) => summary.added.push(p.name.clone()),
                    Err(e) => summary.errors.push(format!("{}: {e}", p.name)),
                },
                Some(PeerChange::Unchanged) => summary.unchanged.push(p.name.clone()),
                Some(PeerChange::Live) => {
                    if let Some(slot) = self.peers.get_mut(&name) {
                        slot.cfg = p.clone();
                        if let Err(e) = self
                            .rib
                            .reconfigure_peer(slot.id, rib::PeerConfig::from_config(p))
                        {
                            summary.errors.push(format!("{}: {e}", p.name));
                        }
                    }
                    summary.reconfigured.push(p.name.clone());
                }
                Some(PeerChange::Reset) => {
                    self.remove_peer(
                        &name,
                        CeaseSubcode::OtherConfigurationChange,
                        "session parameters changed",
                    )
                    .await;
                    match self.add_peer(&new, p) {
                        Ok(()) => summary.reset.push(p.name.clone()),
                        Err(e) => summary.errors.push(format!("{}: {e}", p.name)),
                    }
                }
            }
        }
        self.running = Some(new);
        Ok(summary)
    }

    async fn full_restart(&mut self, new: DesiredConfig) -> Result<ApplySummary, Error> {
        let mut summary = ApplySummary {
            full_restart: true,
            ..ApplySummary::default()
        };
        let names: Vec<Arc<str>> = self.peers.keys().cloned().collect();
        for name in &names {
            self.remove_peer(
                name,
                CeaseSubcode::AdministrativeReset,
                "speaker reconfigured",
            )
            .await;
        }
        let listen_changed = self
            .running
            .as_ref()
            .is_none_or(|old| old.listen != new.listen);
        if listen_changed || self.endpoint.is_none() {
            if self.endpoint.take().is_some() {
                // Let the aborted accept tasks release the old listening sockets.
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            self.endpoint = Some(bind(&new)?);
        }
        if self.options.fib && self.fib.is_none() {
            self.start_fib(&new)?;
        }
        let mut rc = RibConfig::from_desired(&new);
        if self.fib.is_none() {
            rc.kernel_policy = None;
        }
        self.rib = Rib::new(rc);
        self.by_id.clear();
        if let Some(f) = self.fib.as_mut() {
            // The new RIB re-installs what is still wanted; the rest must go.
            f.other_keys.clear();
            f.priority = None;
            f.handle.remove_all();
        }
        for s in diff::static_routes(&new) {
            self.originate_static(&s);
        }
        let kernel: Vec<(IpNet, RouteAttrs)> = self
            .kernel_routes
            .iter()
            .filter_map(|(p, m)| m.values().next().map(|a| (*p, a.clone())))
            .collect();
        for (p, a) in kernel {
            self.rib.originate(Local::Kernel, to_prefix(&p), a);
        }
        let connected: Vec<(IpNet, RouteAttrs)> = self
            .connected
            .iter()
            .map(|(p, a)| (*p, a.clone()))
            .collect();
        for (p, a) in connected {
            self.rib.originate(Local::Direct, to_prefix(&p), a);
        }
        for p in &new.peers {
            match self.add_peer(&new, p) {
                Ok(()) => summary.added.push(p.name.clone()),
                Err(e) => summary.errors.push(format!("{}: {e}", p.name)),
            }
        }
        if let Some(f) = self.fib.as_mut() {
            f.converged = false;
        }
        self.running = Some(new);
        Ok(summary)
    }

    fn start_fib(&mut self, c: &DesiredConfig) -> Result<(), Error> {
        let connected = if c.interfaces.is_empty() {
            None
        } else {
            Some(InterfacePatterns::new(
                c.interfaces
                    .iter()
                    .map(|p| fib_netlink::InterfacePattern {
                        glob: p.glob.clone(),
                        exclude: !p.include,
                    })
                    .collect(),
            ))
        };
        let config = FibConfig {
            protocol: c.kernel.route_protocol,
            learn: c.kernel.learn.then(InterfacePatterns::all),
            connected,
            reconcile: if c.kernel.graceful_restart {
                Reconcile::AfterConverged {
                    deadline: self.options.fib_converge_deadline,
                }
            } else {
                Reconcile::Immediately
            },
            ..FibConfig::default()
        };
        let (fib, handle, events) = Fib::new(config).map_err(Error::Fib)?;
        let task = tokio::spawn(async move {
            if let Err(e) = fib.run().await {
                tracing::error!(error = %e, "FIB driver failed");
            }
        });
        self.fib = Some(FibGlue {
            handle,
            other_keys: HashMap::new(),
            priority: None,
            converged: false,
            task,
        });
        self.new_fib_events = Some(events);
        Ok(())
    }

    fn originate_static(&mut self, s: &StaticRoute) {
        let mut attrs = RouteAttrs::bgp(Default::default());
        attrs.preference = preference::STATIC;
        if let StaticTarget::Via(gw) = s.target {
            attrs.set_next_hop(gw);
        }
        self.rib
            .originate(Local::Static, to_prefix(&s.prefix), attrs);
    }

    fn add_peer(&mut self, c: &DesiredConfig, p: &Peer) -> Result<(), Error> {
        let Some(endpoint) = self.endpoint.as_ref() else {
            return Err(Error::NotConfigured);
        };
        let id = self
            .rib
            .add_peer(rib::PeerConfig::from_config(p))
            .map_err(|e| Error::Peer(e.to_string()))?;
        let name: Arc<str> = Arc::from(p.name.as_str());
        let recovering =
            c.kernel.graceful_restart && self.fib.as_ref().is_some_and(|f| !f.converged);
        self.next_generation += 1;
        let generation = self.next_generation;
        let handle = match session::spawn(
            endpoint,
            session::wire_config(c, p, recovering),
            name.clone(),
            generation,
            self.session_tx.clone(),
        ) {
            Ok(h) => h,
            Err(e) => {
                let _ = self.rib.remove_peer(id);
                return Err(Error::Peer(e.to_string()));
            }
        };
        let now = Instant::now();
        self.generations.insert(name.clone(), generation);
        self.by_id.insert(id, name.clone());
        self.peers.insert(
            name,
            PeerSlot {
                cfg: p.clone(),
                id,
                handle,
                local_address: session::local_address(c, p),
                state: State::Idle,
                since: now,
                since_wall: SystemTime::now(),
                established_at: None,
                enabled: true,
                limited: false,
                restart_at: None,
                negotiated: None,
                encode: None,
                end_of_rib: false,
                overflowed: false,
                updates_received: 0,
                messages_received: 0,
                messages_sent: 0,
                established_count: 0,
                flaps: 0,
                last_error: None,
                last_error_code: None,
            },
        );
        Ok(())
    }

    async fn remove_peer(&mut self, name: &Arc<str>, subcode: CeaseSubcode, message: &str) {
        let Some(slot) = self.peers.remove(name) else {
            return;
        };
        self.generations.remove(name);
        self.by_id.remove(&slot.id);
        let _ = self.rib.remove_peer(slot.id);
        let _ = slot
            .handle
            .control
            .try_send(Control::Shutdown(subcode, message.to_string()));
        drop(slot.handle.data);
        drop(slot.handle.control);
        let mut task = slot.handle.task;
        let deadline = tokio::time::sleep(Duration::from_secs(8));
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                _ = &mut task => break,
                t = self.session_rx.recv() => {
                    if let Some(t) = t {
                        self.deferred.push(t);
                    }
                }
                _ = &mut deadline => {
                    task.abort();
                    break;
                }
            }
        }
        let _ = self.events.send(Event::PeerRemoved {
            name: name.to_string(),
        });
    }

    async fn shutdown(&mut self, message: &str) {
        let names: Vec<Arc<str>> = self.peers.keys().cloned().collect();
        for name in &names {
            self.remove_peer(name, CeaseSubcode::AdministrativeShutdown, message)
                .await;
        }
        if let Some(f) = self.fib.take() {
            // Kernel routes stay (persist) unless configured otherwise.
            let persist = self.running.as_ref().is_none_or(|c| c.kernel.persist);
            if !persist {
                f.handle.remove_all();
                let start = Instant::now();
                while start.elapsed() < Duration::from_secs(2)
                    && f.handle.inspect(|s| s.pending_len() > 0)
                {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
            drop(f.handle);
            let _ = tokio::time::timeout(Duration::from_secs(2), f.task).await;
        }
        self.endpoint = None;
    }

    // ===== session events =====

    fn session_event(&mut self, t: Tagged) {
        if self.generations.get(&t.name) != Some(&t.generation) {
            return;
        }
        let now = Instant::now();
        for event in t.events {
            self.one_session_event(&t.name, event, now);
        }
    }

    fn one_session_event(&mut self, name: &Arc<str>, event: SessionEvent, now: Instant) {
        let Some(slot) = self.peers.get_mut(name) else {
            return;
        };
        let id = slot.id;
        match event {
            SessionEvent::StateChange { from, to, reason } => {
                slot.state = to;
                slot.since = now;
                slot.since_wall = SystemTime::now();
                if matches!(
                    reason,
                    Reason::NotificationReceived(_)
                        | Reason::NotificationSent(_)
                        | Reason::ConnectFailed
                ) {
                    slot.last_error = Some(reason.to_string());
                }
                if let Reason::NotificationReceived(n)
                | Reason::NotificationSent(n)
                | Reason::AdminStop(n) = &reason
                {
                    slot.last_error_code = Some((u8::from(n.code), n.subcode));
                }
                tracing::info!(peer = %name, %from, %to, %reason, "session state");
                let _ = self.events.send(Event::PeerState {
                    name: name.to_string(),
                    from,
                    to,
                    reason: reason.to_string(),
                });
            }
            SessionEvent::Established(n) => {
                slot.encode = Some(n.encode_context());
                slot.established_at = Some(now);
                slot.established_count += 1;
                slot.end_of_rib = false;
                slot.overflowed = false;
                let s = session::rib_session(&n, slot.local_address);
                slot.negotiated = Some(n);
                if let Err(e) = self.rib.peer_up(id, s) {
                    tracing::error!(peer = %name, error = %e, "RIB refused the session");
                }
            }
            SessionEvent::Down(reason) => {
                let hard = match &reason {
                    Reason::AdminStop(_) => true,
                    Reason::NotificationReceived(n) | Reason::NotificationSent(n) => {
                        n.code == ErrorCode::Cease && n.subcode == u8::from(CeaseSubcode::HardReset)
                    }
                    _ => false,
                };
                if slot.established_at.is_some() {
                    slot.flaps += 1;
                }
                slot.encode = None;
                slot.established_at = None;
                slot.last_error = Some(reason.to_string());
                if let Reason::NotificationReceived(n)
                | Reason::NotificationSent(n)
                | Reason::AdminStop(n) = &reason
                {
                    slot.last_error_code = Some((u8::from(n.code), n.subcode));
                }
                let how = if hard { Down::Hard } else { Down::Graceful };
                let _ = self.rib.peer_down(id, now, how);
            }
            SessionEvent::Received(mut decoded) => {
                slot.messages_received += 1;
                for e in &decoded.errors {
                    tracing::warn!(peer = %name, error = %e, "RFC 7606 error in UPDATE");
                }
                match &decoded.message {
                    Message::Update(_) => {
                        slot.updates_received += 1;
                        let ibgp = slot.cfg.remote_as
                            == slot.cfg.effective_local_as(self.rib.config().asn);
                        if !ibgp {
                            decoded.apply_external_peer_rules(Some(slot.cfg.remote_as), false);
                        }
                        if let Some(nlri) = decoded.treat_as_withdraw() {
                            // RFC 7606 §2: treat-as-withdraw.
                            let nlri = nlri.to_vec();
                            self.rib.withdraw(id, &nlri);
                        } else if let Message::Update(u) = &decoded.message {
                            if u.as_end_of_rib().is_some() {
                                slot.end_of_rib = true;
                            }
                            self.rib.apply_update(id, u);
                            self.check_prefix_limit(name, now);
                        }
                    }
                    Message::RouteRefresh(_) => self.rib.route_refresh(id),
                    _ => {}
                }
            }
            SessionEvent::SendFailed(why) => {
                tracing::warn!(peer = %name, %why, "UPDATE could not be encoded");
                slot.last_error = Some(why);
            }
            SessionEvent::CollisionResolved { kept } => {
                tracing::debug!(peer = %name, ?kept, "connection collision resolved");
            }
        }
    }

    // ===== kernel events =====

    fn fib_event(&mut self, ev: FibEvent) {
        match ev {
            FibEvent::LearnedAdded(r) => {
                let attrs = kernel_attrs(&r);
                let m = self.kernel_routes.entry(r.prefix).or_default();
                m.insert(r.metric, attrs);
                if let Some(a) = m.values().next() {
                    self.rib
                        .originate(Local::Kernel, to_prefix(&r.prefix), a.clone());
                }
            }
            FibEvent::LearnedRemoved(r) => {
                let mut gone = false;
                if let Some(m) = self.kernel_routes.get_mut(&r.prefix) {
                    m.remove(&r.metric);
                    match m.values().next() {
                        Some(a) => {
                            self.rib
                                .originate(Local::Kernel, to_prefix(&r.prefix), a.clone())
                        }
                        None => gone = true,
                    }
                }
                if gone {
                    self.kernel_routes.remove(&r.prefix);
                    self.rib.withdraw_local(Local::Kernel, to_prefix(&r.prefix));
                }
            }
            FibEvent::ConnectedAdded(c) => {
                let mut attrs = RouteAttrs::bgp(Default::default());
                attrs.preference = preference::DIRECT;
                attrs.ifname = Some(Arc::from(c.ifname.as_str()));
                self.connected.insert(c.prefix.trunc(), attrs.clone());
                self.rib
                    .originate(Local::Direct, to_prefix(&c.prefix), attrs);
            }
            FibEvent::ConnectedRemoved(c) => {
                self.connected.remove(&c.prefix.trunc());
                self.rib.withdraw_local(Local::Direct, to_prefix(&c.prefix));
            }
            FibEvent::RouteFailed { key, error } => {
                self.fib_errors += 1;
                tracing::warn!(route = %key, %error, "kernel route not installed");
                let _ = self.events.send(Event::KernelRouteFailed {
                    prefix: key.prefix,
                    error: error.to_string(),
                });
            }
            FibEvent::Reconciled { stale } => {
                tracing::info!(stale, "kernel routes reconciled");
            }
            FibEvent::Link(_) | FibEvent::LinkRemoved(_) | FibEvent::Resynced { .. } => {}
        }
    }

    // ===== outputs =====

    fn flush(&mut self) {
        for u in self.rib.poll_updates() {
            self.send_update(&u);
        }
        let changes = self.rib.poll_fib();
        if !changes.is_empty() {
            self.program(changes);
        }
        for rib::Request::RouteRefresh(id) in self.rib.poll_requests() {
            let Some(slot) = self.by_id.get(&id).and_then(|n| self.peers.get(n)) else {
                continue;
            };
            if let Some(n) = &slot.negotiated {
                for f in &n.families {
                    let _ = slot
                        .handle
                        .control
                        .try_send(Control::Command(Command::RouteRefresh(*f)));
                }
            }
        }
        self.check_converged();
    }

    fn send_update(&mut self, u: &OutUpdate) {
        let members: Vec<PeerId> = match &u.target {
            Target::Group { members, .. } => members.clone(),
            Target::Peer(p) => vec![*p],
        };
        // Encode once per (encoding context, excluded member): every ordinary member of the
        // group with the same context shares the same bytes.
        let mut cache: HashMap<(EncodeContext, Option<PeerId>), Vec<Bytes>> = HashMap::new();
        for m in members {
            let Some(name) = self.by_id.get(&m) else {
                continue;
            };
            let Some(slot) = self.peers.get_mut(name) else {
                continue;
            };
            let Some(ctx) = slot.encode else { continue };
            let except = u.announce.iter().any(|a| a.except == Some(m)).then_some(m);
            let msgs = match cache.get(&(ctx, except)) {
                Some(m) => m.clone(),
                None => {
                    let (msgs, errors) = encode(ctx, u, except);
                    if let Some(e) = errors.first() {
                        tracing::error!(peer = %name, error = %e, routes = errors.len(),
                            "routes cannot be encoded for this session: withdrawn instead");
                        slot.last_error = Some(format!("cannot encode UPDATE: {e}"));
                    }
                    cache.insert((ctx, except), msgs.clone());
                    msgs
                }
            };
            if msgs.is_empty() {
                continue;
            }
            let n = msgs.len() as u64;
            match slot.handle.data.try_send(msgs) {
                Ok(()) => slot.messages_sent += n,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    if !slot.overflowed {
                        slot.overflowed = true;
                        tracing::warn!(peer = %name, "peer too slow: send queue full, resetting session");
                        slot.last_error = Some("send queue overflow".into());
                        let _ = slot.handle.control.try_send(Control::Overflow);
                    }
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {}
            }
        }
    }

    fn program(&mut self, changes: Vec<FibChange>) {
        let Some(fib) = self.fib.as_mut() else {
            return;
        };
        let Some(c) = self.running.as_ref() else {
            return;
        };
        let priority = *fib.priority.get_or_insert(c.kernel.normal_route_priority);
        let mut set = Vec::new();
        for ch in changes {
            match ch {
                FibChange::Install(r) => {
                    if self.events.receiver_count() > 0 {
                        let best = self.rib.best(r.prefix);
                        let _ = self.events.send(Event::BestPath {
                            prefix: r.prefix,
                            next_hop: r.next_hops.first().copied(),
                            from: best.map(|b| source_of(&self.by_id, b.source)),
                        });
                    }
                    let route = kernel_route(c, &r);
                    let key = route.key().normalized();
                    let default = default_key(&priority, r.prefix);
                    let old = if key == default {
                        if fib.other_keys.is_empty() {
                            None
                        } else {
                            fib.other_keys.remove(&r.prefix)
                        }
                    } else {
                        // Before it: at the default key, unless recorded otherwise (a
                        // remove of a key not desired is a no-op in the FIB).
                        Some(fib.other_keys.insert(r.prefix, key).unwrap_or(default))
                    };
                    if let Some(old) = old
                        && old != key
                    {
                        fib.handle.remove(old);
                    }
                    if self.events.receiver_count() > 0 {
                        let _ = self.events.send(Event::KernelRoute {
                            prefix: route.prefix,
                            installed: true,
                        });
                    }
                    set.push(route);
                }
                FibChange::Remove(p) => {
                    if self.events.receiver_count() > 0 {
                        let _ = self.events.send(Event::BestPath {
                            prefix: p,
                            next_hop: None,
                            from: None,
                        });
                    }
                    let key = fib
                        .other_keys
                        .remove(&p)
                        .unwrap_or_else(|| default_key(&priority, p));
                    self.fib_operations += 1;
                    fib.handle.remove(key);
                    if self.events.receiver_count() > 0 {
                        let _ = self.events.send(Event::KernelRoute {
                            prefix: key.prefix,
                            installed: false,
                        });
                    }
                }
            }
        }
        self.fib_operations += set.len() as u64;
        fib.handle.set_all(set);
    }

    /// Graceful restart (RFC 4724 §4.1): stale kernel routes of ours are deleted once every
    /// peer has sent its End-of-RIB (or the FIB's own deadline passes).
    fn check_converged(&mut self) {
        let Some(fib) = self.fib.as_mut() else {
            return;
        };
        if fib.converged || self.running.is_none() {
            return;
        }
        // Peers held down (disabled or prefix-limited) send nothing: they do not hold back
        // convergence.
        if self
            .peers
            .values()
            .filter(|s| s.enabled && !s.limited)
            .all(|s| s.encode.is_some() && s.end_of_rib)
        {
            fib.converged = true;
            fib.handle.converged();
            tracing::info!("RIB converged: reconciling kernel routes");
        }
    }

    // ===== queries =====

    fn peer_status(&self) -> Vec<PeerStatus> {
        let now = Instant::now();
        let asn = self.rib.config().asn;
        // Adj-RIB-Out sizes per update group (members share one).
        let mut out_sizes: HashMap<u32, usize> = HashMap::new();
        self.peers
            .values()
            .map(|s| {
                let advertised = match self.rib.group_of(s.id) {
                    Some(g) => *out_sizes
                        .entry(g)
                        .or_insert_with(|| self.rib.adj_rib_out(s.id).len()),
                    None => 0,
                };
                let local_as = s.cfg.effective_local_as(asn);
                PeerStatus {
                    name: s.cfg.name.clone(),
                    address: s.cfg.address,
                    remote_as: s.cfg.remote_as,
                    state: s.state,
                    since: now.saturating_duration_since(s.since),
                    uptime: s.established_at.map(|t| now.saturating_duration_since(t)),
                    since_wall: s.since_wall,
                    enabled: s.enabled && !s.limited,
                    local_as,
                    local_address: s.local_address,
                    internal: local_as == s.cfg.remote_as,
                    route_reflector_client: s.cfg.rr_client,
                    established_count: s.established_count,
                    flaps: s.flaps,
                    updates_received: s.updates_received,
                    messages_received: s.messages_received,
                    messages_sent: s.messages_sent,
                    updates_sent: s.messages_sent,
                    prefixes_received: self.rib.pre_policy_paths(s.id),
                    prefixes_accepted: self.rib.peer_paths(s.id),
                    prefixes_advertised: advertised,
                    max_prefixes: s.cfg.max_prefixes.as_ref().map(|m| m.limit),
                    peer_router_id: s.negotiated.as_ref().map(|n| n.peer_id),
                    negotiated: s.established_at.and(s.negotiated.as_ref()).cloned(),
                    last_error: s.last_error.clone(),
                    last_error_code: s.last_error_code,
                }
            })
            .collect()
    }

    fn entry(&self, p: Prefix, r: rib::RouteInfo) -> RouteEntry {
        RouteEntry {
            prefix: p,
            from: source_of(&self.by_id, r.source),
            next_hop: r.attrs.next_hop(),
            best: r.best,
            multipath: r.multipath,
            stale: r.stale || r.llgr_stale,
            attrs: r.attrs,
        }
    }

    fn route_entries(&self, prefix: Option<Prefix>) -> Vec<RouteEntry> {
        match prefix {
            Some(p) => self
                .rib
                .routes(p)
                .into_iter()
                .map(|r| self.entry(p, r))
                .collect(),
            None => self
                .rib
                .best_routes()
                .into_iter()
                .map(|(p, r)| self.entry(p, r))
                .collect(),
        }
    }

    fn all_route_entries(&self) -> Vec<RouteEntry> {
        let mut out = Vec::with_capacity(self.rib.len());
        for (p, _) in self.rib.best_routes() {
            for r in self.rib.routes(p) {
                out.push(self.entry(p, r));
            }
        }
        out
    }

    fn status(&self) -> SpeakerStatus {
        let graceful = self
            .running
            .as_ref()
            .is_some_and(|c| c.kernel.graceful_restart);
        // Every Loc-RIB path is a peer's accepted path or one of our local originations:
        // counted from the per-source totals, without walking the table (metrics scrape this).
        let statics = self
            .running
            .as_ref()
            .map_or(0, |c| diff::static_routes(c).len());
        let paths = self
            .peers
            .values()
            .map(|s| self.rib.peer_paths(s.id))
            .sum::<usize>()
            + self.kernel_routes.len()
            + self.connected.len()
            + statics;
        SpeakerStatus {
            router_id: self.rib.config().router_id,
            asn: self.rib.config().asn,
            started: self.started,
            last_reconfigured: self.last_reconfigured,
            graceful_restart_recovery: graceful && self.fib.as_ref().is_some_and(|f| !f.converged),
            rib_destinations: self.rib.len(),
            rib_paths: paths,
            rib_attribute_sets: self.rib.attribute_sets(),
            fib: self.fib.as_ref().map(|f| FibStats {
                installed: f.handle.inspect(|s| s.desired_len()),
                operations: self.fib_operations,
                errors: self.fib_errors,
            }),
        }
    }

    // ===== administration =====

    fn admin(&mut self, name: &str, op: PeerAdmin, message: &str) -> Result<(), Error> {
        let Some(slot) = self.peers.get_mut(name) else {
            return Err(Error::UnknownPeer(name.to_string()));
        };
        let cmd = match op {
            PeerAdmin::Disable => {
                slot.enabled = false;
                slot.restart_at = None;
                Command::Stop {
                    subcode: CeaseSubcode::AdministrativeShutdown,
                    message: message.to_string(),
                }
            }
            PeerAdmin::Enable => {
                if slot.enabled && !slot.limited {
                    return Ok(());
                }
                slot.enabled = true;
                slot.limited = false;
                slot.restart_at = None;
                Command::Start
            }
            PeerAdmin::Restart => {
                slot.enabled = true;
                slot.limited = false;
                slot.restart_at = None;
                if slot.state == State::Idle {
                    Command::Start
                } else {
                    Command::Reset {
                        message: message.to_string(),
                    }
                }
            }
        };
        tracing::info!(peer = %name, ?op, "administrative action");
        slot.handle
            .control
            .try_send(Control::Command(cmd))
            .map_err(|_| Error::Peer(format!("{name}: session task busy or gone")))
    }

    /// RFC 4486: more accepted routes than the limit closes the session with Cease /
    /// Maximum Number of Prefixes Reached; it starts again after `restart_after`.
    fn check_prefix_limit(&mut self, name: &Arc<str>, now: Instant) {
        let Some(slot) = self.peers.get_mut(name) else {
            return;
        };
        let Some(max) = slot.cfg.max_prefixes.as_ref() else {
            return;
        };
        if slot.limited {
            return;
        }
        let n = self.rib.peer_paths(slot.id);
        if n <= max.limit as usize {
            return;
        }
        if max.warning_only {
            if slot.last_error.as_deref() != Some("prefix limit exceeded") {
                tracing::warn!(peer = %name, routes = n, limit = max.limit, "prefix limit exceeded");
                slot.last_error = Some("prefix limit exceeded".into());
            }
            return;
        }
        tracing::warn!(peer = %name, routes = n, limit = max.limit,
            restart_after = ?max.restart_after, "prefix limit exceeded: closing the session");
        slot.limited = true;
        slot.restart_at = max
            .restart_after
            .map(|s| now + Duration::from_secs(u64::from(s.max(1))));
        slot.last_error = Some(format!("prefix limit {} exceeded", max.limit));
        let _ = slot
            .handle
            .control
            .try_send(Control::Command(Command::Stop {
                subcode: CeaseSubcode::MaximumPrefixesReached,
                message: String::new(),
            }));
    }

    fn next_restart(&self) -> Option<Instant> {
        self.peers.values().filter_map(|s| s.restart_at).min()
    }

    fn restart_limited(&mut self, now: Instant) {
        for (name, slot) in self.peers.iter_mut() {
            if slot.restart_at.is_some_and(|t| t <= now) {
                slot.restart_at = None;
                slot.limited = false;
                if slot.enabled {
                    tracing::info!(peer = %name, "prefix limit hold-down over: starting the session");
                    let _ = slot
                        .handle
                        .control
                        .try_send(Control::Command(Command::Start));
                }
            }
        }
    }
}

fn source_of(by_id: &HashMap<PeerId, Arc<str>>, src: rib::Source) -> RouteFrom {
    match src {
        rib::Source::Peer(id) => {
            RouteFrom::Peer(by_id.get(&id).map(|n| n.to_string()).unwrap_or_default())
        }
        rib::Source::Local(Local::Static) => RouteFrom::Static,
        rib::Source::Local(Local::Kernel) => RouteFrom::Kernel,
        rib::Source::Local(Local::Direct) => RouteFrom::Direct,
    }
}

fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

async fn sleep_until(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(tokio::time::Instant::from_std(t)).await,
        None => std::future::pending().await,
    }
}

/// Listening sockets for a configuration: the IPv4 and IPv6 bind addresses (any when unset)
/// on the configured port. IPv6 is optional unless a bind address or an IPv6 peer needs it.
fn bind(c: &DesiredConfig) -> Result<Endpoint, Error> {
    let v4 = c
        .listen
        .address
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    let v6 = c
        .listen
        .address_v6
        .unwrap_or(IpAddr::V6(Ipv6Addr::UNSPECIFIED));
    let port = c.listen.port;
    let both = [SocketAddr::new(v4, port), SocketAddr::new(v6, port)];
    match Endpoint::bind(&both) {
        Ok(e) => Ok(e),
        Err(e6) => {
            let needs_v6 =
                c.listen.address_v6.is_some() || c.peers.iter().any(|p| p.address.is_ipv6());
            if needs_v6 {
                return Err(Error::Listen(e6));
            }
            tracing::warn!(error = %e6, "no IPv6 listening socket; IPv4 only");
            Endpoint::bind(&both[..1]).map_err(Error::Listen)
        }
    }
}

/// The UPDATEs of `u` for one encoding context; `except` gets withdrawals of the
/// announcements it is excluded from. An announcement that cannot be encoded for this context
/// (e.g. an AS_PATH too long for a 4096-octet message) is withdrawn instead, so the peer drops
/// any older copy and the rest of the batch still goes out; its error is returned alongside.
fn encode(
    ctx: EncodeContext,
    u: &OutUpdate,
    except: Option<PeerId>,
) -> (Vec<Bytes>, Vec<bgp_wire::EncodeError>) {
    let packer = UpdatePacker::new(ctx);
    let mut buf = BytesMut::new();
    let mut errors = Vec::new();
    let mut withdraw = u.withdraw.clone();
    for a in &u.announce {
        if except.is_some() && a.except == except {
            withdraw.extend_from_slice(&a.nlri);
        }
    }
    if !withdraw.is_empty() {
        packer.withdraw(&withdraw, &mut buf);
    }
    let mut failed = Vec::new();
    for a in &u.announce {
        if except.is_some() && a.except == except {
            continue;
        }
        let len = buf.len();
        if let Err(e) = packer.announce(&a.attrs.bgp, &a.nlri, &mut buf) {
            buf.truncate(len);
            failed.extend_from_slice(&a.nlri);
            errors.push(e);
        }
    }
    if !failed.is_empty() {
        packer.withdraw(&failed, &mut buf);
    }
    for f in &u.end_of_rib {
        let len = buf.len();
        if let Err(e) = packer.end_of_rib(*f, &mut buf) {
            buf.truncate(len);
            errors.push(e);
        }
    }
    let max = if ctx.extended_messages {
        MAX_EXTENDED_MESSAGE_LEN
    } else {
        MAX_MESSAGE_LEN
    };
    let mut out = Vec::new();
    while let Ok(Some(m)) = next_message(&mut buf, max) {
        out.push(m);
    }
    (out, errors)
}

/// The attributes of a kernel-learned route as the policies see it (BIRD `krt_metric`,
/// `ifname`, gateway as next hop, kernel preference).
fn kernel_attrs(r: &Route) -> RouteAttrs {
    let mut a = RouteAttrs::bgp(Default::default());
    a.preference = preference::KERNEL;
    a.krt_metric = Some(r.metric);
    if let Some(nh) = r.nexthops().first() {
        if let Some(gw) = nh.gateway {
            a.set_next_hop(gw);
        }
        if let Some(Device::Name(n)) = &nh.dev {
            a.ifname = Some(Arc::from(n.as_str()));
        }
    }
    a
}

/// The kernel route for a RIB FIB route: `via` each next hop (ECMP), `onlink` through the
/// tunnel device when the kernel policy chose one (Calico IPIP), blackhole without next hops;
/// the configured protocol and NormalRoutePriority when the policy set no metric.
fn kernel_route(c: &DesiredConfig, r: &rib::FibRoute) -> Route {
    let net = prefix_net(r.prefix);
    let mut route = if r.blackhole || r.next_hops.is_empty() {
        Route::blackhole(net)
    } else {
        let hops = r
            .next_hops
            .iter()
            .map(|&nh| match &r.tunnel {
                Some(dev) => NextHop::onlink(nh, dev.as_ref()),
                None => NextHop::via(nh),
            })
            .collect();
        Route::unicast(net, hops)
    };
    let default_metric = if net.addr().is_ipv4() {
        c.kernel.normal_route_priority.ipv4
    } else {
        c.kernel.normal_route_priority.ipv6
    };
    route = route
        .with_protocol(c.kernel.route_protocol)
        .with_metric(r.metric.unwrap_or(default_metric));
    route
}

/// The key of the kernel route for `prefix` when the kernel policy sets no metric (what
/// [`kernel_route`] builds then).
fn default_key(priority: &NormalRoutePriority, prefix: Prefix) -> RouteKey {
    let net = prefix_net(prefix);
    let metric = if net.addr().is_ipv4() {
        priority.ipv4
    } else {
        priority.ipv6
    };
    RouteKey {
        table: fib_netlink::route::TABLE_MAIN,
        prefix: net,
        metric,
    }
    .normalized()
}

fn prefix_net(p: Prefix) -> IpNet {
    IpNet::new(p.addr(), p.len()).unwrap_or_else(|_| match p.addr() {
        IpAddr::V4(_) => IpNet::V4(Default::default()),
        IpAddr::V6(_) => IpNet::V6(Default::default()),
    })
}
