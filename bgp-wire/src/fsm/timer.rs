//! Timers as values: a deadline or nothing. The state machine never reads a clock; every
//! input carries `now`, and [`Session::poll_timeout`](super::Session::poll_timeout) tells the
//! driver when to call back.

use std::time::{Duration, Instant};

/// One of the RFC 4271 §8 timers (ConnectRetry, Hold, Keepalive, DelayOpen, IdleHold).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Timer {
    deadline: Option<Instant>,
}

impl Timer {
    /// (Re)starts the timer to fire `after` from `now`.
    pub fn start(&mut self, now: Instant, after: Duration) {
        self.deadline = Some(now + after);
    }

    /// Stops the timer; a stopped timer never fires.
    pub fn stop(&mut self) {
        self.deadline = None;
    }

    /// Whether the timer is running.
    pub fn is_running(&self) -> bool {
        self.deadline.is_some()
    }

    /// When it fires, if running.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// If the deadline has passed at `now`, stops the timer and returns true (fires once).
    pub fn fire(&mut self, now: Instant) -> bool {
        match self.deadline {
            Some(at) if at <= now => {
                self.deadline = None;
                true
            }
            _ => false,
        }
    }
}

/// The earliest of several optional deadlines.
pub(crate) fn earliest(deadlines: impl IntoIterator<Item = Option<Instant>>) -> Option<Instant> {
    deadlines.into_iter().flatten().min()
}
