//! # controller — Calico resources to Tern's desired configuration
//!
//! **Owns:** serde types for the Calico v3 resources Tern reads, the three datastores
//! (Kubernetes, etcd v3, a folder of YAML) behind one trait, Calico's selector language, and
//! the pure function that computes a node's `tern_config::DesiredConfig` exactly as confd
//! would compute BIRD's configuration.
//!
//! **Must not know:** the BGP wire format, sessions, the RIB's internals or the kernel. Its
//! output is plain configuration data.
//!
//! Map: [`resources`] (serde types) → [`model`] (validated snapshot, problems per object) ←
//! [`datastore`] (`file`, `etcd`, `kubernetes`) → [`compute()`] (confd's
//! peer, filter and kernel rules) → `DesiredConfig`. [`selector`] parses Calico selectors,
//! [`services`] computes service IP advertisement, [`endpoint_status`] reads Felix's
//! local-workload peering files, [`node_status`] holds the CalicoNodeStatus report (Calico's
//! shape, no speaker types) and writes it back into each datastore.

#![forbid(unsafe_code)]

pub mod compute;
pub mod datastore;
pub mod endpoint_status;
pub mod model;
pub mod node_status;
pub mod resources;
pub mod selector;
pub mod services;

pub use compute::{ComputeError, LocalWorkload, NodeEnv, compute};
pub use model::{Model, Problem, Resource};
