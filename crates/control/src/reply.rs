//! BIRD 1.x CLI reply framing (BIRD's `doc/reply_codes`, `nest/cli.c`).
//!
//! ```text
//! 0001 BIRD v0.1.0+tern ready.          welcome, once per connection
//! 2002-name     proto    table ...      code, '-': more lines of this reply follow
//! 1002-static1  Static   master ...     new code: written in full
//!  kernel1  Kernel   master ...         same code as the line before: one leading space
//! 0000                                  code, ' ': the last line of this reply
//! +{...}                                spontaneous output (Tern's `watch` events)
//! ```
//!
//! 0xxx success, 1xxx table rows, 2xxx headings, 8xxx run-time errors, 9xxx parse errors.

use std::fmt::Write as _;

/// Reply codes used by the server (BIRD's numbering, plus Tern's JSON document code).
pub mod code {
    /// End of a reply.
    pub const OK: u16 = 0;
    /// Welcome.
    pub const WELCOME: u16 = 1;
    /// Reading configuration.
    pub const READING_CONFIG: u16 = 2;
    /// Reconfigured.
    pub const RECONFIGURED: u16 = 3;
    /// Shutdown ordered.
    pub const SHUTDOWN: u16 = 7;
    /// Already disabled.
    pub const ALREADY_DISABLED: u16 = 8;
    /// Disabled.
    pub const DISABLED: u16 = 9;
    /// Already enabled.
    pub const ALREADY_ENABLED: u16 = 10;
    /// Enabled.
    pub const ENABLED: u16 = 11;
    /// Restarted.
    pub const RESTARTED: u16 = 12;
    /// Status report (last line of `show status`).
    pub const STATUS: u16 = 13;
    /// Route count.
    pub const ROUTE_COUNT: u16 = 14;
    /// Graceful restart status report.
    pub const GR_STATUS: u16 = 24;
    /// Tern extension: one JSON document (the answer to `json <command>`).
    pub const JSON: u16 = 100;
    /// BIRD version.
    pub const VERSION: u16 = 1000;
    /// Interface list.
    pub const IFACE: u16 = 1001;
    /// Protocol list.
    pub const PROTOCOL: u16 = 1002;
    /// Interface address.
    pub const IFACE_ADDR: u16 = 1003;
    /// Interface flags.
    pub const IFACE_FLAGS: u16 = 1004;
    /// Interface summary.
    pub const IFACE_SUMMARY: u16 = 1005;
    /// Protocol details.
    pub const PROTOCOL_DETAILS: u16 = 1006;
    /// Route list.
    pub const ROUTE: u16 = 1007;
    /// Route details.
    pub const ROUTE_DETAILS: u16 = 1008;
    /// Uptime.
    pub const UPTIME: u16 = 1011;
    /// Route extended attribute list.
    pub const ROUTE_ATTRS: u16 = 1012;
    /// Show memory.
    pub const MEMORY: u16 = 1018;
    /// Tern extension: text document lines (`show config`, `show peer`).
    pub const DOCUMENT: u16 = 1100;
    /// Protocol list heading.
    pub const PROTOCOL_HEADING: u16 = 2002;
    /// Interface summary heading.
    pub const IFACE_HEADING: u16 = 2005;
    /// Route not found.
    pub const ROUTE_NOT_FOUND: u16 = 8001;
    /// Configuration error.
    pub const CONFIG_ERROR: u16 = 8002;
    /// No protocols match.
    pub const NO_PROTOCOLS: u16 = 8003;
    /// Access denied / not available.
    pub const DENIED: u16 = 8007;
    /// Command too long.
    pub const TOO_LONG: u16 = 9000;
    /// Parse error.
    pub const PARSE: u16 = 9001;
    /// Invalid symbol type.
    pub const BAD_SYMBOL: u16 = 9002;
}

/// Appends reply lines to a buffer, applying BIRD's continuation rule.
///
/// The code of the previous line is remembered across replies, as BIRD does per
/// connection. Text is sanitised: a control character (a newline in a peer's shutdown
/// message, say) would otherwise end the line and let remote text forge reply lines.
#[derive(Debug, Default)]
pub struct ReplyWriter {
    buf: String,
    last: Option<u16>,
}

impl ReplyWriter {
    /// A writer with an empty buffer.
    pub fn new() -> Self {
        ReplyWriter::default()
    }

