//! What a run measures (full or `--quick`) and which workers take part.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// The knobs of one run. [`Config::full`] is the reported run; [`Config::quick`] a smoke check (< 2 min).
#[derive(Debug, Clone)]
pub struct Config {
    pub quick: bool,
    /// connect-dev's heartbeat interval (sent in READY).
    pub interval: Duration,
    /// Idle time before the load (its gaps show the instrument's own noise).
    pub idle: Duration,
    /// How long handlers keep every core busy in the heartbeat section.
    pub load: Duration,
    /// How long each `bench/spin` run spins without yielding.
    pub spin: Duration,
    /// A quick `bench/echo` event this often during the load, so the router keeps
    /// looking at the worker (it counts "marked unhealthy" when it routes).
    pub probe_every: Duration,
    /// Runs-in-flight levels of the throughput section.
    pub levels: Vec<usize>,
    pub warmup: Duration,
    /// The longest warm-up: a slow worker needs its first round of runs in flight to end first.
    pub warmup_cap: Duration,
    pub window: Duration,
    /// How long runs still in flight after a measurement may take to end before they are cancelled.
    pub finish_timeout: Duration,
    /// Bytes of event data for the echo function.
    pub payload_bytes: usize,
    /// Process starts per worker for the start-up median.
    pub startups: usize,
    /// Connections per process for the per-connection RSS.
    pub connection_counts: Vec<usize>,
    /// Idle time after ACTIVE before RSS is read.
    pub settle: Duration,
    /// Runs in flight across the drain, and how long the load goes on after GATEWAY_CLOSING.
    pub drain_in_flight: usize,
    pub drain_window: Duration,
    pub out_dir: PathBuf,
    /// Nice value for connect-dev's thread (the instrument), `None` to leave it alone.
    pub dev_nice: Option<i32>,
    /// Run in a session of its own with this autogroup nice (workers included), so that other
    /// users of a shared machine weigh less against the whole bench; `None`: the caller's session.
    pub autogroup_nice: Option<i32>,
    /// Only these workers (keys), if set.
    pub only_workers: Option<Vec<String>>,
    /// Only these sections (`heartbeat`, `throughput`, `memory`, `drain`), if set.
    pub only_sections: Option<Vec<String>>,
}

impl Config {
    pub fn full() -> Config {
        Config {
            quick: false,
            interval: Duration::from_millis(100),
            idle: Duration::from_secs(3),
            load: Duration::from_secs(30),
            spin: Duration::from_millis(1000),
            probe_every: Duration::from_millis(20),
            levels: vec![1, 64, 1000],
            warmup: Duration::from_secs(1),
            warmup_cap: Duration::from_secs(30),
            window: Duration::from_secs(4),
            finish_timeout: Duration::from_secs(30),
            payload_bytes: 1024,
            startups: 5,
            connection_counts: vec![10, 100],
            settle: Duration::from_secs(2),
            drain_in_flight: 64,
            drain_window: Duration::from_secs(3),
            out_dir: workspace_root().join("bench-out"),
            dev_nice: Some(-10),
            autogroup_nice: None,
            only_workers: None,
            only_sections: None,
        }
    }

    pub fn quick() -> Config {
        Config {
            quick: true,
            idle: Duration::from_millis(600),
            load: Duration::from_secs(4),
            spin: Duration::from_millis(500),
            warmup: Duration::from_millis(300),
            warmup_cap: Duration::from_secs(2),
            window: Duration::from_millis(700),
            finish_timeout: Duration::from_secs(3),
            startups: 2,
            connection_counts: vec![10],
            settle: Duration::from_millis(500),
            drain_window: Duration::from_millis(1500),
            ..Config::full()
        }
    }

    pub fn section(&self, name: &str) -> bool {
        self.only_sections.as_ref().is_none_or(|s| s.iter().any(|x| x == name))
    }

    pub fn wants(&self, worker: &WorkerSpec) -> bool {
        self.only_workers.as_ref().is_none_or(|w| w.iter().any(|x| x == worker.key))
    }
}

/// How a worker process is started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A binary of this crate, next to `compare`, with these arguments.
    Rust { bin: &'static str, args: &'static [&'static str] },
    /// `node tests/js/bench-worker.mjs`; `isolate: false` is the SDK's same-thread mode.
    Js { isolate: bool },
}

/// One row of every table.
#[derive(Debug, Clone)]
pub struct WorkerSpec {
    pub key: &'static str,
    pub label: &'static str,
    pub kind: Kind,
    /// One of this project's adapters in its isolated (default) mode: the targets apply to it.
    pub ours_isolated: bool,
}

impl WorkerSpec {
    pub fn is_js(&self) -> bool {
        matches!(self.kind, Kind::Js { .. })
    }
}

/// Every worker, in table order. The JS worker-thread mode (`js`) is the baseline of the ratios.
pub fn workers() -> Vec<WorkerSpec> {
    let rust = |key, label, bin, args, ours_isolated| WorkerSpec {
        key,
        label,
        kind: Kind::Rust { bin, args },
        ours_isolated,
    };
    vec![
        rust("tokio", "connect-tokio isolated", "worker-tokio", &[][..], true),
        rust("tokio-same", "connect-tokio same-runtime", "worker-tokio", &["--same-runtime"][..], false),
        rust("blocking", "connect-blocking", "worker-blocking", &[][..], true),
        rust("async-std", "connect-async-std", "worker-async-std", &[][..], true),
        WorkerSpec {
            key: "js",
            label: "JS SDK worker-thread",
            kind: Kind::Js { isolate: true },
            ours_isolated: false,
        },
        WorkerSpec {
            key: "js-same",
            label: "JS SDK same-thread",
            kind: Kind::Js { isolate: false },
            ours_isolated: false,
        },
    ]
}

/// The key of the baseline row.
pub const BASELINE: &str = "js";

/// The workspace root (two levels above this crate).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."))
}

pub fn js_dir() -> PathBuf {
    workspace_root().join("tests/js")
}
