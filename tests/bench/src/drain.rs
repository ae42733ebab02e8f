//! Section 4: a gateway drain under load. With runs in flight (closed loop),
//! the dev server sends GATEWAY_CLOSING; the replacement connection's READY
//! (the moment the gateway sent it, from its connection record) ends the
//! measured time. The load goes on across the drain; afterwards every run sent
//! must complete: runs lost are those that failed or never ended.

use std::time::{Duration, Instant};

use connect_dev::DevServer;
use serde_json::{Value, json};

use crate::config::{Config, WorkerSpec};
use crate::driver::{Driver, cancel_runs, payload};
use crate::procs::{Env, Proc};
use crate::stats::ms;

#[derive(Debug, Clone, Default)]
pub struct DrainResult {
    /// GATEWAY_CLOSING sent to the replacement's READY sent.
    pub replacement_ms: Option<f64>,
    /// When the old connection closed, after GATEWAY_CLOSING.
    pub old_closed_ms: Option<f64>,
    pub old_close_reason: Option<String>,
    /// Connections that closed in the load before the drain began (none expected).
    pub closed_before: Vec<String>,
    pub runs_sent: usize,
    pub completed: usize,
    pub lost: usize,
}

impl DrainResult {
    pub fn json(&self) -> Value {
        json!({
            "closing_to_replacement_active_ms": self.replacement_ms,
            "closing_to_old_closed_ms": self.old_closed_ms,
            "old_close_reason": self.old_close_reason,
            "connections_closed_before_the_drain": self.closed_before,
            "runs_sent": self.runs_sent, "completed": self.completed, "lost": self.lost,
        })
    }
}

pub fn run(cfg: &Config, env: &Env, dev: &DevServer, spec: &WorkerSpec) -> Result<DrainResult, String> {
    let app = format!("dr-{}", spec.key);
    let prefix = format!("{app}-");
    let mut proc = Proc::spawn(env, dev, spec, &app, 1).map_err(|e| format!("spawn: {e}"))?;
    proc.wait_ready(Duration::from_secs(60))?;
    let mine = |dev: &DevServer| -> Result<Vec<connect_dev::ConnectionInfo>, String> {
        let all = dev.connections().map_err(|e| e.to_string())?;
        Ok(all.into_iter().filter(|c| c.instance_id.starts_with(&prefix)).collect())
    };
    let mut d = Driver::new(dev, &app, payload(cfg.payload_bytes))?;
    d.send(cfg.drain_in_flight)?;
    d.pump_until(Instant::now() + Duration::from_secs(1), true)?;
    let closing = Instant::now();
    dev.drain().map_err(|e| e.to_string())?;
    d.pump_until(closing + cfg.drain_window, true)?;
    d.finish(cfg.finish_timeout);
    cancel_runs(dev, d.unfinished());
    let conns = mine(dev)?;
    proc.stop(Duration::from_secs(3));
    // The connection live when GATEWAY_CLOSING went out, and the first READY after it.
    let old_info = conns
        .iter()
        .filter(|c| c.connected_at <= closing && c.disconnected_at.is_none_or(|d| d > closing))
        .max_by_key(|c| c.conn);
    let replacement = conns.iter().map(|c| c.connected_at).filter(|at| *at > closing).min();
    // With no live connection at the drain (lost to missed heartbeats before it), there is nothing to replace.
    let replacement = replacement.filter(|_| old_info.is_some());
    let completed = d.ended.iter().filter(|e| e.completed).count();
    Ok(DrainResult {
        replacement_ms: replacement.map(|at| ms(at.saturating_duration_since(closing))),
        old_closed_ms: old_info
            .and_then(|c| c.disconnected_at)
            .map(|at| ms(at.saturating_duration_since(closing))),
        old_close_reason: old_info.and_then(|c| c.disconnect_reason.clone()),
        closed_before: conns
            .iter()
            .filter(|c| c.disconnected_at.is_some_and(|d| d <= closing))
            .map(|c| c.disconnect_reason.clone().unwrap_or_default())
            .collect(),
        runs_sent: d.total_sent,
        completed,
        lost: d.total_sent - completed,
    })
}
