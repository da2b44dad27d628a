//! Running the engine as a daemon: `ternd` (node daemon) and `tern-rr` (route reflector).
//!
//! Configuration comes from one source, watched for changes; every change is handed to
//! [`Speaker::apply`], which touches only what changed:
//!
//! * `--config FILE`: a `DesiredConfig` in JSON or YAML (Tern as a plain BGP speaker), re-read
//!   every `--poll-interval` milliseconds;
//! * a Calico datastore ([`open_datastore`]): `--datastore file --config-dir DIR`,
//!   `DATASTORE_TYPE=etcdv3` with `ETCD_ENDPOINTS` (and calico-node's TLS and authentication
//!   variables, [`etcd_config`]), or `DATASTORE_TYPE=kubernetes` (the
//!   default, `KUBECONFIG` or in-cluster credentials). Its resources become this node's
//!   `DesiredConfig` through `controller::compute` for `NODENAME`, with the environment of
//!   [`node_env_from_env`] and Felix's endpoint-status files (local workload peers).
//!
//! The datastore is followed on a thread of its own through `Datastore::next_change` (a watch,
//! not a poll). A datastore that fails is logged and retried, each time with a new client,
//! with exponential back-off (1 s to 10 s) while the running configuration stays — sessions
//! and kernel routes are kept — and the first snapshot after it returns resynchronises
//! everything. A snapshot with invalid resources is logged and not applied.
//!
//! Around the speaker: the BIRD-compatible control sockets (`--control-socket`; `configure`
//! and SIGHUP read the source again now, `down` stops), the Prometheus endpoint
//! (`--metrics-addr`, datastore health fed by the watcher) and, on a Calico datastore, the
//! CalicoNodeStatus reporter. The log level comes from `--log-level`,
//! `BGP_LOGSEVERITYSCREEN` or `TERN_LOG`, else follows the configuration's `log_level`
//! (Calico's `logSeverityScreen`). SIGTERM/SIGINT stop every session with
//! Cease / Administrative Shutdown; kernel routes persist when configured.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, bail};
use clap::Parser;
use controller::datastore::etcd::EtcdConfig;
use controller::datastore::kubernetes::KubeDatastore;
use controller::datastore::{Datastore, EtcdDatastore, FileDatastore, Snapshot};
use controller::node_status::{EtcdStatusStore, FileStatusStore, KubeStatusStore, StatusStore};
use controller::resources::CalicoNodeStatus;
use controller::{NodeEnv, compute};
use tern_config::{DesiredConfig, LogLevel};
use tern_control::{Backend, ControlOptions, ControlServer, FamilyView};
use tern_ops::metrics::{DatastoreGauges, MetricsServer};
use tern_speaker::{ApplySummary, Speaker, SpeakerOptions};
use tokio::sync::{mpsc, oneshot, watch};

/// Which binary is running.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// `ternd`: programs the kernel by default.
    Node,
    /// `tern-rr`: no FIB unless `--fib`.
    RouteReflector,
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Role::Node => "ternd",
            Role::RouteReflector => "tern-rr",
        }
    }
}

/// Flags shared by `ternd` and `tern-rr`.
#[derive(Parser, Debug, Clone, Default)]
#[command(version, about = "Tern: BGP for Calico nodes")]
pub struct DaemonArgs {
    /// A DesiredConfig (JSON or YAML) to run as a plain BGP speaker, without Calico.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Datastore type: `kubernetes`, `etcdv3` or `file` (a folder of calicoctl YAML)
    /// [env: DATASTORE_TYPE; default: kubernetes].
    #[arg(long)]
    pub datastore: Option<String>,
    /// Folder of YAML files for the `file` datastore [env: TERN_CONFIG_DIR].
    #[arg(long)]
    pub config_dir: Option<PathBuf>,
    /// etcd endpoints, comma-separated (`http://host:2379`) [env: ETCD_ENDPOINTS].
    #[arg(long)]
    pub etcd_endpoints: Option<String>,
    /// This node's name [env: NODENAME].
    #[arg(long)]
    pub node_name: Option<String>,
    /// Print this node's desired configuration as JSON and exit.
    #[arg(long)]
    pub print_config: bool,
    /// Log level: BIRD/Calico's debug, info, warning, error, none (errors only), or trace
    /// [env: BGP_LOGSEVERITYSCREEN; default: info]. `TERN_LOG` takes a full tracing filter.
    #[arg(long)]
    pub log_level: Option<String>,
    /// Program the kernel (default for ternd; tern-rr runs without a FIB unless given).
    #[arg(long)]
    pub fib: bool,
    /// Do not program the kernel (ternd).
    #[arg(long, conflicts_with = "fib")]
    pub no_fib: bool,
    /// How often a `--config FILE` is re-read, in milliseconds (datastores are watched).
    #[arg(long, default_value_t = 1000)]
    pub poll_interval: u64,
    /// BIRD-compatible control socket, IPv4 view (`birdc`, calico-node's health checks,
    /// `calicoctl node status`, `ternc`); empty for none [default: /var/run/calico/bird.ctl].
    #[arg(long)]
    pub control_socket: Option<PathBuf>,
    /// The IPv6 view's socket [default: next to the IPv4 one, `bird6.ctl` for `bird.ctl`,
    /// else the name with `6` before its extension].
    #[arg(long)]
    pub control_socket_v6: Option<PathBuf>,
    /// Serve Prometheus metrics on this address (`GET /metrics`); off by default.
    #[arg(long)]
    pub metrics_addr: Option<std::net::SocketAddr>,
}

