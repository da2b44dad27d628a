//! The sans-IO core: desired routes, the kernel's routes of our protocol, the coalescing
//! queue between them, and what the kernel tells us about everything else.
//!
//! [`FibState`] takes inputs — desired changes, write results, kernel dumps and
//! notifications, and the time (`advance`, `handle_timeout`) — and produces outputs: the
//! [`RouteOp`]s to write next, the [`FibEvent`]s to report, and when held writes are due
//! (`poll_timeout`). It has no socket and reads no clock; the driver in `fib.rs` feeds it.

use std::cmp::Reverse;
use std::collections::hash_map::Entry;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ipnet::IpNet;

use crate::codec::{Address, KernelMessage, Link, ReportedRoute};
use crate::glob::InterfacePatterns;
use crate::route::{
    Device, PROTOCOL_KERNEL, PROTOCOL_REDIRECT, Route, RouteKey, RouteKind, TABLE_LOCAL,
};
use crate::socket::{RouteError, RouteOp};

/// A prefix directly connected through an interface address (what BIRD's `protocol
/// direct` imports).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Connected {
    /// The connected prefix (`192.0.2.0/24`).
    pub prefix: IpNet,
    /// The interface's own address in it.
    pub address: IpAddr,
    pub ifindex: u32,
    pub ifname: String,
}

/// What the FIB reports to its owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FibEvent {
    /// A link appeared or changed (name, up, running).
    Link(Link),
    /// A link was deleted.
    LinkRemoved(Link),
    /// A connected prefix on an accepted, running interface appeared.
    ConnectedAdded(Connected),
    /// It went away (address removed, link down or deleted).
    ConnectedRemoved(Connected),
    /// A route of another protocol on accepted interfaces appeared or changed. Devices are
    /// named when the link is known.
    LearnedAdded(Route),
    /// That route went away.
    LearnedRemoved(Route),
    /// A desired route could not be written. Failures that wait for a device are retried
    /// when links or addresses appear.
    RouteFailed { key: RouteKey, error: RouteError },
    /// Stale routes of our protocol may now be deleted: the desired set is complete
    /// (converged signal, graceful-restart deadline, or at once without graceful restart).
    /// `stale` routes were queued for deletion.
    Reconciled { stale: usize },
    /// The kernel's state was dumped again and compared; `overrun` when notifications were
    /// lost (`ENOBUFS`).
    Resynced { overrun: bool },
}

/// Which kernel routes are ours and which are learned.
#[derive(Debug, Clone)]
pub struct StateConfig {
    /// The protocol number of our routes (12, `proto bird`).
    pub protocol: u8,
    /// Tables whose routes of our protocol we own and whose other routes we learn.
    pub tables: Vec<u32>,
    /// Devices whose routes of other protocols are learned; `None` learns none.
    pub learn: Option<InterfacePatterns>,
    /// Devices whose connected prefixes are reported; `None` reports none.
    pub connected: Option<InterfacePatterns>,
    /// Damping of kernel writes for flapping routes; `None` writes every change at once.
    pub damping: Option<Damping>,
}

/// Route flap damping of kernel writes, per key, in the spirit of RFC 2439 but applied to
/// what is written to the kernel rather than to what is accepted from a peer.
///
/// Every kernel write due for a key that was written before — a change, a delete, an
/// install after a delete; not the first install — adds one to the key's *penalty*, which
/// halves every `half_life`. Two rules use it:
/// - **Hold-down of deletes.** A delete of a key whose penalty was at least ½ (it changed
///   within about one half-life) waits `hold_down` first; a new desired route in that time
///   becomes one replace (or nothing when it is what the kernel holds), never a gap. The
///   absorbed flap still counts. The first delete of a stable route is written at once.
/// - **Suppression.** A write that would take the penalty to `suppress` or beyond is not
///   made: the kernel keeps the key's last written state (present or absent) while the
///   desired state flaps, and every further desired change adds one to the penalty. Once
///   the penalty has decayed below `reuse`, the latest desired state is written once. The
///   penalty is capped so that a suppressed key is released at most `max_hold` after its
///   last change.
///
/// Restores of routes someone else changed are not damped (they have their own limit).
///
/// Settings out of range are brought into it (so none can stall a key or the driver): times
/// at most a day, a half-life of at least 1 ms, `suppress` at least 2, `reuse` between 0.1
/// and `suppress − 1.5` (a released key must be able to take one write without being
/// suppressed again).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Damping {
    pub hold_down: Duration,
    pub half_life: Duration,
    /// Penalty at which writes stop (≥ 1).
    pub suppress: f64,
    /// Penalty below which a suppressed key is written again (> 0, < `suppress`).
    pub reuse: f64,
    pub max_hold: Duration,
}

impl Default for Damping {
    /// A hold-down of 1 s (a route withdrawn and back within a second costs no write);
    /// half-life 15 s; suppression when the penalty would reach 6 (about the 7th write in
    /// a few seconds, or a key written every 3 s or more often for a minute); reuse below 2
    /// (24 s after a burst that just reached 6); held at most 60 s after its last change.
    fn default() -> Self {
        Damping {
            hold_down: Duration::from_secs(1),
            half_life: Duration::from_secs(15),
            suppress: 6.0,
            reuse: 2.0,
            max_hold: Duration::from_secs(60),
        }
    }
}

impl Damping {
    /// The settings brought into range (see the type's docs).
    fn sane(self) -> Damping {
        const DAY: Duration = Duration::from_secs(86_400);
        let suppress = if self.suppress.is_finite() {
            self.suppress.max(2.0)
        } else {
            Damping::default().suppress
        };
        let reuse = if self.reuse.is_nan() {
            Damping::default().reuse
        } else {
            self.reuse
        };
        Damping {
            hold_down: self.hold_down.min(DAY),
            half_life: self.half_life.clamp(Duration::from_millis(1), DAY),
            suppress,
            reuse: reuse.clamp(0.1, suppress - 1.5),
            max_hold: self.max_hold.min(DAY),
        }
    }

    /// `penalty` set at `at`, seen at `now`.
    fn decayed(&self, penalty: f64, at: Instant, now: Instant) -> f64 {
        let half = self.half_life.as_secs_f64();
        if half <= 0.0 {
            return 0.0;
        }
        let t = now.saturating_duration_since(at).as_secs_f64();
        penalty * (-t / half).exp2()
    }

    /// The highest penalty: from it, decay to `reuse` takes `max_hold`.
    fn ceiling(&self) -> f64 {
        let half = self.half_life.as_secs_f64();
        let reuse = self.reuse.max(f64::MIN_POSITIVE);
        if half <= 0.0 {
            return reuse;
        }
        // Bounded exponent: 2^60 is far beyond any useful ceiling.
        reuse * (self.max_hold.as_secs_f64() / half).min(60.0).exp2()
    }

    /// When `penalty` (as of `at`) will have decayed below `reuse`.
    fn reuse_at(&self, penalty: f64, at: Instant) -> Instant {
        let reuse = self.reuse.max(f64::MIN_POSITIVE);
        if penalty < reuse {
            return at;
        }
        let secs = self.half_life.as_secs_f64() * (penalty / reuse).log2();
        // Just past the crossing, so that the check at that instant sees it below.
        let wait = Duration::try_from_secs_f64(secs)
            .unwrap_or(self.max_hold)
            .min(self.max_hold)
            .saturating_add(Duration::from_millis(1));
        later(at, wait)
    }
}

/// `at + wait`, with `wait` capped at a day (a configured time cannot overflow the clock).
fn later(at: Instant, wait: Duration) -> Instant {
    const DAY: Duration = Duration::from_secs(86_400);
    at.checked_add(wait.min(DAY)).unwrap_or(at)
}

/// A key's flap record (see [`Damping`]).
#[derive(Debug, Clone, Copy)]
struct Flaps {
    penalty: f64,
    at: Instant,
    suppressed: bool,
}

/// Why a key waits before its next write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hold {
    /// A delete in its hold-down (a replace goes ahead at once).
    Delete(Instant),
    /// A flapping key, suppressed: nothing is written until then.
    Suppressed(Instant),
    /// A restore backed off after a fight with another writer.
    Contested(Instant),
}

impl Hold {
    fn until(self) -> Instant {
        match self {
            Hold::Delete(t) | Hold::Suppressed(t) | Hold::Contested(t) => t,
        }
    }
}

/// Maps keyed by route: hashed with foldhash's randomly seeded "quality" hasher — several
/// times faster than SipHash on these small keys, which matters at 100 000s of routes, and
/// still seeded per map, so prefixes a peer chooses cannot be aimed at collisions.
type KeyMap<V> = HashMap<RouteKey, V, foldhash::quality::RandomState>;

/// A coalescing queue of keys: a key waits at most once; re-queueing is a no-op. It also
/// knows the keys whose write is in flight (taken with [`KeyQueue::take`] and
/// [`KeyQueue::fly`], back with [`KeyQueue::land`]): such a key pushed again waits until it
/// lands, so the two share one map and a write costs no extra lookups.
#[derive(Debug, Default)]
pub struct KeyQueue {
    /// Keys waiting, in the order they are to be written (never a key in flight).
    order: VecDeque<RouteKey>,
    slots: HashMap<RouteKey, Slot, foldhash::quality::RandomState>,
    /// Keys pushed since the queue was last put in spread order (see [`KeyQueue::spread`]).
    unspread: usize,
    flying: usize,
}

/// Where a key of a [`KeyQueue`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    /// Waiting in `order` (or just taken from it and not yet settled).
    Queued,
    /// Its write is in flight.
    Flying,
    /// In flight and pushed again meanwhile: queued when it lands.
    FlyingQueued,
}

/// The order in which a long queue is written: prefixes by their address bits reversed,
/// i.e. every next write as far as possible from the ones before it. The kernel's
/// LC-trie grows with fewer node resizes when a table is filled evenly than when it is
/// filled from one end (100,000 /24s: ≈ 25 % less CPU than in address order, measured
/// with `RouteSocket` alone in a namespace).
fn spread_order(key: &RouteKey) -> u128 {
    match key.prefix.addr() {
        IpAddr::V4(a) => u128::from(u32::from(a).reverse_bits()),
        IpAddr::V6(a) => u128::from(a).reverse_bits(),
    }
}

impl KeyQueue {
    pub fn push(&mut self, key: RouteKey) {
        match self.slots.entry(key) {
            Entry::Vacant(v) => {
                v.insert(Slot::Queued);
                self.order.push_back(key);
                self.unspread += 1;
            }
            Entry::Occupied(mut o) => {
                if *o.get() == Slot::Flying {
                    *o.get_mut() = Slot::FlyingQueued;
                }
            }
        }
    }

    /// Puts a queue of at least `min` keys in spread order (see [`spread_order`]) when at
    /// least half of it arrived since the last time, so a bulk load is sorted a few times
    /// (each time the queue's new part has doubled), not once per batch.
    pub fn spread(&mut self, min: usize) {
        let len = self.order.len();
        self.unspread = self.unspread.min(len);
        if len >= min && self.unspread * 2 >= len {
            self.order
                .make_contiguous()
                .sort_unstable_by_key(spread_order);
            self.unspread = 0;
        }
    }

    pub fn pop(&mut self) -> Option<RouteKey> {
        let key = self.order.pop_front()?;
        self.slots.remove(&key);
        Some(key)
    }

