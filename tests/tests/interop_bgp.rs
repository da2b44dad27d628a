//! Interop: Tern's session layer (`bgp-wire`'s FSM and tokio driver) against real BIRD 1.6,
//! BIRD 2, GoBGP and FRR, each in its own network namespace joined by a veth pair.
//!
//! Tern runs in-process on threads inside namespace `t` (10.77.0.1, fd00:77::1); the daemon
//! runs in namespace `p` (10.77.0.2, fd00:77::2). Routes are compared with the daemon's own
//! CLI view. Timers are short (hold 9 s or less, connect retry 1 s). Without root or a daemon
//! binary every test skips loudly; under `CI=true` it fails instead.
#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bgp_wire::fsm::{Direction, IdleHold, Negotiated, Reason, SessionConfig, State};
use bgp_wire::iana::{AddPathMode, CeaseSubcode, ErrorCode};
use bgp_wire::session::{Command, Endpoint, Peer, PeerConfig, SessionEvent};
use bgp_wire::{
    AddPathFamily, AsPath, Family, GracefulRestart, GracefulRestartFamily, LlgrFamily, Message,
    NextHop, Nlri, Origin, PathAttributes, Prefix, UpdatePacker,
};
use bytes::BytesMut;
use tern_tests::peers::{
    Bird, BirdHandle, FrrHandle, GobgpHandle, PeerSpec, prefixes, start_bird, start_frr,
    start_gobgp,
};
use tern_tests::{Netns, TempDir, require_root, veth, wait_for};

const TERN_V4: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
const PEER_V4: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);
const TERN_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x77, 0, 0, 0, 0, 0, 1);
const PEER_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x77, 0, 0, 0, 0, 0, 2);
const TERN_AS: u32 = 65001;
const PEER_AS: u32 = 65002;
const WAIT: Duration = Duration::from_secs(30);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Bird16,
    Bird2,
    Gobgp,
    Frr,
}

/// One running daemon of any kind.
enum Daemon {
    Bird(BirdHandle),
    Gobgp(GobgpHandle),
    Frr(FrrHandle),
}

impl Daemon {
    fn established(&self, tern: &IpAddr) -> bool {
        match self {
            Daemon::Bird(h) => h.established(),
            Daemon::Gobgp(h) => h.established(tern),
            Daemon::Frr(h) => h.established(tern),
        }
    }

    /// Routes the daemon learned from Tern, from its own CLI.
    fn routes_from_tern(&self, tern: &IpAddr, originated: u32) -> Option<u32> {
        match self {
            Daemon::Bird(h) => h.routes_from_tern(),
            // GoBGP's global RIB holds its own routes too.
            Daemon::Gobgp(h) => h.rib_destinations().map(|n| n.saturating_sub(originated)),
            Daemon::Frr(h) => h.prefixes_received(tern),
        }
    }

    fn log_text(&self) -> String {
        match self {
            Daemon::Bird(h) => h.log_text(),
            Daemon::Gobgp(h) => h.log_text(),
            Daemon::Frr(h) => h.log_text(),
        }
    }

    fn signal(&self, sig: nix::sys::signal::Signal) {
        match self {
            Daemon::Bird(h) => h.daemon.signal(sig),
            Daemon::Gobgp(h) => h.daemon.signal(sig),
            Daemon::Frr(h) => h.daemon.signal(sig),
        }
    }
}

/// Namespaces, veth, the daemon's files.
struct Lab {
    t: Netns,
    p: Netns,
    dir: TempDir,
}

impl Lab {
    fn new() -> Lab {
        let t = Netns::new("it");
        let p = Netns::new("ip");
        veth(
            &t,
            &["10.77.0.1/24", "fd00:77::1/64"],
            &p,
            &["10.77.0.2/24", "fd00:77::2/64"],
        );
        Lab {
            t,
            p,
            dir: TempDir::new("iop"),
        }
    }

    fn start(
        &self,
        test: &str,
        kind: Kind,
        spec: &PeerSpec,
        originate: &[String],
    ) -> Option<Daemon> {
        let mut spec = spec.clone();
        match kind {
            Kind::Bird16 => {
                spec.originate = originate.to_vec();
                start_bird(test, Bird::V1, &self.p, &self.dir, &spec).map(Daemon::Bird)
            }
            Kind::Bird2 => {
                spec.originate = originate.to_vec();
                start_bird(test, Bird::V2, &self.p, &self.dir, &spec).map(Daemon::Bird)
            }
            Kind::Gobgp => {
                let h = start_gobgp(test, &self.p, &self.dir, &spec)?;
                h.originate(originate, &spec.address);
                Some(Daemon::Gobgp(h))
            }
            Kind::Frr => {
                spec.originate = originate.to_vec();
                start_frr(test, &self.p, &self.dir, &spec).map(Daemon::Frr)
            }
        }
    }
}

