//! The kubernetes datastore against a small local HTTP server that replays recorded Kubernetes
//! API list and watch responses (JSON lists, watch event lines, a bookmark, a `410 Gone`).
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, VecDeque};
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use controller::datastore::Datastore;
use controller::datastore::kubernetes::KubeDatastore;
use controller::{NodeEnv, compute};

const EMPTY: &str =
    r#"{"kind":"List","apiVersion":"v1","metadata":{"resourceVersion":"1"},"items":[]}"#;

const NODES: &str = r#"{"kind":"NodeList","apiVersion":"v1","metadata":{"resourceVersion":"3"},"items":[
 {"metadata":{"name":"kube-master","resourceVersion":"2","labels":{"kubernetes.io/hostname":"kube-master"},
   "annotations":{"projectcalico.org/IPv4Address":"10.192.0.2/16","projectcalico.org/IPv6Address":"fd5f::2/96"}},
  "spec":{"podCIDR":"192.168.0.0/24"},"status":{"addresses":[{"type":"InternalIP","address":"10.192.0.2"}]}},
 {"metadata":{"name":"kube-node-1","resourceVersion":"3",
   "annotations":{"projectcalico.org/IPv4Address":"10.192.0.3/16","projectcalico.org/ASNumber":"64512"}}}]}"#;

const PEERS_1: &str = r#"{"kind":"BGPPeerList","apiVersion":"crd.projectcalico.org/v1","metadata":{"resourceVersion":"10","continue":""},"items":[
 {"apiVersion":"crd.projectcalico.org/v1","kind":"BGPPeer","metadata":{"name":"tor","resourceVersion":"9","uid":"u1"},
  "spec":{"peerIP":"10.192.0.1","asNumber":65001}}]}"#;

const PEERS_2: &str = r#"{"kind":"BGPPeerList","apiVersion":"crd.projectcalico.org/v1","metadata":{"resourceVersion":"20"},"items":[
 {"apiVersion":"crd.projectcalico.org/v1","kind":"BGPPeer","metadata":{"name":"tor-b","resourceVersion":"19"},
  "spec":{"peerIP":"10.192.0.250","asNumber":65002}}]}"#;

const AFFINITIES: &str = r#"{"kind":"BlockAffinityList","apiVersion":"crd.projectcalico.org/v1","metadata":{"resourceVersion":"4"},"items":[
 {"metadata":{"name":"kube-master-192-168-221-64-26"},"spec":{"node":"kube-master","cidr":"192.168.221.64/26","state":"confirmed","type":"host","deleted":"false"}}]}"#;

const NOT_FOUND: &str = r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"not found","reason":"NotFound","code":404}"#;

struct Watch {
    lines: Vec<&'static str>,
    /// Keep the stream open afterwards (until the test ends).
    hold: bool,
}

