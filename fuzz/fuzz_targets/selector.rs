//! Calico's label selector parser (`controller::selector::Selector`) on arbitrary text.
//!
//! The input up to the first NUL is the selector; the rest, as `key=value` lines, is a label
//! set to evaluate it against. Parsing must not panic or recurse without bound (deep `!`
//! and parenthesis nesting), a parsed selector must evaluate and print, and evaluation is
//! consistent with the operators' definitions: `!s` is the negation of `s`, `a && b` and
//! `a || b` are the conjunction and disjunction of their parts.
#![no_main]
use std::collections::BTreeMap;

use controller::selector::Selector;
use libfuzzer_sys::fuzz_target;

fn consistent(s: &Selector, labels: &BTreeMap<String, String>) -> bool {
    let v = s.matches(labels);
    let ok = match s {
        Selector::Not(inner) => v == !inner.matches(labels),
        Selector::And(a, b) => v == (a.matches(labels) && b.matches(labels)),
        Selector::Or(a, b) => v == (a.matches(labels) || b.matches(labels)),
        _ => true,
    };
    ok && match s {
        Selector::Not(inner) => consistent(inner, labels),
        Selector::And(a, b) | Selector::Or(a, b) => consistent(a, labels) && consistent(b, labels),
        _ => true,
    }
}

fuzz_target!(|data: &[u8]| {
    let split = data.iter().position(|&b| b == 0).unwrap_or(data.len());
    let (sel, rest) = data.split_at(split);
    let Ok(text) = std::str::from_utf8(sel) else {
        return;
    };
    let labels: BTreeMap<String, String> = String::from_utf8_lossy(rest)
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    if let Ok(s) = Selector::parse(text) {
        assert!(consistent(&s, &labels), "inconsistent evaluation of {s}");
        let _ = s.to_string();
    }
});
