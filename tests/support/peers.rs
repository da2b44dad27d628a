//! Real BGP peers for interop tests: configuration generators and handles for BIRD 1.6
//! (`bird`/`bird6`), BIRD 2, GoBGP (`gobgpd`) and FRR (`bgpd` standalone), each run inside a
//! [`Netns`] with its files in a [`TempDir`], plus the CLI queries the tests compare against
//! (`birdc show route`, `gobgp global rib`, `vtysh -c 'show bgp ...'`).
//!
//! One [`PeerSpec`] describes the daemon's side of one session; the generators only print
//! what it says, so a test reads as "this peer, with these features".

use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::{Daemon, Netns, TempDir, bird2_paths, require_binary, wait_for};

/// The daemon's side of one BGP session.
#[derive(Clone, Debug)]
pub struct PeerSpec {
    /// The daemon's router id.
    pub router_id: String,
    /// The daemon's AS.
    pub asn: u32,
    /// The daemon's address (session source).
    pub address: IpAddr,
    /// Tern's address.
    pub neighbor: IpAddr,
    /// Tern's AS.
    pub neighbor_as: u32,
    /// Wait for Tern to connect.
    pub passive: bool,
    /// Hold time the daemon proposes (keepalive a third of it).
    pub hold_time: u16,
    /// TCP-MD5 password.
    pub password: Option<String>,
    /// Announce 4-octet AS support (`false`: BIRD's `enable as4 off`).
    pub as4: bool,
    /// ADD-PATH send and receive.
    pub add_path: bool,
    /// Graceful restart capability.
    pub graceful_restart: bool,
    /// Prefixes the daemon originates (same family as the session's transport).
    pub originate: Vec<String>,
    /// GTSM (RFC 5082) for a directly connected peer: send with TTL 255, require 255.
    pub gtsm: bool,
    /// Extended messages (RFC 8654; BIRD 2 `enable extended messages on`, FRR by default).
    pub extended_messages: bool,
    /// Long-lived graceful restart (RFC 9494), with `graceful_restart`; not in BIRD 1.6.
    pub long_lived_gr: bool,
}

impl PeerSpec {
    /// An eBGP (or iBGP when the ASes are equal) session with short timers and nothing extra.
    pub fn new(
        router_id: &str,
        asn: u32,
        address: IpAddr,
        neighbor: IpAddr,
        neighbor_as: u32,
    ) -> PeerSpec {
        PeerSpec {
            router_id: router_id.to_string(),
            asn,
            address,
            neighbor,
            neighbor_as,
            passive: false,
            hold_time: 9,
            password: None,
            as4: true,
            add_path: false,
            graceful_restart: false,
            originate: Vec::new(),
            gtsm: false,
            extended_messages: false,
            long_lived_gr: false,
        }
    }

    fn v6(&self) -> bool {
        self.address.is_ipv6()
    }
}

/// `count` distinct prefixes (at most 65,536): IPv4 `/24`s from `10.first.0.0`, IPv6 `/64`s
/// under `2001:db8:first::/48`.
pub fn prefixes(v6: bool, first: u8, count: u32) -> Vec<String> {
    (0..count.min(65_536))
        .map(|i| {
            if v6 {
                format!("2001:db8:{first:x}:{i:x}::/64")
            } else {
                format!("10.{}.{}.0/24", u32::from(first) + i / 256, i % 256)
            }
        })
        .collect()
}

// ===== BIRD 1.6 and BIRD 2 =====

/// Which BIRD.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bird {
    /// BIRD 1.6 (`bird` for IPv4, `bird6` for IPv6): Calico's.
    V1,
    /// BIRD 2 (one daemon, channels per family).
    V2,
}

