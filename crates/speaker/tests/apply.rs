//! `Speaker::apply` over real sessions on loopback: which changes keep the session up
//! (hitless) and which reset exactly that one session.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use bgp_wire::fsm::State;
use tern_config::DesiredConfig;
use tern_config::policy::{Policy, PrefixMatch, Rule, Verdict};
use tern_speaker::{PeerStatus, RouteFrom, Speaker, SpeakerOptions};

fn node(addr: &str, port: u16, peer: &str, peer_port: u16, passive: bool) -> DesiredConfig {
    let json = format!(
        r#"{{
        "router_id": "{addr}", "asn": 64512,
        "listen": {{ "address": "{addr}", "port": {port} }},
        "peers": [{{ "name": "peer", "kind": "global", "address": "{peer}",
                     "port": {peer_port}, "remote_as": 64512, "passive": {passive},
                     "source_address": "{addr}", "families": ["ipv4"],
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
    for _ in 0..400 {
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

async fn has_route(s: &Speaker, prefix: &str) -> bool {
    s.routes()
        .await
        .unwrap()
        .iter()
        .any(|r| r.prefix.to_string() == prefix && matches!(r.from, RouteFrom::Peer(_)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_changes_are_hitless_and_timer_changes_reset_one_session() {
    let a = Speaker::new(SpeakerOptions::default());
    let a_cfg = node("127.0.0.1", 0, "127.0.0.3", 179, true);
    a.apply(a_cfg.clone()).await.unwrap();
    let port = a.listening().await.unwrap()[0].port();
    let b = Speaker::new(SpeakerOptions::default());
    let mut b_cfg = node("127.0.0.3", 0, "127.0.0.1", port, false);
    b_cfg.blackholes = vec![
        "10.65.1.0/26".parse().unwrap(),
        "10.65.2.0/26".parse().unwrap(),
    ];
    let s = b.apply(b_cfg.clone()).await.unwrap();
    assert!(s.full_restart);
    assert_eq!(s.added, vec!["peer".to_string()]);

    wait("both blocks at A", async || {
        (has_route(&a, "10.65.1.0/26").await && has_route(&a, "10.65.2.0/26").await).then_some(())
    })
    .await;
    let before = peer(&b).await;
    assert_eq!(before.state, State::Established);
    assert_eq!(before.established_count, 1);

    // Export filter on B: only 10.65.1.0/26. Live: A loses 10.65.2.0/26, no reset.
    let mut filtered = b_cfg.clone();
    filtered.policies.insert(
        "only_one".into(),
        Policy::new(vec![
            Rule::when(vec![PrefixMatch::exactly("10.65.1.0/26".parse().unwrap())])
                .verdict(Verdict::Accept),
            Rule::always(Verdict::Reject),
        ]),
    );
    filtered.peers[0].export = "only_one".into();
    let s = b.apply(filtered.clone()).await.unwrap();
    assert!(!s.full_restart);
    assert!(s.policies_changed);
    assert_eq!(s.reconfigured, vec!["peer".to_string()]);
    assert!(s.reset.is_empty());
    wait("10.65.2.0/26 withdrawn at A", async || {
        (!has_route(&a, "10.65.2.0/26").await).then_some(())
    })
    .await;
    assert!(has_route(&a, "10.65.1.0/26").await);
    let after = peer(&b).await;
    assert_eq!(after.established_count, 1, "the session must not be reset");
    assert_eq!(after.state, State::Established);
    assert!(after.uptime.unwrap() >= before.uptime.unwrap());

    // The same configuration again touches nothing.
    let s = b.apply(filtered.clone()).await.unwrap();
    assert_eq!(s.unchanged, vec!["peer".to_string()]);
    assert!(!s.policies_changed);

    // A hold time change cannot be made live: that session is reset and comes back.
    let mut hold = filtered.clone();
    hold.peers[0].hold_time = 90;
    let s = b.apply(hold).await.unwrap();
    assert_eq!(s.reset, vec!["peer".to_string()]);
    wait("session re-established", async || {
        let p = peer(&b).await;
        (p.state == State::Established
            && p.established_count == 1
            && has_route(&a, "10.65.1.0/26").await)
            .then_some(())
    })
    .await;
    // A saw the old session end and a new one come up.
    let pa = peer(&a).await;
    assert_eq!(pa.established_count, 2);
    assert!(pa.last_error.is_some());

    b.shutdown("test over").await.unwrap();
    wait("A sees the shutdown", async || {
        let p = peer(&a).await;
        (p.state != State::Established
            && p.last_error
                .as_deref()
                .is_some_and(|e| e.contains("test over")))
        .then_some(())
    })
    .await;
    a.shutdown("done").await.unwrap();
}
