//! Byte vectors laid out as in the RFC diagrams: OPEN with the capabilities real speakers send,
//! RFC 9072 extended optional parameters, NOTIFICATION with an RFC 8203/9003 shutdown
//! communication, ROUTE-REFRESH (RFC 2918/7313), KEEPALIVE, and header/OPEN errors (RFC 4271 §6).
#![allow(clippy::unwrap_used)]

use std::net::Ipv4Addr;

use bgp_wire::iana::{
    AddPathMode, CeaseSubcode, MessageHeaderSubcode, OpenSubcode, RouteRefreshSubtype,
};
use bgp_wire::*;
use bytes::{Bytes, BytesMut};

fn message(kind: u8, body: &[u8]) -> Bytes {
    let mut m = vec![0xff; 16];
    m.extend_from_slice(&((19 + body.len()) as u16).to_be_bytes());
    m.push(kind);
    m.extend_from_slice(body);
    Bytes::from(m)
}

fn decode(m: Bytes) -> Result<Message, DecodeError> {
    Message::decode(m, &DecodeContext::default()).map(|d| d.message)
}

fn encode(m: &Message) -> Bytes {
    let mut out = BytesMut::new();
    m.encode(&EncodeContext::default(), &mut out).unwrap();
    out.freeze()
}

const CAPS: &[u8] = &[
    0x01, 0x04, 0x00, 0x01, 0x00, 0x01, // multiprotocol IPv4 unicast
    0x01, 0x04, 0x00, 0x02, 0x00, 0x01, // multiprotocol IPv6 unicast
    0x02, 0x00, // route refresh
    0x46, 0x00, // enhanced route refresh
    0x41, 0x04, 0x00, 0x00, 0xfd, 0xe8, // 4-octet AS 65000
    0x40, 0x02, 0x40, 0x78, // graceful restart: N bit, 120 s
    0x45, 0x08, 0x00, 0x01, 0x01, 0x03, 0x00, 0x02, 0x01,
    0x03, // ADD-PATH both, both families
    0x49, 0x0a, 0x05, b'n', b'o', b'd', b'e', b'1', 0x03, b'l', b'a', b'b', // FQDN node1.lab
];

fn open_body(params: &[u8]) -> Vec<u8> {
    let mut b = vec![4, 0xfd, 0xe8, 0x00, 0xf0, 10, 0, 0, 1];
    b.extend_from_slice(params);
    b
}

#[test]
fn open_with_common_capabilities() {
    let mut params = vec![(CAPS.len() + 2) as u8, 2, CAPS.len() as u8];
    params.extend_from_slice(CAPS);
    let wire = message(1, &open_body(&params));
    let Message::Open(open) = decode(wire.clone()).unwrap() else {
        panic!()
    };
    assert_eq!(
        (open.my_as, open.hold_time, open.bgp_id),
        (65000, 240, Ipv4Addr::new(10, 0, 0, 1))
    );
    assert_eq!(open.asn(), 65000);
    assert_eq!(
        open.multiprotocol().collect::<Vec<_>>(),
        vec![Family::IPV4_UNICAST, Family::IPV6_UNICAST]
    );
    assert_eq!(
        open.capabilities[5],
        Capability::GracefulRestart(GracefulRestart {
            restart_state: false,
            notification: true,
            restart_time: 120,
            families: vec![]
        })
    );
    assert_eq!(
        open.capabilities[6],
        Capability::AddPath(vec![
            AddPathFamily {
                family: Family::IPV4_UNICAST,
                mode: AddPathMode::SendReceive
            },
            AddPathFamily {
                family: Family::IPV6_UNICAST,
                mode: AddPathMode::SendReceive
            },
        ])
    );
    let Capability::Fqdn { hostname, domain } = &open.capabilities[7] else {
        panic!()
    };
    assert_eq!((&hostname[..], &domain[..]), (&b"node1"[..], &b"lab"[..]));
    // Encoding gives the same octets back.
    assert_eq!(encode(&Message::Open(open)), wire);
}

#[test]
fn open_with_rfc9072_extended_parameters() {
    // Non-Ext OP Len 255, Non-Ext OP Type 255, Extended Opt. Parm. Length, then a
    // Capabilities parameter with a 2-octet length.
    let mut params = vec![255, 255];
    params.extend_from_slice(&((CAPS.len() + 3) as u16).to_be_bytes());
    params.push(2);
    params.extend_from_slice(&(CAPS.len() as u16).to_be_bytes());
    params.extend_from_slice(CAPS);
    let Message::Open(open) = decode(message(1, &open_body(&params))).unwrap() else {
        panic!()
    };
    assert_eq!(open.capabilities.len(), 8);
    // Large capability sets are encoded in the extended form and read back.
    let mut big = open.clone();
    for i in 0..6 {
        big.capabilities.push(Capability::Unknown {
            code: CapabilityCode::from(200 + i),
            value: vec![i; 60].into(),
        });
    }
    let wire = encode(&Message::Open(big.clone()));
    assert_eq!(&wire[28..30], &[255, 255]);
    assert_eq!(decode(wire).unwrap(), Message::Open(big));
}

