//! What every Rust bench worker binary shares: its arguments, the two
//! functions (the same ones `tests/js/bench-worker.mjs` serves) and the
//! protocol with the orchestrator (`bench-worker: ready` on stdout once every
//! connection is ACTIVE; a graceful shutdown when stdin closes).
//!
//! Functions of app `<app>` (one app per worker and section, so runs left
//! over by one worker can never reach the next):
//! - `<app>-spin` on `<app>/spin`: spins the CPU for `data.ms` milliseconds without yielding.
//! - `<app>-echo` on `<app>/echo`: returns the event's data.

use std::io::Read;
use std::time::{Duration, Instant};

pub fn spin_event(app: &str) -> String {
    format!("{app}/spin")
}

pub fn echo_event(app: &str) -> String {
    format!("{app}/echo")
}

pub const READY_LINE: &str = "bench-worker: ready";

/// A worker binary's command line: `--app ID [--connections N] [--same-runtime]`,
/// with the dev server's API URL in `DEV_API_URL`.
#[derive(Debug, Clone)]
pub struct WorkerArgs {
    /// App id, and the prefix of the instance ids.
    pub app: String,
    /// Worker connections in this process (each its own `Worker`), instance ids `<instance>-<i>`.
    pub connections: usize,
    pub same_runtime: bool,
    pub api_url: String,
}

impl WorkerArgs {
    pub fn parse() -> WorkerArgs {
        let mut args = WorkerArgs {
            app: "bench".into(),
            connections: 1,
            same_runtime: false,
            api_url: std::env::var("DEV_API_URL").unwrap_or_else(|_| fail("DEV_API_URL is not set")),
        };
        let mut it = std::env::args().skip(1);
        while let Some(a) = it.next() {
            match a.as_str() {
                "--app" => args.app = it.next().unwrap_or_else(|| fail("--app needs a value")),
                "--connections" => {
                    args.connections = it
                        .next()
                        .and_then(|v| v.parse().ok())
                        .unwrap_or_else(|| fail("--connections needs a number"))
                }
                "--same-runtime" => args.same_runtime = true,
                other => fail(&format!("unknown argument {other:?}")),
            }
        }
        args
    }

    pub fn instance_id(&self, i: usize) -> String {
        format!("{}-{i}", self.app)
    }
}

fn fail(msg: &str) -> ! {
    eprintln!("bench worker: {msg}");
    std::process::exit(2)
}

/// Spin the CPU for `ms` without yielding: the handler that starves heartbeats
/// when the connection shares its thread.
pub fn spin(ms: u64) -> u64 {
    let until = Instant::now() + Duration::from_millis(ms);
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    while Instant::now() < until {
        for _ in 0..1_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
        }
    }
    std::hint::black_box(x)
}

/// The milliseconds a `bench/spin` event asks for.
pub fn spin_ms(data: &serde_json::Value) -> u64 {
    data["ms"].as_u64().unwrap_or(0)
}

/// Block until stdin closes (the orchestrator's signal to shut down).
pub fn wait_for_stdin_eof() {
    let mut buf = [0u8; 64];
    let mut stdin = std::io::stdin();
    while matches!(stdin.read(&mut buf), Ok(n) if n > 0) {}
}

pub fn print_ready() {
    println!("{READY_LINE}");
}
