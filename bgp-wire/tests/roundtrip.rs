//! Property tests: `decode(encode(x)) == x` for every message type, in every context
//! (2-/4-octet AS, ADD-PATH on/off, extended messages), plus "never panics" on random input.
#![allow(clippy::unwrap_used)]

use std::net::{Ipv4Addr, Ipv6Addr};

use bgp_wire::iana::{AddPathMode, Role, RouteRefreshSubtype};
use bgp_wire::*;
use bytes::{Bytes, BytesMut};
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;

fn contexts() -> impl Strategy<Value = (DecodeContext, EncodeContext)> {
    (any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>()).prop_map(|(four, v4, v6, ext)| {
        let add_path = AddPath {
            ipv4_unicast: v4,
            ipv6_unicast: v6,
        };
        (
            DecodeContext {
                four_octet_as: four,
                add_path,
                extended_messages: ext,
            },
            EncodeContext {
                four_octet_as: four,
                add_path,
                extended_messages: ext,
            },
        )
    })
}

fn v4_prefix() -> impl Strategy<Value = Prefix> {
    (any::<u32>(), 0u8..=32).prop_map(|(a, l)| Prefix::v4(Ipv4Addr::from(a), l).unwrap())
}

fn v6_prefix() -> impl Strategy<Value = Prefix> {
    (any::<u128>(), 0u8..=128).prop_map(|(a, l)| Prefix::v6(Ipv6Addr::from(a), l).unwrap())
}

fn nlri(p: impl Strategy<Value = Prefix>, max: usize) -> impl Strategy<Value = Vec<Nlri>> {
    vec(
        (p, any::<u32>()).prop_map(|(prefix, id)| Nlri::with_path_id(prefix, id)),
        0..max,
    )
}

fn unicast_v4() -> impl Strategy<Value = Ipv4Addr> {
    any::<u32>()
        .prop_map(Ipv4Addr::from)
        .prop_filter("unicast", |a| {
            !a.is_unspecified() && !a.is_multicast() && !a.is_broadcast()
        })
}

fn segment(kinds: &'static [u8], max_as: u32) -> impl Strategy<Value = AsSegment> {
    (proptest::sample::select(kinds), vec(0..=max_as, 1..6)).prop_map(|(k, asns)| AsSegment {
        kind: SegmentType::from(k),
        asns: asns.into(),
    })
}

fn as_path() -> impl Strategy<Value = AsPath> {
    // Confederation segments lead, as RFC 5065 puts them; their ASes stay 2-octet so that
    // 2-octet sessions carry them exactly.
    (
        vec(segment(&[3, 4], 65535), 0..2),
        vec(segment(&[1, 2], u32::MAX), 0..4),
    )
        .prop_map(|(mut c, s)| {
            c.extend(s);
            AsPath { segments: c.into() }
        })
}

fn next_hop() -> impl Strategy<Value = NextHop> {
    prop_oneof![
        unicast_v4().prop_map(NextHop::V4),
        (any::<u128>(), option::of(any::<u128>())).prop_map(|(g, l)| NextHop::V6 {
            global: Ipv6Addr::from(g),
            link_local: l.map(Ipv6Addr::from)
        }),
    ]
}

