//! Kernel programming end to end, in network namespaces on one LAN (a bridge):
//!
//! * ECMP: `ternd --config` on node A peers with two more ternd speakers, B and C, that both
//!   originate 198.51.100.0/24 with equal attributes (iBGP, empty AS_PATH, same ORIGIN, no
//!   MED). A's kernel holds one `proto bird` route with two next hops, via B and via C; once
//!   B's speaker stops, the route has exactly one next hop, via C, and A's other routes stay.
//! * `tern-rr --fib` programs what a client sends it into its own kernel, `via` the client
//!   with `proto bird`; a second `tern-rr` without `--fib`, fed the same route, programs
//!   nothing although its table holds the route.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use tern_tests::lan::{add_node, new_lan};
use tern_tests::{Daemon, Netns, TempDir, require_root, wait_for};

const PREFIX: &str = "198.51.100.0/24";
const WAIT: Duration = Duration::from_secs(60);

/// One peer of a test config: address, whether it is a route-reflector client of this node.
struct PeerSpec<'a> {
    address: &'a str,
    rr_client: bool,
}

/// A DesiredConfig for a speaker at `me` in AS 64512 originating `blackholes`, exporting
/// everything to the kernel (ECMP on). Peers have graceful restart off so that a stopped
/// speaker's routes are withdrawn at once rather than kept stale.
fn config(me: &str, peers: &[PeerSpec<'_>], blackholes: &[&str]) -> String {
    let peers: Vec<String> = peers
        .iter()
        .map(|p| {
            format!(
                r#"{{ "name": "Node_{name}", "kind": "node", "address": "{addr}", "port": 179,
                   "remote_as": 64512, "source_address": "{me}", "families": ["ipv4"],
                   "rr_client": {rr}, {cluster}
                   "graceful_restart": false, "import": "all", "export": "all" }}"#,
                name = p.address.replace('.', "_"),
                addr = p.address,
                rr = p.rr_client,
                cluster = if p.rr_client {
                    format!(r#""rr_cluster_id": "{me}","#)
                } else {
                    String::new()
                },
            )
        })
        .collect();
    let blackholes: Vec<String> = blackholes.iter().map(|b| format!("\"{b}\"")).collect();
    format!(
        r#"{{
  "router_id": "{me}", "asn": 64512, "node_ipv4": "{me}/24",
  "listen": {{ "address": "{me}", "port": 179 }},
  "peers": [{peers}],
  "policies": {{}},
  "blackholes": [{blackholes}],
  "kernel": {{ "export": "all", "learn": false, "persist": false, "scan_time": 10,
               "graceful_restart": false, "merge_paths": true, "route_protocol": 12,
               "normal_route_priority": {{ "ipv4": 1024, "ipv6": 1024 }} }}
}}"#,
        peers = peers.join(", "),
        blackholes = blackholes.join(", ")
    )
}

/// Starts `binary` in `ns` with `--config` (the file `name` in `dir`) and its own control
/// socket, plus `extra` flags. Returns the daemon and the control socket's path.
fn start(
    ns: &Netns,
    binary: &str,
    dir: &TempDir,
    name: &str,
    contents: &str,
    extra: &[&str],
) -> (Daemon, PathBuf) {
    let cfg = dir.write(&format!("{name}.json"), contents);
    let socket = dir.path().join(format!("{name}.ctl"));
    let mut args = vec![
        "--config",
        cfg.to_str().unwrap(),
        "--control-socket",
        socket.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    (ns.spawn(binary, &args), socket)
}

/// `ip -j route show proto bird` in `ns`, parsed.
fn bird_routes(ns: &Netns) -> Vec<Value> {
    let text = ns.ip(["-j", "route", "show", "proto", "bird"]);
    if text.trim().is_empty() {
        return Vec::new();
    }
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("ip -j route: {e}: {text}"))
}

/// The `proto bird` route for `prefix` in `ns`, if any.
fn bird_route(ns: &Netns, prefix: &str) -> Option<Value> {
    bird_routes(ns).into_iter().find(|r| dst_matches(r, prefix))
}

