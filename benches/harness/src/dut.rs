//! The devices under test: Tern (`ternd --config`), BIRD 1.6, BIRD 2, GoBGP and FRR `bgpd`,
//! each configured from one [`Plan`] (the same sessions, policies and origination for every
//! daemon) and run inside the DUT namespace. Every session is passive on the DUT: the
//! harness's speakers connect.

use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tern_tests::{Daemon, Netns, TempDir, bird2_paths, which};

/// Which daemon.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// Tern's `ternd`.
    Tern,
    /// BIRD 1.6 (Calico's).
    Bird,
    /// BIRD 2.
    Bird2,
    /// GoBGP's `gobgpd`.
    Gobgp,
    /// FRR's `bgpd`, standalone (no zebra).
    Frr,
}

impl Kind {
    /// Every DUT in table order.
    pub const ALL: [Kind; 5] = [Kind::Tern, Kind::Bird, Kind::Bird2, Kind::Gobgp, Kind::Frr];

    /// The CLI name.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Tern => "tern",
            Kind::Bird => "bird",
            Kind::Bird2 => "bird2",
            Kind::Gobgp => "gobgp",
            Kind::Frr => "frr",
        }
    }

    /// The table label.
    pub fn label(self) -> &'static str {
        match self {
            Kind::Tern => "Tern",
            Kind::Bird => "BIRD 1.6",
            Kind::Bird2 => "BIRD 2",
            Kind::Gobgp => "GoBGP",
            Kind::Frr => "FRR",
        }
    }

    /// Parses a CLI name.
    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == s)
    }

    /// Whether this DUT can program the kernel in the harness (Tern, BIRD 1.6, BIRD 2; GoBGP
    /// and FRR would need zebra).
    pub fn has_fib(self) -> bool {
        matches!(self, Kind::Tern | Kind::Bird | Kind::Bird2)
    }
}

/// Where the binaries are.
#[derive(Clone, Debug)]
pub struct Binaries {
    /// `ternd`.
    pub ternd: Option<PathBuf>,
}

impl Binaries {
    /// The daemon binary of `kind`, or why it is missing.
    pub fn find(&self, kind: Kind) -> Result<PathBuf, String> {
        let found = match kind {
            Kind::Tern => self.ternd.clone(),
            Kind::Bird => which("bird"),
            Kind::Bird2 => bird2_paths().map(|(b, _)| b),
            Kind::Gobgp => which("gobgpd").filter(|_| which("gobgp").is_some()),
            Kind::Frr => ["/usr/lib/frr/bgpd", "bgpd"].iter().find_map(|b| which(b)),
        };
        found.ok_or_else(|| match kind {
            Kind::Tern => "ternd not found (build it: cargo build --release -p tern --bin ternd, or pass --ternd / TERND)".into(),
            Kind::Bird => "bird (BIRD 1.6) not on PATH".into(),
            Kind::Bird2 => "BIRD 2 not unpacked at /opt/tern-test/bird2 (TERN_BIRD2_PREFIX)".into(),
            Kind::Gobgp => "gobgpd/gobgp not on PATH".into(),
            Kind::Frr => "FRR bgpd not found (/usr/lib/frr/bgpd)".into(),
        })
    }

    /// The version string of `kind`'s daemon.
    pub fn version(&self, kind: Kind) -> String {
        let Ok(bin) = self.find(kind) else {
            return "missing".into();
        };
        let mut c = Command::new(&bin);
        if kind == Kind::Bird2
            && let Some((_, lib)) = bird2_paths()
        {
            c.env("LD_LIBRARY_PATH", lib);
        }
        c.arg("--version").stdin(Stdio::null());
        let out = c.output().map(|o| {
            let mut s = String::from_utf8_lossy(&o.stdout).into_owned();
            s.push_str(&String::from_utf8_lossy(&o.stderr));
            s
        });
        out.ok()
            .and_then(|s| s.lines().find(|l| !l.trim().is_empty()).map(str::to_string))
            .unwrap_or_else(|| "unknown".into())
            .trim()
            .to_string()
    }
}

/// One session on the DUT.
#[derive(Clone, Debug)]
pub struct PlanPeer {
    /// The harness speaker's address.
    pub address: Ipv4Addr,
    /// The harness speaker's AS.
    pub remote_as: u32,
    /// The DUT's address on that link.
    pub local: Ipv4Addr,
    /// A route-reflector client of the DUT.
    pub rr_client: bool,
}

