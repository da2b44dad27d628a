//! `ternd`: the Calico node daemon.
//!
//! Today it has one mode: `--print-config` computes this node's desired configuration from the
//! datastore, prints it as JSON and exits. Environment as calico-node sets it: `NODENAME`,
//! `DATASTORE_TYPE`, `ETCD_ENDPOINTS`, `KUBECONFIG`, `CALICO_ROUTER_ID`, `CALICO_ADVERTISE_CLUSTER_IPS`, `NAMESPACE`,
//! `CALICO_ENDPOINT_STATUS_PATH_PREFIX`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Parser;
use controller::datastore::kubernetes::KubeDatastore;
use controller::datastore::{Datastore, EtcdDatastore, FileDatastore};
use controller::{NodeEnv, compute};

#[derive(Parser, Debug)]
#[command(name = "ternd", version, about = "Tern: BGP for Calico nodes")]
struct Args {
    /// Datastore type: `file` (a folder of calicoctl YAML), `etcdv3` or `kubernetes`
    /// [env: DATASTORE_TYPE; default: kubernetes].
    #[arg(long)]
    datastore: Option<String>,
    /// Folder of YAML files for the `file` datastore [env: TERN_CONFIG_DIR].
    #[arg(long)]
    config_dir: Option<PathBuf>,
    /// etcd endpoints, comma-separated (`http://host:2379`) [env: ETCD_ENDPOINTS].
    #[arg(long)]
    etcd_endpoints: Option<String>,
    /// This node's name [env: NODENAME].
    #[arg(long)]
    node_name: Option<String>,
    /// Print this node's desired configuration as JSON and exit.
    #[arg(long)]
    print_config: bool,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn run(args: Args) -> anyhow::Result<()> {
    let node_name = args
        .node_name
        .or_else(|| env("NODENAME"))
        .context("no node name: set NODENAME or --node-name")?;
    let datastore = args
        .datastore
        .or_else(|| env("DATASTORE_TYPE"))
        .unwrap_or_else(|| "kubernetes".into());
    if !args.print_config {
        bail!("only --print-config is implemented in this version of ternd");
    }
    let snapshot = match datastore.as_str() {
        "file" => {
            let dir = args
                .config_dir
                .or_else(|| env("TERN_CONFIG_DIR").map(PathBuf::from))
                .context("the file datastore needs --config-dir DIR")?;
            FileDatastore::new(&dir)
                .snapshot()
                .with_context(|| format!("reading the file datastore {}", dir.display()))?
        }
        "etcdv3" => {
            let endpoints: Vec<String> = args
                .etcd_endpoints
                .or_else(|| env("ETCD_ENDPOINTS"))
                .context("the etcdv3 datastore needs ETCD_ENDPOINTS or --etcd-endpoints")?
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect();
            EtcdDatastore::new(endpoints)?
                .snapshot()
                .context("reading the etcdv3 datastore")?
        }
        "kubernetes" => {
            let namespace = env("NAMESPACE").unwrap_or_else(|| "kube-system".into());
            KubeDatastore::infer(&namespace)?
                .snapshot()
                .context("reading the kubernetes datastore")?
        }
        other => bail!("unknown datastore type {other:?} (expected file, etcdv3 or kubernetes)"),
    };
    if !snapshot.problems.is_empty() {
        let list: Vec<String> = snapshot.problems.iter().map(|p| format!("  {p}")).collect();
        bail!("invalid resources in the datastore:\n{}", list.join("\n"));
    }
    let status_dir = PathBuf::from(
        env("CALICO_ENDPOINT_STATUS_PATH_PREFIX").unwrap_or_else(|| "/var/run/calico".into()),
    )
    .join("endpoint-status");
    let node_env = NodeEnv {
        node_name,
        router_id: env("CALICO_ROUTER_ID"),
        advertise_cluster_ips: env("CALICO_ADVERTISE_CLUSTER_IPS"),
        namespace: env("NAMESPACE"),
        local_workloads: controller::endpoint_status::read_dir(&status_dir),
    };
    let config = compute(&snapshot.model, &node_env)?;
    println!("{}", serde_json::to_string_pretty(&config)?);
    Ok(())
}

fn main() -> ExitCode {
    // Without `--print-config`, ternd runs the daemon (crates/tern/src/daemon.rs).
    if !tern::daemon::is_one_shot(&std::env::args().collect::<Vec<_>>()) {
        return tern::daemon::main(tern::daemon::Role::Node);
    }
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ternd: {e:#}");
            ExitCode::FAILURE
        }
    }
}
