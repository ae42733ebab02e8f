//! The main job: a worker serving real functions through connect-dev, with
//! CPU-heavy user code saturating every core while heartbeats stay on time.
//!
//! ```sh
//! cargo run --release -p connect-tokio --example demo                  # isolated (default)
//! cargo run --release -p connect-tokio --example demo -- --same-runtime # what isolation prevents
//! ```
//!
//! It starts connect-dev in-process (or, when `INNGEST_BASE_URL`,
//! `INNGEST_API_BASE_URL` or `INNGEST_DEV=<url>` point elsewhere, uses that
//! gateway), registers a CPU-bound function that does not yield for seconds
//! and a quick one, sends events that keep every core busy in user code for
//! about 20 s, and prints one summary line measured at the gateway.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use connect_tokio::{Function, Worker};
use serde_json::json;

struct Args {
    same_runtime: bool,
    seconds: u64,
    heartbeat_ms: u64,
    spin_ms: u64,
}

fn parse_args() -> Args {
    let mut args = Args { same_runtime: false, seconds: 20, heartbeat_ms: 250, spin_ms: 2000 };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut num = |name: &str| -> u64 {
            it.next().and_then(|v| v.parse().ok()).unwrap_or_else(|| {
                eprintln!("{name} needs a number");
                std::process::exit(2)
            })
        };
        match a.as_str() {
            "--same-runtime" => args.same_runtime = true,
            "--seconds" => args.seconds = num("--seconds"),
            "--heartbeat-ms" => args.heartbeat_ms = num("--heartbeat-ms"),
            "--spin-ms" => args.spin_ms = num("--spin-ms"),
            "-h" | "--help" => {
                println!("demo [--same-runtime] [--seconds N] [--heartbeat-ms N] [--spin-ms N]");
                std::process::exit(0);
            }
            other => {
                eprintln!("unknown argument {other:?} (try --help)");
                std::process::exit(2);
            }
        }
    }
    args
}

/// Spin the CPU for `ms` without yielding: the kind of handler that starved
/// heartbeats in the incident this project exists for.
fn spin(ms: u64) -> u64 {
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

fn main() {
    let args = parse_args();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn,demo=info".into()),
        )
        .init();
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cores)
        .enable_all()
        .build()
        .expect("runtime");
    let code = runtime.block_on(run(args, cores));
    runtime.shutdown_timeout(Duration::from_secs(1));
    std::process::exit(code);
}

async fn run(args: Args, cores: usize) -> i32 {
    let external = ["INNGEST_BASE_URL", "INNGEST_API_BASE_URL"]
        .iter()
        .any(|v| std::env::var(v).is_ok_and(|s| !s.is_empty()))
        || std::env::var("INNGEST_DEV").is_ok_and(|s| s.starts_with("http"));
    let interval = Duration::from_millis(args.heartbeat_ms);
    let dev = if external {
        println!(
            "using the gateway named by INNGEST_* variables (heartbeats are measured at connect-dev only)"
        );
        None
    } else {
        let config =
            connect_dev::DevConfig { heartbeat_interval: interval, ..connect_dev::DevConfig::ephemeral() };
        let dev = connect_dev::DevServer::spawn(config).expect("connect-dev starts");
        println!("connect-dev: api {} gateway {}", dev.api_url(), dev.gateway_url());
        Some(dev)
    };

    let crunched = Arc::new(AtomicUsize::new(0));
    let spin_ms = args.spin_ms;
    let counter = crunched.clone();
    let mut builder = Worker::builder("demo")
        .same_runtime(args.same_runtime)
        .function(Function::new("crunch").name("CPU-heavy").on_event("demo/crunch").retries(0), move |ctx| {
            let counter = counter.clone();
            async move {
                // Deliberately blocking inside async code: no .await for seconds.
                let x = spin(spin_ms);
                counter.fetch_add(1, Ordering::Relaxed);
                Ok(json!({ "n": ctx.event().data["n"], "x": x % 1000 }))
            }
        })
        .function(Function::new("quick").name("Quick").on_event("demo/quick").retries(0), |ctx| async move {
            Ok(json!({ "echo": ctx.event().data }))
        });
    if let Some(dev) = &dev {
        builder = builder.api_base_url(dev.api_url()).dev(true);
    }
    let worker = match builder.connect().await {
        Ok(w) => w,
        Err(e) => {
            eprintln!("worker could not start: {e}");
            return 1;
        }
    };
    if let Err(e) = tokio::time::timeout(Duration::from_secs(30), worker.ready())
        .await
        .unwrap_or(Err(connect_tokio::WorkerError::Fatal("not ready within 30 s".into())))
    {
        eprintln!("worker not ready: {e}");
        return 1;
    }
    println!(
        "worker ACTIVE ({} mode); {cores} cores busy in user code for ~{} s",
        if args.same_runtime { "same-runtime" } else { "isolated" },
        args.seconds
    );

    let Some(dev) = dev else {
        println!("external gateway: send demo/crunch and demo/quick events yourself; Ctrl-C to stop");
        let _ = worker.closed().await;
        return 0;
    };

    // Enough CPU-bound runs to keep every core busy for `seconds`.
    let crunch_runs = ((args.seconds * 1000 / spin_ms.max(1)) as usize * cores).max(cores);
    let quick_runs = crunch_runs;
    let started = Instant::now();
    let mut event_ids = Vec::new();
    for n in 0..crunch_runs {
        event_ids.push(dev.send_event("demo/crunch", json!({ "n": n })).expect("event accepted"));
    }
    for n in 0..quick_runs {
        event_ids.push(dev.send_event("demo/quick", json!({ "n": n })).expect("event accepted"));
    }
    println!("sent {crunch_runs} demo/crunch and {quick_runs} demo/quick events");

    let deadline = Instant::now() + Duration::from_secs(args.seconds * 4 + 60);
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
                "t={:>4.1}s completed={completed}/{} crunched={} heartbeats={hb} state={:?}",
                started.elapsed().as_secs_f64(),
                event_ids.len(),
                crunched.load(Ordering::Relaxed),
                worker.state()
            );
        }
        // A blocking sleep: the runtime's workers are all busy in user code, so its timers fire late.
        std::thread::sleep(Duration::from_millis(100));
    };

    worker.shutdown();
    let _ = tokio::time::timeout(Duration::from_secs(10), worker.closed()).await;
    let conns = dev.connections().unwrap_or_default();
    let heartbeats: u64 = conns.iter().map(|c| c.heartbeats).sum();
    let late: u64 = conns.iter().map(|c| c.late).sum();
    let max_gap = conns.iter().map(|c| c.max_gap).max().unwrap_or_default();
    let unhealthy: u64 = conns.iter().map(|c| c.marked_unhealthy).sum();
    for c in &conns {
        if let Some(reason) = &c.disconnect_reason {
            println!("connection {} closed: {reason}", c.connection_id);
        }
    }
    dev.shutdown();
    if unhealthy > 0 || conns.len() > 1 {
        println!(
            "the gateway marked the worker unhealthy {unhealthy} times; connections used: {}",
            conns.len()
        );
    }
    println!(
        "summary: runs={} completed={completed} failed={failed} heartbeats={heartbeats} late={late} max_gap_ms={} interval_ms={}",
        event_ids.len(),
        max_gap.as_millis(),
        interval.as_millis()
    );
    if completed == event_ids.len() && failed == 0 { 0 } else { 1 }
}
