//! Conformance with Calico's own confd fixtures (`../shared/calico-conformance`).
//!
//! Every case loads Calico's input YAML (plus the harness facts: kube-master's block affinities,
//! environment, Secrets and the mutations the upstream daemon tests make) into a folder, reads it
//! through the FILE datastore, computes the node's `DesiredConfig`, and compares it with the
//! golden `bird*.cfg` files confd renders for the same input.
//!
//! The comparison renders the `DesiredConfig` back into BIRD's configuration language following
//! confd's templates (a test-only renderer: peers with every field, the BGPFilter functions, the
//! per-peer import/export chains, `calico_export_to_bgp_peers`, `calico_aggr`,
//! `calico_kernel_programming`, static routes and blackholes, router id, listen, AS, interfaces,
//! debug level) and compares it with the golden file, ignoring comments and whitespace. The
//! renderer walks each policy rule by rule, so a rule in the wrong place, a missing rule or a
//! wrong value all show up as a difference.
#![allow(clippy::unwrap_used, clippy::too_many_lines)]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use controller::datastore::file::parse_files;
use controller::datastore::{Datastore, FileDatastore};
use controller::{LocalWorkload, NodeEnv, compute};
use ipnet::IpNet;
use serde_json::{Value, json};
use tern_config::policy::{
    Action, Community, Compare, Family, LargeCommunity, Match, Policy, PrefixOp, RouteSource, Rule,
    SessionType, Verdict,
};
use tern_config::{DesiredConfig, LogLevel, NextHopMode, Password, Peer, StaticTarget};

fn fixtures() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/calico-conformance"
    ))
}

// ===== case setup =====

