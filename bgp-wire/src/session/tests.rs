//! The driver against itself over loopback (127.0.0.1 and 127.0.0.2, no root needed): real
//! sockets, real timers, short intervals.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::AsyncReadExt;
use tokio::net::TcpSocket;

use super::*;
use crate::attribute::{AsPath, Origin, PathAttributes};
use crate::fsm::IdleHold;
use crate::iana::ErrorCode;
use crate::nlri::Nlri;
use crate::packer::UpdatePacker;
use crate::prefix::Prefix;

const A: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 1);
const B: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);

fn endpoint(ip: Ipv4Addr) -> Endpoint {
    Endpoint::bind(&[SocketAddr::new(IpAddr::V4(ip), 0)]).unwrap()
}

fn port(e: &Endpoint) -> u16 {
    e.local_addrs()[0].port()
}

/// `local` (AS 65001 or 65002 by address) peering with `remote` listening on `remote_port`.
fn peer_config(local: Ipv4Addr, remote: Ipv4Addr, remote_port: u16) -> PeerConfig {
    let asn = |ip: Ipv4Addr| 65000 + u32::from(ip.octets()[3]);
    let mut s = SessionConfig::new(asn(local), local, asn(remote));
    s.hold_time = 6;
    s.connect_retry = Duration::from_millis(500);
    s.idle_hold = IdleHold {
        min: Duration::from_millis(200),
        max: Duration::from_secs(1),
        forget: Duration::from_secs(10),
    };
    let mut p = PeerConfig::new(s, IpAddr::V4(remote));
    p.port = remote_port;
    p.local_address = Some(IpAddr::V4(local));
    p
}

async fn next_matching(
    peer: &mut Peer,
    what: &str,
    mut f: impl FnMut(&SessionEvent) -> bool,
) -> SessionEvent {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match tokio::time::timeout_at(deadline, peer.events.recv()).await {
            Ok(Some(ev)) if f(&ev) => return ev,
            Ok(Some(_)) => {}
            Ok(None) => panic!("event channel closed waiting for {what}"),
            Err(_) => panic!("timed out waiting for {what}"),
        }
    }
}

async fn established(peer: &mut Peer) -> Arc<Negotiated> {
    match next_matching(peer, "Established", |e| {
        matches!(e, SessionEvent::Established(_))
    })
    .await
    {
        SessionEvent::Established(n) => n,
        _ => unreachable!(),
    }
}

fn routes(n: u32) -> Vec<Nlri> {
    (0..n)
        .map(|i| {
            let addr = Ipv4Addr::from(0x0a00_0000 | (i << 8));
            Nlri::new(Prefix::v4(addr, 24).unwrap())
        })
        .collect()
}

fn attrs(asn: u32, next_hop: Ipv4Addr) -> PathAttributes {
    PathAttributes {
        origin: Some(Origin::Igp),
        as_path: Some(AsPath::from_sequence(&[asn])),
        next_hop: Some(next_hop),
        ..PathAttributes::default()
    }
}

