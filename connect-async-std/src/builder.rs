//! The builder: functions, settings, the spawner, and the start of the
//! connection thread.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use connect_adapter::session::{Carry, Session};
use connect_adapter::{BuildError, Ctx, Function, HandlerResult, HttpClient, Settings, StateWatch};
use connect_core::worker::ConnectionState;

use crate::handle::WorkerHandle;
use crate::pump::{self, Handler, Shared, Spawner};

/// Entry point: `Worker::builder("my-app")`.
#[derive(Debug)]
pub struct Worker;

impl Worker {
    pub fn builder(app_id: impl Into<String>) -> Builder {
        Builder { settings: Settings::new(app_id), functions: Vec::new(), spawner: None }
    }
}

/// Settings and functions of a worker. Values set here win over Inngest's
/// environment variables (`INNGEST_SIGNING_KEY`, `INNGEST_ENV`, ...), which
/// win over the defaults.
pub struct Builder {
    settings: Settings,
    functions: Vec<(Function, Handler)>,
    spawner: Option<Spawner>,
}

impl std::fmt::Debug for Builder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Builder")
            .field("settings", &self.settings)
            .field("functions", &self.functions.iter().map(|(f, _)| f.id()).collect::<Vec<_>>())
            .field("spawner", &self.spawner.is_some())
            .finish()
    }
}

impl Builder {
    /// Register a function and its async handler. The handler runs on the
    /// executor of the [spawner](Builder::spawner).
    pub fn function<F, Fut>(mut self, function: Function, handler: F) -> Self
    where
        F: Fn(Ctx) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = HandlerResult> + Send + 'static,
    {
        let handler: Handler = Arc::new(move |ctx| Box::pin(handler(ctx)));
        self.functions.push((function, handler));
        self
    }

    /// How handlers are started: `|fut| { smol::spawn(fut).detach(); }` for
    /// smol, or any executor's spawn. Default (feature `async-std`):
    /// `async_std::task::spawn`.
    pub fn spawner(
        mut self,
        spawn: impl Fn(Pin<Box<dyn Future<Output = ()> + Send>>) + Send + Sync + 'static,
    ) -> Self {
        self.spawner = Some(Arc::new(spawn));
        self
    }

    connect_adapter::builder_settings!();

    /// Start the worker. Returns once the connection thread is running; await
    /// [`WorkerHandle::ready`] for the first ACTIVE connection.
    pub async fn connect(mut self) -> Result<WorkerHandle, BuildError> {
        let spawner = self.spawner.take().or_else(default_spawner).ok_or_else(|| {
            BuildError::Config("no spawner: enable the `async-std` feature or call Builder::spawner".into())
        })?;
        let (config, handlers) = self.settings.resolve(std::mem::take(&mut self.functions))?;
        let span = self.settings.span(&config);
        tracing::info!(parent: &span, api = %config.api_base_url, seed = config.seed, "starting worker");
        let state = Arc::new(StateWatch::default());
        let on_state = state.clone();
        let session = Session::new(config, handlers, span, move |s| on_state.set(s));
        let (inbox_tx, inbox) = async_channel::unbounded();
        let shared = Arc::new(Shared {
            session,
            spawner,
            inbox_tx,
            http: HttpClient::new(),
            state,
            signals: Default::default(),
        });
        let (body, fatal) = (shared.clone(), shared.clone());
        self.settings.start_supervised(
            &shared.session.config,
            shared.session.health.clone(),
            Carry::new(inbox),
            move |carry| pump::run_incarnation(&body, carry),
            move |msg| {
                fatal.session.set_fatal(msg);
                fatal.finish();
            },
        )?;
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
            if handle.state() == ConnectionState::Closed {
                handle.shared.finish();
            }
        }
        Ok(handle)
    }
}

#[cfg(feature = "async-std")]
fn default_spawner() -> Option<Spawner> {
    Some(Arc::new(|fut| {
        async_std::task::spawn(fut);
    }))
}

#[cfg(not(feature = "async-std"))]
fn default_spawner() -> Option<Spawner> {
    None
}