/// What one step of a case does to the datastore.
enum Op {
    /// Apply a mock_data file (and its sibling `kubectl-input.yaml`, as the harness does).
    Apply(&'static str),
    /// Apply literal documents.
    Docs(Vec<Value>),
    /// Delete a resource by kind and name.
    Delete(&'static str, &'static str),
    /// Change a resource in place.
    Patch(&'static str, &'static str, fn(&mut Value)),
}

struct Case {
    /// Name (the golden directory, plus step for multi-step cases).
    name: String,
    /// Golden directory under compiled_templates.
    golden: String,
    node: &'static str,
    env: Vec<(&'static str, &'static str)>,
    affinities: bool,
    /// Operations applied before this case's golden comparison (cumulative).
    ops: Vec<Op>,
    workloads: Vec<LocalWorkload>,
}

fn oneshot(golden: &str) -> Case {
    Case {
        name: golden.to_string(),
        golden: golden.to_string(),
        node: "kube-master",
        env: Vec::new(),
        affinities: true,
        ops: vec![Op::Apply(Box::leak(
            format!("{golden}/input.yaml").into_boxed_str(),
        ))],
        workloads: Vec::new(),
    }
}

fn secret(name: &str, data: &[(&str, &str)]) -> Value {
    let string_data: serde_json::Map<String, Value> = data
        .iter()
        .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
        .collect();
    json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": "kube-system"}, "stringData": string_data})
}

fn affinity_docs() -> Vec<Value> {
    [
        ("10.0.0.0/30", ""),
        ("10.1.0.0/24", ""),
        ("10.2.0.1/32", ""),
        ("192.168.221.192/26", ""),
        ("192.168.221.64/26", "confirmed"),
        ("192.168.221.0/26", "pending"),
    ]
    .iter()
    .map(|(cidr, state)| {
        let name = format!("kube-master-{}", cidr.replace(['.', '/'], "-"));
        json!({"apiVersion": "projectcalico.org/v3", "kind": "BlockAffinity", "metadata": {"name": name},
               "spec": {"node": "kube-master", "cidr": cidr, "state": state}})
    })
    .collect()
}

fn cases() -> Vec<Case> {
    let mut out = Vec::new();
    for g in [
        "mesh/bgp-export",
        "mesh/ipip-always",
        "mesh/ipip-cross-subnet",
        "mesh/ipip-off",
        "mesh/vxlan-always",
        "mesh/communities",
        "mesh/restart-time",
        "mesh/route-reflector-mesh-enabled",
        "mesh/static-routes",
        "mesh/static-routes-exclude-node",
        "explicit_peering/global",
        "explicit_peering/global-external",
        "explicit_peering/global-ipv6",
        "explicit_peering/specific_node",
        "explicit_peering/selectors",
        "explicit_peering/route_reflector",
        "explicit_peering/route_reflector_v6_by_ip",
        "explicit_peering/keepnexthop",
        "explicit_peering/keepnexthop-global",
        "explicit_peering/local-as",
        "explicit_peering/local-as-global",
        "explicit_peering/local-as-ipv6",
        "explicit_peering/local-as-global-ipv6",
        "bgpfilter/single_filter/global_peer",
        "bgpfilter/single_filter/explicit_peer",
        "bgpfilter/multi_filter/global_peer",
        "bgpfilter/multi_filter/explicit_peer",
        "bgpfilter/node_mesh",
        "bgpfilter/match_operators",
        "bgpfilter/match_source",
        "bgpfilter/match_interface",
        "bgpfilter/filter_names",
        "bgpfilter/import_only/explicit_peer",
        "bgpfilter/import_only/global_peer",
        "bgpfilter/v6_only/global_peer",
        "bgpfilter/export_only/explicit_peer",
        "bgpfilter/export_only/global_peer",
        "bgpfilter/v4_only/explicit_peer",
        "bgpfilter/v4_only/global_peer",
        "bgpfilter/v6_only/explicit_peer",
        "bgpfilter/communities_and_operations",
        "bgpfilter/peer_type",
        "bgpfilter/as_path_and_priority",
        "bgpfilter/large_community",
        "bgpfilter/kubevirt_live_migration",
        "ttl_security/explicit_node",
        "ttl_security/peer_selector",
        "ttl_security/global",
        "ignored_interfaces",
        "reachable_by/global_peers",
        "reachable_by/route_reflectors",
        "felix_cluster_routing",
        "cluster_routes/default",
        "cluster_routes/enabled",
        "cluster_routes/ipip-only",
        "cluster_routes/noencap-only",
        "next_hop_mode/global_peers",
        "next_hop_mode/route_reflectors",
        "reverse_peering/manual",
        "reverse_peering/auto",
    ] {
        out.push(oneshot(g));
    }
    let mut c = oneshot("mesh/hash");
    c.env.push(("CALICO_ROUTER_ID", "hash"));
    out.push(c);
    let mut c = oneshot("mesh/static-routes-no-ipv4-address");
    c.env.push(("CALICO_ROUTER_ID", "10.10.10.10"));
    out.push(c);

    // Multi-step scenarios (TestDaemonModeRendering): base input, then each step upserted.
    for (base, step) in [
        ("mesh/communities", "step2"),
        ("mesh/static-routes", "step2"),
        ("mesh/static-routes-exclude-node", "step2"),
        ("explicit_peering/selectors", "step2"),
    ] {
        let mut c = oneshot(base);
        c.name = format!("{base}/{step}");
        c.golden = format!("{base}/{step}");
        c.ops.push(Op::Apply(Box::leak(
            format!("{base}/{step}/input.yaml").into_boxed_str(),
        )));
        out.push(c);
    }

    // TestSourceAddrGracefulRestart (node1, no affinities).
    let sa = |golden: &str, ops: Vec<Op>| Case {
        name: golden.into(),
        golden: golden.into(),
        node: "node1",
        env: Vec::new(),
        affinities: false,
        ops,
        workloads: Vec::new(),
    };
    out.push(sa(
        "sourceaddr_gracefulrestart/step1",
        vec![Op::Apply("sourceaddr_gracefulrestart/input.yaml")],
    ));
    out.push(sa(
        "sourceaddr_gracefulrestart/step2",
        vec![
            Op::Apply("sourceaddr_gracefulrestart/input.yaml"),
            Op::Patch("BGPPeer", "bgppeer-1", |v| {
                v["spec"]["sourceAddress"] = json!("None")
            }),
        ],
    ));
    out.push(sa(
        "sourceaddr_gracefulrestart/step3",
        vec![
            Op::Apply("sourceaddr_gracefulrestart/input.yaml"),
            Op::Patch("BGPPeer", "bgppeer-1", |v| {
                v["spec"]["sourceAddress"] = json!("None")
            }),
            Op::Patch("BGPPeer", "bgppeer-1", |v| {
                v["spec"]["maxRestartTime"] = json!("10s")
            }),
        ],
    ));

    // TestNodeMeshBGPPassword (kube-master with affinities).
    let mp = |name: &str, golden: &str, ops: Vec<Op>| Case {
        name: name.into(),
        golden: golden.into(),
        node: "kube-master",
        env: Vec::new(),
        affinities: true,
        ops,
        workloads: Vec::new(),
    };
    let base = || Op::Apply("mesh_password/input.yaml");
    out.push(mp(
        "mesh/password/step1",
        "mesh/password/step1",
        vec![base()],
    ));
    out.push(mp(
        "mesh/password/step2",
        "mesh/password/step2",
        vec![
            base(),
            Op::Docs(vec![secret("my-secrets-1", &[("a", "password-a")])]),
        ],
    ));
    out.push(mp(
        "mesh/password/step3",
        "mesh/password/step3",
        vec![
            base(),
            Op::Docs(vec![secret("my-secrets-1", &[("a", "new-password-a")])]),
        ],
    ));
    out.push(mp(
        "mesh/password/step4 (key removed)",
        "mesh/password/step1",
        vec![
            base(),
            Op::Docs(vec![secret("my-secrets-1", &[("b", "password-b")])]),
        ],
    ));
    out.push(mp(
        "mesh/password/step5 (secret deleted)",
        "mesh/password/step1",
        vec![
            base(),
            Op::Docs(vec![secret("my-secrets-1", &[("b", "password-b")])]),
            Op::Delete("Secret", "my-secrets-1"),
        ],
    ));

    // TestBGPPeerPassword (node1, no affinities).
    let pw = |golden: &str, ops: Vec<Op>| Case {
        name: golden.into(),
        golden: golden.into(),
        node: "node1",
        env: Vec::new(),
        affinities: false,
        ops,
        workloads: Vec::new(),
    };
    let base = || Op::Apply("password/input.yaml");
    out.push(pw("password/step1", vec![base()]));
    out.push(pw(
        "password/step2",
        vec![
            base(),
            Op::Docs(vec![secret("my-secrets-1", &[("b", "password-b")])]),
        ],
    ));
    let step3 = || {
        Op::Docs(vec![
            secret("my-secrets-1", &[("b", "password-b"), ("a", "password-a")]),
            secret("my-secrets-2", &[("c", "password-c")]),
        ])
    };
    out.push(pw("password/step3", vec![base(), step3()]));
    out.push(pw(
        "password/step4",
        vec![base(), step3(), Op::Delete("Secret", "my-secrets-2")],
    ));
    out.push(pw(
        "password/step5",
        vec![
            base(),
            step3(),
            Op::Delete("Secret", "my-secrets-2"),
            Op::Docs(vec![secret(
                "my-secrets-1",
                &[("b", "new-password-b"), ("a", "new-password-a")],
            )]),
        ],
    ));
    out.push(pw(
        "password/step6",
        vec![
            base(),
            step3(),
            Op::Delete("Secret", "my-secrets-2"),
            Op::Docs(vec![secret("my-secrets-1", &[("b", "new-password-b")])]),
        ],
    ));

    // TestBGPPasswordDeadlock: 99 nodes, each with a node-specific peering to 10.24.0.2.
    let mut docs = vec![
        json!({"apiVersion": "projectcalico.org/v3", "kind": "BGPConfiguration", "metadata": {"name": "default"},
               "spec": {"nodeToNodeMeshEnabled": false}}),
        secret("my-secrets-1", &[("a", "password-a")]),
    ];
    for i in 1..=99 {
        docs.push(json!({"apiVersion": "projectcalico.org/v3", "kind": "Node",
            "metadata": {"name": format!("dl-node{i}"), "labels": {"node": "yes"}},
            "spec": {"bgp": {"ipv4Address": format!("10.24.0.{i}/24")}}}));
        docs.push(
            json!({"apiVersion": "projectcalico.org/v3", "kind": "BGPPeer",
            "metadata": {"name": format!("dl-bgppeer-{i}")},
            "spec": {"node": format!("dl-node{i}"), "peerIP": "10.24.0.2", "asNumber": 64512,
                     "password": {"secretKeyRef": {"name": "my-secrets-1", "key": "a"}}}}),
        );
    }
    out.push(Case {
        name: "password-deadlock".into(),
        golden: "password-deadlock".into(),
        node: "dl-node1",
        env: Vec::new(),
        affinities: false,
        ops: vec![Op::Docs(docs)],
        workloads: Vec::new(),
    });

    // TestLocalBGPPeer: workloads from Felix's endpoint-status files.
    let workload = |name: &str, json: &str| controller::endpoint_status::parse(name, json).unwrap();
    let mut c = oneshot("explicit_peering/local_bgp_peer");
    c.ops = vec![Op::Apply("local_bgp_peer/input.yaml")];
    c.workloads = vec![
        workload(
            "pod1",
            r#"{"ifaceName":"cali97e1defe654","ipv4Nets":["192.168.162.134/32"],"ipv6Nets":["fd00:10:244:0:586d:4461:e980:a284/128"],"bgpPeerName":"test-global-peer-with-filter"}"#,
        ),
        workload(
            "pod2",
            r#"{"ifaceName":"cali97e1defe656","ipv4Nets":["192.168.162.136/32"],"ipv6Nets":["fd00:10:244:0:586d:4461:e980:a286/128"],"bgpPeerName":"test-node-peer-with-filter"}"#,
        ),
    ];
    out.push(c);

    // TestNormalRoutePriorityChange (no affinities).
    let nrp = |golden: &str, ops: Vec<Op>| Case {
        name: golden.into(),
        golden: golden.into(),
        node: "kube-master",
        env: Vec::new(),
        affinities: false,
        ops,
        workloads: Vec::new(),
    };
    let base = || Op::Apply("bgpfilter/node_mesh/input.yaml");
    let v4 = || {
        Op::Patch("BGPConfiguration", "default", |v| {
            v["spec"]["ipv4NormalRoutePriority"] = json!(5000)
        })
    };
    let v6 = || {
        Op::Patch("BGPConfiguration", "default", |v| {
            v["spec"]["ipv6NormalRoutePriority"] = json!(80)
        })
    };
    out.push(nrp("bgpfilter/node_mesh/priority1", vec![base()]));
    out.push(nrp("bgpfilter/node_mesh/priority2", vec![base(), v4()]));
    out.push(nrp(
        "bgpfilter/node_mesh/priority3",
        vec![base(), v4(), v6()],
    ));

    // TestBGPFilterDeletion.
    let mut c = oneshot("bgpfilter/filter_deletion/step1");
    c.ops = vec![Op::Apply("bgpfilter/filter_deletion/input.yaml")];
    out.push(c);
    let mut c = oneshot("bgpfilter/filter_deletion/step2");
    c.ops = vec![
        Op::Apply("bgpfilter/filter_deletion/input.yaml"),
        Op::Delete("BGPFilter", "test-filter"),
    ];
    out.push(c);

    // TestProgramClusterRoutes.
    for (golden, value) in [
        ("mesh/restart-time/pcr-disabled", "Disabled"),
        ("mesh/restart-time/pcr-enabled", "Enabled"),
        ("mesh/restart-time/pcr-ipip-only", "EnabledIPIPOnly"),
        ("mesh/restart-time", "EnabledNoEncapOnly"),
    ] {
        let mut c = oneshot("mesh/restart-time");
        c.name = format!("{golden} (programClusterRoutes={value})");
        c.golden = golden.into();
        let patch: fn(&mut Value) = match value {
            "Disabled" => |v| v["spec"]["programClusterRoutes"] = json!("Disabled"),
            "Enabled" => |v| v["spec"]["programClusterRoutes"] = json!("Enabled"),
            "EnabledIPIPOnly" => |v| v["spec"]["programClusterRoutes"] = json!("EnabledIPIPOnly"),
            _ => |v| v["spec"]["programClusterRoutes"] = json!("EnabledNoEncapOnly"),
        };
        c.ops.push(Op::Patch("BGPConfiguration", "default", patch));
        out.push(c);
    }
    out
}

/// Cases that cannot pass yet, by name, with the reason (also listed in the README).
const EXCLUDED: &[(&str, &str)] = &[];

// ===== running a case =====

struct TempDir(PathBuf);
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn doc_kind_name(v: &Value) -> (String, String) {
    (
        v["kind"].as_str().unwrap_or("").to_string(),
        v["metadata"]["name"].as_str().unwrap_or("").to_string(),
    )
}

fn load_mock(rel: &str) -> Vec<Value> {
    let path = fixtures().join("mock_data/calicoctl").join(rel);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let (docs, problems) = parse_files(&[(path.display().to_string(), text)]);
    assert!(problems.is_empty(), "{problems:?}");
    docs.into_iter().map(|(_, v)| v).collect()
}

fn build_dir(case: &Case, idx: usize) -> TempDir {
    let dir = std::env::temp_dir().join(format!("tern-conformance-{}-{idx}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    // Layers, each one file, applied in order; deletions and patches rewrite earlier layers.
    let mut layers: Vec<Vec<Value>> = Vec::new();
    if case.affinities {
        layers.push(affinity_docs());
    }
    for op in &case.ops {
        match op {
            Op::Apply(rel) => {
                layers.push(load_mock(rel));
                let kubectl = Path::new(rel).with_file_name("kubectl-input.yaml");
                if fixtures()
                    .join("mock_data/calicoctl")
                    .join(&kubectl)
                    .exists()
                {
                    layers.push(load_mock(kubectl.to_str().unwrap()));
                }
            }
            Op::Docs(d) => layers.push(d.clone()),
            Op::Delete(kind, name) => {
                for l in &mut layers {
                    l.retain(|v| doc_kind_name(v) != (kind.to_string(), name.to_string()));
                }
            }
            Op::Patch(kind, name, f) => {
                let mut found = false;
                for l in &mut layers {
                    for v in l
                        .iter_mut()
                        .filter(|v| doc_kind_name(v) == (kind.to_string(), name.to_string()))
                    {
                        f(v);
                        found = true;
                    }
                }
                if !found {
                    let mut v = json!({"apiVersion": "projectcalico.org/v3", "kind": kind, "metadata": {"name": name}, "spec": {}});
                    f(&mut v);
                    layers.push(vec![v]);
                }
            }
        }
    }
    for (i, l) in layers.iter().enumerate() {
        let text: Vec<String> = l
            .iter()
            .map(|v| serde_json::to_string_pretty(v).unwrap())
            .collect();
        std::fs::write(dir.join(format!("{i:02}.yaml")), text.join("\n---\n")).unwrap();
    }
    TempDir(dir)
}

fn run_case(case: &Case, idx: usize) -> Result<(), String> {
    let dir = build_dir(case, idx);
    let mut ds = FileDatastore::new(&dir.0);
    let snap = ds.snapshot().map_err(|e| e.to_string())?;
    // Calico's fixtures are valid, except where a case checks that bad values are skipped.
    let env = NodeEnv {
        node_name: case.node.to_string(),
        router_id: case
            .env
            .iter()
            .find(|(k, _)| *k == "CALICO_ROUTER_ID")
            .map(|(_, v)| v.to_string()),
        advertise_cluster_ips: None,
        namespace: None,
        local_workloads: case.workloads.clone(),
    };
    let cfg = compute(&snap.model, &env)
        .map_err(|e| format!("compute failed: {e}; problems: {:?}", snap.problems))?;
    let golden_dir = fixtures().join("compiled_templates").join(&case.golden);
    let mut errors = String::new();
    for family in [Family::Ipv4, Family::Ipv6] {
        let r = Renderer { cfg: &cfg, family };
        let six = if family == Family::Ipv6 { "6" } else { "" };
        for (file, ours) in [
            (format!("bird{six}.cfg"), r.bird_cfg()),
            (format!("bird{six}_ipam.cfg"), r.ipam_cfg()),
            (format!("bird{six}_aggr.cfg"), r.aggr_cfg()),
        ] {
            let golden = std::fs::read_to_string(golden_dir.join(&file))
                .map_err(|e| format!("{file}: {e}"))?;
            if squash(&golden) != squash(&ours) {
                let _ = writeln!(errors, "--- {file} differs:\n{}", diff(&golden, &ours));
            }
        }
    }
    if !snap.problems.is_empty() {
        let _ = writeln!(errors, "problems reading the fixtures: {:?}", snap.problems);
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// Strip comments and all whitespace; write IPv6 addresses and prefixes canonically (confd
/// prints CIDRs as the user wrote them, e.g. `5000::0/64`).
fn squash(s: &str) -> String {
    let joined = lines(s).concat();
    let mut out = String::new();
    let mut token = String::new();
    let flush = |token: &mut String, out: &mut String| {
        if token.contains(':') {
            if let Ok(n) = token.parse::<IpNet>() {
                *token = n.to_string();
            } else if let Ok(a) = token.parse::<std::net::IpAddr>() {
                *token = a.to_string();
            }
        }
        out.push_str(token);
        token.clear();
    };
    for ch in joined.chars() {
        if ch.is_ascii_hexdigit() || ch == ':' || ch == '/' || ch == '.' {
            token.push(ch);
        } else {
            flush(&mut token, &mut out);
            out.push(ch);
        }
    }
    flush(&mut token, &mut out);
    out
}

fn lines(s: &str) -> Vec<String> {
    s.lines()
        .map(|l| l.split('#').next().unwrap_or(""))
        .map(|l| l.chars().filter(|c| !c.is_whitespace()).collect::<String>())
        .filter(|l| !l.is_empty())
        .collect()
}

fn diff(golden: &str, ours: &str) -> String {
    let g: Vec<char> = squash(golden).chars().collect();
    let o: Vec<char> = squash(ours).chars().collect();
    let at = g
        .iter()
        .zip(o.iter())
        .position(|(a, b)| a != b)
        .unwrap_or(g.len().min(o.len()));
    let from = at.saturating_sub(160);
    let show = |v: &[char]| {
        v[from.min(v.len())..(at + 160).min(v.len())]
            .iter()
            .collect::<String>()
    };
    format!("    golden: …{}…\n    ours:   …{}…", show(&g), show(&o))
}

#[test]
fn calico_confd_fixtures() {
    assert!(
        fixtures().join("compiled_templates").is_dir(),
        "fixtures not found at {}",
        fixtures().display()
    );
    let mut failed = Vec::new();
    let mut passed = 0;
    let mut unexpectedly_passing = Vec::new();
    for (i, case) in cases().iter().enumerate() {
        let excluded = EXCLUDED.iter().find(|(n, _)| *n == case.name);
        match (run_case(case, i), excluded) {
            (Ok(()), None) => passed += 1,
            (Ok(()), Some(_)) => unexpectedly_passing.push(case.name.clone()),
            (Err(e), None) => failed.push(format!("{}:\n{e}", case.name)),
            (Err(_), Some((_, why))) => eprintln!("excluded: {} ({why})", case.name),
        }
    }
    eprintln!(
        "conformance: {passed} passed, {} failed, {} excluded",
        failed.len(),
        EXCLUDED.len()
    );
    assert!(
        unexpectedly_passing.is_empty(),
        "excluded cases now pass, remove them from EXCLUDED: {unexpectedly_passing:?}"
    );
    assert!(
        failed.is_empty(),
        "{} cases failed:\n{}",
        failed.len(),
        failed.join("\n")
    );
}

/// Every fixture directory is covered by a case (or an explicit exclusion).
#[test]
fn every_golden_directory_has_a_case() {
    let cases = cases();
    let mut missing = Vec::new();
    let root = fixtures().join("compiled_templates");
    let mut stack = vec![root.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            if e.path().is_dir() {
                stack.push(e.path());
            }
        }
        if d.join("bird.cfg").exists() {
            let rel = d.strip_prefix(&root).unwrap().to_string_lossy().to_string();
            if !cases.iter().any(|c| c.golden == rel) {
                missing.push(rel);
            }
        }
    }
    assert!(
        missing.is_empty(),
        "golden directories without a case: {missing:?}"
    );
}

// ===== the test-only renderer (confd's templates, from a DesiredConfig) =====

struct Renderer<'a> {
    cfg: &'a DesiredConfig,
    family: Family,
}

fn fam_suffix(f: Family) -> &'static str {
    if f == Family::Ipv4 { "v4" } else { "v6" }
}

fn key_string(n: &IpNet) -> String {
    n.to_string().replacen('/', "-", 1)
}

fn policy<'a>(cfg: &'a DesiredConfig, name: &str) -> &'a Policy {
    cfg.policies
        .get(name)
        .unwrap_or_else(|| panic!("policy {name} missing"))
}

