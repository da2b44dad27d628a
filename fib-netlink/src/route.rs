//! The route model: what a kernel route is, in the kernel's own terms.
//!
//! A [`Route`] is identified in a routing table by its [`RouteKey`] — table, destination
//! prefix and metric (the kernel's `RTA_PRIORITY`) — which is also what `NLM_F_REPLACE`
//! replaces. Everything else (kind, next hops, protocol) is the route's content.

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;

/// `RTPROT_BIRD`: the protocol number `ip route` prints as `proto bird`.
pub const PROTOCOL_BIRD: u8 = 12;
/// `RTPROT_KERNEL`: routes the kernel made itself (connected prefixes).
pub const PROTOCOL_KERNEL: u8 = 2;
/// `RTPROT_REDIRECT`: ICMP redirects.
pub const PROTOCOL_REDIRECT: u8 = 1;
/// `RTPROT_BOOT`: what `ip route add` uses when no `proto` is given.
pub const PROTOCOL_BOOT: u8 = 3;
/// `RTPROT_STATIC`.
pub const PROTOCOL_STATIC: u8 = 4;
/// `RT_TABLE_MAIN`.
pub const TABLE_MAIN: u32 = 254;
/// `RT_TABLE_LOCAL`: local and broadcast addresses; never ours, never learned.
pub const TABLE_LOCAL: u32 = 255;
/// The metric the kernel gives an IPv6 route that names none (`IP6_RT_PRIO_USER`).
pub const IPV6_DEFAULT_METRIC: u32 = 1024;

/// The device a next hop leaves through: its index, or its name resolved when written.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Device {
    Index(u32),
    Name(String),
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Index(i) => write!(f, "if#{i}"),
            Device::Name(n) => f.write_str(n),
        }
    }
}

impl From<&str> for Device {
    fn from(name: &str) -> Self {
        Device::Name(name.to_string())
    }
}

/// One next hop of a unicast route (`RTA_GATEWAY`/`RTA_OIF`, or one `rtnexthop` of
/// `RTA_MULTIPATH`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NextHop {
    /// The gateway (`via`); `None` for a route straight onto a device.
    pub gateway: Option<IpAddr>,
    /// The outgoing device (`dev`); `None` lets the kernel resolve it from the gateway.
    pub dev: Option<Device>,
    /// `RTNH_F_ONLINK`: the gateway is on the link even though no address says so
    /// (`via PEER dev tunl0 onlink`).
    pub onlink: bool,
    /// ECMP weight, 1..=256 (`ip route … nexthop … weight N`); the kernel stores weight − 1.
    pub weight: u16,
}

impl NextHop {
    /// `via GATEWAY`, device chosen by the kernel.
    pub fn via(gateway: IpAddr) -> NextHop {
        NextHop {
            gateway: Some(gateway),
            dev: None,
            onlink: false,
            weight: 1,
        }
    }

    /// `via GATEWAY dev DEV`.
    pub fn via_dev(gateway: IpAddr, dev: impl Into<Device>) -> NextHop {
        NextHop {
            dev: Some(dev.into()),
            ..NextHop::via(gateway)
        }
    }

    /// `via GATEWAY dev DEV onlink` (IPIP tunnels).
    pub fn onlink(gateway: IpAddr, dev: impl Into<Device>) -> NextHop {
        NextHop {
            onlink: true,
            ..NextHop::via_dev(gateway, dev)
        }
    }

    /// `dev DEV` with no gateway (a directly connected destination).
    pub fn dev(dev: impl Into<Device>) -> NextHop {
        NextHop {
            gateway: None,
            dev: Some(dev.into()),
            onlink: false,
            weight: 1,
        }
    }

    /// The same next hop with an ECMP weight (clamped to 1..=256).
    pub fn with_weight(mut self, weight: u16) -> NextHop {
        self.weight = weight.clamp(1, 256);
        self
    }
}

impl fmt::Display for NextHop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut sep = "";
        if let Some(gw) = self.gateway {
            write!(f, "via {gw}")?;
            sep = " ";
        }
        if let Some(dev) = &self.dev {
            write!(f, "{sep}dev {dev}")?;
        }
        if self.onlink {
            f.write_str(" onlink")?;
        }
        if self.weight != 1 {
            write!(f, " weight {}", self.weight)?;
        }
        Ok(())
    }
}

