//! `ternd` on the kubernetes datastore (`DATASTORE_TYPE=kubernetes`, `KUBECONFIG`), the
//! default in calico-node: a small stand-in API server inside a network namespace answers the
//! list requests (two annotated Nodes, a BGPPeer, a block affinity; every other collection
//! empty) and holds the watches open; ternd, in the same namespace, configures the mesh peer
//! and the global peer those resources describe, as its control socket shows.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Stdio;
use std::sync::mpsc;
use std::time::Duration;

use tern_tests::{Daemon, Netns, TempDir, require_root, wait_for};

const EMPTY: &str =
    r#"{"kind":"List","apiVersion":"v1","metadata":{"resourceVersion":"1"},"items":[]}"#;

const NODES: &str = r#"{"kind":"NodeList","apiVersion":"v1","metadata":{"resourceVersion":"3"},"items":[
 {"metadata":{"name":"kube-master","resourceVersion":"2",
   "annotations":{"projectcalico.org/IPv4Address":"10.192.0.2/16"}}},
 {"metadata":{"name":"kube-node-1","resourceVersion":"3",
   "annotations":{"projectcalico.org/IPv4Address":"10.192.0.3/16"}}}]}"#;

const PEERS: &str = r#"{"kind":"BGPPeerList","apiVersion":"crd.projectcalico.org/v1","metadata":{"resourceVersion":"10"},"items":[
 {"apiVersion":"crd.projectcalico.org/v1","kind":"BGPPeer","metadata":{"name":"tor","resourceVersion":"9"},
  "spec":{"peerIP":"10.192.0.1","asNumber":65001}}]}"#;

const AFFINITIES: &str = r#"{"kind":"BlockAffinityList","apiVersion":"crd.projectcalico.org/v1","metadata":{"resourceVersion":"4"},"items":[
 {"metadata":{"name":"kube-master-192-168-221-64-26"},"spec":{"node":"kube-master","cidr":"192.168.221.64/26","state":"confirmed","type":"host","deleted":"false"}}]}"#;

/// One HTTP request: lists get their JSON, watches an open chunked stream with no events.
fn serve(stream: TcpStream) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let target = line.split_whitespace().nth(1).unwrap_or("/").to_string();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).is_err() || h.trim().is_empty() {
            break;
        }
    }
    let mut stream = stream;
    if target.contains("watch=") {
        let _ = stream.write_all(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
        );
        // Hold the watch open; the test ends by killing ternd.
        std::thread::sleep(Duration::from_secs(120));
        return;
    }
    let path = target.split('?').next().unwrap_or("");
    let body = if path == "/api/v1/nodes" {
        NODES
    } else if path.ends_with("/bgppeers") {
        PEERS
    } else if path.ends_with("/blockaffinities") {
        AFFINITIES
    } else {
        EMPTY
    };
    let _ = write!(
        stream,
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

/// The stand-in API server on 127.0.0.1 inside `ns`; returns its port.
fn start_server(ns: &Netns) -> u16 {
    let path = ns.path();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).unwrap();
        nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        tx.send(listener.local_addr().unwrap().port()).unwrap();
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || serve(stream));
        }
    });
    rx.recv_timeout(Duration::from_secs(10)).unwrap()
}

fn protocols(socket: &Path) -> Option<Vec<String>> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut c = tern_control::client::Client::connect(socket, Duration::from_secs(2))
            .await
            .ok()?;
        let reply = c.command("json show protocols").await.ok()?;
        let v: serde_json::Value =
            serde_json::from_str(&tern_control::client::reply_text(&reply)).ok()?;
        Some(
            v["protocols"]
                .as_array()?
                .iter()
                .filter_map(|p| p["name"].as_str().map(str::to_string))
                .collect(),
        )
    })
}

#[test]
fn ternd_reads_the_kubernetes_datastore() {
    if !require_root("ternd_reads_the_kubernetes_datastore") {
        return;
    }
    let ns = Netns::new("tdk");
    let port = start_server(&ns);
    let dir = TempDir::new("tdk");
    let kubeconfig = dir.write(
        "kubeconfig",
        &format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {{server: \"http://127.0.0.1:{port}\"}}\nusers:\n- name: u\n  user: {{}}\ncontexts:\n- name: x\n  context: {{cluster: c, user: u}}\ncurrent-context: x\n"
        ),
    );
    let socket = dir.path().join("bird.ctl");
    let log = std::fs::File::create(dir.path().join("ternd.log")).unwrap();
    let mut cmd = ns.command(env!("CARGO_BIN_EXE_ternd"));
    cmd.env("NODENAME", "kube-master")
        .env("DATASTORE_TYPE", "kubernetes")
        .env("KUBECONFIG", &kubeconfig)
        .env("CALICO_ENDPOINT_STATUS_PATH_PREFIX", dir.path())
        .args(["--no-fib", "--control-socket"])
        .arg(&socket)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log);
    let mut ternd = Daemon::spawn(cmd);
    let names = wait_for(
        "ternd's peers from the kubernetes datastore",
        Duration::from_secs(30),
        || {
            assert!(
                ternd.is_running(),
                "ternd exited: {}",
                std::fs::read_to_string(dir.path().join("ternd.log")).unwrap_or_default()
            );
            protocols(&socket).filter(|n| !n.is_empty())
        },
    );
    for want in ["Mesh_10_192_0_3", "Global_10_192_0_1"] {
        assert!(names.iter().any(|n| n == want), "{names:?}");
    }
}