/// The BIRD configuration for `spec`.
pub fn bird_config(which: Bird, spec: &PeerSpec, log: &Path) -> String {
    let mut c = String::new();
    let _ = writeln!(c, "router id {};", spec.router_id);
    let _ = writeln!(c, "log \"{}\" all;", log.display());
    let _ = writeln!(c, "debug protocols {{ states, events }};");
    let _ = writeln!(c, "protocol device {{ scan time 10; }}");
    let v6 = spec.v6();
    if !spec.originate.is_empty() {
        let _ = writeln!(c, "protocol static tern_static {{");
        if which == Bird::V2 {
            let _ = writeln!(c, "  {};", if v6 { "ipv6" } else { "ipv4" });
        }
        for p in &spec.originate {
            let _ = writeln!(c, "  route {p} blackhole;");
        }
        let _ = writeln!(c, "}}");
    }
    let _ = writeln!(c, "protocol bgp tern {{");
    let _ = writeln!(c, "  local {} as {};", spec.address, spec.asn);
    let _ = writeln!(c, "  neighbor {} as {};", spec.neighbor, spec.neighbor_as);
    let _ = writeln!(c, "  hold time {};", spec.hold_time);
    let _ = writeln!(c, "  keepalive time {};", (spec.hold_time / 3).max(1));
    let _ = writeln!(c, "  connect retry time 1;");
    let _ = writeln!(c, "  error wait time 1, 2;");
    if spec.passive {
        let _ = writeln!(c, "  passive on;");
    }
    if let Some(pw) = &spec.password {
        let _ = writeln!(c, "  password \"{pw}\";");
    }
    if !spec.as4 {
        let _ = writeln!(c, "  enable as4 off;");
    }
    if spec.graceful_restart {
        let _ = writeln!(c, "  graceful restart on;");
    }
    if spec.graceful_restart && spec.long_lived_gr && which == Bird::V2 {
        let _ = writeln!(
            c,
            "  long lived graceful restart on;\n  long lived stale time 60;"
        );
    }
    if spec.gtsm {
        let _ = writeln!(c, "  ttl security on;");
    }
    if spec.extended_messages && which == Bird::V2 {
        let _ = writeln!(c, "  enable extended messages on;");
    }
    match which {
        Bird::V1 => {
            let _ = writeln!(c, "  import all;\n  export all;\n  next hop self;");
            if spec.add_path {
                let _ = writeln!(c, "  add paths on;");
            }
        }
        Bird::V2 => {
            let _ = writeln!(c, "  {} {{", if v6 { "ipv6" } else { "ipv4" });
            let _ = writeln!(c, "    import all;\n    export all;\n    next hop self;");
            if spec.add_path {
                let _ = writeln!(c, "    add paths on;");
            }
            let _ = writeln!(c, "  }};");
        }
    }
    let _ = writeln!(c, "}}");
    c
}

/// A running BIRD with its control socket and log.
#[derive(Debug)]
pub struct BirdHandle {
    /// The daemon (killed on drop).
    pub daemon: Daemon,
    which: Bird,
    socket: PathBuf,
    /// The daemon's log file.
    pub log: PathBuf,
}

impl BirdHandle {
    /// Runs `birdc -s SOCKET ARGS` and returns its output.
    pub fn birdc(&self, args: &str) -> String {
        let mut cmd = match self.which {
            Bird::V1 => Command::new("birdc"),
            Bird::V2 => {
                let (bin, lib) = bird2_paths().unwrap_or_default();
                let mut c = Command::new(bin.with_file_name("birdc"));
                c.env("LD_LIBRARY_PATH", lib);
                c
            }
        };
        cmd.arg("-s").arg(&self.socket);
        cmd.args(args.split_whitespace());
        let out = cmd.stdin(Stdio::null()).output();
        out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    }

    /// Whether the `tern` protocol is Established.
    pub fn established(&self) -> bool {
        self.birdc("show protocols tern").contains("Established")
    }

    /// Routes imported from the `tern` protocol (`show route protocol tern count`:
    /// "N of M routes for K networks").
    pub fn routes_from_tern(&self) -> Option<u32> {
        let out = self.birdc("show route protocol tern count");
        out.lines()
            .find(|l| l.contains("routes for"))
            .and_then(|l| l.split_whitespace().next()?.parse().ok())
    }

