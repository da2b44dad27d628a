//! RFC 7606 error handling, attribute by attribute, plus RFC 4271 §6.3 UPDATE errors and the
//! RFC 6793 §4.2.3 AS4 merge. Each test builds the UPDATE octet by octet.
#![allow(clippy::unwrap_used)]

use std::net::Ipv4Addr;

use bgp_wire::iana::UpdateSubcode as S;
use bgp_wire::*;
use bytes::{BufMut, Bytes, BytesMut};

const ORIGIN: &[u8] = &[0x40, 1, 1, 0];
const AS_PATH: &[u8] = &[0x40, 2, 6, 2, 1, 0, 0, 0xfd, 0xe9]; // AS_SEQUENCE 65001
const NEXT_HOP: &[u8] = &[0x40, 3, 4, 10, 0, 0, 1];
const NLRI: &[u8] = &[24, 10, 1, 2]; // 10.1.2.0/24

fn update(withdrawn: &[u8], attrs: &[&[u8]], nlri: &[u8]) -> Bytes {
    let attrs: Vec<u8> = attrs.concat();
    let mut m = BytesMut::new();
    m.put_slice(&[0xff; 16]);
    m.put_u16((23 + withdrawn.len() + attrs.len() + nlri.len()) as u16);
    m.put_u8(2);
    m.put_u16(withdrawn.len() as u16);
    m.put_slice(withdrawn);
    m.put_u16(attrs.len() as u16);
    m.put_slice(&attrs);
    m.put_slice(nlri);
    m.freeze()
}

fn decode(msg: Bytes) -> Result<(Update, Vec<DecodeError>), DecodeError> {
    decode_with(msg, &DecodeContext::default())
}

fn decode_with(msg: Bytes, ctx: &DecodeContext) -> Result<(Update, Vec<DecodeError>), DecodeError> {
    let d = Message::decode(msg, ctx)?;
    match d.message {
        Message::Update(u) => Ok((u, d.errors)),
        other => panic!("not an UPDATE: {other:?}"),
    }
}

fn p(s: &str) -> Nlri {
    Nlri::new(s.parse().unwrap())
}

/// Asserts exactly one treat-as-withdraw error with this subcode, withdrawing 10.1.2.0/24.
fn assert_taw(attrs: &[&[u8]], subcode: S) -> (Update, DecodeError) {
    let (u, errors) = decode(update(&[], attrs, NLRI)).unwrap();
    assert_eq!(errors.len(), 1, "{errors:?}");
    let e = errors.into_iter().next().unwrap();
    assert_eq!(
        (e.code, e.subcode),
        (ErrorCode::UpdateMessage, u8::from(subcode)),
        "{e}"
    );
    match &e.action {
        Action::TreatAsWithdraw { withdraw } => assert_eq!(&withdraw[..], &[p("10.1.2.0/24")]),
        other => panic!("expected treat-as-withdraw, got {other:?}"),
    }
    assert_eq!(u.nlri, vec![p("10.1.2.0/24")]);
    (u, e)
}

fn assert_discard(attrs: &[&[u8]], attribute: AttributeType) -> (Update, DecodeError) {
    let (u, errors) = decode(update(&[], attrs, NLRI)).unwrap();
    assert_eq!(errors.len(), 1, "{errors:?}");
    let e = errors.into_iter().next().unwrap();
    assert_eq!(e.action, Action::AttributeDiscard { attribute });
    (u, e)
}

fn assert_fatal(msg: Bytes, subcode: S) -> DecodeError {
    let e = decode(msg).unwrap_err();
    assert!(e.is_fatal());
    assert_eq!(
        (e.code, e.subcode),
        (ErrorCode::UpdateMessage, u8::from(subcode)),
        "{e}"
    );
    assert_eq!(
        e.action,
        Action::Notification {
            code: e.code,
            subcode: e.subcode,
            data: e.data.clone()
        }
    );
    e
}

#[test]
fn well_formed_update_has_no_errors() {
    let (u, errors) = decode(update(&[], &[ORIGIN, AS_PATH, NEXT_HOP], NLRI)).unwrap();
    assert!(errors.is_empty());
    assert_eq!(u.attributes.origin, Some(Origin::Igp));
    assert_eq!(u.attributes.as_path, Some(AsPath::from_sequence(&[65001])));
    assert_eq!(u.attributes.next_hop, Some(Ipv4Addr::new(10, 0, 0, 1)));
}

