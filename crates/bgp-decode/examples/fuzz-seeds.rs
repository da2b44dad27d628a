//! Builds the fuzz seed corpus from the committed captures: every distinct message, per
//! target, in the form that target reads (`fuzz/seeds/<target>/<hash>`).
//!
//! * `decode_as4`, `decode_add_path`, `decode_extended`: each message as it was sent, plus
//!   each whole direction of a session (the targets also split streams);
//! * `decode_as2`: the same, so 2-octet sessions' AS_TRANS/AS4_PATH messages are in;
//! * `roundtrip`: a context selector byte (bit 0: 2-octet AS, bit 1/2: ADD-PATH IPv4/IPv6,
//!   bit 3: extended messages), as negotiated by the OPENs of that session, then the message;
//! * `pcap`: the first packets of each capture file.
//!
//! Usage: `fuzz-seeds CAPTURES_DIR SEEDS_DIR` (run by `tests/captures/capture.sh`).

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use bgp_decode::{capture_streams, negotiated_context};
use bgp_wire::{DecodeContext, MAX_EXTENDED_MESSAGE_LEN, Message, Open, frame};
use bytes::Bytes;

const DECODE_TARGETS: [&str; 4] = [
    "decode_as4",
    "decode_as2",
    "decode_add_path",
    "decode_extended",
];

/// Packets kept from each capture for the `pcap` target.
const PCAP_SEED_RECORDS: usize = 24;

/// Longest stream kept whole as a seed.
const MAX_STREAM_SEED: usize = 1024;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [captures, seeds] = args.as_slice() else {
        bail!("usage: fuzz-seeds CAPTURES_DIR SEEDS_DIR");
    };
    let seeds = PathBuf::from(seeds);
    let mut pcaps: Vec<PathBuf> = std::fs::read_dir(captures)
        .with_context(|| format!("reading {captures}"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "pcap"))
        .collect();
    pcaps.sort();
    for target in DECODE_TARGETS.iter().chain(&["roundtrip", "pcap"]) {
        let dir = seeds.join(target);
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
        std::fs::create_dir_all(&dir)?;
    }
    let mut count = 0;
    for pcap in &pcaps {
        let file = std::fs::read(pcap)?;
        // The opening packets of each capture (handshakes, OPENs, first UPDATEs): whole
        // captures of tens of kilobytes would slow every fuzz iteration down.
        write_seed(&seeds.join("pcap"), head_of_pcap(&file, PCAP_SEED_RECORDS))?;
        let streams = capture_streams(&file)?;
        let opens: HashMap<&str, Open> = streams
            .iter()
            .filter_map(|(label, data)| Some((label.as_str(), first_open(data)?)))
            .collect();
        for (label, data) in &streams {
            let reverse = label
                .split_once("->")
                .map(|(a, b)| format!("{b}->{a}"))
                .unwrap_or_default();
            let ctx = match (opens.get(label.as_str()), opens.get(reverse.as_str())) {
                (Some(mine), Some(theirs)) => negotiated_context(mine, theirs),
                _ => DecodeContext::default(),
            };
            // Short sessions whole (OPEN, KEEPALIVE, NOTIFICATION sequences); long ones are
            // covered message by message and libFuzzer's crossover joins them.
            if data.len() <= MAX_STREAM_SEED {
                for target in DECODE_TARGETS {
                    write_seed(&seeds.join(target), data)?;
                }
            }
            for msg in messages(data) {
                for target in DECODE_TARGETS {
                    write_seed(&seeds.join(target), msg)?;
                }
                let mut rt = vec![selector(&ctx)];
                rt.extend_from_slice(msg);
                write_seed(&seeds.join("roundtrip"), &rt)?;
                count += 1;
            }
        }
    }
    println!("{count} messages from {} captures", pcaps.len());
    Ok(())
}

fn selector(ctx: &DecodeContext) -> u8 {
    u8::from(!ctx.four_octet_as)
        | u8::from(ctx.add_path.ipv4_unicast) << 1
        | u8::from(ctx.add_path.ipv6_unicast) << 2
        | u8::from(ctx.extended_messages) << 3
}

fn messages(mut data: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    while let Ok(Some(n)) = frame(data, MAX_EXTENDED_MESSAGE_LEN) {
        let (msg, rest) = data.split_at(n);
        out.push(msg);
        data = rest;
    }
    out
}

fn first_open(data: &[u8]) -> Option<Open> {
    let msg = messages(data).into_iter().next()?;
    match Message::decode(Bytes::copy_from_slice(msg), &DecodeContext::default()) {
        Ok(d) => match d.message {
            Message::Open(open) => Some(open),
            _ => None,
        },
        Err(_) => None,
    }
}

/// A classic pcap file cut after `records` packets (tcpdump writes little-endian files;
/// anything else is returned whole).
fn head_of_pcap(file: &[u8], records: usize) -> &[u8] {
    if file.get(..4) != Some(&[0xd4, 0xc3, 0xb2, 0xa1][..]) {
        return file;
    }
    let mut at = 24;
    for _ in 0..records {
        let Some(len) = file.get(at + 8..at + 12) else {
            break;
        };
        let incl = u32::from_le_bytes([len[0], len[1], len[2], len[3]]) as usize;
        if at + 16 + incl > file.len() {
            break;
        }
        at += 16 + incl;
    }
    &file[..at.min(file.len())]
}

/// Writes `data` under its content hash (duplicates collapse).
fn write_seed(dir: &Path, data: &[u8]) -> anyhow::Result<()> {
    let mut h = DefaultHasher::new();
    data.hash(&mut h);
    let path = dir.join(format!("{:016x}", h.finish()));
    std::fs::write(&path, data).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}
