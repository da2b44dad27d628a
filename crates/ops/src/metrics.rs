//! The Prometheus endpoint: `GET /metrics` in the OpenMetrics text format
//! (`prometheus-client`), every value read from the speaker when the scrape arrives.
//!
//! | metric | type | labels | from |
//! |---|---|---|---|
//! | `tern_bgp_peer_state` | gauge | `peer`, `address` | session state as RFC 4273's `bgpPeerState`: 1 idle, 2 connect, 3 active, 4 opensent, 5 openconfirm, 6 established |
//! | `tern_bgp_peer_enabled` | gauge | `peer`, `address` | 0 after `disable` |
//! | `tern_bgp_peer_uptime_seconds` | gauge | `peer`, `address` | time Established (0 when not) |
//! | `tern_bgp_peer_established_total` | counter | `peer`, `address` | sessions that reached Established |
//! | `tern_bgp_peer_flaps_total` | counter | `peer`, `address` | Established sessions that went down |
//! | `tern_bgp_peer_messages_received_total`, `…_sent_total` | counter | `peer`, `address` | messages after the OPEN exchange |
//! | `tern_bgp_peer_updates_received_total`, `…_sent_total` | counter | `peer`, `address` | UPDATE messages |
//! | `tern_bgp_peer_prefixes_received` | gauge | `peer`, `address` | paths before import policy (kept only with a pre-policy table) |
//! | `tern_bgp_peer_prefixes_accepted` | gauge | `peer`, `address` | paths after import policy |
//! | `tern_bgp_peer_prefixes_advertised` | gauge | `peer`, `address` | Adj-RIB-Out towards the peer |
//! | `tern_bgp_peer_last_error_code`, `…_subcode` | gauge | `peer`, `address` | last NOTIFICATION (0 = none) |
//! | `tern_rib_destinations`, `tern_rib_paths`, `tern_rib_attribute_sets` | gauge | | Loc-RIB size |
//! | `tern_fib_routes_installed` | gauge | | our routes in the kernel (with a FIB) |
//! | `tern_fib_operations_total`, `tern_fib_errors_total` | counter | | route writes, refused routes |
//! | `tern_graceful_restart_recovery` | gauge | | 1 while kernel routes of a previous run wait for End-of-RIB |
//! | `tern_last_reconfiguration_timestamp_seconds` | gauge | | last applied configuration |
//! | `tern_datastore_synced` | gauge | | 1 when the last datastore read succeeded ([`DatastoreGauges`]) |
//! | `tern_datastore_last_sync_timestamp_seconds` | gauge | | last successful datastore snapshot |
//! | `tern_datastore_sync_lag_seconds` | gauge | | time since then |
//! | `tern_build_info` | gauge | `version` | always 1 |
//! | `process_start_time_seconds` | gauge | | when the speaker started |

use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use bgp_wire::fsm::State;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::{Registry, Unit};
use tern_speaker::{PeerStatus, Speaker, SpeakerStatus};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::clock::unix_seconds;
use crate::http::{self, Response};

/// The OpenMetrics text content type.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Datastore health, which only the daemon knows: it updates these, scrapes read them.
#[derive(Clone, Debug, Default)]
pub struct DatastoreGauges {
    inner: Arc<Mutex<DatastoreState>>,
}

#[derive(Clone, Copy, Debug, Default)]
struct DatastoreState {
    synced: bool,
    last_sync: Option<SystemTime>,
}

impl DatastoreGauges {
    /// Not synced, never synced.
    pub fn new() -> DatastoreGauges {
        DatastoreGauges::default()
    }

    fn state(&self) -> DatastoreState {
        *self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the last datastore read (snapshot or change) succeeded.
    pub fn set_synced(&self, synced: bool) {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).synced = synced;
    }

    /// When the last consistent snapshot was taken.
    pub fn set_last_sync(&self, at: SystemTime) {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .last_sync = Some(at);
    }
}

