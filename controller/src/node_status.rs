//! CalicoNodeStatus: the status calico-node's reporter writes (contract §4.7), as plain
//! Calico-shaped data, and writing it back into each datastore.
//!
//! A `CalicoNodeStatus` names a node, the `classes` to report (`Agent`, `BGP`, `Routes`) and
//! `updatePeriodSeconds`; the node's BGP daemon fills in `status`. This module knows only the
//! resource and its status ([`NodeStatusReport`]): whoever runs the BGP speaker fills the report
//! in (`tern-ops` maps the speaker's peers and routes into it), and a [`StatusStore`] writes it:
//!
//! * **file** — `<config-dir>/status/<name>.yaml`: the whole resource (`apiVersion`, `kind`,
//!   `metadata`, `spec`, `status`), as `calicoctl get caliconodestatus NAME -o yaml` shows it,
//!   written atomically (temporary file + rename). A subfolder, because the file datastore
//!   reads every `*.yaml` directly in the folder: a status there would be read back as a
//!   resource (and keep a deleted one alive). The status file goes when the resource goes
//!   ([`StatusStore::forget`]).
//! * **etcdv3** — the resource's own key, `/calico/resources/v3/projectcalico.org/
//!   caliconodestatuses/<name>` (contract §5.2): read, set `status`, and write back in a
//!   transaction that succeeds only if the key's `mod_revision` is unchanged (a concurrent
//!   spec change is never overwritten; the write is retried on the new value).
//! * **kubernetes** — Calico's CRD (`crd.projectcalico.org/v1`) has no `status` subresource,
//!   so calico-node updates the whole object; Tern reads it, sets `status` and `PUT`s it to
//!   `/apis/crd.projectcalico.org/v1/caliconodestatuses/<name>` with the `resourceVersion`
//!   just read (everything else kept as it is); a `409 Conflict` reads and tries again.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::datastore::DatastoreError;
use crate::model::Model;
use crate::resources::CalicoNodeStatus;

// ===== the status, as Calico's API shapes it =====

/// `CalicoNodeStatus.status` (Calico API `CalicoNodeStatusStatus`). Classes that were not
/// requested are left out.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct NodeStatusReport {
    /// When the status was written: RFC 3339, UTC (`2026-11-23T17:22:03Z`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub last_updated: String,
    /// Class `Agent`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<AgentStatus>,
    /// Class `BGP`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bgp: Option<BgpStatus>,
    /// Class `Routes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routes: Option<RouteStatus>,
}

/// `status.agent`: one entry per BIRD daemon calico-node would run (`bird`, `bird6`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct AgentStatus {
    /// The IPv4 daemon.
    #[serde(rename = "birdV4")]
    pub bird_v4: DaemonStatus,
    /// The IPv6 daemon.
    #[serde(rename = "birdV6")]
    pub bird_v6: DaemonStatus,
}

/// `BGPDaemonStatus`: what `show status` says.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct DaemonStatus {
    /// `Ready` / `NotReady`.
    pub state: DaemonState,
    /// Version text, starting with `v` (what follows `BIRD ` in `show status`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub version: String,
    /// Router id.
    #[serde(rename = "routerID", default, skip_serializing_if = "String::is_empty")]
    pub router_id: String,
    /// Start time, BIRD's `%F %T` (`2026-11-23 17:00:01`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub last_boot_time: String,
    /// Last reconfiguration, BIRD's `%F %T`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub last_reconfiguration_time: String,
}

/// `BGPDaemonState`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DaemonState {
    /// Answering.
    Ready,
    /// Not running or not answering.
    #[default]
    NotReady,
}

