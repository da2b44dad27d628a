//! The `kubernetes` datastore's sans-IO core: Kubernetes list+watch semantics over the
//! collections Tern reads (contract §5.1), independent of any HTTP client.
//!
//! Collections: Calico's CRDs in `crd.projectcalico.org/v1` (BGPConfiguration, BGPPeer,
//! BGPFilter, IPPool, BlockAffinity, CalicoNodeStatus), core Nodes (BGP identity in
//! `projectcalico.org/*` annotations), Secrets in calico-node's namespace, Services and
//! EndpointSlices. For each collection the driver asks [`KubeSync::request`] what to do next —
//! a list, or a watch from the last `resourceVersion` with bookmarks — and feeds the response
//! body ([`KubeSync::apply_list`]) or each watch line ([`KubeSync::apply_watch_line`]) back.
//! `410 Gone` (an expired resourceVersion) makes the collection re-list; transport errors give
//! an exponential back-off ([`KubeSync::on_error`]). A snapshot exists once every collection has
//! been listed; every applied event yields a new consistent snapshot.
//!
//! [`KubeDatastore`] drives it over HTTP with the `kube` crate's client (kubeconfig or in-cluster
//! credentials): one list per collection for the snapshot, then one watch task per collection
//! feeding a bounded channel. A watch stream that ends or breaks is resumed from its last
//! resourceVersion; `410 Gone`, as a watch `ERROR` event or as the HTTP status of the watch
//! request, re-lists that collection. A watch request the API server does not answer (refused,
//! any other error status) twice in a row (or once after a broken stream) or a re-list that
//! fails is the datastore lost: `next_change`
//! returns the error, so the daemon reports it and resynchronises from a fresh snapshot.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

use futures_util::io::AsyncBufReadExt;
use futures_util::stream::StreamExt;
use tokio::sync::mpsc;

use super::{Datastore, DatastoreError, Snapshot};
use crate::model::Model;

/// One watched collection.
#[derive(Clone, Debug)]
struct Collection {
    path: String,
    kind: &'static str,
    api_version: &'static str,
    resource_version: Option<String>,
    items: BTreeMap<(String, String), Value>,
    listed: bool,
    failures: u32,
}

/// What the driver should do next for one collection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// `GET path` (a full list).
    List {
        /// Request path.
        path: String,
    },
    /// `GET path?watch=1&resourceVersion=…&allowWatchBookmarks=true`, streaming JSON lines.
    Watch {
        /// Request path with query.
        path: String,
    },
}

/// What one watch line did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WatchOutcome {
    /// An object was added, changed or deleted.
    Changed,
    /// A bookmark moved the resourceVersion on; nothing else changed.
    Bookmark,
    /// The resourceVersion expired (`410 Gone`): the collection must be re-listed.
    Expired,
}

/// A response that cannot be understood.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct SyncError {
    /// The collection.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

/// List+watch state of every collection.
#[derive(Clone, Debug)]
pub struct KubeSync {
    collections: Vec<Collection>,
    revision: u64,
}

