//! Sans-IO Inngest Connect: the wire codec and the protocol state machines.
//!
//! This crate does no IO and reads no clock. It never calls `Instant::now()`
//! or `SystemTime::now()`, never spawns a thread and never touches a socket:
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
#![forbid(unsafe_code)]

pub mod auth;
pub mod backoff;
pub mod duration;
pub mod gateway;
pub mod payload;
pub mod wire;
pub mod worker;
