//! This project's workers and the Inngest JS SDK worker, side by side against
//! one connect-dev: heartbeats under CPU starvation, throughput and latency,
//! memory and start-up, drain. See the `connect_bench` crate docs.
//!
//! ```text
//! cargo run --release -p connect-bench --bin compare -- [--quick] [--workers tokio,js] [--sections heartbeat,memory] [--out DIR]
//! ```

use std::process::Command;
use std::time::Instant;

use connect_bench::config::{Config, WorkerSpec, workers};
use connect_bench::procs::{Env, hog_main, renice_thread};
use connect_bench::report::{self, Row};
use connect_bench::{drain, heartbeat, memory, svg, throughput};
use connect_dev::{DevConfig, DevServer};
use serde_json::json;

/// Set in the re-executed orchestrator that leads its own session.
const SESSION_MARK: &str = "CONNECT_BENCH_OWN_SESSION";

fn usage() -> ! {
    println!(
        "compare [--quick] [--workers KEY,..] [--sections heartbeat,throughput,memory,drain] [--out DIR] [--no-renice] [--levels 1,64,1000] [--autogroup-nice N]\n\
         workers: {}",
        workers().iter().map(|w| w.key).collect::<Vec<_>>().join(", ")
    );
    std::process::exit(0)
}

fn parse_args() -> Config {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut cfg = if args.iter().any(|a| a == "--quick") { Config::quick() } else { Config::full() };
    let list = |v: Option<&String>| -> Vec<String> {
        v.map(|v| v.split(',').map(str::to_owned).collect()).unwrap_or_else(|| usage())
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--quick" => {}
            "--workers" => cfg.only_workers = Some(list(it.next())),
            "--sections" => cfg.only_sections = Some(list(it.next())),
            "--out" => cfg.out_dir = it.next().unwrap_or_else(|| usage()).into(),
            "--no-renice" => cfg.dev_nice = None,
            "--autogroup-nice" => {
                cfg.autogroup_nice = Some(it.next().and_then(|v| v.parse().ok()).unwrap_or_else(|| usage()))
            }
            "--levels" => {
                cfg.levels = list(it.next()).iter().map(|v| v.parse().unwrap_or_else(|_| usage())).collect()
            }
            _ => usage(),
        }
    }
    cfg
}

