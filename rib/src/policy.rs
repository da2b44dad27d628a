//! Evaluation of Tern's policy language ([`tern_config::policy`]).
//!
//! The language is data; this module runs it against one route at a time. Semantics (from
//! the language's own documentation, which follows BIRD as Calico uses it):
//!
//! * rules run top to bottom; a rule whose conditions all hold runs its actions in order and
//!   then applies its verdict; `Accept`/`Reject` end the whole evaluation — also from inside
//!   a called policy — and `Continue` falls through;
//! * [`Action::Call`] runs a named policy in place: its accept/reject is final, running off
//!   its end returns to the caller's next action;
//! * running off the end of the top-level policy applies that policy's `default`;
//! * a comparison on an attribute the route lacks is false.
//!
//! `"all"` and `"none"` are built in. An unknown name, or calls nested deeper than
//! [`MAX_CALL_DEPTH`] (a cycle), is an error, which callers treat as a reject.
//!
//! The route under evaluation is copy-on-write: a policy that only matches never clones the
//! (interned) attribute set.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use bgp_wire::{Afi, Community, LargeCommunity, Prefix, SegmentType};
use ipnet::IpNet;
use tern_config::policy::{
    self as lang, Action, Family, Match, NextHop, Policy, PrefixMatch, PrefixOp, RouteSource,
    SessionType, Verdict,
};

use crate::attrs::RouteAttrs;

/// Deepest chain of [`Action::Call`]s evaluated before giving up (a call cycle).
pub const MAX_CALL_DEPTH: usize = 32;

/// Why a policy could not be evaluated (the route is rejected).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// A referenced policy does not exist.
    #[error("unknown policy {0:?}")]
    Unknown(String),
    /// Calls nest deeper than [`MAX_CALL_DEPTH`].
    #[error("policy calls nest deeper than {MAX_CALL_DEPTH} (cycle through {0:?}?)")]
    TooDeep(String),
}

/// Where a route came from, as the policy sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Origin {
    /// Learned from an iBGP peer.
    Ibgp,
    /// Learned from an eBGP peer.
    Ebgp,
    /// Learned from the kernel routing table.
    Kernel,
    /// A configured static route.
    Static,
    /// A directly connected network.
    Direct,
}

impl Origin {
    fn matches(self, s: RouteSource) -> bool {
        match s {
            RouteSource::Bgp => matches!(self, Origin::Ibgp | Origin::Ebgp),
            RouteSource::Ibgp => self == Origin::Ibgp,
            RouteSource::Ebgp => self == Origin::Ebgp,
            RouteSource::Kernel => self == Origin::Kernel,
            RouteSource::Static => self == Origin::Static,
            RouteSource::Direct => self == Origin::Direct,
        }
    }
}

/// The per-evaluation context: facts about the route's source and the session the policy is
/// applied to, which are not route attributes.
#[derive(Clone, Copy, Debug)]
pub struct Context {
    /// The session the policy is applied to (import: the sender; export: the receiver);
    /// `None` for the kernel policy.
    pub session: Option<SessionType>,
    /// Where the route came from.
    pub origin: Origin,
    /// The BGP neighbour the route was learned from.
    pub neighbour: Option<IpAddr>,
    /// This speaker's address on the session (the value of `SetNextHop(SelfAddress)`).
    pub local_address: Option<IpAddr>,
}

/// The outcome of a policy run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The route passes (possibly modified).
    Accept,
    /// The route is filtered out.
    Reject,
}

/// A route under evaluation: its prefix and copy-on-write attributes.
pub struct Candidate<'a> {
    prefix: Prefix,
    base: &'a RouteAttrs,
    owned: Option<RouteAttrs>,
}

impl<'a> Candidate<'a> {
    /// A route with the given prefix and attributes.
    pub fn new(prefix: Prefix, attrs: &'a RouteAttrs) -> Self {
        Candidate {
            prefix,
            base: attrs,
            owned: None,
        }
    }

    /// The current attributes.
    pub fn attrs(&self) -> &RouteAttrs {
        self.owned.as_ref().unwrap_or(self.base)
    }

    fn attrs_mut(&mut self) -> &mut RouteAttrs {
        self.owned.get_or_insert_with(|| self.base.clone())
    }

    /// The modified attributes, `None` when the policy changed nothing.
    pub fn into_modified(self) -> Option<RouteAttrs> {
        self.owned.filter(|o| o != self.base)
    }
}

/// Named policies, as referenced by peers' import/export slots and the kernel.
#[derive(Clone, Debug, Default)]
pub struct Policies {
    map: BTreeMap<String, Arc<Policy>>,
}

enum Flow {
    Accept,
    Reject,
    FellThrough,
}

