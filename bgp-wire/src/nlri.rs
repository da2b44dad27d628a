//! NLRI: address families, prefixes with optional ADD-PATH path identifiers, and the tight
//! loops that decode and encode prefix lists (the hot path of every UPDATE).
//!
//! ```text
//! RFC 4271 §4.3 (IPv4) and RFC 4760 §5 (any family):   RFC 7911 §3 with ADD-PATH:
//! +---------------------------+                        +--------------------------------+
//! |   Length (1 octet)        |                        | Path Identifier (4 octets)     |
//! +---------------------------+                        +--------------------------------+
//! |   Prefix (variable)       |                        | Length (1 octet)               |
//! +---------------------------+                        +--------------------------------+
//!                                                      | Prefix (variable)              |
//!                                                      +--------------------------------+
//! ```
//! The prefix field holds `ceil(Length / 8)` octets; trailing bits beyond the length are
//! ignored on receipt (so decoded prefixes are always canonical) and sent as zero.

use std::net::{Ipv4Addr, Ipv6Addr};

use bytes::BytesMut;

use crate::iana::{Afi, Safi};
use crate::prefix::{Prefix, mask_v4, mask_v6};

/// An address family: AFI and SAFI (RFC 4760 §3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Family {
    /// Address Family Identifier.
    pub afi: Afi,
    /// Subsequent Address Family Identifier.
    pub safi: Safi,
}

impl Family {
    /// IPv4 unicast (1/1).
    pub const IPV4_UNICAST: Family = Family {
        afi: Afi::Ipv4,
        safi: Safi::Unicast,
    };
    /// IPv6 unicast (2/1).
    pub const IPV6_UNICAST: Family = Family {
        afi: Afi::Ipv6,
        safi: Safi::Unicast,
    };

    /// A family from its wire values.
    pub fn new(afi: u16, safi: u8) -> Self {
        Self {
            afi: afi.into(),
            safi: safi.into(),
        }
    }

    /// True for the families whose NLRI this crate decodes (IPv4/IPv6 unicast).
    pub fn is_supported(&self) -> bool {
        *self == Self::IPV4_UNICAST || *self == Self::IPV6_UNICAST
    }
}

impl std::fmt::Display for Family {
    /// `ipv4-unicast`, `ipv6-unicast`, `afi-1-safi-128`, ...
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.afi.name(), self.safi.name()) {
            (Some(a), Some(s)) => write!(f, "{a}-{s}"),
            _ => write!(
                f,
                "afi-{}-safi-{}",
                u16::from(self.afi),
                u8::from(self.safi)
            ),
        }
    }
}

/// One NLRI entry: a prefix and, on ADD-PATH sessions, its path identifier (RFC 7911 §3).
///
/// The family is that of the prefix; this crate carries unicast NLRI only.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Nlri {
    /// The destination.
    pub prefix: Prefix,
    /// Path identifier; `Some` exactly when ADD-PATH is in use for this family and direction.
    pub path_id: Option<u32>,
}

impl Nlri {
    /// NLRI without a path identifier.
    pub const fn new(prefix: Prefix) -> Self {
        Self {
            prefix,
            path_id: None,
        }
    }

    /// NLRI with an ADD-PATH path identifier.
    pub const fn with_path_id(prefix: Prefix, path_id: u32) -> Self {
        Self {
            prefix,
            path_id: Some(path_id),
        }
    }

    /// Octets this entry takes on the wire.
    #[inline]
    pub fn wire_len(&self, add_path: bool) -> usize {
        (if add_path { 4 } else { 0 }) + 1 + usize::from(self.prefix.len()).div_ceil(8)
    }
}

impl From<Prefix> for Nlri {
    fn from(prefix: Prefix) -> Self {
        Self::new(prefix)
    }
}

/// A syntax error in an NLRI field (RFC 7606 §5.3: the session must be reset).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NlriError {
    /// A prefix length larger than the address (RFC 4271 §6.3 "Invalid Network Field").
    #[error("prefix length {0} exceeds the address length")]
    PrefixTooLong(u8),
    /// A prefix or path identifier runs past the end of the field.
    #[error("NLRI overruns its field")]
    Overrun,
}

/// Decodes a whole NLRI field of `afi` (IPv4 or IPv6) and appends the entries to `out`.
///
/// Allocation is one `Vec` growth per call at most (capacity estimated from the field size,
/// which the caller bounds by the message size); work is linear in `data.len()`.
pub fn decode_nlri(
    data: &[u8],
    afi: Afi,
    add_path: bool,
    out: &mut Vec<Nlri>,
) -> Result<(), NlriError> {
    match afi {
        Afi::Ipv6 => decode_v6(data, add_path, out),
        _ => decode_v4(data, add_path, out),
    }
}

