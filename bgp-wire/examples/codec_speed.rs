//! Rough codec speed check: decode and encode an UPDATE with 1,000 IPv4 prefixes.
//! `cargo run --release -p bgp-wire --example codec_speed` (the criterion benches in
//! `benches/` are the reference figures; this prints ns per prefix without extra tooling).

use std::hint::black_box;
use std::net::Ipv4Addr;
use std::time::Instant;

/// Nanoseconds this thread spent on a CPU (Linux schedstat), so that other load on the
/// machine does not count; wall-clock time where that is unavailable.
fn cpu_ns(start: Instant) -> u128 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| start.elapsed().as_nanos())
}

use bgp_wire::{
    AsPath, DecodeContext, EncodeContext, Message, Nlri, Origin, PathAttributes, Prefix, Update,
    UpdatePacker,
};
use bytes::BytesMut;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    const PREFIXES: usize = 1000;
    const ROUNDS: u32 = 20_000;
    let attributes = PathAttributes {
        origin: Some(Origin::Igp),
        as_path: Some(AsPath::from_sequence(&[64512, 64513])),
        next_hop: Some(Ipv4Addr::new(10, 0, 0, 1)),
        ..PathAttributes::default()
    };
    let nlri: Vec<Nlri> = (0..PREFIXES as u32)
        .map(|i| Prefix::v4(Ipv4Addr::from(0x0a00_0000 + (i << 8)), 24).map(Nlri::new))
        .collect::<Result<_, _>>()?;
    let update = Update {
        attributes: attributes.clone(),
        nlri: nlri.clone(),
        ..Update::default()
    };
    let ectx = EncodeContext {
        extended_messages: true,
        ..EncodeContext::default()
    };
    let dctx = DecodeContext {
        extended_messages: true,
        ..DecodeContext::default()
    };
    let mut buf = BytesMut::with_capacity(8192);
    update.encode(&ectx, &mut buf)?;
    let wire = buf.split().freeze();

    let epoch = Instant::now();
    let per_prefix = |t0: u128| (cpu_ns(epoch) - t0) as f64 / f64::from(ROUNDS) / PREFIXES as f64;

    let t = cpu_ns(epoch);
    for _ in 0..ROUNDS {
        black_box(Message::decode(black_box(wire.clone()), &dctx)?);
    }
    let decode = per_prefix(t);

    let t = cpu_ns(epoch);
    for _ in 0..ROUNDS {
        update.encode(&ectx, &mut buf)?;
        black_box(buf.split());
    }
    let encode = per_prefix(t);

    let packer = UpdatePacker::new(EncodeContext::default());
    let t = cpu_ns(epoch);
    for _ in 0..ROUNDS {
        packer.announce(&attributes, black_box(&nlri), &mut buf)?;
        black_box(buf.split());
    }
    let pack = per_prefix(t);
    println!(
        "CPU time: decode {decode:.2} ns/prefix, encode {encode:.2} ns/prefix, pack (4096-octet UPDATEs) {pack:.2} ns/prefix"
    );
    Ok(())
}
