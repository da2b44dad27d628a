//! Capture files: classic pcap and pcapng, and the link, IP and TCP headers inside them.
//!
//! Only what a BGP capture needs: Ethernet (with VLAN tags), Linux cooked captures (SLL and
//! SLL2, what `tcpdump -i any` writes), raw IP and BSD loopback framing; IPv4 and IPv6 (with
//! extension headers); TCP. IP fragments are skipped: BGP speakers do not fragment TCP.
//! Every length is checked against the bytes present, so a truncated or hostile file yields
//! an error or fewer packets, never a panic.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// A capture file that cannot be read as pcap or pcapng.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("not a pcap or pcapng file (magic {0:#010x})")]
    BadMagic(u32),
    #[error("capture file truncated at byte {0}")]
    Truncated(usize),
    #[error("pcapng block at byte {offset} has an invalid length {length}")]
    BadBlock { offset: usize, length: u32 },
}

/// One captured frame and the link type that says how to read it.
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    /// `LINKTYPE_*` value from the file (1 = Ethernet, 113 = Linux SLL, ...).
    pub link_type: u32,
    pub data: &'a [u8],
}

/// A TCP segment to or from port 179.
#[derive(Debug, Clone, Copy)]
pub struct Segment<'a> {
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub seq: u32,
    pub syn: bool,
    pub payload: &'a [u8],
}

const TCP_SYN: u8 = 0x02;

/// The BGP port (RFC 4271 §8.2.1).
pub const BGP_PORT: u16 = 179;

/// Reads every frame of a pcap or pcapng file, in file order.
pub fn frames(file: &[u8]) -> Result<Vec<Frame<'_>>, CaptureError> {
    let magic = read_u32(file, 0, false).ok_or(CaptureError::Truncated(0))?;
    match magic {
        0xa1b2_c3d4 | 0xa1b2_3c4d => pcap_frames(file, false),
        0xd4c3_b2a1 | 0x4d3c_b2a1 => pcap_frames(file, true),
        0x0a0d_0d0a => pcapng_frames(file),
        other => Err(CaptureError::BadMagic(other)),
    }
}

/// Classic libpcap format: a 24-byte global header, then 16-byte record headers.
fn pcap_frames(file: &[u8], swapped: bool) -> Result<Vec<Frame<'_>>, CaptureError> {
    // The magic was read big-endian; "swapped" means the file is little-endian.
    let le = swapped;
    let link_type = read_u32(file, 20, le).ok_or(CaptureError::Truncated(file.len()))?;
    let mut out = Vec::new();
    let mut at = 24;
    while at < file.len() {
        let incl = read_u32(file, at + 8, le).ok_or(CaptureError::Truncated(at))? as usize;
        let start = at + 16;
        let data = file
            .get(start..start.saturating_add(incl))
            .ok_or(CaptureError::Truncated(at))?;
        out.push(Frame { link_type, data });
        at = start + incl;
    }
    Ok(out)
}

/// pcapng (draft-ietf-opsawg-pcapng): sections of blocks; interfaces carry the link type.
fn pcapng_frames(file: &[u8]) -> Result<Vec<Frame<'_>>, CaptureError> {
    const SHB: u32 = 0x0a0d_0d0a;
    const IDB: u32 = 1;
    const OPB: u32 = 2;
    const SPB: u32 = 3;
    const EPB: u32 = 6;
    let mut out = Vec::new();
    let mut le = true;
    let mut link_types: Vec<u32> = Vec::new();
    let mut at = 0;
    while at < file.len() {
        let kind = read_u32(file, at, le).ok_or(CaptureError::Truncated(at))?;
        if kind == SHB {
            // The byte-order magic decides the endianness of this whole section.
            let bom = read_u32(file, at + 8, true).ok_or(CaptureError::Truncated(at))?;
            le = match bom {
                0x1a2b_3c4d => true,
                0x4d3c_2b1a => false,
                other => return Err(CaptureError::BadMagic(other)),
            };
            link_types.clear();
        }
        let length = read_u32(file, at + 4, le).ok_or(CaptureError::Truncated(at))?;
        let len = length as usize;
        if len < 12 || !len.is_multiple_of(4) {
            return Err(CaptureError::BadBlock { offset: at, length });
        }
        let block = file
            .get(at..at.saturating_add(len))
            .ok_or(CaptureError::Truncated(at))?;
        let body = &block[8..len - 4];
        match kind {
            IDB => {
                let lt = read_u16(body, 0, le).ok_or(CaptureError::Truncated(at))?;
                link_types.push(u32::from(lt));
            }
            EPB | OPB => {
                let (iface, cap_at) = if kind == EPB {
                    (read_u32(body, 0, le), 12)
                } else {
                    (read_u16(body, 0, le).map(u32::from), 12)
                };
                let iface = iface.ok_or(CaptureError::Truncated(at))? as usize;
                let cap = read_u32(body, cap_at, le).ok_or(CaptureError::Truncated(at))? as usize;
                let start = cap_at + 8;
                let data = body
                    .get(start..start.saturating_add(cap))
                    .ok_or(CaptureError::Truncated(at))?;
                if let Some(&link_type) = link_types.get(iface) {
                    out.push(Frame { link_type, data });
                }
            }
            SPB => {
                let orig = read_u32(body, 0, le).ok_or(CaptureError::Truncated(at))? as usize;
                let data = &body[4..];
                let data = &data[..orig.min(data.len())];
                if let Some(&link_type) = link_types.first() {
                    out.push(Frame { link_type, data });
                }
            }
            _ => {}
        }
        at += len;
    }
    Ok(out)
}

