//! # tern — the binaries
//!
//! **Owns:** `ternd` (the Calico node daemon), `tern-rr` (the standalone route reflector) and
//! `ternc` (the operator CLI): process set-up, environment and flags, logging, the
//! BIRD-compatible control socket and the Prometheus endpoint.
//!
//! **Must not know:** protocol details beyond what the speaker's API exposes.

pub mod daemon;