#[tokio::test]
async fn two_drivers_establish_exchange_1000_routes_and_shut_down_with_a_message() {
    let ea = endpoint(A);
    let eb = endpoint(B);
    let mut pa = ea.add_peer(peer_config(A, B, port(&eb))).unwrap();
    let mut cb = peer_config(B, A, port(&ea));
    cb.session.passive = true;
    let mut pb = eb.add_peer(cb).unwrap();
    pb.commands.send(Command::Start).await.unwrap();
    pa.commands.send(Command::Start).await.unwrap();
    let na = established(&mut pa).await;
    let nb = established(&mut pb).await;
    assert_eq!((na.peer_as, nb.peer_as), (65002, 65001));
    assert_eq!(na.hold_time, 6);
    assert!(na.four_octet_as && na.route_refresh);

    // 1,000 routes, packed once into as few UPDATEs as fit, sent pre-encoded.
    let mut wire = BytesMut::new();
    let messages = UpdatePacker::new(na.encode_context())
        .announce(&attrs(65001, A), &routes(1000), &mut wire)
        .unwrap();
    assert!(messages < 10, "{messages} UPDATEs for 1000 /24s");
    pa.commands
        .send(Command::SendEncoded(vec![wire.freeze()]))
        .await
        .unwrap();
    let mut got = 0;
    while got < 1000 {
        match next_matching(&mut pb, "UPDATE", |e| {
            matches!(e, SessionEvent::Received(_))
        })
        .await
        {
            SessionEvent::Received(d) => {
                let Message::Update(u) = d.message else {
                    panic!("not an UPDATE")
                };
                assert_eq!(u.attributes.as_path, Some(AsPath::from_sequence(&[65001])));
                got += u.announced().count();
            }
            _ => unreachable!(),
        }
    }
    assert_eq!(got, 1000);

    // Route refresh goes the other way.
    pb.commands
        .send(Command::RouteRefresh(Family::IPV4_UNICAST))
        .await
        .unwrap();
    let ev = next_matching(&mut pa, "ROUTE-REFRESH", |e| {
        matches!(e, SessionEvent::Received(_))
    })
    .await;
    let SessionEvent::Received(Decoded {
        message: Message::RouteRefresh(rr),
        ..
    }) = ev
    else {
        panic!("{ev:?}")
    };
    assert_eq!(rr.family, Family::IPV4_UNICAST);

    // Administrative shutdown: the peer sees our message.
    pa.commands
        .send(Command::Stop {
            subcode: CeaseSubcode::AdministrativeShutdown,
            message: "maintenance window".into(),
        })
        .await
        .unwrap();
    let ev = next_matching(&mut pb, "Down", |e| matches!(e, SessionEvent::Down(_))).await;
    let SessionEvent::Down(Reason::NotificationReceived(n)) = ev else {
        panic!("{ev:?}")
    };
    assert_eq!(n.code, ErrorCode::Cease);
    assert_eq!(n.shutdown_communication(), Some("maintenance window"));
}

#[tokio::test]
async fn both_sides_connecting_at_once_end_with_one_established_connection() {
    let ea = endpoint(A);
    let eb = endpoint(B);
    let mut pa = ea.add_peer(peer_config(A, B, port(&eb))).unwrap();
    let mut pb = eb.add_peer(peer_config(B, A, port(&ea))).unwrap();
    let (ra, rb) = tokio::join!(
        pa.commands.send(Command::Start),
        pb.commands.send(Command::Start)
    );
    ra.unwrap();
    rb.unwrap();
    let na = established(&mut pa).await;
    let nb = established(&mut pb).await;
    assert_eq!(na.peer_id, B);
    assert_eq!(nb.peer_id, A);
    // Stay up across several keepalive intervals (hold 6 s, keepalive 2 s).
    let quiet = tokio::time::timeout(Duration::from_secs(3), async {
        loop {
            match pa.events.recv().await {
                Some(SessionEvent::Down(r)) => return r,
                Some(_) => {}
                None => return Reason::ConnectionClosed,
            }
        }
    })
    .await;
    assert!(quiet.is_err(), "session went down: {quiet:?}");
}

#[tokio::test]
async fn connections_from_unconfigured_addresses_are_closed_and_do_not_disturb_sessions() {
    let ea = endpoint(A);
    let eb = endpoint(B);
    let mut pa = ea.add_peer(peer_config(A, B, port(&eb))).unwrap();
    let mut pb = eb.add_peer(peer_config(B, A, port(&ea))).unwrap();
    pa.commands.send(Command::Start).await.unwrap();
    pb.commands.send(Command::Start).await.unwrap();
    established(&mut pa).await;
    established(&mut pb).await;

    let target = SocketAddr::new(IpAddr::V4(A), port(&ea));
    for _ in 0..200 {
        let s = TcpSocket::new_v4().unwrap();
        s.bind(SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3)), 0))
            .unwrap();
        let mut stream = s.connect(target).await.unwrap();
        let mut buf = [0u8; 1];
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
            .await
            .expect("stranger connection not closed")
            .unwrap_or(0);
        assert_eq!(n, 0, "a stranger was sent data");
    }
    // The configured session is still up: nothing but keepalives happened.
    let down = tokio::time::timeout(Duration::from_millis(500), async {
        loop {
            if let Some(SessionEvent::Down(r)) = pa.events.recv().await {
                return r;
            }
        }
    })
    .await;
    assert!(down.is_err(), "session went down: {down:?}");
}