#[inline]
fn read_path_id(data: &[u8], i: &mut usize, add_path: bool) -> Result<Option<u32>, NlriError> {
    if !add_path {
        return Ok(None);
    }
    let b = data.get(*i..*i + 4).ok_or(NlriError::Overrun)?;
    *i += 4;
    Ok(Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]])))
}

fn decode_v4(data: &[u8], add_path: bool, out: &mut Vec<Nlri>) -> Result<(), NlriError> {
    if data.is_empty() {
        return Ok(());
    }
    // Entries of /9 and longer take at least 3 octets (7 with a path identifier): one
    // reservation covers a usual table, so the vector is not regrown (and copied) midway.
    out.reserve(data.len() / if add_path { 7 } else { 3 } + 1);
    // Pushing to a local vector keeps its length in a register instead of storing it
    // through `out` after every entry.
    let mut v = std::mem::take(out);
    let r = if add_path {
        decode_v4_into(data, true, &mut v)
    } else {
        decode_v4_plain(data, &mut v)
    };
    *out = v;
    r
}

/// IPv4 NLRI without path identifiers: the loop of a full-table transfer.
#[inline(always)]
fn decode_v4_plain(data: &[u8], out: &mut Vec<Nlri>) -> Result<(), NlriError> {
    let mut rest = data;
    // While five octets remain, the length and four address octets are read at once (octets
    // past the prefix belong to the next entry and fall under the mask).
    while let Some((&[len, a, b, c, d], _)) = rest.split_first_chunk::<5>() {
        if len > 32 {
            return Err(NlriError::PrefixTooLong(len));
        }
        let raw = u32::from_be_bytes([a, b, c, d]);
        out.push(Nlri {
            prefix: Prefix::V4 {
                addr: Ipv4Addr::from(raw & mask_v4(len)),
                len,
            },
            path_id: None,
        });
        rest = rest
            .get(1 + usize::from(len).div_ceil(8)..)
            .unwrap_or_default();
    }
    // The last entries (fewer than five octets left) may overrun the field.
    decode_v4_into(rest, false, out)
}

#[inline(always)]
fn decode_v4_into(data: &[u8], add_path: bool, out: &mut Vec<Nlri>) -> Result<(), NlriError> {
    let mut i = 0;
    while i < data.len() {
        let path_id = read_path_id(data, &mut i, add_path)?;
        let len = *data.get(i).ok_or(NlriError::Overrun)?;
        if len > 32 {
            return Err(NlriError::PrefixTooLong(len));
        }
        let n = usize::from(len).div_ceil(8);
        let raw = match data.get(i + 1..i + 5) {
            // Fast path: read four octets at once; octets past the prefix belong to the next
            // entry and fall under the mask.
            Some(b) => u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
            None => {
                let bytes = data.get(i + 1..i + 1 + n).ok_or(NlriError::Overrun)?;
                let mut octets = [0u8; 4];
                octets[..n].copy_from_slice(bytes);
                u32::from_be_bytes(octets)
            }
        };
        let addr = Ipv4Addr::from(raw & mask_v4(len));
        out.push(Nlri {
            prefix: Prefix::V4 { addr, len },
            path_id,
        });
        i += 1 + n;
    }
    Ok(())
}

fn decode_v6(data: &[u8], add_path: bool, out: &mut Vec<Nlri>) -> Result<(), NlriError> {
    if data.is_empty() {
        return Ok(());
    }
    // /33 to /64 (the usual IPv6 lengths) take 6 to 9 octets, plus 4 with a path identifier.
    out.reserve(data.len() / if add_path { 10 } else { 6 } + 1);
    let mut i = 0;
    while i < data.len() {
        let path_id = read_path_id(data, &mut i, add_path)?;
        let len = *data.get(i).ok_or(NlriError::Overrun)?;
        if len > 128 {
            return Err(NlriError::PrefixTooLong(len));
        }
        let n = usize::from(len).div_ceil(8);
        let raw = match data
            .get(i + 1..i + 17)
            .and_then(|b| <[u8; 16]>::try_from(b).ok())
        {
            Some(b) => u128::from_be_bytes(b), // fast path, as for IPv4
            None => {
                let bytes = data.get(i + 1..i + 1 + n).ok_or(NlriError::Overrun)?;
                let mut octets = [0u8; 16];
                octets[..n].copy_from_slice(bytes);
                u128::from_be_bytes(octets)
            }
        };
        let addr = Ipv6Addr::from(raw & mask_v6(len));
        out.push(Nlri {
            prefix: Prefix::V6 { addr, len },
            path_id,
        });
        i += 1 + n;
    }
    Ok(())
}

