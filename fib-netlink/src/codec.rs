//! rtnetlink encoding and decoding of routes, links and addresses.
//!
//! Messages from the kernel are parsed with `netlink-packet-route`. Route requests
//! (`RTM_NEWROUTE`/`RTM_DELROUTE`, rtnetlink(7)) — the writer's hot path, hundreds packed
//! into one buffer — are written here directly, header, `rtmsg` and attributes, with no
//! allocation per route; tests hold them byte for byte to `netlink-packet-route`'s encoding
//! of the same route:
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                          nlmsg_len                            |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |         nlmsg_type            |           nlmsg_flags         |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                          nlmsg_seq                            |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                          nlmsg_pid                            |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |            rtmsg / ifinfomsg / ifaddrmsg, then attributes     |
//! ```

use std::net::IpAddr;

use ipnet::IpNet;
use netlink_packet_core::{
    NLM_F_CREATE, NLM_F_DUMP, NLM_F_REPLACE, NLM_F_REQUEST, ParseableParametrized,
};
use netlink_packet_route::address::{AddressAttribute, AddressMessage, AddressScope};
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteMessage, RouteNextHopFlags, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use crate::route::{Device, NextHop, Route, RouteKey, RouteKind};

pub(crate) const NLMSG_HDRLEN: usize = 16;
pub(crate) const NLMSG_ERROR: u16 = 2;
pub(crate) const NLMSG_DONE: u16 = 3;
pub(crate) const NLMSG_OVERRUN: u16 = 4;
pub(crate) const RTM_NEWLINK: u16 = 16;
pub(crate) const RTM_DELLINK: u16 = 17;
pub(crate) const RTM_GETLINK: u16 = 18;
pub(crate) const RTM_NEWADDR: u16 = 20;
pub(crate) const RTM_DELADDR: u16 = 21;
pub(crate) const RTM_GETADDR: u16 = 22;
pub(crate) const RTM_NEWROUTE: u16 = 24;
pub(crate) const RTM_DELROUTE: u16 = 25;
pub(crate) const RTM_GETROUTE: u16 = 26;
/// `RT_TABLE_COMPAT`: what `rtm_table` says when the real table (> 255) is in `RTA_TABLE`.
const RT_TABLE_COMPAT: u8 = 252;
/// `NLMSGERR_ATTR_MSG`: the extended-ack text (`NETLINK_EXT_ACK`).
const NLMSGERR_ATTR_MSG: u16 = 1;
/// `NLM_F_ACK_TLVS` on an `NLMSG_ERROR`: extended-ack attributes follow.
const NLM_F_ACK_TLVS: u16 = 0x200;

/// Why a route could not be turned into a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("no such device {0}")]
    NoSuchDevice(String),
    #[error("invalid route: {0}")]
    Invalid(&'static str),
}

// ===== route requests, written directly =====

/// `rtattr` types (linux/rtnetlink.h).
const RTA_DST: u16 = 1;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;
const RTA_PRIORITY: u16 = 6;
const RTA_MULTIPATH: u16 = 9;
const RTA_TABLE: u16 = 15;
/// `rtm_type` values.
const RTN_UNSPEC: u8 = 0;
const RTN_UNICAST: u8 = 1;
const RTN_BLACKHOLE: u8 = 6;
const RTN_UNREACHABLE: u8 = 7;
const RTN_PROHIBIT: u8 = 8;
/// `rtm_scope` values.
const RT_SCOPE_UNIVERSE: u8 = 0;
const RT_SCOPE_LINK: u8 = 253;
const RT_SCOPE_NOWHERE: u8 = 255;
/// `RTNH_F_ONLINK`, in `rtm_flags` and in `rtnh_flags`.
const RTNH_F_ONLINK: u8 = 4;
const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;

/// Appends one route attribute (`rtattr`: 16-bit length and type, value, padded to 4).
fn put_attr(buf: &mut Vec<u8>, kind: u16, value: &[u8]) {
    let len = 4 + value.len();
    buf.extend_from_slice(&(len as u16).to_ne_bytes());
    buf.extend_from_slice(&kind.to_ne_bytes());
    buf.extend_from_slice(value);
    buf.resize(buf.len() + ((4 - len % 4) % 4), 0);
}

fn put_addr(buf: &mut Vec<u8>, kind: u16, addr: IpAddr) {
    match addr {
        IpAddr::V4(a) => put_attr(buf, kind, &a.octets()),
        IpAddr::V6(a) => put_attr(buf, kind, &a.octets()),
    }
}

