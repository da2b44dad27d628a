//! Decoding messages from `Bytes` (RFC 4271 §4, §6; RFC 7606 for UPDATEs).
//!
//! Structure is parsed with `nom` over byte slices of the received message; values kept as
//! bytes (unknown attributes and capabilities, NOTIFICATION data) are zero-copy slices of it.
//! Every length is checked against what is left before it is used, allocations are bounded by
//! the message size, and every loop advances by at least one octet: no input can panic,
//! allocate without bound, or take more than linear time.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use bytes::Bytes;
use nom::bytes::complete::take;
use nom::number::complete::{be_u8, be_u16, be_u32};
use nom::{IResult, Parser};

use crate::attribute::{
    Aggregator, AsPath, AsSegment, Community, ExtendedCommunity, InlineVec, LargeCommunity,
    MpReach, MpUnreach, NextHop, PathAttributes, RawAttribute, flags, is_confed,
};
use crate::capability::{
    AddPathFamily, Capability, ExtendedNextHop, GracefulRestart, GracefulRestartFamily, LlgrFamily,
};
use crate::context::{DecodeContext, HEADER_LEN, MAX_MESSAGE_LEN};
use crate::error::{Action, DecodeError, NlriField, Reason};
use crate::iana::{
    Afi, AttributeType, CapabilityCode, ErrorCode, MessageHeaderSubcode, MessageType, OpenSubcode,
    ParameterType, RouteRefreshErrorSubcode, SegmentType, UpdateSubcode, asn::AS_TRANS,
};
use crate::message::{Decoded, Message, Notification, Open, RouteRefresh, Update};
use crate::nlri::{Family, Nlri, decode_nlri};

/// nom result over byte slices; errors carry no payload (the caller knows what failed).
type PResult<'a, T> = IResult<&'a [u8], T, ()>;

/// The Withdrawn Routes, Path Attributes and NLRI fields of an UPDATE.
type UpdateFields<'a> = (&'a [u8], &'a [u8], &'a [u8]);

/// One attribute split off: flags, type code, value, the whole attribute, what follows.
type AttributeParts<'a> = (u8, u8, &'a [u8], &'a [u8], &'a [u8]);

impl Message {
    /// Decodes one whole message (header included), as returned by
    /// [`next_message`](crate::next_message).
    ///
    /// `Err` means the session must be reset with [`DecodeError::notification`]. `Ok` may
    /// still carry RFC 7606 treat-as-withdraw / attribute-discard errors for an UPDATE.
    pub fn decode(msg: Bytes, ctx: &DecodeContext) -> Result<Decoded, DecodeError> {
        let header = msg
            .get(..HEADER_LEN)
            .ok_or_else(|| bad_length(msg.len() as u16))?;
        if header[..16].iter().any(|&b| b != 0xff) {
            return Err(DecodeError::fatal(
                Reason::BadMarker,
                ErrorCode::MessageHeader,
                MessageHeaderSubcode::ConnectionNotSynchronized,
                Bytes::new(),
            ));
        }
        let len = u16::from_be_bytes([header[16], header[17]]);
        let kind = MessageType::from(header[18]);
        let ulen = usize::from(len);
        // RFC 8654 §4: OPEN and KEEPALIVE stay within 4096 octets.
        let (min, max) = match kind {
            MessageType::Open => (29, MAX_MESSAGE_LEN),
            MessageType::Update => (23, ctx.max_message_len()),
            MessageType::Notification => (21, ctx.max_message_len()),
            MessageType::Keepalive => (19, 19),
            MessageType::RouteRefresh => (19, ctx.max_message_len()),
            MessageType::Unknown(t) => {
                return Err(DecodeError::fatal(
                    Reason::BadType(t),
                    ErrorCode::MessageHeader,
                    MessageHeaderSubcode::BadMessageType,
                    Bytes::copy_from_slice(&[t]),
                ));
            }
        };
        if ulen != msg.len() || ulen < min || ulen > max {
            return Err(bad_length(len));
        }
        let message = match kind {
            MessageType::Open => Message::Open(decode_open(&msg)?),
            MessageType::Update => return decode_update(&msg, ctx),
            MessageType::Notification => Message::Notification(Notification {
                code: ErrorCode::from(msg[19]),
                subcode: msg[20],
                data: msg.slice(21..),
            }),
            MessageType::Keepalive => Message::Keepalive,
            MessageType::RouteRefresh => {
                // RFC 7313 §5: any length but 23 is a ROUTE-REFRESH Message Error.
                if ulen != 23 {
                    return Err(DecodeError::fatal(
                        Reason::RouteRefreshLength(len),
                        ErrorCode::RouteRefreshMessage,
                        RouteRefreshErrorSubcode::InvalidMessageLength,
                        msg.clone(),
                    ));
                }
                Message::RouteRefresh(RouteRefresh {
                    family: Family::new(u16::from_be_bytes([msg[19], msg[20]]), msg[22]),
                    subtype: msg[21].into(),
                })
            }
            MessageType::Unknown(_) => unreachable_type(),
        };
        Ok(Decoded {
            message,
            errors: Vec::new(),
        })
    }
}

