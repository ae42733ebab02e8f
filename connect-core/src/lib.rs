//! Sans-IO Inngest Connect: the wire codec and the protocol state machines.
//!
//! This crate does no IO and reads no clock (neither the monotonic nor the
//! wall clock), never spawns a thread and never touches a socket:
//! every input carries `now`, and randomness comes from a seed. That makes
//! it embeddable in any runtime, replayable, fuzzable and testable on
//! simulated time. The adapters (`connect-tokio`, `connect-blocking`,
//! `connect-async-std`) pump real sockets and timers through it.
//!
//! Modules:
//! - [`wire`]: `ConnectMessage` frames and every `connect.v1` payload, byte
//!   compatible with Inngest's SDKs (checked against golden vectors made by
//!   the Inngest JS SDK).
//! - [`payload`]: the JSON inside frames (capabilities, function configs,
//!   request payloads, reply bodies).
//! - [`duration`]: Go duration strings as the gateway sends them.
//! - [`auth`]: signing keys and their hashed form; never printed.
//! - [`worker`]: the worker connection machine ([`worker::Worker`]).
//! - [`backoff`]: capped exponential backoff with seeded jitter.
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
//! # let (clock, wall_clock) = (|| -> Instant { unimplemented!() }, || -> SystemTime { unimplemented!() });
//! // `clock()` and `wall_clock()` are the adapter's: the monotonic and the wall clock.
//! let config = WorkerConfig::new("my-app", functions, "host-1", wall_clock());
//! let mut worker = Worker::new(config, Durable::default(), clock())?;
//! loop {
//!     while let Some(output) = worker.poll_output() {
//!         match output {
//!             Output::Http { id, request } => { /* POST it; later: worker.handle_http_response(clock(), id, result) */ }
//!             Output::Connect { conn, url, subprotocol, timeout } => { /* dial; then handle_connected / handle_connect_failed */ }
//!             Output::Send { conn, frame } => { /* write a binary message on conn */ }
//!             Output::Close { conn, code, reason } => { /* close conn; never write to it again */ }
//!             Output::Event(Event::Closed) => return Ok(()),
//!             Output::Event(event) => { /* hand to the app: Invocation, LeaseLost, ... */ }
//!         }
//!     }
//!     let deadline = worker.poll_timeout().map(|(at, _why)| at);
//!     // Wait for IO (frames, closes, HTTP answers, app replies) until `deadline`,
//!     // feed whatever happened with the time it happened, e.g.
//!     //   worker.handle_frame(clock(), conn, bytes);
//!     //   worker.reply(clock(), &request_id, reply)?;
//!     // and when the deadline passes:
//!     worker.handle_timeout(clock());
//! }
//! # }
//! ```
//!
//! `connect-core/examples/blocking_worker.rs` is a complete loop over a `TcpStream` with tungstenite.
#![forbid(unsafe_code)]

pub mod auth;
pub mod backoff;
pub mod duration;
#[cfg(feature = "fuzzing")]
pub mod fuzz;
pub mod gateway;
pub mod payload;
pub mod wire;
pub mod worker;
