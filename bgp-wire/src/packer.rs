//! Packing many prefixes into few UPDATEs (RFC 4271 §9.2, RFC 8654 for the size limit).
//!
//! The Adj-RIB-Out groups prefixes by attribute set; [`UpdatePacker::announce`] encodes the
//! set once and fills each UPDATE with as many NLRI as the negotiated maximum (4096 or 65535
//! octets) allows: IPv4 unicast in the NLRI field (or in MP_REACH_NLRI when only an
//! [`mp_next_hop`](crate::PathAttributes::mp_next_hop) is given, RFC 8950), IPv6 unicast in
//! MP_REACH_NLRI. [`UpdatePacker::withdraw`] does the same for withdrawals. Nothing is
//! allocated per prefix.

use bytes::{BufMut, BytesMut};

use crate::attribute::{NextHop, PathAttributes, flags};
use crate::context::EncodeContext;
use crate::encode::{AttrPart, begin, encode_attributes, finish_unchecked, put_mp_reach_head};
use crate::error::EncodeError;
use crate::iana::{Afi, AttributeType, MessageType};
use crate::message::Update;
use crate::nlri::{Family, Nlri, encode_nlri};

/// Splits announcements and withdrawals into UPDATEs that fit one peer's maximum size.
#[derive(Clone, Copy, Debug)]
pub struct UpdatePacker {
    ctx: EncodeContext,
}

/// MP attribute header with a 2-octet length: flags, type, length.
const MP_HEADER_LEN: usize = 4;

impl UpdatePacker {
    /// A packer for a session with this context.
    pub fn new(ctx: EncodeContext) -> Self {
        Self { ctx }
    }

    /// The context in use.
    pub fn context(&self) -> &EncodeContext {
        &self.ctx
    }

    /// Appends UPDATEs announcing every NLRI of `nlri` with the attribute set `attrs`; returns
    /// how many UPDATEs were written. IPv4 NLRI need `attrs.next_hop` (or, RFC 8950,
    /// `attrs.mp_next_hop`); IPv6 NLRI need `attrs.mp_next_hop`. On error `out` is unchanged.
    pub fn announce(
        &self,
        attrs: &PathAttributes,
        nlri: &[Nlri],
        out: &mut BytesMut,
    ) -> Result<usize, EncodeError> {
        let start = out.len();
        let r = self.announce_inner(attrs, nlri, out);
        if r.is_err() {
            out.truncate(start);
        }
        r
    }

    fn announce_inner(
        &self,
        attrs: &PathAttributes,
        nlri: &[Nlri],
        out: &mut BytesMut,
    ) -> Result<usize, EncodeError> {
        let is_v4 = |n: &&Nlri| n.prefix.afi() == Afi::Ipv4;
        let is_v6 = |n: &&Nlri| n.prefix.afi() == Afi::Ipv6;
        let v4_count = nlri.iter().filter(is_v4).count();
        // One family only (the usual case): walk the slice itself, no per-entry filtering.
        let mut count = 0;
        if v4_count == nlri.len() {
            count += self.announce_v4(attrs, nlri.iter(), out)?;
        } else if v4_count == 0 {
            count += self.announce_v6(attrs, nlri.iter(), out)?;
        } else {
            count += self.announce_v4(attrs, nlri.iter().filter(is_v4), out)?;
            count += self.announce_v6(attrs, nlri.iter().filter(is_v6), out)?;
        }
        Ok(count)
    }