/// The match above returns early for unknown types; this keeps the code panic-free anyway.
#[cold]
fn unreachable_type() -> Message {
    Message::Keepalive
}

fn bad_length(len: u16) -> DecodeError {
    DecodeError::fatal(
        Reason::BadLength(len),
        ErrorCode::MessageHeader,
        MessageHeaderSubcode::BadMessageLength,
        Bytes::copy_from_slice(&len.to_be_bytes()),
    )
}

// ===== OPEN =====

fn open_error(reason: Reason, subcode: OpenSubcode, data: Bytes) -> DecodeError {
    DecodeError::fatal(reason, ErrorCode::OpenMessage, subcode, data)
}

fn malformed_params() -> DecodeError {
    open_error(
        Reason::MalformedOptionalParameters,
        OpenSubcode::Unspecific,
        Bytes::new(),
    )
}

fn open_fixed(i: &[u8]) -> PResult<'_, (u8, u16, u16, u32, u8)> {
    (be_u8, be_u16, be_u16, be_u32, be_u8).parse(i)
}

fn decode_open(msg: &Bytes) -> Result<Open, DecodeError> {
    let body = &msg[HEADER_LEN..];
    let (rest, (version, my_as, hold_time, id, opt_len)) =
        open_fixed(body).map_err(|_| bad_length(msg.len() as u16))?;
    if version != 4 {
        // RFC 4271 §6.2: data is the largest supported version.
        return Err(open_error(
            Reason::UnsupportedVersion(version),
            OpenSubcode::UnsupportedVersionNumber,
            Bytes::from_static(&[0, 4]),
        ));
    }
    if hold_time == 1 || hold_time == 2 {
        return Err(open_error(
            Reason::UnacceptableHoldTime(hold_time),
            OpenSubcode::UnacceptableHoldTime,
            Bytes::new(),
        ));
    }
    let bgp_id = Ipv4Addr::from(id);
    if id == 0 {
        return Err(open_error(
            Reason::BadBgpIdentifier(bgp_id),
            OpenSubcode::BadBgpIdentifier,
            Bytes::new(),
        ));
    }
    // RFC 9072 §2: a first parameter type of 255 announces 2-octet lengths.
    let extended = opt_len != 0 && rest.first() == Some(&u8::from(ParameterType::ExtendedLength));
    let (mut params, long) = if extended {
        let (params, ext_len) = (be_u8, be_u16)
            .parse(rest)
            .map(|(r, (_, l))| (r, l))
            .map_err(|_: nom::Err<()>| malformed_params())?;
        if usize::from(ext_len) != params.len() {
            return Err(malformed_params());
        }
        (params, true)
    } else {
        if usize::from(opt_len) != rest.len() {
            return Err(malformed_params());
        }
        (rest, false)
    };
    let mut capabilities = Vec::new();
    while !params.is_empty() {
        let parsed: PResult<'_, (u8, &[u8])> = if long {
            (be_u8, nom::multi::length_data(be_u16)).parse(params)
        } else {
            (be_u8, nom::multi::length_data(be_u8)).parse(params)
        };
        let (r, (ptype, value)) = parsed.map_err(|_| malformed_params())?;
        params = r;
        if ParameterType::from(ptype) != ParameterType::Capabilities {
            return Err(open_error(
                Reason::UnsupportedOptionalParameter(ptype),
                OpenSubcode::UnsupportedOptionalParameter,
                Bytes::new(),
            ));
        }
        decode_capabilities(msg, value, &mut capabilities)?;
    }
    Ok(Open {
        my_as,
        hold_time,
        bgp_id,
        capabilities,
    })
}

fn decode_capabilities(
    msg: &Bytes,
    mut i: &[u8],
    out: &mut Vec<Capability>,
) -> Result<(), DecodeError> {
    while !i.is_empty() {
        let (r, (code, value)) = (be_u8, nom::multi::length_data(be_u8))
            .parse(i)
            .map_err(|_: nom::Err<()>| malformed_params())?;
        i = r;
        let code = CapabilityCode::from(code);
        let cap = decode_capability(msg, code, value).ok_or_else(|| {
            open_error(
                Reason::MalformedCapability(code),
                OpenSubcode::Unspecific,
                msg.slice_ref(value),
            )
        })?;
        out.push(cap);
    }
    Ok(())
}

