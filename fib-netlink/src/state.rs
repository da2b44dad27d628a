//! The sans-IO core: desired routes, the kernel's routes of our protocol, the coalescing
//! queue between them, and what the kernel tells us about everything else.
//!
//! [`FibState`] takes inputs — desired changes, write results, kernel dumps and
//! notifications — and produces outputs: the [`RouteOp`]s to write next and the
//! [`FibEvent`]s to report. It has no socket and no clock; the driver in `fib.rs` feeds it.

use std::collections::{HashMap, HashSet, VecDeque};
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
}

/// Maps keyed by route: hashed with foldhash's randomly seeded "quality" hasher — several
/// times faster than SipHash on these small keys, which matters at 100 000s of routes, and
/// still seeded per map, so prefixes a peer chooses cannot be aimed at collisions.
type KeyMap<V> = HashMap<RouteKey, V, foldhash::quality::RandomState>;

/// A coalescing queue of keys: a key waits at most once; re-queueing is a no-op.
#[derive(Debug, Default)]
pub struct KeyQueue {
    order: VecDeque<RouteKey>,
    queued: HashSet<RouteKey, foldhash::quality::RandomState>,
}

impl KeyQueue {
    pub fn push(&mut self, key: RouteKey) {
        if self.queued.insert(key) {
            self.order.push_back(key);
        }
    }

    pub fn pop(&mut self) -> Option<RouteKey> {
        let key = self.order.pop_front()?;
        self.queued.remove(&key);
        Some(key)
    }

    pub fn contains(&self, key: &RouteKey) -> bool {
        self.queued.contains(key)
    }

    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    pub fn clear(&mut self) {
        self.order.clear();
        self.queued.clear();
    }
}

/// How many times a route is restored within [`RESTORE_WINDOW`] without its desired state
/// changing; past this, a fight with another writer is reported rather than continued
/// (until the window has passed and the route is changed again).
const MAX_RESTORES: u8 = 5;
const RESTORE_WINDOW: Duration = Duration::from_secs(10);

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

/// Desired and kernel state, the coalescing queue between them, and learning.
#[derive(Debug)]
pub struct FibState {
    config: StateConfig,
    desired: KeyMap<Route>,
    /// Our protocol's routes in the kernel, as last reported or written.
    kernel: KeyMap<Route>,
    pending: KeyQueue,
    failed: KeyMap<RouteError>,
    restores: KeyMap<(Option<Instant>, u8)>,
    now: Option<Instant>,
    converged: bool,
    links: HashMap<u32, Link>,
    names: Arc<HashMap<String, u32>>,
    addresses: HashSet<Address>,
    connected: HashSet<Connected>,
    learned: HashMap<(RouteKey, u8), Route>,
    events: VecDeque<FibEvent>,
    needs_resync: bool,
}

