//! The session state machine (`bgp_wire::fsm::Session`, RFC 4271 §8) under arbitrary
//! sequences of events, wire messages and virtual time.
//!
//! The input picks a session configuration (passive or not, hold time, DelayOpen, back-off)
//! and then a sequence of operations: administrative events, TCP events on connection ids the
//! machine handed out (and stale ones), messages decoded from fuzz bytes with the context the
//! driver would use for that connection (as `Received` or `DecodeError`, exactly as the
//! driver feeds them), OPENs built from fuzz values, and jumps of the virtual clock. Nothing
//! may panic, and the machine's books must stay consistent after every step.
#![no_main]
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use bgp_wire::fsm::{Action, ConnId, Event, IdleHold, Session, SessionConfig, State};
use bgp_wire::iana::CeaseSubcode;
use bgp_wire::{Capability, DecodeContext, Family, Message, Open};
use bytes::Bytes;
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;

const LOCAL_AS: u32 = 64512;
const PEER_AS: u32 = 4_200_000_001;

fn config(u: &mut Unstructured<'_>) -> Result<SessionConfig> {
    let ibgp: bool = u.arbitrary()?;
    let peer_as = if ibgp { LOCAL_AS } else { PEER_AS };
    let mut c = SessionConfig::new(LOCAL_AS, Ipv4Addr::new(10, 0, 0, 1), peer_as);
    c.passive = u.arbitrary()?;
    c.hold_time = *u.choose(&[0u16, 3, 9, 90, 240, u16::MAX])?;
    c.keepalive_time = u.arbitrary::<Option<u8>>()?.map(|k| u16::from(k.max(1)));
    c.min_hold_time = u.int_in_range(3..=10)?;
    c.connect_retry = Duration::from_millis(u.int_in_range(1..=5_000)?);
    c.open_hold_time = Duration::from_secs(u.int_in_range(1..=240)?);
    c.delay_open = u
        .arbitrary::<Option<u16>>()?
        .map(|ms| Duration::from_millis(u64::from(ms.max(1))));
    // Every timer lasts at least 1 ms: with a zero IdleHold (reachable through
    // `error_wait_time: [0, N]`) a timer is still due right after `handle_timeout` —
    // found by this target and reported; excluded here until the state machine decides.
    let min = Duration::from_millis(u.int_in_range(1..=5_000)?);
    c.idle_hold = IdleHold {
        min,
        max: min + Duration::from_millis(u.int_in_range(0..=30_000)?),
        forget: Duration::from_secs(u.int_in_range(0..=300)?),
    };
    c.capabilities.extended_message = u.arbitrary()?;
    Ok(c)
}

fn open(u: &mut Unstructured<'_>, peer_as: u32) -> Result<Open> {
    let asn = if u.ratio(3u8, 4)? {
        peer_as
    } else {
        u.arbitrary()?
    };
    let id = if u.ratio(3u8, 4)? {
        Ipv4Addr::new(10, 0, 0, 2)
    } else {
        Ipv4Addr::from(u.arbitrary::<u32>()?)
    };
    let mut capabilities = vec![Capability::Multiprotocol(Family::IPV4_UNICAST)];
    if u.arbitrary()? {
        capabilities.push(Capability::FourOctetAs(asn));
    }
    if u.arbitrary()? {
        capabilities.push(Capability::RouteRefresh);
    }
    if u.arbitrary()? {
        capabilities.push(Capability::ExtendedMessage);
    }
    Ok(Open {
        my_as: u16::try_from(asn).unwrap_or(23456),
        hold_time: u.arbitrary()?,
        bgp_id: id,
        capabilities,
    })
}

