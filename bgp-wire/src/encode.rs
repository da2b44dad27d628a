//! Encoding messages into `BytesMut` (the mirror of [`decode`](crate::Message::decode)).
//!
//! Path attributes are written in ascending type code order (RFC 4271 §5), unknown optional
//! transitive attributes with the Partial bit set (RFC 4271 §5), and on 2-octet AS sessions
//! AS_PATH/AGGREGATOR get AS_TRANS plus AS4_PATH/AS4_AGGREGATOR (RFC 6793 §4.2.2).

use bytes::{BufMut, BytesMut};

use crate::attribute::{AsPath, MpReach, MpUnreach, NextHop, PathAttributes, flags, is_confed};
use crate::capability::Capability;
use crate::context::{EncodeContext, MAX_MESSAGE_LEN};
use crate::error::EncodeError;
use crate::iana::{Afi, AttributeType, MessageType, ParameterType, asn::AS_TRANS};
use crate::message::{Message, Notification, Open, RouteRefresh, Update};
use crate::nlri::{Family, Nlri, encode_nlri};

const WELL_KNOWN: u8 = flags::TRANSITIVE;
const OPT_TRANS: u8 = flags::OPTIONAL | flags::TRANSITIVE;
const OPT_NON_TRANS: u8 = flags::OPTIONAL;

impl Message {
    /// Appends this message to `out`. On error `out` is left as it was.
    pub fn encode(&self, ctx: &EncodeContext, out: &mut BytesMut) -> Result<(), EncodeError> {
        match self {
            Self::Open(m) => m.encode(out),
            Self::Update(m) => m.encode(ctx, out),
            Self::Notification(m) => m.encode(ctx, out),
            Self::Keepalive => {
                encode_keepalive(out);
                Ok(())
            }
            Self::RouteRefresh(m) => {
                m.encode(out);
                Ok(())
            }
        }
    }
}

/// Appends a KEEPALIVE (RFC 4271 §4.4).
pub fn encode_keepalive(out: &mut BytesMut) {
    let start = begin(out, MessageType::Keepalive);
    finish_unchecked(out, start);
}

/// Writes the header with a zero length; returns where the message starts.
#[inline]
pub(crate) fn begin(out: &mut BytesMut, kind: MessageType) -> usize {
    let start = out.len();
    out.put_slice(&[0xff; 16]);
    out.put_u16(0);
    out.put_u8(kind.into());
    start
}

/// Patches the length of the message begun at `start` (caller checked the size).
#[inline]
pub(crate) fn finish_unchecked(out: &mut BytesMut, start: usize) {
    let len = (out.len() - start) as u16;
    out[start + 16..start + 18].copy_from_slice(&len.to_be_bytes());
}

/// Patches the length, or removes the message and fails when it exceeds `max`.
fn finish(out: &mut BytesMut, start: usize, max: usize) -> Result<(), EncodeError> {
    let length = out.len() - start;
    if length > max {
        out.truncate(start);
        return Err(EncodeError::TooLong { length, max });
    }
    finish_unchecked(out, start);
    Ok(())
}

// ===== OPEN =====

impl Open {
    /// Appends this OPEN. Capabilities go in one Capabilities parameter; the RFC 9072
    /// extended format is used only when the parameters exceed 255 octets.
    pub fn encode(&self, out: &mut BytesMut) -> Result<(), EncodeError> {
        let mut caps = BytesMut::new();
        for cap in &self.capabilities {
            encode_capability(cap, &mut caps)?;
        }
        let start = begin(out, MessageType::Open);
        out.put_u8(4);
        out.put_u16(self.my_as);
        out.put_u16(self.hold_time);
        out.put_slice(&self.bgp_id.octets());
        let cap_param = u8::from(ParameterType::Capabilities);
        if caps.is_empty() {
            out.put_u8(0);
        } else if caps.len() + 2 <= 255 {
            out.put_u8((caps.len() + 2) as u8);
            out.put_u8(cap_param);
            out.put_u8(caps.len() as u8);
            out.put_slice(&caps);
        } else {
            let ext = u8::from(ParameterType::ExtendedLength);
            let params_len = caps.len() + 3;
            if params_len > usize::from(u16::MAX) {
                out.truncate(start);
                return Err(EncodeError::TooLong {
                    length: params_len,
                    max: usize::from(u16::MAX),
                });
            }
            out.put_u8(ext);
            out.put_u8(ext);
            out.put_u16(params_len as u16);
            out.put_u8(cap_param);
            out.put_u16(caps.len() as u16);
            out.put_slice(&caps);
        }
        finish(out, start, MAX_MESSAGE_LEN)
    }
}

