//! decode → encode → decode stability: whatever the decoder accepts cleanly, the encoder
//! writes back so that decoding it gives the same message, and a second round changes
//! nothing. The first input byte picks the session context.
#![no_main]
use bgp_wire::attribute::flags;
use bgp_wire::{AddPath, DecodeContext, EncodeContext, Message};
use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, msg)) = data.split_first() else {
        return;
    };
    let dctx = DecodeContext {
        four_octet_as: selector & 1 == 0,
        add_path: AddPath {
            ipv4_unicast: selector & 2 != 0,
            ipv6_unicast: selector & 4 != 0,
        },
        extended_messages: selector & 8 != 0,
    };
    let ectx = EncodeContext {
        four_octet_as: dctx.four_octet_as,
        add_path: dctx.add_path,
        extended_messages: dctx.extended_messages,
    };
    let Ok(first) = Message::decode(Bytes::copy_from_slice(msg), &dctx) else {
        return;
    };
    if !first.errors.is_empty() {
        return; // attributes were discarded or routes withdrawn: not a faithful copy
    }
    let Some(second) = reencode(&first.message, &ectx, &dctx) else {
        return; // too long to re-encode (e.g. AS4_PATH added on a 2-octet session)
    };
    assert_eq!(
        normalise(first.message.clone()),
        normalise(second.clone()),
        "decode(encode(decode(x))) differs"
    );
    let third = reencode(&second, &ectx, &dctx).expect("a re-encoded message encodes again");
    assert_eq!(second, third, "a second round trip changed the message");
});

fn reencode(msg: &Message, ectx: &EncodeContext, dctx: &DecodeContext) -> Option<Message> {
    let mut buf = BytesMut::new();
    msg.encode(ectx, &mut buf).ok()?;
    let decoded = Message::decode(buf.freeze(), dctx)
        .unwrap_or_else(|e| panic!("the encoder wrote what the decoder refuses: {e}\n{msg:?}"));
    assert!(
        decoded.errors.is_empty(),
        "the encoder wrote a malformed attribute: {:?}\n{msg:?}",
        decoded.errors
    );
    Some(decoded.message)
}

/// Unknown optional transitive attributes are re-sent with the Partial bit (RFC 4271 §5),
/// in ascending type order (RFC 4271 §5: "SHOULD be ordered"), and the Extended Length bit
/// is the encoder's choice: compare without those differences.
fn normalise(mut msg: Message) -> Message {
    if let Message::Update(u) = &mut msg {
        u.attributes.unknown.sort_by_key(|a| a.type_code);
        for a in &mut u.attributes.unknown {
            a.flags &= !flags::EXTENDED_LENGTH;
            if a.flags & flags::OPTIONAL != 0 && a.flags & flags::TRANSITIVE != 0 {
                a.flags |= flags::PARTIAL;
            }
        }
    }
    msg
}
