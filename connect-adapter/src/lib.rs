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
//! - [`supervisor`]: the respawning supervisor of the connection thread.
#![forbid(unsafe_code)]

mod cancel;
mod ctx;
mod function;
mod http;
mod options;
mod outcome;
pub mod supervisor;
mod system;

pub use cancel::{CancelReason, CancelSignal};
pub use connect_core;
pub use ctx::Ctx;
pub use function::Function;
pub use http::HttpClient;
pub use options::{BuildError, WorkerOptions};
pub use outcome::{HandlerError, HandlerResult, Retry, reply_for, reply_for_panic};
pub use system::system_attributes;
