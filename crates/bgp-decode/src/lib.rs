//! # bgp-decode — BGP messages to JSON lines
//!
//! **Owns:** turning bytes a user has (a hex dump, a raw message stream, a pcap/pcapng
//! capture of TCP port 179) into one JSON object per BGP message, with the RFC 7606 verdict
//! for malformed ones. Capture reading and TCP reassembly live here ([`capture`],
//! [`stream`]); the JSON shape lives in [`json`]; every BGP rule is bgp-wire's.
//!
//! **Must not know:** sessions, RIBs, sockets. It never decides what is valid BGP itself:
//! framing and decoding are `bgp_wire::frame` and `bgp_wire::Message::decode`.

#![forbid(unsafe_code)]

pub mod capture;
pub mod json;
pub mod stream;

use std::collections::HashMap;

use bgp_wire::iana::{AddPathMode, CapabilityCode, ErrorCode, MessageHeaderSubcode, MessageType};
use bgp_wire::{
    AddPath, Capability, DecodeContext, Family, HEADER_LEN, MAX_EXTENDED_MESSAGE_LEN, Message, Open,
};
use bytes::{Buf, Bytes, BytesMut};
use serde_json::{Map, Value};

/// Hex input that is not hex.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HexError {
    #[error("invalid hex digit {0:?} at position {1}")]
    BadDigit(char, usize),
    #[error("odd number of hex digits")]
    OddLength,
}

/// Parses hex text; whitespace, `:`, `-`, `,` and `.` separators and `0x` prefixes are
/// ignored, so dumps from tcpdump, Wireshark or logs paste as they are.
pub fn parse_hex(text: &str) -> Result<Vec<u8>, HexError> {
    let mut digits = Vec::with_capacity(text.len());
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c == '0' && matches!(chars.peek(), Some((_, 'x' | 'X'))) {
            chars.next();
            continue;
        }
        if c.is_whitespace() || matches!(c, ':' | '-' | ',' | '.') {
            continue;
        }
        let d = c.to_digit(16).ok_or(HexError::BadDigit(c, i))?;
        digits.push(d as u8);
    }
    if !digits.len().is_multiple_of(2) {
        return Err(HexError::OddLength);
    }
    Ok(digits.chunks_exact(2).map(|p| p[0] << 4 | p[1]).collect())
}

/// Where decoded lines go; `errors` counts lines that carry an error.
pub struct Output<'a> {
    sink: &'a mut dyn FnMut(Value),
    pub errors: usize,
    pub messages: usize,
}

impl<'a> Output<'a> {
    pub fn new(sink: &'a mut dyn FnMut(Value)) -> Self {
        Self {
            sink,
            errors: 0,
            messages: 0,
        }
    }

    fn emit(&mut self, line: Map<String, Value>) {
        if line.contains_key("error") {
            self.errors += 1;
        }
        self.messages += 1;
        (self.sink)(Value::Object(line));
    }
}

/// Decodes one message (header included) and returns its JSON line.
pub fn decode_message(msg: Bytes, ctx: &DecodeContext) -> Map<String, Value> {
    let len = msg.len();
    let kind = msg.get(18).map(|&t| MessageType::from(t));
    match Message::decode(msg, ctx) {
        Ok(decoded) => {
            let mut line = json::message(&decoded.message, len);
            // The most severe error decides the action; all of them are listed when several.
            // `max_by_key` keeps the last of equals: iterate backwards to report the first.
            if let Some(worst) = decoded
                .errors
                .iter()
                .rev()
                .max_by_key(|e| e.action.severity())
            {
                line.insert("error".into(), json::error(worst));
                if decoded.errors.len() > 1 {
                    let all: Vec<Value> = decoded.errors.iter().map(json::error).collect();
                    line.insert("errors".into(), all.into());
                }
            }
            line
        }
        Err(e) => {
            // A session-resetting error: what is known is the header.
            let mut line = Map::new();
            if let Some(kind) = kind {
                line.insert("type".into(), json::message_type(kind).into());
            }
            line.insert("length".into(), len.into());
            line.insert("error".into(), json::error(&e));
            line
        }
    }
}

