//! The async driver: a tokio task around [`FibState`], the batched [`RouteSocket`] and the
//! monitor socket.
//!
//! Writes are made on a dedicated OS thread (`fib-writer`) with the blocking writer: the
//! kernel does its work inside `sendmsg` (under its RTNL lock), so the thread that writes
//! spends most of its time in the kernel, and the bookkeeping around it — choosing the next
//! batch, recording results, the owner's RIB — runs on the other core meanwhile. The task
//! keeps up to [`PIPELINE`] batches in flight, so the writer never waits for it; keys in
//! flight are not written again until their result is back (see
//! [`FibState::poll_batch`]). Monitor notifications are applied only when no batch is in
//! flight, as they were when the task wrote itself: a notification is then never older
//! than a result recorded after it. Reads of the monitor are readiness-driven (`AsyncFd`);
//! nothing is polled on a timer.

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::{Arc, Mutex, MutexGuard, mpsc as std_mpsc};
use std::time::Duration;

use tokio::io::unix::AsyncFd;
use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;

use crate::glob::InterfacePatterns;
use crate::route::{PROTOCOL_BIRD, Route, RouteKey, TABLE_MAIN};
use crate::socket::{MonitorRead, MonitorSocket, RouteError, RouteOp, RouteSocket};
use crate::state::{Damping, FibEvent, FibState, StateConfig};

/// When stale routes of ours are deleted after start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reconcile {
    /// Right after the first dump: whatever is not desired by then is stale. Right for
    /// owners that set their whole desired set before running the driver; owners whose
    /// routes arrive over time (from peers) want [`Reconcile::AfterConverged`].
    Immediately,
    /// When [`FibHandle::converged`] is called, or after `deadline` (graceful restart:
    /// routes survive the restart and are pruned only once the RIB is complete).
    AfterConverged { deadline: Duration },
}

/// How the FIB runs.
#[derive(Debug, Clone)]
pub struct FibConfig {
    /// Protocol of our routes; default 12 (`proto bird`), which Felix and operators expect.
    pub protocol: u8,
    /// Tables we own routes of our protocol in, and learn others' routes from.
    pub tables: Vec<u32>,
    /// Devices whose other-protocol routes are learned (`None`: learn nothing).
    pub learn: Option<InterfacePatterns>,
    /// Devices whose connected prefixes are reported (`None`: report none).
    pub connected: Option<InterfacePatterns>,
    pub reconcile: Reconcile,
    /// Routes per write batch.
    pub batch_routes: usize,
    /// Receive buffer of the monitor socket; overflowing it costs one full resync.
    pub monitor_buffer: usize,
    /// Capacity of the event channel.
    pub event_capacity: usize,
    /// Flap damping of kernel writes (hold-down of deletes, suppression of keys that keep
    /// flapping); `None` writes every change as soon as it can.
    pub damping: Option<Damping>,
}

impl Default for FibConfig {
    fn default() -> Self {
        FibConfig {
            protocol: PROTOCOL_BIRD,
            tables: vec![TABLE_MAIN],
            learn: Some(InterfacePatterns::all()),
            connected: Some(InterfacePatterns::all()),
            reconcile: Reconcile::AfterConverged {
                deadline: Duration::from_secs(240),
            },
            batch_routes: 1024,
            monitor_buffer: 8 << 20,
            event_capacity: 4096,
            damping: Some(Damping::default()),
        }
    }
}

struct Shared {
    state: Mutex<FibState>,
    wake: Notify,
    closed: std::sync::atomic::AtomicBool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, FibState> {
        // A panic while holding the lock cannot leave FibState half-updated in a way
        // that matters more than stopping would; keep serving.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Ends the driver when the last handle is dropped.
struct Closer(Arc<Shared>);

impl Drop for Closer {
    fn drop(&mut self) {
        self.0
            .closed
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.0.wake.notify_one();
    }
}

/// Sets desired routes. Cheap to clone; calls never block on the kernel: they update the
/// desired state (coalescing per key) and wake the driver.
#[derive(Clone)]
pub struct FibHandle {
    shared: Arc<Shared>,
    _closer: Arc<Closer>,
}

impl std::fmt::Debug for FibHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FibHandle").finish_non_exhaustive()
    }
}

impl FibHandle {
    /// Desires `route` at its key (replacing whatever we desired there).
    pub fn set(&self, route: Route) {
        self.shared.lock().set(route);
        self.shared.wake.notify_one();
    }

    /// Desires many routes. The state is locked for [`SET_CHUNK`] routes at a time, so a
    /// large set (a full table from a peer) does not keep the driver from handing the
    /// writer its next batch meanwhile.
    pub fn set_all(&self, routes: impl IntoIterator<Item = Route>) {
        let mut routes = routes.into_iter().peekable();
        while routes.peek().is_some() {
            {
                let mut st = self.shared.lock();
                for r in routes.by_ref().take(SET_CHUNK) {
                    st.set(r);
                }
            }
            self.shared.wake.notify_one();
        }
    }

