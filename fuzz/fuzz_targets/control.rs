//! The control socket's command parser (`tern_control::command::parse`, BIRD's CLI language
//! with abbreviations) on every line of arbitrary text, and the reply framing both ways:
//! whatever text a reply carries (a peer's shutdown message, an interface name), the writer
//! emits exactly one line per call, and the client's `ReplyLine::parse` reads each back with
//! the code, the continuation flag and the (sanitised) text. Nothing may panic, and remote
//! text can never forge a reply line.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tern_control::command;
use tern_control::reply::{ReplyLine, ReplyWriter};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = command::parse(&text);
    for line in text.split('\n') {
        let _ = command::parse(line);
        let _ = ReplyLine::parse(line);
    }
    let code = data
        .get(..2)
        .map_or(0, |b| u16::from_be_bytes([b[0], b[1]]) % 10_000);
    let mut w = ReplyWriter::new();
    w.more(code, &text);
    w.last(code, &text);
    w.spontaneous(&text);
    let out = w.take();
    let lines: Vec<&str> = out.strip_suffix('\n').unwrap_or(&out).split('\n').collect();
    assert_eq!(lines.len(), 3, "reply text forged extra lines: {out:?}");
    let clean: String = text
        .chars()
        .map(|c| if c.is_control() && c != '\t' { ' ' } else { c })
        .collect();
    assert_eq!(
        ReplyLine::parse(lines[0]),
        Some(ReplyLine::Coded {
            code,
            last: false,
            text: clean.clone()
        })
    );
    assert_eq!(
        ReplyLine::parse(lines[1]),
        Some(ReplyLine::Coded {
            code,
            last: true,
            text: clean.clone()
        })
    );
    assert_eq!(
        ReplyLine::parse(lines[2]),
        Some(ReplyLine::Spontaneous(clean))
    );
});
