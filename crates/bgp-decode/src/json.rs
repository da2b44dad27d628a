//! The JSON shape of decoded messages: one object per message.
//!
//! Conventions (stable; scripts rely on them): `"type"` is the message type name; prefixes
//! are canonical CIDR text; AS numbers, MED, LOCAL_PREF, codes and subcodes are integers;
//! communities are `"ASN:value"` with well-known ones also listed by name; large communities
//! `"a:b:c"`; extended communities `"rt:ASN:n"`-style text (hex when the type is not
//! known); next hops are address text; bytes kept opaque are lower-case hex.

use std::fmt::Write as _;

use bgp_wire::iana::{AddPathMode, ErrorCode, MessageType};
use bgp_wire::{
    Action, AsPath, Capability, DecodeError, ExtendedCommunity, Family, Message, NextHop, Nlri,
    Notification, Open, PathAttributes, Update,
};
use serde_json::{Map, Value, json};

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// The fields of one decoded message (without `stream`/`offset`, which the caller adds).
pub fn message(msg: &Message, length: usize) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("type".into(), message_type(msg.message_type()).into());
    m.insert("length".into(), length.into());
    match msg {
        Message::Open(open) => open_fields(open, &mut m),
        Message::Update(update) => update_fields(update, &mut m),
        Message::Notification(n) => notification_fields(n, &mut m),
        Message::Keepalive => {}
        Message::RouteRefresh(rr) => {
            family_fields(rr.family, &mut m);
            m.insert(
                "subtype".into(),
                json!(rr.subtype.name().unwrap_or("unknown")),
            );
            m.insert("subtype_code".into(), json!(u8::from(rr.subtype)));
        }
    }
    m
}

/// `"OPEN"`, `"UPDATE"`, ...; unknown types as `"unknown(N)"`.
pub fn message_type(t: MessageType) -> String {
    t.to_string()
}

fn family_fields(f: Family, m: &mut Map<String, Value>) {
    m.insert("family".into(), f.to_string().into());
    m.insert("afi".into(), u16::from(f.afi).into());
    m.insert("safi".into(), u8::from(f.safi).into());
}

fn open_fields(open: &Open, m: &mut Map<String, Value>) {
    m.insert("my_as".into(), open.my_as.into());
    m.insert("asn".into(), open.asn().into());
    m.insert("hold_time".into(), open.hold_time.into());
    m.insert("bgp_id".into(), open.bgp_id.to_string().into());
    let caps: Vec<Value> = open.capabilities.iter().map(capability).collect();
    m.insert("capabilities".into(), caps.into());
}

fn capability(c: &Capability) -> Value {
    let code = c.code();
    let mut m = Map::new();
    m.insert("code".into(), u8::from(code).into());
    m.insert(
        "name".into(),
        code.name()
            .map_or_else(|| format!("unknown({})", u8::from(code)), str::to_owned)
            .into(),
    );
    match c {
        Capability::Multiprotocol(f) => {
            m.insert("family".into(), f.to_string().into());
        }
        Capability::RouteRefresh
        | Capability::ExtendedMessage
        | Capability::EnhancedRouteRefresh => {}
        Capability::ExtendedNextHop(list) => {
            let v: Vec<Value> = list
                .iter()
                .map(|e| {
                    json!({"nlri_afi": e.nlri_afi, "nlri_safi": e.nlri_safi,
                           "next_hop_afi": e.next_hop_afi})
                })
                .collect();
            m.insert("families".into(), v.into());
        }
        Capability::Role(r) => {
            m.insert("role".into(), r.to_string().into());
        }
        Capability::GracefulRestart(gr) => {
            m.insert("restart_state".into(), gr.restart_state.into());
            m.insert("notification".into(), gr.notification.into());
            m.insert("restart_time".into(), gr.restart_time.into());
            let v: Vec<Value> = gr
                .families
                .iter()
                .map(|f| {
                    json!({"family": f.family.to_string(),
                           "forwarding_preserved": f.forwarding_preserved})
                })
                .collect();
            m.insert("families".into(), v.into());
        }
        Capability::FourOctetAs(asn) => {
            m.insert("asn".into(), (*asn).into());
        }
        Capability::AddPath(list) => {
            let v: Vec<Value> = list
                .iter()
                .map(|f| json!({"family": f.family.to_string(), "mode": add_path_mode(f.mode)}))
                .collect();
            m.insert("families".into(), v.into());
        }
        Capability::LongLivedGracefulRestart(list) => {
            let v: Vec<Value> = list
                .iter()
                .map(|f| {
                    json!({"family": f.family.to_string(),
                           "forwarding_preserved": f.forwarding_preserved,
                           "stale_time": f.stale_time})
                })
                .collect();
            m.insert("families".into(), v.into());
        }
        Capability::Fqdn { hostname, domain } => {
            m.insert(
                "hostname".into(),
                String::from_utf8_lossy(hostname).into_owned().into(),
            );
            m.insert(
                "domain".into(),
                String::from_utf8_lossy(domain).into_owned().into(),
            );
        }
        Capability::Unknown { value, .. } => {
            m.insert("value".into(), hex(value).into());
        }
    }
    Value::Object(m)
}

