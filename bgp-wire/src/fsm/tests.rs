//! Deterministic tests of the state machine with virtual time: every input is an event or a
//! timeout at an explicit instant, every output is checked. Section numbers refer to RFC 4271
//! §8.2.2 unless said otherwise.

use std::collections::VecDeque;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use super::*;
use crate::capability::{AddPathFamily, Capability, GracefulRestart, GracefulRestartFamily};
use crate::iana::{AddPathMode, CapabilityCode, OpenSubcode};
use crate::message::Update;
use crate::nlri::Family;

const LOCAL_AS: u32 = 64512;
const PEER_AS: u32 = 64513;

fn id(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn config() -> SessionConfig {
    let mut c = SessionConfig::new(LOCAL_AS, id("10.0.0.1"), PEER_AS);
    c.hold_time = 9;
    c.connect_retry = Duration::from_secs(1);
    c.idle_hold = IdleHold {
        min: Duration::from_secs(5),
        max: Duration::from_secs(30),
        forget: Duration::from_secs(300),
    };
    c
}

fn peer_open(asn: u32, bgp_id: &str, hold: u16) -> Open {
    Open {
        my_as: u16::try_from(asn).unwrap_or(crate::iana::asn::AS_TRANS),
        hold_time: hold,
        bgp_id: id(bgp_id),
        capabilities: vec![
            Capability::Multiprotocol(Family::IPV4_UNICAST),
            Capability::RouteRefresh,
            Capability::FourOctetAs(asn),
        ],
    }
}

fn msg(m: Message) -> Decoded {
    Decoded {
        message: m,
        errors: Vec::new(),
    }
}

/// One session under test with a virtual clock.
struct Rig {
    s: Session,
    now: Instant,
}

impl Rig {
    fn new(config: SessionConfig) -> Rig {
        Rig {
            s: Session::new(config),
            now: Instant::now(),
        }
    }

    fn ev(&mut self, e: Event) -> Vec<Action> {
        self.s.handle(e, self.now)
    }

    /// Advances virtual time by `d`, firing every timer due on the way, in order.
    fn advance(&mut self, d: Duration) -> Vec<Action> {
        let end = self.now + d;
        let mut out = Vec::new();
        while let Some(at) = self.s.poll_timeout() {
            if at > end {
                break;
            }
            self.now = self.now.max(at);
            out.extend(self.s.handle_timeout(self.now));
        }
        self.now = end;
        out
    }

    /// Start → Connect → TCP up → OpenSent; returns the outbound connection.
    fn drive_to_open_sent(&mut self) -> ConnId {
        let a = self.ev(Event::Start);
        let conn = connect_of(&a).expect("Connect action");
        let a = self.ev(Event::Connected(conn));
        assert!(sent(&a, conn).iter().any(|m| matches!(m, Message::Open(_))));
        assert_eq!(self.s.state(), State::OpenSent);
        conn
    }

    /// … → OpenConfirm → Established.
    fn drive_to_established(&mut self) -> ConnId {
        let conn = self.drive_to_open_sent();
        let a = self.ev(Event::Received(
            conn,
            msg(Message::Open(peer_open(PEER_AS, "10.0.0.2", 9))),
        ));
        assert_eq!(sent(&a, conn), vec![Message::Keepalive]);
        assert_eq!(self.s.state(), State::OpenConfirm);
        let a = self.ev(Event::Received(conn, msg(Message::Keepalive)));
        assert!(
            a.iter()
                .any(|x| matches!(x, Action::Established(c, _) if *c == conn))
        );
        assert_eq!(self.s.state(), State::Established);
        conn
    }
}

fn connect_of(actions: &[Action]) -> Option<ConnId> {
    actions.iter().find_map(|a| match a {
        Action::Connect(c) => Some(*c),
        _ => None,
    })
}

fn sent(actions: &[Action], conn: ConnId) -> Vec<Message> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send(c, m) if *c == conn => Some(m.clone()),
            _ => None,
        })
        .collect()
}

fn notification(actions: &[Action]) -> Option<Notification> {
    actions.iter().find_map(|a| match a {
        Action::Send(_, Message::Notification(n)) => Some(n.clone()),
        _ => None,
    })
}

fn closed(actions: &[Action], conn: ConnId) -> bool {
    actions.iter().any(|a| *a == Action::Close(conn))
}

fn downs(actions: &[Action]) -> Vec<Reason> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Down(r) => Some(r.clone()),
            _ => None,
        })
        .collect()
}

fn transitions(actions: &[Action]) -> Vec<(State, State)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::StateChange { from, to, .. } => Some((*from, *to)),
            _ => None,
        })
        .collect()
}

fn code(n: &Notification) -> (ErrorCode, u8) {
    (n.code, n.subcode)
}

// ===== Idle, Connect, Active =====

#[test]
fn new_session_is_idle_without_timers() {
    let s = Session::new(config());
    assert_eq!(s.state(), State::Idle);
    assert_eq!(s.poll_timeout(), None);
}

#[test]
fn idle_refuses_incoming_connections() {
    let mut r = Rig::new(config());
    assert_eq!(r.ev(Event::Incoming), vec![Action::Refuse]);
    assert_eq!(r.s.state(), State::Idle);
}

#[test]
fn start_connects_and_arms_connect_retry() {
    let mut r = Rig::new(config());
    let a = r.ev(Event::Start);
    let conn = connect_of(&a).unwrap();
    assert_eq!(transitions(&a), vec![(State::Idle, State::Connect)]);
    assert_eq!(r.s.poll_timeout(), Some(r.now + Duration::from_secs(1)));
    // A second Start changes nothing.
    assert!(r.ev(Event::Start).is_empty());
    assert_eq!(r.s.connections().count(), 1);
    assert_eq!(r.s.connections().next(), Some((conn, Direction::Outbound)));
}

#[test]
fn connect_retry_expiry_in_connect_drops_the_attempt_and_retries() {
    let mut r = Rig::new(config());
    let first = connect_of(&r.ev(Event::Start)).unwrap();
    let a = r.advance(Duration::from_secs(1));
    assert!(closed(&a, first));
    let second = connect_of(&a).unwrap();
    assert_ne!(first, second);
    assert_eq!(r.s.state(), State::Connect);
}

