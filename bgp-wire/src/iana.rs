//! IANA code points of BGP-4, one enum per registry.
//!
//! Every enum keeps values it does not know in an `Unknown(..)` arm, so decoding never fails
//! on a new code point and the value survives re-encoding. Build values from the wire with
//! `From<u8>`/`From<u16>` (which never yields `Unknown` for a known value) and turn them back
//! with `u8::from(x)`/`u16::from(x)`. [`name`](MessageType::name) gives the RFC's name.

/// Declares a code-point enum with an `Unknown` arm, its conversions and a name table.
macro_rules! code_points {
    (
        $(#[$meta:meta])*
        $name:ident: $repr:ty {
            $( $(#[$vmeta:meta])* $variant:ident = $value:literal => $text:literal, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )*
            /// A code point this crate has no name for (kept as received).
            Unknown($repr),
        }

        impl From<$repr> for $name {
            #[inline]
            fn from(value: $repr) -> Self {
                match value {
                    $( $value => Self::$variant, )*
                    other => Self::Unknown(other),
                }
            }
        }

        impl From<$name> for $repr {
            #[inline]
            fn from(value: $name) -> $repr {
                match value {
                    $( $name::$variant => $value, )*
                    $name::Unknown(other) => other,
                }
            }
        }

        impl $name {
            /// The registry name of this code point, `None` when unknown.
            pub fn name(self) -> Option<&'static str> {
                match self {
                    $( Self::$variant => Some($text), )*
                    Self::Unknown(_) => None,
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                match self.name() {
                    Some(text) => f.write_str(text),
                    None => write!(f, "unknown({})", <$repr>::from(*self)),
                }
            }
        }
    };
}

code_points! {
    /// BGP message types (RFC 4271 §4.1, RFC 2918 §3).
    MessageType: u8 {
        /// RFC 4271 §4.2
        Open = 1 => "OPEN",
        /// RFC 4271 §4.3
        Update = 2 => "UPDATE",
        /// RFC 4271 §4.5
        Notification = 3 => "NOTIFICATION",
        /// RFC 4271 §4.4
        Keepalive = 4 => "KEEPALIVE",
        /// RFC 2918 §3
        RouteRefresh = 5 => "ROUTE-REFRESH",
    }
}

code_points! {
    /// Address Family Identifiers (IANA "Address Family Numbers"; RFC 4760 §3).
    Afi: u16 {
        /// IPv4
        Ipv4 = 1 => "ipv4",
        /// IPv6
        Ipv6 = 2 => "ipv6",
        /// L2VPN (RFC 4761, RFC 7432)
        L2vpn = 25 => "l2vpn",
        /// BGP-LS (RFC 7752)
        LinkState = 16388 => "link-state",
    }
}

code_points! {
    /// Subsequent Address Family Identifiers (RFC 4760 §6).
    Safi: u8 {
        /// Unicast forwarding (RFC 4760)
        Unicast = 1 => "unicast",
        /// Multicast forwarding (RFC 4760)
        Multicast = 2 => "multicast",
        /// MPLS labels (RFC 8277)
        MplsLabel = 4 => "mpls-label",
        /// EVPN (RFC 7432)
        Evpn = 70 => "evpn",
        /// MPLS-labelled VPN (RFC 4364)
        MplsVpn = 128 => "mpls-vpn",
        /// Flow specification (RFC 8955)
        FlowSpec = 133 => "flowspec",
    }
}

code_points! {
    /// Path attribute type codes (RFC 4271 §5, IANA "BGP Path Attributes").
    AttributeType: u8 {
        /// RFC 4271 §5.1.1
        Origin = 1 => "ORIGIN",
        /// RFC 4271 §5.1.2
        AsPath = 2 => "AS_PATH",
        /// RFC 4271 §5.1.3
        NextHop = 3 => "NEXT_HOP",
        /// RFC 4271 §5.1.4
        MultiExitDisc = 4 => "MULTI_EXIT_DISC",
        /// RFC 4271 §5.1.5
        LocalPref = 5 => "LOCAL_PREF",
        /// RFC 4271 §5.1.6
        AtomicAggregate = 6 => "ATOMIC_AGGREGATE",
        /// RFC 4271 §5.1.7
        Aggregator = 7 => "AGGREGATOR",
        /// RFC 1997
        Communities = 8 => "COMMUNITIES",
        /// RFC 4456 §8
        OriginatorId = 9 => "ORIGINATOR_ID",
        /// RFC 4456 §8
        ClusterList = 10 => "CLUSTER_LIST",
        /// RFC 4760 §3
        MpReachNlri = 14 => "MP_REACH_NLRI",
        /// RFC 4760 §4
        MpUnreachNlri = 15 => "MP_UNREACH_NLRI",
        /// RFC 4360 §2
        ExtendedCommunities = 16 => "EXTENDED_COMMUNITIES",
        /// RFC 6793 §3
        As4Path = 17 => "AS4_PATH",
        /// RFC 6793 §3
        As4Aggregator = 18 => "AS4_AGGREGATOR",
        /// RFC 5701
        Ipv6ExtendedCommunities = 25 => "IPV6_ADDRESS_SPECIFIC_EXTENDED_COMMUNITY",
        /// RFC 7311
        Aigp = 26 => "AIGP",
        /// RFC 8092
        LargeCommunities = 32 => "LARGE_COMMUNITY",
        /// RFC 9234 §5
        OnlyToCustomer = 35 => "OTC",
        /// RFC 6368
        AttrSet = 128 => "ATTR_SET",
    }
}

code_points! {
    /// OPEN optional parameter types (RFC 4271 §4.2, RFC 5492 §4, RFC 9072 §2).
    ParameterType: u8 {
        /// Authentication (deprecated, RFC 5492 §4)
        Authentication = 1 => "authentication",
        /// Capabilities (RFC 5492 §4)
        Capabilities = 2 => "capabilities",
        /// Extended optional parameters length marker (RFC 9072 §2)
        ExtendedLength = 255 => "extended-length",
    }
}

code_points! {
    /// Capability codes (RFC 5492 §4, IANA "Capability Codes").
    CapabilityCode: u8 {
        /// RFC 4760 §8
        Multiprotocol = 1 => "multiprotocol",
        /// RFC 2918 §2
        RouteRefresh = 2 => "route-refresh",
        /// RFC 5291
        OutboundRouteFiltering = 3 => "outbound-route-filtering",
        /// RFC 8950 §3
        ExtendedNextHop = 5 => "extended-next-hop",
        /// RFC 8654 §3
        ExtendedMessage = 6 => "extended-message",
        /// RFC 9234 §4.1
        Role = 9 => "role",
        /// RFC 4724 §3
        GracefulRestart = 64 => "graceful-restart",
        /// RFC 6793 §3
        FourOctetAs = 65 => "four-octet-as",
        /// RFC 7911 §4
        AddPath = 69 => "add-path",
        /// RFC 7313 §3
        EnhancedRouteRefresh = 70 => "enhanced-route-refresh",
        /// RFC 9494 §3
        LongLivedGracefulRestart = 71 => "long-lived-graceful-restart",
        /// draft-walton-bgp-hostname-capability
        Fqdn = 73 => "fqdn",
        /// Pre-standard route refresh (Cisco), same meaning as code 2
        RouteRefreshCisco = 128 => "route-refresh-cisco",
    }
}

code_points! {
    /// ORIGIN attribute values (RFC 4271 §5.1.1).
    Origin: u8 {
        /// Learned from an interior protocol
        Igp = 0 => "igp",
        /// Learned from EGP
        Egp = 1 => "egp",
        /// Learned some other way
        Incomplete = 2 => "incomplete",
    }
}

code_points! {
    /// AS_PATH segment types (RFC 4271 §4.3, RFC 5065 §3).
    SegmentType: u8 {
        /// Unordered set of ASes (RFC 4271)
        AsSet = 1 => "AS_SET",
        /// Ordered sequence of ASes (RFC 4271)
        AsSequence = 2 => "AS_SEQUENCE",
        /// Ordered confederation member ASes (RFC 5065)
        ConfedSequence = 3 => "AS_CONFED_SEQUENCE",
        /// Unordered confederation member ASes (RFC 5065)
        ConfedSet = 4 => "AS_CONFED_SET",
    }
}

code_points! {
    /// NOTIFICATION error codes (RFC 4271 §4.5, RFC 7313 §5).
    ErrorCode: u8 {
        /// RFC 4271 §6.1
        MessageHeader = 1 => "Message Header Error",
        /// RFC 4271 §6.2
        OpenMessage = 2 => "OPEN Message Error",
        /// RFC 4271 §6.3
        UpdateMessage = 3 => "UPDATE Message Error",
        /// RFC 4271 §6.5
        HoldTimerExpired = 4 => "Hold Timer Expired",
        /// RFC 4271 §6.6
        FiniteStateMachine = 5 => "Finite State Machine Error",
        /// RFC 4271 §6.7
        Cease = 6 => "Cease",
        /// RFC 7313 §5
        RouteRefreshMessage = 7 => "ROUTE-REFRESH Message Error",
    }
}

code_points! {
    /// Message Header Error subcodes (RFC 4271 §4.5, §6.1).
    MessageHeaderSubcode: u8 {
        /// Unspecific
        Unspecific = 0 => "Unspecific",
        /// Marker not all ones
        ConnectionNotSynchronized = 1 => "Connection Not Synchronized",
        /// Length out of range for the message type
        BadMessageLength = 2 => "Bad Message Length",
        /// Type code not recognised
        BadMessageType = 3 => "Bad Message Type",
    }
}

code_points! {
    /// OPEN Message Error subcodes (RFC 4271 §6.2, RFC 5492 §5, RFC 9234 §4.2).
    OpenSubcode: u8 {
        /// Unspecific
        Unspecific = 0 => "Unspecific",
        /// RFC 4271
        UnsupportedVersionNumber = 1 => "Unsupported Version Number",
        /// RFC 4271
        BadPeerAs = 2 => "Bad Peer AS",
        /// RFC 4271
        BadBgpIdentifier = 3 => "Bad BGP Identifier",
        /// RFC 4271
        UnsupportedOptionalParameter = 4 => "Unsupported Optional Parameter",
        /// RFC 4271 (deprecated)
        AuthenticationFailure = 5 => "Authentication Failure",
        /// RFC 4271
        UnacceptableHoldTime = 6 => "Unacceptable Hold Time",
        /// RFC 5492
        UnsupportedCapability = 7 => "Unsupported Capability",
        /// RFC 9234
        RoleMismatch = 11 => "Role Mismatch",
    }
}

code_points! {
    /// UPDATE Message Error subcodes (RFC 4271 §6.3).
    UpdateSubcode: u8 {
        /// Unspecific
        Unspecific = 0 => "Unspecific",
        /// RFC 4271
        MalformedAttributeList = 1 => "Malformed Attribute List",
        /// RFC 4271
        UnrecognizedWellKnownAttribute = 2 => "Unrecognized Well-known Attribute",
        /// RFC 4271
        MissingWellKnownAttribute = 3 => "Missing Well-known Attribute",
        /// RFC 4271
        AttributeFlagsError = 4 => "Attribute Flags Error",
        /// RFC 4271
        AttributeLengthError = 5 => "Attribute Length Error",
        /// RFC 4271
        InvalidOriginAttribute = 6 => "Invalid ORIGIN Attribute",
        /// RFC 4271 (deprecated)
        AsRoutingLoop = 7 => "AS Routing Loop",
        /// RFC 4271
        InvalidNextHopAttribute = 8 => "Invalid NEXT_HOP Attribute",
        /// RFC 4271
        OptionalAttributeError = 9 => "Optional Attribute Error",
        /// RFC 4271
        InvalidNetworkField = 10 => "Invalid Network Field",
        /// RFC 4271
        MalformedAsPath = 11 => "Malformed AS_PATH",
    }
}

code_points! {
    /// Finite State Machine Error subcodes (RFC 6608 §3).
    FsmSubcode: u8 {
        /// Unspecified
        Unspecified = 0 => "Unspecified Error",
        /// Unexpected message in OpenSent
        UnexpectedMessageInOpenSent = 1 => "Receive Unexpected Message in OpenSent State",
        /// Unexpected message in OpenConfirm
        UnexpectedMessageInOpenConfirm = 2 => "Receive Unexpected Message in OpenConfirm State",
        /// Unexpected message in Established
        UnexpectedMessageInEstablished = 3 => "Receive Unexpected Message in Established State",
    }
}

code_points! {
    /// Cease subcodes (RFC 4486 §4, RFC 8538 §5, RFC 9384 §3).
    ///
    /// Administrative Shutdown and Administrative Reset may carry a shutdown communication
    /// (RFC 8203, RFC 9003); see [`Notification::shutdown_communication`](crate::Notification::shutdown_communication).
    CeaseSubcode: u8 {
        /// Unspecific
        Unspecific = 0 => "Unspecific",
        /// RFC 4486
        MaximumPrefixesReached = 1 => "Maximum Number of Prefixes Reached",
        /// RFC 4486, RFC 9003
        AdministrativeShutdown = 2 => "Administrative Shutdown",
        /// RFC 4486
        PeerDeconfigured = 3 => "Peer De-configured",
        /// RFC 4486, RFC 9003
        AdministrativeReset = 4 => "Administrative Reset",
        /// RFC 4486
        ConnectionRejected = 5 => "Connection Rejected",
        /// RFC 4486
        OtherConfigurationChange = 6 => "Other Configuration Change",
        /// RFC 4486
        ConnectionCollisionResolution = 7 => "Connection Collision Resolution",
        /// RFC 4486
        OutOfResources = 8 => "Out of Resources",
        /// RFC 8538
        HardReset = 9 => "Hard Reset",
        /// RFC 9384
        BfdDown = 10 => "BFD Down",
    }
}

code_points! {
    /// ROUTE-REFRESH Message Error subcodes (RFC 7313 §5).
    RouteRefreshErrorSubcode: u8 {
        /// Reserved
        Reserved = 0 => "Reserved",
        /// Length is not 23 octets
        InvalidMessageLength = 1 => "Invalid Message Length",
    }
}

code_points! {
    /// ROUTE-REFRESH message subtypes (RFC 7313 §3.2; 0 is the RFC 2918 request).
    RouteRefreshSubtype: u8 {
        /// Normal route refresh request (RFC 2918)
        Request = 0 => "request",
        /// Beginning of Route Refresh (RFC 7313)
        BeginningOfRouteRefresh = 1 => "BoRR",
        /// End of Route Refresh (RFC 7313)
        EndOfRouteRefresh = 2 => "EoRR",
    }
}

code_points! {
    /// BGP roles (RFC 9234 §4.1).
    Role: u8 {
        /// Provider
        Provider = 0 => "provider",
        /// Route server
        RouteServer = 1 => "rs",
        /// Route server client
        RouteServerClient = 2 => "rs-client",
        /// Customer
        Customer = 3 => "customer",
        /// Lateral peer
        Peer = 4 => "peer",
    }
}

code_points! {
    /// ADD-PATH send/receive modes (RFC 7911 §4).
    AddPathMode: u8 {
        /// Able to receive multiple paths
        Receive = 1 => "receive",
        /// Able to send multiple paths
        Send = 2 => "send",
        /// Both
        SendReceive = 3 => "send-receive",
    }
}

impl ErrorCode {
    /// The name of `subcode` under this error code, `None` when unknown.
    pub fn subcode_name(self, subcode: u8) -> Option<&'static str> {
        match self {
            Self::MessageHeader => MessageHeaderSubcode::from(subcode).name(),
            Self::OpenMessage => OpenSubcode::from(subcode).name(),
            Self::UpdateMessage => UpdateSubcode::from(subcode).name(),
            Self::FiniteStateMachine => FsmSubcode::from(subcode).name(),
            Self::Cease => CeaseSubcode::from(subcode).name(),
            Self::RouteRefreshMessage => RouteRefreshErrorSubcode::from(subcode).name(),
            Self::HoldTimerExpired => (subcode == 0).then_some("Unspecific"),
            Self::Unknown(_) => None,
        }
    }
}

/// Well-known AS numbers.
pub mod asn {
    /// AS_TRANS, stands in for a 4-octet AS on 2-octet sessions (RFC 6793 §9).
    pub const AS_TRANS: u16 = 23456;
}
