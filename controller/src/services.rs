//! Service IP advertisement (contract §2.8; confd `client.go updateGlobalRoutes` and
//! `routes.go routeGenerator`).
//!
//! Configured ranges (cluster IPs, non-single external IPs, non-single load-balancer IPs when
//! aggregation is on) become static blackhole routes (advertised) and reject CIDRs (never
//! installed). A node labelled `node.kubernetes.io/exclude-from-external-load-balancers=true`
//! keeps the reject CIDRs only. Individual services add `/32` (`/128`) routes when this node
//! should attract their traffic.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ipnet::IpNet;

use crate::compute::NodeEnv;
use crate::model::{Model, parse_cidr};
use crate::resources::{BgpConfigurationSpec, EndpointSlice, Service};

/// Label that excludes a node from service advertisement.
pub const EXCLUDE_LABEL: &str = "node.kubernetes.io/exclude-from-external-load-balancers";

/// Routes produced by service advertisement.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceRoutes {
    /// Originated as blackholes and exported.
    pub static_routes: Vec<IpNet>,
    /// Never installed into the kernel.
    pub reject_cidrs: Vec<IpNet>,
}

fn non_single(cidrs: &[String]) -> Vec<String> {
    cidrs
        .iter()
        .filter(|c| {
            if c.contains(':') {
                !c.ends_with("/128")
            } else {
                !c.ends_with("/32")
            }
        })
        .cloned()
        .collect()
}

fn cidrs(list: &[crate::resources::CidrEntry]) -> Vec<String> {
    list.iter()
        .filter(|e| !e.cidr.is_empty())
        .map(|e| e.cidr.clone())
        .collect()
}

/// Compute this node's service routes.
pub fn service_routes(
    model: &Model,
    env: &NodeEnv,
    global: &BgpConfigurationSpec,
    own_labels: &BTreeMap<String, String>,
) -> ServiceRoutes {
    let exclude = own_labels.get(EXCLUDE_LABEL).map(String::as_str) == Some("true");
    let cluster: Vec<String> = match env
        .advertise_cluster_ips
        .as_deref()
        .filter(|s| !s.is_empty())
    {
        Some(list) => list
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect(),
        None => cidrs(&global.service_cluster_ips),
    };
    let external = cidrs(&global.service_external_ips);
    let lb = cidrs(&global.service_load_balancer_ips);
    let aggregate = global.service_load_balancer_aggregation.as_deref() != Some("Disabled");

    let mut statics = BTreeSet::new();
    let mut rejects = BTreeSet::new();
    let global_lb = if aggregate {
        non_single(&lb)
    } else {
        Vec::new()
    };
    for c in cluster
        .iter()
        .chain(non_single(&external).iter())
        .chain(global_lb.iter())
    {
        let Ok(n) = parse_cidr(c) else { continue };
        rejects.insert(n);
        if !exclude {
            statics.insert(n);
        }
    }

    if !exclude {
        let ext_nets: Vec<IpNet> = external.iter().filter_map(|c| parse_cidr(c).ok()).collect();
        let lb_nets: Vec<IpNet> = lb.iter().filter_map(|c| parse_cidr(c).ok()).collect();
        let generator = RouteGenerator {
            node: &env.node_name,
            advertise_cluster_ips: !cluster.is_empty(),
            ext_nets: &ext_nets,
            lb_nets: &lb_nets,
            aggregate,
        };
        for ((ns, name), svc) in &model.services {
            let slices: Vec<&EndpointSlice> = model
                .endpoint_slices
                .iter()
                .filter(|((sns, _), s)| {
                    sns == ns && s.metadata.labels.get("kubernetes.io/service-name") == Some(name)
                })
                .map(|(_, s)| s)
                .collect();
            if generator.advertise(svc, &slices) {
                for r in generator.routes(svc) {
                    statics.insert(r);
                }
            }
        }
    }
    ServiceRoutes {
        static_routes: statics.into_iter().collect(),
        reject_cidrs: rejects.into_iter().collect(),
    }
}

struct RouteGenerator<'a> {
    node: &'a str,
    advertise_cluster_ips: bool,
    ext_nets: &'a [IpNet],
    lb_nets: &'a [IpNet],
    aggregate: bool,
}