fn cidr_of(m: &Match) -> Option<(PrefixOp, IpNet)> {
    match m {
        Match::Prefix(p) if p.min_len.is_none() && p.max_len.is_none() => Some((p.op, p.prefix)),
        _ => None,
    }
}

fn community_stmt(a: &Action) -> String {
    match a {
        Action::AddCommunity(Community(x, y)) => format!("bgp_community.add(({x}, {y}));"),
        Action::AddLargeCommunity(LargeCommunity(x, y, z)) => {
            format!("bgp_large_community.add(({x}, {y}, {z}));")
        }
        other => panic!("not a community action: {other:?}"),
    }
}

fn verdict(v: Verdict) -> &'static str {
    match v {
        Verdict::Accept => "accept;",
        Verdict::Reject => "reject;",
        Verdict::Continue => "",
    }
}

impl Renderer<'_> {
    fn six(&self) -> &'static str {
        if self.family == Family::Ipv6 { "6" } else { "" }
    }

    fn node_ip(&self) -> Option<IpNet> {
        if self.family == Family::Ipv4 {
            self.cfg.node_ipv4
        } else {
            self.cfg.node_ipv6
        }
    }

    fn export_to_peers(&self) -> &Policy {
        policy(
            self.cfg,
            &format!("calico_export_to_bgp_peers_{}", fam_suffix(self.family)),
        )
    }

    fn bird_cfg(&self) -> String {
        let c = self.cfg;
        let mut s = String::new();
        // apply_communities(): the community rules of calico_export_to_bgp_peers.
        s.push_str("function apply_communities ()\n{\n");
        for r in &self.export_to_peers().rules {
            if r.then
                .iter()
                .any(|a| matches!(a, Action::AddCommunity(_) | Action::AddLargeCommunity(_)))
            {
                let (_, net) = cidr_of(&r.when[0]).unwrap();
                let _ = writeln!(s, "if ( net ~ {net} ) then {{");
                for a in &r.then {
                    s.push_str(&community_stmt(a));
                }
                s.push_str("}\n");
            }
        }
        s.push_str("}\n");
        let debug = match c.log_level {
            LogLevel::None => "",
            LogLevel::States => "debug { states };",
            LogLevel::All => "debug all;",
        };
        let k = &c.kernel;
        let _ = writeln!(
            s,
            "template kernel kernel_template {{ {}{}scan time {}; import all; }}",
            if k.learn { "learn; " } else { "" },
            if k.persist { "persist; " } else { "" },
            k.scan_time
        );
        let patterns: Vec<String> = c
            .interfaces
            .iter()
            .map(|p| {
                if p.include {
                    format!("\"{}\"", p.glob)
                } else {
                    format!("-\"{}\"", p.glob)
                }
            })
            .collect();
        let _ = writeln!(
            s,
            "template direct direct_template {{ {debug} interface {}; }}",
            patterns.join(", ")
        );
        let _ = writeln!(
            s,
            "include \"bird{0}_aggr.cfg\"; include \"bird{0}_ipam.cfg\";",
            self.six()
        );
        let _ = writeln!(s, "router id {};", c.router_id);
        let listen_addr = if self.family == Family::Ipv4 {
            c.listen.address
        } else {
            c.listen.address_v6
        };
        if listen_addr.is_some() || c.listen.port != 179 {
            let _ = write!(s, "listen bgp");
            if let Some(a) = listen_addr {
                let _ = write!(s, " address {a}");
            }
            if c.listen.port != 179 {
                let _ = write!(s, " port {}", c.listen.port);
            }
            s.push_str(";\n");
        }
        let _ = writeln!(
            s,
            "protocol kernel from kernel_template {{ export filter {}; {}{}}}",
            k.export,
            if k.graceful_restart {
                "graceful restart; "
            } else {
                ""
            },
            if k.merge_paths {
                "merge paths on; "
            } else {
                ""
            }
        );
        let _ = writeln!(s, "protocol device {{ {debug} scan time 2; }}");
        s.push_str("protocol direct from direct_template { }\n");
        if self.node_ip().is_none() {
            return s;
        }
        let peer_debug = match c.log_level {
            LogLevel::None => "",
            LogLevel::States => "debug { states, routes, filters, events };",
            LogLevel::All => "debug all;",
        };
        let _ = writeln!(
            s,
            "template bgp bgp_template {{ {peer_debug} description \"Connection to BGP peer\"; local as {}; gateway recursive; add paths on; graceful restart; connect delay time 2; connect retry time 5; error wait time 5,30; }}",
            c.asn
        );
        s.push_str(&self.filter_functions());
        let fam_peers: Vec<&Peer> = c
            .peers
            .iter()
            .filter(|p| p.families == vec![self.family])
            .collect();
        for p in fam_peers {
            s.push_str(&self.peer(p));
        }
        s
    }

    fn filter_functions(&self) -> String {
        let suffix = if self.family == Family::Ipv4 {
            "V4"
        } else {
            "V6"
        };
        let mut groups: BTreeMap<String, Vec<(bool, &Policy, String)>> = BTreeMap::new();
        for (name, p) in &self.cfg.policies {
            for (import, tail) in [
                (true, format!("_importFilter{suffix}")),
                (false, format!("_exportFilter{suffix}")),
            ] {
                if let Some(base) = name
                    .strip_prefix("bgp_")
                    .and_then(|n| n.strip_suffix(&tail))
                {
                    groups
                        .entry(base.to_string())
                        .or_default()
                        .push((import, p, name.clone()));
                }
            }
        }
        let mut s = String::new();
        for (_, mut fs) in groups {
            fs.sort_by_key(|(import, _, _)| !*import);
            for (_, p, name) in fs {
                let param = p
                    .rules
                    .iter()
                    .any(|r| r.when.iter().any(|m| matches!(m, Match::Session(_))));
                let _ = writeln!(
                    s,
                    "function '{name}'({}) {{",
                    if param { "bool is_same_as" } else { "" }
                );
                for r in &p.rules {
                    s.push_str(&filter_rule_text(r));
                    s.push('\n');
                }
                s.push_str("}\n");
            }
        }
        s
    }

    fn peer(&self, p: &Peer) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "protocol bgp {} from bgp_template {{", p.name);
        if let Some(l) = p.local_as {
            let _ = writeln!(s, "local as {l};");
        }
        let port = if p.name.contains("_port_") || p.port != 179 {
            format!(" port {}", p.port)
        } else {
            String::new()
        };
        let _ = writeln!(s, "neighbor {}{port} as {};", p.address, p.remote_as);
        if let Some(a) = p.source_address {
            let _ = writeln!(s, "source address {a};");
        }
        assert!(p.multihop, "Calico sessions are multihop");
        match p.ttl_security {
            None => s.push_str("ttl security off;\nmultihop;\n"),
            Some(n) => {
                let _ = writeln!(s, "ttl security on;\nmultihop {n};");
            }
        }
        let same_as = p.remote_as == p.effective_local_as(self.cfg.asn);
        let _ = writeln!(
            s,
            "import filter {{\n{}}};",
            self.import_text(&p.import, same_as)
        );
        let _ = writeln!(
            s,
            "export filter {{\n{}}};",
            self.export_text(&p.export, same_as)
        );
        if p.passive {
            s.push_str("passive on;\n");
        }
        if let Some(t) = p.restart_time {
            let _ = writeln!(s, "graceful restart time {t};");
        }
        if let Some(t) = p.keepalive_time {
            let _ = writeln!(s, "keepalive time {t};");
        }
        if p.rr_client {
            let _ = writeln!(s, "rr client;\nrr cluster id {};", p.rr_cluster_id.unwrap());
        }
        match &p.password {
            Password::Set(pw) => {
                let _ = writeln!(s, "password \"{pw}\";");
            }
            Password::Unset => {}
            Password::Redacted => panic!("computed config has a redacted password"),
        }
        match p.next_hop_mode {
            NextHopMode::Keep => s.push_str("next hop keep;\n"),
            NextHopMode::SelfAddress => s.push_str("next hop self;\n"),
            NextHopMode::Auto => {}
        }
        if let Some(n) = p.allow_local_as {
            let _ = writeln!(s, "allow local as {n};");
        }
        // Timers Calico never changes per peer: any difference from the template is an error.
        assert_eq!(
            (
                p.hold_time,
                p.connect_delay_time,
                p.connect_retry_time,
                p.error_wait_time
            ),
            (240, 2, 5, (5, 30))
        );
        assert!(p.graceful_restart);
        s.push_str("}\n");
        s
    }

    fn call_text(&self, name: &str, same_as: bool) -> String {
        let p = policy(self.cfg, name);
        let param = p
            .rules
            .iter()
            .any(|r| r.when.iter().any(|m| matches!(m, Match::Session(_))));
        if param {
            format!("'{name}'({same_as});")
        } else {
            format!("'{name}'();")
        }
    }

    fn import_text(&self, name: &str, same_as: bool) -> String {
        let mut s = String::new();
        for r in &policy(self.cfg, name).rules {
            match (r.when.as_slice(), r.then.as_slice(), r.verdict) {
                ([], [Action::Call(f)], Verdict::Continue) => {
                    s.push_str(&self.call_text(f, same_as))
                }
                (
                    [Match::LocalPref(Compare::Gt, t)],
                    [Action::SetPreference(p)],
                    Verdict::Continue,
                ) => {
                    let _ = write!(
                        s,
                        "if (defined(bgp_local_pref)&&(bgp_local_pref > {t})) then preference = {p};"
                    );
                }
                ([], [], Verdict::Accept) => s.push_str("accept;"),
                other => panic!("unexpected import rule {other:?}"),
            }
            s.push('\n');
        }
        s
    }

    fn export_text(&self, name: &str, same_as: bool) -> String {
        let mut s = String::new();
        let rules = &policy(self.cfg, name).rules;
        // The krt_metric / local-pref normalisation (three rules).
        match (&rules[0].then[..], &rules[1].then[..], &rules[2].then[..]) {
            (
                [Action::SetKrtMetricFromLocalPref],
                [Action::SetKrtMetric(n)],
                [Action::SetLocalPrefFromKrtMetric],
            ) => {
                let bgp_lp = Match::All(vec![
                    Match::Source(RouteSource::Bgp),
                    Match::LocalPrefDefined,
                ]);
                assert_eq!(rules[0].when, vec![bgp_lp.clone()]);
                assert_eq!(
                    rules[1].when,
                    vec![
                        Match::Not(Box::new(bgp_lp.clone())),
                        Match::Not(Box::new(Match::KrtMetricDefined))
                    ]
                );
                assert_eq!(rules[2].when, vec![Match::Not(Box::new(bgp_lp))]);
                let _ = writeln!(
                    s,
                    "if (defined(source) && source = RTS_BGP && defined(bgp_local_pref)) then {{ krt_metric = 2147483647 - bgp_local_pref; }} else {{ if (!defined(krt_metric)) then {{ krt_metric = {n}; }} bgp_local_pref = 2147483647 - krt_metric; }}"
                );
            }
            other => panic!("unexpected export prefix {other:?}"),
        }
        for r in &rules[3..] {
            match (r.when.as_slice(), r.then.as_slice(), r.verdict) {
                ([], [Action::Call(f)], Verdict::Continue)
                    if f.starts_with("calico_export_to_bgp_peers") =>
                {
                    let _ = write!(s, "calico_export_to_bgp_peers({same_as});");
                }
                ([], [Action::Call(f)], Verdict::Continue) => {
                    s.push_str(&self.call_text(f, same_as))
                }
                ([], [], Verdict::Reject) => s.push_str("reject;"),
                other => panic!("unexpected export rule {other:?}"),
            }
            s.push('\n');
        }
        s
    }

    fn ipam_cfg(&self) -> String {
        let mut s = String::from(
            "function reject_local_routes () { if (defined(ifname)) then { if (ifname ~ \"bpf*.cali\") then { reject; } } }\n",
        );
        s.push_str("function calico_export_to_bgp_peers(bool internal_peer) {\n");
        // Stages in confd's order: disabled pools, tunnel devices, local BPF routes,
        // communities, aggregation, then accepts (static routes, RR service ranges, pools).
        let mut stage = 0;
        let mut communities_called = false;
        for r in &self.export_to_peers().rules {
            let next = match (r.when.as_slice(), r.then.as_slice(), r.verdict) {
                ([m], [], Verdict::Reject) if cidr_of(m).is_some() && stage == 0 => {
                    let (_, n) = cidr_of(m).unwrap();
                    let _ = writeln!(s, "if (net ~ {n}) then {{ reject; }}");
                    0
                }
                ([Match::Session(SessionType::Ibgp), Match::Any(ifs)], [], Verdict::Reject) => {
                    let conds: Vec<String> = ifs
                        .iter()
                        .map(|m| match m {
                            Match::Interface(g) => format!("(ifname ~ \"{g}\")"),
                            other => panic!("{other:?}"),
                        })
                        .collect();
                    let _ = writeln!(
                        s,
                        "if (internal_peer) then {{ if (defined(ifname)) then {{ if ({}) then {{ reject; }} }} }}",
                        conds.join(" || ")
                    );
                    1
                }
                ([Match::Interface(g)], [], Verdict::Reject) if g == "bpf*.cali" => {
                    s.push_str("reject_local_routes();\n");
                    2
                }
                ([_], _, Verdict::Continue)
                    if r.then.iter().all(|a| {
                        matches!(a, Action::AddCommunity(_) | Action::AddLargeCommunity(_))
                    }) =>
                {
                    if !communities_called {
                        s.push_str("apply_communities();\n");
                        communities_called = true;
                    }
                    3
                }
                ([], [Action::Call(f)], Verdict::Continue) if f.starts_with("calico_aggr") => {
                    if !communities_called {
                        s.push_str("apply_communities();\n");
                        communities_called = true;
                    }
                    s.push_str("calico_aggr();\n");
                    4
                }
                ([m], [], Verdict::Accept)
                    if cidr_of(m).is_some_and(|(op, _)| op == PrefixOp::In) && stage >= 4 =>
                {
                    let (_, n) = cidr_of(m).unwrap();
                    let _ = writeln!(s, "if ( net ~ {n} ) then {{ accept; }}");
                    5
                }
                other => {
                    panic!("unexpected calico_export_to_bgp_peers rule at stage {stage}: {other:?}")
                }
            };
            assert!(
                next >= stage,
                "calico_export_to_bgp_peers rules out of order"
            );
            stage = next;
        }
        assert_eq!(self.export_to_peers().default, Verdict::Continue);
        s.push_str("}\n");

        // Kernel policy: the dispatcher calls one policy per family.
        let kernel = policy(self.cfg, &self.cfg.kernel.export);
        let name = kernel
            .rules
            .iter()
            .find_map(|r| match (r.when.as_slice(), r.then.as_slice()) {
                ([Match::Family(f)], [Action::Call(n)]) if *f == self.family => Some(n.clone()),
                _ => None,
            })
            .expect("kernel dispatch for the family");
        s.push_str("filter calico_kernel_programming {\n");
        let rules = &policy(self.cfg, &name).rules;
        let mut i = 0;
        while i < rules.len() {
            let r = &rules[i];
            match (r.when.as_slice(), r.then.as_slice(), r.verdict) {
                ([m], [], Verdict::Reject) if cidr_of(m).is_some() => {
                    let _ = writeln!(s, "if (net ~ {}) then {{ reject; }}", cidr_of(m).unwrap().1);
                }
                (
                    [Match::Source(RouteSource::Bgp), Match::Not(_)],
                    [Action::SetKrtMetric(n), Action::Call(f)],
                    Verdict::Continue,
                ) => {
                    let sub = &policy(self.cfg, f).rules;
                    assert_eq!(sub[0].when, vec![Match::LocalPrefDefined]);
                    assert_eq!(sub[0].then, vec![Action::SetKrtMetricFromLocalPref]);
                    let Match::KrtMetric(Compare::Lt, m) = sub[1].when[0] else {
                        panic!("{sub:?}")
                    };
                    let Action::SetPreference(pref) = sub[1].then[0] else {
                        panic!("{sub:?}")
                    };
                    let _ = writeln!(
                        s,
                        "if (defined(source) && (source = RTS_BGP) && !defined(krt_metric)) then {{ krt_metric = {n}; if (defined(bgp_local_pref)) then {{ krt_metric = 2147483647 - bgp_local_pref; }} if (krt_metric < {m}) then {{ preference = {pref}; }} }}"
                    );
                }
                ([Match::NextHopIs(ip)], [], Verdict::Reject) => {
                    let _ = writeln!(
                        s,
                        "if (defined(bgp_next_hop) && bgp_next_hop = {ip}) then {{ reject; }}"
                    );
                }
                ([m, Match::NextHopIn(local)], [Action::SetKrtTunnel(t)], Verdict::Accept)
                    if t.is_empty() =>
                {
                    let (_, n) = cidr_of(m).unwrap();
                    let nr = &rules[i + 1];
                    assert_eq!(nr.when, vec![m.clone()]);
                    assert_eq!(nr.then, vec![Action::SetKrtTunnel("tunl0".into())]);
                    let _ = writeln!(
                        s,
                        "if (net ~ {n}) then {{ if (defined(bgp_next_hop)&&(bgp_next_hop ~ {local})) then krt_tunnel=\"\"; else krt_tunnel=\"tunl0\"; accept; }}"
                    );
                    i += 1;
                }
                ([m], [Action::SetKrtTunnel(t)], Verdict::Accept) => {
                    let _ = writeln!(
                        s,
                        "if (net ~ {}) then {{ krt_tunnel=\"{t}\"; accept; }}",
                        cidr_of(m).unwrap().1
                    );
                }
                ([m], [], Verdict::Accept) => {
                    let _ = writeln!(s, "if (net ~ {}) then {{ accept; }}", cidr_of(m).unwrap().1);
                }
                ([], [], Verdict::Accept) => s.push_str("accept;\n"),
                other => panic!("unexpected kernel rule {other:?}"),
            }
            i += 1;
        }
        s.push_str("}\n");
        s
    }

    fn aggr_cfg(&self) -> String {
        let c = self.cfg;
        let mut s = String::from("template static static_template {\n");
        let is_fam = |n: &IpNet| {
            matches!(
                (n, self.family),
                (IpNet::V4(_), Family::Ipv4) | (IpNet::V6(_), Family::Ipv6)
            )
        };
        let mut blocks: Vec<IpNet> = c.blackholes.iter().copied().filter(|n| is_fam(n)).collect();
        blocks.sort_by_key(key_string);
        let mut any = false;
        for b in blocks {
            let _ = writeln!(s, "route {b} blackhole;");
            any = true;
        }
        let mut statics: Vec<IpNet> = c
            .static_routes
            .iter()
            .filter(|r| r.target == StaticTarget::Blackhole && is_fam(&r.prefix))
            .map(|r| r.prefix)
            .collect();
        statics.sort_by_key(key_string);
        for n in statics {
            let _ = writeln!(s, "route {n} blackhole;");
            any = true;
        }
        for r in c.static_routes.iter().filter(|r| is_fam(&r.prefix)) {
            if let StaticTarget::Via(gw) = r.target {
                let _ = writeln!(s, "route {} via {gw};", r.prefix);
                any = true;
            }
        }
        s.push_str("}\n");
        if any {
            s.push_str("protocol static from static_template { }\n");
        }
        s.push_str("function calico_aggr () {\n");
        let aggr = policy(c, &format!("calico_aggr_{}", fam_suffix(self.family)));
        for r in &aggr.rules {
            match (r.when.as_slice(), r.verdict) {
                ([m], Verdict::Accept)
                    if cidr_of(m).is_some_and(|(op, _)| op == PrefixOp::Equal) =>
                {
                    let _ = writeln!(
                        s,
                        "if ( net = {} ) then {{ accept; }}",
                        cidr_of(m).unwrap().1
                    );
                }
                ([m, Match::KrtMetric(Compare::Lt, n)], Verdict::Accept) => {
                    let _ = writeln!(
                        s,
                        "if ( net ~ {} && krt_metric < {n} ) then {{ accept; }}",
                        cidr_of(m).unwrap().1
                    );
                }
                ([m], Verdict::Reject) => {
                    let _ = writeln!(
                        s,
                        "if ( net ~ {} ) then {{ reject; }}",
                        cidr_of(m).unwrap().1
                    );
                }
                other => panic!("unexpected calico_aggr rule {other:?}"),
            }
        }
        s.push_str("}\n");
        s
    }
}

