//! # bgp-wire — BGP-4 on the wire
//!
//! **Owns:** the BGP-4 message codec (RFC 4271 and its extensions: decode with `nom` from
//! [`bytes::Bytes`], encode into `BytesMut`), capability negotiation, the RFC 7606 error
//! handling decisions (NOTIFICATION, treat-as-withdraw, attribute discard), and the session
//! finite state machine of RFC 4271 §8 as a sans-IO core plus its thin tokio driver.
//!
//! **Must not know:** any routing table (no Adj-RIB, no best path), the kernel, or Calico.
//! Nothing here reads a clock or a global: decoding takes an explicit session context, and
//! the state machine takes events and time and returns actions.
//!
//! ## Public API in one screen
//!
//! * **Framing** a TCP byte stream: [`frame`] tells whether a whole message is at the front
//!   of a buffer (checks marker and length, max 4096 or 65535); [`next_message`] splits it off
//!   a `BytesMut` as `Bytes`.
//! * **Decoding** one framed message: [`Message::decode`]`(bytes, &`[`DecodeContext`]`)` →
//!   `Ok(`[`Decoded`]`)` (message + non-fatal RFC 7606 errors: treat-as-withdraw, attribute
//!   discard) or `Err(`[`DecodeError`]`)` with [`Action::Notification`] (send
//!   [`DecodeError::notification`] and close). The context says whether 4-octet ASes, ADD-PATH
//!   ([`AddPath`]) and extended messages were negotiated. For eBGP peers also call
//!   [`Decoded::apply_external_peer_rules`] (LOCAL_PREF discard, first-AS and confederation
//!   checks). [`Decoded::treat_as_withdraw`] lists the NLRI to withdraw, if any.
//! * **Encoding**: [`Message::encode`]`(&`[`EncodeContext`]`, &mut BytesMut)`; each message
//!   type also has its own `encode`, and [`encode_keepalive`] writes a KEEPALIVE. Encoding
//!   an UPDATE that does not fit fails with [`EncodeError::TooLong`] and leaves the buffer as
//!   it was.
//! * **Packing UPDATEs**: [`UpdatePacker`] turns one attribute set plus many prefixes (IPv4 in
//!   the NLRI field, IPv6 in MP_REACH_NLRI) or many withdrawals into as few UPDATEs as the
//!   negotiated maximum size allows ([`UpdatePacker::announce`], [`UpdatePacker::withdraw`],
//!   [`UpdatePacker::end_of_rib`]).
//! * **Prefix lists** on their own: [`nlri::decode_nlri`], [`nlri::encode_nlri`].
//!
//! Speed: `cargo run --release -p bgp-wire --example codec_speed` prints CPU time per prefix
//! for an UPDATE with 1,000 IPv4 prefixes (about 3 ns decode, 3–4 ns encode, 4 ns packing on
//! the 2-core development VM).
//! * **Types**: [`Prefix`], [`Nlri`], [`Family`], [`PathAttributes`] (hashable, NLRI-free, for
//!   interning), [`AsPath`], [`Community`], [`LargeCommunity`], [`ExtendedCommunity`],
//!   [`NextHop`], [`MpReach`], [`MpUnreach`], [`Open`], [`Capability`], [`Update`]
//!   (End-of-RIB: [`Update::end_of_rib`], [`Update::as_end_of_rib`]), [`Notification`]
//!   (shutdown communication: [`Notification::shutdown_communication`]), [`RouteRefresh`].
//!   All code points are in [`iana`].
//!
//! The session state machine is [`fsm`] (sans-IO: events and time in, actions out) and its
//! tokio driver is [`session`] (TCP:179, MD5, GTSM, collision handling).

// `deny`, not `forbid`: the one module that sets socket options (`session::sockopt`: TCP-MD5,
// GTSM, TTL) allows it locally and documents every unsafe block; nothing else may.
#![deny(unsafe_code)]

pub mod attribute;
pub mod capability;
pub mod context;
mod decode;
mod encode;
pub mod error;
pub mod framing;
pub mod fsm;
pub mod iana;
pub mod message;
pub mod nlri;
mod packer;
pub mod prefix;
pub mod session;

pub use attribute::{
    Aggregator, AsPath, AsSegment, Community, ExtendedCommunity, InlineVec, LargeCommunity,
    MpReach, MpUnreach, NextHop, PathAttributes, RawAttribute,
};
pub use capability::{
    AddPathFamily, Capability, ExtendedNextHop, GracefulRestart, GracefulRestartFamily, LlgrFamily,
};
pub use context::{
    AddPath, DecodeContext, EncodeContext, HEADER_LEN, MAX_EXTENDED_MESSAGE_LEN, MAX_MESSAGE_LEN,
};
pub use encode::encode_keepalive;
pub use error::{Action, DecodeError, EncodeError, NlriField, Reason};
pub use framing::{frame, next_message};
pub use iana::{
    Afi, AttributeType, CapabilityCode, ErrorCode, MessageType, Origin, Safi, SegmentType,
};
pub use message::{Decoded, Message, Notification, Open, RouteRefresh, Update};
pub use nlri::{Family, Nlri, NlriError};
pub use packer::UpdatePacker;
pub use prefix::{Prefix, PrefixError};