// ===== RFC 7606 §7.1 ORIGIN =====

#[test]
fn origin_wrong_length_is_treat_as_withdraw() {
    let (u, e) = assert_taw(
        &[&[0x40, 1, 2, 0, 0], AS_PATH, NEXT_HOP],
        S::AttributeLengthError,
    );
    assert_eq!(u.attributes.origin, None);
    assert_eq!(&e.data[..], &[0x40, 1, 2, 0, 0]); // RFC 4271 §6.3: data is the attribute
}

#[test]
fn origin_undefined_value_is_treat_as_withdraw() {
    assert_taw(
        &[&[0x40, 1, 1, 3], AS_PATH, NEXT_HOP],
        S::InvalidOriginAttribute,
    );
}

// ===== RFC 7606 §7.2 AS_PATH =====

#[test]
fn malformed_as_path_is_treat_as_withdraw() {
    for bad in [
        &[0x40, 2, 6, 2, 2, 0, 0, 0xfd, 0xe9][..], // segment overrun
        &[0x40, 2, 2, 2, 0],                       // zero-length segment
        &[0x40, 2, 6, 7, 1, 0, 0, 0xfd, 0xe9],     // undefined segment type
        &[0x40, 2, 1, 2],                          // truncated segment header
    ] {
        assert_taw(&[ORIGIN, bad, NEXT_HOP], S::MalformedAsPath);
    }
}

#[test]
fn two_octet_as_path_and_confederations() {
    let ctx = DecodeContext {
        four_octet_as: false,
        ..DecodeContext::default()
    };
    let path = [0x40, 2, 10, 3, 1, 0xfd, 0xe8, 2, 2, 0x00, 0x64, 0x00, 0xc8]; // (65000) 100 200
    let (u, errors) = decode_with(update(&[], &[ORIGIN, &path, NEXT_HOP], NLRI), &ctx).unwrap();
    assert!(errors.is_empty());
    assert_eq!(u.attributes.as_path.unwrap().to_string(), "(65000) 100 200");
}

// ===== RFC 7606 §7.3 NEXT_HOP =====

#[test]
fn bad_next_hop_is_treat_as_withdraw() {
    assert_taw(
        &[ORIGIN, AS_PATH, &[0x40, 3, 5, 10, 0, 0, 1, 0]],
        S::AttributeLengthError,
    );
    assert_taw(
        &[ORIGIN, AS_PATH, &[0x40, 3, 4, 0, 0, 0, 0]],
        S::InvalidNextHopAttribute,
    );
    assert_taw(
        &[ORIGIN, AS_PATH, &[0x40, 3, 4, 224, 0, 0, 5]],
        S::InvalidNextHopAttribute,
    );
}

// ===== RFC 7606 §7.4–§7.10 and later attributes =====

#[test]
fn fixed_length_attributes_of_wrong_length_are_treat_as_withdraw() {
    for bad in [
        &[0x80, 4, 3, 0, 0, 1][..],          // MED
        &[0x40, 5, 5, 0, 0, 0, 100, 0],      // LOCAL_PREF
        &[0x80, 9, 3, 1, 2, 3],              // ORIGINATOR_ID
        &[0xc0, 35, 2, 0, 1],                // OTC (RFC 9234 §5)
        &[0xc0, 8, 5, 0, 1, 0, 2, 9],        // COMMUNITIES not a multiple of 4
        &[0xc0, 8, 0],                       // COMMUNITIES empty
        &[0x80, 10, 3, 1, 2, 3],             // CLUSTER_LIST
        &[0xc0, 16, 7, 0, 2, 0, 1, 0, 0, 0], // EXTENDED_COMMUNITIES (RFC 7606 §7.14)
        &[0xc0, 32, 4, 0, 0, 0, 1],          // LARGE_COMMUNITY (RFC 8092 §6)
        &[0xc0, 25, 3, 0, 2, 0], // IPv6 address specific ext. community (RFC 7606 §7.15)
    ] {
        assert_taw(&[ORIGIN, AS_PATH, NEXT_HOP, bad], S::AttributeLengthError);
    }
}

