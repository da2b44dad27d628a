//! Socket options Tokio does not expose: TCP-MD5 (RFC 2385), GTSM (RFC 5082) and the
//! outgoing TTL / hop limit of multihop sessions.
//!
//! This is the only module of the crate with `unsafe`: each option is one `setsockopt(2)` on a
//! socket we own, with a value that lives on the stack for the duration of the call.
#![allow(unsafe_code)]

use std::io;
use std::mem::size_of;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;

/// Longest TCP-MD5 key Linux accepts (`TCP_MD5SIG_MAXKEYLEN`).
pub const MD5_MAX_KEY_LEN: usize = 80;

/// `struct tcp_md5sig` of `<linux/tcp.h>` (libc does not define it).
#[repr(C)]
struct TcpMd5Sig {
    addr: libc::sockaddr_storage,
    flags: u8,
    prefixlen: u8,
    keylen: u16,
    ifindex: libc::c_int,
    key: [u8; MD5_MAX_KEY_LEN],
}

fn setsockopt<T>(
    fd: &impl AsRawFd,
    level: libc::c_int,
    name: libc::c_int,
    value: &T,
) -> io::Result<()> {
    let len = libc::socklen_t::try_from(size_of::<T>())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "option value too large"))?;
    // SAFETY: `value` is a valid, initialised `T` borrowed for the whole call, `len` is its exact
    // size, and the kernel only reads `len` bytes from it; `fd` is an open socket owned by the
    // caller (an invalid descriptor yields EBADF, not undefined behaviour).
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (value as *const T).cast::<libc::c_void>(),
            len,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Installs (or, with an empty key, removes) the RFC 2385 TCP-MD5 key for segments to and from
/// `peer` on `fd`. On a listening socket this makes the kernel accept only signed SYNs from
/// that peer; on a connecting socket it must be set before `connect`.
pub fn set_tcp_md5(fd: &impl AsRawFd, peer: IpAddr, key: &[u8]) -> io::Result<()> {
    if key.len() > MD5_MAX_KEY_LEN {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "TCP-MD5 key longer than 80 bytes",
        ));
    }
    // SAFETY: `sockaddr_storage` is plain old data for which all-zero bytes are a valid value.
    let mut addr: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    match peer {
        IpAddr::V4(ip) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: 0,
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(ip.octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: `sockaddr_storage` is larger than and suitably aligned for `sockaddr_in`;
            // we write one whole, initialised `sockaddr_in` at its start.
            unsafe {
                std::ptr::write((&raw mut addr).cast::<libc::sockaddr_in>(), sin);
            }
        }
        IpAddr::V6(ip) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: 0,
                sin6_flowinfo: 0,
                sin6_addr: libc::in6_addr {
                    s6_addr: ip.octets(),
                },
                sin6_scope_id: 0,
            };
            // SAFETY: as above, for `sockaddr_in6`.
            unsafe {
                std::ptr::write((&raw mut addr).cast::<libc::sockaddr_in6>(), sin6);
            }
        }
    }
    let mut sig = TcpMd5Sig {
        addr,
        flags: 0,
        prefixlen: 0,
        keylen: key.len() as u16, // ≤ 80, checked above
        ifindex: 0,
        key: [0; MD5_MAX_KEY_LEN],
    };
    sig.key[..key.len()].copy_from_slice(key);
    setsockopt(fd, libc::IPPROTO_TCP, libc::TCP_MD5SIG, &sig)
}

/// RFC 5082 GTSM: drop segments whose TTL (hop limit) is below `min`. A directly connected
/// peer sending with TTL 255 passes `min = 255`; `hops` away it passes `256 - hops`.
pub fn set_min_ttl(fd: &impl AsRawFd, peer: SocketAddr, min: u8) -> io::Result<()> {
    let value = libc::c_int::from(min);
    match peer {
        SocketAddr::V4(_) => setsockopt(fd, libc::IPPROTO_IP, libc::IP_MINTTL, &value),
        SocketAddr::V6(_) => setsockopt(fd, libc::IPPROTO_IPV6, libc::IPV6_MINHOPCOUNT, &value),
    }
}

/// Asks the kernel to keep the SYN of every connection accepted on this listening socket
/// (`TCP_SAVE_SYN`), so [`saved_syn_ttl`] can check a GTSM peer's SYN: `IP_MINTTL` can only be
/// set once the connection is accepted, and segments queued before that were not checked.
pub fn set_save_syn(fd: &impl AsRawFd) -> io::Result<()> {
    let on: libc::c_int = 1;
    setsockopt(fd, libc::IPPROTO_TCP, libc::TCP_SAVE_SYN, &on)
}

/// The TTL (IPv4) or hop limit (IPv6) the SYN of an accepted connection arrived with, from the
/// saved SYN headers (`TCP_SAVED_SYN`; the kernel hands them out once). `None` when the
/// listener did not save it.
pub fn saved_syn_ttl(fd: &impl AsRawFd) -> io::Result<Option<u8>> {
    let mut buf = [0u8; 512];
    let mut len = buf.len() as libc::socklen_t;
    // SAFETY: `buf` is a writable buffer of `len` bytes that outlives the call; the kernel writes
    // at most `len` bytes and stores the written length in `len`; `fd` is an open socket owned by
    // the caller.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_SAVED_SYN,
            buf.as_mut_ptr().cast::<libc::c_void>(),
            &raw mut len,
        )
    };
    if rc != 0 {
        let e = io::Error::last_os_error();
        return match e.raw_os_error() {
            // Nothing saved (the listener did not ask, or it was already taken).
            Some(libc::ENOENT) | Some(libc::ENOPROTOOPT) => Ok(None),
            _ => Err(e),
        };
    }
    let headers = buf.get(..len as usize).unwrap_or(&[]);
    // The saved bytes start with the network header: IPv4 TTL is octet 8, IPv6 hop limit
    // octet 7 (an IPv4-mapped connection on an IPv6 socket saves an IPv4 header).
    Ok(match headers.first().map(|b| b >> 4) {
        Some(4) => headers.get(8).copied(),
        Some(6) => headers.get(7).copied(),
        _ => None,
    })
}

/// Sets the TTL (IPv4) or unicast hop limit (IPv6) of outgoing segments: 1 for a directly
/// connected eBGP peer, more for multihop, 255 under GTSM.
pub fn set_ttl(fd: &impl AsRawFd, peer: SocketAddr, ttl: u8) -> io::Result<()> {
    let value = libc::c_int::from(ttl);
    match peer {
        SocketAddr::V4(_) => setsockopt(fd, libc::IPPROTO_IP, libc::IP_TTL, &value),
        SocketAddr::V6(_) => setsockopt(fd, libc::IPPROTO_IPV6, libc::IPV6_UNICAST_HOPS, &value),
    }
}

/// Restricts an IPv6 socket to IPv6 (so `[::]:179` and `0.0.0.0:179` can both be bound).
pub fn set_v6_only(fd: &impl AsRawFd) -> io::Result<()> {
    let one: libc::c_int = 1;
    setsockopt(fd, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, &one)
}