/// What the DUT runs: the same for every daemon.
#[derive(Clone, Debug)]
pub struct Plan {
    /// DUT router id.
    pub router_id: Ipv4Addr,
    /// DUT AS.
    pub asn: u32,
    /// Route-reflector cluster id (the DUT reflects when set).
    pub cluster_id: Option<Ipv4Addr>,
    /// Sessions.
    pub peers: Vec<PlanPeer>,
    /// Prefixes the DUT originates (blackhole).
    pub originate: Vec<String>,
    /// Program the kernel (only [`Kind::has_fib`] DUTs).
    pub kernel: bool,
}

/// A running DUT.
#[derive(Debug)]
pub struct Dut {
    daemon: Daemon,
    /// Its log file.
    pub log: PathBuf,
    _dir: TempDir,
}

impl Dut {
    /// The daemon's pid (the one whose /proc entries are read).
    pub fn pid(&self) -> u32 {
        self.daemon.pid()
    }

    /// Whether the daemon still runs.
    pub fn is_running(&mut self) -> bool {
        self.daemon.is_running()
    }

    /// The last lines of the DUT's log (for error messages).
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }
}

/// Starts `kind` in `ns` with `plan`; returns once the daemon's process is up and listening.
pub fn start(kind: Kind, bins: &Binaries, ns: &Netns, plan: &Plan) -> anyhow::Result<Dut> {
    let bin = bins.find(kind).map_err(anyhow::Error::msg)?;
    let dir = TempDir::new("thdut");
    let log = dir.path().join("dut.log");
    let logfile = std::fs::File::create(&log)?;
    let mut cmd;
    match kind {
        Kind::Tern => {
            let conf = dir.write("tern.json", &tern_config(plan));
            cmd = ns.command(&bin);
            cmd.arg("--config").arg(conf).args(["--log-level", "warn"]);
            if !plan.kernel {
                cmd.arg("--no-fib");
            }
        }
        Kind::Bird | Kind::Bird2 => {
            let v2 = kind == Kind::Bird2;
            let conf = dir.write("bird.conf", &bird_config(plan, v2));
            if v2 {
                let (_, lib) = bird2_paths().context("BIRD 2 libraries")?;
                cmd = ns.command("env");
                cmd.arg(format!("LD_LIBRARY_PATH={}", lib.display()))
                    .arg(&bin);
            } else {
                cmd = ns.command(&bin);
            }
            cmd.arg("-f")
                .arg("-c")
                .arg(conf)
                .arg("-s")
                .arg(dir.path().join("bird.ctl"))
                .arg("-P")
                .arg(dir.path().join("bird.pid"));
        }
        Kind::Gobgp => {
            let conf = dir.write("gobgpd.toml", &gobgp_config(plan));
            cmd = ns.command(&bin);
            cmd.arg("-f")
                .arg(conf)
                .arg("--api-hosts=127.0.0.1:50051")
                .arg("--pprof-disable")
                .args(["-l", "warn"]);
        }
        Kind::Frr => {
            let conf = dir.write("bgpd.conf", &frr_config(plan));
            cmd = ns.command(&bin);
            cmd.args(["-Z", "-S", "-p", "179", "--vty_socket"])
                .arg(dir.path())
                .arg("-f")
                .arg(conf)
                .arg("-i")
                .arg(dir.path().join("bgpd.pid"))
                .args(["-P", "0"]);
        }
    }
    cmd.stdin(Stdio::null())
        .stdout(logfile.try_clone()?)
        .stderr(logfile);
    let daemon = Daemon::spawn(cmd);
    let mut dut = Dut {
        daemon,
        log,
        _dir: dir,
    };
    // Up when something listens on port 179 in the namespace.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if !dut.is_running() {
            bail!("{} exited at start:\n{}", kind.label(), dut.log_tail());
        }
        let out = ns
            .command("ss")
            .args(["-Htln", "sport = :179"])
            .stdin(Stdio::null())
            .output()?;
        if !String::from_utf8_lossy(&out.stdout).trim().is_empty() {
            break;
        }
        if Instant::now() > deadline {
            bail!(
                "{} does not listen on port 179 after 20 s:\n{}",
                kind.label(),
                dut.log_tail()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    if kind == Kind::Gobgp {
        for p in &plan.originate {
            let out = ns
                .command("gobgp")
                .args(["global", "rib", "add", "-a", "ipv4", p])
                .stdin(Stdio::null())
                .output()?;
            if !out.status.success() {
                bail!(
                    "gobgp global rib add {p}: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
    }
    Ok(dut)
}

fn tern_config(plan: &Plan) -> String {
    let peers: Vec<String> = plan
        .peers
        .iter()
        .map(|p| {
            let ibgp = p.remote_as == plan.asn;
            format!(
                r#"{{"name":"{kind}_{name}","kind":"{kind_l}","address":"{a}","port":179,"remote_as":{ras},
"passive":true,"rr_client":{rr},"source_address":"{l}","families":["ipv4"],"graceful_restart":false,
"add_paths":"off","hold_time":90,"import":"all","export":"all"}}"#,
                kind = if ibgp { "Mesh" } else { "Global" },
                kind_l = if ibgp { "mesh" } else { "global" },
                name = p.address.to_string().replace('.', "_"),
                a = p.address,
                ras = p.remote_as,
                rr = p.rr_client,
                l = p.local,
            )
        })
        .collect();
    let blackholes: Vec<String> = plan.originate.iter().map(|p| format!("\"{p}\"")).collect();
    let cluster = plan
        .cluster_id
        .map(|c| format!("\"cluster_id\":\"{c}\","))
        .unwrap_or_default();
    format!(
        r#"{{"router_id":"{rid}","asn":{asn},{cluster}
"listen":{{"address":null,"port":179}},
"peers":[{peers}],
"policies":{{}},
"blackholes":[{bh}],
"kernel":{{"export":"all","learn":false,"persist":false,"scan_time":2,"graceful_restart":false,
"merge_paths":true,"route_protocol":12,"normal_route_priority":{{"ipv4":1024,"ipv6":1024}}}}
}}"#,
        rid = plan.router_id,
        asn = plan.asn,
        peers = peers.join(",\n"),
        bh = blackholes.join(","),
    )
}

