//! End to end: a Calico cluster in network namespaces run by `ternd` and `tern-rr`, with a real
//! etcd (`etcd-server`) as the datastore (`DATASTORE_TYPE=etcdv3`).
//!
//! Topology: a LAN namespace holding a bridge (10.77.0.0/24) and etcd (10.77.0.2:2379); three
//! Calico nodes (10.77.0.11–13, the resources of `demo/calico/`), a workload on node-1 and
//! node-2 wired as Felix wires one (a `cali…` veth into the workload's namespace, a /32 host
//! route at metric 1024, proxy ARP); a top-of-rack router "tor" (10.77.0.20, AS 65001, a
//! `tern-rr --config` that takes routes and sends none) that every node peers with through a
//! global BGPPeer with a BGPFilter; later a route reflector node `rr-1` (10.77.0.10) running
//! `tern-rr`. Every daemon reads etcd and follows its watch; nothing is restarted between
//! stages.
//!
//! 1. Full mesh: each node has a blackhole for its own block and the others' blocks `via`
//!    their node `proto bird`, and no workload /32; the tor learns every block.
//! 2. Mesh off in etcd: remote blocks disappear, blackholes stay, the tor sessions are not
//!    reset (established count unchanged, read over the control socket).
//! 3. `rr-1` with a routeReflectorClusterID and a global BGPPeer selecting it: every block is
//!    back via its originating node (reflected with the next hop unchanged); pod-to-pod ping.
//! 4. Hitless: the tor's BGPFilter is edited in etcd to reject node-1's block; the tor loses
//!    it, and no session anywhere is reset.
//! 5. Restart: during a continuous pod-to-pod ping, node-2's ternd is SIGKILLed and started
//!    again; its kernel routes stay, its peers keep its routes (graceful restart), and no ping
//!    is lost.
//!
//! Between 2 and 3, etcd itself is killed (routes and sessions stay, `/metrics` reports the
//! datastore unsynced) and restarted (stage 3's resources then arrive through it).
//!
//! Also here: the mixed fleet (ternd and BIRD 1.6 nodes, a BIRD 1.6 route reflector, on the
//! file datastore) and the IPIP/IPv6 dual-stack mesh.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use controller::datastore::{Datastore, FileDatastore};
use controller::{NodeEnv, compute};
use serde_json::{Value, json};
use tern_tests::bird16::render_bird;
use tern_tests::lan;
use tern_tests::observe::kernel_routes;
use tern_tests::{Daemon, Netns, TempDir, require_binary, require_root};

/// Upper bound for a stage to converge (BIRD 1.6 peers can spend an `error wait time` of 5 s
/// or more after a refused first connection; CI machines are loaded).
const CONVERGE: Duration = Duration::from_secs(90);
const ETCD_IP: &str = "10.77.0.2";
const TOR_IP: &str = "10.77.0.20";
/// node-1's metrics endpoint, inside its namespace.
const METRICS: &str = "127.0.0.1:9180";

struct Spec {
    name: &'static str,
    ip: &'static str,
    block: Option<&'static str>,
    pod: Option<&'static str>,
}

const NODES: [Spec; 3] = [
    Spec {
        name: "node-1",
        ip: "10.77.0.11",
        block: Some("10.244.1.0/26"),
        pod: Some("10.244.1.5"),
    },
    Spec {
        name: "node-2",
        ip: "10.77.0.12",
        block: Some("10.244.2.0/26"),
        pod: Some("10.244.2.5"),
    },
    Spec {
        name: "node-3",
        ip: "10.77.0.13",
        block: Some("10.244.3.0/26"),
        pod: None,
    },
];

const RR: Spec = Spec {
    name: "rr-1",
    ip: "10.77.0.10",
    block: None,
    pod: None,
};

fn demo_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../demo")
}

// ===== etcd =====

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

/// Where libcalico-go keeps a document in etcd (contract §5.2), and its value.
fn etcd_kv(doc: &Value) -> (String, String) {
    let kind = doc["kind"].as_str().unwrap();
    if kind == "BlockAffinity" {
        let spec = &doc["spec"];
        let cidr = spec["cidr"].as_str().unwrap().replace('/', "-");
        let family = if cidr.contains(':') { "ipv6" } else { "ipv4" };
        return (
            format!(
                "/calico/ipam/v2/host/{}/{family}/block/{cidr}",
                spec["node"].as_str().unwrap()
            ),
            json!({"state": spec["state"]}).to_string(),
        );
    }
    let name = doc["metadata"]["name"].as_str().unwrap();
    (
        format!(
            "/calico/resources/v3/projectcalico.org/{}/{name}",
            plural(kind)
        ),
        doc.to_string(),
    )
}

fn yaml_docs(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    serde_saphyr::from_multiple::<Value>(&text)
        .unwrap()
        .into_iter()
        .filter(|v| !v.is_null())
        .collect()
}

struct Etcd {
    bin: PathBuf,
    daemon: Option<Daemon>,
    dir: TempDir,
}

