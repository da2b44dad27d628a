//! Path attributes (RFC 4271 §4.3, §5) and their RFC 7606 error handling.
//!
//! [`PathAttributes`] is one attribute set as the RIB stores it: NLRI-free, `Clone + Eq +
//! Hash`, so identical sets can be interned (hash-consed) and shared by every route that
//! carries them. The MP_REACH_NLRI next hop is part of the set ([`PathAttributes::mp_next_hop`]);
//! the MP_REACH/MP_UNREACH NLRI live in the [`Update`](crate::Update) ([`MpReach`], [`MpUnreach`]).
//!
//! Every attribute on the wire starts with this header (RFC 4271 §4.3):
//! ```text
//!  0                   1
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5
//! +---------------+---------------+
//! |  Attr. Flags  |Attr. Type Code|   then Attribute Length: 1 octet,
//! +---------------+---------------+   or 2 octets when Extended Length is set
//!  O T P E 0 0 0 0    O=Optional T=Transitive P=Partial E=Extended Length
//! ```

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use bytes::Bytes;
use smallvec::SmallVec;

use crate::iana::SegmentType;
use crate::nlri::{Family, Nlri};

pub use crate::iana::Origin;

/// Attribute flag bits (RFC 4271 §4.3).
pub mod flags {
    /// Optional (1) or well-known (0).
    pub const OPTIONAL: u8 = 0x80;
    /// Transitive (1) or non-transitive (0).
    pub const TRANSITIVE: u8 = 0x40;
    /// Partial: some speaker on the path did not recognise this optional transitive attribute.
    pub const PARTIAL: u8 = 0x20;
    /// Extended Length: the length field is two octets.
    pub const EXTENDED_LENGTH: u8 = 0x10;
}

/// The path attributes of an UPDATE, without its NLRI (RFC 4271 §5).
///
/// Value layouts (after the attribute header) and what a malformed one costs:
///
/// ```text
/// type  attribute            value                                   RFC         malformed
///    1  ORIGIN               1 octet: 0 IGP, 1 EGP, 2 INCOMPLETE     4271 §5.1.1 treat-as-withdraw
///    2  AS_PATH              segments (see AsPath)                   4271 §5.1.2 treat-as-withdraw
///    3  NEXT_HOP             4 octets IPv4 address                   4271 §5.1.3 treat-as-withdraw
///    4  MULTI_EXIT_DISC      4 octets                                4271 §5.1.4 treat-as-withdraw
///    5  LOCAL_PREF           4 octets                                4271 §5.1.5 treat-as-withdraw
///    6  ATOMIC_AGGREGATE     empty                                   4271 §5.1.6 attribute discard
///    7  AGGREGATOR           AS (2 or 4 octets) + 4 octets address   4271 §5.1.7 attribute discard
///    8  COMMUNITIES          n × 4 octets, n ≥ 1                     1997        treat-as-withdraw
///    9  ORIGINATOR_ID        4 octets                                4456 §8     treat-as-withdraw
///   10  CLUSTER_LIST         n × 4 octets, n ≥ 1                     4456 §8     treat-as-withdraw
///   14  MP_REACH_NLRI        see MpReach                             4760 §3     session reset
///   15  MP_UNREACH_NLRI      see MpUnreach                           4760 §4     session reset
///   16  EXTENDED_COMMUNITIES n × 8 octets                            4360 §2     treat-as-withdraw
///   17  AS4_PATH             segments, 4-octet ASes, no confed       6793 §3     attribute discard
///   18  AS4_AGGREGATOR       4 octets AS + 4 octets address          6793 §3     attribute discard
///   32  LARGE_COMMUNITY      n × 12 octets, n ≥ 1                    8092 §3     treat-as-withdraw
///   35  OTC                  4 octets AS                             9234 §5     treat-as-withdraw
/// ```
/// (RFC 7606 §7 and the attribute's own RFC give the action.)
///
/// `None`/empty means "attribute absent". AS4_PATH and AS4_AGGREGATOR never appear here:
/// on 2-octet sessions the decoder merges them into `as_path`/`aggregator` (RFC 6793 §4.2.3)
/// and the encoder derives them again. MP_REACH_NLRI/MP_UNREACH_NLRI NLRI belong to the
/// [`Update`](crate::Update); only the MP next hop is kept here because it is shared by the
/// routes exactly like NEXT_HOP is.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct PathAttributes {
    /// ORIGIN (type 1, well-known mandatory).
    pub origin: Option<Origin>,
    /// AS_PATH (type 2, well-known mandatory), always with 4-octet AS numbers.
    pub as_path: Option<AsPath>,
    /// NEXT_HOP (type 3, well-known, mandatory with IPv4 NLRI in the NLRI field).
    pub next_hop: Option<Ipv4Addr>,
    /// Next hop of MP_REACH_NLRI (type 14, RFC 4760 §3); present with [`MpReach`].
    pub mp_next_hop: Option<NextHop>,
    /// MULTI_EXIT_DISC (type 4, optional non-transitive).
    pub med: Option<u32>,
    /// LOCAL_PREF (type 5, well-known, iBGP only).
    pub local_pref: Option<u32>,
    /// ATOMIC_AGGREGATE (type 6, well-known discretionary, no value).
    pub atomic_aggregate: bool,
    /// AGGREGATOR (type 7, optional transitive), always with a 4-octet AS.
    pub aggregator: Option<Aggregator>,
    /// COMMUNITIES (type 8, RFC 1997), in received order.
    pub communities: InlineVec<Community, 4>,
    /// ORIGINATOR_ID (type 9, RFC 4456 §8).
    pub originator_id: Option<Ipv4Addr>,
    /// CLUSTER_LIST (type 10, RFC 4456 §8).
    pub cluster_list: Vec<Ipv4Addr>,
    /// EXTENDED_COMMUNITIES (type 16, RFC 4360).
    pub extended_communities: Vec<ExtendedCommunity>,
    /// LARGE_COMMUNITY (type 32, RFC 8092).
    pub large_communities: InlineVec<LargeCommunity, 2>,
    /// Only to Customer (type 35, RFC 9234 §5): an AS number.
    pub otc: Option<u32>,
    /// Unrecognised optional transitive attributes, in received order (RFC 4271 §5: passed
    /// on with the Partial bit set). Unrecognised non-transitive ones are dropped on decode.
    pub unknown: Vec<RawAttribute>,
}

