//! The etcdv3 datastore against a real `etcd` (Debian `etcd-server`) on loopback, random ports
//! and a temporary data directory. Skips loudly without the binary; fails under CI=true.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::time::Duration;

use controller::datastore::etcd::EtcdConfig;
use controller::datastore::file::parse_files;
use controller::datastore::{Datastore, EtcdDatastore, FileDatastore};
use controller::{NodeEnv, compute};
use serde_json::Value;
use tern_tests::etcd::{Etcd, free_port};
use tern_tests::{TempDir, wait_for};

fn start_etcd(test: &str) -> Option<Etcd> {
    Etcd::plain(test)
}

/// `etcdctl`-free writes: a tiny client on its own runtime.
struct Writer {
    rt: tokio::runtime::Runtime,
    client: etcd_client::Client,
}

impl Writer {
    fn new(endpoint: &str) -> Writer {
        Writer::with_config(&EtcdConfig::new(vec![endpoint.to_string()]))
    }
    fn with_config(config: &EtcdConfig) -> Writer {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let client = wait_for("etcd to answer", Duration::from_secs(20), || {
            rt.block_on(async {
                let mut c = config.connect().await.ok()?;
                c.get("/", None).await.ok()?;
                Some(c)
            })
        });
        Writer { rt, client }
    }
    fn put(&mut self, k: &str, v: &str) {
        self.rt.block_on(self.client.put(k, v, None)).unwrap();
    }
    fn delete(&mut self, k: &str) {
        self.rt.block_on(self.client.delete(k, None)).unwrap();
    }
    fn compact_all(&mut self) {
        let rev = self
            .rt
            .block_on(self.client.get("/", None))
            .unwrap()
            .header()
            .unwrap()
            .revision();
        self.rt.block_on(self.client.compact(rev, None)).unwrap();
    }
}

fn fixture(rel: &str) -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/calico-conformance/mock_data/calicoctl"
    ))
    .join(rel)
}

fn plural(kind: &str) -> &'static str {
    match kind {
        "BGPConfiguration" => "bgpconfigurations",
        "BGPPeer" => "bgppeers",
        "BGPFilter" => "bgpfilters",
        "IPPool" => "ippools",
        "Node" => "nodes",
        other => panic!("no etcd plural for {other}"),
    }
}

/// Store a calicoctl document the way libcalico-go does in etcd (contract §5.2).
fn put_doc(w: &mut Writer, v: &Value) {
    let kind = v["kind"].as_str().unwrap();
    let name = v["metadata"]["name"].as_str().unwrap();
    w.put(
        &format!(
            "/calico/resources/v3/projectcalico.org/{}/{name}",
            plural(kind)
        ),
        &v.to_string(),
    );
}