impl Etcd {
    /// etcd inside the LAN namespace, on the bridge's address.
    fn start(bin: &Path, lan: &Netns) -> Etcd {
        let mut e = Etcd {
            bin: bin.to_path_buf(),
            daemon: None,
            dir: TempDir::new("e2etcd"),
        };
        e.run(lan);
        e
    }

    /// (Re)starts etcd on the same data directory.
    fn run(&mut self, lan: &Netns) {
        let client = format!("http://{ETCD_IP}:2379");
        let peer = "http://127.0.0.1:2380";
        let mut cmd = lan.command(&self.bin);
        cmd.args(["--name", "e2e", "--data-dir"])
            .arg(self.dir.path().join("data"))
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", peer])
            .args(["--initial-advertise-peer-urls", peer])
            .args(["--initial-cluster", &format!("e2e={peer}")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        self.daemon = Some(Daemon::spawn(cmd));
    }

    /// Kills etcd (SIGKILL).
    fn kill(&mut self) {
        self.daemon.take();
    }
}

/// `GET /metrics` from inside a node's namespace.
fn scrape(ns: &Netns, addr: &'static str) -> String {
    ns.run_in(move || {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    })
}

/// Writes (or with `None`, deletes) keys, from a thread inside the LAN namespace.
fn etcd_write(lan: &Netns, kvs: Vec<(String, Option<String>)>) {
    lan.run_in(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let endpoint = format!("http://{ETCD_IP}:2379");
            let start = Instant::now();
            let mut client = loop {
                let e = match etcd_client::Client::connect([endpoint.as_str()], None).await {
                    Ok(mut c) => match c.get("/", None).await {
                        Ok(_) => break c,
                        Err(e) => e.to_string(),
                    },
                    Err(e) => e.to_string(),
                };
                assert!(
                    start.elapsed() < Duration::from_secs(20),
                    "etcd does not answer: {e}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            };
            for (k, v) in kvs {
                match v {
                    Some(v) => client.put(k, v, None).await.unwrap(),
                    None => {
                        client.delete(k, None).await.unwrap();
                        continue;
                    }
                };
            }
        })
    })
}

fn put_docs(lan: &Netns, docs: &[Value]) {
    etcd_write(
        lan,
        docs.iter()
            .map(|d| {
                let (k, v) = etcd_kv(d);
                (k, Some(v))
            })
            .collect(),
    );
}

// ===== topology =====

struct Node {
    spec: &'static Spec,
    ns: Netns,
    pod_ns: Option<Netns>,
    daemon: Option<Daemon>,
    dir: PathBuf,
}

impl Node {
    fn routes(&self) -> String {
        self.ns.ip(["route", "show", "proto", "bird"])
    }
    fn socket(&self) -> PathBuf {
        self.dir.join("bird.ctl")
    }
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("daemon.log")).unwrap_or_default()
    }
}

/// Where the cluster's resources live.
enum Store {
    /// etcd in the LAN namespace.
    Etcd,
    /// A folder of calicoctl YAML (the file datastore).
    Dir(PathBuf),
}

struct Cluster {
    lan: Netns,
    nodes: Vec<Node>,
    work: TempDir,
    store: Store,
}

impl Cluster {
    fn new() -> Cluster {
        let lan = lan::new_lan("e3l");
        lan.ip(["addr", "add", &format!("{ETCD_IP}/24"), "dev", "br0"]);
        Cluster {
            lan,
            nodes: Vec::new(),
            work: TempDir::new("e3w"),
            store: Store::Etcd,
        }
    }