    /// The log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// Starts BIRD in `ns` for `spec` (BIRD 1.6: `bird6` for an IPv6 session). `None` when the
/// binary is missing (skipped loudly, or a failure under CI).
pub fn start_bird(
    test: &str,
    which: Bird,
    ns: &Netns,
    dir: &TempDir,
    spec: &PeerSpec,
) -> Option<BirdHandle> {
    let log = dir.path().join("bird.log");
    let conf = dir.write("bird.conf", &bird_config(which, spec, &log));
    let socket = dir.path().join("bird.ctl");
    let pid = dir.path().join("bird.pid");
    let args = |c: &mut Command| {
        c.arg("-f")
            .arg("-c")
            .arg(&conf)
            .arg("-s")
            .arg(&socket)
            .arg("-P")
            .arg(&pid);
    };
    let daemon = match which {
        Bird::V1 => {
            let bin = require_binary(test, if spec.v6() { "bird6" } else { "bird" })?;
            let mut c = ns.command(bin);
            args(&mut c);
            c.stdin(Stdio::null());
            Daemon::spawn(c)
        }
        Bird::V2 => {
            let Some((bin, lib)) = bird2_paths() else {
                require_binary(test, "/opt/tern-test/bird2/usr/sbin/bird")?;
                return None;
            };
            let mut c = ns.command("env");
            c.arg(format!("LD_LIBRARY_PATH={}", lib.display())).arg(bin);
            args(&mut c);
            c.stdin(Stdio::null());
            Daemon::spawn(c)
        }
    };
    let h = BirdHandle {
        daemon,
        which,
        socket,
        log,
    };
    wait_for("BIRD control socket", Duration::from_secs(10), || {
        h.birdc("show status")
            .contains("Daemon is up")
            .then_some(())
    });
    Some(h)
}

// ===== GoBGP =====

/// The `gobgpd` TOML configuration for `spec`.
pub fn gobgp_config(spec: &PeerSpec) -> String {
    let mut c = String::new();
    let _ = writeln!(c, "[global.config]");
    let _ = writeln!(c, "  as = {}", spec.asn);
    let _ = writeln!(c, "  router-id = \"{}\"", spec.router_id);
    let _ = writeln!(c, "  local-address-list = [\"{}\"]", spec.address);
    let _ = writeln!(c, "[[neighbors]]");
    let _ = writeln!(c, "  [neighbors.config]");
    let _ = writeln!(c, "    neighbor-address = \"{}\"", spec.neighbor);
    let _ = writeln!(c, "    peer-as = {}", spec.neighbor_as);
    if let Some(pw) = &spec.password {
        let _ = writeln!(c, "    auth-password = \"{pw}\"");
    }
    let _ = writeln!(c, "  [neighbors.timers.config]");
    let _ = writeln!(c, "    hold-time = {}", spec.hold_time);
    let _ = writeln!(
        c,
        "    keepalive-interval = {}",
        (spec.hold_time / 3).max(1)
    );
    let _ = writeln!(c, "    connect-retry = 1");
    let _ = writeln!(c, "  [neighbors.transport.config]");
    let _ = writeln!(c, "    local-address = \"{}\"", spec.address);
    if spec.passive {
        let _ = writeln!(c, "    passive-mode = true");
    }
    if spec.gtsm {
        let _ = writeln!(c, "  [neighbors.ttl-security.config]");
        let _ = writeln!(c, "    enabled = true");
        let _ = writeln!(c, "    ttl-min = 255");
    }
    if spec.graceful_restart {
        let _ = writeln!(c, "  [neighbors.graceful-restart.config]");
        let _ = writeln!(c, "    enabled = true");
        let _ = writeln!(c, "    restart-time = 120");
        if spec.long_lived_gr {
            let _ = writeln!(c, "    long-lived-enabled = true");
        }
    }
    let _ = writeln!(c, "  [[neighbors.afi-safis]]");
    let _ = writeln!(c, "    [neighbors.afi-safis.config]");
    let _ = writeln!(
        c,
        "      afi-safi-name = \"{}\"",
        if spec.v6() {
            "ipv6-unicast"
        } else {
            "ipv4-unicast"
        }
    );
    if spec.graceful_restart {
        let _ = writeln!(c, "    [neighbors.afi-safis.mp-graceful-restart.config]");
        let _ = writeln!(c, "      enabled = true");
    }
    if spec.graceful_restart && spec.long_lived_gr {
        let _ = writeln!(
            c,
            "    [neighbors.afi-safis.long-lived-graceful-restart.config]"
        );
        let _ = writeln!(c, "      enabled = true");
        let _ = writeln!(c, "      restart-time = 60");
    }
    if spec.add_path {
        let _ = writeln!(c, "    [neighbors.afi-safis.add-paths.config]");
        let _ = writeln!(c, "      receive = true");
        let _ = writeln!(c, "      send-max = 8");
    }
    c
}

/// A running `gobgpd`.
#[derive(Debug)]
pub struct GobgpHandle {
    /// The daemon (killed on drop).
    pub daemon: Daemon,
    ns: String,
    v6: bool,
    /// stdout/stderr of the daemon.
    pub log: PathBuf,
}

impl GobgpHandle {
    /// Runs `gobgp ARGS` in the daemon's namespace (its gRPC API listens on the namespace's
    /// own loopback).
    pub fn gobgp(&self, args: &[&str]) -> String {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.ns, "gobgp"])
            .args(args)
            .stdin(Stdio::null())
            .output();
        out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    }

    fn family(&self) -> &'static str {
        if self.v6 { "ipv6" } else { "ipv4" }
    }

    /// Whether the neighbor is Established.
    pub fn established(&self, neighbor: &IpAddr) -> bool {
        self.gobgp(&["neighbor", &neighbor.to_string()])
            .lines()
            .any(|l| l.contains("BGP state") && l.to_lowercase().contains("established"))
    }

    /// Destinations in the global RIB (`gobgp global rib summary`), which holds what the
    /// daemon originated and what it learned.
    pub fn rib_destinations(&self) -> Option<u32> {
        let out = self.gobgp(&["global", "rib", "summary", "-a", self.family()]);
        let after = out.split("Destination:").nth(1)?;
        after
            .trim()
            .split(|c: char| !c.is_ascii_digit())
            .next()?
            .parse()
            .ok()
    }

    /// Originates `prefixes` with next hop `next_hop`, in one `gobgp` call per prefix batch.
    pub fn originate(&self, prefixes: &[String], next_hop: &IpAddr) {
        for p in prefixes {
            let out = Command::new("ip")
                .args([
                    "netns",
                    "exec",
                    &self.ns,
                    "gobgp",
                    "global",
                    "rib",
                    "add",
                    "-a",
                    self.family(),
                    p,
                    "nexthop",
                    &next_hop.to_string(),
                ])
                .stdin(Stdio::null())
                .output();
            if let Ok(o) = out
                && !o.status.success()
            {
                panic!(
                    "gobgp global rib add {p}: {}",
                    String::from_utf8_lossy(&o.stderr)
                );
            }
        }
    }

    /// The log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// Starts `gobgpd` in `ns` for `spec`.
