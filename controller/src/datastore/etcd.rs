//! The `etcdv3` datastore (contract §5.2).
//!
//! Keys read, in one consistent range read of `/calico/`:
//! * `/calico/resources/v3/projectcalico.org/<plural>/<name>`: v3 resources as JSON
//!   (`bgpconfigurations`, `bgppeers`, `bgpfilters`, `ippools`, `nodes`, `caliconodestatuses`);
//! * `/calico/ipam/v2/host/<node>/ipv4|ipv6/block/<a.b.c.d-len>`: block affinities, value
//!   `{"state": …}` (empty or `{}` = implicitly confirmed).
//!
//! After the snapshot, a prefix watch starts at the snapshot revision + 1; each watch response is
//! applied as a whole (one etcd revision batch), so every published snapshot is consistent. When
//! the watch start revision has been compacted away, or the watch is cancelled, a fresh snapshot
//! is taken instead.

use std::collections::BTreeMap;
use std::time::Duration;

use etcd_client::{Client, ConnectOptions, EventType, GetOptions, WatchOptions, WatchStream};
use serde_json::{Value, json};

use super::{Datastore, DatastoreError, Snapshot};
use crate::model::Model;

/// Everything under this prefix is read.
const ROOT: &str = "/calico/";
const V3: &str = "/calico/resources/v3/projectcalico.org/";
const AFFINITY: &str = "/calico/ipam/v2/host/";

/// An etcd v3 cluster.
pub struct EtcdDatastore {
    endpoints: Vec<String>,
    runtime: tokio::runtime::Runtime,
    client: Option<Client>,
    kv: BTreeMap<String, String>,
    etcd_revision: i64,
    revision: u64,
    watch: Option<WatchStream>,
}

fn err(endpoints: &[String], message: impl std::fmt::Display) -> DatastoreError {
    DatastoreError::Remote {
        what: format!("etcd {}", endpoints.join(",")),
        message: message.to_string(),
    }
}

impl EtcdDatastore {
    /// A datastore for these endpoints (`http://host:port`, as in `ETCD_ENDPOINTS`).
    pub fn new(endpoints: Vec<String>) -> Result<EtcdDatastore, DatastoreError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| err(&endpoints, e))?;
        Ok(EtcdDatastore {
            endpoints,
            runtime,
            client: None,
            kv: BTreeMap::new(),
            etcd_revision: 0,
            revision: 0,
            watch: None,
        })
    }

    fn client(&mut self) -> Result<Client, DatastoreError> {
        if let Some(c) = &self.client {
            return Ok(c.clone());
        }
        let opts = ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(5))
            .with_timeout(Duration::from_secs(10));
        let eps = self.endpoints.clone();
        let c = self
            .runtime
            .block_on(Client::connect(eps.clone(), Some(opts)))
            .map_err(|e| err(&eps, e))?;
        self.client = Some(c.clone());
        Ok(c)
    }

    fn publish(&mut self) -> Snapshot {
        let docs = self
            .kv
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), key_to_doc(k, v)?)));
        let (model, problems) = Model::from_documents(docs);
        self.revision += 1;
        Snapshot {
            model,
            problems,
            revision: self.revision,
        }
    }

    /// The etcd revision of the last snapshot.
    pub fn etcd_revision(&self) -> i64 {
        self.etcd_revision
    }
}

/// Map one etcd key and value to a resource document (`None` for keys Tern does not read).
pub fn key_to_doc(key: &str, value: &str) -> Option<Value> {
    if let Some(rest) = key.strip_prefix(V3) {
        let (plural, name) = rest.split_once('/')?;
        let kind = match plural {
            "bgpconfigurations" => "BGPConfiguration",
            "bgppeers" => "BGPPeer",
            "bgpfilters" => "BGPFilter",
            "ippools" => "IPPool",
            "nodes" => "Node",
            "caliconodestatuses" => "CalicoNodeStatus",
            _ => return None,
        };
        let mut v: Value =
            serde_json::from_str(value).unwrap_or_else(|_| json!({"invalid JSON": value}));
        if let Value::Object(o) = &mut v {
            o.entry("kind")
                .or_insert_with(|| Value::String(kind.into()));
            o.entry("apiVersion")
                .or_insert_with(|| Value::String("projectcalico.org/v3".into()));
            let meta = o.entry("metadata").or_insert_with(|| json!({}));
            if let Value::Object(m) = meta {
                m.entry("name")
                    .or_insert_with(|| Value::String(name.into()));
            }
        }
        return Some(v);
    }
    let rest = key.strip_prefix(AFFINITY)?;
    // <node>/ipv4/block/<cidr-with-dash>
    let parts: Vec<&str> = rest.split('/').collect();
    let [node, family, "block", cidr] = parts.as_slice() else {
        return None;
    };
    if !matches!(*family, "ipv4" | "ipv6") {
        return None;
    }
    let (addr, len) = cidr.rsplit_once('-')?;
    let state = serde_json::from_str::<Value>(value)
        .ok()
        .and_then(|v| v.get("state").and_then(Value::as_str).map(str::to_string))
        .unwrap_or_default();
    Some(json!({
        "apiVersion": "projectcalico.org/v3",
        "kind": "BlockAffinity",
        "metadata": {"name": format!("{node}-{}", cidr.replace([':', '.'], "-"))},
        "spec": {"node": node, "cidr": format!("{addr}/{len}"), "state": state},
    }))
}