/// Appends the request for `op` (`RTM_NEWROUTE` with `NLM_F_CREATE | NLM_F_REPLACE`, or
/// `RTM_DELROUTE`) with sequence number `seq`, resolving device names with `resolver`. On
/// error nothing is appended.
///
/// ```text
/// rtmsg (12 bytes):
/// +--------+---------+---------+-------+-------+----------+-------+------+
/// | family | dst_len | src_len |  tos  | table | protocol | scope | type |
/// +--------+---------+---------+-------+-------+----------+-------+------+
/// |                          flags (32 bits)                             |
/// +----------------------------------------------------------------------+
/// then RTA_DST, RTA_TABLE, RTA_PRIORITY, and for unicast either RTA_GATEWAY and RTA_OIF or
/// RTA_MULTIPATH: a run of rtnexthop {len u16, flags u8, hops u8, ifindex i32}, each
/// followed by its own RTA_GATEWAY.
/// ```
pub(crate) fn push_route_op(
    buf: &mut Vec<u8>,
    op: &crate::socket::RouteOp,
    seq: u32,
    resolver: &mut dyn FnMut(&str) -> Option<u32>,
) -> Result<(), EncodeError> {
    use crate::socket::RouteOp;
    let start = buf.len();
    let out = match op {
        RouteOp::Replace(route) => push_new_route(buf, route, seq, resolver),
        RouteOp::Delete { key, protocol } => {
            put_route_start(
                buf,
                RTM_DELROUTE,
                NLM_F_REQUEST,
                seq,
                key,
                *protocol,
                [RT_SCOPE_NOWHERE, RTN_UNSPEC, 0],
            );
            Ok(())
        }
    };
    match out {
        Ok(()) => {
            let len = (buf.len() - start) as u32;
            buf[start..start + 4].copy_from_slice(&len.to_ne_bytes());
            Ok(())
        }
        Err(e) => {
            buf.truncate(start);
            Err(e)
        }
    }
}

/// The netlink header (length filled in later), `rtmsg` and the key's attributes.
/// `tail` is `[scope, type, flags]`.
fn put_route_start(
    buf: &mut Vec<u8>,
    kind: u16,
    flags: u16,
    seq: u32,
    key: &RouteKey,
    protocol: u8,
    tail: [u8; 3],
) {
    let at = buf.len();
    buf.resize(at + NLMSG_HDRLEN, 0);
    put_header(
        &mut buf[at..],
        Header {
            len: 0,
            kind,
            flags,
            seq,
            pid: 0,
        },
    );
    let family = match key.prefix {
        IpNet::V4(_) => AF_INET,
        IpNet::V6(_) => AF_INET6,
    };
    let table = u8::try_from(key.table).unwrap_or(RT_TABLE_COMPAT);
    let [scope, kind, rtm_flags] = tail;
    buf.extend_from_slice(&[
        family,
        key.prefix.prefix_len(),
        0,
        0,
        table,
        protocol,
        scope,
        kind,
    ]);
    buf.extend_from_slice(&u32::from(rtm_flags).to_ne_bytes());
    put_addr(buf, RTA_DST, key.prefix.addr());
    put_attr(buf, RTA_TABLE, &key.table.to_ne_bytes());
    put_attr(buf, RTA_PRIORITY, &key.metric.to_ne_bytes());
}

