//! The builder: functions, settings, and the start of the connection thread.

use std::future::Future;
use std::sync::Arc;

use connect_adapter::session::{Carry, Session};
use connect_adapter::{BuildError, Ctx, Function, HandlerResult, HttpClient, Settings};
use connect_core::worker::ConnectionState;
use tokio::sync::{mpsc, watch};

use crate::handle::WorkerHandle;
use crate::pump::{self, Handler, Shared};

/// Entry point: `Worker::builder("my-app")`.
#[derive(Debug)]
pub struct Worker;

impl Worker {
    pub fn builder(app_id: impl Into<String>) -> Builder {
        Builder { settings: Settings::new(app_id), functions: Vec::new(), same_runtime: false }
    }
}

/// Settings and functions of a worker. Values set here win over Inngest's
/// environment variables (`INNGEST_SIGNING_KEY`, `INNGEST_ENV`, ...), which
/// win over the defaults. The setters shared with the other adapters come
/// from `connect_adapter::builder_settings!` (listed below with the rest).
pub struct Builder {
    settings: Settings,
    functions: Vec<(Function, Handler)>,
    same_runtime: bool,
}

impl std::fmt::Debug for Builder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Builder")
            .field("settings", &self.settings)
            .field("functions", &self.functions.iter().map(|(f, _)| f.id()).collect::<Vec<_>>())
            .field("same_runtime", &self.same_runtime)
            .finish()
    }
}

impl Builder {
    /// Register a function and its async handler. The handler runs on the
    /// runtime `connect()` is awaited on.
    pub fn function<F, Fut>(mut self, function: Function, handler: F) -> Self
    where
        F: Fn(Ctx) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = HandlerResult> + Send + 'static,
    {
        let handler: Handler = Arc::new(move |ctx| Box::pin(handler(ctx)));
        self.functions.push((function, handler));
        self
    }

    /// Run the connection as a task on the caller's runtime instead of its own
    /// thread. For comparison only: CPU-heavy handlers then delay heartbeats.
    pub fn same_runtime(mut self, on: bool) -> Self {
        self.same_runtime = on;
        self
    }

    connect_adapter::builder_settings!();

    /// Start the worker. Returns once the connection thread is running; await
    /// [`WorkerHandle::ready`] for the first ACTIVE connection.
    ///
    /// Must be called from within a tokio runtime: handlers are spawned on it.
    pub async fn connect(mut self) -> Result<WorkerHandle, BuildError> {
        let (config, handlers) = self.settings.resolve(std::mem::take(&mut self.functions))?;
        let user_rt = tokio::runtime::Handle::try_current()
            .map_err(|_| BuildError::Config("connect() must run inside a tokio runtime".into()))?;
        let (state_tx, state_rx) = watch::channel(ConnectionState::Connecting);
        let (inbox_tx, inbox) = mpsc::unbounded_channel();
        let span = self.settings.span(&config);
        tracing::info!(parent: &span, api = %config.api_base_url, seed = config.seed, same_runtime = self.same_runtime, "starting worker");
        let session = Session::new(config, handlers, span, move |state| {
            state_tx.send_replace(state);
        });
        let shared =
            Arc::new(Shared { session, user_rt, inbox_tx: inbox_tx.clone(), http: HttpClient::new() });
        let carry = Carry::new(inbox);
        if self.same_runtime {
            let shared2 = shared.clone();
            tokio::spawn(async move {
                let mut carry = carry;
                if let Some(mut machine) = shared2.session.new_machine(&mut carry.durable) {
                    pump::pump(&shared2, &mut machine, &mut carry).await;
                    shared2.session.report_closed();
                }
            });
        } else {
            let (body, fatal) = (shared.clone(), shared.clone());
            self.settings.start_supervised(
                &shared.session.config,
                shared.session.health.clone(),
                carry,
                move |carry| pump::run_incarnation(body.clone(), carry),
                move |msg| fatal.session.set_fatal(msg),
            )?;
        }
        let handle = WorkerHandle::new(shared, state_rx, inbox_tx);
        if self.settings.handle_signals {
            handle.shutdown_on_signals();
        }
        Ok(handle)
    }
}
