//! The CalicoNodeStatus reporter end to end with the file datastore: resources read from a
//! folder, two real speakers peering over loopback, the status file checked as the session
//! comes up, the spec changes and the resource goes away.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use common::{eventually, speaker_a, speaker_b};
use controller::datastore::{Datastore, FileDatastore};
use controller::node_status::{
    DaemonState, FileStatusStore, NodeStatusReport, PeerType, RouteSourceType, RouteType,
    SessionState, StatusStore,
};
use serde_json::Value;
use tern_tests::TempDir;

const RESOURCES: &str = "\
apiVersion: projectcalico.org/v3
kind: CalicoNodeStatus
metadata:
  name: node-a-status
spec:
  node: node-a
  classes: [Agent, BGP, Routes]
  updatePeriodSeconds: 1
---
apiVersion: projectcalico.org/v3
kind: CalicoNodeStatus
metadata:
  name: node-b-status
spec:
  node: node-b
  classes: [BGP]
  updatePeriodSeconds: 1
";

/// The status in the file, if it is there and whole.
fn read_status(path: &Path) -> Option<(Value, NodeStatusReport)> {
    let text = std::fs::read_to_string(path).ok()?;
    let docs: Vec<Value> = parse_yaml(&text)?;
    let doc = docs.into_iter().next()?;
    let status = serde_json::from_value(doc["status"].clone()).ok()?;
    Some((doc, status))
}

