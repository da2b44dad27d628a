//! Running the engine as a daemon: `ternd` (node daemon) and `tern-rr` (route reflector).
//!
//! Configuration comes from one source, watched for changes; every change is handed to
//! [`Speaker::apply`], which touches only what changed:
//!
//! * `--config FILE`: a `DesiredConfig` in JSON or YAML (Tern as a plain BGP speaker);
//! * `--datastore file --config-dir DIR` or `DATASTORE_TYPE=etcdv3` with `ETCD_ENDPOINTS`:
//!   Calico resources, turned into this node's `DesiredConfig` by `controller::compute` for
//!   `NODENAME`.
//!
//! Sources are polled (`--poll-interval`, default 1 s) on a thread of their own; a source
//! that fails or holds invalid resources is logged and the running configuration stays, so
//! losing the datastore loses no session and no route. SIGTERM/SIGINT stop every session with
//! Cease / Administrative Shutdown; kernel routes persist when configured.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;
use controller::datastore::{Datastore, EtcdDatastore, FileDatastore};
use controller::{NodeEnv, compute};
use tern_config::DesiredConfig;
use tern_speaker::{Speaker, SpeakerOptions};
use tokio::sync::mpsc;

/// Which binary is running.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// `ternd`: programs the kernel by default.
    Node,
    /// `tern-rr`: no FIB unless `--fib`.
    RouteReflector,
}