fn allowed(ip: &str, nets: &[IpNet]) -> bool {
    ip.parse::<IpAddr>()
        .is_ok_and(|a| nets.iter().any(|n| n.contains(&a)))
}

fn single(ip: &str, nets: &[IpNet]) -> bool {
    ip.parse::<IpAddr>().is_ok_and(|a| {
        nets.iter()
            .any(|n| n.contains(&a) && n.prefix_len() == n.max_prefix_len())
    })
}

/// The API server's defaults for the fields advertisement reads.
struct Defaulted {
    service_type: String,
    cluster_ips: Vec<String>,
    families: BTreeSet<&'static str>,
    traffic_policy: String,
}

fn defaults(svc: &Service) -> Defaulted {
    let s = &svc.spec;
    let service_type = if s.service_type.is_empty() {
        "ClusterIP".to_string()
    } else {
        s.service_type.clone()
    };
    let cluster_ips = if !s.cluster_ips.is_empty() {
        s.cluster_ips.clone()
    } else if !s.cluster_ip.is_empty() {
        vec![s.cluster_ip.clone()]
    } else {
        Vec::new()
    };
    let families = if !s.ip_families.is_empty() {
        s.ip_families
            .iter()
            .filter_map(|f| match f.as_str() {
                "IPv4" => Some("IPv4"),
                "IPv6" => Some("IPv6"),
                _ => None,
            })
            .collect()
    } else {
        cluster_ips
            .iter()
            .filter_map(|ip| ip.parse::<IpAddr>().ok())
            .map(|a| if a.is_ipv4() { "IPv4" } else { "IPv6" })
            .collect()
    };
    let traffic_policy = match service_type.as_str() {
        "LoadBalancer" | "NodePort" if s.external_traffic_policy.is_empty() => {
            "Cluster".to_string()
        }
        "LoadBalancer" | "NodePort" => s.external_traffic_policy.clone(),
        _ => String::new(),
    };
    Defaulted {
        service_type,
        cluster_ips,
        families,
        traffic_policy,
    }
}

impl RouteGenerator<'_> {
    /// `advertiseThisService`.
    fn advertise(&self, svc: &Service, slices: &[&EndpointSlice]) -> bool {
        let d = defaults(svc);
        if !matches!(
            d.service_type.as_str(),
            "ClusterIP" | "NodePort" | "LoadBalancer"
        ) {
            return false;
        }
        if svc.spec.cluster_ip.is_empty() && d.cluster_ips.is_empty()
            || svc.spec.cluster_ip == "None"
        {
            return false;
        }
        if d.traffic_policy == "Cluster" {
            let lb_single = single(&svc.spec.load_balancer_ip, self.lb_nets)
                || svc
                    .status
                    .load_balancer
                    .ingress
                    .iter()
                    .any(|i| single(&i.ip, self.lb_nets));
            if d.service_type == "LoadBalancer" && lb_single {
                return true;
            }
            if svc
                .spec
                .external_ips
                .iter()
                .any(|ip| single(ip, self.ext_nets))
            {
                return true;
            }
        }
        if d.traffic_policy != "Local" && self.aggregate {
            return false;
        }
        for s in slices {
            if !d.families.contains(s.address_type.as_str()) {
                continue;
            }
            for e in &s.endpoints {
                if e.conditions.ready == Some(false) {
                    continue;
                }
                if d.traffic_policy != "Local" {
                    return true;
                }
                if e.node_name.as_deref() == Some(self.node) {
                    return true;
                }
            }
        }
        false
    }

    /// `getAllRoutesForService`.
    fn routes(&self, svc: &Service) -> Vec<IpNet> {
        let d = defaults(svc);
        let mut ips: Vec<&str> = Vec::new();
        if self.advertise_cluster_ips {
            ips.extend(d.cluster_ips.iter().map(String::as_str));
        }
        ips.extend(
            svc.spec
                .external_ips
                .iter()
                .map(String::as_str)
                .filter(|ip| allowed(ip, self.ext_nets)),
        );
        ips.extend(
            svc.status
                .load_balancer
                .ingress
                .iter()
                .map(|i| i.ip.as_str())
                .filter(|ip| !ip.is_empty() && allowed(ip, self.lb_nets)),
        );
        ips.iter()
            .filter_map(|ip| ip.parse::<IpAddr>().ok())
            .map(IpNet::from)
            .collect()
    }
}
