//! An [Inngest Connect](https://www.inngest.com/docs/durable-execution/deploying-functions/connect)
//! worker for async-std and smol.
//!
//! **async-std is discontinued upstream** ([RUSTSEC-2025-0052]; its authors
//! recommend smol). This adapter does not depend on async-std's runtime: the
//! connection runs on async-io, the reactor both share, and handlers run on
//! whatever executor the [spawner](Builder::spawner) names. With the default
//! feature `async-std` that is `async_std::task::spawn`; for smol, turn the
//! feature off and pass smol's spawn. The test suite runs under both.
//!
//! ```no_run
//! use connect_async_std::{Function, Worker};
//! use serde_json::json;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let worker = Worker::builder("my-app")
//!     .function(Function::new("hello").on_event("demo/hello"), |ctx| async move {
//!         Ok(json!({ "greeting": format!("hello {}", ctx.event().data["name"]) }))
//!     })
//!     .spawner(|fut| { smol::spawn(fut).detach(); }) // or keep async-std's default
//!     .connect()
//!     .await?;
//! worker.ready().await?;
//! worker.closed().await?; // until SIGINT/SIGTERM, then a graceful shutdown
//! # Ok(()) }
//! ```
//!
//! # The isolation contract: which thread runs what
//!
//! - **The connection thread** (`connect-<app>`) runs a thread-local
//!   executor: the machine and the sockets (async-tungstenite over async-net,
//!   rustls for `wss://`). Between inputs it parks itself until the machine's
//!   next deadline, so the kernel wakes it for each heartbeat directly (not
//!   through whichever thread drives async-io's shared reactor). It never
//!   runs user code.
//! - **The `blocking` crate's pool** makes the blocking HTTP start and flush
//!   calls, so a slow API never delays a heartbeat.
//! - **Your executor** runs handlers, via the spawner. A handler that spins
//!   the CPU for minutes, or blocks every thread of your executor, delays no
//!   heartbeat by more than the OS scheduler's wake-up latency.
//!
//! If the connection thread panics, a supervisor starts a new one (the first
//! restart at once, then with backoff) and hands it the durable state: in
//! flight requests keep their leases and replies produced after the respawn
//! are still delivered.
//!
//! [RUSTSEC-2025-0052]: https://rustsec.org/advisories/RUSTSEC-2025-0052.html
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
mod timer;

pub use builder::{Builder, Worker};
pub use connect_adapter::{
    CancelReason, CancelSignal, Ctx, Function, HandlerError, HandlerResult, Retry, WorkerError,
};
pub use connect_core::payload::{Event, Trigger};
pub use connect_core::worker::ConnectionState;
pub use handle::WorkerHandle;
