//! The batched writer against a real kernel, in throw-away network namespaces.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::IpAddr;

use common::{RouteMonitor, add_tunl0, lab, routes};
use fib_netlink::route::PROTOCOL_BIRD;
use fib_netlink::{Device, NextHop, Route, RouteError, RouteKind, RouteOp, RouteSocket};
use tern_tests::require_root;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn every_route_kind_is_installed_with_proto_bird() {
    if !require_root("every_route_kind_is_installed_with_proto_bird") {
        return;
    }
    let lab = lab("fibk");
    add_tunl0(&lab.ns);
    let dev = lab.dev.clone();
    let wanted = vec![
        Route::unicast(
            "10.1.0.0/24".parse().unwrap(),
            vec![NextHop::via_dev(ip("192.0.2.2"), dev.as_str())],
        ),
        Route::unicast(
            "10.2.0.0/26".parse().unwrap(),
            vec![NextHop::onlink(ip("198.51.100.9"), "tunl0")],
        ),
        Route::unicast(
            "10.3.0.0/24".parse().unwrap(),
            vec![
                NextHop::via_dev(ip("192.0.2.2"), dev.as_str()),
                NextHop::via_dev(ip("192.0.2.3"), dev.as_str()).with_weight(3),
            ],
        ),
        Route::blackhole("10.4.0.0/26".parse().unwrap()),
        Route::new("10.5.0.0/24".parse().unwrap(), RouteKind::Unreachable),
        Route::new("10.6.0.0/24".parse().unwrap(), RouteKind::Prohibit),
        Route::unicast(
            "10.7.0.0/24".parse().unwrap(),
            vec![NextHop::via(ip("192.0.2.2"))],
        )
        .with_table(100)
        .with_metric(50),
        Route::unicast(
            "2001:db8:1::/64".parse().unwrap(),
            vec![NextHop::via_dev(ip("2001:db8::2"), dev.as_str())],
        ),
        Route::unicast(
            "2001:db8:2::/64".parse().unwrap(),
            vec![
                NextHop::via_dev(ip("2001:db8::2"), dev.as_str()),
                NextHop::via_dev(ip("2001:db8::3"), dev.as_str()),
            ],
        ),
        Route::blackhole("2001:db8:3::/64".parse().unwrap()),
        Route::new("2001:db8:4::/64".parse().unwrap(), RouteKind::Unreachable).with_metric(10),
        Route::new("2001:db8:5::/64".parse().unwrap(), RouteKind::Prohibit),
    ];
    let to_write = wanted.clone();
    let (results, dumped, ifindex) = lab.ns.run_in(move || {
        let mut sock = RouteSocket::new().unwrap();
        let ops: Vec<RouteOp> = to_write.into_iter().map(RouteOp::Replace).collect();
        let results = sock.write(&ops).unwrap();
        let dumped = sock.dump_routes(Some(PROTOCOL_BIRD)).unwrap();
        let links = sock.dump_links().unwrap();
        (results, dumped, links)
    });
    assert!(results.iter().all(Result::is_ok), "{results:?}");

    let shown = routes(&lab.ns, &["table", "all"]);
    for line in [
        format!("10.1.0.0/24 via 192.0.2.2 dev {dev} proto bird"),
        "10.2.0.0/26 via 198.51.100.9 dev tunl0 proto bird onlink".to_string(),
        format!(
            "10.3.0.0/24 proto bird nexthop via 192.0.2.2 dev {dev} weight 1 nexthop via 192.0.2.3 dev {dev} weight 3"
        ),
        "blackhole 10.4.0.0/26 proto bird".to_string(),
        "unreachable 10.5.0.0/24 proto bird".to_string(),
        "prohibit 10.6.0.0/24 proto bird".to_string(),
        format!("10.7.0.0/24 via 192.0.2.2 dev {dev} table 100 proto bird metric 50"),
        format!("2001:db8:1::/64 via 2001:db8::2 dev {dev} proto bird metric 1024"),
        format!(
            "2001:db8:2::/64 proto bird metric 1024 nexthop via 2001:db8::2 dev {dev} weight 1 nexthop via 2001:db8::3 dev {dev} weight 1"
        ),
        "blackhole 2001:db8:3::/64 dev lo proto bird metric 1024".to_string(),
        "unreachable 2001:db8:4::/64 dev lo proto bird metric 10".to_string(),
        "prohibit 2001:db8:5::/64 dev lo proto bird metric 1024".to_string(),
    ] {
        assert!(
            shown.lines().any(|l| l.starts_with(&line)),
            "missing `{line}` in\n{shown}"
        );
    }

    // The dump decodes to exactly what was written (names resolved to indexes).
    let index = |n: &str| ifindex.iter().find(|l| l.name == n).unwrap().index;
    let mut expect: Vec<Route> = wanted
        .into_iter()
        .map(|mut r| {
            if let RouteKind::Unicast { nexthops } = &mut r.kind {
                for nh in nexthops {
                    if let Some(Device::Name(n)) = &nh.dev {
                        nh.dev = Some(Device::Index(index(n)));
                    }
                }
            }
            r
        })
        .collect();
    let mut got: Vec<Route> = dumped.into_iter().map(|r| r.route).collect();
    // The kernel picked the device of the gateway-only route; the model leaves it open.
    for r in &mut got {
        if let (100, RouteKind::Unicast { nexthops }) = (r.table, &mut r.kind) {
            nexthops[0].dev = None;
        }
    }
    expect.sort_by_key(Route::key);
    got.sort_by_key(Route::key);
    assert_eq!(got, expect);
}