/// The status files are YAML written by the controller; read them back with the file
/// datastore's own parser.
fn parse_yaml(text: &str) -> Option<Vec<Value>> {
    let (docs, problems) =
        controller::datastore::file::parse_files(&[("status.yaml".into(), text.to_string())]);
    problems
        .is_empty()
        .then(|| docs.into_iter().map(|(_, v)| v).collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_file_follows_the_speaker() {
    let dir = TempDir::new("ops-ns");
    dir.write("50-status.yaml", RESOURCES);
    let snapshot = FileDatastore::new(dir.path()).snapshot().unwrap();
    assert_eq!(snapshot.model.node_statuses.len(), 2);
    let (tx, rx) = tokio::sync::watch::channel(snapshot.model.node_statuses.clone());

    let (a, port) = speaker_a().await;
    let store = StatusStore::File(FileStatusStore::new(dir.path()));
    let reporter = tokio::spawn(tern_ops::node_status::run(
        store,
        "node-a".into(),
        a.clone(),
        rx,
    ));
    let path = dir.path().join("status/node-a-status.yaml");

    // At once: agent ready, the mesh peer not up yet, the own block as a static blackhole.
    let (doc, first) = eventually("the first status", 10, || async { read_status(&path) }).await;
    assert_eq!(doc["kind"], "CalicoNodeStatus");
    assert_eq!(doc["metadata"]["name"], "node-a-status");
    assert_eq!(doc["spec"]["node"], "node-a");
    let agent = first.agent.clone().unwrap();
    assert_eq!(agent.bird_v4.state, DaemonState::Ready);
    assert_eq!(agent.bird_v4.router_id, "127.0.0.1");
    assert!(agent.bird_v4.version.starts_with('v'));
    assert_eq!(
        agent.bird_v4.last_boot_time.len(),
        "2026-11-23 17:00:00".len()
    );
    let bgp = first.bgp.clone().unwrap();
    assert_eq!(bgp.peers_v4.len(), 1);
    assert_eq!(bgp.peers_v4[0].peer_ip, "127.0.0.2");
    assert_eq!(bgp.peers_v4[0].peer_type, PeerType::NodeMesh);
    assert_ne!(bgp.peers_v4[0].state, SessionState::Established);
    assert_eq!(bgp.peers_v4[0].since.len(), "17:00:00".len());
    assert_eq!(
        (bgp.number_established_v4, bgp.number_not_established_v4),
        (0, 1)
    );
    let routes = first.routes.clone().unwrap();
    assert_eq!(routes.routes_v4.len(), 1);
    let own = &routes.routes_v4[0];
    assert_eq!(own.destination, "10.65.0.0/26");
    assert_eq!(own.route_type, RouteType::FIB);
    assert_eq!(own.gateway, "N/A");
    assert_eq!(own.interface, "blackhole");
    assert_eq!(own.learned_from.source_type, RouteSourceType::Static);
    assert!(first.last_updated.ends_with('Z'));

    // B comes up and announces its block: the next report shows both.
    let b = speaker_b(port).await;
    let (_, up) = eventually("the established session in the status", 30, || async {
        let (doc, s) = read_status(&path)?;
        let bgp = s.bgp.as_ref()?;
        let routes = s.routes.as_ref()?;
        (bgp.number_established_v4 == 1 && routes.routes_v4.len() == 2).then_some((doc, s))
    })
    .await;
    let bgp = up.bgp.clone().unwrap();
    assert_eq!(bgp.peers_v4[0].state, SessionState::Established);
    assert_eq!(bgp.number_not_established_v4, 0);
    let learned = up
        .routes
        .as_ref()
        .unwrap()
        .routes_v4
        .iter()
        .find(|r| r.destination == "10.65.1.0/26")
        .unwrap()
        .clone();
    assert_eq!(learned.route_type, RouteType::FIB);
    assert_eq!(learned.gateway, "127.0.0.2");
    assert_eq!(learned.learned_from.source_type, RouteSourceType::NodeMesh);
    assert_eq!(learned.learned_from.peer_ip, "127.0.0.2");
    assert!(up.last_updated >= first.last_updated);

    // Nothing changes: the file is not rewritten (lastUpdated stays), although the period
    // (1 s) passes twice.
    let text = std::fs::read_to_string(&path).unwrap();
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert_eq!(std::fs::read_to_string(&path).unwrap(), text);

    // Node B's resource is not ours.
    assert!(!dir.path().join("status/node-b-status.yaml").exists());

    // The spec changes to BGP only: reported at once, without the other classes.
    let mut changed: BTreeMap<_, _> = snapshot.model.node_statuses.clone();
    let r = changed.get_mut("node-a-status").unwrap();
    r.spec.classes = vec!["BGP".into()];
    r.spec.update_period_seconds = Some(0);
    tx.send_replace(changed.clone());
    let (_, only_bgp) = eventually("the BGP-only status", 10, || async {
        let (doc, s) = read_status(&path)?;
        (s.agent.is_none() && s.routes.is_none()).then_some((doc, s))
    })
    .await;
    assert_eq!(only_bgp.bgp.unwrap().number_established_v4, 1);

    // The resource is deleted: its status file goes too.
    changed.remove("node-a-status");
    tx.send_replace(changed);
    eventually("the status file to go", 10, || async {
        (!path.exists()).then_some(())
    })
    .await;

    // The datastore's sender goes away: the reporter ends.
    drop(tx);
    tokio::time::timeout(Duration::from_secs(10), reporter)
        .await
        .unwrap()
        .unwrap();
    let a = std::sync::Arc::try_unwrap(a).expect("the reporter released the speaker");
    a.shutdown("done").await.unwrap();
    b.shutdown("done").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_write_is_retried() {
    let dir = TempDir::new("ops-nsr");
    dir.write("50-status.yaml", RESOURCES);
    let snapshot = FileDatastore::new(dir.path()).snapshot().unwrap();
    let (_tx, rx) = tokio::sync::watch::channel(snapshot.model.node_statuses.clone());
    // `status` is a file, not a folder: writing fails until it is removed.
    let blocker = dir.write("status", "in the way");
    let (a, _port) = speaker_a().await;
    let store = StatusStore::File(FileStatusStore::new(dir.path()));
    let reporter = tokio::spawn(tern_ops::node_status::run(
        store,
        "node-a".into(),
        a.clone(),
        rx,
    ));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(blocker.is_file());
    std::fs::remove_file(&blocker).unwrap();
    let path = dir.path().join("status/node-a-status.yaml");
    let (_, status) = eventually("the status after the retry", 10, || async {
        read_status(&path)
    })
    .await;
    assert_eq!(status.bgp.unwrap().peers_v4[0].peer_ip, "127.0.0.2");
    reporter.abort();
}
