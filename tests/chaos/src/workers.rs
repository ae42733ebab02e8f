//! The adapters under test, started the same way: dev mode against a
//! connect-dev API, dialing a given gateway URL (the proxy), with shortened
//! phase deadlines and backoff so that faults heal in seconds, not minutes.
//! One blocking handler body, wrapped the way each adapter runs handlers.

use std::sync::Arc;
use std::time::Duration;

use connect_adapter::{Ctx, Function, HandlerResult};
use connect_core::worker::{ConnectionState, WorkerConfig};

/// A handler body shared by every adapter. It may block (sleep).
pub type Body = Arc<dyn Fn(&Ctx) -> HandlerResult + Send + Sync>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Adapter {
    Tokio,
    Blocking,
    /// connect-async-std under async-std (its default spawner).
    AsyncStd,
}

impl Adapter {
    pub const ALL: [Adapter; 3] = [Adapter::Tokio, Adapter::Blocking, Adapter::AsyncStd];

    pub fn name(self) -> &'static str {
        match self {
            Adapter::Tokio => "tokio",
            Adapter::Blocking => "blocking",
            Adapter::AsyncStd => "async-std",
        }
    }

    pub fn parse(s: &str) -> Option<Adapter> {
        Adapter::ALL.into_iter().find(|a| a.name() == s)
    }
}

/// What to start.
pub struct Spec {
    pub app: String,
    pub api_url: String,
    pub gateway_url: String,
    pub function: Function,
    pub body: Body,
    pub handler_threads: usize,
    pub seed: u64,
    /// Applied to the worker's config (see [`tune`]).
    pub tune: fn(&mut WorkerConfig),
}

impl std::fmt::Debug for Spec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spec").field("app", &self.app).field("gateway_url", &self.gateway_url).finish()
    }
}

/// Deadlines and backoff for a test that breaks connections every second:
/// the defaults (5 s for HELLO, 20 s for READY, backoff from 1 s) are right
/// for production and would make a soak crawl.
pub fn tune(c: &mut WorkerConfig) {
    c.timeouts.start_call = Duration::from_secs(3);
    c.timeouts.ws_connect = Duration::from_secs(2);
    c.timeouts.hello = Duration::from_secs(2);
    c.timeouts.ready = Duration::from_secs(3);
    c.timeouts.reply_ack = Duration::from_secs(1);
    c.timeouts.drain_replacement = Duration::from_secs(2);
    c.reconnect_backoff.initial = Duration::from_millis(50);
    c.reconnect_backoff.max = Duration::from_millis(500);
    c.reconnect_backoff.reset_after = Duration::from_secs(2);
    c.flush_backoff.initial = Duration::from_millis(50);
    c.flush_backoff.max = Duration::from_millis(500);
}

/// [`tune`], and every connection counts as stable once ready, so that each
/// forced reconnect starts from the first (immediate) attempt: for counting
/// reconnects quickly, not for realism.
pub fn tune_fast_reconnect(c: &mut WorkerConfig) {
    tune(c);
    c.reconnect_backoff.initial = Duration::from_millis(10);
    c.reconnect_backoff.reset_after = Duration::from_millis(1);
    c.reconnect_backoff.immediate_first = true;
}

/// A running worker of any adapter.
pub enum Running {
    Tokio { rt: Option<tokio::runtime::Runtime>, handle: connect_tokio::WorkerHandle },
    Blocking { handle: connect_blocking::WorkerHandle },
    AsyncStd { handle: connect_async_std::WorkerHandle },
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Running::Tokio { .. } => "Running::Tokio",
            Running::Blocking { .. } => "Running::Blocking",
            Running::AsyncStd { .. } => "Running::AsyncStd",
        })
    }
}