/// `status.bgp` (`CalicoNodeBGPStatus`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct BgpStatus {
    /// IPv4 sessions that are up.
    #[serde(rename = "numberEstablishedV4")]
    pub number_established_v4: u32,
    /// IPv6 sessions that are up.
    #[serde(rename = "numberEstablishedV6")]
    pub number_established_v6: u32,
    /// IPv4 sessions that are not up.
    #[serde(rename = "numberNotEstablishedV4")]
    pub number_not_established_v4: u32,
    /// IPv6 sessions that are not up.
    #[serde(rename = "numberNotEstablishedV6")]
    pub number_not_established_v6: u32,
    /// IPv4 peers.
    #[serde(rename = "peersV4", default, skip_serializing_if = "Vec::is_empty")]
    pub peers_v4: Vec<PeerStatus>,
    /// IPv6 peers.
    #[serde(rename = "peersV6", default, skip_serializing_if = "Vec::is_empty")]
    pub peers_v6: Vec<PeerStatus>,
}

/// `CalicoNodePeer`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct PeerStatus {
    /// The neighbour's address.
    #[serde(rename = "peerIP")]
    pub peer_ip: String,
    /// Mesh, node-specific or global peer.
    #[serde(rename = "type")]
    pub peer_type: PeerType,
    /// Session state.
    pub state: SessionState,
    /// Since when, as BIRD prints it in `show protocols` (`%T` within 20 hours, else `%F`).
    pub since: String,
}

/// `BGPPeerType`, from the session name's prefix (`Mesh_`, `Node_`, `Global_`).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerType {
    /// Node-to-node mesh.
    NodeMesh,
    /// A BGPPeer for this node.
    NodePeer,
    /// A global BGPPeer.
    GlobalPeer,
}

impl PeerType {
    /// The type of a session named as confd names them (`Mesh_10_0_0_2`, `Node_…`,
    /// `Global_…`); `None` for other sessions (`Local_Workload_…`), which calico-node's
    /// reporter leaves out.
    pub fn from_session_name(name: &str) -> Option<PeerType> {
        let (prefix, rest) = name.split_once('_')?;
        if rest.is_empty() {
            return None;
        }
        match prefix {
            "Mesh" => Some(PeerType::NodeMesh),
            "Node" => Some(PeerType::NodePeer),
            "Global" => Some(PeerType::GlobalPeer),
            _ => None,
        }
    }
}

/// `BGPSessionState` (RFC 4271 §8.2.2 state names).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionState {
    /// Idle.
    Idle,
    /// Connect.
    Connect,
    /// Active.
    Active,
    /// OpenSent.
    OpenSent,
    /// OpenConfirm.
    OpenConfirm,
    /// Established.
    Established,
    /// Closing.
    Close,
}

/// `status.routes` (`CalicoNodeBGPRouteStatus`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct RouteStatus {
    /// IPv4 routes.
    #[serde(rename = "routesV4", default, skip_serializing_if = "Vec::is_empty")]
    pub routes_v4: Vec<Route>,
    /// IPv6 routes.
    #[serde(rename = "routesV6", default, skip_serializing_if = "Vec::is_empty")]
    pub routes_v6: Vec<Route>,
}

/// `CalicoNodeRoute`: one row of `show route`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Route {
    /// `FIB` for the primary (selected) route, `RIB` for the others.
    #[serde(rename = "type")]
    pub route_type: RouteType,
    /// Prefix.
    pub destination: String,
    /// Next hop, or `N/A` (connected, blackhole, unreachable).
    pub gateway: String,
    /// Outgoing interface; `blackhole` / `unreachable` for those; empty when unknown.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub interface: String,
    /// Where the route came from.
    pub learned_from: LearnedFrom,
}

/// `CalicoNodeRouteType`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[allow(clippy::upper_case_acronyms)]
pub enum RouteType {
    /// The route used for forwarding.
    FIB,
    /// Another candidate.
    RIB,
}

/// `CalicoNodeRouteLearnedFrom`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct LearnedFrom {
    /// Source kind.
    pub source_type: RouteSourceType,
    /// The peer's address for `NodeMesh` and `BGPPeer`.
    #[serde(rename = "peerIP", default, skip_serializing_if = "String::is_empty")]
    pub peer_ip: String,
}