/// The two control sockets the flags ask for (none when `--control-socket` is empty).
pub fn control_socket_paths(args: &DaemonArgs) -> Option<(PathBuf, PathBuf)> {
    let v4 = args
        .control_socket
        .clone()
        .unwrap_or_else(|| PathBuf::from(tern_control::DEFAULT_SOCKET));
    if v4.as_os_str().is_empty() {
        return None;
    }
    let v6 = args.control_socket_v6.clone().unwrap_or_else(|| {
        let name = v4
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let name = match name.as_str() {
            "bird.ctl" => "bird6.ctl".to_string(),
            n => match n.rsplit_once('.') {
                Some((stem, ext)) if !stem.is_empty() => format!("{stem}6.{ext}"),
                _ => format!("{n}6"),
            },
        };
        v4.with_file_name(name)
    });
    Some((v4, v6))
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// Entry point of the `ternd` and `tern-rr` binaries.
pub fn main(role: Role) -> ExitCode {
    let args = DaemonArgs::parse();
    let level = args
        .log_level
        .clone()
        .or_else(|| env("BGP_LOGSEVERITYSCREEN"));
    let level_error = init_logging(level.as_deref());
    if let Some(e) = level_error {
        tracing::warn!("{e}; logging at info");
    }
    match run(role, args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{}: {e:#}", role.name());
            ExitCode::FAILURE
        }
    }
}

/// Maps a log level as calico-node and BIRD spell it (`BGP_LOGSEVERITYSCREEN`,
/// `BGPConfiguration.logSeverityScreen`: Trace, Debug, Info, Warning, Error, Fatal; BIRD's
/// `none` and `all`) to a tracing filter directive. `none` keeps errors: BIRD logs errors
/// whatever its debug setting.
pub fn log_directive(level: &str) -> Option<&'static str> {
    Some(match level.trim().to_ascii_lowercase().as_str() {
        "trace" => "trace",
        "debug" | "all" => "debug",
        "info" | "states" => "info",
        "warning" | "warn" => "warn",
        "error" | "fatal" | "panic" | "none" => "error",
        _ => return None,
    })
}

/// Changes the log filter later (set when neither `--log-level`, `BGP_LOGSEVERITYSCREEN` nor
/// `TERN_LOG` fixed it: the level then follows the datastore's `logSeverityScreen`).
static LOG_RELOAD: OnceLock<Box<dyn Fn(&'static str) + Send + Sync>> = OnceLock::new();

/// Installs the stderr logger; returns a complaint about an unknown level.
fn init_logging(level: Option<&str>) -> Option<String> {
    let (directive, complaint) = match level {
        None => ("info", None),
        Some(l) => match log_directive(l) {
            Some(d) => (d, None),
            None => (
                "info",
                Some(format!(
                    "unknown log level {l:?} (expected debug, info, warning, error or none)"
                )),
            ),
        },
    };
    let from_env = tracing_subscriber::EnvFilter::try_from_env("TERN_LOG").ok();
    let fixed = level.is_some() || from_env.is_some();
    let filter = from_env.unwrap_or_else(|| tracing_subscriber::EnvFilter::new(directive));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_filter_reloading();
    let handle = builder.reload_handle();
    if builder.try_init().is_ok() && !fixed {
        let _ = LOG_RELOAD.set(Box::new(move |d| {
            let _ = handle.reload(tracing_subscriber::EnvFilter::new(d));
        }));
    }
    complaint
}

/// The tracing level for the configuration's BIRD-style debug level (Calico's
/// `BGPConfiguration.logSeverityScreen`: `none` keeps warnings and errors).
pub fn config_log_directive(level: LogLevel) -> &'static str {
    match level {
        LogLevel::None => "warn",
        LogLevel::States => "info",
        LogLevel::All => "debug",
    }
}

/// Follows the applied configuration's log level, unless the command line or environment
/// fixed one.
fn follow_log_level(config: &DesiredConfig, current: &mut Option<LogLevel>) {
    let Some(reload) = LOG_RELOAD.get() else {
        return;
    };
    if *current != Some(config.log_level) {
        *current = Some(config.log_level);
        reload(config_log_directive(config.log_level));
        tracing::info!(
            level = config_log_directive(config.log_level),
            "log level from the configuration"
        );
    }
}

/// Felix's endpoint-status folder: `${CALICO_ENDPOINT_STATUS_PATH_PREFIX:-/var/run/calico}/endpoint-status`.
pub fn endpoint_status_dir() -> PathBuf {
    PathBuf::from(
        env("CALICO_ENDPOINT_STATUS_PATH_PREFIX").unwrap_or_else(|| "/var/run/calico".into()),
    )
    .join("endpoint-status")
}

