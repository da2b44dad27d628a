//! The `etcdv3` datastore (contract §5.2).
//!
//! Keys read, in one consistent range read of `/calico/`:
//! * `/calico/resources/v3/projectcalico.org/<plural>/<name>`: v3 resources as JSON
//!   (`bgpconfigurations`, `bgppeers`, `bgpfilters`, `ippools`, `nodes`, `caliconodestatuses`);
//! * `/calico/ipam/v2/host/<node>/ipv4|ipv6/block/<a.b.c.d-len>`: block affinities, value
//!   `{"state": …}` (empty or `{}` = implicitly confirmed).
//!
//! After the snapshot, a prefix watch starts at the snapshot revision + 1; each watch response is
//! applied as a whole (one etcd revision batch), so every published snapshot is consistent. When
//! the watch start revision has been compacted away, or the watch is cancelled, a fresh snapshot
//! is taken instead.
//!
//! How to reach etcd is an [`EtcdConfig`]: calico-node's `ETCD_ENDPOINTS`, `ETCD_CA_CERT_FILE`,
//! `ETCD_CERT_FILE`, `ETCD_KEY_FILE`, `ETCD_USERNAME` and `ETCD_PASSWORD` (libcalico-go's
//! etcdv3 client settings). A client that failed is dropped and the next call connects afresh,
//! so a datastore that comes back is followed again without the caller doing anything.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use etcd_client::{
    Certificate, Client, ConnectOptions, EventType, GetOptions, Identity, TlsOptions, WatchOptions,
    WatchStream,
};
use serde_json::{Value, json};

use super::{Datastore, DatastoreError, Snapshot};
use crate::model::Model;

/// Everything under this prefix is read.
const ROOT: &str = "/calico/";
const V3: &str = "/calico/resources/v3/projectcalico.org/";
const AFFINITY: &str = "/calico/ipam/v2/host/";

/// How to reach an etcd cluster, as calico-node is told (libcalico-go `EtcdConfig`):
///
/// * `endpoints` — `ETCD_ENDPOINTS`, comma-separated `http://` or `https://` URLs;
/// * `ca_cert_file` — `ETCD_CA_CERT_FILE`: the CA that signed the servers' certificates
///   (without it, `https://` endpoints are checked against the system's trusted roots);
/// * `cert_file` + `key_file` — `ETCD_CERT_FILE`, `ETCD_KEY_FILE`: a client certificate for
///   etcd's `--client-cert-auth` (both or neither);
/// * `username` + `password` — `ETCD_USERNAME`, `ETCD_PASSWORD`: etcd's own authentication,
///   used only when both are set (as Calico does).
///
/// As in Calico, the TLS settings apply to `https://` endpoints; `http://` endpoints stay plain
/// (TLS files given with only `http://` endpoints are reported by [`EtcdConfig::warnings`]).
/// `Debug` never shows the password; key material is read only when connecting and never
/// appears in an error.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct EtcdConfig {
    /// `ETCD_ENDPOINTS`.
    pub endpoints: Vec<String>,
    /// `ETCD_CA_CERT_FILE`.
    pub ca_cert_file: Option<PathBuf>,
    /// `ETCD_CERT_FILE`.
    pub cert_file: Option<PathBuf>,
    /// `ETCD_KEY_FILE`.
    pub key_file: Option<PathBuf>,
    /// `ETCD_USERNAME`.
    pub username: Option<String>,
    /// `ETCD_PASSWORD`.
    pub password: Option<String>,
}

impl std::fmt::Debug for EtcdConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdConfig")
            .field("endpoints", &self.endpoints)
            .field("ca_cert_file", &self.ca_cert_file)
            .field("cert_file", &self.cert_file)
            .field("key_file", &self.key_file)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// `endpoint` with any `userinfo@` of its authority replaced by `***@`, so that credentials
/// written into an endpoint URL never reach a log line or an error.
fn redact_userinfo(endpoint: &str) -> String {
    let (scheme, rest) = match endpoint.find("://") {
        Some(i) => endpoint.split_at(i + 3),
        None => ("", endpoint),
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}***{}", &rest[at..]),
        None => endpoint.to_string(),
    }
}

