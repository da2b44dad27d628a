//! The FIB driver against a real kernel: coalescing, reconcile after a restart, restoring
//! tampered routes, learning with interface globs, `ENOBUFS` resync, late devices.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashSet;
use std::future::Future;
use std::net::IpAddr;
use std::time::Duration;

use common::{RouteMonitor, add_tunl0, lab, routes};
use fib_netlink::{
    Damping, Fib, FibConfig, FibEvent, FibHandle, InterfacePatterns, NextHop, Reconcile, Route,
    RouteError,
};
use ipnet::IpNet;
use tern_tests::{Netns, require_root};
use tokio::sync::mpsc::Receiver;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn via(p: &str, gw: &str) -> Route {
    Route::unicast(net(p), vec![NextHop::via(ip(gw))])
}

/// Runs `body` on a single-threaded tokio runtime inside `ns`: the driver it starts and
/// its sockets live there.
fn in_ns<F, Fut>(ns: &Netns, body: F)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    ns.run_in(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(body())
    })
}

/// Starts a driver with `config`; returns its handle and events.
fn start(config: FibConfig) -> (FibHandle, Receiver<FibEvent>, tokio::task::JoinHandle<()>) {
    let (fib, handle, events) = Fib::new(config).unwrap();
    let task = tokio::spawn(async move { fib.run().await.unwrap() });
    (handle, events, task)
}

fn immediate() -> FibConfig {
    FibConfig {
        reconcile: Reconcile::Immediately,
        ..FibConfig::default()
    }
}

/// Waits (yielding to the driver) until `f` holds, or panics after `limit`.
async fn until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let start = tokio::time::Instant::now();
    while !f() {
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Takes events until `pick` returns `Some`, or panics after `limit`.
async fn event<T>(
    events: &mut Receiver<FibEvent>,
    limit: Duration,
    mut pick: impl FnMut(&FibEvent) -> Option<T>,
) -> T {
    tokio::time::timeout(limit, async {
        loop {
            let ev = events.recv().await.expect("driver ended");
            if let Some(t) = pick(&ev) {
                return t;
            }
        }
    })
    .await
    .expect("event did not come")
}

fn show(ns_name: &str) -> String {
    let out = std::process::Command::new("ip")
        .args(["-n", ns_name, "route", "show"])
        .output()
        .unwrap();
    let six = std::process::Command::new("ip")
        .args(["-n", ns_name, "-6", "route", "show"])
        .output()
        .unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&six.stdout)
    )
}

const SECOND: Duration = Duration::from_secs(1);
const PATIENCE: Duration = Duration::from_secs(10);

#[test]
fn ten_flips_before_the_write_reach_the_kernel_once() {
    if !require_root("ten_flips_before_the_write_reach_the_kernel_once") {
        return;
    }
    let lab = lab("fibc");
    let mon = RouteMonitor::start(&lab.ns);
    let name = lab.ns.name().to_string();
    in_ns(&lab.ns, move || async move {
        let (fib, handle, _events) = Fib::new(immediate()).unwrap();
        // The driver has not run yet: all ten flips coalesce.
        for i in 0..10 {
            let gw = if i % 2 == 0 { "192.0.2.3" } else { "192.0.2.2" };
            handle.set(via("10.20.0.0/24", gw));
        }
        tokio::spawn(async move { fib.run().await.unwrap() });
        until("the route", PATIENCE, || {
            show(&name).contains("10.20.0.0/24 via 192.0.2.2")
        })
        .await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        drop(handle);
    });
    let lines = mon.lines_with("10.20.0.0/24");
    assert_eq!(lines.len(), 1, "expected one write:\n{}", lines.join("\n"));
    assert!(lines[0].contains("via 192.0.2.2"), "{}", lines[0]);
}

