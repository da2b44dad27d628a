//! The scenarios of issue 10 and the harness floor; each measurement builds fresh namespaces
//! and a fresh DUT, so runs do not see each other's state.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};

use crate::dut::{self, Binaries, Dut, Kind, Plan, PlanPeer, usage};
use crate::kernel::KernelCounter;
use crate::net::{self, DUT_GEN, DUT_RECV, GEN, Ns, Topology};
use crate::speaker::{Block, Connect, Keepalives, Speaker, SpeakerConfig, Universe, now_ns};
use crate::workload;

/// How big the scenarios are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scale {
    /// Seconds per scenario: the CI smoke test.
    Small,
    /// Issue 10's sizes.
    Full,
}

impl Scale {
    /// Parses `small` / `full`.
    pub fn parse(s: &str) -> Option<Scale> {
        match s {
            "small" => Some(Scale::Small),
            "full" => Some(Scale::Full),
            _ => None,
        }
    }

    fn routes(self) -> u32 {
        match self {
            Scale::Small => 1_000,
            Scale::Full => 100_000,
        }
    }

    fn attr_sets(self) -> u32 {
        match self {
            Scale::Small => 10,
            Scale::Full => 1_000,
        }
    }

    fn rr_clients(self) -> Vec<u32> {
        match self {
            Scale::Small => vec![5],
            Scale::Full => vec![50, 200],
        }
    }

    fn memory_routes(self) -> u32 {
        match self {
            Scale::Small => 10_000,
            Scale::Full => 1_000_000,
        }
    }

    fn mesh_peers(self) -> Vec<u32> {
        match self {
            Scale::Small => vec![10],
            Scale::Full => vec![100, 500],
        }
    }

    fn idle_window(self) -> Duration {
        match self {
            Scale::Small => Duration::from_secs(2),
            Scale::Full => Duration::from_secs(10),
        }
    }
}

/// One scenario of issue 10.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScenarioKind {
    /// 1. eBGP transit.
    Transit,
    /// 2. Route reflection.
    Rr,
    /// 3. Full-table memory.
    Memory,
    /// 4. Calico mesh.
    Mesh,
    /// 5. Kernel install.
    Fib,
}

impl ScenarioKind {
    /// `transit`, …, or `all`.
    pub fn parse_list(s: &str) -> Option<Vec<ScenarioKind>> {
        use ScenarioKind::*;
        let all = vec![Transit, Rr, Memory, Mesh, Fib];
        let mut out = Vec::new();
        for part in s.split(',').map(str::trim) {
            match part {
                "all" => return Some(all),
                "transit" => out.push(Transit),
                "rr" => out.push(Rr),
                "memory" => out.push(Memory),
                "mesh" => out.push(Mesh),
                "fib" => out.push(Fib),
                _ => return None,
            }
        }
        (!out.is_empty()).then_some(out)
    }
}

/// What every measurement needs.
#[derive(Debug)]
pub struct RunConfig {
    /// Runs per scenario and DUT.
    pub runs: usize,
    /// Sizes.
    pub scale: Scale,
    /// Give up on one wait after this long.
    pub timeout: Duration,
    /// Daemon binaries.
    pub bins: Binaries,
}

/// One run's figures.
#[derive(Clone, Debug, Default)]
struct Sample {
    /// (metric, value) in column order.
    metrics: Vec<(&'static str, f64)>,
    /// DUT peak RSS, MiB.
    peak_mib: f64,
    /// DUT CPU seconds over the measured phases.
    cpu_s: f64,
}

/// `/proc/meminfo` MemTotal in MiB.
pub fn mem_total_mib() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(0, |k| k / 1024)
}

/// The 1/5/15-minute load averages.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn secs(ns: u64) -> f64 {
    ns as f64 / 1e9
}

