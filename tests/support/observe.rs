//! Watching a daemon from outside while a fault runs: the kernel's route changes in a
//! namespace (`ip monitor route`, so a route deleted and put back between two reads is still
//! seen) and a Prometheus `/metrics` endpoint inside a namespace.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use crate::{Daemon, Netns};

/// `ip monitor route` in a namespace, written to a file; stopped when dropped.
#[derive(Debug)]
pub struct RouteMonitor {
    daemon: Daemon,
    log: PathBuf,
}

impl RouteMonitor {
    /// Starts monitoring `ns`, writing to `log`.
    pub fn start(ns: &Netns, log: &Path) -> RouteMonitor {
        let out = File::create(log).unwrap_or_else(|e| panic!("create {}: {e}", log.display()));
        let mut cmd = ns.command("ip");
        cmd.args(["monitor", "route"])
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(Stdio::null());
        RouteMonitor {
            daemon: Daemon::spawn(cmd),
            log: log.to_path_buf(),
        }
    }

    /// Whether `ip monitor` still runs (a monitor that died sees nothing).
    pub fn is_running(&mut self) -> bool {
        self.daemon.is_running()
    }

    /// The lines seen so far that name `prefix` (as a whole word).
    fn lines_about(&self, prefix: &str) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.split_whitespace().any(|w| w == prefix))
            .map(str::to_string)
            .collect()
    }

    /// The deletions of `prefix` seen so far.
    pub fn deletions(&self, prefix: &str) -> Vec<String> {
        self.lines_about(prefix)
            .into_iter()
            .filter(|l| l.starts_with("Deleted"))
            .collect()
    }

    /// The additions and replacements of `prefix` seen so far.
    pub fn additions(&self, prefix: &str) -> Vec<String> {
        self.lines_about(prefix)
            .into_iter()
            .filter(|l| !l.starts_with("Deleted"))
            .collect()
    }
}

/// Parses `ip route show proto bird` into prefix → `blackhole`, `via GATEWAY`, or the whole
/// line for any other shape.
pub fn kernel_routes(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["blackhole", prefix, ..] => {
                out.insert(prefix.to_string(), "blackhole".to_string());
            }
            [prefix, "via", gw, ..] => {
                out.insert(prefix.to_string(), format!("via {gw}"));
            }
            [prefix, ..] => {
                out.insert(prefix.to_string(), line.to_string());
            }
            [] => {}
        }
    }
    out
}

/// `GET /metrics` from `addr` (`ip:port`) inside `ns`; `None` unless it answers 200.
pub fn scrape_metrics(ns: &Netns, addr: &str) -> Option<String> {
    let addr = addr.to_string();
    ns.run_in(move || {
        let mut s = TcpStream::connect(&addr).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        write!(
            s,
            "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
        )
        .ok()?;
        let mut text = String::new();
        s.read_to_string(&mut text).ok()?;
        text.starts_with("HTTP/1.1 200").then_some(text)
    })
}

/// The value of the sample `name` in a metrics text; with `label` (e.g. `peer="Mesh_x"`),
/// the first sample carrying it.
pub fn metric(text: &str, name: &str, label: Option<&str>) -> Option<f64> {
    text.lines().find_map(|l| {
        let (key, value) = l.rsplit_once(' ')?;
        let bare = key.split('{').next()?;
        if bare == name && label.is_none_or(|want| key.contains(want)) {
            value.parse().ok()
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_routes_reads_blackholes_and_gateways() {
        let r = kernel_routes(
            "blackhole 10.244.1.0/26 proto bird \n10.244.2.0/26 via 10.77.0.12 dev eth0 proto bird \n",
        );
        assert_eq!(r["10.244.1.0/26"], "blackhole");
        assert_eq!(r["10.244.2.0/26"], "via 10.77.0.12");
        assert_eq!(r.len(), 2);
    }

    #[test]
    fn metric_finds_a_sample_by_name_and_label() {
        let text = "# TYPE tern_bgp_peer_flaps counter\n\
            tern_bgp_peer_flaps_total{peer=\"Mesh_a\",address=\"10.0.0.1\"} 0\n\
            tern_bgp_peer_flaps_total{peer=\"Mesh_b\",address=\"10.0.0.2\"} 3\n\
            tern_datastore_synced 1\n";
        assert_eq!(
            metric(text, "tern_bgp_peer_flaps_total", Some("peer=\"Mesh_b\"")),
            Some(3.0)
        );
        assert_eq!(metric(text, "tern_datastore_synced", None), Some(1.0));
        assert_eq!(metric(text, "tern_datastore", None), None);
    }
}
