//! The control socket against real speakers: two `tern_speaker::Speaker`s peer over
//! loopback (127.0.0.1 ↔ 127.0.0.2, no FIB), and every consumer Calico has is run against
//! the socket with its parsing rules as contract §6 states them: calico-node's readiness
//! and liveness checks, `calicoctl node status`, the CalicoNodeStatus reporter, and the
//! real `birdc` from Debian's `bird` package.

#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use regex::Regex;
use tern_config::DesiredConfig;
use tern_control::{Backend, ControlError, ControlOptions, ControlServer, FamilyView};
use tern_speaker::{Speaker, SpeakerOptions};
use tern_tests::TempDir;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

const LOCAL_PEER: &str = "Mesh_127_0_0_2";
const DEAD_PEER: &str = "Global_127_0_0_9";

fn node(addr: &str, port: u16, peers: &str, blackhole: &str) -> DesiredConfig {
    let json = format!(
        r#"{{
        "router_id": "{addr}", "asn": 64512,
        "listen": {{ "address": "{addr}", "port": {port} }},
        "peers": [{peers}],
        "policies": {{}}, "blackholes": ["{blackhole}"],
        "kernel": {{ "export": "all", "learn": false, "persist": true, "scan_time": 10,
                     "graceful_restart": false, "merge_paths": true, "route_protocol": 12,
                     "normal_route_priority": {{ "ipv4": 1024, "ipv6": 1024 }} }}
    }}"#
    );
    serde_json::from_str(&json).unwrap()
}

fn peer(name: &str, addr: &str, port: u16, source: &str, passive: bool) -> String {
    format!(
        r#"{{ "name": "{name}", "kind": "mesh", "address": "{addr}", "port": {port},
              "remote_as": 64512, "passive": {passive}, "source_address": "{source}",
              "families": ["ipv4"], "import": "all", "export": "all",
              "password_set": false, "connect_retry_time": 1 }}"#
    )
}

/// Speaker A (127.0.0.1, whose sockets are tested) peers with B (127.0.0.2); A also has a
/// peer that never comes up (nothing listens on 127.0.0.9:1).
struct Fixture {
    a: Arc<Speaker>,
    b: Speaker,
    _dir: TempDir,
    v4: ControlServer,
    v6: ControlServer,
    configured: Arc<AtomicUsize>,
}

impl Fixture {
    async fn new() -> Fixture {
        Fixture::with_options(|o| o).await
    }