    /// Takes the next key without settling it: the caller then says whether its write is
    /// in flight ([`KeyQueue::fly`]) or nothing is written ([`KeyQueue::forget`]).
    pub fn take(&mut self) -> Option<RouteKey> {
        self.order.pop_front()
    }

    /// The taken `key`'s write is in flight.
    pub fn fly(&mut self, key: RouteKey) {
        if let Some(s) = self.slots.get_mut(&key) {
            *s = Slot::Flying;
            self.flying += 1;
        }
    }

    /// The taken `key` is not written after all.
    pub fn forget(&mut self, key: &RouteKey) {
        self.slots.remove(key);
    }

    /// The write of `key` is no longer in flight; if it was pushed meanwhile it is queued.
    pub fn land(&mut self, key: RouteKey) {
        if self.flying == 0 {
            return;
        }
        if let Entry::Occupied(mut o) = self.slots.entry(key) {
            match *o.get() {
                Slot::Flying => {
                    o.remove();
                    self.flying -= 1;
                }
                Slot::FlyingQueued => {
                    *o.get_mut() = Slot::Queued;
                    self.flying -= 1;
                    self.order.push_back(key);
                    self.unspread += 1;
                }
                Slot::Queued => {}
            }
        }
    }

    /// Keys in flight.
    pub fn flying(&self) -> usize {
        self.flying
    }

    /// Whether `key` waits to be written (now, or once its write in flight lands).
    pub fn contains(&self, key: &RouteKey) -> bool {
        matches!(self.slots.get(key), Some(Slot::Queued | Slot::FlyingQueued))
    }

    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    pub fn clear(&mut self) {
        self.order.clear();
        self.slots.clear();
        self.unspread = 0;
        self.flying = 0;
    }
}

/// How many restores of one route are made at once while someone else keeps changing it
/// (each change within [`RESTORE_WINDOW`] of our previous restore). Past this the fight is
/// reported once (`RouteError::Contested`) and each further restore waits twice as long as
/// the one before — 1 s, 2 s, 4 s … up to [`MAX_RESTORE_BACKOFF`] — so two daemons fighting
/// over a route cost a write a minute, not a spin; the route is still put back each time.
/// A change more than the window after our last restore starts afresh.
const MAX_RESTORES: u32 = 5;
const RESTORE_WINDOW: Duration = Duration::from_secs(10);
const MAX_RESTORE_BACKOFF: Duration = Duration::from_secs(60);

/// A key's restores (see [`MAX_RESTORES`]).
#[derive(Debug, Clone, Copy)]
struct Restores {
    count: u32,
    /// When the last restore was made (or is scheduled).
    at: Option<Instant>,
}

/// Whether the kernel's `kernel` route is what `desired` asked for. A desired next hop
/// without a device accepts whichever device the kernel chose; a device name is compared
/// through `index_of`.
pub fn same_route(desired: &Route, kernel: &Route, index_of: &dyn Fn(&str) -> Option<u32>) -> bool {
    if desired.key() != kernel.key() || desired.protocol != kernel.protocol {
        return false;
    }
    match (&desired.kind, &kernel.kind) {
        (RouteKind::Unicast { nexthops: d }, RouteKind::Unicast { nexthops: k }) => {
            d.len() == k.len()
                && d.iter().zip(k).all(|(d, k)| {
                    d.gateway == k.gateway
                        && d.onlink == k.onlink
                        && d.weight == k.weight
                        && match &d.dev {
                            None => true,
                            Some(Device::Index(i)) => k.dev == Some(Device::Index(*i)),
                            Some(Device::Name(n)) => match (index_of(n), &k.dev) {
                                (Some(i), Some(Device::Index(j))) => i == *j,
                                (_, Some(Device::Name(m))) => n == m,
                                _ => false,
                            },
                        }
                })
        }
        (a, b) => std::mem::discriminant(a) == std::mem::discriminant(b),
    }
}

/// The keys whose kernel route must change for the kernel to match `desired`, in key order:
/// what differs or is missing, and what is only in the kernel when `delete_stale`.
fn diff_keys<S: BuildHasher>(
    desired: &HashMap<RouteKey, Route, S>,
    kernel: &HashMap<RouteKey, Route, S>,
    delete_stale: bool,
    index_of: &dyn Fn(&str) -> Option<u32>,
) -> Vec<RouteKey> {
    let mut keys: Vec<RouteKey> = desired
        .iter()
        .filter(|(k, d)| !kernel.get(k).is_some_and(|kr| same_route(d, kr, index_of)))
        .map(|(k, _)| *k)
        .collect();
    if delete_stale {
        keys.extend(kernel.keys().filter(|k| !desired.contains_key(k)));
    }
    keys.sort_unstable();
    keys
}

/// The writes that take the kernel from `kernel` to `desired`: replace what differs or is
/// missing; delete what is only in the kernel when `delete_stale`. In key order.
pub fn diff<S: BuildHasher>(
    desired: &HashMap<RouteKey, Route, S>,
    kernel: &HashMap<RouteKey, Route, S>,
    delete_stale: bool,
    index_of: &dyn Fn(&str) -> Option<u32>,
) -> Vec<RouteOp> {
    diff_keys(desired, kernel, delete_stale, index_of)
        .into_iter()
        .filter_map(|k| match (desired.get(&k), kernel.get(&k)) {
            (Some(d), _) => Some(RouteOp::Replace(d.clone())),
            (None, Some(r)) => Some(RouteOp::Delete {
                key: k,
                protocol: r.protocol,
            }),
            (None, None) => None,
        })
        .collect()
}

/// What the kernel holds at one of our keys.
///
/// After a successful write of the desired route — the bulk of a table — the kernel holds
/// exactly `desired[key]`, and keeping a second copy of it would double the memory of a
/// full table. `AsDesired` says so without the copy; whoever changes or removes the
/// desired route first turns the entry into the route it replaces (moved, not cloned).
#[derive(Debug, Clone, PartialEq, Eq)]
enum InKernel {
    /// The kernel holds exactly the desired route at this key (we wrote it).
    AsDesired,
    /// The kernel holds this route (as dumped, reported or written before a change); boxed
    /// so that the common `AsDesired` entry costs one word in the map, not a whole route.
    Route(Box<Route>),
    /// A notice said a route of ours here was deleted, but it may have been older than our
    /// last write here: treated as absent for a desired route (written again) and as
    /// present for an undesired one (deleted again).
    Unsure,
}

/// Desired and kernel state, the coalescing queue between them, and learning.
#[derive(Debug)]
pub struct FibState {
    config: StateConfig,
    desired: KeyMap<Route>,
    /// Our protocol's routes in the kernel, as last reported or written.
    kernel: KeyMap<InKernel>,
    pending: KeyQueue,
    failed: KeyMap<RouteError>,
    restores: KeyMap<Restores>,
    /// Keys queued as restores: written without damping.
    restoring: HashSet<RouteKey, foldhash::quality::RandomState>,
    /// Keys waiting before their next write, and the timers for them (a min-heap that may
    /// hold stale entries: an entry counts only if `held` still has that instant).
    held: KeyMap<Hold>,
    timers: BinaryHeap<Reverse<(Instant, RouteKey)>>,
    flaps: KeyMap<Flaps>,
    next_sweep: Option<Instant>,
    now: Option<Instant>,
    converged: bool,
    links: HashMap<u32, Link>,
    names: Arc<HashMap<String, u32>>,
    addresses: HashSet<Address>,
    connected: HashSet<Connected>,
    /// Routes of other protocols in our tables that may be learned, as the kernel reported
    /// them (device indexes): kept so learning is re-checked when links appear, are renamed
    /// or go.
    foreign: HashMap<(RouteKey, u8), Route>,
    learned: HashMap<(RouteKey, u8), Route>,
    events: VecDeque<FibEvent>,
    needs_resync: bool,
}

impl FibState {
    pub fn new(mut config: StateConfig) -> FibState {
        config.damping = config.damping.map(Damping::sane);
        FibState {
            config,
            desired: KeyMap::default(),
            kernel: KeyMap::default(),
            pending: KeyQueue::default(),
            failed: KeyMap::default(),
            restores: KeyMap::default(),
            restoring: HashSet::default(),
            held: KeyMap::default(),
            timers: BinaryHeap::new(),
            flaps: KeyMap::default(),
            next_sweep: None,
            now: None,
            converged: false,
            links: HashMap::new(),
            names: Arc::new(HashMap::new()),
            addresses: HashSet::new(),
            connected: HashSet::new(),
            foreign: HashMap::new(),
            learned: HashMap::new(),
            events: VecDeque::new(),
            needs_resync: false,
        }
    }

    /// Tells the state what time it is (the driver does, before each input).
    pub fn advance(&mut self, now: Instant) {
        self.now = Some(now);
    }

    pub fn config(&self) -> &StateConfig {
        &self.config
    }

    /// Link names to indexes, shared with the writer.
    pub fn names(&self) -> Arc<HashMap<String, u32>> {
        self.names.clone()
    }

    fn owned(&self, route: &Route) -> bool {
        route.protocol == self.config.protocol && self.config.tables.contains(&route.table)
    }

    fn matches_kernel(&self, desired: &Route) -> bool {
        self.matches_entry(desired, self.kernel.get(&desired.key()))
    }

    /// Whether the kernel entry `entry` at `desired`'s key holds `desired`.
    fn matches_entry(&self, desired: &Route, entry: Option<&InKernel>) -> bool {
        let names = &self.names;
        match entry {
            None => false,
            Some(InKernel::AsDesired) => true,
            Some(InKernel::Route(k)) => same_route(desired, k, &|n| names.get(n).copied()),
            Some(InKernel::Unsure) => false,
        }
    }

    /// The desired route at `key` is about to change or go: if the kernel entry refers to
    /// it, it becomes `old` (what the kernel still holds).
    fn detach(&mut self, key: &RouteKey, old: Option<Route>) {
        if let (Some(old), Some(k)) = (old, self.kernel.get_mut(key))
            && *k == InKernel::AsDesired
        {
            *k = InKernel::Route(Box::new(old));
        }
    }

    // ===== desired state =====

    /// Desires `route` (installed or replaced at its key). Our protocol and table are not
    /// forced: the caller's route is written as given.
    pub fn set(&mut self, route: Route) {
        let route = route.normalized();
        let key = route.key();
        self.forget_troubles(&key);
        // Queued even when the kernel already matches: `poll_ops` decides, so a route
        // that flips and flips back before the write costs nothing.
        match self.desired.get_mut(&key) {
            Some(d) if *d == route => {}
            Some(d) => {
                let old = std::mem::replace(d, route);
                self.detach(&key, Some(old));
                self.charge_if_suppressed(&key);
            }
            None => {
                self.desired.insert(key, route);
                // A suppressed key coming back is a change too (the map is empty on a
                // bulk load, so that pays no lookup).
                if !self.flaps.is_empty() {
                    self.charge_if_suppressed(&key);
                }
            }
        }
        self.pending.push(key);
    }

    /// Clears restore counts and failures for `key` (skipping the hash when there are none,
    /// which is the common case on a bulk load).
    fn forget_troubles(&mut self, key: &RouteKey) {
        if !self.restores.is_empty() {
            self.restores.remove(key);
            if let Some(Hold::Contested(_)) = self.held.get(key) {
                self.held.remove(key);
            }
        }
        if !self.failed.is_empty() {
            self.failed.remove(key);
        }
    }