#[test]
fn atomic_aggregate_and_aggregator_errors_discard_the_attribute() {
    let (u, _) = assert_discard(
        &[ORIGIN, AS_PATH, NEXT_HOP, &[0x40, 6, 1, 0]],
        AttributeType::AtomicAggregate,
    );
    assert!(!u.attributes.atomic_aggregate);
    let (u, e) = assert_discard(
        &[ORIGIN, AS_PATH, NEXT_HOP, &[0xc0, 7, 6, 0, 1, 1, 2, 3, 4]],
        AttributeType::Aggregator,
    );
    assert_eq!(u.attributes.aggregator, None);
    assert_eq!(e.subcode, u8::from(S::AttributeLengthError));
    // Everything else of the UPDATE is used.
    assert_eq!(u.nlri, vec![p("10.1.2.0/24")]);
}

// ===== RFC 7606 §3 general rules =====

#[test]
fn attribute_flags_conflicts_take_the_attribute_s_action() {
    // c) ORIGIN marked optional: treat-as-withdraw.
    let (_, e) = assert_taw(
        &[&[0xc0, 1, 1, 0], AS_PATH, NEXT_HOP],
        S::AttributeFlagsError,
    );
    assert!(matches!(
        e.reason,
        Reason::AttributeFlags {
            attribute: AttributeType::Origin,
            flags: 0xc0
        }
    ));
    // MED marked well-known.
    assert_taw(
        &[ORIGIN, AS_PATH, NEXT_HOP, &[0x40, 4, 4, 0, 0, 0, 1]],
        S::AttributeFlagsError,
    );
    // AGGREGATOR marked non-transitive: attribute discard.
    assert_discard(
        &[
            ORIGIN,
            AS_PATH,
            NEXT_HOP,
            &[0x80, 7, 8, 0, 0, 0, 1, 1, 2, 3, 4],
        ],
        AttributeType::Aggregator,
    );
    // MP_REACH_NLRI marked transitive: session reset.
    let mp = [0xc0, 14, 5, 0, 1, 1, 0, 0];
    assert_fatal(
        update(&[], &[ORIGIN, AS_PATH, &mp], &[]),
        S::AttributeFlagsError,
    );
}

#[test]
fn missing_well_known_attributes_are_treat_as_withdraw() {
    for (attrs, missing) in [
        (vec![AS_PATH, NEXT_HOP], AttributeType::Origin),
        (vec![ORIGIN, NEXT_HOP], AttributeType::AsPath),
        (vec![ORIGIN, AS_PATH], AttributeType::NextHop),
    ] {
        let (_, e) = assert_taw(&attrs, S::MissingWellKnownAttribute);
        assert_eq!(e.reason, Reason::MissingWellKnown(missing));
        assert_eq!(&e.data[..], &[u8::from(missing)]);
    }
    // Without NLRI nothing is mandatory (a withdrawal).
    let (u, errors) = decode(update(&[8, 10], &[], &[])).unwrap();
    assert!(errors.is_empty());
    assert_eq!(u.withdrawn, vec![p("10.0.0.0/8")]);
}

#[test]
fn malformed_attribute_and_missing_one_are_both_reported() {
    // A malformed ORIGIN is not also reported as missing; the missing NEXT_HOP is.
    let (_, errors) = decode(update(&[], &[&[0x40, 1, 1, 9], AS_PATH], NLRI)).unwrap();
    let reasons: Vec<_> = errors.iter().map(|e| e.reason.clone()).collect();
    assert_eq!(
        reasons,
        vec![
            Reason::InvalidOrigin(9),
            Reason::MissingWellKnown(AttributeType::NextHop)
        ]
    );
}

#[test]
fn duplicate_attributes_keep_the_first() {
    let med1 = [0x80, 4, 4, 0, 0, 0, 1];
    let med2 = [0x80, 4, 4, 0, 0, 0, 2];
    let (u, e) = assert_discard(
        &[ORIGIN, AS_PATH, NEXT_HOP, &med1, &med2],
        AttributeType::MultiExitDisc,
    );
    assert_eq!(u.attributes.med, Some(1));
    assert_eq!(
        e.reason,
        Reason::DuplicateAttribute(AttributeType::MultiExitDisc)
    );
}

