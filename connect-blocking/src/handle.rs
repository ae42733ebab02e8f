//! The user's handle on a running worker. Every method may be called from
//! any thread; the waits block only the calling thread.

use std::sync::Arc;
use std::time::Duration;

use connect_adapter::session::Input;
use connect_adapter::{WorkerError, is_ready_or_closed, ready_result};
use connect_core::worker::ConnectionState;

use crate::pump::Shared;

/// A running worker. Dropping it does not stop the worker; call
/// [`shutdown`](WorkerHandle::shutdown) and then [`closed`](WorkerHandle::closed).
#[derive(Clone)]
pub struct WorkerHandle {
    pub(crate) shared: Arc<Shared>,
}

impl std::fmt::Debug for WorkerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerHandle").field("state", &self.state()).finish_non_exhaustive()
    }
}

impl WorkerHandle {
    /// The connection state now.
    pub fn state(&self) -> ConnectionState {
        self.shared.state.get()
    }

    /// The fatal error, if the worker stopped for one.
    pub fn fatal_error(&self) -> Option<String> {
        self.shared.session.fatal_error()
    }

    /// How many times the connection thread was restarted after a crash.
    pub fn restarts(&self) -> u64 {
        self.shared.session.health.restarts()
    }

    /// Block until a connection is ACTIVE, at most `timeout`.
    pub fn ready(&self, timeout: Duration) -> Result<(), WorkerError> {
        let state =
            self.shared.state.wait_for(is_ready_or_closed, timeout).ok_or(WorkerError::TimedOut(timeout))?;
        ready_result(state, self.fatal_error())
    }

    /// Start a graceful shutdown: pause, wait for in-flight handlers (bounded
    /// by the shutdown timeout), flush replies, close. Idempotent; returns at once.
    pub fn shutdown(&self) {
        self.shared.session.request_shutdown();
        self.shared.mailbox.send(Input::Shutdown);
    }

    /// Block until the worker is CLOSED, at most `timeout`. `Err` if it
    /// stopped for a fatal error.
    pub fn closed(&self, timeout: Duration) -> Result<(), WorkerError> {
        self.shared
            .state
            .wait_for(|s| s == ConnectionState::Closed, timeout)
            .ok_or(WorkerError::TimedOut(timeout))?;
        self.fatal_error().map_or(Ok(()), |e| Err(WorkerError::Fatal(e)))
    }

    /// Block until the worker is CLOSED (after a shutdown, a signal or a fatal error).
    pub fn wait_closed(&self) -> Result<(), WorkerError> {
        self.closed(Duration::MAX)
    }

    /// Test hook: make the connection thread panic, to exercise the supervisor.
    #[doc(hidden)]
    pub fn inject_connection_panic(&self) {
        self.shared.mailbox.send(Input::Panic);
    }
}
