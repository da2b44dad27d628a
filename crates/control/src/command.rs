//! The command language: BIRD 1.6's CLI commands that Tern answers, plus Tern's `json`,
//! `watch`, `show peer` and `show config` extensions.
//!
//! Keywords may be abbreviated to any unambiguous prefix among the keywords Tern knows at
//! that position (`sh pro`, `s r`). `birdc` expands abbreviations itself before sending
//! (against BIRD's larger command set, where `s r` is ambiguous); the server accepts them
//! too, for `ternc` and raw clients.

use std::net::IpAddr;

use bgp_wire::Prefix;

/// Longest command line accepted (BIRD's `CLI_RX_BUF_SIZE`).
pub const MAX_LINE: usize = 4096;

/// A parsed command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandLine {
    /// Answer with one JSON document instead of BIRD's text (`json <command>`).
    pub json: bool,
    /// The command.
    pub command: Command,
}

/// The commands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// `show status`
    ShowStatus,
    /// `show protocols [all] [NAME | "PATTERN"]`
    ShowProtocols {
        /// `all`: details of every protocol shown.
        all: bool,
        /// Which protocols; `None` = every one.
        target: Option<Target>,
    },
    /// `show route ...`
    ShowRoute(RouteQuery),
    /// `show interfaces [summary]`
    ShowInterfaces {
        /// One line per interface.
        summary: bool,
    },
    /// `show memory`
    ShowMemory,
    /// `show peer NAME` (Tern): one session with every counter.
    ShowPeer(String),
    /// `show config` (Tern): the running configuration (passwords as set/unset).
    ShowConfig,
    /// `configure [soft]`: re-read the configuration source.
    Configure,
    /// `down`: shut the daemon down.
    Down,
    /// `disable | enable | restart TARGET`
    Admin(AdminOp, Target),
    /// `watch` (Tern): stream events as JSON lines until the client goes away.
    Watch,
}

/// `disable`, `enable`, `restart`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdminOp {
    /// `disable`
    Disable,
    /// `enable`
    Enable,
    /// `restart`
    Restart,
}

/// Which protocols a command applies to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// A protocol name.
    Name(String),
    /// A quoted shell-style pattern (`"Mesh_*"`), BIRD's `"<pattern>"`.
    Pattern(String),
    /// `all` (only for `disable`/`enable`/`restart`).
    All,
}

impl Target {
    /// Whether `name` is selected.
    pub fn matches(&self, name: &str) -> bool {
        match self {
            Target::Name(n) => n == name,
            Target::Pattern(p) => glob(p.as_bytes(), name.as_bytes()),
            Target::All => true,
        }
    }
}

/// `show route` options, in any order (as BIRD accepts them).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RouteQuery {
    /// `show route PREFIX`: exactly this network.
    pub prefix: Option<Prefix>,
    /// `show route for ADDR|PREFIX`: the longest match.
    pub for_addr: Option<Prefix>,
    /// `protocol NAME`: routes from this protocol only.
    pub protocol: Option<String>,
    /// `all`: attributes too.
    pub all: bool,
    /// `count`: only the count line.
    pub count: bool,
    /// `primary`: only the primary (best) route of each network.
    pub primary: bool,
}

/// Why a line is not a command. The server answers `9001` with the text.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Not in the grammar.
    #[error("syntax error")]
    Syntax,
    /// A prefix or address that does not parse.
    #[error("Invalid IP prefix")]
    BadPrefix,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    Word(String),
    Quoted(String),
}

fn tokenize(line: &str) -> Result<Vec<Token>, ParseError> {
    let mut out = Vec::new();
    let mut chars = line.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '"' {
            chars.next();
            let mut s = String::new();
            loop {
                match chars.next() {
                    Some('"') => break,
                    Some(c) => s.push(c),
                    None => return Err(ParseError::Syntax),
                }
            }
            out.push(Token::Quoted(s));
        } else {
            let mut s = String::new();
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() || c == '"' {
                    break;
                }
                s.push(c);
                chars.next();
            }
            out.push(Token::Word(s));
        }
    }
    Ok(out)
}

