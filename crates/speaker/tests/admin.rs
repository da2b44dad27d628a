//! Administrative control, the prefix limit and the status queries over real sessions on
//! loopback.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use bgp_wire::fsm::State;
use tern_config::{DesiredConfig, MaxPrefixes};
use tern_speaker::{PeerAdmin, PeerStatus, RouteFrom, Speaker, SpeakerOptions};

fn node(addr: &str, port: u16, peer: &str, peer_port: u16, passive: bool) -> DesiredConfig {
    let json = format!(
        r#"{{
        "router_id": "{addr}", "asn": 64512,
        "listen": {{ "address": "{addr}", "port": {port} }},
        "peers": [{{ "name": "peer", "kind": "global", "address": "{peer}",
                     "port": {peer_port}, "remote_as": 64512, "passive": {passive},
                     "source_address": "{addr}", "families": ["ipv4"],
                     "connect_retry_time": 1, "error_wait_time": [1, 1],
                     "import": "all", "export": "all" }}],
        "policies": {{}}, "blackholes": [],
        "kernel": {{ "export": "all", "learn": false, "persist": true, "scan_time": 10,
                     "graceful_restart": false, "merge_paths": true, "route_protocol": 12,
                     "normal_route_priority": {{ "ipv4": 1024, "ipv6": 1024 }} }}
    }}"#
    );
    serde_json::from_str(&json).unwrap()
}

async fn wait<T, F: AsyncFnMut() -> Option<T>>(what: &str, mut f: F) -> T {
    for _ in 0..600 {
        if let Some(v) = f().await {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out waiting for {what}");
}

async fn peer(s: &Speaker) -> PeerStatus {
    s.peers().await.unwrap().remove(0)
}

/// A (passive, 127.0.0.5) and B (127.0.0.6, three blocks); returns both once Established.
async fn pair(a_limit: Option<MaxPrefixes>) -> (Speaker, Speaker) {
    let a = Speaker::new(SpeakerOptions::default());
    let mut a_cfg = node("127.0.0.5", 0, "127.0.0.6", 179, true);
    a_cfg.peers[0].max_prefixes = a_limit;
    a.apply(a_cfg).await.unwrap();
    let port = a.listening().await.unwrap()[0].port();
    let b = Speaker::new(SpeakerOptions::default());
    let mut b_cfg = node("127.0.0.6", 0, "127.0.0.5", port, false);
    b_cfg.blackholes = vec![
        "10.66.1.0/26".parse().unwrap(),
        "10.66.2.0/26".parse().unwrap(),
        "10.66.3.0/26".parse().unwrap(),
    ];
    b.apply(b_cfg).await.unwrap();
    (a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disable_enable_restart_and_status() {
    let (a, b) = pair(None).await;
    wait("three routes at A", async || {
        let n = a
            .all_routes()
            .await
            .unwrap()
            .iter()
            .filter(|r| matches!(r.from, RouteFrom::Peer(_)))
            .count();
        (n == 3).then_some(())
    })
    .await;
    let p = peer(&a).await;
    assert_eq!(p.state, State::Established);
    assert!(p.enabled && p.internal);
    assert_eq!(p.prefixes_accepted, 3);
    assert!(p.negotiated.as_ref().is_some_and(|n| n.hold_time > 0));
    let pb = peer(&b).await;
    assert_eq!(pb.prefixes_advertised, 3);
    assert!(pb.updates_sent >= 1);

    let st = a.status().await.unwrap();
    assert_eq!(st.router_id.to_string(), "127.0.0.5");
    assert_eq!(st.asn, 64512);
    assert!(st.last_reconfigured.is_some());
    assert_eq!(st.rib_destinations, 3);
    assert_eq!(st.rib_paths, 3);
    assert!(st.fib.is_none());
    assert!(!st.graceful_restart_recovery);

    // Disable at A: B receives Cease / Administrative Shutdown; A stays down.
    a.peer_admin("peer", PeerAdmin::Disable, "maintenance")
        .await
        .unwrap();
    wait("B sees the shutdown", async || {
        (peer(&b).await.last_error_code == Some((6, 2))).then_some(())
    })
    .await;
    wait("A's routes from B gone", async || {
        a.all_routes().await.unwrap().is_empty().then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let p = peer(&a).await;
    assert!(!p.enabled);
    assert_ne!(p.state, State::Established, "a disabled session stays down");
    assert_eq!(p.flaps, 1);

    // Enable: back up with the routes.
    a.peer_admin("peer", PeerAdmin::Enable, "").await.unwrap();
    wait("re-established", async || {
        let p = peer(&a).await;
        (p.state == State::Established && p.prefixes_accepted == 3).then_some(())
    })
    .await;
    assert_eq!(peer(&a).await.established_count, 2);

    // Restart: Cease / Administrative Reset, then up again.
    a.peer_admin("peer", PeerAdmin::Restart, "bounce")
        .await
        .unwrap();
    wait("B sees the reset", async || {
        (peer(&b).await.last_error_code == Some((6, 4))).then_some(())
    })
    .await;
    wait("re-established after restart", async || {
        let p = peer(&a).await;
        (p.state == State::Established && p.established_count == 3).then_some(())
    })
    .await;

    assert!(matches!(
        a.peer_admin("nobody", PeerAdmin::Disable, "").await,
        Err(tern_speaker::Error::UnknownPeer(_))
    ));
    b.shutdown("done").await.unwrap();
    a.shutdown("done").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefix_limit_closes_the_session_and_restarts_it() {
    let limit = MaxPrefixes {
        limit: 2,
        restart_after: Some(1),
        warning_only: false,
    };
    let (a, b) = pair(Some(limit)).await;
    // B's three blocks exceed A's limit of two: Cease / Maximum Number of Prefixes Reached.
    wait("B sees the prefix-limit NOTIFICATION", async || {
        (peer(&b).await.last_error_code == Some((6, 1))).then_some(())
    })
    .await;
    let p = peer(&a).await;
    assert_eq!(p.max_prefixes, Some(2));
    assert_eq!(p.last_error_code, Some((6, 1)));
    // The routes went with the session.
    wait("A's routes from B gone", async || {
        a.all_routes().await.unwrap().is_empty().then_some(())
    })
    .await;
    // After the hold-down A starts the session again (and closes it again: B still sends 3).
    wait("the session restarted", async || {
        (peer(&a).await.established_count >= 2).then_some(())
    })
    .await;

    // Raising the limit is live (no reset) and ends the cycle.
    let mut cfg = a.config().await.unwrap().unwrap();
    cfg.peers[0].max_prefixes = Some(MaxPrefixes {
        limit: 10,
        restart_after: Some(1),
        warning_only: false,
    });
    let s = a.apply(cfg).await.unwrap();
    assert_eq!(s.reconfigured, vec!["peer".to_string()]);
    wait("A holds all three", async || {
        let p = peer(&a).await;
        (p.state == State::Established && p.prefixes_accepted == 3).then_some(())
    })
    .await;
    b.shutdown("done").await.unwrap();
    a.shutdown("done").await.unwrap();
}