/// Longest entry: path identifier, length octet, 16 address octets.
const MAX_ENTRY_LEN: usize = 4 + 1 + 16;

/// Writes one entry at the start of `buf` (at least [`MAX_ENTRY_LEN`] long); returns its
/// wire length. Whole addresses are copied: the octets past the prefix are zero (prefixes
/// are canonical) and are overwritten by the next entry or cut off by the caller.
#[inline(always)]
fn write_entry(buf: &mut [u8], nlri: &Nlri, add_path: bool) -> usize {
    let mut pos = 0;
    if add_path {
        buf[..4].copy_from_slice(&nlri.path_id.unwrap_or(0).to_be_bytes());
        pos = 4;
    }
    match nlri.prefix {
        Prefix::V4 { addr, len } => {
            buf[pos] = len;
            buf[pos + 1..pos + 5].copy_from_slice(&addr.octets());
            pos + 1 + usize::from(len).div_ceil(8)
        }
        Prefix::V6 { addr, len } => {
            buf[pos] = len;
            buf[pos + 1..pos + 17].copy_from_slice(&addr.octets());
            pos + 1 + usize::from(len).div_ceil(8)
        }
    }
}

/// Appends every entry of `nlri` (any mix of families is written as given): no per-entry
/// allocation, `out` grows in large steps.
pub fn encode_nlri<'a>(
    nlri: impl IntoIterator<Item = &'a Nlri>,
    add_path: bool,
    out: &mut BytesMut,
) {
    let start = out.len();
    let mut pos = start;
    for n in nlri {
        if out.len() < pos + MAX_ENTRY_LEN {
            let grow = (pos - start).max(256);
            out.resize(pos + MAX_ENTRY_LEN + grow, 0);
        }
        pos += write_entry(&mut out[pos..], n, add_path);
    }
    out.truncate(pos);
}

/// Appends entries of `nlri` while they fit in `room` octets, in one pass (no separate
/// measuring pass); returns how many were written. The iterator is advanced past exactly
/// those entries, so the caller continues with the rest in the next message.
pub(crate) fn encode_nlri_fitting<'a, I>(
    nlri: &mut I,
    add_path: bool,
    room: usize,
    out: &mut BytesMut,
) -> usize
where
    I: Iterator<Item = &'a Nlri> + Clone,
{
    let start = out.len();
    // Room for every remaining entry (at most `room` octets), so the buffer is sized once:
    // an IPv4 entry takes at most 5 octets (9 with a path identifier).
    let per_entry = if add_path { 9 } else { 5 };
    let remaining = nlri.size_hint().1.unwrap_or(usize::MAX);
    let want = remaining.saturating_mul(per_entry).min(room);
    out.resize(start + want + MAX_ENTRY_LEN, 0);
    // Positions below are relative to `start`.
    let mut pos = 0;
    let mut written = 0;
    let mut iter = nlri.clone();
    // An entry the IPv4 loop left to the general one (IPv6, or the buffer needs to grow).
    let mut pending: Option<&Nlri> = None;
    'all: loop {
        if let Some(n) = pending.take() {
            if out.len() < start + pos + MAX_ENTRY_LEN {
                // IPv6 entries are longer than the estimate: grow in large steps.
                grow(out, start, start + pos);
            }
            let next = pos + write_entry(&mut out[start + pos..], n, add_path);
            if next > room {
                break;
            }
            pos = next;
            written += 1;
        }
        if add_path {
            pending = iter.next();
            if pending.is_none() {
                break;
            }
            continue;
        }
        // IPv4 without path identifiers (a full table's entries): the length octet and the
        // four address octets stored at once; octets past the entry are zero (prefixes are
        // canonical) and are overwritten by the next entry or cut off below.
        let buf = &mut out[start..];
        for n in iter.by_ref() {
            let Prefix::V4 { addr, len } = n.prefix else {
                pending = Some(n);
                continue 'all;
            };
            let next = pos + (usize::from(len) + 15) / 8;
            if next > room {
                break 'all;
            }
            let Some(dst) = buf.get_mut(pos..).and_then(|b| b.first_chunk_mut::<5>()) else {
                pending = Some(n);
                continue 'all;
            };
            let [a, b, c, d] = addr.octets();
            *dst = [len, a, b, c, d];
            pos = next;
            written += 1;
        }
        break;
    }
    out.truncate(start + pos);
    if written > 0 {
        nlri.nth(written - 1);
    }
    written
}

