//! # tern-benches — performance claims, reproducible
//!
//! **Owns:** the criterion micro benches of every crate (codec, RIB, kernel writes) and the
//! convergence harness that runs the same scenarios against Tern, BIRD, GoBGP and FRR.
//! Every figure in the README names the command here that reproduces it.
//!
//! **Must not know:** nothing is hidden from benches, but no test asserts a wall-clock time.

#![forbid(unsafe_code)]