fn add_path_mode(mode: AddPathMode) -> String {
    mode.to_string()
}

fn prefixes(list: &[Nlri]) -> Value {
    list.iter()
        .map(|n| Value::String(n.prefix.to_string()))
        .collect()
}

/// Inserts `key` (CIDR strings) and, when any NLRI carries an ADD-PATH identifier,
/// `<key>_path_ids` (integers in the same order).
fn insert_nlri(m: &mut Map<String, Value>, key: &str, list: &[Nlri]) {
    m.insert(key.into(), prefixes(list));
    if list.iter().any(|n| n.path_id.is_some()) {
        let ids: Vec<Value> = list
            .iter()
            .map(|n| n.path_id.map_or(Value::Null, Value::from))
            .collect();
        m.insert(format!("{key}_path_ids"), ids.into());
    }
}

fn update_fields(u: &Update, m: &mut Map<String, Value>) {
    if let Some(family) = u.as_end_of_rib() {
        m.insert("end_of_rib".into(), family.to_string().into());
    }
    if !u.withdrawn.is_empty() {
        insert_nlri(m, "withdrawn", &u.withdrawn);
    }
    let attrs = attributes(&u.attributes);
    if !attrs.is_empty() {
        m.insert("attributes".into(), Value::Object(attrs));
    }
    if !u.nlri.is_empty() {
        insert_nlri(m, "nlri", &u.nlri);
    }
    if let Some(r) = &u.mp_reach {
        let mut o = Map::new();
        o.insert("family".into(), r.family.to_string().into());
        if let Some(nh) = &u.attributes.mp_next_hop {
            next_hop_fields(nh, &mut o);
        }
        insert_nlri(&mut o, "nlri", &r.nlri);
        m.insert("mp_reach".into(), Value::Object(o));
    }
    if let Some(r) = &u.mp_unreach {
        let mut o = Map::new();
        o.insert("family".into(), r.family.to_string().into());
        insert_nlri(&mut o, "withdrawn", &r.withdrawn);
        m.insert("mp_unreach".into(), Value::Object(o));
    }
}

fn next_hop_fields(nh: &NextHop, o: &mut Map<String, Value>) {
    match nh {
        NextHop::V4(a) => {
            o.insert("next_hop".into(), a.to_string().into());
        }
        NextHop::V6 { global, link_local } => {
            o.insert("next_hop".into(), global.to_string().into());
            if let Some(ll) = link_local {
                o.insert("next_hop_link_local".into(), ll.to_string().into());
            }
        }
    }
}

/// Path attributes present in the UPDATE (absent ones are left out).
pub fn attributes(a: &PathAttributes) -> Map<String, Value> {
    let mut m = Map::new();
    if let Some(o) = a.origin {
        m.insert(
            "origin".into(),
            o.name()
                .map_or_else(|| format!("unknown({})", u8::from(o)), str::to_owned)
                .into(),
        );
    }
    if let Some(p) = &a.as_path {
        m.insert("as_path".into(), as_path(p));
    }
    if let Some(nh) = a.next_hop {
        m.insert("next_hop".into(), nh.to_string().into());
    }
    if let Some(med) = a.med {
        m.insert("med".into(), med.into());
    }
    if let Some(lp) = a.local_pref {
        m.insert("local_pref".into(), lp.into());
    }
    if a.atomic_aggregate {
        m.insert("atomic_aggregate".into(), true.into());
    }
    if let Some(ag) = &a.aggregator {
        m.insert(
            "aggregator".into(),
            json!({"asn": ag.asn, "address": ag.address.to_string()}),
        );
    }
    if !a.communities.is_empty() {
        let list: Vec<Value> = a.communities.iter().map(|c| c.to_string().into()).collect();
        m.insert("communities".into(), list.into());
        let named: Vec<Value> = a
            .communities
            .iter()
            .filter_map(|c| c.well_known_name())
            .map(Value::from)
            .collect();
        if !named.is_empty() {
            m.insert("well_known_communities".into(), named.into());
        }
    }
    if let Some(id) = a.originator_id {
        m.insert("originator_id".into(), id.to_string().into());
    }
    if !a.cluster_list.is_empty() {
        let list: Vec<Value> = a
            .cluster_list
            .iter()
            .map(|c| c.to_string().into())
            .collect();
        m.insert("cluster_list".into(), list.into());
    }
    if !a.extended_communities.is_empty() {
        let list: Vec<Value> = a
            .extended_communities
            .iter()
            .map(|c| extended_community(c).into())
            .collect();
        m.insert("extended_communities".into(), list.into());
    }
    if !a.large_communities.is_empty() {
        let list: Vec<Value> = a
            .large_communities
            .iter()
            .map(|c| c.to_string().into())
            .collect();
        m.insert("large_communities".into(), list.into());
    }
    if let Some(otc) = a.otc {
        m.insert("otc".into(), otc.into());
    }
    if !a.unknown.is_empty() {
        let list: Vec<Value> = a
            .unknown
            .iter()
            .map(|u| json!({"type_code": u.type_code, "flags": u.flags, "value": hex(&u.value)}))
            .collect();
        m.insert("unknown".into(), list.into());
    }
    m
}

