//! The builder: functions, settings, and the start of the connection thread.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use connect_adapter::session::{Carry, Session};
use connect_adapter::supervisor::{self, SupervisorConfig};
use connect_adapter::{BuildError, Ctx, Function, HandlerResult, HttpClient, WorkerOptions};
use connect_core::auth::SigningKey;
use connect_core::worker::{ConnectionState, WorkerConfig};
use tokio::sync::{mpsc, watch};

use crate::handle::WorkerHandle;
use crate::pump::{self, Handler, Shared};

/// Entry point: `Worker::builder("my-app")`.
#[derive(Debug)]
pub struct Worker;

impl Worker {
    pub fn builder(app_id: impl Into<String>) -> Builder {
        Builder {
            options: WorkerOptions::new(app_id),
            functions: Vec::new(),
            error: None,
            same_runtime: false,
            handle_signals: true,
            supervisor: SupervisorConfig::default(),
            configure: None,
        }
    }
}

type Configure = Box<dyn FnOnce(&mut WorkerConfig) + Send>;

/// Settings and functions of a worker. Values set here win over Inngest's
/// environment variables (`INNGEST_SIGNING_KEY`, `INNGEST_ENV`, ...), which
/// win over the defaults.
pub struct Builder {
    options: WorkerOptions,
    functions: Vec<(Function, Handler)>,
    error: Option<BuildError>,
    same_runtime: bool,
    handle_signals: bool,
    supervisor: SupervisorConfig,
    configure: Option<Configure>,
}

impl std::fmt::Debug for Builder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Builder")
            .field("options", &self.options)
            .field("functions", &self.functions.iter().map(|(f, _)| f.id()).collect::<Vec<_>>())
            .field("same_runtime", &self.same_runtime)
            .finish_non_exhaustive()
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

    fn key(&mut self, raw: &str, var: &'static str) -> Option<SigningKey> {
        match SigningKey::new(raw) {
            Ok(k) => Some(k),
            Err(source) => {
                self.error.get_or_insert(BuildError::BadKey { var, source });
                None
            }
        }
    }

    pub fn signing_key(mut self, key: &str) -> Self {
        self.options.signing_key = self.key(key, "signing_key");
        self
    }

    pub fn signing_key_fallback(mut self, key: &str) -> Self {
        self.options.signing_key_fallback = self.key(key, "signing_key_fallback");
        self
    }

    /// Inngest environment (branch) name.
    pub fn env(mut self, env: impl Into<String>) -> Self {
        self.options.env = Some(env.into());
        self
    }

    pub fn app_version(mut self, version: impl Into<String>) -> Self {
        self.options.app_version = Some(version.into());
        self
    }

    /// Stable id of this worker process (default: the host name).
    pub fn instance_id(mut self, id: impl Into<String>) -> Self {
        self.options.instance_id = Some(id.into());
        self
    }

    /// Most requests in flight at once on this instance (0 = unlimited).
    pub fn max_concurrency(mut self, n: u32) -> Self {
        self.options.max_concurrency = Some(n);
        self
    }

    /// Inngest's API: `https://api.inngest.com`, a self-hosted server, or a dev server.
    pub fn api_base_url(mut self, url: impl Into<String>) -> Self {
        self.options.api_base_url = Some(url.into());
        self
    }

    /// Dial this gateway instead of the endpoint the start call names.
    pub fn gateway_url(mut self, url: impl Into<String>) -> Self {
        self.options.gateway_url = Some(url.into());
        self
    }

    /// Dev mode: no signing key needed, local API by default.
    pub fn dev(mut self, dev: bool) -> Self {
        self.options.dev = Some(dev);
        self
    }

    /// How long a graceful shutdown waits for in-flight handlers.
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.options.shutdown_timeout = Some(timeout);
        self
    }

    /// Seed for jitter and ids, to replay a run exactly.
    pub fn seed(mut self, seed: u64) -> Self {
        self.options.seed = Some(seed);
        self
    }

    /// Shut down gracefully on SIGINT and SIGTERM (default: on).
    pub fn handle_signals(mut self, on: bool) -> Self {
        self.handle_signals = on;
        self
    }

    /// Run the connection as a task on the caller's runtime instead of its own
    /// thread. For comparison only: CPU-heavy handlers then delay heartbeats.
    pub fn same_runtime(mut self, on: bool) -> Self {
        self.same_runtime = on;
        self
    }

    /// Crashes of the connection thread in a row before the worker gives up.
    pub fn max_consecutive_crashes(mut self, n: u32) -> Self {
        self.supervisor.max_consecutive_crashes = n;
        self
    }

    /// Adjust the machine's configuration directly (timeouts, limits, backoff).
    pub fn configure(mut self, f: impl FnOnce(&mut WorkerConfig) + Send + 'static) -> Self {
        self.configure = Some(Box::new(f));
        self
    }

    /// Start the worker. Returns once the connection thread is running; await
    /// [`WorkerHandle::ready`] for the first ACTIVE connection.
    ///
    /// Must be called from within a tokio runtime: handlers are spawned on it.
    pub async fn connect(mut self) -> Result<WorkerHandle, BuildError> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        self.options.fill_from_env()?;
        let app_id = self.options.app_id.clone();
        let mut handlers = HashMap::new();
        let mut configs = Vec::new();
        for (function, handler) in self.functions {
            configs.push(function.config(&app_id));
            handlers.insert(function.slug(&app_id), handler);
        }
        let mut config = self.options.resolve(configs, SystemTime::now())?;
        if let Some(f) = self.configure.take() {
            f(&mut config);
        }
        let user_rt = tokio::runtime::Handle::try_current()
            .map_err(|_| BuildError::Config("connect() must run inside a tokio runtime".into()))?;
        let (state_tx, state_rx) = watch::channel(ConnectionState::Connecting);
        let (inbox_tx, inbox) = mpsc::unbounded_channel();
        let span = tracing::info_span!("connect", app = %app_id, instance = %config.instance_id);
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
                }
            });
        } else {
            let dispatch = tracing::dispatcher::get_default(|d| d.clone());
            let mut sup = self.supervisor.clone();
            sup.seed = shared.session.config.seed;
            let body_shared = shared.clone();
            let fatal_shared = shared.clone();
            supervisor::spawn(
                format!("connect-{app_id}"),
                sup,
                carry,
                shared.session.health.clone(),
                dispatch,
                move |carry| pump::run_incarnation(body_shared.clone(), carry),
                move |msg| fatal_shared.session.set_fatal(msg),
            )
            .map_err(|e| BuildError::Config(format!("could not start the connection thread: {e}")))?;
        }
        let handle = WorkerHandle::new(shared, state_rx, inbox_tx);
        if self.handle_signals {
            handle.shutdown_on_signals();
        }
        Ok(handle)
    }
}
