//! Felix's endpoint-status files: which local workloads want a BGP session
//! (`${CALICO_ENDPOINT_STATUS_PATH_PREFIX:-/var/run/calico}/endpoint-status/<workload>`, JSON with
//! `ipv4Nets`, `ipv6Nets` and `bgpPeerName`).

use std::net::IpAddr;
use std::path::Path;

use serde::Deserialize;

use crate::compute::LocalWorkload;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Status {
    #[serde(default)]
    ipv4_nets: Vec<String>,
    #[serde(default)]
    ipv6_nets: Vec<String>,
    #[serde(default)]
    bgp_peer_name: String,
}

fn first_addr(nets: &[String]) -> Option<IpAddr> {
    let n = nets.first()?;
    n.split('/').next()?.parse().ok()
}

/// Parse one status file's content; `None` when it is not a BGP-peering workload.
pub fn parse(name: &str, json: &str) -> Option<LocalWorkload> {
    let s: Status = serde_json::from_str(json).ok()?;
    if s.bgp_peer_name.is_empty() {
        return None;
    }
    Some(LocalWorkload {
        name: name.to_string(),
        ipv4: first_addr(&s.ipv4_nets),
        ipv6: first_addr(&s.ipv6_nets),
        bgp_peer_name: s.bgp_peer_name,
    })
}

/// Read every status file in `dir` (missing folder = no workloads), sorted by name.
pub fn read_dir(dir: &Path) -> Vec<LocalWorkload> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<LocalWorkload> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            let text = std::fs::read_to_string(e.path()).ok()?;
            parse(&name, &text)
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_felix_status() {
        let w = parse(
            "pod1",
            r#"{"ifaceName":"cali97e1defe654","ipv4Nets":["192.168.162.134/32"],"ipv6Nets":["fd00:10:244:0:586d:4461:e980:a284/128"],"bgpPeerName":"p"}"#,
        )
        .unwrap();
        assert_eq!(w.ipv4, Some("192.168.162.134".parse().unwrap()));
        assert_eq!(
            w.ipv6,
            Some("fd00:10:244:0:586d:4461:e980:a284".parse().unwrap())
        );
        assert_eq!(w.bgp_peer_name, "p");
        assert!(parse("x", r#"{"ipv4Nets":["1.2.3.4/32"]}"#).is_none());
        assert!(parse("x", "not json").is_none());
    }
}
