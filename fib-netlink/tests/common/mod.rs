//! Shared set-up of the kernel tests: a namespace with a veth to a neighbour namespace and
//! a `tunl0`.
#![allow(dead_code)]

use std::path::PathBuf;
use std::time::Duration;

use tern_tests::{Daemon, Netns, TempDir, veth, wait_for};

/// A namespace `ns` whose veth `dev` (192.0.2.1/24, 2001:db8::1/64) reaches `peer`
/// (192.0.2.2, 2001:db8::2; also 192.0.2.3 and 2001:db8::3 as extra gateways).
pub struct Lab {
    pub ns: Netns,
    pub peer: Netns,
    pub dev: String,
}

pub fn lab(prefix: &str) -> Lab {
    let ns = Netns::new(prefix);
    let peer = Netns::new(prefix);
    let (dev, peer_dev) = veth(
        &ns,
        &["192.0.2.1/24", "2001:db8::1/64"],
        &peer,
        &["192.0.2.2/24", "2001:db8::2/64"],
    );
    peer.ip(["addr", "add", "192.0.2.3/24", "dev", &peer_dev]);
    peer.ip(["addr", "add", "2001:db8::3/64", "dev", &peer_dev, "nodad"]);
    Lab { ns, peer, dev }
}

/// Creates `tunl0` in `ns` the way Calico's IPIP does (`ip link add tunl0 type ipip`). On a
/// kernel built without IPIP, a veth named `tunl0` stands in: `onlink` routes behave the
/// same on any device, which is what these tests check.
pub fn add_tunl0(ns: &Netns) {
    let ipip = ns
        .command("ip")
        .args(["link", "add", "tunl0", "type", "ipip"])
        .output()
        .expect("run ip");
    if !ipip.status.success() {
        eprintln!(
            "note: this kernel has no IPIP ({}); tunl0 is a veth here",
            String::from_utf8_lossy(&ipip.stderr).trim()
        );
        ns.ip([
            "link", "add", "tunl0", "type", "veth", "peer", "name", "tunl0p",
        ]);
        ns.ip(["link", "set", "tunl0p", "up"]);
    }
    ns.ip(["link", "set", "tunl0", "up"]);
}

/// `ip route show ARGS` in `ns` for both families, whitespace collapsed, one route a line.
pub fn routes(ns: &Netns, args: &[&str]) -> String {
    let mut out = String::new();
    for fam in ["-4", "-6"] {
        let mut full = vec![fam, "route", "show"];
        full.extend_from_slice(args);
        out.push_str(&ns.ip(full));
    }
    // Multipath next hops are printed on continuation lines: join them to their route.
    out.replace("\n\tnexthop", " nexthop")
        .replace(" pref medium", "")
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `ip monitor route` in `ns`, writing to a file; returns once it is listening.
pub struct RouteMonitor {
    _daemon: Daemon,
    _dir: TempDir,
    path: PathBuf,
}

impl RouteMonitor {
    pub fn start(ns: &Netns) -> RouteMonitor {
        let dir = TempDir::new("fibmon");
        let path = dir.path().join("monitor.log");
        let file = std::fs::File::create(&path).expect("create monitor log");
        let mut cmd = ns.command("ip");
        cmd.args(["monitor", "route"]).stdout(file);
        let daemon = Daemon::spawn(cmd);
        let mon = RouteMonitor {
            _daemon: daemon,
            _dir: dir,
            path,
        };
        // Proves the monitor is subscribed: a marker route must show up in its log.
        // An identical replace makes no notification: alternate the route's type.
        let mut round = 0;
        wait_for("ip monitor to listen", Duration::from_secs(10), || {
            round += 1;
            let kind = if round % 2 == 0 {
                "unreachable"
            } else {
                "blackhole"
            };
            let _ = ns
                .command("ip")
                .args([
                    "route",
                    "replace",
                    kind,
                    "203.0.113.255/32",
                    "proto",
                    "static",
                ])
                .output();
            mon.log().contains("203.0.113.255").then_some(())
        });
        ns.ip(["route", "del", "203.0.113.255/32"]);
        mon
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.path).unwrap_or_default()
    }

    /// Lines of the log that mention `needle` (with a space after it, so `10.1.0.0/24`
    /// does not match `10.1.0.0/240`-like prefixes of other routes).
    pub fn lines_with(&self, needle: &str) -> Vec<String> {
        let with_space = format!("{needle} ");
        self.log()
            .lines()
            .filter(|l| l.contains(&with_space))
            .map(str::to_string)
            .collect()
    }
}