fn attributes() -> impl Strategy<Value = PathAttributes> {
    let a = (
        (0u8..=2).prop_map(Origin::from),
        as_path(),
        option::of(unicast_v4()),
        option::of(any::<u32>()),
        option::of(any::<u32>()),
        any::<bool>(),
        option::of(
            (any::<u32>(), any::<u32>()).prop_map(|(asn, a)| Aggregator {
                asn,
                address: a.into(),
            }),
        ),
        vec(any::<u32>().prop_map(Community), 0..5),
    );
    let b = (
        option::of(any::<u32>().prop_map(Ipv4Addr::from)),
        vec(any::<u32>().prop_map(Ipv4Addr::from), 0..3),
        vec(any::<[u8; 8]>().prop_map(ExtendedCommunity), 0..3),
        vec(
            (any::<u32>(), any::<u32>(), any::<u32>()).prop_map(|(g, a, b)| LargeCommunity {
                global_admin: g,
                local_data_1: a,
                local_data_2: b,
            }),
            0..3,
        ),
        option::of(any::<u32>()),
        proptest::sample::subsequence(vec![11u8, 12, 20, 40, 128, 200, 255], 0..3),
        vec(vec(any::<u8>(), 0..300), 3),
    );
    (a, b).prop_map(
        |((origin, as_path, next_hop, med, local_pref, atomic, aggregator, communities), b)| {
            let (
                originator_id,
                cluster_list,
                extended_communities,
                large_communities,
                otc,
                codes,
                values,
            ) = b;
            let unknown = codes
                .into_iter()
                .zip(values)
                .map(|(type_code, v)| RawAttribute {
                    flags: attribute::flags::OPTIONAL
                        | attribute::flags::TRANSITIVE
                        | attribute::flags::PARTIAL,
                    type_code,
                    value: Bytes::from(v),
                })
                .collect();
            PathAttributes {
                origin: Some(origin),
                as_path: Some(as_path),
                next_hop,
                mp_next_hop: None,
                med,
                local_pref,
                atomic_aggregate: atomic,
                aggregator,
                communities: communities.into(),
                originator_id,
                cluster_list,
                extended_communities,
                large_communities: large_communities.into(),
                otc,
                unknown,
            }
        },
    )
}

/// Drops path identifiers where the context has no ADD-PATH, as the decoder would.
fn fit_path_ids(list: &mut [Nlri], on: bool) {
    if !on {
        for n in list {
            n.path_id = None;
        }
    }
}

fn update(ctx: EncodeContext) -> impl Strategy<Value = Update> {
    let mp_reach = option::of(prop_oneof![
        (next_hop(), nlri(v4_prefix(), 20)).prop_map(|(nh, n)| (
            nh,
            MpReach {
                family: Family::IPV4_UNICAST,
                nlri: n
            }
        )),
        (next_hop(), nlri(v6_prefix(), 20)).prop_map(|(nh, n)| {
            let nh = match nh {
                NextHop::V4(_) => NextHop::V6 {
                    global: Ipv6Addr::LOCALHOST,
                    link_local: None,
                },
                v6 => v6,
            };
            (
                nh,
                MpReach {
                    family: Family::IPV6_UNICAST,
                    nlri: n,
                },
            )
        }),
    ]);
    let mp_unreach = option::of(prop_oneof![
        nlri(v4_prefix(), 20).prop_map(|w| MpUnreach {
            family: Family::IPV4_UNICAST,
            withdrawn: w
        }),
        nlri(v6_prefix(), 20).prop_map(|w| MpUnreach {
            family: Family::IPV6_UNICAST,
            withdrawn: w
        }),
    ]);
    (
        nlri(v4_prefix(), 20),
        attributes(),
        nlri(v4_prefix(), 20),
        mp_reach,
        mp_unreach,
        unicast_v4(),
    )
        .prop_map(
            move |(mut withdrawn, mut attributes, mut nlri, mp_reach, mut mp_unreach, nh)| {
                fit_path_ids(&mut withdrawn, ctx.add_path.ipv4_unicast);
                fit_path_ids(&mut nlri, ctx.add_path.ipv4_unicast);
                if !nlri.is_empty() && attributes.next_hop.is_none() {
                    attributes.next_hop = Some(nh);
                }
                let mp_reach = mp_reach.map(|(nh, mut m)| {
                    fit_path_ids(&mut m.nlri, ctx.add_path.enabled(m.family));
                    attributes.mp_next_hop = Some(nh);
                    m
                });
                if let Some(m) = &mut mp_unreach {
                    fit_path_ids(&mut m.withdrawn, ctx.add_path.enabled(m.family));
                }
                Update {
                    withdrawn,
                    attributes,
                    nlri,
                    mp_reach,
                    mp_unreach,
                }
            },
        )
}

