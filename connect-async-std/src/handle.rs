//! The user's handle on a running worker. Its waits are futures that work
//! on any executor; compose them with your executor's timeout.

use std::sync::Arc;

use connect_adapter::session::Input;
use connect_adapter::{WorkerError, is_ready_or_closed, ready_result};
use connect_core::worker::ConnectionState;

use crate::pump::Shared;

/// A running worker. Dropping it does not stop the worker; call
/// [`shutdown`](WorkerHandle::shutdown) and await [`closed`](WorkerHandle::closed).
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

    /// Wait until a connection is ACTIVE.
    pub async fn ready(&self) -> Result<(), WorkerError> {
        let state = self.shared.state.wait_for_async(is_ready_or_closed).await;
        ready_result(state, self.fatal_error())
    }

    /// Start a graceful shutdown: pause, wait for in-flight handlers (bounded
    /// by the shutdown timeout), flush replies, close. Idempotent; returns at once.
    pub fn shutdown(&self) {
        self.shared.session.request_shutdown();
        self.shared.send(Input::Shutdown);
    }

    /// Wait until the worker is CLOSED. `Err` if it stopped for a fatal error.
    pub async fn closed(&self) -> Result<(), WorkerError> {
        self.shared.state.wait_for_async(|s| s == ConnectionState::Closed).await;
        self.fatal_error().map_or(Ok(()), |e| Err(WorkerError::Fatal(e)))
    }

    /// Test hook: make the connection thread panic, to exercise the supervisor.
    #[doc(hidden)]
    pub fn inject_connection_panic(&self) {
        self.shared.send(Input::Panic);
    }
}
