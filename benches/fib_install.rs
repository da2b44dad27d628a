//! Kernel route programming speed: fib-netlink's batched writer against `ip -batch`, with
//! the same routes, side by side, each in a fresh network namespace.
//!
//! `cargo bench -p tern-benches --bench fib_install` (as root; `FIB_BENCH_ROUTES` changes
//! the default 100 000 routes, `FIB_BENCH_ROUNDS` the default 3 rounds, alternating the
//! tools, `FIB_BENCH_BATCH_BYTES` the writer's batch size, `FIB_BENCH_ONLY=writer|driver|ip`
//! runs one part alone, `FIB_BENCH_ORDER=spread` has the writer part write the routes in
//! the driver's spread order — addresses by their bits reversed — instead of address order). Routes are IPv4 /32s `via 192.0.2.2 dev <veth> proto bird`, the
//! shape of BGP-learned routes. Skips with a message when not root.
//!
//! Two clocks: wall time, and CPU time (user + system, which holds the kernel's work done
//! inside `sendmsg`) — of this process for fib-netlink, of the `ip` child for `ip -batch`.
//! On a machine shared with other work, wall time swings with the load (`ip` pays a
//! wake-up per route, so its wall time suffers most); CPU time barely does. Each figure is
//! the median of the rounds; the ratio is the median of the rounds' ratios.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use fib_netlink::route::PROTOCOL_BIRD;
use fib_netlink::{Fib, FibConfig, NextHop, Reconcile, Route, RouteOp, RouteSocket};
use tern_tests::{Netns, TempDir, veth, which};

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

fn prefix(i: u32) -> Ipv4Addr {
    Ipv4Addr::from(0x0a00_0000 + i)
}

/// A namespace with a veth to a neighbour at 192.0.2.2 and 192.0.2.3; returns the device.
fn fresh(tag: &str) -> (Netns, Netns, String) {
    let ns = Netns::new(tag);
    let peer = Netns::new(tag);
    let (dev, _) = veth(&ns, &["192.0.2.1/24"], &peer, &["192.0.2.2/24"]);
    ns.ip([
        "neigh",
        "add",
        "192.0.2.3",
        "lladdr",
        "02:00:00:00:00:03",
        "dev",
        &dev,
    ]);
    (ns, peer, dev)
}

fn rate(n: u32, d: Duration) -> f64 {
    f64::from(n) / d.as_secs_f64()
}

/// Wall and CPU time of one operation.
#[derive(Clone, Copy, Default)]
struct Took {
    wall: Duration,
    cpu: Duration,
}

/// CPU time (user + system) used by this process so far.
fn own_cpu() -> Duration {
    use nix::time::{ClockId, clock_gettime};
    clock_gettime(ClockId::CLOCK_PROCESS_CPUTIME_ID).map_or(Duration::ZERO, Duration::from)
}

/// CPU time (user + system) of the children this process has waited for, from
/// `/proc/self/stat` (`cutime`, `cstime`, in USER_HZ = 100 ticks a second).
fn children_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let ticks: u64 = rest
        .split_whitespace()
        .skip(13) // state is field 3; cutime and cstime are fields 16 and 17
        .take(2)
        .filter_map(|f| f.parse::<u64>().ok())
        .sum();
    Duration::from_millis(ticks * 10)
}

fn timed<T>(clock: fn() -> Duration, f: impl FnOnce() -> T) -> (T, Took) {
    let (wall, cpu) = (Instant::now(), clock());
    let out = f();
    let took = Took {
        wall: wall.elapsed(),
        cpu: clock().saturating_sub(cpu),
    };
    (out, took)
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied()
}

fn count_bird_routes(ns: &Netns) -> usize {
    ns.ip(["-4", "route", "show", "proto", "bird"])
        .lines()
        .count()
}

/// Installs, replaces and deletes `n` routes with fib-netlink; returns the three times.
fn tern(n: u32) -> [Took; 3] {
    let (ns, _peer, dev) = fresh("fbt");
    let times = ns.run_in(move || {
        let mut sock = RouteSocket::new().expect("netlink socket");
        if let Some(b) = std::env::var("FIB_BENCH_BATCH_BYTES")
            .ok()
            .and_then(|v| v.parse().ok())
        {
            sock.set_batch_bytes(b);
        }
        // The driver writes long queues in spread order (fewer kernel trie resizes).
        let mut order: Vec<u32> = (0..n).collect();
        if std::env::var("FIB_BENCH_ORDER").is_ok_and(|v| v == "spread") {
            order.sort_unstable_by_key(|&i| u32::from(prefix(i)).reverse_bits());
        }
        let make = |gw: [u8; 4]| -> Vec<RouteOp> {
            order
                .iter()
                .map(|&i| {
                    let p = format!("{}/32", prefix(i)).parse().expect("prefix");
                    let nh = NextHop::via_dev(IpAddr::V4(Ipv4Addr::from(gw)), dev.as_str());
                    RouteOp::Replace(Route::unicast(p, vec![nh]))
                })
                .collect()
        };
        let install = make([192, 0, 2, 2]);
        let replace = make([192, 0, 2, 3]);
        let delete: Vec<RouteOp> = install
            .iter()
            .map(|op| RouteOp::Delete {
                key: op.key(),
                protocol: PROTOCOL_BIRD,
            })
            .collect();
        let mut times = [Took::default(); 3];
        for (t, ops) in times.iter_mut().zip([&install, &replace, &delete]) {
            let results;
            (results, *t) = timed(own_cpu, || sock.write(ops).expect("write"));
            let failed = results.iter().filter(|r| r.is_err()).count();
            assert_eq!(failed, 0, "{failed} routes failed");
        }
        times
    });
    assert_eq!(count_bird_routes(&ns), 0);
    times
}