impl FibState {
    pub fn new(config: StateConfig) -> FibState {
        FibState {
            config,
            desired: KeyMap::default(),
            kernel: KeyMap::default(),
            pending: KeyQueue::default(),
            failed: KeyMap::default(),
            restores: KeyMap::default(),
            now: None,
            converged: false,
            links: HashMap::new(),
            names: Arc::new(HashMap::new()),
            addresses: HashSet::new(),
            connected: HashSet::new(),
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
        let names = &self.names;
        self.kernel
            .get(&desired.key())
            .is_some_and(|k| same_route(desired, k, &|n| names.get(n).copied()))
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
        self.desired.insert(key, route);
        self.pending.push(key);
    }

    /// Clears restore counts and failures for `key` (skipping the hash when there are none,
    /// which is the common case on a bulk load).
    fn forget_troubles(&mut self, key: &RouteKey) {
        if !self.restores.is_empty() {
            self.restores.remove(key);
        }
        if !self.failed.is_empty() {
            self.failed.remove(key);
        }
    }

    /// No longer desires the route at `key`; ours in the kernel there is deleted.
    pub fn remove(&mut self, key: RouteKey) {
        let key = key.normalized();
        self.forget_troubles(&key);
        if self.desired.remove(&key).is_some() || self.kernel.contains_key(&key) {
            self.pending.push(key);
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
        self.kernel.values()
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
    pub fn poll_ops(&mut self, max: usize) -> Vec<RouteOp> {
        let mut ops = Vec::new();
        while ops.len() < max {
            let Some(key) = self.pending.pop() else { break };
            match self.desired.get(&key) {
                Some(route) => {
                    if !self.matches_kernel(route) {
                        ops.push(RouteOp::Replace(route.clone()));
                    }
                }
                None => {
                    if let Some(k) = self.kernel.get(&key) {
                        ops.push(RouteOp::Delete {
                            key,
                            protocol: k.protocol,
                        });
                    }
                }
            }
        }
        ops
    }

    /// Records the outcome of written ops (as returned by the writer, in order).
    pub fn on_results(&mut self, ops: Vec<RouteOp>, results: Vec<Result<(), RouteError>>) {
        for (op, result) in ops.into_iter().zip(results) {
            let key = op.key();
            match (op, result) {
                (RouteOp::Replace(route), Ok(())) => {
                    if !self.failed.is_empty() {
                        self.failed.remove(&key);
                    }
                    if self.owned(&route) {
                        self.kernel.insert(key, route);
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

        let mut ours = Vec::new();
        let mut learned = HashMap::new();
        for r in routes {
            if r.cloned {
                continue;
            }
            if self.owned(&r.route) {
                ours.push(r.route);
            } else if let Some(l) = self.learnable(&r.route) {
                learned.insert((l.key(), l.protocol), l);
            }
        }
        let old = std::mem::take(&mut self.learned);
        for (k, r) in &old {
            if !learned.contains_key(k) {
                self.events.push_back(FibEvent::LearnedRemoved(r.clone()));
            }
        }
        for (k, r) in &learned {
            if old.get(k) != Some(r) {
                self.events.push_back(FibEvent::LearnedAdded(r.clone()));
            }
        }
        self.learned = learned;
        self.load_ours(ours);
    }

    /// Replaces the kernel view of our routes with a dump of them and queues the writes
    /// that make it match the desired set (deleting stale ones only once converged).
    pub fn load_ours(&mut self, routes: Vec<Route>) {
        self.kernel = routes.into_iter().map(|r| (r.key(), r)).collect();
        self.pending.clear();
        self.failed.clear();
        self.needs_resync = false;
        let names = self.names.clone();
        let keys = diff_keys(&self.desired, &self.kernel, self.converged, &|n| {
            names.get(n).copied()
        });
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
                    if before.as_ref().map(|b| &b.name) != Some(&l.name) {
                        self.rebuild_names();
                    }
                    if l.up && l.running && !was_usable {
                        self.retry_failed();
                    }
                    if was_usable && !(l.up && l.running) {
                        self.needs_resync = true;
                    }
                    self.events.push_back(FibEvent::Link(l));
                    self.refresh_connected();
                }
            }
            KernelMessage::DelLink(l) => {
                if let Some(l) = self.links.remove(&l.index) {
                    self.rebuild_names();
                    self.addresses.retain(|a| a.ifindex != l.index);
                    self.events.push_back(FibEvent::LinkRemoved(l));
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
                self.kernel.insert(key, route);
            } else {
                self.kernel.remove(&key);
            }
            let wrong = match self.desired.get(&key) {
                Some(d) => !self.matches_kernel(d),
                // A route of ours nobody desires: ours to delete, once converged.
                None => present && self.converged,
            };
            if wrong && !self.pending.contains(&key) && !self.failed.contains_key(&key) {
                let now = self.now;
                let (since, n) = self.restores.entry(key).or_insert((now, 0));
                if let (Some(now), Some(start)) = (now, *since)
                    && now.saturating_duration_since(start) > RESTORE_WINDOW
                {
                    (*since, *n) = (Some(now), 0);
                }
                if *n < MAX_RESTORES {
                    *n += 1;
                    self.pending.push(key);
                } else if *n == MAX_RESTORES {
                    *n += 1;
                    self.events.push_back(FibEvent::RouteFailed {
                        key,
                        error: RouteError::Contested,
                    });
                }
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

    /// The route as reported to the owner if it is learned: another protocol's (not the
    /// kernel's own connected routes, not redirects), in a watched table, on devices the
    /// `learn` patterns accept. Device indexes become names where the link is known.
    fn learnable(&self, route: &Route) -> Option<Route> {
        let patterns = self.config.learn.as_ref()?;
        if route.protocol == PROTOCOL_KERNEL
            || route.protocol == PROTOCOL_REDIRECT
            || route.protocol == self.config.protocol
            || route.table == TABLE_LOCAL
            || !self.config.tables.contains(&route.table)
        {
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
        }
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
    fn our_route_deleted_by_someone_else_is_queued_again_but_not_forever() {
        let mut st = FibState::new(config());
        let t0 = Instant::now();
        st.advance(t0);
        st.converge();
        let r = via("10.1.0.0/24", "192.0.2.1");
        st.set(r.clone());
        let ops = st.poll_ops(10);
        st.on_results(ops, vec![Ok(())]);
        for _ in 0..MAX_RESTORES {
            st.on_kernel(KernelMessage::DelRoute(reported(r.clone())));
            assert_eq!(st.poll_ops(10), vec![RouteOp::Replace(r.clone())]);
            st.on_kernel(KernelMessage::NewRoute(reported(r.clone())));
            assert!(st.poll_ops(10).is_empty());
        }
        st.on_kernel(KernelMessage::DelRoute(reported(r.clone())));
        assert!(
            st.poll_ops(10).is_empty(),
            "a fight is not continued forever"
        );
        assert!(events(&mut st).contains(&FibEvent::RouteFailed {
            key: r.key(),
            error: RouteError::Contested
        }));
        // Later, a new change is restored again.
        st.advance(t0 + RESTORE_WINDOW * 2);
        st.on_kernel(KernelMessage::NewRoute(reported(r.clone())));
        st.on_kernel(KernelMessage::DelRoute(reported(r.clone())));
        assert_eq!(st.poll_ops(10), vec![RouteOp::Replace(r.clone())]);
        // A new desire resets the count.
        st.set(r.clone());
        assert_eq!(st.poll_ops(10), vec![RouteOp::Replace(r)]);
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
        }

        fn step() -> impl Strategy<Value = Step> {
            prop_oneof![
                (0u8..6, 0u8..3).prop_map(|(k, g)| Step::Set(k, g)),
                (0u8..6).prop_map(Step::Remove),
                (1usize..5).prop_map(Step::Write),
                (0u8..6).prop_map(Step::Tamper),
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
            /// Whatever happens, once the queue is drained the kernel holds exactly the
            /// desired routes, and no write ever repeats what the kernel already has.
            #[test]
            fn the_kernel_converges_to_the_desired_set(steps in proptest::collection::vec(step(), 0..60)) {
                let mut st = FibState::new(config());
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
                        Step::Tamper(k) => {
                            // Far apart in time: never a fight (see MAX_RESTORES).
                            now += RESTORE_WINDOW * 2;
                            st.advance(now);
                            if let Some(r) = kernel.remove(&route(k, 0).key()) {
                                st.on_kernel(KernelMessage::DelRoute(reported(r)));
                            }
                        }
                    }
                }
                loop {
                    let ops = st.poll_ops(3);
                    if ops.is_empty() {
                        break;
                    }
                    apply(&mut kernel, &mut st, ops);
                }
                prop_assert_eq!(kernel, desired);
            }
        }
    }
}