fn push_new_route(
    buf: &mut Vec<u8>,
    route: &Route,
    seq: u32,
    resolver: &mut dyn FnMut(&str) -> Option<u32>,
) -> Result<(), EncodeError> {
    let flags = NLM_F_REQUEST | NLM_F_CREATE | NLM_F_REPLACE;
    let key = route.key();
    let start = |buf: &mut Vec<u8>, tail| {
        put_route_start(buf, RTM_NEWROUTE, flags, seq, &key, route.protocol, tail);
    };
    let nexthops = match &route.kind {
        RouteKind::Blackhole => {
            start(buf, [RT_SCOPE_UNIVERSE, RTN_BLACKHOLE, 0]);
            return Ok(());
        }
        RouteKind::Unreachable => {
            start(buf, [RT_SCOPE_UNIVERSE, RTN_UNREACHABLE, 0]);
            return Ok(());
        }
        RouteKind::Prohibit => {
            start(buf, [RT_SCOPE_UNIVERSE, RTN_PROHIBIT, 0]);
            return Ok(());
        }
        RouteKind::Unicast { nexthops } => nexthops,
    };
    match nexthops.as_slice() {
        [] => Err(EncodeError::Invalid("unicast route without next hop")),
        [nh] => {
            check_gateway(&route.prefix, nh)?;
            let oif = resolve(&nh.dev, resolver)?;
            // Straight onto a device: the destination is on the link.
            let scope = if nh.gateway.is_some() {
                RT_SCOPE_UNIVERSE
            } else {
                RT_SCOPE_LINK
            };
            let onlink = if nh.onlink { RTNH_F_ONLINK } else { 0 };
            start(buf, [scope, RTN_UNICAST, onlink]);
            if let Some(gw) = nh.gateway {
                put_addr(buf, RTA_GATEWAY, gw);
            }
            if let Some(oif) = oif {
                put_attr(buf, RTA_OIF, &oif.to_ne_bytes());
            }
            Ok(())
        }
        many => {
            // Validate and resolve everything before writing anything.
            let mut oifs = Vec::with_capacity(many.len());
            for nh in many {
                check_gateway(&route.prefix, nh)?;
                oifs.push(resolve(&nh.dev, resolver)?.unwrap_or(0));
            }
            start(buf, [RT_SCOPE_UNIVERSE, RTN_UNICAST, 0]);
            let attr_at = buf.len();
            buf.extend_from_slice(&[0, 0]);
            buf.extend_from_slice(&RTA_MULTIPATH.to_ne_bytes());
            for (nh, oif) in many.iter().zip(oifs) {
                let hop_at = buf.len();
                let hops = u8::try_from(nh.weight.clamp(1, 256) - 1).unwrap_or(u8::MAX);
                let flags = if nh.onlink { RTNH_F_ONLINK } else { 0 };
                buf.extend_from_slice(&[0, 0, flags, hops]);
                buf.extend_from_slice(&oif.to_ne_bytes());
                if let Some(gw) = nh.gateway {
                    put_addr(buf, RTA_GATEWAY, gw);
                }
                let hop_len = (buf.len() - hop_at) as u16;
                buf[hop_at..hop_at + 2].copy_from_slice(&hop_len.to_ne_bytes());
            }
            let attr_len = u16::try_from(buf.len() - attr_at)
                .map_err(|_| EncodeError::Invalid("too many next hops"))?;
            buf[attr_at..attr_at + 2].copy_from_slice(&attr_len.to_ne_bytes());
            Ok(())
        }
    }
}

// ===== netlink header =====

/// The fixed header of one netlink message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    pub len: u32,
    pub kind: u16,
    pub flags: u16,
    pub seq: u32,
    /// `nlmsg_pid`: in a notification, the port of the socket whose request caused it.
    pub pid: u32,
}

pub(crate) fn put_header(buf: &mut [u8], h: Header) {
    buf[0..4].copy_from_slice(&h.len.to_ne_bytes());
    buf[4..6].copy_from_slice(&h.kind.to_ne_bytes());
    buf[6..8].copy_from_slice(&h.flags.to_ne_bytes());
    buf[8..12].copy_from_slice(&h.seq.to_ne_bytes());
    buf[12..16].copy_from_slice(&0u32.to_ne_bytes());
}

fn read_u16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn read_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Iterates over the netlink messages of one datagram; stops at the first malformed one.
pub(crate) fn messages(buf: &[u8]) -> impl Iterator<Item = (Header, &[u8])> {
    let mut rest = buf;
    std::iter::from_fn(move || {
        let len = read_u32(rest, 0)? as usize;
        if len < NLMSG_HDRLEN || len > rest.len() {
            return None;
        }
        let h = Header {
            len: len as u32,
            kind: read_u16(rest, 4)?,
            flags: read_u16(rest, 6)?,
            seq: read_u32(rest, 8)?,
            pid: read_u32(rest, 12)?,
        };
        let payload = &rest[NLMSG_HDRLEN..len];
        let aligned = (len + 3) & !3;
        rest = rest.get(aligned..).unwrap_or(&[]);
        Some((h, payload))
    })
}

/// An `NLMSG_ERROR` payload: the errno (positive; 0 for an ack) and the extended-ack text,
/// if any.
pub(crate) fn parse_error(h: &Header, payload: &[u8]) -> Option<(i32, Option<String>)> {
    // The kernel sends `-errno`; negating `i32::MIN` would overflow, so saturate.
    let errno = i32::from_ne_bytes(payload.get(0..4)?.try_into().ok()?).saturating_neg();
    let mut text = None;
    if h.flags & NLM_F_ACK_TLVS != 0 {
        // With NETLINK_CAP_ACK only the original header is echoed, then the TLVs.
        let mut at = 4 + NLMSG_HDRLEN;
        if h.flags & 0x100 == 0 {
            // Not capped: the whole original request is echoed.
            at = 4 + read_u32(payload, 4)? as usize;
        }
        while let (Some(len), Some(kind)) = (read_u16(payload, at), read_u16(payload, at + 2)) {
            let len = len as usize;
            if len < 4 {
                break;
            }
            if kind == NLMSGERR_ATTR_MSG {
                let raw = payload.get(at + 4..at + len)?;
                let raw = raw.split(|b| *b == 0).next().unwrap_or(raw);
                text = Some(String::from_utf8_lossy(raw).into_owned());
            }
            at += (len + 3) & !3;
        }
    }
    Some((errno, text))
}

