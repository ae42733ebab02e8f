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
//! # The run loop
//!
//! After each input, drain every output, then sleep until the deadline or
//! the next IO event, whichever comes first. `handle_timeout` is harmless
//! when called early or twice; time that goes backwards is clamped.
//!
//! ```no_run
//! use std::time::{Instant, SystemTime};
//! use connect_core::worker::{Durable, Output, Event, Worker, WorkerConfig};
//!
//! # fn run(functions: Vec<connect_core::payload::FunctionConfig>) -> Result<(), Box<dyn std::error::Error>> {
//! let now = Instant::now();
//! let config = WorkerConfig::new("my-app", functions, "host-1", SystemTime::now());
//! let mut worker = Worker::new(config, Durable::default(), now)?;
//! loop {
//!     while let Some(output) = worker.poll_output() {
//!         match output {
//!             Output::Http { id, request } => { /* POST it; later: worker.handle_http_response(Instant::now(), id, result) */ }
//!             Output::Connect { conn, url, subprotocol, timeout } => { /* dial; then handle_connected / handle_connect_failed */ }
//!             Output::Send { conn, frame } => { /* write a binary message on conn */ }
//!             Output::Close { conn, code, reason } => { /* close conn; never write to it again */ }
//!             Output::Event(Event::Closed) => return Ok(()),
//!             Output::Event(event) => { /* hand to the app: Invocation, LeaseLost, ... */ }
//!         }
//!     }
//!     let deadline = worker.poll_timeout().map(|(at, _why)| at);
//!     // Wait for IO (frames, closes, HTTP answers, app replies) until `deadline`,
//!     // feed whatever happened with Instant::now(), e.g.
//!     //   worker.handle_frame(Instant::now(), conn, bytes);
//!     //   worker.reply(Instant::now(), &request_id, reply)?;
//!     // and when the deadline passes:
//!     worker.handle_timeout(Instant::now());
//! }
//! # }
//! ```
//!
//! `examples/blocking_worker.rs` is a complete loop over a `TcpStream` with tungstenite.
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

pub use config::{AppConfig, ConfigError, IntervalDefaults, SystemAttributes, Timeouts, WorkerConfig};
pub use events::{
    CommandError, ConnId, ConnectionState, Event, FatalError, HttpId, HttpRequest, HttpResponse, Output,
    Reply, Timer,
};
pub use machine::Worker;
pub use requests::Durable;

pub use crate::backoff::BackoffConfig;
pub use crate::wire::SdkResponseStatus;
