//! Bytes per route of the RIB, measured with a counting global allocator.
//!
//! `cargo bench -p tern-benches --bench rib_memory` prints one line per scenario: live heap
//! bytes added by loading a 1M-route IPv4 table from one peer (1,000 attribute sets), divided
//! by the number of routes. BIRD 2 spends about 100–120 B/route on the same table.
#![allow(clippy::unwrap_used)]

#[path = "rib_common.rs"]
mod rib_common;

use std::alloc::System;
use std::net::Ipv4Addr;

use rib_common::*;
use stats_alloc::{INSTRUMENTED_SYSTEM, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

fn live() -> i64 {
    let s = GLOBAL.stats();
    s.bytes_allocated as i64 - s.bytes_deallocated as i64
}

fn measure(name: &str, build: impl FnOnce() -> rib::Rib) {
    // `-- WORD`: only the scenarios whose name contains WORD (e.g. to profile one of them
    // with heaptrack, whose peak figure is the whole process's).
    let only: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    if !only.iter().all(|w| name.contains(w.as_str())) {
        return;
    }
    let before = live();
    let rib = build();
    let bytes = live() - before;
    println!(
        "{name:<58} {:>6} routes  {:>11} bytes  {:>6.1} B/route  ({} attribute sets)",
        rib.len(),
        bytes,
        bytes as f64 / rib.len() as f64,
        rib.attribute_sets()
    );
    drop(rib);
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs a smaller table.
    let quick = std::env::args().all(|a| a != "--bench");
    let n = if quick { 10_000 } else { ROUTES };
    let updates = table(n, ATTR_SETS, 65001, Ipv4Addr::new(10, 0, 0, 2), 0);
    measure(
        "Loc-RIB + Adj-RIB-In, one eBGP peer, no outbound peers",
        || {
            let mut r = rib();
            let p = peer(&mut r, Ipv4Addr::new(10, 0, 0, 2), 65001, |_| {});
            feed(&mut r, p, &updates);
            r.poll_updates();
            r
        },
    );
    measure("  + one iBGP update group (its Adj-RIB-Out)", || {
        let mut r = rib();
        let p = peer(&mut r, Ipv4Addr::new(10, 0, 0, 2), 65001, |_| {});
        peer(&mut r, Ipv4Addr::new(10, 0, 2, 1), 64512, |_| {});
        feed(&mut r, p, &updates);
        r.poll_updates();
        r
    });
    measure("  + pre-policy Adj-RIB-In (soft reconfiguration)", || {
        let mut r = rib();
        let p = peer(&mut r, Ipv4Addr::new(10, 0, 0, 2), 65001, |c| {
            c.soft_reconfig_in = true
        });
        feed(&mut r, p, &updates);
        r.poll_updates();
        r
    });
    measure("two full tables (two eBGP peers, same prefixes)", || {
        let mut r = rib();
        let a = peer(&mut r, Ipv4Addr::new(10, 0, 0, 2), 65001, |_| {});
        let b = peer(&mut r, Ipv4Addr::new(10, 0, 0, 3), 65002, |_| {});
        feed(&mut r, a, &updates);
        feed(
            &mut r,
            b,
            &table(n, ATTR_SETS, 65002, Ipv4Addr::new(10, 0, 0, 3), 1),
        );
        r.poll_updates();
        r
    });
}