/// A path attribute kept as bytes: an unrecognised optional transitive attribute.
///
/// The value is a zero-copy slice of the received message.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RawAttribute {
    /// Flags as received, without [`flags::EXTENDED_LENGTH`] (the encoder picks the length
    /// form); the encoder adds [`flags::PARTIAL`].
    pub flags: u8,
    /// Type code.
    pub type_code: u8,
    /// Attribute value.
    pub value: Bytes,
}

/// AS_PATH (RFC 4271 §4.3 type 2, §5.1.2; confederation segments RFC 5065 §3).
///
/// ```text
/// each path segment:
/// +--------------+--------------+-------------------------------+
/// | segment type | segment len  | segment value: len AS numbers |
/// |  (1 octet)   | (1 octet)    | of 2 octets, or 4 (RFC 6793)  |
/// +--------------+--------------+-------------------------------+
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AsPath {
    /// Segments in wire order (leftmost = most recently traversed).
    pub segments: InlineVec<AsSegment, 1>,
}

/// One AS_PATH segment. On the wire a segment holds 1..=255 AS numbers; the encoder splits
/// longer ones.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AsSegment {
    /// AS_SET, AS_SEQUENCE, AS_CONFED_SEQUENCE or AS_CONFED_SET.
    pub kind: SegmentType,
    /// AS numbers (4-octet).
    pub asns: InlineVec<u32, 6>,
}

impl AsPath {
    /// A path of one AS_SEQUENCE (empty when `asns` is empty).
    pub fn from_sequence(asns: &[u32]) -> Self {
        if asns.is_empty() {
            return Self::default();
        }
        Self {
            segments: InlineVec::from([AsSegment {
                kind: SegmentType::AsSequence,
                asns: InlineVec::from(asns),
            }]),
        }
    }

