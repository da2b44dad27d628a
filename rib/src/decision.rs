//! The decision process: RFC 4271 §9.1.2.2 with the usual extensions.
//!
//! [`Decision::select`] runs the RFC's *elimination* form: each step removes from the candidate set the
//! paths that lose on one criterion, so the result depends only on the set of paths, never
//! on their arrival order (this is what "deterministic MED" buys on implementations that
//! compare pairwise). Steps, in order:
//!
//! 0. long-lived stale paths (RFC 9494 §4.3) lose to any other path;
//! 1. highest route preference (BIRD `preference`: ranks sources; Calico raises elevated
//!    routes to 200);
//! 2. locally originated paths over learned ones;
//! 3. highest LOCAL_PREF (absent = 100);
//! 4. shortest AS_PATH (AS_SET counts 1, confederation segments 0);
//! 5. lowest ORIGIN;
//! 6. lowest MED among paths from the same neighbour AS, or among all with
//!    `always_compare_med` (absent MED = 0);
//! 7. eBGP over iBGP;
//! 8. lowest IGP cost to the next hop (the [`Decision::igp_cost`] hook);
//!    — the paths still in the set here form the ECMP set (BIRD `merge paths`) —
//! 9. shortest CLUSTER_LIST (RFC 4456 §9);
//! 10. lowest ORIGINATOR_ID, else the peer's BGP identifier;
//! 11. lowest peer address;
//! 12. lowest (source, received path id): a total order for ADD-PATH paths from one peer.
//!
//! With `deterministic_med` off, step 6 is replaced by BIRD's/Cisco's default: paths are
//! compared pairwise in arrival order, and MED only between two paths of the same
//! neighbour AS (the outcome can depend on arrival order, as it does there).

use std::cmp::Ordering;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};

use bgp_wire::{Community, Origin};

use crate::attrs::{Interner, RouteAttrs};
use crate::table::{Path, flag};

/// What the decision process knows about a path's source.
#[derive(Clone, Copy, Debug)]
pub struct SourceInfo {
    /// Locally originated (static, kernel, direct) rather than learned over BGP.
    pub local: bool,
    /// Learned over iBGP.
    pub ibgp: bool,
    /// The peer's BGP identifier (0.0.0.0 for local sources).
    pub router_id: Ipv4Addr,
    /// The peer's address (unspecified for local sources).
    pub address: IpAddr,
}

/// Decision-process options.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Options {
    /// Compare MED between paths from different neighbour ASes.
    pub always_compare_med: bool,
    /// Order-independent MED handling (see the module docs). Default on.
    pub deterministic_med: bool,
    /// Largest ECMP set (1 = no multipath).
    pub max_paths: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            always_compare_med: false,
            deterministic_med: true,
            max_paths: 16,
        }
    }
}

/// Everything [`Decision::select`] needs besides the paths.
pub struct Decision<'a> {
    /// Attribute store.
    pub interner: &'a Interner,
    /// Source facts, indexed by `Path::src`.
    pub sources: &'a [SourceInfo],
    /// Options.
    pub options: Options,
    /// IGP cost to a next hop; `None` = unknown, counted as 0 (no IGP in Calico's setups).
    pub igp_cost: &'a dyn Fn(IpAddr) -> Option<u32>,
}

/// Per-path values the steps compare, computed once per selection.
struct Facts<'a> {
    attrs: &'a RouteAttrs,
    src: SourceInfo,
    llgr: bool,
    path_len: usize,
    neighbour_as: Option<u32>,
    med: u32,
    igp: u32,
}

const UNKNOWN_SOURCE: SourceInfo = SourceInfo {
    local: true,
    ibgp: false,
    router_id: Ipv4Addr::UNSPECIFIED,
    address: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
};

