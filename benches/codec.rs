//! bgp-wire codec speed, per prefix: one UPDATE carrying 1,000 IPv4 prefixes, and a stream
//! of 100,000 prefixes spread over many UPDATEs with varied attribute sets (as a full-table
//! transfer looks: a few to a few hundred prefixes per attribute set).
//!
//! `cargo bench -p tern-benches --bench codec`  (the README reports ns/prefix = time / prefixes)
//!
//! Time is the benchmark thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`), not wall
//! time: the development machine has 2 cores shared with other builds, and waiting for a core
//! is not codec time. `CODEC_BENCH_WALL=1` measures wall time instead.

use std::hint::black_box;
use std::net::Ipv4Addr;

use bgp_wire::{
    AsPath, Community, DecodeContext, EncodeContext, LargeCommunity, MAX_EXTENDED_MESSAGE_LEN,
    Message, Nlri, Origin, PathAttributes, Prefix, Update, UpdatePacker, frame,
};
use bytes::{Bytes, BytesMut};
use criterion::measurement::{Measurement, ValueFormatter};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

/// CPU time of the calling thread, in nanoseconds; wall time when unavailable or asked for.
struct CpuTime {
    wall: bool,
}

impl CpuTime {
    fn now(&self) -> u64 {
        use nix::time::{ClockId, clock_gettime};
        if !self.wall
            && let Ok(t) = clock_gettime(ClockId::CLOCK_THREAD_CPUTIME_ID)
        {
            return t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64;
        }
        let epoch = *EPOCH.get_or_init(std::time::Instant::now);
        epoch.elapsed().as_nanos() as u64
    }
}

static EPOCH: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();

impl Measurement for CpuTime {
    type Intermediate = u64;
    type Value = u64;

    fn start(&self) -> u64 {
        self.now()
    }
    fn end(&self, start: u64) -> u64 {
        self.now().saturating_sub(start)
    }
    fn add(&self, a: &u64, b: &u64) -> u64 {
        a + b
    }
    fn zero(&self) -> u64 {
        0
    }
    fn to_f64(&self, v: &u64) -> f64 {
        *v as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        &NanosFormatter
    }
}

/// Formats nanosecond values as ns/µs/ms/s and element throughputs per second.
struct NanosFormatter;

impl ValueFormatter for NanosFormatter {
    fn scale_values(&self, typical: f64, values: &mut [f64]) -> &'static str {
        let (factor, unit) = if typical < 1e3 {
            (1.0, "ns")
        } else if typical < 1e6 {
            (1e-3, "µs")
        } else if typical < 1e9 {
            (1e-6, "ms")
        } else {
            (1e-9, "s")
        };
        for v in values {
            *v *= factor;
        }
        unit
    }

    fn scale_throughputs(&self, _typical: f64, t: &Throughput, values: &mut [f64]) -> &'static str {
        let per = match t {
            Throughput::Elements(n) | Throughput::Bytes(n) | Throughput::BytesDecimal(n) => {
                *n as f64
            }
            _ => 1.0,
        };
        for v in values {
            *v = per * 1e9 / *v / 1e6;
        }
        "M/s"
    }

    fn scale_for_machines(&self, _values: &mut [f64]) -> &'static str {
        "ns"
    }
}

fn config() -> Criterion<CpuTime> {
    let wall = std::env::var_os("CODEC_BENCH_WALL").is_some_and(|v| v == "1");
    Criterion::default().with_measurement(CpuTime { wall })
}

/// A typical eBGP attribute set; `n` varies the AS path, MED and communities.
fn attributes(n: u32) -> PathAttributes {
    PathAttributes {
        origin: Some(Origin::Igp),
        as_path: Some(AsPath::from_sequence(&[
            65001,
            4_200_000_000 + n % 1000,
            64512 + n % 500,
        ])),
        next_hop: Some(Ipv4Addr::new(10, 99, 0, 1)),
        med: Some(n % 100),
        communities: [
            Community::new(65001, (n % 65000) as u16),
            Community::NO_EXPORT,
        ]
        .into(),
        large_communities: [LargeCommunity {
            global_admin: 4_200_000_001,
            local_data_1: n,
            local_data_2: 7,
        }]
        .into(),
        ..PathAttributes::default()
    }
}