    /// A cluster on the file datastore: a copy of `demo/calico/`.
    fn with_folder() -> Cluster {
        let mut c = Cluster::new();
        let dir = c.work.path().join("calico");
        std::fs::create_dir_all(&dir).unwrap();
        for entry in std::fs::read_dir(demo_dir().join("calico")).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "yaml") {
                std::fs::copy(&path, dir.join(path.file_name().unwrap())).unwrap();
            }
        }
        c.store = Store::Dir(dir);
        c
    }

    /// A cluster on the file datastore holding these resources.
    fn with_resources(docs: &[Value]) -> Cluster {
        let mut c = Cluster::new();
        let dir = c.work.path().join("calico");
        std::fs::create_dir_all(&dir).unwrap();
        let text: Vec<String> = docs.iter().map(Value::to_string).collect();
        std::fs::write(dir.join("resources.yaml"), text.join("\n---\n")).unwrap();
        c.store = Store::Dir(dir);
        c
    }

    /// Copies a `demo/stages/` file into the datastore folder as `target`.
    fn apply_stage(&self, stage: &str, target: &str) {
        let Store::Dir(dir) = &self.store else {
            panic!("not a folder datastore")
        };
        std::fs::copy(demo_dir().join("stages").join(stage), dir.join(target)).unwrap();
    }

    /// What confd does for a BIRD node: compute its configuration from the datastore folder,
    /// render it for BIRD 1.6, and start BIRD or tell it to `configure`.
    fn sync_bird(&mut self, name: &str, bird: &Path, birdc: &Path) {
        let Store::Dir(dir) = &self.store else {
            panic!("BIRD nodes read the folder datastore")
        };
        let snapshot = FileDatastore::new(dir).snapshot().unwrap();
        assert!(snapshot.problems.is_empty(), "{:?}", snapshot.problems);
        let node = self.node_mut(name);
        let env = NodeEnv {
            node_name: name.to_string(),
            ..NodeEnv::default()
        };
        let config = serde_json::to_value(compute(&snapshot.model, &env).unwrap()).unwrap();
        let cfg = node.dir.join("bird.cfg");
        std::fs::write(&cfg, render_bird(&config)).unwrap();
        match &mut node.daemon {
            Some(d) => {
                assert!(d.is_running(), "BIRD on {name} exited");
                let out = std::process::Command::new(birdc)
                    .arg("-s")
                    .arg(node.socket())
                    .arg("configure")
                    .output()
                    .unwrap();
                let text = String::from_utf8_lossy(&out.stdout);
                assert!(
                    text.contains("Reconfigur"),
                    "birdc configure on {name}: {text}"
                );
            }
            None => {
                let mut cmd = node.ns.command(bird);
                cmd.arg("-f")
                    .arg("-c")
                    .arg(&cfg)
                    .arg("-s")
                    .arg(node.socket())
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null());
                node.daemon = Some(Daemon::spawn(cmd));
            }
        }
    }

    fn add_node(&mut self, spec: &'static Spec) {
        let ns = lan::add_node(&self.lan, "e3n", &format!("{}/24", spec.ip));
        let pod_ns = spec.pod.map(|pod| {
            let cali = lan::cali_name(0x0c2b_3c4d_5e00, self.nodes.len());
            lan::add_workload(&ns, "e3w", &cali, pod)
        });
        let dir = self.work.path().join(spec.name);
        std::fs::create_dir_all(&dir).unwrap();
        self.nodes.push(Node {
            spec,
            ns,
            pod_ns,
            daemon: None,
            dir,
        });
    }

    fn node(&self, name: &str) -> &Node {
        self.nodes.iter().find(|n| n.spec.name == name).unwrap()
    }

    fn node_mut(&mut self, name: &str) -> &mut Node {
        self.nodes.iter_mut().find(|n| n.spec.name == name).unwrap()
    }

    /// Starts `bin` (ternd or tern-rr) on a node, reading etcd.
    fn start(&mut self, name: &str, bin: &str, extra: &[&str]) {
        let node = self.node(name);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(node.dir.join("daemon.log"))
            .unwrap();
        let store: Vec<String> = match &self.store {
            Store::Etcd => vec![
                "DATASTORE_TYPE=etcdv3".into(),
                format!("ETCD_ENDPOINTS=http://{ETCD_IP}:2379"),
            ],
            Store::Dir(dir) => vec![
                "DATASTORE_TYPE=file".into(),
                format!("TERN_CONFIG_DIR={}", dir.display()),
            ],
        };
        let node = self.node_mut(name);
        let mut cmd = node.ns.command("env");
        cmd.arg(format!("NODENAME={}", node.spec.name))
            .args(store)
            .arg(format!(
                "CALICO_ENDPOINT_STATUS_PATH_PREFIX={}",
                node.dir.display()
            ))
            .arg(bin)
            .arg("--control-socket")
            .arg(node.socket())
            .args(extra)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        node.daemon = Some(Daemon::spawn(cmd));
    }

    fn logs(&self) -> String {
        self.nodes
            .iter()
            .map(|n| {
                let log = n.log();
                let tail: Vec<&str> = log.lines().rev().take(25).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                format!("--- {} log:\n{}\n", n.spec.name, tail.join("\n"))
            })
            .collect()
    }

    fn ping(&self, from: &str, to: &str) -> bool {
        let to = self.node(to).spec.pod.unwrap();
        self.node(from)
            .pod_ns
            .as_ref()
            .unwrap()
            .command("ping")
            .args(["-c", "1", "-W", "2", to])
            .output()
            .unwrap()
            .status
            .success()
    }
}

// ===== control socket =====

/// `json <command>` over a node's control socket.
fn control(socket: &Path, command: &str) -> Value {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let socket = socket.to_path_buf();
    let command = format!("json {command}");
    rt.block_on(async move {
        let mut c = tern_control::client::Client::connect(&socket, Duration::from_secs(5))
            .await
            .unwrap_or_else(|e| panic!("control socket {}: {e}", socket.display()));
        let reply = c.command(&command).await.unwrap();
        let text = tern_control::client::reply_text(&reply);
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{command}: {e}: {text}"))
    })
}

/// Every BGP protocol of a node: name → (BIRD state word, times established).
fn sessions(node: &Node) -> BTreeMap<String, (String, u64)> {
    sessions_at(&node.socket())
}

/// The same from one control socket (`bird.ctl` shows IPv4 sessions, `bird6.ctl` IPv6).
fn sessions_at(socket: &Path) -> BTreeMap<String, (String, u64)> {
    let v = control(socket, "show protocols all");
    v["protocols"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["proto"] == "BGP")
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_string(),
                (
                    p["bgp"]["state"].as_str().unwrap_or("?").to_string(),
                    p["bgp"]["counters"]["established"].as_u64().unwrap_or(0),
                ),
            )
        })
        .collect()
}