    /// Path length for the decision process (RFC 4271 §9.1.2.2 a): an AS_SET counts 1,
    /// confederation segments count 0 (RFC 5065 §5.3).
    pub fn path_len(&self) -> usize {
        self.segments
            .iter()
            .map(|s| match s.kind {
                SegmentType::AsSequence => s.asns.len(),
                SegmentType::AsSet => 1,
                _ => 0,
            })
            .sum()
    }

    /// The neighbour AS: first AS of a leading AS_SEQUENCE (RFC 4271 §9.1.2.2 c), if any.
    pub fn first_as(&self) -> Option<u32> {
        let seg = self.segments.iter().find(|s| !is_confed(s.kind))?;
        (seg.kind == SegmentType::AsSequence)
            .then(|| seg.asns.first().copied())
            .flatten()
    }

    /// True when `asn` appears anywhere in the path (loop detection, RFC 4271 §9.1.2).
    pub fn contains(&self, asn: u32) -> bool {
        self.segments.iter().any(|s| s.asns.contains(&asn))
    }

    /// Prepends `asn` to the leading AS_SEQUENCE, or adds one (RFC 4271 §5.1.2).
    pub fn prepend(&mut self, asn: u32) {
        match self.segments.first_mut() {
            Some(seg) if seg.kind == SegmentType::AsSequence && seg.asns.len() < 255 => {
                seg.asns.insert(0, asn)
            }
            _ => self.segments.insert(
                0,
                AsSegment {
                    kind: SegmentType::AsSequence,
                    asns: InlineVec::from([asn]),
                },
            ),
        }
    }
}

/// True for AS_CONFED_SEQUENCE and AS_CONFED_SET.
pub(crate) fn is_confed(kind: SegmentType) -> bool {
    matches!(kind, SegmentType::ConfedSequence | SegmentType::ConfedSet)
}

impl fmt::Display for AsPath {
    /// `65001 65002 {65003 65004} (65100)`, the usual looking-glass form.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for seg in &self.segments {
            let (open, close) = match seg.kind {
                SegmentType::AsSet => ("{", "}"),
                SegmentType::ConfedSequence => ("(", ")"),
                SegmentType::ConfedSet => ("[", "]"),
                _ => ("", ""),
            };
            if !first {
                f.write_str(" ")?;
            }
            first = false;
            f.write_str(open)?;
            for (i, asn) in seg.asns.iter().enumerate() {
                if i > 0 {
                    f.write_str(" ")?;
                }
                write!(f, "{asn}")?;
            }
            f.write_str(close)?;
        }
        Ok(())
    }
}

/// AGGREGATOR (RFC 4271 §5.1.7; 4-octet form RFC 6793 §3).
///
/// ```text
/// +---------------------------------+---------------------------+
/// | AS number (2 octets, 4 on NEW)  | IP address (4 octets)     |
/// +---------------------------------+---------------------------+
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Aggregator {
    /// AS of the aggregating speaker (4-octet).
    pub asn: u32,
    /// BGP identifier / address of the aggregating speaker.
    pub address: Ipv4Addr,
}

/// A COMMUNITIES value (RFC 1997): `AS:value` in one 32-bit number.
///
/// ```text
/// +-------------------------------+-------------------------------+
/// |     AS number (2 octets)      |       value (2 octets)        |
/// +-------------------------------+-------------------------------+
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Community(pub u32);

impl Community {
    /// NO_EXPORT (RFC 1997).
    pub const NO_EXPORT: Community = Community(0xFFFF_FF01);
    /// NO_ADVERTISE (RFC 1997).
    pub const NO_ADVERTISE: Community = Community(0xFFFF_FF02);
    /// NO_EXPORT_SUBCONFED (RFC 1997).
    pub const NO_EXPORT_SUBCONFED: Community = Community(0xFFFF_FF03);
    /// NOPEER (RFC 3765).
    pub const NO_PEER: Community = Community(0xFFFF_FF04);
    /// GRACEFUL_SHUTDOWN (RFC 8326).
    pub const GRACEFUL_SHUTDOWN: Community = Community(0xFFFF_0000);
    /// ACCEPT_OWN (RFC 7611).
    pub const ACCEPT_OWN: Community = Community(0xFFFF_0001);
    /// LLGR_STALE (RFC 9494).
    pub const LLGR_STALE: Community = Community(0xFFFF_0006);
    /// NO_LLGR (RFC 9494).
    pub const NO_LLGR: Community = Community(0xFFFF_0007);
    /// BLACKHOLE (RFC 7999).
    pub const BLACKHOLE: Community = Community(0xFFFF_029A);

