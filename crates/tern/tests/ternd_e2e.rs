//! `ternd --config FILE` end to end: two network namespaces on one veth, each running ternd
//! in iBGP and originating a blackhole block. Each ends up with the other's block in its
//! kernel table `via` the peer with `proto bird`, and its own block as a blackhole; a block
//! added to one node's config file later reaches the other without a restart.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use tern_tests::{Netns, TempDir, require_root, veth, wait_for};

fn config(me: &str, peer: &str, blocks: &[&str]) -> String {
    let blocks: Vec<String> = blocks.iter().map(|b| format!("\"{b}\"")).collect();
    format!(
        r#"{{
  "router_id": "{me}", "asn": 64512, "node_ipv4": "{me}/24",
  "listen": {{ "address": "{me}", "port": 179 }},
  "peers": [{{ "name": "Mesh_{peer_}", "kind": "mesh", "address": "{peer}", "port": 179,
               "remote_as": 64512, "source_address": "{me}", "families": ["ipv4"],
               "import": "all", "export": "all" }}],
  "policies": {{}},
  "blackholes": [{blocks}],
  "kernel": {{ "export": "all", "learn": false, "persist": true, "scan_time": 10,
               "graceful_restart": false, "merge_paths": true, "route_protocol": 12,
               "normal_route_priority": {{ "ipv4": 1024, "ipv6": 1024 }} }}
}}"#,
        peer_ = peer.replace('.', "_"),
        blocks = blocks.join(", ")
    )
}

fn route(ns: &Netns, prefix: &str) -> String {
    ns.ip(["route", "show", prefix])
}

#[test]
fn two_ternd_nodes_exchange_blocks_into_the_kernel() {
    if !require_root("two_ternd_nodes_exchange_blocks_into_the_kernel") {
        return;
    }
    let a = Netns::new("tda");
    let b = Netns::new("tdb");
    veth(&a, &["10.99.0.1/24"], &b, &["10.99.0.2/24"]);
    let dir = TempDir::new("tde");
    let ca = dir.write(
        "a.json",
        &config("10.99.0.1", "10.99.0.2", &["10.100.1.0/26"]),
    );
    let cb = dir.write(
        "b.json",
        &config("10.99.0.2", "10.99.0.1", &["10.100.2.0/26"]),
    );
    let ternd = env!("CARGO_BIN_EXE_ternd");
    let args = |c: &std::path::Path| {
        vec![
            "--config".to_string(),
            c.display().to_string(),
            "--poll-interval".into(),
            "200".into(),
            "--control-socket".into(),
            c.with_extension("ctl").display().to_string(),
        ]
    };
    let aa = args(&ca);
    let ab = args(&cb);
    let mut da = a.spawn(ternd, &aa.iter().map(String::as_str).collect::<Vec<_>>());
    let mut db = b.spawn(ternd, &ab.iter().map(String::as_str).collect::<Vec<_>>());

    for (ns, own, other, via) in [
        (&a, "10.100.1.0/26", "10.100.2.0/26", "10.99.0.2"),
        (&b, "10.100.2.0/26", "10.100.1.0/26", "10.99.0.1"),
    ] {
        let learned = wait_for(
            &format!("{other} via {via} in {}", ns.name()),
            Duration::from_secs(30),
            || {
                let r = route(ns, other);
                r.contains(&format!("via {via}")).then_some(r)
            },
        );
        assert!(learned.contains("proto bird"), "{learned}");
        let own_route = route(ns, own);
        assert!(
            own_route.contains("blackhole") && own_route.contains("proto bird"),
            "own block should be a blackhole: {own_route}"
        );
    }

    // A live change: node A gets a second block; B learns it without restarting anything.
    dir.write(
        "a.json",
        &config(
            "10.99.0.1",
            "10.99.0.2",
            &["10.100.1.0/26", "10.100.3.0/26"],
        ),
    );
    wait_for(
        "10.100.3.0/26 via 10.99.0.1 in B",
        Duration::from_secs(30),
        || {
            route(&b, "10.100.3.0/26")
                .contains("via 10.99.0.1")
                .then_some(())
        },
    );
    assert!(route(&b, "10.100.2.0/26").contains("blackhole"));
    // Removing it withdraws it.
    dir.write(
        "a.json",
        &config("10.99.0.1", "10.99.0.2", &["10.100.1.0/26"]),
    );
    wait_for("10.100.3.0/26 gone from B", Duration::from_secs(30), || {
        route(&b, "10.100.3.0/26").trim().is_empty().then_some(())
    });
    assert!(da.is_running() && db.is_running());

    // The control socket: `configure` re-reads the source now; a broken file is refused with
    // the parser's message and changes nothing; `down` stops the daemon.
    let socket = ca.with_extension("ctl");
    let reply = control(&socket, "configure");
    assert!(
        reply.contains("Reconfigured") && reply.contains("a.json"),
        "{reply}"
    );
    dir.write("a.json", "{ not json");
    let reply = control(&socket, "configure");
    assert!(
        !reply.contains("Reconfigured") && reply.contains("a.json"),
        "{reply}"
    );
    assert!(route(&b, "10.100.1.0/26").contains("via 10.99.0.1"));
    let reply = control(&socket, "down");
    assert!(reply.contains("Shutdown ordered"), "{reply}");
    wait_for(
        "ternd A to exit after down",
        Duration::from_secs(30),
        || (!da.is_running()).then_some(()),
    );
    assert!(db.is_running());
}

