//! The metrics endpoint against real speakers: two of them peer over loopback, the
//! endpoint is scraped over HTTP and the OpenMetrics text parsed before and after the
//! session comes up.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{eventually, http, speaker_a, speaker_b};
use tern_ops::metrics::{CONTENT_TYPE, DatastoreGauges, serve};

/// `name{labels} value` lines by name and label set (`k=v` pairs sorted).
type Samples = BTreeMap<(String, String), f64>;

fn parse(text: &str) -> Samples {
    assert!(
        text.ends_with("# EOF\n"),
        "OpenMetrics text ends with # EOF"
    );
    let mut out = Samples::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (series, value) = line.rsplit_once(' ').unwrap();
        let (name, labels) = match series.split_once('{') {
            Some((n, l)) => {
                let mut pairs: Vec<&str> = l.trim_end_matches('}').split(',').collect();
                pairs.sort();
                (n.to_string(), pairs.join(","))
            }
            None => (series.to_string(), String::new()),
        };
        out.insert((name, labels), value.parse().unwrap());
    }
    out
}

const PEER: &str = r#"address="127.0.0.2",peer="Mesh_127_0_0_2""#;

fn peer_value(s: &Samples, name: &str) -> f64 {
    *s.get(&(name.to_string(), PEER.to_string()))
        .unwrap_or_else(|| panic!("no {name} for the peer in {s:?}"))
}