/// Decodes one capability value; `None` when a known capability is malformed.
fn decode_capability(msg: &Bytes, code: CapabilityCode, v: &[u8]) -> Option<Capability> {
    let family = |afi: u16, safi: u8| Family::new(afi, safi);
    Some(match code {
        CapabilityCode::Multiprotocol => {
            let [a, b, _, s] = *<&[u8; 4]>::try_from(v).ok()?;
            Capability::Multiprotocol(family(u16::from_be_bytes([a, b]), s))
        }
        CapabilityCode::RouteRefresh if v.is_empty() => Capability::RouteRefresh,
        CapabilityCode::ExtendedMessage if v.is_empty() => Capability::ExtendedMessage,
        CapabilityCode::EnhancedRouteRefresh if v.is_empty() => Capability::EnhancedRouteRefresh,
        CapabilityCode::Role if v.len() == 1 => Capability::Role(v[0].into()),
        CapabilityCode::FourOctetAs => {
            Capability::FourOctetAs(u32::from_be_bytes(v.try_into().ok()?))
        }
        CapabilityCode::ExtendedNextHop if v.len().is_multiple_of(6) => {
            Capability::ExtendedNextHop(
                v.chunks_exact(6)
                    .map(|c| ExtendedNextHop {
                        nlri_afi: u16::from_be_bytes([c[0], c[1]]),
                        nlri_safi: u16::from_be_bytes([c[2], c[3]]),
                        next_hop_afi: u16::from_be_bytes([c[4], c[5]]),
                    })
                    .collect(),
            )
        }
        CapabilityCode::GracefulRestart if v.len() >= 2 && (v.len() - 2).is_multiple_of(4) => {
            let head = u16::from_be_bytes([v[0], v[1]]);
            Capability::GracefulRestart(GracefulRestart {
                restart_state: head & 0x8000 != 0,
                notification: head & 0x4000 != 0,
                restart_time: head & 0x0fff,
                families: v[2..]
                    .chunks_exact(4)
                    .map(|c| GracefulRestartFamily {
                        family: family(u16::from_be_bytes([c[0], c[1]]), c[2]),
                        forwarding_preserved: c[3] & 0x80 != 0,
                    })
                    .collect(),
            })
        }
        CapabilityCode::AddPath if v.len().is_multiple_of(4) => Capability::AddPath(
            v.chunks_exact(4)
                .map(|c| AddPathFamily {
                    family: family(u16::from_be_bytes([c[0], c[1]]), c[2]),
                    mode: c[3].into(),
                })
                .collect(),
        ),
        CapabilityCode::LongLivedGracefulRestart if v.len().is_multiple_of(7) => {
            Capability::LongLivedGracefulRestart(
                v.chunks_exact(7)
                    .map(|c| LlgrFamily {
                        family: family(u16::from_be_bytes([c[0], c[1]]), c[2]),
                        forwarding_preserved: c[3] & 0x80 != 0,
                        stale_time: u32::from_be_bytes([0, c[4], c[5], c[6]]),
                    })
                    .collect(),
            )
        }
        CapabilityCode::Fqdn => {
            // Not standardised: when it does not parse, keep it as bytes instead of failing.
            let parsed: PResult<'_, (&[u8], &[u8])> = (
                nom::multi::length_data(be_u8),
                nom::multi::length_data(be_u8),
            )
                .parse(v);
            match parsed {
                Ok(([], (host, domain))) => Capability::Fqdn {
                    hostname: msg.slice_ref(host),
                    domain: msg.slice_ref(domain),
                },
                _ => Capability::Unknown {
                    code,
                    value: msg.slice_ref(v),
                },
            }
        }
        CapabilityCode::RouteRefresh
        | CapabilityCode::ExtendedMessage
        | CapabilityCode::EnhancedRouteRefresh
        | CapabilityCode::Role
        | CapabilityCode::ExtendedNextHop
        | CapabilityCode::GracefulRestart
        | CapabilityCode::AddPath
        | CapabilityCode::LongLivedGracefulRestart => return None,
        CapabilityCode::OutboundRouteFiltering
        | CapabilityCode::RouteRefreshCisco
        | CapabilityCode::Unknown(_) => Capability::Unknown {
            code,
            value: msg.slice_ref(v),
        },
    })
}

// ===== UPDATE =====

/// Parses the fixed framing of an UPDATE body into its four fields.
fn update_fields(body: &[u8]) -> Result<UpdateFields<'_>, DecodeError> {
    let overrun = |reason| {
        DecodeError::update_fatal(reason, UpdateSubcode::MalformedAttributeList, Bytes::new())
    };
    let (rest, withdrawn) = nom::multi::length_data::<_, (), _>(be_u16)
        .parse(body)
        .map_err(|_| overrun(Reason::WithdrawnLengthOverrun))?;
    let (nlri, attrs) = nom::multi::length_data::<_, (), _>(be_u16)
        .parse(rest)
        .map_err(|_| overrun(Reason::TotalAttributeLengthOverrun))?;
    Ok((withdrawn, attrs, nlri))
}

fn nlri_error(
    field: NlriField,
    afi: Afi,
    data: &[u8],
    add_path: bool,
    out: &mut Vec<Nlri>,
) -> Result<(), DecodeError> {
    decode_nlri(data, afi, add_path, out).map_err(|error| {
        let subcode = match field {
            NlriField::Withdrawn | NlriField::Nlri => UpdateSubcode::InvalidNetworkField,
            NlriField::MpReach | NlriField::MpUnreach => UpdateSubcode::OptionalAttributeError,
        };
        DecodeError::update_fatal(Reason::InvalidNlri { field, error }, subcode, Bytes::new())
    })
}

