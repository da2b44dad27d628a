//! End-to-end: a Calico cluster in network namespaces, built from the example resources in
//! `demo/calico/` (the same ones `demo/demo.sh` uses), with the file datastore.
//!
//! Topology: one LAN namespace holding a bridge; per node a namespace with `eth0` on the LAN
//! (10.77.0.0/24) and a workload namespace joined by a `cali…` veth, wired as Felix wires a pod
//! (a /32 on the pod side, default route via 169.254.1.1, proxy ARP, a /32 host route at
//! Felix's normal priority, metric 1024).
//!
//! The node daemon here is BIRD 1.6 configured the way confd configures it: for every node,
//! Tern's controller (`controller::compute`) computes the node's desired configuration from the
//! datastore folder, and this file renders it into BIRD's language in the shape of confd's
//! templates (`bird.cfg`, `bird_aggr.cfg`, `bird_ipam.cfg`). When the datastore changes, every
//! node's configuration is rendered again and BIRD is told `configure`, as confd does. So the
//! stages check Tern's Calico rules (mesh, passive side, blackholes, aggregation, route
//! reflection with reverse peerings) against real BGP sessions and a real kernel.
//!
//! Stages (one test, one topology): 1. full mesh — each node has a blackhole for its own block
//! and every other block via its node, `proto bird`, and no other node's workload /32;
//! pod-to-pod ping works. 2. The mesh is turned off in the datastore — remote blocks disappear,
//! blackholes stay. 3. A route-reflector node (`rr-1`, cluster id 224.0.0.1) and a global
//! BGPPeer selecting it — every block is back via its originating node (reflected, next hop
//! unchanged) and pod-to-pod ping works again.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use controller::datastore::{Datastore, FileDatastore};
use controller::{NodeEnv, compute};
use tern_tests::bird16::render_bird;
use tern_tests::lan;
use tern_tests::observe::kernel_routes;
use tern_tests::{Daemon, Netns, TempDir, require_binary, require_root, run};

/// How long a stage may take to converge (BIRD: connect delay 2 s, kernel scan 2 s; a
/// collision or a loaded machine can add an error wait of 5 s or more).
const CONVERGE: Duration = Duration::from_secs(90);

/// One Calico node of the example cluster, as in `demo/calico/10-nodes.yaml`.
struct NodeSpec {
    name: &'static str,
    ip: &'static str,
    /// Its confirmed block (`30-blockaffinities.yaml`); none for the route reflector.
    block: Option<&'static str>,
    /// Its one workload's address.
    pod: Option<&'static str>,
}

const NODES: [NodeSpec; 3] = [
    NodeSpec {
        name: "node-1",
        ip: "10.77.0.11",
        block: Some("10.244.1.0/26"),
        pod: Some("10.244.1.5"),
    },
    NodeSpec {
        name: "node-2",
        ip: "10.77.0.12",
        block: Some("10.244.2.0/26"),
        pod: Some("10.244.2.5"),
    },
    NodeSpec {
        name: "node-3",
        ip: "10.77.0.13",
        block: Some("10.244.3.0/26"),
        pod: Some("10.244.3.5"),
    },
];

/// The route reflector of stage 3 (`demo/stages/route-reflector.yaml`).
const RR: NodeSpec = NodeSpec {
    name: "rr-1",
    ip: "10.77.0.10",
    block: None,
    pod: None,
};

fn demo_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../demo")
}

// ===== topology =====

/// A node: its namespace, its workload's namespace, and the daemon running in it.
struct Node {
    spec: &'static NodeSpec,
    ns: Netns,
    pod_ns: Option<Netns>,
    daemon: Option<Daemon>,
    dir: PathBuf,
}

impl Node {
    fn routes(&self) -> String {
        self.ns.ip(["route", "show", "proto", "bird"])
    }
}

struct Cluster {
    lan: Netns,
    nodes: Vec<Node>,
    datastore: TempDir,
    work: TempDir,
    bird: PathBuf,
    birdc: PathBuf,
}