/// This node's environment as calico-node passes it: `CALICO_ROUTER_ID`,
/// `CALICO_ADVERTISE_CLUSTER_IPS`, `NAMESPACE`, and the local workloads of Felix's
/// endpoint-status files ([`endpoint_status_dir`]).
pub fn node_env_from_env(node_name: String) -> NodeEnv {
    NodeEnv {
        node_name,
        router_id: env("CALICO_ROUTER_ID"),
        advertise_cluster_ips: env("CALICO_ADVERTISE_CLUSTER_IPS"),
        namespace: env("NAMESPACE"),
        local_workloads: controller::endpoint_status::read_dir(&endpoint_status_dir()),
    }
}

/// How to reach etcd, from `--etcd-endpoints` / `ETCD_ENDPOINTS` and the other variables
/// calico-node reads (libcalico-go's etcdv3 settings): `ETCD_CA_CERT_FILE`, `ETCD_CERT_FILE`,
/// `ETCD_KEY_FILE` (TLS to `https://` endpoints, client certificate), `ETCD_USERNAME` and
/// `ETCD_PASSWORD` (etcd authentication). The password is never logged.
pub fn etcd_config(args: &DaemonArgs) -> anyhow::Result<EtcdConfig> {
    let endpoints: Vec<String> = args
        .etcd_endpoints
        .clone()
        .or_else(|| env("ETCD_ENDPOINTS"))
        .context("the etcdv3 datastore needs ETCD_ENDPOINTS or --etcd-endpoints")?
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    Ok(EtcdConfig {
        endpoints,
        ca_cert_file: env("ETCD_CA_CERT_FILE").map(PathBuf::from),
        cert_file: env("ETCD_CERT_FILE").map(PathBuf::from),
        key_file: env("ETCD_KEY_FILE").map(PathBuf::from),
        username: env("ETCD_USERNAME"),
        password: env("ETCD_PASSWORD"),
    })
}

/// Opens the Calico datastore the flags and environment name: `--datastore` /
/// `DATASTORE_TYPE` (`kubernetes` by default), `--config-dir` / `TERN_CONFIG_DIR` for `file`,
/// `--etcd-endpoints` / `ETCD_ENDPOINTS` for `etcdv3`, `KUBECONFIG` (or in-cluster
/// credentials) and `NAMESPACE` for `kubernetes`. Returns the datastore and its type.
pub fn open_datastore(args: &DaemonArgs) -> anyhow::Result<(Box<dyn Datastore + Send>, String)> {
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
            let config = etcd_config(args)?;
            for w in config.warnings() {
                tracing::warn!("etcd: {w}");
            }
            Box::new(EtcdDatastore::with_config(config).context("the etcdv3 datastore")?)
        }
        "kubernetes" => {
            let namespace = env("NAMESPACE").unwrap_or_else(|| "kube-system".into());
            Box::new(KubeDatastore::infer(&namespace).context("the kubernetes datastore")?)
        }
        other => bail!("unknown datastore type {other:?} (expected kubernetes, etcdv3 or file)"),
    };
    Ok((datastore, kind))
}

/// Parses a DesiredConfig file: JSON when it starts with `{`, else YAML.
pub fn parse_config(text: &str) -> anyhow::Result<DesiredConfig> {
    if text.trim_start().starts_with('{') {
        Ok(serde_json::from_str(text)?)
    } else {
        Ok(serde_saphyr::from_str(text)?)
    }
}

/// This node's configuration from a snapshot; invalid resources are an error (the running
/// configuration stays rather than losing the peers they describe).
fn config_from_snapshot(snapshot: &Snapshot, env: &NodeEnv) -> anyhow::Result<DesiredConfig> {
    if !snapshot.problems.is_empty() {
        let list: Vec<String> = snapshot.problems.iter().map(|p| format!("  {p}")).collect();
        bail!("invalid resources in the datastore:\n{}", list.join("\n"));
    }
    Ok(compute(&snapshot.model, env)?)
}

/// Where configurations come from.
enum Source {
    File {
        path: PathBuf,
        interval: Duration,
    },
    Calico {
        datastore: Box<dyn Datastore + Send>,
        kind: String,
        env: NodeEnv,
        snapshot: Option<Box<Snapshot>>,
    },
}

/// A new configuration for the speaker, or the answer to a reload that found nothing to do.
struct Update {
    config: anyhow::Result<DesiredConfig>,
    /// Set when a reload request (the control socket's `configure`) asked for it.
    reply: Option<oneshot::Sender<anyhow::Result<ApplySummary>>>,
}

/// Asks the watcher to read the source again now (BIRD's `configure`).
pub type ReloadRequest = oneshot::Sender<anyhow::Result<ApplySummary>>;

fn source(args: &DaemonArgs) -> anyhow::Result<Source> {
    if let Some(path) = &args.config {
        return Ok(Source::File {
            path: path.clone(),
            interval: Duration::from_millis(args.poll_interval.max(50)),
        });
    }
    let node_name = args
        .node_name
        .clone()
        .or_else(|| env("NODENAME"))
        .context("no node name: set NODENAME or --node-name (or use --config FILE)")?;
    let (datastore, kind) = open_datastore(args)?;
    Ok(Source::Calico {
        datastore,
        kind,
        env: node_env_from_env(node_name),
        snapshot: None,
    })
}

