//! The harness end to end at `--scale small` (1,000 prefixes, 5 route-reflector clients, 10
//! mesh peers, one run each) against Tern and BIRD 1.6: every scenario must produce a row of
//! figures for both. Timings are printed, never asserted.
//!
//! Needs root (namespaces), `ternd` (built next to the test, e.g. by `cargo test --workspace`,
//! or given by `TERND`) and `bird`; skips loudly without them, fails under `CI=true`.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::Command;

use tern_tests::{in_ci, require_binary, require_root};

fn ternd() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("TERND") {
        return Some(PathBuf::from(p));
    }
    // target/<profile>/deps/smoke-… → target/<profile>/ternd, or a release build.
    let exe = std::env::current_exe().ok()?;
    let profile_dir = exe.parent()?.parent()?;
    [
        profile_dir.join("ternd"),
        profile_dir.join("../release/ternd"),
    ]
    .into_iter()
    .find(|p| p.is_file())
}

#[test]
fn small_scale_runs_every_scenario_for_tern_and_bird() {
    const TEST: &str = "small_scale_runs_every_scenario_for_tern_and_bird";
    if !require_root(TEST) || require_binary(TEST, "bird").is_none() {
        return;
    }
    let Some(ternd) = ternd() else {
        let what = "ternd (cargo build -p tern --bin ternd, or TERND=PATH)";
        if in_ci() {
            panic!("{TEST}: {what} is missing, and CI=true forbids skipping");
        }
        eprintln!("\n*** SKIPPED {TEST}: {what} is missing ***\n");
        return;
    };
    let out = Command::new(env!("CARGO_BIN_EXE_tern-harness"))
        .args([
            "--scale",
            "small",
            "--runs",
            "1",
            "--dut",
            "tern,bird",
            "--timeout",
            "30",
            "--ternd",
        ])
        .arg(&ternd)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}\n{stderr}");
    assert!(out.status.success(), "harness failed: {stderr}");
    assert!(
        !stderr.contains("FAILED"),
        "a measurement failed:\n{stderr}"
    );
    let report = stdout
        .split("### Harness floor")
        .nth(1)
        .expect("the report starts with the harness floor");
    for title in [
        "1. Transit",
        "2. Route reflector",
        "3. Full table",
        "4. Calico mesh",
        "5. FIB",
    ] {
        let section = report
            .split("### ")
            .find(|s| s.starts_with(title))
            .unwrap_or_else(|| panic!("no table for {title}:\n{report}"));
        for dut in ["| Tern |", "| BIRD 1.6 |"] {
            let row = section
                .lines()
                .find(|l| l.starts_with(dut))
                .unwrap_or_else(|| panic!("no {dut} row in {title}:\n{section}"));
            // A row of figures: the first cell after the name is a number.
            let first = row.split('|').nth(2).unwrap().trim();
            let value: f64 = first
                .split_whitespace()
                .next()
                .unwrap()
                .parse()
                .unwrap_or_else(|_| panic!("{title}: {dut} has no figures: {row}"));
            assert!(value.is_finite() && value >= 0.0, "{row}");
        }
    }
    // Nothing left behind: namespaces are named <prefix><pid % 100000>x<n>.
    let pid: u32 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("harness pid ")?.trim().parse().ok())
        .expect("the harness prints its pid");
    let tag = format!("{}x", pid % 100_000);
    let netns = Command::new("ip").args(["netns", "list"]).output().unwrap();
    let listed = String::from_utf8_lossy(&netns.stdout);
    let left: Vec<&str> = listed
        .lines()
        .filter(|l| l.starts_with("th") && l.contains(&tag))
        .collect();
    assert!(left.is_empty(), "namespaces left behind: {left:?}");
}
