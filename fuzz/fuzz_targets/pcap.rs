//! bgp-decode's capture reader, TCP reassembly and stream decoding on arbitrary files.
#![no_main]
use bgp_wire::DecodeContext;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut sink = |_line: serde_json::Value| {};
    let mut out = bgp_decode::Output::new(&mut sink);
    let _ = bgp_decode::decode_capture(data, DecodeContext::default(), &mut out);
    let _ = bgp_decode::capture_streams(data);
});