/// Reads one PEM file named by `var`; the error names the variable and the path, never the
/// contents.
fn read_pem(var: &str, path: &Path, label: &str) -> Result<Vec<u8>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{var} {}: {e}", path.display()))?;
    let text = String::from_utf8_lossy(&bytes);
    if !text.contains("-----BEGIN ") || !text.contains(label) {
        return Err(format!(
            "{var} {}: no PEM {} in the file",
            path.display(),
            label.trim_matches('-').trim()
        ));
    }
    Ok(bytes)
}

impl EtcdConfig {
    /// Plain endpoints, no TLS, no authentication.
    pub fn new(endpoints: Vec<String>) -> EtcdConfig {
        EtcdConfig {
            endpoints,
            ..EtcdConfig::default()
        }
    }

    /// Whether the endpoints are reached over TLS (any `https://` endpoint).
    pub fn uses_tls(&self) -> bool {
        self.endpoints.iter().any(|e| e.starts_with("https://"))
    }

    /// "etcd <endpoints>", for errors and logs (no credentials: a `user:password@` inside an
    /// endpoint URL is shown as `***@`).
    pub fn describe(&self) -> String {
        let shown: Vec<String> = self.endpoints.iter().map(|e| redact_userinfo(e)).collect();
        format!("etcd {}", shown.join(","))
    }

    /// Settings that are accepted but have no effect (logged by the daemon).
    pub fn warnings(&self) -> Vec<String> {
        let mut w = Vec::new();
        let files: Vec<&str> = [
            ("ETCD_CA_CERT_FILE", &self.ca_cert_file),
            ("ETCD_CERT_FILE", &self.cert_file),
            ("ETCD_KEY_FILE", &self.key_file),
        ]
        .into_iter()
        .filter(|(_, f)| f.is_some())
        .map(|(n, _)| n)
        .collect();
        if !files.is_empty() && !self.uses_tls() {
            w.push(format!(
                "{} set but no endpoint is https://: connecting without TLS",
                files.join(", ")
            ));
        }
        if self.username.is_some() != self.password.is_some() {
            w.push(
                "only one of ETCD_USERNAME and ETCD_PASSWORD is set: connecting without \
                 etcd authentication"
                    .into(),
            );
        }
        w
    }

    /// The client options: timeouts, TLS (CA, client certificate) and authentication.
    /// Reads the certificate files now; a missing or unreadable file, a certificate without
    /// its key, or `http://` and `https://` endpoints mixed are errors.
    pub fn connect_options(&self) -> Result<ConnectOptions, DatastoreError> {
        let fail = |m: String| DatastoreError::Remote {
            what: self.describe(),
            message: m,
        };
        if self.endpoints.is_empty() {
            return Err(fail("no endpoints (ETCD_ENDPOINTS is empty)".into()));
        }
        let mut opts = ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(5))
            .with_timeout(Duration::from_secs(10))
            .with_keep_alive(Duration::from_secs(30), Duration::from_secs(10));
        if let (Some(u), Some(p)) = (&self.username, &self.password) {
            opts = opts.with_user(u.clone(), p.clone());
        }
        if !self.uses_tls() {
            return Ok(opts);
        }
        if let Some(plain) = self.endpoints.iter().find(|e| !e.starts_with("https://")) {
            let plain = redact_userinfo(plain);
            return Err(fail(format!(
                "{plain}: every endpoint must be https:// when one is (TLS settings apply to all)"
            )));
        }
        let mut tls = TlsOptions::new();
        match &self.ca_cert_file {
            Some(ca) => {
                let pem = read_pem("ETCD_CA_CERT_FILE", ca, "CERTIFICATE-----").map_err(fail)?;
                tls = tls.ca_certificate(Certificate::from_pem(pem));
            }
            None => tls = tls.with_native_roots(),
        }
        match (&self.cert_file, &self.key_file) {
            (Some(cert), Some(key)) => {
                let cert = read_pem("ETCD_CERT_FILE", cert, "CERTIFICATE-----").map_err(fail)?;
                let key = read_pem("ETCD_KEY_FILE", key, "PRIVATE KEY-----").map_err(fail)?;
                tls = tls.identity(Identity::from_pem(cert, key));
            }
            (None, None) => {}
            _ => {
                return Err(fail(
                    "ETCD_CERT_FILE and ETCD_KEY_FILE must be given together".into(),
                ));
            }
        }
        Ok(opts.with_tls(tls))
    }

    /// Connects (the channel is lazy: an unreachable or misconfigured server shows on the
    /// first request).
    pub async fn connect(&self) -> Result<Client, DatastoreError> {
        let opts = self.connect_options()?;
        Client::connect(self.endpoints.clone(), Some(opts))
            .await
            .map_err(|e| err(self, &e))
    }
}