/// State collected while walking the path attributes of one UPDATE.
#[derive(Default)]
struct AttrState {
    attrs: PathAttributes,
    mp_reach: Option<MpReach>,
    mp_unreach: Option<MpUnreach>,
    as4_path: Option<AsPath>,
    as4_aggregator: Option<Aggregator>,
    /// Type codes seen (valid or not), for duplicate and missing-attribute checks.
    seen: [u64; 4],
    /// Type codes already reported as duplicates.
    duplicate: [u64; 4],
    errors: Vec<DecodeError>,
}

impl AttrState {
    fn mark_seen(&mut self, t: u8) -> bool {
        let (w, b) = (usize::from(t / 64), t % 64);
        let was = self.seen[w] & (1 << b) != 0;
        self.seen[w] |= 1 << b;
        was
    }

    /// Marks `t` as reported duplicate; true when it already was.
    fn mark_duplicate(&mut self, t: u8) -> bool {
        let (w, b) = (usize::from(t / 64), t % 64);
        let was = self.duplicate[w] & (1 << b) != 0;
        self.duplicate[w] |= 1 << b;
        was
    }

    fn was_seen(&self, t: AttributeType) -> bool {
        let t = u8::from(t);
        self.seen[usize::from(t / 64)] & (1 << (t % 64)) != 0
    }
}

/// Optional/transitive bits each recognised attribute must carry (RFC 4271 §5, RFC 7606 §3 c).
fn expected_flags(t: AttributeType) -> Option<u8> {
    use AttributeType as T;
    const WELL_KNOWN: u8 = flags::TRANSITIVE;
    const OPT_TRANS: u8 = flags::OPTIONAL | flags::TRANSITIVE;
    const OPT_NON_TRANS: u8 = flags::OPTIONAL;
    Some(match t {
        T::Origin | T::AsPath | T::NextHop | T::LocalPref | T::AtomicAggregate => WELL_KNOWN,
        T::MultiExitDisc | T::OriginatorId | T::ClusterList | T::MpReachNlri | T::MpUnreachNlri => {
            OPT_NON_TRANS
        }
        T::Aggregator
        | T::Communities
        | T::ExtendedCommunities
        | T::As4Path
        | T::As4Aggregator
        | T::LargeCommunities
        | T::OnlyToCustomer => OPT_TRANS,
        _ => return None,
    })
}

/// How RFC 7606 §7 (and RFC 6793 §6, RFC 8092 §6, RFC 9234 §5) handle a malformed attribute.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Handling {
    SessionReset,
    TreatAsWithdraw,
    Discard,
}

fn handling(t: AttributeType) -> Handling {
    use AttributeType as T;
    match t {
        T::MpReachNlri | T::MpUnreachNlri => Handling::SessionReset,
        T::AtomicAggregate | T::Aggregator | T::As4Path | T::As4Aggregator => Handling::Discard,
        _ => Handling::TreatAsWithdraw,
    }
}

fn decode_update(msg: &Bytes, ctx: &DecodeContext) -> Result<Decoded, DecodeError> {
    let body = &msg[HEADER_LEN..];
    let (withdrawn_field, attr_field, nlri_field) = update_fields(body)?;

    let mut withdrawn = Vec::new();
    nlri_error(
        NlriField::Withdrawn,
        Afi::Ipv4,
        withdrawn_field,
        ctx.add_path.ipv4_unicast,
        &mut withdrawn,
    )?;
    let mut nlri = Vec::new();
    nlri_error(
        NlriField::Nlri,
        Afi::Ipv4,
        nlri_field,
        ctx.add_path.ipv4_unicast,
        &mut nlri,
    )?;

    let mut st = AttrState::default();
    let mut rest = attr_field;
    while !rest.is_empty() {
        let Some((attr_flags, type_code, value, whole, next)) = attribute_header(rest) else {
            // RFC 7606 §4: an attribute overrunning the field is treat-as-withdraw; the Total
            // Path Attribute Length still locates the NLRI field.
            st.errors.push(DecodeError::treat_as_withdraw(
                Reason::AttributeOverrun,
                UpdateSubcode::MalformedAttributeList,
                Bytes::new(),
            ));
            break;
        };
        rest = next;
        decode_attribute(msg, ctx, &mut st, attr_flags, type_code, value, whole)?;
    }

    merge_as4(ctx, &mut st);

    // RFC 7606 §3 d: missing well-known mandatory attributes, only when there is NLRI.
    let has_mp_nlri = st.mp_reach.as_ref().is_some_and(|m| !m.nlri.is_empty());
    if !nlri.is_empty() || has_mp_nlri {
        let required = [
            AttributeType::Origin,
            AttributeType::AsPath,
            AttributeType::NextHop,
        ];
        // NEXT_HOP is required only with NLRI in the NLRI field.
        let n = if nlri.is_empty() { 2 } else { 3 };
        for t in required.into_iter().take(n) {
            if !st.was_seen(t) {
                st.errors.push(DecodeError::treat_as_withdraw(
                    Reason::MissingWellKnown(t),
                    UpdateSubcode::MissingWellKnownAttribute,
                    Bytes::copy_from_slice(&[u8::from(t)]),
                ));
            }
        }
    }

    let update = Update {
        withdrawn,
        attributes: st.attrs,
        nlri,
        mp_reach: st.mp_reach,
        mp_unreach: st.mp_unreach,
    };
    let mut errors = st.errors;
    settle_errors(&update, &mut errors);
    Ok(Decoded {
        message: Message::Update(update),
        errors,
    })
}