#[test]
fn open_errors() {
    let expect = |body: Vec<u8>, subcode: OpenSubcode| {
        let e = decode(message(1, &body)).unwrap_err();
        assert_eq!(
            (e.code, e.subcode),
            (ErrorCode::OpenMessage, u8::from(subcode)),
            "{e}"
        );
        e
    };
    let mut b = open_body(&[0]);
    b[0] = 3;
    let e = expect(b, OpenSubcode::UnsupportedVersionNumber);
    assert_eq!(&e.data[..], &[0, 4]); // RFC 4271 §6.2: the version we support
    let mut b = open_body(&[0]);
    b[4] = 2;
    expect(b, OpenSubcode::UnacceptableHoldTime);
    let mut b = open_body(&[0]);
    b[5..9].fill(0);
    expect(b, OpenSubcode::BadBgpIdentifier);
    expect(
        open_body(&[3, 1, 1, 0]),
        OpenSubcode::UnsupportedOptionalParameter,
    );
    expect(open_body(&[5, 2, 3, 1, 4, 0]), OpenSubcode::Unspecific); // malformed capability
    expect(open_body(&[4, 2, 9, 1, 4]), OpenSubcode::Unspecific); // parameter overrun
}

#[test]
fn notification_with_shutdown_communication() {
    let text = "maintenance window, back at 10:00 \u{1F6E0}";
    let mut body = vec![6, 2, text.len() as u8];
    body.extend_from_slice(text.as_bytes());
    let wire = message(3, &body);
    let Message::Notification(n) = decode(wire.clone()).unwrap() else {
        panic!()
    };
    assert_eq!(
        (n.code, CeaseSubcode::from(n.subcode)),
        (ErrorCode::Cease, CeaseSubcode::AdministrativeShutdown)
    );
    assert_eq!(n.shutdown_communication(), Some(text));
    assert_eq!(
        n,
        Notification::cease_with_communication(CeaseSubcode::AdministrativeShutdown, text)
    );
    assert_eq!(encode(&Message::Notification(n)), wire);
    // RFC 9003: up to 255 octets, cut at a character boundary.
    let long = "é".repeat(200);
    let n = Notification::cease_with_communication(CeaseSubcode::AdministrativeReset, &long);
    assert_eq!(n.shutdown_communication().unwrap().len(), 254);
    // Other notifications have none; bad UTF-8 gives none.
    assert_eq!(
        Notification::new(ErrorCode::HoldTimerExpired, 0u8).shutdown_communication(),
        None
    );
    let bad = Notification {
        code: ErrorCode::Cease,
        subcode: 2,
        data: Bytes::from_static(&[2, 0xff, 0xfe]),
    };
    assert_eq!(bad.shutdown_communication(), None);
    assert_eq!(
        ErrorCode::Cease.subcode_name(2),
        Some("Administrative Shutdown")
    );
}

#[test]
fn route_refresh_and_keepalive() {
    let wire = message(5, &[0, 2, 1, 1]);
    let m = decode(wire.clone()).unwrap();
    assert_eq!(
        m,
        Message::RouteRefresh(RouteRefresh {
            family: Family::IPV6_UNICAST,
            subtype: RouteRefreshSubtype::BeginningOfRouteRefresh
        })
    );
    assert_eq!(encode(&m), wire);
    let short = message(5, &[0, 2, 1]);
    let e = decode(short.clone()).unwrap_err();
    assert_eq!((e.code, e.subcode), (ErrorCode::RouteRefreshMessage, 1));
    assert_eq!(e.data, short); // RFC 7313 §5: the whole message

    let ka = message(4, &[]);
    assert_eq!(decode(ka.clone()).unwrap(), Message::Keepalive);
    let mut out = BytesMut::new();
    encode_keepalive(&mut out);
    assert_eq!(out.freeze(), ka);
}

