//! Blocking rtnetlink sockets: the batched route writer, dumps, and the monitor.
//!
//! One `NETLINK_ROUTE` socket carries many requests per `sendmsg`. Only the last request
//! of a batch asks for an ack (`NLM_F_ACK`); the kernel processes a batch in order inside
//! the `sendmsg` call and answers every failed request with an `NLMSG_ERROR` carrying its
//! sequence number, so when the last request's ack arrives every earlier failure has been
//! reported and every other request has succeeded. This keeps the receive path to one
//! datagram per batch in the common case, which is most of the speed over `ip -batch`.

use std::collections::HashMap;
use std::io;
use std::os::fd::AsFd;
use std::time::Duration;

use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};
use nix::sys::socket::{setsockopt, sockopt};

use crate::codec::{
    self, EncodeError, KernelMessage, NLMSG_DONE, NLMSG_ERROR, NLMSG_OVERRUN, RTM_GETADDR,
    RTM_GETLINK, RTM_GETROUTE,
};
use crate::route::{Route, RouteKey};
use crate::{Address, Link, ReportedRoute};

/// `NLM_F_DUMP_INTR`: the dump changed while it was taken; it must be taken again.
const NLM_F_DUMP_INTR: u16 = 0x10;
const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;
/// Multicast groups (`RTNLGRP_*`, linux/rtnetlink.h).
pub(crate) const RTNLGRP_LINK: u32 = 1;
pub(crate) const RTNLGRP_IPV4_IFADDR: u32 = 5;
pub(crate) const RTNLGRP_IPV4_ROUTE: u32 = 7;
pub(crate) const RTNLGRP_IPV6_IFADDR: u32 = 9;
pub(crate) const RTNLGRP_IPV6_ROUTE: u32 = 11;

/// One change to write to the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteOp {
    /// Install or replace in place (`RTM_NEWROUTE`, `NLM_F_CREATE | NLM_F_REPLACE`): the
    /// old route is swapped for the new one atomically, with no gap.
    Replace(Route),
    /// Delete the route at `key` if, and only if, its protocol is `protocol`.
    Delete { key: RouteKey, protocol: u8 },
}

impl RouteOp {
    pub fn key(&self) -> RouteKey {
        match self {
            RouteOp::Replace(r) => r.key(),
            RouteOp::Delete { key, .. } => *key,
        }
    }
}

/// Why one route of a batch failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    /// The route names a device that does not exist (not sent to the kernel).
    #[error("no such device {0}")]
    NoSuchDevice(String),
    /// The route cannot be expressed as a request (not sent to the kernel).
    #[error("invalid route: {0}")]
    Invalid(&'static str),
    /// Another writer keeps changing or deleting this route of ours; restoring it was
    /// given up for now.
    #[error("another writer keeps changing the route")]
    Contested,
    /// The kernel refused it: errno, and its extended-ack text when it gave one.
    #[error("kernel refused the route: {} ({})", io::Error::from_raw_os_error(*errno), message.as_deref().unwrap_or("no detail"))]
    Kernel { errno: i32, message: Option<String> },
}

impl RouteError {
    /// Whether the failure may go away when a link or address appears: a missing or down
    /// device, or a gateway not (yet) reachable on any link.
    pub fn waits_for_device(&self) -> bool {
        match self {
            RouteError::NoSuchDevice(_) => true,
            RouteError::Invalid(_) | RouteError::Contested => false,
            RouteError::Kernel { errno, .. } => matches!(
                *errno,
                libc::ENODEV | libc::ENETDOWN | libc::ENETUNREACH | libc::EHOSTUNREACH
            ),
        }
    }
}

impl From<EncodeError> for RouteError {
    fn from(e: EncodeError) -> Self {
        match e {
            EncodeError::NoSuchDevice(n) => RouteError::NoSuchDevice(n),
            EncodeError::Invalid(w) => RouteError::Invalid(w),
        }
    }
}

fn open(groups: &[u32], rcvbuf: usize) -> io::Result<Socket> {
    let mut sock = Socket::new(NETLINK_ROUTE)?;
    sock.bind(&SocketAddr::new(0, 0))?;
    // Privileged: lift the limit; otherwise fall back to the ordinary cap.
    if setsockopt(&sock.as_fd(), sockopt::RcvBufForce, &rcvbuf).is_err() {
        sock.set_rx_buf_sz(rcvbuf)?;
    }
    for g in groups {
        sock.add_membership(*g)?;
    }
    Ok(sock)
}