impl Source {
    /// What `configure` says it reads.
    fn describe(&self) -> String {
        match self {
            Source::File { path, .. } => path.display().to_string(),
            Source::Calico { kind, .. } => format!("the {kind} datastore"),
        }
    }

    /// Reads the whole source now.
    fn read(&mut self) -> anyhow::Result<DesiredConfig> {
        match self {
            Source::File { path, .. } => {
                let text = std::fs::read_to_string(&*path)
                    .with_context(|| format!("reading {}", path.display()))?;
                parse_config(&text).with_context(|| format!("parsing {}", path.display()))
            }
            Source::Calico {
                datastore,
                kind,
                env,
                snapshot,
            } => {
                *snapshot = None;
                let s = datastore
                    .snapshot()
                    .with_context(|| format!("reading the {kind} datastore"))?;
                env.local_workloads = controller::endpoint_status::read_dir(&endpoint_status_dir());
                let c = config_from_snapshot(&s, env);
                *snapshot = Some(Box::new(s));
                c
            }
        }
    }
}

/// Back-off between attempts to reach a lost datastore.
const BACKOFF_MIN: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// How long one `next_change` waits before the endpoint-status folder and reload requests
/// are looked at again.
const WATCH_SLICE: Duration = Duration::from_millis(500);

/// Who else wants to know about the datastore: the metrics endpoint (health) and the
/// CalicoNodeStatus reporter (the status requests in each snapshot).
#[derive(Default)]
struct Observers {
    gauges: Option<DatastoreGauges>,
    statuses: Option<watch::Sender<BTreeMap<String, CalicoNodeStatus>>>,
}

impl Observers {
    /// After a datastore read: whether it answered, and the snapshot it gave.
    fn saw(&self, snapshot: Option<&Snapshot>, answered: bool) {
        if let Some(g) = &self.gauges {
            g.set_synced(answered);
            if snapshot.is_some() {
                g.set_last_sync(SystemTime::now());
            }
        }
        if let (Some(tx), Some(s)) = (&self.statuses, snapshot) {
            tx.send_if_modified(|v| {
                if *v == s.model.node_statuses {
                    false
                } else {
                    *v = s.model.node_statuses.clone();
                    true
                }
            });
        }
    }
}

/// Follows the source on its own thread (datastore clients block), sending every
/// configuration that differs from the last one sent.
struct Watcher {
    source: Source,
    /// The flags the datastore was opened with: a lost datastore is opened afresh (a new
    /// client) before each attempt, rather than trusting a client that lost its server.
    reopen: Option<DaemonArgs>,
    observers: Observers,
    last: Option<DesiredConfig>,
    last_error: Option<String>,
    tx: mpsc::Sender<Update>,
    reloads: std_mpsc::Receiver<ReloadRequest>,
}

impl Watcher {
    /// Sends `config` if it differs from the last one (always when answering a reload).
    /// Returns false once the daemon has gone.
    fn publish(
        &mut self,
        config: anyhow::Result<DesiredConfig>,
        reply: Option<ReloadRequest>,
    ) -> bool {
        match config {
            Ok(c) => {
                if self.last_error.take().is_some() {
                    tracing::info!("configuration source usable again");
                }
                if self.last.as_ref() == Some(&c) && reply.is_none() {
                    return true;
                }
                self.last = Some(c.clone());
                self.tx
                    .blocking_send(Update {
                        config: Ok(c),
                        reply,
                    })
                    .is_ok()
            }
            Err(e) => {
                let text = format!("{e:#}");
                if self.last_error.as_deref() != Some(text.as_str()) {
                    tracing::error!(error = %text, "configuration source unusable; keeping the running configuration, sessions and routes");
                    self.last_error = Some(text);
                }
                match reply {
                    Some(reply) => self
                        .tx
                        .blocking_send(Update {
                            config: Err(e),
                            reply: Some(reply),
                        })
                        .is_ok(),
                    None => true,
                }
            }
        }
    }

    fn run(self) {
        match &self.source {
            Source::File { .. } => self.run_file(),
            Source::Calico { .. } => self.run_calico(),
        }
    }

    fn run_file(mut self) {
        let Source::File { interval, .. } = &self.source else {
            return;
        };
        let interval = *interval;
        loop {
            let reply = match self.reloads.recv_timeout(interval) {
                Ok(r) => Some(r),
                Err(std_mpsc::RecvTimeoutError::Timeout) => None,
                Err(std_mpsc::RecvTimeoutError::Disconnected) => return,
            };
            let c = self.source.read();
            if !self.publish(c, reply) || self.tx.is_closed() {
                return;
            }
        }
    }

