//! Calico's label selector language, parsed with nom.
//!
//! Grammar (Calico `libcalico-go/lib/selector`), lowest precedence first:
//! ```text
//! or      := and ("||" and)*
//! and     := unary ("&&" unary)*
//! unary   := "!" unary | atom
//! atom    := "(" or ")" | "all()" | "global()" | "has(" label ")"
//!          | label ("==" | "!=") string
//!          | label ("in" | "not in") "{" [string ("," string)*] "}"
//!          | label ("contains" | "starts with" | "ends with") string
//! label   := [a-zA-Z0-9_./-]+        (at most 512 characters)
//! string  := '"' [^"]* '"' | "'" [^']* "'"
//! ```
//! Whitespace is spaces and tabs. A comparison on a missing label is false, except `!=` and
//! `not in`, which are true (Calico's documented semantics). The empty selector is invalid here;
//! callers treat an empty field as "no selector".

use std::collections::BTreeMap;
use std::fmt;

use nom::branch::alt;
use nom::bytes::complete::{tag, take_while, take_while1};
use nom::character::complete::char;
use nom::combinator::{all_consuming, map, opt, value};
use nom::multi::separated_list0;
use nom::sequence::{delimited, preceded};
use nom::{IResult, Parser};

/// Longest label Calico accepts.
const MAX_LABEL_LEN: usize = 512;

/// A parsed selector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Selector {
    /// `all()`.
    All,
    /// `global()`: not a namespaced object.
    Global,
    /// `has(k)`.
    Has(String),
    /// `k == "v"`.
    Eq(String, String),
    /// `k != "v"`.
    Ne(String, String),
    /// `k in {..}`.
    In(String, Vec<String>),
    /// `k not in {..}`.
    NotIn(String, Vec<String>),
    /// `k contains "s"`.
    Contains(String, String),
    /// `k starts with "s"`.
    StartsWith(String, String),
    /// `k ends with "s"`.
    EndsWith(String, String),
    /// `!s`.
    Not(Box<Selector>),
    /// `a && b`.
    And(Box<Selector>, Box<Selector>),
    /// `a || b`.
    Or(Box<Selector>, Box<Selector>),
}

/// A selector that failed to parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid selector {input:?}: {reason}")]
pub struct SelectorError {
    /// The text.
    pub input: String,
    /// What is wrong, with the unparsed remainder.
    pub reason: String,
}

/// The label Calico attaches to namespaced objects; `global()` is its absence.
const NAMESPACE_LABEL: &str = "projectcalico.org/namespace";

impl Selector {
    /// Parse a selector.
    pub fn parse(input: &str) -> Result<Selector, SelectorError> {
        match all_consuming(delimited(ws, or_expr, ws)).parse(input) {
            Ok((_, s)) => Ok(s),
            Err(e) => {
                let rest = match &e {
                    nom::Err::Error(e) | nom::Err::Failure(e) => e.input,
                    nom::Err::Incomplete(_) => "",
                };
                Err(SelectorError {
                    input: input.to_string(),
                    reason: format!("cannot parse at {:?}", rest),
                })
            }
        }
    }

    /// Evaluate against a label set.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        match self {
            Selector::All => true,
            Selector::Global => !labels.contains_key(NAMESPACE_LABEL),
            Selector::Has(k) => labels.contains_key(k),
            Selector::Eq(k, v) => labels.get(k) == Some(v),
            Selector::Ne(k, v) => labels.get(k) != Some(v),
            Selector::In(k, vs) => labels.get(k).is_some_and(|l| vs.contains(l)),
            Selector::NotIn(k, vs) => !labels.get(k).is_some_and(|l| vs.contains(l)),
            Selector::Contains(k, s) => labels.get(k).is_some_and(|l| l.contains(s.as_str())),
            Selector::StartsWith(k, s) => labels.get(k).is_some_and(|l| l.starts_with(s.as_str())),
            Selector::EndsWith(k, s) => labels.get(k).is_some_and(|l| l.ends_with(s.as_str())),
            Selector::Not(s) => !s.matches(labels),
            Selector::And(a, b) => a.matches(labels) && b.matches(labels),
            Selector::Or(a, b) => a.matches(labels) || b.matches(labels),
        }
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let set = |vs: &[String]| {
            vs.iter()
                .map(|v| format!("\"{v}\""))
                .collect::<Vec<_>>()
                .join(", ")
        };
        match self {
            Selector::All => f.write_str("all()"),
            Selector::Global => f.write_str("global()"),
            Selector::Has(k) => write!(f, "has({k})"),
            Selector::Eq(k, v) => write!(f, "{k} == \"{v}\""),
            Selector::Ne(k, v) => write!(f, "{k} != \"{v}\""),
            Selector::In(k, vs) => write!(f, "{k} in {{{}}}", set(vs)),
            Selector::NotIn(k, vs) => write!(f, "{k} not in {{{}}}", set(vs)),
            Selector::Contains(k, v) => write!(f, "{k} contains \"{v}\""),
            Selector::StartsWith(k, v) => write!(f, "{k} starts with \"{v}\""),
            Selector::EndsWith(k, v) => write!(f, "{k} ends with \"{v}\""),
            Selector::Not(s) => write!(f, "!({s})"),
            Selector::And(a, b) => write!(f, "({a} && {b})"),
            Selector::Or(a, b) => write!(f, "({a} || {b})"),
        }
    }
}