fn put_family(out: &mut BytesMut, f: Family) {
    out.put_u16(f.afi.into());
    out.put_u8(f.safi.into());
}

fn encode_capability(cap: &Capability, out: &mut BytesMut) -> Result<(), EncodeError> {
    out.put_u8(cap.code().into());
    let len_at = out.len();
    out.put_u8(0);
    match cap {
        Capability::Multiprotocol(f) => {
            out.put_u16(f.afi.into());
            out.put_u8(0);
            out.put_u8(f.safi.into());
        }
        Capability::RouteRefresh
        | Capability::ExtendedMessage
        | Capability::EnhancedRouteRefresh => {}
        Capability::ExtendedNextHop(list) => {
            for e in list {
                out.put_u16(e.nlri_afi);
                out.put_u16(e.nlri_safi);
                out.put_u16(e.next_hop_afi);
            }
        }
        Capability::Role(r) => out.put_u8((*r).into()),
        Capability::GracefulRestart(gr) => {
            let mut head = gr.restart_time & 0x0fff;
            if gr.restart_state {
                head |= 0x8000;
            }
            if gr.notification {
                head |= 0x4000;
            }
            out.put_u16(head);
            for f in &gr.families {
                put_family(out, f.family);
                out.put_u8(if f.forwarding_preserved { 0x80 } else { 0 });
            }
        }
        Capability::FourOctetAs(asn) => out.put_u32(*asn),
        Capability::AddPath(list) => {
            for f in list {
                put_family(out, f.family);
                out.put_u8(f.mode.into());
            }
        }
        Capability::LongLivedGracefulRestart(list) => {
            for f in list {
                put_family(out, f.family);
                out.put_u8(if f.forwarding_preserved { 0x80 } else { 0 });
                out.put_slice(&f.stale_time.min(0x00ff_ffff).to_be_bytes()[1..]);
            }
        }
        Capability::Fqdn { hostname, domain } => {
            for part in [hostname, domain] {
                let n = part.len().min(255);
                out.put_u8(n as u8);
                out.put_slice(&part[..n]);
            }
        }
        Capability::Unknown { value, .. } => out.put_slice(value),
    }
    let len = out.len() - len_at - 1;
    if len > 255 {
        return Err(EncodeError::TooLong {
            length: len,
            max: 255,
        });
    }
    out[len_at] = len as u8;
    Ok(())
}

// ===== NOTIFICATION, ROUTE-REFRESH =====

impl Notification {
    /// Appends this NOTIFICATION; fails when the data exceeds the message size.
    pub fn encode(&self, ctx: &EncodeContext, out: &mut BytesMut) -> Result<(), EncodeError> {
        let start = begin(out, MessageType::Notification);
        out.put_u8(self.code.into());
        out.put_u8(self.subcode);
        out.put_slice(&self.data);
        finish(out, start, ctx.max_message_len())
    }
}

impl RouteRefresh {
    /// Appends this ROUTE-REFRESH (RFC 2918 §3, RFC 7313 §3.2).
    pub fn encode(&self, out: &mut BytesMut) {
        let start = begin(out, MessageType::RouteRefresh);
        out.put_u16(self.family.afi.into());
        out.put_u8(self.subtype.into());
        out.put_u8(self.family.safi.into());
        finish_unchecked(out, start);
    }
}

// ===== UPDATE =====

impl Update {
    /// Appends this UPDATE; fails (leaving `out` unchanged) when it exceeds the negotiated
    /// maximum size — use [`UpdatePacker`](crate::UpdatePacker) to split large sets.
    pub fn encode(&self, ctx: &EncodeContext, out: &mut BytesMut) -> Result<(), EncodeError> {
        let start = out.len();
        let r = self.encode_inner(ctx, out);
        if r.is_err() {
            out.truncate(start);
        }
        r
    }

