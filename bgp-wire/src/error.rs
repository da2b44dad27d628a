//! Decode and encode errors: what went wrong, the RFC 4271 §6 NOTIFICATION code/subcode/data
//! that describes it, and the RFC 7606 action the session must take.
//!
//! RFC 7606 §2 defines three approaches, strongest first: session reset (send a NOTIFICATION;
//! [`Action::Notification`]), treat-as-withdraw ([`Action::TreatAsWithdraw`]: the UPDATE's
//! NLRI are withdrawn, the session stays up), and attribute discard
//! ([`Action::AttributeDiscard`]: the attribute is dropped, the UPDATE is used).
//! A NOTIFICATION-class error is returned as `Err`; the weaker two ride along with the decoded
//! message in [`Decoded::errors`](crate::Decoded::errors).

use std::fmt;
use std::net::Ipv4Addr;
use std::sync::Arc;

use bytes::Bytes;

use crate::iana::{AttributeType, CapabilityCode, ErrorCode, UpdateSubcode};
use crate::message::Notification;
use crate::nlri::{Family, Nlri, NlriError};
use crate::prefix::Prefix;

/// What the session must do about an error (RFC 7606 §2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Session reset: send this NOTIFICATION and close (RFC 4271 §6).
    Notification {
        /// Error code.
        code: ErrorCode,
        /// Error subcode (see the subcode enums in [`iana`](crate::iana)).
        subcode: u8,
        /// Data field.
        data: Bytes,
    },
    /// Treat-as-withdraw (RFC 7606 §2): these NLRI (every prefix the UPDATE announced, in its
    /// NLRI field and MP_REACH_NLRI, RFC 7606 §5) must be handled as withdrawn.
    TreatAsWithdraw {
        /// NLRI to withdraw; shared by all treat-as-withdraw errors of one UPDATE.
        withdraw: Arc<[Nlri]>,
    },
    /// Attribute discard (RFC 7606 §2): the attribute was dropped; the UPDATE is otherwise used.
    AttributeDiscard {
        /// The discarded attribute.
        attribute: AttributeType,
    },
}

impl Action {
    /// Strength for RFC 7606 §3 (j): with several errors the strongest action wins.
    pub fn severity(&self) -> u8 {
        match self {
            Self::Notification { .. } => 2,
            Self::TreatAsWithdraw { .. } => 1,
            Self::AttributeDiscard { .. } => 0,
        }
    }

    /// `"notification"`, `"treat-as-withdraw"` or `"attribute-discard"`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Notification { .. } => "notification",
            Self::TreatAsWithdraw { .. } => "treat-as-withdraw",
            Self::AttributeDiscard { .. } => "attribute-discard",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which NLRI field of an UPDATE failed to parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NlriField {
    /// Withdrawn Routes.
    Withdrawn,
    /// Network Layer Reachability Information.
    Nlri,
    /// NLRI of MP_REACH_NLRI.
    MpReach,
    /// Withdrawn routes of MP_UNREACH_NLRI.
    MpUnreach,
}

impl fmt::Display for NlriField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Withdrawn => "Withdrawn Routes",
            Self::Nlri => "NLRI",
            Self::MpReach => "MP_REACH_NLRI",
            Self::MpUnreach => "MP_UNREACH_NLRI",
        })
    }
}

