//! # rib — routing information bases and the decision process
//!
//! **Owns:** Adj-RIB-In per peer, the Loc-RIB, Adj-RIB-Out per update group, the BGP
//! decision process (RFC 4271 §9.1 with the usual extensions), ECMP sets, ADD-PATH
//! (RFC 7911), route reflection (RFC 4456), graceful-restart stale handling (RFC 4724, 8538,
//! 9494), and the evaluation of Tern's policy language (`tern_config::policy`).
//!
//! **Must not know:** sockets, timers of its own, netlink, or Calico. It is a pure library:
//! route changes and time in, route changes out. It uses `bgp-wire` only for attribute and
//! NLRI types.