impl Policies {
    /// The given named policies (`"all"`/`"none"` are built in and cannot be overridden).
    pub fn new(map: BTreeMap<String, Policy>) -> Self {
        Policies {
            map: map.into_iter().map(|(k, v)| (k, Arc::new(v))).collect(),
        }
    }

    /// True when `name` is a built-in or defined policy.
    pub fn contains(&self, name: &str) -> bool {
        name == lang::ALL || name == lang::NONE || self.map.contains_key(name)
    }

    /// The definition of `name`, if it is a user policy.
    pub fn get(&self, name: &str) -> Option<&Arc<Policy>> {
        self.map.get(name)
    }

    /// True when `name` accepts everything unchanged (so callers may skip evaluation).
    pub fn is_all(&self, name: &str) -> bool {
        name == lang::ALL
    }

    /// Runs policy `name` on `route`.
    pub fn evaluate(
        &self,
        name: &str,
        route: &mut Candidate<'_>,
        ctx: &Context,
    ) -> Result<Outcome, PolicyError> {
        match name {
            lang::ALL => return Ok(Outcome::Accept),
            lang::NONE => return Ok(Outcome::Reject),
            _ => {}
        }
        let policy = self
            .map
            .get(name)
            .ok_or_else(|| PolicyError::Unknown(name.to_string()))?;
        Ok(match self.run(policy, route, ctx, 0)? {
            Flow::Accept => Outcome::Accept,
            Flow::Reject => Outcome::Reject,
            Flow::FellThrough => match policy.default {
                Verdict::Accept => Outcome::Accept,
                // `Continue` as a top-level default has nowhere to continue to.
                Verdict::Reject | Verdict::Continue => Outcome::Reject,
            },
        })
    }

    fn run(
        &self,
        policy: &Policy,
        route: &mut Candidate<'_>,
        ctx: &Context,
        depth: usize,
    ) -> Result<Flow, PolicyError> {
        for rule in &policy.rules {
            if !rule.when.iter().all(|m| matches(m, route, ctx)) {
                continue;
            }
            for action in &rule.then {
                if let Action::Call(name) = action {
                    match self.call(name, route, ctx, depth + 1)? {
                        Flow::FellThrough => {}
                        done => return Ok(done),
                    }
                } else {
                    apply(action, route, ctx);
                }
            }
            match rule.verdict {
                Verdict::Accept => return Ok(Flow::Accept),
                Verdict::Reject => return Ok(Flow::Reject),
                Verdict::Continue => {}
            }
        }
        Ok(Flow::FellThrough)
    }

    fn call(
        &self,
        name: &str,
        route: &mut Candidate<'_>,
        ctx: &Context,
        depth: usize,
    ) -> Result<Flow, PolicyError> {
        if depth > MAX_CALL_DEPTH {
            return Err(PolicyError::TooDeep(name.to_string()));
        }
        match name {
            lang::ALL => Ok(Flow::Accept),
            lang::NONE => Ok(Flow::Reject),
            _ => {
                let p = self
                    .map
                    .get(name)
                    .ok_or_else(|| PolicyError::Unknown(name.to_string()))?;
                self.run(p, route, ctx, depth)
            }
        }
    }
}

// ===== conditions =====

fn matches(m: &Match, route: &Candidate<'_>, ctx: &Context) -> bool {
    let a = route.attrs();
    match m {
        Match::Prefix(pm) => prefix_matches(pm, &route.prefix),
        Match::Family(f) => {
            matches!(
                (f, route.prefix.afi()),
                (Family::Ipv4, Afi::Ipv4) | (Family::Ipv6, Afi::Ipv6)
            )
        }
        Match::Source(s) => ctx.origin.matches(*s),
        Match::Session(t) => ctx.session == Some(*t),
        Match::Neighbour(ip) => ctx.neighbour == Some(*ip),
        Match::Interface(g) => a.ifname.as_deref().is_some_and(|n| glob(g, n)),
        Match::Community(c) => a
            .bgp
            .communities
            .contains(&Community((u32::from(c.0) << 16) | u32::from(c.1))),
        Match::LargeCommunity(c) => a.bgp.large_communities.contains(&large(*c)),
        Match::AsPathPrefix(asns) => as_path_starts_with(a, asns),
        Match::LocalPrefDefined => a.bgp.local_pref.is_some(),
        Match::LocalPref(op, v) => a.bgp.local_pref.is_some_and(|lp| op.holds(lp, *v)),
        Match::KrtMetricDefined => a.krt_metric.is_some(),
        Match::KrtMetric(op, v) => a.krt_metric.is_some_and(|m| op.holds(m, *v)),
        Match::NextHopDefined => a.next_hop().is_some(),
        Match::NextHopIn(net) => a.next_hop().is_some_and(|nh| net.contains(&nh)),
        Match::NextHopIs(ip) => a.next_hop() == Some(*ip),
        Match::Not(inner) => !matches(inner, route, ctx),
        Match::Any(list) => list.iter().any(|m| matches(m, route, ctx)),
        Match::All(list) => list.iter().all(|m| matches(m, route, ctx)),
    }
}

