//! The control socket server: one task accepts, one task per client.
//!
//! A client never holds anything another client or the speaker waits for: replies are
//! written with a timeout (a client that stops reading is dropped), at most
//! [`OUTPUT_CHUNK`] bytes of formatted text wait in memory before they are written, a line
//! longer than [`MAX_LINE`] or one that is not text closes that client, and the number of
//! clients is capped.

use std::future::Future;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde_json::{Value, json};
use tern_speaker::{Event, PeerAdmin, Speaker};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::OwnedWriteHalf;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{Semaphore, broadcast, watch};
use tokio::task::{JoinHandle, JoinSet};

use crate::command::{self, AdminOp, Command, CommandLine, MAX_LINE, RouteQuery, Target};
use crate::format;
use crate::iface::{self, Resolver};
use crate::reply::{ReplyWriter, code};
use crate::view::{self, FamilyView, ProtocolInputs, RouteInputs, StatusView};

/// Formatted output is written to the client whenever this much has accumulated.
pub const OUTPUT_CHUNK: usize = 64 * 1024;

/// The version Tern reports (`show status`, the welcome line). calico-node takes the text
/// after `BIRD ` as the version and expects it to begin with `v`.
pub const VERSION: &str = concat!("v", env!("CARGO_PKG_VERSION"), "+tern");

/// Errors of the control socket.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// Another process answers on the socket path.
    #[error("{0}: another daemon is answering on this control socket")]
    InUse(PathBuf),
    /// Something other than a socket is at the path; it is left alone.
    #[error("{0}: exists and is not a socket")]
    NotASocket(PathBuf),
    /// Socket I/O.
    #[error("{path}: {source}")]
    Io {
        /// Socket path.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// The connection closed before the reply ended.
    #[error("the control socket closed the connection")]
    Closed,
    /// The server sent something that is not a BIRD reply line.
    #[error("malformed reply line: {0:?}")]
    Malformed(String),
    /// No reply in time.
    #[error("timed out waiting for the control socket")]
    Timeout,
}

/// Where and how to serve.
#[derive(Clone, Debug)]
pub struct ControlOptions {
    /// Socket path (`/var/run/calico/bird.ctl`, `/var/run/calico/bird6.ctl`).
    pub path: PathBuf,
    /// Which family this socket shows.
    pub family: FamilyView,
    /// File mode of the socket (BIRD's is 0660).
    pub mode: u32,
    /// Group to give the socket, when set (owner stays the process's user).
    pub group: Option<u32>,
    /// Clients served at once; more are told so and closed.
    pub max_clients: usize,
    /// A reply not accepted by the client within this time closes that client.
    pub write_timeout: Duration,
}

impl ControlOptions {
    /// Defaults: mode 0660, 256 clients, 10 s write timeout.
    pub fn new(path: impl Into<PathBuf>, family: FamilyView) -> ControlOptions {
        ControlOptions {
            path: path.into(),
            family,
            mode: 0o660,
            group: None,
            max_clients: 256,
            write_timeout: Duration::from_secs(10),
        }
    }
}

/// An async callback provided by the daemon.
pub type Hook<T> = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = T> + Send>> + Send + Sync>;

/// What the server answers from: the speaker and the daemon's hooks.
pub struct Backend {
    speaker: Arc<Speaker>,
    version: String,
    configure: Option<Hook<Result<String, String>>>,
    down: Option<Hook<()>>,
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backend")
            .field("version", &self.version)
            .field("configure", &self.configure.is_some())
            .field("down", &self.down.is_some())
            .finish()
    }
}

impl Backend {
    /// Answers from `speaker`, version [`VERSION`], no hooks (`configure` and `down` are
    /// then refused with `8007`).
    pub fn new(speaker: Arc<Speaker>) -> Backend {
        Backend {
            speaker,
            version: VERSION.to_string(),
            configure: None,
            down: None,
        }
    }

    /// Reports this version text (must begin with `v` for calico-node).
    pub fn with_version(mut self, version: impl Into<String>) -> Backend {
        self.version = version.into();
        self
    }

    /// `configure`: re-read the configuration source and apply it. `Ok(source)` answers
    /// `0002-Reading configuration from <source>` and `0003 Reconfigured`; `Err(text)`
    /// answers `8002 <text>`.
    pub fn on_configure<F, Fut>(mut self, f: F) -> Backend
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<String, String>> + Send + 'static,
    {
        self.configure = Some(Arc::new(move || Box::pin(f())));
        self
    }