impl KubeSync {
    /// The collections for a calico-node running in `namespace` (where BGP password Secrets
    /// live).
    pub fn new(namespace: &str) -> KubeSync {
        let crd = |plural: &str, kind: &'static str| {
            (
                format!("/apis/crd.projectcalico.org/v1/{plural}"),
                kind,
                "crd.projectcalico.org/v1",
            )
        };
        let specs = vec![
            crd("bgpconfigurations", "BGPConfiguration"),
            crd("bgppeers", "BGPPeer"),
            crd("bgpfilters", "BGPFilter"),
            crd("ippools", "IPPool"),
            crd("blockaffinities", "BlockAffinity"),
            crd("caliconodestatuses", "CalicoNodeStatus"),
            ("/api/v1/nodes".to_string(), "Node", "v1"),
            (
                format!("/api/v1/namespaces/{namespace}/secrets"),
                "Secret",
                "v1",
            ),
            ("/api/v1/services".to_string(), "Service", "v1"),
            (
                "/apis/discovery.k8s.io/v1/endpointslices".to_string(),
                "EndpointSlice",
                "discovery.k8s.io/v1",
            ),
        ];
        KubeSync {
            collections: specs
                .into_iter()
                .map(|(path, kind, api_version)| Collection {
                    path,
                    kind,
                    api_version,
                    resource_version: None,
                    items: BTreeMap::new(),
                    listed: false,
                    failures: 0,
                })
                .collect(),
            revision: 0,
        }
    }

    /// Number of collections (indices for the other methods are `0..len()`).
    pub fn len(&self) -> usize {
        self.collections.len()
    }

    /// Never empty; present for symmetry with `len`.
    pub fn is_empty(&self) -> bool {
        self.collections.is_empty()
    }

    /// The collection's API path.
    pub fn path(&self, index: usize) -> Option<&str> {
        self.collections.get(index).map(|c| c.path.as_str())
    }

    /// The next request for collection `index`.
    pub fn request(&self, index: usize) -> Option<Request> {
        let c = self.collections.get(index)?;
        Some(match (&c.resource_version, c.listed) {
            (Some(rv), true) => Request::Watch {
                path: format!(
                    "{}?watch=1&resourceVersion={rv}&allowWatchBookmarks=true",
                    c.path
                ),
            },
            _ => Request::List {
                path: c.path.clone(),
            },
        })
    }

    fn err(&self, index: usize, message: impl Into<String>) -> SyncError {
        SyncError {
            path: self.path(index).unwrap_or("?").to_string(),
            message: message.into(),
        }
    }

    /// Apply a list response body (replaces the collection's content).
    pub fn apply_list(&mut self, index: usize, body: &[u8]) -> Result<(), SyncError> {
        let v: Value = serde_json::from_slice(body)
            .map_err(|e| self.err(index, format!("list is not JSON: {e}")))?;
        if v.get("kind").and_then(Value::as_str) == Some("Status") {
            return Err(self.err(
                index,
                format!(
                    "list failed: {}",
                    v.get("message").and_then(Value::as_str).unwrap_or("?")
                ),
            ));
        }
        let Some(items) = v.get("items").and_then(Value::as_array) else {
            return Err(self.err(index, "list has no items"));
        };
        let rv = v
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .map(str::to_string);
        let c = self.collections.get_mut(index).ok_or_else(|| SyncError {
            path: "?".into(),
            message: "no such collection".into(),
        })?;
        c.items.clear();
        for item in items {
            let item = with_type(item.clone(), c.kind, c.api_version);
            c.items.insert(object_key(&item), item);
        }
        c.resource_version = rv;
        c.listed = true;
        c.failures = 0;
        self.revision += 1;
        Ok(())
    }

    /// Apply one line of a watch stream.
    pub fn apply_watch_line(
        &mut self,
        index: usize,
        line: &[u8],
    ) -> Result<WatchOutcome, SyncError> {
        let v: Value = serde_json::from_slice(line)
            .map_err(|e| self.err(index, format!("watch event is not JSON: {e}")))?;
        let kind = v
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let object = v.get("object").cloned().unwrap_or(Value::Null);
        let rv = object
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .map(str::to_string);
        let Some(c) = self.collections.get_mut(index) else {
            return Err(SyncError {
                path: "?".into(),
                message: "no such collection".into(),
            });
        };
        match kind.as_str() {
            "ADDED" | "MODIFIED" => {
                let item = with_type(object, c.kind, c.api_version);
                c.items.insert(object_key(&item), item);
            }
            "DELETED" => {
                c.items.remove(&object_key(&object));
            }
            "BOOKMARK" => {
                if rv.is_some() {
                    c.resource_version = rv;
                }
                return Ok(WatchOutcome::Bookmark);
            }
            "ERROR" => {
                let code = object.get("code").and_then(Value::as_u64);
                if code == Some(410) {
                    c.resource_version = None;
                    c.listed = false;
                    return Ok(WatchOutcome::Expired);
                }
                let msg = object
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("?")
                    .to_string();
                return Err(SyncError {
                    path: c.path.clone(),
                    message: format!("watch error {code:?}: {msg}"),
                });
            }
            other => {
                return Err(SyncError {
                    path: c.path.clone(),
                    message: format!("unknown watch event type {other:?}"),
                });
            }
        }
        if rv.is_some() {
            c.resource_version = rv;
        }
        c.failures = 0;
        self.revision += 1;
        Ok(WatchOutcome::Changed)
    }

    /// The collection's resourceVersion expired (`410 Gone` to a watch request): it must be
    /// listed again before it is watched, and there is no snapshot until then.
    pub fn expire(&mut self, index: usize) {
        if let Some(c) = self.collections.get_mut(index) {
            c.resource_version = None;
            c.listed = false;
        }
    }

    /// Failed requests of this collection since its last good list or watch event.
    pub fn failures(&self, index: usize) -> u32 {
        self.collections.get(index).map_or(u32::MAX, |c| c.failures)
    }

    /// A transport error on collection `index`: how long to wait before its next request
    /// (exponential back-off from 200 ms, capped at 30 s).
    pub fn on_error(&mut self, index: usize) -> Duration {
        let Some(c) = self.collections.get_mut(index) else {
            return Duration::from_secs(30);
        };
        c.failures = c.failures.saturating_add(1);
        let ms = 200u64.saturating_mul(1u64 << c.failures.saturating_sub(1).min(10));
        Duration::from_millis(ms.min(30_000))
    }

    /// A consistent snapshot once every collection has been listed.
    pub fn snapshot(&self) -> Option<Snapshot> {
        if !self.collections.iter().all(|c| c.listed) {
            return None;
        }
        let docs = self
            .collections
            .iter()
            .flat_map(|c| c.items.values().map(move |v| (c.path.clone(), v.clone())));
        let (model, problems) = Model::from_documents(docs);
        Some(Snapshot {
            model,
            problems,
            revision: self.revision,
        })
    }
}