#[test]
fn failed_connect_goes_active_then_retries_on_connect_retry() {
    let mut r = Rig::new(config());
    let first = connect_of(&r.ev(Event::Start)).unwrap();
    let a = r.ev(Event::ConnectFailed(first));
    assert_eq!(transitions(&a), vec![(State::Connect, State::Active)]);
    assert!(r.advance(Duration::from_millis(999)).is_empty());
    let a = r.advance(Duration::from_millis(1));
    assert!(connect_of(&a).is_some());
    assert_eq!(transitions(&a), vec![(State::Active, State::Connect)]);
}

#[test]
fn passive_session_waits_in_active_and_never_connects() {
    let mut c = config();
    c.passive = true;
    let mut r = Rig::new(c);
    let a = r.ev(Event::Start);
    assert_eq!(transitions(&a), vec![(State::Idle, State::Active)]);
    assert!(connect_of(&a).is_none());
    assert_eq!(r.s.poll_timeout(), None);
    assert!(r.advance(Duration::from_secs(600)).is_empty());
    let a = r.ev(Event::Incoming);
    let Some(Action::Accept(conn)) = a.first().cloned() else {
        panic!("{a:?}")
    };
    assert!(matches!(sent(&a, conn)[..], [Message::Open(_)]));
    assert_eq!(r.s.state(), State::OpenSent);
}

#[test]
fn incoming_connection_in_connect_is_accepted_next_to_our_attempt() {
    let mut r = Rig::new(config());
    let ours = connect_of(&r.ev(Event::Start)).unwrap();
    let a = r.ev(Event::Incoming);
    let Some(Action::Accept(theirs)) = a.first().cloned() else {
        panic!("{a:?}")
    };
    assert_ne!(ours, theirs);
    assert_eq!(r.s.connections().count(), 2);
    assert_eq!(r.s.state(), State::OpenSent);
}

// ===== OpenSent =====

#[test]
fn open_carries_as_trans_for_a_four_octet_as_and_the_capabilities() {
    let mut c = config();
    c.local_as = 4_200_000_000;
    c.capabilities.add_path = vec![AddPathFamily {
        family: Family::IPV4_UNICAST,
        mode: AddPathMode::SendReceive,
    }];
    c.capabilities.graceful_restart = Some(GracefulRestart {
        restart_time: 120,
        ..GracefulRestart::default()
    });
    let mut r = Rig::new(c);
    let conn = connect_of(&r.ev(Event::Start)).unwrap();
    let a = r.ev(Event::Connected(conn));
    let [Message::Open(open)] = &sent(&a, conn)[..] else {
        panic!("{a:?}")
    };
    assert_eq!(open.my_as, 23456);
    assert_eq!(open.four_octet_as(), Some(4_200_000_000));
    assert_eq!(open.hold_time, 9);
    assert_eq!(open.bgp_id, id("10.0.0.1"));
    let fams: Vec<Family> = open.multiprotocol().collect();
    assert_eq!(fams, vec![Family::IPV4_UNICAST, Family::IPV6_UNICAST]);
    for code in [
        CapabilityCode::RouteRefresh,
        CapabilityCode::AddPath,
        CapabilityCode::GracefulRestart,
    ] {
        assert!(open.has_capability(code), "{code} missing");
    }
    assert!(!open.has_capability(CapabilityCode::ExtendedMessage));
}

#[test]
fn open_sent_hold_timer_uses_the_large_value_then_expires_with_4_0() {
    let mut r = Rig::new(config());
    let conn = r.drive_to_open_sent();
    assert!(
        r.advance(Duration::from_secs(239))
            .iter()
            .all(|a| !closed(std::slice::from_ref(a), conn))
    );
    let a = r.advance(Duration::from_secs(1));
    assert_eq!(
        code(&notification(&a).unwrap()),
        (ErrorCode::HoldTimerExpired, 0)
    );
    assert!(closed(&a, conn));
    assert_eq!(r.s.state(), State::Idle);
}

#[test]
fn open_sent_valid_open_sends_keepalive_and_moves_to_open_confirm() {
    let mut r = Rig::new(config());
    let conn = r.drive_to_open_sent();
    let a = r.ev(Event::Received(
        conn,
        msg(Message::Open(peer_open(PEER_AS, "10.0.0.2", 30))),
    ));
    assert_eq!(sent(&a, conn), vec![Message::Keepalive]);
    assert_eq!(transitions(&a), vec![(State::OpenSent, State::OpenConfirm)]);
    // Negotiated hold = min(9, 30) = 9 → keepalive every 3 s.
    let n = r.s.negotiated(conn).unwrap();
    assert_eq!((n.hold_time, n.keepalive_time), (9, 3));
    assert_eq!(r.s.poll_timeout(), Some(r.now + Duration::from_secs(3)));
}

#[test]
fn open_with_the_wrong_peer_as_is_refused_with_2_2() {
    let mut r = Rig::new(config());
    let conn = r.drive_to_open_sent();
    let a = r.ev(Event::Received(
        conn,
        msg(Message::Open(peer_open(65000, "10.0.0.2", 9))),
    ));
    let n = notification(&a).unwrap();
    assert_eq!(
        code(&n),
        (ErrorCode::OpenMessage, u8::from(OpenSubcode::BadPeerAs))
    );
    assert_eq!(&n.data[..], &65000u16.to_be_bytes());
    assert!(closed(&a, conn));
    assert_eq!(r.s.state(), State::Idle);
}

#[test]
fn open_with_our_own_or_a_zero_identifier_is_refused_with_2_3() {
    for bad in ["10.0.0.1", "0.0.0.0"] {
        let mut r = Rig::new(config());
        let conn = r.drive_to_open_sent();
        let a = r.ev(Event::Received(
            conn,
            msg(Message::Open(peer_open(PEER_AS, bad, 9))),
        ));
        let n = notification(&a).unwrap();
        assert_eq!(
            code(&n),
            (
                ErrorCode::OpenMessage,
                u8::from(OpenSubcode::BadBgpIdentifier)
            )
        );
    }
}

