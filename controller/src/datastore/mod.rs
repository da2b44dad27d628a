//! Datastores: where resources come from. Each gives a consistent [`Snapshot`] first, then a
//! stream of newer consistent snapshots as the datastore changes (`compute()` is cheap and pure,
//! so consumers simply recompute from each snapshot and diff the result).

#[cfg(feature = "remote")]
pub mod etcd;
pub mod file;
#[cfg(feature = "remote")]
pub mod kubernetes;

use std::time::Duration;

use crate::model::{Model, Problem};

#[cfg(feature = "remote")]
pub use etcd::EtcdDatastore;
pub use file::FileDatastore;

/// A consistent view of the datastore.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Snapshot {
    /// The resources that parsed and validated.
    pub model: Model,
    /// Resources (or whole files) that were left out, and why.
    pub problems: Vec<Problem>,
    /// Monotonic revision of this snapshot within its datastore.
    pub revision: u64,
}

/// A datastore that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum DatastoreError {
    /// I/O on a path failed.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// A remote datastore failed or is unreachable.
    #[error("{what}: {message}")]
    Remote {
        /// Which datastore (type and endpoints).
        what: String,
        /// What failed.
        message: String,
    },
    /// The change watcher failed.
    #[error("watching {path}: {message}")]
    Watch {
        /// The path.
        path: String,
        /// What failed.
        message: String,
    },
}

/// One source of Calico resources.
pub trait Datastore {
    /// Read a consistent snapshot now.
    fn snapshot(&mut self) -> Result<Snapshot, DatastoreError>;

    /// Wait up to `timeout` for the datastore to change; return the new snapshot, or `None` when
    /// nothing changed in time.
    fn next_change(&mut self, timeout: Duration) -> Result<Option<Snapshot>, DatastoreError>;
}