    /// No longer desires the route at `key`.
    pub fn remove(&self, key: RouteKey) {
        self.shared.lock().remove(key);
        self.shared.wake.notify_one();
    }

    /// No longer desires any route: every route of ours in the kernel is deleted (unless
    /// desired again before it is written).
    pub fn remove_all(&self) {
        self.shared.lock().remove_all();
        self.shared.wake.notify_one();
    }

    /// The desired set is complete: stale routes of ours may be deleted now.
    pub fn converged(&self) {
        self.shared.lock().converge();
        self.shared.wake.notify_one();
    }

    /// Runs `f` on the state (for queries: desired, kernel routes, failures).
    pub fn inspect<T>(&self, f: impl FnOnce(&FibState) -> T) -> T {
        f(&self.shared.lock())
    }
}

struct Monitor(MonitorSocket);

impl AsRawFd for Monitor {
    fn as_raw_fd(&self) -> RawFd {
        self.0.sock.as_raw_fd()
    }
}

/// Routes [`FibHandle::set_all`] sets per lock of the state (≈ 0.3 ms of work).
const SET_CHUNK: usize = 1024;

/// Batches handed to the writer thread and not yet answered, at most: one being written
/// and one waiting, so the writer goes from batch to batch without waiting for the task.
const PIPELINE: usize = 2;

/// A batch for the writer thread, with the link names to resolve its devices.
struct Job {
    ops: Vec<RouteOp>,
    names: Arc<HashMap<String, u32>>,
}

/// A batch back from the writer thread: its ops and what the kernel said (an `Err` when
/// the acks were lost and the outcome is unknown).
type Done = (Vec<RouteOp>, io::Result<Vec<Result<(), RouteError>>>);

/// The writer thread: writes each job in order and sends it back with its results. Ends
/// when the task drops its end of either channel.
fn write_loop(mut writer: RouteSocket, jobs: std_mpsc::Receiver<Job>, done: mpsc::Sender<Done>) {
    while let Ok(Job { ops, names }) = jobs.recv() {
        let results = writer.write_with(&ops, &mut |n: &str| names.get(n).copied());
        if done.blocking_send((ops, results)).is_err() {
            return;
        }
    }
}

/// The FIB driver. Create it in the network namespace to program (sockets stay there),
/// then `run` it on a tokio runtime.
pub struct Fib {
    shared: Arc<Shared>,
    /// Dumps (the writes go through the writer thread's own socket).
    dumper: RouteSocket,
    jobs: std_mpsc::SyncSender<Job>,
    done: mpsc::Receiver<Done>,
    in_flight: usize,
    monitor: AsyncFd<Monitor>,
    events: mpsc::Sender<FibEvent>,
    config: FibConfig,
}

impl Fib {
    /// Opens the sockets (subscribing before any dump, so nothing falls between) and
    /// returns the driver, the handle and the event stream. Must be called inside a
    /// tokio runtime with I/O enabled. The owner must keep reading the events: when the
    /// channel is full the driver waits (and its monitor socket may overrun, which costs a
    /// resync but loses nothing).
    pub fn new(config: FibConfig) -> io::Result<(Fib, FibHandle, mpsc::Receiver<FibEvent>)> {
        let writer = RouteSocket::new()?;
        let dumper = RouteSocket::new()?;
        // `AsyncFd::new` is deprecated for types that could close their descriptor while
        // registered; `Monitor` owns its socket and only drops it with the `AsyncFd`, so
        // the descriptor outlives the registration (the safe alternative is `unsafe`).
        #[allow(deprecated)]
        let monitor = AsyncFd::new(Monitor(MonitorSocket::new(
            config.monitor_buffer,
            writer.port(),
        )?))?;
        let state = FibState::new(StateConfig {
            protocol: config.protocol,
            tables: config.tables.clone(),
            learn: config.learn.clone(),
            connected: config.connected.clone(),
            damping: config.damping,
        });
        let shared = Arc::new(Shared {
            state: Mutex::new(state),
            wake: Notify::new(),
            closed: std::sync::atomic::AtomicBool::new(false),
        });
        let (tx, rx) = mpsc::channel(config.event_capacity.max(1));
        let (jobs, jobs_rx) = std_mpsc::sync_channel(PIPELINE);
        let (done_tx, done) = mpsc::channel(PIPELINE);
        std::thread::Builder::new()
            .name("fib-writer".into())
            .spawn(move || write_loop(writer, jobs_rx, done_tx))?;
        let handle = FibHandle {
            shared: shared.clone(),
            _closer: Arc::new(Closer(shared.clone())),
        };
        Ok((
            Fib {
                shared,
                dumper,
                jobs,
                done,
                in_flight: 0,
                monitor,
                events: tx,
                config,
            },
            handle,
            rx,
        ))
    }

