//! Real sessions recorded from BIRD 1.6, BIRD 2, GoBGP, FRR and ExaBGP
//! (`tests/data/captures`, recorded by `tests/captures/capture.sh`): every message of every
//! stream decodes without error in the context the two OPENs negotiate, and re-encodes to
//! the same message.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bgp_wire::iana::AddPathMode;
use bgp_wire::*;
use bytes::{Bytes, BytesMut};

fn captures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/captures")
}

/// `<n>_<src>_<dst>.bin` → (n, src, dst).
fn parse_name(p: &Path) -> Option<(u32, String, String)> {
    let stem = p.file_name()?.to_str()?.strip_suffix(".bin")?;
    let mut parts = stem.splitn(3, '_');
    Some((
        parts.next()?.parse().ok()?,
        parts.next()?.to_owned(),
        parts.next()?.to_owned(),
    ))
}

fn messages(data: &[u8]) -> Vec<Bytes> {
    let mut buf = BytesMut::from(data);
    let mut out = Vec::new();
    while let Some(m) = next_message(&mut buf, MAX_EXTENDED_MESSAGE_LEN).unwrap() {
        out.push(m);
    }
    assert!(buf.is_empty(), "trailing partial message");
    out
}

fn first_open(msgs: &[Bytes]) -> Option<Open> {
    msgs.iter().find_map(
        |m| match Message::decode(m.clone(), &DecodeContext::default()) {
            Ok(Decoded {
                message: Message::Open(o),
                ..
            }) => Some(o),
            _ => None,
        },
    )
}

fn add_path_modes(o: &Open) -> Vec<AddPathFamily> {
    o.capabilities
        .iter()
        .flat_map(|c| match c {
            Capability::AddPath(v) => v.clone(),
            _ => Vec::new(),
        })
        .collect()
}

/// What `sender` → `receiver` messages carry (RFC 6793, RFC 7911 §4, RFC 8654).
fn negotiated(sender: &Open, receiver: Option<&Open>) -> (DecodeContext, EncodeContext) {
    let both =
        |code| sender.has_capability(code) && receiver.is_none_or(|r| r.has_capability(code));
    let mut add_path = AddPath::NONE;
    for f in add_path_modes(sender) {
        let sends = matches!(f.mode, AddPathMode::Send | AddPathMode::SendReceive);
        let receives = receiver.is_none_or(|r| {
            add_path_modes(r).iter().any(|g| {
                g.family == f.family
                    && matches!(g.mode, AddPathMode::Receive | AddPathMode::SendReceive)
            })
        });
        if sends && receives {
            add_path.set(f.family, true);
        }
    }
    let four_octet_as = both(CapabilityCode::FourOctetAs);
    let extended_messages = both(CapabilityCode::ExtendedMessage);
    (
        DecodeContext {
            four_octet_as,
            add_path,
            extended_messages,
        },
        EncodeContext {
            four_octet_as,
            add_path,
            extended_messages,
        },
    )
}

#[test]
fn real_sessions_decode_and_reencode() {
    let root = captures();
    let mut peers: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    peers.sort();
    assert!(
        peers.len() >= 5,
        "expected captures of five peers in {}",
        root.display()
    );
    let mut by_type: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut prefixes = std::collections::BTreeSet::new();
    let mut as4_paths = 0;
    for peer in peers {
        let mut streams: BTreeMap<(String, String), Vec<Bytes>> = BTreeMap::new();
        for f in std::fs::read_dir(&peer).unwrap() {
            let path = f.unwrap().path();
            let Some((_, src, dst)) = parse_name(&path) else {
                continue;
            };
            streams.insert((src, dst), messages(&std::fs::read(&path).unwrap()));
        }
        for ((src, dst), msgs) in &streams {
            let Some(open) = first_open(msgs) else {
                continue;
            };
            let reverse = streams
                .get(&(dst.clone(), src.clone()))
                .and_then(|m| first_open(m));
            let (dctx, ectx) = negotiated(&open, reverse.as_ref());
            for m in msgs {
                let d = Message::decode(m.clone(), &dctx)
                    .unwrap_or_else(|e| panic!("{}: {src} -> {dst}: {e}", peer.display()));
                assert!(
                    d.errors.is_empty(),
                    "{}: {src} -> {dst}: {:?}",
                    peer.display(),
                    d.errors
                );
                let mut again = BytesMut::new();
                d.message.encode(&ectx, &mut again).unwrap();
                let back = Message::decode(again.freeze(), &dctx).unwrap();
                // Passed-on unknown attributes gain the Partial bit (RFC 4271 §5).
                let mut expect = d.message.clone();
                if let Message::Update(u) = &mut expect {
                    for raw in &mut u.attributes.unknown {
                        raw.flags |= attribute::flags::PARTIAL;
                    }
                }
                assert_eq!(back.message, expect, "{}: {src} -> {dst}", peer.display());
                *by_type
                    .entry(d.message.message_type().name().unwrap_or("?"))
                    .or_default() += 1;
                if let Message::Update(u) = &d.message {
                    prefixes.extend(u.announced().map(|n| n.prefix.to_string()));
                    if !dctx.four_octet_as
                        && u.attributes
                            .as_path
                            .as_ref()
                            .is_some_and(|p| p.contains(4_200_000_002))
                    {
                        as4_paths += 1;
                    }
                }
            }
        }
    }
    for kind in [
        "OPEN",
        "UPDATE",
        "NOTIFICATION",
        "KEEPALIVE",
        "ROUTE-REFRESH",
    ] {
        assert!(
            by_type.get(kind).copied().unwrap_or(0) > 0,
            "no {kind} in the captures: {by_type:?}"
        );
    }
    for p in [
        "10.99.10.0/24",
        "10.99.20.0/24",
        "10.99.30.0/24",
        "10.99.40.0/24",
        "10.99.50.0/24",
        "fd00:99:20::/48",
    ] {
        assert!(prefixes.contains(p), "{p} never announced");
    }
    // BIRD 1.6's 2-octet session carries AS 4200000002 as AS_TRANS + AS4_PATH (RFC 6793).
    assert!(
        as4_paths > 0,
        "no AS4_PATH merge seen on the 2-octet session"
    );
}
