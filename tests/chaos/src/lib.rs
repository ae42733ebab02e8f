//! Chaos and resource checks for the connect adapters, against connect-dev
//! through a fault-injecting TCP proxy. Programs, not tests: they print
//! figures and a verdict, and exit non-zero when the verdict is a failure.
//!
//! - [`soak`]: runs under kills, half-open stalls, delays, truncation, gateway
//!   drains and forced lease NACKs; counts completed, failed, lost and
//!   duplicated runs, reconnects and the time to detect a half-open connection.
//! - [`flatness`]: threads, open file descriptors and RSS of a worker process
//!   before and after a thousand forced reconnects.
//!
//! `cargo run -p connect-chaos -- soak --runs 10000` and
//! `cargo run -p connect-chaos -- flatness --reconnects 1000` (see `main.rs`).

pub mod flatness;
pub mod proxy;
pub mod soak;
pub mod workers;
