//! Section 2: throughput and latency of an echo function with 1 KiB of data,
//! closed loop at each runs-in-flight level: after a warm-up, runs that end
//! within the window count; latency is event sent to run ended at the dev server.

use std::time::{Duration, Instant};

use connect_dev::DevServer;
use serde_json::{Value, json};

use crate::config::{Config, WorkerSpec};
use crate::driver::{Driver, cancel_runs, payload};
use crate::heartbeat;
use crate::procs::{Env, Proc, cpu_secs};
use crate::stats::{ms, percentile};

#[derive(Debug, Clone, Default)]
pub struct Level {
    pub in_flight: usize,
    pub runs_per_sec: f64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub completed: usize,
    pub failed: usize,
    /// Runs still not ended after the level (none expected).
    pub unfinished: usize,
    /// Heartbeats during the level, as the gateway saw them: the longest gap (ms) and the
    /// connections it closed (a busy connection must keep heartbeating too).
    pub max_gap_ms: Option<f64>,
    pub closes: Vec<String>,
    /// CPU seconds per second of the level: the worker process, and this process (connect-dev and the driver).
    pub worker_cpu: Option<f64>,
    pub dev_cpu: Option<f64>,
}

impl Level {
    pub fn json(&self) -> Value {
        json!({
            "in_flight": self.in_flight, "runs_per_sec": self.runs_per_sec,
            "latency_ms": { "p50": self.p50_ms, "p99": self.p99_ms },
            "completed_in_window": self.completed, "failed": self.failed, "unfinished": self.unfinished,
            "heartbeats": { "max_gap_ms": self.max_gap_ms, "closes": self.closes },
            "cpu_per_sec": { "worker": self.worker_cpu, "dev_server_and_driver": self.dev_cpu },
        })
    }
}

pub fn run(cfg: &Config, env: &Env, dev: &DevServer, spec: &WorkerSpec) -> Result<Vec<Level>, String> {
    let app = format!("tp-{}", spec.key);
    let mut proc = Proc::spawn(env, dev, spec, &app, 1).map_err(|e| format!("spawn: {e}"))?;
    proc.wait_ready(Duration::from_secs(60))?;
    let data = payload(cfg.payload_bytes);
    let mut levels = Vec::new();
    for &n in &cfg.levels {
        let mut d = Driver::new(dev, &app, data.clone())?;
        let pid = proc.pid().to_string();
        let cpu0 = (cpu_secs(&pid), cpu_secs("self"));
        let start = Instant::now();
        d.send(n)?;
        // Warm up for the warm-up time and at least until the first `n` runs have ended (a slow
        // worker at 1000 in flight needs seconds for its first round), within a cap.
        let cap = start + cfg.warmup_cap.max(cfg.warmup);
        while Instant::now() < cap && (Instant::now() < start + cfg.warmup || d.ended.len() < n) {
            d.pump_until((Instant::now() + Duration::from_millis(10)).min(cap), true)?;
        }
        let from = Instant::now();
        let to = from + cfg.window;
        d.pump_until(to, true)?;
        let secs = (Instant::now() - start).as_secs_f64();
        let per_sec = |a: Option<f64>, b: Option<f64>| Some((b? - a?) / secs);
        let (worker_cpu, dev_cpu) = (per_sec(cpu0.0, cpu_secs(&pid)), per_sec(cpu0.1, cpu_secs("self")));
        let finished = d.finish(cfg.finish_timeout);
        let unfinished = d.unfinished();
        let unfinished_n = unfinished.len();
        cancel_runs(dev, unfinished);
        let window: Vec<_> = d.ended.iter().filter(|e| e.at >= from && e.at < to).collect();
        let lat: Vec<f64> = window.iter().filter(|e| e.completed).map(|e| ms(e.latency)).collect();
        let conns: Vec<_> = dev
            .connections()
            .map_err(|e| e.to_string())?
            .into_iter()
            .filter(|c| c.instance_id.starts_with(&format!("{app}-")))
            .collect();
        let hb = heartbeat::measure(&conns, start, Instant::now(), cfg.interval);
        levels.push(Level {
            max_gap_ms: hb.samples.iter().map(|s| s.1).max_by(f64::total_cmp),
            closes: hb.closes,
            worker_cpu,
            dev_cpu,
            in_flight: n,
            runs_per_sec: lat.len() as f64 / cfg.window.as_secs_f64(),
            p50_ms: percentile(&lat, 50.0),
            p99_ms: percentile(&lat, 99.0),
            completed: lat.len(),
            failed: d.ended.iter().filter(|e| !e.completed).count(),
            unfinished: if finished { 0 } else { unfinished_n },
        });
    }
    proc.stop(Duration::from_secs(3));
    Ok(levels)
}
