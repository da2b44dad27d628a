//! Reconfiguration as a diff: what an `apply` must do to go from the running configuration to
//! the desired one, touching only what changed.
//!
//! Pure functions over two [`DesiredConfig`]s, so the rules are unit-tested without sockets.

use std::collections::BTreeSet;

use ipnet::IpNet;
use tern_config::{DesiredConfig, Peer, StaticRoute, StaticTarget};

/// What one peer's change needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerChange {
    /// Nothing differs.
    Unchanged,
    /// Only fields the protocol can change live differ (policies, next-hop mode, reflection,
    /// `allow_local_as`, the prefix limit): the RIB is reconfigured, the session stays up.
    /// Export changes re-run export; import changes re-run import from the pre-policy table or
    /// send ROUTE-REFRESH.
    Live,
    /// A field the OPEN or the transport carries differs (AS, address, password, timers,
    /// capabilities, ...): that one session is reset.
    Reset,
}

/// Classifies the change of one peer (same name in both configurations).
pub fn peer_change(old: &Peer, new: &Peer) -> PeerChange {
    if old == new {
        return PeerChange::Unchanged;
    }
    // Copy the live fields of `new` into `old`: if that makes them equal, only live fields
    // differ.
    let mut live = old.clone();
    live.import.clone_from(&new.import);
    live.export.clone_from(&new.export);
    live.next_hop_mode = new.next_hop_mode;
    live.rr_client = new.rr_client;
    live.rr_cluster_id = new.rr_cluster_id;
    live.allow_local_as = new.allow_local_as;
    live.kind = new.kind;
    live.reachable_by = new.reachable_by;
    live.max_prefixes.clone_from(&new.max_prefixes);
    if &live == new {
        PeerChange::Live
    } else {
        PeerChange::Reset
    }
}

/// Node-wide fields the running engine cannot change in place: a change restarts every
/// session (BGP identifier, AS, cluster id, listening sockets, ECMP installation).
pub fn needs_full_restart(old: &DesiredConfig, new: &DesiredConfig) -> bool {
    old.router_id != new.router_id
        || old.asn != new.asn
        || old.cluster_id != new.cluster_id
        || old.listen != new.listen
        || old.kernel.merge_paths != new.kernel.merge_paths
}

/// Whether the RIB's policies (or the kernel policy's name) changed.
pub fn policies_changed(old: &DesiredConfig, new: &DesiredConfig) -> bool {
    old.policies != new.policies || old.kernel.export != new.kernel.export
}

/// Every locally originated static route of a configuration: own blocks as blackholes,
/// then the other static routes.
pub fn static_routes(c: &DesiredConfig) -> Vec<StaticRoute> {
    let mut v: Vec<StaticRoute> = c
        .blackholes
        .iter()
        .map(|p| StaticRoute {
            prefix: p.trunc(),
            target: StaticTarget::Blackhole,
        })
        .collect();
    v.extend(c.static_routes.iter().map(|s| StaticRoute {
        prefix: s.prefix.trunc(),
        target: s.target.clone(),
    }));
    v
}

/// Static routes to withdraw and to (re-)originate.
pub fn static_diff(old: &[StaticRoute], new: &[StaticRoute]) -> (Vec<IpNet>, Vec<StaticRoute>) {
    let new_prefixes: BTreeSet<IpNet> = new.iter().map(|s| s.prefix).collect();
    let withdraw = old
        .iter()
        .map(|s| s.prefix)
        .filter(|p| !new_prefixes.contains(p))
        .collect();
    let originate = new.iter().filter(|s| !old.contains(s)).cloned().collect();
    (withdraw, originate)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tern_config::policy::Family;
    use tern_config::{AddPaths, NextHopMode, Password, PeerKind};

    fn peer() -> Peer {
        Peer {
            name: "Mesh_10_0_0_2".into(),
            kind: PeerKind::Mesh,
            address: "10.0.0.2".parse().unwrap(),
            port: 179,
            remote_as: 64512,
            local_as: None,
            passive: false,
            rr_client: false,
            rr_cluster_id: None,
            source_address: None,
            password: Password::Unset,
            ttl_security: None,
            multihop: true,
            next_hop_mode: NextHopMode::Auto,
            restart_time: None,
            keepalive_time: None,
            hold_time: 240,
            connect_delay_time: 2,
            connect_retry_time: 5,
            error_wait_time: (5, 30),
            graceful_restart: true,
            add_paths: AddPaths::RxTx,
            allow_local_as: None,
            families: vec![Family::Ipv4],
            reachable_by: None,
            import: "all".into(),
            export: "all".into(),
            soft_reconfiguration: false,
            allow_local_pref: false,
            max_prefixes: None,
        }
    }

    #[test]
    fn identical_peer_is_untouched() {
        assert_eq!(peer_change(&peer(), &peer()), PeerChange::Unchanged);
    }

    #[test]
    fn policy_and_reflection_changes_are_live() {
        let mut n = peer();
        n.export = "bgp_export_x".into();
        assert_eq!(peer_change(&peer(), &n), PeerChange::Live);
        n.import = "none".into();
        n.rr_client = true;
        n.next_hop_mode = NextHopMode::SelfAddress;
        assert_eq!(peer_change(&peer(), &n), PeerChange::Live);
    }

    #[test]
    fn open_and_transport_fields_reset_the_session() {
        let changes: [fn(&mut Peer); 6] = [
            (|p: &mut Peer| p.remote_as = 65000),
            (|p: &mut Peer| p.address = "10.0.0.3".parse().unwrap()),
            (|p: &mut Peer| p.password = Password::Set("x".into())),
            (|p: &mut Peer| p.hold_time = 90),
            (|p: &mut Peer| p.families.push(Family::Ipv6)),
            (|p: &mut Peer| p.ttl_security = Some(1)),
        ];
        for change in changes {
            let mut n = peer();
            change(&mut n);
            let mut also_live = n.clone();
            also_live.export = "other".into();
            assert_eq!(peer_change(&peer(), &n), PeerChange::Reset);
            assert_eq!(peer_change(&peer(), &also_live), PeerChange::Reset);
        }
    }

    #[test]
    fn static_diff_withdraws_removed_and_originates_new() {
        let a: IpNet = "10.1.0.0/26".parse().unwrap();
        let b: IpNet = "10.2.0.0/26".parse().unwrap();
        let c: IpNet = "10.3.0.0/26".parse().unwrap();
        let bh = |p| StaticRoute {
            prefix: p,
            target: StaticTarget::Blackhole,
        };
        let (w, o) = static_diff(&[bh(a), bh(b)], &[bh(b), bh(c)]);
        assert_eq!(w, vec![a]);
        assert_eq!(o, vec![bh(c)]);
        // A target change re-originates without a withdrawal first.
        let via = StaticRoute {
            prefix: b,
            target: StaticTarget::Via("10.0.0.1".parse().unwrap()),
        };
        let (w, o) = static_diff(&[bh(b)], std::slice::from_ref(&via));
        assert!(w.is_empty());
        assert_eq!(o, vec![via]);
    }
}