/// Waits until every progress has reached its target; returns the latest `reached_at`.
fn wait_all(
    what: &str,
    speakers: &[&Speaker],
    dut: &mut Dut,
    timeout: Duration,
) -> anyhow::Result<u64> {
    let deadline = Instant::now() + timeout;
    loop {
        let mut latest = 0;
        let mut pending = 0;
        for s in speakers {
            if let Some(e) = s.progress.error() {
                bail!(
                    "{what}: a session failed: {e}\nDUT log:\n{}",
                    dut.log_tail()
                );
            }
            match s.progress.reached_at.load(Ordering::SeqCst) {
                0 => pending += 1,
                t => latest = latest.max(t),
            }
        }
        if pending == 0 {
            return Ok(latest);
        }
        if !dut.is_running() {
            bail!("{what}: the DUT exited:\n{}", dut.log_tail());
        }
        if Instant::now() > deadline {
            let held: Vec<u64> = speakers
                .iter()
                .take(5)
                .map(|s| s.progress.held.load(Ordering::SeqCst))
                .collect();
            bail!(
                "{what}: timed out after {timeout:?} ({pending} of {} sessions short; held by the first: {held:?})",
                speakers.len()
            );
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn wait_established(speakers: &[&Speaker], dut: &mut Dut, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(e) = speakers.iter().find_map(|s| s.progress.error()) {
            bail!("session did not come up: {e}\nDUT log:\n{}", dut.log_tail());
        }
        if speakers.iter().all(|s| s.established()) {
            return Ok(());
        }
        if !dut.is_running() {
            bail!("the DUT exited:\n{}", dut.log_tail());
        }
        if Instant::now() > deadline {
            let up = speakers.iter().filter(|s| s.established()).count();
            bail!(
                "only {up} of {} sessions Established after {timeout:?}\nDUT log:\n{}",
                speakers.len(),
                dut.log_tail()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn speaker(
    ns: &Ns,
    local: Ipv4Addr,
    remote: Ipv4Addr,
    asn: u32,
    universe: Arc<Universe>,
    initial: Option<bytes::Bytes>,
) -> Speaker {
    Speaker::start(SpeakerConfig {
        netns: ns.path(),
        connect: Connect::Active { local, remote },
        asn,
        router_id: local,
        universe,
        initial,
    })
}

const DUT_AS: u32 = 65_000;
const GEN_AS: u32 = 65_001;
const RECV_AS: u32 = 65_002;

fn ebgp_plan(receivers: &[Ipv4Addr], kernel: bool) -> Plan {
    let mut peers = vec![PlanPeer {
        address: GEN,
        remote_as: GEN_AS,
        local: DUT_GEN,
        rr_client: false,
    }];
    peers.extend(receivers.iter().map(|&a| PlanPeer {
        address: a,
        remote_as: RECV_AS,
        local: DUT_RECV,
        rr_client: false,
    }));
    Plan {
        router_id: DUT_GEN,
        asn: DUT_AS,
        cluster_id: None,
        peers,
        originate: Vec::new(),
        kernel,
    }
}

/// Scenario 1: eBGP transit, announce then withdraw.
fn transit(kind: Kind, cfg: &RunConfig) -> anyhow::Result<Sample> {
    let n = cfg.scale.routes();
    let topo = Topology::new(1)?;
    let plan = ebgp_plan(&topo.receiver_addrs, false);
    let mut d = dut::start(kind, &cfg.bins, &topo.dut.0, &plan)?;
    let block = workload::table_block(n);
    let announce = workload::announce_stream(&block, cfg.scale.attr_sets(), Some(GEN_AS), GEN)?;
    let withdraw = workload::withdraw_stream(&block)?;
    let universe = Arc::new(Universe::new(vec![block]));
    let recv = speaker(
        &topo.receivers,
        topo.receiver_addrs[0],
        DUT_RECV,
        RECV_AS,
        universe,
        None,
    );
    let generator = speaker(
        &topo.generator,
        GEN,
        DUT_GEN,
        GEN_AS,
        Arc::new(Universe::default()),
        None,
    );
    wait_established(&[&recv, &generator], &mut d, cfg.timeout)?;
    let _ka = Keepalives::start(vec![recv.keepalive_handle(), generator.keepalive_handle()]);
    std::thread::sleep(Duration::from_millis(500));
    let u0 = usage(d.pid());
    recv.progress.set_target(u64::from(n));
    let t0 = now_ns();
    generator.send(&announce)?;
    let t_ann = wait_all("transit announce", &[&recv], &mut d, cfg.timeout)?;
    recv.progress.set_target(0);
    let t1 = now_ns();
    generator.send(&withdraw)?;
    let t_wd = wait_all("transit withdraw", &[&recv], &mut d, cfg.timeout)?;
    let u1 = usage(d.pid());
    Ok(Sample {
        metrics: vec![
            ("announce s", secs(t_ann.saturating_sub(t0))),
            ("withdraw s", secs(t_wd.saturating_sub(t1))),
        ],
        peak_mib: u1.hwm_kib as f64 / 1024.0,
        cpu_s: u1.cpu_s - u0.cpu_s,
    })
}

/// Scenario 2: route reflection from one client to `clients` clients.
fn rr(kind: Kind, cfg: &RunConfig, clients: u32) -> anyhow::Result<Sample> {
    let n = cfg.scale.routes();
    let topo = Topology::new(clients)?;
    let mut peers = vec![PlanPeer {
        address: GEN,
        remote_as: DUT_AS,
        local: DUT_GEN,
        rr_client: true,
    }];
    peers.extend(topo.receiver_addrs.iter().map(|&a| PlanPeer {
        address: a,
        remote_as: DUT_AS,
        local: DUT_RECV,
        rr_client: true,
    }));
    let plan = Plan {
        router_id: DUT_GEN,
        asn: DUT_AS,
        cluster_id: Some(DUT_GEN),
        peers,
        originate: Vec::new(),
        kernel: false,
    };
    let mut d = dut::start(kind, &cfg.bins, &topo.dut.0, &plan)?;
    let block = workload::table_block(n);
    let announce = workload::announce_stream(&block, cfg.scale.attr_sets(), None, GEN)?;
    let universe = Arc::new(Universe::new(vec![block]));
    let recvs: Vec<Speaker> = topo
        .receiver_addrs
        .iter()
        .map(|&a| speaker(&topo.receivers, a, DUT_RECV, DUT_AS, universe.clone(), None))
        .collect();
    let generator = speaker(
        &topo.generator,
        GEN,
        DUT_GEN,
        DUT_AS,
        Arc::new(Universe::default()),
        None,
    );
    let mut all: Vec<&Speaker> = recvs.iter().collect();
    all.push(&generator);
    wait_established(&all, &mut d, cfg.timeout)?;
    let _ka = Keepalives::start(all.iter().map(|s| s.keepalive_handle()).collect());
    std::thread::sleep(Duration::from_millis(500));
    let u0 = usage(d.pid());
    for r in &recvs {
        r.progress.set_target(u64::from(n));
    }
    let t0 = now_ns();
    generator.send(&announce)?;
    let refs: Vec<&Speaker> = recvs.iter().collect();
    let t_all = wait_all("route reflection", &refs, &mut d, cfg.timeout)?;
    let u1 = usage(d.pid());
    Ok(Sample {
        metrics: vec![("all clients s", secs(t_all.saturating_sub(t0)))],
        peak_mib: u1.hwm_kib as f64 / 1024.0,
        cpu_s: u1.cpu_s - u0.cpu_s,
    })
}

/// Scenario 3: a full table into the DUT, no receiver; done when the DUT's CPU stops.
fn memory(kind: Kind, cfg: &RunConfig) -> anyhow::Result<Sample> {
    let n = cfg.scale.memory_routes();
    let topo = Topology::new(1)?;
    let plan = ebgp_plan(&[], false);
    let mut d = dut::start(kind, &cfg.bins, &topo.dut.0, &plan)?;
    let block = workload::table_block(n);
    let announce = workload::announce_stream(&block, 1_000, Some(GEN_AS), GEN)?;
    let generator = speaker(
        &topo.generator,
        GEN,
        DUT_GEN,
        GEN_AS,
        Arc::new(Universe::default()),
        None,
    );
    wait_established(&[&generator], &mut d, cfg.timeout)?;
    let _ka = Keepalives::start(vec![generator.keepalive_handle()]);
    std::thread::sleep(Duration::from_secs(1));
    let idle = usage(d.pid());
    let t0 = Instant::now();
    generator.send(&announce)?;
    // Quiescent: less than 30 ms of CPU in 1.5 s (background timers allowed).
    let mut last_cpu = usage(d.pid()).cpu_s;
    let mut last_busy = Instant::now();
    loop {
        std::thread::sleep(Duration::from_millis(100));
        if !d.is_running() {
            bail!("the DUT exited:\n{}", d.log_tail());
        }
        if let Some(e) = generator.progress.error() {
            bail!("the generator's session failed: {e}");
        }
        let u = usage(d.pid());
        if u.cpu_s - last_cpu > 0.03 {
            last_cpu = u.cpu_s;
            last_busy = Instant::now();
        } else if last_busy.elapsed() > Duration::from_millis(1500) {
            break;
        }
        if t0.elapsed() > cfg.timeout {
            bail!("memory: the DUT was still busy after {:?}", cfg.timeout);
        }
    }
    let end = usage(d.pid());
    let bytes = (end.hwm_kib.saturating_sub(idle.rss_kib)) as f64 * 1024.0;
    Ok(Sample {
        metrics: vec![
            ("B/route", bytes / f64::from(n)),
            (
                "settled B/route",
                end.rss_kib.saturating_sub(idle.rss_kib) as f64 * 1024.0 / f64::from(n),
            ),
            ("idle MiB", idle.rss_kib as f64 / 1024.0),
            ("load s", last_busy.duration_since(t0).as_secs_f64()),
        ],
        peak_mib: end.hwm_kib as f64 / 1024.0,
        cpu_s: end.cpu_s - idle.cpu_s,
    })
}

/// Scenario 4: Calico mesh of `peers` iBGP sessions, each announcing a /26; an eBGP
/// observer on the generator side counts what the DUT learned.
fn mesh(kind: Kind, cfg: &RunConfig, peers: u32) -> anyhow::Result<Sample> {
    let topo = Topology::new(peers)?;
    let mut plan_peers = vec![PlanPeer {
        address: GEN,
        remote_as: RECV_AS,
        local: DUT_GEN,
        rr_client: false,
    }];
    plan_peers.extend(topo.receiver_addrs.iter().map(|&a| PlanPeer {
        address: a,
        remote_as: 64_512,
        local: DUT_RECV,
        rr_client: false,
    }));
    let plan = Plan {
        router_id: DUT_GEN,
        asn: 64_512,
        cluster_id: None,
        peers: plan_peers,
        originate: vec!["100.127.255.0/26".into()],
        kernel: kind.has_fib(),
    };
    let mut d = dut::start(kind, &cfg.bins, &topo.dut.0, &plan)?;
    let blocks = workload::mesh_blocks(peers);
    let observer = speaker(
        &topo.generator,
        GEN,
        DUT_GEN,
        RECV_AS,
        Arc::new(Universe::new(vec![blocks])),
        None,
    );
    wait_established(&[&observer], &mut d, cfg.timeout)?;
    observer.progress.set_target(u64::from(peers));
    let own = Arc::new(Universe::new(vec![workload::dut_block()]));
    let mut payloads = Vec::new();
    for (i, &a) in topo.receiver_addrs.iter().enumerate() {
        let one = Block {
            base: blocks
                .prefix(i as u32)
                .map(|p| match p.addr() {
                    std::net::IpAddr::V4(v4) => v4,
                    std::net::IpAddr::V6(_) => Ipv4Addr::UNSPECIFIED,
                })
                .context("mesh block")?,
            len: 26,
            count: 1,
        };
        payloads.push(bytes::Bytes::from(workload::announce_stream(
            &one, 1, None, a,
        )?));
    }
    std::thread::sleep(Duration::from_millis(500));
    let u0 = usage(d.pid());
    let t0 = now_ns();
    let members: Vec<Speaker> = topo
        .receiver_addrs
        .iter()
        .zip(payloads)
        .map(|(&a, p)| {
            let s = speaker(&topo.receivers, a, DUT_RECV, 64_512, own.clone(), Some(p));
            s.progress.set_target(1);
            s
        })
        .collect();
    let mut all: Vec<&Speaker> = members.iter().collect();
    all.push(&observer);
    let t_conv = wait_all("mesh convergence", &all, &mut d, cfg.timeout)?;
    let t_up = members
        .iter()
        .map(|s| s.progress.established_at.load(Ordering::SeqCst))
        .max()
        .unwrap_or(t0);
    let t_observed = observer.progress.reached_at.load(Ordering::SeqCst);
    let u1 = usage(d.pid());
    let _ka = Keepalives::start(all.iter().map(|s| s.keepalive_handle()).collect());
    std::thread::sleep(Duration::from_secs(2));
    let ua = usage(d.pid());
    std::thread::sleep(cfg.scale.idle_window());
    let ub = usage(d.pid());
    let idle_pct = (ub.cpu_s - ua.cpu_s) / cfg.scale.idle_window().as_secs_f64() * 100.0;
    Ok(Sample {
        metrics: vec![
            ("converge s", secs(t_conv.saturating_sub(t0))),
            ("all up s", secs(t_up.saturating_sub(t0))),
            ("DUT has all s", secs(t_observed.saturating_sub(t0))),
            ("idle CPU %", idle_pct),
        ],
        peak_mib: ub.hwm_kib as f64 / 1024.0,
        cpu_s: u1.cpu_s - u0.cpu_s,
    })
}

/// Scenario 5: eBGP routes into the DUT's kernel table.
fn fib(kind: Kind, cfg: &RunConfig) -> anyhow::Result<Sample> {
    let n = cfg.scale.routes();
    let topo = Topology::new(1)?;
    let plan = ebgp_plan(&[], true);
    let mut d = dut::start(kind, &cfg.bins, &topo.dut.0, &plan)?;
    let block = workload::table_block(n);
    let announce = workload::announce_stream(&block, cfg.scale.attr_sets(), Some(GEN_AS), GEN)?;
    let generator = speaker(
        &topo.generator,
        GEN,
        DUT_GEN,
        GEN_AS,
        Arc::new(Universe::default()),
        None,
    );
    wait_established(&[&generator], &mut d, cfg.timeout)?;
    let _ka = Keepalives::start(vec![generator.keepalive_handle()]);
    let counter = KernelCounter::start(topo.dut.path())?;
    std::thread::sleep(Duration::from_millis(500));
    let base = counter.progress.held.load(Ordering::SeqCst);
    counter.progress.set_target(base + u64::from(n));
    let u0 = usage(d.pid());
    let t0 = now_ns();
    generator.send(&announce)?;
    let t_sent = now_ns();
    let deadline = Instant::now() + cfg.timeout;
    let mut first = 0;
    let done = loop {
        if first == 0 && counter.progress.held.load(Ordering::SeqCst) > base {
            first = now_ns();
        }
        let r = counter.progress.reached_at.load(Ordering::SeqCst);
        if r != 0 {
            break r;
        }
        if let Some(e) = counter.progress.error() {
            bail!("kernel route counter: {e}");
        }
        if !d.is_running() {
            bail!("the DUT exited:\n{}", d.log_tail());
        }
        if Instant::now() > deadline {
            bail!(
                "fib: {} of {n} routes in the kernel after {:?}",
                counter.progress.held.load(Ordering::SeqCst) - base,
                cfg.timeout
            );
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    let u1 = usage(d.pid());
    if counter.overran.load(Ordering::SeqCst) {
        eprintln!("  (fib: the route monitor overran; counted by dumps every 20 ms)");
    }
    let first = if first == 0 { done } else { first };
    Ok(Sample {
        metrics: vec![
            ("first UPDATE→all s", secs(done.saturating_sub(t0))),
            ("last UPDATE→all s", secs(done.saturating_sub(t_sent))),
            (
                "install routes/s",
                f64::from(n) / secs(done.saturating_sub(first)).max(1e-6),
            ),
        ],
        peak_mib: u1.hwm_kib as f64 / 1024.0,
        cpu_s: u1.cpu_s - u0.cpu_s,
    })
}

/// The harness floor: generators straight into receivers (no DUT), one session per
/// receiver, all sending the transit table at once.
fn floor_once(cfg: &RunConfig, sessions: u32) -> anyhow::Result<f64> {
    let n = cfg.scale.routes();
    let g = Ns::new("thfg");
    let r = Ns::new("thfr");
    let gen_addrs: Vec<Ipv4Addr> = (0..sessions)
        .map(|i| Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 9, 0, 2)) + i))
        .collect();
    let recv_addrs: Vec<Ipv4Addr> = (0..sessions)
        .map(|i| Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 9, 128, 2)) + i))
        .collect();
    let (gdev, rdev) = tern_tests::veth(&g.0, &[], &r.0, &[]);
    net::add_addresses(&g, &gdev, &gen_addrs, 16)?;
    net::add_addresses(&r, &rdev, &recv_addrs, 16)?;
    let block = workload::table_block(n);
    let announce = bytes::Bytes::from(workload::announce_stream(
        &block,
        cfg.scale.attr_sets(),
        Some(GEN_AS),
        GEN,
    )?);
    let universe = Arc::new(Universe::new(vec![block]));
    let recvs: Vec<Speaker> = recv_addrs
        .iter()
        .map(|&a| {
            Speaker::start(SpeakerConfig {
                netns: r.path(),
                connect: Connect::Passive { local: a },
                asn: RECV_AS,
                router_id: a,
                universe: universe.clone(),
                initial: None,
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let gens: Vec<Speaker> = gen_addrs
        .iter()
        .zip(&recv_addrs)
        .map(|(&a, &ra)| speaker(&g, a, ra, GEN_AS, Arc::new(Universe::default()), None))
        .collect();
    let deadline = Instant::now() + cfg.timeout;
    while !(recvs.iter().all(Speaker::established) && gens.iter().all(Speaker::established)) {
        if let Some(e) = recvs.iter().chain(&gens).find_map(|s| s.progress.error()) {
            bail!("floor session: {e}");
        }
        if Instant::now() > deadline {
            bail!("floor sessions did not come up");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    for s in &recvs {
        s.progress.set_target(u64::from(n));
    }
    let t0 = now_ns();
    std::thread::scope(|scope| -> anyhow::Result<()> {
        let handles: Vec<_> = gens
            .iter()
            .map(|s| {
                let data = announce.clone();
                scope.spawn(move || s.send(&data))
            })
            .collect();
        for h in handles {
            h.join().map_err(|_| anyhow!("a floor sender panicked"))??;
        }
        Ok(())
    })?;
    let deadline = Instant::now() + cfg.timeout;
    let mut latest = 0;
    for s in &recvs {
        loop {
            let t = s.progress.reached_at.load(Ordering::SeqCst);
            if t != 0 {
                latest = latest.max(t);
                break;
            }
            if let Some(e) = s.progress.error() {
                bail!("floor receiver: {e}");
            }
            if Instant::now() > deadline {
                bail!("floor: receivers short after {:?}", cfg.timeout);
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    Ok(secs(latest.saturating_sub(t0)))
}

/// Measures and formats the harness floor.
pub fn floor(cfg: &RunConfig) -> anyhow::Result<String> {
    let mut out = String::from("### Harness floor (generator straight into receivers, no DUT)\n\n");
    let _ = writeln!(out, "| sessions | {} routes each, s |", cfg.scale.routes());
    let _ = writeln!(out, "|---:|---|");
    let mut counts = vec![1];
    counts.extend(cfg.scale.rr_clients());
    for c in counts {
        let mut v = Vec::new();
        for _ in 0..cfg.runs {
            v.push(floor_once(cfg, c)?);
        }
        let _ = writeln!(out, "| {c} | {} |", stat(&v, 3));
    }
    out.push('\n');
    print!("{out}");
    Ok(out)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn fmt_num(x: f64, digits: usize) -> String {
    if x.abs() >= 1000.0 {
        format!("{x:.0}")
    } else {
        format!("{x:.digits$}")
    }
}

fn stat(values: &[f64], digits: usize) -> String {
    let mut v = values.to_vec();
    let m = median(&mut v);
    if v.len() == 1 {
        return fmt_num(m, digits);
    }
    format!(
        "{} ({}–{})",
        fmt_num(m, digits),
        fmt_num(v[0], digits),
        fmt_num(v[v.len() - 1], digits)
    )
}

/// Runs one scenario (all its sizes) against every DUT and returns its markdown table(s).
pub fn run_scenario(s: ScenarioKind, duts: &[Kind], cfg: &RunConfig) -> String {
    let variants: Vec<(String, Option<u32>)> = match s {
        ScenarioKind::Transit => vec![(
            format!(
                "1. Transit: {} IPv4 prefixes in {} attribute sets, eBGP in and out",
                cfg.scale.routes(),
                cfg.scale.attr_sets()
            ),
            None,
        )],
        ScenarioKind::Rr => cfg
            .scale
            .rr_clients()
            .into_iter()
            .map(|c| {
                (
                    format!(
                        "2. Route reflector: {} routes from one client to {c} clients",
                        cfg.scale.routes()
                    ),
                    Some(c),
                )
            })
            .collect(),
        ScenarioKind::Memory => vec![(
            format!(
                "3. Full table: {} routes into the DUT, (peak RSS − idle RSS) / routes",
                cfg.scale.memory_routes()
            ),
            None,
        )],
        ScenarioKind::Mesh => cfg
            .scale
            .mesh_peers()
            .into_iter()
            .map(|p| {
                (
                    format!(
                        "4. Calico mesh: {p} iBGP sessions, one /26 each; idle CPU over {} s after",
                        cfg.scale.idle_window().as_secs()
                    ),
                    Some(p),
                )
            })
            .collect(),
        ScenarioKind::Fib => vec![(
            format!(
                "5. FIB: {} eBGP routes into the DUT's kernel table",
                cfg.scale.routes()
            ),
            None,
        )],
    };
    let mut out = String::new();
    for (title, size) in variants {
        println!("== {title}");
        let mut rows: BTreeMap<Kind, Result<Vec<Sample>, String>> = BTreeMap::new();
        for &k in duts {
            if s == ScenarioKind::Fib && !k.has_fib() {
                rows.insert(k, Err("no kernel programming without zebra".into()));
                continue;
            }
            let mut samples = Vec::new();
            let mut failure = None;
            for run in 0..cfg.runs {
                let r = match (s, size) {
                    (ScenarioKind::Transit, _) => transit(k, cfg),
                    (ScenarioKind::Rr, Some(c)) => rr(k, cfg, c),
                    (ScenarioKind::Memory, _) => memory(k, cfg),
                    (ScenarioKind::Mesh, Some(p)) => mesh(k, cfg, p),
                    (ScenarioKind::Fib, _) => fib(k, cfg),
                    _ => Err(anyhow!("no size for this scenario")),
                };
                match r {
                    Ok(sample) => {
                        println!(
                            "  {} run {}: {} | peak {:.1} MiB | CPU {:.2} s | load {}",
                            k.label(),
                            run + 1,
                            sample
                                .metrics
                                .iter()
                                .map(|(n, v)| format!("{n} {}", fmt_num(*v, 3)))
                                .collect::<Vec<_>>()
                                .join(", "),
                            sample.peak_mib,
                            sample.cpu_s,
                            loadavg()
                        );
                        samples.push(sample);
                    }
                    Err(e) => {
                        let first = format!("{e:#}");
                        let short = first.lines().next().unwrap_or("").to_string();
                        eprintln!("  {} run {}: FAILED: {first}", k.label(), run + 1);
                        failure = Some(short);
                        break;
                    }
                }
            }
            rows.insert(
                k,
                match failure {
                    Some(f) if samples.is_empty() => Err(f),
                    _ => Ok(samples),
                },
            );
        }
        out.push_str(&table(&title, &rows));
    }
    out
}

fn table(title: &str, rows: &BTreeMap<Kind, Result<Vec<Sample>, String>>) -> String {
    let columns: Vec<&'static str> = rows
        .values()
        .find_map(|r| r.as_ref().ok().and_then(|v| v.first()))
        .map(|s| s.metrics.iter().map(|(n, _)| *n).collect())
        .unwrap_or_default();
    let mut out = format!("### {title}\n\n| DUT |");
    for c in &columns {
        let _ = write!(out, " {c} |");
    }
    out.push_str(" peak RSS MiB | CPU s |\n|---|");
    for _ in 0..columns.len() + 2 {
        out.push_str("---|");
    }
    out.push('\n');
    for (k, r) in rows {
        let _ = write!(out, "| {} |", k.label());
        match r {
            Ok(samples) => {
                for (i, _) in columns.iter().enumerate() {
                    let v: Vec<f64> = samples
                        .iter()
                        .filter_map(|s| s.metrics.get(i).map(|m| m.1))
                        .collect();
                    let _ = write!(out, " {} |", stat(&v, 3));
                }
                let peak: Vec<f64> = samples.iter().map(|s| s.peak_mib).collect();
                let cpu: Vec<f64> = samples.iter().map(|s| s.cpu_s).collect();
                let _ = writeln!(out, " {} | {} |", stat(&peak, 1), stat(&cpu, 2));
            }
            Err(e) => {
                // The reason goes in the first cell; the rest stay empty.
                let _ = write!(out, " {} |", e.replace('|', "/"));
                for _ in 0..columns.len() + 1 {
                    out.push_str(" — |");
                }
                out.push('\n');
            }
        }
    }
    out.push('\n');
    print!("{out}");
    out
}