// ===== requests =====

fn resolve(
    dev: &Option<Device>,
    resolve: &mut dyn FnMut(&str) -> Option<u32>,
) -> Result<Option<u32>, EncodeError> {
    match dev {
        None => Ok(None),
        Some(Device::Index(i)) => Ok(Some(*i)),
        Some(Device::Name(n)) => resolve(n)
            .map(Some)
            .ok_or_else(|| EncodeError::NoSuchDevice(n.clone())),
    }
}

fn check_gateway(prefix: &IpNet, nh: &NextHop) -> Result<(), EncodeError> {
    match nh.gateway {
        Some(gw) if gw.is_ipv4() != prefix.addr().is_ipv4() => Err(EncodeError::Invalid(
            "gateway family differs from the prefix",
        )),
        None if nh.dev.is_none() => Err(EncodeError::Invalid("next hop without gateway or device")),
        _ => Ok(()),
    }
}

/// A dump request (`NLM_F_DUMP`) for routes, links or addresses of one family.
pub(crate) fn dump_request(kind: u16, family: u8, seq: u32, protocol: Option<u8>) -> Vec<u8> {
    // rtmsg is 12 bytes, ifinfomsg 16, ifaddrmsg 8; all start with the family byte.
    let body = match kind {
        RTM_GETLINK => 16,
        RTM_GETADDR => 8,
        _ => 12,
    };
    let len = NLMSG_HDRLEN + body;
    let mut buf = vec![0u8; len];
    put_header(
        &mut buf,
        Header {
            len: len as u32,
            kind,
            flags: NLM_F_REQUEST | NLM_F_DUMP,
            seq,
            pid: 0,
        },
    );
    buf[NLMSG_HDRLEN] = family;
    if let (RTM_GETROUTE, Some(p)) = (kind, protocol) {
        // rtm_protocol: with NETLINK_GET_STRICT_CHK the kernel filters the dump.
        buf[NLMSG_HDRLEN + 5] = p;
    }
    buf
}

// ===== decoding =====

/// A link as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    /// `IFF_UP`: administratively up.
    pub up: bool,
    /// `IFF_RUNNING`: operationally up (carrier).
    pub running: bool,
}

/// An interface address as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Address {
    pub ifindex: u32,
    /// The address with its prefix length (`192.0.2.1/24`).
    pub address: IpNet,
    /// Host or link scope (loopback, IPv6 link-local).
    pub local_scope: bool,
}

/// A route as reported by the kernel, with what the [`Route`] model leaves out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportedRoute {
    pub route: Route,
    /// `RTM_F_CLONED`: an IPv6 cache entry, not a configured route.
    pub cloned: bool,
}

/// One decoded rtnetlink message of interest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum KernelMessage {
    NewRoute(ReportedRoute),
    DelRoute(ReportedRoute),
    NewLink(Link),
    DelLink(Link),
    NewAddress(Address),
    DelAddress(Address),
}

fn addr_of(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
        RouteAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
        _ => None,
    }
}