/// Batched writer and dumper over one `NETLINK_ROUTE` socket, in the network namespace of
/// the thread that opened it.
pub struct RouteSocket {
    sock: Socket,
    seq: u32,
    send: Vec<u8>,
    recv: Vec<u8>,
    names: HashMap<String, u32>,
    batch_bytes: usize,
    port: u32,
}

impl std::fmt::Debug for RouteSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouteSocket")
            .field("seq", &self.seq)
            .finish()
    }
}

/// Bytes of requests per `sendmsg` (≈ 1000 IPv4 routes): well under the socket's send
/// buffer, small enough that one batch holds the kernel's RTNL lock only briefly.
pub const DEFAULT_BATCH_BYTES: usize = 64 * 1024;

impl RouteSocket {
    pub fn new() -> io::Result<RouteSocket> {
        let sock = open(&[], 8 << 20)?;
        let mut addr = SocketAddr::new(0, 0);
        sock.get_address(&mut addr)?;
        // Failures echo only the request header, plus the kernel's explanation.
        sock.set_cap_ack(true)?;
        sock.set_ext_ack(true)?;
        // Dumps filtered by protocol in the kernel (ignored by kernels without it).
        let _ = sock.set_netlink_get_strict_chk(true);
        let _ = setsockopt(&sock.as_fd(), sockopt::SndBufForce, &(4usize << 20));
        // A kernel that never answers must not hang the writer forever.
        let tv = nix::sys::time::TimeVal::new(RECEIVE_TIMEOUT.as_secs() as _, 0);
        setsockopt(&sock.as_fd(), sockopt::ReceiveTimeout, &tv)?;
        Ok(RouteSocket {
            sock,
            seq: 1,
            send: Vec::with_capacity(DEFAULT_BATCH_BYTES + 4096),
            recv: vec![0; 256 * 1024],
            names: HashMap::new(),
            batch_bytes: DEFAULT_BATCH_BYTES,
            port: addr.port_number(),
        })
    }

    /// The netlink port of this socket: the kernel's notifications of the changes written
    /// here carry it in `nlmsg_pid`.
    pub fn port(&self) -> u32 {
        self.port
    }

    /// Sets how many bytes of requests go into one `sendmsg` (at least one request).
    pub fn set_batch_bytes(&mut self, bytes: usize) {
        self.batch_bytes = bytes.max(1);
    }