/// Prefix → next hop ("blackhole" or the gateway) of a node's best routes.
fn rib(socket: &Path) -> BTreeMap<String, String> {
    let v = control(socket, "show route");
    v["routes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["primary"].as_bool().unwrap_or(true))
        .map(|r| {
            let via = match &r["via"] {
                Value::Object(o) => o
                    .get("Router")
                    .map(|r| r["gateway"].as_str().unwrap_or("?").to_string())
                    .or_else(|| {
                        o.get("gateway")
                            .map(|g| g.as_str().unwrap_or("?").to_string())
                    })
                    .unwrap_or_else(|| Value::Object(o.clone()).to_string()),
                other => other.as_str().map(str::to_lowercase).unwrap_or_default(),
            };
            (r["prefix"].as_str().unwrap().to_string(), via)
        })
        .collect()
}

// ===== route checks =====

fn expected(me: &Spec, remote: bool) -> BTreeMap<String, String> {
    let mut want = BTreeMap::new();
    for other in &NODES {
        let Some(block) = other.block else { continue };
        if other.name == me.name {
            want.insert(block.to_string(), "blackhole".to_string());
        } else if remote {
            want.insert(block.to_string(), format!("via {}", other.ip));
        }
    }
    want
}

fn wait_routes(cluster: &Cluster, stage: &str, remote: bool) {
    for node in cluster.nodes.iter().filter(|n| n.spec.block.is_some()) {
        let want = expected(node.spec, remote);
        let start = Instant::now();
        loop {
            let have = node.routes();
            if kernel_routes(&have) == want {
                break;
            }
            if start.elapsed() > CONVERGE {
                panic!(
                    "{stage}: after {CONVERGE:?} {} has\n{have}\nwant {want:?}\n{}",
                    node.spec.name,
                    cluster.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn wait<T>(cluster: &Cluster, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        if start.elapsed() > CONVERGE {
            panic!("timed out waiting for {what}\n{}", cluster.logs());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

// ===== resources =====

/// The top-of-rack router: a plain BGP speaker (AS 65001) that accepts every node's routes
/// and announces none.
fn tor_config() -> String {
    let peers: Vec<Value> = NODES
        .iter()
        .chain([&RR])
        .map(|n| {
            json!({
                "name": format!("Node_{}", n.ip.replace('.', "_")), "kind": "global",
                "address": n.ip, "port": 179, "remote_as": 64512, "passive": true,
                "source_address": TOR_IP, "families": ["ipv4"], "import": "all", "export": "none"
            })
        })
        .collect();
    json!({
        "router_id": TOR_IP, "asn": 65001, "node_ipv4": format!("{TOR_IP}/24"),
        "listen": {"address": TOR_IP, "port": 179},
        "peers": peers, "policies": {}, "blackholes": [],
        "kernel": {"export": "none", "learn": false, "persist": false, "scan_time": 10,
                   "graceful_restart": false, "merge_paths": true, "route_protocol": 12,
                   "normal_route_priority": {"ipv4": 1024, "ipv6": 1024}}
    })
    .to_string()
}

fn tor_peer_and_filter(reject: &str) -> Vec<Value> {
    vec![
        json!({
            "apiVersion": "projectcalico.org/v3", "kind": "BGPFilter",
            "metadata": {"name": "tor-export"},
            "spec": {"exportV4": [
                {"action": "Reject", "matchOperator": "Equal", "cidr": reject}
            ]}
        }),
        json!({
            "apiVersion": "projectcalico.org/v3", "kind": "BGPPeer",
            "metadata": {"name": "tor"},
            "spec": {"peerIP": TOR_IP, "asNumber": 65001, "filters": ["tor-export"]}
        }),
    ]
}

// ===== the test =====

#[test]
fn ternd_cluster_on_etcd_mesh_mesh_off_route_reflector_hitless_filter_and_restart() {
    let test = "ternd_cluster_on_etcd_mesh_mesh_off_route_reflector_hitless_filter_and_restart";
    if !require_root(test) {
        return;
    }
    let (Some(etcd), Some(_)) = (require_binary(test, "etcd"), require_binary(test, "ping")) else {
        return;
    };
    let ternd = env!("CARGO_BIN_EXE_ternd");
    let tern_rr = env!("CARGO_BIN_EXE_tern-rr");

    let mut cluster = Cluster::new();
    let mut etcd = Etcd::start(&etcd, &cluster.lan);
    let mut docs = Vec::new();
    for f in [
        "00-bgpconfiguration.yaml",
        "10-nodes.yaml",
        "20-ippool.yaml",
        "30-blockaffinities.yaml",
    ] {
        docs.extend(yaml_docs(&demo_dir().join("calico").join(f)));
    }
    docs.extend(tor_peer_and_filter("10.250.0.0/26"));
    put_docs(&cluster.lan, &docs);

    for spec in &NODES {
        cluster.add_node(spec);
    }
    // The top-of-rack router.
    let tor = Netns::new("e3t");
    lan::attach_to_lan(&cluster.lan, &tor, &format!("{TOR_IP}/24"));
    let tor_dir = cluster.work.path().join("tor");
    std::fs::create_dir_all(&tor_dir).unwrap();
    std::fs::write(tor_dir.join("tor.json"), tor_config()).unwrap();
    let tor_socket = tor_dir.join("bird.ctl");
    let _tor = {
        let log = std::fs::File::create(tor_dir.join("daemon.log")).unwrap();
        let mut cmd = tor.command(tern_rr);
        cmd.arg("--config")
            .arg(tor_dir.join("tor.json"))
            .arg("--control-socket")
            .arg(&tor_socket)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        Daemon::spawn(cmd)
    };
    cluster.start("node-1", ternd, &["--metrics-addr", METRICS]);
    for spec in &NODES[1..] {
        cluster.start(spec.name, ternd, &[]);
    }

    // ---- Stage 1: full mesh.
    wait_routes(&cluster, "stage 1 (full mesh)", true);
    for node in cluster.nodes.iter() {
        let s = wait(&cluster, "every session of a node Established", || {
            let s = sessions(node);
            (s.len() == 3 && s.values().all(|(st, _)| st == "Established")).then_some(s)
        });
        let mut names: Vec<&String> = s.keys().collect();
        names.sort();
        assert!(
            names.iter().any(|n| n.starts_with("Global_10_77_0_20")),
            "{names:?}"
        );
    }
    let tor_rib = wait(&cluster, "the tor to learn every block", || {
        let r = rib(&tor_socket);
        NODES
            .iter()
            .all(|n| r.contains_key(n.block.unwrap()))
            .then_some(r)
    });
    assert!(
        !tor_rib.keys().any(|p| p.ends_with("/32")),
        "a workload /32 leaked to the tor: {tor_rib:?}"
    );
    assert!(cluster.ping("node-1", "node-2"), "stage 1: pod to pod");
    assert!(cluster.ping("node-2", "node-1"), "stage 1: pod to pod");

    // ---- Stage 2: mesh off in the datastore.
    let before: Vec<BTreeMap<String, (String, u64)>> = cluster.nodes.iter().map(sessions).collect();
    let mut mesh_off = yaml_docs(&demo_dir().join("stages/mesh-off.yaml"));
    put_docs(&cluster.lan, &std::mem::take(&mut mesh_off));
    wait_routes(&cluster, "stage 2 (mesh off)", false);
    for (node, before) in cluster.nodes.iter().zip(&before) {
        let now = sessions(node);
        assert_eq!(
            now.len(),
            1,
            "{}: only the tor is left: {now:?}",
            node.spec.name
        );
        let (name, (state, count)) = now.iter().next().unwrap();
        assert_eq!(state, "Established", "{}: {name}", node.spec.name);
        assert_eq!(
            Some(count),
            before.get(name).map(|b| &b.1),
            "{}: the tor session was reset by the mesh change",
            node.spec.name
        );
    }
    assert!(
        !cluster.ping("node-1", "node-2"),
        "stage 2: pods still reach each other"
    );

    // ---- The datastore goes away: sessions and routes stay; it comes back: resync.
    let metrics = scrape(&cluster.node("node-1").ns, METRICS);
    assert!(
        metrics.contains("tern_datastore_synced 1")
            && metrics.contains("tern_bgp_peer_established"),
        "{metrics}"
    );
    let before: Vec<BTreeMap<String, (String, u64)>> = cluster.nodes.iter().map(sessions).collect();
    etcd.kill();
    wait(&cluster, "node-1 to notice etcd is gone", || {
        scrape(&cluster.node("node-1").ns, METRICS)
            .contains("tern_datastore_synced 0")
            .then_some(())
    });
    std::thread::sleep(Duration::from_secs(2));
    for node in cluster.nodes.iter_mut() {
        assert_eq!(
            kernel_routes(&node.routes()),
            expected(node.spec, false),
            "{}: routes changed without the datastore",
            node.spec.name
        );
        let name = node.spec.name;
        assert!(
            node.daemon.as_mut().is_some_and(|d| d.is_running()),
            "{name}'s daemon exited without the datastore"
        );
    }
    let during: Vec<BTreeMap<String, (String, u64)>> = cluster.nodes.iter().map(sessions).collect();
    assert_eq!(before, during, "sessions changed without the datastore");
    etcd.run(&cluster.lan);

    // ---- Stage 3: a route reflector node running tern-rr.
    cluster.add_node(&RR);
    put_docs(
        &cluster.lan,
        &yaml_docs(&demo_dir().join("stages/route-reflector.yaml")),
    );
    cluster.start("rr-1", tern_rr, &[]);
    wait_routes(&cluster, "stage 3 (route reflector)", true);
    let rr_rib = wait(&cluster, "the reflector's table", || {
        let r = rib(&cluster.node("rr-1").socket());
        NODES
            .iter()
            .all(|n| r.get(n.block.unwrap()) == Some(&n.ip.to_string()))
            .then_some(r)
    });
    assert!(!rr_rib.keys().any(|p| p.ends_with("/32")), "{rr_rib:?}");
    assert!(
        cluster.node("rr-1").routes().trim().is_empty(),
        "tern-rr without --fib programmed the kernel"
    );
    assert!(cluster.ping("node-1", "node-2"), "stage 3: pod to pod");
    assert!(cluster.ping("node-2", "node-1"), "stage 3: pod to pod");

    // ---- Stage 4: hitless BGPFilter edit.
    let before: Vec<BTreeMap<String, (String, u64)>> = cluster.nodes.iter().map(sessions).collect();
    for b in &before {
        assert!(b.values().all(|(s, _)| s == "Established"), "{b:?}");
    }
    put_docs(&cluster.lan, &tor_peer_and_filter("10.244.1.0/26")[..1]);
    wait(&cluster, "the tor to lose 10.244.1.0/26", || {
        let r = rib(&tor_socket);
        (!r.contains_key("10.244.1.0/26") && r.contains_key("10.244.2.0/26")).then_some(())
    });
    let after: Vec<BTreeMap<String, (String, u64)>> = cluster.nodes.iter().map(sessions).collect();
    assert_eq!(before, after, "a session was reset by a BGPFilter edit");

    // ---- Stage 5: SIGKILL node-2's ternd during a continuous ping, and start it again.
    let pinger = cluster
        .node("node-1")
        .pod_ns
        .as_ref()
        .unwrap()
        .command("ping")
        .args(["-i", "0.2", "-w", "12", "-W", "1", "10.244.2.5"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let routes_before = cluster.node("node-2").routes();
    cluster.node_mut("node-2").daemon.take();
    // Graceful restart, helper side: the reflector keeps node-2's block as stale, and
    // node-1 keeps it in its kernel.
    wait(&cluster, "rr-1 to keep 10.244.2.0/26 as stale", || {
        let v = control(&cluster.node("rr-1").socket(), "show route");
        v["routes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["prefix"] == "10.244.2.0/26" && r["stale"] == true)
            .then_some(())
    });
    assert!(
        cluster
            .node("node-1")
            .routes()
            .contains("10.244.2.0/26 via 10.77.0.12"),
        "node-1 lost node-2's block while node-2 restarts"
    );
    let routes_dead = cluster.node("node-2").routes();
    assert_eq!(
        kernel_routes(&routes_dead),
        kernel_routes(&routes_before),
        "node-2's kernel routes changed while ternd was dead"
    );
    cluster.start("node-2", ternd, &[]);
    let out = pinger.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let summary = text
        .lines()
        .find(|l| l.contains("packets transmitted"))
        .unwrap_or("")
        .to_string();
    assert!(
        summary.contains(" 0% packet loss"),
        "pings lost across the restart: {summary}\n{}",
        cluster.logs()
    );
    wait(&cluster, "node-2's sessions Established again", || {
        let s = sessions(cluster.node("node-2"));
        (s.len() == 2 && s.values().all(|(st, _)| st == "Established")).then_some(())
    });
    wait_routes(&cluster, "after the restart", true);
}

/// The mixed fleet: node-3 runs BIRD 1.6 configured as confd configures it, node-1 and node-2
/// run ternd on the file datastore; then the mesh goes off and a BIRD 1.6 route reflector
/// (`rr-1`, also configured from the controller) takes over.
#[test]
fn mixed_fleet_with_bird_node_and_bird_route_reflector() {
    let test = "mixed_fleet_with_bird_node_and_bird_route_reflector";
    if !require_root(test) {
        return;
    }
    let (Some(bird), Some(birdc), Some(_)) = (
        require_binary(test, "bird"),
        require_binary(test, "birdc"),
        require_binary(test, "ping"),
    ) else {
        return;
    };
    let ternd = env!("CARGO_BIN_EXE_ternd");
    let mut cluster = Cluster::with_folder();
    let Store::Dir(folder) = &cluster.store else {
        unreachable!()
    };
    let folder = folder.clone();
    // calicoctl asks for node-1's status: ternd writes it (file datastore: status/ folder).
    std::fs::write(
        folder.join("60-node-status.yaml"),
        "apiVersion: projectcalico.org/v3\nkind: CalicoNodeStatus\nmetadata:\n  name: node-1-status\n\
         spec:\n  node: node-1\n  classes: [Agent, BGP, Routes]\n  updatePeriodSeconds: 1\n",
    )
    .unwrap();
    for spec in &NODES {
        cluster.add_node(spec);
    }
    cluster.start("node-1", ternd, &[]);
    cluster.start("node-2", ternd, &[]);
    cluster.sync_bird("node-3", &bird, &birdc);

    // Stage 1: full mesh between two ternd nodes and a BIRD node.
    wait_routes(&cluster, "mixed fleet, full mesh", true);
    assert!(cluster.ping("node-1", "node-2"), "mixed fleet: pod to pod");
    let status = folder.join("status/node-1-status.yaml");
    wait(
        &cluster,
        "node-1's CalicoNodeStatus with both sessions",
        || {
            let text = std::fs::read_to_string(&status).ok()?;
            (text.contains("10.77.0.12")
                && text.contains("10.77.0.13")
                && text.contains("Established"))
            .then_some(())
        },
    );

    // Stage 2: mesh off.
    cluster.apply_stage("mesh-off.yaml", "40-mesh-off.yaml");
    cluster.sync_bird("node-3", &bird, &birdc);
    wait_routes(&cluster, "mixed fleet, mesh off", false);
    assert!(
        !cluster.ping("node-1", "node-2"),
        "mesh off: pods still reach each other"
    );

    // Stage 3: BIRD 1.6 as the route reflector.
    cluster.add_node(&RR);
    cluster.apply_stage("route-reflector.yaml", "50-route-reflector.yaml");
    cluster.sync_bird("node-3", &bird, &birdc);
    cluster.sync_bird("rr-1", &bird, &birdc);
    wait_routes(&cluster, "mixed fleet, BIRD route reflector", true);
    let rr = kernel_routes(&cluster.node("rr-1").routes());
    for n in &NODES {
        assert_eq!(
            rr.get(n.block.unwrap()),
            Some(&format!("via {}", n.ip)),
            "BIRD reflector's table {rr:?}"
        );
    }
    assert!(cluster.ping("node-1", "node-2"), "BIRD RR: pod to pod");
    assert!(cluster.ping("node-2", "node-1"), "BIRD RR: pod to pod");
}

/// IPIP pool (`programClusterRoutes: Enabled`) and an IPv6 pool on a dual-stack mesh of two
/// ternd nodes: IPv4 blocks go
/// `via <node> dev tunl0 onlink`, IPv6 blocks `via` the node's IPv6 address; own blocks of both
/// families are blackholes, and pods ping each other over IPv6 (wired as Felix wires them:
/// a /128, a default route via a link-local gateway, a /128 host route). This kernel has no
/// `ipip` module: `tunl0` is a veth when `ip link add tunl0 type ipip` fails, so for IPIP only
/// the route shape is checked, not traffic.
#[test]
fn ipip_pool_and_ipv6_mesh() {
    if !require_root("ipip_pool_and_ipv6_mesh") {
        return;
    }
    let ternd = env!("CARGO_BIN_EXE_ternd");
    let v6 = |n: &Spec| format!("fd00:77::{}", n.ip.rsplit('.').next().unwrap());
    let v6_block = |i: usize| format!("fd00:244::{}:0/122", i + 1);
    let mut docs = vec![
        json!({"apiVersion": "projectcalico.org/v3", "kind": "BGPConfiguration",
               "metadata": {"name": "default"},
               "spec": {"asNumber": 64512, "nodeToNodeMeshEnabled": true,
                        // BIRD, not Felix, programs the IPIP routes (HEAD's default is
                        // EnabledNoEncapOnly).
                        "programClusterRoutes": "Enabled"}}),
        json!({"apiVersion": "projectcalico.org/v3", "kind": "IPPool",
               "metadata": {"name": "v4"},
               "spec": {"cidr": "10.244.0.0/16", "blockSize": 26, "ipipMode": "Always",
                        "vxlanMode": "Never", "nodeSelector": "all()"}}),
        json!({"apiVersion": "projectcalico.org/v3", "kind": "IPPool",
               "metadata": {"name": "v6"},
               "spec": {"cidr": "fd00:244::/48", "blockSize": 122, "ipipMode": "Never",
                        "vxlanMode": "Never", "nodeSelector": "all()"}}),
    ];
    for (i, n) in NODES[..2].iter().enumerate() {
        docs.push(json!({"apiVersion": "projectcalico.org/v3", "kind": "Node",
            "metadata": {"name": n.name},
            "spec": {"bgp": {"ipv4Address": format!("{}/24", n.ip),
                             "ipv6Address": format!("{}/64", v6(n))}}}));
        docs.push(
            json!({"apiVersion": "projectcalico.org/v3", "kind": "BlockAffinity",
            "metadata": {"name": format!("{}-v4", n.name)},
            "spec": {"node": n.name, "cidr": n.block.unwrap(), "state": "confirmed"}}),
        );
        docs.push(
            json!({"apiVersion": "projectcalico.org/v3", "kind": "BlockAffinity",
            "metadata": {"name": format!("{}-v6", n.name)},
            "spec": {"node": n.name, "cidr": v6_block(i), "state": "confirmed"}}),
        );
    }
    let mut cluster = Cluster::with_resources(&docs);
    let pod6 = |i: usize| format!("fd00:244::{}:5", i + 1);
    for (i, spec) in NODES[..2].iter().enumerate() {
        cluster.add_node(spec);
        let node = cluster.nodes.last().unwrap();
        // The pod's IPv6 side, as Felix wires it: a /128 in the pod with a default route via
        // a link-local gateway answered by the host's cali veth, and a /128 host route.
        node.ns
            .exec("sysctl", ["-qw", "net.ipv6.conf.all.forwarding=1"]);
        let links = node.ns.ip(["-br", "link", "show"]);
        let cali = links
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .find(|n| n.starts_with("cali"))
            .unwrap()
            .split('@')
            .next()
            .unwrap()
            .to_string();
        let mac = node.ns.ip(["-br", "link", "show", cali.as_str()]);
        let mac = mac.split_whitespace().nth(2).unwrap().to_string();
        node.ns.ip([
            "-6",
            "route",
            "add",
            &format!("{}/128", pod6(i)),
            "dev",
            &cali,
            "metric",
            "1024",
        ]);
        let pod = node.pod_ns.as_ref().unwrap();
        pod.ip([
            "-6",
            "addr",
            "add",
            &format!("{}/128", pod6(i)),
            "dev",
            "eth0",
            "nodad",
        ]);
        pod.ip([
            "-6", "route", "add", "default", "via", "fe80::1", "dev", "eth0",
        ]);
        pod.ip([
            "-6",
            "neigh",
            "replace",
            "fe80::1",
            "lladdr",
            &mac,
            "dev",
            "eth0",
            "nud",
            "permanent",
        ]);
        node.ns.ip([
            "addr",
            "add",
            &format!("{}/64", v6(spec)),
            "dev",
            "eth0",
            "nodad",
        ]);
        let ipip = node
            .ns
            .command("ip")
            .args(["link", "add", "tunl0", "type", "ipip"])
            .output()
            .unwrap();
        if !ipip.status.success() {
            node.ns.ip([
                "link", "add", "tunl0", "type", "veth", "peer", "name", "tunl0p",
            ]);
            node.ns.ip(["link", "set", "tunl0p", "up"]);
        }
        node.ns.ip(["link", "set", "tunl0", "up"]);
    }
    cluster.start("node-1", ternd, &[]);
    cluster.start("node-2", ternd, &[]);
    // A borrowed address: a workload on node-2 with an IP from node-1's block. Outside
    // node-2's own blocks, its /32 is exported (unlike node-2's own pod /32).
    {
        let node2 = cluster.node("node-2");
        node2.ns.ip([
            "link",
            "add",
            "calib0rrow",
            "type",
            "veth",
            "peer",
            "name",
            "b0rrowp",
        ]);
        node2.ns.ip(["link", "set", "b0rrowp", "up"]);
        node2.ns.ip(["link", "set", "calib0rrow", "up"]);
        node2.ns.ip([
            "route",
            "add",
            "10.244.1.40/32",
            "dev",
            "calib0rrow",
            "scope",
            "link",
            "metric",
            "1024",
        ]);
    }
    let borrowed = wait(&cluster, "node-1 to learn the borrowed /32", || {
        let r = cluster
            .node("node-1")
            .ns
            .ip(["route", "show", "10.244.1.40/32"]);
        r.contains("via").then_some(r)
    });
    for want in ["via 10.77.0.12 dev tunl0", "proto bird", "onlink"] {
        assert!(
            borrowed.contains(want),
            "borrowed /32 on node-1: {borrowed} lacks {want:?}"
        );
    }
    let leaked = cluster
        .node("node-1")
        .ns
        .ip(["route", "show", "10.244.2.5/32"]);
    assert!(
        leaked.trim().is_empty(),
        "node-2's own pod /32 leaked: {leaked}"
    );
    for (i, me) in NODES[..2].iter().enumerate() {
        let other = &NODES[1 - i];
        let node = cluster.node(me.name);
        let v4 = wait(&cluster, "the IPIP route", || {
            let r = node.ns.ip(["route", "show", other.block.unwrap()]);
            r.contains("via").then_some(r)
        });
        for want in [
            format!("via {} dev tunl0", other.ip),
            "proto bird".to_string(),
            "onlink".to_string(),
        ] {
            assert!(v4.contains(&want), "{}: {v4} lacks {want:?}", me.name);
        }
        let own = node.ns.ip(["route", "show", me.block.unwrap()]);
        assert!(
            own.starts_with("blackhole") && own.contains("proto bird"),
            "{own}"
        );
        let v6r = wait(&cluster, "the IPv6 route", || {
            let r = node.ns.ip(["-6", "route", "show", &v6_block(1 - i)]);
            r.contains("via").then_some(r)
        });
        for want in [
            format!("via {} dev eth0", v6(other)),
            "proto bird".to_string(),
        ] {
            assert!(v6r.contains(&want), "{}: {v6r} lacks {want:?}", me.name);
        }
        let own6 = node.ns.ip(["-6", "route", "show", &v6_block(i)]);
        assert!(
            own6.contains("blackhole") && own6.contains("proto bird"),
            "{own6}"
        );
        // The reply needs the other node's route too: retry until both sides have converged.
        wait(&cluster, "an IPv6 pod-to-pod ping reply", || {
            node.pod_ns
                .as_ref()
                .unwrap()
                .command("ping")
                .args(["-6", "-c", "1", "-W", "1", &pod6(1 - i)])
                .output()
                .unwrap()
                .status
                .success()
                .then_some(())
        });
        let leaked = node.ns.ip(["-6", "route", "show", "proto", "bird"]);
        assert!(
            !leaked.contains(&pod6(1 - i)),
            "a workload /128 leaked: {leaked}"
        );
        let s = sessions_at(&node.dir.join("bird6.ctl"));
        let v6_name = format!("Mesh_{}", v6(other).replace(':', "_"));
        assert_eq!(
            s.get(&v6_name).map(|x| x.0.as_str()),
            Some("Established"),
            "{}: {s:?}",
            me.name
        );
    }
}