/// `CalicoNodeRouteSourceType`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[allow(clippy::upper_case_acronyms)]
pub enum RouteSourceType {
    /// Learned from the kernel.
    Kernel,
    /// A static route (own blocks).
    Static,
    /// A connected network.
    Direct,
    /// A node-to-node mesh peer.
    NodeMesh,
    /// Any other BGP peer.
    BGPPeer,
}

/// The `classes` a resource asks for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Classes {
    /// `Agent`.
    pub agent: bool,
    /// `BGP`.
    pub bgp: bool,
    /// `Routes`.
    pub routes: bool,
}

impl Classes {
    /// Parse `spec.classes`; unknown names are ignored (calico-node logs and skips them).
    pub fn from_spec(classes: &[String]) -> Classes {
        let mut c = Classes::default();
        for class in classes {
            match class.as_str() {
                "Agent" => c.agent = true,
                "BGP" => c.bgp = true,
                "Routes" => c.routes = true,
                _ => {}
            }
        }
        c
    }
}

/// The CalicoNodeStatus resources of `model` that name `node` and set `updatePeriodSeconds`
/// (calico-node ignores the others), by name.
pub fn requests_for<'a>(model: &'a Model, node: &str) -> Vec<&'a CalicoNodeStatus> {
    model
        .node_statuses
        .values()
        .filter(|s| s.spec.node == node && s.spec.update_period_seconds.is_some())
        .collect()
}

// ===== writing the status back =====

/// A status write that failed.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    /// The resource no longer exists.
    #[error("CalicoNodeStatus {0:?} no longer exists")]
    NotFound(String),
    /// The name cannot be a file name.
    #[error("CalicoNodeStatus name {0:?} is not usable as a file name")]
    BadName(String),
    /// The datastore failed.
    #[error(transparent)]
    Datastore(#[from] DatastoreError),
}

/// Where statuses are written: the datastore the resources come from.
#[derive(Clone)]
pub enum StatusStore {
    /// `<config-dir>/status/<name>.yaml`.
    File(FileStatusStore),
    /// The resource's etcd key.
    #[cfg(feature = "remote")]
    Etcd(Box<EtcdStatusStore>),
    /// The CRD's `status` subresource.
    #[cfg(feature = "remote")]
    Kubernetes(KubeStatusStore),
}

impl StatusStore {
    /// Write `report` as the status of `resource` (only its name is used: the current object
    /// is read from the datastore). Returns the new `resourceVersion` where the datastore
    /// reports one (Kubernetes).
    pub async fn write(
        &self,
        resource: &CalicoNodeStatus,
        report: &NodeStatusReport,
    ) -> Result<Option<String>, StatusError> {
        match self {
            StatusStore::File(s) => s.write(resource, report).map(|()| None),
            #[cfg(feature = "remote")]
            StatusStore::Etcd(s) => s.write(resource, report).await.map(|()| None),
            #[cfg(feature = "remote")]
            StatusStore::Kubernetes(s) => s.write(resource, report).await.map(Some),
        }
    }

    /// The resource was deleted: drop what only we keep for it (the file datastore's status
    /// file; in etcd and Kubernetes the status went with the resource).
    pub async fn forget(&self, name: &str) -> Result<(), StatusError> {
        match self {
            StatusStore::File(s) => s.forget(name),
            #[cfg(feature = "remote")]
            StatusStore::Etcd(_) | StatusStore::Kubernetes(_) => Ok(()),
        }
    }
}

/// The resource with its status, in calicoctl's form (`projectcalico.org/v3`).
fn v3_object(resource: &CalicoNodeStatus, report: &NodeStatusReport) -> Value {
    json!({
        "apiVersion": "projectcalico.org/v3",
        "kind": "CalicoNodeStatus",
        "metadata": {"name": resource.metadata.name},
        "spec": resource.spec,
        "status": report,
    })
}

// ----- file -----

/// Statuses of a file datastore, in `<dir>/status/`.
#[derive(Clone, Debug)]
pub struct FileStatusStore {
    dir: PathBuf,
}