/// Splits a byte stream into messages and decodes each with `ctx`.
///
/// Frames up to 65535 octets so that one oversized message is reported (by the decoder,
/// against the context's maximum) and the next one is still found; a bad marker or a
/// length below 19 loses synchronisation, which ends the stream with an error line.
pub struct StreamDecoder {
    buf: BytesMut,
    /// Stream offset of `buf[0]`.
    offset: u64,
    broken: bool,
}

impl Default for StreamDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl StreamDecoder {
    pub fn new() -> Self {
        Self {
            buf: BytesMut::new(),
            offset: 0,
            broken: false,
        }
    }

    /// Appends bytes and decodes every whole message now available. `ctx` is asked per
    /// message, so an OPEN seen earlier in the same call can change it.
    pub fn push(
        &mut self,
        data: &[u8],
        label: Option<&str>,
        ctx: &mut dyn FnMut(Option<&Open>) -> DecodeContext,
        out: &mut Output<'_>,
    ) {
        if self.broken {
            return;
        }
        self.buf.extend_from_slice(data);
        loop {
            match bgp_wire::frame(&self.buf, MAX_EXTENDED_MESSAGE_LEN) {
                Ok(Some(n)) => {
                    let msg = self.buf.split_to(n).freeze();
                    let at = self.offset;
                    self.offset += n as u64;
                    let context = ctx(None);
                    let mut line = decode_message(msg.clone(), &context);
                    if line.get("type").and_then(Value::as_str) == Some("OPEN")
                        && let Ok(decoded) = Message::decode(msg, &context)
                        && let Message::Open(open) = decoded.message
                    {
                        ctx(Some(&open));
                    }
                    out.emit(with_position(&mut line, label, at));
                }
                Ok(None) => return,
                Err(e) => {
                    let mut line = Map::new();
                    line.insert("error".into(), json::error(&e));
                    line.insert("skipped".into(), self.buf.len().into());
                    out.emit(with_position(&mut line, label, self.offset));
                    self.buf.advance(self.buf.len());
                    self.broken = true;
                    return;
                }
            }
        }
    }

    /// Reports bytes left over at the end of input (a message cut short).
    pub fn finish(&mut self, label: Option<&str>, out: &mut Output<'_>) {
        if self.broken || self.buf.is_empty() {
            return;
        }
        let need = self
            .buf
            .get(16..18)
            .map(|l| usize::from(u16::from_be_bytes([l[0], l[1]])));
        let reason = match need {
            Some(n) => format!(
                "input ends inside a message: {} of its {n} octets present",
                self.buf.len()
            ),
            None => format!(
                "input ends inside a message header: {} of {HEADER_LEN} octets present",
                self.buf.len()
            ),
        };
        let mut line = Map::new();
        if let Some(&t) = self.buf.get(18) {
            line.insert(
                "type".into(),
                json::message_type(MessageType::from(t)).into(),
            );
        }
        line.insert(
            "error".into(),
            json::stream_error(
                &reason,
                Some((
                    ErrorCode::MessageHeader,
                    MessageHeaderSubcode::BadMessageLength.into(),
                )),
            ),
        );
        line.insert("data".into(), json::hex(&self.buf).into());
        out.emit(with_position(&mut line, label, self.offset));
        self.buf.clear();
    }
}

/// Puts `stream` and `offset` first, for readability.
fn with_position(
    line: &mut Map<String, Value>,
    label: Option<&str>,
    at: u64,
) -> Map<String, Value> {
    let mut m = Map::new();
    if let Some(label) = label {
        m.insert("stream".into(), label.into());
        m.insert("offset".into(), at.into());
    }
    m.append(line);
    m
}

/// Decodes a whole buffer (hex input or a raw file) with a fixed context.
pub fn decode_bytes(data: &[u8], ctx: DecodeContext, out: &mut Output<'_>) {
    let mut d = StreamDecoder::new();
    d.push(data, None, &mut |_| ctx, out);
    d.finish(None, out);
}

/// The context for messages `sender` sends to `receiver`, from their two OPENs
/// (RFC 6793 §4, RFC 7911 §4, RFC 8654 §3).
pub fn negotiated_context(sender: &Open, receiver: &Open) -> DecodeContext {
    let both = |code| sender.has_capability(code) && receiver.has_capability(code);
    let mut add_path = AddPath::NONE;
    for family in [Family::IPV4_UNICAST, Family::IPV6_UNICAST] {
        let sends = add_path_mode(sender, family)
            .is_some_and(|m| matches!(m, AddPathMode::Send | AddPathMode::SendReceive));
        let receives = add_path_mode(receiver, family)
            .is_some_and(|m| matches!(m, AddPathMode::Receive | AddPathMode::SendReceive));
        add_path.set(family, sends && receives);
    }
    DecodeContext {
        four_octet_as: both(CapabilityCode::FourOctetAs),
        add_path,
        extended_messages: both(CapabilityCode::ExtendedMessage),
    }
}