#[derive(Default)]
struct Script {
    lists: BTreeMap<String, VecDeque<&'static str>>,
    watches: BTreeMap<String, VecDeque<Watch>>,
    /// Answers to PUTs by path: status code and body (the last one repeats).
    puts: BTreeMap<String, VecDeque<(u16, &'static str)>>,
    log: Vec<String>,
    /// Every request with a body: method, target, body.
    writes: Vec<(String, String, String)>,
}

struct Server {
    url: String,
    script: Arc<Mutex<Script>>,
    stop: Arc<AtomicBool>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn serve(mut stream: TcpStream, script: Arc<Mutex<Script>>, stop: Arc<AtomicBool>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let mut content_length = 0usize;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).is_err() || h == "\r\n" || h.is_empty() {
            break;
        }
        if let Some((name, value)) = h.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            content_length = value.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0u8; content_length];
    if std::io::Read::read_exact(&mut reader, &mut body).is_err() {
        return;
    }
    let method = request_line
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_string();
    let target = request_line
        .split_whitespace()
        .nth(1)
        .unwrap_or("")
        .to_string();
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let mut s = script.lock().unwrap();
    s.log.push(target.clone());
    if method != "GET" {
        s.writes.push((
            method.clone(),
            target.clone(),
            String::from_utf8_lossy(&body).to_string(),
        ));
        let (code, reply) = s
            .puts
            .get_mut(path)
            .and_then(|q| {
                if q.len() > 1 {
                    q.pop_front()
                } else {
                    q.front().copied()
                }
            })
            .unwrap_or((404, NOT_FOUND));
        drop(s);
        let _ = write!(
            stream,
            "HTTP/1.1 {code} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reply}",
            reply.len()
        );
        return;
    }
    if query.contains("watch=1") {
        let w = s.watches.get_mut(path).and_then(|q| {
            if q.len() > 1 {
                q.pop_front()
            } else {
                q.front().map(|w| Watch {
                    lines: w.lines.clone(),
                    hold: w.hold,
                })
            }
        });
        drop(s);
        let w = w.unwrap_or(Watch {
            lines: vec![],
            hold: true,
        });
        let _ = stream.write_all(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n",
        );
        for l in &w.lines {
            let _ = stream.write_all(l.as_bytes());
            let _ = stream.write_all(b"\n");
        }
        let _ = stream.flush();
        while w.hold && !stop.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(20));
        }
        return;
    }
    let body = s
        .lists
        .get_mut(path)
        .and_then(|q| {
            if q.len() > 1 {
                q.pop_front()
            } else {
                q.front().copied()
            }
        })
        .unwrap_or(EMPTY);
    drop(s);
    let _ = write!(
        stream,
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

fn start(script: Script) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let script = Arc::new(Mutex::new(script));
    let stop = Arc::new(AtomicBool::new(false));
    let (s2, st2) = (script.clone(), stop.clone());
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        while !st2.load(Ordering::SeqCst) {
            match listener.accept() {
                Ok((conn, _)) => {
                    conn.set_nonblocking(false).unwrap();
                    let (s3, st3) = (s2.clone(), st2.clone());
                    std::thread::spawn(move || serve(conn, s3, st3));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    });
    Server { url, script, stop }
}

#[test]
fn lists_then_follows_watch_events_bookmarks_and_410() {
    let mut script = Script::default();
    script
        .lists
        .insert("/api/v1/nodes".into(), VecDeque::from([NODES]));
    script.lists.insert(
        "/apis/crd.projectcalico.org/v1/bgppeers".into(),
        VecDeque::from([PEERS_1, PEERS_2]),
    );
    script.lists.insert(
        "/apis/crd.projectcalico.org/v1/blockaffinities".into(),
        VecDeque::from([AFFINITIES]),
    );
    script.watches.insert(
        "/apis/crd.projectcalico.org/v1/bgppeers".into(),
        VecDeque::from([
            Watch {
                lines: vec![
                    r#"{"type":"ADDED","object":{"apiVersion":"crd.projectcalico.org/v1","kind":"BGPPeer","metadata":{"name":"rr","resourceVersion":"11"},"spec":{"peerIP":"10.192.0.100","asNumber":64512}}}"#,
                    r#"{"type":"BOOKMARK","object":{"apiVersion":"crd.projectcalico.org/v1","kind":"BGPPeer","metadata":{"resourceVersion":"15"}}}"#,
                ],
                hold: false,
            },
            Watch {
                lines: vec![
                    r#"{"type":"ERROR","object":{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"too old resource version: 15 (19)","reason":"Expired","code":410}}"#,
                ],
                hold: false,
            },
            Watch { lines: vec![], hold: true },
        ]),
    );
    let server = start(script);
    let mut ds = KubeDatastore::with_url(&server.url, "kube-system").unwrap();
    let env = NodeEnv {
        node_name: "kube-master".into(),
        ..NodeEnv::default()
    };

    let snap = ds.snapshot().unwrap();
    assert!(snap.problems.is_empty(), "{:?}", snap.problems);
    let cfg = compute(&snap.model, &env).unwrap();
    let names: Vec<&str> = cfg.peers.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["Global_10_192_0_1", "Mesh_10_192_0_3"]);
    assert_eq!(cfg.blackholes, vec!["192.168.221.64/26".parse().unwrap()]);

    // ADDED over the watch.
    let next = ds
        .next_change(Duration::from_secs(10))
        .unwrap()
        .expect("watch event");
    let cfg = compute(&next.model, &env).unwrap();
    assert!(cfg.peer("Global_10_192_0_100").is_some());

    // Bookmark (no change), end of stream, re-watch from the bookmark, 410, re-list.
    let next = ds
        .next_change(Duration::from_secs(10))
        .unwrap()
        .expect("re-list after 410");
    let cfg = compute(&next.model, &env).unwrap();
    let names: Vec<&str> = cfg.peers.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["Global_10_192_0_250", "Mesh_10_192_0_3"]);

    let log = server.script.lock().unwrap().log.clone();
    let peers: Vec<&String> = log
        .iter()
        .filter(|l| l.starts_with("/apis/crd.projectcalico.org/v1/bgppeers"))
        .collect();
    assert!(
        peers
            .iter()
            .any(|l| l.contains("watch=1") && l.contains("resourceVersion=10")),
        "{peers:?}"
    );
    assert!(
        peers.iter().any(|l| l.contains("watch=1")
            && l.contains("resourceVersion=15")
            && l.contains("allowWatchBookmarks=true")),
        "{peers:?}"
    );
    assert_eq!(
        peers.iter().filter(|l| !l.contains("watch=1")).count(),
        2,
        "listed twice: {peers:?}"
    );
    assert!(
        log.iter()
            .any(|l| l == "/api/v1/namespaces/kube-system/secrets")
    );
    drop(ds);
}