/// `count` distinct IPv4 prefixes of lengths /16 to /24 (a table's usual mix), from `start`.
fn prefixes(start: u32, count: u32) -> Vec<Nlri> {
    (start..start + count)
        .map(|i| {
            let len = 16 + (i % 9) as u8;
            let addr = Ipv4Addr::from(0x0b00_0000 + (i << 8));
            Nlri::new(Prefix::v4(addr, len).unwrap_or(Prefix::V4 { addr, len: 24 }))
        })
        .collect()
}

fn one_update(c: &mut Criterion<CpuTime>) {
    // 1,000 prefixes do not fit 4096 octets with these attributes: extended messages.
    let ectx = EncodeContext {
        extended_messages: true,
        ..EncodeContext::default()
    };
    let dctx = DecodeContext {
        extended_messages: true,
        ..DecodeContext::default()
    };
    let update = Update {
        attributes: attributes(1),
        nlri: prefixes(0, 1000),
        ..Update::default()
    };
    let msg = Message::Update(update.clone());
    let mut buf = BytesMut::new();
    if let Err(e) = msg.encode(&ectx, &mut buf) {
        panic!("encoding the bench UPDATE: {e}");
    }
    let wire: Bytes = buf.freeze();

    let mut g = c.benchmark_group("update_1000_ipv4");
    g.throughput(Throughput::Elements(1000));
    g.bench_function("decode", |b| {
        b.iter(|| {
            let d = Message::decode(black_box(wire.clone()), &dctx);
            black_box(d.is_ok())
        })
    });
    let mut out = BytesMut::with_capacity(wire.len() * 2);
    g.bench_function("encode", |b| {
        b.iter(|| {
            out.clear();
            let r = black_box(&msg).encode(&ectx, &mut out);
            black_box((r.is_ok(), out.len()))
        })
    });
    g.finish();
}

/// 100,000 prefixes in groups of 1..=200 sharing an attribute set, packed into as few
/// standard (4096-octet) UPDATEs as each group allows.
fn stream(c: &mut Criterion<CpuTime>) {
    const TOTAL: u32 = 100_000;
    let mut groups: Vec<(PathAttributes, Vec<Nlri>)> = Vec::new();
    let mut next = 0;
    let mut n = 0;
    while next < TOTAL {
        // 1, 8, 15, ... 197 prefixes per attribute set, cycling.
        let size = (1 + (n * 7) % 200).min(TOTAL - next);
        groups.push((attributes(n), prefixes(next, size)));
        next += size;
        n += 1;
    }
    let ctx = EncodeContext::default();
    let packer = UpdatePacker::new(ctx);
    let mut wire = BytesMut::new();
    for (attrs, nlri) in &groups {
        if let Err(e) = packer.announce(attrs, nlri, &mut wire) {
            panic!("packing the bench stream: {e}");
        }
    }
    let wire = wire.freeze();
    let dctx = DecodeContext::default();
    let mut messages = 0;
    let mut rest = &wire[..];
    while let Ok(Some(len)) = frame(rest, MAX_EXTENDED_MESSAGE_LEN) {
        messages += 1;
        rest = &rest[len..];
    }
    println!(
        "stream: {TOTAL} prefixes, {} attribute sets, {messages} UPDATEs, {} octets",
        groups.len(),
        wire.len()
    );

    let mut g = c.benchmark_group("stream_100k_ipv4");
    g.throughput(Throughput::Elements(u64::from(TOTAL)));
    g.sample_size(20);
    g.bench_function("decode", |b| {
        b.iter(|| {
            let mut prefixes = 0;
            let mut at = 0;
            while let Ok(Some(len)) = frame(&wire[at..], MAX_EXTENDED_MESSAGE_LEN) {
                if let Ok(d) = Message::decode(wire.slice(at..at + len), &dctx)
                    && let Message::Update(u) = d.message
                {
                    prefixes += u.nlri.len();
                }
                at += len;
            }
            assert_eq!(prefixes, TOTAL as usize);
            black_box(prefixes)
        })
    });
    let mut out = BytesMut::with_capacity(wire.len() + 4096);
    g.bench_function("encode", |b| {
        b.iter(|| {
            out.clear();
            for (attrs, nlri) in &groups {
                let r = packer.announce(attrs, nlri, &mut out);
                black_box(r.is_ok());
            }
            black_box(out.len())
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = config();
    targets = one_update, stream
}
criterion_main!(benches);