    /// `down`: shut the daemon down. Called after `0007 Shutdown ordered` was written.
    pub fn on_down<F, Fut>(mut self, f: F) -> Backend
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.down = Some(Arc::new(move || Box::pin(f())));
        self
    }

    /// The speaker.
    pub fn speaker(&self) -> &Arc<Speaker> {
        &self.speaker
    }
}

/// A serving control socket. [`shutdown`](Self::shutdown) (or dropping it) stops the
/// server, closes every client and removes the socket file.
#[derive(Debug)]
pub struct ControlServer {
    path: PathBuf,
    identity: Option<(u64, u64)>,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl ControlServer {
    /// Binds the socket and starts serving on the current tokio runtime.
    ///
    /// A socket file left by a previous run is replaced when nobody answers on it; a live
    /// socket ([`ControlError::InUse`]) or a non-socket file ([`ControlError::NotASocket`])
    /// at the path is left alone.
    pub fn bind(
        options: ControlOptions,
        backend: Arc<Backend>,
    ) -> Result<ControlServer, ControlError> {
        let path = options.path.clone();
        let io_err = |source| ControlError::Io {
            path: path.clone(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io_err)?;
        }
        remove_stale(&path)?;
        let listener = UnixListener::bind(&path).map_err(io_err)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(options.mode))
            .map_err(io_err)?;
        if let Some(gid) = options.group {
            std::os::unix::fs::chown(&path, None, Some(gid)).map_err(io_err)?;
        }
        let identity = std::fs::metadata(&path).ok().map(|m| (m.dev(), m.ino()));
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(accept_loop(listener, Arc::new(options), backend, stopped));
        tracing::info!(path = %path.display(), "control socket listening");
        Ok(ControlServer {
            path,
            identity,
            stop,
            task: Some(task),
        })
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stops accepting, closes every client (dropping their references to the
    /// [`Backend`]), and removes the socket file.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        self.remove_file();
    }

    fn remove_file(&mut self) {
        // Only our own socket: another daemon may have replaced it since.
        let current = std::fs::metadata(&self.path)
            .ok()
            .map(|m| (m.dev(), m.ino()));
        if current.is_some() && current == self.identity {
            let _ = std::fs::remove_file(&self.path);
        }
        self.identity = None;
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            task.abort();
        }
        self.remove_file();
    }
}

/// Removes a socket file nobody answers on; refuses a live socket or a non-socket.
fn remove_stale(path: &Path) -> Result<(), ControlError> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(ControlError::Io {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    if !meta.file_type().is_socket() {
        return Err(ControlError::NotASocket(path.to_path_buf()));
    }
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(_) => Err(ControlError::InUse(path.to_path_buf())),
        Err(_) => {
            tracing::info!(path = %path.display(), "replacing a stale control socket");
            std::fs::remove_file(path).map_err(|source| ControlError::Io {
                path: path.to_path_buf(),
                source,
            })
        }
    }
}

async fn accept_loop(
    listener: UnixListener,
    options: Arc<ControlOptions>,
    backend: Arc<Backend>,
    mut stopped: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(options.max_clients.max(1)));
    let mut clients = JoinSet::new();
    loop {
        tokio::select! {
            _ = stopped.changed() => break,
            Some(_) = clients.join_next(), if !clients.is_empty() => {}
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((s, _)) => s,
                    Err(e) => {
                        // EMFILE and friends: back off instead of spinning.
                        tracing::warn!(error = %e, "control socket accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                match slots.clone().try_acquire_owned() {
                    Ok(permit) => {
                        let backend = backend.clone();
                        let options = options.clone();
                        clients.spawn(async move {
                            let _permit = permit;
                            Client::serve(stream, backend, options).await;
                        });
                    }
                    Err(_) => {
                        clients.spawn(async move {
                            let mut stream = stream;
                            let _ = tokio::time::timeout(
                                Duration::from_secs(1),
                                stream.write_all(b"8007 Too many clients\n"),
                            )
                            .await;
                        });
                    }
                }
            }
        }
    }
    clients.shutdown().await;
}