/// Extracts the TCP segment of a frame if it is TCP to or from port 179.
pub fn bgp_segment(frame: Frame<'_>) -> Option<Segment<'_>> {
    let d = frame.data;
    let (ethertype, ip) = match frame.link_type {
        // LINKTYPE_ETHERNET: destination, source, ethertype, optional 802.1Q/802.1ad tags.
        1 => {
            let mut et = read_u16(d, 12, false)?;
            let mut at = 14;
            while et == 0x8100 || et == 0x88a8 {
                et = read_u16(d, at + 2, false)?;
                at += 4;
            }
            (et, d.get(at..)?)
        }
        // LINKTYPE_LINUX_SLL: 16-byte header, protocol last.
        113 => (read_u16(d, 14, false)?, d.get(16..)?),
        // LINKTYPE_LINUX_SLL2: 20-byte header, protocol first.
        276 => (read_u16(d, 0, false)?, d.get(20..)?),
        // LINKTYPE_RAW and LINKTYPE_IPV4/IPV6: the IP version nibble decides.
        101 | 228 | 229 => (ethertype_of_version(d)?, d),
        // LINKTYPE_NULL / LOOP: 4-byte address family, in either byte order.
        0 | 108 => (ethertype_of_version(d.get(4..)?)?, d.get(4..)?),
        _ => return None,
    };
    let (src, dst, tcp) = match ethertype {
        0x0800 => ipv4(ip)?,
        0x86dd => ipv6(ip)?,
        _ => return None,
    };
    let sport = read_u16(tcp, 0, false)?;
    let dport = read_u16(tcp, 2, false)?;
    if sport != BGP_PORT && dport != BGP_PORT {
        return None;
    }
    let seq = read_u32(tcp, 4, false)?;
    let offset = usize::from(*tcp.get(12)? >> 4) * 4;
    let flags = *tcp.get(13)?;
    if offset < 20 {
        return None;
    }
    Some(Segment {
        src: SocketAddr::new(src, sport),
        dst: SocketAddr::new(dst, dport),
        seq,
        syn: flags & TCP_SYN != 0,
        payload: tcp.get(offset..)?,
    })
}

fn ethertype_of_version(ip: &[u8]) -> Option<u16> {
    match ip.first()? >> 4 {
        4 => Some(0x0800),
        6 => Some(0x86dd),
        _ => None,
    }
}

/// IPv4 (RFC 791): returns addresses and the TCP bytes, or `None` for non-TCP or fragments.
fn ipv4(ip: &[u8]) -> Option<(IpAddr, IpAddr, &[u8])> {
    let first = *ip.first()?;
    let ihl = usize::from(first & 0x0f) * 4;
    if first >> 4 != 4 || ihl < 20 {
        return None;
    }
    let total = usize::from(read_u16(ip, 2, false)?);
    let frag = read_u16(ip, 6, false)?;
    // More-fragments set or a non-zero offset: not a whole TCP segment.
    if frag & 0x3fff != 0 || *ip.get(9)? != 6 || (total != 0 && total < ihl) {
        return None;
    }
    let src = Ipv4Addr::from(read_u32(ip, 12, false)?);
    let dst = Ipv4Addr::from(read_u32(ip, 16, false)?);
    // Ethernet may pad short frames: the IP total length is authoritative, except that a
    // GSO/BIG TCP packet captured before segmentation carries 0 there (the frame is all).
    let end = if total == 0 {
        ip.len()
    } else {
        total.min(ip.len())
    };
    Some((src.into(), dst.into(), ip.get(ihl..end)?))
}

/// IPv6 (RFC 8200): walks extension headers up to TCP; fragments are skipped.
fn ipv6(ip: &[u8]) -> Option<(IpAddr, IpAddr, &[u8])> {
    if ip.first()? >> 4 != 6 {
        return None;
    }
    let payload_len = usize::from(read_u16(ip, 4, false)?);
    let mut next = *ip.get(6)?;
    let src: [u8; 16] = ip.get(8..24)?.try_into().ok()?;
    let dst: [u8; 16] = ip.get(24..40)?.try_into().ok()?;
    // Payload length 0: a jumbogram (RFC 2675) or BIG TCP packet; the frame is all of it.
    let end = if payload_len == 0 {
        ip.len()
    } else {
        (40 + payload_len).min(ip.len())
    };
    let mut at = 40;
    // At most a handful of extension headers exist in practice; the bound keeps it linear.
    for _ in 0..8 {
        match next {
            6 => {
                let tcp = ip.get(at..end)?;
                return Some((Ipv6Addr::from(src).into(), Ipv6Addr::from(dst).into(), tcp));
            }
            // Hop-by-hop, routing, destination options: (len + 1) * 8 bytes.
            0 | 43 | 60 => {
                next = *ip.get(at)?;
                at += (usize::from(*ip.get(at + 1)?) + 1) * 8;
            }
            // Authentication header: (len + 2) * 4 bytes.
            51 => {
                next = *ip.get(at)?;
                at += (usize::from(*ip.get(at + 1)?) + 2) * 4;
            }
            _ => return None,
        }
    }
    None
}

fn read_u16(b: &[u8], at: usize, le: bool) -> Option<u16> {
    let bytes: [u8; 2] = b.get(at..at.checked_add(2)?)?.try_into().ok()?;
    Some(if le {
        u16::from_le_bytes(bytes)
    } else {
        u16::from_be_bytes(bytes)
    })
}

fn read_u32(b: &[u8], at: usize, le: bool) -> Option<u32> {
    let bytes: [u8; 4] = b.get(at..at.checked_add(4)?)?.try_into().ok()?;
    Some(if le {
        u32::from_le_bytes(bytes)
    } else {
        u32::from_be_bytes(bytes)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp_ipv4_frame(payload: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; 14];
        f[12] = 0x08;
        let total = 20 + 20 + payload.len();
        let mut ip = vec![
            0x45,
            0,
            (total >> 8) as u8,
            total as u8,
            0,
            0,
            0x40,
            0,
            64,
            6,
            0,
            0,
        ];
        ip.extend_from_slice(&[10, 99, 0, 1, 10, 99, 0, 2]);
        f.extend_from_slice(&ip);
        let mut tcp = vec![0u8; 20];
        tcp[0..2].copy_from_slice(&179u16.to_be_bytes());
        tcp[2..4].copy_from_slice(&40000u16.to_be_bytes());
        tcp[4..8].copy_from_slice(&1000u32.to_be_bytes());
        tcp[12] = 5 << 4;
        tcp[13] = 0x18;
        f.extend_from_slice(&tcp);
        f.extend_from_slice(payload);
        // Ethernet minimum-size padding must not be taken as payload.
        f.extend_from_slice(&[0xee; 6]);
        f
    }

    #[test]
    fn classic_pcap_both_byte_orders() {
        let frame = tcp_ipv4_frame(b"abc");
        for le in [true, false] {
            let w32 = |v: u32| if le { v.to_le_bytes() } else { v.to_be_bytes() };
            let w16 = |v: u16| if le { v.to_le_bytes() } else { v.to_be_bytes() };
            let mut file = Vec::new();
            file.extend_from_slice(&w32(0xa1b2_c3d4));
            file.extend_from_slice(&w16(2));
            file.extend_from_slice(&w16(4));
            file.extend_from_slice(&[0; 8]);
            file.extend_from_slice(&w32(65535));
            file.extend_from_slice(&w32(1));
            file.extend_from_slice(&[0; 8]);
            file.extend_from_slice(&w32(frame.len() as u32));
            file.extend_from_slice(&w32(frame.len() as u32));
            file.extend_from_slice(&frame);
            let frames = frames(&file).unwrap();
            assert_eq!(frames.len(), 1);
            let seg = bgp_segment(frames[0]).unwrap();
            assert_eq!(seg.payload, b"abc");
            assert_eq!(seg.src.to_string(), "10.99.0.1:179");
            assert_eq!(seg.dst.to_string(), "10.99.0.2:40000");
            assert_eq!(seg.seq, 1000);
            assert!(!seg.syn);
        }
    }

    #[test]
    fn pcapng_with_interface_and_enhanced_packet() {
        let frame = tcp_ipv4_frame(b"xy");
        let mut file = Vec::new();
        let block = |file: &mut Vec<u8>, kind: u32, body: &[u8]| {
            let mut body = body.to_vec();
            while !body.len().is_multiple_of(4) {
                body.push(0);
            }
            let len = (body.len() + 12) as u32;
            file.extend_from_slice(&kind.to_le_bytes());
            file.extend_from_slice(&len.to_le_bytes());
            file.extend_from_slice(&body);
            file.extend_from_slice(&len.to_le_bytes());
        };
        let mut shb = 0x1a2b_3c4du32.to_le_bytes().to_vec();
        shb.extend_from_slice(&[1, 0, 0, 0]);
        shb.extend_from_slice(&[0xff; 8]);
        block(&mut file, 0x0a0d_0d0a, &shb);
        block(&mut file, 1, &[1, 0, 0, 0, 0, 0, 0, 0]);
        let mut epb = Vec::new();
        epb.extend_from_slice(&0u32.to_le_bytes());
        epb.extend_from_slice(&[0; 8]);
        epb.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        epb.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        epb.extend_from_slice(&frame);
        block(&mut file, 6, &epb);
        let frames = frames(&file).unwrap();
        assert_eq!(frames.len(), 1);
        assert_eq!(bgp_segment(frames[0]).unwrap().payload, b"xy");
    }

    #[test]
    fn ipv4_total_length_zero_means_the_whole_frame() {
        let mut f = tcp_ipv4_frame(b"abc");
        f[16] = 0;
        f[17] = 0;
        let seg = bgp_segment(Frame {
            link_type: 1,
            data: &f[..f.len() - 6],
        })
        .unwrap();
        assert_eq!(seg.payload, b"abc");
    }

    #[test]
    fn ipv6_over_linux_cooked_capture() {
        let mut f = vec![0u8; 20];
        f[0..2].copy_from_slice(&0x86ddu16.to_be_bytes());
        let mut ip = vec![0x60, 0, 0, 0, 0, 22, 6, 64];
        ip.extend_from_slice(&"fd00:99::1".parse::<Ipv6Addr>().unwrap().octets());
        ip.extend_from_slice(&"fd00:99::2".parse::<Ipv6Addr>().unwrap().octets());
        f.extend_from_slice(&ip);
        let mut tcp = vec![0u8; 20];
        tcp[0..2].copy_from_slice(&40000u16.to_be_bytes());
        tcp[2..4].copy_from_slice(&179u16.to_be_bytes());
        tcp[12] = 5 << 4;
        tcp[13] = TCP_SYN;
        f.extend_from_slice(&tcp);
        f.extend_from_slice(b"hi");
        let seg = bgp_segment(Frame {
            link_type: 276,
            data: &f,
        })
        .unwrap();
        assert_eq!(seg.src.to_string(), "[fd00:99::1]:40000");
        assert_eq!(seg.dst.to_string(), "[fd00:99::2]:179");
        assert!(seg.syn);
        assert_eq!(seg.payload, b"hi");
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(matches!(frames(b"nope"), Err(CaptureError::BadMagic(_))));
        assert!(frames(&[0xd4, 0xc3, 0xb2]).is_err());
        let mut truncated = vec![0xd4, 0xc3, 0xb2, 0xa1];
        truncated.extend_from_slice(&[0; 20]);
        truncated.extend_from_slice(&[0; 8]);
        truncated.extend_from_slice(&1000u32.to_le_bytes());
        assert!(matches!(
            frames(&truncated),
            Err(CaptureError::Truncated(_))
        ));
        for n in 0..60 {
            let f = tcp_ipv4_frame(b"abc");
            let _ = bgp_segment(Frame {
                link_type: 1,
                data: &f[..n],
            });
        }
    }
}