/// A CIDR of the language as a canonical prefix.
pub fn to_prefix(net: &IpNet) -> Prefix {
    let trunc = net.trunc();
    // `IpNet` guarantees the length fits its family, so this cannot fail; fall back to the
    // default route rather than panic if it ever did.
    Prefix::new(trunc.addr(), trunc.prefix_len()).unwrap_or_else(|_| {
        Prefix::new(trunc.addr(), 0).unwrap_or(Prefix::V4 {
            addr: std::net::Ipv4Addr::UNSPECIFIED,
            len: 0,
        })
    })
}

fn prefix_matches(pm: &PrefixMatch, route: &Prefix) -> bool {
    let net = to_prefix(&pm.prefix);
    let len = route.len();
    let in_range = pm.min_len.is_none_or(|m| len >= m) && pm.max_len.is_none_or(|m| len <= m);
    match pm.op {
        PrefixOp::In => net.contains(route) && in_range,
        PrefixOp::NotIn => !(net.contains(route) && in_range),
        PrefixOp::Equal => net == *route && in_range,
        PrefixOp::NotEqual => !(net == *route && in_range),
    }
}

fn large(c: lang::LargeCommunity) -> LargeCommunity {
    LargeCommunity {
        global_admin: c.0,
        local_data_1: c.1,
        local_data_2: c.2,
    }
}

/// BIRD `bgp_path ~ [= A B * =]`: the path's leading AS_SEQUENCE numbers start with `asns`.
fn as_path_starts_with(a: &RouteAttrs, asns: &[u32]) -> bool {
    let Some(path) = &a.bgp.as_path else {
        return asns.is_empty();
    };
    let mut want = asns.iter();
    let mut next = want.next();
    for seg in &path.segments {
        let Some(_) = next else { break };
        if seg.kind != SegmentType::AsSequence {
            return false;
        }
        for asn in &seg.asns {
            match next {
                Some(w) if w == asn => next = want.next(),
                Some(_) => return false,
                None => break,
            }
        }
    }
    next.is_none()
}

/// Shell glob with `*` (any run) and `?` (one character), as BIRD matches `ifname ~ "..."`.
pub fn glob(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(&c) if c == '?' || c == t[ti] => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p[pi.min(p.len())..].iter().all(|&c| c == '*')
}

// ===== actions =====

fn apply(action: &Action, route: &mut Candidate<'_>, ctx: &Context) {
    match action {
        // Calls are handled by the evaluator.
        Action::Call(_) => {}
        Action::AddCommunity(c) => {
            let c = Community((u32::from(c.0) << 16) | u32::from(c.1));
            if !route.attrs().bgp.communities.contains(&c) {
                route.attrs_mut().bgp.communities.push(c);
            }
        }
        Action::AddLargeCommunity(c) => {
            let c = large(*c);
            if !route.attrs().bgp.large_communities.contains(&c) {
                route.attrs_mut().bgp.large_communities.push(c);
            }
        }
        Action::SetNextHop(NextHop::SelfAddress) => {
            if let Some(addr) = ctx.local_address {
                route.attrs_mut().set_next_hop(addr);
            }
        }
        Action::SetNextHop(NextHop::Address(addr)) => route.attrs_mut().set_next_hop(*addr),
        Action::SetLocalPref(v) => route.attrs_mut().bgp.local_pref = Some(*v),
        Action::SetMed(v) => route.attrs_mut().bgp.med = Some(*v),
        Action::Prepend(asns) => {
            let path = route
                .attrs_mut()
                .bgp
                .as_path
                .get_or_insert_with(Default::default);
            for asn in asns.iter().rev() {
                path.prepend(*asn);
            }
        }
        Action::SetKrtMetric(m) => route.attrs_mut().krt_metric = Some(*m),
        Action::SetKrtMetricFromLocalPref => {
            if let Some(lp) = route.attrs().bgp.local_pref {
                route.attrs_mut().krt_metric = Some(lang::PRIORITY_BASE.saturating_sub(lp));
            }
        }
        Action::SetLocalPrefFromKrtMetric => {
            if let Some(m) = route.attrs().krt_metric {
                route.attrs_mut().bgp.local_pref = Some(lang::PRIORITY_BASE.saturating_sub(m));
            }
        }
        Action::SetPreference(p) => route.attrs_mut().preference = *p,
        Action::SetKrtTunnel(dev) => {
            route.attrs_mut().krt_tunnel = if dev.is_empty() {
                None
            } else {
                Some(Arc::from(dev.as_str()))
            };
        }
    }
}

#[cfg(test)]
mod tests;