fn add_path_mode(open: &Open, family: Family) -> Option<AddPathMode> {
    open.capabilities.iter().find_map(|c| match c {
        Capability::AddPath(list) => list.iter().find(|f| f.family == family).map(|f| f.mode),
        _ => None,
    })
}

/// Decodes every BGP message of a pcap/pcapng capture, both directions of every TCP
/// connection on port 179, in capture order. Each stream's context comes from the OPENs
/// seen on its connection; `default` applies until both OPENs have been seen.
pub fn decode_capture(
    file: &[u8],
    default: DecodeContext,
    out: &mut Output<'_>,
) -> Result<(), capture::CaptureError> {
    let frames = capture::frames(file)?;
    let mut reassembler = stream::Reassembler::new();
    let mut decoders: Vec<StreamDecoder> = Vec::new();
    let mut opens: Vec<Option<Open>> = Vec::new();
    for frame in frames {
        let Some(segment) = capture::bgp_segment(frame) else {
            continue;
        };
        let (id, data) = reassembler.push(&segment);
        let streams = reassembler.streams();
        decoders.resize_with(streams.len(), StreamDecoder::new);
        opens.resize(streams.len(), None);
        if data.is_empty() {
            continue;
        }
        let info = &streams[id];
        let label = info.label();
        let reverse = streams
            .iter()
            .position(|s| s.connection == info.connection && s.src == info.dst);
        let mut ctx = |seen: Option<&Open>| {
            if let Some(open) = seen {
                opens[id] = Some(open.clone());
            }
            let peer = reverse.and_then(|r| opens[r].as_ref());
            match (&opens[id], peer) {
                (Some(mine), Some(theirs)) => negotiated_context(mine, theirs),
                _ => default,
            }
        };
        decoders[id].push(&data, Some(&label), &mut ctx, out);
    }
    let streams = reassembler.streams();
    let mut gaps: HashMap<usize, stream::Gap> = reassembler
        .gaps()
        .into_iter()
        .map(|g| (g.stream, g))
        .collect();
    for (id, info) in streams.iter().enumerate() {
        let label = info.label();
        decoders[id].finish(Some(&label), out);
        if let Some(gap) = gaps.remove(&id) {
            let mut line = Map::new();
            line.insert("stream".into(), label.into());
            line.insert("offset".into(), gap.at.into());
            let reason = format!(
                "capture is missing TCP bytes at stream offset {}; {} captured bytes after the hole were not decoded",
                gap.at, gap.stranded
            );
            line.insert("error".into(), json::stream_error(&reason, None));
            out.emit(line);
        }
    }
    Ok(())
}

/// Every TCP stream of a capture as raw bytes (what the capture script stores as `.bin`),
/// with its label, in order of first appearance. Bytes after a hole are left out.
pub fn capture_streams(file: &[u8]) -> Result<Vec<(String, Vec<u8>)>, capture::CaptureError> {
    let mut reassembler = stream::Reassembler::new();
    let mut data: Vec<Vec<u8>> = Vec::new();
    for frame in capture::frames(file)? {
        if let Some(segment) = capture::bgp_segment(frame) {
            let (id, bytes) = reassembler.push(&segment);
            data.resize_with(reassembler.streams().len(), Vec::new);
            data[id].extend_from_slice(&bytes);
        }
    }
    Ok(reassembler
        .streams()
        .iter()
        .zip(data)
        .map(|(s, d)| (s.label(), d))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_with_separators() {
        assert_eq!(
            parse_hex("ff:FF 0x01-02\n0a").unwrap(),
            vec![255, 255, 1, 2, 10]
        );
        assert_eq!(parse_hex("fff"), Err(HexError::OddLength));
        assert_eq!(parse_hex("zz"), Err(HexError::BadDigit('z', 0)));
        assert_eq!(parse_hex("").unwrap(), Vec::<u8>::new());
    }
}