fn value(s: &Samples, name: &str) -> f64 {
    *s.get(&(name.to_string(), String::new()))
        .unwrap_or_else(|| panic!("no {name} in {s:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrape_follows_a_session_coming_up() {
    let (a, port) = speaker_a().await;
    let gauges = DatastoreGauges::new();
    let server = serve("127.0.0.1:0".parse().unwrap(), a.clone(), gauges.clone())
        .await
        .unwrap();
    let addr = server.local_addr();

    // Before B exists: the peer is known, not established, nothing learned.
    let (code, head, body) = http(addr, "GET", "/metrics").await;
    assert_eq!(code, 200, "{head}");
    assert!(head.contains(CONTENT_TYPE), "{head}");
    let before = parse(&body);
    assert!(peer_value(&before, "tern_bgp_peer_state") < 6.0);
    assert_eq!(peer_value(&before, "tern_bgp_peer_uptime_seconds"), 0.0);
    assert_eq!(peer_value(&before, "tern_bgp_peer_established_total"), 0.0);
    assert_eq!(peer_value(&before, "tern_bgp_peer_prefixes_accepted"), 0.0);
    assert_eq!(peer_value(&before, "tern_bgp_peer_enabled"), 1.0);
    assert_eq!(value(&before, "tern_datastore_synced"), 0.0);
    assert!(
        !before
            .keys()
            .any(|(n, _)| n == "tern_datastore_last_sync_timestamp_seconds")
    );
    // Own block only.
    assert_eq!(value(&before, "tern_rib_destinations"), 1.0);
    let start = value(&before, "process_start_time_seconds");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(start > 0.0 && start <= now, "{start} vs {now}");
    assert_eq!(
        before.get(&(
            "tern_build_info".into(),
            format!("version=\"{}\"", env!("CARGO_PKG_VERSION"))
        )),
        Some(&1.0)
    );
    // No FIB, no FIB metrics.
    assert!(!before.keys().any(|(n, _)| n.starts_with("tern_fib_")));

    // The daemon reports a datastore sync.
    gauges.set_synced(true);
    let synced_at = SystemTime::now() - Duration::from_secs(5);
    gauges.set_last_sync(synced_at);

    // B connects and announces its block.
    let b = speaker_b(port).await;
    let after = eventually("the session and B's block in the metrics", 30, || async {
        let (_, _, body) = http(addr, "GET", "/metrics").await;
        let s = parse(&body);
        (peer_value(&s, "tern_bgp_peer_state") == 6.0
            && peer_value(&s, "tern_bgp_peer_prefixes_accepted") == 1.0)
            .then_some(s)
    })
    .await;
    assert_eq!(peer_value(&after, "tern_bgp_peer_established_total"), 1.0);
    assert_eq!(peer_value(&after, "tern_bgp_peer_flaps_total"), 0.0);
    assert!(peer_value(&after, "tern_bgp_peer_updates_received_total") >= 1.0);
    assert!(peer_value(&after, "tern_bgp_peer_messages_received_total") >= 1.0);
    assert!(peer_value(&after, "tern_bgp_peer_updates_sent_total") >= 1.0);
    assert!(peer_value(&after, "tern_bgp_peer_messages_sent_total") >= 1.0);
    assert_eq!(peer_value(&after, "tern_bgp_peer_prefixes_advertised"), 1.0);
    assert_eq!(peer_value(&after, "tern_bgp_peer_last_error_code"), 0.0);
    assert_eq!(value(&after, "tern_rib_destinations"), 2.0);
    assert!(value(&after, "tern_rib_paths") >= 2.0);
    assert!(value(&after, "tern_rib_attribute_sets") >= 1.0);
    assert_eq!(value(&after, "tern_datastore_synced"), 1.0);
    let at = value(&after, "tern_datastore_last_sync_timestamp_seconds");
    let expected = synced_at.duration_since(UNIX_EPOCH).unwrap().as_secs_f64();
    assert!((at - expected).abs() < 0.001, "{at} vs {expected}");
    assert!(value(&after, "tern_datastore_sync_lag_seconds") >= 5.0);
    assert!(value(&after, "tern_last_reconfiguration_timestamp_seconds") >= start);

    // Uptime grows while the session stays up.
    let up1 = peer_value(&after, "tern_bgp_peer_uptime_seconds");
    let up2 = eventually("uptime to grow", 10, || async {
        let (_, _, body) = http(addr, "GET", "/metrics").await;
        let u = peer_value(&parse(&body), "tern_bgp_peer_uptime_seconds");
        (u > up1).then_some(u)
    })
    .await;
    assert!(up2 > up1);

    // B goes away with a Cease: the session is down, one flap, the error code is Cease (6).
    b.shutdown("maintenance").await.unwrap();
    let down = eventually("the session to go down", 30, || async {
        let (_, _, body) = http(addr, "GET", "/metrics").await;
        let s = parse(&body);
        (peer_value(&s, "tern_bgp_peer_state") < 6.0
            && peer_value(&s, "tern_bgp_peer_prefixes_accepted") == 0.0)
            .then_some(s)
    })
    .await;
    assert_eq!(peer_value(&down, "tern_bgp_peer_flaps_total"), 1.0);
    assert_eq!(peer_value(&down, "tern_bgp_peer_last_error_code"), 6.0);
    assert_eq!(peer_value(&down, "tern_bgp_peer_uptime_seconds"), 0.0);
    assert_eq!(value(&down, "tern_rib_destinations"), 1.0);

    // Other paths and methods.
    assert_eq!(http(addr, "GET", "/").await.0, 404);
    assert_eq!(http(addr, "POST", "/metrics").await.0, 405);
    server.shutdown().await;
}

#[tokio::test]
async fn garbage_closes_only_that_client() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (a, _) = speaker_a().await;
    let server = serve(
        "127.0.0.1:0".parse().unwrap(),
        a.clone(),
        DatastoreGauges::new(),
    )
    .await
    .unwrap();
    let addr = server.local_addr();
    // Not HTTP: 400, and the endpoint still serves others.
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"\x16\x03\x01 hello\r\n\r\n").await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    assert!(out.starts_with("HTTP/1.1 400 "), "{out}");
    // A head larger than the limit: 431.
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let big = format!("GET /metrics HTTP/1.1\r\nX: {}\r\n", "a".repeat(9000));
    let _ = s.write_all(big.as_bytes()).await;
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out).await;
    assert!(String::from_utf8_lossy(&out).starts_with("HTTP/1.1 431 "));
    assert_eq!(http(addr, "GET", "/metrics").await.0, 200);

    // A client that never sends its request holds a connection open; shutdown cancels it
    // and releases every reference to the speaker, which can then be stopped.
    let idle = tokio::net::TcpStream::connect(addr).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    server.shutdown().await;
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    let a = std::sync::Arc::try_unwrap(a).expect("the endpoint released the speaker");
    a.shutdown("done").await.unwrap();
    drop(idle);
}