/// The text of an etcd client error with its causes (a TLS failure's reason sits several
/// sources deep), plus a hint for the usual TLS mistakes.
pub fn error_text(e: &etcd_client::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let t = s.to_string();
        if !text.contains(&t) {
            text.push_str(": ");
            text.push_str(&t);
        }
        source = s.source();
    }
    let lower = text.to_ascii_lowercase();
    if lower.contains("unknownissuer") || lower.contains("unknown issuer") {
        text.push_str(" (the server's certificate is not signed by ETCD_CA_CERT_FILE's CA)");
    } else if lower.contains("certificaterequired")
        || lower.contains("certificate required")
        || lower.contains("badcertificate")
    {
        text.push_str(
            " (the server refused the client certificate, or wants one: check ETCD_CERT_FILE and ETCD_KEY_FILE)",
        );
    } else if lower.contains("notvalidforname") || lower.contains("not valid for name") {
        text.push_str(" (the server's certificate does not name this endpoint's host)");
    }
    text
}

/// An etcd v3 cluster.
pub struct EtcdDatastore {
    config: EtcdConfig,
    runtime: tokio::runtime::Runtime,
    client: Option<Client>,
    kv: BTreeMap<String, String>,
    etcd_revision: i64,
    revision: u64,
    watch: Option<WatchStream>,
}

fn err(config: &EtcdConfig, e: &etcd_client::Error) -> DatastoreError {
    let mut message = error_text(e);
    // With TLS 1.3 a server that wants a client certificate may close the connection without
    // the client seeing its alert; without one configured, that is the likely cause.
    if config.uses_tls() && config.cert_file.is_none() && !message.contains("ETCD_") {
        let lower = message.to_ascii_lowercase();
        if [
            "connection closed",
            "canceled",
            "cancelled",
            "reset",
            "broken pipe",
        ]
        .iter()
        .any(|w| lower.contains(w))
        {
            message.push_str(
                " (no client certificate is configured and the server closed the connection: \
                 if it wants one, set ETCD_CERT_FILE and ETCD_KEY_FILE)",
            );
        }
    }
    // The client's own error text may quote an endpoint URL.
    for e in &config.endpoints {
        let shown = redact_userinfo(e);
        if shown != *e {
            message = message.replace(e.as_str(), &shown);
        }
    }
    DatastoreError::Remote {
        what: config.describe(),
        message,
    }
}

impl EtcdDatastore {
    /// A datastore for these plain endpoints (`http://host:port`, as in `ETCD_ENDPOINTS`).
    pub fn new(endpoints: Vec<String>) -> Result<EtcdDatastore, DatastoreError> {
        EtcdDatastore::with_config(EtcdConfig::new(endpoints))
    }