/// A BGPFilter rule as confd renders it (contract §2.6).
fn filter_rule_text(r: &Rule) -> String {
    let mut session = None;
    let mut conds = Vec::new();
    for m in &r.when {
        match m {
            Match::Session(t) => session = Some(*t),
            Match::Prefix(p) => {
                let op = match p.op {
                    PrefixOp::In => "~",
                    PrefixOp::NotIn => "!~",
                    PrefixOp::Equal => "=",
                    PrefixOp::NotEqual => "!=",
                };
                match (p.min_len, p.max_len) {
                    (None, None) => conds.push(format!("(net {op} {})", p.prefix)),
                    (Some(a), Some(b)) => {
                        conds.push(format!("(net {op} [ {}{{{a},{b}}} ])", p.prefix))
                    }
                    other => panic!("half-open length range {other:?}"),
                }
            }
            Match::Source(RouteSource::Bgp) => {
                conds.push("((defined(source))&&(source ~ [ RTS_BGP ]))".into())
            }
            Match::Interface(g) => conds.push(format!("((defined(ifname))&&(ifname ~ \"{g}\"))")),
            Match::Community(Community(a, b)) => {
                conds.push(format!("(({a}, {b}) ~ bgp_community)"))
            }
            Match::LargeCommunity(LargeCommunity(a, b, c)) => {
                conds.push(format!("(({a}, {b}, {c}) ~ bgp_large_community)"))
            }
            Match::AsPathPrefix(p) => {
                let asns: Vec<String> = p.iter().map(u32::to_string).collect();
                conds.push(format!("(bgp_path ~ [= {} * =])", asns.join(" ")));
            }
            Match::LocalPref(Compare::Eq, n) => {
                conds.push(format!("(defined(bgp_local_pref)&&(bgp_local_pref = {n}))"))
            }
            other => panic!("not a BGPFilter condition: {other:?}"),
        }
    }
    let mut body = Vec::new();
    for a in &r.then {
        match a {
            Action::AddCommunity(_) | Action::AddLargeCommunity(_) => body.push(community_stmt(a)),
            Action::Prepend(asns) => {
                for asn in asns.iter().rev() {
                    body.push(format!("bgp_path.prepend({asn});"));
                }
            }
            Action::SetLocalPref(n) => body.push(format!("bgp_local_pref = {n};")),
            other => panic!("not a BGPFilter operation: {other:?}"),
        }
    }
    body.push(verdict(r.verdict).to_string());
    let body = body.join(" ");
    let stmt = if conds.is_empty() {
        body
    } else {
        format!("if ({}) then {{ {body} }}", conds.join("&&"))
    };
    match session {
        Some(SessionType::Ibgp) => format!("if (is_same_as) then {{ {stmt} }}"),
        Some(SessionType::Ebgp) => format!("if (!is_same_as) then {{ {stmt} }}"),
        None => stmt,
    }
}

