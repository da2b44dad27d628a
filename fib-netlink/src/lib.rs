//! # fib-netlink — Tern's routes in the kernel
//!
//! **Owns:** programming kernel routes over rtnetlink (unicast, `onlink`, ECMP multipath,
//! blackhole/unreachable/prohibit; IPv4 and IPv6; batched), reconciling the kernel with the
//! desired set, restoring routes someone else changed, and learning routes of other
//! protocols, interface addresses and links as events.
//!
//! **Must not know:** BGP or Calico. It speaks of prefixes, next hops, devices, tables,
//! metrics and protocols only.
//!
//! ## Layers
//! - [`route`]: the model — [`Route`], [`NextHop`], [`RouteKind`], [`RouteKey`].
//! - [`RouteSocket`]: blocking, batched writer (many requests per `sendmsg`, failures
//!   matched to their request by sequence number) and dumps. Usable alone (the bench does).
//! - [`FibState`]: the sans-IO core — desired vs kernel state, the coalescing queue,
//!   restore decisions (with back-off when another writer keeps fighting), flap
//!   [`Damping`] of kernel writes, learning and connected prefixes; time comes in through
//!   `handle_timeout`, held writes go out through `poll_timeout`; unit-tested without a
//!   kernel, with virtual time.
//! - [`Fib`]/[`FibHandle`]: the tokio driver — reconcile on start (optionally after a
//!   graceful-restart "converged" signal), an event-driven monitor of routes, links and
//!   addresses, one full resync on `ENOBUFS`, retries when devices appear, timers for held
//!   writes.
//!
//! ## Use
//! ```no_run
//! use fib_netlink::{Fib, FibConfig, FibEvent, NextHop, Route};
//!
//! # async fn demo() -> std::io::Result<()> {
//! let (fib, handle, mut events) = Fib::new(FibConfig::default())?;
//! tokio::spawn(fib.run());
//! // A peer's block over IPIP, and our own block as a blackhole (both `proto bird`).
//! let peer = "192.0.2.7".parse().expect("address");
//! handle.set(Route::unicast("10.65.1.0/26".parse().expect("prefix"), vec![NextHop::onlink(peer, "tunl0")]));
//! handle.set(Route::blackhole("10.65.0.0/26".parse().expect("prefix")));
//! handle.converged(); // the desired set is complete: stale routes of ours may go
//! while let Some(event) = events.recv().await {
//!     if let FibEvent::LearnedAdded(route) = event {
//!         println!("learned {route}");
//!     }
//! }
//! # Ok(())
//! # }
//! ```

#![forbid(unsafe_code)]

mod codec;
mod fib;
mod glob;
pub mod route;
mod socket;
mod state;

pub use codec::{Address, EncodeError, Link, ReportedRoute};
pub use fib::{Fib, FibConfig, FibHandle, Reconcile};
pub use glob::{InterfacePattern, InterfacePatterns, PatternError, glob_match};
pub use route::{Device, NextHop, Route, RouteKey, RouteKind};
pub use socket::{DEFAULT_BATCH_BYTES, RouteError, RouteOp, RouteSocket};
pub use state::{Connected, Damping, FibEvent, FibState, KeyQueue, StateConfig, diff, same_route};