/// What was wrong with a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Reason {
    /// Header marker is not all ones (RFC 4271 §6.1).
    #[error("header marker is not all ones")]
    BadMarker,
    /// Length field out of range for the message type (RFC 4271 §6.1).
    #[error("bad message length {0}")]
    BadLength(u16),
    /// Unknown message type (RFC 4271 §6.1).
    #[error("bad message type {0}")]
    BadType(u8),
    /// OPEN version other than 4 (RFC 4271 §6.2).
    #[error("unsupported BGP version {0}")]
    UnsupportedVersion(u8),
    /// BGP identifier 0.0.0.0 (RFC 6286 §2.2).
    #[error("bad BGP identifier {0}")]
    BadBgpIdentifier(Ipv4Addr),
    /// Hold time 1 or 2 seconds (RFC 4271 §6.2).
    #[error("unacceptable hold time {0}")]
    UnacceptableHoldTime(u16),
    /// Optional parameter other than capabilities (RFC 4271 §6.2, RFC 5492 §4).
    #[error("unsupported optional parameter type {0}")]
    UnsupportedOptionalParameter(u8),
    /// Optional parameter lengths inconsistent (RFC 4271 §6.2, RFC 9072 §2).
    #[error("malformed OPEN optional parameters")]
    MalformedOptionalParameters,
    /// A known capability with a value of the wrong shape (RFC 5492).
    #[error("malformed {0} capability")]
    MalformedCapability(CapabilityCode),
    /// Withdrawn Routes Length overruns the message (RFC 7606 §4: session reset).
    #[error("withdrawn routes length overruns the message")]
    WithdrawnLengthOverrun,
    /// Total Path Attribute Length overruns the message (RFC 7606 §4: session reset).
    #[error("total path attribute length overruns the message")]
    TotalAttributeLengthOverrun,
    /// An attribute header or value runs past Total Path Attribute Length (RFC 7606 §4).
    #[error("path attribute overruns the path attributes field")]
    AttributeOverrun,
    /// An NLRI field does not parse (RFC 7606 §5.3: session reset).
    #[error("invalid {field}: {error}")]
    InvalidNlri {
        /// Which field.
        field: NlriField,
        /// What is wrong with it.
        error: NlriError,
    },
    /// Optional/transitive flag bits conflict with the attribute's definition (RFC 7606 §3 c).
    #[error("{attribute}: attribute flags {flags:#04x} conflict with its definition")]
    AttributeFlags {
        /// The attribute.
        attribute: AttributeType,
        /// Flags received.
        flags: u8,
    },
    /// Attribute length wrong for its type (RFC 7606 §7).
    #[error("{attribute}: invalid attribute length {length}")]
    AttributeLength {
        /// The attribute.
        attribute: AttributeType,
        /// Length received.
        length: u16,
    },
    /// ORIGIN value not 0..=2 (RFC 7606 §7.1).
    #[error("invalid ORIGIN value {0}")]
    InvalidOrigin(u8),
    /// AS_PATH or AS4_PATH segments malformed (RFC 7606 §7.2, RFC 6793 §6).
    #[error("malformed {0}")]
    MalformedAsPath(AttributeType),
    /// NEXT_HOP that is not a unicast address (RFC 4271 §6.3, RFC 7606 §7.3).
    #[error("invalid NEXT_HOP {0}")]
    InvalidNextHop(Ipv4Addr),
    /// LOCAL_PREF received from an external peer (RFC 7606 §7.5).
    #[error("LOCAL_PREF from an external peer")]
    LocalPrefFromExternalPeer,
    /// The leftmost AS of AS_PATH is not the external peer's AS (RFC 4271 §6.3).
    #[error("AS_PATH starts with {found:?}, not the peer AS {expected}")]
    FirstAsMismatch {
        /// The peer's AS.
        expected: u32,
        /// The first AS of the path, if any.
        found: Option<u32>,
    },
    /// A well-known mandatory attribute is missing (RFC 7606 §3 d).
    #[error("missing well-known attribute {0}")]
    MissingWellKnown(AttributeType),
    /// A non-optional attribute with an unknown type code (RFC 4271 §6.3).
    #[error("unrecognized well-known attribute type {0}")]
    UnrecognizedWellKnown(u8),
    /// An attribute appears more than once (RFC 7606 §3 g).
    #[error("{0} appears more than once")]
    DuplicateAttribute(AttributeType),
    /// MP_REACH_NLRI/MP_UNREACH_NLRI cannot be parsed (RFC 7606 §7.11: session reset).
    #[error("malformed {0}")]
    MalformedMpAttribute(AttributeType),
    /// MP_REACH_NLRI/MP_UNREACH_NLRI of a family whose NLRI this crate does not parse.
    #[error("{attribute} of unsupported address family {family}")]
    UnsupportedFamily {
        /// The attribute.
        attribute: AttributeType,
        /// Its AFI/SAFI.
        family: Family,
    },
    /// ROUTE-REFRESH not 23 octets (RFC 7313 §5).
    #[error("ROUTE-REFRESH of invalid length {0}")]
    RouteRefreshLength(u16),
}

