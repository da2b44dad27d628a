//! FIB metrics with the kernel programmed: a speaker with its FIB on, in a fresh network
//! namespace (root; skips loudly without, fails under CI=true), installs its own block as a
//! blackhole; the scrape counts it.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use common::{eventually, http, node};
use tern_ops::metrics::{DatastoreGauges, serve};
use tern_speaker::{Speaker, SpeakerOptions};
use tern_tests::{Netns, require_root};

fn value(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn fib_counters_follow_the_kernel() {
    if !require_root("fib_counters_follow_the_kernel") {
        return;
    }
    let ns = Netns::new("ops-fib");
    let (installed, operations, errors) = ns.run_in(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let speaker = Speaker::new(SpeakerOptions {
                fib: true,
                ..Default::default()
            });
            let mut cfg = node("127.0.0.1", 0, "127.0.0.2", 179, true);
            cfg.peers.clear();
            cfg.blackholes.push("10.65.0.0/26".parse().unwrap());
            speaker.apply(cfg).await.unwrap();
            let speaker = Arc::new(speaker);
            let server = serve(
                "127.0.0.1:0".parse().unwrap(),
                speaker.clone(),
                DatastoreGauges::new(),
            )
            .await
            .unwrap();
            let text = eventually("the blackhole counted as installed", 20, || async {
                let (_, _, body) = http(server.local_addr(), "GET", "/metrics").await;
                (value(&body, "tern_fib_routes_installed") == Some(1.0)).then_some(body)
            })
            .await;
            server.shutdown().await;
            Arc::try_unwrap(speaker)
                .unwrap()
                .shutdown("done")
                .await
                .unwrap();
            (
                value(&text, "tern_fib_routes_installed").unwrap(),
                value(&text, "tern_fib_operations_total").unwrap(),
                value(&text, "tern_fib_errors_total").unwrap(),
            )
        })
    });
    assert_eq!(installed, 1.0);
    assert!(operations >= 1.0, "{operations}");
    assert_eq!(errors, 0.0);
    // The kernel agrees.
    let routes = ns.ip(["route", "show", "proto", "bird"]);
    assert!(routes.contains("blackhole 10.65.0.0/26"), "{routes}");
}