    /// A datastore reached as `config` says (TLS, client certificate, authentication). The
    /// settings are checked now (files readable, certificate with its key); nothing is
    /// connected until the first snapshot.
    pub fn with_config(config: EtcdConfig) -> Result<EtcdDatastore, DatastoreError> {
        config.connect_options()?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| DatastoreError::Remote {
                what: config.describe(),
                message: e.to_string(),
            })?;
        Ok(EtcdDatastore {
            config,
            runtime,
            client: None,
            kv: BTreeMap::new(),
            etcd_revision: 0,
            revision: 0,
            watch: None,
        })
    }

    fn client(&mut self) -> Result<Client, DatastoreError> {
        if let Some(c) = &self.client {
            return Ok(c.clone());
        }
        let c = self.runtime.block_on(self.config.connect())?;
        self.client = Some(c.clone());
        Ok(c)
    }

    /// Forgets the client and the watch after a failure: the next call connects afresh.
    fn failed(&mut self, e: &etcd_client::Error) -> DatastoreError {
        self.client = None;
        self.watch = None;
        err(&self.config, e)
    }

    fn publish(&mut self) -> Snapshot {
        let docs = self
            .kv
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), key_to_doc(k, v)?)));
        let (model, problems) = Model::from_documents(docs);
        self.revision += 1;
        Snapshot {
            model,
            problems,
            revision: self.revision,
        }
    }

    /// The etcd revision of the last snapshot.
    pub fn etcd_revision(&self) -> i64 {
        self.etcd_revision
    }
}

/// Map one etcd key and value to a resource document (`None` for keys Tern does not read).
pub fn key_to_doc(key: &str, value: &str) -> Option<Value> {
    if let Some(rest) = key.strip_prefix(V3) {
        let (plural, name) = rest.split_once('/')?;
        let kind = match plural {
            "bgpconfigurations" => "BGPConfiguration",
            "bgppeers" => "BGPPeer",
            "bgpfilters" => "BGPFilter",
            "ippools" => "IPPool",
            "nodes" => "Node",
            "caliconodestatuses" => "CalicoNodeStatus",
            _ => return None,
        };
        let mut v: Value =
            serde_json::from_str(value).unwrap_or_else(|_| json!({"invalid JSON": value}));
        if let Value::Object(o) = &mut v {
            o.entry("kind")
                .or_insert_with(|| Value::String(kind.into()));
            o.entry("apiVersion")
                .or_insert_with(|| Value::String("projectcalico.org/v3".into()));
            let meta = o.entry("metadata").or_insert_with(|| json!({}));
            if let Value::Object(m) = meta {
                m.entry("name")
                    .or_insert_with(|| Value::String(name.into()));
            }
        }
        return Some(v);
    }
    let rest = key.strip_prefix(AFFINITY)?;
    // <node>/ipv4/block/<cidr-with-dash>
    let parts: Vec<&str> = rest.split('/').collect();
    let [node, family, "block", cidr] = parts.as_slice() else {
        return None;
    };
    if !matches!(*family, "ipv4" | "ipv6") {
        return None;
    }
    let (addr, len) = cidr.rsplit_once('-')?;
    let state = serde_json::from_str::<Value>(value)
        .ok()
        .and_then(|v| v.get("state").and_then(Value::as_str).map(str::to_string))
        .unwrap_or_default();
    Some(json!({
        "apiVersion": "projectcalico.org/v3",
        "kind": "BlockAffinity",
        "metadata": {"name": format!("{node}-{}", cidr.replace([':', '.'], "-"))},
        "spec": {"node": node, "cidr": format!("{addr}/{len}"), "state": state},
    }))
}

impl Datastore for EtcdDatastore {
    fn snapshot(&mut self) -> Result<Snapshot, DatastoreError> {
        let mut client = self.client()?;
        let resp = match self
            .runtime
            .block_on(client.get(ROOT, Some(GetOptions::new().with_prefix())))
        {
            Ok(r) => r,
            Err(e) => return Err(self.failed(&e)),
        };
        self.etcd_revision = resp.header().map_or(0, |h| h.revision());
        self.kv = resp
            .kvs()
            .iter()
            .filter_map(|kv| {
                Some((
                    kv.key_str().ok()?.to_string(),
                    kv.value_str().ok()?.to_string(),
                ))
            })
            .filter(|(k, _)| k.starts_with(V3) || k.starts_with(AFFINITY))
            .collect();
        self.watch = None;
        Ok(self.publish())
    }

