//! The shape of a Calico cluster in namespaces: one LAN namespace holding a bridge `br0`,
//! node namespaces with `eth0` on it, and workload namespaces wired to their node as Felix
//! wires a pod (a `cali…` veth, a /32 on the pod side with a default route via 169.254.1.1,
//! proxy ARP, and a /32 host route at Felix's normal priority, metric 1024).

use crate::{Netns, unique_name, veth_named};

/// A LAN: a namespace (named from `prefix`) holding the bridge `br0`, up, with no address.
pub fn new_lan(prefix: &str) -> Netns {
    let lan = Netns::new(prefix);
    lan.ip(["link", "add", "br0", "type", "bridge"]);
    lan.ip(["link", "set", "br0", "up"]);
    lan
}

/// Puts `ns` on the LAN: its `eth0`, addressed `cidr` (`10.77.0.11/24`), is a veth whose
/// other end is a port of `lan`'s `br0`.
pub fn attach_to_lan(lan: &Netns, ns: &Netns, cidr: &str) {
    let port = unique_name("lp");
    veth_named(ns, "eth0", lan, &port);
    lan.ip(["link", "set", port.as_str(), "master", "br0", "up"]);
    ns.ip(["addr", "add", cidr, "dev", "eth0"]);
    ns.ip(["link", "set", "eth0", "up"]);
}

/// A node: a new namespace (named from `prefix`) on the LAN at `cidr`, forwarding IPv4.
pub fn add_node(lan: &Netns, prefix: &str, cidr: &str) -> Netns {
    let ns = Netns::new(prefix);
    ns.exec("sysctl", ["-qw", "net.ipv4.ip_forward=1"]);
    attach_to_lan(lan, &ns, cidr);
    ns
}

/// Felix's name for the host side of workload `index`'s veth: `cali` and 11 hex digits.
pub fn cali_name(base: u64, index: usize) -> String {
    format!(
        "cali{:011x}",
        base.wrapping_add(index as u64) & 0xfff_ffff_ffff
    )
}

/// A workload namespace (named from `prefix`) with address `pod`, joined to `node` by the
/// veth `cali` as Felix wires a pod.
pub fn add_workload(node: &Netns, prefix: &str, cali: &str, pod: &str) -> Netns {
    let pod_ns = Netns::new(prefix);
    veth_named(&pod_ns, "eth0", node, cali);
    node.exec(
        "sysctl",
        ["-qw", &format!("net.ipv4.conf.{cali}.proxy_arp=1")],
    );
    node.ip(["link", "set", cali, "up"]);
    node.ip([
        "route",
        "add",
        &format!("{pod}/32"),
        "dev",
        cali,
        "scope",
        "link",
        "metric",
        "1024",
    ]);
    pod_ns.ip(["addr", "add", &format!("{pod}/32"), "dev", "eth0"]);
    pod_ns.ip(["link", "set", "eth0", "up"]);
    pod_ns.ip([
        "route",
        "add",
        "169.254.1.1",
        "dev",
        "eth0",
        "scope",
        "link",
    ]);
    pod_ns.ip([
        "route",
        "add",
        "default",
        "via",
        "169.254.1.1",
        "dev",
        "eth0",
    ]);
    // A real host answers the ARP for 169.254.1.1 (proxy ARP) because it has a default
    // route; these namespaces have none, so the pod gets the neighbour statically.
    let mac = node.ip(["-br", "link", "show", cali]);
    let mac = mac
        .split_whitespace()
        .nth(2)
        .unwrap_or_else(|| panic!("no MAC address for {cali}: {mac:?}"))
        .to_string();
    pod_ns.ip([
        "neigh",
        "replace",
        "169.254.1.1",
        "lladdr",
        &mac,
        "dev",
        "eth0",
        "nud",
        "permanent",
    ]);
    pod_ns
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::require_root;

    #[test]
    fn cali_names_are_felix_shaped() {
        let n = cali_name(0x0a2b_3c4d_5e00, 2);
        assert_eq!(n, "calia2b3c4d5e02");
        assert!(n.len() <= 15);
    }

    #[test]
    fn a_workload_reaches_another_node_over_the_lan() {
        if !require_root("a_workload_reaches_another_node_over_the_lan") {
            return;
        }
        let lan = new_lan("tla");
        let n1 = add_node(&lan, "tln", "10.78.0.1/24");
        let n2 = add_node(&lan, "tln", "10.78.0.2/24");
        let pod = add_workload(&n1, "tlw", &cali_name(0x0e00, 0), "10.79.1.5");
        n2.ip(["route", "add", "10.79.1.5/32", "via", "10.78.0.1"]);
        pod.exec("ping", ["-c", "1", "-W", "2", "10.78.0.2"]);
    }
}