pub fn start(adapter: Adapter, spec: Spec) -> Running {
    match adapter {
        Adapter::Tokio => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(spec.handler_threads)
                .enable_all()
                .build()
                .expect("runtime");
            let body = spec.body;
            let builder = connect_tokio::Worker::builder(spec.app)
                .api_base_url(spec.api_url)
                .gateway_url(spec.gateway_url)
                .dev(true)
                .handle_signals(false)
                .seed(spec.seed)
                .configure(spec.tune)
                .function(spec.function, move |ctx| {
                    let body = body.clone();
                    async move {
                        tokio::task::spawn_blocking(move || body(&ctx))
                            .await
                            .unwrap_or_else(|e| Err(connect_adapter::HandlerError::new(e.to_string())))
                    }
                });
            let handle = rt.block_on(builder.connect()).expect("the tokio worker starts");
            Running::Tokio { rt: Some(rt), handle }
        }
        Adapter::Blocking => {
            let body = spec.body;
            let handle = connect_blocking::Worker::builder(spec.app)
                .api_base_url(spec.api_url)
                .gateway_url(spec.gateway_url)
                .dev(true)
                .handle_signals(false)
                .seed(spec.seed)
                .configure(spec.tune)
                .threads(spec.handler_threads)
                .function(spec.function, move |ctx| body(&ctx))
                .connect()
                .expect("the blocking worker starts");
            Running::Blocking { handle }
        }
        Adapter::AsyncStd => {
            let body = spec.body;
            let builder = connect_async_std::Worker::builder(spec.app)
                .api_base_url(spec.api_url)
                .gateway_url(spec.gateway_url)
                .dev(true)
                .handle_signals(false)
                .seed(spec.seed)
                .configure(spec.tune)
                .function(spec.function, move |ctx| {
                    let body = body.clone();
                    async move { async_std::task::spawn_blocking(move || body(&ctx)).await }
                });
            let handle = async_std::task::block_on(builder.connect()).expect("the async-std worker starts");
            Running::AsyncStd { handle }
        }
    }
}

impl Running {
    pub fn ready(&self, timeout: Duration) -> Result<(), String> {
        match self {
            Running::Tokio { rt, handle } => {
                let rt = rt.as_ref().expect("runtime");
                rt.block_on(async { tokio::time::timeout(timeout, handle.ready()).await })
                    .map_err(|e| e.to_string())?
                    .map_err(|e| e.to_string())
            }
            Running::Blocking { handle } => handle.ready(timeout).map_err(|e| e.to_string()),
            Running::AsyncStd { handle } => {
                async_std::task::block_on(async_std::future::timeout(timeout, handle.ready()))
                    .map_err(|e| e.to_string())?
                    .map_err(|e| e.to_string())
            }
        }
    }

    pub fn state(&self) -> ConnectionState {
        match self {
            Running::Tokio { handle, .. } => handle.state(),
            Running::Blocking { handle } => handle.state(),
            Running::AsyncStd { handle } => handle.state(),
        }
    }

    pub fn restarts(&self) -> u64 {
        match self {
            Running::Tokio { handle, .. } => handle.restarts(),
            Running::Blocking { handle } => handle.restarts(),
            Running::AsyncStd { handle } => handle.restarts(),
        }
    }

    /// Graceful shutdown, bounded by `timeout`.
    pub fn stop(mut self, timeout: Duration) -> Result<(), String> {
        match &mut self {
            Running::Tokio { rt, handle } => {
                handle.shutdown();
                let rt = rt.take().expect("runtime");
                let r = rt
                    .block_on(async { tokio::time::timeout(timeout, handle.closed()).await })
                    .map_err(|e| e.to_string())
                    .and_then(|r| r.map_err(|e| e.to_string()));
                rt.shutdown_timeout(Duration::from_secs(1));
                r
            }
            Running::Blocking { handle } => {
                handle.shutdown();
                handle.closed(timeout).map_err(|e| e.to_string())
            }
            Running::AsyncStd { handle } => {
                handle.shutdown();
                async_std::task::block_on(async_std::future::timeout(timeout, handle.closed()))
                    .map_err(|e| e.to_string())?
                    .map_err(|e| e.to_string())
            }
        }
    }
}
