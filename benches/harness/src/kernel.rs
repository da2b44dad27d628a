//! Counting the DUT's kernel routes (`proto bird`, rtm_protocol 12) in its namespace, cheaply
//! and with a precise time: a route-monitor socket (RTMGRP_IPV4_ROUTE) sees each route as
//! the kernel installs it; a full dump (RTM_GETROUTE) seeds the count and takes over if the
//! monitor overruns (ENOBUFS).
//!
//! ```text
//! struct nlmsghdr { u32 len; u16 type; u16 flags; u32 seq; u32 pid; }      (16 octets)
//! struct rtmsg    { u8 family, dst_len, src_len, tos, table, protocol, scope, type; u32 flags; }
//! struct rtattr   { u16 len; u16 type; }  value padded to 4 octets; RTA_DST = 1, RTA_TABLE = 15
//! ```

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};

use crate::speaker::{Progress, now_ns};

const RTM_NEWROUTE: u16 = 24;
const RTM_DELROUTE: u16 = 25;
const RTM_GETROUTE: u16 = 26;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const RTMGRP_IPV4_ROUTE: u32 = 0x40;
const AF_INET: u8 = 2;
const RTPROT_BIRD: u8 = 12;

/// A route key: destination, prefix length, table.
type Key = (u32, u8, u32);

/// One parsed route message: its key and whether it is ours.
fn parse_route(msg: &[u8]) -> Option<(Key, bool)> {
    let rt = msg.get(16..28)?;
    if rt[0] != AF_INET {
        return None;
    }
    let (dst_len, mut table, proto) = (rt[1], u32::from(rt[4]), rt[5]);
    let mut dst = 0u32;
    let mut off = 28;
    while let Some(h) = msg.get(off..off + 4) {
        let len = usize::from(u16::from_ne_bytes([h[0], h[1]]));
        let ty = u16::from_ne_bytes([h[2], h[3]]);
        if len < 4 {
            break;
        }
        let val = msg.get(off + 4..off + len)?;
        match (ty, val.len()) {
            (1, 4) => dst = u32::from_be_bytes([val[0], val[1], val[2], val[3]]),
            (15, 4) => table = u32::from_ne_bytes([val[0], val[1], val[2], val[3]]),
            _ => {}
        }
        off += len.div_ceil(4) * 4;
    }
    Some(((dst, dst_len, table), proto == RTPROT_BIRD))
}

/// Splits a netlink datagram into messages: (type, whole message).
fn messages(buf: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    let mut off = 0;
    std::iter::from_fn(move || {
        let h = buf.get(off..off + 16)?;
        let len = u32::from_ne_bytes([h[0], h[1], h[2], h[3]]) as usize;
        let ty = u16::from_ne_bytes([h[4], h[5]]);
        if len < 16 {
            return None;
        }
        let m = buf.get(off..off + len)?;
        off += len.div_ceil(4) * 4;
        Some((ty, m))
    })
}

/// Our IPv4 routes in the current namespace, by a full dump.
fn dump() -> anyhow::Result<HashSet<Key>> {
    let mut s = Socket::new(NETLINK_ROUTE).context("netlink socket")?;
    s.bind_auto()?;
    s.connect(&SocketAddr::new(0, 0))?;
    let mut req = Vec::with_capacity(28);
    req.extend_from_slice(&28u32.to_ne_bytes());
    req.extend_from_slice(&RTM_GETROUTE.to_ne_bytes());
    req.extend_from_slice(&(0x1u16 | 0x300).to_ne_bytes()); // NLM_F_REQUEST | NLM_F_DUMP
    req.extend_from_slice(&1u32.to_ne_bytes());
    req.extend_from_slice(&0u32.to_ne_bytes());
    req.extend_from_slice(&[AF_INET, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    s.send(&req, 0)?;
    let mut set = HashSet::new();
    let mut buf = Vec::with_capacity(1 << 20);
    loop {
        buf.clear();
        s.recv(&mut buf, 0)?;
        for (ty, m) in messages(&buf) {
            match ty {
                NLMSG_DONE => return Ok(set),
                NLMSG_ERROR => bail!("route dump failed"),
                RTM_NEWROUTE => {
                    if let Some((k, true)) = parse_route(m) {
                        set.insert(k);
                    }
                }
                _ => {}
            }
        }
    }
}

/// Counts `proto bird` routes in the namespace at `netns` on its own thread, into
/// `progress` (`held`, and `reached_at` when `held` equals the target).
pub struct KernelCounter {
    /// The count and when the target was reached.
    pub progress: Arc<Progress>,
    stop: Arc<AtomicBool>,
    /// Whether the monitor overran and dumps took over.
    pub overran: Arc<AtomicBool>,
}

impl KernelCounter {
    /// Starts counting; returns once the monitor is subscribed and seeded.
    pub fn start(netns: PathBuf) -> anyhow::Result<KernelCounter> {
        let progress = Arc::new(Progress::default());
        let stop = Arc::new(AtomicBool::new(false));
        let overran = Arc::new(AtomicBool::new(false));
        let (p, st, ov) = (progress.clone(), stop.clone(), overran.clone());
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), String>>();
        std::thread::Builder::new()
            .name("kernel-count".into())
            .spawn(move || {
                let r = monitor(&netns, &p, &st, &ov, &ready_tx);
                if let Err(e) = r {
                    let _ = ready_tx.send(Err(format!("{e:#}")));
                    *p.error
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner) =
                        Some(format!("{e:#}"));
                }
            })?;
        match ready_rx.recv_timeout(Duration::from_secs(10)) {
            Ok(Ok(())) => Ok(KernelCounter {
                progress,
                stop,
                overran,
            }),
            Ok(Err(e)) => bail!("kernel route counter: {e}"),
            Err(_) => bail!("kernel route counter did not start"),
        }
    }
}