#[tokio::test]
async fn tcp_md5_with_the_same_key_establishes_and_with_a_wrong_key_does_not() {
    for (key_a, key_b, expect_up) in [
        (&b"s3cret"[..], &b"s3cret"[..], true),
        (&b"s3cret"[..], &b"other"[..], false),
    ] {
        let ea = endpoint(A);
        let eb = endpoint(B);
        let mut ca = peer_config(A, B, port(&eb));
        ca.md5_key = Some(key_a.to_vec());
        let mut cb = peer_config(B, A, port(&ea));
        cb.md5_key = Some(key_b.to_vec());
        cb.session.passive = true;
        let mut pa = ea.add_peer(ca).unwrap();
        let mut pb = eb.add_peer(cb).unwrap();
        pb.commands.send(Command::Start).await.unwrap();
        pa.commands.send(Command::Start).await.unwrap();
        let reached = tokio::time::timeout(Duration::from_secs(3), async {
            loop {
                match pb.events.recv().await {
                    Some(SessionEvent::StateChange {
                        to: State::OpenSent,
                        ..
                    }) => return true,
                    Some(_) => {}
                    None => return false,
                }
            }
        })
        .await
        .unwrap_or(false);
        assert_eq!(reached, expect_up, "keys {key_a:?}/{key_b:?}");
        if expect_up {
            established(&mut pa).await;
        }
    }
}

#[tokio::test]
async fn dropping_the_handle_sends_peer_deconfigured() {
    let ea = endpoint(A);
    let eb = endpoint(B);
    let mut pa = ea.add_peer(peer_config(A, B, port(&eb))).unwrap();
    let mut pb = eb.add_peer(peer_config(B, A, port(&ea))).unwrap();
    pa.commands.send(Command::Start).await.unwrap();
    pb.commands.send(Command::Start).await.unwrap();
    established(&mut pa).await;
    established(&mut pb).await;
    pa.join().await;
    let ev = next_matching(&mut pb, "Down", |e| matches!(e, SessionEvent::Down(_))).await;
    let SessionEvent::Down(Reason::NotificationReceived(n)) = ev else {
        panic!("{ev:?}")
    };
    assert_eq!(
        (n.code, n.subcode),
        (ErrorCode::Cease, u8::from(CeaseSubcode::PeerDeconfigured))
    );
    // The address is free for a new configuration of the same peer.
    assert!(ea.add_peer(peer_config(A, B, port(&eb))).is_ok());
}

#[tokio::test]
async fn a_peer_that_stops_reading_pushes_back_on_the_caller() {
    let ea = endpoint(A);
    let eb = endpoint(B);
    let mut pa = ea.add_peer(peer_config(A, B, port(&eb))).unwrap();
    let mut pb = eb.add_peer(peer_config(B, A, port(&ea))).unwrap();
    pa.commands.send(Command::Start).await.unwrap();
    pb.commands.send(Command::Start).await.unwrap();
    let na = established(&mut pa).await;
    established(&mut pb).await;

    // B's consumer stops reading events: B stops decoding, TCP fills up, A's queue reaches its
    // high-water mark, A stops taking commands and the bounded command channel fills.
    let mut wire = BytesMut::new();
    UpdatePacker::new(na.encode_context())
        .announce(&attrs(65001, A), &routes(1000), &mut wire)
        .unwrap();
    let chunk = wire.freeze();
    let mut accepted = 0usize;
    let full = loop {
        match pa
            .commands
            .try_send(Command::SendEncoded(vec![chunk.clone()]))
        {
            Ok(()) => accepted += 1,
            Err(mpsc::error::TrySendError::Full(_)) => break true,
            Err(mpsc::error::TrySendError::Closed(_)) => break false,
        }
        if accepted.is_multiple_of(64) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(
            accepted < 100_000,
            "no back-pressure after {accepted} sends"
        );
    };
    assert!(full);
    // Bounded: kernel socket buffers, the high-water mark and the channel, nothing more.
    let queued_bytes = accepted * chunk.len();
    assert!(
        queued_bytes < 64 * 1024 * 1024,
        "{queued_bytes} octets accepted"
    );
    drop(pb);
}

