//! `tern-rr` with hundreds of route-reflector clients: 200 speakers (the engine, in this
//! process) on loopback addresses 127.0.1.1–200 inside a namespace, each announcing one /24,
//! peer with one `tern-rr --config`; every client ends up with every other client's route,
//! reflected with its next hop unchanged. Prints how long that took (not asserted).
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use serde_json::json;
use tern_speaker::{Speaker, SpeakerOptions};
use tern_tests::{Netns, TempDir, require_root};

const CLIENTS: usize = 200;
const RR: &str = "127.0.0.1";

fn client_addr(i: usize) -> String {
    format!("127.0.1.{}", i + 1)
}

fn client_prefix(i: usize) -> String {
    format!("10.200.{i}.0/24")
}

fn kernel() -> serde_json::Value {
    json!({"export": "none", "learn": false, "persist": false, "scan_time": 10,
           "graceful_restart": false, "merge_paths": true, "route_protocol": 12,
           "normal_route_priority": {"ipv4": 1024, "ipv6": 1024}})
}

fn rr_config() -> String {
    let peers: Vec<serde_json::Value> = (0..CLIENTS)
        .map(|i| {
            json!({"name": format!("Client_{i}"), "kind": "node", "address": client_addr(i),
                   "port": 179, "remote_as": 64512, "passive": true, "rr_client": true,
                   "rr_cluster_id": "10.0.0.1", "source_address": RR, "families": ["ipv4"],
                   "import": "all", "export": "all"})
        })
        .collect();
    json!({"router_id": "10.0.0.1", "asn": 64512, "listen": {"address": RR, "port": 179},
           "peers": peers, "policies": {}, "blackholes": [], "kernel": kernel()})
    .to_string()
}

fn client_config(i: usize) -> tern_config::DesiredConfig {
    let me = client_addr(i);
    serde_json::from_value(json!({
        "router_id": format!("10.1.{}.{}", i / 250, i % 250 + 1), "asn": 64512,
        "listen": {"address": me, "port": 0},
        "peers": [{"name": "RR", "kind": "node", "address": RR, "port": 179,
                   "remote_as": 64512, "source_address": me, "families": ["ipv4"],
                   "import": "all", "export": "all"}],
        "policies": {}, "blackholes": [client_prefix(i)], "kernel": kernel()
    }))
    .unwrap()
}

#[test]
fn tern_rr_reflects_between_two_hundred_clients() {
    if !require_root("tern_rr_reflects_between_two_hundred_clients") {
        return;
    }
    let ns = Netns::new("rrs");
    let dir = TempDir::new("rrs");
    let cfg = dir.write("rr.json", &rr_config());
    let socket = dir.path().join("rr.ctl");
    let _rr = ns.spawn(
        env!("CARGO_BIN_EXE_tern-rr"),
        &[
            "--config",
            cfg.to_str().unwrap(),
            "--control-socket",
            socket.to_str().unwrap(),
            "--log-level",
            "warning",
        ],
    );
    // Every socket of the clients is opened on this one thread, inside the namespace.
    let (elapsed, missing) = ns.run_in(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let start = Instant::now();
            let mut speakers = Vec::new();
            for i in 0..CLIENTS {
                let s = Speaker::new(SpeakerOptions::default());
                s.apply(client_config(i)).await.unwrap();
                speakers.push(s);
            }
            // Until every client has all CLIENTS prefixes (its own and the reflected ones).
            let deadline = Duration::from_secs(90);
            let mut missing = Vec::new();
            loop {
                missing.clear();
                for (i, s) in speakers.iter().enumerate() {
                    let routes = s.routes().await.unwrap();
                    if routes.len() < CLIENTS {
                        missing.push((i, routes.len()));
                    }
                }
                if missing.is_empty() || start.elapsed() > deadline {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            let elapsed = start.elapsed();
            // Reflected with the originator's next hop.
            let routes = speakers[0].routes().await.unwrap();
            for r in routes
                .iter()
                .filter(|r| r.prefix.to_string() != client_prefix(0))
            {
                let n: usize = r
                    .prefix
                    .to_string()
                    .split('.')
                    .nth(2)
                    .unwrap()
                    .parse()
                    .unwrap();
                assert_eq!(
                    r.next_hop.map(|h| h.to_string()),
                    Some(client_addr(n)),
                    "{r:?}"
                );
            }
            for s in speakers {
                s.shutdown("done").await.unwrap();
            }
            (elapsed, missing)
        })
    });
    assert!(
        missing.is_empty(),
        "clients without every route after 90 s (client, routes): {missing:?}"
    );
    eprintln!(
        "{CLIENTS} clients of tern-rr: every client had all {CLIENTS} routes after {elapsed:?}"
    );
}
