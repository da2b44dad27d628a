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
use crate::nlri::{Family, Nlri, encode_nlri_fitting};

/// Splits announcements and withdrawals into UPDATEs that fit one peer's maximum size.
#[derive(Clone, Copy, Debug)]
pub struct UpdatePacker {
    ctx: EncodeContext,
}

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
        let mut nlri = nlri;
        // The attribute block is encoded once, into the first UPDATE, and copied from there
        // into the following ones: no scratch buffer, no allocation.
        let mut block: Option<(usize, usize)> = None;
        let mut count = 0;
        while let Some(first) = nlri.clone().next() {
            out.reserve(max);
            let start = begin(out, MessageType::Update);
            out.put_u16(0);
            let alen_at = out.len();
            out.put_u16(0);
            let (from, to) = match block {
                Some((from, to)) => {
                    copy_within_end(out, from, to);
                    (from, to)
                }
                None => {
                    let from = out.len();
                    encode_attributes(attrs, &self.ctx, AttrPart::Low, true, out);
                    encode_attributes(attrs, &self.ctx, AttrPart::High, true, out);
                    block = Some((from, out.len()));
                    (from, out.len())
                }
            };
            let fixed = 23 + (to - from);
            if fixed + first.wire_len(add_path) > max || to - from > usize::from(u16::MAX) {
                return Err(EncodeError::TooLong {
                    length: fixed + first.wire_len(add_path),
                    max,
                });
            }
            patch(out, alen_at);
            let room = (start + max).saturating_sub(out.len());
            encode_nlri_fitting(&mut nlri, add_path, room, out);
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
        // The attributes after MP_REACH_NLRI (types above 15) must be known before the NLRI
        // are placed; they are usually absent, and `BytesMut::new` allocates nothing then.
        let mut high = BytesMut::new();
        encode_attributes(attrs, &self.ctx, AttrPart::High, false, &mut high);
        let mut nlri = nlri;
        // Attributes before MP_REACH_NLRI and the MP_REACH_NLRI head (AFI, SAFI, next hop):
        // encoded into the first UPDATE, copied from there into the following ones.
        let mut blocks: Option<((usize, usize), (usize, usize))> = None;
        let mut count = 0;
        while let Some(first) = nlri.clone().next() {
            out.reserve(max);
            let start = begin(out, MessageType::Update);
            out.put_u16(0);
            let alen_at = out.len();
            out.put_u16(0);
            let low = match blocks {
                Some((low, _)) => copy_within_end(out, low.0, low.1),
                None => {
                    let from = out.len();
                    encode_attributes(attrs, &self.ctx, AttrPart::Low, false, out);
                    (from, out.len())
                }
            };
            out.put_u8(flags::OPTIONAL | flags::EXTENDED_LENGTH);
            out.put_u8(AttributeType::MpReachNlri.into());
            let mp_len_at = out.len();
            out.put_u16(0);
            let head = match blocks {
                Some((_, head)) => copy_within_end(out, head.0, head.1),
                None => {
                    let from = out.len();
                    put_mp_reach_head(family, nh, out);
                    (from, out.len())
                }
            };
            blocks = Some((low, head));
            let fixed = (out.len() - start) + high.len();
            if fixed + first.wire_len(add_path) > max {
                return Err(EncodeError::TooLong {
                    length: fixed + first.wire_len(add_path),
                    max,
                });
            }
            let room = (start + max - high.len()).saturating_sub(out.len());
            encode_nlri_fitting(&mut nlri, add_path, room, out);
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
            let room = (start + max - 2).saturating_sub(out.len());
            encode_nlri_fitting(&mut v4, add_path, room, out);
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
            let room = (start + max).saturating_sub(out.len());
            encode_nlri_fitting(&mut v6, add_path, room, out);
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

/// Appends a copy of `out[from..to]` (an earlier part of the same buffer) to `out`;
/// returns where the copy lies.
fn copy_within_end(out: &mut BytesMut, from: usize, to: usize) -> (usize, usize) {
    let at = out.len();
    out.resize(at + (to - from), 0);
    out.copy_within(from..to, at);
    (at, out.len())
}

/// Writes the length of the 2-octet-length field at `at` (lengths here never exceed 65535:
/// every message is capped at the negotiated maximum).
fn patch(out: &mut BytesMut, at: usize) {
    let len = (out.len() - at - 2) as u16;
    out[at..at + 2].copy_from_slice(&len.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;
    use crate::attribute::{AsPath, Community, LargeCommunity};
    use crate::context::DecodeContext;
    use crate::framing::next_message;
    use crate::message::Message;
    use crate::prefix::Prefix;

    fn attrs() -> PathAttributes {
        PathAttributes {
            origin: Some(crate::Origin::Igp),
            as_path: Some(AsPath::from_sequence(&[65001, 65002])),
            next_hop: Some(Ipv4Addr::new(192, 0, 2, 1)),
            communities: vec![Community::new(65001, 7)].into(),
            large_communities: vec![LargeCommunity {
                global_admin: 1,
                local_data_1: 2,
                local_data_2: 3,
            }]
            .into(),
            ..PathAttributes::default()
        }
    }

    /// Splits `out` into messages; checks each is an UPDATE within 4096 octets that could
    /// not have taken the next entry (`entry` octets) had there been one; returns the NLRI.
    fn unpack(out: BytesMut, entry: usize) -> (Vec<Nlri>, usize) {
        let mut stream = out;
        let ctx = DecodeContext::default();
        let mut lens = Vec::new();
        let mut nlri = Vec::new();
        while let Some(msg) = next_message(&mut stream, 4096).unwrap() {
            lens.push(msg.len());
            let Message::Update(u) = Message::decode(msg, &ctx).unwrap().message else {
                panic!("not an UPDATE")
            };
            nlri.extend(u.announced().chain(u.withdrawals()).copied());
        }
        assert!(stream.is_empty());
        let (last, full) = lens.split_last().unwrap();
        assert!(*last <= 4096);
        for len in full {
            assert!(
                *len <= 4096 && len + entry > 4096,
                "{len}-octet UPDATE not full"
            );
        }
        (nlri, lens.len())
    }

    #[test]
    fn fills_every_update_ipv4_classic_and_withdrawn() {
        let nlri: Vec<Nlri> = (0..3000u32)
            .map(|i| Nlri::new(Prefix::v4(Ipv4Addr::from(0x0a00_0000 + (i << 8)), 24).unwrap()))
            .collect();
        let p = UpdatePacker::new(EncodeContext::default());
        let mut out = BytesMut::new();
        let n = p.announce(&attrs(), &nlri, &mut out).unwrap();
        let (got, messages) = unpack(out, 4);
        assert_eq!(got, nlri);
        assert_eq!(n, messages);
        assert_eq!(n, 3); // ~1,000 four-octet entries per UPDATE
        let mut out = BytesMut::new();
        let n = p.withdraw(&nlri, &mut out);
        let (got, messages) = unpack(out, 4);
        assert_eq!((got, n), (nlri, messages));
    }

    #[test]
    fn fills_every_update_ipv6_mp_reach() {
        let nlri: Vec<Nlri> = (0..2000u128)
            .map(|i| {
                let addr = Ipv6Addr::from((0x2001_0db8u128 << 96) | (i << 64));
                Nlri::new(Prefix::v6(addr, 64).unwrap())
            })
            .collect();
        let mut a = attrs();
        a.next_hop = None;
        a.mp_next_hop = Some(NextHop::V6 {
            global: "2001:db8::1".parse().unwrap(),
            link_local: Some("fe80::1".parse().unwrap()),
        });
        let p = UpdatePacker::new(EncodeContext::default());
        let mut out = BytesMut::new();
        let n = p.announce(&a, &nlri, &mut out).unwrap();
        let (got, messages) = unpack(out, 9);
        assert_eq!((got, n), (nlri.clone(), messages));
        assert!(n >= 5);
        let mut out = BytesMut::new();
        let n = p.withdraw(&nlri, &mut out);
        let (got, messages) = unpack(out, 9);
        assert_eq!((got, n), (nlri, messages));
    }

    #[test]
    fn too_large_attributes_fail_and_leave_out_unchanged() {
        let mut a = attrs();
        a.communities = (0..1100).map(Community).collect();
        let p = UpdatePacker::new(EncodeContext::default());
        let mut out = BytesMut::from(&b"keep"[..]);
        let nlri = [Nlri::new("10.0.0.0/8".parse().unwrap())];
        assert!(matches!(
            p.announce(&a, &nlri, &mut out),
            Err(EncodeError::TooLong { .. })
        ));
        assert_eq!(&out[..], b"keep");
    }
}