/// One command over a control socket; the reply's text, errors included.
fn control(socket: &std::path::Path, command: &str) -> String {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut c = tern_control::client::Client::connect(socket, Duration::from_secs(5))
            .await
            .unwrap();
        let reply = c.command(command).await.unwrap();
        let mut text = tern_control::client::reply_text(&reply);
        if let Some((code, msg)) = tern_control::client::reply_error(&reply) {
            text.push_str(&format!("error {code}: {msg}"));
        }
        text
    })
}

/// SIGHUP (what confd sends BIRD after rendering) makes ternd read its source now: with the
/// file otherwise re-read only every 10 minutes, a block added to it is blackholed at once.
#[test]
fn sighup_rereads_the_configuration() {
    if !require_root("sighup_rereads_the_configuration") {
        return;
    }
    let ns = Netns::new("tdh");
    ns.ip(["link", "add", "d0", "type", "veth", "peer", "name", "d1"]);
    ns.ip(["link", "set", "d1", "up"]);
    ns.ip(["addr", "add", "10.98.0.1/24", "dev", "d0"]);
    ns.ip(["link", "set", "d0", "up"]);
    let dir = TempDir::new("tdh");
    let cfg = dir.write(
        "c.json",
        &config("10.98.0.1", "10.98.0.2", &["10.101.1.0/26"]),
    );
    let socket = dir.path().join("c.ctl");
    let ternd = ns.spawn(
        env!("CARGO_BIN_EXE_ternd"),
        &[
            "--config",
            cfg.to_str().unwrap(),
            "--poll-interval",
            "600000",
            "--control-socket",
            socket.to_str().unwrap(),
        ],
    );
    wait_for("the first block", Duration::from_secs(30), || {
        route(&ns, "10.101.1.0/26")
            .contains("blackhole")
            .then_some(())
    });
    dir.write(
        "c.json",
        &config(
            "10.98.0.1",
            "10.98.0.2",
            &["10.101.1.0/26", "10.101.2.0/26"],
        ),
    );
    std::thread::sleep(Duration::from_millis(500));
    assert!(route(&ns, "10.101.2.0/26").trim().is_empty());
    ternd.signal(nix::sys::signal::Signal::SIGHUP);
    wait_for(
        "the block added before SIGHUP",
        Duration::from_secs(30),
        || {
            route(&ns, "10.101.2.0/26")
                .contains("blackhole")
                .then_some(())
        },
    );
}
