//! Hostile peers against a real `ternd --config FILE` in a network namespace.
//!
//! Every test builds the same lab: namespace D runs `ternd` (listening on 10.81.0.1, every
//! peer passive), namespace X holds the peers on one veth: a HEALTHY peer (10.81.0.2, a
//! well-behaved BGP speaker written here on a plain socket, keepalives every second, two
//! routes announced) established before the first attack and checked after each one, and
//! raw-socket attackers, each on an address of its own (10.81.1.N, configured as peer N) so
//! that one attacker's back-off never hides another's answer. Addresses in 10.81.9.0/24 are
//! not configured at all.
//!
//! For each attack the test asserts the answer of the RFC — the exact NOTIFICATION code and
//! subcode, or "treat-as-withdraw" (RFC 7606 §2: the session stays up and the prefix leaves
//! the kernel) or "attribute discard" (the route is installed anyway) — then that `ternd`
//! is alive and the healthy session never saw a NOTIFICATION or a close, its routes are
//! still in D's kernel and `ip monitor route` never saw them deleted.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpStream};
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bgp_wire::{DecodeContext, Message};
use bytes::Bytes;
use nix::sys::socket::{self, AddressFamily, SockFlag, SockType, SockaddrIn, sockopt};
use nix::sys::time::TimeVal;
use tern_tests::{Daemon, Netns, TempDir, require_root, veth, wait_for};

// ===== addresses and configuration =====

const TERN: Ipv4Addr = Ipv4Addr::new(10, 81, 0, 1);
const HEALTHY: Ipv4Addr = Ipv4Addr::new(10, 81, 0, 2);
const TERN_AS: u32 = 64512;
const HEALTHY_AS: u32 = 65002;
const ATTACKER_AS: u32 = 65001;
/// Tern's own block, exported to every peer.
const TERN_BLOCK: &str = "10.90.0.0/24";
/// The healthy peer's routes.
const HEALTHY_ROUTES: [&str; 2] = ["10.95.0.0/24", "10.95.1.0/24"];

fn attacker(n: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 81, 1, n)
}

fn stranger(n: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 81, 9, n)
}

/// Options of one lab's `ternd`.
#[derive(Clone, Default)]
struct LabOptions {
    /// Number of attacker peers (10.81.1.1 ..= 10.81.1.N).
    attackers: u8,
    /// Per-attacker extra JSON fields (`"ttl_security": 1`, ...), by attacker number.
    extra: Vec<(u8, String)>,
    /// `--no-fib`.
    no_fib: bool,
}

fn peer_json(name: &str, addr: Ipv4Addr, asn: u32, extra: &str) -> String {
    format!(
        r#"{{ "name": "{name}", "kind": "global", "address": "{addr}", "port": 179,
             "remote_as": {asn}, "passive": true, "families": ["ipv4", "ipv6"],
             "graceful_restart": false, "add_paths": "off", "error_wait_time": [1, 2],
             "import": "all", "export": "all"{extra} }}"#
    )
}

fn config_json(opts: &LabOptions) -> String {
    let mut peers = vec![peer_json("healthy", HEALTHY, HEALTHY_AS, "")];
    for n in 1..=opts.attackers {
        let extra: String = opts
            .extra
            .iter()
            .filter(|(i, _)| *i == n)
            .map(|(_, e)| format!(", {e}"))
            .collect();
        peers.push(peer_json(
            &format!("attacker{n:03}"),
            attacker(n),
            ATTACKER_AS,
            &extra,
        ));
    }
    format!(
        r#"{{
  "router_id": "{TERN}", "asn": {TERN_AS}, "node_ipv4": "{TERN}/16",
  "listen": {{ "address": "{TERN}", "port": 179 }},
  "peers": [{peers}],
  "policies": {{}},
  "blackholes": ["{TERN_BLOCK}"],
  "kernel": {{ "export": "all", "learn": false, "persist": false, "scan_time": 10,
               "graceful_restart": false, "merge_paths": true, "route_protocol": 12,
               "normal_route_priority": {{ "ipv4": 1024, "ipv6": 1024 }} }}
}}"#,
        peers = peers.join(",\n")
    )
}

/// The `ternd` binary: `TERND` if set, else the one cargo built next to this test (built
/// on demand when missing).
fn ternd_binary(test: &str) -> Option<PathBuf> {
    tern_tests::workspace_binary(test, "tern", "ternd", "TERND")
}

// ===== the lab =====

struct Lab {
    d: Netns,
    x: Netns,
    dir: TempDir,
    daemon: Daemon,
    log: PathBuf,
    _monitor: Daemon,
    monitor_log: PathBuf,
    healthy: Option<Healthy>,
    /// ternd runs without a FIB: no kernel routes to check.
    no_fib: bool,
}