    fn run_calico(mut self) {
        // The first snapshot was taken before the daemon started (`Source::read`).
        let mut healthy = true;
        let mut backoff = BACKOFF_MIN;
        let mut pending: Option<ReloadRequest> = None;
        let status_dir = endpoint_status_dir();
        loop {
            if self.tx.is_closed() {
                return;
            }
            let reply = match pending.take() {
                Some(r) => Some(r),
                None => match self.reloads.try_recv() {
                    Ok(r) => Some(r),
                    Err(std_mpsc::TryRecvError::Empty) => None,
                    Err(std_mpsc::TryRecvError::Disconnected) => return,
                },
            };
            if !healthy || reply.is_some() {
                if !healthy {
                    self.reconnect();
                }
                let c = self.source.read();
                let reachable = self.snapshot_ok();
                self.observers.saw(self.current_snapshot(), reachable);
                if reachable {
                    if !healthy {
                        tracing::info!("datastore reachable again: resynchronised");
                    }
                    healthy = true;
                    backoff = BACKOFF_MIN;
                }
                if !self.publish(c, reply) {
                    return;
                }
                if !reachable {
                    healthy = false;
                    tracing::debug!(?backoff, "datastore still unreachable; waiting");
                    // Back off; a reload request ends the wait early.
                    match self.reloads.recv_timeout(backoff) {
                        Ok(r) => pending = Some(r),
                        Err(std_mpsc::RecvTimeoutError::Timeout) => {}
                        Err(std_mpsc::RecvTimeoutError::Disconnected) => return,
                    }
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                    continue;
                }
            }
            let Source::Calico {
                datastore,
                kind,
                env,
                snapshot,
            } = &mut self.source
            else {
                return;
            };
            let changed = match datastore.next_change(WATCH_SLICE) {
                Ok(Some(s)) => {
                    self.observers.saw(Some(&s), true);
                    *snapshot = Some(Box::new(s));
                    true
                }
                Ok(None) => false,
                Err(e) => {
                    self.observers.saw(None, false);
                    tracing::error!(error = %e, datastore = %kind, "datastore lost; keeping sessions and routes, retrying");
                    // The next pass takes a fresh snapshot (with back-off while it fails).
                    *snapshot = None;
                    healthy = false;
                    continue;
                }
            };
            let workloads = controller::endpoint_status::read_dir(&status_dir);
            let workloads_changed = workloads != env.local_workloads;
            if workloads_changed {
                env.local_workloads = workloads;
            }
            if changed || workloads_changed {
                let Some(s) = snapshot.as_ref() else { continue };
                let c = config_from_snapshot(s, env);
                if !self.publish(c, None) {
                    return;
                }
            }
        }
    }

    /// Replaces the datastore client with a new one (keeps the old one if that fails).
    fn reconnect(&mut self) {
        let Some(args) = &self.reopen else { return };
        let Source::Calico { datastore, .. } = &mut self.source else {
            return;
        };
        match open_datastore(args) {
            Ok((fresh, _)) => *datastore = fresh,
            Err(e) => tracing::debug!(error = %format!("{e:#}"), "datastore client not reopened"),
        }
    }

    fn current_snapshot(&self) -> Option<&Snapshot> {
        match &self.source {
            Source::Calico { snapshot, .. } => snapshot.as_deref(),
            Source::File { .. } => None,
        }
    }

    /// Whether the last read produced a snapshot (the datastore answered).
    fn snapshot_ok(&self) -> bool {
        match &self.source {
            Source::Calico { snapshot, .. } => snapshot.is_some(),
            Source::File { .. } => true,
        }
    }
}

/// The running daemon as other parts of the process see it (control socket, metrics).
#[derive(Clone, Debug)]
pub struct DaemonHandle {
    reloads: std_mpsc::Sender<ReloadRequest>,
    stop: mpsc::Sender<String>,
}

impl DaemonHandle {
    /// Reads the configuration source again now and applies it (BIRD's `configure`).
    pub async fn reload(&self) -> anyhow::Result<ApplySummary> {
        let (tx, rx) = oneshot::channel();
        self.reloads
            .send(tx)
            .map_err(|_| anyhow::anyhow!("the configuration watcher has stopped"))?;
        rx.await
            .map_err(|_| anyhow::anyhow!("the daemon is stopping"))?
    }

    /// Stops the daemon (BIRD's `down`): every session gets Cease / Administrative Shutdown.
    pub async fn stop(&self, message: &str) {
        let _ = self.stop.send(message.to_string()).await;
    }
}

/// Where CalicoNodeStatus reports go: the store of the datastore the node reads.
async fn status_store(args: &DaemonArgs) -> anyhow::Result<StatusStore> {
    let kind = args
        .datastore
        .clone()
        .or_else(|| env("DATASTORE_TYPE"))
        .unwrap_or_else(|| "kubernetes".into());
    Ok(match kind.as_str() {
        "file" => {
            let dir = args
                .config_dir
                .clone()
                .or_else(|| env("TERN_CONFIG_DIR").map(PathBuf::from))
                .context("the file datastore needs --config-dir DIR")?;
            StatusStore::File(FileStatusStore::new(dir))
        }
        "etcdv3" => StatusStore::Etcd(Box::new(
            EtcdStatusStore::connect_with(&etcd_config(args)?).await?,
        )),
        _ => StatusStore::Kubernetes(KubeStatusStore::infer().await?),
    })
}

