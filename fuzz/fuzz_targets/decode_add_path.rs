//! The decoder with ADD-PATH path identifiers on IPv4 and IPv6 unicast (RFC 7911).
#![no_main]
use bgp_wire::{AddPath, DecodeContext};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let ctx = DecodeContext {
        add_path: AddPath::ALL,
        ..DecodeContext::default()
    };
    tern_fuzz::decode_all(data, &ctx);
    // One family only: the other family's NLRI must be read without identifiers.
    let v4_only = DecodeContext {
        add_path: AddPath {
            ipv4_unicast: true,
            ipv6_unicast: false,
        },
        ..DecodeContext::default()
    };
    tern_fuzz::decode_all(data, &v4_only);
});