fn run(u: &mut Unstructured<'_>) -> Result<()> {
    let config = config(u)?;
    let peer_as = config.peer_as;
    let mut s = Session::new(config);
    let mut now = Instant::now();
    // Every id handed out (stale ones stay: the driver may report on a connection the machine
    // has already dropped).
    let mut ids = vec![ConnId(u64::MAX)];
    while !u.is_empty() {
        let pick =
            |u: &mut Unstructured<'_>, ids: &[ConnId]| -> Result<ConnId> { Ok(*u.choose(ids)?) };
        let op: u8 = u.int_in_range(0..=13)?;
        let mut advanced = false;
        let actions = match op {
            0 => s.handle(Event::Start, now),
            1 => {
                let n: usize = u.int_in_range(0..=300)?;
                let text = String::from_utf8_lossy(u.bytes(n.min(u.len()))?).into_owned();
                s.handle(
                    Event::Stop {
                        subcode: CeaseSubcode::AdministrativeShutdown,
                        message: text,
                    },
                    now,
                )
            }
            2 => s.handle(
                Event::Reset {
                    message: String::new(),
                },
                now,
            ),
            3 => s.handle(Event::Connected(pick(u, &ids)?), now),
            4 => s.handle(Event::ConnectFailed(pick(u, &ids)?), now),
            5 => s.handle(Event::Incoming, now),
            6 => s.handle(Event::Closed(pick(u, &ids)?), now),
            7 | 8 => {
                // Wire bytes, decoded as the driver does for this connection's phase.
                let conn = pick(u, &ids)?;
                let len: usize = u.int_in_range(0..=600)?;
                let len = len.min(u.len());
                let bytes = Bytes::copy_from_slice(u.bytes(len)?);
                let ctx = s
                    .negotiated(conn)
                    .map(|n| n.decode_context())
                    .unwrap_or_default();
                feed(&mut s, conn, bytes, &ctx, now)
            }
            9 => {
                let conn = pick(u, &ids)?;
                let o = open(u, peer_as)?;
                s.handle(
                    Event::Received(
                        conn,
                        bgp_wire::Decoded {
                            message: Message::Open(o),
                            errors: Vec::new(),
                        },
                    ),
                    now,
                )
            }
            10 => {
                let conn = pick(u, &ids)?;
                s.handle(
                    Event::Received(
                        conn,
                        bgp_wire::Decoded {
                            message: Message::Keepalive,
                            errors: Vec::new(),
                        },
                    ),
                    now,
                )
            }
            11 => {
                let conn = pick(u, &ids)?;
                let n =
                    bgp_wire::Notification::new(bgp_wire::ErrorCode::Cease, u.arbitrary::<u8>()?);
                s.handle(
                    Event::Received(
                        conn,
                        bgp_wire::Decoded {
                            message: Message::Notification(n),
                            errors: Vec::new(),
                        },
                    ),
                    now,
                )
            }
            _ => {
                // Time passes: up to ten minutes in one jump, or straight to the next timer.
                now = if op == 12 {
                    now + Duration::from_millis(u.int_in_range(0..=600_000)?)
                } else {
                    s.poll_timeout().unwrap_or(now).max(now)
                };
                advanced = true;
                s.handle_timeout(now)
            }
        };
        check(&s, &actions, &mut ids, now, advanced);
    }
    Ok(())
}

/// Decodes `bytes` as one message with `ctx` and hands it over as the driver would.
fn feed(
    s: &mut Session,
    conn: ConnId,
    bytes: Bytes,
    ctx: &DecodeContext,
    now: Instant,
) -> Vec<Action> {
    match Message::decode(bytes, ctx) {
        Ok(decoded) => s.handle(Event::Received(conn, decoded), now),
        Err(e) => s.handle(Event::DecodeError(conn, e.notification()), now),
    }
}

fn check(s: &Session, actions: &[Action], ids: &mut Vec<ConnId>, now: Instant, advanced: bool) {
    let live: Vec<ConnId> = s.connections().map(|(c, _)| c).collect();
    for a in actions {
        match a {
            Action::Connect(c) | Action::Accept(c) => ids.push(*c),
            Action::Send(c, _) => assert!(
                live.contains(c) || actions.contains(&Action::Close(*c)),
                "send on a connection that is neither open nor being closed: {actions:?}"
            ),
            _ => {}
        }
    }
    assert!(live.len() <= 3, "{} connections at once", live.len());
    assert_eq!(s.state() == State::Established, s.established().is_some());
    if advanced {
        assert!(
            s.poll_timeout().is_none_or(|at| at > now),
            "a timer is still due right after handle_timeout"
        );
    }
    // The id list only grows with what the machine hands out; keep it bounded for speed.
    if ids.len() > 64 {
        ids.drain(1..33);
    }
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let _ = run(&mut u);
});