/// Serves the BIRD-compatible control sockets: `configure` re-reads the source and applies
/// it, `down` stops the daemon.
fn start_control(
    speaker: &Arc<Speaker>,
    handle: &DaemonHandle,
    described: String,
    v4: PathBuf,
    v6: PathBuf,
) -> anyhow::Result<(ControlServer, ControlServer, Arc<Backend>)> {
    let reload = handle.clone();
    let down = handle.clone();
    let backend = Arc::new(
        Backend::new(speaker.clone())
            .on_configure(move || {
                let reload = reload.clone();
                let described = described.clone();
                async move {
                    reload
                        .reload()
                        .await
                        .map(|_| described)
                        .map_err(|e| format!("{e:#}"))
                }
            })
            .on_down(move || {
                let down = down.clone();
                async move { down.stop("shutdown ordered").await }
            }),
    );
    let open = |path: PathBuf, family| {
        ControlServer::bind(ControlOptions::new(path.clone(), family), backend.clone())
            .with_context(|| format!("control socket {}", path.display()))
    };
    let s4 = open(v4, FamilyView::V4)?;
    let s6 = open(v6, FamilyView::V6)?;
    Ok((s4, s6, backend))
}

fn log_summary(s: &ApplySummary) {
    tracing::info!(
        added = ?s.added, removed = ?s.removed, reset = ?s.reset,
        reconfigured = ?s.reconfigured, policies = s.policies_changed,
        full_restart = s.full_restart, "configuration applied"
    );
    for e in &s.errors {
        tracing::error!(error = %e, "peer not configured");
    }
}