fn ipv4_sessions(case: &Case) -> usize {
    let dir = build_dir(case, 1000);
    let snap = FileDatastore::new(&dir.0).snapshot().unwrap();
    assert!(snap.problems.is_empty(), "{:?}", snap.problems);
    let env = NodeEnv {
        node_name: case.node.into(),
        ..NodeEnv::default()
    };
    let cfg = compute(&snap.model, &env).unwrap();
    cfg.peers
        .iter()
        .filter(|p| p.families == vec![Family::Ipv4])
        .count()
}

fn node1(ops: Vec<Op>) -> Case {
    Case {
        name: String::new(),
        golden: String::new(),
        node: "node1",
        env: Vec::new(),
        affinities: false,
        ops,
        workloads: Vec::new(),
    }
}

/// TestIdlePeers: a node-specific and a global peerSelector peering to the same node collapse
/// into one session.
#[test]
fn idle_peers_give_one_session() {
    assert_eq!(
        ipv4_sessions(&node1(vec![Op::Apply("idle_peers/input.yaml")])),
        1
    );
}

/// TestNodeDeletion: deleting a selected node removes its session.
#[test]
fn node_deletion_removes_its_session() {
    assert_eq!(
        ipv4_sessions(&node1(vec![Op::Apply("node_deletion/input.yaml")])),
        3
    );
    assert_eq!(
        ipv4_sessions(&node1(vec![
            Op::Apply("node_deletion/input.yaml"),
            Op::Delete("Node", "node3")
        ])),
        2
    );
}
