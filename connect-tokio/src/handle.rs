//! The user's handle on a running worker.

use std::sync::Arc;

use connect_core::worker::ConnectionState;
use tokio::sync::{mpsc, watch};

use crate::pump::{Input, Shared};

pub use connect_adapter::WorkerError;

/// A running worker. Dropping it does not stop the worker; call
/// [`shutdown`](WorkerHandle::shutdown) and await [`closed`](WorkerHandle::closed).
#[derive(Clone)]
pub struct WorkerHandle {
    shared: Arc<Shared>,
    state: watch::Receiver<ConnectionState>,
    inbox: mpsc::UnboundedSender<Input>,
}

impl std::fmt::Debug for WorkerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerHandle").field("state", &self.state()).finish_non_exhaustive()
    }
}

impl WorkerHandle {
    pub(crate) fn new(
        shared: Arc<Shared>,
        state: watch::Receiver<ConnectionState>,
        inbox: mpsc::UnboundedSender<Input>,
    ) -> Self {
        WorkerHandle { shared, state, inbox }
    }

    /// The connection state now.
    pub fn state(&self) -> ConnectionState {
        *self.state.borrow()
    }

    /// Every change of the connection state.
    pub fn state_watch(&self) -> watch::Receiver<ConnectionState> {
        self.state.clone()
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
        let mut rx = self.state.clone();
        let state = *rx
            .wait_for(|s| matches!(s, ConnectionState::Active | ConnectionState::Closed))
            .await
            .map_err(|_| WorkerError::Closed)?;
        match (state, self.fatal_error()) {
            (ConnectionState::Active, _) => Ok(()),
            (_, Some(e)) => Err(WorkerError::Fatal(e)),
            _ => Err(WorkerError::Closed),
        }
    }

    /// Start a graceful shutdown: pause, wait for in-flight handlers (bounded
    /// by the shutdown timeout), flush replies, close. Idempotent.
    pub fn shutdown(&self) {
        self.shared.session.request_shutdown();
        let _ = self.inbox.send(Input::Shutdown);
    }

    /// Wait until the worker is CLOSED. `Err` if it stopped for a fatal error.
    pub async fn closed(&self) -> Result<(), WorkerError> {
        let mut rx = self.state.clone();
        let _ = rx.wait_for(|s| *s == ConnectionState::Closed).await;
        match self.fatal_error() {
            Some(e) => Err(WorkerError::Fatal(e)),
            None => Ok(()),
        }
    }

    /// Shut down on SIGINT or SIGTERM (a second SIGINT quits at once). The
    /// signals are heard on a thread of their own, as in every adapter, so
    /// that handlers keeping every thread of this runtime busy cannot make
    /// Ctrl-C go unheard; a task on the runtime lets that thread go once the
    /// worker is closed (or the runtime goes).
    pub(crate) fn shutdown_on_signals(&self) {
        let on_signal = self.clone();
        match connect_adapter::on_shutdown_signal(move || on_signal.shutdown()) {
            Ok(listener) => {
                let handle = self.clone();
                tokio::spawn(async move {
                    let _ = handle.closed().await;
                    drop(listener);
                });
            }
            Err(e) => tracing::warn!("cannot listen for SIGINT/SIGTERM: {e}"),
        }
    }

    /// Test hook: make the connection thread panic, to exercise the supervisor.
    #[doc(hidden)]
    pub fn inject_connection_panic(&self) {
        let _ = self.inbox.send(Input::Panic);
    }
}