    /// A line with more lines of this reply to follow (`NNNN-text`, or ` text` when the
    /// previous line had the same code).
    pub fn more(&mut self, code: u16, text: &str) {
        if self.last == Some(code) {
            self.buf.push(' ');
        } else {
            let _ = write!(self.buf, "{code:04}-");
        }
        self.last = Some(code);
        push_clean(&mut self.buf, text);
        self.buf.push('\n');
    }

    /// The last line of a reply (`NNNN text`).
    pub fn last(&mut self, code: u16, text: &str) {
        let _ = write!(self.buf, "{code:04} ");
        self.last = Some(code);
        push_clean(&mut self.buf, text);
        self.buf.push('\n');
    }

    /// The usual end of a table reply: `0000 `.
    pub fn ok(&mut self) {
        self.last(code::OK, "");
    }

    /// A spontaneous line (`+text`); does not change the continuation state.
    pub fn spontaneous(&mut self, text: &str) {
        self.buf.push('+');
        push_clean(&mut self.buf, text);
        self.buf.push('\n');
    }

    /// Bytes buffered so far.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Nothing buffered.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Takes the buffered text, keeping the continuation state.
    pub fn take(&mut self) -> String {
        std::mem::take(&mut self.buf)
    }
}

fn push_clean(buf: &mut String, text: &str) {
    // Tabs are part of BIRD's own formats (`show route all`); other controls are not.
    buf.extend(
        text.chars()
            .map(|c| if c.is_control() && c != '\t' { ' ' } else { c }),
    );
}

/// One line of a reply as a client sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReplyLine {
    /// `NNNN-text` (`last == false`) or `NNNN text` (`last == true`).
    Coded {
        /// Reply code.
        code: u16,
        /// This line ends the reply.
        last: bool,
        /// Text after the separator.
        text: String,
    },
    /// ` text`: continues the previous code.
    Continuation(String),
    /// `+text`: spontaneous output.
    Spontaneous(String),
}

impl ReplyLine {
    /// Parses one line (without its `\n`). `None` for a line that is none of the forms.
    pub fn parse(line: &str) -> Option<ReplyLine> {
        if let Some(rest) = line.strip_prefix(' ') {
            return Some(ReplyLine::Continuation(rest.to_string()));
        }
        if let Some(rest) = line.strip_prefix('+') {
            return Some(ReplyLine::Spontaneous(rest.to_string()));
        }
        let digits = line.get(..4)?;
        if !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let code: u16 = digits.parse().ok()?;
        let last = match line.as_bytes().get(4) {
            Some(b' ') | None => true,
            Some(b'-') => false,
            Some(_) => return None,
        };
        let text = line.get(5..).unwrap_or("").to_string();
        Some(ReplyLine::Coded { code, last, text })
    }

    /// The text of the line, without code or separator.
    pub fn text(&self) -> &str {
        match self {
            ReplyLine::Coded { text, .. }
            | ReplyLine::Continuation(text)
            | ReplyLine::Spontaneous(text) => text,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continuation_uses_a_space_for_the_same_code() {
        let mut w = ReplyWriter::new();
        w.more(2002, "name");
        w.more(1002, "a");
        w.more(1002, "b");
        w.more(1006, "  x");
        w.more(1006, "");
        w.ok();
        assert_eq!(w.take(), "2002-name\n1002-a\n b\n1006-  x\n \n0000 \n");
    }

    #[test]
    fn state_spans_replies_and_text_is_sanitised() {
        let mut w = ReplyWriter::new();
        w.last(13, "up");
        w.more(13, "x\ny\r\tz");
        assert_eq!(w.take(), "0013 up\n x y \tz\n");
    }

    #[test]
    fn lines_parse() {
        assert_eq!(
            ReplyLine::parse("1002-x y"),
            Some(ReplyLine::Coded {
                code: 1002,
                last: false,
                text: "x y".into()
            })
        );
        assert_eq!(
            ReplyLine::parse("0000 "),
            Some(ReplyLine::Coded {
                code: 0,
                last: true,
                text: String::new()
            })
        );
        assert_eq!(
            ReplyLine::parse(" a"),
            Some(ReplyLine::Continuation("a".into()))
        );
        assert_eq!(
            ReplyLine::parse("+{}"),
            Some(ReplyLine::Spontaneous("{}".into()))
        );
        assert_eq!(ReplyLine::parse("12x4 a"), None);
        assert_eq!(ReplyLine::parse("1234xa"), None);
        assert_eq!(ReplyLine::parse("12"), None);
    }
}