/// Whether an `ip -j route` entry is for `prefix`.
fn dst_matches(route: &Value, prefix: &str) -> bool {
    let dst = route["dst"].as_str().unwrap_or_default();
    dst == prefix || (prefix.ends_with("/32") && prefix.trim_end_matches("/32") == dst)
}

/// The gateways of a kernel route: one for a single-path route, one per `nexthops` entry
/// for a multipath route. Sorted.
fn gateways(route: &Value) -> Vec<String> {
    let mut gws: Vec<String> = match route["nexthops"].as_array() {
        Some(hops) => hops
            .iter()
            .map(|h| h["gateway"].as_str().unwrap_or("?").to_string())
            .collect(),
        None => route["gateway"]
            .as_str()
            .map(|g| vec![g.to_string()])
            .unwrap_or_default(),
    };
    gws.sort();
    gws
}

/// One control-socket command answered in JSON.
fn control(socket: &Path, command: &str) -> Value {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let command = format!("json {command}");
    rt.block_on(async {
        let mut c = tern_control::client::Client::connect(socket, Duration::from_secs(5))
            .await
            .unwrap_or_else(|e| panic!("control socket {}: {e}", socket.display()));
        let reply = c.command(&command).await.unwrap();
        let text = tern_control::client::reply_text(&reply);
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{command}: {e}: {text}"))
    })
}

/// Whether the speaker behind `socket` holds a route for `prefix` in its table.
fn rib_has(socket: &Path, prefix: &str) -> bool {
    control(socket, "show route")["routes"]
        .as_array()
        .is_some_and(|rs| rs.iter().any(|r| r["prefix"].as_str() == Some(prefix)))
}