    async fn with_options(tune: impl Fn(ControlOptions) -> ControlOptions) -> Fixture {
        let a = Arc::new(Speaker::new(SpeakerOptions::default()));
        let peers = [
            peer(LOCAL_PEER, "127.0.0.2", 179, "127.0.0.1", true),
            peer(DEAD_PEER, "127.0.0.9", 1, "127.0.0.1", false),
        ]
        .join(",");
        let config_a = node("127.0.0.1", 0, &peers, "10.65.0.0/26");
        a.apply(config_a.clone()).await.unwrap();
        let port = a.listening().await.unwrap()[0].port();
        let b = Speaker::new(SpeakerOptions::default());
        let peers_b = peer("Mesh_127_0_0_1", "127.0.0.1", port, "127.0.0.2", false);
        b.apply(node("127.0.0.2", 0, &peers_b, "10.65.1.0/26"))
            .await
            .unwrap();

        let dir = TempDir::new("tctl");
        let configured = Arc::new(AtomicUsize::new(0));
        let counter = configured.clone();
        let speaker = a.clone();
        let backend = Arc::new(Backend::new(a.clone()).on_configure(move || {
            let counter = counter.clone();
            let speaker = speaker.clone();
            let config = config_a.clone();
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
                speaker
                    .apply(config)
                    .await
                    .map(|_| "test datastore".to_string())
                    .map_err(|e| e.to_string())
            }
        }));
        let v4 = ControlServer::bind(
            tune(ControlOptions::new(
                dir.path().join("bird.ctl"),
                FamilyView::V4,
            )),
            backend.clone(),
        )
        .unwrap();
        let v6 = ControlServer::bind(
            tune(ControlOptions::new(
                dir.path().join("bird6.ctl"),
                FamilyView::V6,
            )),
            backend,
        )
        .unwrap();
        let f = Fixture {
            a,
            b,
            _dir: dir,
            v4,
            v6,
            configured,
        };
        f.wait_established().await;
        f
    }

    /// Until A's session with B is Established and B's block is in A's RIB.
    async fn wait_established(&self) {
        for _ in 0..300 {
            let peers = self.a.peers().await.unwrap();
            let up = peers
                .iter()
                .any(|p| p.name == LOCAL_PEER && p.state == bgp_wire::fsm::State::Established);
            let routes = self.a.routes().await.unwrap();
            let learned = routes
                .iter()
                .any(|r| r.prefix.to_string() == "10.65.1.0/26");
            if up && learned {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the session between the speakers did not come up");
    }

    fn v4(&self) -> PathBuf {
        self.v4.path().to_path_buf()
    }

    async fn stop(self) {
        let Fixture { a, b, v4, v6, .. } = self;
        v4.shutdown().await;
        v6.shutdown().await;
        b.shutdown("test over").await.unwrap();
        Arc::try_unwrap(a)
            .unwrap()
            .shutdown("test over")
            .await
            .unwrap();
    }
}

/// Sends `commands` at once (before reading the welcome, as Calico's Go clients do) and
/// reads until `replies` replies have ended. Returns every line read, welcome included.
async fn converse(path: &Path, commands: &[&str], replies: usize) -> Vec<String> {
    let mut s = UnixStream::connect(path).await.unwrap();
    for c in commands {
        s.write_all(format!("{c}\n").as_bytes()).await.unwrap();
    }
    let mut r = BufReader::new(s);
    let mut lines = Vec::new();
    let mut ended = 0;
    while ended < replies + 1 {
        let mut l = String::new();
        let n = tokio::time::timeout(Duration::from_secs(2), r.read_line(&mut l))
            .await
            .expect("Calico's 2 s per-line read deadline")
            .unwrap();
        assert!(n > 0, "connection closed early; got {lines:#?}");
        let l = l.trim_end_matches('\n').to_string();
        let b = l.as_bytes();
        if b.len() >= 5 && b[..4].iter().all(u8::is_ascii_digit) && b[4] == b' ' {
            ended += 1;
        }
        lines.push(l);
    }
    lines
}

// ===== calico-node and calicoctl parsers, as contract §6 states them =====

#[derive(Debug, Clone, PartialEq)]
struct CalicoPeer {
    ip: String,
    peer_type: &'static str,
    state: String,
    since: String,
    bgp_state: String,
    info: String,
}

/// `show protocols` (§6.3): heading check, row prefixes, field split, name regex.
fn parse_protocols(lines: &[String], v6: bool) -> Result<Vec<CalicoPeer>, String> {
    let name_re = Regex::new(r"^(Global|Node|Mesh)_(.+)$").unwrap();
    let mut peers = Vec::new();
    for line in lines {
        let row = if line.starts_with("0001") {
            continue;
        } else if line.starts_with("0000") {
            break;
        } else if let Some(h) = line.strip_prefix("2002-") {
            let fields: Vec<_> = h.split_whitespace().collect();
            if fields != ["name", "proto", "table", "state", "since", "info"] {
                return Err(format!("unknown BIRD table output format: {line}"));
            }
            continue;
        } else if let Some(rest) = line.strip_prefix("1002-") {
            rest
        } else if let Some(rest) = line.strip_prefix(' ') {
            rest
        } else {
            return Err(format!("unexpected output line from BIRD: {line}"));
        };
        let f: Vec<_> = row.split_whitespace().collect();
        if f.len() < 6 || f[1] != "BGP" {
            continue;
        }
        let Some(c) = name_re.captures(f[0]) else {
            continue;
        };
        let peer_type = match &c[1] {
            "Mesh" => "node-to-node mesh",
            "Global" => "global",
            _ => "node specific",
        };
        let ip = c[2].replace('_', if v6 { ":" } else { "." });
        peers.push(CalicoPeer {
            ip,
            peer_type,
            state: f[3].to_string(),
            since: f[4].to_string(),
            bgp_state: f[5].to_string(),
            info: f[5..].join(" "),
        });
    }
    Ok(peers)
}

/// Health's `GRInProgress` over `show status` (§6.4).
fn gr_in_progress(lines: &[String]) -> Result<bool, String> {
    let mut gr = false;
    for l in lines {
        if l.starts_with("0001")
            || l.starts_with("1000")
            || l.starts_with("1011")
            || l.starts_with(' ')
        {
            continue;
        } else if l.starts_with("0024") {
            gr = true;
        } else if l.starts_with("0013") {
            return Ok(gr);
        } else {
            return Err(format!("unexpected line {l}"));
        }
    }
    Err("no 0013".into())
}

/// Readiness (`checkBIRDReady`, §6.3): within the start-up window every peer must be
/// Established and no GR recovery may be reported; after it one Established peer is enough.
async fn bird_ready(path: &Path, within_threshold: bool) -> Result<(), String> {
    let lines = converse(path, &["show protocols"], 1).await;
    let peers = parse_protocols(&lines, false)?;
    if peers.is_empty() {
        return Ok(());
    }
    if within_threshold {
        for p in &peers {
            if p.bgp_state != "Established" {
                return Err(format!("BGP not established with {}", p.ip));
            }
        }
        let status = converse(path, &["show status"], 1).await;
        if gr_in_progress(&status)? {
            return Err("graceful restart in progress".into());
        }
        Ok(())
    } else if peers.iter().any(|p| p.bgp_state == "Established") {
        Ok(())
    } else {
        Err("no peer established".into())
    }
}

#[derive(Debug, Default)]
struct ReporterStatus {
    ready: bool,
    version: String,
    router_id: String,
    server_time: String,
    last_boot: String,
    last_reconfig: String,
}

/// CalicoNodeStatus reporter over `show status` (§6.4).
fn reporter_status(lines: &[String]) -> ReporterStatus {
    let mut s = ReporterStatus::default();
    for l in lines {
        let text = if l.starts_with("0001") || l.starts_with("1000") || l.starts_with("1011") {
            &l[5..]
        } else if let Some(t) = l.strip_prefix(' ') {
            t
        } else {
            // 0013 ends; any other code is logged and ends too.
            break;
        };
        if text.contains("BIRD") && text.contains("ready") {
            s.ready = true;
        } else if let Some(v) = text.strip_prefix("BIRD ") {
            s.version = v.to_string();
        } else if let Some(v) = text.strip_prefix("Router ID is ") {
            s.router_id = v.to_string();
        } else if let Some(v) = text.strip_prefix("Current server time is ") {
            s.server_time = v.to_string();
        } else if let Some(v) = text.strip_prefix("Last reboot on ") {
            s.last_boot = v.to_string();
        } else if let Some(v) = text.strip_prefix("Last reconfiguration on ") {
            s.last_reconfig = v.to_string();
        }
    }
    s
}

/// The reporter over `show protocols all NAME` (§6.5).
fn reporter_peer_details(lines: &[String]) -> (String, String) {
    let mut state = String::new();
    let mut addr = String::new();
    for l in lines {
        if l.starts_with("0000") {
            break;
        }
        if let Some((_, v)) = l.split_once("BGP state:") {
            state = v.trim().to_string();
        }
        if let Some((_, v)) = l.split_once("Neighbor address:") {
            addr = v.trim().to_string();
        }
    }
    (state, addr)
}

#[derive(Debug, PartialEq)]
struct ReporterRoute {
    dest: String,
    gateway: String,
    iface: String,
    from: String,
    primary: bool,
}

/// The reporter over `show route` (§6.6): the four regexes of route.go, destination
/// inheritance, `] *` primary, and the `from` rule (pseudo-protocol prefix or a
/// `(Global|Node|Mesh)_<ip>` name, anything else fails the whole call).
fn reporter_routes(lines: &[String]) -> Result<Vec<ReporterRoute>, String> {
    let via = Regex::new(
        r"(?P<dest>\S*)\s*via\s(?P<gateway>\S*)\s*on\s(?P<iface>.*)\s\[(?P<from>\S*)\s.*\].*",
    )
    .unwrap();
    let dev = Regex::new(r"(?P<dest>\S*)\s*dev\s(?P<iface>.*)\s\[(?P<from>\S*)\s.*\].*").unwrap();
    let blackhole = Regex::new(r"(?P<dest>\S*)\s*blackhole\s\[(?P<from>\S*)\s.*\].*").unwrap();
    let unreachable = Regex::new(r"(?P<dest>\S*)\s*unreachable\s\[(?P<from>\S*)\s.*\].*").unwrap();
    let session = Regex::new(r"^(Global|Node|Mesh)_(.+)$").unwrap();
    let mut out: Vec<ReporterRoute> = Vec::new();
    let mut previous = String::new();
    for l in lines {
        let text = if l.starts_with("0000") {
            break;
        } else if l.starts_with("0001") {
            continue;
        } else if l.starts_with("1007") {
            &l[5..]
        } else if let Some(t) = l.strip_prefix(' ') {
            t
        } else {
            return Err(format!("unexpected output line from BIRD: {l}"));
        };
        let (re, gw, iface) = if text.contains(" via ") {
            (&via, None, None)
        } else if text.contains(" dev ") {
            (&dev, Some("N/A"), None)
        } else if text.contains(" blackhole ") {
            (&blackhole, Some("N/A"), Some("blackhole"))
        } else if text.contains(" unreachable ") {
            (&unreachable, Some("N/A"), Some("unreachable"))
        } else {
            return Err(format!("no regex for {text:?}"));
        };
        let c = re
            .captures(text)
            .ok_or_else(|| format!("Failed to parse ({text})"))?;
        let mut dest = c["dest"].to_string();
        if dest.is_empty() {
            if previous.is_empty() {
                return Err(format!("No destination available ({text})"));
            }
            dest = previous.clone();
        }
        previous = dest.clone();
        let from = c["from"].to_string();
        if !["kernel", "static", "direct"]
            .iter()
            .any(|p| from.starts_with(p))
            && !session.is_match(&from)
        {
            return Err(format!("unknown session name {from}"));
        }
        out.push(ReporterRoute {
            dest,
            gateway: gw.map_or_else(|| c["gateway"].to_string(), str::to_string),
            iface: iface.map_or_else(|| c["iface"].to_string(), str::to_string),
            from,
            primary: text.contains("] *"),
        });
    }
    Ok(out)
}

// ===== tests =====

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calico_consumers_parse_the_socket() {
    let f = Fixture::new().await;
    let path = f.v4();

    // Welcome first, then the reply to the command written before it was read.
    let lines = converse(&path, &["show protocols"], 1).await;
    assert!(lines[0].starts_with("0001 BIRD v"), "{lines:#?}");
    assert_eq!(
        lines[1],
        "2002-name     proto    table    state  since       info"
    );
    assert!(
        lines[2].starts_with("1002-static1  Static   master   up     "),
        "{lines:#?}"
    );
    for pseudo in ["kernel1  Kernel", "device1  Device", "direct1  Direct"] {
        assert!(
            lines.iter().any(|l| l.starts_with(&format!(" {pseudo}"))),
            "{pseudo}: {lines:#?}"
        );
    }
    assert_eq!(lines.last().unwrap(), "0000 ");

    // calicoctl node status / the reporter's peer list.
    let peers = parse_protocols(&lines, false).unwrap();
    let mesh = peers
        .iter()
        .find(|p| p.ip == "127.0.0.2")
        .expect("mesh peer row");
    assert_eq!(mesh.peer_type, "node-to-node mesh");
    assert_eq!(mesh.state, "up");
    assert_eq!(mesh.bgp_state, "Established");
    assert_eq!(mesh.info, "Established");
    assert!(
        Regex::new(r"^\d\d:\d\d:\d\d$")
            .unwrap()
            .is_match(&mesh.since),
        "{}",
        mesh.since
    );
    let dead = peers
        .iter()
        .find(|p| p.ip == "127.0.0.9")
        .expect("global peer row");
    assert_eq!(dead.peer_type, "global");
    assert_eq!(dead.state, "start");
    assert!(
        ["Active", "Connect", "Idle"].contains(&dead.bgp_state.as_str()),
        "{dead:?}"
    );

    // Readiness: after the start-up window one Established peer is enough; within it the
    // dead peer makes the node not ready, exactly as calico-node words it.
    bird_ready(&path, false).await.unwrap();
    assert_eq!(
        bird_ready(&path, true).await,
        Err("BGP not established with 127.0.0.9".into())
    );
    // Disabled, the dead peer's row is `down` with fewer than six fields: calico-node
    // drops it, and the node is ready (show status has no 0024 without GR recovery).
    let reply = converse(&path, &[&format!("disable {DEAD_PEER}")], 1).await;
    assert_eq!(reply[1], format!("0009-{DEAD_PEER}: disabled"));
    assert_eq!(reply[2], "0000 ");
    let reply = converse(&path, &[&format!("disable {DEAD_PEER}")], 1).await;
    assert_eq!(reply[1], format!("0008-{DEAD_PEER}: already disabled"));
    let lines = converse(&path, &["show protocols"], 1).await;
    let row = lines.iter().find(|l| l.contains(DEAD_PEER)).unwrap();
    assert!(row.split_whitespace().count() < 6 + 1, "{row:?}"); // + the leading code/space
    bird_ready(&path, true).await.unwrap();
    let reply = converse(&path, &[&format!("enable {DEAD_PEER}")], 1).await;
    assert_eq!(reply[1], format!("0011-{DEAD_PEER}: enabled"));

    // The reporter, on one connection: show status, show protocols, show protocols all
    // NAME, show route — sequential commands, one welcome.
    let lines = converse(
        &path,
        &[
            "show status",
            &format!("show protocols all {LOCAL_PEER}"),
            "show route",
        ],
        3,
    )
    .await;
    assert_eq!(lines.iter().filter(|l| l.starts_with("0001")).count(), 1);
    let end_status = lines.iter().position(|l| l.starts_with("0013")).unwrap();
    let status = reporter_status(&lines[..=end_status]);
    assert!(status.ready);
    assert!(status.version.starts_with('v'), "{status:?}");
    assert_eq!(status.router_id, "127.0.0.1");
    let datetime = Regex::new(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$").unwrap();
    for t in [
        &status.server_time,
        &status.last_boot,
        &status.last_reconfig,
    ] {
        assert!(datetime.is_match(t), "{status:?}");
    }
    assert!(!gr_in_progress(&lines[..=end_status]).unwrap());
    let rest = &lines[end_status + 1..];
    let end_details = rest.iter().position(|l| l.starts_with("0000")).unwrap();
    let (state, addr) = reporter_peer_details(&rest[..=end_details]);
    assert_eq!(state, "Established");
    assert_eq!(addr, "127.0.0.2");
    let details = &rest[..=end_details];
    for field in [
        "  Description:    Connection to BGP peer",
        "   Preference:     100",
        "   Routes:         1 imported, ",
        "     Neighbor AS:      64512",
        "     Neighbor ID:      127.0.0.2",
        "     Source address:   127.0.0.1",
        "     Session:          internal multihop AS4",
    ] {
        assert!(
            details.iter().any(|l| l.contains(field)),
            "{field:?} in {details:#?}"
        );
    }
    let caps = details
        .iter()
        .find(|l| l.contains("Neighbor caps:"))
        .unwrap();
    assert!(caps.contains(" refresh") && caps.contains(" AS4"), "{caps}");

    let routes = reporter_routes(&rest[end_details + 1..]).unwrap();
    let learned = routes.iter().find(|r| r.dest == "10.65.1.0/26").unwrap();
    assert_eq!(
        *learned,
        ReporterRoute {
            dest: "10.65.1.0/26".into(),
            gateway: "127.0.0.2".into(),
            iface: "lo".into(),
            from: LOCAL_PEER.into(),
            primary: true,
        }
    );
    let own = routes.iter().find(|r| r.dest == "10.65.0.0/26").unwrap();
    assert_eq!(
        (own.iface.as_str(), own.from.as_str(), own.primary),
        ("blackhole", "static1", true)
    );

    f.stop().await;
}

/// During graceful-restart recovery (`SpeakerStatus::graceful_restart_recovery`, which
/// needs the FIB and so root) `show status` carries the `0024` report: calico-node's
/// readiness sees GR in progress and the reporter stops at the unknown code, as with BIRD.
#[test]
fn graceful_restart_report_is_seen_by_calico() {
    let at = std::time::UNIX_EPOCH + Duration::from_secs(1_787_391_001);
    let mut view = tern_control::view::StatusView {
        version: tern_control::VERSION.into(),
        router_id: "10.0.0.1".parse().unwrap(),
        asn: 64512,
        server_time: at,
        last_reboot: at,
        last_reconfiguration: at,
        graceful_restart_recovery: true,
        rib_destinations: 0,
        rib_paths: 0,
        rib_attribute_sets: 0,
        fib: None,
    };
    let render = |v: &tern_control::view::StatusView| {
        let mut w = tern_control::reply::ReplyWriter::new();
        tern_control::format::status(&mut w, v);
        w.take().lines().map(str::to_string).collect::<Vec<_>>()
    };
    let lines = render(&view);
    assert!(gr_in_progress(&lines).unwrap());
    let s = reporter_status(&lines);
    assert_eq!(s.router_id, "10.0.0.1");
    assert_eq!(s.last_reconfig, "2026-08-22 09:30:01");
    view.graceful_restart_recovery = false;
    assert!(!gr_in_progress(&render(&view)).unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bird_rows_and_commands() {
    let f = Fixture::new().await;
    let path = f.v4();
    let route_row = Regex::new(
        r"^1007-10\.65\.1\.0/26       via 127\.0\.0\.2 on lo \[Mesh_127_0_0_2 \d\d:\d\d:\d\d\] \* \(100/0\) \[i\]$",
    )
    .unwrap();

    let l = converse(&path, &["show route for 10.65.1.7 all"], 1).await;
    assert!(route_row.is_match(&l[1]), "{l:#?}");
    assert_eq!(l[2], "1008-\tType: BGP unicast univ");
    assert_eq!(l[3], "1012-\tBGP.origin: IGP");
    assert_eq!(l[4], " \tBGP.as_path: ");
    assert_eq!(l[5], " \tBGP.next_hop: 127.0.0.2");
    assert_eq!(l[6], " \tBGP.local_pref: 100");
    assert_eq!(l[7], "0000 ");

    // Abbreviations, exact prefixes, protocol filter, counts, errors.
    let l = converse(&path, &["s r 10.65.1.0/26"], 1).await;
    assert!(route_row.is_match(&l[1]), "{l:#?}");
    let l = converse(
        &path,
        &[&format!("show route protocol {LOCAL_PEER} count")],
        1,
    )
    .await;
    assert_eq!(l[1], "0014 1 of 2 routes for 2 networks");
    let l = converse(&path, &["show route primary count", "show route count"], 2).await;
    assert_eq!(
        l[1..],
        [
            "0014 2 of 2 routes for 2 networks",
            "0014 2 of 2 routes for 2 networks"
        ]
    );
    let l = converse(&path, &["show route protocol static1"], 1).await;
    assert!(
        l[1].starts_with("1007-10.65.0.0/26       blackhole [static1 "),
        "{l:#?}"
    );
    assert!(l[1].ends_with("] * (200)"), "{l:#?}");
    let l = converse(
        &path,
        &[
            "show route for 192.0.2.1",
            "show route protocol nope",
            "show protocols nope",
            "show protocols \"Nope*\"",
            "show frobnicate",
            "sh p",
            "disable nope",
        ],
        7,
    )
    .await;
    assert_eq!(
        &l[1..],
        [
            "8001 Network not in table",
            "9001 nope is not a protocol",
            "9002 nope is not a protocol",
            "8003 No protocols match",
            "9001 syntax error",
            "9001 syntax error",
            "9002 nope is not a protocol",
        ]
    );

    // Patterns, show protocols NAME.
    let l = converse(&path, &["show protocols \"Mesh_*\""], 1).await;
    assert_eq!(l.len(), 4, "{l:#?}");
    assert!(l[2].starts_with(&format!("1002-{LOCAL_PEER} BGP      master   up     ")));
    assert!(l[2].ends_with("Established   "), "{:?}", l[2]);

    // configure runs the daemon's hook.
    let l = converse(&path, &["configure"], 1).await;
    assert_eq!(
        l[1..],
        [
            "0002-Reading configuration from test datastore",
            "0003 Reconfigured"
        ]
    );
    assert_eq!(f.configured.load(Ordering::SeqCst), 1);
    // down without a hook is refused, and the server stays up.
    let l = converse(&path, &["down", "show memory"], 2).await;
    assert!(l[1].starts_with("8007 "), "{l:#?}");
    assert_eq!(l[2], "1018-BIRD memory usage");

    // show interfaces lists lo with 127.0.0.1/8.
    let l = converse(&path, &["show interfaces", "show interfaces summary"], 2).await;
    assert!(
        l.iter().any(|x| x.starts_with("1001-lo up (index=")),
        "{l:#?}"
    );
    assert!(
        l.iter()
            .any(|x| x == "1003-\t127.0.0.1/8 (Primary, scope host)"),
        "{l:#?}"
    );
    assert!(
        l.iter().any(|x| x == "2005-interface state address"),
        "{l:#?}"
    );

    // restart: the session goes down and comes back.
    let l = converse(&path, &[&format!("restart {LOCAL_PEER}")], 1).await;
    assert_eq!(l[1], format!("0012-{LOCAL_PEER}: restarted"));
    f.wait_established().await;

    // The IPv6 view shows no IPv4 peers or routes, but the pseudo-protocols.
    let l = converse(
        f.v6.path(),
        &["show protocols", "show route", "show status"],
        3,
    )
    .await;
    assert!(
        !l.iter()
            .any(|x| x.contains("Mesh_") || x.contains("10.65.")),
        "{l:#?}"
    );
    assert!(l.iter().any(|x| x.starts_with("1002-static1 ")), "{l:#?}");
    assert!(l.iter().any(|x| x == "0013 Daemon is up and running"));

    f.stop().await;
}

/// The IPv6 view with an IPv6 session: both speakers on ::1 (different ports), so the
/// peer's Calico-style name is `Mesh___1` and calico-node maps it back to `::1`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv6_view_shows_ipv6_sessions_and_routes() {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        eprintln!(
            "\n*** SKIPPED ipv6_view_shows_ipv6_sessions_and_routes: no ::1 (IPv6 disabled) ***\n"
        );
        return;
    }
    let v6peer = |name: &str, port: u16, passive: bool| {
        format!(
            r#"{{ "name": "{name}", "kind": "mesh", "address": "::1", "port": {port},
                  "remote_as": 64512, "passive": {passive}, "source_address": "::1",
                  "families": ["ipv6"], "import": "all", "export": "all",
                  "connect_retry_time": 1 }}"#
        )
    };
    let v6node = |id: &str, peers: String, block: &str| -> DesiredConfig {
        serde_json::from_str(&format!(
            r#"{{ "router_id": "{id}", "asn": 64512,
                 "listen": {{ "address": "::1", "port": 0 }},
                 "peers": [{peers}], "policies": {{}}, "blackholes": ["{block}"],
                 "kernel": {{ "export": "all", "learn": false, "persist": true, "scan_time": 10,
                     "graceful_restart": false, "merge_paths": true, "route_protocol": 12,
                     "normal_route_priority": {{ "ipv4": 1024, "ipv6": 1024 }} }} }}"#
        ))
        .unwrap()
    };
    let a = Arc::new(Speaker::new(SpeakerOptions::default()));
    a.apply(v6node(
        "10.0.0.1",
        v6peer("Mesh___1", 179, true),
        "fd00:65::/64",
    ))
    .await
    .unwrap();
    let port = a.listening().await.unwrap()[0].port();
    let b = Speaker::new(SpeakerOptions::default());
    b.apply(v6node(
        "10.0.0.2",
        v6peer("Mesh___1", port, false),
        "fd00:65:1::/64",
    ))
    .await
    .unwrap();
    let dir = TempDir::new("tctl6");
    let backend = Arc::new(Backend::new(a.clone()));
    let v4 = ControlServer::bind(
        ControlOptions::new(dir.path().join("bird.ctl"), FamilyView::V4),
        backend.clone(),
    )
    .unwrap();
    let v6 = ControlServer::bind(
        ControlOptions::new(dir.path().join("bird6.ctl"), FamilyView::V6),
        backend,
    )
    .unwrap();
    let mut up = false;
    for _ in 0..300 {
        let lines = converse(v6.path(), &["show protocols"], 1).await;
        let peers = parse_protocols(&lines, true).unwrap();
        let routes = converse(v6.path(), &["show route"], 1).await;
        if peers.first().is_some_and(|p| p.bgp_state == "Established")
            && routes.iter().any(|l| l.contains("fd00:65:1::/64"))
        {
            assert_eq!(peers[0].ip, "::1");
            assert_eq!(peers[0].peer_type, "node-to-node mesh");
            let parsed = reporter_routes(&routes).unwrap();
            let learned = parsed.iter().find(|r| r.dest == "fd00:65:1::/64").unwrap();
            assert_eq!(
                (
                    learned.gateway.as_str(),
                    learned.iface.as_str(),
                    learned.from.as_str()
                ),
                ("::1", "lo", "Mesh___1")
            );
            assert!(learned.primary);
            let own = parsed.iter().find(|r| r.dest == "fd00:65::/64").unwrap();
            assert_eq!(own.iface, "blackhole");
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(up, "the IPv6 session did not come up");
    // The IPv4 view shows neither the session nor its routes.
    let lines = converse(v4.path(), &["show protocols", "show route"], 2).await;
    assert!(
        !lines
            .iter()
            .any(|l| l.contains("Mesh___1") || l.contains("fd00")),
        "{lines:#?}"
    );
    assert!(parse_protocols(&lines, false).unwrap().is_empty());
    v4.shutdown().await;
    v6.shutdown().await;
    b.shutdown("test over").await.unwrap();
    Arc::try_unwrap(a)
        .unwrap()
        .shutdown("test over")
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_birdc_reads_the_socket() {
    let Some(birdc) = tern_tests::require_binary("real_birdc_reads_the_socket", "birdc") else {
        return;
    };
    let f = Fixture::new().await;
    let path = f.v4();
    let run = |args: &'static [&'static str]| {
        let birdc = birdc.clone();
        let path = path.clone();
        tokio::task::spawn_blocking(move || {
            let out = std::process::Command::new(birdc)
                .arg("-s")
                .arg(path)
                .args(args)
                .output()
                .unwrap();
            assert!(out.status.success(), "{out:?}");
            String::from_utf8(out.stdout).unwrap()
        })
    };
    let text = run(&["show", "protocols"]).await.unwrap();
    let lines: Vec<_> = text.lines().collect();
    assert!(
        lines[0].starts_with("BIRD v") && lines[0].ends_with(" ready."),
        "{text}"
    );
    assert_eq!(
        lines[1],
        "name     proto    table    state  since       info"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with(LOCAL_PEER) && l.contains("Established")),
        "{text}"
    );

    // Liveness: `birdcl -s SOCKET show status` stdout starts with `BIRD`.
    let text = run(&["show", "status"]).await.unwrap();
    assert!(text.starts_with("BIRD v"), "{text}");
    assert!(text.contains("\nRouter ID is 127.0.0.1\n"), "{text}");
    assert!(
        text.trim_end().ends_with("Daemon is up and running"),
        "{text}"
    );

    let text = run(&["show", "route"]).await.unwrap();
    assert!(
        Regex::new(r"(?m)^10\.65\.1\.0/26 +via 127\.0\.0\.2 on lo \[Mesh_127_0_0_2 [0-9:]+\] \* \(100/0\) \[i\]$")
            .unwrap()
            .is_match(&text),
        "{text}"
    );
    // birdc expands abbreviations itself against BIRD's grammar.
    let text = run(&["sh", "pro", "all", LOCAL_PEER]).await.unwrap();
    assert!(text.contains("BGP state:          Established"), "{text}");
    assert!(text.contains("Neighbor address: 127.0.0.2"), "{text}");
    if let Some(birdcl) = tern_tests::which("birdcl") {
        let out = std::process::Command::new(birdcl)
            .arg("-s")
            .arg(&path)
            .args(["show", "status"])
            .output()
            .unwrap();
        assert!(String::from_utf8_lossy(&out.stdout).starts_with("BIRD"));
    }
    f.stop().await;
}