#[test]
fn restart_keeps_routes_removes_stale_ones_and_spares_foreign_ones() {
    if !require_root("restart_keeps_routes_removes_stale_ones_and_spares_foreign_ones") {
        return;
    }
    let lab = lab("fibg");
    let name = lab.ns.name().to_string();
    // First life: three routes of ours.
    let n = name.clone();
    in_ns(&lab.ns, move || async move {
        let (handle, _events, task) = start(immediate());
        handle.set_all([
            via("10.30.0.0/24", "192.0.2.2"),
            via("10.31.0.0/24", "192.0.2.2"),
            Route::blackhole(net("10.32.0.0/26")),
            Route::unicast(
                net("2001:db8:30::/64"),
                vec![NextHop::via(ip("2001:db8::2"))],
            ),
        ]);
        until("four routes", PATIENCE, || {
            show(&n).matches("proto bird").count() == 4
        })
        .await;
        drop(handle);
        task.await.unwrap();
    });
    // Dead: the routes persist. Someone adds a static route meanwhile.
    let before = routes(&lab.ns, &["proto", "bird"]);
    assert_eq!(before.lines().count(), 4, "{before}");
    lab.ns.ip([
        "route",
        "add",
        "10.33.0.0/24",
        "via",
        "192.0.2.3",
        "proto",
        "static",
    ]);
    let mon = RouteMonitor::start(&lab.ns);

    // Second life with graceful restart: one route kept, one changed, one gone.
    let n = name.clone();
    in_ns(&lab.ns, move || async move {
        let config = FibConfig {
            reconcile: Reconcile::AfterConverged {
                deadline: Duration::from_secs(60),
            },
            ..FibConfig::default()
        };
        let (handle, mut events, task) = start(config);
        handle.set_all([
            via("10.30.0.0/24", "192.0.2.2"),
            via("10.31.0.0/24", "192.0.2.3"),
            Route::unicast(
                net("2001:db8:30::/64"),
                vec![NextHop::via(ip("2001:db8::2"))],
            ),
        ]);
        until("the changed route", PATIENCE, || {
            show(&n).contains("10.31.0.0/24 via 192.0.2.3")
        })
        .await;
        // Not converged yet: the stale blackhole stays.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(show(&n).contains("blackhole 10.32.0.0/26"));
        handle.converged();
        let stale = event(&mut events, PATIENCE, |e| match e {
            FibEvent::Reconciled { stale } => Some(*stale),
            _ => None,
        })
        .await;
        assert_eq!(stale, 1);
        until("the stale route to go", PATIENCE, || {
            !show(&n).contains("10.32.0.0/26")
        })
        .await;
        drop(handle);
        task.await.unwrap();
    });
    let after = routes(&lab.ns, &[]);
    assert!(
        after
            .lines()
            .any(|l| l.starts_with("10.33.0.0/24 via 192.0.2.3") && l.contains("proto static")),
        "{after}"
    );
    assert!(after.contains("10.30.0.0/24 via 192.0.2.2"), "{after}");
    // Only the difference was written: nothing for the unchanged routes.
    assert!(mon.lines_with("10.30.0.0/24").is_empty(), "{}", mon.log());
    assert!(
        mon.lines_with("2001:db8:30::/64").is_empty(),
        "{}",
        mon.log()
    );
    assert_eq!(mon.lines_with("10.31.0.0/24").len(), 1, "{}", mon.log());
    assert!(mon.lines_with("10.33.0.0/24").is_empty(), "{}", mon.log());
}

#[test]
fn a_route_deleted_or_changed_by_someone_else_comes_back() {
    if !require_root("a_route_deleted_or_changed_by_someone_else_comes_back") {
        return;
    }
    let lab = lab("fibt");
    add_tunl0(&lab.ns);
    let name = lab.ns.name().to_string();
    in_ns(&lab.ns, move || async move {
        let (handle, _events, task) = start(immediate());
        let ipip = Route::unicast(
            net("10.40.0.0/26"),
            vec![NextHop::onlink(ip("198.51.100.7"), "tunl0")],
        );
        handle.set(ipip);
        handle.set(Route::unicast(
            net("2001:db8:40::/64"),
            vec![NextHop::via(ip("2001:db8::2"))],
        ));
        let want = "10.40.0.0/26 via 198.51.100.7 dev tunl0 proto bird onlink";
        until("the route", PATIENCE, || show(&name).contains(want)).await;

        run(&name, &["route", "del", "10.40.0.0/26"]);
        let t = tokio::time::Instant::now();
        until("the deleted route back (1 s)", SECOND, || {
            show(&name).contains(want)
        })
        .await;
        eprintln!(
            "restored within {:?} of `ip route del` (seen by polling `ip route`)",
            t.elapsed()
        );

        run(
            &name,
            &[
                "route",
                "replace",
                "10.40.0.0/26",
                "via",
                "192.0.2.3",
                "proto",
                "bird",
            ],
        );
        until("the changed route restored (1 s)", SECOND, || {
            show(&name).contains(want)
        })
        .await;

        run(&name, &["-6", "route", "del", "2001:db8:40::/64"]);
        until("the IPv6 route back (1 s)", SECOND, || {
            show(&name).contains("2001:db8:40::/64 via 2001:db8::2")
        })
        .await;

        // Another protocol taking the prefix over is not fought; once it lets go, ours
        // comes back.
        run(
            &name,
            &[
                "route",
                "replace",
                "10.40.0.0/26",
                "via",
                "192.0.2.3",
                "proto",
                "static",
            ],
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            show(&name).contains("10.40.0.0/26 via 192.0.2.3"),
            "{}",
            show(&name)
        );
        run(&name, &["route", "del", "10.40.0.0/26", "proto", "static"]);
        until("ours back after the other protocol left", PATIENCE, || {
            show(&name).contains(want)
        })
        .await;

        // Removing it ourselves is not tampering.
        handle.remove(Route::blackhole(net("10.40.0.0/26")).key());
        until("our delete", PATIENCE, || {
            !show(&name).contains("10.40.0.0/26")
        })
        .await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!show(&name).contains("10.40.0.0/26"));
        drop(handle);
        task.await.unwrap();
    });
}