impl Lab {
    /// Namespaces, addresses, `ternd` started, healthy peer established and its routes in
    /// D's kernel. `None` when the test must skip.
    fn new(test: &str, opts: LabOptions) -> Option<Lab> {
        if !require_root(test) {
            return None;
        }
        let ternd = ternd_binary(test)?;
        let d = Netns::new("hd");
        let x = Netns::new("hx");
        let (_, vx) = veth(
            &d,
            &[&format!("{TERN}/16")],
            &x,
            &[&format!("{HEALTHY}/16")],
        );
        let mut batch = String::new();
        for n in 1..=opts.attackers.max(1) {
            batch.push_str(&format!("addr add {}/16 dev {vx}\n", attacker(n)));
        }
        for n in 1..=20 {
            batch.push_str(&format!("addr add {}/16 dev {vx}\n", stranger(n)));
        }
        let dir = TempDir::new("hostile");
        let batch_file = dir.write("addrs.batch", &batch);
        x.exec("ip", ["-batch", batch_file.to_str().unwrap()]);
        let config = dir.write("ternd.json", &config_json(&opts));
        let log = dir.path().join("ternd.log");
        let mut cmd = d.command(&ternd);
        cmd.arg("--config").arg(&config);
        cmd.args(["--poll-interval", "200", "--log-level", "debug"]);
        // Each daemon its own control socket (the default path is shared by every namespace).
        cmd.arg("--control-socket").arg(dir.path().join("bird.ctl"));
        if opts.no_fib {
            cmd.arg("--no-fib");
        }
        cmd.stdin(Stdio::null())
            .stdout(File::create(dir.path().join("ternd.out")).unwrap())
            .stderr(File::create(&log).unwrap());
        let daemon = Daemon::spawn(cmd);
        let monitor_log = dir.path().join("monitor.log");
        let mut mon = d.command("ip");
        mon.args(["monitor", "route"])
            .stdin(Stdio::null())
            .stdout(File::create(&monitor_log).unwrap())
            .stderr(Stdio::null());
        let monitor = Daemon::spawn(mon);
        let mut lab = Lab {
            d,
            x,
            dir,
            daemon,
            log,
            _monitor: monitor,
            monitor_log,
            healthy: None,
            no_fib: opts.no_fib,
        };
        let healthy = Healthy::start(&lab);
        lab.healthy = Some(healthy);
        if !opts.no_fib {
            for p in HEALTHY_ROUTES {
                lab.wait_route(p, Some(HEALTHY), Duration::from_secs(20));
            }
            let h = lab.healthy.as_ref().unwrap();
            wait_for(
                "Tern's block at the healthy peer",
                Duration::from_secs(20),
                || h.has_route(TERN_BLOCK).then_some(()),
            );
        }
        Some(lab)
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// `ip route show PREFIX` in D.
    fn route(&self, prefix: &str) -> String {
        self.d.ip(["route", "show", prefix])
    }

    /// Waits until D's kernel has `prefix` (`via` the given next hop, `proto bird`).
    fn wait_route(&self, prefix: &str, via: Option<Ipv4Addr>, timeout: Duration) {
        let what = format!("{prefix} via {via:?} in D's kernel");
        let start = Instant::now();
        loop {
            let r = self.route(prefix);
            let ok =
                r.contains("proto bird") && via.is_none_or(|v| r.contains(&format!("via {v}")));
            if ok {
                return;
            }
            if start.elapsed() > timeout {
                panic!(
                    "timed out waiting for {what}; ternd log:\n{}",
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn wait_no_route(&self, prefix: &str, timeout: Duration) {
        let start = Instant::now();
        while !self.route(prefix).trim().is_empty() {
            if start.elapsed() > timeout {
                panic!(
                    "{prefix} still in D's kernel after {timeout:?}; ternd log:\n{}",
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Number of `proto bird` routes in D's main table.
    fn bird_routes(&self) -> usize {
        self.d
            .ip(["route", "show", "proto", "bird"])
            .lines()
            .count()
    }

    /// The invariant after every attack: ternd alive, the healthy session untouched, its
    /// routes in the kernel and never deleted since the lab started.
    fn assert_healthy(&mut self, after: &str) {
        assert!(
            self.daemon.is_running(),
            "ternd died after {after}; log:\n{}",
            self.log_tail()
        );
        let h = self.healthy.as_ref().unwrap();
        if let Some(why) = h.broken() {
            panic!(
                "healthy session broken after {after}: {why}; ternd log:\n{}",
                self.log_tail()
            );
        }
        for p in HEALTHY_ROUTES.iter().filter(|_| !self.no_fib) {
            // One `ip` run can come back empty on a loaded machine (its errors are not
            // captured): look again for up to 2 s. A real deletion is caught below, from the
            // route monitor, however briefly the route was gone.
            let start = Instant::now();
            let mut r = self.route(p);
            while !(r.contains(&format!("via {HEALTHY}")) && r.contains("proto bird"))
                && start.elapsed() < Duration::from_secs(2)
            {
                std::thread::sleep(Duration::from_millis(100));
                r = self.route(p);
            }
            assert!(
                r.contains(&format!("via {HEALTHY}")) && r.contains("proto bird"),
                "healthy route {p} missing after {after}: {r:?}"
            );
        }
        let mon = std::fs::read_to_string(&self.monitor_log).unwrap_or_default();
        for line in mon.lines() {
            assert!(
                !(line.starts_with("Deleted") && HEALTHY_ROUTES.iter().any(|p| line.contains(p))),
                "a healthy route was deleted from the kernel (after {after}): {line}\n\
                 healthy session: {:?}\nip monitor route:\n{}\nternd log:\n{}",
                {
                    std::thread::sleep(Duration::from_secs(1));
                    h.broken()
                },
                mon.lines().rev().take(30).collect::<Vec<_>>().join("\n"),
                self.log_tail()
            );
        }
    }

    /// A TCP connection from `src` (in X) to ternd, or the connect error.
    fn connect(&self, src: Ipv4Addr, ttl: Option<u8>) -> std::io::Result<TcpStream> {
        connect_from(&self.x, src, TERN, ttl, Duration::from_secs(3))
    }

    /// An attacker connection from `src` with ternd's OPEN already read.
    fn attacker(&self, src: Ipv4Addr) -> Raw {
        let s = self
            .connect(src, None)
            .unwrap_or_else(|e| panic!("connect from {src}: {e}"));
        let mut raw = Raw::new(s);
        let first = raw.read_msg(Duration::from_secs(5)).unwrap_or_else(|e| {
            panic!(
                "no OPEN from ternd for {src}: {e}; log:\n{}",
                self.log_tail()
            )
        });
        assert_eq!(
            first[18], 1,
            "ternd's first message to {src} is not an OPEN: {first:?}"
        );
        raw
    }

    /// An attacker session from `src` brought to Established.
    fn established(&self, src: Ipv4Addr) -> Raw {
        let mut raw = self.attacker(src);
        raw.send(&open(4, ATTACKER_AS, 90, src, &caps(ATTACKER_AS, true)));
        raw.send(&keepalive());
        raw.wait_keepalive(Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("{src} not established: {e}; log:\n{}", self.log_tail()));
        raw
    }
}

/// Opens a TCP connection from `src` in `ns` to `dst`:179 with an optional IP TTL, failing
/// after `timeout` (a dropped SYN is an error, not a two-minute hang).
fn connect_from(
    ns: &Netns,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    ttl: Option<u8>,
    timeout: Duration,
) -> std::io::Result<TcpStream> {
    connect_with(ns, src, dst, ttl, None, timeout)
}

/// [`connect_from`] with an optional receive buffer size (set before the handshake, so the
/// advertised window stays small).
fn connect_with(
    ns: &Netns,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    ttl: Option<u8>,
    rcvbuf: Option<usize>,
    timeout: Duration,
) -> std::io::Result<TcpStream> {
    ns.run_in(move || {
        let fd: OwnedFd = socket::socket(
            AddressFamily::Inet,
            SockType::Stream,
            SockFlag::SOCK_CLOEXEC,
            None,
        )?;
        socket::bind(
            std::os::fd::AsRawFd::as_raw_fd(&fd),
            &SockaddrIn::from(SocketAddrV4::new(src, 0)),
        )?;
        if let Some(ttl) = ttl {
            socket::setsockopt(&fd, sockopt::Ipv4Ttl, &i32::from(ttl))?;
        }
        if let Some(size) = rcvbuf {
            socket::setsockopt(&fd, sockopt::RcvBuf, &size)?;
        }
        // Linux bounds a blocking connect() by the send timeout.
        let tv = TimeVal::new(timeout.as_secs() as i64, 0);
        socket::setsockopt(&fd, sockopt::SendTimeout, &tv)?;
        socket::connect(
            std::os::fd::AsRawFd::as_raw_fd(&fd),
            &SockaddrIn::from(SocketAddrV4::new(dst, 179)),
        )?;
        let s = TcpStream::from(fd);
        s.set_write_timeout(Some(Duration::from_secs(10)))?;
        s.set_nodelay(true)?;
        Ok(s)
    })
}

// ===== messages, by hand (so they can be wrong) =====

fn header(kind: u8, body_len: usize) -> Vec<u8> {
    let mut m = vec![0xff; 16];
    m.extend_from_slice(&((19 + body_len) as u16).to_be_bytes());
    m.push(kind);
    m
}

fn message(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut m = header(kind, body.len());
    m.extend_from_slice(body);
    m
}

fn keepalive() -> Vec<u8> {
    header(4, 0)
}

/// Capabilities optional parameter: IPv4 and IPv6 unicast, route refresh, and the 4-octet
/// AS capability when `as4`.
fn caps(asn: u32, as4: bool) -> Vec<u8> {
    let mut c = vec![1, 4, 0, 1, 0, 1, 1, 4, 0, 2, 0, 1, 2, 0];
    if as4 {
        c.extend_from_slice(&[65, 4]);
        c.extend_from_slice(&asn.to_be_bytes());
    }
    let mut p = vec![2, c.len() as u8];
    p.extend(c);
    p
}

/// OPEN (RFC 4271 §4.2) with the given fields and optional parameters.
fn open(version: u8, asn: u32, hold: u16, id: Ipv4Addr, params: &[u8]) -> Vec<u8> {
    let mut b = vec![version];
    b.extend_from_slice(&u16::try_from(asn).unwrap_or(23456).to_be_bytes());
    b.extend_from_slice(&hold.to_be_bytes());
    b.extend_from_slice(&id.octets());
    b.push(params.len() as u8);
    b.extend_from_slice(params);
    message(1, &b)
}

/// UPDATE (RFC 4271 §4.3) from raw fields; lengths computed unless overridden.
fn update(withdrawn: &[u8], attrs: &[u8], nlri: &[u8]) -> Vec<u8> {
    let mut b = (withdrawn.len() as u16).to_be_bytes().to_vec();
    b.extend_from_slice(withdrawn);
    b.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
    b.extend_from_slice(attrs);
    b.extend_from_slice(nlri);
    message(2, &b)
}

/// One attribute with a one-octet length.
fn attr(flags: u8, kind: u8, value: &[u8]) -> Vec<u8> {
    let mut a = vec![flags, kind, value.len() as u8];
    a.extend_from_slice(value);
    a
}

/// One attribute with the Extended Length bit.
fn attr_ext(flags: u8, kind: u8, value: &[u8]) -> Vec<u8> {
    let mut a = vec![flags | 0x10, kind];
    a.extend_from_slice(&(value.len() as u16).to_be_bytes());
    a.extend_from_slice(value);
    a
}

fn origin(v: u8) -> Vec<u8> {
    attr(0x40, 1, &[v])
}

/// AS_PATH of one AS_SEQUENCE with 4-octet ASes.
fn as_path(asns: &[u32]) -> Vec<u8> {
    let mut v = vec![2, asns.len() as u8];
    for a in asns {
        v.extend_from_slice(&a.to_be_bytes());
    }
    attr(0x40, 2, &v)
}

fn next_hop(ip: Ipv4Addr) -> Vec<u8> {
    attr(0x40, 3, &ip.octets())
}

/// The attributes of a valid eBGP route from `src`.
fn valid_attrs(src: Ipv4Addr) -> Vec<u8> {
    [origin(0), as_path(&[ATTACKER_AS]), next_hop(src)].concat()
}

/// NLRI encoding of an IPv4 prefix (RFC 4271 §4.3).
fn nlri(prefix: &str) -> Vec<u8> {
    let (addr, len) = prefix.split_once('/').unwrap();
    let addr: Ipv4Addr = addr.parse().unwrap();
    let len: u8 = len.parse().unwrap();
    let mut v = vec![len];
    v.extend_from_slice(&addr.octets()[..usize::from(len.div_ceil(8))]);
    v
}

// ===== a raw BGP connection =====

struct Raw {
    s: TcpStream,
    buf: Vec<u8>,
}

impl Raw {
    fn new(s: TcpStream) -> Raw {
        Raw { s, buf: Vec::new() }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.s.write_all(bytes).unwrap();
    }

    fn try_send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.s.write_all(bytes)
    }

    /// Reads one whole message (header included) within `timeout`.
    fn read_msg(&mut self, timeout: Duration) -> Result<Vec<u8>, String> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.buf.len() >= 19 {
                let len = usize::from(u16::from_be_bytes([self.buf[16], self.buf[17]]));
                if len < 19 {
                    return Err(format!("ternd sent a message of length {len}"));
                }
                if self.buf.len() >= len {
                    return Ok(self.buf.drain(..len).collect());
                }
            }
            let now = Instant::now();
            if now >= deadline {
                return Err("timeout".into());
            }
            self.s
                .set_read_timeout(Some((deadline - now).max(Duration::from_millis(1))))
                .unwrap();
            let mut chunk = [0u8; 65536];
            match self.s.read(&mut chunk) {
                Ok(0) => return Err("connection closed".into()),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return Err("timeout".into());
                }
                Err(e) => return Err(format!("read: {e}")),
            }
        }
    }

    /// Reads until a NOTIFICATION and returns (code, subcode, data); anything else ternd
    /// sends first (OPEN, KEEPALIVE, UPDATE) is skipped.
    fn notification(&mut self, timeout: Duration) -> Result<(u8, u8, Vec<u8>), String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let m = self.read_msg(left)?;
            if m[18] == 3 && m.len() >= 21 {
                return Ok((m[19], m[20], m[21..].to_vec()));
            }
        }
    }

    /// Reads until a KEEPALIVE.
    fn wait_keepalive(&mut self, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let m = self.read_msg(left)?;
            match m[18] {
                4 => return Ok(()),
                3 => return Err(format!("NOTIFICATION {}/{}", m[19], m[20])),
                _ => {}
            }
        }
    }

    /// For `d`: keeps the session alive and fails on a NOTIFICATION or a close.
    fn stays_up(&mut self, d: Duration) -> Result<(), String> {
        let end = Instant::now() + d;
        while Instant::now() < end {
            self.try_send(&keepalive())
                .map_err(|e| format!("write: {e}"))?;
            match self.read_msg(Duration::from_millis(200)) {
                Ok(m) if m[18] == 3 => {
                    return Err(format!("NOTIFICATION {}/{} {:?}", m[19], m[20], &m[21..]));
                }
                Ok(_) => {}
                Err(e) if e == "timeout" => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

// ===== the healthy peer =====

#[derive(Default)]
struct HealthState {
    broken: Option<String>,
    routes: BTreeSet<String>,
    updates: u64,
}

/// A well-behaved eBGP peer on its own thread: keepalive every second, two routes
/// announced, every UPDATE from ternd decoded and applied to `routes`.
struct Healthy {
    state: Arc<Mutex<HealthState>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Healthy {
    fn start(lab: &Lab) -> Healthy {
        let start = Instant::now();
        let s = loop {
            match lab.connect(HEALTHY, None) {
                Ok(s) => break s,
                Err(e) if start.elapsed() > Duration::from_secs(10) => {
                    panic!("healthy peer cannot connect: {e}; log:\n{}", lab.log_tail())
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        };
        let mut raw = Raw::new(s);
        raw.read_msg(Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("healthy: no OPEN: {e}; log:\n{}", lab.log_tail()));
        raw.send(&open(4, HEALTHY_AS, 9, HEALTHY, &caps(HEALTHY_AS, true)));
        raw.send(&keepalive());
        raw.wait_keepalive(Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("healthy not established: {e}; log:\n{}", lab.log_tail()));
        let attrs = [origin(0), as_path(&[HEALTHY_AS]), next_hop(HEALTHY)].concat();
        let nl: Vec<u8> = HEALTHY_ROUTES.iter().flat_map(|p| nlri(p)).collect();
        raw.send(&update(&[], &attrs, &nl));
        let state = Arc::new(Mutex::new(HealthState::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (st, sp) = (state.clone(), stop.clone());
        let thread = std::thread::spawn(move || healthy_loop(raw, st, sp));
        Healthy {
            state,
            stop,
            thread: Some(thread),
        }
    }

    fn broken(&self) -> Option<String> {
        self.state.lock().unwrap().broken.clone()
    }

    fn has_route(&self, p: &str) -> bool {
        self.state.lock().unwrap().routes.contains(p)
    }

    fn route_count(&self) -> usize {
        self.state.lock().unwrap().routes.len()
    }
}

impl Drop for Healthy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn healthy_loop(mut raw: Raw, state: Arc<Mutex<HealthState>>, stop: Arc<AtomicBool>) {
    let ctx = DecodeContext::default();
    let mut last_ka = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        if last_ka.elapsed() >= Duration::from_secs(1) {
            if let Err(e) = raw.try_send(&keepalive()) {
                state.lock().unwrap().broken = Some(format!("keepalive write: {e}"));
                return;
            }
            last_ka = Instant::now();
        }
        match raw.read_msg(Duration::from_millis(200)) {
            Ok(m) => match m[18] {
                3 => {
                    state.lock().unwrap().broken =
                        Some(format!("NOTIFICATION {}/{} {:?}", m[19], m[20], &m[21..]));
                    return;
                }
                2 => {
                    let mut st = state.lock().unwrap();
                    st.updates += 1;
                    match Message::decode(Bytes::from(m), &ctx) {
                        Ok(d) => {
                            if let Message::Update(u) = d.message {
                                for w in u.withdrawals() {
                                    st.routes.remove(&w.prefix.to_string());
                                }
                                for a in u.announced() {
                                    st.routes.insert(a.prefix.to_string());
                                }
                            }
                        }
                        Err(e) => {
                            st.broken = Some(format!("ternd sent an undecodable UPDATE: {e}"));
                            return;
                        }
                    }
                }
                _ => {}
            },
            Err(e) if e == "timeout" => {}
            Err(e) => {
                state.lock().unwrap().broken = Some(e);
                return;
            }
        }
    }
}

// ===== expectations =====

/// Sends `msg` on a fresh attacker connection in the given phase and asserts ternd's
/// NOTIFICATION, then that everything else is untouched.
fn expect_notification(lab: &mut Lab, raw: &mut Raw, what: &str, msg: &[u8], code: (u8, u8)) {
    let _ = raw.try_send(msg);
    let got = raw
        .notification(Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("{what}: no NOTIFICATION ({e}); log:\n{}", lab.log_tail()));
    assert_eq!(
        (got.0, got.1),
        code,
        "{what}: NOTIFICATION {}/{} data {:?}, expected {}/{}",
        got.0,
        got.1,
        got.2,
        code.0,
        code.1
    );
    // The connection is closed after the NOTIFICATION.
    let after = raw.read_msg(Duration::from_secs(5));
    assert!(
        matches!(&after, Err(e) if e != "timeout"),
        "{what}: connection still open after the NOTIFICATION: {after:?}"
    );
    lab.assert_healthy(what);
}

/// RFC 7606 treat-as-withdraw: a valid route `p` is installed, the malformed UPDATE for `p`
/// withdraws it, the session stays up and still works (`q` is installed afterwards).
fn expect_treat_as_withdraw(lab: &mut Lab, n: u8, what: &str, malformed: &[u8], p: &str, q: &str) {
    let src = attacker(n);
    let mut raw = lab.established(src);
    raw.send(&update(&[], &valid_attrs(src), &nlri(p)));
    lab.wait_route(p, Some(src), Duration::from_secs(10));
    raw.send(malformed);
    lab.wait_no_route(p, Duration::from_secs(10));
    raw.stays_up(Duration::from_millis(600))
        .unwrap_or_else(|e| panic!("{what}: session not kept: {e}; log:\n{}", lab.log_tail()));
    raw.send(&update(&[], &valid_attrs(src), &nlri(q)));
    lab.wait_route(q, Some(src), Duration::from_secs(10));
    raw.stays_up(Duration::from_millis(300))
        .unwrap_or_else(|e| panic!("{what}: session not kept: {e}"));
    lab.assert_healthy(what);
}

/// RFC 7606 attribute discard (or an ignored attribute): the route is installed and the
/// session stays up.
fn expect_installed(lab: &mut Lab, n: u8, what: &str, msg: &[u8], p: &str) {
    let src = attacker(n);
    let mut raw = lab.established(src);
    raw.send(msg);
    lab.wait_route(p, Some(src), Duration::from_secs(10));
    raw.stays_up(Duration::from_millis(600))
        .unwrap_or_else(|e| panic!("{what}: session not kept: {e}; log:\n{}", lab.log_tail()));
    lab.assert_healthy(what);
}

// ===== tests =====

/// A session-reset case: attacker number, description, message, expected NOTIFICATION.
type Reset<'a> = (u8, &'a str, Vec<u8>, (u8, u8));

/// Message header errors (RFC 4271 §6.1) and OPEN errors (§6.2), each on a fresh connection
/// right after ternd's OPEN; UPDATE before OPEN and in OpenConfirm, OPEN in Established
/// (RFC 6608 FSM errors).
#[test]
fn header_open_and_fsm_errors_get_the_rfc_notification() {
    let Some(mut lab) = Lab::new(
        "header_open_and_fsm_errors_get_the_rfc_notification",
        LabOptions {
            attackers: 20,
            ..LabOptions::default()
        },
    ) else {
        return;
    };
    let good_caps = caps(ATTACKER_AS, true);
    let mut bad_marker = keepalive();
    bad_marker[3] = 0;
    let mut short = keepalive();
    short[16..18].copy_from_slice(&18u16.to_be_bytes());
    let mut long = message(2, &[0; 4078]);
    long[16..18].copy_from_slice(&4097u16.to_be_bytes());
    let keepalive_20 = message(4, &[0]);
    let open_short = message(1, &[4, 0xfd, 0xe9]);
    let mut unsupported_param = vec![1, 2, 0, 0];
    unsupported_param.extend_from_slice(&good_caps);
    let cases: Vec<(&str, Vec<u8>, (u8, u8))> = vec![
        ("marker not all ones", bad_marker, (1, 1)),
        ("length 18", short, (1, 2)),
        ("length 4097", long, (1, 2)),
        ("unknown message type 42", message(42, &[]), (1, 3)),
        ("KEEPALIVE of 20 octets", keepalive_20, (1, 2)),
        ("OPEN shorter than 29 octets", open_short, (1, 2)),
        (
            "OPEN version 3",
            open(3, ATTACKER_AS, 90, attacker(7), &good_caps),
            (2, 1),
        ),
        (
            "OPEN bad peer AS",
            open(4, 65099, 90, attacker(8), &caps(65099, true)),
            (2, 2),
        ),
        (
            "OPEN BGP identifier 0.0.0.0",
            open(4, ATTACKER_AS, 90, Ipv4Addr::UNSPECIFIED, &good_caps),
            (2, 3),
        ),
        (
            "OPEN BGP identifier equal to ternd's",
            open(4, ATTACKER_AS, 90, TERN, &good_caps),
            (2, 3),
        ),
        (
            "OPEN hold time 1",
            open(4, ATTACKER_AS, 1, attacker(11), &good_caps),
            (2, 6),
        ),
        (
            "OPEN hold time 2",
            open(4, ATTACKER_AS, 2, attacker(12), &good_caps),
            (2, 6),
        ),
        (
            "OPEN unsupported optional parameter (type 1)",
            open(4, ATTACKER_AS, 90, attacker(13), &unsupported_param),
            (2, 4),
        ),
        (
            "UPDATE before OPEN",
            update(&[], &valid_attrs(attacker(14)), &nlri("10.96.14.0/24")),
            (5, 1),
        ),
    ];
    for (i, (what, msg, code)) in cases.into_iter().enumerate() {
        let n = u8::try_from(i + 1).unwrap();
        let mut raw = lab.attacker(attacker(n));
        expect_notification(&mut lab, &mut raw, what, &msg, code);
    }
    // UPDATE in OpenConfirm (our OPEN sent, no KEEPALIVE yet): 5/2.
    let src = attacker(18);
    let mut raw = lab.attacker(src);
    raw.send(&open(4, ATTACKER_AS, 90, src, &good_caps));
    raw.wait_keepalive(Duration::from_secs(5)).unwrap();
    let upd = update(&[], &valid_attrs(src), &nlri("10.96.18.0/24"));
    expect_notification(&mut lab, &mut raw, "UPDATE in OpenConfirm", &upd, (5, 2));
    // OPEN in Established: 5/3.
    let src = attacker(19);
    let mut raw = lab.established(src);
    let again = open(4, ATTACKER_AS, 90, src, &good_caps);
    expect_notification(&mut lab, &mut raw, "OPEN in Established", &again, (5, 3));
    // OpenConfirm and never a KEEPALIVE, hold time 3: Hold Timer Expired (4/0).
    let src = attacker(20);
    let mut raw = lab.attacker(src);
    raw.send(&open(4, ATTACKER_AS, 3, src, &good_caps));
    let got = raw.notification(Duration::from_secs(10)).unwrap();
    assert_eq!((got.0, got.1), (4, 0), "silent in OpenConfirm: {got:?}");
    lab.assert_healthy("silence in OpenConfirm");
}

/// RFC 7606: every attribute error whose answer is treat-as-withdraw (§7 per attribute, §3
/// flags and missing mandatory attributes, §4 attribute length overruns), attribute discard,
/// and the errors that still reset the session (NLRI, withdrawn and attribute list lengths,
/// MP_REACH_NLRI, unrecognised well-known attributes).
#[test]
fn update_errors_follow_rfc_7606() {
    let Some(mut lab) = Lab::new(
        "update_errors_follow_rfc_7606",
        LabOptions {
            attackers: 40,
            ..LabOptions::default()
        },
    ) else {
        return;
    };
    let base = |n: u8| valid_attrs(attacker(n));
    let o = origin(0);
    let ap = as_path(&[ATTACKER_AS]);
    let nh = |n: u8| next_hop(attacker(n));
    // Treat-as-withdraw: (attacker, description, attributes of the malformed UPDATE).
    let tw: Vec<(u8, &str, Vec<u8>)> = vec![
        (
            1,
            "ORIGIN value 3 (§7.1)",
            [origin(3), ap.clone(), nh(1)].concat(),
        ),
        (
            2,
            "ORIGIN length 2 (§7.1)",
            [attr(0x40, 1, &[0, 0]), ap.clone(), nh(2)].concat(),
        ),
        (
            3,
            "AS_PATH segment overrun (§7.2)",
            [o.clone(), attr(0x40, 2, &[2, 5, 0, 0, 0xfd, 0xe9]), nh(3)].concat(),
        ),
        (
            4,
            "AS_PATH segment of length 0 (§7.2)",
            [o.clone(), attr(0x40, 2, &[2, 0]), nh(4)].concat(),
        ),
        (
            5,
            "AS_PATH unknown segment type 7 (§7.2)",
            [o.clone(), attr(0x40, 2, &[7, 1, 0, 0, 0xfd, 0xe9]), nh(5)].concat(),
        ),
        (
            6,
            "AS_PATH with one octet left over (§7.2)",
            [
                o.clone(),
                attr(0x40, 2, &[2, 1, 0, 0, 0xfd, 0xe9, 2]),
                nh(6),
            ]
            .concat(),
        ),
        (
            7,
            "eBGP AS_PATH whose first AS is not the peer's (§7.2)",
            [o.clone(), as_path(&[65099]), nh(7)].concat(),
        ),
        (
            8,
            "NEXT_HOP length 5 (§7.3)",
            [o.clone(), ap.clone(), attr(0x40, 3, &[10, 81, 1, 8, 0])].concat(),
        ),
        (
            9,
            "MULTI_EXIT_DISC length 3 (§7.4)",
            [base(9), attr(0x80, 4, &[0, 0, 1])].concat(),
        ),
        (
            10,
            "COMMUNITIES length 3 (§7.8)",
            [base(10), attr(0xc0, 8, &[0, 1, 2])].concat(),
        ),
        (
            11,
            "COMMUNITIES length 0 (§7.8)",
            [base(11), attr(0xc0, 8, &[])].concat(),
        ),
        (
            12,
            "ORIGINATOR_ID length 3 (§7.9)",
            [base(12), attr(0x80, 9, &[1, 2, 3])].concat(),
        ),
        (
            13,
            "CLUSTER_LIST length 5 (§7.10)",
            [base(13), attr(0x80, 10, &[1, 2, 3, 4, 5])].concat(),
        ),
        (
            14,
            "EXTENDED_COMMUNITIES length 7 (§7.14)",
            [base(14), attr(0xc0, 16, &[0, 2, 0, 1, 0, 0, 0])].concat(),
        ),
        (
            15,
            "LARGE_COMMUNITY length 11 (RFC 8092 §6)",
            [base(15), attr(0xc0, 32, &[0; 11])].concat(),
        ),
        (
            16,
            "NEXT_HOP missing (§3.d)",
            [o.clone(), ap.clone()].concat(),
        ),
        (17, "ORIGIN missing (§3.d)", [ap.clone(), nh(17)].concat()),
        (
            18,
            "ORIGIN with the Optional flag (§3.c)",
            [attr(0xc0, 1, &[0]), ap.clone(), nh(18)].concat(),
        ),
        (
            19,
            "last attribute longer than the attribute field (§4)",
            [base(19), vec![0xc0, 8, 8, 0, 1]].concat(),
        ),
        (
            20,
            "two octets left after the last attribute (§4)",
            [base(20), vec![0xc0, 8]].concat(),
        ),
        (
            21,
            "AS_PATH in an Extended Length overrun (§7.2)",
            [
                o.clone(),
                attr_ext(0x40, 2, &[2, 2, 0, 0, 0xfd, 0xe9]),
                nh(21),
            ]
            .concat(),
        ),
    ];
    for (n, what, attrs) in tw {
        let p = format!("10.96.{n}.0/24");
        let q = format!("10.97.{n}.0/24");
        let msg = update(&[], &attrs, &nlri(&p));
        expect_treat_as_withdraw(&mut lab, n, what, &msg, &p, &q);
    }
    // Attribute discard / ignored: the route is installed.
    let ad: Vec<(u8, &str, Vec<u8>)> = vec![
        (
            22,
            "ATOMIC_AGGREGATE length 1 (§7.6)",
            [base(22), attr(0x40, 6, &[0])].concat(),
        ),
        (
            23,
            "AGGREGATOR length 5 (§7.7)",
            [base(23), attr(0xc0, 7, &[0; 5])].concat(),
        ),
        (
            24,
            "AS4_AGGREGATOR length 7 (RFC 6793)",
            [base(24), attr(0xc0, 18, &[0; 7])].concat(),
        ),
        (
            25,
            "LOCAL_PREF from an external peer (§7.5)",
            [base(25), attr(0x40, 5, &[0, 0, 0, 200])].concat(),
        ),
        (
            26,
            "MULTI_EXIT_DISC twice (§3.g, first kept)",
            [
                base(26),
                attr(0x80, 4, &[0, 0, 0, 1]),
                attr(0x80, 4, &[0, 0, 0, 2]),
            ]
            .concat(),
        ),
        (
            27,
            "unknown optional non-transitive attribute",
            [base(27), attr(0x80, 201, &[1, 2, 3])].concat(),
        ),
        (
            28,
            "unknown optional transitive attribute",
            [base(28), attr(0xc0, 202, &[1, 2, 3])].concat(),
        ),
    ];
    for (n, what, attrs) in ad {
        let p = format!("10.98.{n}.0/24");
        let msg = update(&[], &attrs, &nlri(&p));
        expect_installed(&mut lab, n, what, &msg, &p);
    }
    // Session reset: (attacker, what, message, NOTIFICATION).
    let mp_reach_bad_nh = attr(
        0x80,
        14,
        &[
            0, 2, 1, 3, 1, 2, 3, 0, 64, 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0,
        ],
    );
    let mut mp_reach_v6_129 = vec![0, 2, 1, 16];
    mp_reach_v6_129
        .extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    mp_reach_v6_129.push(0);
    mp_reach_v6_129.push(129);
    mp_reach_v6_129.extend_from_slice(&[0xff; 17]);
    let mp_ok = {
        let mut v = vec![0, 2, 1, 16];
        v.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        v.push(0);
        v.extend_from_slice(&[32, 0x20, 0x01, 0x0d, 0xb8]);
        attr(0x80, 14, &v)
    };
    let mut withdrawn_overrun = update(&[], &base(29), &nlri("10.96.29.0/24"));
    withdrawn_overrun[19..21].copy_from_slice(&200u16.to_be_bytes());
    let mut attrs_overrun = update(&[], &base(30), &nlri("10.96.30.0/24"));
    attrs_overrun[21..23].copy_from_slice(&300u16.to_be_bytes());
    let resets: Vec<Reset> = vec![
        (
            29,
            "Withdrawn Routes Length beyond the message",
            withdrawn_overrun,
            (3, 1),
        ),
        (
            30,
            "Total Path Attribute Length beyond the message",
            attrs_overrun,
            (3, 1),
        ),
        (
            31,
            "NLRI prefix length 33",
            update(&[], &base(31), &[33, 10, 96, 31, 0, 0]),
            (3, 10),
        ),
        (
            32,
            "NLRI overrun (/24 with one octet)",
            update(&[], &base(32), &[24, 10]),
            (3, 10),
        ),
        (
            33,
            "withdrawn prefix length 40",
            update(&[40, 10, 0, 0, 0, 0], &[], &[]),
            (3, 10),
        ),
        (
            34,
            "MP_REACH_NLRI with a 3-octet IPv6 next hop (§7.11)",
            update(&[], &[o.clone(), ap.clone(), mp_reach_bad_nh].concat(), &[]),
            (3, 9),
        ),
        (
            35,
            "MP_REACH_NLRI with an IPv6 /129 (§7.11)",
            update(
                &[],
                &[o.clone(), ap.clone(), attr(0x80, 14, &mp_reach_v6_129)].concat(),
                &[],
            ),
            (3, 9),
        ),
        (
            36,
            "MP_REACH_NLRI twice (§3.g)",
            update(
                &[],
                &[o.clone(), ap.clone(), mp_ok.clone(), mp_ok.clone()].concat(),
                &[],
            ),
            (3, 1),
        ),
        (
            37,
            "unrecognised well-known attribute (RFC 4271 §6.3)",
            update(
                &[],
                &[base(37), attr(0x40, 99, &[1])].concat(),
                &nlri("10.96.37.0/24"),
            ),
            (3, 2),
        ),
        (38, "UPDATE of 22 octets", message(2, &[0, 0, 0]), (1, 2)),
    ];
    for (n, what, msg, code) in resets {
        let mut raw = lab.established(attacker(n));
        expect_notification(&mut lab, &mut raw, what, &msg, code);
    }
}

/// Big and odd but valid input: a 1,000-segment AS_PATH (a 2-octet session, so that it fits
/// 4,096 octets), 10,000 prefixes in back-to-back UPDATEs (installed, exported to the
/// healthy peer, withdrawn again), every message of a session split into one-byte TCP
/// segments, and a flood of 50,000 KEEPALIVEs.
#[test]
fn big_odd_and_flooding_peers_are_handled() {
    let Some(mut lab) = Lab::new(
        "big_odd_and_flooding_peers_are_handled",
        LabOptions {
            attackers: 4,
            ..LabOptions::default()
        },
    ) else {
        return;
    };
    // 1. 1,000 AS_SEQUENCE segments of one 2-octet AS each.
    let src = attacker(1);
    let mut raw = lab.attacker(src);
    raw.send(&open(4, ATTACKER_AS, 90, src, &caps(ATTACKER_AS, false)));
    raw.send(&keepalive());
    raw.wait_keepalive(Duration::from_secs(5)).unwrap();
    let mut path = Vec::with_capacity(4000);
    path.extend_from_slice(&[2, 1]);
    path.extend_from_slice(&(ATTACKER_AS as u16).to_be_bytes());
    for i in 1..1000u16 {
        path.extend_from_slice(&[2, 1]);
        path.extend_from_slice(&(64000 + i % 500).to_be_bytes());
    }
    let attrs = [origin(0), attr_ext(0x40, 2, &path), next_hop(src)].concat();
    let msg = update(&[], &attrs, &nlri("10.96.1.0/24"));
    assert!(msg.len() <= 4096, "{} octets", msg.len());
    raw.send(&msg);
    lab.wait_route("10.96.1.0/24", Some(src), Duration::from_secs(10));
    raw.stays_up(Duration::from_secs(1))
        .unwrap_or_else(|e| panic!("1,000-segment AS_PATH: {e}; log:\n{}", lab.log_tail()));
    lab.assert_healthy("a 1,000-segment AS_PATH");

    // 2. 10,000 prefixes (10.100.0.0/24 .. 10.139.15.0/24) in UPDATEs of 1,000.
    let src = attacker(2);
    let mut raw = lab.established(src);
    let prefixes: Vec<String> = (0..10_000u32)
        .map(|i| format!("10.{}.{}.0/24", 100 + i / 256, i % 256))
        .collect();
    let before = lab.bird_routes();
    for chunk in prefixes.chunks(1000) {
        let nl: Vec<u8> = chunk.iter().flat_map(|p| nlri(p)).collect();
        raw.send(&update(&[], &valid_attrs(src), &nl));
    }
    wait_for(
        "10,000 routes in D's kernel",
        Duration::from_secs(60),
        || (lab.bird_routes() >= before + 10_000).then_some(()),
    );
    let h = lab.healthy.as_ref().unwrap();
    wait_for(
        "10,000 routes at the healthy peer",
        Duration::from_secs(60),
        || (h.route_count() >= 10_000).then_some(()),
    );
    for chunk in prefixes.chunks(1000) {
        let wd: Vec<u8> = chunk.iter().flat_map(|p| nlri(p)).collect();
        raw.send(&update(&wd, &[], &[]));
    }
    wait_for(
        "10,000 routes withdrawn from D's kernel",
        Duration::from_secs(60),
        || (lab.bird_routes() <= before).then_some(()),
    );
    let h = lab.healthy.as_ref().unwrap();
    wait_for(
        "10,000 routes withdrawn at the healthy peer",
        Duration::from_secs(60),
        || (h.route_count() < 100).then_some(()),
    );
    raw.stays_up(Duration::from_millis(500)).unwrap();
    lab.assert_healthy("10,000 prefixes");

    // 3. A whole session one byte per TCP segment.
    let src = attacker(3);
    let mut raw = lab.attacker(src);
    let stream = [
        open(4, ATTACKER_AS, 90, src, &caps(ATTACKER_AS, true)),
        keepalive(),
        update(&[], &valid_attrs(src), &nlri("10.96.3.0/24")),
    ]
    .concat();
    for b in &stream {
        raw.send(std::slice::from_ref(b));
        std::thread::sleep(Duration::from_millis(2));
    }
    lab.wait_route("10.96.3.0/24", Some(src), Duration::from_secs(10));
    raw.stays_up(Duration::from_millis(500)).unwrap();
    lab.assert_healthy("messages split byte by byte");

    // 4. 50,000 KEEPALIVEs as fast as the socket takes them, then a route still gets in.
    let src = attacker(4);
    let mut raw = lab.established(src);
    let flood: Vec<u8> = (0..50_000).flat_map(|_| keepalive()).collect();
    raw.s.set_nonblocking(false).unwrap();
    let mut reader = raw.s.try_clone().unwrap();
    let drain = std::thread::spawn(move || {
        // Read what ternd sends meanwhile, so that neither side blocks the other.
        let mut got = Vec::new();
        reader
            .set_read_timeout(Some(Duration::from_secs(3)))
            .unwrap();
        let mut chunk = [0u8; 4096];
        while let Ok(n) = reader.read(&mut chunk) {
            if n == 0 {
                break;
            }
            got.extend_from_slice(&chunk[..n]);
        }
        got
    });
    raw.send(&flood);
    raw.send(&update(&[], &valid_attrs(src), &nlri("10.96.4.0/24")));
    lab.wait_route("10.96.4.0/24", Some(src), Duration::from_secs(20));
    let seen = drain.join().unwrap();
    assert!(
        !seen
            .windows(19)
            .any(|w| w[..16] == [0xff; 16] && w[18] == 3),
        "ternd sent a NOTIFICATION during the KEEPALIVE flood"
    );
    lab.assert_healthy("a KEEPALIVE flood");
}

/// Connections that never speak, strangers and TTL violations: 200 connections from 20
/// unconfigured addresses are closed without a byte of BGP; a configured peer that connects
/// and stays silent gets ternd's OPEN and holds nothing up; a GTSM peer (`ttl_security: 1`)
/// whose packets arrive with TTL 1 never gets a connection, while TTL 255 does.
#[test]
fn strangers_silence_and_gtsm_violations_get_nothing() {
    let Some(mut lab) = Lab::new(
        "strangers_silence_and_gtsm_violations_get_nothing",
        LabOptions {
            attackers: 3,
            extra: vec![(3, r#""ttl_security": 1"#.into())],
            ..LabOptions::default()
        },
    ) else {
        return;
    };
    // 200 connections from unconfigured addresses, all at once.
    let mut conns = Vec::new();
    for i in 0..200u32 {
        let src = stranger(u8::try_from(1 + i % 20).unwrap());
        match lab.connect(src, None) {
            Ok(s) => conns.push(s),
            // Refused at SYN time is also "no session".
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => {}
            Err(e) => panic!("connect from {src}: {e}"),
        }
    }
    for mut s in conns {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 64];
        match s.read(&mut buf) {
            Ok(0) => {}
            Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
            Ok(n) => panic!(
                "ternd sent {n} octets to an unconfigured address: {:?}",
                &buf[..n]
            ),
            Err(e) => panic!("an unconfigured connection was left open: {e}"),
        }
    }
    lab.assert_healthy("200 connections from unconfigured addresses");

    // 20 silent connections from a configured peer: ternd sends its OPEN and waits; the
    // healthy session and the daemon do not care.
    let mut silent = Vec::new();
    for _ in 0..20 {
        if let Ok(s) = lab.connect(attacker(1), None) {
            silent.push(Raw::new(s));
        }
    }
    assert!(!silent.is_empty());
    let first = silent[0].read_msg(Duration::from_secs(5)).unwrap();
    assert_eq!(first[18], 1, "ternd's first message is not an OPEN");
    std::thread::sleep(Duration::from_secs(2));
    lab.assert_healthy("silent connections");
    drop(silent);

    // Established and then silent with hold time 3: Hold Timer Expired.
    let src = attacker(2);
    let mut raw = lab.attacker(src);
    raw.send(&open(4, ATTACKER_AS, 3, src, &caps(ATTACKER_AS, true)));
    raw.send(&keepalive());
    raw.wait_keepalive(Duration::from_secs(5)).unwrap();
    let got = raw.notification(Duration::from_secs(10)).unwrap();
    assert_eq!((got.0, got.1), (4, 0), "silent in Established: {got:?}");
    lab.assert_healthy("a silent established peer");

    // GTSM: whatever arrives with TTL 1 is dropped (IP_MINTTL 255 on the accepted
    // connection; the listener is shared with peers without GTSM, so the handshake itself
    // may complete): our OPEN never reaches ternd and the session never gets a KEEPALIVE.
    let src = attacker(3);
    if let Ok(s) = lab.connect(src, Some(1)) {
        let mut raw = Raw::new(s);
        // Give ternd time to accept the connection and set its minimum TTL first (see the
        // race reported in the README).
        std::thread::sleep(Duration::from_millis(500));
        let _ = raw.try_send(&open(4, ATTACKER_AS, 90, src, &caps(ATTACKER_AS, true)));
        let _ = raw.try_send(&keepalive());
        let r = raw.wait_keepalive(Duration::from_secs(5));
        assert!(
            r.is_err(),
            "a TTL-1 peer of a GTSM session was answered with a KEEPALIVE"
        );
    }
    lab.assert_healthy("a GTSM TTL violation");
    // ... while TTL 255 from the same address establishes (GTSM is what refused it).
    let s = lab.connect(src, Some(255)).unwrap();
    let mut raw = Raw::new(s);
    raw.send(&open(4, ATTACKER_AS, 90, src, &caps(ATTACKER_AS, true)));
    raw.send(&keepalive());
    raw.wait_keepalive(Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("TTL 255 to the GTSM peer: {e}; log:\n{}", lab.log_tail()));
    lab.assert_healthy("a GTSM peer at TTL 255");
}

/// A peer that stops reading while 100,000 routes are exported towards it: ternd's memory
/// stays bounded (the send queue is bounded; the session is reset for overflow or by the
/// hold timer) and the healthy peer, which sent the routes, is untouched.
#[test]
fn a_peer_that_stops_reading_costs_bounded_memory() {
    let Some(mut lab) = Lab::new(
        "a_peer_that_stops_reading_costs_bounded_memory",
        LabOptions {
            attackers: 2,
            no_fib: true,
            ..LabOptions::default()
        },
    ) else {
        return;
    };
    // The sink: established with a 4 KiB receive buffer, never reads again.
    let src = attacker(1);
    let s = connect_with(&lab.x, src, TERN, None, Some(4096), Duration::from_secs(3)).unwrap();
    let mut sink = Raw::new(s);
    sink.read_msg(Duration::from_secs(5)).unwrap();
    sink.send(&open(4, ATTACKER_AS, 90, src, &caps(ATTACKER_AS, true)));
    sink.send(&keepalive());
    sink.wait_keepalive(Duration::from_secs(5)).unwrap();
    // 100,000 routes from a feeder (attacker 2), exported by ternd to the sink and to the
    // healthy peer.
    let feeder_src = attacker(2);
    let mut feeder = lab.established(feeder_src);
    let rss_before = rss_kib(lab.daemon.pid());
    let mut sent = 0u32;
    while sent < 100_000 {
        let nl: Vec<u8> = (sent..sent + 1000)
            .flat_map(|i| {
                let a = Ipv4Addr::from(0x0b00_0000 + (i << 8));
                nlri(&format!("{a}/24"))
            })
            .collect();
        feeder.send(&update(&[], &valid_attrs(feeder_src), &nl));
        sent += 1000;
    }
    let h = lab.healthy.as_ref().unwrap();
    wait_for(
        "100,000 routes at the healthy peer",
        Duration::from_secs(90),
        || (h.route_count() >= 100_000).then_some(()),
    );
    // The sink has not read a byte since; give ternd time to fill every queue.
    let mut peak = 0;
    for _ in 0..10 {
        peak = peak.max(rss_kib(lab.daemon.pid()));
        let _ = feeder.try_send(&keepalive());
        std::thread::sleep(Duration::from_millis(300));
    }
    eprintln!("ternd RSS: {rss_before} KiB before, peak {peak} KiB with a stalled peer");
    // 100,000 routes in the RIB plus the healthy peer's Adj-RIB-Out cost tens of MB at
    // most (measured: about 25 MB); an unbounded queue of encoded UPDATEs toward the sink
    // would grow without limit. The bound: 128 MiB.
    assert!(
        peak < 128 * 1024,
        "ternd RSS {peak} KiB with a peer that stopped reading"
    );
    lab.assert_healthy("a peer that stopped reading");
    // The sink's session: whatever ternd did (overflow reset, hold timer), it is not
    // holding everything: reading now gives less than the whole table twice.
    sink.s
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let mut total = 0usize;
    let mut chunk = vec![0u8; 1 << 16];
    while let Ok(n) = sink.s.read(&mut chunk) {
        if n == 0 {
            break;
        }
        total += n;
    }
    eprintln!("the stalled peer had {total} octets waiting");
}

/// The per-peer prefix limit (`max_prefixes: {limit: 100, restart_after: 4}`): the 101st
/// route closes the session with Cease / Maximum Number of Prefixes Reached (RFC 4486
/// subcode 1) and takes the peer's routes out of the kernel; during the hold-down the peer
/// is refused; after it the session comes up again. A peer under its limit is untouched.
#[test]
fn exceeding_max_prefixes_ceases_and_restarts_after_the_timer() {
    let Some(mut lab) = Lab::new(
        "exceeding_max_prefixes_ceases_and_restarts_after_the_timer",
        LabOptions {
            attackers: 2,
            extra: vec![
                (
                    1,
                    r#""max_prefixes": { "limit": 100, "restart_after": 4 }"#.into(),
                ),
                (
                    2,
                    r#""max_prefixes": { "limit": 100, "restart_after": 4 }"#.into(),
                ),
            ],
            ..LabOptions::default()
        },
    ) else {
        return;
    };
    let prefixes = |n: u32| -> Vec<u8> {
        (0..n)
            .flat_map(|i| nlri(&format!("10.120.{}.{}/32", i / 256, i % 256)))
            .collect()
    };
    // Peer 2 stays at its limit: 100 routes, kept.
    let src2 = attacker(2);
    let mut under = lab.established(src2);
    let nl: Vec<u8> = (0..100u32)
        .flat_map(|i| nlri(&format!("10.121.{}.{}/32", i / 256, i % 256)))
        .collect();
    under.send(&update(&[], &valid_attrs(src2), &nl));
    lab.wait_route("10.121.0.99/32", Some(src2), Duration::from_secs(10));

    // Peer 1: 100 routes are fine ...
    let src = attacker(1);
    let mut raw = lab.established(src);
    raw.send(&update(&[], &valid_attrs(src), &prefixes(100)));
    lab.wait_route("10.120.0.99/32", Some(src), Duration::from_secs(10));
    raw.stays_up(Duration::from_millis(500)).unwrap();
    // ... the 101st is one too many.
    raw.send(&update(&[], &valid_attrs(src), &nlri("10.120.1.0/32")));
    let (code, sub, _) = raw
        .notification(Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("no Cease after 101 prefixes: {e}; log:\n{}", lab.log_tail()));
    assert_eq!(
        (code, sub),
        (6, 1),
        "expected Cease / Maximum Number of Prefixes Reached"
    );
    let down_at = Instant::now();
    lab.wait_no_route("10.120.0.0/32", Duration::from_secs(10));
    lab.wait_no_route("10.120.0.99/32", Duration::from_secs(10));
    // Hold-down: a new connection gets no OPEN.
    if let Ok(s) = lab.connect(src, None) {
        let mut r = Raw::new(s);
        let m = r.read_msg(Duration::from_secs(1));
        assert!(
            m.as_ref().map_or(true, |m| m[18] != 1),
            "the limited peer got an OPEN during the hold-down"
        );
    }
    // After the restart timer the session comes back.
    let mut again = wait_for(
        "the limited peer's session again",
        Duration::from_secs(30),
        || {
            let s = lab.connect(src, None).ok()?;
            let mut r = Raw::new(s);
            let m = r.read_msg(Duration::from_secs(2)).ok()?;
            (m[18] == 1).then_some(r)
        },
    );
    eprintln!(
        "session accepted again {:?} after the Cease",
        down_at.elapsed()
    );
    again.send(&open(4, ATTACKER_AS, 90, src, &caps(ATTACKER_AS, true)));
    again.send(&keepalive());
    again.wait_keepalive(Duration::from_secs(5)).unwrap();
    again.send(&update(&[], &valid_attrs(src), &prefixes(10)));
    lab.wait_route("10.120.0.9/32", Some(src), Duration::from_secs(10));
    // The other limited peer never noticed.
    under.stays_up(Duration::from_millis(300)).unwrap();
    assert!(lab.route("10.121.0.99/32").contains(&format!("via {src2}")));
    lab.assert_healthy("a peer over its prefix limit");
}

/// VmRSS of a process, KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// A flap storm: one peer connects, announces a route and drops the connection every second
/// for a minute. The healthy session stays up and its kernel routes never leave; the flapping
/// peer's route is damped in the kernel: a handful of writes for the whole storm, where an
/// undamped speaker writes two per flap (`ip monitor route` counts them).
#[test]
fn a_flap_storm_leaves_other_sessions_and_kernel_routes_alone() {
    let Some(mut lab) = Lab::new(
        "a_flap_storm_leaves_other_sessions_and_kernel_routes_alone",
        LabOptions {
            attackers: 1,
            ..LabOptions::default()
        },
    ) else {
        return;
    };
    let src = attacker(1);
    let start = Instant::now();
    let mut flaps = 0;
    while start.elapsed() < Duration::from_secs(60) {
        let t = Instant::now();
        // ternd's back-off may refuse some attempts (IdleHold); that is its right.
        if let Ok(s) = lab.connect(src, None) {
            let mut raw = Raw::new(s);
            if raw.read_msg(Duration::from_millis(500)).is_ok() {
                raw.send(&open(4, ATTACKER_AS, 90, src, &caps(ATTACKER_AS, true)));
                raw.send(&keepalive());
                if raw.wait_keepalive(Duration::from_millis(500)).is_ok() {
                    raw.send(&update(&[], &valid_attrs(src), &nlri("10.96.1.0/24")));
                    flaps += 1;
                }
            }
        }
        lab.assert_healthy("a flap");
        std::thread::sleep(Duration::from_secs(1).saturating_sub(t.elapsed()));
    }
    eprintln!("{flaps} flaps in 60 s");
    assert!(flaps >= 10, "only {flaps} sessions came up in 60 s");
    lab.assert_healthy("a 60 s flap storm");
    // Kernel writes of the flapping prefix (adds, replaces and deletes) seen by `ip monitor`.
    let mon = std::fs::read_to_string(&lab.monitor_log).unwrap_or_default();
    let writes = mon.lines().filter(|l| l.contains("10.96.1.0/24")).count();
    eprintln!("{writes} kernel writes of the flapping prefix for {flaps} flaps");
    assert!(
        writes <= 10 && writes < flaps,
        "{writes} kernel writes for {flaps} flaps: the flapping route was not damped\n{mon}"
    );
    let h = lab.healthy.as_ref().unwrap();
    assert!(h.has_route(TERN_BLOCK));
    let _ = &lab.dir;
}

// ===== TCP-MD5, and no secret anywhere =====

const MD5_SECRET: &str = "Tern-md5-s3cret-7f2c";

/// Calico resources for the file datastore: this node, one BGPPeer with a TCP-MD5 password
/// from a Secret.
fn md5_resources() -> String {
    format!(
        r#"apiVersion: projectcalico.org/v3
kind: BGPConfiguration
metadata: {{name: default}}
spec: {{asNumber: {TERN_AS}, nodeToNodeMeshEnabled: false}}
---
apiVersion: projectcalico.org/v3
kind: Node
metadata: {{name: tern-node}}
spec: {{bgp: {{ipv4Address: {TERN}/16}}}}
---
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata: {{name: md5peer}}
spec:
  node: tern-node
  peerIP: {peer}
  asNumber: {ATTACKER_AS}
  password: {{secretKeyRef: {{name: bgp-secrets, key: md5}}}}
---
apiVersion: v1
kind: Secret
metadata: {{name: bgp-secrets, namespace: kube-system}}
stringData: {{md5: {MD5_SECRET}}}
"#,
        peer = attacker(1)
    )
}

/// Runs a bgp-wire session from `src` in `ns` to ternd with the given TCP-MD5 key for
/// `watch`, and returns the highest state it reached.
fn md5_client(ns: &Netns, src: Ipv4Addr, key: &[u8], watch: Duration) -> bgp_wire::fsm::State {
    use bgp_wire::fsm::{SessionConfig, State};
    use bgp_wire::session::{Endpoint, PeerConfig, SessionEvent};
    let key = key.to_vec();
    ns.run_in(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let endpoint = Endpoint::bind(&[]).unwrap();
            let mut sc = SessionConfig::new(ATTACKER_AS, src, TERN_AS);
            sc.connect_retry = Duration::from_secs(1);
            let mut pc = PeerConfig::new(sc, std::net::IpAddr::V4(TERN));
            pc.local_address = Some(std::net::IpAddr::V4(src));
            pc.md5_key = Some(key);
            let mut peer = endpoint.add_peer(pc).unwrap();
            peer.commands
                .send(bgp_wire::session::Command::Start)
                .await
                .unwrap();
            let mut best = State::Idle;
            let deadline = tokio::time::Instant::now() + watch;
            loop {
                match tokio::time::timeout_at(deadline, peer.events.recv()).await {
                    Ok(Some(SessionEvent::StateChange { to, .. })) => {
                        best = best.max(to);
                        if to == State::Established {
                            break;
                        }
                    }
                    Ok(Some(_)) => {}
                    Ok(None) | Err(_) => break,
                }
            }
            best
        })
    })
}

/// TCP-MD5 configured from a Calico Secret (file datastore): a peer with the wrong key or
/// no key never gets past TCP (not even OpenSent), the right key establishes; the password
/// appears neither in ternd's debug log nor in `--print-config`.
#[test]
fn md5_is_enforced_and_never_printed() {
    let test = "md5_is_enforced_and_never_printed";
    if !require_root(test) {
        return;
    }
    let Some(ternd) = ternd_binary(test) else {
        return;
    };
    let d = Netns::new("md");
    let x = Netns::new("mx");
    let (_, vx) = veth(
        &d,
        &[&format!("{TERN}/16")],
        &x,
        &[&format!("{HEALTHY}/16")],
    );
    x.ip(["addr", "add", &format!("{}/16", attacker(1)), "dev", &vx]);
    let dir = TempDir::new("md5");
    let res = dir.path().join("calico");
    std::fs::create_dir_all(&res).unwrap();
    std::fs::write(res.join("resources.yaml"), md5_resources()).unwrap();
    let printed = Command::new(&ternd)
        .args(["--datastore", "file", "--config-dir"])
        .arg(&res)
        .arg("--print-config")
        .env("NODENAME", "tern-node")
        .output()
        .unwrap();
    let printed_text = String::from_utf8_lossy(&printed.stdout);
    assert!(printed.status.success(), "{printed:?}");
    assert!(
        printed_text.contains(r#""password_set": true"#),
        "{printed_text}"
    );
    assert!(
        !printed_text.contains(MD5_SECRET),
        "--print-config shows the password"
    );
    assert!(!String::from_utf8_lossy(&printed.stderr).contains(MD5_SECRET));

    let log = dir.path().join("ternd.log");
    let mut cmd = d.command(&ternd);
    cmd.args(["--datastore", "file", "--config-dir"])
        .arg(&res)
        .args(["--log-level", "trace", "--control-socket"])
        .arg(dir.path().join("bird.ctl"))
        .env("NODENAME", "tern-node")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(File::create(&log).unwrap());
    let mut daemon = Daemon::spawn(cmd);
    let src = attacker(1);
    let wrong = md5_client(&x, src, b"not-the-password", Duration::from_secs(6));
    assert!(
        wrong < bgp_wire::fsm::State::OpenSent,
        "a wrong TCP-MD5 key reached {wrong:?}"
    );
    // No key at all: the SYN is dropped, the connection never forms.
    let plain = connect_from(&x, src, TERN, None, Duration::from_secs(3));
    assert!(plain.is_err(), "a connection without TCP-MD5 was accepted");
    let right = md5_client(&x, src, MD5_SECRET.as_bytes(), Duration::from_secs(20));
    assert_eq!(
        right,
        bgp_wire::fsm::State::Established,
        "the right key did not establish; log:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    assert!(daemon.is_running());
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        !text.contains(MD5_SECRET),
        "the TCP-MD5 password is in ternd's log"
    );
    assert!(!text.is_empty());
}

/// GTSM race: a TTL-1 peer that sends its OPEN right after the TCP handshake. ternd sets
/// the minimum TTL on the accepted connection (the listener is shared with peers without
/// GTSM), so segments that arrive before that `setsockopt` are already queued and read:
/// the session comes up although every packet of it arrived with TTL 1.
#[test]
fn gtsm_drops_an_open_sent_at_once_with_ttl_1() {
    let Some(lab) = Lab::new(
        "gtsm_drops_an_open_sent_at_once_with_ttl_1",
        LabOptions {
            attackers: 1,
            extra: vec![(1, r#""ttl_security": 1"#.into())],
            ..LabOptions::default()
        },
    ) else {
        return;
    };
    let src = attacker(1);
    if let Ok(s) = lab.connect(src, Some(1)) {
        let mut raw = Raw::new(s);
        let _ = raw.try_send(&open(4, ATTACKER_AS, 90, src, &caps(ATTACKER_AS, true)));
        let _ = raw.try_send(&keepalive());
        let r = raw.wait_keepalive(Duration::from_secs(5));
        assert!(
            r.is_err(),
            "a TTL-1 peer of a GTSM session was answered with a KEEPALIVE"
        );
    }
}

/// A route whose AS_PATH cannot be re-encoded for another peer (1,000 segments: 4,042 octets
/// on the 2-octet session it came from, over 6,000 with 4-octet ASes towards the healthy
/// peer) must not take the routes that arrived with it down too. The attacker sends a
/// normal route, the long one and another normal route in one TCP write; both normal
/// routes must reach the healthy peer.
#[test]
fn an_unencodable_route_does_not_swallow_its_neighbours() {
    let Some(mut lab) = Lab::new(
        "an_unencodable_route_does_not_swallow_its_neighbours",
        LabOptions {
            attackers: 1,
            ..LabOptions::default()
        },
    ) else {
        return;
    };
    let src = attacker(1);
    let mut raw = lab.attacker(src);
    raw.send(&open(4, ATTACKER_AS, 90, src, &caps(ATTACKER_AS, false)));
    raw.send(&keepalive());
    raw.wait_keepalive(Duration::from_secs(5)).unwrap();
    let mut path = Vec::with_capacity(4000);
    path.extend_from_slice(&[2, 1]);
    path.extend_from_slice(&(ATTACKER_AS as u16).to_be_bytes());
    for i in 1..1000u16 {
        path.extend_from_slice(&[2, 1]);
        path.extend_from_slice(&(64000 + i % 500).to_be_bytes());
    }
    let long = [origin(0), attr_ext(0x40, 2, &path), next_hop(src)].concat();
    let short = [origin(0), attr(0x40, 2, &[2, 1, 0xfd, 0xe9]), next_hop(src)].concat();
    let batch = [
        update(&[], &short, &nlri("10.96.5.0/24")),
        update(&[], &long, &nlri("10.96.1.0/24")),
        update(&[], &short, &nlri("10.96.6.0/24")),
    ]
    .concat();
    raw.send(&batch);
    for p in ["10.96.5.0/24", "10.96.1.0/24", "10.96.6.0/24"] {
        lab.wait_route(p, Some(src), Duration::from_secs(10));
    }
    let h = lab.healthy.as_ref().unwrap();
    let start = Instant::now();
    while !(h.has_route("10.96.5.0/24") && h.has_route("10.96.6.0/24")) {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "normal routes lost with the unencodable one: healthy peer has 10.96.5.0/24: {}, \
             10.96.6.0/24: {}, 10.96.1.0/24: {}; ternd log:\n{}",
            h.has_route("10.96.5.0/24"),
            h.has_route("10.96.6.0/24"),
            h.has_route("10.96.1.0/24"),
            lab.log_tail()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    lab.assert_healthy("an unencodable route");
}

/// Local attack surface of a running ternd: the control sockets are owned by root and not
/// accessible to others (at most 0660), and nothing listens on TCP but BGP on port 179 (the
/// metrics endpoint is off unless `--metrics-addr` asks for it).
#[test]
fn control_socket_is_private_and_only_bgp_listens() {
    let Some(lab) = Lab::new(
        "control_socket_is_private_and_only_bgp_listens",
        LabOptions::default(),
    ) else {
        return;
    };
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    for name in ["bird.ctl", "bird6.ctl"] {
        let path = lab.dir.path().join(name);
        let meta = wait_for(&format!("{name} exists"), Duration::from_secs(10), || {
            std::fs::metadata(&path).ok()
        });
        assert!(meta.file_type().is_socket(), "{name} is not a socket");
        assert_eq!(meta.uid(), 0, "{name} is not owned by root");
        let mode = meta.mode() & 0o777;
        assert_eq!(mode & 0o007, 0, "{name} is accessible to others: {mode:o}");
        assert_eq!(
            mode & !0o660,
            0,
            "{name} has more than rw for owner/group: {mode:o}"
        );
    }
    let listening = lab.d.exec("ss", ["-Hltn"]);
    for line in String::from_utf8_lossy(&listening.stdout).lines() {
        let local = line.split_whitespace().nth(3).unwrap_or_default();
        assert!(
            local.ends_with(":179"),
            "ternd listens on TCP {local} besides BGP: {line}"
        );
    }
}