/// List items come without `kind`/`apiVersion`; put them back.
fn with_type(mut v: Value, kind: &str, api_version: &str) -> Value {
    if let Value::Object(o) = &mut v {
        o.entry("kind")
            .or_insert_with(|| Value::String(kind.into()));
        o.entry("apiVersion")
            .or_insert_with(|| Value::String(api_version.into()));
    }
    v
}

fn object_key(v: &Value) -> (String, String) {
    let meta = |k: &str| {
        v.pointer(&format!("/metadata/{k}"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    (meta("namespace"), meta("name"))
}

// ===== the HTTP driver =====

/// Capacity of the channel from the watch tasks (a full channel slows the watches down).
const EVENT_QUEUE: usize = 1024;

enum WatchMsg {
    Line(Vec<u8>),
    /// The server ended the stream.
    Ended,
    /// The stream broke after it was established.
    Broken(String),
    /// The watch request was answered `410 Gone` (resourceVersion too old).
    Gone,
    /// The watch request failed: the API server is unreachable or refused it.
    Unreachable(String),
}

/// The `kubernetes` datastore over HTTP.
pub struct KubeDatastore {
    runtime: tokio::runtime::Runtime,
    client: kube::Client,
    what: String,
    sync: KubeSync,
    tx: mpsc::Sender<(usize, WatchMsg)>,
    rx: mpsc::Receiver<(usize, WatchMsg)>,
    tasks: Vec<Option<tokio::task::JoinHandle<()>>>,
}

fn remote(what: &str, message: impl std::fmt::Display) -> DatastoreError {
    DatastoreError::Remote {
        what: what.to_string(),
        message: message.to_string(),
    }
}

async fn watch_task(
    client: kube::Client,
    index: usize,
    path: String,
    delay: Duration,
    tx: mpsc::Sender<(usize, WatchMsg)>,
) {
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let req = match http::Request::get(&path).body(Vec::new()) {
        Ok(r) => r,
        Err(e) => {
            let _ = tx.send((index, WatchMsg::Unreachable(e.to_string()))).await;
            return;
        }
    };
    let body = match client.request_stream(req).await {
        Ok(b) => b,
        Err(kube::Error::Api(status)) if status.code == 410 => {
            let _ = tx.send((index, WatchMsg::Gone)).await;
            return;
        }
        Err(e) => {
            let _ = tx.send((index, WatchMsg::Unreachable(e.to_string()))).await;
            return;
        }
    };
    let mut lines = Box::pin(body).lines();
    while let Some(line) = lines.next().await {
        let msg = match line {
            Ok(l) if l.trim().is_empty() => continue,
            Ok(l) => WatchMsg::Line(l.into_bytes()),
            Err(e) => WatchMsg::Broken(e.to_string()),
        };
        let failed = matches!(msg, WatchMsg::Broken(_));
        if tx.send((index, msg)).await.is_err() || failed {
            return;
        }
    }
    let _ = tx.send((index, WatchMsg::Ended)).await;
}

impl KubeDatastore {
    /// A datastore using `client` (e.g. from `kube::Config::infer()` or `Config::new(url)`),
    /// for a calico-node running in `namespace`.
    pub fn new(
        runtime: tokio::runtime::Runtime,
        client: kube::Client,
        what: &str,
        namespace: &str,
    ) -> KubeDatastore {
        let (tx, rx) = mpsc::channel(EVENT_QUEUE);
        let sync = KubeSync::new(namespace);
        let tasks = (0..sync.len()).map(|_| None).collect();
        KubeDatastore {
            runtime,
            client,
            what: what.to_string(),
            sync,
            tx,
            rx,
            tasks,
        }
    }

    /// Connect with `KUBECONFIG` / `~/.kube/config` or in-cluster credentials.
    pub fn infer(namespace: &str) -> Result<KubeDatastore, DatastoreError> {
        let what = "kubernetes".to_string();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| remote(&what, e))?;
        let client = runtime.block_on(async {
            let config = kube::Config::infer().await.map_err(|e| remote(&what, e))?;
            let url = config.cluster_url.to_string();
            kube::Client::try_from(config)
                .map(|c| (c, url))
                .map_err(|e| remote(&what, e))
        })?;
        let what = format!("kubernetes {}", client.1);
        Ok(KubeDatastore::new(runtime, client.0, &what, namespace))
    }

    /// Connect to an API server URL without credentials (tests, `kubectl proxy`).
    pub fn with_url(url: &str, namespace: &str) -> Result<KubeDatastore, DatastoreError> {
        let what = format!("kubernetes {url}");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| remote(&what, e))?;
        let uri: http::Uri = url.parse().map_err(|e| remote(&what, e))?;
        let client = {
            let _guard = runtime.enter();
            kube::Client::try_from(kube::Config::new(uri)).map_err(|e| remote(&what, e))?
        };
        Ok(KubeDatastore::new(runtime, client, &what, namespace))
    }

    fn list(&mut self, index: usize) -> Result<(), DatastoreError> {
        let path = self.sync.path(index).unwrap_or_default().to_string();
        let req = http::Request::get(&path)
            .body(Vec::new())
            .map_err(|e| remote(&self.what, e))?;
        let client = self.client.clone();
        let body = self
            .runtime
            .block_on(async move { client.request_text(req).await })
            .map_err(|e| remote(&self.what, format!("{path}: {e}")))?;
        self.sync
            .apply_list(index, body.as_bytes())
            .map_err(|e| remote(&self.what, e))
    }

    fn start_watch(&mut self, index: usize, delay: Duration) {
        let Some(Request::Watch { path }) = self.sync.request(index) else {
            return;
        };
        if let Some(Some(old)) = self.tasks.get_mut(index).map(Option::take) {
            old.abort();
        }
        let task = self.runtime.spawn(watch_task(
            self.client.clone(),
            index,
            path,
            delay,
            self.tx.clone(),
        ));
        if let Some(slot) = self.tasks.get_mut(index) {
            *slot = Some(task);
        }
    }
}

impl Drop for KubeDatastore {
    fn drop(&mut self) {
        for t in self.tasks.iter_mut().filter_map(Option::take) {
            t.abort();
        }
    }
}

impl Datastore for KubeDatastore {
    fn snapshot(&mut self) -> Result<Snapshot, DatastoreError> {
        for i in 0..self.sync.len() {
            self.list(i)?;
        }
        for i in 0..self.sync.len() {
            self.start_watch(i, Duration::ZERO);
        }
        self.sync
            .snapshot()
            .ok_or_else(|| remote(&self.what, "not every collection was listed"))
    }

    fn next_change(&mut self, timeout: Duration) -> Result<Option<Snapshot>, DatastoreError> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            let rx = &mut self.rx;
            let Ok(Some((index, msg))) = self
                .runtime
                .block_on(async { tokio::time::timeout(left, rx.recv()).await })
            else {
                continue;
            };
            match msg {
                WatchMsg::Line(line) => match self.sync.apply_watch_line(index, &line) {
                    Ok(WatchOutcome::Changed) => return Ok(self.sync.snapshot()),
                    Ok(WatchOutcome::Bookmark) => {}
                    // 410 Gone: list again, then watch from the new resourceVersion.
                    Ok(WatchOutcome::Expired) => return self.relist(index).map(Some),
                    Err(e) => {
                        let wait = self.sync.on_error(index);
                        tracing::warn!(%e, ?wait, "bad watch event; watching again");
                        self.start_watch(index, wait);
                    }
                },
                WatchMsg::Gone => {
                    self.sync.expire(index);
                    return self.relist(index).map(Some);
                }
                // The server ends watches after a while: resume from the last resourceVersion.
                WatchMsg::Ended => self.start_watch(index, Duration::ZERO),
                // A broken stream (a proxy or the server went away): resume from the last
                // resourceVersion after a back-off; if the server is gone, that watch request
                // fails and reports it.
                WatchMsg::Broken(why) => {
                    let wait = self.sync.on_error(index);
                    tracing::warn!(collection = self.sync.path(index).unwrap_or("?"), %why, ?wait, "watch broken; resuming");
                    self.start_watch(index, wait);
                }
                // A watch request that fails right after the collection was fine (e.g. a
                // pooled connection the server had just closed) is tried once more after a
                // short back-off; failing again — or after a broken stream — is the API
                // server lost.
                WatchMsg::Unreachable(why) if self.sync.failures(index) == 0 => {
                    let wait = self.sync.on_error(index);
                    tracing::warn!(collection = self.sync.path(index).unwrap_or("?"), %why, ?wait, "watch request failed; trying once more");
                    self.start_watch(index, wait);
                }
                WatchMsg::Unreachable(why) => {
                    let path = self.sync.path(index).unwrap_or("?");
                    return Err(remote(&self.what, format!("watching {path}: {why}")));
                }
            }
        }
    }
}