const AFFINITIES: &[(&str, &str)] = &[
    ("10.0.0.0-30", "{}"),
    ("10.1.0.0-24", ""),
    ("192.168.221.64-26", r#"{"state":"confirmed"}"#),
    ("192.168.221.0-26", r#"{"state":"pending"}"#),
];

#[test]
fn etcd_snapshot_matches_the_file_datastore_and_follows_changes() {
    let Some(etcd) = start_etcd("etcd_snapshot_matches_the_file_datastore_and_follows_changes")
    else {
        return;
    };
    let mut w = Writer::new(&etcd.endpoint);
    let input = fixture("mesh/ipip-cross-subnet/input.yaml");
    let text = std::fs::read_to_string(&input).unwrap();
    let (docs, problems) = parse_files(&[(input.display().to_string(), text.clone())]);
    assert!(problems.is_empty());
    for (_, d) in &docs {
        put_doc(&mut w, d);
    }
    for (cidr, v) in AFFINITIES {
        w.put(
            &format!("/calico/ipam/v2/host/kube-master/ipv4/block/{cidr}"),
            v,
        );
    }
    // Unrelated keys are ignored.
    w.put("/calico/ipam/v2/assignment/ipv4/block/10.0.0.0-26", "{}");
    w.put("/calico/felix/v2/whatever", "x");

    // The same resources in a folder (affinities as BlockAffinity objects).
    let dir = TempDir::new("etf");
    dir.write("input.yaml", &text);
    let mut aff = String::new();
    for (cidr, v) in AFFINITIES {
        let state = serde_json::from_str::<Value>(v)
            .ok()
            .and_then(|j| j["state"].as_str().map(String::from))
            .unwrap_or_default();
        let (a, l) = cidr.rsplit_once('-').unwrap();
        aff.push_str(&format!(
            "---\napiVersion: projectcalico.org/v3\nkind: BlockAffinity\nmetadata: {{name: a-{cidr}}}\nspec: {{node: kube-master, cidr: {a}/{l}, state: \"{state}\"}}\n"
        ));
    }
    dir.write("affinities.yaml", &aff);

    let env = NodeEnv {
        node_name: "kube-master".into(),
        ..NodeEnv::default()
    };
    let mut ds = EtcdDatastore::new(vec![etcd.endpoint.clone()]).unwrap();
    let snap = ds.snapshot().unwrap();
    assert!(snap.problems.is_empty(), "{:?}", snap.problems);
    let from_etcd = compute(&snap.model, &env).unwrap();
    let from_files = compute(
        &FileDatastore::new(dir.path()).snapshot().unwrap().model,
        &env,
    )
    .unwrap();
    assert_eq!(from_etcd, from_files);
    assert_eq!(
        from_etcd.blackholes.len(),
        3,
        "pending affinity ignored: {:?}",
        from_etcd.blackholes
    );

    // Nothing changes: no new snapshot.
    assert!(
        ds.next_change(Duration::from_millis(300))
            .unwrap()
            .is_none()
    );

    // A new node appears: a new mesh session.
    let node = r#"{"kind":"Node","apiVersion":"projectcalico.org/v3","metadata":{"name":"kube-node-9"},"spec":{"bgp":{"ipv4Address":"10.192.0.9/16"}}}"#;
    w.put(
        "/calico/resources/v3/projectcalico.org/nodes/kube-node-9",
        node,
    );
    let next = wait_for("the new node", Duration::from_secs(10), || {
        ds.next_change(Duration::from_secs(1)).unwrap()
    });
    assert!(next.revision > snap.revision);
    let cfg = compute(&next.model, &env).unwrap();
    assert!(
        cfg.peer("Mesh_10_192_0_9").is_some(),
        "{:?}",
        cfg.peers.iter().map(|p| &p.name).collect::<Vec<_>>()
    );

    // It goes away again.
    w.delete("/calico/resources/v3/projectcalico.org/nodes/kube-node-9");
    let next = wait_for("the node removal", Duration::from_secs(10), || {
        ds.next_change(Duration::from_secs(1)).unwrap()
    });
    assert!(
        compute(&next.model, &env)
            .unwrap()
            .peer("Mesh_10_192_0_9")
            .is_none()
    );

    // An invalid object is reported with its name and field, and skipped.
    w.put(
        "/calico/resources/v3/projectcalico.org/ippools/broken",
        r#"{"kind":"IPPool","apiVersion":"projectcalico.org/v3","metadata":{"name":"broken"},"spec":{"cidr":"10.0.0.0/99"}}"#,
    );
    let next = wait_for("the broken pool", Duration::from_secs(10), || {
        ds.next_change(Duration::from_secs(1)).unwrap()
    });
    assert_eq!(next.problems.len(), 1);
    assert_eq!(
        (
            next.problems[0].name.as_str(),
            next.problems[0].field.as_str()
        ),
        ("broken", "spec.cidr")
    );
    assert!(compute(&next.model, &env).is_ok());
}

#[test]
fn etcd_compaction_leads_to_a_fresh_snapshot() {
    let Some(etcd) = start_etcd("etcd_compaction_leads_to_a_fresh_snapshot") else {
        return;
    };
    let mut w = Writer::new(&etcd.endpoint);
    let pool = |name: &str, cidr: &str| {
        format!(
            r#"{{"kind":"IPPool","apiVersion":"projectcalico.org/v3","metadata":{{"name":"{name}"}},"spec":{{"cidr":"{cidr}"}}}}"#
        )
    };
    w.put(
        "/calico/resources/v3/projectcalico.org/ippools/p1",
        &pool("p1", "10.1.0.0/16"),
    );
    let mut ds = EtcdDatastore::new(vec![etcd.endpoint.clone()]).unwrap();
    let first = ds.snapshot().unwrap();
    assert_eq!(first.model.ip_pools.len(), 1);
    // Changes happen and history is compacted before we watch: our start revision is gone.
    w.put(
        "/calico/resources/v3/projectcalico.org/ippools/p2",
        &pool("p2", "10.2.0.0/16"),
    );
    w.delete("/calico/resources/v3/projectcalico.org/ippools/p1");
    w.compact_all();
    let next = wait_for("a fresh snapshot", Duration::from_secs(10), || {
        ds.next_change(Duration::from_secs(1)).unwrap()
    });
    assert_eq!(next.model.ip_pools.keys().collect::<Vec<_>>(), vec!["p2"]);
    assert!(ds.etcd_revision() > 0);
}

#[test]
fn unreachable_etcd_is_an_error() {
    let port = free_port();
    let mut ds = EtcdDatastore::new(vec![format!("http://127.0.0.1:{port}")]).unwrap();
    let e = ds.snapshot().unwrap_err().to_string();
    assert!(e.contains(&format!("127.0.0.1:{port}")), "{e}");
}

#[test]
fn node_status_is_written_into_the_resources_key() {
    use controller::node_status::*;
    let Some(etcd) = start_etcd("node_status_is_written_into_the_resources_key") else {
        return;
    };
    let mut w = Writer::new(&etcd.endpoint);
    let key = "/calico/resources/v3/projectcalico.org/caliconodestatuses/s1";
    let stored = serde_json::json!({
        "kind": "CalicoNodeStatus", "apiVersion": "projectcalico.org/v3",
        "metadata": {"name": "s1", "uid": "u-1", "creationTimestamp": "2026-11-23T17:00:00Z"},
        "spec": {"node": "kube-master", "classes": ["BGP"], "updatePeriodSeconds": 5},
    });
    w.put(key, &stored.to_string());

    let mut ds = EtcdDatastore::new(vec![etcd.endpoint.clone()]).unwrap();
    let snap = ds.snapshot().unwrap();
    let requests = requests_for(&snap.model, "kube-master");
    assert_eq!(requests.len(), 1);
    let resource = requests[0].clone();
    assert!(Classes::from_spec(&resource.spec.classes).bgp);

    let report = NodeStatusReport {
        last_updated: "2026-11-23T17:30:00Z".into(),
        bgp: Some(BgpStatus {
            number_not_established_v6: 1,
            peers_v6: vec![PeerStatus {
                peer_ip: "fd00::2".into(),
                peer_type: PeerType::NodePeer,
                state: SessionState::Active,
                since: "17:00:02".into(),
            }],
            ..Default::default()
        }),
        ..Default::default()
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let store = rt
        .block_on(EtcdStatusStore::connect(vec![etcd.endpoint.clone()]))
        .unwrap();
    let store = StatusStore::Etcd(Box::new(store));
    rt.block_on(store.write(&resource, &report)).unwrap();

    let got = w.rt.block_on(w.client.get(key, None)).unwrap();
    let v: Value = serde_json::from_slice(got.kvs()[0].value()).unwrap();
    // Everything else is kept as it was; only the status is new.
    let mut without_status = v.clone();
    without_status.as_object_mut().unwrap().remove("status");
    assert_eq!(without_status, stored);
    let status: NodeStatusReport = serde_json::from_value(v["status"].clone()).unwrap();
    assert_eq!(status, report);
    assert_eq!(v["status"]["bgp"]["peersV6"][0]["type"], "NodePeer");

    // The datastore sees the same resource (spec unchanged) after the write.
    let next = ds.next_change(Duration::from_secs(10)).unwrap().unwrap();
    assert_eq!(next.model.node_statuses["s1"], resource);

    // A second write replaces the status.
    let report2 = NodeStatusReport {
        last_updated: "2026-11-23T17:30:05Z".into(),
        ..report.clone()
    };
    rt.block_on(store.write(&resource, &report2)).unwrap();
    let got = w.rt.block_on(w.client.get(key, None)).unwrap();
    let v: Value = serde_json::from_slice(got.kvs()[0].value()).unwrap();
    assert_eq!(v["status"]["lastUpdated"], "2026-11-23T17:30:05Z");

    // A deleted resource is reported as gone, and nothing is recreated.
    w.delete(key);
    let err = rt.block_on(store.write(&resource, &report)).unwrap_err();
    assert!(
        matches!(err, StatusError::NotFound(ref n) if n == "s1"),
        "{err}"
    );
    let got = w.rt.block_on(w.client.get(key, None)).unwrap();
    assert!(got.kvs().is_empty());
}

const POOL_KEY: &str = "/calico/resources/v3/projectcalico.org/ippools/";

fn pool(name: &str, cidr: &str) -> String {
    format!(
        r#"{{"kind":"IPPool","apiVersion":"projectcalico.org/v3","metadata":{{"name":"{name}"}},"spec":{{"cidr":"{cidr}"}}}}"#
    )
}

/// etcd with TLS and client-certificate authentication (`--client-cert-auth`), reached with
/// calico-node's settings: the right CA and client certificate read and watch; a wrong CA or
/// no client certificate fail with an error that says so, without panicking; the CalicoNodeStatus
/// writer connects the same way.
#[test]
fn etcd_over_tls_with_client_certificates() {
    let test = "etcd_over_tls_with_client_certificates";
    let Some((etcd, certs)) = Etcd::tls(test) else {
        return;
    };
    let good = EtcdConfig {
        endpoints: vec![etcd.endpoint.clone()],
        ca_cert_file: Some(certs.ca.clone()),
        cert_file: Some(certs.client_cert.clone()),
        key_file: Some(certs.client_key.clone()),
        ..EtcdConfig::default()
    };
    let mut w = Writer::with_config(&good);
    w.put(&format!("{POOL_KEY}p1"), &pool("p1", "10.1.0.0/16"));

    let mut ds = EtcdDatastore::with_config(good.clone()).unwrap();
    let snap = ds.snapshot().unwrap();
    assert_eq!(snap.model.ip_pools.keys().collect::<Vec<_>>(), ["p1"]);
    w.put(&format!("{POOL_KEY}p2"), &pool("p2", "10.2.0.0/16"));
    let next = wait_for("the watch over TLS", Duration::from_secs(10), || {
        ds.next_change(Duration::from_secs(1)).unwrap()
    });
    assert_eq!(next.model.ip_pools.len(), 2);

    // A CA that did not sign the server's certificate.
    let mut wrong_ca = EtcdDatastore::with_config(EtcdConfig {
        ca_cert_file: Some(certs.other_ca.clone()),
        ..good.clone()
    })
    .unwrap();
    let e = wrong_ca.snapshot().unwrap_err().to_string();
    eprintln!("wrong CA: {e}");
    assert!(e.contains(&etcd.endpoint), "{e}");
    assert!(e.contains("ETCD_CA_CERT_FILE"), "{e}");

    // No client certificate: the server refuses the connection.
    let mut anonymous = EtcdDatastore::with_config(EtcdConfig {
        cert_file: None,
        key_file: None,
        ..good.clone()
    })
    .unwrap();
    let e = anonymous.snapshot().unwrap_err().to_string();
    eprintln!("no client certificate: {e}");
    assert!(e.contains(&etcd.endpoint), "{e}");
    assert!(e.contains("ETCD_CERT_FILE"), "{e}");

    // Plain HTTP to a TLS server fails too.
    let mut plain = EtcdDatastore::new(vec![etcd.endpoint.replace("https://", "http://")]).unwrap();
    assert!(plain.snapshot().is_err());

    // The status writer connects with the same settings.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let status = rt.block_on(controller::node_status::EtcdStatusStore::connect_with(
        &good,
    ));
    assert!(status.is_ok());
}

/// etcd goes away and comes back (same data): the datastore reports the loss, then connects
/// again by itself and its watch continues from where it was.
#[test]
fn etcd_watch_continues_after_a_restart() {
    let Some(mut etcd) = start_etcd("etcd_watch_continues_after_a_restart") else {
        return;
    };
    let mut w = Writer::new(&etcd.endpoint);
    w.put(&format!("{POOL_KEY}p1"), &pool("p1", "10.1.0.0/16"));
    let mut ds = EtcdDatastore::new(vec![etcd.endpoint.clone()]).unwrap();
    assert_eq!(ds.snapshot().unwrap().model.ip_pools.len(), 1);
    assert!(
        ds.next_change(Duration::from_millis(300))
            .unwrap()
            .is_none()
    );

    etcd.stop();
    drop(w);
    let lost = wait_for("the loss to be reported", Duration::from_secs(30), || {
        ds.next_change(Duration::from_millis(500)).err()
    });
    assert!(lost.to_string().contains(&etcd.endpoint), "{lost}");

    etcd.start();
    let mut w = Writer::new(&etcd.endpoint);
    w.put(&format!("{POOL_KEY}p2"), &pool("p2", "10.2.0.0/16"));
    // The same datastore value, no new snapshot asked for: errors while it reconnects are
    // allowed, then the change arrives through the watch.
    let next = wait_for(
        "the change after the restart",
        Duration::from_secs(30),
        || ds.next_change(Duration::from_secs(1)).ok().flatten(),
    );
    assert_eq!(next.model.ip_pools.keys().collect::<Vec<_>>(), ["p1", "p2"]);
}