pub fn start_gobgp(test: &str, ns: &Netns, dir: &TempDir, spec: &PeerSpec) -> Option<GobgpHandle> {
    let bin = require_binary(test, "gobgpd")?;
    require_binary(test, "gobgp")?;
    let conf = dir.write("gobgpd.toml", &gobgp_config(spec));
    let log = dir.path().join("gobgpd.log");
    let file = std::fs::File::create(&log).ok()?;
    let mut c = ns.command(bin);
    c.arg("-f")
        .arg(&conf)
        .arg("-p")
        .arg("--api-hosts=127.0.0.1:50051")
        .arg("--pprof-disable");
    c.stdin(Stdio::null())
        .stdout(file.try_clone().ok()?)
        .stderr(file);
    let h = GobgpHandle {
        daemon: Daemon::spawn(c),
        ns: ns.name().to_string(),
        v6: spec.v6(),
        log,
    };
    wait_for("gobgpd API", Duration::from_secs(10), || {
        h.gobgp(&["global"]).contains("AS:").then_some(())
    });
    Some(h)
}

// ===== FRR =====

/// The `bgpd` configuration for `spec`.
pub fn frr_config(spec: &PeerSpec) -> String {
    let n = spec.neighbor;
    let mut c = String::new();
    let _ = writeln!(
        c,
        "frr defaults traditional\nhostname peer\nlog stdout informational\ndebug bgp neighbor-events\n!"
    );
    let _ = writeln!(c, "router bgp {}", spec.asn);
    let _ = writeln!(c, " bgp router-id {}", spec.router_id);
    let _ = writeln!(c, " no bgp ebgp-requires-policy");
    let _ = writeln!(c, " no bgp network import-check");
    let _ = writeln!(c, " no bgp default ipv4-unicast");
    if spec.graceful_restart {
        let _ = writeln!(c, " bgp graceful-restart");
    }
    if spec.graceful_restart && spec.long_lived_gr {
        let _ = writeln!(c, " bgp long-lived-graceful-restart stale-time 60");
    }
    let _ = writeln!(c, " neighbor {n} remote-as {}", spec.neighbor_as);
    let _ = writeln!(
        c,
        " neighbor {n} timers {} {}",
        (spec.hold_time / 3).max(1),
        spec.hold_time
    );
    let _ = writeln!(c, " neighbor {n} timers connect 1");
    let _ = writeln!(c, " neighbor {n} update-source {}", spec.address);
    if spec.passive {
        let _ = writeln!(c, " neighbor {n} passive");
    }
    if let Some(pw) = &spec.password {
        let _ = writeln!(c, " neighbor {n} password {pw}");
    }
    if spec.gtsm {
        let _ = writeln!(c, " neighbor {n} ttl-security hops 1");
    }
    let _ = writeln!(
        c,
        " address-family {} unicast",
        if spec.v6() { "ipv6" } else { "ipv4" }
    );
    for p in &spec.originate {
        let _ = writeln!(c, "  network {p}");
    }
    let _ = writeln!(c, "  neighbor {n} activate");
    let _ = writeln!(c, "  neighbor {n} next-hop-self");
    if spec.add_path {
        let _ = writeln!(c, "  neighbor {n} addpath-tx-all-paths");
    }
    let _ = writeln!(c, " exit-address-family\n!");
    c
}

