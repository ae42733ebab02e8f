//! Plumbing shared by every connect adapter, written once.
//!
//! The adapters (`connect-tokio`, `connect-blocking`, `connect-async-std`)
//! each hold only their pump loop, socket, timer and channel to user code.
//! Everything else that is not protocol logic (that lives in `connect-core`)
//! and does not depend on a runtime is here:
//!
//! - [`Function`]: what a user registers (id, name, triggers, retries).
//! - [`Ctx`]: what a handler receives (event, attempt, run id, raw payload
//!   without a copy, cancellation).
//! - [`HandlerError`] and [`reply_for`]: how a handler's result becomes a reply.
//! - [`CancelSignal`]: fired on a lost lease or at the shutdown deadline;
//!   works in sync and async code on any executor.
//! - [`HttpClient`]: the start and flush calls (ureq, rustls, certificates verified).
//! - [`WorkerOptions`]: builder settings and Inngest's environment variables.
//! - [`session`]: the non-IO half of every pump loop (inputs into the machine,
//!   outputs carried out through the adapter's IO, events handled).
//! - [`supervisor`]: the respawning supervisor of the connection thread.
//! - [`Settings`] and [`builder_settings!`]: the builder settings every adapter
//!   shares, and how they become a configuration and a supervised thread.
//! - [`on_shutdown_signal`]: SIGINT/SIGTERM for adapters without a runtime to listen with.
//! - [`StateWatch`] and [`WorkerError`]: the connection state, waitable from
//!   threads and from async code on any executor.
#![forbid(unsafe_code)]

mod cancel;
mod ctx;
mod function;
mod http;
mod invoke;
mod options;
mod outcome;
pub mod session;
pub mod settings;
mod signals;
mod state;
pub mod supervisor;
mod system;

pub use cancel::{CancelReason, CancelSignal};
pub use connect_core;
pub use ctx::Ctx;
pub use function::Function;
pub use http::HttpClient;
pub use invoke::{invoke_async, invoke_blocking};
pub use options::{BuildError, WorkerOptions};
pub use outcome::{HandlerError, HandlerResult, Retry, reply_for, reply_for_panic};
pub use settings::Settings;
pub use signals::{SignalListener, on_shutdown_signal};
pub use state::{StateWatch, WorkerError, is_ready_or_closed, ready_result};
pub use system::system_attributes;
