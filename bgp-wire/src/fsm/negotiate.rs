//! OPEN checks (RFC 4271 §6.2) and capability negotiation (RFC 5492): from our OPEN and the
//! peer's, one [`Negotiated`] value that everything after OpenConfirm is built from — the
//! codec's [`DecodeContext`]/[`EncodeContext`], the timers, the RIB's view of the peer.

use std::net::Ipv4Addr;

use crate::capability::{Capability, ExtendedNextHop, GracefulRestart, LlgrFamily};
use crate::context::{AddPath, DecodeContext, EncodeContext};
use crate::iana::{AddPathMode, ErrorCode, OpenSubcode, asn::AS_TRANS};
use crate::message::{Notification, Open};
use crate::nlri::Family;

use super::config::SessionConfig;

/// What both sides agreed on (RFC 5492 and the capability RFCs cited per field).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Negotiated {
    /// Our AS.
    pub local_as: u32,
    /// The peer's AS (from its 4-octet AS capability when present, RFC 6793 §3).
    pub peer_as: u32,
    /// Our BGP identifier.
    pub local_id: Ipv4Addr,
    /// The peer's BGP identifier.
    pub peer_id: Ipv4Addr,
    /// Negotiated hold time, seconds: the smaller of both proposals (RFC 4271 §4.2); 0 = none.
    pub hold_time: u16,
    /// Keepalive interval, seconds: hold/3 unless configured lower; 0 when hold is 0.
    pub keepalive_time: u16,
    /// Both sides announced 4-octet AS support (RFC 6793).
    pub four_octet_as: bool,
    /// Families both announced (RFC 4760; a peer without any Multiprotocol capability speaks
    /// IPv4 unicast only).
    pub families: Vec<Family>,
    /// Families in which we may send path identifiers (we announced Send, the peer Receive;
    /// RFC 7911 §5).
    pub add_path_send: Vec<Family>,
    /// Families in which the peer sends path identifiers (we announced Receive, the peer Send).
    pub add_path_receive: Vec<Family>,
    /// Route refresh (RFC 2918; the peer may use the old Cisco code 128).
    pub route_refresh: bool,
    /// Enhanced route refresh (RFC 7313).
    pub enhanced_route_refresh: bool,
    /// Extended messages (RFC 8654): both announced.
    pub extended_message: bool,
    /// Extended next hop encodings both announced (RFC 8950).
    pub extended_next_hop: Vec<ExtendedNextHop>,
    /// The peer's graceful restart capability, when both announced one (RFC 4724 §4), its
    /// families restricted to those negotiated.
    pub graceful_restart: Option<GracefulRestart>,
    /// The peer's long-lived graceful restart families, when both announced LLGR (RFC 9494).
    pub long_lived_graceful_restart: Vec<LlgrFamily>,
    /// Every capability the peer announced, for display.
    pub peer_capabilities: Vec<Capability>,
}

impl Negotiated {
    /// Whether the session is internal (same AS).
    pub fn is_ibgp(&self) -> bool {
        self.local_as == self.peer_as
    }

    /// The context for decoding what the peer sends.
    pub fn decode_context(&self) -> DecodeContext {
        DecodeContext {
            four_octet_as: self.four_octet_as,
            add_path: add_path_of(&self.add_path_receive),
            extended_messages: self.extended_message,
        }
    }

    /// The context for encoding what we send.
    pub fn encode_context(&self) -> EncodeContext {
        EncodeContext {
            four_octet_as: self.four_octet_as,
            add_path: add_path_of(&self.add_path_send),
            extended_messages: self.extended_message,
        }
    }
}

fn add_path_of(families: &[Family]) -> AddPath {
    let mut a = AddPath::NONE;
    for f in families {
        a.set(*f, true);
    }
    a
}

/// The OPEN we send (RFC 4271 §4.2) for `config`.
pub fn local_open(config: &SessionConfig) -> Open {
    let caps = &config.capabilities;
    let mut capabilities: Vec<Capability> = caps
        .families
        .iter()
        .map(|f| Capability::Multiprotocol(*f))
        .collect();
    if caps.route_refresh {
        capabilities.push(Capability::RouteRefresh);
    }
    if caps.enhanced_route_refresh {
        capabilities.push(Capability::EnhancedRouteRefresh);
    }
    if caps.extended_message {
        capabilities.push(Capability::ExtendedMessage);
    }
    if !caps.extended_next_hop.is_empty() {
        capabilities.push(Capability::ExtendedNextHop(caps.extended_next_hop.clone()));
    }
    if let Some(gr) = &caps.graceful_restart {
        capabilities.push(Capability::GracefulRestart(gr.clone()));
        if !caps.long_lived_graceful_restart.is_empty() {
            capabilities.push(Capability::LongLivedGracefulRestart(
                caps.long_lived_graceful_restart.clone(),
            ));
        }
    }
    if caps.four_octet_as {
        capabilities.push(Capability::FourOctetAs(config.local_as));
    }
    if !caps.add_path.is_empty() {
        capabilities.push(Capability::AddPath(caps.add_path.clone()));
    }
    Open {
        my_as: u16::try_from(config.local_as).unwrap_or(AS_TRANS),
        hold_time: config.hold_time,
        bgp_id: config.local_id,
        capabilities,
    }
}

fn open_error(subcode: OpenSubcode, data: Vec<u8>) -> Notification {
    Notification {
        code: ErrorCode::OpenMessage,
        subcode: subcode.into(),
        data: data.into(),
    }
}

