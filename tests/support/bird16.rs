//! BIRD 1.6 configuration in the shape confd's templates render it, from a node's computed
//! configuration (a `DesiredConfig` as JSON, what `ternd --print-config` prints): the
//! reference daemon Tern's end-to-end tests run beside (or instead of) Tern.
//!
//! Covers what the example clusters use: no-encapsulation pools, own blocks as blackholes
//! aggregated on export, mesh / global / node-specific peers with passive side, multihop,
//! route-reflector client and cluster id. BGPFilters are not rendered. A configuration it
//! cannot express panics (test support: the test fails with the reason).
#![allow(clippy::unwrap_used)]

use serde_json::Value;

fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} is not a string in {v}"))
}

/// Renders a node's computed configuration as confd's templates would render it for BIRD 1.6
/// (no-encapsulation pools; peers of the mesh, global and node-specific BGPPeers).
pub fn render_bird(config: &Value) -> String {
    let asn = config["asn"].as_u64().unwrap();
    let blackholes: Vec<&str> = config["blackholes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b.as_str().unwrap())
        .collect();
    let mut pools = String::new();
    for pool in config["kernel"]["pools"].as_array().unwrap() {
        assert_eq!(
            s(pool, "encapsulation"),
            "none",
            "BIRD 1.6 has no krt_tunnel"
        );
        let verdict = if pool["export"].as_bool().unwrap() {
            "accept"
        } else {
            "reject"
        };
        pools += &format!("  if (net ~ {}) then {{ {verdict}; }}\n", s(pool, "cidr"));
    }
    let mut out = format!(
        "router id {};\n\
         filter calico_kernel_programming {{\n\
         \x20 if (defined(source) && (source = RTS_BGP) && !defined(krt_metric)) then {{\n\
         \x20   krt_metric = 1024;\n\
         \x20   if (defined(bgp_local_pref)) then {{ krt_metric = 2147483647 - bgp_local_pref; }}\n\
         \x20   if (krt_metric < 1024) then {{ preference = 200; }}\n\
         \x20 }}\n\
         {pools}\
         \x20 accept;\n\
         }}\n\
         function calico_aggr () {{\n",
        s(config, "router_id")
    );
    for b in &blackholes {
        out += &format!(
            "  if ( net = {b} ) then {{ accept; }}\n\
             \x20 if ( net ~ {b} && krt_metric < 1024 ) then {{ accept; }}\n\
             \x20 if ( net ~ {b} ) then {{ reject; }}\n"
        );
    }
    out += &format!(
        "}}\n\
         function calico_export_to_bgp_peers(bool internal_peer) {{\n\
         \x20 if (internal_peer) then {{\n\
         \x20   if (defined(ifname)) then {{\n\
         \x20     if ((ifname ~ \"*.cali\") || (ifname ~ \"*.calico\") || (ifname ~ \"tunl0\")) then {{ reject; }}\n\
         \x20   }}\n\
         \x20 }}\n\
         \x20 calico_aggr();\n\
         {pools}\
         }}\n\
         protocol kernel {{\n\
         \x20 learn; persist; scan time 2; import all; graceful restart; merge paths on;\n\
         \x20 export filter calico_kernel_programming;\n\
         }}\n\
         protocol device {{ scan time 2; }}\n\
         protocol direct {{ interface -\"cali*\", -\"kube-ipvs*\", \"*\"; }}\n\
         template bgp bgp_template {{\n\
         \x20 local as {asn};\n\
         \x20 gateway recursive;\n\
         \x20 add paths on;\n\
         \x20 graceful restart;\n\
         \x20 connect delay time 2;\n\
         \x20 connect retry time 5;\n\
         \x20 error wait time 5,30;\n\
         }}\n"
    );
    if !blackholes.is_empty() {
        out += "protocol static {\n";
        for b in &blackholes {
            out += &format!("  route {b} blackhole;\n");
        }
        out += "}\n";
    }
    for peer in config["peers"].as_array().unwrap() {
        let remote_as = peer["remote_as"].as_u64().unwrap();
        let port = peer["port"].as_u64().unwrap();
        out += &format!(
            "protocol bgp {} from bgp_template {{\n  neighbor {}{} as {remote_as};\n",
            s(peer, "name"),
            s(peer, "address"),
            if port == 179 {
                String::new()
            } else {
                format!(" port {port}")
            }
        );
        if let Some(src) = peer["source_address"].as_str() {
            out += &format!("  source address {src};\n");
        }
        out += &format!(
            "  ttl security off;\n{}\
             \x20 import filter {{\n\
             \x20   if (defined(bgp_local_pref)&&(bgp_local_pref > 2147482623)) then preference = 200;\n\
             \x20   accept;\n\
             \x20 }};\n\
             \x20 export filter {{\n\
             \x20   if (defined(source) && source = RTS_BGP && defined(bgp_local_pref)) then {{\n\
             \x20     krt_metric = 2147483647 - bgp_local_pref;\n\
             \x20   }} else {{\n\
             \x20     if (!defined(krt_metric)) then {{ krt_metric = 1024; }}\n\
             \x20     bgp_local_pref = 2147483647 - krt_metric;\n\
             \x20   }}\n\
             \x20   calico_export_to_bgp_peers({});\n\
             \x20   reject;\n\
             \x20 }};\n",
            if peer["multihop"].as_bool().unwrap_or(false) {
                "  multihop;\n"
            } else {
                ""
            },
            remote_as == asn
        );
        if peer["rr_client"].as_bool().unwrap_or(false) {
            out += "  rr client;\n";
        }
        if let Some(id) = peer["rr_cluster_id"].as_str() {
            out += &format!("  rr cluster id {id};\n");
        }
        if peer["passive"].as_bool().unwrap_or(false) {
            out += "  passive on;\n";
        }
        out += "}\n";
    }
    out
}