    /// A community from its two halves.
    pub const fn new(asn: u16, value: u16) -> Self {
        Self((asn as u32) << 16 | value as u32)
    }

    /// The high half (conventionally an AS number).
    pub const fn asn(self) -> u16 {
        (self.0 >> 16) as u16
    }

    /// The low half.
    pub const fn value(self) -> u16 {
        self.0 as u16
    }

    /// The registered name of a well-known community (`"NO_EXPORT"`, ...).
    pub fn well_known_name(self) -> Option<&'static str> {
        Some(match self {
            Self::NO_EXPORT => "NO_EXPORT",
            Self::NO_ADVERTISE => "NO_ADVERTISE",
            Self::NO_EXPORT_SUBCONFED => "NO_EXPORT_SUBCONFED",
            Self::NO_PEER => "NOPEER",
            Self::GRACEFUL_SHUTDOWN => "GRACEFUL_SHUTDOWN",
            Self::ACCEPT_OWN => "ACCEPT_OWN",
            Self::LLGR_STALE => "LLGR_STALE",
            Self::NO_LLGR => "NO_LLGR",
            Self::BLACKHOLE => "BLACKHOLE",
            _ => return None,
        })
    }
}

impl fmt::Display for Community {
    /// `ASN:value`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.asn(), self.value())
    }
}

/// An EXTENDED_COMMUNITIES value (RFC 4360 §2), eight octets.
///
/// ```text
/// +---------------+---------------+-------------------------------+
/// | Type high     | Type low/sub  |          Value (6 octets,     |
/// +---------------+---------------+    or 7 with a regular type)  |
/// |                                                               |
/// +---------------------------------------------------------------+
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ExtendedCommunity(pub [u8; 8]);

impl ExtendedCommunity {
    /// Type high octet (bit 0x40 clear = transitive across ASes).
    pub fn type_high(&self) -> u8 {
        self.0[0]
    }

    /// Sub-type octet (extended types).
    pub fn subtype(&self) -> u8 {
        self.0[1]
    }

    /// True when the community may cross AS boundaries (RFC 4360 §2).
    pub fn is_transitive(&self) -> bool {
        self.0[0] & 0x40 == 0
    }
}

impl fmt::Display for ExtendedCommunity {
    /// Two-octet-AS specific route target/origin as `rt:ASN:value`/`ro:ASN:value`
    /// (RFC 4360 §4, §5); anything else as 16 hex digits.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = &self.0;
        match (b[0], b[1]) {
            (0x00, 0x02) | (0x00, 0x03) => {
                let tag = if b[1] == 0x02 { "rt" } else { "ro" };
                let asn = u16::from_be_bytes([b[2], b[3]]);
                let val = u32::from_be_bytes([b[4], b[5], b[6], b[7]]);
                write!(f, "{tag}:{asn}:{val}")
            }
            _ => {
                for x in b {
                    write!(f, "{x:02x}")?;
                }
                Ok(())
            }
        }
    }
}

/// A LARGE_COMMUNITY value (RFC 8092 §3).
///
/// ```text
/// +---------------------------------------------------------------+
/// |                      Global Administrator                     |
/// +---------------------------------------------------------------+
/// |                       Local Data Part 1                       |
/// +---------------------------------------------------------------+
/// |                       Local Data Part 2                       |
/// +---------------------------------------------------------------+
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LargeCommunity {
    /// Global administrator (an AS number).
    pub global_admin: u32,
    /// Local data part 1.
    pub local_data_1: u32,
    /// Local data part 2.
    pub local_data_2: u32,
}

impl fmt::Display for LargeCommunity {
    /// `a:b:c`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}",
            self.global_admin, self.local_data_1, self.local_data_2
        )
    }
}

