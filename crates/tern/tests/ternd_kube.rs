//! `ternd` on the kubernetes datastore (`DATASTORE_TYPE=kubernetes`, `KUBECONFIG`), the
//! default in calico-node, against a stand-in API server inside a network namespace that
//! speaks the real list/watch wire format: lists with a collection `resourceVersion`, watches
//! as chunked streams of JSON event lines resumed from a `resourceVersion`, bookmarks, and
//! `410 Gone` (as a watch `ERROR` event, or as the HTTP status of the watch request).
//!
//! - `ternd_reads_the_kubernetes_datastore`: the mesh peer and the global peer the resources
//!   describe, as the control socket shows.
//! - `kube_watch_loss_keeps_sessions_and_routes_and_resyncs`: two ternd nodes peering over a
//!   veth, each reading the API server; every watch connection is cut mid-stream (resumed from
//!   the last resourceVersion), then the API server refuses connections for 5 s while
//!   resources change and answers the next watches with `410 Gone`. The session never resets,
//!   no kernel route is removed meanwhile, the loss shows on `/metrics`, and the changes are
//!   applied exactly once when it returns.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, mpsc};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tern_tests::observe::{RouteMonitor, metric, scrape_metrics};
use tern_tests::{Daemon, Netns, TempDir, require_root, veth, wait_for};

const CRD: &str = "crd.projectcalico.org/v1";
const NODES: &str = "/api/v1/nodes";
const PEERS: &str = "/apis/crd.projectcalico.org/v1/bgppeers";
const POOLS: &str = "/apis/crd.projectcalico.org/v1/ippools";
const AFFINITIES: &str = "/apis/crd.projectcalico.org/v1/blockaffinities";

/// The kind and apiVersion of a collection's items.
fn kind_of(path: &str) -> (&'static str, &'static str) {
    match path.rsplit('/').next().unwrap_or("") {
        "nodes" => ("Node", "v1"),
        "bgppeers" => ("BGPPeer", CRD),
        "ippools" => ("IPPool", CRD),
        "blockaffinities" => ("BlockAffinity", CRD),
        "bgpconfigurations" => ("BGPConfiguration", CRD),
        "bgpfilters" => ("BGPFilter", CRD),
        "caliconodestatuses" => ("CalicoNodeStatus", CRD),
        "secrets" => ("Secret", "v1"),
        "services" => ("Service", "v1"),
        "endpointslices" => ("EndpointSlice", "discovery.k8s.io/v1"),
        _ => ("Unknown", "v1"),
    }
}

// ===== the stand-in API server =====

/// One request the server saw.
#[derive(Clone, Debug)]
struct Seen {
    client: IpAddr,
    path: String,
    /// `Some(rv)` for a watch (the resourceVersion asked for), `None` for a list.
    watch_from: Option<String>,
    /// `list`, `watch`, `410 status` or `410 event`.
    answer: &'static str,
}

