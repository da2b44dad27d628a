//! What a session negotiated, as the codec needs it: passed explicitly to every decode and
//! encode call, never stored globally.

use crate::nlri::Family;

/// Largest message without the extended message capability (RFC 4271 §4.1).
pub const MAX_MESSAGE_LEN: usize = 4096;
/// Largest message with extended messages negotiated (RFC 8654 §4).
pub const MAX_EXTENDED_MESSAGE_LEN: usize = 65535;
/// Length of the common header, and of a KEEPALIVE (RFC 4271 §4.1).
pub const HEADER_LEN: usize = 19;

/// The families for which ADD-PATH path identifiers are present (RFC 7911): per direction,
/// one of these in [`DecodeContext`] (peer sends) and one in [`EncodeContext`] (we send).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct AddPath {
    /// Path identifiers on IPv4 unicast NLRI.
    pub ipv4_unicast: bool,
    /// Path identifiers on IPv6 unicast NLRI.
    pub ipv6_unicast: bool,
}

impl AddPath {
    /// ADD-PATH on no family.
    pub const NONE: AddPath = AddPath {
        ipv4_unicast: false,
        ipv6_unicast: false,
    };
    /// ADD-PATH on IPv4 and IPv6 unicast.
    pub const ALL: AddPath = AddPath {
        ipv4_unicast: true,
        ipv6_unicast: true,
    };

    /// True when NLRI of `family` carry path identifiers.
    #[inline]
    pub fn enabled(&self, family: Family) -> bool {
        if family == Family::IPV4_UNICAST {
            self.ipv4_unicast
        } else if family == Family::IPV6_UNICAST {
            self.ipv6_unicast
        } else {
            false
        }
    }

    /// Turns path identifiers for `family` on or off (other families are ignored).
    pub fn set(&mut self, family: Family, on: bool) {
        if family == Family::IPV4_UNICAST {
            self.ipv4_unicast = on;
        } else if family == Family::IPV6_UNICAST {
            self.ipv6_unicast = on;
        }
    }
}

/// How to read messages from one peer.
///
/// `Default` is a modern session: 4-octet AS, no ADD-PATH, 4096-octet messages. Before the
/// OPEN exchange completes only OPEN/NOTIFICATION/KEEPALIVE arrive, which do not depend on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DecodeContext {
    /// Both sides advertised the 4-octet AS capability (RFC 6793); when false, AS_PATH and
    /// AGGREGATOR carry 2-octet ASes and AS4_PATH/AS4_AGGREGATOR are merged in.
    pub four_octet_as: bool,
    /// Families for which the peer sends path identifiers (we advertised receive, it send).
    pub add_path: AddPath,
    /// Extended messages negotiated (RFC 8654): UPDATEs up to 65535 octets.
    pub extended_messages: bool,
}

impl Default for DecodeContext {
    fn default() -> Self {
        Self {
            four_octet_as: true,
            add_path: AddPath::NONE,
            extended_messages: false,
        }
    }
}

impl DecodeContext {
    /// Largest acceptable UPDATE/NOTIFICATION/ROUTE-REFRESH length.
    pub fn max_message_len(&self) -> usize {
        if self.extended_messages {
            MAX_EXTENDED_MESSAGE_LEN
        } else {
            MAX_MESSAGE_LEN
        }
    }
}

/// How to write messages to one peer; mirror image of [`DecodeContext`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EncodeContext {
    /// Both sides advertised the 4-octet AS capability (RFC 6793); when false the encoder
    /// writes AS_TRANS and adds AS4_PATH/AS4_AGGREGATOR as needed.
    pub four_octet_as: bool,
    /// Families for which we send path identifiers (we advertised send, peer receive).
    pub add_path: AddPath,
    /// Extended messages negotiated (RFC 8654): UPDATEs up to 65535 octets.
    pub extended_messages: bool,
}

impl Default for EncodeContext {
    fn default() -> Self {
        Self {
            four_octet_as: true,
            add_path: AddPath::NONE,
            extended_messages: false,
        }
    }
}

impl EncodeContext {
    /// Largest UPDATE/NOTIFICATION/ROUTE-REFRESH this peer accepts.
    pub fn max_message_len(&self) -> usize {
        if self.extended_messages {
            MAX_EXTENDED_MESSAGE_LEN
        } else {
            MAX_MESSAGE_LEN
        }
    }
}