impl FileStatusStore {
    /// Statuses for the file datastore reading `config_dir`.
    pub fn new(config_dir: impl AsRef<Path>) -> FileStatusStore {
        FileStatusStore {
            dir: config_dir.as_ref().join("status"),
        }
    }

    /// The file holding `name`'s status.
    pub fn path(&self, name: &str) -> Result<PathBuf, StatusError> {
        let ok = !name.is_empty()
            && !name.starts_with('.')
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
        if !ok {
            return Err(StatusError::BadName(name.to_string()));
        }
        Ok(self.dir.join(format!("{name}.yaml")))
    }

    fn io(path: &Path, source: std::io::Error) -> StatusError {
        StatusError::Datastore(DatastoreError::Io {
            path: path.display().to_string(),
            source,
        })
    }

    fn write(
        &self,
        resource: &CalicoNodeStatus,
        report: &NodeStatusReport,
    ) -> Result<(), StatusError> {
        let path = self.path(&resource.metadata.name)?;
        std::fs::create_dir_all(&self.dir).map_err(|e| Self::io(&self.dir, e))?;
        let yaml = serde_saphyr::to_string(&v3_object(resource, report)).map_err(|e| {
            Self::io(
                &path,
                std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()),
            )
        })?;
        let tmp = self.dir.join(format!(".{}.tmp", resource.metadata.name));
        std::fs::write(&tmp, yaml).map_err(|e| Self::io(&tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| Self::io(&path, e))
    }

    fn forget(&self, name: &str) -> Result<(), StatusError> {
        let path = self.path(name)?;
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Self::io(&path, e)),
            _ => Ok(()),
        }
    }
}

// ----- etcd -----

#[cfg(feature = "remote")]
const ETCD_PREFIX: &str = "/calico/resources/v3/projectcalico.org/caliconodestatuses/";

#[cfg(feature = "remote")]
/// Statuses in etcd v3.
#[derive(Clone)]
pub struct EtcdStatusStore {
    client: etcd_client::Client,
    what: String,
}

#[cfg(feature = "remote")]
impl EtcdStatusStore {
    /// Connect to plain `endpoints` (`http://host:port`, as in `ETCD_ENDPOINTS`).
    pub async fn connect(endpoints: Vec<String>) -> Result<EtcdStatusStore, StatusError> {
        Self::connect_with(&crate::datastore::etcd::EtcdConfig::new(endpoints)).await
    }

    /// Connect as `config` says (TLS, client certificate, authentication: the datastore's
    /// own settings).
    pub async fn connect_with(
        config: &crate::datastore::etcd::EtcdConfig,
    ) -> Result<EtcdStatusStore, StatusError> {
        let client = config.connect().await?;
        Ok(EtcdStatusStore {
            client,
            what: config.describe(),
        })
    }

    /// The key of `name`.
    pub fn key(name: &str) -> String {
        format!("{ETCD_PREFIX}{name}")
    }

    async fn write(
        &self,
        resource: &CalicoNodeStatus,
        report: &NodeStatusReport,
    ) -> Result<(), StatusError> {
        use etcd_client::{Compare, CompareOp, Txn, TxnOp};
        let name = &resource.metadata.name;
        let key = Self::key(name);
        let mut client = self.client.clone();
        // A concurrent change between our read and write makes the transaction fail; read
        // again and retry (a few times: the writer is a person editing the spec).
        for _ in 0..3 {
            let resp = client
                .get(key.as_str(), None)
                .await
                .map_err(|e| remote(&self.what, crate::datastore::etcd::error_text(&e)))?;
            let Some(kv) = resp.kvs().first() else {
                return Err(StatusError::NotFound(name.clone()));
            };
            let mod_revision = kv.mod_revision();
            let mut object: Value = serde_json::from_slice(kv.value())
                .map_err(|e| remote(&self.what, format!("{key}: not JSON: {e}")))?;
            let Some(o) = object.as_object_mut() else {
                return Err(remote(&self.what, format!("{key}: not a JSON object")));
            };
            o.insert(
                "status".into(),
                serde_json::to_value(report).map_err(|e| remote(&self.what, e))?,
            );
            let value = serde_json::to_vec(&object).map_err(|e| remote(&self.what, e))?;
            let txn = Txn::new()
                .when([Compare::mod_revision(
                    key.as_str(),
                    CompareOp::Equal,
                    mod_revision,
                )])
                .and_then([TxnOp::put(key.as_str(), value, None)]);
            let done = client
                .txn(txn)
                .await
                .map_err(|e| remote(&self.what, crate::datastore::etcd::error_text(&e)))?;
            if done.succeeded() {
                return Ok(());
            }
        }
        Err(remote(
            &self.what,
            format!("{key}: changed during every write attempt"),
        ))
    }
}

