//! The RIB: Adj-RIB-In, Loc-RIB, Adj-RIB-Out per update group, and their inputs and outputs.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bgp_wire::{Community, Family, Nlri, Origin as WireOrigin, PathAttributes, Prefix, Update};
use tern_config::policy::SessionType;
use tern_config::{DesiredConfig, NextHopMode};

use crate::attrs::{AttrId, Interner, RouteAttrs, preference};
use crate::decision::{Decision, Options, SourceInfo};
use crate::key::{FamilyKey, FxBuild, V4Key, V6Key};
use crate::policy::{Candidate, Context, Origin, Outcome, Policies};
use crate::shards::{Delta, Shards};
use crate::table::{Path, Paths, flag};

// ===== identities and configuration =====

/// A BGP peer known to the RIB.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerId(u16);

impl PeerId {
    /// The raw index (stable for the peer's lifetime).
    pub fn index(self) -> u16 {
        self.0
    }
}

/// A local route source (not BGP).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Local {
    /// Configured static routes (Calico's block and service blackholes, `reachableBy`).
    Static,
    /// Routes learned from the kernel (Felix's workload routes).
    Kernel,
    /// Connected interface networks.
    Direct,
}

impl Local {
    fn src(self) -> u16 {
        match self {
            Local::Static => 0,
            Local::Kernel => 1,
            Local::Direct => 2,
        }
    }
}

const FIRST_PEER: u16 = 3;

/// Where a route came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Source {
    /// A BGP peer.
    Peer(PeerId),
    /// A local protocol.
    Local(Local),
}

/// Errors of the RIB's configuration API.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RibError {
    /// More peers than the 16-bit source index holds.
    #[error("too many peers")]
    TooManyPeers,
    /// The peer id is not (or no longer) known.
    #[error("unknown peer {0:?}")]
    UnknownPeer(PeerId),
}

/// Node-wide RIB settings.
#[derive(Clone, Debug)]
pub struct RibConfig {
    /// This speaker's BGP identifier.
    pub router_id: Ipv4Addr,
    /// This speaker's AS.
    pub asn: u32,
    /// Route-reflector cluster id (Calico `routeReflectorClusterID`).
    pub cluster_id: Option<Ipv4Addr>,
    /// Named policies.
    pub policies: Policies,
    /// Policy deciding what goes into the kernel; `None` turns FIB output off.
    pub kernel_policy: Option<String>,
    /// Install ECMP sets as multipath routes (BIRD `merge paths on`).
    pub merge_paths: bool,
    /// Decision-process options.
    pub decision: Options,
}

impl RibConfig {
    /// A configuration with defaults: no policies, no FIB output.
    pub fn new(router_id: Ipv4Addr, asn: u32) -> Self {
        RibConfig {
            router_id,
            asn,
            cluster_id: None,
            policies: Policies::default(),
            kernel_policy: None,
            merge_paths: true,
            decision: Options::default(),
        }
    }

    /// The RIB part of the speaker's desired configuration.
    pub fn from_desired(c: &DesiredConfig) -> Self {
        RibConfig {
            router_id: c.router_id,
            asn: c.asn,
            cluster_id: c.cluster_id,
            policies: Policies::new(c.policies.clone()),
            kernel_policy: Some(c.kernel.export.clone()),
            merge_paths: c.kernel.merge_paths,
            decision: Options::default(),
        }
    }
}

/// ADD-PATH send behaviour towards a peer (RFC 7911).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum AddPathSend {
    /// One path per prefix (the best).
    #[default]
    Off,
    /// Every path.
    All,
    /// The best N paths.
    Best(u8),
}

/// Configured facts about a peer (from `tern_config::Peer`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerConfig {
    /// Neighbour address.
    pub address: IpAddr,
    /// Neighbour AS.
    pub remote_as: u32,
    /// Local AS override for this session.
    pub local_as: Option<u32>,
    /// The neighbour is a route-reflector client of this node.
    pub rr_client: bool,
    /// Cluster id used towards this peer (else the node's cluster id, else the router id).
    pub rr_cluster_id: Option<Ipv4Addr>,
    /// NEXT_HOP handling towards the peer.
    pub next_hop_mode: NextHopMode,
    /// Accept paths containing the local AS up to this many times.
    pub allow_local_as: u32,
    /// Import policy name.
    pub import: String,
    /// Export policy name.
    pub export: String,
    /// Keep the pre-policy Adj-RIB-In even if the peer supports ROUTE-REFRESH.
    pub soft_reconfig_in: bool,
    /// Accept and send LOCAL_PREF on eBGP (RFC 4271 says ignore/omit; Calico's priority
    /// plumbing may want it across AS boundaries).
    pub allow_local_pref: bool,
}

impl PeerConfig {
    /// A peer with policies `all`/`all`, automatic next hop and no reflection.
    pub fn new(address: IpAddr, remote_as: u32) -> Self {
        PeerConfig {
            address,
            remote_as,
            local_as: None,
            rr_client: false,
            rr_cluster_id: None,
            next_hop_mode: NextHopMode::Auto,
            allow_local_as: 0,
            import: tern_config::policy::ALL.to_string(),
            export: tern_config::policy::ALL.to_string(),
            soft_reconfig_in: false,
            allow_local_pref: false,
        }
    }

    /// The RIB-relevant part of a configured peer.
    pub fn from_config(p: &tern_config::Peer) -> Self {
        PeerConfig {
            address: p.address,
            remote_as: p.remote_as,
            local_as: p.local_as,
            rr_client: p.rr_client,
            rr_cluster_id: p.rr_cluster_id,
            next_hop_mode: p.next_hop_mode,
            allow_local_as: p.allow_local_as.unwrap_or(0),
            import: p.import.clone(),
            export: p.export.clone(),
            soft_reconfig_in: p.soft_reconfiguration,
            allow_local_pref: p.allow_local_pref,
        }
    }
}

/// What the established session negotiated (from the OPENs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    /// The peer's BGP identifier.
    pub router_id: Ipv4Addr,
    /// This speaker's address on the session (next-hop self).
    pub local_address: IpAddr,
    /// The peer supports ROUTE-REFRESH (RFC 2918).
    pub route_refresh: bool,
    /// Address families negotiated.
    pub families: Vec<Family>,
    /// ADD-PATH receive negotiated (NLRI carry path ids).
    pub add_path_rx: bool,
    /// ADD-PATH send behaviour.
    pub add_path_tx: AddPathSend,
    /// The peer's graceful-restart time, when it advertised GR (RFC 4724).
    pub gr_restart_time: Option<Duration>,
    /// The peer preserved forwarding state across its restart (the F bit): if not, our stale
    /// paths from its previous session are dropped when this session comes up.
    pub gr_forwarding_preserved: bool,
    /// The peer's long-lived stale time, when it advertised LLGR (RFC 9494).
    pub llgr_stale_time: Option<Duration>,
}

impl Session {
    /// A plain session: IPv4 and IPv6 unicast, route refresh, no ADD-PATH, no GR.
    pub fn new(router_id: Ipv4Addr, local_address: IpAddr) -> Self {
        Session {
            router_id,
            local_address,
            route_refresh: true,
            families: vec![Family::IPV4_UNICAST, Family::IPV6_UNICAST],
            add_path_rx: false,
            add_path_tx: AddPathSend::Off,
            gr_restart_time: None,
            gr_forwarding_preserved: true,
            llgr_stale_time: None,
        }
    }
}

/// How a session went down.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Down {
    /// Routes are withdrawn now.
    Hard,
    /// Graceful restart (RFC 4724 §4.2, RFC 8538 for a NOTIFICATION): keep the routes as
    /// stale if the peer advertised GR.
    Graceful,
}

// ===== outputs =====

/// Who an [`OutUpdate`] is for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// Every member of an update group (encode once, send to all).
    Group {
        /// The group.
        group: u32,
        /// Its members at the time of the update.
        members: Vec<PeerId>,
    },
    /// One peer only (initial table, route refresh, policy change).
    Peer(PeerId),
}

/// One set of announced NLRI sharing attributes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Announce {
    /// Attributes to send (encode once).
    pub attrs: Arc<RouteAttrs>,
    /// NLRI (path ids set for ADD-PATH sessions).
    pub nlri: Vec<Nlri>,
    /// A group member that must receive a *withdrawal* of these NLRI instead (the peer the
    /// route came from: routes are never sent back to their sender).
    pub except: Option<PeerId>,
}

/// Changes for one target, in order: withdrawals, announcements, then End-of-RIB markers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutUpdate {
    /// Recipients.
    pub target: Target,
    /// Withdrawn NLRI.
    pub withdraw: Vec<Nlri>,
    /// Announcements grouped by attribute set.
    pub announce: Vec<Announce>,
    /// End-of-RIB markers to send after the above (RFC 4724 §2).
    pub end_of_rib: Vec<Family>,
}

/// A kernel route the RIB wants installed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FibRoute {
    /// Destination.
    pub prefix: Prefix,
    /// Next hops (several = ECMP); empty with `blackhole`.
    pub next_hops: Vec<IpAddr>,
    /// A blackhole route (Calico's own blocks and service ranges).
    pub blackhole: bool,
    /// Kernel metric (RTA_PRIORITY).
    pub metric: Option<u32>,
    /// Install through this tunnel device with `onlink` (Calico `krt_tunnel`).
    pub tunnel: Option<Arc<str>>,
}

