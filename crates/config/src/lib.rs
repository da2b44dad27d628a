//! # tern-config — what the speaker is asked to do
//!
//! **Owns:** the speaker's desired configuration as one plain, serialisable, diffable value:
//! router id, AS, listen address, peers, named policies (the policy language the RIB
//! evaluates), blackhole routes and kernel programming rules.
//!
//! **Must not know:** where the configuration came from (Calico, a file, an embedder) or how it
//! is carried out (wire, RIB, kernel). It depends on nothing of Tern's.