#[test]
fn hold_time_below_the_configured_minimum_is_refused_with_2_6() {
    let mut c = config();
    c.min_hold_time = 5;
    let mut r = Rig::new(c);
    let conn = r.drive_to_open_sent();
    let a = r.ev(Event::Received(
        conn,
        msg(Message::Open(peer_open(PEER_AS, "10.0.0.2", 4))),
    ));
    let n = notification(&a).unwrap();
    assert_eq!(
        code(&n),
        (
            ErrorCode::OpenMessage,
            u8::from(OpenSubcode::UnacceptableHoldTime)
        )
    );
}

#[test]
fn two_octet_peer_is_identified_by_my_as_and_4_octet_peer_by_its_capability() {
    // A 2-octet speaker (no capability 65) with an AS that fits.
    let mut r = Rig::new(config());
    let conn = r.drive_to_open_sent();
    let mut open = peer_open(PEER_AS, "10.0.0.2", 9);
    open.capabilities
        .retain(|c| !matches!(c, Capability::FourOctetAs(_)));
    r.ev(Event::Received(conn, msg(Message::Open(open))));
    assert_eq!(r.s.state(), State::OpenConfirm);
    assert!(!r.s.negotiated(conn).unwrap().four_octet_as);
    assert!(!r.s.negotiated(conn).unwrap().decode_context().four_octet_as);

    // A 4-octet AS behind AS_TRANS.
    let mut c = config();
    c.peer_as = 4_200_000_001;
    let mut r = Rig::new(c);
    let conn = r.drive_to_open_sent();
    r.ev(Event::Received(
        conn,
        msg(Message::Open(peer_open(4_200_000_001, "10.0.0.2", 9))),
    ));
    assert_eq!(r.s.state(), State::OpenConfirm);
    assert_eq!(r.s.negotiated(conn).unwrap().peer_as, 4_200_000_001);
}

#[test]
fn keepalive_or_update_in_open_sent_is_an_fsm_error_5_1() {
    for m in [Message::Keepalive, Message::Update(Update::default())] {
        let mut r = Rig::new(config());
        let conn = r.drive_to_open_sent();
        let a = r.ev(Event::Received(conn, msg(m)));
        assert_eq!(
            code(&notification(&a).unwrap()),
            (
                ErrorCode::FiniteStateMachine,
                u8::from(FsmSubcode::UnexpectedMessageInOpenSent)
            )
        );
        assert_eq!(r.s.state(), State::Idle);
    }
}

#[test]
fn tcp_failure_in_open_sent_goes_active_and_restarts_connect_retry() {
    let mut r = Rig::new(config());
    let conn = r.drive_to_open_sent();
    let a = r.ev(Event::Closed(conn));
    assert_eq!(transitions(&a), vec![(State::OpenSent, State::Active)]);
    assert!(notification(&a).is_none());
    let a = r.advance(Duration::from_secs(1));
    assert!(connect_of(&a).is_some());
}

#[test]
fn notification_in_open_sent_closes_without_answering() {
    let mut r = Rig::new(config());
    let conn = r.drive_to_open_sent();
    let n = Notification::new(ErrorCode::OpenMessage, OpenSubcode::UnsupportedCapability);
    let a = r.ev(Event::Received(conn, msg(Message::Notification(n.clone()))));
    assert!(notification(&a).is_none());
    assert!(closed(&a, conn));
    assert_eq!(
        a.iter().find_map(|x| match x {
            Action::StateChange { reason, .. } => Some(reason.clone()),
            _ => None,
        }),
        Some(Reason::NotificationReceived(n))
    );
}

// ===== OpenConfirm =====

#[test]
fn update_in_open_confirm_is_an_fsm_error_5_2() {
    let mut r = Rig::new(config());
    let conn = r.drive_to_open_sent();
    r.ev(Event::Received(
        conn,
        msg(Message::Open(peer_open(PEER_AS, "10.0.0.2", 9))),
    ));
    let a = r.ev(Event::Received(
        conn,
        msg(Message::Update(Update::default())),
    ));
    assert_eq!(
        code(&notification(&a).unwrap()),
        (
            ErrorCode::FiniteStateMachine,
            u8::from(FsmSubcode::UnexpectedMessageInOpenConfirm)
        )
    );
}

#[test]
fn open_confirm_sends_keepalives_and_its_hold_timer_expires_without_one() {
    let mut r = Rig::new(config());
    let conn = r.drive_to_open_sent();
    r.ev(Event::Received(
        conn,
        msg(Message::Open(peer_open(PEER_AS, "10.0.0.2", 9))),
    ));
    let a = r.advance(Duration::from_secs(8));
    assert_eq!(sent(&a, conn), vec![Message::Keepalive, Message::Keepalive]);
    let a = r.advance(Duration::from_secs(1));
    assert_eq!(
        code(&notification(&a).unwrap()),
        (ErrorCode::HoldTimerExpired, 0)
    );
    assert!(downs(&a).is_empty(), "never Established, so no Down");
}