/// What the kernel does with packets for the prefix (`rtm_type`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RouteKind {
    /// `RTN_UNICAST`: forward through one next hop, or several (ECMP, `RTA_MULTIPATH`).
    Unicast { nexthops: Vec<NextHop> },
    /// `RTN_BLACKHOLE`: drop silently.
    Blackhole,
    /// `RTN_UNREACHABLE`: drop with ICMP unreachable.
    Unreachable,
    /// `RTN_PROHIBIT`: drop with ICMP administratively prohibited.
    Prohibit,
}

/// Where a route lives: `(table, prefix, metric)`. Two routes with the same key replace
/// each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RouteKey {
    pub table: u32,
    pub prefix: IpNet,
    pub metric: u32,
}

impl fmt::Display for RouteKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} table {} metric {}",
            self.prefix, self.table, self.metric
        )
    }
}

/// A kernel route.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Route {
    pub prefix: IpNet,
    pub kind: RouteKind,
    pub table: u32,
    pub metric: u32,
    /// `rtm_protocol`; [`PROTOCOL_BIRD`] (12) for Tern's own routes.
    pub protocol: u8,
}

impl Route {
    /// A route in the main table, metric 0 (1024 for IPv6), protocol [`PROTOCOL_BIRD`].
    pub fn new(prefix: IpNet, kind: RouteKind) -> Route {
        Route {
            prefix,
            kind,
            table: TABLE_MAIN,
            metric: 0,
            protocol: PROTOCOL_BIRD,
        }
        .normalized()
    }

    /// A unicast route over the given next hops (ECMP when more than one).
    pub fn unicast(prefix: IpNet, nexthops: Vec<NextHop>) -> Route {
        Route::new(prefix, RouteKind::Unicast { nexthops })
    }

    pub fn blackhole(prefix: IpNet) -> Route {
        Route::new(prefix, RouteKind::Blackhole)
    }

    pub fn with_table(mut self, table: u32) -> Route {
        self.table = table;
        self
    }

    pub fn with_metric(mut self, metric: u32) -> Route {
        self.metric = metric;
        self.normalized()
    }

    pub fn with_protocol(mut self, protocol: u8) -> Route {
        self.protocol = protocol;
        self
    }

    pub fn key(&self) -> RouteKey {
        RouteKey {
            table: self.table,
            prefix: self.prefix,
            metric: self.metric,
        }
    }

    /// The next hops of a unicast route; empty for the other kinds.
    pub fn nexthops(&self) -> &[NextHop] {
        match &self.kind {
            RouteKind::Unicast { nexthops } => nexthops,
            _ => &[],
        }
    }

    /// The form the kernel stores: host bits cleared, IPv6 metric 0 read as 1024, weights
    /// within 1..=256. The key of a normalised route is the key the kernel reports back.
    pub fn normalized(mut self) -> Route {
        self.prefix = self.prefix.trunc();
        if self.prefix.addr().is_ipv6() && self.metric == 0 {
            self.metric = IPV6_DEFAULT_METRIC;
        }
        if let RouteKind::Unicast { nexthops } = &mut self.kind {
            for nh in nexthops {
                nh.weight = nh.weight.clamp(1, 256);
            }
        }
        self
    }
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            RouteKind::Unicast { nexthops } => {
                write!(f, "{}", self.prefix)?;
                for nh in nexthops {
                    write!(f, " {nh}")?;
                }
            }
            RouteKind::Blackhole => write!(f, "blackhole {}", self.prefix)?,
            RouteKind::Unreachable => write!(f, "unreachable {}", self.prefix)?,
            RouteKind::Prohibit => write!(f, "prohibit {}", self.prefix)?,
        }
        write!(
            f,
            " table {} metric {} proto {}",
            self.table, self.metric, self.protocol
        )
    }
}

impl RouteKey {
    /// The key as the kernel would report it (host bits cleared, IPv6 metric 0 → 1024).
    pub fn normalized(mut self) -> RouteKey {
        self.prefix = self.prefix.trunc();
        if self.prefix.addr().is_ipv6() && self.metric == 0 {
            self.metric = IPV6_DEFAULT_METRIC;
        }
        self
    }
}