/// Fills the NLRI of treat-as-withdraw errors (RFC 7606 §5: the NLRI field and
/// MP_REACH_NLRI) and puts the strongest action first (RFC 7606 §3 j).
fn settle_errors(update: &Update, errors: &mut [DecodeError]) {
    if errors
        .iter()
        .any(|e| matches!(e.action, Action::TreatAsWithdraw { .. }))
    {
        let all: Arc<[Nlri]> = update.announced().copied().collect();
        for e in errors.iter_mut() {
            if let Action::TreatAsWithdraw { withdraw } = &mut e.action {
                *withdraw = all.clone();
            }
        }
    }
    errors.sort_by_key(|e| std::cmp::Reverse(e.action.severity()));
}

impl Decoded {
    /// Applies the RFC 7606 rules that depend on the peer being external, which the decoder
    /// cannot know: call it for UPDATEs from eBGP peers.
    ///
    /// * §7.5: LOCAL_PREF from an external peer is discarded (attribute discard);
    /// * §7.2 / RFC 5065 §5.4: AS_CONFED_SEQUENCE/AS_CONFED_SET from a peer outside our
    ///   confederation (`same_confederation == false`) make the UPDATE treat-as-withdraw;
    /// * RFC 4271 §6.3: when `peer_as` is given (the usual "enforce first AS"; route servers
    ///   do not prepend theirs), an AS_PATH not starting with it is a Malformed AS_PATH,
    ///   treat-as-withdraw per §7.2.
    pub fn apply_external_peer_rules(&mut self, peer_as: Option<u32>, same_confederation: bool) {
        let Message::Update(update) = &mut self.message else {
            return;
        };
        let a = &mut update.attributes;
        if a.local_pref.take().is_some() {
            self.errors.push(DecodeError::attribute_discard(
                Reason::LocalPrefFromExternalPeer,
                UpdateSubcode::MalformedAttributeList,
                Bytes::new(),
                AttributeType::LocalPref,
            ));
        }
        let has_nlri = update.announced().next().is_some();
        if let (Some(path), true) = (&update.attributes.as_path, has_nlri) {
            let confed = path.segments.iter().any(|s| is_confed(s.kind));
            if confed && !same_confederation {
                self.errors.push(DecodeError::treat_as_withdraw(
                    Reason::MalformedAsPath(AttributeType::AsPath),
                    UpdateSubcode::MalformedAsPath,
                    Bytes::new(),
                ));
            } else if let Some(peer) = peer_as
                && !same_confederation
                && path.first_as() != Some(peer)
            {
                self.errors.push(DecodeError::treat_as_withdraw(
                    Reason::FirstAsMismatch {
                        expected: peer,
                        found: path.first_as(),
                    },
                    UpdateSubcode::MalformedAsPath,
                    Bytes::new(),
                ));
            }
        }
        settle_errors(update, &mut self.errors);
    }
}

/// Splits one attribute off `i`: (flags, type, value, whole attribute, rest), or `None` on
/// overrun.
fn attribute_header(i: &[u8]) -> Option<AttributeParts<'_>> {
    let (r, (attr_flags, type_code)) = (be_u8::<_, ()>, be_u8).parse(i).ok()?;
    let (r, len) = if attr_flags & flags::EXTENDED_LENGTH != 0 {
        be_u16::<_, ()>(r).ok()?
    } else {
        be_u8::<_, ()>(r).map(|(r, l)| (r, u16::from(l))).ok()?
    };
    let (next, value) = take::<_, _, ()>(len).parse(r).ok()?;
    let whole = &i[..i.len() - next.len()];
    Some((attr_flags, type_code, value, whole, next))
}

/// What went wrong with an attribute, before RFC 7606 decides the action.
struct Fault {
    reason: Reason,
    subcode: UpdateSubcode,
}

fn fault(reason: Reason, subcode: UpdateSubcode) -> Fault {
    Fault { reason, subcode }
}

fn length_fault(t: AttributeType, v: &[u8]) -> Fault {
    fault(
        Reason::AttributeLength {
            attribute: t,
            length: v.len().min(usize::from(u16::MAX)) as u16,
        },
        UpdateSubcode::AttributeLengthError,
    )
}

fn be32(v: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(v.try_into().ok()?))
}