fn family() -> impl Strategy<Value = Family> {
    (any::<u16>(), any::<u8>()).prop_map(|(a, s)| Family::new(a, s))
}

fn capability() -> impl Strategy<Value = Capability> {
    let unknown_code = prop_oneof![Just(3u8), 100u8..=127, 129u8..=255];
    prop_oneof![
        family().prop_map(Capability::Multiprotocol),
        Just(Capability::RouteRefresh),
        Just(Capability::ExtendedMessage),
        Just(Capability::EnhancedRouteRefresh),
        any::<u8>().prop_map(|r| Capability::Role(Role::from(r))),
        any::<u32>().prop_map(Capability::FourOctetAs),
        vec((any::<u16>(), any::<u16>(), any::<u16>()), 0..4).prop_map(|v| {
            Capability::ExtendedNextHop(
                v.into_iter()
                    .map(|(a, s, n)| ExtendedNextHop {
                        nlri_afi: a,
                        nlri_safi: s,
                        next_hop_afi: n,
                    })
                    .collect(),
            )
        }),
        (
            any::<bool>(),
            any::<bool>(),
            0u16..4096,
            vec((family(), any::<bool>()), 0..4)
        )
            .prop_map(|(r, n, t, f)| {
                Capability::GracefulRestart(GracefulRestart {
                    restart_state: r,
                    notification: n,
                    restart_time: t,
                    families: f
                        .into_iter()
                        .map(|(family, fw)| GracefulRestartFamily {
                            family,
                            forwarding_preserved: fw,
                        })
                        .collect(),
                })
            }),
        vec((family(), any::<u8>()), 0..4).prop_map(|v| Capability::AddPath(
            v.into_iter()
                .map(|(family, m)| AddPathFamily {
                    family,
                    mode: AddPathMode::from(m)
                })
                .collect()
        )),
        vec((family(), any::<bool>(), 0u32..=0xff_ffff), 0..4).prop_map(|v| {
            Capability::LongLivedGracefulRestart(
                v.into_iter()
                    .map(|(family, fw, s)| LlgrFamily {
                        family,
                        forwarding_preserved: fw,
                        stale_time: s,
                    })
                    .collect(),
            )
        }),
        (vec(any::<u8>(), 0..60), vec(any::<u8>(), 0..60)).prop_map(|(h, d)| Capability::Fqdn {
            hostname: h.into(),
            domain: d.into()
        }),
        (unknown_code, vec(any::<u8>(), 0..=255)).prop_map(|(c, v)| Capability::Unknown {
            code: CapabilityCode::from(c),
            value: v.into()
        }),
    ]
}

fn open() -> impl Strategy<Value = Open> {
    (
        any::<u16>(),
        prop_oneof![Just(0u16), 3u16..],
        1u32..,
        vec(capability(), 0..12),
    )
        .prop_map(|(my_as, hold_time, id, capabilities)| Open {
            my_as,
            hold_time,
            bgp_id: Ipv4Addr::from(id),
            capabilities,
        })
}

fn message(ctx: EncodeContext) -> impl Strategy<Value = Message> {
    prop_oneof![
        open().prop_map(Message::Open),
        update(ctx).prop_map(Message::Update),
        (any::<u8>(), any::<u8>(), vec(any::<u8>(), 0..300)).prop_map(|(c, s, d)| {
            Message::Notification(Notification {
                code: ErrorCode::from(c),
                subcode: s,
                data: d.into(),
            })
        }),
        Just(Message::Keepalive),
        (family(), any::<u8>()).prop_map(|(family, s)| Message::RouteRefresh(RouteRefresh {
            family,
            subtype: RouteRefreshSubtype::from(s)
        })),
    ]
}