fn run(ns: &str, args: &[&str]) {
    let out = std::process::Command::new("ip")
        .args(["-n", ns])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Routes learned so far, by prefix, from a stream of events.
fn learned(set: &mut HashSet<IpNet>, ev: &FibEvent) {
    match ev {
        FibEvent::LearnedAdded(r) => {
            set.insert(r.prefix);
        }
        FibEvent::LearnedRemoved(r) => {
            set.remove(&r.prefix);
        }
        _ => {}
    }
}

#[test]
fn learning_follows_the_interface_globs() {
    if !require_root("learning_follows_the_interface_globs") {
        return;
    }
    let lab = lab("fibl");
    let ns = &lab.ns;
    ns.ip([
        "link",
        "add",
        "cali12345",
        "type",
        "veth",
        "peer",
        "name",
        "calip",
    ]);
    ns.ip(["link", "set", "cali12345", "up"]);
    ns.ip(["link", "set", "calip", "up"]);
    ns.ip(["addr", "add", "169.254.1.1/30", "dev", "cali12345"]);
    // Felix-style workload route and a static route on the uplink.
    ns.ip([
        "route",
        "add",
        "10.65.0.5/32",
        "dev",
        "cali12345",
        "scope",
        "link",
    ]);
    ns.ip([
        "route",
        "add",
        "10.66.0.0/24",
        "via",
        "192.0.2.2",
        "proto",
        "static",
    ]);
    let dev = lab.dev.clone();
    for (globs, want_cali) in [(r#"-"cali*", "*""#, false), (r#""cali*", -"*""#, true)] {
        let dev = dev.clone();
        let name = ns.name().to_string();
        in_ns(ns, move || async move {
            let patterns = InterfacePatterns::parse(globs).unwrap();
            let (handle, mut events, task) = start(FibConfig {
                learn: Some(patterns.clone()),
                connected: Some(patterns),
                ..immediate()
            });
            let mut seen = HashSet::new();
            let mut connected = HashSet::new();
            event(&mut events, PATIENCE, |e| {
                learned(&mut seen, e);
                if let FibEvent::ConnectedAdded(c) = e {
                    connected.insert((c.prefix, c.ifname.clone()));
                }
                matches!(e, FibEvent::Reconciled { .. }).then_some(())
            })
            .await;
            let cali = (net("169.254.1.0/30"), "cali12345".to_string());
            let uplink = (net("192.0.2.0/24"), dev.clone());
            if want_cali {
                assert_eq!(seen, HashSet::from([net("10.65.0.5/32")]), "{globs}");
                assert!(
                    connected.contains(&cali) && !connected.contains(&uplink),
                    "{connected:?}"
                );
            } else {
                assert_eq!(seen, HashSet::from([net("10.66.0.0/24")]), "{globs}");
                assert!(
                    connected.contains(&uplink) && !connected.contains(&cali),
                    "{connected:?}"
                );
            }
            // Changes arrive as events, without polling.
            run(
                &name,
                &[
                    "route",
                    "add",
                    "10.65.0.6/32",
                    "dev",
                    "cali12345",
                    "scope",
                    "link",
                ],
            );
            run(
                &name,
                &[
                    "route",
                    "add",
                    "10.67.0.0/24",
                    "via",
                    "192.0.2.3",
                    "proto",
                    "static",
                ],
            );
            run(&name, &["route", "del", "10.66.0.0/24"]);
            run(&name, &["route", "del", "10.65.0.5/32"]);
            let expect: HashSet<IpNet> = if want_cali {
                HashSet::from([net("10.65.0.6/32")])
            } else {
                HashSet::from([net("10.67.0.0/24")])
            };
            event(&mut events, PATIENCE, |e| {
                learned(&mut seen, e);
                (seen == expect).then_some(())
            })
            .await;
            // Put the start state back for the next round.
            run(&name, &["route", "del", "10.65.0.6/32"]);
            run(&name, &["route", "del", "10.67.0.0/24"]);
            run(
                &name,
                &[
                    "route",
                    "add",
                    "10.65.0.5/32",
                    "dev",
                    "cali12345",
                    "scope",
                    "link",
                ],
            );
            run(
                &name,
                &[
                    "route",
                    "add",
                    "10.66.0.0/24",
                    "via",
                    "192.0.2.2",
                    "proto",
                    "static",
                ],
            );
            drop(handle);
            task.await.unwrap();
        });
    }
}

#[test]
fn a_full_monitor_socket_costs_one_resync_and_nothing_drifts() {
    if !require_root("a_full_monitor_socket_costs_one_resync_and_nothing_drifts") {
        return;
    }
    let lab = lab("fibo");
    let dir = tern_tests::TempDir::new("fibo");
    let mut batch = String::from("route del 10.50.0.0/24\n");
    for i in 0..3000u32 {
        batch.push_str(&format!(
            "route add 10.{}.{}.0/24 via 192.0.2.3 proto static\n",
            100 + i / 256,
            i % 256
        ));
    }
    let file = dir.write("storm.batch", &batch);
    let name = lab.ns.name().to_string();
    in_ns(&lab.ns, move || async move {
        let (handle, mut events, task) = start(FibConfig {
            monitor_buffer: 4096,
            ..immediate()
        });
        handle.set(via("10.50.0.0/24", "192.0.2.2"));
        let mut seen = HashSet::new();
        event(&mut events, PATIENCE, |e| {
            matches!(e, FibEvent::Reconciled { .. }).then_some(())
        })
        .await;
        until("our route", PATIENCE, || {
            show(&name).contains("10.50.0.0/24 via 192.0.2.2")
        })
        .await;
        // Blocking this thread keeps the driver from reading while the storm fills its
        // socket: our route's deletion is among the notifications the kernel drops.
        let status = std::process::Command::new("ip")
            .args(["-n", &name, "-batch"])
            .arg(&file)
            .status()
            .unwrap();
        assert!(status.success());
        assert!(!show(&name).contains("10.50.0.0/24"));
        event(&mut events, PATIENCE, |e| {
            learned(&mut seen, e);
            matches!(e, FibEvent::Resynced { overrun: true }).then_some(())
        })
        .await;
        until("our route back after the resync", PATIENCE, || {
            show(&name).contains("10.50.0.0/24 via 192.0.2.2")
        })
        .await;
        // Learned state matches the kernel: every static route, reported once.
        while let Ok(e) = events.try_recv() {
            learned(&mut seen, &e);
        }
        assert_eq!(seen.len(), 3000);
        drop(handle);
        task.await.unwrap();
    });
}

#[test]
fn a_route_waiting_for_its_device_goes_in_when_the_device_appears() {
    if !require_root("a_route_waiting_for_its_device_goes_in_when_the_device_appears") {
        return;
    }
    let lab = lab("fibw");
    let name = lab.ns.name().to_string();
    let ns_path = lab.ns.name().to_string();
    in_ns(&lab.ns, move || async move {
        let (handle, mut events, task) = start(immediate());
        let r = Route::unicast(
            net("10.60.0.0/26"),
            vec![NextHop::onlink(ip("198.51.100.8"), "tunl0")],
        );
        handle.set(r.clone());
        // And one whose gateway is not on any link yet.
        handle.set(via("10.61.0.0/24", "198.18.0.1"));
        let mut failed = Vec::new();
        event(&mut events, PATIENCE, |e| {
            if let FibEvent::RouteFailed { key, error } = e {
                failed.push((key.prefix, error.clone()));
            }
            (failed.len() == 2).then_some(())
        })
        .await;
        failed.sort_by_key(|f| f.0);
        assert_eq!(
            failed[0],
            (
                net("10.60.0.0/26"),
                RouteError::NoSuchDevice("tunl0".into())
            )
        );
        assert!(failed[1].1.waits_for_device(), "{:?}", failed[1]);
        add_tunl0_by_name(&ns_path);
        until("the onlink route", PATIENCE, || {
            show(&name).contains("10.60.0.0/26 via 198.51.100.8 dev tunl0 proto bird onlink")
        })
        .await;
        run(&name, &["addr", "add", "198.18.0.2/24", "dev", "tunl0"]);
        until("the route via the new subnet", PATIENCE, || {
            show(&name).contains("10.61.0.0/24 via 198.18.0.1")
        })
        .await;
        drop(handle);
        task.await.unwrap();
    });
}

/// `add_tunl0` for a namespace known by name (from inside a namespaced thread).
fn add_tunl0_by_name(ns: &str) {
    let ipip = std::process::Command::new("ip")
        .args(["-n", ns, "link", "add", "tunl0", "type", "ipip"])
        .output()
        .unwrap();
    if !ipip.status.success() {
        run(
            ns,
            &[
                "link", "add", "tunl0", "type", "veth", "peer", "name", "tunl0p",
            ],
        );
        run(ns, &["link", "set", "tunl0p", "up"]);
    }
    run(ns, &["link", "set", "tunl0", "up"]);
}

#[test]
fn our_own_writes_do_not_overrun_a_small_monitor_socket() {
    if !require_root("our_own_writes_do_not_overrun_a_small_monitor_socket") {
        return;
    }
    let lab = lab("fibs");
    let name = lab.ns.name().to_string();
    in_ns(&lab.ns, move || async move {
        let (handle, mut events, task) = start(FibConfig {
            monitor_buffer: 4096,
            ..immediate()
        });
        event(&mut events, PATIENCE, |e| {
            matches!(e, FibEvent::Reconciled { .. }).then_some(())
        })
        .await;
        handle.set_all((0..3000u32).map(|i| {
            via(
                &format!("10.{}.{}.0/24", 100 + i / 256, i % 256),
                "192.0.2.2",
            )
        }));
        until("3000 routes", PATIENCE, || {
            handle.inspect(|st| st.kernel_len() == 3000 && st.pending_len() == 0)
        })
        .await;
        assert_eq!(show(&name).matches("proto bird").count(), 3000);
        // The kernel drops our echoes before they reach the monitor: no overrun, no resync.
        tokio::time::sleep(Duration::from_millis(200)).await;
        while let Ok(e) = events.try_recv() {
            assert!(!matches!(e, FibEvent::Resynced { .. }), "{e:?}");
        }
        // Someone else's change still gets through.
        run(&name, &["route", "del", "10.100.7.0/24"]);
        until("the route back", PATIENCE, || {
            show(&name).contains("10.100.7.0/24 via 192.0.2.2")
        })
        .await;
        drop(handle);
        task.await.unwrap();
    });
}

#[test]
fn ecmp_routes_settle_after_one_write() {
    if !require_root("ecmp_routes_settle_after_one_write") {
        return;
    }
    let lab = lab("fibm");
    let mon = RouteMonitor::start(&lab.ns);
    let name = lab.ns.name().to_string();
    in_ns(&lab.ns, move || async move {
        let (handle, _events, task) = start(immediate());
        handle.set(Route::unicast(
            net("10.70.0.0/24"),
            vec![
                NextHop::via(ip("192.0.2.2")),
                NextHop::via(ip("192.0.2.3")).with_weight(2),
            ],
        ));
        handle.set(Route::unicast(
            net("2001:db8:70::/64"),
            vec![
                NextHop::via(ip("2001:db8::2")),
                NextHop::via(ip("2001:db8::3")),
            ],
        ));
        until("both ECMP routes", PATIENCE, || {
            let s = show(&name);
            s.contains("10.70.0.0/24 proto bird") && s.contains("2001:db8:70::/64 proto bird")
        })
        .await;
        // Give any echo-triggered rewrite a chance to happen.
        tokio::time::sleep(Duration::from_millis(500)).await;
        handle.inspect(|st| assert_eq!(st.pending_len(), 0));
        drop(handle);
        task.await.unwrap();
    });
    // The kernel's echo of our write matched what we asked for: no rewrites.
    assert_eq!(mon.lines_with("10.70.0.0/24").len(), 1, "{}", mon.log());
    assert_eq!(mon.lines_with("2001:db8:70::/64").len(), 1, "{}", mon.log());
}

#[test]
fn the_graceful_restart_deadline_prunes_without_a_signal() {
    if !require_root("the_graceful_restart_deadline_prunes_without_a_signal") {
        return;
    }
    let lab = lab("fibx");
    lab.ns.ip([
        "route",
        "add",
        "10.80.0.0/24",
        "via",
        "192.0.2.2",
        "proto",
        "bird",
    ]);
    let name = lab.ns.name().to_string();
    in_ns(&lab.ns, move || async move {
        let (handle, mut events, task) = start(FibConfig {
            reconcile: Reconcile::AfterConverged {
                deadline: Duration::from_secs(2),
            },
            ..FibConfig::default()
        });
        handle.set(via("10.81.0.0/24", "192.0.2.2"));
        until("the new route", PATIENCE, || {
            show(&name).contains("10.81.0.0/24")
        })
        .await;
        assert!(
            show(&name).contains("10.80.0.0/24"),
            "pruned before the deadline"
        );
        let stale = event(&mut events, PATIENCE, |e| match e {
            FibEvent::Reconciled { stale } => Some(*stale),
            _ => None,
        })
        .await;
        assert_eq!(stale, 1);
        until("the stale route to go", PATIENCE, || {
            !show(&name).contains("10.80.0.0/24")
        })
        .await;
        assert!(show(&name).contains("10.81.0.0/24"));
        drop(handle);
        task.await.unwrap();
    });
}

#[test]
fn routes_lost_with_a_deleted_device_come_back_with_it() {
    if !require_root("routes_lost_with_a_deleted_device_come_back_with_it") {
        return;
    }
    let lab = lab("fibv");
    add_tunl0(&lab.ns);
    let name = lab.ns.name().to_string();
    in_ns(&lab.ns, move || async move {
        let (handle, mut events, task) = start(immediate());
        handle.set(Route::unicast(
            net("10.90.0.0/26"),
            vec![NextHop::onlink(ip("198.51.100.5"), "tunl0")],
        ));
        let want = "10.90.0.0/26 via 198.51.100.5 dev tunl0 proto bird onlink";
        until("the route", PATIENCE, || show(&name).contains(want)).await;
        // The kernel drops IPv4 routes with their device without a notification: the
        // link's removal makes the driver look, and the route then waits for tunl0.
        run(&name, &["link", "del", "tunl0"]);
        event(&mut events, PATIENCE, |e| match e {
            FibEvent::RouteFailed { key, error } if key.prefix == net("10.90.0.0/26") => {
                assert_eq!(*error, RouteError::NoSuchDevice("tunl0".into()));
                Some(())
            }
            _ => None,
        })
        .await;
        add_tunl0_by_name(&name);
        until("the route back with tunl0", PATIENCE, || {
            show(&name).contains(want)
        })
        .await;
        drop(handle);
        task.await.unwrap();
    });
}

/// Named learned routes and connected prefixes so far, from a stream of events.
#[derive(Default, Debug)]
struct Seen {
    learned: HashSet<(IpNet, String)>,
    connected: HashSet<(IpNet, String)>,
}

impl Seen {
    fn take(&mut self, ev: &FibEvent) {
        let named = |r: &Route| {
            let dev = match &r.kind {
                fib_netlink::RouteKind::Unicast { nexthops } => nexthops
                    .first()
                    .and_then(|n| n.dev.clone())
                    .map_or(String::new(), |d| match d {
                        fib_netlink::Device::Name(n) => n,
                        fib_netlink::Device::Index(i) => format!("#{i}"),
                    }),
                _ => String::new(),
            };
            (r.prefix, dev)
        };
        match ev {
            FibEvent::LearnedAdded(r) => {
                self.learned.insert(named(r));
            }
            FibEvent::LearnedRemoved(r) => {
                self.learned.remove(&named(r));
            }
            FibEvent::ConnectedAdded(c) => {
                self.connected.insert((c.prefix, c.ifname.clone()));
            }
            FibEvent::ConnectedRemoved(c) => {
                self.connected.remove(&(c.prefix, c.ifname.clone()));
            }
            _ => {}
        }
    }
}

#[test]
fn an_interface_created_after_start_is_learned_and_forgotten_with_its_routes() {
    if !require_root("an_interface_created_after_start_is_learned_and_forgotten_with_its_routes") {
        return;
    }
    let lab = lab("fibn");
    let name = lab.ns.name().to_string();
    in_ns(&lab.ns, move || async move {
        // Learn only workload interfaces, as a node that imports Felix's routes would.
        let patterns = InterfacePatterns::parse(r#""cali*""#).unwrap();
        let (handle, mut events, task) = start(FibConfig {
            learn: Some(patterns.clone()),
            connected: Some(patterns),
            ..immediate()
        });
        let mut seen = Seen::default();
        event(&mut events, PATIENCE, |e| {
            seen.take(e);
            matches!(e, FibEvent::Reconciled { .. }).then_some(())
        })
        .await;
        assert!(
            seen.learned.is_empty() && seen.connected.is_empty(),
            "{seen:?}"
        );

        // A workload interface appears later, created under another name and renamed (the
        // way a CNI plugin may), then given an address and routes.
        run(
            &name,
            &[
                "link", "add", "tmp77", "type", "veth", "peer", "name", "wl77",
            ],
        );
        run(&name, &["link", "set", "tmp77", "name", "cali77"]);
        run(&name, &["link", "set", "cali77", "up"]);
        run(&name, &["link", "set", "wl77", "up"]);
        run(&name, &["addr", "add", "169.254.7.1/30", "dev", "cali77"]);
        run(
            &name,
            &[
                "route",
                "add",
                "10.65.7.1/32",
                "dev",
                "cali77",
                "scope",
                "link",
            ],
        );
        run(
            &name,
            &["-6", "route", "add", "2001:db8:77::1/128", "dev", "cali77"],
        );
        let cali = |p: &str| (net(p), "cali77".to_string());
        event(&mut events, PATIENCE, |e| {
            seen.take(e);
            (seen.learned.len() == 2 && seen.connected.len() == 1).then_some(())
        })
        .await;
        assert_eq!(
            seen.learned,
            HashSet::from([cali("10.65.7.1/32"), cali("2001:db8:77::1/128")])
        );
        assert_eq!(seen.connected, HashSet::from([cali("169.254.7.0/30")]));

        // Down: the kernel drops the IPv4 route without a notification; it is unlearned all
        // the same (and the IPv6 one, which the kernel does announce).
        run(&name, &["link", "set", "cali77", "down"]);
        event(&mut events, PATIENCE, |e| {
            seen.take(e);
            (seen.learned.is_empty() && seen.connected.is_empty()).then_some(())
        })
        .await;

        // Up again with its route, then deleted: forgotten again.
        run(&name, &["link", "set", "cali77", "up"]);
        run(
            &name,
            &[
                "route",
                "add",
                "10.65.7.1/32",
                "dev",
                "cali77",
                "scope",
                "link",
            ],
        );
        event(&mut events, PATIENCE, |e| {
            seen.take(e);
            (seen.learned.len() == 1 && seen.connected.len() == 1).then_some(())
        })
        .await;
        assert_eq!(seen.learned, HashSet::from([cali("10.65.7.1/32")]));
        run(&name, &["link", "del", "cali77"]);
        event(&mut events, PATIENCE, |e| {
            seen.take(e);
            (seen.learned.is_empty() && seen.connected.is_empty()).then_some(())
        })
        .await;
        // Nothing of it is left in the kernel to learn from either.
        assert!(!show(&name).contains("10.65.7.1"), "{}", show(&name));
        drop(handle);
        task.await.unwrap();
    });
}

#[test]
fn a_flapping_route_is_damped_and_settles_to_its_last_state() {
    if !require_root("a_flapping_route_is_damped_and_settles_to_its_last_state") {
        return;
    }
    let lab = lab("fibd");
    let mon = RouteMonitor::start(&lab.ns);
    let name = lab.ns.name().to_string();
    in_ns(&lab.ns, move || async move {
        // Short times so the test settles quickly; the rules are the default ones.
        let (handle, mut events, task) = start(FibConfig {
            damping: Some(Damping {
                hold_down: Duration::from_millis(200),
                half_life: Duration::from_secs(1),
                max_hold: Duration::from_secs(3),
                ..Damping::default()
            }),
            ..immediate()
        });
        event(&mut events, PATIENCE, |e| {
            matches!(e, FibEvent::Reconciled { .. }).then_some(())
        })
        .await;
        let a = via("10.50.0.0/24", "192.0.2.2");
        let steady = via("10.51.0.0/24", "192.0.2.2");
        handle.set(a.clone());
        handle.set(steady.clone());
        until("the routes", PATIENCE, || {
            show(&name).contains("10.50.0.0/24 via 192.0.2.2")
        })
        .await;
        // A peer flapping: withdrawn and back every 50 ms, 40 times (80 writes undamped).
        for _ in 0..40 {
            handle.remove(a.key());
            tokio::time::sleep(Duration::from_millis(25)).await;
            handle.set(a.clone());
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        // It ends with another next hop, which the kernel gets once the key has settled.
        handle.set(via("10.50.0.0/24", "192.0.2.3"));
        until("the last state", PATIENCE, || {
            show(&name).contains("10.50.0.0/24 via 192.0.2.3")
        })
        .await;
        assert!(show(&name).contains("10.51.0.0/24 via 192.0.2.2"));
        drop(handle);
        task.await.unwrap();
    });
    let lines = mon.lines_with("10.50.0.0/24");
    eprintln!("{} kernel changes for 80 flaps", lines.len());
    // Undamped: 82. Damped: the first writes before suppression (a few more if a loaded
    // machine stretches the 25 ms sleeps past the hold-down), then one.
    assert!(
        lines.len() <= 20,
        "{} kernel changes for 80 flaps:\n{}",
        lines.len(),
        lines.join("\n")
    );
    assert!(lines.last().unwrap().contains("via 192.0.2.3"), "{lines:?}");
    assert_eq!(mon.lines_with("10.51.0.0/24").len(), 1);
}

#[test]
fn a_daemon_fighting_over_our_route_is_backed_off_and_the_route_still_returns() {
    if !require_root("a_daemon_fighting_over_our_route_is_backed_off_and_the_route_still_returns") {
        return;
    }
    let lab = lab("fibf");
    let mon = RouteMonitor::start(&lab.ns);
    let name = lab.ns.name().to_string();
    in_ns(&lab.ns, move || async move {
        let (handle, mut events, task) = start(immediate());
        handle.set(via("10.41.0.0/24", "192.0.2.2"));
        let want = "10.41.0.0/24 via 192.0.2.2";
        until("the route", PATIENCE, || show(&name).contains(want)).await;
        // Another daemon deletes it every 20 ms for 2 s.
        let fighter = {
            let name = name.clone();
            std::thread::spawn(move || {
                let end = std::time::Instant::now() + Duration::from_secs(2);
                while std::time::Instant::now() < end {
                    let _ = std::process::Command::new("ip")
                        .args(["-n", &name, "route", "del", "10.41.0.0/24", "proto", "bird"])
                        .output();
                    std::thread::sleep(Duration::from_millis(20));
                }
            })
        };
        let contested = event(&mut events, PATIENCE, |e| match e {
            FibEvent::RouteFailed { key, error } => Some((key.prefix, error.clone())),
            _ => None,
        })
        .await;
        assert_eq!(contested, (net("10.41.0.0/24"), RouteError::Contested));
        tokio::task::spawn_blocking(move || fighter.join().unwrap())
            .await
            .unwrap();
        // The fight is over: the route comes back at its next (backed-off) restore.
        until("the route back after the fight", PATIENCE, || {
            show(&name).contains(want)
        })
        .await;
        drop(handle);
        task.await.unwrap();
    });
    let ours = mon
        .lines_with("10.41.0.0/24")
        .into_iter()
        .filter(|l| !l.starts_with("Deleted"))
        .count();
    eprintln!("{ours} writes of the contested route");
    // Undamped, about 100 restores; backed off: the initial write, five at once, then
    // 1 s and 2 s apart (and the last one).
    assert!((7..=12).contains(&ours), "{ours} writes of the route");
}