#[test]
fn unreachable_api_server_is_an_error() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut ds =
        KubeDatastore::with_url(&format!("http://127.0.0.1:{port}"), "kube-system").unwrap();
    let e = ds.snapshot().unwrap_err().to_string();
    assert!(e.contains(&format!("127.0.0.1:{port}")), "{e}");
}

const NODE_STATUSES: &str = r#"{"kind":"CalicoNodeStatusList","apiVersion":"crd.projectcalico.org/v1","metadata":{"resourceVersion":"30"},"items":[
 {"apiVersion":"crd.projectcalico.org/v1","kind":"CalicoNodeStatus","metadata":{"name":"s1","resourceVersion":"30","uid":"u9"},
  "spec":{"node":"kube-master","classes":["Agent","BGP"],"updatePeriodSeconds":10}},
 {"apiVersion":"crd.projectcalico.org/v1","kind":"CalicoNodeStatus","metadata":{"name":"other","resourceVersion":"29"},
  "spec":{"node":"kube-node-1","classes":["BGP"],"updatePeriodSeconds":10}}]}"#;

const CONFLICT: &str = r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"the object has been modified","reason":"Conflict","code":409}"#;

const S1_V31: &str = r#"{"apiVersion":"crd.projectcalico.org/v1","kind":"CalicoNodeStatus","metadata":{"name":"s1","resourceVersion":"31","uid":"u9","labels":{"team":"net"}},
  "spec":{"node":"kube-master","classes":["Agent","BGP"],"updatePeriodSeconds":10}}"#;

/// Someone edited the spec meanwhile (the period).
const S1_V32: &str = r#"{"apiVersion":"crd.projectcalico.org/v1","kind":"CalicoNodeStatus","metadata":{"name":"s1","resourceVersion":"32","uid":"u9","labels":{"team":"net"}},
  "spec":{"node":"kube-master","classes":["Agent","BGP"],"updatePeriodSeconds":30}}"#;

const S1_WRITTEN: &str = r#"{"apiVersion":"crd.projectcalico.org/v1","kind":"CalicoNodeStatus","metadata":{"name":"s1","resourceVersion":"33"},
  "spec":{"node":"kube-master","classes":["Agent","BGP"],"updatePeriodSeconds":10},"status":{}}"#;