type Res<'a, T> = IResult<&'a str, T>;

fn ws(i: &str) -> Res<'_, &str> {
    take_while(|c| c == ' ' || c == '\t')(i)
}

fn is_label_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '/' | '-')
}

fn label(i: &str) -> Res<'_, String> {
    let (rest, l) = take_while1(is_label_char)(i)?;
    if l.len() > MAX_LABEL_LEN {
        return Err(nom::Err::Failure(nom::error::Error::new(
            i,
            nom::error::ErrorKind::TooLarge,
        )));
    }
    Ok((rest, l.to_string()))
}

fn string_lit(i: &str) -> Res<'_, String> {
    map(
        alt((
            delimited(char('"'), take_while(|c| c != '"'), char('"')),
            delimited(char('\''), take_while(|c| c != '\''), char('\'')),
        )),
        str::to_string,
    )
    .parse(i)
}

/// A keyword followed by a word boundary (a non-label character or the end).
fn keyword<'a>(
    kw: &'static str,
) -> impl Parser<&'a str, Output = (), Error = nom::error::Error<&'a str>> {
    move |i: &'a str| {
        let (rest, _) = tag(kw)(i)?;
        if rest.chars().next().is_some_and(is_label_char) {
            return Err(nom::Err::Error(nom::error::Error::new(
                i,
                nom::error::ErrorKind::Tag,
            )));
        }
        Ok((rest, ()))
    }
}

/// Two-word operators (`not in`, `starts with`); Calico also accepts them without the space.
fn two_words<'a>(
    a: &'static str,
    b: &'static str,
) -> impl Parser<&'a str, Output = (), Error = nom::error::Error<&'a str>> {
    move |i: &'a str| {
        let (rest, _) = tag(a)(i)?;
        let (rest, _) = ws(rest)?;
        keyword(b).parse(rest)
    }
}

#[derive(Clone, Copy)]
enum Op {
    Eq,
    Ne,
    In,
    NotIn,
    Contains,
    StartsWith,
    EndsWith,
}

fn comparison(i: &str) -> Res<'_, Selector> {
    let (i, k) = label(i)?;
    let (i, _) = ws(i)?;
    let (i, op) = alt((
        value(Op::Eq, tag("==")),
        value(Op::Ne, tag("!=")),
        value(Op::Contains, keyword("contains")),
        value(Op::StartsWith, two_words("starts", "with")),
        value(Op::EndsWith, two_words("ends", "with")),
        value(Op::NotIn, two_words("not", "in")),
        value(Op::In, keyword("in")),
    ))
    .parse(i)?;
    let (i, _) = ws(i)?;
    match op {
        Op::In | Op::NotIn => {
            let (i, vs) = delimited(
                (char('{'), ws),
                separated_list0((ws, char(','), ws), string_lit),
                (ws, char('}')),
            )
            .parse(i)?;
            Ok((
                i,
                if matches!(op, Op::In) {
                    Selector::In(k, vs)
                } else {
                    Selector::NotIn(k, vs)
                },
            ))
        }
        _ => {
            let (i, v) = string_lit(i)?;
            let s = match op {
                Op::Eq => Selector::Eq(k, v),
                Op::Ne => Selector::Ne(k, v),
                Op::Contains => Selector::Contains(k, v),
                Op::StartsWith => Selector::StartsWith(k, v),
                _ => Selector::EndsWith(k, v),
            };
            Ok((i, s))
        }
    }
}

fn call<'a>(
    name: &'static str,
) -> impl Parser<&'a str, Output = (), Error = nom::error::Error<&'a str>> {
    value((), (tag(name), char('('), ws, char(')')))
}

fn atom(i: &str) -> Res<'_, Selector> {
    alt((
        delimited((char('('), ws), or_expr, (ws, char(')'))),
        value(Selector::All, call("all")),
        value(Selector::Global, call("global")),
        map(
            delimited((tag("has("), ws), label, (ws, char(')'))),
            Selector::Has,
        ),
        comparison,
    ))
    .parse(i)
}

fn unary(i: &str) -> Res<'_, Selector> {
    let (i, _) = ws(i)?;
    alt((
        map(preceded((char('!'), ws), unary), |s| {
            Selector::Not(Box::new(s))
        }),
        atom,
    ))
    .parse(i)
}

