//! No input makes bgp-decode panic: deterministic mutations of the real captures and their
//! raw streams go through the library paths the binary uses (the fuzz targets do the same
//! at scale; this keeps a bounded version in `cargo test`).
#![allow(clippy::unwrap_used)]

use std::path::Path;

use bgp_decode::{Output, capture_streams, decode_bytes, decode_capture};
use bgp_wire::{AddPath, DecodeContext};

/// xorshift64*: reproducible without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn mutate(rng: &mut Rng, data: &[u8]) -> Vec<u8> {
    let mut d = data.to_vec();
    for _ in 0..1 + rng.below(8) {
        match rng.below(4) {
            0 if !d.is_empty() => {
                let i = rng.below(d.len());
                d[i] ^= 1 << rng.below(8);
            }
            1 if !d.is_empty() => {
                let i = rng.below(d.len());
                d[i] = rng.next() as u8;
            }
            2 if !d.is_empty() => {
                let i = rng.below(d.len());
                d.truncate(i);
            }
            _ => {
                let i = rng.below(d.len() + 1);
                d.insert(i, rng.next() as u8);
            }
        }
    }
    d
}

const CONTEXTS: [DecodeContext; 3] = [
    DecodeContext {
        four_octet_as: true,
        add_path: AddPath::NONE,
        extended_messages: false,
    },
    DecodeContext {
        four_octet_as: false,
        add_path: AddPath::ALL,
        extended_messages: false,
    },
    DecodeContext {
        four_octet_as: true,
        add_path: AddPath::ALL,
        extended_messages: true,
    },
];

#[test]
fn mutated_captures_and_streams_never_panic() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/captures");
    let mut rng = Rng(0x7465_726e_6467_6d70);
    let mut lines = 0usize;
    let mut sink = |_line: serde_json::Value| lines += 1;
    for peer in ["bird16", "bird2", "gobgp", "frr", "exabgp"] {
        let pcap = std::fs::read(dir.join(format!("{peer}.pcap"))).unwrap();
        let streams = capture_streams(&pcap).unwrap();
        for _ in 0..40 {
            let m = mutate(&mut rng, &pcap);
            let mut out = Output::new(&mut sink);
            let _ = decode_capture(&m, DecodeContext::default(), &mut out);
        }
        for (_, data) in streams.iter().filter(|(_, d)| !d.is_empty()) {
            for ctx in CONTEXTS {
                for _ in 0..10 {
                    let m = mutate(&mut rng, data);
                    let mut out = Output::new(&mut sink);
                    decode_bytes(&m, ctx, &mut out);
                }
            }
        }
    }
    assert!(
        lines > 1000,
        "the mutations produced output ({lines} lines)"
    );
}

#[test]
fn reordered_and_duplicated_segments_decode_the_same() {
    // Reverse the packet order of each capture's records pairwise and duplicate every
    // packet: TCP reassembly must recover identical streams.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/captures");
    for peer in ["bird16", "frr", "exabgp"] {
        let pcap = std::fs::read(dir.join(format!("{peer}.pcap"))).unwrap();
        let records = classic_records(&pcap);
        let mut shuffled = pcap[..24].to_vec();
        for pair in records.chunks(2) {
            for r in pair.iter().rev() {
                shuffled.extend_from_slice(r);
                shuffled.extend_from_slice(r);
            }
        }
        // Handshake packets swapped with their neighbours may start a stream without its
        // SYN; only compare streams whose bytes are complete in both.
        let a = capture_streams(&pcap).unwrap();
        let b = capture_streams(&shuffled).unwrap();
        let total = |s: &[(String, Vec<u8>)]| s.iter().map(|(_, d)| d.len()).sum::<usize>();
        assert_eq!(total(&a), total(&b), "{peer}: same number of stream bytes");
        for (label, data) in &a {
            let other = b.iter().find(|(l, _)| l == label).unwrap();
            assert_eq!(&other.1, data, "{peer} {label}");
        }
    }
}

/// The records of a little-endian classic pcap file (header included), in file order.
fn classic_records(file: &[u8]) -> Vec<&[u8]> {
    assert_eq!(
        &file[..4],
        &[0xd4, 0xc3, 0xb2, 0xa1],
        "tcpdump writes little-endian pcap"
    );
    let mut out = Vec::new();
    let mut at = 24;
    while at + 16 <= file.len() {
        let incl = u32::from_le_bytes(file[at + 8..at + 12].try_into().unwrap()) as usize;
        out.push(&file[at..at + 16 + incl]);
        at += 16 + incl;
    }
    out
}