impl Drop for KernelCounter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn record(progress: &Progress, held: usize) {
    let held = held as u64;
    progress.held.store(held, Ordering::SeqCst);
    if held == progress.target.load(Ordering::SeqCst) {
        let _ = progress.reached_at.compare_exchange(
            0,
            now_ns().max(1),
            Ordering::SeqCst,
            Ordering::SeqCst,
        );
    }
}

fn monitor(
    netns: &PathBuf,
    progress: &Progress,
    stop: &AtomicBool,
    overran: &AtomicBool,
    ready: &std::sync::mpsc::Sender<Result<(), String>>,
) -> anyhow::Result<()> {
    let file = std::fs::File::open(netns).with_context(|| format!("open {}", netns.display()))?;
    nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET)?;
    let mut s = Socket::new(NETLINK_ROUTE)?;
    let _ = s.set_rx_buf_sz(64usize << 20);
    s.bind(&SocketAddr::new(0, RTMGRP_IPV4_ROUTE))?;
    // A receive timeout, so that `stop` is noticed while nothing happens.
    socket2::SockRef::from(&s).set_read_timeout(Some(Duration::from_millis(100)))?;
    let mut set = dump()?;
    record(progress, set.len());
    let _ = ready.send(Ok(()));
    let mut buf = Vec::with_capacity(1 << 20);
    while !stop.load(Ordering::SeqCst) {
        buf.clear();
        match s.recv(&mut buf, 0) {
            Ok(_) => {
                for (ty, m) in messages(&buf) {
                    match (ty, parse_route(m)) {
                        (RTM_NEWROUTE, Some((k, true))) => {
                            set.insert(k);
                        }
                        (RTM_NEWROUTE, Some((k, false))) | (RTM_DELROUTE, Some((k, _))) => {
                            set.remove(&k);
                        }
                        _ => {}
                    }
                }
                record(progress, set.len());
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) if e.raw_os_error() == Some(nix::libc::ENOBUFS) => {
                // Events were lost: from now on count by dumping.
                overran.store(true, Ordering::SeqCst);
                while !stop.load(Ordering::SeqCst) {
                    set = dump()?;
                    record(progress, set.len());
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// An RTM_NEWROUTE as the kernel sends it: header, rtmsg, RTA_TABLE, RTA_DST.
    fn route_msg(ty: u16, dst: [u8; 4], len: u8, proto: u8) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend_from_slice(&0u32.to_ne_bytes()); // length, patched below
        m.extend_from_slice(&ty.to_ne_bytes());
        m.extend_from_slice(&0u16.to_ne_bytes());
        m.extend_from_slice(&[0; 8]);
        m.extend_from_slice(&[AF_INET, len, 0, 0, 254, proto, 0, 1, 0, 0, 0, 0]);
        m.extend_from_slice(&8u16.to_ne_bytes());
        m.extend_from_slice(&15u16.to_ne_bytes());
        m.extend_from_slice(&254u32.to_ne_bytes());
        m.extend_from_slice(&8u16.to_ne_bytes());
        m.extend_from_slice(&1u16.to_ne_bytes());
        m.extend_from_slice(&dst);
        let n = m.len() as u32;
        m[..4].copy_from_slice(&n.to_ne_bytes());
        m
    }

    #[test]
    fn routes_are_parsed_from_a_datagram_of_several_messages() {
        let mut dgram = route_msg(RTM_NEWROUTE, [32, 0, 5, 0], 24, RTPROT_BIRD);
        dgram.extend(route_msg(RTM_DELROUTE, [10, 1, 0, 0], 24, 2));
        let parsed: Vec<(u16, Option<(Key, bool)>)> = messages(&dgram)
            .map(|(ty, m)| (ty, parse_route(m)))
            .collect();
        assert_eq!(
            parsed,
            vec![
                (
                    RTM_NEWROUTE,
                    Some(((u32::from_be_bytes([32, 0, 5, 0]), 24, 254), true))
                ),
                (
                    RTM_DELROUTE,
                    Some(((u32::from_be_bytes([10, 1, 0, 0]), 24, 254), false))
                ),
            ]
        );
    }

    #[test]
    fn truncated_messages_are_ignored_not_misread() {
        let m = route_msg(RTM_NEWROUTE, [32, 0, 5, 0], 24, RTPROT_BIRD);
        assert_eq!(messages(&m[..m.len() - 1]).count(), 0);
        assert_eq!(parse_route(&m[..20]), None);
    }
}