#[test]
fn one_bad_route_fails_alone_in_its_batch() {
    if !require_root("one_bad_route_fails_alone_in_its_batch") {
        return;
    }
    let lab = lab("fibe");
    let good = |p: &str| Route::unicast(p.parse().unwrap(), vec![NextHop::via(ip("192.0.2.2"))]);
    let ops = vec![
        RouteOp::Replace(good("10.1.0.0/24")),
        // No address of ours is on a link with this gateway.
        RouteOp::Replace(Route::unicast(
            "10.2.0.0/24".parse().unwrap(),
            vec![NextHop::via(ip("203.0.113.1"))],
        )),
        RouteOp::Replace(good("10.3.0.0/24")),
        RouteOp::Replace(Route::unicast(
            "10.4.0.0/24".parse().unwrap(),
            vec![NextHop::dev("nope0")],
        )),
        RouteOp::Replace(good("10.5.0.0/24")),
        // Deleting what is not there is not an error.
        RouteOp::Delete {
            key: good("10.6.0.0/24").key(),
            protocol: PROTOCOL_BIRD,
        },
        RouteOp::Replace(good("10.7.0.0/24")),
    ];
    let results = lab
        .ns
        .run_in(move || RouteSocket::new().unwrap().write(&ops).unwrap());
    assert_eq!(results.len(), 7);
    for i in [0, 2, 4, 5, 6] {
        assert!(results[i].is_ok(), "op {i}: {:?}", results[i]);
    }
    match &results[1] {
        Err(RouteError::Kernel { errno, message }) => {
            assert!(
                *errno == libc_enetunreach() || *errno == 22,
                "errno {errno}"
            );
            // The extended ack (NETLINK_EXT_ACK) explains which part was wrong.
            assert!(
                message.as_deref().is_some_and(|m| m.contains("gateway")),
                "{message:?}"
            );
        }
        other => panic!("expected a kernel error, got {other:?}"),
    }
    assert!(results[1].as_ref().unwrap_err().waits_for_device());
    eprintln!("the kernel said: {}", results[1].as_ref().unwrap_err());
    assert_eq!(results[3], Err(RouteError::NoSuchDevice("nope0".into())));
    let shown = routes(&lab.ns, &["proto", "bird"]);
    for p in ["10.1.0.0/24", "10.3.0.0/24", "10.5.0.0/24", "10.7.0.0/24"] {
        assert!(shown.contains(p), "{p} missing:\n{shown}");
    }
    assert!(
        !shown.contains("10.2.0.0/24") && !shown.contains("10.4.0.0/24"),
        "{shown}"
    );
}

