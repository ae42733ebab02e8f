//! What every adapter's demo shares, written once: the arguments, the
//! connect-dev it starts in-process, the two functions (a CPU-bound one that
//! does not yield for seconds and a quick one), the load that keeps every
//! core busy in user code, the progress lines, and the summary line measured
//! at the gateway:
//!
//! `summary: runs=N completed=N failed=0 heartbeats=H late=L max_gap_ms=X interval_ms=Y`
//!
//! (`late` counts gaps between heartbeats over 1.25 x the interval). An
//! adapter's demo only builds its worker with [`crunch`] and [`quick`] as
//! handler bodies and hands it to [`Demo::run`] behind [`DemoWorker`].

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use connect_adapter::{Ctx, Function, HandlerResult};
use serde_json::json;

/// The command line every demo takes, plus the adapter's own flags.
#[derive(Debug)]
pub struct Args {
    pub seconds: u64,
    pub heartbeat_ms: u64,
    pub spin_ms: u64,
    /// Which of the adapter's own flags were given.
    pub flags: Vec<&'static str>,
}

impl Args {
    /// Parse `std::env::args`; `flags` are the adapter's extra switches.
    pub fn parse(flags: &[&'static str]) -> Args {
        let mut args = Args { seconds: 20, heartbeat_ms: 250, spin_ms: 2000, flags: Vec::new() };
        let mut it = std::env::args().skip(1);
        while let Some(a) = it.next() {
            let mut num = |name: &str| -> u64 {
                it.next().and_then(|v| v.parse().ok()).unwrap_or_else(|| {
                    eprintln!("{name} needs a number");
                    std::process::exit(2)
                })
            };
            match a.as_str() {
                "--seconds" => args.seconds = num("--seconds"),
                "--heartbeat-ms" => args.heartbeat_ms = num("--heartbeat-ms"),
                "--spin-ms" => args.spin_ms = num("--spin-ms"),
                "-h" | "--help" => {
                    let extra: String = flags.iter().map(|f| format!("[{f}] ")).collect();
                    println!("demo {extra}[--seconds N] [--heartbeat-ms N] [--spin-ms N]");
                    std::process::exit(0);
                }
                other => match flags.iter().find(|f| **f == other) {
                    Some(f) => args.flags.push(f),
                    None => {
                        eprintln!("unknown argument {other:?} (try --help)");
                        std::process::exit(2);
                    }
                },
            }
        }
        args
    }

    pub fn has(&self, flag: &str) -> bool {
        self.flags.contains(&flag)
    }
}

/// Log warnings (and the demo's info) unless `RUST_LOG` says otherwise.
pub fn init_tracing() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn,demo=info".into()),
        )
        .init();
}

/// The cores the load keeps busy.
pub fn cores() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2)
}

/// Spin the CPU for `ms` without yielding: the kind of handler that starved
/// heartbeats in the incident this project exists for.
pub fn spin(ms: u64) -> u64 {
    let until = Instant::now() + Duration::from_millis(ms);
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut rounds = 0u64;
    while Instant::now() < until {
        for _ in 0..10_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
        }
        rounds += 1;
    }
    std::hint::black_box(x) ^ rounds
}

pub fn crunch_function() -> Function {
    Function::new("crunch").name("CPU-heavy").on_event("demo/crunch").retries(0)
}

pub fn quick_function() -> Function {
    Function::new("quick").name("Quick").on_event("demo/quick").retries(0)
}

/// The CPU-bound handler body: no yield, no await, for `spin_ms`.
pub fn crunch(ctx: &Ctx, spin_ms: u64, done: &AtomicUsize) -> HandlerResult {
    let x = spin(spin_ms);
    done.fetch_add(1, Ordering::Relaxed);
    Ok(json!({ "n": ctx.event().data["n"], "x": x % 1000 }))
}

/// The quick handler body.
pub fn quick(ctx: &Ctx) -> HandlerResult {
    Ok(json!({ "echo": ctx.event().data }))
}

/// The worker under demonstration, whatever its adapter.
pub trait DemoWorker {
    fn state(&self) -> String;
    fn shutdown(&self);
    /// Wait until closed, at most `timeout` (`None`: for ever).
    fn wait_closed(&self, timeout: Option<Duration>);
}

/// A demo run: connect-dev (unless `INNGEST_*` variables name another
/// gateway) and the load.
#[derive(Debug)]
pub struct Demo {
    args: Args,
    dev: Option<connect_dev::DevServer>,
    /// Runs of `crunch` finished; pass to [`crunch`].
    pub crunched: Arc<AtomicUsize>,
}

impl Demo {
    pub fn start(args: Args) -> Demo {
        let external = ["INNGEST_BASE_URL", "INNGEST_API_BASE_URL"]
            .iter()
            .any(|v| std::env::var(v).is_ok_and(|s| !s.is_empty()))
            || std::env::var("INNGEST_DEV").is_ok_and(|s| s.starts_with("http"));
        let dev = if external {
            println!(
                "using the gateway named by INNGEST_* variables (heartbeats are measured at connect-dev only)"
            );
            None
        } else {
            let interval = Duration::from_millis(args.heartbeat_ms);
            let config = connect_dev::DevConfig {
                heartbeat_interval: interval,
                ..connect_dev::DevConfig::ephemeral()
            };
            let dev = connect_dev::DevServer::spawn(config).expect("connect-dev starts");
            println!("connect-dev: api {} gateway {}", dev.api_url(), dev.gateway_url());
            Some(dev)
        };
        Demo { args, dev, crunched: Arc::default() }
    }

