//! Shared driver for the decoder fuzz targets.
//!
//! Each target feeds its input to bgp-wire twice: as one message (`Message::decode`, whatever
//! its header says) and as a TCP byte stream split by `bgp_wire::frame`, the way a session
//! reads it. Nothing may panic, and the codec's own invariants are checked: a decode that
//! succeeds reports only non-fatal errors, and a fatal error carries a NOTIFICATION.

use bgp_wire::{DecodeContext, MAX_EXTENDED_MESSAGE_LEN, Message, frame};
use bytes::Bytes;

/// Decodes `data` as one message and as a stream, under `ctx`.
pub fn decode_all(data: &[u8], ctx: &DecodeContext) {
    check(Message::decode(Bytes::copy_from_slice(data), ctx));
    let mut rest = data;
    while let Ok(Some(n)) = frame(rest, MAX_EXTENDED_MESSAGE_LEN) {
        let (msg, tail) = rest.split_at(n);
        check(Message::decode(Bytes::copy_from_slice(msg), ctx));
        rest = tail;
    }
}

fn check(result: Result<bgp_wire::Decoded, bgp_wire::DecodeError>) {
    match result {
        Ok(decoded) => {
            assert!(
                decoded.errors.iter().all(|e| !e.is_fatal()),
                "a fatal error inside Ok: {:?}",
                decoded.errors
            );
        }
        Err(e) => {
            assert!(e.is_fatal(), "a non-fatal error returned as Err: {e:?}");
            let n = e.notification();
            assert_eq!(n.code, e.code);
        }
    }
}