#[test]
fn node_status_is_put_with_the_object_and_retried_on_conflict() {
    use controller::node_status::*;
    // Calico's CRD has no status subresource: the whole object is read and put back.
    let object_path = "/apis/crd.projectcalico.org/v1/caliconodestatuses/s1";
    let mut script = Script::default();
    script.lists.insert(
        "/apis/crd.projectcalico.org/v1/caliconodestatuses".into(),
        VecDeque::from([NODE_STATUSES]),
    );
    script
        .lists
        .insert(object_path.into(), VecDeque::from([S1_V31, S1_V32]));
    script.puts.insert(
        object_path.into(),
        VecDeque::from([(409, CONFLICT), (200, S1_WRITTEN)]),
    );
    let server = start(script);

    // The request comes from the datastore's snapshot, as the daemon sees it.
    let mut ds = KubeDatastore::with_url(&server.url, "kube-system").unwrap();
    let snap = ds.snapshot().unwrap();
    let requests = requests_for(&snap.model, "kube-master");
    assert_eq!(requests.len(), 1);
    let resource = requests[0].clone();
    assert_eq!(resource.metadata.resource_version.as_deref(), Some("30"));
    drop(ds);

    let report = NodeStatusReport {
        last_updated: "2026-11-23T17:30:00Z".into(),
        agent: Some(AgentStatus {
            bird_v4: DaemonStatus {
                state: DaemonState::Ready,
                version: "v0.1.0+tern".into(),
                router_id: "10.192.0.2".into(),
                last_boot_time: "2026-11-23 17:00:00".into(),
                last_reconfiguration_time: "2026-11-23 17:00:00".into(),
            },
            bird_v6: DaemonStatus {
                state: DaemonState::Ready,
                ..Default::default()
            },
        }),
        bgp: Some(BgpStatus {
            number_established_v4: 1,
            peers_v4: vec![PeerStatus {
                peer_ip: "10.192.0.3".into(),
                peer_type: PeerType::NodeMesh,
                state: SessionState::Established,
                since: "17:00:02".into(),
            }],
            ..Default::default()
        }),
        routes: None,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let version = rt
        .block_on(async {
            let store = StatusStore::Kubernetes(KubeStatusStore::with_url(&server.url).unwrap());
            store.write(&resource, &report).await
        })
        .unwrap();
    assert_eq!(version.as_deref(), Some("33"));

    let writes = server.script.lock().unwrap().writes.clone();
    assert_eq!(writes.len(), 2, "{writes:?}");
    for (i, (method, target, body)) in writes.iter().enumerate() {
        assert_eq!(method, "PUT");
        assert_eq!(target, object_path);
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["apiVersion"], "crd.projectcalico.org/v1");
        assert_eq!(v["kind"], "CalicoNodeStatus");
        assert_eq!(v["metadata"]["name"], "s1");
        // The object as read each time: its version, labels and uid, and the edited spec
        // after the 409.
        assert_eq!(v["metadata"]["resourceVersion"], ["31", "32"][i]);
        assert_eq!(v["metadata"]["uid"], "u9");
        assert_eq!(v["metadata"]["labels"]["team"], "net");
        assert_eq!(v["spec"]["updatePeriodSeconds"], [10, 30][i]);
        assert_eq!(v["spec"]["node"], "kube-master");
        assert_eq!(v["status"]["lastUpdated"], "2026-11-23T17:30:00Z");
        assert_eq!(v["status"]["agent"]["birdV4"]["routerID"], "10.192.0.2");
        assert_eq!(v["status"]["agent"]["birdV6"]["state"], "Ready");
        assert_eq!(
            v["status"]["bgp"]["peersV4"],
            serde_json::json!([{"peerIP": "10.192.0.3", "type": "NodeMesh",
                                "state": "Established", "since": "17:00:02"}])
        );
        assert_eq!(v["status"]["bgp"]["numberEstablishedV4"], 1);
        assert!(v["status"].get("routes").is_none());
        let back: NodeStatusReport = serde_json::from_value(v["status"].clone()).unwrap();
        assert_eq!(back, report);
    }

    let log = server.script.lock().unwrap().log.clone();
    assert_eq!(
        log.iter().filter(|l| *l == object_path).count(),
        4,
        "GET, PUT, GET, PUT: {log:?}"
    );

    // A resource deleted meanwhile is reported as gone (the server answers 404).
    let mut gone = resource.clone();
    gone.metadata.name = "deleted".into();
    let err = rt
        .block_on(async {
            let store = StatusStore::Kubernetes(KubeStatusStore::with_url(&server.url).unwrap());
            store.write(&gone, &report).await
        })
        .unwrap_err();
    assert!(
        matches!(err, StatusError::NotFound(ref n) if n == "deleted"),
        "{err}"
    );
}