    fn next_change(&mut self, timeout: Duration) -> Result<Option<Snapshot>, DatastoreError> {
        if self.watch.is_none() {
            let mut client = self.client()?;
            let opts = WatchOptions::new()
                .with_prefix()
                .with_start_revision(self.etcd_revision + 1);
            match self.runtime.block_on(client.watch(ROOT, Some(opts))) {
                Ok(w) => self.watch = Some(w),
                Err(e) => return Err(self.failed(&e)),
            }
        }
        let deadline = std::time::Instant::now() + timeout;
        let msg = loop {
            let Some(stream) = self.watch.as_mut() else {
                return Ok(None);
            };
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let msg = match self
                .runtime
                .block_on(async { tokio::time::timeout(left, stream.message()).await })
            {
                Err(_) => return Ok(None),
                Ok(Err(e)) => return Err(self.failed(&e)),
                Ok(Ok(None)) => {
                    self.client = None;
                    self.watch = None;
                    return Err(DatastoreError::Remote {
                        what: self.config.describe(),
                        message: "watch closed by the server".into(),
                    });
                }
                Ok(Ok(Some(m))) => m,
            };
            if msg.compact_revision() > 0 || msg.canceled() {
                // Our start revision is gone: start again from a fresh snapshot.
                return self.snapshot().map(Some);
            }
            // Skip the creation acknowledgement and progress notifications.
            if !msg.events().is_empty() {
                break msg;
            }
        };
        for ev in msg.events() {
            let Some(kv) = ev.kv() else { continue };
            let Ok(key) = kv.key_str() else { continue };
            if !(key.starts_with(V3) || key.starts_with(AFFINITY)) {
                continue;
            }
            match ev.event_type() {
                EventType::Put => {
                    if let Ok(v) = kv.value_str() {
                        self.kv.insert(key.to_string(), v.to_string());
                    }
                }
                EventType::Delete => {
                    self.kv.remove(key);
                }
            }
            self.etcd_revision = self.etcd_revision.max(kv.mod_revision());
        }
        if let Some(h) = msg.header() {
            self.etcd_revision = self.etcd_revision.max(h.revision());
        }
        Ok(Some(self.publish()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_credentials_never_shown() {
        assert_eq!(
            redact_userinfo("https://calico:s3cret@etcd-1:2379"),
            "https://***@etcd-1:2379"
        );
        assert_eq!(
            redact_userinfo("http://u:p@[fd00::1]:2379/x@y"),
            "http://***@[fd00::1]:2379/x@y"
        );
        assert_eq!(redact_userinfo("http://etcd:2379"), "http://etcd:2379");
        assert_eq!(redact_userinfo("etcd:2379/a@b"), "etcd:2379/a@b");
        let c = EtcdConfig::new(vec![
            "https://calico:s3cret@etcd-1:2379".into(),
            "http://u:pw@etcd-2:2379".into(),
        ]);
        assert_eq!(
            c.describe(),
            "etcd https://***@etcd-1:2379,http://***@etcd-2:2379"
        );
        let e = c
            .connect_options()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("http://***@etcd-2:2379"), "{e}");
        assert!(!e.contains("s3cret") && !e.contains("pw@"), "{e}");
    }

    #[test]
    fn keys_map_to_resources() {
        let v = key_to_doc(
            "/calico/resources/v3/projectcalico.org/bgppeers/p1",
            r#"{"spec":{"peerIP":"10.0.0.1"}}"#,
        )
        .unwrap();
        assert_eq!(v["kind"], "BGPPeer");
        assert_eq!(v["metadata"]["name"], "p1");
        let a = key_to_doc(
            "/calico/ipam/v2/host/kube-master/ipv4/block/10.0.0.0-30",
            "",
        )
        .unwrap();
        assert_eq!(a["spec"]["cidr"], "10.0.0.0/30");
        assert_eq!(a["spec"]["state"], "");
        let a = key_to_doc(
            "/calico/ipam/v2/host/n/ipv6/block/fd00::-122",
            r#"{"state":"confirmed"}"#,
        )
        .unwrap();
        assert_eq!(a["spec"]["cidr"], "fd00::/122");
        assert_eq!(a["spec"]["state"], "confirmed");
        assert!(key_to_doc("/calico/ipam/v2/assignment/ipv4/block/10.0.0.0-26", "{}").is_none());
        assert!(
            key_to_doc(
                "/calico/resources/v3/projectcalico.org/networkpolicies/x",
                "{}"
            )
            .is_none()
        );
    }
}