// ----- kubernetes -----

#[cfg(feature = "remote")]
const CRD_PATH: &str = "/apis/crd.projectcalico.org/v1/caliconodestatuses/";

#[cfg(feature = "remote")]
/// Statuses in Kubernetes (`crd.projectcalico.org/v1`). Calico's CRD has no `status`
/// subresource, so the status is written with the object: read it, set `status`, `PUT` it
/// back with the `resourceVersion` just read (labels, annotations, owners and a concurrent
/// spec change are all kept; `409 Conflict` reads again).
#[derive(Clone)]
pub struct KubeStatusStore {
    client: kube::Client,
    what: String,
}

#[cfg(feature = "remote")]
impl KubeStatusStore {
    /// Use `client`; `what` names the cluster in errors.
    pub fn new(client: kube::Client, what: &str) -> KubeStatusStore {
        KubeStatusStore {
            client,
            what: what.to_string(),
        }
    }

    /// Connect with `KUBECONFIG` / `~/.kube/config` or in-cluster credentials.
    pub async fn infer() -> Result<KubeStatusStore, StatusError> {
        let what = "kubernetes";
        let config = kube::Config::infer().await.map_err(|e| remote(what, e))?;
        let what = format!("kubernetes {}", config.cluster_url);
        let client = kube::Client::try_from(config).map_err(|e| remote(&what, e))?;
        Ok(KubeStatusStore::new(client, &what))
    }

    /// An API server URL without credentials (tests, `kubectl proxy`). Must be called inside
    /// a tokio runtime.
    pub fn with_url(url: &str) -> Result<KubeStatusStore, StatusError> {
        let what = format!("kubernetes {url}");
        let uri: http::Uri = url.parse().map_err(|e| remote(&what, e))?;
        let client =
            kube::Client::try_from(kube::Config::new(uri)).map_err(|e| remote(&what, e))?;
        Ok(KubeStatusStore::new(client, &what))
    }

    /// The object's API path.
    pub fn path(name: &str) -> String {
        format!("{CRD_PATH}{name}")
    }

    fn api_error(&self, name: &str, e: kube::Error) -> StatusError {
        match e {
            kube::Error::Api(s) if s.code == 404 => StatusError::NotFound(name.to_string()),
            e => remote(&self.what, format!("{name}: {e}")),
        }
    }

    async fn write(
        &self,
        resource: &CalicoNodeStatus,
        report: &NodeStatusReport,
    ) -> Result<String, StatusError> {
        let name = &resource.metadata.name;
        let path = Self::path(name);
        let status = serde_json::to_value(report).map_err(|e| remote(&self.what, e))?;
        // Someone else may change the object between our read and write; read again then
        // (a few times: the other writer is a person editing the spec).
        for _ in 0..3 {
            let get = http::Request::get(&path)
                .body(Vec::new())
                .map_err(|e| remote(&self.what, e))?;
            let mut object: Value = self
                .client
                .request(get)
                .await
                .map_err(|e| self.api_error(name, e))?;
            let Some(o) = object.as_object_mut() else {
                return Err(remote(&self.what, format!("{name}: not a JSON object")));
            };
            o.insert("status".into(), status.clone());
            let body = serde_json::to_vec(&object).map_err(|e| remote(&self.what, e))?;
            let put = http::Request::put(&path)
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(body)
                .map_err(|e| remote(&self.what, e))?;
            match self.client.request::<Value>(put).await {
                Ok(v) => {
                    return Ok(v
                        .pointer("/metadata/resourceVersion")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string());
                }
                Err(kube::Error::Api(s)) if s.code == 409 => continue,
                Err(e) => return Err(self.api_error(name, e)),
            }
        }
        Err(remote(
            &self.what,
            format!("{name}: changed during every write attempt"),
        ))
    }
}