#[test]
fn header_errors() {
    let e = decode(message(9, &[])).unwrap_err();
    assert_eq!(
        (e.code, e.subcode, &e.data[..]),
        (
            ErrorCode::MessageHeader,
            u8::from(MessageHeaderSubcode::BadMessageType),
            &[9u8][..]
        )
    );
    for (kind, body) in [
        (4, &[0u8][..]),
        (1, &[4, 0, 1][..]),
        (3, &[6][..]),
        (2, &[0, 0][..]),
    ] {
        let e = decode(message(kind, body)).unwrap_err();
        assert_eq!(
            (e.code, e.subcode),
            (ErrorCode::MessageHeader, 2),
            "type {kind}"
        );
        assert_eq!(&e.data[..], &((19 + body.len()) as u16).to_be_bytes());
    }
    // An UPDATE over 4096 octets needs extended messages (RFC 8654).
    let mut body = vec![0, 0, 0, 0];
    body.extend(std::iter::repeat_n([24, 10, 0, 0], 1100).flatten());
    let big = message(2, &body);
    assert!(decode(big.clone()).is_err());
    let ext = DecodeContext {
        extended_messages: true,
        ..DecodeContext::default()
    };
    assert!(Message::decode(big, &ext).is_ok());
}

#[test]
fn update_with_ipv4_and_ipv6_in_one_message() {
    let mut u = Update {
        withdrawn: vec![Nlri::new("192.0.2.0/24".parse().unwrap())],
        nlri: vec![Nlri::new("198.51.100.0/24".parse().unwrap())],
        mp_reach: Some(MpReach {
            family: Family::IPV6_UNICAST,
            nlri: vec![Nlri::new("2001:db8:1::/48".parse().unwrap())],
        }),
        mp_unreach: Some(MpUnreach {
            family: Family::IPV6_UNICAST,
            withdrawn: vec![Nlri::new("2001:db8:2::/48".parse().unwrap())],
        }),
        ..Update::default()
    };
    u.attributes.origin = Some(Origin::Incomplete);
    u.attributes.as_path = Some(AsPath::from_sequence(&[64512, 64513]));
    u.attributes.next_hop = Some(Ipv4Addr::new(192, 0, 2, 254));
    u.attributes.mp_next_hop = Some(NextHop::V6 {
        global: "2001:db8::1".parse().unwrap(),
        link_local: Some("fe80::1".parse().unwrap()),
    });
    u.attributes.communities = vec![Community::new(64512, 100), Community::NO_EXPORT].into();
    u.attributes.large_communities = vec![LargeCommunity {
        global_admin: 64512,
        local_data_1: 1,
        local_data_2: 2,
    }]
    .into();
    let wire = encode(&Message::Update(u.clone()));
    let d = Message::decode(wire, &DecodeContext::default()).unwrap();
    assert!(d.errors.is_empty());
    assert_eq!(d.message, Message::Update(u.clone()));
    let texts: Vec<String> = u.announced().map(|n| n.prefix.to_string()).collect();
    assert_eq!(texts, ["198.51.100.0/24", "2001:db8:1::/48"]);
    assert_eq!(u.withdrawals().count(), 2);
    assert_eq!(
        u.attributes.communities[1].well_known_name(),
        Some("NO_EXPORT")
    );
    assert_eq!(u.attributes.communities[0].to_string(), "64512:100");
    assert_eq!(u.attributes.large_communities[0].to_string(), "64512:1:2");
}

#[test]
fn packer_fills_messages_to_the_limit() {
    let mut attrs = PathAttributes {
        origin: Some(Origin::Igp),
        as_path: Some(AsPath::from_sequence(&[65000])),
        next_hop: Some(Ipv4Addr::new(10, 0, 0, 1)),
        ..PathAttributes::default()
    };
    let prefixes: Vec<Nlri> = (0..3000u32)
        .map(|i| Nlri::new(Prefix::v4(Ipv4Addr::from(0x0a00_0000 + (i << 8)), 24).unwrap()))
        .collect();
    for (ctx, max) in [
        (EncodeContext::default(), 4096usize),
        (
            EncodeContext {
                extended_messages: true,
                ..EncodeContext::default()
            },
            65535,
        ),
    ] {
        let mut out = BytesMut::new();
        let n = UpdatePacker::new(ctx)
            .announce(&attrs, &prefixes, &mut out)
            .unwrap();
        // 3000 × 4 octets of NLRI plus fixed overhead per message: the minimum count.
        let per_msg = (max - 23 - 25) / 4;
        assert_eq!(n, prefixes.len().div_ceil(per_msg), "max {max}");
        let mut w = BytesMut::new();
        let n = UpdatePacker::new(ctx).withdraw(&prefixes, &mut w);
        assert_eq!(n, prefixes.len().div_ceil((max - 23) / 4), "max {max}");
    }
    // An attribute set too big for one message is an error, not a panic.
    attrs.communities = vec![Community(1); 1100].into();
    let mut out = BytesMut::new();
    let e = UpdatePacker::new(EncodeContext::default())
        .announce(&attrs, &prefixes, &mut out)
        .unwrap_err();
    assert!(matches!(e, EncodeError::TooLong { .. }));
    assert!(out.is_empty());
}
