//! The decoder on a 2-octet AS session: AS_TRANS, AS4_PATH/AS4_AGGREGATOR merge (RFC 6793).
#![no_main]
use bgp_wire::DecodeContext;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let ctx = DecodeContext {
        four_octet_as: false,
        ..DecodeContext::default()
    };
    tern_fuzz::decode_all(data, &ctx);
});