#[cfg(feature = "remote")]
fn remote(what: &str, message: impl std::fmt::Display) -> StatusError {
    StatusError::Datastore(DatastoreError::Remote {
        what: what.to_string(),
        message: message.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::{CalicoNodeStatusSpec, ObjectMeta};

    fn resource(name: &str) -> CalicoNodeStatus {
        CalicoNodeStatus {
            metadata: ObjectMeta {
                name: name.into(),
                ..Default::default()
            },
            spec: CalicoNodeStatusSpec {
                node: "node-1".into(),
                classes: vec!["Agent".into(), "BGP".into(), "Routes".into()],
                update_period_seconds: Some(10),
            },
        }
    }

    fn report() -> NodeStatusReport {
        NodeStatusReport {
            last_updated: "2026-11-23T17:00:00Z".into(),
            agent: Some(AgentStatus {
                bird_v4: DaemonStatus {
                    state: DaemonState::Ready,
                    version: "v0.1.0+tern".into(),
                    router_id: "10.0.0.1".into(),
                    last_boot_time: "2026-11-23 16:00:00".into(),
                    last_reconfiguration_time: "2026-11-23 16:00:01".into(),
                },
                bird_v6: DaemonStatus::default(),
            }),
            bgp: Some(BgpStatus {
                number_established_v4: 1,
                number_not_established_v4: 1,
                peers_v4: vec![
                    PeerStatus {
                        peer_ip: "10.0.0.2".into(),
                        peer_type: PeerType::NodeMesh,
                        state: SessionState::Established,
                        since: "16:00:05".into(),
                    },
                    PeerStatus {
                        peer_ip: "10.0.0.9".into(),
                        peer_type: PeerType::GlobalPeer,
                        state: SessionState::Active,
                        since: "16:00:01".into(),
                    },
                ],
                ..Default::default()
            }),
            routes: Some(RouteStatus {
                routes_v4: vec![Route {
                    route_type: RouteType::FIB,
                    destination: "10.244.2.0/26".into(),
                    gateway: "10.0.0.2".into(),
                    interface: String::new(),
                    learned_from: LearnedFrom {
                        source_type: RouteSourceType::NodeMesh,
                        peer_ip: "10.0.0.2".into(),
                    },
                }],
                routes_v6: vec![],
            }),
        }
    }

    #[test]
    fn report_serialises_with_calicos_field_names() {
        let v = serde_json::to_value(report()).unwrap();
        assert_eq!(v["lastUpdated"], "2026-11-23T17:00:00Z");
        assert_eq!(v["agent"]["birdV4"]["state"], "Ready");
        assert_eq!(v["agent"]["birdV4"]["routerID"], "10.0.0.1");
        assert_eq!(v["agent"]["birdV4"]["lastBootTime"], "2026-11-23 16:00:00");
        assert_eq!(v["agent"]["birdV6"], json!({"state": "NotReady"}));
        assert_eq!(v["bgp"]["numberEstablishedV4"], 1);
        assert_eq!(v["bgp"]["numberNotEstablishedV6"], 0);
        assert_eq!(
            v["bgp"]["peersV4"][0],
            json!({"peerIP": "10.0.0.2", "type": "NodeMesh", "state": "Established", "since": "16:00:05"})
        );
        assert!(v["bgp"].get("peersV6").is_none());
        assert_eq!(
            v["routes"]["routesV4"][0],
            json!({"type": "FIB", "destination": "10.244.2.0/26", "gateway": "10.0.0.2",
                   "learnedFrom": {"sourceType": "NodeMesh", "peerIP": "10.0.0.2"}})
        );
        let back: NodeStatusReport = serde_json::from_value(v).unwrap();
        assert_eq!(back, report());
        // Classes not asked for are absent.
        let only_bgp = NodeStatusReport {
            agent: None,
            routes: None,
            ..report()
        };
        let v = serde_json::to_value(only_bgp).unwrap();
        assert!(v.get("agent").is_none() && v.get("routes").is_none());
    }

    #[test]
    fn peer_types_and_classes() {
        assert_eq!(
            PeerType::from_session_name("Mesh_10_0_0_2"),
            Some(PeerType::NodeMesh)
        );
        assert_eq!(
            PeerType::from_session_name("Node_fd00__1"),
            Some(PeerType::NodePeer)
        );
        assert_eq!(
            PeerType::from_session_name("Global_192_0_2_1_port_1790"),
            Some(PeerType::GlobalPeer)
        );
        assert_eq!(PeerType::from_session_name("Local_Workload_10_0_0_5"), None);
        assert_eq!(PeerType::from_session_name("Mesh_"), None);
        assert_eq!(PeerType::from_session_name("kernel1"), None);
        let c = Classes::from_spec(&["BGP".into(), "Bogus".into()]);
        assert_eq!(
            c,
            Classes {
                agent: false,
                bgp: true,
                routes: false
            }
        );
    }

    #[test]
    fn requests_name_this_node_and_a_period() {
        let mut model = Model::default();
        let mut a = resource("a");
        let mut b = resource("b");
        b.spec.node = "node-2".into();
        let mut c = resource("c");
        c.spec.update_period_seconds = None;
        a.spec.update_period_seconds = Some(0);
        for r in [a, b, c] {
            model.node_statuses.insert(r.metadata.name.clone(), r);
        }
        let names: Vec<&str> = requests_for(&model, "node-1")
            .iter()
            .map(|r| r.metadata.name.as_str())
            .collect();
        assert_eq!(names, ["a"]);
    }

    #[test]
    fn file_store_writes_a_calicoctl_document_beside_the_resources() {
        let dir = std::env::temp_dir().join(format!("tern-status-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let store = FileStatusStore::new(&dir);
        store.write(&resource("s1"), &report()).unwrap();
        let path = dir.join("status/s1.yaml");
        let text = std::fs::read_to_string(&path).unwrap();
        let docs: Vec<Value> = serde_saphyr::from_multiple(&text).unwrap();
        assert_eq!(docs.len(), 1);
        let doc = &docs[0];
        assert_eq!(doc["kind"], "CalicoNodeStatus");
        assert_eq!(doc["apiVersion"], "projectcalico.org/v3");
        assert_eq!(doc["metadata"]["name"], "s1");
        assert_eq!(doc["spec"]["node"], "node-1");
        assert_eq!(doc["spec"]["updatePeriodSeconds"], 10);
        let status: NodeStatusReport = serde_json::from_value(doc["status"].clone()).unwrap();
        assert_eq!(status, report());
        // The file datastore does not read the status folder back as resources.
        let mut ds = crate::datastore::FileDatastore::new(&dir);
        let snap = crate::datastore::Datastore::snapshot(&mut ds).unwrap();
        assert!(snap.model.node_statuses.is_empty());
        assert!(snap.problems.is_empty(), "{:?}", snap.problems);
        // No temporary left behind; forget removes the file, twice is fine.
        let left: Vec<_> = std::fs::read_dir(dir.join("status"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, ["s1.yaml"]);
        store.forget("s1").unwrap();
        assert!(!path.exists());
        store.forget("s1").unwrap();
        assert!(matches!(
            store.write(&resource("../x"), &report()),
            Err(StatusError::BadName(_))
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