/// What to do after a command.
enum Flow {
    Continue,
    Close,
}

struct Client {
    backend: Arc<Backend>,
    options: Arc<ControlOptions>,
    out: OwnedWriteHalf,
    w: ReplyWriter,
}

impl Client {
    async fn serve(stream: UnixStream, backend: Arc<Backend>, options: Arc<ControlOptions>) {
        let (rd, out) = stream.into_split();
        let mut client = Client {
            backend,
            options,
            out,
            w: ReplyWriter::new(),
        };
        // Calico's clients write their command before reading the welcome: the kernel
        // buffers it, and it is read after the welcome is written.
        format::welcome(&mut client.w, &client.backend.version);
        if client.flush().await.is_err() {
            return;
        }
        let mut reader = BufReader::new(rd);
        let mut line = Vec::with_capacity(256);
        loop {
            line.clear();
            let n = match (&mut reader)
                .take(MAX_LINE as u64 + 1)
                .read_until(b'\n', &mut line)
                .await
            {
                Ok(n) => n,
                Err(_) => return,
            };
            if n == 0 {
                return;
            }
            if line.last() != Some(&b'\n') {
                if line.len() > MAX_LINE {
                    client.w.last(code::TOO_LONG, "Command too long");
                    let _ = client.flush().await;
                }
                // Over-long, or the client closed mid-line.
                return;
            }
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            let Some(text) = std::str::from_utf8(&line)
                .ok()
                .filter(|t| !t.chars().any(|c| c.is_control() && c != '\t'))
            else {
                // Not a command line at all: answer like BIRD, then close only this client.
                client.w.last(code::PARSE, "syntax error");
                let _ = client.flush().await;
                return;
            };
            let flow = match command::parse(text) {
                Ok(cmd) if cmd.command == Command::Watch => {
                    client.watch(reader).await;
                    return;
                }
                Ok(cmd) => client.execute(cmd).await,
                Err(e) => {
                    client.w.last(code::PARSE, &e.to_string());
                    Ok(Flow::Continue)
                }
            };
            match flow {
                Ok(Flow::Continue) => {}
                Ok(Flow::Close) | Err(_) => {
                    let _ = client.flush().await;
                    return;
                }
            }
            if client.flush().await.is_err() {
                return;
            }
        }
    }