/// A change for the FIB layer (latest state per prefix).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FibChange {
    /// Install or replace.
    Install(FibRoute),
    /// Remove this speaker's route for the prefix (if any).
    Remove(Prefix),
}

/// Something the RIB asks the speaker to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// Send ROUTE-REFRESH to the peer (its import policy changed and no pre-policy copy is
    /// kept).
    RouteRefresh(PeerId),
}

/// One path of a destination, for queries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteInfo {
    /// Source.
    pub source: Source,
    /// Attributes after import policy.
    pub attrs: Arc<RouteAttrs>,
    /// Received ADD-PATH id.
    pub path_id: u32,
    /// ADD-PATH id used when sending it.
    pub tx_path_id: u32,
    /// Selected best.
    pub best: bool,
    /// Member of the ECMP set.
    pub multipath: bool,
    /// Graceful-restart stale.
    pub stale: bool,
    /// Long-lived stale.
    pub llgr_stale: bool,
}

// ===== internal state =====

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum StalePhase {
    Gr,
    Llgr,
}

struct PeerState {
    cfg: PeerConfig,
    session: Option<Session>,
    /// Negotiated facts of the last session, kept while it is down (GR needs them).
    last: Option<Session>,
    group: Option<u32>,
    stale: Option<(Instant, StalePhase)>,
    paths: usize,
    /// Families whose End-of-RIB arrived on the current session.
    eor: Vec<Family>,
}