impl Datastore for EtcdDatastore {
    fn snapshot(&mut self) -> Result<Snapshot, DatastoreError> {
        let mut client = self.client()?;
        let eps = self.endpoints.clone();
        let resp = self
            .runtime
            .block_on(client.get(ROOT, Some(GetOptions::new().with_prefix())))
            .map_err(|e| err(&eps, e))?;
        self.etcd_revision = resp.header().map_or(0, |h| h.revision());
        self.kv = resp
            .kvs()
            .iter()
            .filter_map(|kv| {
                Some((
                    kv.key_str().ok()?.to_string(),
                    kv.value_str().ok()?.to_string(),
                ))
            })
            .filter(|(k, _)| k.starts_with(V3) || k.starts_with(AFFINITY))
            .collect();
        self.watch = None;
        Ok(self.publish())
    }

    fn next_change(&mut self, timeout: Duration) -> Result<Option<Snapshot>, DatastoreError> {
        let eps = self.endpoints.clone();
        if self.watch.is_none() {
            let mut client = self.client()?;
            let opts = WatchOptions::new()
                .with_prefix()
                .with_start_revision(self.etcd_revision + 1);
            let w = self
                .runtime
                .block_on(client.watch(ROOT, Some(opts)))
                .map_err(|e| err(&eps, e))?;
            self.watch = Some(w);
        }
        let deadline = std::time::Instant::now() + timeout;
        let msg = loop {
            let Some(stream) = self.watch.as_mut() else {
                return Ok(None);
            };
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let msg = match self
                .runtime
                .block_on(async { tokio::time::timeout(left, stream.message()).await })
            {
                Err(_) => return Ok(None),
                Ok(Err(e)) => {
                    self.watch = None;
                    return Err(err(&eps, e));
                }
                Ok(Ok(None)) => {
                    self.watch = None;
                    return Err(err(&eps, "watch closed by the server"));
                }
                Ok(Ok(Some(m))) => m,
            };
            if msg.compact_revision() > 0 || msg.canceled() {
                // Our start revision is gone: start again from a fresh snapshot.
                return self.snapshot().map(Some);
            }
            // Skip the creation acknowledgement and progress notifications.
            if !msg.events().is_empty() {
                break msg;
            }
        };
        for ev in msg.events() {
            let Some(kv) = ev.kv() else { continue };
            let Ok(key) = kv.key_str() else { continue };
            if !(key.starts_with(V3) || key.starts_with(AFFINITY)) {
                continue;
            }
            match ev.event_type() {
                EventType::Put => {
                    if let Ok(v) = kv.value_str() {
                        self.kv.insert(key.to_string(), v.to_string());
                    }
                }
                EventType::Delete => {
                    self.kv.remove(key);
                }
            }
            self.etcd_revision = self.etcd_revision.max(kv.mod_revision());
        }
        if let Some(h) = msg.header() {
            self.etcd_revision = self.etcd_revision.max(h.revision());
        }
        Ok(Some(self.publish()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_map_to_resources() {
        let v = key_to_doc(
            "/calico/resources/v3/projectcalico.org/bgppeers/p1",
            r#"{"spec":{"peerIP":"10.0.0.1"}}"#,
        )
        .unwrap();
        assert_eq!(v["kind"], "BGPPeer");
        assert_eq!(v["metadata"]["name"], "p1");
        let a = key_to_doc(
            "/calico/ipam/v2/host/kube-master/ipv4/block/10.0.0.0-30",
            "",
        )
        .unwrap();
        assert_eq!(a["spec"]["cidr"], "10.0.0.0/30");
        assert_eq!(a["spec"]["state"], "");
        let a = key_to_doc(
            "/calico/ipam/v2/host/n/ipv6/block/fd00::-122",
            r#"{"state":"confirmed"}"#,
        )
        .unwrap();
        assert_eq!(a["spec"]["cidr"], "fd00::/122");
        assert_eq!(a["spec"]["state"], "confirmed");
        assert!(key_to_doc("/calico/ipam/v2/assignment/ipv4/block/10.0.0.0-26", "{}").is_none());
        assert!(
            key_to_doc(
                "/calico/resources/v3/projectcalico.org/networkpolicies/x",
                "{}"
            )
            .is_none()
        );
    }
}