#[tokio::test]
async fn gtsm_accepts_ttl_255_and_drops_a_peer_sending_with_a_lower_ttl() {
    for (ttl_b, expect_up) in [(None, true), (Some(64), false)] {
        let ea = endpoint(A);
        let eb = endpoint(B);
        let mut ca = peer_config(A, B, port(&eb));
        ca.gtsm_hops = Some(1);
        ca.session.passive = true;
        let mut cb = peer_config(B, A, port(&ea));
        match ttl_b {
            // GTSM on both sides: TTL 255 out, minimum 255 in.
            None => cb.gtsm_hops = Some(1),
            // B sends with TTL 64: A's IP_MINTTL 255 drops its SYN.
            Some(ttl) => cb.ttl = Some(ttl),
        }
        let mut pa = ea.add_peer(ca).unwrap();
        let pb = eb.add_peer(cb).unwrap();
        pa.commands.send(Command::Start).await.unwrap();
        pb.commands.send(Command::Start).await.unwrap();
        let up = tokio::time::timeout(Duration::from_secs(3), established(&mut pa))
            .await
            .is_ok();
        assert_eq!(up, expect_up, "B's TTL {ttl_b:?}");
        drop(pb);
    }
}

#[tokio::test]
async fn keepalives_go_ahead_of_a_queued_update_backlog() {
    // A connection whose socket buffers are small, with an UPDATE backlog the peer is not
    // reading yet.
    let server = TcpSocket::new_v4().unwrap();
    server.set_recv_buffer_size(4096).unwrap();
    server.bind(SocketAddr::new(IpAddr::V4(A), 0)).unwrap();
    let listener = server.listen(1).unwrap();
    let client = TcpSocket::new_v4().unwrap();
    client.set_send_buffer_size(4096).unwrap();
    let stream = client
        .connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    let (mut peer, _) = listener.accept().await.unwrap();

    let mut conn = ConnIo::new(ConnId(1), stream);
    for _ in 0..200 {
        conn.bulk.push_back(Bytes::from(vec![b'U'; 4000]));
        conn.bulk_bytes += 4000;
    }
    poll_fn(|cx| {
        let _ = conn.poll_flush(cx);
        Poll::Ready(())
    })
    .await;
    let still_queued = conn.bulk_bytes;
    assert!(
        still_queued > 100 * 4000,
        "the backlog did not back up: {still_queued} left"
    );
    conn.control.push_back(Bytes::from_static(b"KEEPALIVE"));

    let reader = async {
        let mut all = Vec::new();
        peer.read_to_end(&mut all).await.unwrap();
        all
    };
    let writer = async move {
        poll_fn(|cx| conn.poll_flush(cx)).await.unwrap();
        drop(conn);
    };
    let (all, ()) = tokio::join!(reader, writer);
    assert_eq!(all.len(), 200 * 4000 + 9);
    let at = all.windows(9).position(|w| w == b"KEEPALIVE").unwrap();
    // Only the UPDATE being written when the KEEPALIVE was queued went before it.
    let updates_after = all.len() - at - 9;
    assert_eq!(updates_after, still_queued);
}

#[tokio::test]
async fn only_one_keepalive_waits_in_the_control_queue() {
    let listener = tokio::net::TcpListener::bind(SocketAddr::new(IpAddr::V4(A), 0))
        .await
        .unwrap();
    let stream = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    let mut conn = ConnIo::new(ConnId(1), stream);
    let encode = |m: &Message| {
        let mut b = BytesMut::new();
        m.encode(&EncodeContext::default(), &mut b).unwrap();
        b.freeze()
    };
    conn.control
        .push_back(encode(&Message::Notification(crate::Notification::new(
            ErrorCode::Cease,
            0u8,
        ))));
    assert!(!conn.keepalive_queued());
    conn.control.push_back(encode(&Message::Keepalive));
    assert!(conn.keepalive_queued());
}