/// Tern's side: a runtime whose threads live in namespace `t`, one endpoint, one peer.
struct Tern {
    _rt: tokio::runtime::Runtime,
    _endpoint: Endpoint,
    peer: Peer,
    /// Prefixes (with path ids) currently announced by the daemon.
    rib: HashSet<Nlri>,
    negotiated: Option<Arc<Negotiated>>,
    downs: Vec<Reason>,
    states: Vec<State>,
    /// Why each state change happened, for failure messages.
    reasons: Vec<String>,
    /// How many times the session became Established.
    establishments: usize,
    /// NLRI announcements received so far (re-announcements included).
    announcements: usize,
    /// Collisions resolved: who opened the connection that was kept.
    collisions: Vec<Direction>,
}

impl Tern {
    /// Must be called on a thread inside namespace `t` (see [`Netns::run_in`]).
    fn start(config: PeerConfig, listen: &[SocketAddr]) -> Tern {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let guard = rt.enter();
        let endpoint = Endpoint::bind(listen).unwrap();
        let peer = endpoint.add_peer(config).unwrap();
        peer.commands.try_send(Command::Start).unwrap();
        drop(guard);
        Tern {
            _rt: rt,
            _endpoint: endpoint,
            peer,
            rib: HashSet::new(),
            negotiated: None,
            downs: Vec::new(),
            states: Vec::new(),
            reasons: Vec::new(),
            collisions: Vec::new(),
            announcements: 0,
            establishments: 0,
        }
    }

    fn command(&self, c: Command) {
        self.peer.commands.try_send(c).unwrap();
    }

    /// Takes every pending event.
    fn pump(&mut self) {
        while let Ok(ev) = self.peer.events.try_recv() {
            match ev {
                SessionEvent::Established(n) => {
                    self.negotiated = Some(n);
                    self.establishments += 1;
                }
                SessionEvent::Down(r) => {
                    self.negotiated = None;
                    self.rib.clear();
                    self.downs.push(r);
                }
                SessionEvent::StateChange { to, reason, .. } => {
                    self.states.push(to);
                    self.reasons.push(format!("{to}: {reason}"));
                }
                SessionEvent::Received(d) => {
                    if let Message::Update(u) = d.message {
                        for n in u.withdrawals() {
                            self.rib.remove(n);
                        }
                        for n in u.announced() {
                            self.rib.insert(*n);
                            self.announcements += 1;
                        }
                    }
                }
                SessionEvent::SendFailed(e) => panic!("send failed: {e}"),
                SessionEvent::CollisionResolved { kept } => self.collisions.push(kept),
            }
        }
    }

