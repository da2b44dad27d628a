//! TCP reassembly, one byte stream per direction of each connection.
//!
//! Segments are placed by sequence number relative to the stream's start (the SYN's
//! sequence number + 1 when the SYN was captured, else the first data segment seen), so
//! retransmissions and overlaps are dropped and out-of-order segments wait until the gap
//! before them is filled. Sequence numbers wrap: offsets are computed as a signed distance
//! from the next expected byte. A SYN with a new initial sequence number on a 4-tuple that
//! already carried data starts a new connection.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::SocketAddr;

use crate::capture::Segment;

/// Index of one direction of one TCP connection, in order of first appearance.
pub type StreamId = usize;

/// One direction of a TCP connection.
#[derive(Debug, Clone)]
pub struct StreamInfo {
    pub src: SocketAddr,
    pub dst: SocketAddr,
    /// The connection this direction belongs to (both directions share it).
    pub connection: usize,
}

impl StreamInfo {
    /// `"10.99.0.1:179->10.99.0.2:40123"` (IPv6 addresses in brackets).
    pub fn label(&self) -> String {
        format!("{}->{}", self.src, self.dst)
    }
}

impl fmt::Display for StreamInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}->{}", self.src, self.dst)
    }
}

/// Bytes that could not be placed once the capture ended: data after a hole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gap {
    pub stream: StreamId,
    /// Offset in the stream where bytes are missing.
    pub at: u64,
    /// How many captured bytes lie after the hole (not delivered).
    pub stranded: u64,
}

#[derive(Debug, Default)]
struct Direction {
    /// Sequence number of stream offset 0.
    base: Option<u32>,
    /// The SYN's initial sequence number, if seen.
    isn: Option<u32>,
    /// Offset of the next byte to deliver.
    next: u64,
    /// Segments beyond `next`, by start offset.
    pending: BTreeMap<u64, Vec<u8>>,
}

/// Reassembles every TCP stream of a capture, in capture order.
#[derive(Debug, Default)]
pub struct Reassembler {
    streams: Vec<StreamInfo>,
    directions: Vec<Direction>,
    by_tuple: HashMap<(SocketAddr, SocketAddr), StreamId>,
    connections: usize,
}

impl Reassembler {
    pub fn new() -> Self {
        Self::default()
    }

    /// All streams seen so far, indexed by [`StreamId`].
    pub fn streams(&self) -> &[StreamInfo] {
        &self.streams
    }

    /// Feeds one segment; returns the stream and the bytes that became contiguous (possibly
    /// more than this segment's payload when it filled a hole, or nothing).
    pub fn push(&mut self, seg: &Segment<'_>) -> (StreamId, Vec<u8>) {
        let id = self.stream_for(seg);
        let dir = &mut self.directions[id];
        if seg.syn {
            dir.isn = Some(seg.seq);
            if dir.base.is_none() {
                dir.base = Some(seg.seq.wrapping_add(1));
            }
        }
        let payload_seq = if seg.syn {
            seg.seq.wrapping_add(1)
        } else {
            seg.seq
        };
        if seg.payload.is_empty() {
            return (id, Vec::new());
        }
        let base = *dir.base.get_or_insert(payload_seq);
        // Signed distance from the next expected byte: correct across sequence wrap.
        let expected = base.wrapping_add(dir.next as u32);
        let delta = i64::from(payload_seq.wrapping_sub(expected) as i32);
        let start = dir.next as i64 + delta;
        let end = start + seg.payload.len() as i64;
        let mut out = Vec::new();
        if end <= dir.next as i64 {
            return (id, out); // a retransmission of delivered bytes
        }
        if start <= dir.next as i64 {
            let skip = (dir.next as i64 - start) as usize;
            out.extend_from_slice(&seg.payload[skip..]);
            dir.next = end as u64;
            // Drain waiting segments that now touch the delivered prefix.
            while let Some(entry) = dir.pending.first_entry() {
                let s = *entry.key();
                if s > dir.next {
                    break;
                }
                let data = entry.remove();
                let e = s + data.len() as u64;
                if e > dir.next {
                    out.extend_from_slice(&data[(dir.next - s) as usize..]);
                    dir.next = e;
                }
            }
        } else {
            let start = start as u64;
            let keep = dir
                .pending
                .get(&start)
                .is_none_or(|have| have.len() < seg.payload.len());
            if keep {
                dir.pending.insert(start, seg.payload.to_vec());
            }
        }
        (id, out)
    }