/// The next hop of MP_REACH_NLRI (RFC 4760 §3; RFC 2545 §3 for IPv6 global + link-local;
/// RFC 8950 for an IPv6 next hop with IPv4 NLRI).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NextHop {
    /// 4-octet IPv4 next hop.
    V4(Ipv4Addr),
    /// 16-octet global IPv6 next hop, or 32 octets with a link-local address.
    V6 {
        /// Global address.
        global: Ipv6Addr,
        /// Link-local address, when the peer is on a shared link (RFC 2545 §3).
        link_local: Option<Ipv6Addr>,
    },
}

impl fmt::Display for NextHop {
    /// The address, or `global%link-local`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::V4(a) => write!(f, "{a}"),
            Self::V6 {
                global,
                link_local: None,
            } => write!(f, "{global}"),
            Self::V6 {
                global,
                link_local: Some(ll),
            } => write!(f, "{global}%{ll}"),
        }
    }
}

/// Reachable NLRI of MP_REACH_NLRI (RFC 4760 §3); its next hop is
/// [`PathAttributes::mp_next_hop`].
///
/// ```text
/// +---------------------------------------------------------+
/// | Address Family Identifier (2 octets)                    |
/// +---------------------------------------------------------+
/// | Subsequent Address Family Identifier (1 octet)          |
/// +---------------------------------------------------------+
/// | Length of Next Hop Network Address (1 octet)            |
/// +---------------------------------------------------------+
/// | Network Address of Next Hop (variable)                  |
/// +---------------------------------------------------------+
/// | Reserved (1 octet)                                      |
/// +---------------------------------------------------------+
/// | Network Layer Reachability Information (variable)       |
/// +---------------------------------------------------------+
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MpReach {
    /// AFI/SAFI (IPv4 or IPv6 unicast).
    pub family: Family,
    /// Reachable destinations.
    pub nlri: Vec<Nlri>,
}

/// Withdrawn NLRI of MP_UNREACH_NLRI (RFC 4760 §4). Empty `withdrawn` with nothing else in
/// the UPDATE is the End-of-RIB marker of that family (RFC 4724 §2).
///
/// ```text
/// +---------------------------------------------------------+
/// | Address Family Identifier (2 octets)                    |
/// +---------------------------------------------------------+
/// | Subsequent Address Family Identifier (1 octet)          |
/// +---------------------------------------------------------+
/// | Withdrawn Routes (variable)                             |
/// +---------------------------------------------------------+
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MpUnreach {
    /// AFI/SAFI (IPv4 or IPv6 unicast).
    pub family: Family,
    /// Withdrawn destinations.
    pub withdrawn: Vec<Nlri>,
}

/// A list that keeps up to `N` items inline and spills to the heap beyond: the attribute
/// lists of a usual route (a few AS numbers and communities) then cost no allocation when an
/// UPDATE is decoded or an attribute set is copied.
///
/// It dereferences to a slice and has the `Vec` methods the crate's users need; it compares
/// equal to a `Vec`, slice or array with the same items, and converts from them with `into()`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InlineVec<T, const N: usize>(SmallVec<[T; N]>);

impl<T, const N: usize> InlineVec<T, N> {
    /// An empty list (no allocation).
    pub fn new() -> Self {
        Self(SmallVec::new())
    }

    /// An empty list with room for `n` items (allocates only beyond `N`).
    pub fn with_capacity(n: usize) -> Self {
        Self(SmallVec::with_capacity(n))
    }

    /// The items.
    pub fn as_slice(&self) -> &[T] {
        &self.0
    }

    /// Appends an item.
    pub fn push(&mut self, item: T) {
        self.0.push(item);
    }

    /// Removes the last item.
    pub fn pop(&mut self) -> Option<T> {
        self.0.pop()
    }

    /// Inserts an item at `index` (≤ len, as for `Vec::insert`).
    pub fn insert(&mut self, index: usize, item: T) {
        self.0.insert(index, item);
    }

    /// Removes the item at `index` (< len, as for `Vec::remove`).
    pub fn remove(&mut self, index: usize) -> T {
        self.0.remove(index)
    }

    /// Keeps the items for which `keep` is true.
    pub fn retain(&mut self, mut keep: impl FnMut(&T) -> bool) {
        self.0.retain(|x| keep(x));
    }