/// Segments with their type name and integer ASes.
fn as_path(p: &AsPath) -> Value {
    p.segments
        .iter()
        .map(|s| {
            json!({
                "type": s.kind.name().map_or_else(|| format!("unknown({})", u8::from(s.kind)), str::to_owned),
                "asns": s.asns.as_slice(),
            })
        })
        .collect()
}

/// RFC 4360 / RFC 5668 text form for the common types, hex otherwise.
pub fn extended_community(c: &ExtendedCommunity) -> String {
    let b = &c.0;
    let sub = match b[1] {
        0x02 => Some("rt"),
        0x03 => Some("soo"),
        _ => None,
    };
    // Type high octet without the IANA-authority (0x80) and transitive (0x40) bits.
    match (b[0] & 0x3f, sub) {
        (0x00, Some(tag)) => format!(
            "{tag}:{}:{}",
            u16::from_be_bytes([b[2], b[3]]),
            u32::from_be_bytes([b[4], b[5], b[6], b[7]])
        ),
        (0x01, Some(tag)) => format!(
            "{tag}:{}.{}.{}.{}:{}",
            b[2],
            b[3],
            b[4],
            b[5],
            u16::from_be_bytes([b[6], b[7]])
        ),
        (0x02, Some(tag)) => format!(
            "{tag}:{}:{}",
            u32::from_be_bytes([b[2], b[3], b[4], b[5]]),
            u16::from_be_bytes([b[6], b[7]])
        ),
        _ => hex(b),
    }
}

fn notification_fields(n: &Notification, m: &mut Map<String, Value>) {
    code_fields(n.code, n.subcode, m);
    m.insert("data".into(), hex(&n.data).into());
    if let Some(text) = n.shutdown_communication() {
        m.insert("shutdown_communication".into(), text.into());
    }
}

fn code_fields(code: ErrorCode, subcode: u8, m: &mut Map<String, Value>) {
    m.insert("code".into(), u8::from(code).into());
    m.insert("code_name".into(), code.to_string().into());
    m.insert("subcode".into(), subcode.into());
    m.insert(
        "subcode_name".into(),
        code.subcode_name(subcode)
            .map_or_else(|| format!("unknown({subcode})"), str::to_owned)
            .into(),
    );
}

/// The error object: RFC 7606 action, reason, RFC 4271 code/subcode with names, data.
pub fn error(e: &DecodeError) -> Value {
    let mut m = Map::new();
    m.insert("action".into(), e.action.name().into());
    m.insert("reason".into(), e.reason.to_string().into());
    code_fields(e.code, e.subcode, &mut m);
    m.insert("data".into(), hex(&e.data).into());
    match &e.action {
        Action::TreatAsWithdraw { withdraw } => {
            insert_nlri(&mut m, "withdraw", withdraw);
        }
        Action::AttributeDiscard { attribute } => {
            m.insert("attribute".into(), attribute.to_string().into());
            m.insert("attribute_code".into(), u8::from(*attribute).into());
        }
        Action::Notification { .. } => {}
    }
    Value::Object(m)
}

/// An error found outside the codec (input framing, capture gaps): reason text plus, when
/// a BGP speaker would reset the session for it, the notification it would send.
pub fn stream_error(reason: &str, notification: Option<(ErrorCode, u8)>) -> Value {
    let mut m = Map::new();
    match notification {
        Some((code, subcode)) => {
            m.insert("action".into(), "notification".into());
            m.insert("reason".into(), reason.into());
            code_fields(code, subcode, &mut m);
        }
        None => {
            m.insert("action".into(), Value::Null);
            m.insert("reason".into(), reason.into());
        }
    }
    Value::Object(m)
}