    pub fn args(&self) -> &Args {
        &self.args
    }

    /// The API the worker should use: the in-process connect-dev's, if any.
    pub fn api_url(&self) -> Option<String> {
        self.dev.as_ref().map(|d| d.api_url())
    }

    /// Send the load, report progress, shut the worker down and print the
    /// summary. Returns the process exit code.
    pub fn run(self, worker: &dyn DemoWorker, mode: &str) -> i32 {
        let cores = cores();
        let Args { seconds, spin_ms, heartbeat_ms, .. } = self.args;
        println!("worker ACTIVE ({mode}); {cores} cores busy in user code for ~{seconds} s");
        let Some(dev) = self.dev else {
            println!("external gateway: send demo/crunch and demo/quick events yourself; Ctrl-C to stop");
            worker.wait_closed(None);
            return 0;
        };
        // Enough CPU-bound runs to keep every core busy for `seconds`.
        let crunch_runs = ((seconds * 1000 / spin_ms.max(1)) as usize * cores).max(cores);
        let started = Instant::now();
        let mut event_ids = Vec::new();
        for n in 0..crunch_runs {
            event_ids.push(dev.send_event("demo/crunch", json!({ "n": n })).expect("event accepted"));
        }
        for n in 0..crunch_runs {
            event_ids.push(dev.send_event("demo/quick", json!({ "n": n })).expect("event accepted"));
        }
        println!("sent {crunch_runs} demo/crunch and {crunch_runs} demo/quick events");

        let deadline = Instant::now() + Duration::from_secs(seconds * 4 + 60);
        let mut last_print = Instant::now();
        let (completed, failed) = loop {
            let runs: Vec<_> =
                event_ids.iter().flat_map(|id| dev.runs_for_event(id).unwrap_or_default()).collect();
            let completed = runs.iter().filter(|r| r.status == connect_dev::RunStatus::Completed).count();
            let failed = runs.iter().filter(|r| r.status == connect_dev::RunStatus::Failed).count();
            if completed + failed >= event_ids.len() || Instant::now() > deadline {
                break (completed, failed);
            }
            if last_print.elapsed() >= Duration::from_secs(2) {
                last_print = Instant::now();
                let hb: u64 = dev.connections().unwrap_or_default().iter().map(|c| c.heartbeats).sum();
                println!(
                    "t={:>4.1}s completed={completed}/{} crunched={} heartbeats={hb} state={}",
                    started.elapsed().as_secs_f64(),
                    event_ids.len(),
                    self.crunched.load(Ordering::Relaxed),
                    worker.state()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        };

        // Name what did not finish: the first thing to look at if a run is lost.
        for id in &event_ids {
            for run in dev.runs_for_event(id).unwrap_or_default() {
                if !matches!(run.status, connect_dev::RunStatus::Completed) {
                    println!("unfinished: {run:?}");
                }
            }
        }
        worker.shutdown();
        worker.wait_closed(Some(Duration::from_secs(10)));
        // The close handshake may still be on its way; give the gateway a moment to record it.
        let all_closed = |c: &[connect_dev::ConnectionInfo]| {
            c.iter().all(|c| c.status == connect_dev::ConnStatus::Disconnected)
        };
        let conns = dev
            .wait_for_connections_where(all_closed, Duration::from_secs(2))
            .or_else(|_| dev.connections())
            .unwrap_or_default();
        let heartbeats: u64 = conns.iter().map(|c| c.heartbeats).sum();
        let late: u64 = conns.iter().map(|c| c.late).sum();
        let max_gap = conns.iter().map(|c| c.max_gap).max().unwrap_or_default();
        let unhealthy: u64 = conns.iter().map(|c| c.marked_unhealthy).sum();
        for c in &conns {
            // Where the late gaps fell (index of the heartbeat after READY), for diagnosis.
            let interval = Duration::from_millis(heartbeat_ms);
            let late: Vec<_> = c.gaps.iter().enumerate().filter(|(_, g)| **g * 4 > interval * 5).collect();
            if !late.is_empty() {
                println!("connection {} late gaps (heartbeat #, gap): {late:?}", c.connection_id);
            }
            if let Some(reason) = &c.disconnect_reason {
                println!("connection {} closed: {reason}", c.connection_id);
            }
        }
        dev.shutdown();
        let dropped = conns
            .iter()
            .filter(|c| c.disconnect_reason.as_deref() == Some("CONSECUTIVE_HEARTBEATS_MISSED"))
            .count();
        if unhealthy > 0 || conns.len() > 1 || dropped > 0 {
            println!(
                "connections used: {}; dropped by the gateway for missed heartbeats: {dropped}; found stale by the \
                 router while routing a run: {unhealthy}",
                conns.len()
            );
        }
        println!(
            "summary: runs={} completed={completed} failed={failed} heartbeats={heartbeats} late={late} max_gap_ms={} interval_ms={}",
            event_ids.len(),
            max_gap.as_millis(),
            heartbeat_ms
        );
        if completed == event_ids.len() && failed == 0 { 0 } else { 1 }
    }
}