#[test]
fn duplicate_mp_attributes_reset_the_session() {
    let unreach = [0x80, 15, 3, 0, 2, 1];
    assert_fatal(
        update(&[], &[&unreach, &unreach], &[]),
        S::MalformedAttributeList,
    );
    let reach = [
        0x80, 14, 21, 0, 2, 1, 16, 0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0,
    ];
    assert_fatal(
        update(&[], &[ORIGIN, AS_PATH, &reach, &reach], &[]),
        S::MalformedAttributeList,
    );
}

#[test]
fn strongest_action_comes_first() {
    let (_, errors) = decode(update(
        &[],
        &[&[0x40, 6, 1, 0], &[0x40, 1, 1, 7], AS_PATH, NEXT_HOP],
        NLRI,
    ))
    .unwrap();
    let actions: Vec<_> = errors.iter().map(|e| e.action.name()).collect();
    assert_eq!(actions, vec!["treat-as-withdraw", "attribute-discard"]);
}

#[test]
fn unrecognized_attributes() {
    // Unknown well-known: session reset (RFC 4271 §6.3).
    let e = assert_fatal(
        update(&[], &[ORIGIN, AS_PATH, NEXT_HOP, &[0x40, 99, 1, 0]], NLRI),
        S::UnrecognizedWellKnownAttribute,
    );
    assert_eq!(&e.data[..], &[0x40, 99, 1, 0]);
    // Unknown optional transitive: kept, and re-sent with Partial; non-transitive: dropped.
    let (u, errors) = decode(update(
        &[],
        &[
            ORIGIN,
            AS_PATH,
            NEXT_HOP,
            &[0xc0, 99, 2, 7, 7],
            &[0x80, 98, 1, 1],
        ],
        NLRI,
    ))
    .unwrap();
    assert!(errors.is_empty());
    assert_eq!(u.attributes.unknown.len(), 1);
    assert_eq!(
        (
            u.attributes.unknown[0].type_code,
            &u.attributes.unknown[0].value[..]
        ),
        (99, &[7u8, 7][..])
    );
    let mut out = BytesMut::new();
    u.encode(&EncodeContext::default(), &mut out).unwrap();
    assert!(out.windows(5).any(|w| w == [0xe0, 99, 2, 7, 7]));
    assert!(!out.windows(2).any(|w| w == [0x80, 98]));
}

// ===== RFC 7606 §4, §5: lengths and NLRI =====

#[test]
fn length_field_overruns_reset_the_session() {
    let mut m = update(&[8, 10], &[], &[]).to_vec();
    m[20] = 9; // withdrawn length 9 > what is there
    assert!(matches!(
        assert_fatal(Bytes::from(m), S::MalformedAttributeList).reason,
        Reason::WithdrawnLengthOverrun
    ));
    let mut m = update(&[], &[ORIGIN], &[]).to_vec();
    m[22] = 40; // total attribute length beyond the message
    assert_eq!(
        assert_fatal(Bytes::from(m), S::MalformedAttributeList).reason,
        Reason::TotalAttributeLengthOverrun
    );
}

#[test]
fn attribute_overrunning_the_attribute_field_is_treat_as_withdraw() {
    let (u, e) = assert_taw(
        &[ORIGIN, AS_PATH, NEXT_HOP, &[0x80, 4, 9, 0, 0]],
        S::MalformedAttributeList,
    );
    assert_eq!(e.reason, Reason::AttributeOverrun);
    assert_eq!(u.attributes.next_hop, Some(Ipv4Addr::new(10, 0, 0, 1)));
}

#[test]
fn bad_nlri_resets_the_session() {
    let e = assert_fatal(
        update(&[], &[ORIGIN, AS_PATH, NEXT_HOP], &[33, 1, 2, 3, 4, 5]),
        S::InvalidNetworkField,
    );
    assert_eq!(
        e.reason,
        Reason::InvalidNlri {
            field: NlriField::Nlri,
            error: NlriError::PrefixTooLong(33)
        }
    );
    let e = assert_fatal(
        update(&[], &[ORIGIN, AS_PATH, NEXT_HOP], &[24, 10, 1]),
        S::InvalidNetworkField,
    );
    assert_eq!(
        e.reason,
        Reason::InvalidNlri {
            field: NlriField::Nlri,
            error: NlriError::Overrun
        }
    );
    assert_fatal(
        update(&[40, 1, 2, 3, 4, 5], &[], &[]),
        S::InvalidNetworkField,
    );
}

// ===== RFC 7606 §7.11, §7.12 MP_REACH_NLRI / MP_UNREACH_NLRI =====