/// The [`Route`] a kernel route message describes; `None` for what the model does not
/// cover (local/broadcast/multicast types, MPLS, other families).
pub(crate) fn decode_route(msg: &RouteMessage) -> Option<ReportedRoute> {
    let h = &msg.header;
    let v4 = match h.address_family {
        AddressFamily::Inet => true,
        AddressFamily::Inet6 => false,
        _ => return None,
    };
    let mut dst = None;
    let mut table = u32::from(h.table);
    let mut metric = 0;
    let mut gateway = None;
    let mut oif = None;
    let mut multipath = None;
    for attr in &msg.attributes {
        match attr {
            RouteAttribute::Destination(a) => dst = addr_of(a),
            RouteAttribute::Table(t) => table = *t,
            RouteAttribute::Priority(p) => metric = *p,
            RouteAttribute::Gateway(a) => gateway = addr_of(a),
            RouteAttribute::Oif(i) => oif = Some(*i),
            RouteAttribute::MultiPath(hops) => multipath = Some(hops),
            // RTA_VIA (an IPv6 gateway for an IPv4 route) is not modelled.
            RouteAttribute::Via(_) => return None,
            _ => {}
        }
    }
    let dst = dst.unwrap_or(if v4 {
        IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)
    } else {
        IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED)
    });
    let prefix = IpNet::new(dst, h.destination_prefix_length).ok()?;
    let kind = match h.kind {
        RouteType::BlackHole => RouteKind::Blackhole,
        RouteType::Unreachable => RouteKind::Unreachable,
        RouteType::Prohibit => RouteKind::Prohibit,
        RouteType::Unicast => {
            let nexthops = match multipath {
                Some(hops) => hops
                    .iter()
                    .map(|hop| NextHop {
                        gateway: hop.attributes.iter().find_map(|a| match a {
                            RouteAttribute::Gateway(g) => addr_of(g),
                            _ => None,
                        }),
                        dev: (hop.interface_index != 0)
                            .then_some(Device::Index(hop.interface_index)),
                        onlink: hop.flags.contains(RouteNextHopFlags::Onlink),
                        weight: u16::from(hop.hops) + 1,
                    })
                    .collect(),
                None => vec![NextHop {
                    gateway,
                    dev: oif.map(Device::Index),
                    onlink: h.flags.contains(RouteFlags::Onlink),
                    weight: 1,
                }],
            };
            RouteKind::Unicast { nexthops }
        }
        _ => return None,
    };
    Some(ReportedRoute {
        route: Route {
            prefix,
            kind,
            table,
            metric,
            protocol: u8::from(h.protocol),
        },
        cloned: h.flags.contains(RouteFlags::Cloned),
    })
}

fn decode_link(msg: &LinkMessage) -> Option<Link> {
    let name = msg.attributes.iter().find_map(|a| match a {
        LinkAttribute::IfName(n) => Some(n.clone()),
        _ => None,
    })?;
    Some(Link {
        index: msg.header.index,
        name,
        up: msg.header.flags.contains(LinkFlags::Up),
        running: msg.header.flags.contains(LinkFlags::Running),
    })
}

fn decode_address(msg: &AddressMessage) -> Option<Address> {
    // IFA_LOCAL is the interface's own address (it differs from IFA_ADDRESS only on
    // point-to-point links, where IFA_ADDRESS is the peer); IPv6 sends IFA_ADDRESS only.
    let mut address = None;
    let mut local = None;
    for a in &msg.attributes {
        match a {
            AddressAttribute::Address(ip) => address = Some(*ip),
            AddressAttribute::Local(ip) => local = Some(*ip),
            _ => {}
        }
    }
    let ip = local.or(address)?;
    Some(Address {
        ifindex: msg.header.index,
        address: IpNet::new(ip, msg.header.prefix_len).ok()?,
        local_scope: matches!(msg.header.scope, AddressScope::Host | AddressScope::Link),
    })
}

/// Decodes one message of a dump or a multicast notification.
pub(crate) fn decode(kind: u16, payload: &[u8]) -> Option<KernelMessage> {
    if !matches!(
        kind,
        RTM_NEWROUTE | RTM_DELROUTE | RTM_NEWLINK | RTM_DELLINK | RTM_NEWADDR | RTM_DELADDR
    ) {
        return None;
    }
    let msg = RouteNetlinkMessage::parse_with_param(payload, kind).ok()?;
    Some(match msg {
        RouteNetlinkMessage::NewRoute(m) => KernelMessage::NewRoute(decode_route(&m)?),
        RouteNetlinkMessage::DelRoute(m) => KernelMessage::DelRoute(decode_route(&m)?),
        RouteNetlinkMessage::NewLink(m) => KernelMessage::NewLink(decode_link(&m)?),
        RouteNetlinkMessage::DelLink(m) => KernelMessage::DelLink(decode_link(&m)?),
        RouteNetlinkMessage::NewAddress(m) => KernelMessage::NewAddress(decode_address(&m)?),
        RouteNetlinkMessage::DelAddress(m) => KernelMessage::DelAddress(decode_address(&m)?),
        _ => return None,
    })
}

/// The reference encoding of route requests with `netlink-packet-route`, which the direct
/// writer above must match byte for byte.
#[cfg(test)]
mod reference {
    use super::*;
    use netlink_packet_core::{Emitable, NLM_F_ACK};
    use netlink_packet_route::route::{RouteHeader, RouteNextHop, RouteProtocol, RouteScope};

