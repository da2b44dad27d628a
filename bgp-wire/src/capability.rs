//! Capabilities advertised in OPEN (RFC 5492) and the ones this crate understands.
//!
//! ```text
//! RFC 5492 §4, one capability:
//! +------------------------------+
//! | Capability Code (1 octet)    |
//! +------------------------------+
//! | Capability Length (1 octet)  |
//! +------------------------------+
//! | Capability Value (variable)  |
//! +------------------------------+
//! ```

use bytes::Bytes;

use crate::iana::{AddPathMode, CapabilityCode, Role};
use crate::nlri::Family;

/// One capability of an OPEN message.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Capability {
    /// Multiprotocol extensions (code 1, RFC 4760 §8):
    /// ```text
    /// +-------+-------+-------+-------+
    /// |  AFI (2)      | Res.  | SAFI  |
    /// +-------+-------+-------+-------+
    /// ```
    Multiprotocol(Family),
    /// Route refresh (code 2, RFC 2918 §2), no value.
    RouteRefresh,
    /// Extended next hop encoding (code 5, RFC 8950 §3), repeated triples:
    /// ```text
    /// +-----------------+------------------+---------------------+
    /// | NLRI AFI (2)    | NLRI SAFI (2)    | Nexthop AFI (2)     |
    /// +-----------------+------------------+---------------------+
    /// ```
    ExtendedNextHop(Vec<ExtendedNextHop>),
    /// Extended messages up to 65535 octets (code 6, RFC 8654 §3), no value.
    ExtendedMessage,
    /// BGP role (code 9, RFC 9234 §4.1), one octet.
    Role(Role),
    /// Graceful restart (code 64, RFC 4724 §3; N bit RFC 8538 §2):
    /// ```text
    /// +--------------------------------------------------+
    /// | Restart Flags (4 bits) | Restart Time (12 bits)  |
    /// +--------------------------------------------------+
    /// | AFI (16 bits) | SAFI (8 bits) | Flags (8 bits)   |  repeated
    /// +--------------------------------------------------+
    /// ```
    GracefulRestart(GracefulRestart),
    /// 4-octet AS numbers (code 65, RFC 6793 §3): the speaker's AS, 4 octets.
    FourOctetAs(u32),
    /// ADD-PATH (code 69, RFC 7911 §4), repeated:
    /// ```text
    /// +------------------------------------------------+
    /// | AFI (2 octets) | SAFI (1 octet) | Send/Receive |
    /// +------------------------------------------------+
    /// ```
    AddPath(Vec<AddPathFamily>),
    /// Enhanced route refresh (code 70, RFC 7313 §3), no value.
    EnhancedRouteRefresh,
    /// Long-lived graceful restart (code 71, RFC 9494 §3), repeated:
    /// ```text
    /// +--------------------------------------------------+
    /// | AFI (2) | SAFI (1) | Flags (1) | Long-lived Stale Time (3) |
    /// +--------------------------------------------------+
    /// ```
    LongLivedGracefulRestart(Vec<LlgrFamily>),
    /// Host and domain name (code 73, draft-walton-bgp-hostname-capability), kept as bytes:
    /// ```text
    /// +--------------------------------+
    /// | Hostname Length (1 octet)      |
    /// | Hostname (variable)            |
    /// | Domain Name Length (1 octet)   |
    /// | Domain Name (variable)         |
    /// +--------------------------------+
    /// ```
    Fqdn {
        /// Host name (UTF-8 by convention, not checked).
        hostname: Bytes,
        /// Domain name (UTF-8 by convention, not checked).
        domain: Bytes,
    },
    /// Any other capability (including Cisco's pre-standard route refresh, code 128), value
    /// kept as a zero-copy slice.
    Unknown {
        /// Capability code.
        code: CapabilityCode,
        /// Capability value.
        value: Bytes,
    },
}

impl Capability {
    /// The capability code.
    pub fn code(&self) -> CapabilityCode {
        match self {
            Self::Multiprotocol(_) => CapabilityCode::Multiprotocol,
            Self::RouteRefresh => CapabilityCode::RouteRefresh,
            Self::ExtendedNextHop(_) => CapabilityCode::ExtendedNextHop,
            Self::ExtendedMessage => CapabilityCode::ExtendedMessage,
            Self::Role(_) => CapabilityCode::Role,
            Self::GracefulRestart(_) => CapabilityCode::GracefulRestart,
            Self::FourOctetAs(_) => CapabilityCode::FourOctetAs,
            Self::AddPath(_) => CapabilityCode::AddPath,
            Self::EnhancedRouteRefresh => CapabilityCode::EnhancedRouteRefresh,
            Self::LongLivedGracefulRestart(_) => CapabilityCode::LongLivedGracefulRestart,
            Self::Fqdn { .. } => CapabilityCode::Fqdn,
            Self::Unknown { code, .. } => *code,
        }
    }
}

/// One tuple of the extended next hop capability (RFC 8950 §3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ExtendedNextHop {
    /// NLRI AFI (e.g. IPv4).
    pub nlri_afi: u16,
    /// NLRI SAFI (two octets in this capability).
    pub nlri_safi: u16,
    /// Next hop AFI (e.g. IPv6).
    pub next_hop_afi: u16,
}

/// The graceful restart capability (RFC 4724 §3, RFC 8538 §2).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct GracefulRestart {
    /// R bit: the speaker has restarted.
    pub restart_state: bool,
    /// N bit: the speaker supports graceful NOTIFICATION (RFC 8538).
    pub notification: bool,
    /// Restart time in seconds (12 bits, ≤ 4095).
    pub restart_time: u16,
    /// Families whose state is preserved across the restart.
    pub families: Vec<GracefulRestartFamily>,
}

/// One family of the graceful restart capability.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct GracefulRestartFamily {
    /// AFI/SAFI.
    pub family: Family,
    /// F bit: forwarding state was preserved.
    pub forwarding_preserved: bool,
}

/// One family of the ADD-PATH capability (RFC 7911 §4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AddPathFamily {
    /// AFI/SAFI.
    pub family: Family,
    /// Receive, send or both.
    pub mode: AddPathMode,
}

/// One family of the long-lived graceful restart capability (RFC 9494 §3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LlgrFamily {
    /// AFI/SAFI.
    pub family: Family,
    /// F bit: forwarding state was preserved.
    pub forwarding_preserved: bool,
    /// Long-lived stale time in seconds (24 bits, ≤ 16777215).
    pub stale_time: u32,
}
