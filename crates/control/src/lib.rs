//! # tern-control — the BIRD-compatible control socket and `ternc`
//!
//! **Owns:** serving BIRD 1.x's CLI protocol on a Unix socket from a running
//! [`tern_speaker::Speaker`] — the welcome line, 4-digit reply codes with `-`/space
//! continuation, and BIRD 1.6's text for `show status`, `show protocols [all] [NAME]`,
//! `show route [...]`, `show interfaces`, `show memory`, `configure`, `down`,
//! `disable|enable|restart NAME` and BIRD's error replies — exactly enough that `birdc`,
//! `birdcl`, calico-node's readiness and liveness checks, `calicoctl node status` and the
//! CalicoNodeStatus reporter work unchanged (contract §6). Also Tern's extensions (`json
//! <command>`, `watch`, `show peer NAME`, `show config`), the client side ([`client`]) and
//! the `ternc` binary.
//!
//! **Must not know:** Calico's datastores or how the daemon is run: reconfiguration and
//! shutdown are hooks the daemon provides ([`Backend::on_configure`], [`Backend::on_down`]).
//!
//! ## Layers
//! [`command`] parses a line; [`view`] maps the speaker's answers onto BIRD's vocabulary
//! (protocol states, BGP state descriptions, error classes, route sources); [`format`]
//! renders views as BIRD's rows and JSON renders the same views for `json <command>`;
//! [`reply`] frames lines; [`server`] runs the socket.
//!
//! ## Wiring it into a daemon
//! One speaker, two sockets: the IPv4 view on `bird.ctl`, the IPv6 view on `bird6.ctl`.
//! Stop the servers before `Speaker::shutdown` (which needs the only reference).
//!
//! ```
//! use std::sync::Arc;
//! use tern_control::{Backend, ControlOptions, ControlServer, FamilyView};
//! use tern_speaker::{Speaker, SpeakerOptions};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! # let dir = std::env::temp_dir().join(format!("tern-control-doc-{}", std::process::id()));
//! # std::fs::create_dir_all(&dir).unwrap();
//! let speaker = Arc::new(Speaker::new(SpeakerOptions::default()));
//! let backend = Arc::new(
//!     Backend::new(speaker.clone())
//!         // `configure`: re-read the datastore and apply; Ok(source) or Err(message).
//!         .on_configure(|| async { Ok("the datastore".to_string()) })
//!         // `down`: ask the daemon to stop (e.g. notify its shutdown signal).
//!         .on_down(|| async {}),
//! );
//! let v4 = ControlServer::bind(ControlOptions::new(dir.join("bird.ctl"), FamilyView::V4), backend.clone())
//!     .unwrap();
//! let v6 = ControlServer::bind(ControlOptions::new(dir.join("bird6.ctl"), FamilyView::V6), backend.clone())
//!     .unwrap();
//!
//! // Any BIRD client now works; this is the one `ternc` uses.
//! let mut c = tern_control::client::Client::connect(v4.path(), std::time::Duration::from_secs(5))
//!     .await
//!     .unwrap();
//! assert!(c.welcome().starts_with("BIRD v"));
//! let reply = c.command("show status").await.unwrap();
//! assert!(tern_control::client::reply_text(&reply).ends_with("Daemon is up and running\n"));
//!
//! // Shutdown order: sockets first (removes the files), then the speaker.
//! drop(c);
//! v4.shutdown().await;
//! v6.shutdown().await;
//! drop(backend);
//! Arc::try_unwrap(speaker).unwrap().shutdown("bye").await.unwrap();
//! # });
//! ```

#![forbid(unsafe_code)]

pub mod client;
pub mod clock;
pub mod command;
pub mod format;
pub mod iface;
pub mod reply;
pub mod server;
pub mod view;

pub use server::{Backend, ControlError, ControlOptions, ControlServer, Hook, VERSION};
pub use view::FamilyView;

/// Default path of the IPv4 socket (Calico's `bird.ctl`).
pub const DEFAULT_SOCKET: &str = "/var/run/calico/bird.ctl";
/// Default path of the IPv6 socket (Calico's `bird6.ctl`).
pub const DEFAULT_SOCKET_V6: &str = "/var/run/calico/bird6.ctl";
