//! The decoder on a modern session: 4-octet AS, no ADD-PATH, 4096-octet messages.
#![no_main]
use bgp_wire::DecodeContext;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    tern_fuzz::decode_all(data, &DecodeContext::default());
});
