//! # tern-harness — convergence harness: Tern against BIRD 1.6, BIRD 2, GoBGP and FRR
//!
//! **Owns:** the side-by-side scenarios of issue 10 (transit, route reflection, full-table
//! memory, Calico mesh, FIB install), run with the same generator and receivers for every
//! device under test, each DUT in its own network namespace; the harness floor (generator
//! straight into receivers); the markdown table of medians (min–max), peak RSS and CPU.
//!
//! **Must not know:** Tern's internals: Tern is driven only as a binary (`ternd --config`),
//! exactly like the other daemons. The generator and receivers use `bgp-wire` for encoding
//! and decoding only.

#![forbid(unsafe_code)]

mod dut;
mod kernel;
mod net;
mod scenario;
mod speaker;
mod workload;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

use crate::dut::{Binaries, Kind};
use crate::scenario::{Scale, ScenarioKind};

/// Runs the convergence scenarios against each DUT and prints markdown tables.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Scenario: transit, rr, memory, mesh, fib or all.
    #[arg(long, default_value = "all")]
    scenario: String,
    /// DUTs, comma-separated: tern, bird, bird2, gobgp, frr.
    #[arg(long, default_value = "tern,bird,bird2,gobgp,frr")]
    dut: String,
    /// Runs per scenario and DUT.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// `small` (seconds; CI smoke) or `full` (issue 10's sizes).
    #[arg(long, default_value = "full")]
    scale: String,
    /// The ternd binary [env: TERND; default: a release build in the target directory].
    #[arg(long)]
    ternd: Option<PathBuf>,
    /// Give up on one measurement after this many seconds.
    #[arg(long, default_value_t = 180)]
    timeout: u64,
    /// Skip the harness floor.
    #[arg(long)]
    no_floor: bool,
}

fn find_ternd(arg: Option<PathBuf>) -> Option<PathBuf> {
    if let Some(p) = arg.or_else(|| std::env::var_os("TERND").map(PathBuf::from)) {
        return p.is_file().then_some(p);
    }
    // Next to this binary (same target directory and profile), then the release build.
    let exe = std::env::current_exe().ok()?;
    let dir = exe.parent()?;
    let mut candidates = vec![dir.join("ternd"), dir.join("../release/ternd")];
    if let Some(t) = std::env::var_os("CARGO_TARGET_DIR") {
        candidates.push(PathBuf::from(t).join("release/ternd"));
    }
    candidates.push(PathBuf::from("target/release/ternd"));
    candidates.into_iter().find(|p| p.is_file())
}

fn main() -> ExitCode {
    if let Err(e) = net::install_signal_cleanup() {
        eprintln!("tern-harness: {e:#}");
        return ExitCode::FAILURE;
    }
    let args = Args::parse();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tern-harness: {e:#}");
            net::cleanup_all();
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    if !nix::unistd::geteuid().is_root() {
        anyhow::bail!("needs root (network namespaces)");
    }
    let scale = Scale::parse(&args.scale)
        .ok_or_else(|| anyhow::anyhow!("--scale must be small or full"))?;
    let scenarios = ScenarioKind::parse_list(&args.scenario).ok_or_else(|| {
        anyhow::anyhow!("--scenario must be transit, rr, memory, mesh, fib or all")
    })?;
    let mut duts = Vec::new();
    for d in args.dut.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        duts.push(Kind::parse(d).ok_or_else(|| anyhow::anyhow!("unknown DUT {d:?}"))?);
    }
    let bins = Binaries {
        ternd: find_ternd(args.ternd.clone()),
    };
    println!("harness pid {}", std::process::id());
    let mut available = Vec::new();
    for k in duts {
        match bins.find(k) {
            Ok(p) => {
                println!("DUT {}: {} ({})", k.label(), p.display(), bins.version(k));
                available.push(k);
            }
            Err(why) => eprintln!("\n*** SKIPPING DUT {}: {why} ***\n", k.label()),
        }
    }
    let cfg = scenario::RunConfig {
        runs: args.runs.max(1),
        scale,
        timeout: std::time::Duration::from_secs(args.timeout),
        bins,
    };
    println!(
        "machine: {} cores, {} MiB RAM, kernel {}; load average at start: {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        scenario::mem_total_mib(),
        std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim(),
        scenario::loadavg(),
    );
    let mut report = String::new();
    if !args.no_floor {
        report.push_str(&scenario::floor(&cfg)?);
    }
    for s in scenarios {
        report.push_str(&scenario::run_scenario(s, &available, &cfg));
    }
    println!("\n{report}");
    Ok(())
}