/// Installs `n` routes through the whole driver (`FibHandle::set_all` → coalescing store →
/// batched writes, with the monitor reading every echo); returns the time until the kernel
/// holds them all and the driver has nothing left to write.
fn driver(n: u32) -> Duration {
    let (ns, _peer, dev) = fresh("fbd");
    ns.run_in(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let config = FibConfig {
                reconcile: Reconcile::Immediately,
                ..FibConfig::default()
            };
            let (fib, handle, mut events) = Fib::new(config).expect("fib");
            tokio::spawn(async move { while events.recv().await.is_some() {} });
            let task = tokio::spawn(fib.run());
            let routes: Vec<Route> = (0..n)
                .map(|i| {
                    let p = format!("{}/32", prefix(i)).parse().expect("prefix");
                    let gw = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2));
                    Route::unicast(p, vec![NextHop::via_dev(gw, dev.as_str())])
                })
                .collect();
            let start = Instant::now();
            handle.set_all(routes);
            loop {
                let done =
                    handle.inspect(|st| st.pending_len() == 0 && st.kernel_len() == n as usize);
                if done {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            let took = start.elapsed();
            drop(handle);
            task.await.expect("join").expect("driver");
            took
        })
    })
}

/// The same with `ip -batch` files.
fn ip_batch(n: u32) -> [Took; 3] {
    let (ns, _peer, dev) = fresh("fbi");
    let dir = TempDir::new("fbip");
    let script = |verb: &str, gw: &str| {
        let mut text = Vec::with_capacity(n as usize * 64);
        for i in 0..n {
            let p = prefix(i);
            if verb == "del" {
                writeln!(text, "route del {p}/32 proto bird").expect("write");
            } else {
                writeln!(text, "route {verb} {p}/32 via {gw} dev {dev} proto bird").expect("write");
            }
        }
        dir.write(&format!("{verb}.batch"), &String::from_utf8_lossy(&text))
    };
    let files = [
        script("add", "192.0.2.2"),
        script("replace", "192.0.2.3"),
        script("del", ""),
    ];
    let mut times = [Took::default(); 3];
    for (i, (t, file)) in times.iter_mut().zip(&files).enumerate() {
        ((), *t) = timed(children_cpu, || {
            ns.ip(["-batch".as_ref(), file.as_os_str()]);
        });
        if i == 0 {
            assert_eq!(count_bird_routes(&ns), n as usize);
        }
    }
    assert_eq!(count_bird_routes(&ns), 0);
    times
}

fn main() {
    if !is_root() || which("ip").is_none() {
        eprintln!("fib_install: SKIPPED (needs root and iproute2 to create network namespaces)");
        return;
    }
    let n: u32 = std::env::var("FIB_BENCH_ROUTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let rounds: u32 = std::env::var("FIB_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
        .max(1);
    // Alternate the tools, round by round, so that a change in the machine's load falls on
    // both alike.
    let mut t: Vec<[Took; 3]> = Vec::new();
    let mut ip: Vec<[Took; 3]> = Vec::new();
    let mut d: Vec<Duration> = Vec::new();
    // FIB_BENCH_ONLY=writer|driver|ip runs one part alone (for profiling).
    let only = std::env::var("FIB_BENCH_ONLY").unwrap_or_default();
    let run = |part: &str| only.is_empty() || only == part;
    for _ in 0..rounds {
        if run("driver") {
            d.push(driver(n));
        }
        if run("writer") {
            t.push(tern(n));
        }
        if run("ip") {
            ip.push(ip_batch(n));
        }
    }
    println!(
        "fib_install: {n} IPv4 routes, fresh namespace each, median of {rounds} rounds, routes/s"
    );
    println!("| operation | clock | fib-netlink | ip -batch | ratio |");
    println!("|---|---|---:|---:|---:|");
    let cell = |v: Option<f64>| v.map_or("-".to_string(), |r| format!("{r:.0}"));
    for (i, op) in ["install", "replace", "delete"].iter().enumerate() {
        for (clock, pick) in [
            ("wall", (|x: &Took| x.wall) as fn(&Took) -> Duration),
            ("CPU", |x: &Took| x.cpu),
        ] {
            let ours = median(t.iter().map(|r| rate(n, pick(&r[i]))).collect());
            let theirs = median(ip.iter().map(|r| rate(n, pick(&r[i]))).collect());
            let ratio = median(
                t.iter()
                    .zip(&ip)
                    .map(|(a, b)| pick(&b[i]).as_secs_f64() / pick(&a[i]).as_secs_f64())
                    .collect(),
            );
            println!(
                "| {op} | {clock} | {} | {} | {} |",
                cell(ours),
                cell(theirs),
                ratio.map_or("-".to_string(), |r| format!("{r:.1}×"))
            );
        }
    }
    let driver = median(d.iter().map(|x| rate(n, *x)).collect());
    let ip_install = median(ip.iter().map(|r| rate(n, r[0].wall)).collect());
    println!(
        "| install through `Fib` (driver) | wall | {} | {} | {} |",
        cell(driver),
        cell(ip_install),
        match (driver, ip_install) {
            (Some(a), Some(b)) => format!("{:.1}×", a / b),
            _ => "-".to_string(),
        }
    );
}