    /// Removes every item.
    pub fn clear(&mut self) {
        self.0.clear();
    }

    /// Keeps the first `len` items.
    pub fn truncate(&mut self, len: usize) {
        self.0.truncate(len);
    }

    /// Makes room for `n` more items.
    pub fn reserve(&mut self, n: usize) {
        self.0.reserve(n);
    }

    /// Removes and yields the items in `range`.
    pub fn drain<R: std::ops::RangeBounds<usize>>(
        &mut self,
        range: R,
    ) -> impl Iterator<Item = T> + '_ {
        self.0.drain(range)
    }

    /// The items as a `Vec`.
    pub fn into_vec(self) -> Vec<T> {
        self.0.into_vec()
    }
}

impl<T: Clone, const N: usize> InlineVec<T, N> {
    /// Appends clones of `items`.
    pub fn extend_from_slice(&mut self, items: &[T]) {
        self.0.extend(items.iter().cloned());
    }
}

impl<T, const N: usize> Default for InlineVec<T, N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T, const N: usize> std::ops::Deref for InlineVec<T, N> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        &self.0
    }
}

impl<T, const N: usize> std::ops::DerefMut for InlineVec<T, N> {
    fn deref_mut(&mut self) -> &mut [T] {
        &mut self.0
    }
}

impl<T: fmt::Debug, const N: usize> fmt::Debug for InlineVec<T, N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<T, const N: usize> From<Vec<T>> for InlineVec<T, N> {
    fn from(v: Vec<T>) -> Self {
        Self(SmallVec::from_vec(v))
    }
}

impl<T: Clone, const N: usize> From<&[T]> for InlineVec<T, N> {
    fn from(v: &[T]) -> Self {
        Self(v.iter().cloned().collect())
    }
}

impl<T, const N: usize, const M: usize> From<[T; M]> for InlineVec<T, N> {
    fn from(v: [T; M]) -> Self {
        Self(v.into_iter().collect())
    }
}

impl<T, const N: usize> From<InlineVec<T, N>> for Vec<T> {
    fn from(v: InlineVec<T, N>) -> Self {
        v.0.into_vec()
    }
}

impl<T, const N: usize> FromIterator<T> for InlineVec<T, N> {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
        Self(iter.into_iter().collect())
    }
}

impl<T, const N: usize> Extend<T> for InlineVec<T, N> {
    fn extend<I: IntoIterator<Item = T>>(&mut self, iter: I) {
        self.0.extend(iter);
    }
}

impl<'a, T: Copy + 'a, const N: usize> Extend<&'a T> for InlineVec<T, N> {
    fn extend<I: IntoIterator<Item = &'a T>>(&mut self, iter: I) {
        self.0.extend(iter.into_iter().copied());
    }
}

impl<T, const N: usize> IntoIterator for InlineVec<T, N> {
    type Item = T;
    type IntoIter = smallvec::IntoIter<[T; N]>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a, T, const N: usize> IntoIterator for &'a InlineVec<T, N> {
    type Item = &'a T;
    type IntoIter = std::slice::Iter<'a, T>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl<'a, T, const N: usize> IntoIterator for &'a mut InlineVec<T, N> {
    type Item = &'a mut T;
    type IntoIter = std::slice::IterMut<'a, T>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter_mut()
    }
}

impl<T: PartialEq, const N: usize> PartialEq<Vec<T>> for InlineVec<T, N> {
    fn eq(&self, other: &Vec<T>) -> bool {
        self[..] == other[..]
    }
}

impl<T: PartialEq, const N: usize> PartialEq<[T]> for InlineVec<T, N> {
    fn eq(&self, other: &[T]) -> bool {
        self[..] == *other
    }
}

impl<T: PartialEq, const N: usize> PartialEq<&[T]> for InlineVec<T, N> {
    fn eq(&self, other: &&[T]) -> bool {
        self[..] == **other
    }
}

impl<T: PartialEq, const N: usize, const M: usize> PartialEq<[T; M]> for InlineVec<T, N> {
    fn eq(&self, other: &[T; M]) -> bool {
        self[..] == other[..]
    }
}
