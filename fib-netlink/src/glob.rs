//! BIRD-style interface patterns: `-"cali*", -"kube-ipvs*", "*"`.
//!
//! A list of shell globs (`*` any run of characters, `?` one character), each optionally
//! preceded by `-`. The first pattern that matches an interface name decides: a plain
//! pattern accepts it, a `-` pattern rejects it. A name no pattern matches is rejected, as
//! in BIRD's `interface` option.

use std::fmt;

/// One entry of an [`InterfacePatterns`] list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfacePattern {
    pub glob: String,
    pub exclude: bool,
}

/// An ordered list of interface globs; the first match wins.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct InterfacePatterns {
    patterns: Vec<InterfacePattern>,
}

/// A pattern list that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad interface pattern list at {at:?}: {why}")]
pub struct PatternError {
    pub at: String,
    pub why: &'static str,
}

impl InterfacePatterns {
    /// Every interface (`"*"`).
    pub fn all() -> InterfacePatterns {
        InterfacePatterns {
            patterns: vec![InterfacePattern {
                glob: "*".into(),
                exclude: false,
            }],
        }
    }

    pub fn new(patterns: Vec<InterfacePattern>) -> InterfacePatterns {
        InterfacePatterns { patterns }
    }

    /// Parses BIRD's syntax: comma-separated, optionally quoted globs, `-` to exclude.
    pub fn parse(text: &str) -> Result<InterfacePatterns, PatternError> {
        let mut patterns = Vec::new();
        for part in text.split(',') {
            let item = part.trim();
            if item.is_empty() {
                if text.trim().is_empty() {
                    break;
                }
                return Err(PatternError {
                    at: part.into(),
                    why: "empty pattern",
                });
            }
            let (exclude, rest) = match item.strip_prefix('-') {
                Some(r) => (true, r.trim_start()),
                None => (false, item),
            };
            let glob = match rest.strip_prefix('"') {
                Some(r) => r.strip_suffix('"').ok_or(PatternError {
                    at: item.into(),
                    why: "unterminated quote",
                })?,
                None => rest,
            };
            if glob.is_empty() || glob.contains('"') {
                return Err(PatternError {
                    at: item.into(),
                    why: "empty or badly quoted glob",
                });
            }
            patterns.push(InterfacePattern {
                glob: glob.into(),
                exclude,
            });
        }
        Ok(InterfacePatterns { patterns })
    }

    /// Whether the interface called `name` is accepted.
    pub fn accepts(&self, name: &str) -> bool {
        self.patterns
            .iter()
            .find(|p| glob_match(p.glob.as_bytes(), name.as_bytes()))
            .is_some_and(|p| !p.exclude)
    }
}

impl fmt::Display for InterfacePatterns {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.patterns.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{}\"{}\"", if p.exclude { "-" } else { "" }, p.glob)?;
        }
        Ok(())
    }
}

/// Shell-style match of `*` and `?`, iterative with one backtrack point (linear time).
pub fn glob_match(pattern: &[u8], name: &[u8]) -> bool {
    let (mut p, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, n));
                p += 1;
            }
            Some(c) if *c == b'?' || *c == name[n] => {
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
    pattern[p..].iter().all(|c| *c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_like_a_shell() {
        assert!(glob_match(b"cali*", b"cali1234"));
        assert!(glob_match(b"cali*", b"cali"));
        assert!(!glob_match(b"cali*", b"eth0"));
        assert!(glob_match(b"*", b""));
        assert!(glob_match(b"*.cali", b"wireguard.cali"));
        assert!(!glob_match(b"*.cali", b"wireguard.calico"));
        assert!(glob_match(b"eth?", b"eth1"));
        assert!(!glob_match(b"eth?", b"eth10"));
        assert!(glob_match(b"a*b*c", b"aXXbYYbZc"));
        assert!(!glob_match(b"a*b*c", b"aXXbYY"));
    }

    #[test]
    fn first_match_wins_and_minus_excludes() {
        let p = InterfacePatterns::parse(r#"-"cali*", -"kube-ipvs*", "*""#).unwrap();
        assert!(!p.accepts("cali12ab"));
        assert!(!p.accepts("kube-ipvs0"));
        assert!(p.accepts("eth0"));
        assert!(p.accepts("tunl0"));
        let p = InterfacePatterns::parse(r#""cali*", -"*""#).unwrap();
        assert!(p.accepts("cali1"));
        assert!(!p.accepts("eth0"));
        // Nothing matches: rejected.
        let p = InterfacePatterns::parse(r#""eth*""#).unwrap();
        assert!(!p.accepts("ens3"));
        assert_eq!(p.to_string(), r#""eth*""#);
    }

    #[test]
    fn bad_lists_are_refused() {
        assert!(InterfacePatterns::parse(r#""cali*"#).is_err());
        assert!(InterfacePatterns::parse(r#""a", , "b""#).is_err());
        assert!(InterfacePatterns::parse("-").is_err());
        assert_eq!(
            InterfacePatterns::parse("").unwrap(),
            InterfacePatterns::default()
        );
        assert!(!InterfacePatterns::default().accepts("eth0"));
        assert_eq!(
            InterfacePatterns::parse(r#"-cali*, *"#)
                .unwrap()
                .to_string(),
            r#"-"cali*", "*""#
        );
    }
}