/// Build the worker binaries next to this one (a no-op when fresh) when run through cargo.
fn build_workers() {
    let Ok(cargo) = std::env::var("CARGO") else { return };
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--quiet", "-p", "connect-bench", "--bins"]);
    if !cfg!(debug_assertions) {
        cmd.arg("--release");
    }
    if !cmd.status().is_ok_and(|s| s.success()) {
        eprintln!("warning: building the worker binaries failed; rows without a binary are skipped");
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("__hog") {
        let n = args.get(2).and_then(|v| v.parse().ok()).unwrap_or(1);
        let ms = args.get(3).and_then(|v| v.parse().ok()).unwrap_or(1000);
        return hog_main(n, ms);
    }
    let mut cfg = parse_args();
    if cfg!(debug_assertions) {
        eprintln!("warning: a debug build; the figures mean little without --release");
    }
    build_workers();
    if let Some(nice) = cfg.autogroup_nice {
        match std::env::var(SESSION_MARK) {
            // Run again as the leader of a new session: its own autogroup, whose nice we may set
            // without touching the caller's session.
            Err(_) => {
                // By path, not current_exe() itself: cargo re-links the binary on every build.
                let exe = std::env::current_exe().expect("own path").with_file_name("compare");
                let status = Command::new("setsid")
                    .arg("--wait")
                    .arg(exe)
                    .args(&args[1..])
                    .env(SESSION_MARK, "1")
                    .status();
                match status {
                    Ok(s) => std::process::exit(s.code().unwrap_or(1)),
                    Err(e) => {
                        eprintln!("note: no setsid ({e}); running in the caller's session at its nice");
                        cfg.autogroup_nice = None;
                    }
                }
            }
            Ok(_) => {
                if let Err(e) = std::fs::write("/proc/self/autogroup", nice.to_string()) {
                    eprintln!("note: could not set this session's autogroup nice to {nice} ({e})");
                    cfg.autogroup_nice = None;
                }
            }
        }
    }
    let log_dir = cfg.out_dir.join("logs");
    std::fs::create_dir_all(&log_dir).expect("create the output directory");
    let env = Env::detect(&log_dir);
    let began = Instant::now();
    let meta = meta(&cfg, &env);

    let dev = DevServer::spawn(DevConfig { heartbeat_interval: cfg.interval, ..DevConfig::ephemeral() })
        .expect("connect-dev starts");
    let mut meta = meta;
    meta["dev_server_nice"] = match cfg.dev_nice {
        None => json!(0),
        Some(n) => match renice_thread("connect-dev", n) {
            Ok(_) => json!(n),
            Err(e) => {
                eprintln!("note: connect-dev's thread keeps nice 0 ({e})");
                json!(0)
            }
        },
    };
    println!("{}", header(&cfg, &meta));
    let mut rows: Vec<Row> = workers()
        .into_iter()
        .filter(|w| cfg.wants(w))
        .map(|w| {
            let skip = env.skip_reason(&w);
            Row::new(w, skip)
        })
        .collect();

    type Section = fn(&Config, &Env, &DevServer, &WorkerSpec, &mut Row);
    let sections: [(&str, Section); 4] = [
        ("heartbeat", |c, e, d, w, r| r.heartbeat = Some(heartbeat::run(c, e, d, w))),
        ("throughput", |c, e, d, w, r| r.throughput = Some(throughput::run(c, e, d, w))),
        // Drain before memory: the 100-connection processes leave many connection records behind.
        ("drain", |c, e, d, w, r| r.drain = Some(drain::run(c, e, d, w))),
        ("memory", |c, e, d, w, r| r.memory = Some(memory::run(c, e, d, w))),
    ];
    for (name, section) in sections {
        if !cfg.section(name) {
            continue;
        }
        for row in rows.iter_mut().filter(|r| r.skipped.is_none()) {
            let spec = row.spec.clone();
            let t = Instant::now();
            eprint!("[{:>5.1}s] {name}: {} ...", began.elapsed().as_secs_f64(), spec.label);
            section(&cfg, &env, &dev, &spec, row);
            eprintln!(" {:.1}s", t.elapsed().as_secs_f64());
        }
    }
    dev.shutdown();

    let tables = report::tables(&cfg, &rows);
    let targets = report::targets(&cfg, &rows);
    println!("{tables}");
    if targets.is_empty() {
        println!("Targets: not evaluated (no JS SDK worker-thread row measured in this run)");
    } else {
        println!("Targets (ratios to the JS SDK worker-thread mode, measured in this run):");
        for t in &targets {
            println!("  {}", t.line());
        }
    }
    let elapsed = began.elapsed();
    println!("\ntotal {:.0} s; results in {}", elapsed.as_secs_f64(), cfg.out_dir.display());

    meta["elapsed_s"] = json!(elapsed.as_secs_f64());
    let out = report::json(&cfg, meta, &rows, &targets);
    let text = serde_json::to_string_pretty(&out).expect("json");
    std::fs::write(cfg.out_dir.join("results.json"), text).expect("write results.json");
    let series: Vec<(String, Vec<(f64, f64)>)> = rows
        .iter()
        .filter_map(|r| match &r.heartbeat {
            Some(Ok(h)) => Some((r.spec.label.to_owned(), h.samples.clone())),
            _ => None,
        })
        .collect();
    if !series.is_empty() {
        let title = format!(
            "Heartbeat gaps at connect-dev while handlers spin on every core ({} ms interval, {} cores)",
            cfg.interval.as_millis(),
            cores()
        );
        let plot = svg::heartbeats(&title, &series, cfg.interval.as_secs_f64() * 1000.0);
        std::fs::write(cfg.out_dir.join("heartbeats.svg"), plot).expect("write heartbeats.svg");
    }
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

fn cmd_out(cmd: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(cmd).args(args).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn meta(cfg: &Config, env: &Env) -> serde_json::Value {
    let root = connect_bench::config::workspace_root();
    json!({
        "command": std::env::args().collect::<Vec<_>>().join(" "),
        "mode": if cfg.quick { "quick" } else { "full" },
        "cores": cores(),
        "loadavg_at_start": std::fs::read_to_string("/proc/loadavg").ok().map(|s| s.trim().to_owned()),
        "kernel": cmd_out("uname", &["-sr"]),
        "git_commit": cmd_out("git", &["-C", &root.to_string_lossy(), "rev-parse", "--short", "HEAD"]),
        "node": env.node.as_ref().ok(),
        "js_sdk": "inngest@4.24.0 (tests/js/package-lock.json)",
        "dev_server": "connect-dev in the orchestrator process, on its own thread",
        "dev_server_nice_wanted": cfg.dev_nice,
        "session_autogroup": std::fs::read_to_string("/proc/self/autogroup").ok().map(|s| s.trim().to_owned()),
        "unix_time": std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()),
    })
}

fn header(cfg: &Config, meta: &serde_json::Value) -> String {
    format!(
        "connect-bench compare ({}): {} cores, load average {} at start, node {}, commit {}\n\
         connect-dev in this process (its thread at nice {}), session {}",
        if cfg.quick { "--quick" } else { "full run" },
        meta["cores"],
        meta["loadavg_at_start"].as_str().unwrap_or("?"),
        meta["node"].as_str().unwrap_or("not found"),
        meta["git_commit"].as_str().unwrap_or("?"),
        meta["dev_server_nice"],
        meta["session_autogroup"].as_str().unwrap_or("?"),
    )
}