    pub(super) fn family_of(prefix: &IpNet) -> AddressFamily {
        match prefix {
            IpNet::V4(_) => AddressFamily::Inet,
            IpNet::V6(_) => AddressFamily::Inet6,
        }
    }

    pub(super) fn route_header(key: &RouteKey, protocol: u8) -> RouteHeader {
        let mut header = RouteHeader {
            address_family: family_of(&key.prefix),
            destination_prefix_length: key.prefix.prefix_len(),
            ..RouteHeader::default()
        };
        header.table = u8::try_from(key.table).unwrap_or(RT_TABLE_COMPAT);
        header.protocol = RouteProtocol::from(protocol);
        header
    }

    pub(super) fn key_attributes(key: &RouteKey) -> Vec<RouteAttribute> {
        vec![
            RouteAttribute::Destination(RouteAddress::from(key.prefix.addr())),
            RouteAttribute::Table(key.table),
            RouteAttribute::Priority(key.metric),
        ]
    }

    /// The `rtmsg` and attributes that install or replace `route`.
    pub(super) fn new_route_message(
        route: &Route,
        resolver: &mut dyn FnMut(&str) -> Option<u32>,
    ) -> Result<RouteMessage, EncodeError> {
        let key = route.key();
        let mut msg = RouteMessage::default();
        msg.header = route_header(&key, route.protocol);
        msg.attributes = key_attributes(&key);
        msg.header.scope = RouteScope::Universe;
        match &route.kind {
            RouteKind::Blackhole => msg.header.kind = RouteType::BlackHole,
            RouteKind::Unreachable => msg.header.kind = RouteType::Unreachable,
            RouteKind::Prohibit => msg.header.kind = RouteType::Prohibit,
            RouteKind::Unicast { nexthops } => {
                msg.header.kind = RouteType::Unicast;
                match nexthops.as_slice() {
                    [] => return Err(EncodeError::Invalid("unicast route without next hop")),
                    [nh] => {
                        check_gateway(&route.prefix, nh)?;
                        if let Some(gw) = nh.gateway {
                            msg.attributes
                                .push(RouteAttribute::Gateway(RouteAddress::from(gw)));
                        } else {
                            // Straight onto a device: the destination is on the link.
                            msg.header.scope = RouteScope::Link;
                        }
                        if let Some(oif) = resolve(&nh.dev, resolver)? {
                            msg.attributes.push(RouteAttribute::Oif(oif));
                        }
                        if nh.onlink {
                            msg.header.flags = RouteFlags::Onlink;
                        }
                    }
                    many => {
                        let mut hops = Vec::with_capacity(many.len());
                        for nh in many {
                            check_gateway(&route.prefix, nh)?;
                            let mut hop = RouteNextHop::default();
                            hop.hops = u8::try_from(nh.weight.clamp(1, 256) - 1).unwrap_or(u8::MAX);
                            hop.interface_index = resolve(&nh.dev, resolver)?.unwrap_or(0);
                            if nh.onlink {
                                hop.flags = RouteNextHopFlags::Onlink;
                            }
                            if let Some(gw) = nh.gateway {
                                hop.attributes
                                    .push(RouteAttribute::Gateway(RouteAddress::from(gw)));
                            }
                            hops.push(hop);
                        }
                        msg.attributes.push(RouteAttribute::MultiPath(hops));
                    }
                }
            }
        }
        Ok(msg)
    }

    /// The `rtmsg` that deletes the route at `key` only if its protocol is `protocol`.
    pub(super) fn del_route_message(key: &RouteKey, protocol: u8) -> RouteMessage {
        let mut msg = RouteMessage::default();
        msg.header = route_header(key, protocol);
        // RT_SCOPE_NOWHERE and RTN_UNSPEC: match any scope and type; protocol must match.
        msg.header.scope = RouteScope::NoWhere;
        msg.attributes = key_attributes(key);
        msg
    }

    /// Appends one request (`RTM_NEWROUTE` with `NLM_F_CREATE | NLM_F_REPLACE`, or
    /// `RTM_DELROUTE`) to `buf`.
    pub(super) fn push_route_request(
        buf: &mut Vec<u8>,
        kind: u16,
        msg: &RouteMessage,
        seq: u32,
        ack: bool,
    ) {
        let body = msg.buffer_len();
        let len = NLMSG_HDRLEN + body;
        let start = buf.len();
        buf.resize(start + ((len + 3) & !3), 0);
        let mut flags = NLM_F_REQUEST;
        if kind == RTM_NEWROUTE {
            flags |= NLM_F_CREATE | NLM_F_REPLACE;
        }
        if ack {
            flags |= NLM_F_ACK;
        }
        put_header(
            &mut buf[start..],
            Header {
                len: len as u32,
                kind,
                flags,
                seq,
                pid: 0,
            },
        );
        msg.emit(&mut buf[start + NLMSG_HDRLEN..start + len]);
    }
}