/// The keyword of `candidates` that `word` names (exactly, or as the only one it is a
/// prefix of). `Ok(None)` when it names none; an ambiguous prefix is a syntax error.
fn keyword(word: &str, candidates: &[&'static str]) -> Result<Option<&'static str>, ParseError> {
    if let Some(exact) = candidates.iter().find(|c| **c == word) {
        return Ok(Some(exact));
    }
    let mut found = candidates.iter().filter(|c| c.starts_with(word));
    match (found.next(), found.next()) {
        (Some(k), None) => Ok(Some(k)),
        (None, _) => Ok(None),
        (Some(_), Some(_)) => Err(ParseError::Syntax),
    }
}

struct Cursor {
    tokens: std::vec::IntoIter<Token>,
}

impl Cursor {
    fn next(&mut self) -> Option<Token> {
        self.tokens.next()
    }

    fn keyword(&mut self, candidates: &[&'static str]) -> Result<&'static str, ParseError> {
        match self.next() {
            Some(Token::Word(w)) => keyword(&w, candidates)?.ok_or(ParseError::Syntax),
            _ => Err(ParseError::Syntax),
        }
    }

    fn end(&mut self) -> Result<(), ParseError> {
        match self.next() {
            None => Ok(()),
            Some(_) => Err(ParseError::Syntax),
        }
    }

    fn name(&mut self) -> Result<String, ParseError> {
        match self.next() {
            Some(Token::Word(w)) => Ok(w),
            _ => Err(ParseError::Syntax),
        }
    }
}

/// Parses one command line (without its newline).
pub fn parse(line: &str) -> Result<CommandLine, ParseError> {
    let mut cur = Cursor {
        tokens: tokenize(line)?.into_iter(),
    };
    let mut json = false;
    let mut first = cur.keyword(&[
        "show",
        "configure",
        "down",
        "disable",
        "enable",
        "restart",
        "json",
        "watch",
    ])?;
    if first == "json" {
        json = true;
        first = cur.keyword(&[
            "show",
            "configure",
            "down",
            "disable",
            "enable",
            "restart",
            "watch",
        ])?;
    }
    let command = match first {
        "show" => parse_show(&mut cur)?,
        "configure" => {
            match cur.next() {
                None => {}
                Some(Token::Word(w)) if keyword(&w, &["soft"])?.is_some() => cur.end()?,
                Some(_) => return Err(ParseError::Syntax),
            }
            Command::Configure
        }
        "down" => {
            cur.end()?;
            Command::Down
        }
        "watch" => {
            cur.end()?;
            Command::Watch
        }
        op => {
            let op = match op {
                "disable" => AdminOp::Disable,
                "enable" => AdminOp::Enable,
                _ => AdminOp::Restart,
            };
            let target = match cur.next() {
                Some(Token::Word(w)) if w == "all" => Target::All,
                Some(Token::Word(w)) => Target::Name(w),
                Some(Token::Quoted(p)) => Target::Pattern(p),
                None => return Err(ParseError::Syntax),
            };
            cur.end()?;
            Command::Admin(op, target)
        }
    };
    Ok(CommandLine { json, command })
}

fn parse_show(cur: &mut Cursor) -> Result<Command, ParseError> {
    let what = cur.keyword(&[
        "status",
        "protocols",
        "route",
        "interfaces",
        "memory",
        "peer",
        "config",
    ])?;
    Ok(match what {
        "status" => {
            cur.end()?;
            Command::ShowStatus
        }
        "memory" => {
            cur.end()?;
            Command::ShowMemory
        }
        "config" => {
            cur.end()?;
            Command::ShowConfig
        }
        "peer" => {
            let name = cur.name()?;
            cur.end()?;
            Command::ShowPeer(name)
        }
        "interfaces" => {
            let summary = match cur.next() {
                None => false,
                Some(Token::Word(w)) if keyword(&w, &["summary"])?.is_some() => {
                    cur.end()?;
                    true
                }
                Some(_) => return Err(ParseError::Syntax),
            };
            Command::ShowInterfaces { summary }
        }
        "protocols" => {
            let mut all = false;
            let mut target = None;
            while let Some(tok) = cur.next() {
                match tok {
                    Token::Word(w)
                        if !all && target.is_none() && keyword(&w, &["all"])? == Some("all") =>
                    {
                        all = true;
                    }
                    Token::Word(w) if target.is_none() => target = Some(Target::Name(w)),
                    Token::Quoted(p) if target.is_none() => target = Some(Target::Pattern(p)),
                    _ => return Err(ParseError::Syntax),
                }
            }
            Command::ShowProtocols { all, target }
        }
        _ => Command::ShowRoute(parse_route(cur)?),
    })
}

fn parse_route(cur: &mut Cursor) -> Result<RouteQuery, ParseError> {
    let mut q = RouteQuery::default();
    while let Some(tok) = cur.next() {
        let Token::Word(w) = tok else {
            return Err(ParseError::Syntax);
        };
        if w.starts_with(|c: char| c.is_ascii_hexdigit() || c == ':')
            && (w.contains('.') || w.contains(':') || w.contains('/'))
        {
            if q.prefix.is_some() || q.for_addr.is_some() {
                return Err(ParseError::Syntax);
            }
            q.prefix = Some(parse_prefix(&w)?);
            continue;
        }
        match keyword(&w, &["for", "protocol", "all", "count", "primary", "table"])? {
            Some("for") => {
                if q.prefix.is_some() || q.for_addr.is_some() {
                    return Err(ParseError::Syntax);
                }
                q.for_addr = Some(parse_prefix(&cur.name()?)?);
            }
            Some("protocol") => {
                if q.protocol.is_some() {
                    return Err(ParseError::Syntax);
                }
                q.protocol = Some(cur.name()?);
            }
            Some("all") => q.all = true,
            Some("count") => q.count = true,
            Some("primary") => q.primary = true,
            // Tern has one table, BIRD's `master`.
            Some("table") => {
                if cur.name()? != "master" {
                    return Err(ParseError::Syntax);
                }
            }
            _ => return Err(ParseError::Syntax),
        }
    }
    Ok(q)
}

/// `10.0.0.0/8`, or an address as a host prefix.
fn parse_prefix(text: &str) -> Result<Prefix, ParseError> {
    if text.contains('/') {
        // BIRD accepts host bits in a prefix and ignores them.
        let (addr, len) = text.split_once('/').ok_or(ParseError::BadPrefix)?;
        let addr: IpAddr = addr.parse().map_err(|_| ParseError::BadPrefix)?;
        let len: u8 = len.parse().map_err(|_| ParseError::BadPrefix)?;
        Prefix::new(addr, len).map_err(|_| ParseError::BadPrefix)
    } else {
        let addr: IpAddr = text.parse().map_err(|_| ParseError::BadPrefix)?;
        let len = if addr.is_ipv4() { 32 } else { 128 };
        Prefix::new(addr, len).map_err(|_| ParseError::BadPrefix)
    }
}

/// Shell-style match: `*` any run, `?` any one character.
fn glob(pattern: &[u8], name: &[u8]) -> bool {
    // Iterative matcher with one backtrack point (the last `*`): linear in practice and
    // never recursive, so a hostile pattern cannot blow the stack.
    let (mut p, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, n));
                p += 1;
            }
            Some(&c) if c == b'?' || c == name[n] => {
                p += 1;
                n += 1;
            }
            _ => match star {
                Some((sp, sn)) => {
                    p = sp + 1;
                    n = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(line: &str) -> Command {
        parse(line).unwrap().command
    }

    #[test]
    fn bird_commands_and_abbreviations() {
        assert_eq!(cmd("show status"), Command::ShowStatus);
        assert_eq!(cmd("sh st"), Command::ShowStatus);
        assert_eq!(
            cmd("sh pro"),
            Command::ShowProtocols {
                all: false,
                target: None
            }
        );
        assert_eq!(
            cmd("show protocols all Mesh_10_0_0_2"),
            Command::ShowProtocols {
                all: true,
                target: Some(Target::Name("Mesh_10_0_0_2".into()))
            }
        );
        assert_eq!(
            cmd("show protocols \"Mesh_*\""),
            Command::ShowProtocols {
                all: false,
                target: Some(Target::Pattern("Mesh_*".into()))
            }
        );
        assert_eq!(cmd("s r"), Command::ShowRoute(RouteQuery::default()));
        assert_eq!(
            cmd("show route for 10.65.2.5 protocol Mesh_x all"),
            Command::ShowRoute(RouteQuery {
                for_addr: Some("10.65.2.5/32".parse().unwrap()),
                protocol: Some("Mesh_x".into()),
                all: true,
                ..Default::default()
            })
        );
        assert_eq!(
            cmd("show route 10.65.2.0/26 count primary"),
            Command::ShowRoute(RouteQuery {
                prefix: Some("10.65.2.0/26".parse().unwrap()),
                count: true,
                primary: true,
                ..Default::default()
            })
        );
        assert_eq!(
            cmd("show route fd00::/64"),
            Command::ShowRoute(RouteQuery {
                prefix: Some("fd00::/64".parse().unwrap()),
                ..Default::default()
            })
        );
        assert_eq!(cmd("configure"), Command::Configure);
        assert_eq!(cmd("configure soft"), Command::Configure);
        assert_eq!(cmd("down"), Command::Down);
        assert_eq!(
            cmd("disable Mesh_1"),
            Command::Admin(AdminOp::Disable, Target::Name("Mesh_1".into()))
        );
        assert_eq!(
            cmd("restart all"),
            Command::Admin(AdminOp::Restart, Target::All)
        );
        assert_eq!(
            cmd("show interfaces summary"),
            Command::ShowInterfaces { summary: true }
        );
        assert_eq!(cmd("show memory"), Command::ShowMemory);
    }

    #[test]
    fn tern_extensions() {
        let l = parse("json show protocols all").unwrap();
        assert!(l.json);
        assert_eq!(
            l.command,
            Command::ShowProtocols {
                all: true,
                target: None
            }
        );
        assert_eq!(cmd("watch"), Command::Watch);
        assert_eq!(cmd("show peer Mesh_1"), Command::ShowPeer("Mesh_1".into()));
        assert_eq!(cmd("show config"), Command::ShowConfig);
    }

    #[test]
    fn errors() {
        for bad in [
            "",
            "foo",
            "show",
            "show foo",
            "show status now",
            "sh p", // protocols / peer
            "show route for",
            "show route 10.0.0.0/40",
            "show route for 10.0.0.1 for 10.0.0.2",
            "show route \"x\"",
            "disable",
            "show protocols a b c",
            "show protocols \"unterminated",
            "json json show status",
            "configure \"/etc/bird.conf\"",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} parsed");
        }
        assert_eq!(parse("show route 10.0.0.0/40"), Err(ParseError::BadPrefix));
    }

    #[test]
    fn patterns() {
        assert!(Target::Pattern("Mesh_*".into()).matches("Mesh_10_0_0_2"));
        assert!(Target::Pattern("*_2".into()).matches("Mesh_10_0_0_2"));
        assert!(Target::Pattern("M?sh*2".into()).matches("Mesh_10_0_0_2"));
        assert!(!Target::Pattern("Global_*".into()).matches("Mesh_10_0_0_2"));
        assert!(Target::Pattern("*".into()).matches(""));
        assert!(!Target::Name("Mesh".into()).matches("Mesh_1"));
        assert!(glob(b"a*b*c", b"aXbYbc"));
        assert!(!glob(b"a*b*c", b"aXbYb"));
    }
}
