//! Section 3: memory and start-up. Process start to ACTIVE is measured from
//! just before the spawn to the moment the worker's `ready` line is read
//! (printed once its connection is ACTIVE); idle RSS is read from
//! /proc/PID/status after the worker has been idle for `settle`; the RSS per
//! extra connection is `(RSS(N) - RSS(1)) / (N - 1)` for N connections in one process.

use std::time::Duration;

use connect_dev::DevServer;
use serde_json::{Value, json};

use crate::config::{Config, WorkerSpec};
use crate::procs::{Env, Proc};
use crate::stats::{median, ms};

#[derive(Debug, Clone, Default)]
pub struct MemoryResult {
    pub startup_ms: Vec<f64>,
    pub startup_median_ms: Option<f64>,
    pub idle_rss_kib: Option<u64>,
    /// (connections, RSS KiB, KiB per extra connection, ms to all ACTIVE)
    pub per_connection: Vec<(usize, u64, f64, f64)>,
}

impl MemoryResult {
    pub fn json(&self) -> Value {
        json!({
            "startup_ms": { "median": self.startup_median_ms, "samples": self.startup_ms },
            "idle_rss_kib": self.idle_rss_kib,
            "per_connection": self.per_connection.iter().map(|(n, rss, per, up)| json!({
                "connections": n, "rss_kib": rss, "kib_per_extra_connection": per, "all_active_ms": up,
            })).collect::<Vec<_>>(),
        })
    }
}

pub fn run(cfg: &Config, env: &Env, dev: &DevServer, spec: &WorkerSpec) -> Result<MemoryResult, String> {
    let mut r = MemoryResult::default();
    for i in 0..cfg.startups {
        let mut proc = Proc::spawn(env, dev, spec, &format!("up-{}-{i}", spec.key), 1)
            .map_err(|e| format!("spawn: {e}"))?;
        let ready = proc.wait_ready(Duration::from_secs(60))?;
        r.startup_ms.push(ms(ready - proc.spawned));
        if i == 0 {
            std::thread::sleep(cfg.settle);
            r.idle_rss_kib = proc.rss_kib();
        }
        proc.stop(Duration::from_secs(3));
    }
    r.startup_median_ms = median(&r.startup_ms);
    let base = r.idle_rss_kib.ok_or("no RSS (is /proc mounted?)")?;
    for &n in &cfg.connection_counts {
        let mut proc = Proc::spawn(env, dev, spec, &format!("mem-{}-{n}", spec.key), n)
            .map_err(|e| format!("spawn: {e}"))?;
        let ready = proc.wait_ready(Duration::from_secs(60 + n as u64 * 2))?;
        std::thread::sleep(cfg.settle);
        let rss = proc.rss_kib().ok_or("no RSS")?;
        let per = (rss as f64 - base as f64) / (n.max(2) - 1) as f64;
        r.per_connection.push((n, rss, per, ms(ready - proc.spawned)));
        proc.stop(Duration::from_secs(5));
    }
    Ok(r)
}