fn mp_reach_v6(nh_len: u8, nlri: &[u8]) -> Vec<u8> {
    let mut v = vec![0, 2, 1, nh_len];
    v.extend((0..nh_len).map(|i| if i == 0 { 0x20 } else { i }));
    v.push(0);
    v.extend_from_slice(nlri);
    let mut a = vec![0x80, 14, v.len() as u8];
    a.extend(v);
    a
}

#[test]
fn mp_reach_errors_reset_the_session() {
    for bad in [
        mp_reach_v6(15, &[]),            // next hop length neither 16 nor 32
        mp_reach_v6(16, &[129, 0]),      // prefix length > 128
        mp_reach_v6(16, &[64, 0x20, 1]), // NLRI overrun
        vec![0x80, 14, 3, 0, 2, 1],      // truncated
    ] {
        assert_fatal(
            update(&[], &[ORIGIN, AS_PATH, &bad], &[]),
            S::OptionalAttributeError,
        );
    }
    assert_fatal(
        update(&[], &[&[0x80, 15, 4, 0, 2, 1, 33]], &[]),
        S::OptionalAttributeError,
    );
}

#[test]
fn mp_reach_ipv6_with_link_local_and_treat_as_withdraw_covers_it() {
    let reach = mp_reach_v6(32, &[32, 0x20, 1, 0xd, 0xb8]);
    let (u, errors) = decode(update(&[], &[&[0x40, 1, 1, 5], AS_PATH, &reach], NLRI)).unwrap();
    let NextHop::V6 {
        link_local: Some(_),
        ..
    } = u.attributes.mp_next_hop.unwrap()
    else {
        panic!()
    };
    assert_eq!(u.mp_reach.as_ref().unwrap().nlri, vec![p("2001:db8::/32")]);
    let Action::TreatAsWithdraw { withdraw } = &errors[0].action else {
        panic!()
    };
    // RFC 7606 §5: both the NLRI field and MP_REACH_NLRI are withdrawn.
    assert_eq!(&withdraw[..], &[p("10.1.2.0/24"), p("2001:db8::/32")]);
}

#[test]
fn unsupported_family_is_dropped_not_fatal() {
    let evpn = [0x80, 14, 9, 0, 25, 70, 4, 1, 2, 3, 4, 0];
    let (u, errors) = decode(update(&[], &[ORIGIN, AS_PATH, &evpn], &[])).unwrap();
    assert!(u.mp_reach.is_none());
    assert_eq!(
        errors[0].action,
        Action::AttributeDiscard {
            attribute: AttributeType::MpReachNlri
        }
    );
}

// ===== End-of-RIB (RFC 4724 §2) =====

#[test]
fn end_of_rib_markers() {
    let (u, _) = decode(update(&[], &[], &[])).unwrap();
    assert_eq!(u.as_end_of_rib(), Some(Family::IPV4_UNICAST));
    let (u, _) = decode(update(&[], &[&[0x80, 15, 3, 0, 2, 1]], &[])).unwrap();
    assert_eq!(u.as_end_of_rib(), Some(Family::IPV6_UNICAST));
    let (u, _) = decode(update(&[8, 10], &[], &[])).unwrap();
    assert_eq!(u.as_end_of_rib(), None);
    for family in [Family::IPV4_UNICAST, Family::IPV6_UNICAST] {
        let mut out = BytesMut::new();
        UpdatePacker::new(EncodeContext::default())
            .end_of_rib(family, &mut out)
            .unwrap();
        let (u, _) = decode(out.freeze()).unwrap();
        assert_eq!(u.as_end_of_rib(), Some(family));
    }
}

// ===== RFC 6793 §4.2.3 AS4 merge on 2-octet sessions =====

fn as2() -> DecodeContext {
    DecodeContext {
        four_octet_as: false,
        ..DecodeContext::default()
    }
}

// AS_PATH 100 23456 23456 (2-octet), AS4_PATH 4200000000 4200000001.
const AS2_PATH: &[u8] = &[0x40, 2, 8, 2, 3, 0, 100, 0x5b, 0xa0, 0x5b, 0xa0];
const AS4_PATH: &[u8] = &[
    0xc0, 17, 10, 2, 2, 0xfa, 0x56, 0xea, 0x00, 0xfa, 0x56, 0xea, 0x01,
];