    /// Writes what is buffered; a client that does not take it in time is dropped.
    async fn flush(&mut self) -> io::Result<()> {
        if self.w.is_empty() {
            return Ok(());
        }
        let text = self.w.take();
        match tokio::time::timeout(
            self.options.write_timeout,
            self.out.write_all(text.as_bytes()),
        )
        .await
        {
            Ok(r) => r,
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "client not reading",
            )),
        }
    }

    async fn flush_if_full(&mut self) -> io::Result<()> {
        if self.w.len() >= OUTPUT_CHUNK {
            self.flush().await?;
        }
        Ok(())
    }

    fn speaker_error(&mut self, e: tern_speaker::Error) -> io::Result<Flow> {
        self.w.last(code::DENIED, &format!("Speaker: {e}"));
        Ok(Flow::Continue)
    }

    fn json(&mut self, value: &Value) {
        self.w.last(code::JSON, &value.to_string());
    }

    async fn execute(&mut self, line: CommandLine) -> io::Result<Flow> {
        let json = line.json;
        let speaker = self.backend.speaker.clone();
        let now = SystemTime::now();
        let family = self.options.family;
        match line.command {
            Command::ShowStatus => {
                let s = match speaker.status().await {
                    Ok(s) => s,
                    Err(e) => return self.speaker_error(e),
                };
                let v = StatusView::new(&self.backend.version, &s, now);
                if json {
                    self.json(&json!({ "status": v }));
                } else {
                    format::status(&mut self.w, &v);
                }
            }
            Command::ShowProtocols { all, target } => {
                let Some(list) = self.protocol_views(json || all).await else {
                    return Ok(Flow::Continue);
                };
                let shown: Vec<_> = list
                    .into_iter()
                    .filter(|p| target.as_ref().is_none_or(|t| t.matches(&p.name)))
                    .collect();
                if shown.is_empty() {
                    self.no_match(target.as_ref());
                } else if json {
                    self.json(&json!({ "protocols": shown }));
                } else {
                    format::protocols_heading(&mut self.w);
                    for p in &shown {
                        format::protocol(&mut self.w, p, all, now);
                        self.flush_if_full().await?;
                    }
                    self.w.ok();
                }
            }
            Command::ShowPeer(name) => {
                let Some(list) = self.protocol_views(true).await else {
                    return Ok(Flow::Continue);
                };
                match list.into_iter().find(|p| p.name == name && p.bgp.is_some()) {
                    None => self.no_match(Some(&Target::Name(name))),
                    Some(p) if json => self.json(&json!({ "peer": p })),
                    Some(p) => {
                        format::peer(&mut self.w, &p, now);
                        self.w.ok();
                    }
                }
            }
            Command::ShowRoute(q) => return self.show_route(q, json, now).await,
            Command::ShowInterfaces { summary } => {
                let list = iface::list();
                if json {
                    let list: Vec<_> = list
                        .into_iter()
                        .map(|mut i| {
                            i.addresses.retain(|a| family.has(a.addr()));
                            i
                        })
                        .collect();
                    self.json(&json!({ "interfaces": list }));
                } else {
                    format::interfaces(&mut self.w, &list, family, summary);
                }
            }
            Command::ShowMemory => {
                let s = match speaker.status().await {
                    Ok(s) => s,
                    Err(e) => return self.speaker_error(e),
                };
                let v = StatusView::new(&self.backend.version, &s, now);
                let resident = format::resident_bytes();
                if json {
                    self.json(&json!({ "memory": {
                        "resident_bytes": resident,
                        "rib_destinations": v.rib_destinations,
                        "rib_paths": v.rib_paths,
                        "rib_attribute_sets": v.rib_attribute_sets,
                    }}));
                } else {
                    format::memory(&mut self.w, &v, resident);
                }
            }
            Command::ShowConfig => match speaker.config().await {
                Err(e) => return self.speaker_error(e),
                Ok(None) => self.w.last(code::CONFIG_ERROR, "No configuration applied"),
                Ok(Some(cfg)) => {
                    let value = serde_json::to_value(&cfg).unwrap_or(Value::Null);
                    if json {
                        self.json(&json!({ "config": value }));
                    } else {
                        let text = serde_json::to_string_pretty(&value).unwrap_or_default();
                        for l in text.lines() {
                            self.w.more(code::DOCUMENT, l);
                            self.flush_if_full().await?;
                        }
                        self.w.ok();
                    }
                }
            },
            Command::Configure => match self.backend.configure.clone() {
                None => self.w.last(
                    code::DENIED,
                    "Reconfiguration is not available in this process",
                ),
                Some(hook) => match hook().await {
                    Ok(source) => {
                        if json {
                            self.json(&json!({ "reconfigured": true, "source": source }));
                        } else {
                            self.w.more(
                                code::READING_CONFIG,
                                &format!("Reading configuration from {source}"),
                            );
                            self.w.last(code::RECONFIGURED, "Reconfigured");
                        }
                    }
                    Err(e) => self.w.last(code::CONFIG_ERROR, &e),
                },
            },
            Command::Down => match self.backend.down.clone() {
                None => self
                    .w
                    .last(code::DENIED, "Shutdown is not available in this process"),
                Some(hook) => {
                    self.w.last(code::SHUTDOWN, "Shutdown ordered");
                    let _ = self.flush().await;
                    tokio::spawn(hook());
                    return Ok(Flow::Close);
                }
            },
            Command::Admin(op, target) => return self.admin(op, target, json).await,
            Command::Watch => {}
        }
        Ok(Flow::Continue)
    }

    fn no_match(&mut self, target: Option<&Target>) {
        match target {
            Some(Target::Name(n)) => self
                .w
                .last(code::BAD_SYMBOL, &format!("{n} is not a protocol")),
            _ => self.w.last(code::NO_PROTOCOLS, "No protocols match"),
        }
    }

    /// Every protocol of this socket's family; `with_routes` fetches the best paths for
    /// the route counts. `None` after writing the speaker's error.
    async fn protocol_views(&mut self, with_routes: bool) -> Option<Vec<view::ProtocolView>> {
        let speaker = self.backend.speaker.clone();
        let fetched = async {
            let status = speaker.status().await?;
            let peers = speaker.peers().await?;
            let config = speaker.config().await?;
            let routes = if with_routes {
                speaker.routes().await?
            } else {
                Vec::new()
            };
            Ok::<_, tern_speaker::Error>((status, peers, config, routes))
        }
        .await;
        match fetched {
            Ok((status, peers, config, routes)) => Some(view::protocols(&ProtocolInputs {
                status: &status,
                peers: &peers,
                config: config.as_ref(),
                routes: &routes,
                family: self.options.family,
            })),
            Err(e) => {
                let _ = self.speaker_error(e);
                None
            }
        }
    }

    async fn show_route(&mut self, q: RouteQuery, json: bool, now: SystemTime) -> io::Result<Flow> {
        let speaker = self.backend.speaker.clone();
        let family = self.options.family;
        let fetched = async {
            Ok::<_, tern_speaker::Error>((
                speaker.status().await?,
                speaker.peers().await?,
                speaker.all_routes().await?,
            ))
        }
        .await;
        let (status, peers, mut routes) = match fetched {
            Ok(x) => x,
            Err(e) => return self.speaker_error(e),
        };
        routes.retain(|r| family.has(r.prefix.addr()));
        if let Some(name) = &q.protocol {
            let known = [
                view::names::STATIC,
                view::names::KERNEL,
                view::names::DEVICE,
                view::names::DIRECT,
            ]
            .contains(&name.as_str())
                || peers.iter().any(|p| p.name == *name);
            if !known {
                self.w
                    .last(code::PARSE, &format!("{name} is not a protocol"));
                return Ok(Flow::Continue);
            }
        }
        let wanted = match (q.prefix, q.for_addr) {
            (Some(p), _) => Some(p),
            (None, Some(target)) => match view::longest_match(&routes, &target) {
                Some(p) => Some(p),
                None => {
                    self.w.last(code::ROUTE_NOT_FOUND, "Network not in table");
                    return Ok(Flow::Continue);
                }
            },
            (None, None) => None,
        };
        if let Some(p) = wanted {
            routes.retain(|r| r.prefix == p);
            if routes.is_empty() {
                self.w.last(code::ROUTE_NOT_FOUND, "Network not in table");
                return Ok(Flow::Continue);
            }
        }
        // BIRD counts what it examined: with `primary`, one path per network.
        if q.primary {
            routes.retain(|r| r.best);
        }
        let total = routes.len();
        let mut networks = 0;
        let mut prev = None;
        for r in &routes {
            if prev != Some(r.prefix) {
                networks += 1;
                prev = Some(r.prefix);
            }
        }
        let selected = |r: &&tern_speaker::RouteEntry| {
            q.protocol.as_ref().is_none_or(|name| {
                let from = match &r.from {
                    tern_speaker::RouteFrom::Peer(n) => n.as_str(),
                    tern_speaker::RouteFrom::Static => view::names::STATIC,
                    tern_speaker::RouteFrom::Kernel => view::names::KERNEL,
                    tern_speaker::RouteFrom::Direct => view::names::DIRECT,
                };
                from == name
            })
        };
        let shown = routes.iter().filter(selected).count();
        if q.count {
            if json {
                self.json(&json!({ "count": {
                    "shown": shown, "routes": total, "networks": networks,
                }}));
            } else {
                format::route_count(&mut self.w, shown, total, networks);
            }
            return Ok(Flow::Continue);
        }
        let resolver = Resolver::new(&iface::list());
        let inputs = RouteInputs {
            status: &status,
            peers: &peers,
            resolver: &resolver,
        };
        if json {
            let views: Vec<_> = routes
                .iter()
                .filter(selected)
                .map(|r| view::route(&inputs, r))
                .collect();
            self.json(&json!({ "routes": views }));
            return Ok(Flow::Continue);
        }
        let mut prev = None;
        for r in routes.iter().filter(selected) {
            let v = view::route(&inputs, r);
            format::route(&mut self.w, &v, prev != Some(r.prefix), q.all, now);
            prev = Some(r.prefix);
            self.flush_if_full().await?;
        }
        self.w.ok();
        Ok(Flow::Continue)
    }

    async fn admin(&mut self, op: AdminOp, target: Target, json: bool) -> io::Result<Flow> {
        let speaker = self.backend.speaker.clone();
        let peers = match speaker.peers().await {
            Ok(p) => p,
            Err(e) => return self.speaker_error(e),
        };
        let family = self.options.family;
        let chosen: Vec<_> = peers
            .iter()
            .filter(|p| family.has(p.address) && target.matches(&p.name))
            .collect();
        if chosen.is_empty() {
            self.no_match(Some(&target));
            return Ok(Flow::Continue);
        }
        let mut results = Vec::new();
        for p in chosen {
            let (code, word, action) = match op {
                AdminOp::Disable if !p.enabled => {
                    (code::ALREADY_DISABLED, "already disabled", None)
                }
                AdminOp::Disable => (code::DISABLED, "disabled", Some(PeerAdmin::Disable)),
                AdminOp::Enable if p.enabled => (code::ALREADY_ENABLED, "already enabled", None),
                AdminOp::Enable => (code::ENABLED, "enabled", Some(PeerAdmin::Enable)),
                AdminOp::Restart => (code::RESTARTED, "restarted", Some(PeerAdmin::Restart)),
            };
            let outcome = match action {
                Some(a) => speaker.peer_admin(&p.name, a, "").await,
                None => Ok(()),
            };
            match outcome {
                Ok(()) => {
                    results.push(json!({ "name": p.name, "result": word }));
                    if !json {
                        self.w.more(code, &format!("{}: {word}", p.name));
                    }
                }
                Err(e) => {
                    results.push(json!({ "name": p.name, "error": e.to_string() }));
                    if !json {
                        self.w.more(code::DENIED, &format!("{}: {e}", p.name));
                    }
                }
            }
        }
        if json {
            self.json(&json!({ "admin": results }));
        } else {
            self.w.ok();
        }
        Ok(Flow::Continue)
    }

    /// `watch`: every speaker event as one spontaneous line (`+{json}`) until the client
    /// sends anything or goes away.
    async fn watch(mut self, mut reader: BufReader<tokio::net::unix::OwnedReadHalf>) {
        let mut events = self.backend.speaker.subscribe();
        let mut byte = [0u8; 1];
        loop {
            tokio::select! {
                _ = reader.read(&mut byte) => return,
                ev = events.recv() => {
                    let value = match ev {
                        Ok(ev) => event_json(&ev),
                        Err(broadcast::error::RecvError::Lagged(n)) => json!({
                            "type": "lagged", "missed": n,
                        }),
                        Err(broadcast::error::RecvError::Closed) => return,
                    };
                    self.w.spontaneous(&value.to_string());
                    if self.flush().await.is_err() {
                        return;
                    }
                }
            }
        }
    }
}

