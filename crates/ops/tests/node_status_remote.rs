//! The CalicoNodeStatus reporter writing into etcd (a real `etcd`, Debian `etcd-server`, on
//! loopback; skips loudly without it, fails under CI=true) and into Kubernetes (a local HTTP
//! server standing in for the API server, recording the status PUTs).
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{eventually, speaker_a, speaker_b};
use controller::datastore::{Datastore, EtcdDatastore};
use controller::model::Model;
use controller::node_status::{EtcdStatusStore, KubeStatusStore, StatusStore};
use serde_json::{Value, json};
use tern_tests::etcd::Etcd;

fn start_etcd(test: &str) -> Option<Etcd> {
    Etcd::plain(test)
}

const KEY: &str = "/calico/resources/v3/projectcalico.org/caliconodestatuses/node-a-status";

async fn etcd_get(client: &mut etcd_client::Client) -> Option<Value> {
    let resp = client.get(KEY, None).await.ok()?;
    serde_json::from_slice(resp.kvs().first()?.value()).ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reporter_writes_into_etcd() {
    let Some(etcd) = start_etcd("reporter_writes_into_etcd") else {
        return;
    };
    let endpoint = etcd.endpoint.clone();
    let mut client = eventually("etcd to answer", 20, || async {
        let mut c = etcd_client::Client::connect([endpoint.as_str()], None)
            .await
            .ok()?;
        c.get("/", None).await.ok()?;
        Some(c)
    })
    .await;
    let stored = json!({
        "kind": "CalicoNodeStatus", "apiVersion": "projectcalico.org/v3",
        "metadata": {"name": "node-a-status", "uid": "u-1"},
        "spec": {"node": "node-a", "classes": ["BGP", "Routes"], "updatePeriodSeconds": 1},
    });
    client.put(KEY, stored.to_string(), None).await.unwrap();

    // The daemon's view: the etcd datastore's snapshot (it runs its own runtime).
    let endpoints = vec![etcd.endpoint.clone()];
    let requests = std::thread::spawn(move || {
        let mut ds = EtcdDatastore::new(endpoints).unwrap();
        ds.snapshot().unwrap().model.node_statuses
    })
    .join()
    .unwrap();
    assert_eq!(requests.len(), 1);
    let (_tx, rx) = tokio::sync::watch::channel(requests);

    let (a, port) = speaker_a().await;
    let _b = speaker_b(port).await;
    let store = StatusStore::Etcd(Box::new(
        EtcdStatusStore::connect(vec![etcd.endpoint.clone()])
            .await
            .unwrap(),
    ));
    let reporter = tokio::spawn(tern_ops::node_status::run(
        store,
        "node-a".into(),
        a.clone(),
        rx,
    ));

    let v = eventually("the established session in etcd", 30, || {
        let mut c = client.clone();
        async move {
            let v = etcd_get(&mut c).await?;
            (v["status"]["bgp"]["numberEstablishedV4"] == 1
                && v["status"]["routes"]["routesV4"].as_array()?.len() == 2)
                .then_some(v)
        }
    })
    .await;
    // The rest of the object is untouched; only the requested classes are there.
    assert_eq!(v["metadata"], stored["metadata"]);
    assert_eq!(v["spec"], stored["spec"]);
    assert!(v["status"].get("agent").is_none());
    assert_eq!(
        v["status"]["bgp"]["peersV4"][0]["peerIP"], "127.0.0.2",
        "{v}"
    );
    let learned: Vec<&Value> = v["status"]["routes"]["routesV4"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["destination"] == "10.65.1.0/26")
        .collect();
    assert_eq!(learned.len(), 1);
    assert_eq!(
        learned[0]["learnedFrom"],
        json!({"sourceType": "NodeMesh", "peerIP": "127.0.0.2"})
    );

    // Deleted in etcd: the next write finds it gone and does not bring it back.
    client.delete(KEY, None).await.unwrap();
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert!(etcd_get(&mut client).await.is_none());
    assert!(!reporter.is_finished());
    reporter.abort();
}

/// Requests seen: method, path, JSON body.
type Recorded = Arc<Mutex<Vec<(String, String, Value)>>>;

const OBJECT: &str = "/apis/crd.projectcalico.org/v1/caliconodestatuses/node-a-status";

/// A stand-in API server holding one CalicoNodeStatus (Calico's CRD: no status subresource):
/// `GET` returns it, a `PUT` with its current `resourceVersion` replaces it and bumps the
/// version, a stale one gets `409 Conflict`. Every request is recorded.
fn api_server(object: Value) -> (String, Recorded) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen: Recorded = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        let mut current = object;
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let mut line = String::new();
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            let mut length = 0;
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).is_err() || h == "\r\n" || h.is_empty() {
                    break;
                }
                if let Some((k, v)) = h.split_once(':')
                    && k.eq_ignore_ascii_case("content-length")
                {
                    length = v.trim().parse().unwrap();
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            let mut parts = line.split(' ');
            let (method, path) = (parts.next().unwrap(), parts.next().unwrap());
            let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            log.lock()
                .unwrap()
                .push((method.to_string(), path.to_string(), body.clone()));
            let rv = |v: &Value| {
                v["metadata"]["resourceVersion"]
                    .as_str()
                    .unwrap()
                    .to_string()
            };
            let (code, reply) = match (method, path == OBJECT) {
                ("GET", true) => (200, current.clone()),
                ("PUT", true) if rv(&body) == rv(&current) => {
                    let next: u64 = rv(&current).parse().unwrap();
                    current = body;
                    current["metadata"]["resourceVersion"] = json!((next + 1).to_string());
                    (200, current.clone())
                }
                ("PUT", true) => (
                    409,
                    json!({"kind": "Status", "code": 409, "reason": "Conflict"}),
                ),
                _ => (
                    404,
                    json!({"kind": "Status", "code": 404, "reason": "NotFound"}),
                ),
            };
            let reply = reply.to_string();
            let _ = write!(
                conn,
                "HTTP/1.1 {code} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reply}",
                reply.len()
            );
        }
    });
    (url, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reporter_puts_the_object_with_its_status() {
    let crd = json!({
        "apiVersion": "crd.projectcalico.org/v1", "kind": "CalicoNodeStatus",
        "metadata": {"name": "node-a-status", "resourceVersion": "7", "uid": "u-7",
                     "labels": {"team": "net"}},
        "spec": {"node": "node-a", "classes": ["Agent", "BGP"], "updatePeriodSeconds": 1},
    });
    let (url, requests_seen) = api_server(crd.clone());
    let (model, problems) = Model::from_documents([("list".to_string(), crd.clone())]);
    assert!(problems.is_empty(), "{problems:?}");
    let requests: BTreeMap<_, _> = model.node_statuses;
    let (_tx, rx) = tokio::sync::watch::channel(requests);

    let (a, port) = speaker_a().await;
    let store = StatusStore::Kubernetes(KubeStatusStore::with_url(&url).unwrap());
    let reporter = tokio::spawn(tern_ops::node_status::run(
        store,
        "node-a".into(),
        a.clone(),
        rx,
    ));
    let puts = |seen: &Recorded| -> Vec<Value> {
        seen.lock()
            .unwrap()
            .iter()
            .filter(|(m, _, _)| m == "PUT")
            .map(|(_, _, b)| b.clone())
            .collect()
    };
    // First report: the peer not up. Then B comes up: another report.
    eventually("the first PUT", 10, || async {
        (!puts(&requests_seen).is_empty()).then_some(())
    })
    .await;
    let _b = speaker_b(port).await;
    let all = eventually("a PUT with the session established", 30, || async {
        let p = puts(&requests_seen);
        p.iter()
            .any(|b| b["status"]["bgp"]["numberEstablishedV4"] == 1)
            .then_some(p)
    })
    .await;
    for (i, body) in all.iter().enumerate() {
        // Each write is the object as read just before, version included: 7, 8, 9, …
        assert_eq!(
            body["metadata"]["resourceVersion"],
            (7 + i).to_string().as_str(),
            "write {i}"
        );
        assert_eq!(body["metadata"]["uid"], "u-7");
        assert_eq!(body["metadata"]["labels"], crd["metadata"]["labels"]);
        assert_eq!(body["spec"], crd["spec"]);
        assert_eq!(body["status"]["agent"]["birdV4"]["state"], "Ready");
        assert_eq!(body["status"]["agent"]["birdV4"]["routerID"], "127.0.0.1");
        assert!(body["status"].get("routes").is_none());
        assert!(
            body["status"]["lastUpdated"]
                .as_str()
                .unwrap()
                .ends_with('Z')
        );
    }
    assert_eq!(all[0]["status"]["bgp"]["numberNotEstablishedV4"], 1);
    // Every request went to the object itself (no status subresource), a GET before each PUT.
    let seen = requests_seen.lock().unwrap().clone();
    assert!(seen.iter().all(|(_, path, _)| path == OBJECT), "{seen:?}");
    assert_eq!(
        seen.iter().filter(|(m, _, _)| m == "GET").count(),
        all.len()
    );
    reporter.abort();
}