    /// No longer desires the route at `key`; ours in the kernel there is deleted.
    pub fn remove(&mut self, key: RouteKey) {
        let key = key.normalized();
        self.forget_troubles(&key);
        let old = self.desired.remove(&key);
        let was_desired = old.is_some();
        self.detach(&key, old);
        if was_desired {
            self.charge_if_suppressed(&key);
        }
        if was_desired || self.kernel.contains_key(&key) {
            self.pending.push(key);
        }
    }

    /// No longer desires any route (see [`FibState::remove`]).
    pub fn remove_all(&mut self) {
        let keys: Vec<RouteKey> = self.desired.keys().copied().collect();
        for key in keys {
            self.remove(key);
        }
    }

    pub fn desired(&self, key: &RouteKey) -> Option<&Route> {
        self.desired.get(&key.normalized())
    }

    pub fn desired_len(&self) -> usize {
        self.desired.len()
    }

    /// Our routes as the kernel last reported them.
    pub fn kernel_routes(&self) -> impl Iterator<Item = &Route> {
        self.kernel.iter().filter_map(|(k, v)| match v {
            InKernel::AsDesired => self.desired.get(k),
            InKernel::Route(r) => Some(&**r),
            InKernel::Unsure => None,
        })
    }

    /// How many routes of ours the kernel holds (as last reported or written).
    pub fn kernel_len(&self) -> usize {
        self.kernel.len()
    }

    /// Routes waiting for a device (or an address) to appear.
    pub fn failed(&self) -> impl Iterator<Item = (&RouteKey, &RouteError)> {
        self.failed.iter()
    }

    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    pub fn is_converged(&self) -> bool {
        self.converged
    }

    /// The desired set is complete: stale routes of ours may go. Idempotent.
    pub fn converge(&mut self) {
        if self.converged {
            return;
        }
        self.converged = true;
        let stale: Vec<RouteKey> = self
            .kernel
            .keys()
            .filter(|k| !self.desired.contains_key(k))
            .copied()
            .collect();
        for k in &stale {
            self.pending.push(*k);
        }
        self.events
            .push_back(FibEvent::Reconciled { stale: stale.len() });
    }

    // ===== writing =====

    /// Up to `max` writes, coalesced: each key once, with its latest desired state, and
    /// nothing for a key whose kernel route already is what is desired.
    ///
    /// With [`Damping`] (and a clock: see [`FibState::advance`]), writes of flapping keys
    /// are held back; [`FibState::poll_timeout`] says when one is due again.
    pub fn poll_ops(&mut self, max: usize) -> Vec<RouteOp> {
        self.poll(max, false)
    }

    /// [`FibState::poll_ops`] for a driver that keeps writes in flight: the keys handed out
    /// stay *in flight* until [`FibState::on_results`] (or [`FibState::abandon`]) gets
    /// them back, and a key queued again meanwhile waits for that — what it needs next
    /// depends on what the write in flight does — instead of being compared with a kernel
    /// state that is about to change.
    pub fn poll_batch(&mut self, max: usize) -> Vec<RouteOp> {
        self.poll(max, true)
    }

    /// Keys written by ops whose outcome will never be reported (the driver resyncs
    /// instead): no longer in flight.
    pub fn abandon(&mut self, ops: &[RouteOp]) {
        for op in ops {
            self.land(op.key());
        }
    }

    /// The write of `key` is no longer in flight; a change that waited for it is queued.
    fn land(&mut self, key: RouteKey) {
        self.pending.land(key);
    }

    /// Keys handed out by [`FibState::poll_batch`] whose result is not back yet.
    pub fn in_flight_len(&self) -> usize {
        self.pending.flying()
    }

    fn poll(&mut self, max: usize, mark: bool) -> Vec<RouteOp> {
        self.sweep();
        if mark {
            self.pending.spread(max.max(1));
        }
        let mut ops = Vec::with_capacity(max.min(self.pending.len()));
        while ops.len() < max {
            // Marked: the key is settled below (in flight, or forgotten). Keys in flight
            // are never in the queue's order: one pushed again waits until it lands.
            let next = if mark {
                self.pending.take()
            } else {
                self.pending.pop()
            };
            let Some(key) = next else { break };
            let restoring = !self.restoring.is_empty() && self.restoring.remove(&key);
            let entry = self.kernel.get(&key);
            let known = entry.is_some();
            let op = match self.desired.get(&key) {
                Some(route) => {
                    (!self.matches_entry(route, entry)).then(|| RouteOp::Replace(route.clone()))
                }
                None => entry.map(|k| RouteOp::Delete {
                    key,
                    protocol: match k {
                        InKernel::Route(r) => r.protocol,
                        // Not reached (a removed desired route detaches its entry); ours.
                        InKernel::AsDesired | InKernel::Unsure => self.config.protocol,
                    },
                }),
            };
            let Some(op) = op else {
                // Nothing to write (the desired state flipped back): no hold either.
                if !self.held.is_empty() {
                    self.held.remove(&key);
                }
                if mark {
                    self.pending.forget(&key);
                }
                continue;
            };
            if !self.held_back(key, &op, restoring, known) {
                if mark {
                    self.pending.fly(key);
                }
                ops.push(op);
            } else if mark {
                self.pending.forget(&key);
            }
        }
        self.prune_timers();
        ops
    }

    /// Drops timers at the top of the heap whose hold has been lifted, so that
    /// [`FibState::poll_timeout`] names a real one.
    fn prune_timers(&mut self) {
        while let Some(Reverse((t, key))) = self.timers.peek() {
            if self.held.get(key).is_some_and(|h| h.until() == *t) {
                break;
            }
            self.timers.pop();
        }
    }

    /// Whether `op` must wait (see [`Damping`]); charges the key's penalty when it may go.
    /// `known`: the kernel has (or had, as far as we know) a route of ours at `key`.
    fn held_back(&mut self, key: RouteKey, op: &RouteOp, restoring: bool, known: bool) -> bool {
        let Some(now) = self.now else { return false };
        let mut released_delete = false;
        if let Some(hold) = self.held.get(&key).copied() {
            let waiting = now < hold.until();
            match hold {
                _ if restoring => {}
                Hold::Delete(_) if waiting && matches!(op, RouteOp::Delete { .. }) => return true,
                Hold::Suppressed(_) | Hold::Contested(_) if waiting => return true,
                Hold::Delete(_) => released_delete = !waiting,
                Hold::Suppressed(_) | Hold::Contested(_) => {}
            }
            self.held.remove(&key);
        }
        let Some(d) = self.config.damping else {
            return false;
        };
        if restoring {
            return false;
        }
        let record = if self.flaps.is_empty() {
            None
        } else {
            self.flaps.get(&key).copied()
        };
        if record.is_none() && !known {
            return false; // a first install
        }
        let penalty = record.map_or(0.0, |f| d.decayed(f.penalty, f.at, now));
        if record.is_some_and(|f| f.suppressed) && penalty >= d.reuse {
            self.hold(key, Hold::Suppressed(d.reuse_at(penalty, now)));
            return true;
        }
        // A delete whose hold-down has ended was charged when the hold-down began.
        let penalty = if released_delete {
            penalty
        } else {
            (penalty + 1.0).min(d.ceiling())
        };
        let suppressed = penalty >= d.suppress;
        let delete_hold = !suppressed
            && !released_delete
            && matches!(op, RouteOp::Delete { .. })
            && penalty >= 1.5
            && !d.hold_down.is_zero();
        self.flaps.insert(
            key,
            Flaps {
                penalty,
                at: now,
                suppressed,
            },
        );
        if suppressed {
            tracing::debug!("{key} flaps: kernel writes suppressed");
            self.hold(key, Hold::Suppressed(d.reuse_at(penalty, now)));
        } else if delete_hold {
            self.hold(key, Hold::Delete(later(now, d.hold_down)));
        }
        suppressed || delete_hold
    }

    fn hold(&mut self, key: RouteKey, hold: Hold) {
        self.held.insert(key, hold);
        self.timers.push(Reverse((hold.until(), key)));
    }

    /// A change of the desired state of a suppressed key adds to its penalty (so a key
    /// that keeps flapping stays suppressed, up to the ceiling).
    fn charge_if_suppressed(&mut self, key: &RouteKey) {
        let (Some(d), Some(now)) = (self.config.damping, self.now) else {
            return;
        };
        if let Some(f) = self.flaps.get_mut(key)
            && f.suppressed
        {
            f.penalty = (d.decayed(f.penalty, f.at, now) + 1.0).min(d.ceiling());
            f.at = now;
            let until = d.reuse_at(f.penalty, now);
            if let Some(Hold::Suppressed(_)) = self.held.get(key) {
                self.hold(*key, Hold::Suppressed(until));
            }
        }
    }

