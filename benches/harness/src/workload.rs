//! The routes the generators send, pre-encoded once per scenario with `bgp-wire`'s
//! [`UpdatePacker`] (standard 4096-octet UPDATEs, 4-octet ASes), so that sending is one
//! `write` of ready bytes and the generator costs nothing per prefix at measurement time.

use std::net::Ipv4Addr;

use anyhow::anyhow;
use bgp_wire::{
    AsPath, Community, EncodeContext, Family, LargeCommunity, Message, Nlri, Origin,
    PathAttributes, Update, UpdatePacker,
};
use bytes::BytesMut;

use crate::speaker::Block;

/// `count` IPv4 /24s from 32.0.0.0 (up to 16.7M; never overlaps the harness's link
/// addresses in 10.0.0.0/8 and 100.64.0.0/10).
pub fn table_block(count: u32) -> Block {
    Block {
        base: Ipv4Addr::new(32, 0, 0, 0),
        len: 24,
        count,
    }
}

/// Calico-style /26 blocks, one per mesh peer, from 100.64.0.0.
pub fn mesh_blocks(count: u32) -> Block {
    Block {
        base: Ipv4Addr::new(100, 64, 0, 0),
        len: 26,
        count,
    }
}

/// The DUT's own /26 in the mesh scenario.
pub fn dut_block() -> Block {
    Block {
        base: Ipv4Addr::new(100, 127, 255, 0),
        len: 26,
        count: 1,
    }
}

/// Attribute set `k` of a realistic variety: AS paths of 1–5 transit hops (64600–64899, never
/// an AS of the harness or the DUT, so no loop detection drops them) after the sender's
/// own AS (eBGP) or none (iBGP, with LOCAL_PREF), MED on a quarter of the sets, 0–2
/// communities and a large community on every third.
pub fn attributes(k: u32, sender_as: Option<u32>, next_hop: Ipv4Addr) -> PathAttributes {
    let hops = 1 + (k % 5);
    let mut asns: Vec<u32> = sender_as.into_iter().collect();
    asns.extend((0..hops).map(|h| 64_600 + (k * 7 + h * 13) % 300));
    let mut communities = Vec::new();
    for c in 0..(k % 3) {
        communities.push(Community((65_000 << 16) | ((k * 3 + c) % 65_536)));
    }
    PathAttributes {
        origin: Some(if k.is_multiple_of(10) {
            Origin::Incomplete
        } else {
            Origin::Igp
        }),
        as_path: Some(AsPath::from_sequence(&asns)),
        next_hop: Some(next_hop),
        med: k.is_multiple_of(4).then_some(k),
        local_pref: sender_as.is_none().then_some(100),
        communities: communities.into(),
        large_communities: if k.is_multiple_of(3) {
            vec![LargeCommunity {
                global_admin: 65_000,
                local_data_1: k,
                local_data_2: 1,
            }]
            .into()
        } else {
            Vec::new().into()
        },
        ..PathAttributes::default()
    }
}

fn packer() -> UpdatePacker {
    UpdatePacker::new(EncodeContext::default())
}

fn nlri(block: &Block, range: std::ops::Range<u32>) -> anyhow::Result<Vec<Nlri>> {
    range
        .map(|i| {
            block
                .prefix(i)
                .map(Nlri::new)
                .ok_or_else(|| anyhow!("block {block:?} is not aligned"))
        })
        .collect()
}

/// UPDATEs announcing every prefix of `block` in `sets` attribute sets (contiguous runs of
/// about `count / sets` prefixes each), then End-of-RIB.
pub fn announce_stream(
    block: &Block,
    sets: u32,
    sender_as: Option<u32>,
    next_hop: Ipv4Addr,
) -> anyhow::Result<BytesMut> {
    let sets = sets.clamp(1, block.count.max(1));
    let mut out = BytesMut::with_capacity(block.count as usize * 5 + 4096);
    let per = block.count.div_ceil(sets);
    let mut start = 0;
    let mut k = 0;
    while start < block.count {
        let end = (start + per).min(block.count);
        let attrs = attributes(k, sender_as, next_hop);
        packer()
            .announce(&attrs, &nlri(block, start..end)?, &mut out)
            .map_err(|e| anyhow!("packing: {e}"))?;
        start = end;
        k += 1;
    }
    end_of_rib(&mut out)?;
    Ok(out)
}

/// UPDATEs withdrawing every prefix of `block`.
pub fn withdraw_stream(block: &Block) -> anyhow::Result<BytesMut> {
    let mut out = BytesMut::with_capacity(block.count as usize * 4 + 4096);
    packer().withdraw(&nlri(block, 0..block.count)?, &mut out);
    Ok(out)
}

fn end_of_rib(out: &mut BytesMut) -> anyhow::Result<()> {
    Message::Update(Update::end_of_rib(Family::IPV4_UNICAST))
        .encode(&EncodeContext::default(), out)
        .map_err(|e| anyhow!("encoding End-of-RIB: {e}"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use bgp_wire::{DecodeContext, next_message};

    fn decode_all(mut buf: BytesMut) -> (usize, usize, std::collections::HashSet<PathAttributes>) {
        let (mut ann, mut wd) = (0, 0);
        let mut sets = std::collections::HashSet::new();
        while let Some(m) = next_message(&mut buf, bgp_wire::MAX_MESSAGE_LEN).unwrap() {
            let d = Message::decode(m, &DecodeContext::default()).unwrap();
            if let Message::Update(u) = d.message {
                ann += u.announced().count();
                wd += u.withdrawals().count();
                if u.announced().count() > 0 {
                    sets.insert(u.attributes.clone());
                }
            }
        }
        assert!(buf.is_empty());
        (ann, wd, sets)
    }

    #[test]
    fn announce_stream_carries_every_prefix_in_the_asked_number_of_sets() {
        let b = table_block(10_000);
        let s = announce_stream(&b, 100, Some(65_001), Ipv4Addr::new(10, 1, 0, 2)).unwrap();
        let (ann, wd, sets) = decode_all(s);
        assert_eq!((ann, wd), (10_000, 0));
        assert_eq!(sets.len(), 100);
    }

    #[test]
    fn withdraw_stream_withdraws_every_prefix() {
        let b = table_block(5_000);
        let (ann, wd, _) = decode_all(withdraw_stream(&b).unwrap());
        assert_eq!((ann, wd), (0, 5_000));
    }
}