/// Reads until the server closes the connection (EOF or reset); fails after 5 s.
async fn read_until_closed(s: &mut UnixStream) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
            .await
            .expect("the server did not close the connection");
        match n {
            Ok(0) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return got,
            Err(e) => panic!("{e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hung_and_hostile_clients_do_not_disturb_others() {
    let f = Fixture::with_options(|mut o| {
        o.write_timeout = Duration::from_secs(1);
        o
    })
    .await;
    let path = f.v4();

    // A client that asks for a lot and never reads.
    let mut hung = UnixStream::connect(&path).await.unwrap();
    let flood = "show protocols all\n".repeat(3000);
    let writer = tokio::spawn(async move {
        let _ = hung.write_all(flood.as_bytes()).await;
        hung
    });

    // An established client, to check it survives its neighbours.
    let mut steady = BufReader::new(UnixStream::connect(&path).await.unwrap());
    let mut welcome = String::new();
    steady.read_line(&mut welcome).await.unwrap();

    // 50 clients at once get complete answers meanwhile.
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let path = path.clone();
        tasks.push(tokio::spawn(async move {
            let l = converse(&path, &["show protocols"], 1).await;
            assert_eq!(l.last().unwrap(), "0000 ");
            assert!(l.iter().any(|x| x.contains(LOCAL_PEER)));
        }));
    }
    tokio::time::timeout(Duration::from_secs(20), async {
        for t in tasks {
            t.await.unwrap();
        }
    })
    .await
    .expect("other clients were blocked by the hung one");

    // The hung client is dropped by the server after its write timeout (1 s here): once
    // that has passed, what it finally reads ends with EOF rather than 3000 replies.
    let mut hung = writer.await.unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    // (Closing a Unix socket with unread input resets the connection: that counts too.)
    let mut got = Vec::new();
    let end = tokio::time::timeout(Duration::from_secs(20), hung.read_to_end(&mut got))
        .await
        .expect("the server did not close the hung client");
    assert!(
        end.as_ref().map_or_else(
            |e| e.kind() == std::io::ErrorKind::ConnectionReset,
            |_| true
        ),
        "{end:?}"
    );
    let replies = String::from_utf8_lossy(&got).matches("\n0000 \n").count();
    assert!(replies < 3000, "all {replies} replies were delivered");

    // Oversized line: 9000, then closed. (The server may close before the client has
    // written everything: write errors and a reset are part of being closed.)
    let mut big = UnixStream::connect(&path).await.unwrap();
    let mut line = vec![b'a'; 5000];
    line.push(b'\n');
    let _ = big.write_all(&line).await;
    let text = String::from_utf8_lossy(&read_until_closed(&mut big).await).to_string();
    assert!(text.ends_with("9000 Command too long\n"), "{text:?}");

    // Garbage: 9001, then closed.
    let mut bad = UnixStream::connect(&path).await.unwrap();
    let _ = bad.write_all(b"\xff\xfe\x00\x01\n").await;
    let text = String::from_utf8_lossy(&read_until_closed(&mut bad).await).to_string();
    assert!(text.ends_with("9001 syntax error\n"), "{text:?}");

    // The steady client still works.
    steady.get_mut().write_all(b"show status\n").await.unwrap();
    let mut last = String::new();
    loop {
        last.clear();
        tokio::time::timeout(Duration::from_secs(2), steady.read_line(&mut last))
            .await
            .unwrap()
            .unwrap();
        if last.starts_with("0013 ") {
            break;
        }
    }
    f.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socket_file_lifecycle() {
    let dir = TempDir::new("tctl-file");
    let speaker = Arc::new(Speaker::new(SpeakerOptions::default()));
    let backend = Arc::new(Backend::new(speaker.clone()));
    let path = dir.path().join("bird.ctl");

    // A stale socket (left by a dead process) is replaced.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    let server =
        ControlServer::bind(ControlOptions::new(&path, FamilyView::V4), backend.clone()).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o660);
    let l = converse(&path, &["show status"], 1).await;
    assert!(l[0].starts_with("0001 BIRD v"));

    // A live socket is not taken over.
    match ControlServer::bind(ControlOptions::new(&path, FamilyView::V4), backend.clone()) {
        Err(ControlError::InUse(_)) => {}
        other => panic!("bound over a live socket: {other:?}"),
    }
    // Shutdown removes the file.
    server.shutdown().await;
    assert!(!path.exists());

    // A regular file is left alone.
    std::fs::write(&path, "not a socket").unwrap();
    match ControlServer::bind(ControlOptions::new(&path, FamilyView::V4), backend.clone()) {
        Err(ControlError::NotASocket(_)) => {}
        other => panic!("replaced a regular file: {other:?}"),
    }
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "not a socket");
    drop(backend);
    Arc::try_unwrap(speaker)
        .unwrap()
        .shutdown("done")
        .await
        .unwrap();
}