    fn encode_inner(&self, ctx: &EncodeContext, out: &mut BytesMut) -> Result<(), EncodeError> {
        check_family(&self.withdrawn, Afi::Ipv4)?;
        check_family(&self.nlri, Afi::Ipv4)?;
        let start = begin(out, MessageType::Update);
        let v4_add_path = ctx.add_path.ipv4_unicast;
        let wlen_at = out.len();
        out.put_u16(0);
        encode_nlri(&self.withdrawn, v4_add_path, out);
        patch_u16(out, wlen_at)?;
        let alen_at = out.len();
        out.put_u16(0);
        encode_attributes(&self.attributes, ctx, AttrPart::Low, true, out);
        if let Some(mp) = &self.mp_reach {
            let nh = self
                .attributes
                .mp_next_hop
                .ok_or(EncodeError::MissingMpNextHop)?;
            encode_mp_reach(mp, &nh, ctx, out)?;
        }
        if let Some(mp) = &self.mp_unreach {
            encode_mp_unreach(mp, ctx, out)?;
        }
        encode_attributes(&self.attributes, ctx, AttrPart::High, true, out);
        patch_u16(out, alen_at)?;
        encode_nlri(&self.nlri, v4_add_path, out);
        finish(out, start, ctx.max_message_len())
    }
}

fn check_family(nlri: &[Nlri], afi: Afi) -> Result<(), EncodeError> {
    match nlri.iter().find(|n| n.prefix.afi() != afi) {
        Some(n) => Err(EncodeError::WrongFamily(n.prefix)),
        None => Ok(()),
    }
}

/// Writes the length of the field that starts (with its 2-octet length) at `at`.
fn patch_u16(out: &mut BytesMut, at: usize) -> Result<(), EncodeError> {
    let len = out.len() - at - 2;
    if len > usize::from(u16::MAX) {
        return Err(EncodeError::TooLong {
            length: len,
            max: usize::from(u16::MAX),
        });
    }
    out[at..at + 2].copy_from_slice(&(len as u16).to_be_bytes());
    Ok(())
}

/// Attribute header; the Extended Length form only when the value needs it.
#[inline]
pub(crate) fn attr_header(out: &mut BytesMut, attr_flags: u8, t: AttributeType, len: usize) {
    let attr_flags = attr_flags & !flags::EXTENDED_LENGTH;
    if len > 255 {
        out.put_u8(attr_flags | flags::EXTENDED_LENGTH);
        out.put_u8(t.into());
        out.put_u16(len.min(usize::from(u16::MAX)) as u16);
    } else {
        out.put_u8(attr_flags);
        out.put_u8(t.into());
        out.put_u8(len as u8);
    }
}

/// The path attributes on either side of MP_REACH_NLRI/MP_UNREACH_NLRI (types 14, 15), so
/// callers can put the MP attributes in ascending order between them.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum AttrPart {
    /// Type codes below 14.
    Low,
    /// Type codes above 15.
    High,
}

/// Appends the attributes of `part` in ascending type order; NEXT_HOP only if `next_hop`.
pub(crate) fn encode_attributes(
    a: &PathAttributes,
    ctx: &EncodeContext,
    part: AttrPart,
    next_hop: bool,
    out: &mut BytesMut,
) {
    use AttributeType as T;
    const LOW: [AttributeType; 10] = [
        T::Origin,
        T::AsPath,
        T::NextHop,
        T::MultiExitDisc,
        T::LocalPref,
        T::AtomicAggregate,
        T::Aggregator,
        T::Communities,
        T::OriginatorId,
        T::ClusterList,
    ];
    const HIGH: [AttributeType; 5] = [
        T::ExtendedCommunities,
        T::As4Path,
        T::As4Aggregator,
        T::LargeCommunities,
        T::OnlyToCustomer,
    ];
    let known: &[AttributeType] = match part {
        AttrPart::Low => &LOW,
        AttrPart::High => &HIGH,
    };
    if a.unknown.is_empty() {
        // The usual case: no unrecognised attributes to merge in.
        for &t in known {
            encode_known(a, ctx, t, next_hop, out);
        }
        return;
    }
    let in_part = |t: u8| match part {
        AttrPart::Low => t < 14,
        AttrPart::High => t > 15,
    };
    // Unknown attributes merged in by type code; sorting indices avoids cloning values.
    let mut unknown: Vec<usize> = (0..a.unknown.len())
        .filter(|&i| in_part(a.unknown[i].type_code))
        .collect();
    unknown.sort_by_key(|&i| a.unknown[i].type_code);
    let mut unknown = unknown.into_iter().peekable();
    for &t in known {
        let code = u8::from(t);
        while let Some(&i) = unknown.peek() {
            if a.unknown[i].type_code > code {
                break;
            }
            put_unknown(a, i, out);
            unknown.next();
        }
        encode_known(a, ctx, t, next_hop, out);
    }
    for i in unknown {
        put_unknown(a, i, out);
    }
}