    /// Forgets cached device names (call when links come and go).
    pub fn forget_devices(&mut self) {
        self.names.clear();
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1).max(1);
        self.seq
    }

    /// Writes `ops`, resolving device names with `if_nametoindex` (cached).
    /// See [`RouteSocket::write_with`].
    pub fn write(&mut self, ops: &[RouteOp]) -> io::Result<Vec<Result<(), RouteError>>> {
        let mut names = std::mem::take(&mut self.names);
        let out = self.write_with(ops, &mut |n: &str| {
            if let Some(i) = names.get(n) {
                return Some(*i);
            }
            let i = nix::net::if_::if_nametoindex(n).ok()?;
            names.insert(n.to_string(), i);
            Some(i)
        });
        self.names = names;
        out
    }

    /// Writes `ops` in batches and returns one result per op, in order. Deleting a route
    /// that is already gone counts as success. An `Err` means the socket itself failed
    /// (acks lost to `ENOBUFS`, a timeout): the outcome of the ops is then unknown and the
    /// caller should dump and compare.
    pub fn write_with(
        &mut self,
        ops: &[RouteOp],
        resolver: &mut dyn FnMut(&str) -> Option<u32>,
    ) -> io::Result<Vec<Result<(), RouteError>>> {
        let mut results: Vec<Result<(), RouteError>> = vec![Ok(()); ops.len()];
        let mut next = 0;
        let mut batch: Vec<usize> = Vec::new();
        while next < ops.len() {
            self.send.clear();
            batch.clear();
            let mut last_start = 0;
            let first_seq = self.seq.wrapping_add(1).max(1);
            while next < ops.len() && (batch.is_empty() || self.send.len() < self.batch_bytes) {
                let i = next;
                let seq = self.seq.wrapping_add(1).max(1);
                if seq != first_seq.wrapping_add(batch.len() as u32) {
                    // The counter wraps inside the batch: close the batch here.
                    break;
                }
                next += 1;
                let at = self.send.len();
                if let Err(e) = codec::push_route_op(&mut self.send, &ops[i], seq, resolver) {
                    results[i] = Err(e.into());
                    continue;
                }
                self.seq = seq;
                last_start = at;
                batch.push(i);
            }
            if batch.is_empty() {
                continue;
            }
            // Ask for an ack on the last request only (see the module docs).
            let flags_at = last_start + 6;
            let flags = u16::from_ne_bytes([self.send[flags_at], self.send[flags_at + 1]])
                | netlink_packet_core::NLM_F_ACK;
            self.send[flags_at..flags_at + 2].copy_from_slice(&flags.to_ne_bytes());
            self.sock.send(&self.send, 0)?;
            let last_seq = first_seq.wrapping_add(batch.len() as u32 - 1);
            self.collect_acks(first_seq, last_seq, &batch, ops, &mut results)?;
        }
        Ok(results)
    }

    fn collect_acks(
        &mut self,
        first_seq: u32,
        last_seq: u32,
        batch: &[usize],
        ops: &[RouteOp],
        results: &mut [Result<(), RouteError>],
    ) -> io::Result<()> {
        loop {
            let n = self.recv_datagram()?;
            for (h, payload) in codec::messages(&self.recv[..n]) {
                if h.kind != NLMSG_ERROR {
                    continue;
                }
                let pos = h.seq.wrapping_sub(first_seq) as usize;
                let Some(&i) = batch.get(pos) else {
                    continue; // an answer to an older, abandoned batch
                };
                if let Some((errno, message)) = codec::parse_error(&h, payload) {
                    let gone = matches!(ops[i], RouteOp::Delete { .. })
                        && (errno == libc::ESRCH || errno == libc::ENOENT);
                    if errno != 0 && !gone {
                        results[i] = Err(RouteError::Kernel { errno, message });
                    }
                }
                if h.seq == last_seq {
                    return Ok(());
                }
            }
        }
    }

    fn recv_datagram(&mut self) -> io::Result<usize> {
        loop {
            let mut buf = &mut self.recv[..];
            match self.sock.recv(&mut buf, libc::MSG_TRUNC) {
                Ok(n) if n > self.recv.len() => {
                    self.recv.resize(n.next_power_of_two(), 0);
                    return Err(io::Error::other("netlink datagram truncated; retry"));
                }
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Dumps, calling `f` for every decoded message; restarts when the kernel says the
    /// dump was interrupted by a concurrent change.
    fn dump(
        &mut self,
        kind: u16,
        family: u8,
        protocol: Option<u8>,
        f: &mut dyn FnMut(KernelMessage),
    ) -> io::Result<()> {
        for _attempt in 0..5 {
            let mut got: Vec<KernelMessage> = Vec::new();
            let seq = self.next_seq();
            let req = codec::dump_request(kind, family, seq, protocol);
            self.sock.send(&req, 0)?;
            let mut interrupted = false;
            'recv: loop {
                let n = self.recv_datagram()?;
                for (h, payload) in codec::messages(&self.recv[..n]) {
                    if h.seq != seq {
                        continue;
                    }
                    if h.flags & NLM_F_DUMP_INTR != 0 {
                        interrupted = true;
                    }
                    match h.kind {
                        NLMSG_DONE => break 'recv,
                        NLMSG_OVERRUN => return Err(io::Error::other("netlink dump overrun")),
                        NLMSG_ERROR => {
                            let errno = codec::parse_error(&h, payload).map_or(libc::EIO, |c| c.0);
                            return Err(io::Error::from_raw_os_error(errno));
                        }
                        k => {
                            if let Some(m) = codec::decode(k, payload) {
                                got.push(m);
                            }
                        }
                    }
                }
            }
            if !interrupted {
                got.into_iter().for_each(&mut *f);
                return Ok(());
            }
        }
        Err(io::Error::other("netlink dump kept being interrupted"))
    }

    /// Every IPv4 and IPv6 route of `protocol` (all protocols when `None`), all tables.
    pub fn dump_routes(&mut self, protocol: Option<u8>) -> io::Result<Vec<ReportedRoute>> {
        let mut out = Vec::new();
        for family in [AF_INET, AF_INET6] {
            self.dump(RTM_GETROUTE, family, protocol, &mut |m| {
                if let KernelMessage::NewRoute(r) = m
                    && protocol.is_none_or(|p| p == r.route.protocol)
                    && !r.cloned
                {
                    out.push(r);
                }
            })?;
        }
        Ok(out)
    }

    /// Every link.
    pub fn dump_links(&mut self) -> io::Result<Vec<Link>> {
        let mut out = Vec::new();
        self.dump(RTM_GETLINK, 0, None, &mut |m| {
            if let KernelMessage::NewLink(l) = m {
                out.push(l);
            }
        })?;
        Ok(out)
    }

    /// Every IPv4 and IPv6 interface address.
    pub fn dump_addresses(&mut self) -> io::Result<Vec<Address>> {
        let mut out = Vec::new();
        for family in [AF_INET, AF_INET6] {
            self.dump(RTM_GETADDR, family, None, &mut |m| {
                if let KernelMessage::NewAddress(a) = m {
                    out.push(a);
                }
            })?;
        }
        Ok(out)
    }
}

/// What one read of the monitor socket brought.
#[derive(Debug)]
pub(crate) enum MonitorRead {
    /// Messages (possibly none of interest).
    Messages,
    /// Nothing to read now.
    Empty,
    /// `ENOBUFS`: notifications were dropped; the caller must resync.
    Overrun,
}

/// The socket subscribed to route, link and address notifications.
pub(crate) struct MonitorSocket {
    pub(crate) sock: Socket,
    recv: Vec<u8>,
    own_port: u32,
}

/// A classic BPF program for the monitor socket that drops notifications caused by our own
/// writer (`nlmsg_pid == port`): our echoes neither cost a wake-up nor fill the buffer, so
/// a bulk load does not overrun it. BIRD skips its own echoes likewise. Each notification
/// is its own datagram, so the first header is the only one.
fn drop_own_echoes(port: u32) -> [socket2::SockFilter; 4] {
    const BPF_LD_W_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS: A = ntohl(packet[k..k+4])
    const BPF_JEQ_K: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
    const BPF_RET_K: u16 = 0x06; // BPF_RET | BPF_K: keep k bytes
    // The load reads big-endian; nlmsg_pid is in host order.
    let wire = u32::from_be_bytes(port.to_ne_bytes());
    [
        socket2::SockFilter::new(BPF_LD_W_ABS, 0, 0, 12),
        socket2::SockFilter::new(BPF_JEQ_K, 0, 1, wire),
        socket2::SockFilter::new(BPF_RET_K, 0, 0, 0),
        socket2::SockFilter::new(BPF_RET_K, 0, 0, u32::MAX),
    ]
}

impl MonitorSocket {
    /// Subscribes to routes, links and addresses, ignoring what the socket with port
    /// `own_port` (our writer) causes.
    pub(crate) fn new(rcvbuf: usize, own_port: u32) -> io::Result<MonitorSocket> {
        let sock = open(
            &[
                RTNLGRP_LINK,
                RTNLGRP_IPV4_IFADDR,
                RTNLGRP_IPV4_ROUTE,
                RTNLGRP_IPV6_IFADDR,
                RTNLGRP_IPV6_ROUTE,
            ],
            rcvbuf,
        )?;
        sock.set_non_blocking(true)?;
        // Best effort: without the filter the echoes are skipped when read instead.
        if let Err(e) = socket2::SockRef::from(&sock).attach_filter(&drop_own_echoes(own_port)) {
            tracing::warn!("cannot filter our own route echoes in the kernel: {e}");
        }
        Ok(MonitorSocket {
            sock,
            recv: vec![0; 256 * 1024],
            own_port,
        })
    }

    /// Reads one datagram without blocking and decodes its messages into `out`.
    pub(crate) fn read(&mut self, out: &mut Vec<KernelMessage>) -> io::Result<MonitorRead> {
        let mut buf = &mut self.recv[..];
        match self.sock.recv(&mut buf, libc::MSG_TRUNC) {
            Ok(n) if n > self.recv.len() => {
                // Lost a notification to a short buffer: grow it and resync.
                self.recv.resize(n.next_power_of_two(), 0);
                Ok(MonitorRead::Overrun)
            }
            Ok(n) => {
                for (h, payload) in codec::messages(&self.recv[..n]) {
                    if h.pid == self.own_port && h.pid != 0 {
                        continue;
                    }
                    if let Some(m) = codec::decode(h.kind, payload) {
                        out.push(m);
                    }
                }
                Ok(MonitorRead::Messages)
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => Ok(MonitorRead::Overrun),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(MonitorRead::Empty),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(MonitorRead::Messages),
            Err(e) => Err(e),
        }
    }
}

/// How long a blocking read may wait before the writer gives up on the kernel.
pub const RECEIVE_TIMEOUT: Duration = Duration::from_secs(10);