/// A running endpoint. It serves as long as this handle lives: dropping it stops the
/// endpoint too, [`shutdown`](Self::shutdown) also waits until it has.
#[derive(Debug)]
pub struct MetricsServer {
    local_addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl MetricsServer {
    /// The address it listens on (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting, cancels scrapes in flight and waits for them, so the endpoint's
    /// references to the speaker are gone when this returns (the daemon can then
    /// `Arc::try_unwrap` the speaker and shut it down).
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// Serves `GET /metrics` on `addr` (404 for other paths, 405 for other methods, 503 when
/// the speaker has stopped). Must be called inside a tokio runtime.
pub async fn serve(
    addr: SocketAddr,
    speaker: Arc<Speaker>,
    gauges: DatastoreGauges,
) -> std::io::Result<MetricsServer> {
    let listener = TcpListener::bind(addr).await?;
    let local_addr = listener.local_addr()?;
    let handler = move |path: String| {
        let speaker = speaker.clone();
        let gauges = gauges.clone();
        async move {
            if path != "/metrics" {
                return Response::text(404, "not found; metrics are at /metrics\n");
            }
            match render(&speaker, &gauges).await {
                Ok(body) => Response {
                    status: 200,
                    content_type: CONTENT_TYPE,
                    body,
                },
                Err(e) => Response::text(503, format!("{e}\n")),
            }
        }
    };
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(http::serve(listener, handler, stopped));
    tracing::info!(%local_addr, "metrics endpoint listening");
    Ok(MetricsServer {
        local_addr,
        stop,
        task,
    })
}

/// A scrape that could not be answered.
#[derive(Debug, thiserror::Error)]
pub enum ScrapeError {
    /// The speaker did not answer (it has stopped).
    #[error(transparent)]
    Speaker(#[from] tern_speaker::Error),
    /// The text encoder failed.
    #[error("encoding the metrics failed")]
    Encode,
}

/// One scrape's text: asks the speaker for its peers and status now.
pub async fn render(speaker: &Speaker, gauges: &DatastoreGauges) -> Result<String, ScrapeError> {
    let peers = speaker.peers().await?;
    let status = speaker.status().await?;
    let scrape = Scrape {
        peers,
        status,
        datastore: gauges.state(),
        now: SystemTime::now(),
    };
    let mut registry = Registry::default();
    registry.register_collector(Box::new(scrape));
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &registry)
        .map_err(|_| ScrapeError::Encode)?;
    Ok(out)
}

/// The values of one scrape.
#[derive(Debug)]
struct Scrape {
    peers: Vec<PeerStatus>,
    status: SpeakerStatus,
    datastore: DatastoreState,
    now: SystemTime,
}

/// RFC 4273 `bgpPeerState` numbering.
fn state_number(s: State) -> i64 {
    match s {
        State::Idle => 1,
        State::Connect => 2,
        State::Active => 3,
        State::OpenSent => 4,
        State::OpenConfirm => 5,
        State::Established => 6,
    }
}

type Labels = [(&'static str, String); 2];

/// One metric family with one sample per label set.
fn family<M: EncodeMetric>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    kind: MetricType,
    samples: impl IntoIterator<Item = (Labels, M)>,
) -> fmt::Result {
    let mut metric = enc.encode_descriptor(name, help, unit, kind)?;
    for (labels, value) in samples {
        value.encode(metric.encode_family(&labels)?)?;
    }
    Ok(())
}

/// One metric without labels.
fn single<M: EncodeMetric>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    kind: MetricType,
    value: M,
) -> fmt::Result {
    value.encode(enc.encode_descriptor(name, help, unit, kind)?)
}

impl Scrape {
    fn per_peer<M: EncodeMetric>(&self, f: impl Fn(&PeerStatus) -> M) -> Vec<(Labels, M)> {
        self.peers
            .iter()
            .map(|p| {
                (
                    [("peer", p.name.clone()), ("address", p.address.to_string())],
                    f(p),
                )
            })
            .collect()
    }
}

impl Collector for Scrape {
    fn encode(&self, mut enc: DescriptorEncoder) -> fmt::Result {
        use MetricType::{Counter, Gauge};
        let e = &mut enc;
        let secs = Some(&Unit::Seconds);
        family(
            e,
            "tern_bgp_peer_state",
            "BGP session state (RFC 4273 bgpPeerState: 1 idle, 2 connect, 3 active, 4 opensent, 5 openconfirm, 6 established)",
            None,
            Gauge,
            self.per_peer(|p| ConstGauge::new(state_number(p.state))),
        )?;
        family(
            e,
            "tern_bgp_peer_enabled",
            "0 when the session is administratively disabled",
            None,
            Gauge,
            self.per_peer(|p| ConstGauge::new(i64::from(p.enabled))),
        )?;
        family(
            e,
            "tern_bgp_peer_uptime",
            "Time the session has been Established (0 when it is not)",
            secs,
            Gauge,
            self.per_peer(|p| ConstGauge::new(p.uptime.map_or(0.0, |d| d.as_secs_f64()))),
        )?;
        family(
            e,
            "tern_bgp_peer_established",
            "Sessions that reached Established",
            None,
            Counter,
            self.per_peer(|p| ConstCounter::new(p.established_count)),
        )?;
        family(
            e,
            "tern_bgp_peer_flaps",
            "Established sessions that went down",
            None,
            Counter,
            self.per_peer(|p| ConstCounter::new(p.flaps)),
        )?;
        family(
            e,
            "tern_bgp_peer_messages_received",
            "Messages received after the OPEN exchange",
            None,
            Counter,
            self.per_peer(|p| ConstCounter::new(p.messages_received)),
        )?;
        family(
            e,
            "tern_bgp_peer_messages_sent",
            "Messages queued to the peer after the OPEN exchange",
            None,
            Counter,
            self.per_peer(|p| ConstCounter::new(p.messages_sent)),
        )?;
        family(
            e,
            "tern_bgp_peer_updates_received",
            "UPDATE messages received",
            None,
            Counter,
            self.per_peer(|p| ConstCounter::new(p.updates_received)),
        )?;
        family(
            e,
            "tern_bgp_peer_updates_sent",
            "UPDATE messages queued to the peer",
            None,
            Counter,
            self.per_peer(|p| ConstCounter::new(p.updates_sent)),
        )?;
        family(
            e,
            "tern_bgp_peer_prefixes_received",
            "Paths from the peer before import policy (kept only with a pre-policy table)",
            None,
            Gauge,
            self.per_peer(|p| ConstGauge::new(p.prefixes_received)),
        )?;
        family(
            e,
            "tern_bgp_peer_prefixes_accepted",
            "Paths from the peer after import policy",
            None,
            Gauge,
            self.per_peer(|p| ConstGauge::new(p.prefixes_accepted)),
        )?;
        family(
            e,
            "tern_bgp_peer_prefixes_advertised",
            "Routes in the Adj-RIB-Out towards the peer",
            None,
            Gauge,
            self.per_peer(|p| ConstGauge::new(p.prefixes_advertised)),
        )?;
        family(
            e,
            "tern_bgp_peer_last_error_code",
            "Error code of the last NOTIFICATION sent or received (0 = none)",
            None,
            Gauge,
            self.per_peer(|p| ConstGauge::new(p.last_error_code.map_or(0, |(c, _)| i64::from(c)))),
        )?;
        family(
            e,
            "tern_bgp_peer_last_error_subcode",
            "Error subcode of the last NOTIFICATION sent or received (0 = none)",
            None,
            Gauge,
            self.per_peer(|p| ConstGauge::new(p.last_error_code.map_or(0, |(_, s)| i64::from(s)))),
        )?;

        let s = &self.status;
        single(
            e,
            "tern_rib_destinations",
            "Destinations in the Loc-RIB",
            None,
            Gauge,
            ConstGauge::new(s.rib_destinations),
        )?;
        single(
            e,
            "tern_rib_paths",
            "Paths in the Loc-RIB",
            None,
            Gauge,
            ConstGauge::new(s.rib_paths),
        )?;
        single(
            e,
            "tern_rib_attribute_sets",
            "Distinct interned attribute sets",
            None,
            Gauge,
            ConstGauge::new(s.rib_attribute_sets),
        )?;
        if let Some(fib) = &s.fib {
            single(
                e,
                "tern_fib_routes_installed",
                "Our routes in the kernel",
                None,
                Gauge,
                ConstGauge::new(fib.installed),
            )?;
            single(
                e,
                "tern_fib_operations",
                "Route writes handed to the kernel",
                None,
                Counter,
                ConstCounter::new(fib.operations),
            )?;
            single(
                e,
                "tern_fib_errors",
                "Routes the kernel refused",
                None,
                Counter,
                ConstCounter::new(fib.errors),
            )?;
        }
        single(
            e,
            "tern_graceful_restart_recovery",
            "1 while kernel routes of a previous run wait for End-of-RIB from every peer",
            None,
            Gauge,
            ConstGauge::new(i64::from(s.graceful_restart_recovery)),
        )?;
        if let Some(at) = s.last_reconfigured {
            single(
                e,
                "tern_last_reconfiguration_timestamp",
                "When the running configuration was applied",
                secs,
                Gauge,
                ConstGauge::new(unix_seconds(at)),
            )?;
        }

        let ds = &self.datastore;
        single(
            e,
            "tern_datastore_synced",
            "1 when the last datastore read succeeded",
            None,
            Gauge,
            ConstGauge::new(i64::from(ds.synced)),
        )?;
        if let Some(at) = ds.last_sync {
            single(
                e,
                "tern_datastore_last_sync_timestamp",
                "When the last consistent datastore snapshot was read",
                secs,
                Gauge,
                ConstGauge::new(unix_seconds(at)),
            )?;
            let lag = self.now.duration_since(at).unwrap_or_default();
            single(
                e,
                "tern_datastore_sync_lag",
                "Time since the last consistent datastore snapshot",
                secs,
                Gauge,
                ConstGauge::new(lag.as_secs_f64()),
            )?;
        }
        let mut info = e.encode_descriptor("tern_build_info", "Tern's version", None, Gauge)?;
        ConstGauge::new(1)
            .encode(info.encode_family(&[("version", env!("CARGO_PKG_VERSION"))])?)?;
        single(
            e,
            "process_start_time",
            "Start time of the process since the Unix epoch",
            secs,
            Gauge,
            ConstGauge::new(unix_seconds(s.started)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_numbers_follow_rfc_4273() {
        assert_eq!(state_number(State::Idle), 1);
        assert_eq!(state_number(State::Established), 6);
    }

    #[test]
    fn datastore_gauges_are_shared_between_clones() {
        let g = DatastoreGauges::new();
        let h = g.clone();
        h.set_synced(true);
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(100);
        h.set_last_sync(t);
        let s = g.state();
        assert!(s.synced);
        assert_eq!(s.last_sync, Some(t));
    }
}