fn decode_attribute(
    msg: &Bytes,
    ctx: &DecodeContext,
    st: &mut AttrState,
    attr_flags: u8,
    type_code: u8,
    v: &[u8],
    whole: &[u8],
) -> Result<(), DecodeError> {
    use AttributeType as T;
    let t = AttributeType::from(type_code);
    if st.mark_seen(type_code) {
        // RFC 7606 §3 g: a repeated MP attribute resets the session; any other repeat is
        // discarded, keeping the first.
        if matches!(t, T::MpReachNlri | T::MpUnreachNlri) {
            return Err(DecodeError::update_fatal(
                Reason::DuplicateAttribute(t),
                UpdateSubcode::MalformedAttributeList,
                Bytes::new(),
            ));
        }
        // One report per type code: thousands of repeats must not become thousands of errors.
        if st.mark_duplicate(type_code) {
            return Ok(());
        }
        st.errors.push(DecodeError::attribute_discard(
            Reason::DuplicateAttribute(t),
            UpdateSubcode::MalformedAttributeList,
            Bytes::new(),
            t,
        ));
        return Ok(());
    }

    let Some(expected) = expected_flags(t) else {
        // Kept as bytes, but RFC 7606 §7.15 (RFC 5701) still checks its length.
        if t == T::Ipv6ExtendedCommunities && (v.is_empty() || !v.len().is_multiple_of(20)) {
            st.errors.push(DecodeError::treat_as_withdraw(
                Reason::AttributeLength {
                    attribute: t,
                    length: v.len().min(usize::from(u16::MAX)) as u16,
                },
                UpdateSubcode::AttributeLengthError,
                msg.slice_ref(whole),
            ));
            return Ok(());
        }
        return unknown_attribute(msg, st, attr_flags, type_code, v, whole);
    };
    let result = if attr_flags & (flags::OPTIONAL | flags::TRANSITIVE) != expected {
        Err(fault(
            Reason::AttributeFlags {
                attribute: t,
                flags: attr_flags,
            },
            UpdateSubcode::AttributeFlagsError,
        ))
    } else {
        decode_known(ctx, st, t, v)
    };
    let Err(Fault { reason, subcode }) = result else {
        return Ok(());
    };
    let data = msg.slice_ref(whole);
    match handling(t) {
        Handling::SessionReset => Err(DecodeError::update_fatal(reason, subcode, data)),
        Handling::TreatAsWithdraw => {
            st.errors
                .push(DecodeError::treat_as_withdraw(reason, subcode, data));
            Ok(())
        }
        Handling::Discard => {
            st.errors
                .push(DecodeError::attribute_discard(reason, subcode, data, t));
            Ok(())
        }
    }
}

fn unknown_attribute(
    msg: &Bytes,
    st: &mut AttrState,
    attr_flags: u8,
    type_code: u8,
    v: &[u8],
    whole: &[u8],
) -> Result<(), DecodeError> {
    if attr_flags & flags::OPTIONAL == 0 {
        // RFC 4271 §6.3: an unrecognised well-known attribute resets the session.
        return Err(DecodeError::update_fatal(
            Reason::UnrecognizedWellKnown(type_code),
            UpdateSubcode::UnrecognizedWellKnownAttribute,
            msg.slice_ref(whole),
        ));
    }
    if attr_flags & flags::TRANSITIVE != 0 {
        st.attrs.unknown.push(RawAttribute {
            flags: attr_flags & !flags::EXTENDED_LENGTH,
            type_code,
            value: msg.slice_ref(v),
        });
    }
    // Unrecognised optional non-transitive attributes are quietly ignored (RFC 4271 §9).
    Ok(())
}

