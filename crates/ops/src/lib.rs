//! # tern-ops — metrics and node status for a running speaker
//!
//! **Owns:** the Prometheus text endpoint ([`metrics`]: every value read from the speaker at
//! scrape time, nothing counted twice) and the CalicoNodeStatus reporter ([`node_status`]:
//! what calico-node's status reporter writes, from the speaker's peers and routes).
//!
//! **Must not know:** the BGP wire format, sessions or the kernel (it reads the speaker's
//! query API only), nor how a datastore stores a status (`controller::node_status` writes it).
//!
//! ## Entry points for the daemons
//!
//! ```text
//! // --metrics-addr ADDR (off by default)
//! let gauges = tern_ops::metrics::DatastoreGauges::new();
//! let metrics = tern_ops::metrics::serve(addr, speaker.clone(), gauges.clone()).await?;
//! // after each datastore snapshot: gauges.set_synced(true); gauges.set_last_sync(SystemTime::now());
//! // when a datastore read fails:   gauges.set_synced(false);
//!
//! // CalicoNodeStatus (Calico datastores only), the store matching the datastore:
//! use controller::node_status::*;
//! let store = StatusStore::File(FileStatusStore::new(&config_dir));
//! //  or StatusStore::Etcd(Box::new(EtcdStatusStore::connect(endpoints).await?))
//! //  or StatusStore::Kubernetes(KubeStatusStore::infer().await?)
//! let (statuses, requests) = tokio::sync::watch::channel(BTreeMap::new());
//! let reporter = tokio::spawn(tern_ops::node_status::run(store, node_name, speaker.clone(), requests));
//! // after each snapshot: statuses.send_replace(snapshot.model.node_statuses.clone());
//!
//! // shutdown, before Arc::try_unwrap(speaker):
//! metrics.shutdown().await;             // waits for scrapes in flight
//! drop(statuses); let _ = reporter.await; // or reporter.abort() first, to not wait for a write
//! ```

#![forbid(unsafe_code)]

pub mod clock;
mod http;
pub mod metrics;
pub mod node_status;