impl PeerState {
    fn local_as(&self, node_as: u32) -> u32 {
        self.cfg.local_as.unwrap_or(node_as)
    }
    fn ibgp(&self, node_as: u32) -> bool {
        self.cfg.remote_as == self.local_as(node_as)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct GroupKey {
    export: String,
    ibgp: bool,
    local_as: u32,
    rr_client: bool,
    cluster_id: Ipv4Addr,
    next_hop_mode: NextHopMode,
    local_address: IpAddr,
    add_path: AddPathSend,
    llgr: bool,
    v4: bool,
    v6: bool,
    allow_local_pref: bool,
}

struct Joiner {
    peer: PeerId,
    /// NLRI the peer was sent by its previous group (withdrawn unless still announced).
    previously_sent: Vec<Nlri>,
    /// The group was created for this peer: its table reaches the peer through the group
    /// update, so only the withdrawals are sent, after it.
    fresh_group: bool,
}

struct Group {
    key: GroupKey,
    members: Vec<PeerId>,
    joiners: Vec<Joiner>,
    eor_pending: Vec<PeerId>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Sent {
    tx: u32,
    attrs: AttrId,
    except: u16,
}

/// What a group last sent for one prefix (its Adj-RIB-Out entry).
#[derive(Clone, Debug)]
enum SentPaths {
    One(Sent),
    // Boxed so the enum stays 16 bytes (one pointer) in the common one-path case.
    #[allow(clippy::box_collection)]
    Many(Box<Vec<Sent>>),
}

impl SentPaths {
    fn as_slice(&self) -> &[Sent] {
        match self {
            SentPaths::One(s) => std::slice::from_ref(s),
            SentPaths::Many(v) => v,
        }
    }
    fn from_vec(mut v: Vec<Sent>) -> Option<SentPaths> {
        match v.len() {
            0 => None,
            1 => v.pop().map(SentPaths::One),
            _ => Some(SentPaths::Many(Box::new(v))),
        }
    }
}

struct GroupOut<K> {
    sent: Shards<K, SentPaths>,
    dirty: HashSet<K, FxBuild>,
}

impl<K> Default for GroupOut<K> {
    fn default() -> Self {
        GroupOut {
            sent: Shards::default(),
            dirty: HashSet::default(),
        }
    }
}

/// A pre-policy Adj-RIB-In: (prefix, received path id) → attributes as received.
type PrePolicy<K> = Shards<(K, u32), AttrId>;

/// One address family's tables.
struct Fam<K> {
    /// Loc-RIB with every post-policy Adj-RIB-In path.
    dests: Shards<K, Paths>,
    fib_dirty: HashSet<K, FxBuild>,
    /// Adj-RIB-Out per update group (indexed by group id).
    out: Vec<Option<GroupOut<K>>>,
    /// Pre-policy Adj-RIB-In per source (soft reconfiguration), indexed by source.
    pre: Vec<Option<PrePolicy<K>>>,
}

impl<K> Default for Fam<K> {
    fn default() -> Self {
        Fam {
            dests: Shards::default(),
            fib_dirty: HashSet::default(),
            out: Vec::new(),
            pre: Vec::new(),
        }
    }
}

/// Everything but the per-family tables.
struct Core {
    cfg: RibConfig,
    interner: Interner,
    sources: Vec<SourceInfo>,
    peers: Vec<Option<PeerState>>,
    groups: Vec<Option<Group>>,
    igp: HashMap<IpAddr, u32>,
    requests: Vec<Request>,
    /// Restarting speaker (RFC 4724 §4.1): outputs are held until this deadline or until
    /// every GR-capable peer that is up has sent End-of-RIB for all its families.
    deferral: Option<Instant>,
}

/// Best path and ECMP set of a destination, to detect changes.
type Signature = (Option<(u16, u32, AttrId)>, u64);

fn signature(paths: &Paths) -> Signature {
    let mut best = None;
    let mut ecmp = 0u64;
    for p in paths.as_slice() {
        if p.has(flag::BEST) {
            best = Some((p.src, p.rx_id, p.attrs));
        }
        if p.has(flag::ECMP) {
            use std::hash::BuildHasher;
            ecmp = ecmp.wrapping_add(FxBuild::default().hash_one((p.src, p.rx_id, p.attrs)));
        }
    }
    (best, ecmp)
}

impl Core {
    fn peer(&self, id: PeerId) -> Option<&PeerState> {
        self.peers.get(usize::from(id.0)).and_then(|p| p.as_ref())
    }

    fn peer_mut(&mut self, id: PeerId) -> Option<&mut PeerState> {
        self.peers
            .get_mut(usize::from(id.0))
            .and_then(|p| p.as_mut())
    }

    fn decide(&self, paths: &mut Paths) {
        let igp = |nh: IpAddr| self.igp.get(&nh).copied();
        let d = Decision {
            interner: &self.interner,
            sources: &self.sources,
            options: self.cfg.decision,
            igp_cost: &igp,
        };
        d.select(paths.as_mut_slice());
    }

    fn rank(&self, paths: &Paths, n: usize) -> Vec<usize> {
        let igp = |nh: IpAddr| self.igp.get(&nh).copied();
        let d = Decision {
            interner: &self.interner,
            sources: &self.sources,
            options: self.cfg.decision,
            igp_cost: &igp,
        };
        d.rank(paths.as_slice(), n)
    }

    fn origin_of(&self, src: u16) -> Origin {
        match src {
            0 => Origin::Static,
            1 => Origin::Kernel,
            2 => Origin::Direct,
            _ => match self.sources.get(usize::from(src)) {
                Some(s) if s.ibgp => Origin::Ibgp,
                _ => Origin::Ebgp,
            },
        }
    }

    /// RFC 4271 §9.1.2 and RFC 4456 §8 loop detection on a received path.
    fn is_loop(&self, ps: &PeerState, a: &RouteAttrs) -> bool {
        let local_as = ps.local_as(self.cfg.asn);
        if let Some(path) = &a.bgp.as_path {
            let count: usize = path
                .segments
                .iter()
                .map(|s| s.asns.iter().filter(|&&x| x == local_as).count())
                .sum();
            if count > ps.cfg.allow_local_as as usize {
                return true;
            }
        }
        if a.bgp.originator_id == Some(self.cfg.router_id) {
            return true;
        }
        let own = [self.cfg.cluster_id, ps.cfg.rr_cluster_id];
        a.bgp.cluster_list.iter().any(|c| own.contains(&Some(*c)))
    }

    /// Runs the peer's import policy on a received path; returns an owned reference.
    fn import(&mut self, peer: PeerId, prefix: Prefix, base: AttrId) -> Option<AttrId> {
        let ps = self.peer(peer)?;
        if self.cfg.policies.is_all(&ps.cfg.import) {
            self.interner.retain(base);
            return Some(base);
        }
        let ctx = Context {
            session: Some(if ps.ibgp(self.cfg.asn) {
                SessionType::Ibgp
            } else {
                SessionType::Ebgp
            }),
            origin: self.origin_of(peer.0),
            neighbour: Some(ps.cfg.address),
            local_address: ps.session.as_ref().map(|s| s.local_address),
        };
        let attrs = self.interner.get(base).clone();
        let mut cand = Candidate::new(prefix, &attrs);
        match self.cfg.policies.evaluate(&ps.cfg.import, &mut cand, &ctx) {
            Ok(Outcome::Accept) => match cand.into_modified() {
                Some(m) => Some(self.interner.intern(m)),
                None => {
                    self.interner.retain(base);
                    Some(base)
                }
            },
            Ok(Outcome::Reject) | Err(_) => None,
        }
    }

    /// Export of one path to a group: RFC 4271/4456 rules, the export policy, then the
    /// session transforms. Returns an owned reference to the attributes to send.
    fn export(&mut self, g: &GroupKey, prefix: Prefix, path: &Path) -> Option<AttrId> {
        let attrs = self.interner.get(path.attrs).clone();
        let src = self.sources.get(usize::from(path.src)).copied()?;
        let llgr = path.has(flag::LLGR) || attrs.bgp.communities.contains(&Community::LLGR_STALE);
        if llgr && !g.llgr {
            return None;
        }
        let comms = &attrs.bgp.communities;
        if comms.contains(&Community::NO_ADVERTISE) {
            return None;
        }
        if !g.ibgp
            && (comms.contains(&Community::NO_EXPORT)
                || comms.contains(&Community::NO_EXPORT_SUBCONFED))
        {
            return None;
        }
        let from_ibgp = !src.local && src.ibgp;
        let from_client = self
            .peers
            .get(usize::from(path.src))
            .and_then(|p| p.as_ref())
            .is_some_and(|p| p.cfg.rr_client);
        // RFC 4456 §6: iBGP-learned paths go to iBGP peers only by reflection: from a
        // client to everyone, from a non-client to clients only.
        if from_ibgp && g.ibgp && !from_client && !g.rr_client {
            return None;
        }
        let mut pre = (*attrs).clone();
        if !g.ibgp && !src.local {
            // RFC 4271 §5.1.4: a MED learned from a neighbouring AS is not passed on.
            pre.bgp.med = None;
        }
        let ctx = Context {
            session: Some(if g.ibgp {
                SessionType::Ibgp
            } else {
                SessionType::Ebgp
            }),
            origin: self.origin_of(path.src),
            neighbour: (!src.local).then_some(src.address),
            local_address: Some(g.local_address),
        };
        let mut cand = Candidate::new(prefix, &pre);
        match self.cfg.policies.evaluate(&g.export, &mut cand, &ctx) {
            Ok(Outcome::Accept) => {}
            Ok(Outcome::Reject) | Err(_) => return None,
        }
        let mut out = match cand.into_modified() {
            Some(m) => m,
            None => pre,
        };
        if out.bgp.origin.is_none() {
            out.bgp.origin = Some(WireOrigin::Igp);
        }
        if src.local && out.bgp.as_path.is_none() {
            out.bgp.as_path = Some(Default::default());
        }
        let self_nh = match g.next_hop_mode {
            NextHopMode::SelfAddress => true,
            NextHopMode::Keep => out.next_hop().is_none(),
            NextHopMode::Auto => !g.ibgp || src.local || out.next_hop().is_none(),
        };
        if g.ibgp {
            if out.bgp.local_pref.is_none() {
                out.bgp.local_pref = Some(crate::attrs::DEFAULT_LOCAL_PREF);
            }
            if from_ibgp {
                // RFC 4456 §8: reflecting.
                if out.bgp.originator_id.is_none() {
                    out.bgp.originator_id = Some(src.router_id);
                }
                out.bgp.cluster_list.insert(0, g.cluster_id);
            }
        } else {
            out.bgp
                .as_path
                .get_or_insert_with(Default::default)
                .prepend(g.local_as);
            if !g.allow_local_pref {
                out.bgp.local_pref = None;
            }
            out.bgp.originator_id = None;
            out.bgp.cluster_list.clear();
        }
        if self_nh {
            out.bgp.next_hop = None;
            out.bgp.mp_next_hop = None;
            match (prefix, g.local_address) {
                (Prefix::V4 { .. }, IpAddr::V4(a)) => out.bgp.next_hop = Some(a),
                (_, addr) => out.set_next_hop(addr),
            }
        }
        // Route attributes that never go on the wire.
        out.krt_metric = None;
        out.ifname = None;
        out.krt_tunnel = None;
        out.preference = preference::BGP;
        Some(self.interner.intern(out))
    }

    /// The FIB route for a destination after the kernel policy.
    fn fib_route(&self, prefix: Prefix, paths: &Paths) -> Option<FibRoute> {
        let name = self.cfg.kernel_policy.as_deref()?;
        let best = paths.best()?;
        if best.src == Local::Kernel.src() || best.src == Local::Direct.src() {
            // Never hand the kernel back its own routes (BIRD's krt does the same).
            return None;
        }
        let attrs = self.interner.get(best.attrs);
        let src = self.sources.get(usize::from(best.src)).copied()?;
        let ctx = Context {
            session: None,
            origin: self.origin_of(best.src),
            neighbour: (!src.local).then_some(src.address),
            local_address: None,
        };
        let mut cand = Candidate::new(prefix, attrs);
        if self.cfg.policies.evaluate(name, &mut cand, &ctx) != Ok(Outcome::Accept) {
            return None;
        }
        let a = cand.attrs();
        let mut next_hops: Vec<IpAddr> = a.next_hop().into_iter().collect();
        if self.cfg.merge_paths {
            for p in paths.as_slice() {
                if p.has(flag::ECMP)
                    && !p.has(flag::BEST)
                    && let Some(nh) = self.interner.get(p.attrs).next_hop()
                    && !next_hops.contains(&nh)
                {
                    next_hops.push(nh);
                }
            }
        }
        Some(FibRoute {
            prefix,
            blackhole: next_hops.is_empty(),
            next_hops,
            metric: a.krt_metric,
            tunnel: a.krt_tunnel.clone(),
        })
    }
}

/// Records that a destination changed: every group whose output may differ, and the FIB.
fn mark<K: FamilyKey>(
    core: &Core,
    out: &mut [Option<GroupOut<K>>],
    fib_dirty: &mut HashSet<K, FxBuild>,
    key: K,
    best_changed: bool,
    solo: Option<u16>,
) {
    for (g, o) in out.iter_mut().enumerate() {
        let Some(o) = o else { continue };
        let Some(Some(group)) = core.groups.get(g) else {
            continue;
        };
        // Every path of the destination comes from the group's only member, and nothing was
        // sent for it: the group has nothing to do (the common case of a peer's own table).
        if let Some(src) = solo
            && group.members.len() == 1
            && group.members[0].0 == src
            && !o.sent.contains_key(&key)
        {
            continue;
        }
        if best_changed || group.key.add_path != AddPathSend::Off {
            o.dirty.insert(key);
        }
    }
    if best_changed && core.cfg.kernel_policy.is_some() {
        fib_dirty.insert(key);
    }
}

/// Inserts, replaces (`new` = `Some`) or removes (`None`) the path `(src, rx_id)` of `key`;
/// `new` is an owned reference. Re-runs the decision process and marks what changed.
fn set_path<K: FamilyKey>(
    core: &mut Core,
    fam: &mut Fam<K>,
    key: K,
    src: u16,
    rx_id: u32,
    new: Option<AttrId>,
) {
    use std::collections::hash_map::Entry;
    let Fam {
        dests,
        out,
        fib_dirty,
        ..
    } = fam;
    dests.with_entry(key, |entry| match entry {
        Entry::Vacant(v) => {
            let Some(id) = new else {
                return ((), Delta::Same);
            };
            v.insert(Paths::One(Path {
                attrs: id,
                rx_id,
                tx_id: 1,
                src,
                flags: flag::BEST | flag::ECMP,
            }));
            count(core, src, 1);
            mark(core, out, fib_dirty, key, true, Some(src));
            ((), Delta::Inserted)
        }
        Entry::Occupied(mut o) => {
            let paths = o.get_mut();
            let before = signature(paths);
            match (paths.find(src, rx_id), new) {
                (Some(i), Some(id)) => {
                    let p = &mut paths.as_mut_slice()[i];
                    let old = p.attrs;
                    let was_stale = p.flags & (flag::STALE | flag::LLGR) != 0;
                    p.attrs = id;
                    p.flags &= !(flag::STALE | flag::LLGR);
                    core.interner.release(old);
                    if old == id && !was_stale {
                        return ((), Delta::Same);
                    }
                }
                (Some(i), None) => {
                    let old = paths.as_slice()[i].attrs;
                    core.interner.release(old);
                    count(core, src, -1);
                    if !paths.remove_at(i) {
                        o.remove();
                        mark(core, out, fib_dirty, key, true, Some(src));
                        return ((), Delta::Removed);
                    }
                }
                (None, Some(id)) => {
                    let tx_id = paths.free_tx_id();
                    paths.push(Path {
                        attrs: id,
                        rx_id,
                        tx_id,
                        src,
                        flags: 0,
                    });
                    count(core, src, 1);
                }
                (None, None) => return ((), Delta::Same),
            }
            core.decide(paths);
            let changed = signature(paths) != before;
            let solo = paths.as_slice().iter().all(|p| p.src == src).then_some(src);
            mark(core, out, fib_dirty, key, changed, solo);
            ((), Delta::Same)
        }
    });
}

fn count(core: &mut Core, src: u16, delta: isize) {
    if let Some(Some(p)) = core.peers.get_mut(usize::from(src)) {
        p.paths = p.paths.saturating_add_signed(delta);
    }
}

/// Removes (or, with `stale_only`, only stale) paths of `src` from every destination.
fn purge<K: FamilyKey>(core: &mut Core, fam: &mut Fam<K>, src: u16, stale_only: bool) {
    let Fam {
        dests,
        out,
        fib_dirty,
        ..
    } = fam;
    // Size the change sets once for the paths about to go (at most the source's path count,
    // bounded by this family's table) instead of growing them step by step.
    let expected = core
        .peers
        .get(usize::from(src))
        .and_then(|p| p.as_ref())
        .map_or(0, |p| p.paths)
        .min(dests.len());
    for o in out.iter_mut().flatten() {
        o.dirty.reserve(expected);
    }
    if core.cfg.kernel_policy.is_some() {
        fib_dirty.reserve(expected);
    }
    dests.retain(|&key, paths| {
        let hit =
            |p: &Path| p.src == src && (!stale_only || p.flags & (flag::STALE | flag::LLGR) != 0);
        if !paths.as_slice().iter().any(hit) {
            return true;
        }
        let before = signature(paths);
        let mut alive = true;
        while let Some(i) = paths.as_slice().iter().position(hit) {
            core.interner.release(paths.as_slice()[i].attrs);
            count(core, src, -1);
            if !paths.remove_at(i) {
                alive = false;
                break;
            }
        }
        if !alive {
            mark(core, out, fib_dirty, key, true, None);
            return false;
        }
        core.decide(paths);
        let changed = signature(paths) != before;
        mark(core, out, fib_dirty, key, changed, None);
        true
    });
}

/// Marks every path of `src` stale (RFC 4724 §4.2).
fn mark_stale<K: FamilyKey>(fam: &mut Fam<K>, src: u16) {
    for paths in fam.dests.values_mut() {
        for p in paths.as_mut_slice() {
            if p.src == src {
                p.flags |= flag::STALE;
            }
        }
    }
}

/// RFC 9494 §4.2: turns the stale paths of `src` into long-lived stale ones (LLGR_STALE
/// added, least preferred), dropping those carrying NO_LLGR.
fn enter_llgr<K: FamilyKey>(core: &mut Core, fam: &mut Fam<K>, src: u16) {
    let Fam {
        dests,
        out,
        fib_dirty,
        ..
    } = fam;
    dests.retain(|&key, paths| {
        let stale = |p: &Path| p.src == src && p.has(flag::STALE) && !p.has(flag::LLGR);
        if !paths.as_slice().iter().any(stale) {
            return true;
        }
        let before = signature(paths);
        let mut i = 0;
        while i < paths.len() {
            let p = paths.as_slice()[i];
            if !stale(&p) {
                i += 1;
                continue;
            }
            let attrs = core.interner.get(p.attrs).clone();
            if attrs.bgp.communities.contains(&Community::NO_LLGR) {
                core.interner.release(p.attrs);
                count(core, src, -1);
                if !paths.remove_at(i) {
                    mark(core, out, fib_dirty, key, true, None);
                    return false;
                }
                continue;
            }
            let mut a = (*attrs).clone();
            if !a.bgp.communities.contains(&Community::LLGR_STALE) {
                a.bgp.communities.push(Community::LLGR_STALE);
            }
            let id = core.interner.intern(a);
            core.interner.release(p.attrs);
            let slot = &mut paths.as_mut_slice()[i];
            slot.attrs = id;
            slot.flags |= flag::LLGR;
            i += 1;
        }
        core.decide(paths);
        // The attributes changed: every group re-exports.
        let _ = before;
        mark(core, out, fib_dirty, key, true, None);
        true
    });
}

/// Computes what group `g` sends for `key` now, diffs it against its Adj-RIB-Out and
/// records the differences in `b`.
fn refresh_key<K: FamilyKey>(
    core: &mut Core,
    fam: &mut Fam<K>,
    (g, gk, members): (usize, &GroupKey, &[u16]),
    key: K,
    b: &mut Builder,
    memo: &mut Option<ExportMemo>,
) {
    if gk.add_path == AddPathSend::Off {
        refresh_best(core, fam, (g, gk, members), key, b, memo);
        return;
    }
    let prefix = key.prefix();
    // Desired state.
    let mut want: Vec<Sent> = Vec::new();
    if let Some(paths) = fam.dests.get(&key) {
        let chosen: Vec<usize> = match gk.add_path {
            AddPathSend::Off => paths
                .as_slice()
                .iter()
                .position(|p| p.has(flag::BEST))
                .into_iter()
                .collect(),
            AddPathSend::All => (0..paths.len()).collect(),
            AddPathSend::Best(n) => core.rank(paths, usize::from(n)),
        };
        let snapshot: Vec<Path> = chosen.iter().map(|&i| paths.as_slice()[i]).collect();
        for p in snapshot {
            if members.len() == 1 && members[0] == p.src {
                // Nothing to send: the only member is where the path came from. Not even an
                // Adj-RIB-Out entry is kept (a second member joining re-exports every prefix).
                continue;
            }
            if let Some(id) = export_memo(core, gk, prefix, &p, memo) {
                let tx = if gk.add_path == AddPathSend::Off {
                    0
                } else {
                    p.tx_id
                };
                let except = if members.contains(&p.src) { p.src } else { 0 };
                want.push(Sent {
                    tx,
                    attrs: id,
                    except,
                });
            }
        }
    }
    let Some(Some(out)) = fam.out.get_mut(g) else {
        for w in want {
            core.interner.release(w.attrs);
        }
        return;
    };
    let old: Vec<Sent> = out
        .sent
        .get(&key)
        .map(|s| s.as_slice().to_vec())
        .unwrap_or_default();
    let nlri = |tx: u32| Nlri {
        prefix,
        path_id: (gk.add_path != AddPathSend::Off).then_some(tx),
    };
    // Looked up by send id (unique per destination) in sorted copies: with ADD-PATH a
    // destination can carry thousands of paths, and scanning for each one was quadratic.
    let mut want_tx: Vec<u32> = want.iter().map(|w| w.tx).collect();
    want_tx.sort_unstable();
    let mut old_by_tx = old.clone();
    old_by_tx.sort_unstable_by_key(|o| o.tx);
    for o in &old {
        if want_tx.binary_search(&o.tx).is_err() {
            b.withdraw.push(nlri(o.tx));
        }
    }
    for w in &want {
        let unchanged = old_by_tx
            .binary_search_by_key(&w.tx, |o| o.tx)
            .ok()
            .and_then(|i| old_by_tx.get(i))
            .is_some_and(|o| o == w);
        if !unchanged {
            b.announce(w.attrs, w.except, nlri(w.tx));
        }
    }
    for o in old {
        core.interner.release(o.attrs);
    }
    match SentPaths::from_vec(want) {
        Some(s) => {
            out.sent.insert(key, s);
        }
        None => {
            out.sent.remove(&key);
        }
    }
}

/// Collects one [`OutUpdate`].
#[derive(Default)]
struct Builder {
    withdraw: Vec<Nlri>,
    announce: BTreeMap<(AttrId, u16), Vec<Nlri>>,
}

impl Builder {
    fn announce(&mut self, attrs: AttrId, except: u16, n: Nlri) {
        self.announce.entry((attrs, except)).or_default().push(n);
    }

    fn is_empty(&self) -> bool {
        self.withdraw.is_empty() && self.announce.is_empty()
    }

    fn finish(self, interner: &Interner, target: Target, end_of_rib: Vec<Family>) -> OutUpdate {
        OutUpdate {
            target,
            withdraw: self.withdraw,
            announce: self
                .announce
                .into_iter()
                .map(|((id, except), nlri)| Announce {
                    attrs: interner.get(id).clone(),
                    nlri,
                    except: (except != 0).then_some(PeerId(except)),
                })
                .collect(),
            end_of_rib,
        }
    }
}

// ===== the RIB =====

/// Tern's routing information bases. See the crate documentation for the driving API.
pub struct Rib {
    core: Core,
    v4: Fam<V4Key>,
    v6: Fam<V6Key>,
}

/// Runs `$body` with `$fam` = the family table of `$prefix` and `$key` = its key.
/// Prefixes whose table entries are fetched ahead of the work on them (see `Rib::touch`):
/// enough to keep the CPU's outstanding misses busy, few enough to stay in L1.
const TOUCH_BATCH: usize = 16;

macro_rules! on_family {
    ($self:expr, $prefix:expr, |$core:ident, $fam:ident, $key:ident| $body:expr) => {{
        let prefix: Prefix = $prefix;
        if let Some($key) = V4Key::from_prefix(&prefix) {
            let $core = &mut $self.core;
            let $fam = &mut $self.v4;
            $body
        } else if let Some($key) = V6Key::from_prefix(&prefix) {
            let $core = &mut $self.core;
            let $fam = &mut $self.v6;
            $body
        }
    }};
}

impl Rib {
    /// An empty RIB.
    pub fn new(cfg: RibConfig) -> Self {
        let local = SourceInfo {
            local: true,
            ibgp: false,
            router_id: cfg.router_id,
            address: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        };
        let mut core = Core {
            cfg,
            interner: Interner::default(),
            sources: vec![local; usize::from(FIRST_PEER)],
            peers: Vec::new(),
            groups: Vec::new(),
            igp: HashMap::new(),
            requests: Vec::new(),
            deferral: None,
        };
        core.peers.resize_with(usize::from(FIRST_PEER), || None);
        Rib {
            core,
            v4: Fam::default(),
            v6: Fam::default(),
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &RibConfig {
        &self.core.cfg
    }

    // ----- peers -----

    /// Registers a peer (its session is down until [`peer_up`](Self::peer_up)).
    pub fn add_peer(&mut self, cfg: PeerConfig) -> Result<PeerId, RibError> {
        let slot = match self
            .core
            .peers
            .iter()
            .skip(usize::from(FIRST_PEER))
            .position(|p| p.is_none())
        {
            Some(i) => i + usize::from(FIRST_PEER),
            None => self.core.peers.len(),
        };
        let id = u16::try_from(slot).map_err(|_| RibError::TooManyPeers)?;
        let ibgp = cfg.remote_as == cfg.local_as.unwrap_or(self.core.cfg.asn);
        let info = SourceInfo {
            local: false,
            ibgp,
            router_id: Ipv4Addr::UNSPECIFIED,
            address: cfg.address,
        };
        let st = PeerState {
            cfg,
            session: None,
            last: None,
            group: None,
            stale: None,
            paths: 0,
            eor: Vec::new(),
        };
        if slot == self.core.peers.len() {
            self.core.peers.push(Some(st));
            self.core.sources.push(info);
        } else {
            self.core.peers[slot] = Some(st);
            self.core.sources[slot] = info;
        }
        Ok(PeerId(id))
    }

    /// Removes a peer and everything learned from it.
    pub fn remove_peer(&mut self, peer: PeerId) -> Result<(), RibError> {
        if self.core.peer(peer).is_none() {
            return Err(RibError::UnknownPeer(peer));
        }
        self.leave_group(peer, false);
        purge(&mut self.core, &mut self.v4, peer.0, false);
        purge(&mut self.core, &mut self.v6, peer.0, false);
        self.drop_pre(peer);
        self.core.peers[usize::from(peer.0)] = None;
        Ok(())
    }

    /// Changes a peer's configuration without resetting its session: an export change moves
    /// it to another update group (with the needed withdrawals and announcements); an import
    /// change re-runs the import policy from the pre-policy Adj-RIB-In or, without one,
    /// queues a [`Request::RouteRefresh`].
    pub fn reconfigure_peer(&mut self, peer: PeerId, cfg: PeerConfig) -> Result<(), RibError> {
        let ps = self
            .core
            .peer_mut(peer)
            .ok_or(RibError::UnknownPeer(peer))?;
        let old = std::mem::replace(&mut ps.cfg, cfg);
        let new = ps.cfg.clone();
        let up = ps.session.is_some();
        let ibgp = new.remote_as == new.local_as.unwrap_or(self.core.cfg.asn);
        if let Some(s) = self.core.sources.get_mut(usize::from(peer.0)) {
            s.ibgp = ibgp;
            s.address = new.address;
        }
        if up && old != new {
            self.regroup(peer);
        }
        if up && (old.import != new.import || old.allow_local_pref != new.allow_local_pref) {
            self.reimport(peer);
        }
        Ok(())
    }

    /// The peer's session is established with these negotiated properties.
    pub fn peer_up(&mut self, peer: PeerId, session: Session) -> Result<(), RibError> {
        let ps = self
            .core
            .peer_mut(peer)
            .ok_or(RibError::UnknownPeer(peer))?;
        let keep_pre = ps.cfg.soft_reconfig_in || !session.route_refresh;
        let purge_stale = ps.stale.is_some() && !session.gr_forwarding_preserved;
        ps.session = Some(session.clone());
        ps.last = Some(session.clone());
        ps.eor.clear();
        if let Some(s) = self.core.sources.get_mut(usize::from(peer.0)) {
            s.router_id = session.router_id;
        }
        if purge_stale {
            self.purge_stale(peer);
        }
        if keep_pre {
            let i = usize::from(peer.0);
            for pre in [&mut self.v4.pre as &mut dyn PreSlot, &mut self.v6.pre] {
                pre.ensure(i);
            }
        }
        self.join_group(peer, Vec::new());
        Ok(())
    }

    /// The peer's session went down at `now`.
    pub fn peer_down(&mut self, peer: PeerId, now: Instant, how: Down) -> Result<(), RibError> {
        let ps = self
            .core
            .peer_mut(peer)
            .ok_or(RibError::UnknownPeer(peer))?;
        let session = ps.session.take();
        let gr = match (how, &session) {
            (Down::Graceful, Some(s)) => match (s.gr_restart_time, s.llgr_stale_time) {
                (Some(t), llgr) if !t.is_zero() || llgr.is_some() => Some((t, llgr)),
                (None, Some(l)) => Some((Duration::ZERO, Some(l))),
                _ => None,
            },
            _ => None,
        };
        self.leave_group(peer, false);
        self.drop_pre(peer);
        match gr {
            Some((restart, llgr)) => {
                // Every path of the peer is stale now, also those it re-sent on a session
                // that failed again before End-of-RIB; that second failure keeps the
                // running deadline and phase.
                mark_stale(&mut self.v4, peer.0);
                mark_stale(&mut self.v6, peer.0);
                let phase = match self.core.peer(peer).and_then(|p| p.stale) {
                    Some((deadline, phase)) => Some((deadline, phase)),
                    None if restart.is_zero() => {
                        // RFC 9494 §4.2: no GR time → straight to long-lived staleness.
                        Some((now + llgr.unwrap_or_default(), StalePhase::Llgr))
                    }
                    None => Some((now + restart, StalePhase::Gr)),
                };
                if let Some((_, StalePhase::Llgr)) = phase {
                    enter_llgr(&mut self.core, &mut self.v4, peer.0);
                    enter_llgr(&mut self.core, &mut self.v6, peer.0);
                }
                if let Some(ps) = self.core.peer_mut(peer) {
                    ps.stale = phase;
                }
            }
            None => {
                purge(&mut self.core, &mut self.v4, peer.0, false);
                purge(&mut self.core, &mut self.v6, peer.0, false);
                if let Some(ps) = self.core.peer_mut(peer) {
                    ps.stale = None;
                }
            }
        }
        Ok(())
    }

    // ----- routes in -----

    /// Applies one received UPDATE (RFC 4271 §9): withdrawals, announcements (the NLRI field
    /// and MP_REACH_NLRI share the attributes) and End-of-RIB.
    pub fn apply_update(&mut self, peer: PeerId, update: &Update) {
        if let Some(f) = update.as_end_of_rib() {
            self.end_of_rib(peer, f);
            return;
        }
        let withdrawn: Vec<Nlri> = update.withdrawals().copied().collect();
        self.withdraw(peer, &withdrawn);
        let announced: Vec<Nlri> = update.announced().copied().collect();
        if !announced.is_empty() {
            self.announce(peer, update.attributes.clone(), &announced);
        }
    }

    /// Paths `nlri` from `peer` now have `attrs` (one interning for all of them).
    pub fn announce(&mut self, peer: PeerId, attrs: PathAttributes, nlri: &[Nlri]) {
        let Some(ps) = self.core.peer(peer) else {
            return;
        };
        let Some(session) = &ps.session else { return };
        let add_path = session.add_path_rx;
        let mut ra = RouteAttrs::bgp(attrs);
        if !ps.ibgp(self.core.cfg.asn) && !ps.cfg.allow_local_pref {
            // RFC 4271 §5.1.5: LOCAL_PREF from an external peer is ignored.
            ra.bgp.local_pref = None;
        }
        let looped = self.core.is_loop(ps, &ra);
        let base = self.core.interner.intern(ra);
        let src = peer.0;
        // No look-ahead here (unlike `withdraw`): a new entry is written without reading a
        // bucket first, and measured with `touch` ingest was slower.
        for n in nlri {
            let rx = if add_path { n.path_id.unwrap_or(0) } else { 0 };
            on_family!(self, n.prefix, |core, fam, key| {
                if let Some(Some(pre)) = fam.pre.get_mut(usize::from(src)) {
                    core.interner.retain(base);
                    if let Some(old) = pre.insert((key, rx), base) {
                        core.interner.release(old);
                    }
                }
                let new = if looped {
                    None
                } else {
                    core.import(peer, n.prefix, base)
                };
                set_path(core, fam, key, src, rx, new);
            });
        }
        self.core.interner.release(base);
    }

    /// Paths `nlri` from `peer` are withdrawn.
    pub fn withdraw(&mut self, peer: PeerId, nlri: &[Nlri]) {
        let Some(ps) = self.core.peer(peer) else {
            return;
        };
        let add_path = ps.session.as_ref().is_some_and(|s| s.add_path_rx);
        let src = peer.0;
        for chunk in nlri.chunks(TOUCH_BATCH) {
            self.touch(chunk);
            for n in chunk {
                let rx = if add_path { n.path_id.unwrap_or(0) } else { 0 };
                on_family!(self, n.prefix, |core, fam, key| {
                    if let Some(Some(pre)) = fam.pre.get_mut(usize::from(src))
                        && let Some(old) = pre.remove(&(key, rx))
                    {
                        core.interner.release(old);
                    }
                    set_path(core, fam, key, src, rx, None);
                });
            }
        }
    }

    /// Looks up the destinations of `nlri` without acting on them, to bring their table
    /// entries into the cache. A large Loc-RIB does not fit any cache, so each lookup is a
    /// memory access; done back to back, independent lookups overlap (the CPU has many misses
    /// in flight), whereas inside the full per-prefix work each one stalls on its own.
    #[inline]
    fn touch(&self, nlri: &[Nlri]) {
        let mut found = 0usize;
        for n in nlri {
            let hit = if let Some(key) = V4Key::from_prefix(&n.prefix) {
                self.v4.dests.contains_key(&key)
            } else if let Some(key) = V6Key::from_prefix(&n.prefix) {
                self.v6.dests.contains_key(&key)
            } else {
                false
            };
            found += usize::from(hit);
        }
        std::hint::black_box(found);
    }

    /// End-of-RIB from `peer` for `family` (RFC 4724 §4.2): its stale paths of that family
    /// are purged.
    pub fn end_of_rib(&mut self, peer: PeerId, family: Family) {
        let Some(ps) = self.core.peer_mut(peer) else {
            return;
        };
        if !ps.eor.contains(&family) {
            ps.eor.push(family);
        }
        if family == Family::IPV4_UNICAST {
            purge(&mut self.core, &mut self.v4, peer.0, true);
        } else if family == Family::IPV6_UNICAST {
            purge(&mut self.core, &mut self.v6, peer.0, true);
        }
        if !self.has_stale(peer.0)
            && let Some(ps) = self.core.peer_mut(peer)
        {
            ps.stale = None;
        }
    }

    /// Originates (or replaces) a local route.
    pub fn originate(&mut self, local: Local, prefix: Prefix, attrs: RouteAttrs) {
        on_family!(self, prefix, |core, fam, key| {
            let id = core.interner.intern(attrs);
            set_path(core, fam, key, local.src(), 0, Some(id));
        });
    }

    /// Withdraws a local route.
    pub fn withdraw_local(&mut self, local: Local, prefix: Prefix) {
        on_family!(self, prefix, |core, fam, key| {
            set_path(core, fam, key, local.src(), 0, None);
        });
    }

    // ----- re-evaluation -----

    /// The peer asked for our routes again (ROUTE-REFRESH, RFC 2918): its group's
    /// Adj-RIB-Out is re-sent to it alone, then End-of-RIB.
    pub fn route_refresh(&mut self, peer: PeerId) {
        let Some(g) = self.core.peer(peer).and_then(|p| p.group) else {
            return;
        };
        if let Some(Some(group)) = self.core.groups.get_mut(g as usize) {
            group.joiners.push(Joiner {
                peer,
                previously_sent: Vec::new(),
                fresh_group: false,
            });
        }
    }

    /// Replaces the named policies (and the kernel policy name): imports are re-run (from
    /// pre-policy tables or by ROUTE-REFRESH), every export and the FIB are recomputed.
    pub fn set_policies(&mut self, policies: Policies, kernel_policy: Option<String>) {
        self.core.cfg.policies = policies;
        self.core.cfg.kernel_policy = kernel_policy;
        let peers: Vec<PeerId> = self.up_peers();
        for p in peers {
            self.reimport(p);
        }
        self.mark_all_dirty();
    }

    /// Sets (or clears) the IGP cost of reaching `next_hop` (decision step 8).
    pub fn set_igp_cost(&mut self, next_hop: IpAddr, cost: Option<u32>) {
        match cost {
            Some(c) => self.core.igp.insert(next_hop, c),
            None => self.core.igp.remove(&next_hop),
        };
        redecide(&mut self.core, &mut self.v4);
        redecide(&mut self.core, &mut self.v6);
    }

    // ----- time -----

    /// This speaker has just restarted with forwarding state preserved (RFC 4724 §4.1):
    /// route selection results are not handed out ([`poll_updates`](Self::poll_updates) and
    /// [`poll_fib`](Self::poll_fib) return nothing; changes accumulate per prefix) until
    /// every configured peer is up and each GR-capable one has sent End-of-RIB for each of
    /// its families, or until `deadline` (the selection-deferral timer).
    pub fn defer_selection_until(&mut self, deadline: Instant) {
        self.core.deferral = Some(deadline);
    }

    /// True while selection is deferred.
    pub fn deferring(&mut self) -> bool {
        if self.core.deferral.is_none() {
            return false;
        }
        let waiting = self.core.peers.iter().flatten().any(|p| match &p.session {
            Some(s) => s.gr_restart_time.is_some() && s.families.iter().any(|f| !p.eor.contains(f)),
            // Not re-established yet: it may be GR-capable; the deferral timer bounds the wait.
            None => true,
        });
        if !waiting {
            self.core.deferral = None;
        }
        waiting
    }

    /// When [`tick`](Self::tick) next has work (the earliest stale or deferral deadline).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.core
            .peers
            .iter()
            .flatten()
            .filter_map(|p| p.stale.map(|(t, _)| t))
            .chain(self.core.deferral)
            .min()
    }

    /// Advances time: graceful-restart deadlines that have passed purge stale paths or turn
    /// them long-lived stale (RFC 4724 §4.2, RFC 9494 §4.2).
    pub fn tick(&mut self, now: Instant) {
        if self.core.deferral.is_some_and(|d| d <= now) {
            self.core.deferral = None;
        }
        let due: Vec<(PeerId, Instant, StalePhase)> = self
            .core
            .peers
            .iter()
            .enumerate()
            .filter_map(|(i, p)| {
                let (t, phase) = p.as_ref()?.stale?;
                (t <= now).then_some((PeerId(i as u16), t, phase))
            })
            .collect();
        for (peer, deadline, phase) in due {
            let llgr = self
                .core
                .peer(peer)
                .and_then(|p| p.last.as_ref())
                .and_then(|s| s.llgr_stale_time)
                .filter(|t| !t.is_zero());
            match (phase, llgr) {
                (StalePhase::Gr, Some(t)) => {
                    enter_llgr(&mut self.core, &mut self.v4, peer.0);
                    enter_llgr(&mut self.core, &mut self.v6, peer.0);
                    if let Some(ps) = self.core.peer_mut(peer) {
                        ps.stale = Some((deadline + t, StalePhase::Llgr));
                    }
                }
                _ => self.purge_stale(peer),
            }
        }
    }

    // ----- outputs -----

    /// UPDATEs to send: per update group (computed and encoded once for all members) and
    /// per peer (initial tables, refreshes, regrouping). Pending work per group is one entry
    /// per changed prefix (latest state wins), so a slow consumer costs memory bounded by the
    /// table size, not by the update rate.
    pub fn poll_updates(&mut self) -> Vec<OutUpdate> {
        let mut outs = Vec::new();
        if self.deferring() {
            return outs;
        }
        for g in 0..self.core.groups.len() {
            let Some(Some(group)) = self.core.groups.get_mut(g) else {
                continue;
            };
            let joiners = std::mem::take(&mut group.joiners);
            let members = group.members.clone();
            let eor = std::mem::take(&mut group.eor_pending);
            let fams = self.group_families(g);
            let (late, early): (Vec<Joiner>, Vec<Joiner>) =
                joiners.into_iter().partition(|j| j.fresh_group);
            // New members first get what the group has sent so far.
            for j in early {
                let mut b = Builder::default();
                dump(&self.v4, g, &mut b, &j.previously_sent, true);
                dump(&self.v6, g, &mut b, &j.previously_sent, true);
                outs.push(b.finish(&self.core.interner, Target::Peer(j.peer), fams.clone()));
            }
            let mut b = Builder::default();
            drain_group(&mut self.core, &mut self.v4, g, &mut b);
            drain_group(&mut self.core, &mut self.v6, g, &mut b);
            if !b.is_empty() {
                outs.push(b.finish(
                    &self.core.interner,
                    Target::Group {
                        group: g as u32,
                        members,
                    },
                    Vec::new(),
                ));
            }
            for j in late {
                let mut b = Builder::default();
                dump(&self.v4, g, &mut b, &j.previously_sent, false);
                dump(&self.v6, g, &mut b, &j.previously_sent, false);
                if !b.is_empty() {
                    outs.push(b.finish(&self.core.interner, Target::Peer(j.peer), Vec::new()));
                }
            }
            for p in eor {
                outs.push(Builder::default().finish(
                    &self.core.interner,
                    Target::Peer(p),
                    fams.clone(),
                ));
            }
        }
        outs
    }

    /// Kernel changes (latest state per prefix, sorted by prefix).
    pub fn poll_fib(&mut self) -> Vec<FibChange> {
        let mut out = Vec::new();
        if self.deferring() {
            return out;
        }
        fib_drain(&self.core, &mut self.v4, &mut out);
        fib_drain(&self.core, &mut self.v6, &mut out);
        out
    }

    /// Requests for the speaker (ROUTE-REFRESH to send).
    pub fn poll_requests(&mut self) -> Vec<Request> {
        std::mem::take(&mut self.core.requests)
    }

    // ----- queries -----

    /// Number of destinations in the Loc-RIB.
    pub fn len(&self) -> usize {
        self.v4.dests.len() + self.v6.dests.len()
    }

    /// True when the Loc-RIB is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of distinct interned attribute sets.
    pub fn attribute_sets(&self) -> usize {
        self.core.interner.len()
    }

    /// Paths accepted from `peer` (its post-policy Adj-RIB-In).
    pub fn peer_paths(&self, peer: PeerId) -> usize {
        self.core.peer(peer).map_or(0, |p| p.paths)
    }

    /// Entries of `peer`'s pre-policy Adj-RIB-In (0 when not kept).
    pub fn pre_policy_paths(&self, peer: PeerId) -> usize {
        let i = usize::from(peer.0);
        let n4 = self
            .v4
            .pre
            .get(i)
            .and_then(|p| p.as_ref())
            .map_or(0, |m| m.len());
        let n6 = self
            .v6
            .pre
            .get(i)
            .and_then(|p| p.as_ref())
            .map_or(0, |m| m.len());
        n4 + n6
    }

    /// Entries of the Adj-RIB-Out of `peer`'s update group.
    pub fn adj_rib_out(&self, peer: PeerId) -> Vec<(Nlri, Arc<RouteAttrs>)> {
        let Some(g) = self.core.peer(peer).and_then(|p| p.group) else {
            return Vec::new();
        };
        let mut v = Vec::new();
        let add_path = self
            .group_key(g as usize)
            .is_some_and(|k| k.add_path != AddPathSend::Off);
        collect_out(&self.v4, g as usize, add_path, &self.core.interner, &mut v);
        collect_out(&self.v6, g as usize, add_path, &self.core.interner, &mut v);
        v.sort_by_key(|a| a.0);
        v
    }

    /// The update group `peer` belongs to, while its session is up.
    pub fn group_of(&self, peer: PeerId) -> Option<u32> {
        self.core.peer(peer).and_then(|p| p.group)
    }

    /// Every path to `prefix`, best first.
    pub fn routes(&self, prefix: Prefix) -> Vec<RouteInfo> {
        let paths = if let Some(k) = V4Key::from_prefix(&prefix) {
            self.v4.dests.get(&k)
        } else {
            V6Key::from_prefix(&prefix).and_then(|k| self.v6.dests.get(&k))
        };
        let Some(paths) = paths else {
            return Vec::new();
        };
        let mut v: Vec<RouteInfo> = paths.as_slice().iter().map(|p| self.info(p)).collect();
        v.sort_by_key(|r| (!r.best, !r.multipath));
        v
    }

    /// The best path to `prefix`.
    pub fn best(&self, prefix: Prefix) -> Option<RouteInfo> {
        self.routes(prefix).into_iter().find(|r| r.best)
    }

    /// Every destination with its best path, sorted by prefix.
    pub fn best_routes(&self) -> Vec<(Prefix, RouteInfo)> {
        let mut v: Vec<(Prefix, RouteInfo)> = Vec::with_capacity(self.len());
        for (k, paths) in self.v4.dests.iter() {
            if let Some(b) = paths.best() {
                v.push((k.prefix(), self.info(b)));
            }
        }
        for (k, paths) in self.v6.dests.iter() {
            if let Some(b) = paths.best() {
                v.push((k.prefix(), self.info(b)));
            }
        }
        v.sort_by_key(|a| a.0);
        v
    }

    fn info(&self, p: &Path) -> RouteInfo {
        RouteInfo {
            source: match p.src {
                0 => Source::Local(Local::Static),
                1 => Source::Local(Local::Kernel),
                2 => Source::Local(Local::Direct),
                s => Source::Peer(PeerId(s)),
            },
            attrs: self.core.interner.get(p.attrs).clone(),
            path_id: p.rx_id,
            tx_path_id: p.tx_id,
            best: p.has(flag::BEST),
            multipath: p.has(flag::ECMP),
            stale: p.has(flag::STALE),
            llgr_stale: p.has(flag::LLGR),
        }
    }

    // ----- internals -----

    fn up_peers(&self) -> Vec<PeerId> {
        self.core
            .peers
            .iter()
            .enumerate()
            .filter(|(_, p)| p.as_ref().is_some_and(|p| p.session.is_some()))
            .map(|(i, _)| PeerId(i as u16))
            .collect()
    }

    fn has_stale(&self, src: u16) -> bool {
        let st = |p: &Path| p.src == src && p.flags & (flag::STALE | flag::LLGR) != 0;
        self.v4
            .dests
            .values()
            .any(|ps| ps.as_slice().iter().any(st))
            || self
                .v6
                .dests
                .values()
                .any(|ps| ps.as_slice().iter().any(st))
    }

    fn purge_stale(&mut self, peer: PeerId) {
        purge(&mut self.core, &mut self.v4, peer.0, true);
        purge(&mut self.core, &mut self.v6, peer.0, true);
        if let Some(ps) = self.core.peer_mut(peer) {
            ps.stale = None;
        }
    }

    fn drop_pre(&mut self, peer: PeerId) {
        let i = usize::from(peer.0);
        for id in take_pre(&mut self.v4, i)
            .into_iter()
            .chain(take_pre(&mut self.v6, i))
        {
            self.core.interner.release(id);
        }
    }

    fn reimport(&mut self, peer: PeerId) {
        let i = usize::from(peer.0);
        let has_pre = self.v4.pre.get(i).is_some_and(|p| p.is_some())
            || self.v6.pre.get(i).is_some_and(|p| p.is_some());
        if !has_pre {
            self.core.requests.push(Request::RouteRefresh(peer));
            return;
        }
        reimport_fam(&mut self.core, &mut self.v4, peer);
        reimport_fam(&mut self.core, &mut self.v6, peer);
    }

    fn group_key(&self, g: usize) -> Option<&GroupKey> {
        self.core
            .groups
            .get(g)
            .and_then(|g| g.as_ref())
            .map(|g| &g.key)
    }

    fn group_families(&self, g: usize) -> Vec<Family> {
        let mut v = Vec::new();
        if let Some(k) = self.group_key(g) {
            if k.v4 {
                v.push(Family::IPV4_UNICAST);
            }
            if k.v6 {
                v.push(Family::IPV6_UNICAST);
            }
        }
        v
    }

    fn key_for(&self, peer: PeerId) -> Option<GroupKey> {
        let ps = self.core.peer(peer)?;
        let s = ps.session.as_ref()?;
        let c = &ps.cfg;
        let ibgp = ps.ibgp(self.core.cfg.asn);
        Some(GroupKey {
            export: c.export.clone(),
            ibgp,
            local_as: ps.local_as(self.core.cfg.asn),
            rr_client: c.rr_client,
            cluster_id: c
                .rr_cluster_id
                .or(self.core.cfg.cluster_id)
                .unwrap_or(self.core.cfg.router_id),
            next_hop_mode: c.next_hop_mode,
            local_address: s.local_address,
            add_path: s.add_path_tx,
            llgr: s.llgr_stale_time.is_some(),
            v4: s.families.contains(&Family::IPV4_UNICAST),
            v6: s.families.contains(&Family::IPV6_UNICAST),
            allow_local_pref: c.allow_local_pref && !ibgp,
        })
    }

    /// Puts an up peer into the group for its key (creating it with a full export).
    fn join_group(&mut self, peer: PeerId, previously_sent: Vec<Nlri>) {
        let Some(key) = self.key_for(peer) else {
            return;
        };
        let existing = self
            .core
            .groups
            .iter()
            .position(|g| g.as_ref().is_some_and(|g| g.key == key));
        let g = match existing {
            Some(g) => {
                if let Some(Some(group)) = self.core.groups.get_mut(g) {
                    if group.members.len() == 1 {
                        // Paths from the first member were not exported while it was alone.
                        mark_group(&mut self.v4, g);
                        mark_group(&mut self.v6, g);
                    }
                    group.members.push(peer);
                    group.joiners.push(Joiner {
                        peer,
                        previously_sent,
                        fresh_group: false,
                    });
                }
                g
            }
            None => {
                let g = self
                    .core
                    .groups
                    .iter()
                    .position(|g| g.is_none())
                    .unwrap_or(self.core.groups.len());
                let group = Group {
                    key: key.clone(),
                    members: vec![peer],
                    joiners: Vec::new(),
                    eor_pending: vec![peer],
                };
                if g == self.core.groups.len() {
                    self.core.groups.push(Some(group));
                } else {
                    self.core.groups[g] = Some(group);
                }
                init_out(&mut self.v4, g, key.v4);
                init_out(&mut self.v6, g, key.v6);
                if !previously_sent.is_empty() {
                    // The peer was sent these by its old group: withdraw what the new group
                    // will not announce (after the new group's full export).
                    if let Some(Some(group)) = self.core.groups.get_mut(g) {
                        group.joiners.push(Joiner {
                            peer,
                            previously_sent,
                            fresh_group: true,
                        });
                    }
                }
                g
            }
        };
        if let Some(ps) = self.core.peer_mut(peer) {
            ps.group = Some(g as u32);
        }
    }

    /// Takes a peer out of its group; returns what the group had sent when asked.
    fn leave_group(&mut self, peer: PeerId, want_sent: bool) -> Vec<Nlri> {
        let Some(g) = self.core.peer_mut(peer).and_then(|p| p.group.take()) else {
            return Vec::new();
        };
        let g = g as usize;
        let mut sent = Vec::new();
        if want_sent {
            let add_path = self
                .group_key(g)
                .is_some_and(|k| k.add_path != AddPathSend::Off);
            let mut v = Vec::new();
            collect_out(&self.v4, g, add_path, &self.core.interner, &mut v);
            collect_out(&self.v6, g, add_path, &self.core.interner, &mut v);
            sent = v.into_iter().map(|(n, _)| n).collect();
        }
        let empty = match self.core.groups.get_mut(g) {
            Some(Some(group)) => {
                group.members.retain(|&m| m != peer);
                group.joiners.retain(|j| j.peer != peer);
                group.eor_pending.retain(|&m| m != peer);
                group.members.is_empty()
            }
            _ => false,
        };
        if empty {
            self.core.groups[g] = None;
            for id in free_out(&mut self.v4, g)
                .into_iter()
                .chain(free_out(&mut self.v6, g))
            {
                self.core.interner.release(id);
            }
        } else {
            // Routes the leaving peer sent were excluded for it; others still get them.
            // Its own paths disappear through purge, which marks the prefixes.
        }
        sent
    }

    fn regroup(&mut self, peer: PeerId) {
        let old = self.core.peer(peer).and_then(|p| p.group);
        let new_key = self.key_for(peer);
        if let (Some(g), Some(k)) = (old, &new_key)
            && self.group_key(g as usize) == Some(k)
        {
            return;
        }
        let sent = self.leave_group(peer, true);
        self.join_group(peer, sent);
    }

    fn mark_all_dirty(&mut self) {
        mark_all(&self.core, &mut self.v4);
        mark_all(&self.core, &mut self.v6);
    }
}

/// A per-source optional table that can be created on demand (type-erased over the key).
trait PreSlot {
    fn ensure(&mut self, i: usize);
}

impl<K: FamilyKey> PreSlot for Vec<Option<PrePolicy<K>>> {
    fn ensure(&mut self, i: usize) {
        if self.len() <= i {
            self.resize_with(i + 1, || None);
        }
        if self[i].is_none() {
            self[i] = Some(Shards::default());
        }
    }
}

fn take_pre<K: FamilyKey>(fam: &mut Fam<K>, i: usize) -> Vec<AttrId> {
    match fam.pre.get_mut(i).and_then(|p| p.take()) {
        Some(m) => m.into_values().collect(),
        None => Vec::new(),
    }
}

fn reimport_fam<K: FamilyKey>(core: &mut Core, fam: &mut Fam<K>, peer: PeerId) {
    let i = usize::from(peer.0);
    let entries: Vec<((K, u32), AttrId)> = match fam.pre.get(i).and_then(|p| p.as_ref()) {
        Some(m) => m.iter().map(|(k, v)| (*k, *v)).collect(),
        None => return,
    };
    for ((key, rx), base) in entries {
        let looped = match core.peer(peer) {
            Some(ps) => {
                let a = core.interner.get(base).clone();
                core.is_loop(ps, &a)
            }
            None => return,
        };
        let new = if looped {
            None
        } else {
            core.import(peer, key.prefix(), base)
        };
        set_path(core, fam, key, peer.0, rx, new);
    }
}

fn redecide<K: FamilyKey>(core: &mut Core, fam: &mut Fam<K>) {
    let Fam {
        dests,
        out,
        fib_dirty,
        ..
    } = fam;
    for (&key, paths) in dests.iter_mut() {
        if paths.len() < 2 {
            continue;
        }
        let before = signature(paths);
        core.decide(paths);
        let changed = signature(paths) != before;
        mark(core, out, fib_dirty, key, changed, None);
    }
}

fn mark_all<K: FamilyKey>(core: &Core, fam: &mut Fam<K>) {
    let keys: Vec<K> = fam.dests.keys().copied().collect();
    for (g, o) in fam.out.iter_mut().enumerate() {
        let Some(o) = o else { continue };
        if core.groups.get(g).is_some_and(|g| g.is_some()) {
            o.dirty.extend(keys.iter().copied());
            o.dirty.extend(o.sent.keys().copied());
        }
    }
    if core.cfg.kernel_policy.is_some() {
        fam.fib_dirty.extend(keys);
    }
}

fn mark_group<K: FamilyKey>(fam: &mut Fam<K>, g: usize) {
    if let Some(Some(o)) = fam.out.get_mut(g) {
        o.dirty.extend(fam.dests.keys().copied());
    }
}

fn init_out<K: FamilyKey>(fam: &mut Fam<K>, g: usize, carried: bool) {
    if fam.out.len() <= g {
        fam.out.resize_with(g + 1, || None);
    }
    let mut o = GroupOut::default();
    if carried {
        o.dirty.extend(fam.dests.keys().copied());
        fam.out[g] = Some(o);
    } else {
        fam.out[g] = None;
    }
}

fn free_out<K: FamilyKey>(fam: &mut Fam<K>, g: usize) -> Vec<AttrId> {
    match fam.out.get_mut(g).and_then(|o| o.take()) {
        Some(o) => o
            .sent
            .into_values()
            .flat_map(|s| s.as_slice().to_vec())
            .map(|s| s.attrs)
            .collect(),
        None => Vec::new(),
    }
}

fn collect_out<K: FamilyKey>(
    fam: &Fam<K>,
    g: usize,
    add_path: bool,
    interner: &Interner,
    v: &mut Vec<(Nlri, Arc<RouteAttrs>)>,
) {
    if let Some(Some(o)) = fam.out.get(g) {
        for (k, s) in o.sent.iter() {
            for e in s.as_slice() {
                let n = Nlri {
                    prefix: k.prefix(),
                    path_id: add_path.then_some(e.tx),
                };
                v.push((n, interner.get(e.attrs).clone()));
            }
        }
    }
}

/// Everything group `g` has sent, as announcements to one new member; plus withdrawals of
/// `previously_sent` NLRI the group does not announce.
fn dump<K: FamilyKey>(
    fam: &Fam<K>,
    g: usize,
    b: &mut Builder,
    previously_sent: &[Nlri],
    announce: bool,
) {
    let Some(Some(o)) = fam.out.get(g) else {
        for n in previously_sent {
            if K::from_prefix(&n.prefix).is_some() {
                b.withdraw.push(*n);
            }
        }
        return;
    };
    let mut keys: Vec<&K> = if announce {
        o.sent.keys().collect()
    } else {
        Vec::new()
    };
    keys.sort();
    for k in keys {
        if let Some(s) = o.sent.get(k) {
            for e in s.as_slice() {
                // Members that sent the route get nothing for it (they would only be told to
                // withdraw what they never received from us).
                let n = Nlri {
                    prefix: k.prefix(),
                    path_id: (e.tx != 0).then_some(e.tx),
                };
                b.announce(e.attrs, e.except, n);
            }
        }
    }
    for n in previously_sent {
        let Some(k) = K::from_prefix(&n.prefix) else {
            continue;
        };
        let still = o.sent.get(&k).is_some_and(|s| {
            s.as_slice()
                .iter()
                .any(|e| (e.tx != 0).then_some(e.tx) == n.path_id)
        });
        if !still {
            b.withdraw.push(*n);
        }
    }
}

/// Empties a change set and gives its memory back (after a full-table load it would
/// otherwise keep a million-entry capacity).
fn drain_set<K: FamilyKey>(set: &mut HashSet<K, FxBuild>) -> Vec<K> {
    let keys: Vec<K> = set.drain().collect();
    if set.capacity() > 4096 {
        *set = HashSet::default();
    }
    keys
}

fn drain_group<K: FamilyKey>(core: &mut Core, fam: &mut Fam<K>, g: usize, b: &mut Builder) {
    let mut keys: Vec<K> = match fam.out.get_mut(g) {
        Some(Some(o)) => drain_set(&mut o.dirty),
        _ => return,
    };
    keys.sort_unstable();
    // With the built-in `all` export policy the exported attributes depend only on the
    // path's attributes, source and long-lived staleness, not on the prefix: compute each
    // once per drain.
    let all = core
        .groups
        .get(g)
        .and_then(|x| x.as_ref())
        .is_some_and(|x| core.cfg.policies.is_all(&x.key.export));
    let mut memo: Option<ExportMemo> = all.then(HashMap::default);
    let Some(Some(group)) = core.groups.get(g) else {
        return;
    };
    let gk = group.key.clone();
    let members: Vec<u16> = group.members.iter().map(|p| p.0).collect();
    for k in keys {
        refresh_key(core, fam, (g, &gk, &members), k, b, &mut memo);
    }
    for id in memo.into_iter().flat_map(|m| m.into_values()).flatten() {
        core.interner.release(id);
    }
}

/// [`refresh_key`] for a group without ADD-PATH: at most one path per prefix, no
/// allocation.
fn refresh_best<K: FamilyKey>(
    core: &mut Core,
    fam: &mut Fam<K>,
    (g, gk, members): (usize, &GroupKey, &[u16]),
    key: K,
    b: &mut Builder,
    memo: &mut Option<ExportMemo>,
) {
    let prefix = key.prefix();
    let best = fam.dests.get(&key).and_then(|paths| paths.best().copied());
    let want = best.and_then(|p| {
        if members.len() == 1 && members[0] == p.src {
            return None;
        }
        let id = export_memo(core, gk, prefix, &p, memo)?;
        let except = if members.contains(&p.src) { p.src } else { 0 };
        Some(Sent {
            tx: 0,
            attrs: id,
            except,
        })
    });
    let Some(Some(out)) = fam.out.get_mut(g) else {
        if let Some(w) = want {
            core.interner.release(w.attrs);
        }
        return;
    };
    let old = out
        .sent
        .get(&key)
        .and_then(|s| s.as_slice().first().copied());
    let nlri = Nlri::new(prefix);
    match want {
        None => {
            if let Some(o) = old {
                b.withdraw.push(nlri);
                core.interner.release(o.attrs);
                out.sent.remove(&key);
            }
        }
        Some(w) => {
            if old != Some(w) {
                b.announce(w.attrs, w.except, nlri);
            }
            if let Some(o) = old {
                core.interner.release(o.attrs);
            }
            out.sent.insert(key, SentPaths::One(w));
        }
    }
}

/// Export results per (attributes, source, long-lived stale) within one drain; holds one
/// reference to each result.
type ExportMemo = HashMap<(AttrId, u16, bool), Option<AttrId>, FxBuild>;

fn export_memo(
    core: &mut Core,
    gk: &GroupKey,
    prefix: Prefix,
    p: &Path,
    memo: &mut Option<ExportMemo>,
) -> Option<AttrId> {
    let Some(m) = memo else {
        return core.export(gk, prefix, p);
    };
    let k = (p.attrs, p.src, p.has(flag::LLGR));
    let r = match m.get(&k) {
        Some(&r) => r,
        None => {
            let r = core.export(gk, prefix, p);
            m.insert(k, r);
            r
        }
    };
    if let Some(id) = r {
        core.interner.retain(id);
    }
    r
}

fn fib_drain<K: FamilyKey>(core: &Core, fam: &mut Fam<K>, out: &mut Vec<FibChange>) {
    let mut keys: Vec<K> = drain_set(&mut fam.fib_dirty);
    keys.sort_unstable();
    for k in keys {
        let prefix = k.prefix();
        let route = fam
            .dests
            .get(&k)
            .and_then(|paths| core.fib_route(prefix, paths));
        out.push(match route {
            Some(r) => FibChange::Install(r),
            None => FibChange::Remove(prefix),
        });
    }
}
