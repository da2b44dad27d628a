//! # tern-speaker — the embeddable BGP speaker
//!
//! **Owns:** wiring sessions (`bgp-wire`), the RIB (`rib`) and the kernel (`fib-netlink`)
//! together as tasks joined by bounded channels; applying a `tern_config::DesiredConfig` by
//! diffing it against the running one, so that unchanged sessions are never reset; the typed
//! query API and event stream used by embedders and the control socket.
//!
//! **Must not know:** Calico or any datastore: it is told what to do by a `DesiredConfig`.