#[test]
fn keepalive_in_open_confirm_establishes_with_the_negotiated_value() {
    let mut r = Rig::new(config());
    let conn = r.drive_to_open_sent();
    r.ev(Event::Received(
        conn,
        msg(Message::Open(peer_open(PEER_AS, "10.0.0.2", 9))),
    ));
    let a = r.ev(Event::Received(conn, msg(Message::Keepalive)));
    let n = a
        .iter()
        .find_map(|x| match x {
            Action::Established(c, n) if *c == conn => Some(n.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(n.peer_as, PEER_AS);
    assert_eq!(n.peer_id, id("10.0.0.2"));
    assert_eq!(n.families, vec![Family::IPV4_UNICAST]);
    assert!(n.route_refresh);
    assert_eq!(
        transitions(&a),
        vec![(State::OpenConfirm, State::Established)]
    );
    assert_eq!(r.s.established().map(|(c, _)| c), Some(conn));
}

// ===== Established =====

#[test]
fn established_sends_keepalives_every_third_of_hold_and_survives_on_peer_keepalives() {
    let mut r = Rig::new(config());
    let conn = r.drive_to_established();
    for _ in 0..10 {
        let a = r.advance(Duration::from_secs(3));
        assert_eq!(sent(&a, conn), vec![Message::Keepalive]);
        assert!(
            r.ev(Event::Received(conn, msg(Message::Keepalive)))
                .is_empty()
        );
    }
    assert_eq!(r.s.state(), State::Established);
}

#[test]
fn update_is_delivered_and_restarts_the_hold_timer() {
    let mut r = Rig::new(config());
    let conn = r.drive_to_established();
    r.advance(Duration::from_secs(8));
    let a = r.ev(Event::Received(
        conn,
        msg(Message::Update(Update::default())),
    ));
    assert_eq!(
        a,
        vec![Action::Deliver(msg(Message::Update(Update::default())))]
    );
    // Hold restarted at t=8: nothing expires at t=9..16.
    let a = r.advance(Duration::from_secs(8));
    assert!(notification(&a).is_none());
    let a = r.advance(Duration::from_secs(1));
    assert_eq!(
        code(&notification(&a).unwrap()),
        (ErrorCode::HoldTimerExpired, 0)
    );
}

#[test]
fn hold_timer_expiry_in_established_sends_4_0_reports_down_and_backs_off() {
    let mut r = Rig::new(config());
    let conn = r.drive_to_established();
    let a = r.advance(Duration::from_secs(9));
    assert_eq!(
        code(&notification(&a).unwrap()),
        (ErrorCode::HoldTimerExpired, 0)
    );
    assert!(closed(&a, conn));
    assert_eq!(downs(&a).len(), 1);
    assert_eq!(r.s.state(), State::Idle);
    // IdleHold: 5 s, then a new attempt.
    assert!(connect_of(&r.advance(Duration::from_millis(4999))).is_none());
    assert!(connect_of(&r.advance(Duration::from_millis(1))).is_some());
}

#[test]
fn open_in_established_is_an_fsm_error_5_3() {
    let mut r = Rig::new(config());
    let conn = r.drive_to_established();
    let a = r.ev(Event::Received(
        conn,
        msg(Message::Open(peer_open(PEER_AS, "10.0.0.2", 9))),
    ));
    assert_eq!(
        code(&notification(&a).unwrap()),
        (
            ErrorCode::FiniteStateMachine,
            u8::from(FsmSubcode::UnexpectedMessageInEstablished)
        )
    );
    assert_eq!(downs(&a).len(), 1);
}

#[test]
fn notification_in_established_reports_down_with_the_peer_reason() {
    let mut r = Rig::new(config());
    let conn = r.drive_to_established();
    let n =
        Notification::cease_with_communication(CeaseSubcode::AdministrativeShutdown, "maintenance");
    let a = r.ev(Event::Received(conn, msg(Message::Notification(n.clone()))));
    assert!(notification(&a).is_none());
    assert_eq!(downs(&a), vec![Reason::NotificationReceived(n)]);
    assert_eq!(r.s.state(), State::Idle);
}

#[test]
fn tcp_loss_in_established_reports_down_and_backs_off() {
    let mut r = Rig::new(config());
    let conn = r.drive_to_established();
    let a = r.ev(Event::Closed(conn));
    assert_eq!(downs(&a), vec![Reason::ConnectionClosed]);
    assert_eq!(r.s.state(), State::Idle);
    assert_eq!(
        r.ev(Event::Incoming),
        vec![Action::Refuse],
        "IdleHold refuses connections"
    );
}

#[test]
fn fatal_decode_error_sends_its_notification() {
    let mut r = Rig::new(config());
    let conn = r.drive_to_established();
    let n = Notification::new(ErrorCode::UpdateMessage, 1);
    let a = r.ev(Event::DecodeError(conn, n.clone()));
    assert_eq!(sent(&a, conn), vec![Message::Notification(n.clone())]);
    assert_eq!(downs(&a), vec![Reason::NotificationSent(n)]);
}

#[test]
fn treat_as_withdraw_errors_are_delivered_and_keep_the_session_up() {
    let mut r = Rig::new(config());
    let conn = r.drive_to_established();
    let err = crate::error::DecodeError {
        reason: crate::error::Reason::InvalidOrigin(7),
        code: ErrorCode::UpdateMessage,
        subcode: 6,
        data: bytes::Bytes::new(),
        action: crate::error::Action::TreatAsWithdraw {
            withdraw: std::sync::Arc::from(Vec::new()),
        },
    };
    let d = Decoded {
        message: Message::Update(Update::default()),
        errors: vec![err],
    };
    let a = r.ev(Event::Received(conn, d.clone()));
    assert_eq!(a, vec![Action::Deliver(d)]);
    assert_eq!(r.s.state(), State::Established);
}

#[test]
fn hold_time_zero_disables_keepalives_and_the_hold_timer() {
    let mut c = config();
    c.hold_time = 0;
    let mut r = Rig::new(c);
    let conn = r.drive_to_open_sent();
    r.ev(Event::Received(
        conn,
        msg(Message::Open(peer_open(PEER_AS, "10.0.0.2", 90))),
    ));
    r.ev(Event::Received(conn, msg(Message::Keepalive)));
    assert_eq!(r.s.state(), State::Established);
    assert_eq!(r.s.poll_timeout(), None);
    assert!(r.advance(Duration::from_secs(3600)).is_empty());
}

// ===== administrative stop and reset =====

#[test]
fn admin_stop_sends_cease_with_shutdown_communication_and_stays_idle() {
    let mut r = Rig::new(config());
    let conn = r.drive_to_established();
    let a = r.ev(Event::Stop {
        subcode: CeaseSubcode::AdministrativeShutdown,
        message: "node drained".into(),
    });
    let n = notification(&a).unwrap();
    assert_eq!(
        code(&n),
        (
            ErrorCode::Cease,
            u8::from(CeaseSubcode::AdministrativeShutdown)
        )
    );
    assert_eq!(n.shutdown_communication(), Some("node drained"));
    assert!(closed(&a, conn));
    assert_eq!(downs(&a).len(), 1);
    assert_eq!(r.s.state(), State::Idle);
    assert_eq!(r.s.poll_timeout(), None);
    assert!(r.advance(Duration::from_secs(3600)).is_empty());
    assert_eq!(r.ev(Event::Incoming), vec![Action::Refuse]);
    // A new Start brings it back.
    assert!(connect_of(&r.ev(Event::Start)).is_some());
}

#[test]
fn admin_stop_before_open_sends_no_notification() {
    let mut r = Rig::new(config());
    let conn = connect_of(&r.ev(Event::Start)).unwrap();
    let a = r.ev(Event::Stop {
        subcode: CeaseSubcode::PeerDeconfigured,
        message: String::new(),
    });
    assert!(notification(&a).is_none());
    assert!(closed(&a, conn));
}

#[test]
fn admin_reset_sends_cease_4_and_reconnects_at_once() {
    let mut r = Rig::new(config());
    let conn = r.drive_to_established();
    let a = r.ev(Event::Reset {
        message: "policy change".into(),
    });
    let n = notification(&a).unwrap();
    assert_eq!(
        code(&n),
        (
            ErrorCode::Cease,
            u8::from(CeaseSubcode::AdministrativeReset)
        )
    );
    assert_eq!(n.shutdown_communication(), Some("policy change"));
    assert!(closed(&a, conn));
    assert!(connect_of(&a).is_some());
    assert_eq!(r.s.state(), State::Connect);
}

// ===== IdleHold back-off =====

#[test]
fn idle_hold_doubles_up_to_its_maximum_and_is_forgotten_after_a_quiet_period() {
    let mut c = config();
    c.open_hold_time = Duration::from_secs(1000);
    let mut r = Rig::new(c);
    let mut waits = Vec::new();
    let mut conn = r.drive_to_open_sent();
    for _ in 0..5 {
        // A protocol error each time: the peer refuses us.
        let n = Notification::new(ErrorCode::Cease, CeaseSubcode::ConnectionRejected);
        r.ev(Event::Received(conn, msg(Message::Notification(n))));
        assert_eq!(r.s.state(), State::Idle);
        let start = r.now;
        let mut a = Vec::new();
        while connect_of(&a).is_none() {
            a = r.advance(Duration::from_millis(500));
        }
        waits.push((r.now - start).as_secs());
        conn = connect_of(&a).unwrap();
        r.ev(Event::Connected(conn));
    }
    assert_eq!(waits, vec![5, 10, 20, 30, 30]);
    // After more than `forget` without errors the next wait is the minimum again.
    r.advance(Duration::from_secs(301));
    let conn = r.s.connections().map(|(c, _)| c).next().unwrap();
    let n = Notification::new(ErrorCode::Cease, CeaseSubcode::ConnectionRejected);
    r.ev(Event::Received(conn, msg(Message::Notification(n))));
    assert_eq!(r.s.poll_timeout(), Some(r.now + Duration::from_secs(5)));
}

#[test]
fn idle_hold_bounds_are_configurable() {
    let hold = IdleHold {
        min: Duration::from_secs(1),
        max: Duration::from_secs(3),
        forget: Duration::from_secs(10),
    };
    let mut prev = None;
    let mut seen = Vec::new();
    for _ in 0..4 {
        let next = hold.next(prev);
        seen.push(next.as_secs());
        prev = Some(next);
    }
    assert_eq!(seen, vec![1, 2, 3, 3]);
}

// ===== DelayOpen =====

#[test]
fn delay_open_holds_our_open_until_the_timer_fires() {
    let mut c = config();
    c.delay_open = Some(Duration::from_secs(2));
    let mut r = Rig::new(c);
    let conn = connect_of(&r.ev(Event::Start)).unwrap();
    let a = r.ev(Event::Connected(conn));
    assert!(sent(&a, conn).is_empty());
    assert_eq!(r.s.state(), State::Connect);
    let a = r.advance(Duration::from_secs(2));
    assert!(matches!(sent(&a, conn)[..], [Message::Open(_)]));
    assert_eq!(r.s.state(), State::OpenSent);
}

#[test]
fn open_received_during_delay_open_is_answered_with_open_and_keepalive() {
    let mut c = config();
    c.delay_open = Some(Duration::from_secs(2));
    c.passive = true;
    let mut r = Rig::new(c);
    r.ev(Event::Start);
    let a = r.ev(Event::Incoming);
    let Some(Action::Accept(conn)) = a.first().cloned() else {
        panic!("{a:?}")
    };
    assert!(sent(&a, conn).is_empty());
    assert_eq!(r.s.state(), State::Active);
    let a = r.ev(Event::Received(
        conn,
        msg(Message::Open(peer_open(PEER_AS, "10.0.0.2", 9))),
    ));
    let m = sent(&a, conn);
    assert!(
        matches!(m[..], [Message::Open(_), Message::Keepalive]),
        "{m:?}"
    );
    assert_eq!(r.s.state(), State::OpenConfirm);
    // The DelayOpen timer was stopped: no second OPEN.
    assert!(
        r.advance(Duration::from_secs(2))
            .iter()
            .all(|x| !matches!(x, Action::Send(_, Message::Open(_))))
    );
}

// ===== connection collision (RFC 4271 §6.8) =====

/// Two sessions joined by a simulated network: connections are created and messages
/// delivered in FIFO order, all at the same virtual instant.
struct Pair {
    a: Session,
    b: Session,
    now: Instant,
    /// (side, conn) → (other side's conn), filled as connections are set up.
    links: Vec<((bool, ConnId), ConnId)>,
    /// Pending outputs: (side that produced, action).
    queue: VecDeque<(bool, Action)>,
    established: Vec<(bool, ConnId)>,
    notifications: Vec<(bool, Notification)>,
    collisions: Vec<(bool, Direction)>,
}

impl Pair {
    fn new(a: SessionConfig, b: SessionConfig) -> Pair {
        Pair {
            a: Session::new(a),
            b: Session::new(b),
            now: Instant::now(),
            links: Vec::new(),
            queue: VecDeque::new(),
            established: Vec::new(),
            notifications: Vec::new(),
            collisions: Vec::new(),
        }
    }

    fn side(&mut self, side: bool) -> &mut Session {
        if side { &mut self.a } else { &mut self.b }
    }

    fn input(&mut self, side: bool, e: Event) {
        let now = self.now;
        let out = self.side(side).handle(e, now);
        self.queue.extend(out.into_iter().map(|x| (side, x)));
    }

    fn peer_conn(&self, side: bool, conn: ConnId) -> Option<ConnId> {
        self.links
            .iter()
            .find(|(k, _)| *k == (side, conn))
            .map(|(_, v)| *v)
    }

    /// Processes queued actions. Connect requests are held until `deliver_connects`.
    fn run(&mut self, connects: &mut Vec<(bool, ConnId)>) {
        while let Some((side, action)) = self.queue.pop_front() {
            match action {
                Action::Connect(c) => connects.push((side, c)),
                Action::Send(c, m) => {
                    if let Message::Notification(n) = &m {
                        self.notifications.push((side, n.clone()));
                    }
                    if let Some(pc) = self.peer_conn(side, c) {
                        self.input(!side, Event::Received(pc, msg(m)));
                    }
                }
                Action::Close(c) => {
                    if let Some(pc) = self.peer_conn(side, c) {
                        self.links
                            .retain(|(k, _)| *k != (side, c) && *k != (!side, pc));
                        self.input(!side, Event::Closed(pc));
                    }
                }
                Action::Established(c, _) => self.established.push((side, c)),
                Action::CollisionResolved { kept } => self.collisions.push((side, kept)),
                _ => {}
            }
        }
    }

    /// Completes every held connection attempt: the far side gets Incoming.
    fn complete(&mut self, connects: Vec<(bool, ConnId)>) {
        for (side, c) in connects {
            let now = self.now;
            let out = self.side(!side).handle(Event::Incoming, now);
            let Some(Action::Accept(pc)) = out.first().cloned() else {
                self.input(side, Event::ConnectFailed(c));
                continue;
            };
            self.links.push(((side, c), pc));
            self.links.push(((!side, pc), c));
            self.queue.extend(out.into_iter().map(|x| (!side, x)));
            self.input(side, Event::Connected(c));
        }
    }
}

fn pair_configs(a_id: &str, b_id: &str) -> (SessionConfig, SessionConfig) {
    let mut a = SessionConfig::new(LOCAL_AS, id(a_id), PEER_AS);
    a.hold_time = 9;
    let mut b = SessionConfig::new(PEER_AS, id(b_id), LOCAL_AS);
    b.hold_time = 9;
    (a, b)
}

fn collide(a_id: &str, b_id: &str) -> Pair {
    let (ca, cb) = pair_configs(a_id, b_id);
    let mut p = Pair::new(ca, cb);
    p.input(true, Event::Start);
    p.input(false, Event::Start);
    // Both sides connect at once: both attempts are in flight before either OPEN arrives.
    let mut connects = Vec::new();
    p.run(&mut connects);
    assert_eq!(connects.len(), 2);
    p.complete(connects);
    let mut more = Vec::new();
    p.run(&mut more);
    assert!(more.is_empty(), "no new connection attempts: {more:?}");
    p
}

#[test]
fn collision_keeps_the_connection_of_the_higher_identifier() {
    for (a_id, b_id, winner_is_a) in [
        ("10.0.0.9", "10.0.0.2", true),
        ("10.0.0.1", "10.0.0.2", false),
    ] {
        let p = collide(a_id, b_id);
        assert_eq!(p.a.state(), State::Established, "{a_id} vs {b_id}");
        assert_eq!(p.b.state(), State::Established);
        assert_eq!(p.a.connections().count(), 1);
        assert_eq!(p.b.connections().count(), 1);
        // The surviving connection was opened by the side with the higher identifier.
        let (_, dir_a) = p.a.connections().next().unwrap();
        assert_eq!(dir_a == Direction::Outbound, winner_is_a);
        // Each side resolved the collision it saw in favour of the same connection.
        assert!(!p.collisions.is_empty());
        for (side, kept) in &p.collisions {
            let kept_by_a = (*kept == Direction::Outbound) == *side;
            assert_eq!(kept_by_a, winner_is_a, "{:?}", p.collisions);
        }
        // Exactly one connection was closed with Cease / Connection Collision Resolution.
        let cease: Vec<_> = p
            .notifications
            .iter()
            .filter(|(_, n)| {
                code(n)
                    == (
                        ErrorCode::Cease,
                        u8::from(CeaseSubcode::ConnectionCollisionResolution),
                    )
            })
            .collect();
        assert!(!cease.is_empty());
        assert!(
            p.notifications
                .iter()
                .all(|(_, n)| n.code == ErrorCode::Cease)
        );
        let (ca, _) = p.a.established().unwrap();
        let (cb, _) = p.b.established().unwrap();
        assert_eq!(
            p.peer_conn(true, ca),
            Some(cb),
            "both ends kept the same TCP connection"
        );
    }
}

#[test]
fn new_connection_while_established_is_closed_by_collision_detection() {
    let mut r = Rig::new(config());
    let old = r.drive_to_established();
    let a = r.ev(Event::Incoming);
    let Some(Action::Accept(new)) = a.first().cloned() else {
        panic!("{a:?}")
    };
    let a = r.ev(Event::Received(
        new,
        msg(Message::Open(peer_open(PEER_AS, "10.0.0.2", 9))),
    ));
    assert_eq!(
        code(&notification(&a).unwrap()),
        (
            ErrorCode::Cease,
            u8::from(CeaseSubcode::ConnectionCollisionResolution)
        )
    );
    assert!(closed(&a, new));
    assert!(downs(&a).is_empty());
    assert!(a.contains(&Action::CollisionResolved {
        kept: Direction::Outbound
    }));
    assert_eq!(r.s.established().map(|(c, _)| c), Some(old));
}

#[test]
fn graceful_restart_peer_reconnecting_replaces_the_established_session() {
    let mut c = config();
    c.capabilities.graceful_restart = Some(GracefulRestart {
        restart_time: 120,
        ..Default::default()
    });
    let mut r = Rig::new(c);
    let old = r.drive_to_open_sent();
    let mut open = peer_open(PEER_AS, "10.0.0.2", 9);
    open.capabilities
        .push(Capability::GracefulRestart(GracefulRestart {
            restart_state: false,
            notification: true,
            restart_time: 90,
            families: vec![GracefulRestartFamily {
                family: Family::IPV4_UNICAST,
                forwarding_preserved: true,
            }],
        }));
    r.ev(Event::Received(old, msg(Message::Open(open.clone()))));
    r.ev(Event::Received(old, msg(Message::Keepalive)));
    let gr =
        r.s.established()
            .unwrap()
            .1
            .graceful_restart
            .clone()
            .unwrap();
    assert_eq!(gr.restart_time, 90);
    assert!(gr.families[0].forwarding_preserved);

    let a = r.ev(Event::Incoming);
    let Some(Action::Accept(new)) = a.first().cloned() else {
        panic!("{a:?}")
    };
    open.capabilities
        .retain(|c| !matches!(c, Capability::GracefulRestart(_)));
    open.capabilities
        .push(Capability::GracefulRestart(GracefulRestart {
            restart_state: true,
            notification: true,
            restart_time: 90,
            families: vec![GracefulRestartFamily {
                family: Family::IPV4_UNICAST,
                forwarding_preserved: true,
            }],
        }));
    let a = r.ev(Event::Received(new, msg(Message::Open(open))));
    assert!(closed(&a, old));
    assert_eq!(downs(&a), vec![Reason::PeerRestarted]);
    assert_eq!(sent(&a, new), vec![Message::Keepalive]);
    r.ev(Event::Received(new, msg(Message::Keepalive)));
    let (conn, n) = r.s.established().unwrap();
    assert_eq!(conn, new);
    assert!(n.graceful_restart.as_ref().unwrap().restart_state);
}

#[test]
fn two_sessions_reach_established_through_the_simulated_network() {
    let (ca, mut cb) = pair_configs("10.0.0.1", "10.0.0.2");
    cb.passive = true;
    let mut p = Pair::new(ca, cb);
    p.input(false, Event::Start);
    p.input(true, Event::Start);
    let mut connects = Vec::new();
    p.run(&mut connects);
    assert_eq!(connects.len(), 1, "only the active side connects");
    p.complete(connects);
    p.run(&mut Vec::new());
    assert_eq!(p.a.state(), State::Established);
    assert_eq!(p.b.state(), State::Established);
    assert!(p.notifications.is_empty());
    assert_eq!(p.established.len(), 2);
}

// ===== negotiation =====

fn open_with(caps: Vec<Capability>, hold: u16) -> Open {
    Open {
        my_as: PEER_AS as u16,
        hold_time: hold,
        bgp_id: id("10.0.0.2"),
        capabilities: caps,
    }
}

#[test]
fn negotiation_takes_the_smaller_hold_time_and_a_third_for_keepalive() {
    let mut c = config();
    c.hold_time = 90;
    assert_eq!(negotiate(&c, &open_with(vec![], 240)).hold_time, 90);
    let n = negotiate(&c, &open_with(vec![], 30));
    assert_eq!((n.hold_time, n.keepalive_time), (30, 10));
    c.keepalive_time = Some(5);
    assert_eq!(negotiate(&c, &open_with(vec![], 30)).keepalive_time, 5);
    c.keepalive_time = Some(60);
    assert_eq!(
        negotiate(&c, &open_with(vec![], 30)).keepalive_time,
        10,
        "capped at hold/3"
    );
    assert_eq!(negotiate(&c, &open_with(vec![], 0)).keepalive_time, 0);
}

#[test]
fn negotiation_intersects_families_and_assumes_ipv4_unicast_without_multiprotocol() {
    let c = config();
    assert_eq!(
        negotiate(&c, &open_with(vec![], 90)).families,
        vec![Family::IPV4_UNICAST]
    );
    let only_v6 = open_with(vec![Capability::Multiprotocol(Family::IPV6_UNICAST)], 90);
    assert_eq!(negotiate(&c, &only_v6).families, vec![Family::IPV6_UNICAST]);
}

#[test]
fn negotiation_of_add_path_is_per_family_and_direction() {
    let mut c = config();
    c.capabilities.add_path = vec![
        AddPathFamily {
            family: Family::IPV4_UNICAST,
            mode: AddPathMode::SendReceive,
        },
        AddPathFamily {
            family: Family::IPV6_UNICAST,
            mode: AddPathMode::Send,
        },
    ];
    let peer = open_with(
        vec![
            Capability::Multiprotocol(Family::IPV4_UNICAST),
            Capability::Multiprotocol(Family::IPV6_UNICAST),
            Capability::AddPath(vec![
                AddPathFamily {
                    family: Family::IPV4_UNICAST,
                    mode: AddPathMode::Send,
                },
                AddPathFamily {
                    family: Family::IPV6_UNICAST,
                    mode: AddPathMode::SendReceive,
                },
            ]),
        ],
        90,
    );
    let n = negotiate(&c, &peer);
    assert_eq!(n.add_path_receive, vec![Family::IPV4_UNICAST]);
    assert_eq!(n.add_path_send, vec![Family::IPV6_UNICAST]);
    let d = n.decode_context();
    assert!(d.add_path.ipv4_unicast && !d.add_path.ipv6_unicast);
    let e = n.encode_context();
    assert!(!e.add_path.ipv4_unicast && e.add_path.ipv6_unicast);
}

#[test]
fn negotiation_needs_both_sides_for_optional_capabilities() {
    let mut c = config();
    c.capabilities.extended_message = true;
    c.capabilities.enhanced_route_refresh = true;
    let cisco_rr = Capability::Unknown {
        code: CapabilityCode::RouteRefreshCisco,
        value: bytes::Bytes::new(),
    };
    let n = negotiate(
        &c,
        &open_with(vec![Capability::ExtendedMessage, cisco_rr], 90),
    );
    assert!(n.extended_message && n.decode_context().extended_messages);
    assert!(n.route_refresh, "the pre-standard code 128 counts");
    assert!(!n.enhanced_route_refresh);
    assert!(!n.four_octet_as);
    c.capabilities.extended_message = false;
    assert!(!negotiate(&c, &open_with(vec![Capability::ExtendedMessage], 90)).extended_message);
}

#[test]
fn graceful_restart_is_negotiated_only_when_we_announce_it_too() {
    let gr = Capability::GracefulRestart(GracefulRestart {
        restart_state: true,
        notification: false,
        restart_time: 120,
        families: vec![
            GracefulRestartFamily {
                family: Family::IPV4_UNICAST,
                forwarding_preserved: true,
            },
            GracefulRestartFamily {
                family: Family::IPV6_UNICAST,
                forwarding_preserved: false,
            },
        ],
    });
    let mut c = config();
    let peer = open_with(
        vec![Capability::Multiprotocol(Family::IPV4_UNICAST), gr],
        90,
    );
    assert_eq!(negotiate(&c, &peer).graceful_restart, None);
    c.capabilities.graceful_restart = Some(GracefulRestart::default());
    let n = negotiate(&c, &peer).graceful_restart.unwrap();
    assert!(n.restart_state);
    assert_eq!(n.families.len(), 1, "restricted to negotiated families");
}

// ===== arbitrary event sequences =====

mod arbitrary {
    use proptest::prelude::*;

    use super::*;

    #[derive(Clone, Debug)]
    enum Op {
        Start,
        Stop,
        Reset,
        Connected(usize),
        ConnectFailed(usize),
        Incoming,
        Closed(usize),
        Open(usize, bool),
        Keepalive(usize),
        Update(usize),
        Notify(usize),
        DecodeError(usize),
        Advance(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            Just(Op::Start),
            Just(Op::Stop),
            Just(Op::Reset),
            (0..4usize).prop_map(Op::Connected),
            (0..4usize).prop_map(Op::ConnectFailed),
            Just(Op::Incoming),
            (0..4usize).prop_map(Op::Closed),
            (0..4usize, any::<bool>()).prop_map(|(c, ok)| Op::Open(c, ok)),
            (0..4usize).prop_map(Op::Keepalive),
            (0..4usize).prop_map(Op::Update),
            (0..4usize).prop_map(Op::Notify),
            (0..4usize).prop_map(Op::DecodeError),
            (0..300_000u64).prop_map(Op::Advance),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        /// No sequence of events panics, and the state machine's books stay consistent.
        #[test]
        fn any_event_sequence_keeps_the_session_consistent(ops in proptest::collection::vec(op(), 1..80)) {
            let mut c = config();
            c.delay_open = Some(Duration::from_secs(1));
            let mut s = Session::new(c);
            let mut now = Instant::now();
            // Every id the session has handed out, to pick targets from (stale ones too).
            let mut ids: Vec<ConnId> = vec![ConnId(999)];
            for op in ops {
                let pick = |i: usize, ids: &Vec<ConnId>| ids[i % ids.len()];
                let op_was_advance = matches!(op, Op::Advance(_));
                let actions = match op {
                    Op::Advance(ms) => {
                        now += Duration::from_millis(ms);
                        s.handle_timeout(now)
                    }
                    Op::Start => s.handle(Event::Start, now),
                    Op::Stop => s.handle(Event::Stop { subcode: CeaseSubcode::AdministrativeShutdown, message: "x".into() }, now),
                    Op::Reset => s.handle(Event::Reset { message: String::new() }, now),
                    Op::Connected(i) => s.handle(Event::Connected(pick(i, &ids)), now),
                    Op::ConnectFailed(i) => s.handle(Event::ConnectFailed(pick(i, &ids)), now),
                    Op::Incoming => s.handle(Event::Incoming, now),
                    Op::Closed(i) => s.handle(Event::Closed(pick(i, &ids)), now),
                    Op::Open(i, ok) => {
                        let open = peer_open(if ok { PEER_AS } else { 1 }, "10.0.0.2", 9);
                        s.handle(Event::Received(pick(i, &ids), msg(Message::Open(open))), now)
                    }
                    Op::Keepalive(i) => s.handle(Event::Received(pick(i, &ids), msg(Message::Keepalive)), now),
                    Op::Update(i) => s.handle(Event::Received(pick(i, &ids), msg(Message::Update(Update::default()))), now),
                    Op::Notify(i) => {
                        let n = Notification::new(ErrorCode::Cease, 0u8);
                        s.handle(Event::Received(pick(i, &ids), msg(Message::Notification(n))), now)
                    }
                    Op::DecodeError(i) => {
                        s.handle(Event::DecodeError(pick(i, &ids), Notification::new(ErrorCode::MessageHeader, 1u8)), now)
                    }
                };
                let live: Vec<ConnId> = s.connections().map(|(c, _)| c).collect();
                for a in &actions {
                    match a {
                        Action::Connect(c) | Action::Accept(c) => ids.push(*c),
                        // A message goes to a connection that is open, or closed right after.
                        Action::Send(c, _) => prop_assert!(
                            live.contains(c) || actions.contains(&Action::Close(*c)),
                            "send on unknown {c}: {actions:?}"
                        ),
                        _ => {}
                    }
                }
                prop_assert!(live.len() <= 3, "{} connections", live.len());
                prop_assert_eq!(s.state() == State::Established, s.established().is_some());
                if op_was_advance {
                    // After handling timeouts at `now`, nothing is left due at `now`.
                    prop_assert!(s.poll_timeout().is_none_or(|at| at > now));
                }
            }
        }
    }
}

#[test]
fn tcp_failure_or_notification_in_open_confirm_goes_idle_with_back_off() {
    for notify in [false, true] {
        let mut r = Rig::new(config());
        let conn = r.drive_to_open_sent();
        r.ev(Event::Received(
            conn,
            msg(Message::Open(peer_open(PEER_AS, "10.0.0.2", 9))),
        ));
        let a = if notify {
            let n = Notification::new(ErrorCode::Cease, CeaseSubcode::OutOfResources);
            r.ev(Event::Received(conn, msg(Message::Notification(n))))
        } else {
            r.ev(Event::Closed(conn))
        };
        assert_eq!(transitions(&a), vec![(State::OpenConfirm, State::Idle)]);
        assert!(notification(&a).is_none());
        assert!(downs(&a).is_empty());
        assert_eq!(r.s.poll_timeout(), Some(r.now + Duration::from_secs(5)));
    }
}

#[test]
fn tcp_failure_during_delay_open_returns_to_active() {
    let mut c = config();
    c.delay_open = Some(Duration::from_secs(2));
    let mut r = Rig::new(c);
    let conn = connect_of(&r.ev(Event::Start)).unwrap();
    r.ev(Event::Connected(conn));
    let a = r.ev(Event::Closed(conn));
    assert_eq!(transitions(&a), vec![(State::Connect, State::Active)]);
    // No OPEN ever goes out on the dead connection; ConnectRetry tries again.
    let a = r.advance(Duration::from_secs(2));
    assert!(
        a.iter()
            .all(|x| !matches!(x, Action::Send(c, _) if *c == conn))
    );
    assert!(connect_of(&a).is_some());
}