/// One event as JSON (`watch`).
pub fn event_json(ev: &Event) -> Value {
    let time = crate::clock::rfc3339(SystemTime::now());
    match ev {
        Event::PeerState {
            name,
            from,
            to,
            reason,
        } => json!({
            "type": "peer_state", "time": time, "name": name,
            "from": from.to_string(), "to": to.to_string(), "reason": reason,
        }),
        Event::PeerRemoved { name } => json!({
            "type": "peer_removed", "time": time, "name": name,
        }),
        Event::KernelRoute { prefix, installed } => json!({
            "type": "kernel_route", "time": time, "prefix": prefix.to_string(),
            "installed": installed,
        }),
        Event::KernelRouteFailed { prefix, error } => json!({
            "type": "kernel_route_failed", "time": time, "prefix": prefix.to_string(),
            "error": error,
        }),
        Event::BestPath {
            prefix,
            next_hop,
            from,
        } => json!({
            "type": "best_path", "time": time, "prefix": prefix.to_string(),
            "next_hop": next_hop.map(|n| n.to_string()),
            "from": from.as_ref().map(|f| match f {
                tern_speaker::RouteFrom::Peer(n) => n.clone(),
                tern_speaker::RouteFrom::Static => view::names::STATIC.to_string(),
                tern_speaker::RouteFrom::Kernel => view::names::KERNEL.to_string(),
                tern_speaker::RouteFrom::Direct => view::names::DIRECT.to_string(),
            }),
        }),
        // Events the speaker may add later are still streamed.
        #[allow(unreachable_patterns)]
        other => json!({ "type": "other", "time": time, "event": format!("{other:?}") }),
    }
}