#[test]
fn ecmp_route_from_two_peers_loses_one_next_hop_when_a_peer_stops() {
    if !require_root("ecmp_route_from_two_peers_loses_one_next_hop_when_a_peer_stops") {
        return;
    }
    let (ip_a, ip_b, ip_c) = ("10.88.0.1", "10.88.0.2", "10.88.0.3");
    let lan = new_lan("fel");
    let a = add_node(&lan, "fea", &format!("{ip_a}/24"));
    let b = add_node(&lan, "feb", &format!("{ip_b}/24"));
    let c = add_node(&lan, "fec", &format!("{ip_c}/24"));
    let dir = TempDir::new("fe");
    let ternd = env!("CARGO_BIN_EXE_ternd");
    let peer = |address| PeerSpec {
        address,
        rr_client: false,
    };
    // A originates its own block; C also originates a prefix of its own, which must survive
    // B's departure.
    let (_da, _sa) = start(
        &a,
        ternd,
        &dir,
        "a",
        &config(ip_a, &[peer(ip_b), peer(ip_c)], &["10.88.100.0/26"]),
        &[],
    );
    let (mut db, _sb) = start(
        &b,
        ternd,
        &dir,
        "b",
        &config(ip_b, &[peer(ip_a)], &[PREFIX]),
        &[],
    );
    let (mut dc, _sc) = start(
        &c,
        ternd,
        &dir,
        "c",
        &config(ip_c, &[peer(ip_a)], &[PREFIX, "10.88.103.0/26"]),
        &[],
    );

    let ecmp = wait_for(
        &format!("{PREFIX} via both {ip_b} and {ip_c} in A"),
        WAIT,
        || bird_route(&a, PREFIX).filter(|r| gateways(r) == [ip_b, ip_c]),
    );
    assert!(
        ecmp["nexthops"].as_array().is_some_and(|h| h.len() == 2),
        "expected one multipath route: {ecmp}"
    );
    let same_prefix: Vec<Value> = bird_routes(&a)
        .into_iter()
        .filter(|r| dst_matches(r, PREFIX))
        .collect();
    assert_eq!(same_prefix.len(), 1, "one route, not two: {same_prefix:?}");
    wait_for("C's own prefix in A", WAIT, || {
        bird_route(&a, "10.88.103.0/26").filter(|r| gateways(r) == [ip_c])
    });
    let own = bird_route(&a, "10.88.100.0/26").expect("A's own block");
    assert_eq!(own["type"].as_str(), Some("blackhole"), "{own}");
    let before: Vec<String> = bird_routes(&a)
        .iter()
        .map(|r| r["dst"].as_str().unwrap_or_default().to_string())
        .collect();

    // B's speaker stops (SIGTERM: a Cease to A; graceful restart is off, so no stale paths).
    db.signal(nix::sys::signal::Signal::SIGTERM);
    wait_for("B's ternd to exit", WAIT, || {
        (!db.is_running()).then_some(())
    });
    let single = wait_for(&format!("{PREFIX} via {ip_c} only in A"), WAIT, || {
        bird_route(&a, PREFIX).filter(|r| gateways(r) == [ip_c])
    });
    assert!(
        single["nexthops"].as_array().is_none_or(|h| h.len() == 1),
        "{single}"
    );
    let after: Vec<String> = bird_routes(&a)
        .iter()
        .map(|r| r["dst"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(before, after, "A lost or gained routes when B stopped");
    assert_eq!(
        gateways(&bird_route(&a, "10.88.103.0/26").unwrap()),
        [ip_c],
        "C's own prefix"
    );
    assert!(dc.is_running(), "C's ternd exited");
}

#[test]
fn tern_rr_programs_the_kernel_only_with_fib() {
    if !require_root("tern_rr_programs_the_kernel_only_with_fib") {
        return;
    }
    let (ip_client, ip_fib, ip_nofib) = ("10.88.1.1", "10.88.1.2", "10.88.1.3");
    let lan = new_lan("frl");
    let client = add_node(&lan, "frc", &format!("{ip_client}/24"));
    let rr_fib = add_node(&lan, "frf", &format!("{ip_fib}/24"));
    let rr_nofib = add_node(&lan, "frn", &format!("{ip_nofib}/24"));
    let dir = TempDir::new("fr");
    let ternd = env!("CARGO_BIN_EXE_ternd");
    let tern_rr = env!("CARGO_BIN_EXE_tern-rr");
    let plain = |address| PeerSpec {
        address,
        rr_client: false,
    };
    let client_of = |address| PeerSpec {
        address,
        rr_client: true,
    };
    let (mut dclient, _) = start(
        &client,
        ternd,
        &dir,
        "client",
        &config(ip_client, &[plain(ip_fib), plain(ip_nofib)], &[PREFIX]),
        &[],
    );
    let (mut dfib, sfib) = start(
        &rr_fib,
        tern_rr,
        &dir,
        "rr-fib",
        &config(ip_fib, &[client_of(ip_client)], &[]),
        &["--fib"],
    );
    let (mut dnofib, snofib) = start(
        &rr_nofib,
        tern_rr,
        &dir,
        "rr-nofib",
        &config(ip_nofib, &[client_of(ip_client)], &[]),
        &[],
    );

    let programmed = wait_for(
        &format!("{PREFIX} via {ip_client} in the --fib reflector's kernel"),
        WAIT,
        || bird_route(&rr_fib, PREFIX).filter(|r| gateways(r) == [ip_client]),
    );
    // Found by `ip route show proto bird`: written with protocol 12, as BIRD writes it.
    assert_eq!(programmed["dst"].as_str(), Some(PREFIX), "{programmed}");
    let text = rr_fib.ip(["route", "show", PREFIX]);
    assert!(
        text.contains(&format!("via {ip_client}")) && text.contains("proto bird"),
        "{text}"
    );
    assert!(rib_has(&sfib, PREFIX));
    wait_for(
        &format!("{PREFIX} in the table of the reflector without --fib"),
        WAIT,
        || rib_has(&snofib, PREFIX).then_some(()),
    );
    // The route has been in its table since the wait above ended; give a FIB (if one were
    // wrongly running) the same chance the --fib reflector had, then check the kernel.
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        bird_routes(&rr_nofib).is_empty(),
        "tern-rr without --fib programmed the kernel: {:?}",
        bird_routes(&rr_nofib)
    );
    assert!(
        rr_nofib.ip(["route", "show", PREFIX]).trim().is_empty(),
        "tern-rr without --fib has a route for {PREFIX}"
    );
    assert!(dclient.is_running() && dfib.is_running() && dnofib.is_running());
}
