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