/// A decoding error with its RFC 4271 §6 description and RFC 7606 action.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason} ({action})")]
pub struct DecodeError {
    /// What was wrong.
    pub reason: Reason,
    /// RFC 4271 §6 error code describing it (what a pre-RFC 7606 speaker would send).
    pub code: ErrorCode,
    /// RFC 4271 §6 error subcode.
    pub subcode: u8,
    /// RFC 4271 §6 data (e.g. the offending attribute, or the bad length field).
    pub data: Bytes,
    /// What the session must do.
    pub action: Action,
}

impl DecodeError {
    /// A session-reset error.
    pub(crate) fn fatal(
        reason: Reason,
        code: ErrorCode,
        subcode: impl Into<u8>,
        data: Bytes,
    ) -> Self {
        let subcode = subcode.into();
        Self {
            reason,
            code,
            subcode,
            data: data.clone(),
            action: Action::Notification {
                code,
                subcode,
                data,
            },
        }
    }

    /// An UPDATE Message Error handled by treat-as-withdraw; the NLRI are filled in once the
    /// whole UPDATE is parsed.
    pub(crate) fn treat_as_withdraw(reason: Reason, subcode: UpdateSubcode, data: Bytes) -> Self {
        Self {
            reason,
            code: ErrorCode::UpdateMessage,
            subcode: subcode.into(),
            data,
            action: Action::TreatAsWithdraw {
                withdraw: Arc::from(Vec::new()),
            },
        }
    }

    /// An UPDATE Message Error handled by discarding `attribute`.
    pub(crate) fn attribute_discard(
        reason: Reason,
        subcode: UpdateSubcode,
        data: Bytes,
        attribute: AttributeType,
    ) -> Self {
        Self {
            reason,
            code: ErrorCode::UpdateMessage,
            subcode: subcode.into(),
            data,
            action: Action::AttributeDiscard { attribute },
        }
    }

    /// An UPDATE Message Error that resets the session.
    pub(crate) fn update_fatal(reason: Reason, subcode: UpdateSubcode, data: Bytes) -> Self {
        Self::fatal(reason, ErrorCode::UpdateMessage, subcode, data)
    }

    /// True when the session must be reset ([`Action::Notification`]).
    pub fn is_fatal(&self) -> bool {
        matches!(self.action, Action::Notification { .. })
    }

    /// The NOTIFICATION that RFC 4271 §6 describes for this error (the one to send when
    /// [`is_fatal`](Self::is_fatal)).
    pub fn notification(&self) -> Notification {
        Notification {
            code: self.code,
            subcode: self.subcode,
            data: self.data.clone(),
        }
    }
}

/// Why a message could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// The message would exceed the negotiated maximum size.
    #[error("message of {length} octets exceeds the maximum of {max}")]
    TooLong {
        /// Octets the message would take.
        length: usize,
        /// The maximum (4096 or 65535).
        max: usize,
    },
    /// An IPv6 prefix in the IPv4-only Withdrawn Routes/NLRI field, or NLRI of another family
    /// than the MP attribute's.
    #[error("prefix {0} does not belong in this field")]
    WrongFamily(Prefix),
    /// MP_REACH_NLRI without [`PathAttributes::mp_next_hop`](crate::PathAttributes::mp_next_hop).
    #[error("MP_REACH_NLRI needs a next hop")]
    MissingMpNextHop,
    /// A family whose NLRI this crate cannot encode.
    #[error("unsupported address family {0}")]
    UnsupportedFamily(Family),
}
