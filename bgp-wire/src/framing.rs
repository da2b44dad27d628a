//! Finding message boundaries in a TCP byte stream (RFC 4271 §4.1, §6.1).
//!
//! Only the header is checked here: the marker must be all ones and the length must lie in
//! 19..=max (4096, or 65535 with extended messages, RFC 8654). Per-type length rules are
//! checked by [`Message::decode`](crate::Message::decode).

use bytes::{Bytes, BytesMut};

use crate::context::HEADER_LEN;
use crate::error::{DecodeError, Reason};
use crate::iana::{ErrorCode, MessageHeaderSubcode};

/// Length of the message at the front of `buf`: `Ok(Some(n))` when all `n` octets are there,
/// `Ok(None)` when more input is needed, `Err` (Message Header Error, session reset) when the
/// header is bad. Never reads past the header before the whole message has arrived.
pub fn frame(buf: &[u8], max_message_len: usize) -> Result<Option<usize>, DecodeError> {
    let Some(header) = buf.get(..HEADER_LEN) else {
        // Reject a bad marker as soon as it shows, without waiting for 19 octets.
        if buf.iter().take(16).any(|&b| b != 0xff) {
            return Err(bad_marker());
        }
        return Ok(None);
    };
    if header[..16].iter().any(|&b| b != 0xff) {
        return Err(bad_marker());
    }
    let len = u16::from_be_bytes([header[16], header[17]]);
    if usize::from(len) < HEADER_LEN || usize::from(len) > max_message_len {
        return Err(DecodeError::fatal(
            Reason::BadLength(len),
            ErrorCode::MessageHeader,
            MessageHeaderSubcode::BadMessageLength,
            Bytes::copy_from_slice(&len.to_be_bytes()),
        ));
    }
    Ok((buf.len() >= usize::from(len)).then_some(usize::from(len)))
}

/// Splits the next whole message off the front of `buf` (zero-copy), or `Ok(None)` when
/// more input is needed. On `Err` the stream is unusable: send the NOTIFICATION and close.
pub fn next_message(
    buf: &mut BytesMut,
    max_message_len: usize,
) -> Result<Option<Bytes>, DecodeError> {
    Ok(frame(buf, max_message_len)?.map(|n| buf.split_to(n).freeze()))
}

fn bad_marker() -> DecodeError {
    DecodeError::fatal(
        Reason::BadMarker,
        ErrorCode::MessageHeader,
        MessageHeaderSubcode::ConnectionNotSynchronized,
        Bytes::new(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::MAX_MESSAGE_LEN;

    fn keepalive() -> Vec<u8> {
        let mut m = vec![0xff; 16];
        m.extend_from_slice(&[0, 19, 4]);
        m
    }

    #[test]
    fn frames_a_stream() {
        let mut stream = BytesMut::new();
        stream.extend_from_slice(&keepalive());
        stream.extend_from_slice(&keepalive()[..10]);
        assert_eq!(
            next_message(&mut stream, MAX_MESSAGE_LEN)
                .unwrap()
                .unwrap()
                .len(),
            19
        );
        assert_eq!(next_message(&mut stream, MAX_MESSAGE_LEN).unwrap(), None);
        stream.extend_from_slice(&keepalive()[10..]);
        assert!(
            next_message(&mut stream, MAX_MESSAGE_LEN)
                .unwrap()
                .is_some()
        );
        assert!(stream.is_empty());
    }

    #[test]
    fn header_errors() {
        let mut m = keepalive();
        m[3] = 0;
        let e = frame(&m, MAX_MESSAGE_LEN).unwrap_err();
        assert_eq!((e.code, e.subcode), (ErrorCode::MessageHeader, 1));
        assert!(frame(&m[..5], MAX_MESSAGE_LEN).is_err());
        // A partial header is fine while the marker seen so far is all ones.
        assert_eq!(frame(&keepalive()[..18], MAX_MESSAGE_LEN).unwrap(), None);
        let mut m = keepalive();
        m[16] = 0x10; // 4096 + 19
        m[17] = 0x13;
        let e = frame(&m, MAX_MESSAGE_LEN).unwrap_err();
        assert_eq!(
            (e.code, e.subcode, &e.data[..]),
            (ErrorCode::MessageHeader, 2, &[0x10, 0x13][..])
        );
        assert_eq!(frame(&m, 65535).unwrap(), None);
        let mut m = keepalive();
        m[17] = 18;
        assert!(frame(&m, MAX_MESSAGE_LEN).is_err());
    }
}
