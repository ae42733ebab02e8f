//! An [Inngest Connect](https://www.inngest.com/docs/durable-execution/deploying-functions/connect)
//! worker without async: plain threads, blocking handlers.
//!
//! ```no_run
//! use connect_blocking::{Function, Worker};
//! use serde_json::json;
//!
//! # fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let worker = Worker::builder("my-app")
//!     .function(Function::new("hello").on_event("demo/hello"), |ctx| {
//!         Ok(json!({ "greeting": format!("hello {}", ctx.event().data["name"]) }))
//!     })
//!     .connect()?;
//! worker.ready(std::time::Duration::from_secs(30))?;
//! worker.wait_closed()?; // until SIGINT/SIGTERM, then a graceful shutdown
//! # Ok(()) }
//! ```
//!
//! # The isolation contract: which thread runs what
//!
//! - **The connection thread** (`connect-<app>`) owns the machine, the
//!   sockets and the timers. It waits in one `mio` poll on every socket and
//!   a waker, with the machine's next deadline as the timeout, so heartbeats
//!   leave on time and replies queued by handlers wake it at once. It never
//!   blocks on IO and never runs user code.
//! - **Helper threads**, one per call, do what blocks: the HTTP start and
//!   flush calls, and each dial (TCP connect, TLS, WebSocket upgrade, bounded
//!   by the machine's timeout). The socket then goes non-blocking to the
//!   connection thread.
//! - **The handler pool** (`connect-<app>-handler-<i>`, [`Builder::threads`],
//!   default: one per core) runs handlers. A handler that spins the CPU for
//!   minutes delays no heartbeat by more than the OS scheduler's wake-up
//!   latency; a panic fails only its request.
//! - **Your threads** hold the [`WorkerHandle`]; its waits block only them.
//!
//! If the connection thread panics, a supervisor starts a new one (the first
//! restart at once, then with backoff) and hands it the durable state: in
//! flight requests keep their leases and replies produced after the respawn
//! are still delivered.
//!
//! TLS (`wss://`) is rustls with the Mozilla roots (webpki-roots), ring provider.
//!
//! # Delivery: at least once
//!
//! A worker never runs a request id twice, but an attempt whose lease was
//! lost (a refused extension, a connection gone for longer than the lease,
//! a handler abandoned at the shutdown deadline) is retried by the gateway,
//! possibly on another worker, while the first may still be running. So a
//! handler can run more than once for one event: make its side effects
//! idempotent (key them by `ctx.run_id()` and the attempt), and watch
//! `ctx.cancel_signal()` to stop early when the lease is lost.
#![forbid(unsafe_code)]

mod builder;
mod handle;
mod pool;
mod pump;
mod socket;

pub use builder::{Builder, Worker};
pub use connect_adapter::{
    CancelReason, CancelSignal, Ctx, Function, HandlerError, HandlerResult, Retry, WorkerError,
};
pub use connect_core::payload::{Event, Trigger};
pub use connect_core::worker::ConnectionState;
pub use handle::WorkerHandle;