    /// Holes left at the end of the capture.
    pub fn gaps(&self) -> Vec<Gap> {
        self.directions
            .iter()
            .enumerate()
            .filter_map(|(stream, d)| {
                let (&at, _) = d.pending.first_key_value()?;
                let last = d
                    .pending
                    .iter()
                    .map(|(s, v)| s + v.len() as u64)
                    .max()
                    .unwrap_or(at);
                Some(Gap {
                    stream,
                    at: d.next,
                    stranded: last.saturating_sub(at),
                })
            })
            .collect()
    }

    fn stream_for(&mut self, seg: &Segment<'_>) -> StreamId {
        let key = (seg.src, seg.dst);
        if let Some(&id) = self.by_tuple.get(&key) {
            let d = &self.directions[id];
            // A new SYN on a 4-tuple that already carried data: a new connection.
            let reused = seg.syn && d.isn != Some(seg.seq) && (d.next > 0 || d.isn.is_some());
            if !reused {
                return id;
            }
        }
        // The reverse direction decides the connection: same connection if it exists and
        // has not been superseded.
        let reverse = self.by_tuple.get(&(seg.dst, seg.src)).copied();
        let connection = match reverse {
            Some(r) if !self.connection_closed_for_new_syn(r, seg) => self.streams[r].connection,
            _ => {
                self.connections += 1;
                self.connections - 1
            }
        };
        let id = self.streams.len();
        self.streams.push(StreamInfo {
            src: seg.src,
            dst: seg.dst,
            connection,
        });
        self.directions.push(Direction::default());
        self.by_tuple.insert(key, id);
        id
    }

    /// A SYN without a matching reverse stream in the same connection: the reverse stream
    /// belongs to an older connection when this direction had one already.
    fn connection_closed_for_new_syn(&self, reverse: StreamId, seg: &Segment<'_>) -> bool {
        match self.by_tuple.get(&(seg.src, seg.dst)) {
            Some(&old) => self.streams[old].connection == self.streams[reverse].connection,
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(src: &str, dst: &str, seq: u32, syn: bool, payload: &'static [u8]) -> Segment<'static> {
        Segment {
            src: src.parse().unwrap(),
            dst: dst.parse().unwrap(),
            seq,
            syn,
            payload,
        }
    }

    const A: &str = "10.99.0.1:40000";
    const B: &str = "10.99.0.2:179";

    #[test]
    fn in_order_retransmit_and_out_of_order() {
        let mut r = Reassembler::new();
        assert_eq!(r.push(&seg(A, B, 99, true, b"")).1, b"");
        assert_eq!(r.push(&seg(A, B, 100, false, b"abc")).1, b"abc");
        assert_eq!(r.push(&seg(A, B, 100, false, b"abc")).1, b"", "retransmit");
        assert_eq!(
            r.push(&seg(A, B, 106, false, b"ghi")).1,
            b"",
            "waits for the hole"
        );
        assert_eq!(
            r.push(&seg(A, B, 102, false, b"cdef")).1,
            b"defghi",
            "overlap trimmed"
        );
        assert!(r.gaps().is_empty());
        assert_eq!(r.streams().len(), 1);
    }

    #[test]
    fn sequence_wrap() {
        let mut r = Reassembler::new();
        r.push(&seg(A, B, u32::MAX - 1, true, b""));
        assert_eq!(r.push(&seg(A, B, u32::MAX, false, b"ab")).1, b"ab");
        assert_eq!(r.push(&seg(A, B, 1, false, b"cd")).1, b"cd");
    }

    #[test]
    fn missing_syn_starts_at_first_data_and_gaps_are_reported() {
        let mut r = Reassembler::new();
        assert_eq!(r.push(&seg(A, B, 5000, false, b"xy")).1, b"xy");
        assert_eq!(r.push(&seg(A, B, 5010, false, b"zz")).1, b"");
        assert_eq!(
            r.gaps(),
            vec![Gap {
                stream: 0,
                at: 2,
                stranded: 2
            }]
        );
    }

    #[test]
    fn directions_share_a_connection_and_new_syn_starts_another() {
        let mut r = Reassembler::new();
        let (a, _) = r.push(&seg(A, B, 1, true, b""));
        let (b, _) = r.push(&seg(B, A, 500, true, b""));
        r.push(&seg(A, B, 2, false, b"x"));
        assert_ne!(a, b);
        assert_eq!(r.streams()[a].connection, r.streams()[b].connection);
        assert_eq!(r.streams()[a].label(), "10.99.0.1:40000->10.99.0.2:179");
        let (c, _) = r.push(&seg(A, B, 9000, true, b""));
        let (d, _) = r.push(&seg(B, A, 7000, true, b""));
        assert_ne!(c, a);
        assert_ne!(d, b);
        assert_eq!(r.streams()[c].connection, r.streams()[d].connection);
        assert_ne!(r.streams()[c].connection, r.streams()[a].connection);
    }
}