#[test]
fn as4_path_is_merged_on_two_octet_sessions() {
    let (u, errors) = decode_with(
        update(&[], &[ORIGIN, AS2_PATH, NEXT_HOP, AS4_PATH], NLRI),
        &as2(),
    )
    .unwrap();
    assert!(errors.is_empty());
    assert_eq!(
        u.attributes.as_path.unwrap().to_string(),
        "100 4200000000 4200000001"
    );
    // A NEW speaker ignores AS4_PATH from a NEW speaker (RFC 6793 §4.1).
    let four = [
        0x40, 2, 14, 2, 3, 0, 0, 0, 100, 0, 0, 0x5b, 0xa0, 0, 0, 0x5b, 0xa0,
    ];
    let (u, _) = decode(update(&[], &[ORIGIN, &four, NEXT_HOP, AS4_PATH], NLRI)).unwrap();
    assert_eq!(u.attributes.as_path.unwrap().to_string(), "100 23456 23456");
}

#[test]
fn as4_path_longer_than_as_path_is_ignored() {
    let short = [0x40, 2, 4, 2, 1, 0x5b, 0xa0];
    let (u, _) = decode_with(
        update(&[], &[ORIGIN, &short, NEXT_HOP, AS4_PATH], NLRI),
        &as2(),
    )
    .unwrap();
    assert_eq!(u.attributes.as_path.unwrap().to_string(), "23456");
}

#[test]
fn as4_aggregator_rules() {
    let agg_trans = [0xc0, 7, 6, 0x5b, 0xa0, 1, 2, 3, 4];
    let agg_old = [0xc0, 7, 6, 0, 99, 1, 2, 3, 4];
    let as4_agg = [0xc0, 18, 8, 0xfa, 0x56, 0xea, 0x00, 5, 6, 7, 8];
    let (u, _) = decode_with(
        update(
            &[],
            &[ORIGIN, AS2_PATH, NEXT_HOP, &agg_trans, AS4_PATH, &as4_agg],
            NLRI,
        ),
        &as2(),
    )
    .unwrap();
    assert_eq!(
        u.attributes.aggregator,
        Some(Aggregator {
            asn: 4_200_000_000,
            address: Ipv4Addr::new(5, 6, 7, 8)
        })
    );
    // AGGREGATOR not AS_TRANS: AS4_AGGREGATOR and AS4_PATH are both ignored.
    let (u, _) = decode_with(
        update(
            &[],
            &[ORIGIN, AS2_PATH, NEXT_HOP, &agg_old, AS4_PATH, &as4_agg],
            NLRI,
        ),
        &as2(),
    )
    .unwrap();
    assert_eq!(u.attributes.aggregator.unwrap().asn, 99);
    assert_eq!(u.attributes.as_path.unwrap().to_string(), "100 23456 23456");
}

#[test]
fn malformed_as4_path_is_discarded() {
    let bad = [0xc0, 17, 3, 2, 1, 0];
    let (u, errors) = decode_with(
        update(&[], &[ORIGIN, AS2_PATH, NEXT_HOP, &bad], NLRI),
        &as2(),
    )
    .unwrap();
    assert_eq!(
        errors[0].action,
        Action::AttributeDiscard {
            attribute: AttributeType::As4Path
        }
    );
    assert_eq!(u.attributes.as_path.unwrap().to_string(), "100 23456 23456");
}

#[test]
fn two_octet_encoding_writes_as_trans_and_as4_path() {
    let mut u = Update {
        nlri: vec![p("10.1.2.0/24")],
        ..Update::default()
    };
    u.attributes.origin = Some(Origin::Igp);
    u.attributes.as_path = Some(AsPath::from_sequence(&[100, 4_200_000_000]));
    u.attributes.next_hop = Some(Ipv4Addr::new(10, 0, 0, 1));
    let ctx = EncodeContext {
        four_octet_as: false,
        ..EncodeContext::default()
    };
    let mut out = BytesMut::new();
    u.encode(&ctx, &mut out).unwrap();
    assert!(
        out.windows(9)
            .any(|w| w == [0x40, 2, 6, 2, 2, 0, 100, 0x5b, 0xa0])
    );
    assert!(out.windows(5).any(|w| w == [0xc0, 17, 10, 2, 2]));
    let (back, _) = decode_with(out.freeze(), &as2()).unwrap();
    assert_eq!(back, u);
}