impl Decision<'_> {
    fn facts<'b>(&'b self, p: &Path) -> Facts<'b> {
        let attrs: &RouteAttrs = self.interner.get(p.attrs);
        let src = self
            .sources
            .get(usize::from(p.src))
            .copied()
            .unwrap_or(UNKNOWN_SOURCE);
        let (path_len, neighbour_as) = match &attrs.bgp.as_path {
            Some(path) => (path.path_len(), path.first_as()),
            None => (0, None),
        };
        Facts {
            llgr: p.has(flag::LLGR) || attrs.bgp.communities.contains(&Community::LLGR_STALE),
            path_len,
            neighbour_as,
            med: attrs.bgp.med.unwrap_or(0),
            igp: attrs
                .next_hop()
                .and_then(|nh| (self.igp_cost)(nh))
                .unwrap_or(0),
            attrs,
            src,
        }
    }

    /// Selects the best path and the ECMP set of `paths`: sets [`flag::BEST`] on exactly one
    /// path (when any) and [`flag::ECMP`] on the multipath set (which includes the best).
    /// Returns the index of the best path.
    pub fn select(&self, paths: &mut [Path]) -> Option<usize> {
        for p in paths.iter_mut() {
            p.flags &= !(flag::BEST | flag::ECMP);
        }
        match paths.len() {
            0 => return None,
            1 => {
                paths[0].flags |= flag::BEST | flag::ECMP;
                return Some(0);
            }
            _ => {}
        }
        let facts: Vec<Facts<'_>> = paths.iter().map(|p| self.facts(p)).collect();
        let all: Vec<usize> = (0..paths.len()).collect();
        let (best, ecmp) = if self.options.deterministic_med {
            self.eliminate(&facts, paths, all)
        } else {
            self.pairwise(&facts, paths)
        };
        paths[best].flags |= flag::BEST | flag::ECMP;
        // ECMP: distinct next hops only, best first, bounded.
        let mut hops: Vec<Option<IpAddr>> = vec![facts[best].attrs.next_hop()];
        for i in ecmp {
            if hops.len() >= self.options.max_paths.max(1) {
                break;
            }
            let nh = facts[i].attrs.next_hop();
            if i != best && nh.is_some() && !hops.contains(&nh) {
                hops.push(nh);
                paths[i].flags |= flag::ECMP;
            }
        }
        Some(best)
    }

    /// Ranks `paths`: indices from best to worst (repeated selection), for ADD-PATH best-N.
    pub fn rank(&self, paths: &[Path], n: usize) -> Vec<usize> {
        let facts: Vec<Facts<'_>> = paths.iter().map(|p| self.facts(p)).collect();
        let mut left: Vec<usize> = (0..paths.len()).collect();
        let mut out = Vec::new();
        while !left.is_empty() && out.len() < n {
            let (best, _) = if self.options.deterministic_med {
                self.eliminate(&facts, paths, left.clone())
            } else {
                let sub: Vec<Path> = left.iter().map(|&i| paths[i]).collect();
                let sub_facts: Vec<Facts<'_>> = sub.iter().map(|p| self.facts(p)).collect();
                let (b, _) = self.pairwise(&sub_facts, &sub);
                (left[b], Vec::new())
            };
            out.push(best);
            left.retain(|&i| i != best);
        }
        out
    }

    /// RFC 4271 §9.1.2.2 elimination. Returns the winner and the ECMP survivors (after the
    /// IGP-cost step).
    fn eliminate(
        &self,
        f: &[Facts<'_>],
        paths: &[Path],
        mut set: Vec<usize>,
    ) -> (usize, Vec<usize>) {
        keep_min(&mut set, |i| u8::from(f[i].llgr));
        keep_min(&mut set, |i| std::cmp::Reverse(f[i].attrs.preference));
        keep_min(&mut set, |i| u8::from(!f[i].src.local));
        keep_min(&mut set, |i| {
            std::cmp::Reverse(f[i].attrs.effective_local_pref())
        });
        keep_min(&mut set, |i| f[i].path_len);
        keep_min(&mut set, |i| origin_rank(f[i].attrs.bgp.origin));
        // MED: drop a path when another in the set with the same neighbour AS (or any, with
        // always-compare) has a lower MED.
        // The lowest MED per neighbour AS first, then one pass: linear, where comparing every
        // pair was quadratic in the paths of a destination (thousands with ADD-PATH).
        if set.len() > 1 {
            let group = |i: usize| {
                (!self.options.always_compare_med)
                    .then_some(f[i].neighbour_as)
                    .flatten()
            };
            let mut lowest: HashMap<Option<u32>, u32> = HashMap::new();
            for &i in &set {
                let m = lowest.entry(group(i)).or_insert(f[i].med);
                *m = (*m).min(f[i].med);
            }
            set.retain(|&i| lowest.get(&group(i)).is_none_or(|&m| f[i].med <= m));
        }
        keep_min(&mut set, |i| u8::from(f[i].src.ibgp && !f[i].src.local));
        keep_min(&mut set, |i| f[i].igp);
        let ecmp = set.clone();
        keep_min(&mut set, |i| f[i].attrs.bgp.cluster_list.len());
        keep_min(&mut set, |i| {
            f[i].attrs.bgp.originator_id.unwrap_or(f[i].src.router_id)
        });
        keep_min(&mut set, |i| f[i].src.address);
        keep_min(&mut set, |i| (paths[i].src, paths[i].rx_id));
        (set.first().copied().unwrap_or(0), ecmp)
    }

    /// Pairwise comparison in arrival order (deterministic MED off).
    fn pairwise(&self, f: &[Facts<'_>], paths: &[Path]) -> (usize, Vec<usize>) {
        let mut best = 0;
        for i in 1..f.len() {
            if self.compare(&f[i], &paths[i], &f[best], &paths[best]) == Ordering::Less {
                best = i;
            }
        }
        let ecmp = (0..f.len())
            .filter(|&i| self.compare_until_igp(&f[i], &f[best]) == Ordering::Equal)
            .collect();
        (best, ecmp)
    }

    /// `Less` when `a` is better, up to and including the IGP-cost step.
    fn compare_until_igp(&self, a: &Facts<'_>, b: &Facts<'_>) -> Ordering {
        a.llgr
            .cmp(&b.llgr)
            .then(b.attrs.preference.cmp(&a.attrs.preference))
            .then((!a.src.local).cmp(&!b.src.local))
            .then(
                b.attrs
                    .effective_local_pref()
                    .cmp(&a.attrs.effective_local_pref()),
            )
            .then(a.path_len.cmp(&b.path_len))
            .then(origin_rank(a.attrs.bgp.origin).cmp(&origin_rank(b.attrs.bgp.origin)))
            .then(
                if self.options.always_compare_med || a.neighbour_as == b.neighbour_as {
                    a.med.cmp(&b.med)
                } else {
                    Ordering::Equal
                },
            )
            .then((a.src.ibgp && !a.src.local).cmp(&(b.src.ibgp && !b.src.local)))
            .then(a.igp.cmp(&b.igp))
    }

    fn compare(&self, a: &Facts<'_>, pa: &Path, b: &Facts<'_>, pb: &Path) -> Ordering {
        self.compare_until_igp(a, b)
            .then(
                a.attrs
                    .bgp
                    .cluster_list
                    .len()
                    .cmp(&b.attrs.bgp.cluster_list.len()),
            )
            .then(
                a.attrs
                    .bgp
                    .originator_id
                    .unwrap_or(a.src.router_id)
                    .cmp(&b.attrs.bgp.originator_id.unwrap_or(b.src.router_id)),
            )
            .then(a.src.address.cmp(&b.src.address))
            .then((pa.src, pa.rx_id).cmp(&(pb.src, pb.rx_id)))
    }
}

/// IGP < EGP < INCOMPLETE; absent (local routes) counts as IGP.
fn origin_rank(o: Option<Origin>) -> u8 {
    match o {
        None | Some(Origin::Igp) => 0,
        Some(Origin::Egp) => 1,
        Some(Origin::Incomplete) => 2,
        Some(Origin::Unknown(v)) => v.saturating_add(3),
    }
}

/// Keeps the elements of `set` with the minimal key.
fn keep_min<K: Ord>(set: &mut Vec<usize>, key: impl Fn(usize) -> K) {
    if set.len() <= 1 {
        return;
    }
    let Some(min) = set.iter().map(|&i| key(i)).min() else {
        return;
    };
    set.retain(|&i| key(i) == min);
}