fn put_unknown(a: &PathAttributes, i: usize, out: &mut BytesMut) {
    let raw = &a.unknown[i];
    // RFC 4271 §5: a passed-on unrecognised optional transitive attribute gets Partial.
    let mut f = raw.flags | flags::OPTIONAL | flags::TRANSITIVE | flags::PARTIAL;
    f &= !flags::EXTENDED_LENGTH;
    let n = raw.value.len().min(usize::from(u16::MAX));
    attr_header(out, f, AttributeType::from(raw.type_code), n);
    out.put_slice(&raw.value[..n]);
}

fn encode_known(
    a: &PathAttributes,
    ctx: &EncodeContext,
    t: AttributeType,
    next_hop: bool,
    out: &mut BytesMut,
) {
    use AttributeType as T;
    match t {
        T::Origin => {
            if let Some(o) = a.origin {
                attr_header(out, WELL_KNOWN, t, 1);
                out.put_u8(o.into());
            }
        }
        T::AsPath => {
            if let Some(path) = &a.as_path {
                let asn_len = if ctx.four_octet_as { 4 } else { 2 };
                attr_header(out, WELL_KNOWN, t, as_path_len(path, asn_len, false));
                put_as_path(path, asn_len, false, out);
            }
        }
        T::NextHop => {
            if let (Some(nh), true) = (a.next_hop, next_hop) {
                attr_header(out, WELL_KNOWN, t, 4);
                out.put_slice(&nh.octets());
            }
        }
        T::MultiExitDisc => put_u32_attr(out, OPT_NON_TRANS, t, a.med),
        T::LocalPref => put_u32_attr(out, WELL_KNOWN, t, a.local_pref),
        T::AtomicAggregate if a.atomic_aggregate => attr_header(out, WELL_KNOWN, t, 0),
        T::Aggregator => {
            if let Some(agg) = a.aggregator {
                if ctx.four_octet_as {
                    attr_header(out, OPT_TRANS, t, 8);
                    out.put_u32(agg.asn);
                } else {
                    attr_header(out, OPT_TRANS, t, 6);
                    out.put_u16(u16::try_from(agg.asn).unwrap_or(AS_TRANS));
                }
                out.put_slice(&agg.address.octets());
            }
        }
        T::Communities => {
            put_list(out, OPT_TRANS, t, &a.communities, 4, |c, out| {
                out.put_u32(c.0)
            });
        }
        T::OriginatorId => put_u32_attr(out, OPT_NON_TRANS, t, a.originator_id.map(u32::from)),
        T::ClusterList => put_list(out, OPT_NON_TRANS, t, &a.cluster_list, 4, |c, out| {
            out.put_slice(&c.octets())
        }),
        T::ExtendedCommunities => {
            put_list(out, OPT_TRANS, t, &a.extended_communities, 8, |c, out| {
                out.put_slice(&c.0)
            });
        }
        T::As4Path => {
            // RFC 6793 §4.2.2: only towards OLD speakers, only when some AS needs 4 octets.
            if let (false, Some(path)) = (ctx.four_octet_as, &a.as_path) {
                let needs = path
                    .segments
                    .iter()
                    .any(|s| !is_confed(s.kind) && s.asns.iter().any(|&x| x > 0xffff));
                if needs {
                    attr_header(out, OPT_TRANS, t, as_path_len(path, 4, true));
                    put_as_path(path, 4, true, out);
                }
            }
        }
        T::As4Aggregator => {
            if let (false, Some(agg)) = (ctx.four_octet_as, a.aggregator)
                && agg.asn > 0xffff
            {
                attr_header(out, OPT_TRANS, t, 8);
                out.put_u32(agg.asn);
                out.put_slice(&agg.address.octets());
            }
        }
        T::LargeCommunities => put_list(out, OPT_TRANS, t, &a.large_communities, 12, |c, out| {
            out.put_u32(c.global_admin);
            out.put_u32(c.local_data_1);
            out.put_u32(c.local_data_2);
        }),
        T::OnlyToCustomer => put_u32_attr(out, OPT_TRANS, t, a.otc),
        _ => {}
    }
}

fn put_u32_attr(out: &mut BytesMut, f: u8, t: AttributeType, v: Option<u32>) {
    if let Some(v) = v {
        attr_header(out, f, t, 4);
        out.put_u32(v);
    }
}

