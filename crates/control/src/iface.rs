//! Interfaces for `show interfaces`, and next-hop resolution to an interface for
//! `show route` (BIRD prints `via GW on IFACE`; calico-node's route parser needs the `on`).

use std::net::IpAddr;

use ipnet::IpNet;
use nix::net::if_::InterfaceFlags;

/// One interface with its addresses.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Interface {
    /// Name (`eth0`).
    pub name: String,
    /// Kernel index.
    pub index: u32,
    /// Administratively and operationally up.
    pub up: bool,
    /// BIRD-style flag words (`MultiAccess Broadcast Multicast AdminUp LinkUp`).
    pub flags: Vec<&'static str>,
    /// MTU, when readable.
    pub mtu: Option<u32>,
    /// Addresses with their prefix length, in kernel order.
    pub addresses: Vec<IpNet>,
}

/// Every interface of the current network namespace (empty if the kernel refuses).
pub fn list() -> Vec<Interface> {
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else {
        return Vec::new();
    };
    let mut out: Vec<Interface> = Vec::new();
    for a in addrs {
        let pos = match out.iter().position(|i| i.name == a.interface_name) {
            Some(p) => p,
            None => {
                let index = nix::net::if_::if_nametoindex(a.interface_name.as_str()).unwrap_or(0);
                let f = a.flags;
                let mut flags = vec![if f.contains(InterfaceFlags::IFF_POINTOPOINT) {
                    "PtP"
                } else {
                    "MultiAccess"
                }];
                if f.contains(InterfaceFlags::IFF_BROADCAST) {
                    flags.push("Broadcast");
                }
                if f.contains(InterfaceFlags::IFF_MULTICAST) {
                    flags.push("Multicast");
                }
                let admin = f.contains(InterfaceFlags::IFF_UP);
                let link = f.contains(InterfaceFlags::IFF_LOWER_UP)
                    || f.contains(InterfaceFlags::IFF_RUNNING);
                flags.push(if admin { "AdminUp" } else { "AdminDown" });
                flags.push(if link { "LinkUp" } else { "LinkDown" });
                if f.contains(InterfaceFlags::IFF_LOOPBACK) {
                    flags.extend(["Loopback", "Ignored"]);
                }
                let mtu =
                    std::fs::read_to_string(format!("/sys/class/net/{}/mtu", a.interface_name))
                        .ok()
                        .and_then(|s| s.trim().parse().ok());
                out.push(Interface {
                    name: a.interface_name.clone(),
                    index,
                    up: admin && link,
                    flags,
                    mtu,
                    addresses: Vec::new(),
                });
                out.len() - 1
            }
        };
        if let Some(net) = address(&a) {
            out[pos].addresses.push(net);
        }
    }
    out.sort_by_key(|i| i.index);
    out
}

fn address(a: &nix::ifaddrs::InterfaceAddress) -> Option<IpNet> {
    let addr = a.address.as_ref()?;
    let mask = a.netmask.as_ref();
    if let Some(v4) = addr.as_sockaddr_in() {
        let len = mask
            .and_then(|m| m.as_sockaddr_in())
            .map_or(32, |m| u32::from(m.ip()).count_ones() as u8);
        return IpNet::new(IpAddr::V4(v4.ip()), len).ok();
    }
    if let Some(v6) = addr.as_sockaddr_in6() {
        let len = mask
            .and_then(|m| m.as_sockaddr_in6())
            .map_or(128, |m| u128::from(m.ip()).count_ones() as u8);
        return IpNet::new(IpAddr::V6(v6.ip()), len).ok();
    }
    None
}

/// BIRD's address scope word.
pub fn scope(addr: IpAddr) -> &'static str {
    match addr {
        IpAddr::V4(a) if a.is_loopback() => "host",
        IpAddr::V4(a) if a.is_link_local() => "link",
        IpAddr::V4(a) if a.is_private() => "site",
        IpAddr::V6(a) if a.is_loopback() => "host",
        IpAddr::V6(a) if a.segments()[0] & 0xffc0 == 0xfe80 => "link",
        _ => "univ",
    }
}

/// Finds the interface through which a next hop is reached: the connected network that
/// contains it (longest match).
#[derive(Clone, Debug, Default)]
pub struct Resolver {
    connected: Vec<(IpNet, String)>,
}

impl Resolver {
    /// From the given interfaces' connected networks.
    pub fn new(interfaces: &[Interface]) -> Resolver {
        let connected = interfaces
            .iter()
            .flat_map(|i| i.addresses.iter().map(|n| (n.trunc(), i.name.clone())))
            .collect();
        Resolver { connected }
    }

    /// The interface of the longest connected network containing `addr`.
    pub fn interface(&self, addr: IpAddr) -> Option<&str> {
        self.connected
            .iter()
            .filter(|(net, _)| net.contains(&addr))
            .max_by_key(|(net, _)| net.prefix_len())
            .map(|(_, name)| name.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_longest_connected_match() {
        let ifs = vec![
            Interface {
                name: "eth0".into(),
                index: 2,
                up: true,
                flags: vec![],
                mtu: None,
                addresses: vec!["10.0.0.1/16".parse().unwrap()],
            },
            Interface {
                name: "eth1".into(),
                index: 3,
                up: true,
                flags: vec![],
                mtu: None,
                addresses: vec!["10.0.5.1/24".parse().unwrap()],
            },
        ];
        let r = Resolver::new(&ifs);
        assert_eq!(r.interface("10.0.5.9".parse().unwrap()), Some("eth1"));
        assert_eq!(r.interface("10.0.6.9".parse().unwrap()), Some("eth0"));
        assert_eq!(r.interface("192.0.2.1".parse().unwrap()), None);
    }

    #[test]
    fn loopback_is_listed_and_scoped() {
        let ifs = list();
        let lo = ifs.iter().find(|i| i.name == "lo");
        if let Some(lo) = lo {
            assert!(lo.flags.contains(&"Loopback"));
        }
        assert_eq!(scope("127.0.0.1".parse().unwrap()), "host");
        assert_eq!(scope("10.1.2.3".parse().unwrap()), "site");
        assert_eq!(scope("fe80::1".parse().unwrap()), "link");
        assert_eq!(scope("2001:db8::1".parse().unwrap()), "univ");
    }
}