impl Cluster {
    /// The LAN, the three nodes and their pods; the datastore folder is a copy of
    /// `demo/calico/`.
    fn new(bird: PathBuf, birdc: PathBuf) -> Cluster {
        let lan = lan::new_lan("e2l");
        let datastore = TempDir::new("e2d");
        for entry in std::fs::read_dir(demo_dir().join("calico")).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "yaml") {
                std::fs::copy(&path, datastore.path().join(path.file_name().unwrap())).unwrap();
            }
        }
        let mut cluster = Cluster {
            lan,
            nodes: Vec::new(),
            datastore,
            work: TempDir::new("e2w"),
            bird,
            birdc,
        };
        for spec in &NODES {
            cluster.add_node(spec);
        }
        cluster
    }

    fn add_node(&mut self, spec: &'static NodeSpec) {
        let ns = lan::add_node(&self.lan, "e2n", &format!("{}/24", spec.ip));
        let pod_ns = spec.pod.map(|pod| {
            let cali = lan::cali_name(0x0a2b_3c4d_5e00, self.nodes.len());
            lan::add_workload(&ns, "e2w", &cali, pod)
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

    /// Copies a stage file from `demo/stages/` into the datastore folder as `target`.
    fn apply_stage(&self, stage: &str, target: &str) {
        std::fs::copy(
            demo_dir().join("stages").join(stage),
            self.datastore.path().join(target),
        )
        .unwrap();
    }

    /// What confd does: compute every node's configuration from the datastore, render it for
    /// BIRD, and start BIRD or tell it to reload.
    fn sync_birds(&mut self) {
        let snapshot = FileDatastore::new(self.datastore.path())
            .snapshot()
            .unwrap();
        assert!(
            snapshot.problems.is_empty(),
            "example resources have problems: {:?}",
            snapshot.problems
        );
        for node in &mut self.nodes {
            let env = NodeEnv {
                node_name: node.spec.name.to_string(),
                ..NodeEnv::default()
            };
            let config = serde_json::to_value(compute(&snapshot.model, &env).unwrap()).unwrap();
            let cfg = node.dir.join("bird.cfg");
            std::fs::write(&cfg, render_bird(&config)).unwrap();
            let ctl = node.dir.join("bird.ctl");
            match &mut node.daemon {
                Some(d) => {
                    assert!(d.is_running(), "BIRD on {} exited", node.spec.name);
                    let out = std::process::Command::new(&self.birdc)
                        .arg("-s")
                        .arg(&ctl)
                        .arg("configure")
                        .output()
                        .unwrap();
                    let text = String::from_utf8_lossy(&out.stdout);
                    assert!(
                        text.contains("Reconfigured") || text.contains("Reconfiguration"),
                        "birdc configure on {}: {text}",
                        node.spec.name
                    );
                }
                None => {
                    let mut cmd = node.ns.command(&self.bird);
                    cmd.arg("-f")
                        .arg("-c")
                        .arg(&cfg)
                        .arg("-s")
                        .arg(&ctl)
                        .stdin(std::process::Stdio::null())
                        .stdout(std::process::Stdio::null())
                        .stderr(std::process::Stdio::null());
                    node.daemon = Some(Daemon::spawn(cmd));
                }
            }
        }
    }

    /// `birdc show protocols` on a node (for failure messages).
    fn bird_protocols(&self, node: &Node) -> String {
        std::process::Command::new(&self.birdc)
            .arg("-s")
            .arg(node.dir.join("bird.ctl"))
            .args(["show", "protocols", "all"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_else(|e| e.to_string())
    }

    /// Pings every other pod from every pod; returns the failures.
    fn ping_all(&self) -> Vec<String> {
        let pods: Vec<&Node> = self.nodes.iter().filter(|n| n.pod_ns.is_some()).collect();
        let mut failed = Vec::new();
        for from in &pods {
            for to in &pods {
                if from.spec.name == to.spec.name {
                    continue;
                }
                let target = to.spec.pod.unwrap();
                let ok = from
                    .pod_ns
                    .as_ref()
                    .unwrap()
                    .command("ping")
                    .args(["-c", "1", "-W", "2", target])
                    .output()
                    .unwrap()
                    .status
                    .success();
                if !ok {
                    failed.push(format!("{} -> {}", from.spec.name, to.spec.name));
                }
            }
        }
        failed
    }
}

// ===== route checks =====

/// What node `me` should hold: its own block blackholed and, when `remote` is true, every
/// other node's block via that node — and nothing else (no workload /32 from anywhere).
fn expected_routes(me: &NodeSpec, remote: bool) -> BTreeMap<String, String> {
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

/// Waits until every node's `proto bird` routes are exactly the expected ones.
fn wait_routes(cluster: &Cluster, stage: &str, remote: bool) {
    for node in &cluster.nodes {
        let want = expected_routes(node.spec, remote);
        let start = Instant::now();
        loop {
            let have = node.routes();
            if kernel_routes(&have) == want {
                break;
            }
            if start.elapsed() > CONVERGE {
                let sessions: Vec<String> = cluster
                    .nodes
                    .iter()
                    .map(|n| format!("{}:\n{}", n.spec.name, cluster.bird_protocols(n)))
                    .collect();
                panic!(
                    "{stage}: after {CONVERGE:?} {} has\n{have}\nwant {want:?}\nsessions:\n{}",
                    node.spec.name,
                    sessions.join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

// ===== the test =====

#[test]
fn bird_fleet_from_tern_controller_mesh_then_mesh_off_then_route_reflector() {
    let test = "bird_fleet_from_tern_controller_mesh_then_mesh_off_then_route_reflector";
    if !require_root(test) {
        return;
    }
    let (Some(bird), Some(birdc)) = (require_binary(test, "bird"), require_binary(test, "birdc"))
    else {
        return;
    };
    if require_binary(test, "ping").is_none() {
        return;
    }
    let mut cluster = Cluster::new(bird, birdc);

    // Stage 1: full mesh.
    cluster.sync_birds();
    wait_routes(&cluster, "stage 1 (full mesh)", true);
    let peers = cluster.node("node-1").dir.join("bird.ctl");
    let shown = run(
        cluster.birdc.to_str().unwrap(),
        ["-s", peers.to_str().unwrap(), "show", "protocols"],
    );
    let shown = String::from_utf8_lossy(&shown.stdout);
    for name in ["Mesh_10_77_0_12", "Mesh_10_77_0_13"] {
        assert!(
            shown
                .lines()
                .any(|l| l.starts_with(name) && l.contains("Established")),
            "node-1 peers:\n{shown}"
        );
    }
    let failed = cluster.ping_all();
    assert!(failed.is_empty(), "stage 1: no ping reply {failed:?}");

    // Stage 2: the mesh is turned off in the datastore.
    cluster.apply_stage("mesh-off.yaml", "40-mesh-off.yaml");
    cluster.sync_birds();
    wait_routes(&cluster, "stage 2 (mesh off)", false);
    let failed = cluster.ping_all();
    assert_eq!(failed.len(), 6, "stage 2: pods still reach each other");

    // Stage 3: a route reflector node and a global BGPPeer selecting it.
    cluster.add_node(&RR);
    cluster.apply_stage("route-reflector.yaml", "50-route-reflector.yaml");
    cluster.sync_birds();
    wait_routes(&cluster, "stage 3 (route reflector)", true);
    let rr_routes = kernel_routes(&cluster.node("rr-1").routes());
    for node in &NODES {
        assert_eq!(
            rr_routes.get(node.block.unwrap()).map(String::as_str),
            Some(format!("via {}", node.ip).as_str()),
            "route reflector's own table: {rr_routes:?}"
        );
    }
    let failed = cluster.ping_all();
    assert!(failed.is_empty(), "stage 3: no ping reply {failed:?}");
}
