//! The worker side of the protocol: a sans-IO connection machine.
//!
//! [`Worker`] is driven only by inputs that carry `now` and drained through
//! [`Worker::poll_output`] and [`Worker::poll_timeout`]. It never reads a
//! clock, opens a socket or spawns a thread; an adapter does that and feeds
//! the results back in. The transition table and the rule for giving up are
//! in [`machine`]'s docs.
//!
//! # The methods, in four kinds
//!
//! - getters: [`Worker::state`], [`Worker::in_flight`], [`Worker::unacked_replies`], [`Worker::writable_conn`].
//! - inputs, each with `now`: [`Worker::handle_http_response`],
//!   [`Worker::handle_connected`], [`Worker::handle_connect_failed`],
//!   [`Worker::handle_frame`], [`Worker::handle_closed`],
//!   [`Worker::handle_timeout`]. Remote misbehaviour never comes back as an
//!   error: it becomes an event or a close.
//! - commands from the app: [`Worker::reply`], [`Worker::shutdown`],
//!   [`Worker::take_durable`]. Errors only for local misuse.
//! - outputs: [`Worker::poll_output`] (one ordered queue) and
//!   [`Worker::poll_timeout`] (the next deadline and its reason).
//!
//! The run loop is in the [crate docs](crate#the-run-loop).
//!
//! # Guarantees the loop can rely on
//!
//! - With outputs queued, `poll_timeout` returns the last `now` ([`Timer::Output`]).
//!   Once drained, the deadline is `None` or later than the last `now`.
//! - Outputs name their connection ([`ConnId`]); after [`Output::Close`] nothing
//!   is ever written to that connection again, and its late events are ignored.
//! - [`Event::Closed`] is always the last output.

mod config;
mod events;
mod frames;
mod handshake;
pub mod machine;
mod requests;
mod timers;

pub use config::{
    AppConfig, ConfigError, IntervalDefaults, MAX_BACKOFF, MAX_INTERVAL, MAX_PHASE, MAX_SHUTDOWN, MIN_TIMER,
    SystemAttributes, Timeouts, WorkerConfig,
};
pub use events::{
    CommandError, ConnId, ConnectionState, Event, FatalError, HttpId, HttpRequest, HttpResponse, Output,
    Reply, Timer,
};
pub use machine::{OUTPUT_TOO_LARGE, Worker};
pub use requests::Durable;

/// The in-place reader of hot frames, for the `frame` fuzz target's differential check.
#[cfg(feature = "fuzzing")]
pub(crate) use frames::{Hot, peek};

pub use crate::backoff::BackoffConfig;
pub use crate::wire::SdkResponseStatus;