fn bird_config(plan: &Plan, v2: bool) -> String {
    let mut c = String::new();
    let _ = writeln!(c, "router id {};", plan.router_id);
    // Calico's settings for the device and kernel protocols (scan time 2).
    let _ = writeln!(c, "protocol device {{ scan time 2; }}");
    let chan = |c: &mut String, body: &str| {
        if v2 {
            let _ = writeln!(c, "  ipv4 {{ {body} }};");
        } else {
            let _ = writeln!(c, "  {body}");
        }
    };
    if plan.kernel {
        let _ = writeln!(c, "protocol kernel {{");
        let _ = writeln!(c, "  learn; persist; scan time 2; graceful restart;");
        if v2 {
            let _ = writeln!(c, "  merge paths on;");
            let _ = writeln!(c, "  ipv4 {{ import all; export all; }};");
        } else {
            let _ = writeln!(c, "  merge paths on; import all; export all;");
        }
        let _ = writeln!(c, "}}");
    }
    if !plan.originate.is_empty() {
        let _ = writeln!(c, "protocol static own {{");
        if v2 {
            let _ = writeln!(c, "  ipv4;");
        }
        for p in &plan.originate {
            let _ = writeln!(c, "  route {p} blackhole;");
        }
        let _ = writeln!(c, "}}");
    }
    for p in &plan.peers {
        let ibgp = p.remote_as == plan.asn;
        let _ = writeln!(
            c,
            "protocol bgp p_{} {{",
            p.address.to_string().replace('.', "_")
        );
        let _ = writeln!(c, "  local {} as {};", p.local, plan.asn);
        let _ = writeln!(c, "  neighbor {} as {};", p.address, p.remote_as);
        let _ = writeln!(c, "  passive on; hold time 90;");
        if p.rr_client {
            let _ = writeln!(c, "  rr client;");
            if let Some(cid) = plan.cluster_id {
                let _ = writeln!(c, "  rr cluster id {cid};");
            }
        }
        if ibgp && !p.rr_client {
            chan(&mut c, "import all; export all; next hop self;");
        } else if ibgp {
            chan(&mut c, "import all; export all;");
        } else {
            chan(&mut c, "import all; export all; next hop self;");
        }
        let _ = writeln!(c, "}}");
    }
    c
}

