//! An [Inngest Connect](https://www.inngest.com/docs/durable-execution/deploying-functions/connect)
//! worker for tokio.
//!
//! ```no_run
//! use connect_tokio::{Function, Worker};
//! use serde_json::json;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let worker = Worker::builder("my-app")
//!     .function(Function::new("hello").on_event("demo/hello"), |ctx| async move {
//!         Ok(json!({ "greeting": format!("hello {}", ctx.event().data["name"]) }))
//!     })
//!     .connect()
//!     .await?;
//! worker.ready().await?;
//! worker.closed().await?; // until SIGINT/SIGTERM, then a graceful shutdown
//! # Ok(()) }
//! ```
//!
//! # The isolation contract
//!
//! The connection (WebSocket, heartbeats, lease extensions, timers, the
//! start and flush HTTP calls) runs on a dedicated OS thread with its own
//! current-thread tokio runtime. Handlers run on *your* runtime (the one
//! `connect()` was awaited on), never on that thread, and the two sides talk
//! by messages. A handler that spins the CPU for minutes or blocks every
//! worker thread of your runtime does not delay a heartbeat by more than the
//! OS scheduler's wake-up latency, so the gateway never decides the worker is
//! dead while it is busy.
//!
//! If the connection thread panics, a supervisor starts a new one (the first
//! restart at once, then with backoff) and hands it the durable state: in
//! flight requests keep their leases and replies produced after the respawn
//! are still delivered.
//!
//! [`Builder::same_runtime`] runs the connection as a task on your runtime
//! instead, as the Inngest JS SDK's same-thread mode does; it exists to show
//! and measure what isolation prevents.
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
mod pump;
mod socket;

pub use builder::{Builder, Worker};
pub use connect_adapter::{CancelReason, CancelSignal, Ctx, Function, HandlerError, HandlerResult, Retry};
pub use connect_core::payload::{Event, Trigger};
pub use connect_core::worker::ConnectionState;
pub use handle::{WorkerError, WorkerHandle};
