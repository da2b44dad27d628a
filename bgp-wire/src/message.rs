//! BGP-4 messages (RFC 4271 §4) and the result of decoding one.
//!
//! Every message starts with the common header (RFC 4271 §4.1):
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                                                               |
//! +                                                               +
//! |                           Marker                              |
//! +                      (16 octets of ones)                      +
//! |                                                               |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |          Length               |      Type     |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```

use std::net::Ipv4Addr;

use bytes::Bytes;

use crate::attribute::{MpReach, MpUnreach, PathAttributes};
use crate::capability::Capability;
use crate::error::DecodeError;
use crate::iana::{CeaseSubcode, ErrorCode, MessageType, RouteRefreshSubtype};
use crate::nlri::{Family, Nlri};

/// One BGP message.
// UPDATE dominates the traffic, so boxing it would only add an allocation per message.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// OPEN (type 1).
    Open(Open),
    /// UPDATE (type 2).
    Update(Update),
    /// NOTIFICATION (type 3).
    Notification(Notification),
    /// KEEPALIVE (type 4): the header alone (RFC 4271 §4.4).
    Keepalive,
    /// ROUTE-REFRESH (type 5).
    RouteRefresh(RouteRefresh),
}

impl Message {
    /// The message type code.
    pub fn message_type(&self) -> MessageType {
        match self {
            Self::Open(_) => MessageType::Open,
            Self::Update(_) => MessageType::Update,
            Self::Notification(_) => MessageType::Notification,
            Self::Keepalive => MessageType::Keepalive,
            Self::RouteRefresh(_) => MessageType::RouteRefresh,
        }
    }
}

/// A decoded message plus the non-fatal RFC 7606 errors found in it.
///
/// `errors` is empty except for UPDATEs, where it lists treat-as-withdraw and
/// attribute-discard errors (strongest first). With a treat-as-withdraw error the `message`
/// still holds everything that decoded (malformed attributes left out) and the error's
/// [`Action::TreatAsWithdraw`](crate::Action::TreatAsWithdraw) lists the NLRI to withdraw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decoded {
    /// The message.
    pub message: Message,
    /// Non-fatal errors (never [`Action::Notification`](crate::Action::Notification)).
    pub errors: Vec<DecodeError>,
}

impl Decoded {
    /// The NLRI to withdraw when any error requires treat-as-withdraw (RFC 7606 §2).
    pub fn treat_as_withdraw(&self) -> Option<&[Nlri]> {
        self.errors.iter().find_map(|e| match &e.action {
            crate::Action::TreatAsWithdraw { withdraw } => Some(&withdraw[..]),
            _ => None,
        })
    }
}

/// OPEN (RFC 4271 §4.2; optional parameters RFC 5492 §4, extended length RFC 9072 §2).
///
/// ```text
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +-+-+-+-+-+-+-+-+
/// |    Version    |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |     My Autonomous System      |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |           Hold Time           |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                         BGP Identifier                        |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// | Opt Parm Len  |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |             Optional Parameters (variable)                    |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
///
/// each parameter: Parm. Type (1) | Parm. Length (1) | Parameter Value
/// RFC 9072: Opt Parm Len = 255 and a first type of 255 mean
///           Non-Ext OP Len (1) = 255 | Non-Ext OP Type (1) = 255 |
///           Extended Opt. Parm. Length (2) | parameters with 2-octet lengths
/// ```
///
/// Version is always 4 (anything else fails to decode). All capabilities are gathered from
/// every Capabilities parameter in order; the encoder writes them in one parameter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Open {
    /// My Autonomous System (AS_TRANS when the real AS needs 4 octets).
    pub my_as: u16,
    /// Proposed hold time in seconds (0 or ≥ 3).
    pub hold_time: u16,
    /// BGP identifier.
    pub bgp_id: Ipv4Addr,
    /// Capabilities (RFC 5492), in received order.
    pub capabilities: Vec<Capability>,
}

impl Open {
    /// The sender's AS: the 4-octet AS capability if present, else My Autonomous System.
    pub fn asn(&self) -> u32 {
        self.four_octet_as().unwrap_or(u32::from(self.my_as))
    }

    /// The AS of the 4-octet AS capability (RFC 6793 §3), if advertised.
    pub fn four_octet_as(&self) -> Option<u32> {
        self.capabilities.iter().find_map(|c| match c {
            Capability::FourOctetAs(asn) => Some(*asn),
            _ => None,
        })
    }

    /// True when a capability with this code was advertised.
    pub fn has_capability(&self, code: crate::iana::CapabilityCode) -> bool {
        self.capabilities.iter().any(|c| c.code() == code)
    }

    /// Families advertised with the multiprotocol capability (RFC 4760 §8).
    pub fn multiprotocol(&self) -> impl Iterator<Item = Family> + '_ {
        self.capabilities.iter().filter_map(|c| match c {
            Capability::Multiprotocol(f) => Some(*f),
            _ => None,
        })
    }
}