fn decode_known(
    ctx: &DecodeContext,
    st: &mut AttrState,
    t: AttributeType,
    v: &[u8],
) -> Result<(), Fault> {
    use AttributeType as T;
    let a = &mut st.attrs;
    match t {
        T::Origin => {
            let [o] = *v else {
                return Err(length_fault(t, v));
            };
            if o > 2 {
                return Err(fault(
                    Reason::InvalidOrigin(o),
                    UpdateSubcode::InvalidOriginAttribute,
                ));
            }
            a.origin = Some(o.into());
        }
        T::AsPath => {
            let asn_len = if ctx.four_octet_as { 4 } else { 2 };
            let path = decode_as_path(v, asn_len)
                .ok_or_else(|| fault(Reason::MalformedAsPath(t), UpdateSubcode::MalformedAsPath))?;
            a.as_path = Some(path);
        }
        T::NextHop => {
            let nh = Ipv4Addr::from(be32(v).ok_or_else(|| length_fault(t, v))?);
            // RFC 4271 §6.3 syntactic check: not a usable unicast address.
            if nh.is_unspecified() || nh.is_multicast() || nh.is_broadcast() {
                return Err(fault(
                    Reason::InvalidNextHop(nh),
                    UpdateSubcode::InvalidNextHopAttribute,
                ));
            }
            a.next_hop = Some(nh);
        }
        T::MultiExitDisc => a.med = Some(be32(v).ok_or_else(|| length_fault(t, v))?),
        T::LocalPref => a.local_pref = Some(be32(v).ok_or_else(|| length_fault(t, v))?),
        T::AtomicAggregate => {
            if !v.is_empty() {
                return Err(length_fault(t, v));
            }
            a.atomic_aggregate = true;
        }
        T::Aggregator => {
            a.aggregator = Some(match (ctx.four_octet_as, v.len()) {
                (true, 8) => Aggregator {
                    asn: be32(&v[..4]).unwrap_or(0),
                    address: be32(&v[4..]).unwrap_or(0).into(),
                },
                (false, 6) => Aggregator {
                    asn: u32::from(u16::from_be_bytes([v[0], v[1]])),
                    address: be32(&v[2..]).unwrap_or(0).into(),
                },
                _ => return Err(length_fault(t, v)),
            });
        }
        T::Communities => {
            if v.is_empty() || !v.len().is_multiple_of(4) {
                return Err(length_fault(t, v));
            }
            a.communities = v
                .chunks_exact(4)
                .map(|c| Community(u32::from_be_bytes([c[0], c[1], c[2], c[3]])))
                .collect();
        }
        T::OriginatorId => {
            a.originator_id = Some(be32(v).ok_or_else(|| length_fault(t, v))?.into())
        }
        T::ClusterList => {
            if v.is_empty() || !v.len().is_multiple_of(4) {
                return Err(length_fault(t, v));
            }
            a.cluster_list = v
                .chunks_exact(4)
                .map(|c| Ipv4Addr::new(c[0], c[1], c[2], c[3]))
                .collect();
        }
        T::ExtendedCommunities => {
            if !v.len().is_multiple_of(8) {
                return Err(length_fault(t, v));
            }
            a.extended_communities = v
                .chunks_exact(8)
                .map(|c| ExtendedCommunity([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                .collect();
        }
        T::LargeCommunities => {
            if v.is_empty() || !v.len().is_multiple_of(12) {
                return Err(length_fault(t, v));
            }
            a.large_communities = v
                .chunks_exact(12)
                .map(|c| LargeCommunity {
                    global_admin: u32::from_be_bytes([c[0], c[1], c[2], c[3]]),
                    local_data_1: u32::from_be_bytes([c[4], c[5], c[6], c[7]]),
                    local_data_2: u32::from_be_bytes([c[8], c[9], c[10], c[11]]),
                })
                .collect();
        }
        T::OnlyToCustomer => a.otc = Some(be32(v).ok_or_else(|| length_fault(t, v))?),
        // RFC 6793 §4.1: a NEW speaker ignores AS4_PATH from another NEW speaker (`_` arm).
        T::As4Path if !ctx.four_octet_as => {
            let path = decode_as_path(v, 4)
                .filter(|p| !p.segments.iter().any(|s| is_confed(s.kind)))
                .ok_or_else(|| {
                    fault(
                        Reason::MalformedAsPath(t),
                        UpdateSubcode::OptionalAttributeError,
                    )
                })?;
            st.as4_path = Some(path);
        }
        T::As4Aggregator => {
            if v.len() != 8 {
                return Err(length_fault(t, v));
            }
            if !ctx.four_octet_as {
                st.as4_aggregator = Some(Aggregator {
                    asn: be32(&v[..4]).unwrap_or(0),
                    address: be32(&v[4..]).unwrap_or(0).into(),
                });
            }
        }
        T::MpReachNlri => decode_mp_reach(ctx, st, v)?,
        T::MpUnreachNlri => decode_mp_unreach(ctx, st, v)?,
        _ => {}
    }
    Ok(())
}

/// AS_PATH/AS4_PATH segments; `None` when malformed (RFC 7606 §7.2: overrun, zero-length or
/// unknown segment type).
fn decode_as_path(mut v: &[u8], asn_len: usize) -> Option<AsPath> {
    let mut segments = InlineVec::new();
    while !v.is_empty() {
        let (r, (kind, count)) = (be_u8::<_, ()>, be_u8).parse(v).ok()?;
        let kind = SegmentType::from(kind);
        if matches!(kind, SegmentType::Unknown(_)) || count == 0 {
            return None;
        }
        let (r, raw) = take::<_, _, ()>(usize::from(count) * asn_len)
            .parse(r)
            .ok()?;
        let asns = if asn_len == 4 {
            raw.chunks_exact(4)
                .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
                .collect()
        } else {
            raw.chunks_exact(2)
                .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
                .collect()
        };
        segments.push(AsSegment { kind, asns });
        v = r;
    }
    Some(AsPath { segments })
}

fn mp_fault(t: AttributeType) -> Fault {
    fault(
        Reason::MalformedMpAttribute(t),
        UpdateSubcode::OptionalAttributeError,
    )
}

fn decode_mp_reach(ctx: &DecodeContext, st: &mut AttrState, v: &[u8]) -> Result<(), Fault> {
    let t = AttributeType::MpReachNlri;
    let parsed: PResult<'_, (u16, u8, &[u8], u8)> =
        (be_u16, be_u8, nom::multi::length_data(be_u8), be_u8).parse(v);
    let (nlri, (afi, safi, nh, _reserved)) = parsed.map_err(|_| mp_fault(t))?;
    let family = Family::new(afi, safi);
    if !family.is_supported() {
        return unsupported_family(st, t, family);
    }
    let v6 = |b: &[u8]| <[u8; 16]>::try_from(b).map(Ipv6Addr::from).ok();
    // RFC 4760 §3, RFC 2545 §3, RFC 8950 §3: the length tells the next hop's form.
    let next_hop = match (family.afi, nh.len()) {
        (Afi::Ipv4, 4) => NextHop::V4(be32(nh).map(Ipv4Addr::from).ok_or_else(|| mp_fault(t))?),
        (_, 16) => NextHop::V6 {
            global: v6(nh).ok_or_else(|| mp_fault(t))?,
            link_local: None,
        },
        (_, 32) => NextHop::V6 {
            global: v6(&nh[..16]).ok_or_else(|| mp_fault(t))?,
            link_local: Some(v6(&nh[16..]).ok_or_else(|| mp_fault(t))?),
        },
        _ => return Err(mp_fault(t)),
    };
    let mut out = Vec::new();
    decode_nlri(nlri, family.afi, ctx.add_path.enabled(family), &mut out).map_err(|error| {
        fault(
            Reason::InvalidNlri {
                field: NlriField::MpReach,
                error,
            },
            UpdateSubcode::OptionalAttributeError,
        )
    })?;
    st.attrs.mp_next_hop = Some(next_hop);
    st.mp_reach = Some(MpReach { family, nlri: out });
    Ok(())
}

fn decode_mp_unreach(ctx: &DecodeContext, st: &mut AttrState, v: &[u8]) -> Result<(), Fault> {
    let t = AttributeType::MpUnreachNlri;
    let (withdrawn, (afi, safi)) = (be_u16::<_, ()>, be_u8).parse(v).map_err(|_| mp_fault(t))?;
    let family = Family::new(afi, safi);
    if !family.is_supported() {
        // Nothing of another family can be withdrawn here; record it and carry on.
        st.errors.push(DecodeError::attribute_discard(
            Reason::UnsupportedFamily {
                attribute: t,
                family,
            },
            UpdateSubcode::OptionalAttributeError,
            Bytes::new(),
            t,
        ));
        return Ok(());
    }
    let mut out = Vec::new();
    decode_nlri(
        withdrawn,
        family.afi,
        ctx.add_path.enabled(family),
        &mut out,
    )
    .map_err(|error| {
        fault(
            Reason::InvalidNlri {
                field: NlriField::MpUnreach,
                error,
            },
            UpdateSubcode::OptionalAttributeError,
        )
    })?;
    st.mp_unreach = Some(MpUnreach {
        family,
        withdrawn: out,
    });
    Ok(())
}

/// MP_REACH_NLRI of a family this crate does not parse: dropped, reported as discarded.
fn unsupported_family(st: &mut AttrState, t: AttributeType, family: Family) -> Result<(), Fault> {
    st.errors.push(DecodeError::attribute_discard(
        Reason::UnsupportedFamily {
            attribute: t,
            family,
        },
        UpdateSubcode::OptionalAttributeError,
        Bytes::new(),
        t,
    ));
    Ok(())
}

/// RFC 6793 §4.2.3: on a 2-octet session, rebuild the 4-octet AS_PATH and AGGREGATOR.
fn merge_as4(ctx: &DecodeContext, st: &mut AttrState) {
    if ctx.four_octet_as {
        return;
    }
    let as4_path = st.as4_path.take();
    let as4_aggregator = st.as4_aggregator.take();
    if let (Some(agg), Some(a4)) = (&mut st.attrs.aggregator, as4_aggregator) {
        if agg.asn != u32::from(AS_TRANS) {
            // An OLD speaker aggregated after the AS4 attributes were added: both are stale
            // and AS_PATH/AGGREGATOR are taken as they are.
            return;
        }
        *agg = a4;
    }
    let (Some(as4), Some(path)) = (as4_path, st.attrs.as_path.as_mut()) else {
        return;
    };
    let count = |p: &AsPath| p.path_len();
    let (n, n4) = (count(path), count(&as4));
    if n < n4 {
        return; // RFC 6793 §4.2.3: AS4_PATH longer than AS_PATH is ignored.
    }
    // Keep the leading (n - n4) ASes of AS_PATH (confederation segments always kept), then
    // append AS4_PATH.
    let mut keep = n - n4;
    let mut merged = Vec::with_capacity(path.segments.len() + as4.segments.len());
    for seg in path.segments.drain(..) {
        match seg.kind {
            SegmentType::ConfedSequence | SegmentType::ConfedSet => merged.push(seg),
            SegmentType::AsSet if keep > 0 => {
                keep -= 1;
                merged.push(seg);
            }
            SegmentType::AsSequence if keep > 0 => {
                let take = keep.min(seg.asns.len());
                keep -= take;
                merged.push(AsSegment {
                    kind: seg.kind,
                    asns: seg.asns[..take].into(),
                });
            }
            _ => {}
        }
    }
    merged.extend(as4.segments);
    path.segments = merged.into();
}