    /// Runs until every [`FibHandle`] is dropped. Our routes stay in the kernel when it
    /// returns (BIRD's `persist`): the next start reconciles them.
    pub async fn run(mut self) -> io::Result<()> {
        self.full_resync(false)?;
        let mut deadline = match self.config.reconcile {
            Reconcile::Immediately => {
                self.shared.lock().converge();
                None
            }
            Reconcile::AfterConverged { deadline } => Some(Instant::now() + deadline),
        };
        let mut msgs = Vec::new();
        loop {
            self.flush().await?;
            self.report().await;
            if self.shared.closed.load(std::sync::atomic::Ordering::SeqCst) {
                return Ok(());
            }
            let timer = {
                let st = self.shared.lock();
                if st.is_converged() {
                    deadline = None;
                }
                // Held writes (damping, back-off) are due then; tokio's clock is the same
                // monotonic clock as `std::time::Instant`.
                st.poll_timeout().map(Instant::from_std)
            };
            let overrun = tokio::select! {
                _ = self.shared.wake.notified() => false,
                ready = self.monitor.readable_mut() => {
                    let mut guard = ready?;
                    let mut overrun = false;
                    // Bounded per wake-up so writes interleave with a storm of notifications.
                    for _ in 0..256 {
                        match guard.get_inner_mut().0.read(&mut msgs)? {
                            MonitorRead::Messages => {}
                            MonitorRead::Overrun => overrun = true,
                            MonitorRead::Empty => {
                                guard.clear_ready();
                                break;
                            }
                        }
                    }
                    overrun
                }
                _ = sleep_until(deadline), if deadline.is_some() => {
                    self.shared.lock().converge();
                    false
                }
                _ = sleep_until(timer), if timer.is_some() => false,
            };
            if overrun {
                msgs.clear();
                self.full_resync(true)?;
                continue;
            }
            let resync = {
                let mut st = self.shared.lock();
                st.handle_timeout(std::time::Instant::now());
                for m in msgs.drain(..) {
                    st.on_kernel(m);
                }
                st.take_needs_resync()
            };
            if resync {
                self.resync_ours()?;
            }
        }
    }

    /// Dumps links, addresses and every route, and loads them into the state.
    fn full_resync(&mut self, overrun: bool) -> io::Result<()> {
        let links = self.dumper.dump_links()?;
        let addresses = self.dumper.dump_addresses()?;
        let routes = self.dumper.dump_routes(None)?;
        let mut st = self.shared.lock();
        st.load(links, addresses, routes);
        if overrun {
            st.resynced(true);
        }
        Ok(())
    }

    /// Dumps routes again after links or addresses went away (the kernel drops IPv4 routes
    /// through them without a notification): ours, and the others' too when learning.
    fn resync_ours(&mut self) -> io::Result<()> {
        if self.config.learn.is_some() {
            let routes = self.dumper.dump_routes(None)?;
            let mut st = self.shared.lock();
            st.load_routes(routes);
            st.resynced(false);
            return Ok(());
        }
        let protocol = self.config.protocol;
        let routes = self.dumper.dump_routes(Some(protocol))?;
        let mut st = self.shared.lock();
        let tables = st.config().tables.clone();
        st.load_ours(
            routes
                .into_iter()
                .map(|r| r.route)
                .filter(|r| tables.contains(&r.table))
                .collect(),
        );
        st.resynced(false);
        Ok(())
    }

    /// Writes everything pending, batch by batch, through the writer thread; returns with
    /// no batch in flight.
    async fn flush(&mut self) -> io::Result<()> {
        let mut unknown = false;
        loop {
            // After an unknown outcome nothing more is sent until the kernel was looked at.
            while !unknown && self.in_flight < PIPELINE {
                let (ops, names) = {
                    let mut st = self.shared.lock();
                    st.handle_timeout(std::time::Instant::now());
                    (st.poll_batch(self.config.batch_routes.max(1)), st.names())
                };
                if ops.is_empty() {
                    break;
                }
                self.jobs
                    .send(Job { ops, names })
                    .map_err(|_| io::Error::other("the FIB writer thread ended"))?;
                self.in_flight += 1;
            }
            if self.in_flight == 0 {
                if !unknown {
                    return Ok(());
                }
                // Acks lost (ENOBUFS, a timeout, a truncated datagram): what the kernel did
                // with a batch is unknown, so look. A socket that cannot even dump is
                // broken: that ends the driver with the error.
                self.resync_ours()?;
                unknown = false;
                continue;
            }
            let (ops, results) = self
                .done
                .recv()
                .await
                .ok_or_else(|| io::Error::other("the FIB writer thread ended"))?;
            self.in_flight -= 1;
            match results {
                Ok(results) => self.shared.lock().on_results(ops, results),
                Err(e) => {
                    tracing::warn!("route write outcome unknown ({e}); resyncing");
                    self.shared.lock().abandon(&ops);
                    unknown = true;
                }
            }
            self.report().await;
        }
    }

    /// Hands queued events to the owner (waiting when the channel is full).
    async fn report(&mut self) {
        loop {
            let Some(ev) = self.shared.lock().poll_event() else {
                return;
            };
            if self.events.is_closed() {
                continue;
            }
            let _ = self.events.send(ev).await;
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