/// RFC 4271 §6.2 checks of the peer's OPEN that need our configuration (the codec already
/// refused bad versions, identifier 0, hold times 1–2 and unknown optional parameters).
/// `Err` is the NOTIFICATION to send.
pub fn check_open(config: &SessionConfig, open: &Open) -> Result<(), Notification> {
    // Peer AS: the 4-octet capability when we speak 4-octet AS ourselves, else My AS.
    let peer_as = match open.four_octet_as() {
        Some(asn) if config.capabilities.four_octet_as => asn,
        _ => u32::from(open.my_as),
    };
    let expected = if config.capabilities.four_octet_as {
        config.peer_as
    } else {
        u16::try_from(config.peer_as).map_or(u32::from(AS_TRANS), u32::from)
    };
    if peer_as != expected {
        return Err(open_error(
            OpenSubcode::BadPeerAs,
            open.my_as.to_be_bytes().to_vec(),
        ));
    }
    // RFC 6286 §2.2 / RFC 4271 §6.2: zero, or our own identifier, is a Bad BGP Identifier.
    if open.bgp_id.is_unspecified() || open.bgp_id == config.local_id {
        return Err(open_error(
            OpenSubcode::BadBgpIdentifier,
            open.bgp_id.octets().to_vec(),
        ));
    }
    // RFC 4271 §6.2: a non-zero hold time below what we accept (never 1 or 2).
    let min_hold = config.min_hold_time.max(3);
    if open.hold_time != 0 && open.hold_time < min_hold {
        return Err(open_error(
            OpenSubcode::UnacceptableHoldTime,
            open.hold_time.to_be_bytes().to_vec(),
        ));
    }
    Ok(())
}

fn sends(mode: AddPathMode) -> bool {
    matches!(mode, AddPathMode::Send | AddPathMode::SendReceive)
}

fn receives(mode: AddPathMode) -> bool {
    matches!(mode, AddPathMode::Receive | AddPathMode::SendReceive)
}

/// Negotiates the session from our configuration and the peer's (already checked) OPEN.
pub fn negotiate(config: &SessionConfig, peer: &Open) -> Negotiated {
    let caps = &config.capabilities;
    let peer_caps = &peer.capabilities;

    let hold_time = config.hold_time.min(peer.hold_time);
    let keepalive_time = if hold_time == 0 {
        0
    } else {
        let third = (hold_time / 3).max(1);
        config.keepalive_time.map_or(third, |k| k.clamp(1, third))
    };

    let four_octet_as = caps.four_octet_as && peer.four_octet_as().is_some();
    let peer_as = if four_octet_as {
        peer.asn()
    } else {
        u32::from(peer.my_as)
    };

    let mut peer_families: Vec<Family> = peer.multiprotocol().collect();
    if peer_families.is_empty() {
        peer_families.push(Family::IPV4_UNICAST);
    }
    let families: Vec<Family> = caps
        .families
        .iter()
        .copied()
        .filter(|f| peer_families.contains(f))
        .collect();

    let peer_add_path = |family: Family| {
        peer_caps.iter().find_map(|c| match c {
            Capability::AddPath(list) => list.iter().find(|a| a.family == family).map(|a| a.mode),
            _ => None,
        })
    };
    let mut add_path_send = Vec::new();
    let mut add_path_receive = Vec::new();
    for local in &caps.add_path {
        if !families.contains(&local.family) {
            continue;
        }
        if let Some(remote) = peer_add_path(local.family) {
            if sends(local.mode) && receives(remote) {
                add_path_send.push(local.family);
            }
            if receives(local.mode) && sends(remote) {
                add_path_receive.push(local.family);
            }
        }
    }

    let peer_has = |pred: fn(&Capability) -> bool| peer_caps.iter().any(pred);
    let route_refresh = caps.route_refresh
        && peer_has(|c| {
            matches!(c, Capability::RouteRefresh)
                || matches!(c, Capability::Unknown { code, .. } if u8::from(*code) == 128)
        });
    let enhanced_route_refresh =
        caps.enhanced_route_refresh && peer_has(|c| matches!(c, Capability::EnhancedRouteRefresh));
    let extended_message =
        caps.extended_message && peer_has(|c| matches!(c, Capability::ExtendedMessage));

    let extended_next_hop: Vec<ExtendedNextHop> = peer_caps
        .iter()
        .filter_map(|c| match c {
            Capability::ExtendedNextHop(list) => Some(list),
            _ => None,
        })
        .flatten()
        .filter(|e| caps.extended_next_hop.contains(e))
        .copied()
        .collect();

    let graceful_restart = match &caps.graceful_restart {
        None => None,
        Some(_) => peer_caps.iter().find_map(|c| match c {
            Capability::GracefulRestart(gr) => {
                let mut gr = gr.clone();
                gr.families.retain(|f| families.contains(&f.family));
                Some(gr)
            }
            _ => None,
        }),
    };
    let long_lived_graceful_restart =
        if graceful_restart.is_some() && !caps.long_lived_graceful_restart.is_empty() {
            peer_caps
                .iter()
                .filter_map(|c| match c {
                    Capability::LongLivedGracefulRestart(list) => Some(list),
                    _ => None,
                })
                .flatten()
                .filter(|f| families.contains(&f.family))
                .copied()
                .collect()
        } else {
            Vec::new()
        };

    Negotiated {
        local_as: config.local_as,
        peer_as,
        local_id: config.local_id,
        peer_id: peer.bgp_id,
        hold_time,
        keepalive_time,
        four_octet_as,
        families,
        add_path_send,
        add_path_receive,
        route_refresh,
        enhanced_route_refresh,
        extended_message,
        extended_next_hop,
        graceful_restart,
        long_lived_graceful_restart,
        peer_capabilities: peer_caps.clone(),
    }
}