fn ternc(args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ternc"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ternc_json_text_and_decode() {
    let f = Fixture::new().await;
    let sock = f.v4().to_str().unwrap().to_string();
    let run = |args: Vec<String>| {
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            ternc(&args)
        })
    };
    let json = |cmd: &str| {
        let mut args = vec!["--socket".to_string(), sock.clone(), "--json".to_string()];
        args.extend(cmd.split(' ').map(str::to_string));
        run(args)
    };

    let (code, out, err) = json("show protocols").await.unwrap();
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let protocols = v["protocols"].as_array().unwrap();
    let mesh = protocols.iter().find(|p| p["name"] == LOCAL_PEER).unwrap();
    assert_eq!(mesh["state"], "up");
    assert_eq!(mesh["bgp"]["state"], "Established");
    assert!(mesh["bgp"]["uptime_seconds"].is_u64());
    assert!(
        mesh["bgp"]["neighbor_caps"]
            .as_array()
            .unwrap()
            .contains(&"AS4".into())
    );
    assert_eq!(mesh["bgp"]["counters"]["prefixes_accepted"], 1);
    assert!(
        mesh["bgp"]["negotiated"]["families"]
            .as_array()
            .unwrap()
            .contains(&"ipv4-unicast".into())
    );
    let dead = protocols.iter().find(|p| p["name"] == DEAD_PEER).unwrap();
    assert!(dead["bgp"]["last_error"].is_string(), "{dead}");

    let (code, out, _) = json("show route all").await.unwrap();
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let r = v["routes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["prefix"] == "10.65.1.0/26")
        .unwrap();
    assert_eq!(r["protocol"], LOCAL_PEER);
    assert_eq!(r["primary"], true);
    assert_eq!(r["via"]["gateway"], "127.0.0.2");
    assert_eq!(r["bgp"]["local_pref"], 100);
    assert_eq!(r["bgp"]["origin"], "igp");

    let (code, out, _) = json("show status").await.unwrap();
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["status"]["router_id"], "127.0.0.1");
    assert!(v["status"]["version"].as_str().unwrap().starts_with('v'));

    let (code, out, _) = json(&format!("show peer {LOCAL_PEER}")).await.unwrap();
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(
        v["peer"]["bgp"]["counters"]["messages_received"]
            .as_u64()
            .unwrap()
            > 0
    );

    let (code, out, _) = json("show config").await.unwrap();
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["config"]["peers"][0]["password_set"], false);
    assert!(v["config"]["peers"][0].get("password").is_none());

    for cmd in [
        "show interfaces",
        "show memory",
        "show route count",
        "show protocols all",
    ] {
        let (code, out, err) = json(cmd).await.unwrap();
        assert_eq!(code, 0, "{cmd}: {err}");
        serde_json::from_str::<serde_json::Value>(&out)
            .unwrap_or_else(|e| panic!("{cmd}: {e}: {out}"));
    }
    // Errors: JSON too, exit status 1.
    let (code, out, _) = json("show protocols nope").await.unwrap();
    assert_eq!(code, 1);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["error"]["code"], 9002);

    // Text mode prints BIRD's text without codes.
    let (code, out, _) = run(vec![
        "--socket".into(),
        sock.clone(),
        "show".into(),
        "protocols".into(),
    ])
    .await
    .unwrap();
    assert_eq!(code, 0);
    assert!(
        out.starts_with("name     proto    table    state  since       info\n"),
        "{out}"
    );
    let (code, out, _) = run(vec![
        "--socket".into(),
        sock.clone(),
        "show".into(),
        "peer".into(),
        LOCAL_PEER.into(),
    ])
    .await
    .unwrap();
    assert_eq!(code, 0);
    assert!(out.contains("Prefixes accepted:"), "{out}");

    // decode: a KEEPALIVE and a NOTIFICATION (Cease / Administrative Shutdown), no socket.
    let (code, out, _) = run(vec![
        "decode".into(),
        "ffffffffffffffffffffffffffffffff001304".into(),
    ])
    .await
    .unwrap();
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["type"], "KEEPALIVE");
    let (code, out, _) = run(vec![
        "decode".into(),
        "ffffffffffffffffffffffffffffffff 0015 03 06 02".into(),
    ])
    .await
    .unwrap();
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["type"], "NOTIFICATION");
    assert_eq!(v["code"], 6);
    assert_eq!(v["subcode"], 2);

    // watch: a restart shows up as peer_state events.
    let mut watch = tokio::process::Command::new(env!("CARGO_BIN_EXE_ternc"))
        .args(["--socket", &sock, "--json", "watch"])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut events = BufReader::new(watch.stdout.take().unwrap());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let l = converse(&f.v4(), &[&format!("restart {LOCAL_PEER}")], 1).await;
    assert_eq!(l[1], format!("0012-{LOCAL_PEER}: restarted"));
    let mut line = String::new();
    tokio::time::timeout(Duration::from_secs(10), events.read_line(&mut line))
        .await
        .unwrap()
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["type"], "peer_state", "{line}");
    assert_eq!(v["name"], LOCAL_PEER);
    watch.kill().await.unwrap();
    f.wait_established().await;
    f.stop().await;
}