// ===== Rules that depend on the peer being external =====

#[test]
fn external_peer_rules() {
    let local_pref = [0x40, 5, 4, 0, 0, 0, 100];
    let mut d = Message::decode(
        update(&[], &[ORIGIN, AS_PATH, NEXT_HOP, &local_pref], NLRI),
        &DecodeContext::default(),
    )
    .unwrap();
    d.apply_external_peer_rules(Some(65001), false);
    assert_eq!(d.errors.len(), 1);
    assert_eq!(
        d.errors[0].action,
        Action::AttributeDiscard {
            attribute: AttributeType::LocalPref
        }
    );
    let Message::Update(u) = &d.message else {
        panic!()
    };
    assert_eq!(u.attributes.local_pref, None);

    // First AS is not the peer's: treat-as-withdraw (RFC 4271 §6.3 with RFC 7606 §7.2).
    let mut d = Message::decode(
        update(&[], &[ORIGIN, AS_PATH, NEXT_HOP], NLRI),
        &DecodeContext::default(),
    )
    .unwrap();
    d.apply_external_peer_rules(Some(65002), false);
    assert_eq!(d.treat_as_withdraw(), Some(&[p("10.1.2.0/24")][..]));
    let mut d = Message::decode(
        update(&[], &[ORIGIN, AS_PATH, NEXT_HOP], NLRI),
        &DecodeContext::default(),
    )
    .unwrap();
    d.apply_external_peer_rules(None, false);
    assert!(d.errors.is_empty());

    // Confederation segments from outside the confederation.
    let confed = [0x40, 2, 12, 3, 1, 0, 0, 0xfd, 0xe8, 2, 1, 0, 0, 0xfd, 0xe9];
    let mut d = Message::decode(
        update(&[], &[ORIGIN, &confed, NEXT_HOP], NLRI),
        &DecodeContext::default(),
    )
    .unwrap();
    d.apply_external_peer_rules(None, false);
    assert_eq!(
        d.errors[0].reason,
        Reason::MalformedAsPath(AttributeType::AsPath)
    );
    let mut d = Message::decode(
        update(&[], &[ORIGIN, &confed, NEXT_HOP], NLRI),
        &DecodeContext::default(),
    )
    .unwrap();
    d.apply_external_peer_rules(Some(65001), true);
    assert!(d.errors.is_empty());
}

#[test]
fn repeated_attributes_are_reported_once() {
    let med = [0x80u8, 4, 4, 0, 0, 0, 1];
    let mut attrs: Vec<&[u8]> = vec![ORIGIN, AS_PATH, NEXT_HOP];
    attrs.extend(std::iter::repeat_n(&med[..], 500));
    let (u, errors) = decode_with(
        update(&[], &attrs, NLRI),
        &DecodeContext {
            extended_messages: true,
            ..DecodeContext::default()
        },
    )
    .unwrap();
    assert_eq!(errors.len(), 1);
    assert_eq!(u.attributes.med, Some(1));
}

#[test]
fn hostile_floods_stay_bounded() {
    let ext = DecodeContext {
        extended_messages: true,
        ..DecodeContext::default()
    };
    // 21,000 three-octet attributes of every type code: one error per repeated type at most,
    // one kept unknown attribute per type code at most.
    // (MP_REACH_NLRI/MP_UNREACH_NLRI left out: a malformed one resets the session at once.)
    let codes: Vec<u8> = (0..=255u8).filter(|&t| t != 14 && t != 15).collect();
    let attrs: Vec<Vec<u8>> = (0..21_000usize)
        .map(|i| vec![0xc0, codes[i % codes.len()], 0])
        .collect();
    let refs: Vec<&[u8]> = attrs.iter().map(|a| &a[..]).collect();
    let (u, errors) = decode_with(update(&[], &refs, &[]), &ext).unwrap();
    assert!(errors.len() <= 2 * 256, "{}", errors.len());
    assert!(!errors.is_empty());
    assert!(u.attributes.unknown.len() <= 256);
    // 65,000 default routes in the NLRI field decode in one pass.
    let nlri = vec![0u8; 65_000];
    let (u, _) = decode_with(update(&[], &[ORIGIN, AS_PATH, NEXT_HOP], &nlri), &ext).unwrap();
    assert_eq!(u.nlri.len(), 65_000);
}
