//! What the state machine is told about one peer: identities, timers and the capabilities to
//! announce. Plain data; the speaker builds it from `DesiredConfig`.

use std::net::Ipv4Addr;
use std::time::Duration;

use crate::capability::{AddPathFamily, ExtendedNextHop, GracefulRestart, LlgrFamily};
use crate::nlri::Family;

/// Configuration of one BGP session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionConfig {
    /// Our AS number (4-octet; sent as AS_TRANS in the OPEN's My AS when above 65535).
    pub local_as: u32,
    /// Our BGP identifier.
    pub local_id: Ipv4Addr,
    /// The AS the peer must announce (RFC 4271 §6.2 Bad Peer AS otherwise).
    pub peer_as: u32,
    /// Never connect out; wait for the peer (Calico's mesh: the smaller address is passive).
    pub passive: bool,
    /// Hold time we propose, seconds (0 disables keepalives and the hold timer, RFC 4271 §4.2).
    pub hold_time: u16,
    /// Keepalive interval, seconds; `None` is one third of the negotiated hold time.
    pub keepalive_time: Option<u16>,
    /// Smallest non-zero hold time accepted from the peer; below it the OPEN is refused with
    /// 2/6 Unacceptable Hold Time. RFC 4271 §4.2 forbids 1 and 2, so this is at least 3.
    pub min_hold_time: u16,
    /// ConnectRetryTime (RFC 4271 §8.1.2, default 120 s).
    pub connect_retry: Duration,
    /// The "large value" the hold timer gets while waiting for the peer's OPEN (RFC 4271
    /// §8.2.2 suggests 4 minutes).
    pub open_hold_time: Duration,
    /// DelayOpen (RFC 4271 §8.1.1 attribute): wait this long after the TCP connection comes up
    /// before sending our OPEN, unless the peer's OPEN arrives first.
    pub delay_open: Option<Duration>,
    /// Back-off before restarting after an error.
    pub idle_hold: IdleHold,
    /// Capabilities to announce (RFC 5492).
    pub capabilities: LocalCapabilities,
}

impl SessionConfig {
    /// A session with RFC defaults, IPv4 and IPv6 unicast, route refresh and 4-octet AS.
    pub fn new(local_as: u32, local_id: Ipv4Addr, peer_as: u32) -> SessionConfig {
        SessionConfig {
            local_as,
            local_id,
            peer_as,
            passive: false,
            hold_time: 90,
            keepalive_time: None,
            min_hold_time: 3,
            connect_retry: Duration::from_secs(120),
            open_hold_time: Duration::from_secs(240),
            delay_open: None,
            idle_hold: IdleHold::default(),
            capabilities: LocalCapabilities::default(),
        }
    }

    /// Whether the peer is in our AS (iBGP).
    pub fn is_ibgp(&self) -> bool {
        self.local_as == self.peer_as
    }
}

/// Exponential back-off in Idle after an error (RFC 4271 §8.1.1 IdleHoldTimer,
/// "DampPeerOscillations"). Calico runs BIRD with `error wait time 5,30`: the first wait is
/// `min`, each further error within `forget` of the previous one doubles it, up to `max`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdleHold {
    /// First wait after an error.
    pub min: Duration,
    /// Longest wait.
    pub max: Duration,
    /// An error this long after the previous one starts again from `min`.
    pub forget: Duration,
}

impl Default for IdleHold {
    fn default() -> Self {
        IdleHold {
            min: Duration::from_secs(5),
            max: Duration::from_secs(30),
            forget: Duration::from_secs(300),
        }
    }
}

impl IdleHold {
    /// The wait after `previous` (the last wait, if the last error is still remembered).
    pub fn next(&self, previous: Option<Duration>) -> Duration {
        match previous {
            None => self.min.min(self.max),
            Some(p) => p.saturating_mul(2).clamp(self.min.min(self.max), self.max),
        }
    }
}

/// Capabilities we announce (RFC 5492) and are willing to use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalCapabilities {
    /// Multiprotocol families (RFC 4760).
    pub families: Vec<Family>,
    /// Announce 4-octet AS support (RFC 6793). Off only to test old-speaker paths.
    pub four_octet_as: bool,
    /// Route refresh (RFC 2918).
    pub route_refresh: bool,
    /// Enhanced route refresh (RFC 7313).
    pub enhanced_route_refresh: bool,
    /// Extended messages up to 65535 octets (RFC 8654).
    pub extended_message: bool,
    /// Extended next hop encodings (RFC 8950).
    pub extended_next_hop: Vec<ExtendedNextHop>,
    /// ADD-PATH per family and direction (RFC 7911).
    pub add_path: Vec<AddPathFamily>,
    /// Graceful restart (RFC 4724).
    pub graceful_restart: Option<GracefulRestart>,
    /// Long-lived graceful restart (RFC 9494); announced only with graceful restart.
    pub long_lived_graceful_restart: Vec<LlgrFamily>,
}

impl Default for LocalCapabilities {
    fn default() -> Self {
        LocalCapabilities {
            families: vec![Family::IPV4_UNICAST, Family::IPV6_UNICAST],
            four_octet_as: true,
            route_refresh: true,
            enhanced_route_refresh: false,
            extended_message: false,
            extended_next_hop: Vec::new(),
            add_path: Vec::new(),
            graceful_restart: None,
            long_lived_graceful_restart: Vec::new(),
        }
    }
}