/// A list attribute; at most 65535 octets of it are written (the rest cannot be encoded).
fn put_list<T>(
    out: &mut BytesMut,
    f: u8,
    t: AttributeType,
    items: &[T],
    size: usize,
    put: impl Fn(&T, &mut BytesMut),
) {
    if items.is_empty() {
        return;
    }
    let n = items.len().min(usize::from(u16::MAX) / size);
    attr_header(out, f, t, n * size);
    for item in &items[..n] {
        put(item, out);
    }
}

/// Segments as written: non-empty chunks of at most 255 ASes; AS4_PATH skips confederations.
fn wire_segments(path: &AsPath, as4: bool) -> impl Iterator<Item = (u8, &[u32])> {
    path.segments
        .iter()
        .filter(move |s| !(as4 && is_confed(s.kind)))
        .flat_map(|s| s.asns.chunks(255).map(move |c| (u8::from(s.kind), c)))
}

fn as_path_len(path: &AsPath, asn_len: usize, as4: bool) -> usize {
    wire_segments(path, as4)
        .map(|(_, c)| 2 + c.len() * asn_len)
        .sum()
}

fn put_as_path(path: &AsPath, asn_len: usize, as4: bool, out: &mut BytesMut) {
    for (kind, asns) in wire_segments(path, as4) {
        out.put_u8(kind);
        out.put_u8(asns.len() as u8);
        for &asn in asns {
            if asn_len == 4 {
                out.put_u32(asn);
            } else {
                out.put_u16(u16::try_from(asn).unwrap_or(AS_TRANS));
            }
        }
    }
}

fn next_hop_len(nh: &NextHop) -> usize {
    match nh {
        NextHop::V4(_) => 4,
        NextHop::V6 {
            link_local: None, ..
        } => 16,
        NextHop::V6 {
            link_local: Some(_),
            ..
        } => 32,
    }
}

/// Writes the fixed part of MP_REACH_NLRI's value (AFI, SAFI, next hop, reserved).
pub(crate) fn put_mp_reach_head(family: Family, nh: &NextHop, out: &mut BytesMut) {
    put_family(out, family);
    out.put_u8(next_hop_len(nh) as u8);
    match nh {
        NextHop::V4(a) => out.put_slice(&a.octets()),
        NextHop::V6 { global, link_local } => {
            out.put_slice(&global.octets());
            if let Some(ll) = link_local {
                out.put_slice(&ll.octets());
            }
        }
    }
    out.put_u8(0);
}

fn check_mp_family(family: Family, nlri: &[Nlri]) -> Result<(), EncodeError> {
    if !family.is_supported() {
        return Err(EncodeError::UnsupportedFamily(family));
    }
    check_family(nlri, family.afi)
}

fn encode_mp_reach(
    mp: &MpReach,
    nh: &NextHop,
    ctx: &EncodeContext,
    out: &mut BytesMut,
) -> Result<(), EncodeError> {
    check_mp_family(mp.family, &mp.nlri)?;
    let add_path = ctx.add_path.enabled(mp.family);
    let len = 5 + next_hop_len(nh) + mp.nlri.iter().map(|n| n.wire_len(add_path)).sum::<usize>();
    if len > usize::from(u16::MAX) {
        return Err(EncodeError::TooLong {
            length: len,
            max: usize::from(u16::MAX),
        });
    }
    attr_header(out, OPT_NON_TRANS, AttributeType::MpReachNlri, len);
    put_mp_reach_head(mp.family, nh, out);
    encode_nlri(&mp.nlri, add_path, out);
    Ok(())
}

fn encode_mp_unreach(
    mp: &MpUnreach,
    ctx: &EncodeContext,
    out: &mut BytesMut,
) -> Result<(), EncodeError> {
    check_mp_family(mp.family, &mp.withdrawn)?;
    let add_path = ctx.add_path.enabled(mp.family);
    let len = 3 + mp
        .withdrawn
        .iter()
        .map(|n| n.wire_len(add_path))
        .sum::<usize>();
    if len > usize::from(u16::MAX) {
        return Err(EncodeError::TooLong {
            length: len,
            max: usize::from(u16::MAX),
        });
    }
    attr_header(out, OPT_NON_TRANS, AttributeType::MpUnreachNlri, len);
    put_family(out, mp.family);
    encode_nlri(&mp.withdrawn, add_path, out);
    Ok(())
}