fn ctx_and_message() -> impl Strategy<Value = (DecodeContext, EncodeContext, Message)> {
    contexts().prop_flat_map(|(d, e)| message(e).prop_map(move |m| (d, e, m)))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn decode_encode_round_trip((dctx, ectx, msg) in ctx_and_message()) {
        let mut buf = BytesMut::new();
        msg.encode(&ectx, &mut buf).unwrap();
        let wire = buf.freeze();
        prop_assert_eq!(frame(&wire, dctx.max_message_len()).unwrap(), Some(wire.len()));
        let decoded = Message::decode(wire.clone(), &dctx).unwrap();
        prop_assert!(decoded.errors.is_empty(), "{:?}", decoded.errors);
        prop_assert_eq!(&decoded.message, &msg);
        // Stable: encoding the decoded message gives the same octets.
        let mut again = BytesMut::new();
        decoded.message.encode(&ectx, &mut again).unwrap();
        prop_assert_eq!(&again[..], &wire[..]);
    }

    #[test]
    fn packed_updates_carry_every_prefix(
        (dctx, ectx) in contexts(),
        attrs in attributes(),
        v4 in nlri(v4_prefix(), 1500),
        v6 in nlri(v6_prefix(), 600),
        nh in (any::<u128>(), option::of(any::<u128>())),
    ) {
        let mut attrs = attrs;
        attrs.next_hop = Some(Ipv4Addr::new(192, 0, 2, 1));
        attrs.mp_next_hop = Some(NextHop::V6 { global: Ipv6Addr::from(nh.0), link_local: nh.1.map(Ipv6Addr::from) });
        let (mut v4, mut v6) = (v4, v6);
        fit_path_ids(&mut v4, ectx.add_path.ipv4_unicast);
        fit_path_ids(&mut v6, ectx.add_path.ipv6_unicast);
        let all: Vec<Nlri> = v4.iter().chain(v6.iter()).copied().collect();
        let packer = UpdatePacker::new(ectx);
        let mut out = BytesMut::new();
        let n = packer.announce(&attrs, &all, &mut out).unwrap();
        let w = packer.withdraw(&all, &mut out);
        let mut stream = out;
        let (mut announced, mut withdrawn, mut count) = (Vec::new(), Vec::new(), 0);
        while let Some(msg) = next_message(&mut stream, dctx.max_message_len()).unwrap() {
            prop_assert!(msg.len() <= ectx.max_message_len());
            let Message::Update(u) = Message::decode(msg, &dctx).unwrap().message else { panic!("not an UPDATE") };
            if u.announced().next().is_some() {
                let mut expect = attrs.clone();
                if u.nlri.is_empty() { expect.next_hop = None; }
                if u.mp_reach.is_none() { expect.mp_next_hop = None; }
                prop_assert_eq!(&u.attributes, &expect);
            }
            announced.extend(u.announced().copied());
            withdrawn.extend(u.withdrawals().copied());
            count += 1;
        }
        prop_assert!(stream.is_empty());
        prop_assert_eq!(count, n + w);
        prop_assert_eq!(&announced, &all);
        prop_assert_eq!(&withdrawn, &all);
    }

    #[test]
    fn random_input_never_panics(
        (dctx, _e) in contexts(),
        kind in 1u8..=5,
        body in vec(any::<u8>(), 0..600),
    ) {
        let mut m = vec![0xff; 16];
        m.extend_from_slice(&((19 + body.len()) as u16).to_be_bytes());
        m.push(kind);
        m.extend_from_slice(&body);
        let _ = Message::decode(Bytes::from(m), &dctx);
    }

    #[test]
    fn mutated_updates_never_panic(
        (dctx, ectx, msg) in ctx_and_message(),
        flips in vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
    ) {
        let mut buf = BytesMut::new();
        msg.encode(&ectx, &mut buf).unwrap();
        let mut wire = buf.to_vec();
        if wire.len() > 19 {
            for (i, b) in flips {
                let at = 19 + i.index(wire.len() - 19);
                wire[at] = b;
            }
        }
        match Message::decode(Bytes::from(wire), &dctx) {
            Ok(d) => prop_assert!(d.errors.iter().all(|e| !e.is_fatal())),
            Err(e) => prop_assert!(e.is_fatal()),
        }
    }
}
