//! Two speakers peering over loopback (127.0.0.1 passive, 127.0.0.2 active), no FIB.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tern_config::DesiredConfig;
use tern_speaker::{Speaker, SpeakerOptions};

/// A node's configuration: one mesh peer, everything accepted and exported, no graceful
/// restart (a session that goes down takes its routes with it at once).
pub fn node(addr: &str, port: u16, peer: &str, peer_port: u16, passive: bool) -> DesiredConfig {
    let name = format!("Mesh_{}", peer.replace('.', "_"));
    let json = format!(
        r#"{{
        "router_id": "{addr}", "asn": 64512,
        "listen": {{ "address": "{addr}", "port": {port} }},
        "peers": [{{ "name": "{name}", "kind": "mesh", "address": "{peer}",
                     "port": {peer_port}, "remote_as": 64512, "passive": {passive},
                     "source_address": "{addr}", "families": ["ipv4"], "graceful_restart": false,
                     "import": "all", "export": "all" }}],
        "policies": {{}}, "blackholes": [],
        "kernel": {{ "export": "all", "learn": false, "persist": true, "scan_time": 10,
                     "graceful_restart": false, "merge_paths": true, "route_protocol": 12,
                     "normal_route_priority": {{ "ipv4": 1024, "ipv6": 1024 }} }}
    }}"#
    );
    serde_json::from_str(&json).unwrap()
}

/// Speaker A on 127.0.0.1 (passive, owns 10.65.0.0/26), waiting for B.
pub async fn speaker_a() -> (Arc<Speaker>, u16) {
    let a = Speaker::new(SpeakerOptions::default());
    let mut cfg = node("127.0.0.1", 0, "127.0.0.2", 179, true);
    cfg.blackholes.push("10.65.0.0/26".parse().unwrap());
    a.apply(cfg).await.unwrap();
    let port = a.listening().await.unwrap()[0].port();
    (Arc::new(a), port)
}

/// Speaker B on 127.0.0.2, connecting to A on `port`, owning 10.65.1.0/26.
pub async fn speaker_b(port: u16) -> Speaker {
    let b = Speaker::new(SpeakerOptions::default());
    let mut cfg = node("127.0.0.2", 0, "127.0.0.1", port, false);
    cfg.blackholes.push("10.65.1.0/26".parse().unwrap());
    b.apply(cfg).await.unwrap();
    b
}

/// Polls `f` every 50 ms until it gives a value, for at most `secs` seconds.
pub async fn eventually<T, F, Fut>(what: &str, secs: u64, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `GET path` (or another method) over a fresh connection; status code and body.
pub async fn http(addr: SocketAddr, method: &str, path: &str) -> (u16, String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("{method} {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    let (head, body) = out.split_once("\r\n\r\n").unwrap();
    let code = head.split(' ').nth(1).unwrap().parse().unwrap();
    (code, head.to_string(), body.to_string())
}