    /// When the next held write is due, if any ([`FibState::handle_timeout`] then).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.peek().map(|Reverse((t, _))| *t)
    }

    /// Advances the clock to `now` and queues the writes whose hold has ended.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.advance(now);
        while let Some(Reverse((t, key))) = self.timers.peek().copied() {
            if t > now {
                break;
            }
            self.timers.pop();
            match self.held.get(&key) {
                Some(Hold::Contested(at)) if *at == t => {
                    self.held.remove(&key);
                    self.restoring.insert(key);
                    self.pending.push(key);
                }
                // Left in `held`: `poll_ops` sees it has ended (a delete's hold-down is
                // then not started again).
                Some(hold) if hold.until() == t => self.pending.push(key),
                _ => {}
            }
        }
        self.prune_timers();
    }

    /// Drops flap records that have decayed to nothing and restore counts of routes long
    /// left alone, at most once per half-life (bounded memory after a storm).
    fn sweep(&mut self) {
        let Some(now) = self.now else { return };
        if self.next_sweep.is_some_and(|t| now < t) {
            return;
        }
        let half_life = self.config.damping.map_or(RESTORE_WINDOW, |d| d.half_life);
        self.next_sweep = Some(later(now, half_life.max(Duration::from_secs(1))));
        if let Some(d) = self.config.damping {
            let held = &self.held;
            self.flaps.retain(|k, f| {
                f.suppressed || held.contains_key(k) || d.decayed(f.penalty, f.at, now) >= 0.05
            });
        }
        let held = &self.held;
        self.restores.retain(|k, r| {
            held.contains_key(k)
                || r.at.is_none_or(|at| {
                    now.saturating_duration_since(at) <= RESTORE_WINDOW + MAX_RESTORE_BACKOFF
                })
        });
        if self.timers.len() > 2 * self.held.len() + 64 {
            // Mostly stale entries: rebuild from `held`.
            self.timers = self
                .held
                .iter()
                .map(|(k, h)| Reverse((h.until(), *k)))
                .collect();
        }
    }

    /// Records the outcome of written ops (as returned by the writer, in order).
    pub fn on_results(&mut self, ops: Vec<RouteOp>, results: Vec<Result<(), RouteError>>) {
        for (op, result) in ops.into_iter().zip(results) {
            let key = op.key();
            self.land(key);
            match (op, result) {
                (RouteOp::Replace(route), Ok(())) => {
                    if !self.failed.is_empty() {
                        self.failed.remove(&key);
                    }
                    if self.owned(&route) {
                        let entry = if self.desired.get(&key) == Some(&route) {
                            InKernel::AsDesired
                        } else {
                            InKernel::Route(Box::new(route))
                        };
                        self.kernel.insert(key, entry);
                    }
                }
                (RouteOp::Delete { .. }, Ok(())) => {
                    self.kernel.remove(&key);
                }
                (RouteOp::Replace(_), Err(error)) => {
                    // A route that is no longer desired as written will be retried anyway.
                    if error.waits_for_device() {
                        self.failed.insert(key, error.clone());
                    }
                    self.events.push_back(FibEvent::RouteFailed { key, error });
                }
                (RouteOp::Delete { .. }, Err(error)) => {
                    self.events.push_back(FibEvent::RouteFailed { key, error });
                }
            }
        }
    }

    /// Queues every route that waits for a device.
    pub fn retry_failed(&mut self) {
        for (k, _) in self.failed.drain() {
            self.pending.push(k);
        }
    }

    // ===== the kernel's view =====

    /// Replaces what is known of the kernel with a full dump (start, or after `ENOBUFS`),
    /// reports the differences, and queues every write needed to match the desired set.
    pub fn load(&mut self, links: Vec<Link>, addresses: Vec<Address>, routes: Vec<ReportedRoute>) {
        let new_links: HashMap<u32, Link> = links.into_iter().map(|l| (l.index, l)).collect();
        let gone: Vec<Link> = self
            .links
            .values()
            .filter(|l| !new_links.contains_key(&l.index))
            .cloned()
            .collect();
        for l in gone {
            self.links.remove(&l.index);
            self.events.push_back(FibEvent::LinkRemoved(l));
        }
        for l in new_links.into_values() {
            if self.links.get(&l.index) != Some(&l) {
                self.links.insert(l.index, l.clone());
                self.events.push_back(FibEvent::Link(l));
            }
        }
        self.rebuild_names();
        self.addresses = addresses.into_iter().collect();
        self.refresh_connected();

        self.load_routes(routes);
    }

    /// Replaces what is known of the kernel's routes (ours and others') with a dump of
    /// every route, reports learned routes that appeared or went, and queues the writes
    /// that make ours match the desired set.
    pub fn load_routes(&mut self, routes: Vec<ReportedRoute>) {
        let mut ours = Vec::new();
        self.foreign.clear();
        for r in routes {
            if r.cloned {
                continue;
            }
            if self.owned(&r.route) {
                ours.push(r.route);
            } else if self.candidate(&r.route) {
                self.foreign
                    .insert((r.route.key(), r.route.protocol), r.route);
            }
        }
        self.relearn();
        self.load_ours(ours);
    }

    /// Recomputes the learned routes from the foreign ones and the links as they are now,
    /// reporting the differences (in key order).
    fn relearn(&mut self) {
        let learned: HashMap<(RouteKey, u8), Route> = self
            .foreign
            .iter()
            .filter_map(|(id, r)| self.learnable(r).map(|l| (*id, l)))
            .collect();
        let old = std::mem::take(&mut self.learned);
        let mut gone: Vec<_> = old
            .iter()
            .filter(|(k, _)| !learned.contains_key(k))
            .collect();
        let mut new: Vec<_> = learned
            .iter()
            .filter(|(k, r)| old.get(k) != Some(r))
            .collect();
        gone.sort_by_key(|(k, _)| **k);
        new.sort_by_key(|(k, _)| **k);
        self.events.extend(
            gone.into_iter()
                .map(|(_, r)| FibEvent::LearnedRemoved(r.clone())),
        );
        self.events.extend(
            new.into_iter()
                .map(|(_, r)| FibEvent::LearnedAdded(r.clone())),
        );
        self.learned = learned;
    }

    /// Replaces the kernel view of our routes with a dump of them and queues the writes
    /// that make it match the desired set (deleting stale ones only once converged).
    pub fn load_ours(&mut self, routes: Vec<Route>) {
        let kernel: KeyMap<Route> = routes.into_iter().map(|r| (r.key(), r)).collect();
        self.pending.clear();
        self.restoring.clear();
        self.failed.clear();
        self.needs_resync = false;
        let names = self.names.clone();
        let keys = diff_keys(&self.desired, &kernel, self.converged, &|n| {
            names.get(n).copied()
        });
        self.kernel = kernel
            .into_iter()
            .map(|(k, r)| (k, InKernel::Route(Box::new(r))))
            .collect();
        for key in keys {
            self.pending.push(key);
        }
    }

    /// Takes the flag set when the kernel may have dropped our routes without telling (an
    /// IPv4 route goes silently with its link or address): the driver then dumps ours.
    pub fn take_needs_resync(&mut self) -> bool {
        std::mem::take(&mut self.needs_resync)
    }

    /// Notes that a resync happened, for the owner.
    pub fn resynced(&mut self, overrun: bool) {
        self.events.push_back(FibEvent::Resynced { overrun });
    }

    /// Handles one notification from the monitor.
    pub(crate) fn on_kernel(&mut self, msg: KernelMessage) {
        match msg {
            KernelMessage::NewRoute(r) if !r.cloned => self.on_route(r.route, true),
            KernelMessage::DelRoute(r) if !r.cloned => self.on_route(r.route, false),
            KernelMessage::NewRoute(_) | KernelMessage::DelRoute(_) => {}
            KernelMessage::NewLink(l) => {
                let before = self.links.insert(l.index, l.clone());
                if before.as_ref() != Some(&l) {
                    let was_usable = before.as_ref().is_some_and(|b| b.up && b.running);
                    let renamed = before.as_ref().map(|b| &b.name) != Some(&l.name);
                    if renamed {
                        self.rebuild_names();
                    }
                    if l.up && l.running && !was_usable {
                        self.retry_failed();
                    }
                    if was_usable && !(l.up && l.running) {
                        self.needs_resync = true;
                    }
                    self.events.push_back(FibEvent::Link(l));
                    if renamed {
                        // A route on a link we did not know yet, or whose new name the
                        // patterns judge otherwise (`veth…` renamed `cali…`).
                        self.relearn();
                    }
                    self.refresh_connected();
                }
            }
            KernelMessage::DelLink(l) => {
                if let Some(l) = self.links.remove(&l.index) {
                    self.rebuild_names();
                    self.addresses.retain(|a| a.ifindex != l.index);
                    self.events.push_back(FibEvent::LinkRemoved(l));
                    // IPv4 routes through it are gone without a word from the kernel.
                    self.relearn();
                    self.refresh_connected();
                    self.needs_resync = true;
                }
            }
            KernelMessage::NewAddress(a) => {
                if self.addresses.insert(a) {
                    self.refresh_connected();
                    self.retry_failed();
                }
            }
            KernelMessage::DelAddress(a) => {
                if self.addresses.remove(&a) {
                    self.refresh_connected();
                    self.needs_resync = true;
                }
            }
        }
    }

    fn on_route(&mut self, route: Route, present: bool) {
        if self.owned(&route) {
            let key = route.key();
            if present {
                self.kernel.insert(key, InKernel::Route(Box::new(route)));
            } else if let Some(k) = self.kernel.get_mut(&key) {
                // The notice may be older than our last write at this key (notifications are
                // read after our writes are recorded), so what the kernel holds here is not
                // known: a desired route is written again, and a delete makes sure of an
                // undesired one (deleting a route that is gone counts as done).
                *k = InKernel::Unsure;
                if !self.desired.contains_key(&key) {
                    self.pending.push(key);
                    return;
                }
            }
            let wrong = match self.desired.get(&key) {
                Some(d) => !self.matches_kernel(d),
                // A route of ours nobody desires: ours to delete, once converged.
                None => present && self.converged,
            };
            if wrong
                && !self.pending.contains(&key)
                && !self.failed.contains_key(&key)
                && !matches!(self.held.get(&key), Some(Hold::Contested(_)))
            {
                self.restore(key);
            }
            return;
        }
        // Another protocol's route at one of our keys: the kernel refuses a second route
        // at a key unless replacing (or appending), so ours was displaced. We do not fight
        // it; when it goes, ours is put back.
        let key = route.key();
        if self.config.tables.contains(&route.table) {
            if present {
                self.kernel.remove(&key);
            } else if self.desired.contains_key(&key)
                && !self.kernel.contains_key(&key)
                && !self.failed.contains_key(&key)
            {
                self.pending.push(key);
            }
        }
        let id = (key, route.protocol);
        if present && self.candidate(&route) {
            self.foreign.insert(id, route.clone());
        } else {
            self.foreign.remove(&id);
        }
        match self.learnable(&route).filter(|_| present) {
            Some(l) => {
                if self.learned.get(&id) != Some(&l) {
                    self.learned.insert(id, l.clone());
                    self.events.push_back(FibEvent::LearnedAdded(l));
                }
            }
            None => {
                if let Some(old) = self.learned.remove(&id) {
                    self.events.push_back(FibEvent::LearnedRemoved(old));
                }
            }
        }
    }

    /// Queues a restore of our route at `key` that someone else changed or deleted, at
    /// once or backed off (see [`MAX_RESTORES`]).
    fn restore(&mut self, key: RouteKey) {
        let now = self.now;
        let r = self
            .restores
            .entry(key)
            .or_insert(Restores { count: 0, at: now });
        if let (Some(now), Some(at)) = (now, r.at)
            && now.saturating_duration_since(at) > RESTORE_WINDOW
        {
            r.count = 0;
        }
        r.count = r.count.saturating_add(1);
        let count = r.count;
        if count <= MAX_RESTORES {
            r.at = now;
            self.restoring.insert(key);
            self.pending.push(key);
            return;
        }
        // Without a clock there is no back-off to wait for: give up until the next change.
        let wait = now.map(|now| {
            let doublings = (count - MAX_RESTORES - 1).min(16);
            let wait = (Duration::from_secs(1) * (1u32 << doublings)).min(MAX_RESTORE_BACKOFF);
            r.at = Some(later(now, wait));
            later(now, wait)
        });
        if let Some(until) = wait {
            self.hold(key, Hold::Contested(until));
        }
        if count == MAX_RESTORES + 1 {
            tracing::warn!(
                "{key}: another writer keeps changing our route; restoring it with back-off"
            );
            self.events.push_back(FibEvent::RouteFailed {
                key,
                error: RouteError::Contested,
            });
        }
    }

    /// Whether a route of another protocol may ever be learned, whatever its devices: not
    /// the kernel's own connected routes, not redirects, in a watched table.
    fn candidate(&self, route: &Route) -> bool {
        self.config.learn.is_some()
            && route.protocol != PROTOCOL_KERNEL
            && route.protocol != PROTOCOL_REDIRECT
            && route.protocol != self.config.protocol
            && route.table != TABLE_LOCAL
            && self.config.tables.contains(&route.table)
    }

    /// The route as reported to the owner if it is learned: a [candidate](Self::candidate)
    /// on devices the `learn` patterns accept. Device indexes become names where the link
    /// is known (a route on an unknown link waits for it).
    fn learnable(&self, route: &Route) -> Option<Route> {
        let patterns = self.config.learn.as_ref()?;
        if !self.candidate(route) {
            return None;
        }
        let mut out = route.clone();
        if let RouteKind::Unicast { nexthops } = &mut out.kind {
            for nh in nexthops {
                if let Some(Device::Index(i)) = nh.dev {
                    let name = &self.links.get(&i)?.name;
                    if !patterns.accepts(name) {
                        return None;
                    }
                    nh.dev = Some(Device::Name(name.clone()));
                }
            }
        }
        Some(out)
    }

    fn rebuild_names(&mut self) {
        self.names = Arc::new(
            self.links
                .values()
                .map(|l| (l.name.clone(), l.index))
                .collect(),
        );
    }

    /// Recomputes connected prefixes and reports the differences.
    fn refresh_connected(&mut self) {
        let mut now = HashSet::new();
        if let Some(patterns) = &self.config.connected {
            for a in &self.addresses {
                let Some(link) = self.links.get(&a.ifindex) else {
                    continue;
                };
                if a.local_scope || !link.up || !link.running || !patterns.accepts(&link.name) {
                    continue;
                }
                now.insert(Connected {
                    prefix: a.address.trunc(),
                    address: a.address.addr(),
                    ifindex: a.ifindex,
                    ifname: link.name.clone(),
                });
            }
        }
        let mut gone: Vec<_> = self.connected.difference(&now).cloned().collect();
        let mut new: Vec<_> = now.difference(&self.connected).cloned().collect();
        gone.sort_by_key(|c| (c.ifindex, c.prefix));
        new.sort_by_key(|c| (c.ifindex, c.prefix));
        self.events
            .extend(gone.into_iter().map(FibEvent::ConnectedRemoved));
        self.events
            .extend(new.into_iter().map(FibEvent::ConnectedAdded));
        self.connected = now;
    }

    /// Takes the next event to report.
    pub fn poll_event(&mut self) -> Option<FibEvent> {
        self.events.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route::{NextHop, PROTOCOL_BIRD, PROTOCOL_BOOT};

    fn config() -> StateConfig {
        StateConfig {
            protocol: PROTOCOL_BIRD,
            tables: vec![254],
            learn: Some(InterfacePatterns::parse(r#"-"cali*", "*""#).unwrap()),
            connected: Some(InterfacePatterns::parse(r#"-"cali*", "*""#).unwrap()),
            damping: Some(Damping::default()),
        }
    }

    /// Writes everything due, applying it to `kernel` as the kernel would (all succeed);
    /// returns how many writes were made.
    fn write_all(st: &mut FibState, kernel: &mut HashMap<RouteKey, Route>) -> usize {
        let mut n = 0;
        loop {
            let ops = st.poll_ops(100);
            if ops.is_empty() {
                return n;
            }
            n += ops.len();
            for op in &ops {
                match op {
                    RouteOp::Replace(r) => {
                        kernel.insert(r.key(), r.clone());
                    }
                    RouteOp::Delete { key, .. } => {
                        kernel.remove(key);
                    }
                }
            }
            let len = ops.len();
            st.on_results(ops, vec![Ok(()); len]);
        }
    }

    /// Moves the clock to `t`, firing every timer on the way, and writes what is due.
    fn run_until(st: &mut FibState, kernel: &mut HashMap<RouteKey, Route>, t: Instant) -> usize {
        let mut n = 0;
        while let Some(due) = st.poll_timeout().filter(|due| *due <= t) {
            st.handle_timeout(due);
            n += write_all(st, kernel);
        }
        st.handle_timeout(t);
        n + write_all(st, kernel)
    }

    fn via(prefix: &str, gw: &str) -> Route {
        Route::unicast(
            prefix.parse().unwrap(),
            vec![NextHop::via(gw.parse().unwrap())],
        )
    }

    fn link(index: u32, name: &str) -> Link {
        Link {
            index,
            name: name.into(),
            up: true,
            running: true,
        }
    }

    fn reported(route: Route) -> ReportedRoute {
        ReportedRoute {
            route,
            cloned: false,
        }
    }

    fn events(st: &mut FibState) -> Vec<FibEvent> {
        std::iter::from_fn(|| st.poll_event()).collect()
    }

    #[test]
    fn a_written_route_is_kept_once_and_still_known_after_it_changes_or_goes() {
        let mut st = FibState::new(StateConfig {
            damping: None,
            ..config()
        });
        let mut kernel = HashMap::new();
        let a = via("10.0.0.0/24", "192.0.2.1");
        let b = via("10.0.0.0/24", "192.0.2.2");
        st.set(a.clone());
        assert_eq!(write_all(&mut st, &mut kernel), 1);
        // Written as desired: held once, reported as the kernel's.
        assert_eq!(st.kernel.get(&a.key()), Some(&InKernel::AsDesired));
        assert_eq!(st.kernel_routes().collect::<Vec<_>>(), vec![&a]);
        // A change detaches the kernel's copy: a flip back before the write costs nothing.
        st.set(b.clone());
        assert_eq!(st.kernel_routes().collect::<Vec<_>>(), vec![&a]);
        st.set(a.clone());
        assert_eq!(write_all(&mut st, &mut kernel), 0);
        // A real change is written; a remove is a delete of the route the kernel holds.
        st.set(b.clone());
        assert_eq!(write_all(&mut st, &mut kernel), 1);
        assert_eq!(kernel.get(&b.key()), Some(&b));
        st.remove(b.key());
        assert_eq!(st.kernel_routes().collect::<Vec<_>>(), vec![&b]);
        let ops = st.poll_ops(10);
        assert_eq!(
            ops,
            vec![RouteOp::Delete {
                key: b.key(),
                protocol: PROTOCOL_BIRD
            }]
        );
        st.on_results(ops, vec![Ok(())]);
        assert_eq!(st.kernel_len(), 0);
        // remove_all deletes everything desired.
        st.set(a.clone());
        st.set(via("10.0.1.0/24", "192.0.2.1"));
        assert_eq!(write_all(&mut st, &mut kernel), 2);
        st.remove_all();
        assert_eq!(write_all(&mut st, &mut kernel), 2);
        assert!(kernel.is_empty());
        assert_eq!(st.desired_len(), 0);
    }

    #[test]
    fn ten_flips_before_a_write_give_one_write_of_the_last_state() {
        let mut st = FibState::new(config());
        for i in 0..10 {
            st.set(via("10.0.0.0/24", &format!("192.0.2.{}", i + 1)));
        }
        let ops = st.poll_ops(100);
        assert_eq!(
            ops,
            vec![RouteOp::Replace(via("10.0.0.0/24", "192.0.2.10"))]
        );
        st.on_results(ops, vec![Ok(())]);
        // Flip away and back before the next write: nothing to write.
        st.set(via("10.0.0.0/24", "192.0.2.1"));
        st.set(via("10.0.0.0/24", "192.0.2.10"));
        assert!(st.poll_ops(100).is_empty());
        // Set then remove before a write of something never installed: nothing either.
        st.set(via("10.9.0.0/24", "192.0.2.1"));
        st.remove(via("10.9.0.0/24", "192.0.2.1").key());
        assert!(st.poll_ops(100).is_empty());
    }

    #[test]
    fn the_queue_keeps_first_in_order_and_respects_the_batch_size() {
        let mut st = FibState::new(config());
        for i in 0..5 {
            st.set(via(&format!("10.{i}.0.0/16"), "192.0.2.1"));
        }
        st.set(via("10.0.0.0/16", "192.0.2.9"));
        let first = st.poll_ops(2);
        assert_eq!(first.len(), 2);
        assert_eq!(first[0], RouteOp::Replace(via("10.0.0.0/16", "192.0.2.9")));
        assert_eq!(st.poll_ops(10).len(), 3);
    }

    #[test]
    fn diff_replaces_what_differs_and_deletes_stale_only_when_asked() {
        let a = via("10.1.0.0/24", "192.0.2.1");
        let b = via("10.2.0.0/24", "192.0.2.1");
        let b2 = via("10.2.0.0/24", "192.0.2.2");
        let c = Route::blackhole("10.3.0.0/24".parse().unwrap());
        let desired: HashMap<_, _> = [&a, &b2].iter().map(|r| (r.key(), (*r).clone())).collect();
        let kernel: HashMap<_, _> = [&a, &b, &c]
            .iter()
            .map(|r| (r.key(), (*r).clone()))
            .collect();
        let none = |_: &str| None;
        assert_eq!(
            diff(&desired, &kernel, false, &none),
            vec![RouteOp::Replace(b2.clone())]
        );
        assert_eq!(
            diff(&desired, &kernel, true, &none),
            vec![
                RouteOp::Replace(b2),
                RouteOp::Delete {
                    key: c.key(),
                    protocol: PROTOCOL_BIRD
                }
            ]
        );
    }

    #[test]
    fn same_route_resolves_names_and_lets_the_kernel_pick_a_device() {
        let gw = "192.0.2.1".parse().unwrap();
        let kernel = Route::unicast(
            "10.0.0.0/24".parse().unwrap(),
            vec![NextHop::onlink(gw, Device::Index(5))],
        );
        let by_name = Route::unicast(
            "10.0.0.0/24".parse().unwrap(),
            vec![NextHop::onlink(gw, "tunl0")],
        );
        let tunl0 = |n: &str| (n == "tunl0").then_some(5);
        assert!(same_route(&by_name, &kernel, &tunl0));
        assert!(!same_route(&by_name, &kernel, &|_| Some(6)));
        let no_dev = Route::unicast(
            "10.0.0.0/24".parse().unwrap(),
            vec![NextHop {
                onlink: true,
                ..NextHop::via(gw)
            }],
        );
        assert!(same_route(&no_dev, &kernel, &tunl0));
        let not_onlink = Route::unicast(
            "10.0.0.0/24".parse().unwrap(),
            vec![NextHop::via_dev(gw, Device::Index(5))],
        );
        assert!(!same_route(&not_onlink, &kernel, &tunl0));
        assert!(!same_route(
            &kernel.clone().with_protocol(PROTOCOL_BOOT),
            &kernel,
            &tunl0
        ));
    }

    #[test]
    fn reconcile_keeps_matching_routes_and_prunes_stale_ones_after_convergence() {
        let mut st = FibState::new(config());
        let kept = via("10.1.0.0/24", "192.0.2.1");
        let stale = via("10.2.0.0/24", "192.0.2.1");
        let foreign = via("10.3.0.0/24", "192.0.2.1").with_protocol(PROTOCOL_BOOT);
        st.set(kept.clone());
        st.load(
            vec![],
            vec![],
            vec![
                reported(kept.clone()),
                reported(stale.clone()),
                reported(foreign),
            ],
        );
        // Graceful restart: nothing to write yet (kept matches), stale waits.
        assert!(st.poll_ops(100).is_empty());
        st.converge();
        assert_eq!(
            st.poll_ops(100),
            vec![RouteOp::Delete {
                key: stale.key(),
                protocol: PROTOCOL_BIRD
            }]
        );
        assert!(events(&mut st).contains(&FibEvent::Reconciled { stale: 1 }));
    }

    #[test]
    fn a_fight_over_our_route_is_reported_once_and_backed_off_not_given_up() {
        let mut st = FibState::new(config());
        let t0 = Instant::now();
        st.advance(t0);
        st.converge();
        let r = via("10.1.0.0/24", "192.0.2.1");
        st.set(r.clone());
        let ops = st.poll_ops(10);
        st.on_results(ops, vec![Ok(())]);
        events(&mut st);
        // Someone deletes it right after each restore: the first five go back at once.
        for _ in 0..MAX_RESTORES {
            st.on_kernel(KernelMessage::DelRoute(reported(r.clone())));
            let ops = st.poll_ops(10);
            assert_eq!(ops, vec![RouteOp::Replace(r.clone())]);
            st.on_results(ops, vec![Ok(())]);
        }
        assert!(events(&mut st).is_empty());
        // Then each waits twice as long as the one before, and the fight is reported once.
        let mut t = t0;
        for wait in [1, 2, 4, 8, 16, 32, 60, 60] {
            st.on_kernel(KernelMessage::DelRoute(reported(r.clone())));
            assert!(st.poll_ops(10).is_empty(), "backed off, not at once");
            let due = st.poll_timeout().expect("a restore is scheduled");
            assert_eq!(due, t + Duration::from_secs(wait));
            // More changes while it waits do not push it further out.
            st.on_kernel(KernelMessage::NewRoute(reported(via(
                "10.1.0.0/24",
                "192.0.2.9",
            ))));
            assert_eq!(st.poll_timeout(), Some(due));
            st.handle_timeout(due - Duration::from_millis(1));
            assert!(st.poll_ops(10).is_empty());
            st.handle_timeout(due);
            let ops = st.poll_ops(10);
            assert_eq!(
                ops,
                vec![RouteOp::Replace(r.clone())],
                "restored at {wait} s"
            );
            st.on_results(ops, vec![Ok(())]);
            t = due;
        }
        assert_eq!(
            events(&mut st),
            vec![FibEvent::RouteFailed {
                key: r.key(),
                error: RouteError::Contested
            }]
        );
        // Left alone for longer than the window, the next change is restored at once.
        st.advance(t + RESTORE_WINDOW * 2);
        st.on_kernel(KernelMessage::DelRoute(reported(r.clone())));
        assert_eq!(st.poll_ops(10), vec![RouteOp::Replace(r.clone())]);
        // A new desire resets the count.
        st.set(r.clone());
        assert_eq!(st.poll_ops(10), vec![RouteOp::Replace(r)]);
    }

    #[test]
    fn restores_are_not_damped() {
        let mut st = FibState::new(config());
        let t0 = Instant::now();
        st.advance(t0);
        st.converge();
        let r = via("10.1.0.0/24", "192.0.2.1");
        let mut kernel = HashMap::new();
        st.set(r.clone());
        write_all(&mut st, &mut kernel);
        for i in 1..=MAX_RESTORES {
            st.advance(t0 + Duration::from_millis(u64::from(i)));
            kernel.remove(&r.key());
            st.on_kernel(KernelMessage::DelRoute(reported(r.clone())));
            assert_eq!(write_all(&mut st, &mut kernel), 1);
        }
        assert_eq!(kernel.get(&r.key()), Some(&r));
    }

    #[test]
    fn a_stable_route_is_deleted_at_once_a_flapping_one_after_a_hold_down() {
        let mut st = FibState::new(config());
        let t0 = Instant::now();
        st.advance(t0);
        st.converge();
        let mut kernel = HashMap::new();
        let a = via("10.1.0.0/24", "192.0.2.1");
        st.set(a.clone());
        assert_eq!(write_all(&mut st, &mut kernel), 1);
        // Stable: withdrawn, deleted at once.
        st.remove(a.key());
        assert_eq!(
            st.poll_ops(10),
            vec![RouteOp::Delete {
                key: a.key(),
                protocol: PROTOCOL_BIRD
            }]
        );
        let mut kernel = HashMap::new();
        let mut st = FibState::new(config());
        st.advance(t0);
        st.converge();
        st.set(a.clone());
        write_all(&mut st, &mut kernel);
        // It changes (one write), then is withdrawn and comes back within the hold-down:
        // the kernel sees the change and nothing else — no delete, no gap.
        let b = via("10.1.0.0/24", "192.0.2.2");
        st.advance(t0 + Duration::from_millis(100));
        st.set(b.clone());
        assert_eq!(write_all(&mut st, &mut kernel), 1);
        st.advance(t0 + Duration::from_millis(200));
        st.remove(a.key());
        assert_eq!(write_all(&mut st, &mut kernel), 0, "the delete is held");
        assert_eq!(kernel.get(&a.key()), Some(&b));
        st.advance(t0 + Duration::from_millis(700));
        st.set(b.clone());
        assert_eq!(
            run_until(&mut st, &mut kernel, t0 + Duration::from_millis(1500)),
            0
        );
        assert_eq!(kernel.get(&a.key()), Some(&b));
        // Withdrawn and back with another next hop within the hold-down: one replace.
        st.advance(t0 + Duration::from_secs(2));
        st.remove(a.key());
        assert_eq!(write_all(&mut st, &mut kernel), 0);
        st.advance(t0 + Duration::from_millis(2500));
        st.set(a.clone());
        assert_eq!(write_all(&mut st, &mut kernel), 1);
        assert_eq!(kernel.get(&a.key()), Some(&a));
        // Withdrawn for good: deleted when the hold-down ends.
        st.advance(t0 + Duration::from_secs(3));
        st.remove(a.key());
        assert_eq!(write_all(&mut st, &mut kernel), 0);
        let due = st.poll_timeout().unwrap();
        assert_eq!(due, t0 + Duration::from_secs(4));
        assert_eq!(run_until(&mut st, &mut kernel, due), 1);
        assert!(kernel.is_empty());
    }

    /// A route withdrawn for `down` and back for `up`, `cycles` times, next to a steady
    /// one; returns the kernel writes made during the storm and the longest time the
    /// kernel went without a write of the route (ms), then checks that it settles.
    fn storm(down: u64, up: u64, cycles: u64, end_withdrawn: bool) -> (usize, u64) {
        let mut st = FibState::new(config());
        let t0 = Instant::now();
        st.advance(t0);
        st.converge();
        let mut kernel = HashMap::new();
        let r = via("10.1.0.0/24", "192.0.2.1");
        let steady = via("10.2.0.0/24", "192.0.2.1");
        st.set(r.clone());
        st.set(steady.clone());
        assert_eq!(write_all(&mut st, &mut kernel), 2);
        let ms = Duration::from_millis;
        let (mut writes, mut quiet, mut last_write) = (0, 0, t0);
        let mut t = t0;
        for _ in 0..cycles {
            for (wait, withdraw) in [(up, true), (down, false)] {
                t += ms(wait);
                let before = kernel.clone();
                writes += run_until(&mut st, &mut kernel, t);
                if kernel != before {
                    last_write = t;
                }
                quiet = quiet.max((t - last_write).as_millis() as u64);
                if withdraw {
                    st.remove(r.key());
                } else {
                    st.set(r.clone());
                }
            }
        }
        if end_withdrawn {
            st.remove(r.key());
        }
        // Settled: the latest desired state is written within the longest hold (plus a
        // delete's hold-down), and nothing else is pending.
        let d = Damping::default();
        let settled = t + d.max_hold + d.hold_down + ms(10);
        run_until(&mut st, &mut kernel, settled);
        let want = (!end_withdrawn).then_some(&r);
        assert_eq!(
            kernel.get(&r.key()),
            want,
            "settled to the last desired state"
        );
        assert_eq!(kernel.get(&steady.key()), Some(&steady), "others untouched");
        assert!(st.poll_timeout().is_none_or(|due| due > settled));
        (writes, quiet)
    }

    #[test]
    fn a_flap_storm_costs_a_handful_of_kernel_writes_then_one_when_settled() {
        // (down ms, up ms): 60 flaps of each. Undamped, each flap is 2 writes: 120.
        for (down, up) in [(500, 500), (1500, 500), (1500, 1500), (3000, 3000)] {
            for end_withdrawn in [false, true] {
                let (writes, quiet) = storm(down, up, 60, end_withdrawn);
                eprintln!("flapping {down}/{up} ms: {writes} writes, held up to {quiet} ms");
                assert!(
                    writes <= 4,
                    "{writes} kernel writes flapping {down}/{up} ms for 60 flaps"
                );
                assert!(
                    quiet >= 30_000,
                    "held {quiet} ms at most, flapping {down}/{up} ms"
                );
            }
        }
    }

    /// 10.1.0.0/24 via 192.0.2.`g`.
    fn gw(g: u8) -> Route {
        via("10.1.0.0/24", &format!("192.0.2.{g}"))
    }

    /// 10.1.0.0/24 installed via gateway 1, then its next hop changed to 2, 3, … `last`,
    /// 100 ms apart, each written as far as damping lets it; returns the state, the kernel
    /// and the time of the last change.
    fn next_hop_storm(last: u8) -> (FibState, HashMap<RouteKey, Route>, Instant) {
        let mut st = FibState::new(config());
        let mut t = Instant::now();
        st.advance(t);
        st.converge();
        let mut kernel = HashMap::new();
        st.set(gw(1));
        write_all(&mut st, &mut kernel);
        for g in 2..=last {
            t += Duration::from_millis(100);
            st.advance(t);
            st.set(gw(g));
            write_all(&mut st, &mut kernel);
        }
        (st, kernel, t)
    }

    #[test]
    fn suppression_holds_the_last_written_state_and_ends_with_the_latest_desired_one() {
        // Next-hop changes 100 ms apart: six go through (the penalty decays a little
        // between them), the seventh would reach 6 and is suppressed.
        let (mut st, mut kernel, t) = next_hop_storm(20);
        assert_eq!(
            kernel.get(&gw(1).key()),
            Some(&gw(7)),
            "held at the last written"
        );
        let due = st.poll_timeout().unwrap();
        assert!(due > t + Duration::from_secs(5));
        assert!(due <= t + Damping::default().max_hold + Duration::from_secs(1));
        assert_eq!(run_until(&mut st, &mut kernel, due), 1);
        assert_eq!(kernel.get(&gw(1).key()), Some(&gw(20)));
    }

    #[test]
    fn a_suppressed_route_withdrawn_and_announced_again_is_charged_for_both() {
        let (mut st, _, _) = next_hop_storm(8);
        let key = gw(1).key();
        let penalty = |st: &FibState| st.flaps.get(&key).map(|f| (f.suppressed, f.penalty));
        let (suppressed, before) = penalty(&st).unwrap();
        assert!(suppressed, "suppressed after the next-hop storm");
        st.remove(key);
        st.set(gw(8));
        let (_, after) = penalty(&st).unwrap();
        assert!(
            after >= before + 1.99,
            "withdraw + announce of a suppressed key: penalty {before} -> {after}"
        );
    }

    #[test]
    fn absurd_damping_settings_neither_panic_nor_stall() {
        let t0 = Instant::now();
        for d in [
            Damping {
                hold_down: Duration::MAX,
                half_life: Duration::MAX,
                max_hold: Duration::MAX,
                ..Damping::default()
            },
            Damping {
                hold_down: Duration::ZERO,
                half_life: Duration::ZERO,
                suppress: 0.0,
                reuse: 0.0,
                max_hold: Duration::ZERO,
            },
            Damping {
                suppress: f64::NAN,
                reuse: f64::INFINITY,
                ..Damping::default()
            },
        ] {
            let mut st = FibState::new(StateConfig {
                damping: Some(d),
                ..config()
            });
            st.advance(t0);
            let mut kernel = HashMap::new();
            let r = via("10.1.0.0/24", "192.0.2.1");
            for i in 0..20u64 {
                let t = t0 + Duration::from_millis(10 * i);
                run_until(&mut st, &mut kernel, t);
                if i % 2 == 0 {
                    st.set(r.clone());
                } else {
                    st.remove(r.key());
                }
            }
            // Whatever the settings, the last state is written in a bounded number of steps.
            write_all(&mut st, &mut kernel);
            let mut steps = 0;
            while kernel.contains_key(&r.key()) {
                let due = st.poll_timeout().expect("a held write is due some time");
                run_until(&mut st, &mut kernel, due);
                steps += 1;
                assert!(steps < 100, "{d:?} stalls");
                assert!(
                    due <= t0 + Duration::from_secs(86_400 * 2),
                    "{d:?} waits too long"
                );
            }
        }
    }

    #[test]
    fn without_damping_every_change_is_written() {
        let mut st = FibState::new(StateConfig {
            damping: None,
            ..config()
        });
        let t0 = Instant::now();
        st.advance(t0);
        let mut kernel = HashMap::new();
        let r = via("10.1.0.0/24", "192.0.2.1");
        let mut writes = 0;
        for i in 0..20u64 {
            st.advance(t0 + Duration::from_millis(i));
            st.set(r.clone());
            writes += write_all(&mut st, &mut kernel);
            st.remove(r.key());
            writes += write_all(&mut st, &mut kernel);
        }
        assert_eq!(writes, 40);
        assert!(st.poll_timeout().is_none());
    }

    #[test]
    fn a_foreign_route_that_displaces_ours_is_left_alone_until_it_goes() {
        let mut st = FibState::new(config());
        st.converge();
        let ours = via("10.1.0.0/24", "192.0.2.1");
        st.set(ours.clone());
        let ops = st.poll_ops(10);
        st.on_results(ops, vec![Ok(())]);
        let theirs = via("10.1.0.0/24", "192.0.2.9").with_protocol(80);
        st.on_kernel(KernelMessage::NewRoute(reported(theirs.clone())));
        assert!(st.poll_ops(10).is_empty(), "never fight another protocol");
        assert_eq!(st.kernel_len(), 0);
        st.on_kernel(KernelMessage::DelRoute(reported(theirs)));
        assert_eq!(st.poll_ops(10), vec![RouteOp::Replace(ours)]);
    }

    #[test]
    fn a_stray_route_of_our_protocol_is_deleted_once_converged() {
        let mut st = FibState::new(config());
        let r = via("10.7.0.0/24", "192.0.2.1");
        st.on_kernel(KernelMessage::NewRoute(reported(r.clone())));
        assert!(st.poll_ops(10).is_empty());
        st.converge();
        assert_eq!(
            st.poll_ops(10),
            vec![RouteOp::Delete {
                key: r.key(),
                protocol: PROTOCOL_BIRD
            }]
        );
    }

    #[test]
    fn learning_follows_the_interface_globs() {
        let mut st = FibState::new(config());
        st.load(vec![link(2, "eth0"), link(3, "cali123")], vec![], vec![]);
        events(&mut st);
        let on = |dev: u32, p: &str| {
            Route::unicast(p.parse().unwrap(), vec![NextHop::dev(Device::Index(dev))])
                .with_protocol(PROTOCOL_BOOT)
        };
        st.on_kernel(KernelMessage::NewRoute(reported(on(2, "10.5.0.0/24"))));
        st.on_kernel(KernelMessage::NewRoute(reported(on(3, "10.6.0.1/32"))));
        st.on_kernel(KernelMessage::NewRoute(reported(
            Route::blackhole("10.8.0.0/26".parse().unwrap()).with_protocol(80),
        )));
        let named = Route::unicast("10.5.0.0/24".parse().unwrap(), vec![NextHop::dev("eth0")])
            .with_protocol(PROTOCOL_BOOT);
        let blackhole = Route::blackhole("10.8.0.0/26".parse().unwrap()).with_protocol(80);
        assert_eq!(
            events(&mut st),
            vec![
                FibEvent::LearnedAdded(named.clone()),
                FibEvent::LearnedAdded(blackhole)
            ]
        );
        st.on_kernel(KernelMessage::DelRoute(reported(on(2, "10.5.0.0/24"))));
        assert_eq!(events(&mut st), vec![FibEvent::LearnedRemoved(named)]);
        // Kernel-made routes and our own are never learned.
        st.on_kernel(KernelMessage::NewRoute(reported(
            on(2, "10.9.0.0/24").with_protocol(PROTOCOL_KERNEL),
        )));
        st.on_kernel(KernelMessage::NewRoute(reported(
            on(2, "10.9.1.0/24").with_protocol(PROTOCOL_BIRD),
        )));
        assert!(events(&mut st).is_empty());
    }

    #[test]
    fn learning_is_rechecked_when_a_link_appears_is_renamed_or_goes() {
        let mut st = FibState::new(config());
        st.load(vec![link(2, "eth0")], vec![], vec![]);
        events(&mut st);
        let on = |dev: u32, p: &str| {
            Route::unicast(p.parse().unwrap(), vec![NextHop::dev(Device::Index(dev))])
                .with_protocol(PROTOCOL_BOOT)
        };
        let named = |dev: &str, p: &str| {
            Route::unicast(p.parse().unwrap(), vec![NextHop::dev(dev)]).with_protocol(PROTOCOL_BOOT)
        };
        // A route on a link not known yet: learned when the link shows up.
        st.on_kernel(KernelMessage::NewRoute(reported(on(7, "10.7.0.0/24"))));
        assert!(events(&mut st).is_empty());
        st.on_kernel(KernelMessage::NewLink(link(7, "veth7")));
        assert_eq!(
            events(&mut st),
            vec![
                FibEvent::Link(link(7, "veth7")),
                FibEvent::LearnedAdded(named("veth7", "10.7.0.0/24"))
            ]
        );
        // Renamed into an excluded name (`-"cali*"`): no longer learned; and back.
        st.on_kernel(KernelMessage::NewLink(link(7, "cali7")));
        assert_eq!(
            events(&mut st),
            vec![
                FibEvent::Link(link(7, "cali7")),
                FibEvent::LearnedRemoved(named("veth7", "10.7.0.0/24"))
            ]
        );
        st.on_kernel(KernelMessage::NewLink(link(7, "eth7")));
        assert_eq!(
            events(&mut st),
            vec![
                FibEvent::Link(link(7, "eth7")),
                FibEvent::LearnedAdded(named("eth7", "10.7.0.0/24"))
            ]
        );
        // The link is deleted: its IPv4 routes went silently, so they are no longer learned.
        st.on_kernel(KernelMessage::DelLink(link(7, "eth7")));
        assert_eq!(
            events(&mut st),
            vec![
                FibEvent::LinkRemoved(link(7, "eth7")),
                FibEvent::LearnedRemoved(named("eth7", "10.7.0.0/24"))
            ]
        );
        // A dump after a resync replaces the others' routes too.
        st.on_kernel(KernelMessage::NewRoute(reported(on(2, "10.5.0.0/24"))));
        st.on_kernel(KernelMessage::NewRoute(reported(on(2, "10.6.0.0/24"))));
        events(&mut st);
        st.load_routes(vec![reported(on(2, "10.6.0.0/24"))]);
        assert_eq!(
            events(&mut st),
            vec![FibEvent::LearnedRemoved(named("eth0", "10.5.0.0/24"))]
        );
    }

    #[test]
    fn connected_prefixes_follow_addresses_links_and_globs() {
        let mut st = FibState::new(config());
        let addr = |i: u32, a: &str| Address {
            ifindex: i,
            address: a.parse().unwrap(),
            local_scope: false,
        };
        st.load(
            vec![link(2, "eth0"), link(3, "cali9")],
            vec![addr(2, "192.0.2.5/24"), addr(3, "198.51.100.1/24")],
            vec![],
        );
        let c = Connected {
            prefix: "192.0.2.0/24".parse().unwrap(),
            address: "192.0.2.5".parse().unwrap(),
            ifindex: 2,
            ifname: "eth0".into(),
        };
        assert!(events(&mut st).contains(&FibEvent::ConnectedAdded(c.clone())));
        let down = Link {
            running: false,
            ..link(2, "eth0")
        };
        st.on_kernel(KernelMessage::NewLink(down.clone()));
        assert_eq!(
            events(&mut st),
            vec![FibEvent::Link(down), FibEvent::ConnectedRemoved(c.clone())]
        );
        assert!(
            st.take_needs_resync(),
            "IPv4 routes may have gone with the link"
        );
        st.on_kernel(KernelMessage::NewLink(link(2, "eth0")));
        assert_eq!(
            events(&mut st),
            vec![FibEvent::Link(link(2, "eth0")), FibEvent::ConnectedAdded(c)]
        );
    }

    #[test]
    fn a_route_waiting_for_its_device_is_retried_when_the_device_appears() {
        let mut st = FibState::new(config());
        st.converge();
        let r = Route::unicast(
            "10.1.0.0/24".parse().unwrap(),
            vec![NextHop::onlink("192.0.2.1".parse().unwrap(), "tunl0")],
        );
        st.set(r.clone());
        let ops = st.poll_ops(10);
        st.on_results(ops, vec![Err(RouteError::NoSuchDevice("tunl0".into()))]);
        assert_eq!(st.failed().count(), 1);
        assert!(st.poll_ops(10).is_empty());
        st.on_kernel(KernelMessage::NewLink(link(9, "tunl0")));
        assert_eq!(st.poll_ops(10), vec![RouteOp::Replace(r)]);
    }

    #[test]
    fn a_key_in_flight_waits_for_its_result_before_it_is_written_again() {
        let mut st = FibState::new(config());
        let a = via("10.1.0.0/16", "192.0.2.1");
        let b = via("10.1.0.0/16", "192.0.2.2");
        st.set(a.clone());
        let first = st.poll_batch(10);
        assert_eq!(first, vec![RouteOp::Replace(a.clone())]);
        assert_eq!(st.in_flight_len(), 1);
        // Changed to b and back to a while a is being written: nothing may be decided
        // against the kernel state before a's write is recorded.
        st.set(b.clone());
        assert!(st.poll_batch(10).is_empty());
        st.set(a.clone());
        assert!(st.poll_batch(10).is_empty());
        st.on_results(first, vec![Ok(())]);
        assert_eq!(st.in_flight_len(), 0);
        // a is what the kernel holds and what is desired: no write.
        assert!(st.poll_batch(10).is_empty());
        // Changed while in flight and not back: written once the result is in.
        st.set(b.clone());
        let second = st.poll_batch(10);
        st.set(a.clone());
        assert!(st.poll_batch(10).is_empty());
        st.on_results(second, vec![Ok(())]);
        assert_eq!(st.poll_batch(10), vec![RouteOp::Replace(a)]);
    }

    #[test]
    fn an_abandoned_batch_leaves_nothing_in_flight() {
        let mut st = FibState::new(config());
        let a = via("10.1.0.0/16", "192.0.2.1");
        st.set(a.clone());
        let ops = st.poll_batch(10);
        st.set(via("10.1.0.0/16", "192.0.2.2"));
        st.abandon(&ops);
        assert_eq!(st.in_flight_len(), 0);
        // The change that waited is queued again.
        assert_eq!(st.pending_len(), 1);
    }

    #[test]
    fn a_long_queue_is_written_in_spread_order_each_key_once() {
        let mut st = FibState::new(config());
        let routes: Vec<Route> = (0..64u32)
            .map(|i| via(&format!("10.{i}.0.0/16"), "192.0.2.1"))
            .collect();
        for r in &routes {
            st.set(r.clone());
        }
        let mut written = Vec::new();
        loop {
            let ops = st.poll_batch(4);
            if ops.is_empty() {
                break;
            }
            written.extend(ops.iter().map(RouteOp::key));
            let n = ops.len();
            st.on_results(ops, vec![Ok(()); n]);
        }
        let mut expected: Vec<RouteKey> = routes.iter().map(Route::key).collect();
        expected.sort_unstable_by_key(spread_order);
        assert_eq!(written, expected);
        // 10.0, then 10.32 (the next bit), then 10.16 and 10.48 …
        assert_eq!(written[1].prefix.to_string(), "10.32.0.0/16");
        assert_eq!(written[2].prefix.to_string(), "10.16.0.0/16");
        // A short queue keeps its order.
        st.set(via("10.9.0.0/16", "192.0.2.2"));
        st.set(via("10.1.0.0/16", "192.0.2.2"));
        let keys: Vec<String> = st
            .poll_batch(4)
            .iter()
            .map(|o| o.key().prefix.to_string())
            .collect();
        assert_eq!(keys, ["10.9.0.0/16", "10.1.0.0/16"]);
    }

    #[test]
    fn a_late_delete_notice_costs_a_write_not_a_stale_route() {
        // Our route a was deleted by someone, and we wrote b at the key before reading the
        // notice of a's deletion; then b stops being desired. The notice must not make us
        // believe the key is empty: b is deleted.
        let mut st = FibState::new(config());
        st.converge();
        let a = via("10.1.0.0/16", "192.0.2.1");
        let b = via("10.1.0.0/16", "192.0.2.2");
        st.set(a.clone());
        let ops = st.poll_ops(10);
        st.on_results(ops, vec![Ok(())]);
        st.set(b.clone());
        let ops = st.poll_ops(10);
        st.on_results(ops, vec![Ok(())]);
        st.remove(b.key());
        st.on_kernel(KernelMessage::DelRoute(reported(a.clone())));
        assert_eq!(
            st.poll_ops(10),
            vec![RouteOp::Delete {
                key: b.key(),
                protocol: PROTOCOL_BIRD
            }]
        );
        // And when it is desired again, it is written (whatever the notice meant).
        st.set(b.clone());
        st.on_kernel(KernelMessage::DelRoute(reported(a)));
        assert_eq!(st.poll_ops(10), vec![RouteOp::Replace(b)]);
    }

    mod prop {
        use super::*;
        use proptest::prelude::*;

        #[derive(Debug, Clone)]
        enum Step {
            Set(u8, u8),
            Remove(u8),
            Write(usize),
            /// Someone else deletes the kernel route at this key.
            Tamper(u8),
            /// Time passes (milliseconds).
            Wait(u16),
        }

        fn step() -> impl Strategy<Value = Step> {
            prop_oneof![
                (0u8..6, 0u8..3).prop_map(|(k, g)| Step::Set(k, g)),
                (0u8..6).prop_map(Step::Remove),
                (1usize..5).prop_map(Step::Write),
                (0u8..6).prop_map(Step::Tamper),
                (0u16..3000).prop_map(Step::Wait),
            ]
        }

        /// Damping off, the defaults, or any settings at all (out-of-range ones included).
        fn damping() -> impl Strategy<Value = Option<Damping>> {
            let ms = |max: u64| (0..max).prop_map(Duration::from_millis);
            prop_oneof![
                Just(None),
                Just(Some(Damping::default())),
                (
                    ms(3000),
                    ms(30_000),
                    -1.0f64..10.0,
                    -1.0f64..10.0,
                    ms(120_000)
                )
                    .prop_map(
                        |(hold_down, half_life, suppress, reuse, max_hold)| Some(Damping {
                            hold_down,
                            half_life,
                            suppress,
                            reuse,
                            max_hold,
                        })
                    ),
            ]
        }

        fn route(k: u8, g: u8) -> Route {
            via(&format!("10.{k}.0.0/16"), &format!("192.0.2.{}", g + 1))
        }

        /// Applies ops to a model kernel the way the kernel would, and reports success.
        fn apply(kernel: &mut HashMap<RouteKey, Route>, st: &mut FibState, ops: Vec<RouteOp>) {
            for op in &ops {
                match op {
                    RouteOp::Replace(r) => {
                        kernel.insert(r.key(), r.clone());
                    }
                    RouteOp::Delete { key, .. } => {
                        kernel.remove(key);
                    }
                }
            }
            let n = ops.len();
            st.on_results(ops, vec![Ok(()); n]);
        }

        proptest! {
            /// Whatever happens — flaps, damping, fights with another writer — once the queue
            /// is drained and held writes have come due, the kernel holds exactly the
            /// desired routes, and no write ever repeats what the kernel already has.
            #[test]
            fn the_kernel_converges_to_the_desired_set(
                steps in proptest::collection::vec(step(), 0..60),
                damping in damping(),
            ) {
                let mut st = FibState::new(StateConfig { damping, ..config() });
                st.converge();
                let mut now = Instant::now();
                st.advance(now);
                let mut kernel: HashMap<RouteKey, Route> = HashMap::new();
                let mut desired: HashMap<RouteKey, Route> = HashMap::new();
                for s in steps {
                    match s {
                        Step::Set(k, g) => {
                            desired.insert(route(k, g).key(), route(k, g));
                            st.set(route(k, g));
                        }
                        Step::Remove(k) => {
                            desired.remove(&route(k, 0).key());
                            st.remove(route(k, 0).key());
                        }
                        Step::Write(n) => {
                            let ops = st.poll_ops(n);
                            for op in &ops {
                                if let RouteOp::Replace(r) = op {
                                    prop_assert_ne!(kernel.get(&r.key()), Some(r));
                                }
                            }
                            apply(&mut kernel, &mut st, ops);
                        }
                        Step::Wait(ms) => {
                            now += Duration::from_millis(u64::from(ms));
                            st.handle_timeout(now);
                        }
                        Step::Tamper(k) => {
                            if let Some(r) = kernel.remove(&route(k, 0).key()) {
                                st.on_kernel(KernelMessage::DelRoute(reported(r)));
                            }
                        }
                    }
                }
                let mut rounds = 0;
                loop {
                    rounds += 1;
                    prop_assert!(rounds < 10_000, "the state never settles");
                    let ops = st.poll_ops(3);
                    if ops.is_empty() {
                        // Held writes (damping) are due later: let the time come.
                        match st.poll_timeout() {
                            Some(t) => st.handle_timeout(t),
                            None => break,
                        }
                        continue;
                    }
                    apply(&mut kernel, &mut st, ops);
                }
                prop_assert_eq!(kernel, desired);
            }

            /// The same with writes in flight, as the driver's writer thread makes them: up
            /// to three batches handed out by `poll_batch`, each written to the kernel at
            /// some point and its results reported later, in order; the desired state keeps
            /// changing meanwhile, and notifications of tampering are applied only when no
            /// batch is in flight (as the driver does). The kernel still ends as desired.
            #[test]
            fn the_kernel_converges_with_batches_in_flight(
                steps in proptest::collection::vec(pipelined_step(), 0..80),
                damping in damping(),
            ) {
                let mut st = FibState::new(StateConfig { damping, ..config() });
                st.converge();
                let mut now = Instant::now();
                st.advance(now);
                let mut kernel: HashMap<RouteKey, Route> = HashMap::new();
                let mut desired: HashMap<RouteKey, Route> = HashMap::new();
                // Batches in flight, oldest first, and whether the kernel has done them.
                let mut flight: VecDeque<(Vec<RouteOp>, bool)> = VecDeque::new();
                let mut notes: Vec<KernelMessage> = Vec::new();
                for s in steps {
                    match s {
                        Piped::Step(Step::Set(k, g)) => {
                            desired.insert(route(k, g).key(), route(k, g));
                            st.set(route(k, g));
                        }
                        Piped::Step(Step::Remove(k)) => {
                            desired.remove(&route(k, 0).key());
                            st.remove(route(k, 0).key());
                        }
                        Piped::Step(Step::Write(n)) => {
                            if flight.len() < 3 {
                                let ops = st.poll_batch(n);
                                if !ops.is_empty() {
                                    flight.push_back((ops, false));
                                }
                            }
                        }
                        Piped::Step(Step::Wait(ms)) => {
                            now += Duration::from_millis(u64::from(ms));
                            st.handle_timeout(now);
                        }
                        Piped::Step(Step::Tamper(k)) => {
                            if let Some(r) = kernel.remove(&route(k, 0).key()) {
                                notes.push(KernelMessage::DelRoute(reported(r)));
                            }
                        }
                        Piped::KernelWrites => {
                            if let Some(b) = flight.iter_mut().find(|b| !b.1) {
                                write_model(&mut kernel, &b.0);
                                b.1 = true;
                            }
                        }
                        Piped::Complete => {
                            if let Some((ops, written)) = flight.pop_front() {
                                if !written {
                                    write_model(&mut kernel, &ops);
                                }
                                let n = ops.len();
                                st.on_results(ops, vec![Ok(()); n]);
                            }
                        }
                    }
                    if flight.is_empty() {
                        for m in notes.drain(..) {
                            st.on_kernel(m);
                        }
                    }
                }
                for (ops, written) in flight.drain(..) {
                    if !written {
                        write_model(&mut kernel, &ops);
                    }
                    let n = ops.len();
                    st.on_results(ops, vec![Ok(()); n]);
                }
                for m in notes.drain(..) {
                    st.on_kernel(m);
                }
                prop_assert_eq!(st.in_flight_len(), 0);
                let mut rounds = 0;
                loop {
                    rounds += 1;
                    prop_assert!(rounds < 10_000, "the state never settles");
                    let ops = st.poll_batch(3);
                    if ops.is_empty() {
                        match st.poll_timeout() {
                            Some(t) => st.handle_timeout(t),
                            None => break,
                        }
                        continue;
                    }
                    apply(&mut kernel, &mut st, ops);
                }
                prop_assert_eq!(kernel, desired);
            }
        }

        #[derive(Debug, Clone)]
        enum Piped {
            Step(Step),
            /// The writer thread writes the oldest batch it has not written yet.
            KernelWrites,
            /// The oldest batch's results come back.
            Complete,
        }

        fn pipelined_step() -> impl Strategy<Value = Piped> {
            prop_oneof![
                4 => step().prop_map(Piped::Step),
                1 => Just(Piped::KernelWrites),
                1 => Just(Piped::Complete),
            ]
        }

        /// What the kernel does with a batch (every op succeeds).
        fn write_model(kernel: &mut HashMap<RouteKey, Route>, ops: &[RouteOp]) {
            for op in ops {
                match op {
                    RouteOp::Replace(r) => {
                        kernel.insert(r.key(), r.clone());
                    }
                    RouteOp::Delete { key, .. } => {
                        kernel.remove(key);
                    }
                }
            }
        }
    }
}
