//! `connect-bench`: this project's workers and the Inngest JS SDK worker,
//! measured side by side against one connect-dev in one run.
//!
//! ```text
//! cargo run --release -p connect-bench --bin compare -- [--quick]
//! ```
//!
//! The orchestrator (`compare`) starts connect-dev in its own process, on its
//! own thread (so it reads heartbeat gaps, connection records and run ends
//! directly, with `Instant` precision and no polling over HTTP), then starts
//! each worker as its own process in turn (the Rust workers are the small
//! `worker-*` binaries of this crate, the JS workers `node
//! tests/js/bench-worker.mjs`) and measures:
//!
//! 1. [`heartbeat`]: heartbeat punctuality while handlers spin on every core;
//! 2. [`throughput`]: runs per second and event-to-completed-run latency of an
//!    echo function with 1 KiB of data, at 1, 64 and 1000 runs in flight;
//! 3. [`memory`]: RSS of an idle connected worker, RSS per extra connection,
//!    time from process start to ACTIVE;
//! 4. [`drain`]: GATEWAY_CLOSING to the replacement connection, and runs lost.
//!
//! It prints a table and writes `bench-out/results.json` and
//! `bench-out/heartbeats.svg`.

pub mod config;
pub mod drain;
pub mod driver;
pub mod heartbeat;
pub mod memory;
pub mod procs;
pub mod report;
pub mod stats;
pub mod svg;
pub mod throughput;
pub mod worker;