/// Grows the buffer that entries are written to (from `start`, now at `pos`) in large steps,
/// keeping room for at least one more entry.
#[cold]
fn grow(out: &mut BytesMut, start: usize, pos: usize) {
    let grow = (pos - start).max(256);
    out.resize(pos + MAX_ENTRY_LEN + grow, 0);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Prefix {
        s.parse().unwrap()
    }

    #[test]
    fn rfc4271_ipv4_encoding() {
        // 10.0.0.0/8, 192.168.1.0/24, 0.0.0.0/0, 1.2.3.4/32
        let wire = [8, 10, 24, 192, 168, 1, 0, 32, 1, 2, 3, 4];
        let mut out = Vec::new();
        decode_nlri(&wire, Afi::Ipv4, false, &mut out).unwrap();
        let want: Vec<Nlri> = ["10.0.0.0/8", "192.168.1.0/24", "0.0.0.0/0", "1.2.3.4/32"]
            .iter()
            .map(|s| Nlri::new(p(s)))
            .collect();
        assert_eq!(out, want);
        let mut buf = BytesMut::new();
        encode_nlri(&want, false, &mut buf);
        assert_eq!(&buf[..], &wire[..]);
    }

    #[test]
    fn trailing_bits_are_cleared() {
        let mut out = Vec::new();
        decode_nlri(&[9, 10, 0xff], Afi::Ipv4, false, &mut out).unwrap();
        assert_eq!(out[0].prefix, p("10.128.0.0/9"));
    }

    #[test]
    fn add_path_and_ipv6() {
        let wire = [0, 0, 0, 7, 32, 0x20, 0x01, 0x0d, 0xb8];
        let mut out = Vec::new();
        decode_nlri(&wire, Afi::Ipv6, true, &mut out).unwrap();
        assert_eq!(out, vec![Nlri::with_path_id(p("2001:db8::/32"), 7)]);
    }

    #[test]
    fn errors() {
        let mut out = Vec::new();
        assert_eq!(
            decode_nlri(&[33, 1, 2, 3, 4, 5], Afi::Ipv4, false, &mut out),
            Err(NlriError::PrefixTooLong(33))
        );
        assert_eq!(
            decode_nlri(&[129], Afi::Ipv6, false, &mut out),
            Err(NlriError::PrefixTooLong(129))
        );
        assert_eq!(
            decode_nlri(&[24, 10, 0], Afi::Ipv4, false, &mut out),
            Err(NlriError::Overrun)
        );
        assert_eq!(
            decode_nlri(&[0, 0, 1], Afi::Ipv4, true, &mut out),
            Err(NlriError::Overrun)
        );
    }

    #[test]
    fn fitting_matches_plain_encoding_and_stops_at_room() {
        // A mix of families and lengths, with and without path identifiers: the IPv4 loop
        // hands IPv6 entries (and buffer growth) to the general one and back.
        let mut all: Vec<Nlri> = Vec::new();
        for i in 0..600u32 {
            let prefix = if i % 7 == 3 {
                Prefix::v6(Ipv6Addr::from(u128::from(i) << 80), 48 + (i % 80) as u8).unwrap()
            } else {
                Prefix::v4(Ipv4Addr::from(i << 12), (i % 33) as u8).unwrap()
            };
            all.push(Nlri::with_path_id(prefix, i));
        }
        for add_path in [false, true] {
            let list: Vec<Nlri> = all
                .iter()
                .map(|n| if add_path { *n } else { Nlri::new(n.prefix) })
                .collect();
            let mut whole = BytesMut::new();
            encode_nlri(&list, add_path, &mut whole);
            for room in [0, 1, 5, 100, 1000, whole.len(), whole.len() + 10] {
                let mut out = BytesMut::from(&b"head"[..]);
                let mut iter = list.iter();
                let n = encode_nlri_fitting(&mut iter, add_path, room, &mut out);
                assert_eq!(&out[..4], b"head");
                let body = &out[4..];
                assert!(body.len() <= room);
                let mut back = Vec::new();
                // Families are mixed, so compare bytes: a prefix of the whole encoding.
                assert_eq!(body, &whole[..body.len()]);
                assert_eq!(iter.len(), list.len() - n);
                if let Some(next) = list.get(n) {
                    assert!(body.len() + next.wire_len(add_path) > room);
                }
                back.extend(list[..n].iter().copied());
                let mut again = BytesMut::new();
                encode_nlri(&back, add_path, &mut again);
                assert_eq!(&again[..], body);
            }
        }
    }
}