#[derive(Default)]
struct State {
    /// The cluster's resourceVersion (etcd's revision).
    rv: u64,
    /// Objects by collection path and name.
    objects: BTreeMap<String, BTreeMap<String, Value>>,
    /// Every change: revision, collection, event type, object.
    events: Vec<(u64, String, &'static str, Value)>,
    seen: Vec<Seen>,
    /// Open watch streams (clones, for cutting them).
    streams: Vec<TcpStream>,
    /// Open watches per client.
    open: BTreeMap<IpAddr, usize>,
    /// Bumped when the streams are cut: watch threads of an older epoch end.
    epoch: u64,
    /// The listening socket is closed while set (connections refused).
    refusing: bool,
    /// Whether the listening socket is open (the listener thread's answer to `refusing`).
    listening: bool,
    /// Watches answered `410 Gone` once: (client, collection).
    gone: BTreeSet<(IpAddr, String)>,
}

/// An API server holding a few Calico resources, on `addr` inside a namespace.
struct ApiServer {
    addr: SocketAddr,
    shared: Arc<(Mutex<State>, Condvar)>,
    stop: Arc<AtomicBool>,
}

impl ApiServer {
    /// Listens on `ip` (an address of `ns`), on a free port.
    fn start(ns: &Netns, ip: IpAddr) -> ApiServer {
        let shared: Arc<(Mutex<State>, Condvar)> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::channel();
        let path = ns.path();
        let (sh, st) = (shared.clone(), stop.clone());
        std::thread::spawn(move || {
            let file = File::open(&path).unwrap();
            nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            let first = TcpListener::bind((ip, 0)).unwrap();
            let addr = first.local_addr().unwrap();
            tx.send(addr).unwrap();
            let mut listener = Some(first);
            while !st.load(Ordering::SeqCst) {
                let refusing = sh.0.lock().unwrap().refusing;
                if refusing {
                    // Closed: a connection attempt gets a reset (ECONNREFUSED).
                    listener = None;
                } else if listener.is_none() {
                    listener = TcpListener::bind(addr).ok();
                }
                sh.0.lock().unwrap().listening = listener.is_some();
                let Some(l) = &listener else {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                };
                l.set_nonblocking(true).unwrap();
                match l.accept() {
                    Ok((conn, _)) => {
                        conn.set_nonblocking(false).unwrap();
                        let (sh, st) = (sh.clone(), st.clone());
                        std::thread::spawn(move || serve(conn, &sh, &st));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        let addr = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        ApiServer { addr, shared, stop }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.shared.0.lock().unwrap()
    }

    /// Creates or replaces an object (its name from `metadata.name`).
    fn put(&self, path: &str, mut object: Value) {
        let mut s = self.state();
        s.rv += 1;
        let rv = s.rv;
        object["metadata"]["resourceVersion"] = json!(rv.to_string());
        let name = object["metadata"]["name"].as_str().unwrap().to_string();
        let (kind, api_version) = kind_of(path);
        object["kind"] = json!(kind);
        object["apiVersion"] = json!(api_version);
        let old = s
            .objects
            .entry(path.to_string())
            .or_default()
            .insert(name, object.clone());
        let what = if old.is_some() { "MODIFIED" } else { "ADDED" };
        s.events.push((rv, path.to_string(), what, object));
        drop(s);
        self.shared.1.notify_all();
    }

    fn delete(&self, path: &str, name: &str) {
        let mut s = self.state();
        s.rv += 1;
        let rv = s.rv;
        let mut object = s
            .objects
            .get_mut(path)
            .and_then(|c| c.remove(name))
            .unwrap_or_else(|| panic!("no {name} in {path}"));
        object["metadata"]["resourceVersion"] = json!(rv.to_string());
        s.events.push((rv, path.to_string(), "DELETED", object));
        drop(s);
        self.shared.1.notify_all();
    }

    /// Cuts every open watch stream mid-stream (FIN, no terminating chunk).
    fn cut_watches(&self) {
        let mut s = self.state();
        for stream in s.streams.drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
        s.epoch += 1;
        drop(s);
        self.shared.1.notify_all();
    }

    /// Closes (or reopens) the listening socket, and waits until it is.
    fn refuse(&self, refusing: bool) {
        self.state().refusing = refusing;
        wait_for("the API server's listener", Duration::from_secs(10), || {
            (self.state().listening != refusing).then_some(())
        });
    }

    /// Answers `client`'s next watch of every collection it has watched with `410 Gone`.
    fn expire_watches_of(&self, client: IpAddr) {
        let mut s = self.state();
        let paths: BTreeSet<String> = s
            .seen
            .iter()
            .filter(|r| r.client == client && r.watch_from.is_some())
            .map(|r| r.path.clone())
            .collect();
        for p in paths {
            s.gone.insert((client, p));
        }
    }

    fn open_watches(&self, client: IpAddr) -> usize {
        self.state().open.get(&client).copied().unwrap_or(0)
    }

    fn seen(&self) -> Vec<Seen> {
        self.state().seen.clone()
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.cut_watches();
    }
}

/// One chunk of a chunked body.
fn chunk(stream: &mut TcpStream, line: &str) -> std::io::Result<()> {
    let data = format!("{line}\n");
    write!(stream, "{:x}\r\n{data}\r\n", data.len())?;
    stream.flush()
}

fn serve(mut stream: TcpStream, shared: &(Mutex<State>, Condvar), stop: &AtomicBool) {
    let Ok(peer) = stream.peer_addr() else { return };
    let client = peer.ip();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let target = line.split_whitespace().nth(1).unwrap_or("/").to_string();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
            break;
        }
    }
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let path = path.to_string();
    let param = |name: &str| {
        query
            .split('&')
            .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
            .map(str::to_string)
    };
    let (kind, api_version) = kind_of(&path);
    let mut s = shared.0.lock().unwrap();
    if param("watch").is_none() {
        let items: Vec<&Value> = s
            .objects
            .get(&path)
            .map(|c| c.values().collect())
            .unwrap_or_default();
        let body = json!({
            "kind": format!("{kind}List"), "apiVersion": api_version,
            "metadata": {"resourceVersion": s.rv.to_string()}, "items": items,
        })
        .to_string();
        s.seen.push(Seen {
            client,
            path,
            watch_from: None,
            answer: "list",
        });
        drop(s);
        let _ = write!(
            stream,
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        return;
    }
    let from = param("resourceVersion").unwrap_or_default();
    if s.gone.remove(&(client, path.clone())) {
        // Alternate the two ways an API server says it: the HTTP status of the watch
        // request, or a 200 with one ERROR event.
        let as_status = s
            .seen
            .iter()
            .filter(|r| r.answer.starts_with("410"))
            .count()
            % 2
            == 0;
        let status = json!({"kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": "Failure", "reason": "Expired", "code": 410,
            "message": format!("too old resource version: {from} ({})", s.rv)});
        s.seen.push(Seen {
            client,
            path,
            watch_from: Some(from),
            answer: if as_status { "410 status" } else { "410 event" },
        });
        drop(s);
        if as_status {
            let body = status.to_string();
            let _ = write!(
                stream,
                "HTTP/1.1 410 Gone\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        } else {
            let _ = stream.write_all(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
            );
            let _ = chunk(
                &mut stream,
                &json!({"type": "ERROR", "object": status}).to_string(),
            );
            let _ = stream.write_all(b"0\r\n\r\n");
        }
        return;
    }
    let Ok(mut sent) = from.parse::<u64>() else {
        return;
    };
    s.seen.push(Seen {
        client,
        path: path.clone(),
        watch_from: Some(from),
        answer: "watch",
    });
    s.streams.push(stream.try_clone().unwrap());
    *s.open.entry(client).or_default() += 1;
    let epoch = s.epoch;
    drop(s);
    let mut alive = stream
        .write_all(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
        )
        .is_ok();
    let mut last_bookmark = Instant::now();
    while alive && !stop.load(Ordering::SeqCst) {
        let s = shared.0.lock().unwrap();
        if s.epoch != epoch {
            break;
        }
        let mut lines: Vec<String> = s
            .events
            .iter()
            .filter(|(rv, p, _, _)| *rv > sent && *p == path)
            .map(|(_, _, what, object)| json!({"type": what, "object": object}).to_string())
            .collect();
        if last_bookmark.elapsed() > Duration::from_secs(1) {
            // Everything of this collection up to the cluster's revision has been sent.
            lines.push(
                json!({"type": "BOOKMARK", "object": {"kind": kind, "apiVersion": api_version,
                    "metadata": {"resourceVersion": s.rv.to_string()}}})
                .to_string(),
            );
            last_bookmark = Instant::now();
        }
        sent = s.rv;
        if lines.is_empty() {
            let _ = shared
                .1
                .wait_timeout(s, Duration::from_millis(500))
                .unwrap();
            continue;
        }
        drop(s);
        alive = lines.iter().all(|l| chunk(&mut stream, l).is_ok());
    }
    let mut s = shared.0.lock().unwrap();
    if let Some(n) = s.open.get_mut(&client) {
        *n -= 1;
    }
}

// ===== ternd =====

fn kubeconfig(dir: &TempDir, url: &str) -> PathBuf {
    dir.write(
        "kubeconfig",
        &format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {{server: \"{url}\"}}\nusers:\n- name: u\n  user: {{}}\ncontexts:\n- name: x\n  context: {{cluster: c, user: u}}\ncurrent-context: x\n"
        ),
    )
}

/// `ternd` as calico-node runs it for `node`, in `ns`; control socket `NAME.ctl` and log
/// `NAME.log` in `dir`.
fn spawn_ternd(ns: &Netns, node: &str, dir: &TempDir, url: &str, extra: &[&str]) -> Daemon {
    let kubeconfig = kubeconfig(dir, url);
    let log = File::create(dir.path().join(format!("{node}.log"))).unwrap();
    let status = dir.path().join(format!("{node}-status"));
    std::fs::create_dir_all(&status).unwrap();
    let mut cmd = ns.command(env!("CARGO_BIN_EXE_ternd"));
    cmd.env("NODENAME", node)
        .env("DATASTORE_TYPE", "kubernetes")
        .env("KUBECONFIG", &kubeconfig)
        .env("CALICO_ENDPOINT_STATUS_PATH_PREFIX", &status)
        .arg("--control-socket")
        .arg(dir.path().join(format!("{node}.ctl")))
        .args(extra)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log);
    Daemon::spawn(cmd)
}

fn log_tail(dir: &TempDir, node: &str) -> String {
    let text = std::fs::read_to_string(dir.path().join(format!("{node}.log"))).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// A control-socket command's JSON reply.
fn control(socket: &Path, command: &str) -> Option<Value> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut c = tern_control::client::Client::connect(socket, Duration::from_secs(2))
            .await
            .ok()?;
        let reply = c.command(command).await.ok()?;
        serde_json::from_str(&tern_control::client::reply_text(&reply)).ok()
    })
}

fn protocols(socket: &Path) -> Option<Vec<String>> {
    Some(
        control(socket, "json show protocols")?["protocols"]
            .as_array()?
            .iter()
            .filter_map(|p| p["name"].as_str().map(str::to_string))
            .collect(),
    )
}

#[test]
fn ternd_reads_the_kubernetes_datastore() {
    if !require_root("ternd_reads_the_kubernetes_datastore") {
        return;
    }
    let ns = Netns::new("tdk");
    let server = ApiServer::start(&ns, "127.0.0.1".parse().unwrap());
    let node = |name: &str, ip: &str| {
        json!({"metadata": {"name": name,
            "annotations": {"projectcalico.org/IPv4Address": ip}}})
    };
    server.put(NODES, node("kube-master", "10.192.0.2/16"));
    server.put(NODES, node("kube-node-1", "10.192.0.3/16"));
    server.put(
        PEERS,
        json!({"metadata": {"name": "tor"}, "spec": {"peerIP": "10.192.0.1", "asNumber": 65001}}),
    );
    server.put(
        AFFINITIES,
        json!({"metadata": {"name": "kube-master-192-168-221-64-26"},
            "spec": {"node": "kube-master", "cidr": "192.168.221.64/26", "state": "confirmed",
                "type": "host", "deleted": "false"}}),
    );
    let dir = TempDir::new("tdk");
    let mut ternd = spawn_ternd(&ns, "kube-master", &dir, &server.url(), &["--no-fib"]);
    let socket = dir.path().join("kube-master.ctl");
    let names = wait_for(
        "ternd's peers from the kubernetes datastore",
        Duration::from_secs(30),
        || {
            assert!(
                ternd.is_running(),
                "ternd exited: {}",
                log_tail(&dir, "kube-master")
            );
            protocols(&socket).filter(|n| !n.is_empty())
        },
    );
    for want in ["Mesh_10_192_0_3", "Global_10_192_0_1"] {
        assert!(names.iter().any(|n| n == want), "{names:?}");
    }
}

// ===== the watch-loss fault =====

const A: &str = "10.83.0.1";
const B: &str = "10.83.0.2";
const BLOCK_A: &str = "10.244.1.0/26";
const BLOCK_B: &str = "10.244.2.0/26";
/// node-2's block deleted while the API server is away.
const BLOCK_GONE: &str = "10.244.4.0/26";
/// node-2's block added while the watches are cut (replayed from the resourceVersion).
const BLOCK_REPLAYED: &str = "10.244.5.0/26";
/// node-2's block added while the API server is away (seen by the re-list).
const BLOCK_NEW: &str = "10.244.3.0/26";
/// A BGPPeer added while the API server is away.
const EXTRA_PEER: &str = "Global_10_83_0_9";

fn affinity(node: &str, cidr: &str) -> Value {
    json!({"metadata": {"name": format!("{node}-{}", cidr.replace(['.', '/'], "-"))},
        "spec": {"node": node, "cidr": cidr, "state": "confirmed", "type": "host",
            "deleted": "false"}})
}

/// One node of the fault test.
struct KubeNode {
    ns: Netns,
    name: &'static str,
    ip: &'static str,
    daemon: Daemon,
    monitor: RouteMonitor,
    socket: PathBuf,
}

impl KubeNode {
    fn metrics_addr(&self) -> String {
        format!("{}:9091", self.ip)
    }

    fn metrics(&self) -> String {
        scrape_metrics(&self.ns, &self.metrics_addr())
            .unwrap_or_else(|| panic!("{}: no /metrics", self.name))
    }

    /// The mesh session's counters: (established, flaps).
    fn session_counters(&self, peer: &str) -> (f64, f64) {
        let m = self.metrics();
        let label = format!("peer=\"{peer}\"");
        (
            metric(&m, "tern_bgp_peer_established_total", Some(&label)).unwrap(),
            metric(&m, "tern_bgp_peer_flaps_total", Some(&label)).unwrap(),
        )
    }

    fn synced(&self) -> Option<f64> {
        metric(&self.metrics(), "tern_datastore_synced", None)
    }

    fn table(&self) -> BTreeSet<String> {
        self.ns
            .ip(["route", "show", "proto", "bird"])
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// The prefixes in the Loc-RIB learned from `peer`, one entry per path.
    fn paths_from(&self, peer: &str) -> Vec<String> {
        let reply = control(&self.socket, &format!("json show route protocol {peer}"))
            .unwrap_or_else(|| panic!("{}: show route failed", self.name));
        let mut v: Vec<String> = reply["routes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["prefix"].as_str().unwrap().to_string())
            .collect();
        v.sort();
        v
    }
}

/// The expected learned and own routes of both nodes at one stage.
fn converged(a: &KubeNode, b: &KubeNode, b_blocks: &[&str], b_gone: &[&str]) -> bool {
    let ta = a.ns.ip(["route", "show", "proto", "bird"]);
    let tb = b.ns.ip(["route", "show", "proto", "bird"]);
    let has = |t: &str, p: &str, what: &str| {
        t.lines()
            .any(|l| l.split_whitespace().any(|w| w == p) && l.contains(what))
    };
    let mentions = |t: &str, p: &str| t.lines().any(|l| l.split_whitespace().any(|w| w == p));
    has(&tb, BLOCK_A, &format!("via {A}"))
        && has(&ta, BLOCK_A, "blackhole")
        && b_blocks
            .iter()
            .all(|p| has(&ta, p, &format!("via {B}")) && has(&tb, p, "blackhole"))
        && b_gone
            .iter()
            .all(|p| !mentions(&ta, p) && !mentions(&tb, p))
}

#[test]
fn kube_watch_loss_keeps_sessions_and_routes_and_resyncs() {
    let test = "kube_watch_loss_keeps_sessions_and_routes_and_resyncs";
    if !require_root(test) {
        return;
    }
    let ns_a = Netns::new("kwa");
    let ns_b = Netns::new("kwb");
    veth(&ns_a, &[&format!("{A}/24")], &ns_b, &[&format!("{B}/24")]);
    let server = ApiServer::start(&ns_a, A.parse().unwrap());
    for (name, ip) in [("node-1", A), ("node-2", B)] {
        server.put(
            NODES,
            json!({"metadata": {"name": name, "annotations": {
                "projectcalico.org/IPv4Address": format!("{ip}/24"),
                "projectcalico.org/ASNumber": "64512"}}}),
        );
    }
    server.put(
        POOLS,
        json!({"metadata": {"name": "default-ipv4-ippool"}, "spec": {"cidr": "10.244.0.0/16",
            "blockSize": 26, "ipipMode": "Never", "vxlanMode": "Never",
            "natOutgoing": true, "nodeSelector": "all()"}}),
    );
    server.put(AFFINITIES, affinity("node-1", BLOCK_A));
    server.put(AFFINITIES, affinity("node-2", BLOCK_B));
    server.put(AFFINITIES, affinity("node-2", BLOCK_GONE));

    let dir = TempDir::new("kw");
    let start = |ns: Netns, name: &'static str, ip: &'static str| {
        let metrics = format!("{ip}:9091");
        let daemon = spawn_ternd(
            &ns,
            name,
            &dir,
            &server.url(),
            &["--metrics-addr", &metrics],
        );
        let monitor = RouteMonitor::start(&ns, &dir.path().join(format!("{name}-monitor.log")));
        KubeNode {
            socket: dir.path().join(format!("{name}.ctl")),
            ns,
            name,
            ip,
            daemon,
            monitor,
        }
    };
    let mut a = start(ns_a, "node-1", A);
    let mut b = start(ns_b, "node-2", B);
    let (ip_a, ip_b): (IpAddr, IpAddr) = (A.parse().unwrap(), B.parse().unwrap());
    let alive = |a: &mut KubeNode, b: &mut KubeNode| {
        for n in [a, b] {
            assert!(
                n.daemon.is_running(),
                "{} ternd exited:\n{}",
                n.name,
                log_tail(&dir, n.name)
            );
            assert!(n.monitor.is_running(), "ip monitor on {} exited", n.name);
        }
    };

    // Converged, and every collection watched by both daemons.
    wait_for("both blocks exchanged", Duration::from_secs(60), || {
        alive(&mut a, &mut b);
        converged(&a, &b, &[BLOCK_B, BLOCK_GONE], &[]).then_some(())
    });
    let collections = server
        .seen()
        .iter()
        .filter(|r| r.client == ip_a && r.watch_from.is_none())
        .count();
    assert!(collections >= 5, "node-1 listed {collections} collections");
    wait_for("every watch open", Duration::from_secs(30), || {
        (server.open_watches(ip_a) == collections && server.open_watches(ip_b) == collections)
            .then_some(())
    });
    let mesh_a = "Mesh_10_83_0_2";
    let mesh_b = "Mesh_10_83_0_1";
    let counters_a = a.session_counters(mesh_a);
    let counters_b = b.session_counters(mesh_b);
    assert!(counters_a.0 >= 1.0, "{counters_a:?}");
    assert_eq!(a.synced(), Some(1.0));
    assert_eq!(b.synced(), Some(1.0));
    let before_a = a.table();
    let before_b = b.table();
    // Nothing of what is there may go away, until the deletion made on purpose.
    let kept = |a: &KubeNode, b: &KubeNode| {
        for (n, before) in [(a, &before_a), (b, &before_b)] {
            let now = n.table();
            let lost: Vec<&String> = before
                .iter()
                .filter(|l| !l.contains(BLOCK_GONE) && !now.contains(*l))
                .collect();
            assert!(lost.is_empty(), "{} lost {lost:?}; now {now:?}", n.name);
        }
        assert_eq!(
            a.session_counters(mesh_a),
            counters_a,
            "node-1's session reset"
        );
        assert_eq!(
            b.session_counters(mesh_b),
            counters_b,
            "node-2's session reset"
        );
    };

    // 1. Every watch cut mid-stream, and a change made before they return: the watches
    //    resume from their resourceVersion (no re-list) and the change is replayed.
    let seen_before = server.seen().len();
    server.cut_watches();
    server.put(AFFINITIES, affinity("node-2", BLOCK_REPLAYED));
    wait_for(
        "the block added while the watches were cut",
        Duration::from_secs(30),
        || {
            alive(&mut a, &mut b);
            kept(&a, &b);
            converged(&a, &b, &[BLOCK_B, BLOCK_GONE, BLOCK_REPLAYED], &[]).then_some(())
        },
    );
    let after_cut: Vec<Seen> = server.seen()[seen_before..].to_vec();
    assert!(
        after_cut.iter().all(|r| r.watch_from.is_some()),
        "a cut watch made ternd re-list instead of resuming: {after_cut:?}"
    );
    assert!(
        after_cut
            .iter()
            .any(|r| r.path == AFFINITIES && r.client == ip_a),
        "{after_cut:?}"
    );
    assert_eq!(a.synced(), Some(1.0), "a resumed watch is no loss");

    // 2. The API server goes away: the watches are cut and connections refused for 5 s,
    //    while a block is added, another deleted and a BGPPeer added. Both daemons report
    //    the loss and keep their sessions and routes.
    let seen_before = server.seen().len();
    server.refuse(true);
    server.cut_watches();
    server.put(AFFINITIES, affinity("node-2", BLOCK_NEW));
    server.delete(
        AFFINITIES,
        affinity("node-2", BLOCK_GONE)["metadata"]["name"]
            .as_str()
            .unwrap(),
    );
    server.put(
        PEERS,
        json!({"metadata": {"name": "extra"}, "spec": {"peerIP": "10.83.0.9", "asNumber": 65009}}),
    );
    // When it returns, its watch cache has moved on: the next watch of each collection
    // is answered 410 Gone, so the daemons must list again.
    server.expire_watches_of(ip_a);
    server.expire_watches_of(ip_b);
    wait_for(
        "both daemons to report the loss",
        Duration::from_secs(30),
        || {
            alive(&mut a, &mut b);
            kept(&a, &b);
            (a.synced() == Some(0.0) && b.synced() == Some(0.0)).then_some(())
        },
    );
    let outage = Instant::now();
    while outage.elapsed() < Duration::from_secs(5) {
        alive(&mut a, &mut b);
        kept(&a, &b);
        assert_eq!(a.synced(), Some(0.0));
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        server.seen()[seen_before..].is_empty(),
        "the server answered while refusing"
    );
    let blocks = [BLOCK_B, BLOCK_REPLAYED, BLOCK_NEW];
    server.refuse(false);
    wait_for(
        "the resync after the outage",
        Duration::from_secs(60),
        || {
            alive(&mut a, &mut b);
            kept(&a, &b);
            let peers_ok = [&a, &b].iter().all(|n| {
                protocols(&n.socket)
                    .is_some_and(|p| p.iter().filter(|x| *x == EXTRA_PEER).count() == 1)
            });
            (peers_ok
                && a.synced() == Some(1.0)
                && b.synced() == Some(1.0)
                && converged(&a, &b, &blocks, &[BLOCK_GONE]))
            .then_some(())
        },
    );
    // Every expired watch is followed by a list of that collection, then a watch from it.
    let relisted = |seen: &[Seen]| {
        [ip_a, ip_b].iter().all(|client| {
            let mut gone = seen
                .iter()
                .enumerate()
                .skip(seen_before)
                .filter(|(_, r)| r.client == *client && r.answer.starts_with("410"))
                .peekable();
            gone.peek().is_some()
                && gone.all(|(pos, g)| {
                    let later = &seen[pos..];
                    let list = later.iter().position(|r| {
                        r.client == *client && r.path == g.path && r.answer == "list"
                    });
                    list.is_some_and(|l| {
                        later[l..]
                            .iter()
                            .any(|r| r.client == *client && r.path == g.path && r.answer == "watch")
                    })
                })
        })
    };
    let since = Instant::now();
    let seen = loop {
        alive(&mut a, &mut b);
        let seen = server.seen();
        if relisted(&seen) {
            break seen;
        }
        assert!(
            since.elapsed() < Duration::from_secs(30),
            "no re-list and new watch after every 410: {:#?}\n{}",
            &seen[seen_before..],
            log_tail(&dir, "node-1")
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    for form in ["410 status", "410 event"] {
        assert!(seen.iter().any(|r| r.answer == form), "no {form} sent");
    }
    // A 410 re-lists that one collection, not the whole datastore: once the first 410
    // came, there is exactly one list per 410.
    for client in [ip_a, ip_b] {
        let mine: Vec<&Seen> = seen[seen_before..]
            .iter()
            .filter(|r| r.client == client)
            .skip_while(|r| !r.answer.starts_with("410"))
            .collect();
        let gone = mine.iter().filter(|r| r.answer.starts_with("410")).count();
        let lists = mine.iter().filter(|r| r.answer == "list").count();
        assert_eq!(
            lists, gone,
            "{client}: {lists} lists for {gone} 410s: {mine:#?}"
        );
    }

    // Exactly once: each block one kernel route on each node and one path in node-1's
    // table from node-2; the deleted block deleted once; nothing else deleted, ever.
    assert_eq!(
        a.paths_from(mesh_a),
        vec![BLOCK_B, BLOCK_NEW, BLOCK_REPLAYED],
        "node-1's paths from node-2"
    );
    for n in [&a, &b] {
        let table = n.table();
        for p in [BLOCK_A, BLOCK_B, BLOCK_NEW, BLOCK_REPLAYED] {
            let lines = table
                .iter()
                .filter(|l| l.split_whitespace().any(|w| w == p))
                .count();
            assert_eq!(lines, 1, "{}: {p} in {table:?}", n.name);
        }
        assert_eq!(table.len(), 4, "{}: {table:?}", n.name);
        for p in [BLOCK_A, BLOCK_B, BLOCK_REPLAYED] {
            assert_eq!(
                n.monitor.deletions(p).len(),
                0,
                "{}: {p} was deleted from the kernel",
                n.name
            );
        }
        assert_eq!(
            n.monitor.deletions(BLOCK_GONE).len(),
            1,
            "{}: {BLOCK_GONE} deletions",
            n.name
        );
        assert!(
            !n.monitor.additions(BLOCK_NEW).is_empty(),
            "{}: {BLOCK_NEW}",
            n.name
        );
    }
    kept(&a, &b);
    let log = std::fs::read_to_string(dir.path().join("node-1.log")).unwrap();
    assert!(
        log.contains("resynchronised"),
        "{}",
        log_tail(&dir, "node-1")
    );
}