/// Flags shared by `ternd` and `tern-rr`.
#[derive(Parser, Debug, Clone)]
#[command(version, about = "Tern: BGP for Calico nodes")]
pub struct DaemonArgs {
    /// A DesiredConfig (JSON or YAML) to run as a plain BGP speaker, without Calico.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Datastore type: `file` (a folder of calicoctl YAML) or `etcdv3`
    /// [env: DATASTORE_TYPE; default: kubernetes].
    #[arg(long)]
    pub datastore: Option<String>,
    /// Folder of YAML files for the `file` datastore [env: TERN_CONFIG_DIR].
    #[arg(long)]
    pub config_dir: Option<PathBuf>,
    /// etcd endpoints, comma-separated [env: ETCD_ENDPOINTS].
    #[arg(long)]
    pub etcd_endpoints: Option<String>,
    /// This node's name [env: NODENAME].
    #[arg(long)]
    pub node_name: Option<String>,
    /// Print this node's desired configuration as JSON and exit (ternd).
    #[arg(long)]
    pub print_config: bool,
    /// Log level: error, warn, info, debug, trace (or BIRD's none/states/all)
    /// [env: BGP_LOGSEVERITYSCREEN; default: info].
    #[arg(long)]
    pub log_level: Option<String>,
    /// Program the kernel (default for ternd; tern-rr runs without a FIB unless given).
    #[arg(long)]
    pub fib: bool,
    /// Do not program the kernel (ternd).
    #[arg(long, conflicts_with = "fib")]
    pub no_fib: bool,
    /// How often the configuration source is read, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub poll_interval: u64,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// Whether `ternd`'s arguments ask for the one-shot `--print-config` mode.
pub fn is_one_shot(args: &[String]) -> bool {
    args.iter().skip(1).any(|a| a == "--print-config")
}

/// Entry point of the `ternd` and `tern-rr` daemons.
pub fn main(role: Role) -> ExitCode {
    let name = match role {
        Role::Node => "ternd",
        Role::RouteReflector => "tern-rr",
    };
    let args = DaemonArgs::parse();
    init_logging(
        args.log_level
            .clone()
            .or_else(|| env("BGP_LOGSEVERITYSCREEN")),
    );
    match run(role, args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name}: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(level: Option<String>) {
    let level = match level.as_deref().map(str::to_ascii_lowercase).as_deref() {
        Some("none") | Some("fatal") | Some("panic") | Some("error") => "error",
        Some("warn") | Some("warning") => "warn",
        Some("debug") | Some("all") => "debug",
        Some("trace") => "trace",
        _ => "info",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("TERN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init();
}

/// Where configurations come from.
enum Source {
    File(PathBuf),
    Calico {
        datastore: Box<dyn Datastore + Send>,
        node_env: NodeEnv,
        status_dir: PathBuf,
    },
}

fn source(args: &DaemonArgs) -> anyhow::Result<Source> {
    if let Some(path) = &args.config {
        return Ok(Source::File(path.clone()));
    }
    let node_name = args
        .node_name
        .clone()
        .or_else(|| env("NODENAME"))
        .context("no node name: set NODENAME or --node-name (or use --config FILE)")?;
    let kind = args
        .datastore
        .clone()
        .or_else(|| env("DATASTORE_TYPE"))
        .unwrap_or_else(|| "kubernetes".into());
    let datastore: Box<dyn Datastore + Send> = match kind.as_str() {
        "file" => {
            let dir = args
                .config_dir
                .clone()
                .or_else(|| env("TERN_CONFIG_DIR").map(PathBuf::from))
                .context("the file datastore needs --config-dir DIR")?;
            Box::new(FileDatastore::new(dir))
        }
        "etcdv3" => {
            let endpoints: Vec<String> = args
                .etcd_endpoints
                .clone()
                .or_else(|| env("ETCD_ENDPOINTS"))
                .context("the etcdv3 datastore needs ETCD_ENDPOINTS or --etcd-endpoints")?
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect();
            Box::new(EtcdDatastore::new(endpoints)?)
        }
        "kubernetes" => bail!(
            "the kubernetes datastore is not available in this build; use file or etcdv3, or --config FILE"
        ),
        other => bail!("unknown datastore type {other:?} (expected file, etcdv3 or kubernetes)"),
    };
    let status_dir = PathBuf::from(
        env("CALICO_ENDPOINT_STATUS_PATH_PREFIX").unwrap_or_else(|| "/var/run/calico".into()),
    )
    .join("endpoint-status");
    let node_env = NodeEnv {
        node_name,
        router_id: env("CALICO_ROUTER_ID"),
        advertise_cluster_ips: env("CALICO_ADVERTISE_CLUSTER_IPS"),
        namespace: env("NAMESPACE"),
        local_workloads: Vec::new(),
    };
    Ok(Source::Calico {
        datastore,
        node_env,
        status_dir,
    })
}

/// Parses a DesiredConfig file: JSON when it starts with `{`, else YAML.
pub fn parse_config(text: &str) -> anyhow::Result<DesiredConfig> {
    if text.trim_start().starts_with('{') {
        Ok(serde_json::from_str(text)?)
    } else {
        Ok(serde_saphyr::from_str(text)?)
    }
}

impl Source {
    /// The desired configuration now.
    fn read(&mut self) -> anyhow::Result<DesiredConfig> {
        match self {
            Source::File(path) => {
                let text = std::fs::read_to_string(&*path)
                    .with_context(|| format!("reading {}", path.display()))?;
                parse_config(&text).with_context(|| format!("parsing {}", path.display()))
            }
            Source::Calico {
                datastore,
                node_env,
                status_dir,
            } => {
                let snapshot = datastore.snapshot()?;
                if !snapshot.problems.is_empty() {
                    let list: Vec<String> =
                        snapshot.problems.iter().map(|p| format!("  {p}")).collect();
                    bail!("invalid resources in the datastore:\n{}", list.join("\n"));
                }
                node_env.local_workloads = controller::endpoint_status::read_dir(status_dir);
                Ok(compute(&snapshot.model, node_env)?)
            }
        }
    }
}

/// Reads the source now and then every `interval`, sending each configuration that differs
/// from the previous one. Runs on its own thread (datastore clients may block).
fn watch(mut source: Source, interval: Duration, tx: mpsc::Sender<DesiredConfig>) {
    let mut last: Option<DesiredConfig> = None;
    let mut last_error: Option<String> = None;
    loop {
        match source.read() {
            Ok(c) => {
                last_error = None;
                if last.as_ref() != Some(&c) {
                    last = Some(c.clone());
                    if tx.blocking_send(c).is_err() {
                        return;
                    }
                }
            }
            Err(e) => {
                let text = format!("{e:#}");
                if last_error.as_deref() != Some(text.as_str()) {
                    tracing::error!(error = %text, "configuration source unusable; keeping the running configuration");
                    last_error = Some(text);
                }
            }
        }
        if tx.is_closed() {
            return;
        }
        std::thread::sleep(interval);
    }
}

fn run(role: Role, args: DaemonArgs) -> anyhow::Result<()> {
    let mut src = source(&args)?;
    if args.print_config {
        let c = src.read()?;
        println!("{}", serde_json::to_string_pretty(&c)?);
        return Ok(());
    }
    // The first configuration must be valid: fail fast on a typo.
    let first = src.read()?;
    let fib = match role {
        Role::Node => !args.no_fib,
        Role::RouteReflector => args.fib,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let speaker = Speaker::new(SpeakerOptions {
            fib,
            ..SpeakerOptions::default()
        });
        let summary = speaker.apply(first).await?;
        tracing::info!(
            peers = summary.added.len(),
            fib,
            "started with {} peer(s)",
            summary.added.len()
        );
        for e in &summary.errors {
            tracing::error!(error = %e, "peer not configured");
        }
        let (tx, mut rx) = mpsc::channel::<DesiredConfig>(4);
        let interval = Duration::from_millis(args.poll_interval.max(50));
        std::thread::Builder::new()
            .name("config-watch".into())
            .spawn(move || watch(src, interval, tx))?;
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        loop {
            tokio::select! {
                c = rx.recv() => match c {
                    Some(c) => match speaker.apply(c).await {
                        Ok(s) => tracing::info!(
                            added = ?s.added, removed = ?s.removed, reset = ?s.reset,
                            reconfigured = ?s.reconfigured, policies = s.policies_changed,
                            full_restart = s.full_restart, "configuration applied"
                        ),
                        Err(e) => tracing::error!(error = %e, "configuration not applied"),
                    },
                    None => break,
                },
                _ = term.recv() => break,
                _ = tokio::signal::ctrl_c() => break,
            }
        }
        tracing::info!("shutting down");
        speaker.shutdown("tern shutting down").await?;
        Ok::<(), anyhow::Error>(())
    })
}