fn gobgp_config(plan: &Plan) -> String {
    let mut c = String::new();
    let _ = writeln!(c, "[global.config]");
    let _ = writeln!(c, "  as = {}", plan.asn);
    let _ = writeln!(c, "  router-id = \"{}\"", plan.router_id);
    for p in &plan.peers {
        let _ = writeln!(c, "[[neighbors]]");
        let _ = writeln!(c, "  [neighbors.config]");
        let _ = writeln!(c, "    neighbor-address = \"{}\"", p.address);
        let _ = writeln!(c, "    peer-as = {}", p.remote_as);
        let _ = writeln!(c, "  [neighbors.timers.config]");
        let _ = writeln!(c, "    hold-time = 90");
        let _ = writeln!(c, "    keepalive-interval = 30");
        let _ = writeln!(c, "  [neighbors.transport.config]");
        let _ = writeln!(c, "    local-address = \"{}\"", p.local);
        let _ = writeln!(c, "    passive-mode = true");
        if p.rr_client {
            let _ = writeln!(c, "  [neighbors.route-reflector.config]");
            let _ = writeln!(c, "    route-reflector-client = true");
            if let Some(cid) = plan.cluster_id {
                let _ = writeln!(c, "    route-reflector-cluster-id = \"{cid}\"");
            }
        }
        let _ = writeln!(c, "  [[neighbors.afi-safis]]");
        let _ = writeln!(c, "    [neighbors.afi-safis.config]");
        let _ = writeln!(c, "      afi-safi-name = \"ipv4-unicast\"");
    }
    c
}

fn frr_config(plan: &Plan) -> String {
    let mut c = String::new();
    let _ = writeln!(
        c,
        "frr defaults datacenter\nhostname dut\nlog stdout warnings\n!"
    );
    let _ = writeln!(c, "router bgp {}", plan.asn);
    let _ = writeln!(c, " bgp router-id {}", plan.router_id);
    let _ = writeln!(c, " no bgp ebgp-requires-policy");
    let _ = writeln!(c, " no bgp network import-check");
    let _ = writeln!(c, " no bgp default ipv4-unicast");
    if let Some(cid) = plan.cluster_id {
        let _ = writeln!(c, " bgp cluster-id {cid}");
    }
    for p in &plan.peers {
        let n = p.address;
        let _ = writeln!(c, " neighbor {n} remote-as {}", p.remote_as);
        let _ = writeln!(c, " neighbor {n} timers 30 90");
        let _ = writeln!(c, " neighbor {n} passive");
        let _ = writeln!(c, " neighbor {n} update-source {}", p.local);
        let _ = writeln!(c, " neighbor {n} advertisement-interval 0");
    }
    let _ = writeln!(c, " address-family ipv4 unicast");
    for p in &plan.originate {
        let _ = writeln!(c, "  network {p}");
    }
    for p in &plan.peers {
        let n = p.address;
        let _ = writeln!(c, "  neighbor {n} activate");
        if p.rr_client {
            let _ = writeln!(c, "  neighbor {n} route-reflector-client");
        } else {
            let _ = writeln!(c, "  neighbor {n} next-hop-self");
        }
    }
    let _ = writeln!(c, " exit-address-family\n!");
    c
}

/// The DUT's resource use, from /proc.
#[derive(Clone, Copy, Debug, Default)]
pub struct Usage {
    /// Resident set now (VmRSS), KiB.
    pub rss_kib: u64,
    /// Peak resident set since start (VmHWM), KiB.
    pub hwm_kib: u64,
    /// utime + stime, seconds.
    pub cpu_s: f64,
}

/// Reads `pid`'s RSS, peak RSS and CPU time (all threads).
pub fn usage(pid: u32) -> Usage {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            .unwrap_or(0)
    };
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command (which may hold spaces) start after the last ')'.
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    // After ')': state is field 3, utime 14, stime 15 → indices 11 and 12 here.
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| f.get(i)?.parse::<u64>().ok())
        .sum();
    // USER_HZ is 100 on every Linux architecture the harness runs on.
    let hz = 100.0;
    Usage {
        rss_kib: field("VmRSS:"),
        hwm_kib: field("VmHWM:"),
        cpu_s: ticks as f64 / hz,
    }
}