fn run(role: Role, args: DaemonArgs) -> anyhow::Result<()> {
    let mut src = source(&args)?;
    if args.print_config {
        let c = src.read()?;
        println!("{}", serde_json::to_string_pretty(&c)?);
        return Ok(());
    }
    // The first configuration must be valid: fail fast on a typo or an unreachable datastore.
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
        let speaker = Arc::new(Speaker::new(SpeakerOptions {
            fib,
            ..SpeakerOptions::default()
        }));
        // No event subscription here: the speaker logs session changes and refused kernel
        // routes itself, and a subscriber makes every kernel route cost a broadcast and a
        // wake-up of another task.
        let mut log_level = None;
        follow_log_level(&first, &mut log_level);
        let summary = speaker.apply(first).await?;
        tracing::info!(
            peers = summary.added.len(),
            fib,
            role = role.name(),
            "started with {} peer(s)",
            summary.added.len()
        );
        for e in &summary.errors {
            tracing::error!(error = %e, "peer not configured");
        }
        let (tx, mut rx) = mpsc::channel::<Update>(4);
        let (reload_tx, reload_rx) = std_mpsc::channel();
        let (stop_tx, mut stop_rx) = mpsc::channel::<String>(1);
        let described = src.describe();
        let mut observers = Observers::default();
        let metrics = match args.metrics_addr {
            Some(addr) => {
                let gauges = DatastoreGauges::new();
                // The first snapshot was read before the speaker started.
                gauges.set_synced(true);
                gauges.set_last_sync(SystemTime::now());
                observers.gauges = Some(gauges.clone());
                let m = tern_ops::metrics::serve(addr, speaker.clone(), gauges)
                    .await
                    .with_context(|| format!("metrics endpoint {addr}"))?;
                tracing::info!(addr = %m.local_addr(), "metrics at /metrics");
                Some(m)
            }
            None => None,
        };
        let reporter = match &src {
            Source::Calico { env, snapshot, .. } => match status_store(&args).await {
                Ok(store) => {
                    let first = snapshot
                        .as_ref()
                        .map(|s| s.model.node_statuses.clone())
                        .unwrap_or_default();
                    let (tx, rx) = watch::channel(first);
                    observers.statuses = Some(tx);
                    Some(tokio::spawn(tern_ops::node_status::run(
                        store,
                        env.node_name.clone(),
                        speaker.clone(),
                        rx,
                    )))
                }
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "no CalicoNodeStatus reporting");
                    None
                }
            },
            Source::File { .. } => None,
        };
        let watcher = Watcher {
            observers,
            reopen: Some(args.clone()),
            source: src,
            last: speaker.config().await?,
            last_error: None,
            tx,
            reloads: reload_rx,
        };
        std::thread::Builder::new()
            .name("config-watch".into())
            .spawn(move || watcher.run())?;
        let handle = DaemonHandle {
            reloads: reload_tx,
            stop: stop_tx,
        };
        let control = match control_socket_paths(&args) {
            Some((v4, v6)) => Some(start_control(&speaker, &handle, described, v4, v6)?),
            None => None,
        };
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        // SIGHUP (`sv hup bird`, what confd sends BIRD): read the source again, like `configure`.
        let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
        let started = Instant::now();
        let message = loop {
            tokio::select! {
                u = rx.recv() => match u {
                    Some(Update { config, reply }) => {
                        let result = match config {
                            Ok(c) => {
                                follow_log_level(&c, &mut log_level);
                                speaker.apply(c).await.map_err(anyhow::Error::from)
                            }
                            Err(e) => Err(e),
                        };
                        match &result {
                            Ok(s) => log_summary(s),
                            Err(e) => tracing::error!(error = %format!("{e:#}"), "configuration not applied"),
                        }
                        if let Some(reply) = reply {
                            let _ = reply.send(result);
                        }
                    }
                    None => break "configuration watcher stopped".to_string(),
                },
                m = stop_rx.recv() => break m.unwrap_or_else(|| "stopped".into()),
                _ = hup.recv() => {
                    let handle = handle.clone();
                    tokio::spawn(async move {
                        match handle.reload().await {
                            Ok(_) => tracing::info!("SIGHUP: configuration re-read"),
                            Err(e) => tracing::error!(error = %format!("{e:#}"), "SIGHUP: configuration not applied"),
                        }
                    });
                }
                _ = term.recv() => break "tern shutting down".to_string(),
                _ = tokio::signal::ctrl_c() => break "tern shutting down".to_string(),
            }
        };
        tracing::info!(after = ?started.elapsed(), %message, "shutting down");
        // Everything holding the speaker first (sockets, metrics, the status reporter),
        // then the speaker.
        if let Some((v4, v6, backend)) = control {
            v4.shutdown().await;
            v6.shutdown().await;
            drop(backend);
        }
        if let Some(m) = metrics {
            MetricsServer::shutdown(m).await;
        }
        if let Some(r) = reporter {
            r.abort();
            let _ = r.await;
        }
        match Arc::try_unwrap(speaker) {
            Ok(s) => s.shutdown(&message).await?,
            Err(_) => tracing::warn!("speaker still shared at shutdown; dropping it"),
        }
        Ok::<(), anyhow::Error>(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_levels_as_calico_and_bird_spell_them() {
        assert_eq!(log_directive("Debug"), Some("debug"));
        assert_eq!(log_directive("info"), Some("info"));
        assert_eq!(log_directive("Warning"), Some("warn"));
        assert_eq!(log_directive("error"), Some("error"));
        assert_eq!(log_directive("Fatal"), Some("error"));
        assert_eq!(log_directive("none"), Some("error"));
        assert_eq!(log_directive("trace"), Some("trace"));
        assert_eq!(log_directive("loud"), None);
    }

    #[test]
    fn control_sockets_default_to_calicos_and_pair_up() {
        let paths = |v4: Option<&str>, v6: Option<&str>| {
            control_socket_paths(&DaemonArgs {
                control_socket: v4.map(PathBuf::from),
                control_socket_v6: v6.map(PathBuf::from),
                ..DaemonArgs::default()
            })
        };
        assert_eq!(
            paths(None, None),
            Some((
                PathBuf::from("/var/run/calico/bird.ctl"),
                PathBuf::from("/var/run/calico/bird6.ctl")
            ))
        );
        assert_eq!(
            paths(Some("/tmp/x/tern.sock"), None).map(|p| p.1),
            Some(PathBuf::from("/tmp/x/tern6.sock"))
        );
        assert_eq!(
            paths(Some("/tmp/a"), Some("/tmp/b")).map(|p| p.1),
            Some(PathBuf::from("/tmp/b"))
        );
        assert_eq!(paths(Some(""), None), None);
    }

    /// A datastore that answers from a script, then reports no change.
    struct Scripted(std::collections::VecDeque<Option<Snapshot>>);

    impl Scripted {
        fn next(&mut self) -> Result<Option<Snapshot>, controller::datastore::DatastoreError> {
            match self.0.pop_front() {
                Some(Some(s)) => Ok(Some(s)),
                Some(None) => Err(controller::datastore::DatastoreError::Remote {
                    what: "scripted".into(),
                    message: "connection refused".into(),
                }),
                None => Ok(None),
            }
        }
    }

    impl Datastore for Scripted {
        fn snapshot(&mut self) -> Result<Snapshot, controller::datastore::DatastoreError> {
            self.next()?
                .ok_or(controller::datastore::DatastoreError::Remote {
                    what: "scripted".into(),
                    message: "script ended".into(),
                })
        }
        fn next_change(
            &mut self,
            timeout: Duration,
        ) -> Result<Option<Snapshot>, controller::datastore::DatastoreError> {
            if self.0.is_empty() {
                std::thread::sleep(timeout);
            }
            self.next()
        }
    }

    /// Nodes n1 (10.0.0.1) and, when `two`, n2 (10.0.0.2), in a full mesh.
    fn snapshot(two: bool) -> Snapshot {
        let mut docs = vec![serde_json::json!({
            "apiVersion": "projectcalico.org/v3", "kind": "Node", "metadata": {"name": "n1"},
            "spec": {"bgp": {"ipv4Address": "10.0.0.1/24"}}})];
        if two {
            docs.push(serde_json::json!({
                "apiVersion": "projectcalico.org/v3", "kind": "Node", "metadata": {"name": "n2"},
                "spec": {"bgp": {"ipv4Address": "10.0.0.2/24"}}}));
        }
        let (model, problems) =
            controller::Model::from_documents(docs.into_iter().map(|d| ("test".to_string(), d)));
        assert!(problems.is_empty(), "{problems:?}");
        Snapshot {
            model,
            problems,
            revision: 1,
        }
    }

    /// The watch fails, the datastore stays unreachable for one more attempt, then answers
    /// with a changed cluster: nothing is sent while it is gone, the resynchronised
    /// configuration is the first thing sent, once it is back.
    #[test]
    fn a_lost_datastore_is_retried_and_resynchronised() {
        let env = NodeEnv {
            node_name: "n1".into(),
            ..NodeEnv::default()
        };
        let first = snapshot(false);
        let running = config_from_snapshot(&first, &env).ok();
        assert!(running.as_ref().is_some_and(|c| c.peers.is_empty()));
        let script = Scripted([None, None, Some(snapshot(true))].into_iter().collect());
        let (tx, mut rx) = mpsc::channel(4);
        let (_reload_tx, reloads) = std_mpsc::channel();
        let gauges = DatastoreGauges::new();
        let watcher = Watcher {
            source: Source::Calico {
                datastore: Box::new(script),
                kind: "scripted".into(),
                env,
                snapshot: Some(Box::new(first)),
            },
            reopen: None,
            observers: Observers {
                gauges: Some(gauges.clone()),
                statuses: None,
            },
            last: running,
            last_error: None,
            tx,
            reloads,
        };
        let thread = std::thread::spawn(move || watcher.run());
        let update = rx.blocking_recv().map(|u| u.config.ok());
        let peers: Vec<String> = update
            .flatten()
            .map(|c| c.peers.into_iter().map(|p| p.name).collect())
            .unwrap_or_default();
        assert_eq!(peers, ["Mesh_10_0_0_2"]);
        drop(rx);
        let _ = thread.join();
    }

    #[test]
    fn configuration_log_levels_map_to_tracing() {
        assert_eq!(config_log_directive(LogLevel::None), "warn");
        assert_eq!(config_log_directive(LogLevel::States), "info");
        assert_eq!(config_log_directive(LogLevel::All), "debug");
    }

    /// TLS settings that cannot work are refused before anything connects, naming the
    /// variable and the file, never a file's contents.
    #[test]
    fn etcd_tls_settings_are_checked_clearly() {
        let dir = std::env::temp_dir().join(format!("ternd-tls-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let not_pem = dir.join("ca.pem");
        let _ = std::fs::write(&not_pem, "secret-looking text");
        let open = |config: EtcdConfig| {
            EtcdDatastore::with_config(config)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        let https = vec!["https://127.0.0.1:2379".to_string()];
        let e = open(EtcdConfig {
            endpoints: https.clone(),
            ca_cert_file: Some(dir.join("missing.pem")),
            ..EtcdConfig::default()
        });
        assert!(
            e.contains("ETCD_CA_CERT_FILE") && e.contains("missing.pem"),
            "{e}"
        );
        let e = open(EtcdConfig {
            endpoints: https.clone(),
            ca_cert_file: Some(not_pem.clone()),
            ..EtcdConfig::default()
        });
        assert!(
            e.contains("no PEM CERTIFICATE") && !e.contains("secret"),
            "{e}"
        );
        let e = open(EtcdConfig {
            endpoints: https.clone(),
            cert_file: Some(not_pem.clone()),
            ..EtcdConfig::default()
        });
        assert!(e.contains("together"), "{e}");
        let e = open(EtcdConfig {
            endpoints: vec![https[0].clone(), "http://127.0.0.1:2380".into()],
            ..EtcdConfig::default()
        });
        assert!(e.contains("https://"), "{e}");
        let config = EtcdConfig {
            endpoints: vec!["http://127.0.0.1:2379".into()],
            ca_cert_file: Some(not_pem),
            username: Some("u".into()),
            password: Some("hunter2".into()),
            ..EtcdConfig::default()
        };
        assert!(!format!("{config:?}").contains("hunter2"));
        assert_eq!(config.warnings().len(), 1, "{:?}", config.warnings());
        assert!(EtcdDatastore::with_config(config).is_ok());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn config_files_parse_as_json_or_yaml() {
        let json = r#"{
  "router_id": "10.0.0.1", "asn": 64512,
  "listen": { "address": "10.0.0.1", "port": 179 },
  "peers": [], "policies": {}, "blackholes": ["10.65.0.0/26"],
  "kernel": { "export": "all", "learn": false, "persist": true, "scan_time": 10,
              "graceful_restart": false, "merge_paths": true, "route_protocol": 12,
              "normal_route_priority": { "ipv4": 1024, "ipv6": 1024 } }
}"#;
        // A comment first makes it YAML (JSON is YAML's flow style).
        let yaml = format!("# a DesiredConfig\n{json}");
        match (parse_config(json), parse_config(&yaml)) {
            (Ok(a), Ok(b)) => {
                assert_eq!(a, b);
                assert_eq!(a.asn, 64512);
            }
            (a, b) => panic!("{:?} {:?}", a.err(), b.err()),
        }
        assert!(parse_config("{ not json").is_err());
    }
}
