//! The decoder with extended messages (RFC 8654, 65535 octets), on a 2-octet and a
//! 4-octet session.
#![no_main]
use bgp_wire::DecodeContext;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for four_octet_as in [true, false] {
        let ctx = DecodeContext {
            four_octet_as,
            extended_messages: true,
            ..DecodeContext::default()
        };
        tern_fuzz::decode_all(data, &ctx);
    }
});