/// A running FRR `bgpd`.
#[derive(Debug)]
pub struct FrrHandle {
    /// The daemon (killed on drop).
    pub daemon: Daemon,
    vty: PathBuf,
    v6: bool,
    /// stdout/stderr of the daemon.
    pub log: PathBuf,
}

impl FrrHandle {
    /// Runs `vtysh -c COMMAND` against this `bgpd`.
    pub fn vtysh(&self, command: &str) -> String {
        let out = Command::new("vtysh")
            .arg("--vty_socket")
            .arg(&self.vty)
            .args(["-d", "bgpd", "-c", command])
            .stdin(Stdio::null())
            .output();
        out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    }

    fn family(&self) -> &'static str {
        if self.v6 { "ipv6" } else { "ipv4" }
    }

    /// Whether the neighbor is Established.
    pub fn established(&self, neighbor: &IpAddr) -> bool {
        self.vtysh(&format!("show bgp neighbors {neighbor}"))
            .contains("BGP state = Established")
    }

    /// Prefixes received from `neighbor` (`show bgp ... summary`, column PfxRcd).
    pub fn prefixes_received(&self, neighbor: &IpAddr) -> Option<u32> {
        let out = self.vtysh(&format!(
            "show bgp {} unicast neighbors {neighbor} prefix-counts",
            self.family()
        ));
        out.lines().find_map(|l| {
            let l = l.trim();
            l.strip_prefix("All RIB:")
                .and_then(|v| v.trim().parse().ok())
        })
    }

    /// The log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// Starts FRR's `bgpd` standalone (no zebra) in `ns` for `spec`.
pub fn start_frr(test: &str, ns: &Netns, dir: &TempDir, spec: &PeerSpec) -> Option<FrrHandle> {
    let bin = ["/usr/lib/frr/bgpd", "bgpd"]
        .iter()
        .find_map(|b| crate::which(b));
    let Some(bin) = bin else {
        require_binary(test, "/usr/lib/frr/bgpd")?;
        return None;
    };
    require_binary(test, "vtysh")?;
    let conf = dir.write("bgpd.conf", &frr_config(spec));
    let vty = dir.path().to_path_buf();
    let log = dir.path().join("bgpd.log");
    let file = std::fs::File::create(&log).ok()?;
    let mut c = ns.command(bin);
    c.args(["-Z", "-S", "-l"])
        .arg(spec.address.to_string())
        .args(["-p", "179", "--vty_socket"])
        .arg(&vty)
        .arg("-f")
        .arg(&conf)
        .arg("-i")
        .arg(dir.path().join("bgpd.pid"))
        .args(["-P", "0"]);
    c.stdin(Stdio::null())
        .stdout(file.try_clone().ok()?)
        .stderr(file);
    let h = FrrHandle {
        daemon: Daemon::spawn(c),
        vty,
        v6: spec.v6(),
        log,
    };
    wait_for("bgpd vty", Duration::from_secs(10), || {
        h.vtysh("show bgp summary").contains("BGP").then_some(())
    });
    Some(h)
}
