//! The builder: functions, settings, the handler pool, and the start of the
//! connection thread.

use std::sync::Arc;

use connect_adapter::session::{Carry, Session};
use connect_adapter::{BuildError, Ctx, Function, HandlerResult, HttpClient, Settings, StateWatch};

use crate::handle::WorkerHandle;
use crate::pool::Pool;
use crate::pump::{self, Handler, Mailbox, Shared};

/// Entry point: `Worker::builder("my-app")`.
#[derive(Debug)]
pub struct Worker;

impl Worker {
    pub fn builder(app_id: impl Into<String>) -> Builder {
        Builder { settings: Settings::new(app_id), functions: Vec::new(), threads: None }
    }
}

/// Settings and functions of a worker. Values set here win over Inngest's
/// environment variables (`INNGEST_SIGNING_KEY`, `INNGEST_ENV`, ...), which
/// win over the defaults.
pub struct Builder {
    settings: Settings,
    functions: Vec<(Function, Handler)>,
    threads: Option<usize>,
}

impl std::fmt::Debug for Builder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Builder")
            .field("settings", &self.settings)
            .field("functions", &self.functions.iter().map(|(f, _)| f.id()).collect::<Vec<_>>())
            .field("threads", &self.threads)
            .finish()
    }
}

impl Builder {
    /// Register a function and its handler, a plain closure run on the
    /// handler pool. It may block or spin as long as it likes.
    pub fn function<F>(mut self, function: Function, handler: F) -> Self
    where
        F: Fn(Ctx) -> HandlerResult + Send + Sync + 'static,
    {
        self.functions.push((function, Arc::new(handler)));
        self
    }

    /// Threads in the handler pool (default: the available cores). More
    /// requests than this wait in the pool's queue, their leases extended.
    pub fn threads(mut self, n: usize) -> Self {
        self.threads = Some(n.max(1));
        self
    }

    connect_adapter::builder_settings!();

    /// Start the worker: the handler pool and the connection thread. Returns
    /// at once; [`WorkerHandle::ready`] waits for the first ACTIVE connection.
    pub fn connect(mut self) -> Result<WorkerHandle, BuildError> {
        let (config, handlers) = self.settings.resolve(std::mem::take(&mut self.functions))?;
        let threads = self
            .threads
            .unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2));
        let span = self.settings.span(&config);
        tracing::info!(parent: &span, api = %config.api_base_url, seed = config.seed, threads, "starting worker");
        let dispatch = tracing::dispatcher::get_default(|d| d.clone());
        let pool =
            Pool::start(threads, &format!("connect-{}-handler", self.settings.options.app_id), &dispatch)
                .map_err(|e| BuildError::Config(format!("could not start the handler pool: {e}")))?;
        let state = Arc::new(StateWatch::default());
        let on_state = state.clone();
        let session = Session::new(config, handlers, span, move |s| on_state.set(s));
        let (mailbox, inbox) = Mailbox::new();
        let shared = Arc::new(Shared {
            session,
            mailbox,
            pool,
            http: HttpClient::new(),
            state,
            signals: Default::default(),
        });
        let (body, fatal) = (shared.clone(), shared.clone());
        let started = self.settings.start_supervised(
            &shared.session.config,
            shared.session.health.clone(),
            Carry::new(inbox),
            move |carry| pump::run_incarnation(&body, carry),
            move |msg| {
                fatal.session.set_fatal(msg);
                fatal.finish();
            },
        );
        if let Err(e) = started {
            shared.finish();
            return Err(e);
        }
        let handle = WorkerHandle { shared };
        if self.settings.handle_signals {
            let on_signal = handle.clone();
            match connect_adapter::on_shutdown_signal(move || on_signal.shutdown()) {
                Ok(listener) => {
                    *handle.shared.signals.lock().unwrap_or_else(|p| p.into_inner()) = Some(listener)
                }
                Err(e) => tracing::warn!("cannot listen for SIGINT/SIGTERM: {e}"),
            }
            // Closed already (a fatal error at once)? Then `finish` ran before the listener was stored.
            if handle.state() == connect_core::worker::ConnectionState::Closed {
                handle.shared.finish();
            }
        }
        Ok(handle)
    }
}
