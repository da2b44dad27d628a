//! `ternd --print-config` end to end: a real process, a folder datastore, JSON on stdout.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::Command;

fn ternd() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ternd"))
}

fn fixture(rel: &str) -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/calico-conformance/mock_data/calicoctl"
    ))
    .join(rel)
}

struct Dir(PathBuf);
impl Dir {
    fn new(tag: &str) -> Dir {
        let p =
            std::env::temp_dir().join(format!("ternd-print-config-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Dir(p)
    }
}
impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn prints_the_desired_config_as_json() {
    let d = Dir::new("ok");
    std::fs::copy(
        fixture("mesh/ipip-cross-subnet/input.yaml"),
        d.0.join("input.yaml"),
    )
    .unwrap();
    let out = ternd()
        .env("NODENAME", "kube-master")
        .args(["--datastore", "file", "--config-dir"])
        .arg(&d.0)
        .arg("--print-config")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["router_id"], "10.192.0.2");
    assert_eq!(v["asn"], 64512);
    assert_eq!(v["listen"]["port"], 179);
    let names: Vec<&str> = v["peers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Mesh_10_192_0_3", "Mesh_10_192_0_6"]);
    assert_eq!(v["peers"][0]["passive"], true);
    assert_eq!(v["peers"][0]["password_set"], false);
    assert!(
        v["policies"]
            .get(v["peers"][0]["export"].as_str().unwrap())
            .is_some()
    );
    assert_eq!(v["kernel"]["export"], "calico_kernel_programming");
    // The same through the environment.
    let out = ternd()
        .env("NODENAME", "kube-master")
        .env("DATASTORE_TYPE", "file")
        .env("TERN_CONFIG_DIR", &d.0)
        .env("CALICO_ROUTER_ID", "hash")
        .arg("--print-config")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["router_id"], "25.79.212.8");
}

#[test]
fn unknown_node_fails_clearly() {
    let d = Dir::new("unknown");
    std::fs::copy(
        fixture("mesh/ipip-cross-subnet/input.yaml"),
        d.0.join("input.yaml"),
    )
    .unwrap();
    let out = ternd()
        .env("NODENAME", "nope")
        .args(["--datastore", "file", "--config-dir"])
        .arg(&d.0)
        .arg("--print-config")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("\"nope\"") && err.contains("not in the datastore"),
        "{err}"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn unreadable_folder_fails_clearly() {
    let out = ternd()
        .env("NODENAME", "kube-master")
        .args([
            "--datastore",
            "file",
            "--config-dir",
            "/nonexistent/ternd/config",
            "--print-config",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent/ternd/config"), "{err}");
}

#[test]
fn invalid_resources_fail_with_name_and_field() {
    let d = Dir::new("invalid");
    std::fs::copy(
        fixture("mesh/ipip-cross-subnet/input.yaml"),
        d.0.join("input.yaml"),
    )
    .unwrap();
    std::fs::write(
        d.0.join("bad.yaml"),
        "apiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata:\n  name: broken-peer\nspec:\n  peerIP: 10.0.0.1\n  asNumber: sixty\n",
    )
    .unwrap();
    let out = ternd()
        .env("NODENAME", "kube-master")
        .args(["--datastore", "file", "--config-dir"])
        .arg(&d.0)
        .arg("--print-config")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("broken-peer") && err.contains("spec.asNumber"),
        "{err}"
    );
}

#[test]
fn unreachable_etcd_fails_clearly() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = ternd()
        .env("NODENAME", "kube-master")
        .env("DATASTORE_TYPE", "etcdv3")
        .env("ETCD_ENDPOINTS", format!("http://127.0.0.1:{port}"))
        .arg("--print-config")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("etcdv3") && err.contains(&format!("127.0.0.1:{port}")),
        "{err}"
    );
}

#[test]
fn unreachable_kubernetes_fails_clearly() {
    let d = Dir::new("kubeconfig");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let kubeconfig = d.0.join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {{server: \"http://127.0.0.1:{port}\"}}\nusers:\n- name: u\n  user: {{}}\ncontexts:\n- name: x\n  context: {{cluster: c, user: u}}\ncurrent-context: x\n"
        ),
    )
    .unwrap();
    let out = ternd()
        .env("NODENAME", "kube-master")
        .env("DATASTORE_TYPE", "kubernetes")
        .env("KUBECONFIG", &kubeconfig)
        .arg("--print-config")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("kubernetes") && err.contains(&format!("127.0.0.1:{port}")),
        "{err}"
    );
}