fn and_expr(i: &str) -> Res<'_, Selector> {
    let (mut i, mut acc) = unary(i)?;
    loop {
        let (rest, more) = opt(preceded((ws, tag("&&"), ws), unary)).parse(i)?;
        match more {
            Some(s) => {
                acc = Selector::And(Box::new(acc), Box::new(s));
                i = rest;
            }
            None => return Ok((i, acc)),
        }
    }
}

fn or_expr(i: &str) -> Res<'_, Selector> {
    let (mut i, mut acc) = and_expr(i)?;
    loop {
        let (rest, more) = opt(preceded((ws, tag("||"), ws), and_expr)).parse(i)?;
        match more {
            Some(s) => {
                acc = Selector::Or(Box::new(acc), Box::new(s));
                i = rest;
            }
            None => return Ok((i, acc)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn check(sel: &str, l: &[(&str, &str)], want: bool) {
        let s = Selector::parse(sel).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.matches(&labels(l)), want, "{sel} on {l:?}");
        // Printing and re-parsing gives the same selector.
        assert_eq!(
            Selector::parse(&s.to_string()).unwrap(),
            s,
            "round trip of {sel}"
        );
    }

    /// The examples of Calico's selector documentation (reference/resources/…: "Selectors").
    #[test]
    fn documented_examples() {
        check("all()", &[], true);
        check("k == 'v'", &[("k", "v")], true);
        check("k == 'v'", &[("k", "w")], false);
        check("k == 'v'", &[], false);
        check("k != 'v'", &[("k", "w")], true);
        check("k != 'v'", &[], true);
        check("k != 'v'", &[("k", "v")], false);
        check("has(k)", &[("k", "")], true);
        check("!has(k)", &[("k", "")], false);
        check("!has(k)", &[], true);
        check("k in { 'v1', 'v2' }", &[("k", "v2")], true);
        check("k in { 'v1', 'v2' }", &[("k", "v3")], false);
        check("k in { 'v1', 'v2' }", &[], false);
        check("k not in { 'v1', 'v2' }", &[("k", "v3")], true);
        check("k not in { 'v1', 'v2' }", &[], true);
        check("k not in { 'v1', 'v2' }", &[("k", "v1")], false);
        check("k contains 's'", &[("k", "has s inside")], true);
        check("k contains 's'", &[("k", "nope")], false);
        check("k starts with 's'", &[("k", "sss")], true);
        check("k starts with 's'", &[("k", "xs")], false);
        check("k ends with 's'", &[("k", "xs")], true);
        check("k ends with 's'", &[("k", "sx")], false);
        check(
            "<expr> && <expr>".replace("<expr>", "has(a)").as_str(),
            &[("a", "")],
            true,
        );
        check("has(a) && has(b)", &[("a", "")], false);
        check("has(a) || has(b)", &[("b", "")], true);
        check("!(has(a) || has(b))", &[("c", "")], true);
        check(
            "(type == 'webserver' && deployment == 'prod') || type == 'database'",
            &[("type", "database")],
            true,
        );
        check(
            "(type == 'webserver' && deployment == 'prod') || type == 'database'",
            &[("type", "webserver"), ("deployment", "dev")],
            false,
        );
        check("global()", &[], true);
        check(
            "global()",
            &[("projectcalico.org/namespace", "default")],
            false,
        );
    }

    #[test]
    fn calico_fixture_selectors() {
        check("group=='one'", &[("group", "one")], true);
        check(
            "rr-group == 'very-special-route-reflectors'",
            &[("rr-group", "very-special-route-reflectors")],
            true,
        );
        check(
            "has(i-am-a-route-reflector)",
            &[("i-am-a-route-reflector", "true")],
            true,
        );
        check(
            "kubernetes.io/hostname == \"kube-master\"",
            &[("kubernetes.io/hostname", "kube-master")],
            true,
        );
        check("a == 'x'&&b=='y'", &[("a", "x"), ("b", "y")], true);
        check("k notin {'a'}", &[("k", "b")], true);
        check("k in {}", &[("k", "b")], false);
        // Calico also accepts the two-word operators written as one word.
        check("k startswith 'a'", &[("k", "ab")], true);
    }

    #[test]
    fn and_binds_tighter_than_or() {
        // a || b && c  ==  a || (b && c)
        check("has(a) || has(b) && has(c)", &[("a", "")], true);
        check("has(a) || has(b) && has(c)", &[("b", "")], false);
        check("!has(a) && has(b)", &[("b", "")], true);
    }

    #[test]
    fn rejects_invalid() {
        for bad in [
            "",
            "k == v",
            "k = 'v'",
            "has(k",
            "all(",
            "k in {'a'",
            "k in 'a'",
            "&& has(a)",
            "has(a) &&",
            "k 'v'",
            "k == 'v",
            "(has(a)",
            "has(a))",
            "k contains",
            "k instead 'a'",
            "has(a) & has(b)",
        ] {
            assert!(Selector::parse(bad).is_err(), "accepted {bad:?}");
        }
        let long = format!("has({})", "a".repeat(513));
        assert!(Selector::parse(&long).is_err());
    }
}