    fn announce_v4<'a>(
        &self,
        attrs: &PathAttributes,
        nlri: impl Iterator<Item = &'a Nlri> + Clone,
        out: &mut BytesMut,
    ) -> Result<usize, EncodeError> {
        if nlri.clone().next().is_none() {
            return Ok(0);
        }
        match (attrs.next_hop, attrs.mp_next_hop) {
            (None, Some(nh)) => self.announce_mp(attrs, Family::IPV4_UNICAST, &nh, nlri, out),
            _ => self.announce_classic(attrs, nlri, out),
        }
    }

    fn announce_v6<'a>(
        &self,
        attrs: &PathAttributes,
        nlri: impl Iterator<Item = &'a Nlri> + Clone,
        out: &mut BytesMut,
    ) -> Result<usize, EncodeError> {
        if nlri.clone().next().is_none() {
            return Ok(0);
        }
        let nh = attrs.mp_next_hop.ok_or(EncodeError::MissingMpNextHop)?;
        self.announce_mp(attrs, Family::IPV6_UNICAST, &nh, nlri, out)
    }

    fn announce_classic<'a>(
        &self,
        attrs: &PathAttributes,
        nlri: impl Iterator<Item = &'a Nlri> + Clone,
        out: &mut BytesMut,
    ) -> Result<usize, EncodeError> {
        let max = self.ctx.max_message_len();
        let add_path = self.ctx.add_path.ipv4_unicast;
        let mut encoded = BytesMut::new();
        encode_attributes(attrs, &self.ctx, AttrPart::Low, true, &mut encoded);
        encode_attributes(attrs, &self.ctx, AttrPart::High, true, &mut encoded);
        let mut nlri = nlri;
        let mut count = 0;
        while let Some(first) = nlri.clone().next() {
            let fixed = 23 + encoded.len();
            if fixed + first.wire_len(add_path) > max {
                return Err(EncodeError::TooLong {
                    length: fixed + first.wire_len(add_path),
                    max,
                });
            }
            out.reserve(max);
            let start = begin(out, MessageType::Update);
            out.put_u16(0);
            out.put_u16(encoded.len() as u16);
            out.put_slice(&encoded);
            let limit = start + max;
            let k = fitting(nlri.clone(), add_path, limit - out.len());
            encode_nlri(nlri.by_ref().take(k), add_path, out);
            finish_unchecked(out, start);
            count += 1;
        }
        Ok(count)
    }

    fn announce_mp<'a>(
        &self,
        attrs: &PathAttributes,
        family: Family,
        nh: &NextHop,
        nlri: impl Iterator<Item = &'a Nlri> + Clone,
        out: &mut BytesMut,
    ) -> Result<usize, EncodeError> {
        let max = self.ctx.max_message_len();
        let add_path = self.ctx.add_path.enabled(family);
        let (mut low, mut high) = (BytesMut::new(), BytesMut::new());
        encode_attributes(attrs, &self.ctx, AttrPart::Low, false, &mut low);
        encode_attributes(attrs, &self.ctx, AttrPart::High, false, &mut high);
        let mut head = BytesMut::new();
        put_mp_reach_head(family, nh, &mut head);
        let mut nlri = nlri;
        let mut count = 0;
        while let Some(first) = nlri.clone().next() {
            let fixed = 23 + low.len() + MP_HEADER_LEN + head.len() + high.len();
            if fixed + first.wire_len(add_path) > max {
                return Err(EncodeError::TooLong {
                    length: fixed + first.wire_len(add_path),
                    max,
                });
            }
            out.reserve(max);
            let start = begin(out, MessageType::Update);
            out.put_u16(0);
            let alen_at = out.len();
            out.put_u16(0);
            out.put_slice(&low);
            out.put_u8(flags::OPTIONAL | flags::EXTENDED_LENGTH);
            out.put_u8(AttributeType::MpReachNlri.into());
            let mp_len_at = out.len();
            out.put_u16(0);
            out.put_slice(&head);
            let limit = start + max - high.len();
            let k = fitting(nlri.clone(), add_path, limit - out.len());
            encode_nlri(nlri.by_ref().take(k), add_path, out);
            patch(out, mp_len_at);
            out.put_slice(&high);
            patch(out, alen_at);
            finish_unchecked(out, start);
            count += 1;
        }
        Ok(count)
    }

    /// Appends UPDATEs withdrawing every NLRI of `nlri` (IPv4 in Withdrawn Routes, IPv6 in
    /// MP_UNREACH_NLRI); returns how many UPDATEs were written.
    pub fn withdraw(&self, nlri: &[Nlri], out: &mut BytesMut) -> usize {
        let max = self.ctx.max_message_len();
        let mut count = 0;
        // IPv4: header, withdrawn length, entries, zero attribute length.
        let add_path = self.ctx.add_path.ipv4_unicast;
        let mut v4 = nlri.iter().filter(|n| n.prefix.afi() == Afi::Ipv4);
        while v4.clone().next().is_some() {
            out.reserve(max);
            let start = begin(out, MessageType::Update);
            let wlen_at = out.len();
            out.put_u16(0);
            let limit = start + max - 2;
            let k = fitting(v4.clone(), add_path, limit - out.len());
            encode_nlri(v4.by_ref().take(k), add_path, out);
            patch(out, wlen_at);
            out.put_u16(0);
            finish_unchecked(out, start);
            count += 1;
        }
        // IPv6: header, zero withdrawn length, one MP_UNREACH_NLRI.
        let add_path = self.ctx.add_path.ipv6_unicast;
        let mut v6 = nlri.iter().filter(|n| n.prefix.afi() == Afi::Ipv6);
        while v6.clone().next().is_some() {
            out.reserve(max);
            let start = begin(out, MessageType::Update);
            out.put_u16(0);
            let alen_at = out.len();
            out.put_u16(0);
            out.put_u8(flags::OPTIONAL | flags::EXTENDED_LENGTH);
            out.put_u8(AttributeType::MpUnreachNlri.into());
            let mp_len_at = out.len();
            out.put_u16(0);
            out.put_u16(Afi::Ipv6.into());
            out.put_u8(1);
            let limit = start + max;
            let k = fitting(v6.clone(), add_path, limit - out.len());
            encode_nlri(v6.by_ref().take(k), add_path, out);
            patch(out, mp_len_at);
            patch(out, alen_at);
            finish_unchecked(out, start);
            count += 1;
        }
        count
    }

    /// Appends the End-of-RIB marker of `family` (RFC 4724 §2).
    pub fn end_of_rib(&self, family: Family, out: &mut BytesMut) -> Result<(), EncodeError> {
        Update::end_of_rib(family).encode(&self.ctx, out)
    }
}

/// How many of the next entries fit in `room` octets (at least one always does: callers
/// check the first against the message size).
fn fitting<'a>(nlri: impl Iterator<Item = &'a Nlri>, add_path: bool, room: usize) -> usize {
    let mut used = 0;
    nlri.take_while(|n| {
        used += n.wire_len(add_path);
        used <= room
    })
    .count()
}

/// Writes the length of the 2-octet-length field at `at` (lengths here never exceed 65535:
/// every message is capped at the negotiated maximum).
fn patch(out: &mut BytesMut, at: usize) {
    let len = (out.len() - at - 2) as u16;
    out[at..at + 2].copy_from_slice(&len.to_be_bytes());
}