impl KubeDatastore {
    /// Lists a collection again (after `410 Gone`) and resumes watching it; a failed list is
    /// the datastore lost.
    fn relist(&mut self, index: usize) -> Result<Snapshot, DatastoreError> {
        self.list(index)?;
        self.start_watch(index, Duration::ZERO);
        self.sync
            .snapshot()
            .ok_or_else(|| remote(&self.what, "not every collection was listed"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY: &[u8] =
        br#"{"kind":"List","apiVersion":"v1","metadata":{"resourceVersion":"1"},"items":[]}"#;

    fn listed_all(s: &mut KubeSync) {
        for i in 0..s.len() {
            s.apply_list(i, EMPTY).unwrap();
        }
    }

    fn index(s: &KubeSync, suffix: &str) -> usize {
        (0..s.len())
            .find(|i| s.path(*i).unwrap().ends_with(suffix))
            .unwrap()
    }

    #[test]
    fn lists_then_watches_with_bookmarks_and_relists_on_410() {
        let mut s = KubeSync::new("kube-system");
        let peers = index(&s, "/bgppeers");
        assert_eq!(
            s.request(peers),
            Some(Request::List {
                path: "/apis/crd.projectcalico.org/v1/bgppeers".into()
            })
        );
        assert!(
            s.snapshot().is_none(),
            "no snapshot before every collection is listed"
        );
        listed_all(&mut s);
        s.apply_list(
            peers,
            br#"{"kind":"BGPPeerList","apiVersion":"crd.projectcalico.org/v1","metadata":{"resourceVersion":"10"},
                "items":[{"metadata":{"name":"p1","resourceVersion":"9"},"spec":{"peerIP":"10.0.0.1","asNumber":65000}}]}"#,
        )
        .unwrap();
        let snap = s.snapshot().unwrap();
        assert_eq!(snap.model.bgp_peers["p1"].spec.peer_ip, "10.0.0.1");
        assert_eq!(
            s.request(peers),
            Some(Request::Watch {
                path: "/apis/crd.projectcalico.org/v1/bgppeers?watch=1&resourceVersion=10&allowWatchBookmarks=true".into()
            })
        );
        let out = s
            .apply_watch_line(
                peers,
                br#"{"type":"ADDED","object":{"apiVersion":"crd.projectcalico.org/v1","kind":"BGPPeer","metadata":{"name":"p2","resourceVersion":"11"},"spec":{"peerIP":"10.0.0.2","asNumber":65000}}}"#,
            )
            .unwrap();
        assert_eq!(out, WatchOutcome::Changed);
        let out = s
            .apply_watch_line(peers, br#"{"type":"BOOKMARK","object":{"kind":"BGPPeer","apiVersion":"crd.projectcalico.org/v1","metadata":{"resourceVersion":"15"}}}"#)
            .unwrap();
        assert_eq!(out, WatchOutcome::Bookmark);
        assert!(
            matches!(s.request(peers), Some(Request::Watch { path }) if path.contains("resourceVersion=15"))
        );
        s.apply_watch_line(peers, br#"{"type":"DELETED","object":{"kind":"BGPPeer","metadata":{"name":"p1","resourceVersion":"16"}}}"#)
            .unwrap();
        let snap = s.snapshot().unwrap();
        assert_eq!(snap.model.bgp_peers.keys().collect::<Vec<_>>(), vec!["p2"]);
        let out = s
            .apply_watch_line(
                peers,
                br#"{"type":"ERROR","object":{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"too old resource version: 16 (20)","reason":"Expired","code":410}}"#,
            )
            .unwrap();
        assert_eq!(out, WatchOutcome::Expired);
        assert_eq!(
            s.request(peers),
            Some(Request::List {
                path: "/apis/crd.projectcalico.org/v1/bgppeers".into()
            })
        );
        assert!(
            s.snapshot().is_none(),
            "expired collection must be re-listed first"
        );
        s.apply_list(
            peers,
            br#"{"kind":"BGPPeerList","metadata":{"resourceVersion":"21"},"items":[]}"#,
        )
        .unwrap();
        assert!(s.snapshot().unwrap().model.bgp_peers.is_empty());
    }

    #[test]
    fn a_410_status_to_a_watch_request_forces_a_relist() {
        let mut s = KubeSync::new("kube-system");
        listed_all(&mut s);
        let pools = index(&s, "/ippools");
        assert!(matches!(s.request(pools), Some(Request::Watch { .. })));
        s.expire(pools);
        assert_eq!(
            s.request(pools),
            Some(Request::List {
                path: "/apis/crd.projectcalico.org/v1/ippools".into()
            })
        );
        assert!(s.snapshot().is_none(), "no snapshot until the re-list");
        s.apply_list(pools, EMPTY).unwrap();
        assert!(s.snapshot().is_some());
    }

    #[test]
    fn kubernetes_nodes_and_crd_affinities_feed_compute() {
        let mut s = KubeSync::new("kube-system");
        listed_all(&mut s);
        let nodes = index(&s, "/api/v1/nodes");
        s.apply_list(
            nodes,
            br#"{"kind":"NodeList","apiVersion":"v1","metadata":{"resourceVersion":"5"},"items":[
              {"metadata":{"name":"kube-master","annotations":{"projectcalico.org/IPv4Address":"10.192.0.2/16"}}},
              {"metadata":{"name":"kube-node-1","annotations":{"projectcalico.org/IPv4Address":"10.192.0.3/16"}}}]}"#,
        )
        .unwrap();
        let aff = index(&s, "/blockaffinities");
        s.apply_list(
            aff,
            br#"{"kind":"BlockAffinityList","apiVersion":"crd.projectcalico.org/v1","metadata":{"resourceVersion":"6"},"items":[
              {"metadata":{"name":"kube-master-10-0-0-0-26"},"spec":{"node":"kube-master","cidr":"10.0.0.0/26","state":"confirmed","type":"host","deleted":"false"}}]}"#,
        )
        .unwrap();
        let snap = s.snapshot().unwrap();
        assert!(snap.problems.is_empty(), "{:?}", snap.problems);
        let cfg = crate::compute(
            &snap.model,
            &crate::NodeEnv {
                node_name: "kube-master".into(),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(
            cfg.peers
                .iter()
                .map(|p| p.name.as_str())
                .collect::<Vec<_>>(),
            vec!["Mesh_10_192_0_3"]
        );
        assert_eq!(cfg.blackholes, vec!["10.0.0.0/26".parse().unwrap()]);
    }

    #[test]
    fn errors_back_off_exponentially_and_bad_bodies_are_errors() {
        let mut s = KubeSync::new("calico-system");
        assert!(
            s.path(index(&s, "/secrets"))
                .unwrap()
                .contains("/namespaces/calico-system/")
        );
        let waits: Vec<u64> = (0..10).map(|_| s.on_error(0).as_millis() as u64).collect();
        assert_eq!(&waits[..4], &[200, 400, 800, 1600]);
        assert_eq!(*waits.last().unwrap(), 30_000);
        assert!(s.apply_list(0, b"not json").is_err());
        assert!(
            s.apply_list(0, br#"{"kind":"Status","message":"forbidden","code":403}"#)
                .is_err()
        );
        s.apply_list(0, EMPTY).unwrap();
        assert!(
            s.apply_watch_line(
                0,
                br#"{"type":"ERROR","object":{"kind":"Status","code":500,"message":"boom"}}"#
            )
            .is_err()
        );
        // A successful list resets the back-off.
        assert_eq!(s.on_error(0), Duration::from_millis(200));
    }
}
