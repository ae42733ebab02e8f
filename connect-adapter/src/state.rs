//! The connection state as the user's handle sees it, waitable from plain
//! threads (with a timeout) and from async code on any executor.
//!
//! connect-blocking and connect-async-std share this; connect-tokio uses a
//! `tokio::sync::watch` instead. The connection thread only ever calls
//! [`StateWatch::set`], which never blocks for longer than a mutex hand-off.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use connect_core::worker::ConnectionState;
use event_listener::{Event, Listener};

/// Why a worker stopped, or did not get where a wait wanted it to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WorkerError {
    /// An error that cannot heal (rejected signing key, rejected sync,
    /// endless connection-thread crashes).
    #[error("worker stopped: {0}")]
    Fatal(String),
    /// The worker closed (after a shutdown) before it became ready.
    #[error("worker closed before it became ready")]
    Closed,
    /// A bounded wait ran out; the worker goes on.
    #[error("timed out after {0:?}")]
    TimedOut(Duration),
}

/// The latest [`ConnectionState`], with waiters.
#[derive(Debug)]
pub struct StateWatch {
    state: Mutex<ConnectionState>,
    changed: Event,
}

impl Default for StateWatch {
    fn default() -> Self {
        StateWatch { state: Mutex::new(ConnectionState::Connecting), changed: Event::new() }
    }
}

impl StateWatch {
    pub fn get(&self) -> ConnectionState {
        *self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Publish a new state and wake every waiter.
    pub fn set(&self, state: ConnectionState) {
        *self.state.lock().unwrap_or_else(|p| p.into_inner()) = state;
        self.changed.notify(usize::MAX);
    }

    /// Block until `pred` holds (returns that state) or `timeout` passes (`None`).
    pub fn wait_for(
        &self,
        mut pred: impl FnMut(ConnectionState) -> bool,
        timeout: Duration,
    ) -> Option<ConnectionState> {
        let deadline = Instant::now().checked_add(timeout);
        loop {
            // Listen before checking, so a change between the two is not missed.
            let listener = self.changed.listen();
            let state = self.get();
            if pred(state) {
                return Some(state);
            }
            match deadline {
                Some(d) => listener.wait_deadline(d)?,
                None => listener.wait(),
            }
        }
    }

    /// Resolve once `pred` holds.
    pub async fn wait_for_async(&self, mut pred: impl FnMut(ConnectionState) -> bool) -> ConnectionState {
        loop {
            let listener = self.changed.listen();
            let state = self.get();
            if pred(state) {
                return state;
            }
            listener.await;
        }
    }
}

/// The result of waiting for READY, given the state the wait ended in.
pub fn ready_result(state: ConnectionState, fatal: Option<String>) -> Result<(), WorkerError> {
    match (state, fatal) {
        (ConnectionState::Active, _) => Ok(()),
        (_, Some(e)) => Err(WorkerError::Fatal(e)),
        _ => Err(WorkerError::Closed),
    }
}

/// Whether a wait for READY can stop: ACTIVE, or closed for good.
pub fn is_ready_or_closed(state: ConnectionState) -> bool {
    matches!(state, ConnectionState::Active | ConnectionState::Closed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn a_waiting_thread_sees_the_change_and_a_timeout_is_none() {
        let w = Arc::new(StateWatch::default());
        assert_eq!(w.wait_for(|s| s == ConnectionState::Active, Duration::from_millis(1)), None);
        let setter = {
            let w = w.clone();
            std::thread::spawn(move || w.set(ConnectionState::Active))
        };
        let got = w.wait_for(|s| s == ConnectionState::Active, Duration::from_secs(30));
        setter.join().expect("joins");
        assert_eq!(got, Some(ConnectionState::Active));
    }

    #[test]
    fn an_async_wait_resolves_at_once_when_the_state_already_holds() {
        let w = StateWatch::default();
        w.set(ConnectionState::Closed);
        let fut = w.wait_for_async(|s| s == ConnectionState::Closed);
        assert_eq!(futures_util::FutureExt::now_or_never(fut), Some(ConnectionState::Closed));
    }
}