#[cfg(test)]
mod tests {
    use super::reference::*;
    use super::*;
    use crate::route::PROTOCOL_BIRD;

    fn roundtrip(route: &Route) -> Route {
        let mut names = |n: &str| (n == "tunl0").then_some(7);
        let mut buf = Vec::new();
        let op = crate::socket::RouteOp::Replace(route.clone());
        push_route_op(&mut buf, &op, 1, &mut names).unwrap();
        let (h, payload) = messages(&buf).next().unwrap();
        assert_eq!(h.kind, RTM_NEWROUTE);
        assert_eq!(h.len as usize, buf.len());
        match decode(h.kind, payload) {
            Some(KernelMessage::NewRoute(r)) => r.route,
            other => panic!("decoded {other:?}"),
        }
    }

    /// Every shape of request the writer makes: single and multipath, gateways and
    /// devices, onlink, both families, tables above 255, metrics, deletes.
    fn request_cases() -> Vec<crate::socket::RouteOp> {
        use crate::socket::RouteOp;
        let gw = "10.0.0.1".parse().unwrap();
        let gw6: IpAddr = "2001:db8::1".parse().unwrap();
        let routes = [
            Route::unicast("10.1.0.0/24".parse().unwrap(), vec![NextHop::via(gw)]),
            Route::unicast(
                "10.1.0.7/32".parse().unwrap(),
                vec![NextHop::via_dev(gw, Device::Index(3))],
            ),
            Route::unicast(
                "10.2.0.0/26".parse().unwrap(),
                vec![NextHop::onlink(gw, "tunl0")],
            ),
            Route::unicast("10.65.0.5/32".parse().unwrap(), vec![NextHop::dev("tunl0")]),
            Route::unicast(
                "10.3.0.0/24".parse().unwrap(),
                vec![
                    NextHop::via_dev(gw, Device::Index(3)),
                    NextHop::via_dev("10.0.0.2".parse().unwrap(), Device::Index(4)).with_weight(5),
                    NextHop::onlink("10.0.0.3".parse().unwrap(), "tunl0").with_weight(300),
                ],
            )
            .with_metric(20)
            .with_table(100),
            Route::unicast(
                "2001:db8:5::/48".parse().unwrap(),
                vec![NextHop::via(gw6), NextHop::via_dev(gw6, "tunl0")],
            ),
            Route::unicast("2001:db8:6::/64".parse().unwrap(), vec![NextHop::via(gw6)])
                .with_protocol(80),
            Route::blackhole("10.4.0.0/26".parse().unwrap()).with_table(1000),
            Route::blackhole("0.0.0.0/0".parse().unwrap()),
            Route::new("2001:db8::/64".parse().unwrap(), RouteKind::Unreachable).with_metric(7),
            Route::new("2001:db8:1::/64".parse().unwrap(), RouteKind::Prohibit),
        ];
        let mut ops: Vec<RouteOp> = routes.iter().cloned().map(RouteOp::Replace).collect();
        ops.extend(routes.iter().map(|r| RouteOp::Delete {
            key: r.key(),
            protocol: r.protocol,
        }));
        ops
    }

    #[test]
    fn requests_are_written_byte_for_byte_as_netlink_packet_route_would() {
        use crate::socket::RouteOp;
        let mut names = |n: &str| (n == "tunl0").then_some(7);
        for (seq, op) in (1u32..).zip(request_cases()) {
            let mut reference = vec![0xAA; 3]; // something already in the buffer
            match &op {
                RouteOp::Replace(r) => {
                    let msg = new_route_message(r, &mut names).unwrap();
                    push_route_request(&mut reference, RTM_NEWROUTE, &msg, seq, false);
                }
                RouteOp::Delete { key, protocol } => {
                    let msg = del_route_message(key, *protocol);
                    push_route_request(&mut reference, RTM_DELROUTE, &msg, seq, false);
                }
            }
            let mut direct = vec![0xAA; 3];
            push_route_op(&mut direct, &op, seq, &mut names).unwrap();
            assert_eq!(direct, reference, "{op:?}");
        }
    }

