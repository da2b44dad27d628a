//! # tern — the daemons
//!
//! **Owns:** `ternd` (the Calico node daemon, in place of confd + BIRD + BIRD6) and `tern-rr`
//! (the standalone route reflector): process set-up, environment and flags, logging, opening
//! and following the configuration source (a Calico datastore through `controller`, or a
//! `DesiredConfig` file), applying it to the speaker, and wiring the BIRD-compatible control
//! socket (`tern-control`), the metrics endpoint and the CalicoNodeStatus reporter
//! (`tern-ops`) to the running speaker. `ternc` lives in `tern-control`.
//!
//! **Must not know:** protocol details beyond what the speaker's API exposes.

#![forbid(unsafe_code)]

pub mod daemon;