/// UPDATE (RFC 4271 §4.3, multiprotocol RFC 4760).
///
/// ```text
/// +-----------------------------------------------------+
/// |   Withdrawn Routes Length (2 octets)                |
/// +-----------------------------------------------------+
/// |   Withdrawn Routes (variable)                       |
/// +-----------------------------------------------------+
/// |   Total Path Attribute Length (2 octets)            |
/// +-----------------------------------------------------+
/// |   Path Attributes (variable)                        |
/// +-----------------------------------------------------+
/// |   Network Layer Reachability Information (variable) |
/// +-----------------------------------------------------+
/// ```
///
/// IPv4 unicast may travel in the classic fields (`withdrawn`, `nlri`) and in MP attributes;
/// IPv6 unicast only in MP attributes. One UPDATE carries at most one MP_REACH_NLRI and one
/// MP_UNREACH_NLRI (RFC 4760 §3, §4), so it can announce and withdraw both families at once
/// (e.g. IPv4 in `nlri`, IPv6 in `mp_reach`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Update {
    /// Withdrawn Routes field (IPv4 unicast).
    pub withdrawn: Vec<Nlri>,
    /// Path attributes (empty for a pure withdrawal).
    pub attributes: PathAttributes,
    /// NLRI field (IPv4 unicast); next hop in `attributes.next_hop`.
    pub nlri: Vec<Nlri>,
    /// MP_REACH_NLRI; next hop in `attributes.mp_next_hop`.
    pub mp_reach: Option<MpReach>,
    /// MP_UNREACH_NLRI.
    pub mp_unreach: Option<MpUnreach>,
}

impl Update {
    /// The End-of-RIB marker of `family` (RFC 4724 §2): an empty UPDATE for IPv4 unicast,
    /// else an UPDATE with only an empty MP_UNREACH_NLRI.
    pub fn end_of_rib(family: Family) -> Self {
        if family == Family::IPV4_UNICAST {
            Self::default()
        } else {
            Self {
                mp_unreach: Some(MpUnreach {
                    family,
                    withdrawn: Vec::new(),
                }),
                ..Self::default()
            }
        }
    }

    /// The family whose End-of-RIB this UPDATE is, if it is one (RFC 4724 §2).
    pub fn as_end_of_rib(&self) -> Option<Family> {
        if !self.withdrawn.is_empty() || !self.nlri.is_empty() || self.mp_reach.is_some() {
            return None;
        }
        if self.attributes != PathAttributes::default() {
            return None;
        }
        match &self.mp_unreach {
            None => Some(Family::IPV4_UNICAST),
            Some(u) if u.withdrawn.is_empty() => Some(u.family),
            Some(_) => None,
        }
    }

    /// Every announced NLRI: the NLRI field, then MP_REACH_NLRI.
    pub fn announced(&self) -> impl Iterator<Item = &Nlri> {
        self.nlri
            .iter()
            .chain(self.mp_reach.iter().flat_map(|m| m.nlri.iter()))
    }

    /// Every withdrawn NLRI: the Withdrawn Routes field, then MP_UNREACH_NLRI.
    pub fn withdrawals(&self) -> impl Iterator<Item = &Nlri> {
        self.withdrawn
            .iter()
            .chain(self.mp_unreach.iter().flat_map(|m| m.withdrawn.iter()))
    }
}

/// NOTIFICATION (RFC 4271 §4.5).
///
/// ```text
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// | Error code    | Error subcode |   Data (variable)             |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
///
/// Cease/Administrative Shutdown or Reset data (RFC 8203 §2, RFC 9003 §2):
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// | Length        | Shutdown Communication (UTF-8, ≤ 255 octets)  |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Notification {
    /// Error code.
    pub code: ErrorCode,
    /// Error subcode (meaning depends on `code`; see [`ErrorCode::subcode_name`]).
    pub subcode: u8,
    /// Data, as a zero-copy slice of the message.
    pub data: Bytes,
}

/// Longest shutdown communication (RFC 9003 §2).
pub const MAX_SHUTDOWN_COMMUNICATION: usize = 255;

impl Notification {
    /// A NOTIFICATION without data.
    pub fn new(code: ErrorCode, subcode: impl Into<u8>) -> Self {
        Self {
            code,
            subcode: subcode.into(),
            data: Bytes::new(),
        }
    }

    /// Cease with a shutdown communication (RFC 9003): `subcode` should be
    /// Administrative Shutdown or Administrative Reset; `text` is cut to 255 octets at a
    /// character boundary.
    pub fn cease_with_communication(subcode: CeaseSubcode, text: &str) -> Self {
        let mut end = text.len().min(MAX_SHUTDOWN_COMMUNICATION);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        let mut data = Vec::with_capacity(end + 1);
        data.push(end as u8);
        data.extend_from_slice(&text.as_bytes()[..end]);
        Self {
            code: ErrorCode::Cease,
            subcode: subcode.into(),
            data: data.into(),
        }
    }

    /// The shutdown communication of a Cease/Administrative Shutdown or Reset (RFC 8203,
    /// RFC 9003): `None` for other notifications, when the data is empty, or when it is not
    /// a length-prefixed UTF-8 string.
    pub fn shutdown_communication(&self) -> Option<&str> {
        let sub = CeaseSubcode::from(self.subcode);
        if self.code != ErrorCode::Cease
            || !matches!(
                sub,
                CeaseSubcode::AdministrativeShutdown | CeaseSubcode::AdministrativeReset
            )
        {
            return None;
        }
        let (&len, rest) = self.data.split_first()?;
        let text = rest.get(..usize::from(len))?;
        std::str::from_utf8(text).ok()
    }
}

/// ROUTE-REFRESH (RFC 2918 §3; subtypes RFC 7313 §3.2).
///
/// ```text
///  0       7      15      23      31
/// +-------+-------+-------+-------+
/// |      AFI      | Subtyp| SAFI  |
/// +-------+-------+-------+-------+
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RouteRefresh {
    /// AFI/SAFI to refresh.
    pub family: Family,
    /// Request (0), BoRR (1), EoRR (2); unknown subtypes are to be ignored (RFC 7313 §5).
    pub subtype: RouteRefreshSubtype,
}