fn libc_enetunreach() -> i32 {
    101
}

#[test]
fn replace_never_leaves_a_gap() {
    if !require_root("replace_never_leaves_a_gap") {
        return;
    }
    let lab = lab("fibr");
    let mon = RouteMonitor::start(&lab.ns);
    let results = lab.ns.run_in(move || {
        let mut sock = RouteSocket::new().unwrap();
        let mut all = Vec::new();
        for i in 0..40 {
            let gw = if i % 2 == 0 { "192.0.2.2" } else { "192.0.2.3" };
            let kind = if i % 5 == 4 {
                RouteKind::Blackhole
            } else {
                RouteKind::Unicast {
                    nexthops: vec![NextHop::via(ip(gw))],
                }
            };
            all.extend(
                sock.write(&[RouteOp::Replace(Route::new(
                    "10.8.0.0/24".parse().unwrap(),
                    kind,
                ))])
                .unwrap(),
            );
        }
        all
    });
    assert!(results.iter().all(Result::is_ok));
    tern_tests::wait_for(
        "40 notifications",
        std::time::Duration::from_secs(10),
        || (mon.lines_with("10.8.0.0/24").len() >= 40).then_some(()),
    );
    let lines = mon.lines_with("10.8.0.0/24");
    assert!(
        lines.iter().all(|l| !l.starts_with("Deleted")),
        "a replace went through a delete:\n{}",
        lines.join("\n")
    );
    assert!(routes(&lab.ns, &["proto", "bird"]).contains("blackhole 10.8.0.0/24"));
}

#[test]
fn thousands_of_routes_go_in_and_out_in_batches() {
    if !require_root("thousands_of_routes_go_in_and_out_in_batches") {
        return;
    }
    let lab = lab("fibn");
    let (installed, left) = lab.ns.run_in(move || {
        let mut sock = RouteSocket::new().unwrap();
        sock.set_batch_bytes(8 * 1024);
        let routes: Vec<Route> = (0..5000u32)
            .map(|i| {
                let p = format!("10.{}.{}.0/24", 100 + i / 256, i % 256);
                Route::unicast(p.parse().unwrap(), vec![NextHop::via(ip("192.0.2.2"))])
            })
            .collect();
        let ops: Vec<RouteOp> = routes.iter().cloned().map(RouteOp::Replace).collect();
        assert!(sock.write(&ops).unwrap().iter().all(Result::is_ok));
        let installed = sock.dump_routes(Some(PROTOCOL_BIRD)).unwrap().len();
        let dels: Vec<RouteOp> = routes
            .iter()
            .map(|r| RouteOp::Delete {
                key: r.key(),
                protocol: PROTOCOL_BIRD,
            })
            .collect();
        assert!(sock.write(&dels).unwrap().iter().all(Result::is_ok));
        (
            installed,
            sock.dump_routes(Some(PROTOCOL_BIRD)).unwrap().len(),
        )
    });
    assert_eq!((installed, left), (5000, 0));
}

#[test]
fn delete_spares_other_protocols_routes() {
    if !require_root("delete_spares_other_protocols_routes") {
        return;
    }
    let lab = lab("fibd");
    lab.ns.ip([
        "route",
        "add",
        "10.9.0.0/24",
        "via",
        "192.0.2.2",
        "proto",
        "static",
    ]);
    let r = lab.ns.run_in(|| {
        let key = Route::blackhole("10.9.0.0/24".parse().unwrap()).key();
        RouteSocket::new()
            .unwrap()
            .write(&[RouteOp::Delete {
                key,
                protocol: PROTOCOL_BIRD,
            }])
            .unwrap()
    });
    assert!(r[0].is_ok());
    assert!(routes(&lab.ns, &[]).contains("10.9.0.0/24 via 192.0.2.2"));
}