    #[test]
    fn a_request_that_cannot_be_written_leaves_the_buffer_alone() {
        use crate::socket::RouteOp;
        let mut none = |_: &str| None;
        let gw = "10.0.0.1".parse().unwrap();
        let bad = [
            Route::unicast("10.0.0.0/24".parse().unwrap(), vec![]),
            Route::unicast(
                "10.0.0.0/24".parse().unwrap(),
                vec![NextHop::onlink(gw, "tunl0")],
            ),
            Route::unicast(
                "10.0.0.0/24".parse().unwrap(),
                vec![NextHop::via(gw), NextHop::via_dev(gw, "nope")],
            ),
            Route::unicast(
                "10.0.0.0/24".parse().unwrap(),
                vec![NextHop::via("2001:db8::1".parse().unwrap())],
            ),
        ];
        for r in bad {
            let mut buf = vec![1, 2, 3];
            let direct = push_route_op(&mut buf, &RouteOp::Replace(r.clone()), 1, &mut none);
            assert_eq!(
                direct.unwrap_err(),
                new_route_message(&r, &mut none).unwrap_err()
            );
            assert_eq!(buf, vec![1, 2, 3]);
        }
    }

    #[test]
    fn every_kind_survives_encode_then_decode() {
        let gw = "10.0.0.1".parse().unwrap();
        let cases = [
            Route::unicast(
                "10.1.0.0/24".parse().unwrap(),
                vec![NextHop::via_dev(gw, Device::Index(3))],
            ),
            Route::unicast(
                "10.2.0.0/26".parse().unwrap(),
                vec![NextHop::onlink(gw, "tunl0")],
            ),
            Route::unicast(
                "10.3.0.0/24".parse().unwrap(),
                vec![
                    NextHop::via_dev(gw, Device::Index(3)),
                    NextHop::via_dev("10.0.0.2".parse().unwrap(), Device::Index(4)).with_weight(5),
                ],
            ),
            Route::blackhole("10.4.0.0/26".parse().unwrap()).with_table(1000),
            Route::new("2001:db8::/64".parse().unwrap(), RouteKind::Unreachable).with_metric(7),
            Route::new("2001:db8:1::/64".parse().unwrap(), RouteKind::Prohibit),
        ];
        for route in cases {
            let mut expect = route.clone();
            if let RouteKind::Unicast { nexthops } = &mut expect.kind {
                for nh in nexthops {
                    if nh.dev == Some(Device::Name("tunl0".into())) {
                        nh.dev = Some(Device::Index(7));
                    }
                }
            }
            assert_eq!(roundtrip(&route), expect);
            assert_eq!(expect.protocol, PROTOCOL_BIRD);
        }
    }

    #[test]
    fn a_missing_device_or_a_mixed_family_is_refused() {
        let mut none = |_: &str| None;
        let r = Route::unicast("10.1.0.0/24".parse().unwrap(), vec![NextHop::dev("nope0")]);
        assert_eq!(
            new_route_message(&r, &mut none).unwrap_err(),
            EncodeError::NoSuchDevice("nope0".into())
        );
        let r = Route::unicast(
            "10.1.0.0/24".parse().unwrap(),
            vec![NextHop::via("2001:db8::1".parse().unwrap())],
        );
        assert!(matches!(
            new_route_message(&r, &mut none),
            Err(EncodeError::Invalid(_))
        ));
    }

    #[test]
    fn error_payloads_give_positive_errnos_without_overflow() {
        let h = Header {
            len: 0,
            kind: 2,
            flags: 0,
            seq: 1,
            pid: 0,
        };
        let errno = |code: i32| parse_error(&h, &code.to_ne_bytes()).map(|e| e.0);
        assert_eq!(errno(0), Some(0));
        assert_eq!(errno(-libc::ENOENT), Some(libc::ENOENT));
        // Not something a kernel sends, but it must not panic (overflow) either.
        assert_eq!(errno(i32::MIN), Some(i32::MAX));
        assert_eq!(parse_error(&h, &[0, 0]), None);
    }

    #[test]
    fn truncated_messages_end_the_iteration() {
        let mut buf = Vec::new();
        let msg = del_route_message(&Route::blackhole("10.0.0.0/8".parse().unwrap()).key(), 12);
        push_route_request(&mut buf, RTM_DELROUTE, &msg, 9, false);
        push_route_request(&mut buf, RTM_DELROUTE, &msg, 10, false);
        assert_eq!(messages(&buf).count(), 2);
        let cut = buf.len() - 3;
        assert_eq!(messages(&buf[..cut]).count(), 1);
        assert_eq!(messages(&buf[..7]).count(), 0);
    }
}