    fn until<T>(
        &mut self,
        what: &str,
        timeout: Duration,
        mut f: impl FnMut(&mut Tern) -> Option<T>,
    ) -> T {
        let start = Instant::now();
        loop {
            self.pump();
            if let Some(v) = f(self) {
                return v;
            }
            assert!(
                start.elapsed() < timeout,
                "timed out waiting for {what}; last state changes {:?}, downs {:?}",
                &self.reasons[self.reasons.len().saturating_sub(4)..],
                self.downs
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn established(&mut self) -> Arc<Negotiated> {
        self.until("Established", WAIT, |t| t.negotiated.clone())
    }

    fn down(&mut self, timeout: Duration) -> Reason {
        self.until("Down", timeout, |t| t.downs.last().cloned())
    }

    /// Announces `routes` with next hop `next_hop`, packed with the negotiated context.
    fn announce(&self, routes: &[String], next_hop: IpAddr) {
        let n = self.negotiated.clone().unwrap();
        let nlri: Vec<Nlri> = routes
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let (addr, len) = p.split_once('/').unwrap();
                let prefix = Prefix::new(addr.parse().unwrap(), len.parse().unwrap()).unwrap();
                let family = if prefix.addr().is_ipv4() {
                    Family::IPV4_UNICAST
                } else {
                    Family::IPV6_UNICAST
                };
                let path_id = n.add_path_send.contains(&family).then_some(i as u32 + 1);
                Nlri { prefix, path_id }
            })
            .collect();
        let ibgp = n.is_ibgp();
        let mut attrs = PathAttributes {
            origin: Some(Origin::Igp),
            as_path: Some(AsPath::from_sequence(if ibgp { &[] } else { &[TERN_AS] })),
            local_pref: ibgp.then_some(100),
            ..PathAttributes::default()
        };
        match next_hop {
            IpAddr::V4(v4) => attrs.next_hop = Some(v4),
            IpAddr::V6(v6) => {
                attrs.mp_next_hop = Some(NextHop::V6 {
                    global: v6,
                    link_local: None,
                })
            }
        }
        let mut wire = BytesMut::new();
        UpdatePacker::new(n.encode_context())
            .announce(&attrs, &nlri, &mut wire)
            .unwrap();
        self.command(Command::SendEncoded(vec![wire.freeze()]));
    }
}

fn session(peer_as: u32, peer: IpAddr) -> PeerConfig {
    let mut s = SessionConfig::new(TERN_AS, TERN_V4, peer_as);
    s.hold_time = 9;
    s.connect_retry = Duration::from_secs(1);
    s.idle_hold = IdleHold {
        min: Duration::from_secs(1),
        max: Duration::from_secs(2),
        forget: Duration::from_secs(60),
    };
    let mut p = PeerConfig::new(s, peer);
    p.local_address = Some(if peer.is_ipv4() {
        IpAddr::V4(TERN_V4)
    } else {
        IpAddr::V6(TERN_V6)
    });
    p
}

fn listen_on(addr: IpAddr) -> Vec<SocketAddr> {
    vec![SocketAddr::new(addr, 179)]
}

fn parse_prefix(p: &str) -> Prefix {
    let (addr, len) = p.split_once('/').unwrap();
    Prefix::new(addr.parse().unwrap(), len.parse().unwrap()).unwrap()
}

fn prerequisites(test: &str) -> bool {
    require_root(test)
}

// ===== scenarios =====

/// eBGP over IPv4, the daemon passive and Tern active: 1,000 routes each way compared with the
/// daemon's CLI, then an administrative shutdown whose message the daemon logs.
fn routes_each_way_and_shutdown(
    test: &str,
    kind: Kind,
    v6: bool,
    ibgp: bool,
    tern_passive: bool,
    count: u32,
) {
    if !prerequisites(test) {
        return;
    }
    let lab = Lab::new();
    let (tern_ip, peer_ip) = if v6 {
        (IpAddr::V6(TERN_V6), IpAddr::V6(PEER_V6))
    } else {
        (IpAddr::V4(TERN_V4), IpAddr::V4(PEER_V4))
    };
    let peer_as = if ibgp { TERN_AS } else { PEER_AS };
    let mut spec = PeerSpec::new("10.77.0.2", peer_as, peer_ip, tern_ip, TERN_AS);
    spec.passive = !tern_passive;
    let theirs = prefixes(v6, 100, count);
    let Some(daemon) = lab.start(test, kind, &spec, &theirs) else {
        return;
    };
    let ours = prefixes(v6, 200, count);
    let mut config = session(peer_as, peer_ip);
    config.session.passive = tern_passive;
    let message = format!("tern {test} says goodbye");
    let msg = message.clone();
    let (got, sent_seen) = lab.t.run_in(move || {
        let mut tern = Tern::start(config, &listen_on(tern_ip));
        let n = tern.established();
        assert_eq!(n.peer_as, peer_as);
        assert_eq!(n.is_ibgp(), ibgp);
        tern.announce(&ours, tern_ip);
        // Count only the daemon's own prefixes: FRR also advertises Tern's routes back over
        // eBGP (loop detection is the receiver's, i.e. the RIB's, job).
        let want: HashSet<Prefix> = theirs.iter().map(|p| parse_prefix(p)).collect();
        let got = tern.until("the daemon's routes", WAIT, |t| {
            let n = t.rib.iter().filter(|r| want.contains(&r.prefix)).count();
            (n >= count as usize).then_some(n)
        });
        let sent_seen = wait_for("the daemon to count Tern's routes", WAIT, || {
            daemon
                .routes_from_tern(&tern_ip, count)
                .filter(|n| *n >= count)
        });
        assert!(daemon.established(&tern_ip));
        // ROUTE-REFRESH (RFC 2918): the daemon sends its routes again.
        let family = if v6 {
            Family::IPV6_UNICAST
        } else {
            Family::IPV4_UNICAST
        };
        let before = tern.announcements;
        tern.command(Command::RouteRefresh(family));
        tern.until("the routes again after ROUTE-REFRESH", WAIT, |t| {
            (t.announcements >= before + count as usize).then_some(())
        });
        tern.command(Command::Stop {
            subcode: CeaseSubcode::AdministrativeShutdown,
            message: msg.clone(),
        });
        wait_for("the daemon to log the shutdown communication", WAIT, || {
            daemon.log_text().contains(&msg).then_some(())
        });
        wait_for("the daemon to leave Established", WAIT, || {
            (!daemon.established(&tern_ip)).then_some(())
        });
        (got, sent_seen)
    });
    eprintln!("{test}: Tern received {got}, {kind:?} shows {sent_seen} from Tern");
    assert_eq!(got, count as usize, "routes Tern received from {kind:?}");
    assert_eq!(sent_seen, count, "routes {kind:?} shows from Tern");
    let _ = message;
}

/// TCP-MD5: with the daemon's password the session comes up; with a wrong one it never
/// leaves Connect/Active.
fn md5(test: &str, kind: Kind) {
    if !prerequisites(test) {
        return;
    }
    for (tern_key, up) in [("right-key", true), ("wrong-key", false)] {
        let lab = Lab::new();
        let mut spec = PeerSpec::new(
            "10.77.0.2",
            PEER_AS,
            IpAddr::V4(PEER_V4),
            IpAddr::V4(TERN_V4),
            TERN_AS,
        );
        spec.password = Some("right-key".into());
        spec.passive = true;
        let Some(daemon) = lab.start(test, kind, &spec, &[]) else {
            return;
        };
        let mut config = session(PEER_AS, IpAddr::V4(PEER_V4));
        config.md5_key = Some(tern_key.as_bytes().to_vec());
        let reached = lab.t.run_in(move || {
            let mut tern = Tern::start(config, &listen_on(IpAddr::V4(TERN_V4)));
            if up {
                tern.established();
                assert!(daemon.established(&IpAddr::V4(TERN_V4)));
                true
            } else {
                std::thread::sleep(Duration::from_secs(4));
                tern.pump();
                tern.states.iter().any(|s| *s >= State::OpenSent)
            }
        });
        assert_eq!(reached, up, "{kind:?} with key {tern_key}");
    }
}

/// GTSM (RFC 5082) on both sides: the session comes up; without it on Tern's side (TTL 64)
/// the daemon drops Tern's segments and it never does.
fn gtsm(test: &str, kind: Kind) {
    if !prerequisites(test) {
        return;
    }
    for (tern_gtsm, up) in [(true, true), (false, false)] {
        let lab = Lab::new();
        let mut spec = PeerSpec::new(
            "10.77.0.2",
            PEER_AS,
            IpAddr::V4(PEER_V4),
            IpAddr::V4(TERN_V4),
            TERN_AS,
        );
        spec.gtsm = true;
        spec.passive = true;
        let Some(daemon) = lab.start(test, kind, &spec, &[]) else {
            return;
        };
        let mut config = session(PEER_AS, IpAddr::V4(PEER_V4));
        if tern_gtsm {
            config.gtsm_hops = Some(1);
        } else {
            config.ttl = Some(64);
        }
        let reached = lab.t.run_in(move || {
            let mut tern = Tern::start(config, &listen_on(IpAddr::V4(TERN_V4)));
            if up {
                tern.established();
                wait_for("the daemon Established", WAIT, || {
                    daemon.established(&IpAddr::V4(TERN_V4)).then_some(())
                });
                true
            } else {
                // Some daemons set their minimum TTL only on the accepted socket, after Tern's
                // OPEN was queued: Tern may see their OPEN and KEEPALIVE, but none of Tern's
                // later segments reach them, so on their side the session never comes up.
                std::thread::sleep(Duration::from_secs(4));
                daemon.established(&IpAddr::V4(TERN_V4))
            }
        });
        assert_eq!(reached, up, "{kind:?}, Tern GTSM {tern_gtsm}");
    }
}

/// Administrative reset: Cease / Administrative Reset with a message the daemon logs, then the
/// session comes back by itself.
fn admin_reset(test: &str, kind: Kind) {
    if !prerequisites(test) {
        return;
    }
    let lab = Lab::new();
    let spec = PeerSpec::new(
        "10.77.0.2",
        PEER_AS,
        IpAddr::V4(PEER_V4),
        IpAddr::V4(TERN_V4),
        TERN_AS,
    );
    let Some(daemon) = lab.start(test, kind, &spec, &[]) else {
        return;
    };
    let config = session(PEER_AS, IpAddr::V4(PEER_V4));
    let message = format!("{test}: policy changed");
    lab.t.run_in(move || {
        let mut tern = Tern::start(config, &listen_on(IpAddr::V4(TERN_V4)));
        tern.established();
        tern.command(Command::Reset {
            message: message.clone(),
        });
        let reason = tern.down(WAIT);
        let Reason::AdminStop(n) = reason else {
            panic!("{reason:?}")
        };
        assert_eq!(n.shutdown_communication(), Some(message.as_str()));
        tern.until("Established again", WAIT, |t| {
            (t.establishments >= 2).then_some(())
        });
        wait_for("the daemon to log the reset message", WAIT, || {
            daemon.log_text().contains(&message).then_some(())
        });
        wait_for("the daemon Established again", WAIT, || {
            daemon.established(&IpAddr::V4(TERN_V4)).then_some(())
        });
    });
}

/// Freezing the daemon (SIGSTOP) makes Tern's hold timer expire: Down with 4/0 sent.
fn hold_timer_expiry(test: &str, kind: Kind) {
    if !prerequisites(test) {
        return;
    }
    let lab = Lab::new();
    let mut spec = PeerSpec::new(
        "10.77.0.2",
        PEER_AS,
        IpAddr::V4(PEER_V4),
        IpAddr::V4(TERN_V4),
        TERN_AS,
    );
    spec.passive = true;
    spec.hold_time = 3;
    let Some(daemon) = lab.start(test, kind, &spec, &[]) else {
        return;
    };
    let mut config = session(PEER_AS, IpAddr::V4(PEER_V4));
    config.session.hold_time = 3;
    let reason = lab.t.run_in(move || {
        let mut tern = Tern::start(config, &listen_on(IpAddr::V4(TERN_V4)));
        assert_eq!(tern.established().hold_time, 3);
        daemon.signal(nix::sys::signal::Signal::SIGSTOP);
        let r = tern.down(Duration::from_secs(10));
        daemon.signal(nix::sys::signal::Signal::SIGCONT);
        r
    });
    let Reason::NotificationSent(n) = reason else {
        panic!("{reason:?}")
    };
    assert_eq!(n.code, ErrorCode::HoldTimerExpired);
}

/// Graceful restart and ADD-PATH capabilities are exchanged; ADD-PATH routes flow both ways.
fn gr_and_add_path(test: &str, kind: Kind) {
    if !prerequisites(test) {
        return;
    }
    let lab = Lab::new();
    let mut spec = PeerSpec::new(
        "10.77.0.2",
        PEER_AS,
        IpAddr::V4(PEER_V4),
        IpAddr::V4(TERN_V4),
        TERN_AS,
    );
    spec.passive = true;
    spec.graceful_restart = true;
    spec.add_path = true;
    let llgr = kind != Kind::Bird16;
    spec.long_lived_gr = llgr;
    let theirs = prefixes(false, 100, 10);
    let Some(daemon) = lab.start(test, kind, &spec, &theirs) else {
        return;
    };
    let mut config = session(PEER_AS, IpAddr::V4(PEER_V4));
    config.session.capabilities.families = vec![Family::IPV4_UNICAST];
    config.session.capabilities.add_path = vec![AddPathFamily {
        family: Family::IPV4_UNICAST,
        mode: AddPathMode::SendReceive,
    }];
    config.session.capabilities.graceful_restart = Some(GracefulRestart {
        restart_state: false,
        notification: false,
        restart_time: 120,
        families: vec![GracefulRestartFamily {
            family: Family::IPV4_UNICAST,
            forwarding_preserved: true,
        }],
    });
    config.session.capabilities.long_lived_graceful_restart = vec![LlgrFamily {
        family: Family::IPV4_UNICAST,
        forwarding_preserved: true,
        stale_time: 120,
    }];
    let ours = prefixes(false, 200, 10);
    let (n, rib) = lab.t.run_in(move || {
        let mut tern = Tern::start(config, &listen_on(IpAddr::V4(TERN_V4)));
        let n = tern.established();
        tern.announce(&ours, IpAddr::V4(TERN_V4));
        let rib = tern.until("the daemon's routes", WAIT, |t| {
            (t.rib.len() >= 10).then(|| t.rib.clone())
        });
        wait_for("the daemon to count Tern's routes", WAIT, || {
            daemon
                .routes_from_tern(&IpAddr::V4(TERN_V4), 10)
                .filter(|n| *n >= 10)
        });
        (n, rib)
    });
    let gr = n
        .graceful_restart
        .as_ref()
        .expect("graceful restart negotiated");
    assert!(gr.restart_time > 0);
    if llgr {
        assert!(
            n.long_lived_graceful_restart
                .iter()
                .any(|f| f.family == Family::IPV4_UNICAST && f.stale_time > 0),
            "long-lived GR not negotiated: {:?}",
            n.peer_capabilities
        );
    }
    assert!(
        !n.add_path_receive.is_empty(),
        "peer sends path ids: {:?}",
        n.peer_capabilities
    );
    assert!(
        rib.iter().all(|r| r.path_id.is_some()),
        "received NLRI carry path ids"
    );
}

/// Both sides active, Tern with DelayOpen: one Established session that stays up.
fn both_active(test: &str, kind: Kind) {
    if !prerequisites(test) {
        return;
    }
    let lab = Lab::new();
    let spec = PeerSpec::new(
        "10.77.0.2",
        PEER_AS,
        IpAddr::V4(PEER_V4),
        IpAddr::V4(TERN_V4),
        TERN_AS,
    );
    let Some(daemon) = lab.start(test, kind, &spec, &[]) else {
        return;
    };
    // DelayOpen: Tern's OPEN waits until the daemon's arrives (RFC 4271 §8.2.2).
    let mut config = session(PEER_AS, IpAddr::V4(PEER_V4));
    config.session.delay_open = Some(Duration::from_secs(2));
    lab.t.run_in(move || {
        let mut tern = Tern::start(config, &listen_on(IpAddr::V4(TERN_V4)));
        tern.established();
        wait_for("the daemon Established", WAIT, || {
            daemon.established(&IpAddr::V4(TERN_V4)).then_some(())
        });
        // Stays up through several keepalive intervals.
        std::thread::sleep(Duration::from_secs(4));
        tern.pump();
        assert!(tern.downs.is_empty(), "{:?}", tern.downs);
        assert!(daemon.established(&IpAddr::V4(TERN_V4)));
        // If both connections were in flight, the peer's (higher identifier 10.77.0.2) won.
        // The daemons answer an incoming connection's OPEN at once, so whether a collision
        // happens is up to timing; its resolution is covered deterministically by the FSM and
        // loopback driver tests.
        assert!(
            tern.collisions.iter().all(|k| *k == Direction::Inbound),
            "{:?}",
            tern.collisions
        );
    });
}

/// Extended messages (RFC 8654): 3,000 routes in one UPDATE of about 12 kB, counted by the
/// peer.
fn extended_messages(test: &str, kind: Kind) {
    if !prerequisites(test) {
        return;
    }
    let lab = Lab::new();
    let mut spec = PeerSpec::new(
        "10.77.0.2",
        PEER_AS,
        IpAddr::V4(PEER_V4),
        IpAddr::V4(TERN_V4),
        TERN_AS,
    );
    spec.passive = true;
    spec.extended_messages = true;
    let Some(daemon) = lab.start(test, kind, &spec, &[]) else {
        return;
    };
    let mut config = session(PEER_AS, IpAddr::V4(PEER_V4));
    config.session.capabilities.extended_message = true;
    let ours = prefixes(false, 200, 3000);
    let (n, messages) = lab.t.run_in(move || {
        let mut tern = Tern::start(config, &listen_on(IpAddr::V4(TERN_V4)));
        let n = tern.established();
        let attrs = PathAttributes {
            origin: Some(Origin::Igp),
            as_path: Some(AsPath::from_sequence(&[TERN_AS])),
            next_hop: Some(TERN_V4),
            ..PathAttributes::default()
        };
        let nlri: Vec<Nlri> = ours.iter().map(|p| Nlri::new(parse_prefix(p))).collect();
        let mut wire = BytesMut::new();
        let messages = UpdatePacker::new(n.encode_context())
            .announce(&attrs, &nlri, &mut wire)
            .unwrap();
        tern.command(Command::SendEncoded(vec![wire.freeze()]));
        wait_for("the daemon to count Tern's routes", WAIT, || {
            daemon
                .routes_from_tern(&IpAddr::V4(TERN_V4), 0)
                .filter(|c| *c >= 3000)
        });
        (n, messages)
    });
    assert!(n.extended_message, "{:?}", n.peer_capabilities);
    assert_eq!(messages, 1, "3,000 /24s fit one extended UPDATE");
}

/// A 2-octet-AS speaker (BIRD `enable as4 off`): Tern with a 4-octet AS appears as AS_TRANS
/// and its path still carries the real AS (AS4_PATH).
fn two_octet_peer(test: &str, kind: Kind) {
    if !prerequisites(test) {
        return;
    }
    let lab = Lab::new();
    let big_as = 4_200_000_001;
    // BIRD 1.6 with `enable as4 off` sees Tern's 4-octet AS as AS_TRANS. BIRD 2 still reads the
    // 4-octet AS capability it does not announce itself and refuses a neighbor AS above 65535
    // when as4 is off, so there Tern keeps a 2-octet AS and only the path has 4-octet ASNs.
    let tern_as = if kind == Kind::Bird16 {
        big_as
    } else {
        TERN_AS
    };
    let expected = if kind == Kind::Bird16 { 23456 } else { TERN_AS };
    let path: Vec<u32> = if kind == Kind::Bird16 {
        vec![big_as, 4_200_000_002]
    } else {
        vec![TERN_AS, big_as, 4_200_000_002]
    };
    let mut spec = PeerSpec::new(
        "10.77.0.2",
        PEER_AS,
        IpAddr::V4(PEER_V4),
        IpAddr::V4(TERN_V4),
        expected,
    );
    spec.as4 = false;
    spec.passive = true;
    let theirs = prefixes(false, 100, 10);
    let Some(daemon) = lab.start(test, kind, &spec, &theirs) else {
        return;
    };
    let mut config = session(PEER_AS, IpAddr::V4(PEER_V4));
    config.session.local_as = tern_as;
    let ours = prefixes(false, 200, 10);
    let (four, path_text) = lab.t.run_in(move || {
        let mut tern = Tern::start(config, &listen_on(IpAddr::V4(TERN_V4)));
        let n = tern.established();
        // Announce with our real 4-octet AS first in the path.
        let mut wire = BytesMut::new();
        let attrs = PathAttributes {
            origin: Some(Origin::Igp),
            as_path: Some(AsPath::from_sequence(&path)),
            next_hop: Some(TERN_V4),
            ..PathAttributes::default()
        };
        let nlri: Vec<Nlri> = ours
            .iter()
            .map(|p| {
                let (a, l) = p.split_once('/').unwrap();
                Nlri::new(Prefix::new(a.parse().unwrap(), l.parse().unwrap()).unwrap())
            })
            .collect();
        UpdatePacker::new(n.encode_context())
            .announce(&attrs, &nlri, &mut wire)
            .unwrap();
        tern.command(Command::SendEncoded(vec![wire.freeze()]));
        tern.until("the daemon's routes", WAIT, |t| {
            (t.rib.len() >= 10).then_some(())
        });
        wait_for("the daemon to count Tern's routes", WAIT, || {
            daemon
                .routes_from_tern(&IpAddr::V4(TERN_V4), 10)
                .filter(|n| *n >= 10)
        });
        let text = match &daemon {
            Daemon::Bird(h) => h.birdc("show route protocol tern all"),
            _ => String::new(),
        };
        (n.four_octet_as, text)
    });
    assert!(
        !four,
        "4-octet AS must not be negotiated with a 2-octet speaker"
    );
    assert!(
        path_text.contains("4200000001 4200000002"),
        "BIRD shows the 4-octet path: {path_text}"
    );
}

macro_rules! matrix {
    ($($name:ident => $body:expr;)*) => { $( #[test] fn $name() { $body } )* };
}

matrix! {
    bird16_ebgp_ipv4_tern_active_1000_routes_each_way_and_shutdown_message =>
        routes_each_way_and_shutdown("bird16_ebgp_ipv4", Kind::Bird16, false, false, false, 1000);
    bird16_ibgp_ipv4_tern_passive => routes_each_way_and_shutdown("bird16_ibgp_ipv4_passive", Kind::Bird16, false, true, true, 100);
    bird16_ebgp_ipv6_transport => routes_each_way_and_shutdown("bird16_ebgp_ipv6", Kind::Bird16, true, false, false, 100);
    bird16_md5_right_and_wrong_password => md5("bird16_md5", Kind::Bird16);
    bird16_admin_reset_message_and_reconnect => admin_reset("bird16_reset", Kind::Bird16);
    bird16_gtsm_on_both_sides_and_refused_without => gtsm("bird16_gtsm", Kind::Bird16);
    bird16_hold_timer_expires_when_peer_is_frozen => hold_timer_expiry("bird16_hold", Kind::Bird16);
    bird16_graceful_restart_and_add_path => gr_and_add_path("bird16_gr_addpath", Kind::Bird16);
    bird16_both_active_delay_open_one_session => both_active("bird16_both_active", Kind::Bird16);
    bird16_two_octet_as_peer => two_octet_peer("bird16_as2", Kind::Bird16);

    bird2_ebgp_ipv4_tern_active_1000_routes_each_way_and_shutdown_message =>
        routes_each_way_and_shutdown("bird2_ebgp_ipv4", Kind::Bird2, false, false, false, 1000);
    bird2_ibgp_ipv4_tern_passive => routes_each_way_and_shutdown("bird2_ibgp_ipv4_passive", Kind::Bird2, false, true, true, 100);
    bird2_ebgp_ipv6_transport => routes_each_way_and_shutdown("bird2_ebgp_ipv6", Kind::Bird2, true, false, false, 100);
    bird2_md5_right_and_wrong_password => md5("bird2_md5", Kind::Bird2);
    bird2_admin_reset_message_and_reconnect => admin_reset("bird2_reset", Kind::Bird2);
    bird2_extended_messages_3000_routes_in_one_update => extended_messages("bird2_extmsg", Kind::Bird2);
    bird2_gtsm_on_both_sides_and_refused_without => gtsm("bird2_gtsm", Kind::Bird2);
    bird2_hold_timer_expires_when_peer_is_frozen => hold_timer_expiry("bird2_hold", Kind::Bird2);
    bird2_graceful_restart_and_add_path => gr_and_add_path("bird2_gr_addpath", Kind::Bird2);
    bird2_both_active_delay_open_one_session => both_active("bird2_both_active", Kind::Bird2);
    bird2_two_octet_as_peer => two_octet_peer("bird2_as2", Kind::Bird2);

    gobgp_ebgp_ipv4_tern_active_1000_routes_each_way_and_shutdown_message =>
        routes_each_way_and_shutdown("gobgp_ebgp_ipv4", Kind::Gobgp, false, false, false, 1000);
    gobgp_ibgp_ipv4_tern_passive => routes_each_way_and_shutdown("gobgp_ibgp_ipv4_passive", Kind::Gobgp, false, true, true, 100);
    gobgp_ebgp_ipv6_transport => routes_each_way_and_shutdown("gobgp_ebgp_ipv6", Kind::Gobgp, true, false, false, 100);
    gobgp_md5_right_and_wrong_password => md5("gobgp_md5", Kind::Gobgp);
    gobgp_admin_reset_message_and_reconnect => admin_reset("gobgp_reset", Kind::Gobgp);
    gobgp_gtsm_on_both_sides_and_refused_without => gtsm("gobgp_gtsm", Kind::Gobgp);
    gobgp_hold_timer_expires_when_peer_is_frozen => hold_timer_expiry("gobgp_hold", Kind::Gobgp);
    gobgp_graceful_restart_and_add_path => gr_and_add_path("gobgp_gr_addpath", Kind::Gobgp);
    gobgp_both_active_delay_open_one_session => both_active("gobgp_both_active", Kind::Gobgp);

    frr_ebgp_ipv4_tern_active_1000_routes_each_way_and_shutdown_message =>
        routes_each_way_and_shutdown("frr_ebgp_ipv4", Kind::Frr, false, false, false, 1000);
    frr_ibgp_ipv4_tern_passive => routes_each_way_and_shutdown("frr_ibgp_ipv4_passive", Kind::Frr, false, true, true, 100);
    frr_ebgp_ipv6_transport => routes_each_way_and_shutdown("frr_ebgp_ipv6", Kind::Frr, true, false, false, 100);
    frr_md5_right_and_wrong_password => md5("frr_md5", Kind::Frr);
    frr_admin_reset_message_and_reconnect => admin_reset("frr_reset", Kind::Frr);
    frr_extended_messages_3000_routes_in_one_update => extended_messages("frr_extmsg", Kind::Frr);
    frr_gtsm_on_both_sides_and_refused_without => gtsm("frr_gtsm", Kind::Frr);
    frr_hold_timer_expires_when_peer_is_frozen => hold_timer_expiry("frr_hold", Kind::Frr);
    frr_graceful_restart_and_add_path => gr_and_add_path("frr_gr_addpath", Kind::Frr);
    frr_both_active_delay_open_one_session => both_active("frr_both_active", Kind::Frr);
}
