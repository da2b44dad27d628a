//! RIB throughput: ingest and withdrawal of a 1M-route IPv4 table, and the best-path change
//! for 100k prefixes after a peer loss.
//!
//! `cargo bench -p tern-benches --bench rib_speed`
//!
//! Times are the benchmark thread's CPU time (`/proc/thread-self/schedstat`), so that the
//! figures mean "one core" even on a loaded machine; `RIB_BENCH_WALL=1` measures wall time.
#![allow(clippy::unwrap_used)]

#[path = "rib_common.rs"]
mod rib_common;

use std::hint::black_box;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::{BatchSize, Criterion, Throughput};
use rib::{Down, RibConfig};
use rib_common::*;

const A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 3);

/// CPU time of the calling thread, in nanoseconds (first field of
/// `/proc/thread-self/schedstat`).
struct ThreadCpu;

fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|n| n.parse().ok()))
        .unwrap_or(0)
}

static WALL: WallTime = WallTime;

impl Measurement for ThreadCpu {
    type Intermediate = u64;
    type Value = u64;
    fn start(&self) -> u64 {
        thread_cpu_ns()
    }
    fn end(&self, i: u64) -> u64 {
        thread_cpu_ns().saturating_sub(i)
    }
    fn add(&self, a: &u64, b: &u64) -> u64 {
        a + b
    }
    fn zero(&self) -> u64 {
        0
    }
    fn to_f64(&self, v: &u64) -> f64 {
        *v as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        WALL.formatter()
    }
}

fn full_table<M: Measurement>(c: &mut Criterion<M>) {
    let updates = table(ROUTES, ATTR_SETS, 65001, A, 0);
    let withdrawals: Vec<Vec<bgp_wire::Nlri>> = updates.iter().map(|(_, n)| n.clone()).collect();
    let mut g = c.benchmark_group("rib_1m");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(8))
        .throughput(Throughput::Elements(ROUTES as u64));
    g.bench_function("ingest", |b| {
        b.iter_batched(
            || {
                let mut r = rib();
                let p = peer(&mut r, A, 65001, |_| {});
                (r, p)
            },
            |(mut r, p)| {
                feed(&mut r, p, &updates);
                black_box(r.len());
                r
            },
            BatchSize::PerIteration,
        )
    });
    let loaded = || {
        let mut r = rib();
        let p = peer(&mut r, A, 65001, |_| {});
        feed(&mut r, p, &updates);
        (r, p)
    };
    g.bench_function("withdraw_all", |b| {
        b.iter_batched(
            loaded,
            |(mut r, p)| {
                for n in &withdrawals {
                    r.withdraw(p, n);
                }
                assert!(r.is_empty());
                r
            },
            BatchSize::PerIteration,
        )
    });
    g.bench_function("peer_down", |b| {
        b.iter_batched(
            loaded,
            |(mut r, p)| {
                r.peer_down(p, Instant::now(), Down::Hard).unwrap();
                assert!(r.is_empty());
                r
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

fn failover<M: Measurement>(c: &mut Criterion<M>) {
    const N: usize = 100_000;
    let from_a = table(N, ATTR_SETS, 65001, A, 0);
    let from_b = table(N, ATTR_SETS, 65002, B, 1);
    let mut g = c.benchmark_group("rib_failover_100k");
    g.sample_size(20).throughput(Throughput::Elements(N as u64));
    let setup = || {
        let mut cfg = RibConfig::new(me(), 64512);
        cfg.kernel_policy = Some("all".into());
        let mut r = rib::Rib::new(cfg);
        let a = peer(&mut r, A, 65001, |_| {});
        let b = peer(&mut r, B, 65002, |_| {});
        peer(&mut r, Ipv4Addr::new(10, 0, 2, 1), 64512, |_| {});
        feed(&mut r, a, &from_a);
        feed(&mut r, b, &from_b);
        r.poll_updates();
        r.poll_fib();
        (r, a)
    };
    g.bench_function("best_path_change", |b| {
        b.iter_batched(
            setup,
            |(mut r, a)| {
                r.peer_down(a, Instant::now(), Down::Hard).unwrap();
                r
            },
            BatchSize::PerIteration,
        )
    });
    g.bench_function("best_path_change+fib+updates", |b| {
        b.iter_batched(
            setup,
            |(mut r, a)| {
                r.peer_down(a, Instant::now(), Down::Hard).unwrap();
                let fib = r.poll_fib();
                let out = r.poll_updates();
                assert_eq!(fib.len(), N);
                black_box(out);
                r
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

fn main() {
    if std::env::var_os("RIB_BENCH_WALL").is_some() {
        let mut c = Criterion::default().configure_from_args();
        full_table(&mut c);
        failover(&mut c);
        c.final_summary();
    } else {
        let mut c = Criterion::default()
            .with_measurement(ThreadCpu)
            .configure_from_args();
        full_table(&mut c);
        failover(&mut c);
        c.final_summary();
    }
}
