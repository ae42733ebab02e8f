//! Section 1: heartbeat punctuality under CPU starvation.
//!
//! The worker's handlers spin without yielding on every core for the load
//! time (`bench/spin` runs of `spin` ms each; a JS worker runs handlers on one
//! thread, so a hog process spins the other cores). A quick probe event every
//! `probe_every` keeps the router looking at the worker: it marks a connection
//! unhealthy when it routes and the last heartbeat is older than two
//! intervals. Every heartbeat gap the gateway recorded during the load counts;
//! a connection the gateway dropped for missed heartbeats has the silence
//! from its last heartbeat to the drop as its last gap (connect-dev records it).

use std::collections::HashSet;
use std::time::{Duration, Instant};

use connect_dev::{ConnectionInfo, DevServer, RunStatus};
use serde_json::{Value, json};

use crate::config::{Config, WorkerSpec};
use crate::driver::cancel_runs;
use crate::procs::{Env, Hog, Proc};
use crate::stats::{max, ms, percentile};
use crate::worker::{echo_event, spin_event};

#[derive(Debug, Clone, Default)]
pub struct HeartbeatResult {
    /// (seconds since the load began, gap in ms) for the plot.
    pub samples: Vec<(f64, f64)>,
    /// Gap minus the interval, ms.
    pub p50: Option<f64>,
    pub p99: Option<f64>,
    pub max: Option<f64>,
    pub over_2x: usize,
    /// The longest time without a sign of life (a heartbeat, or a new connection's READY) from
    /// the worker across all its connections, ms: unlike a gap, it spans a reconnect.
    pub max_silence: Option<f64>,
    pub marked_unhealthy: u64,
    pub connections: usize,
    /// Why connections closed during the load.
    pub closes: Vec<String>,
    pub spin_runs: usize,
    /// Spin runs that failed or had not ended soon after the load window (then cancelled).
    pub spin_runs_not_completed: usize,
    pub load_secs: f64,
    /// Lateness before the load (the instrument's own noise), ms.
    pub idle_p50: Option<f64>,
    pub idle_max: Option<f64>,
}

impl HeartbeatResult {
    pub fn json(&self) -> Value {
        json!({
            "lateness_ms": { "p50": self.p50, "p99": self.p99, "max": self.max },
            "gaps": self.samples.len(),
            "gaps_over_2x_interval": self.over_2x,
            "max_silence_ms": self.max_silence,
            "marked_unhealthy": self.marked_unhealthy,
            "connections": self.connections,
            "closes": self.closes,
            "spin_runs": self.spin_runs,
            "spin_runs_not_completed": self.spin_runs_not_completed,
            "idle_lateness_ms": { "p50": self.idle_p50, "max": self.idle_max },
            "load_secs": self.load_secs,
            "samples_s_ms": self.samples,
        })
    }
}

pub fn run(cfg: &Config, env: &Env, dev: &DevServer, spec: &WorkerSpec) -> Result<HeartbeatResult, String> {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let app = format!("hb-{}", spec.key);
    let mut proc = Proc::spawn(env, dev, spec, &app, 1).map_err(|e| format!("spawn: {e}"))?;
    proc.wait_ready(Duration::from_secs(60))?;
    let ends = dev.run_ends().map_err(|e| e.to_string())?;
    let idle_from = Instant::now() + cfg.interval * 2;
    std::thread::sleep(cfg.idle);

    // Handler threads: one per core for ours; JS runs handlers on one thread, a hog spins the other
    // cores until the load window ends (a JS worker may take longer than the load time for its runs).
    let handler_threads = if spec.is_js() { 1 } else { cores };
    let per_thread = (cfg.load.as_millis() / cfg.spin.as_millis().max(1)).max(1) as usize;
    let spin_runs = handler_threads * per_thread;
    let hog = if spec.is_js() && cores > 1 {
        Some(Hog::start(env, cores - 1, cfg.load * 2).map_err(|e| format!("hog: {e}"))?)
    } else {
        None
    };
    let started = Instant::now();
    let spin = json!({ "ms": cfg.spin.as_millis() as u64 });
    let ids = dev
        .send_events(std::iter::repeat_n((spin_event(&app), spin), spin_runs))
        .map_err(|e| e.to_string())?;
    let mut spinning: HashSet<String> = ids.into_iter().collect();
    let mut probes: HashSet<String> = HashSet::new();
    let mut failed = 0;
    // The load window ends when the last spin run ends, or at twice the load time (a worker that lost
    // its runs with its connection): the measured heartbeats are those of a starved machine.
    let cap = started + cfg.load * 2;
    let mut next_probe = started;
    while !spinning.is_empty() && Instant::now() < cap {
        if Instant::now() >= next_probe {
            let data = json!({ "probe": probes.len() });
            probes.insert(dev.send_event(&echo_event(&app), data).map_err(|e| e.to_string())?);
            next_probe += cfg.probe_every;
        }
        while let Ok(end) = ends.try_recv() {
            if spinning.remove(&end.event_id) && end.status != RunStatus::Completed {
                failed += 1;
            }
            probes.remove(&end.event_id);
        }
        std::thread::sleep(
            next_probe.saturating_duration_since(Instant::now()).min(Duration::from_millis(5)),
        );
    }
    let finished = Instant::now();
    drop(hog);
    // Runs queued behind the spins finish now; wait a little, then cancel what is left.
    let end = Instant::now() + cfg.finish_timeout.min(Duration::from_secs(10));
    while !(probes.is_empty() && spinning.is_empty()) && Instant::now() < end {
        if let Ok(e) = ends.recv_timeout(Duration::from_millis(50)) {
            if spinning.remove(&e.event_id) && e.status != RunStatus::Completed {
                failed += 1;
            }
            probes.remove(&e.event_id);
        }
    }
    let unfinished = spinning.len();
    cancel_runs(dev, spinning.into_iter().chain(probes));
    let conns: Vec<ConnectionInfo> = dev
        .connections()
        .map_err(|e| e.to_string())?
        .into_iter()
        .filter(|c| c.instance_id.starts_with(&format!("{app}-")))
        .collect();
    proc.stop(Duration::from_secs(3));
    let idle = measure(&conns, idle_from, started, cfg.interval);
    let mut r = measure(&conns, started, finished, cfg.interval);
    r.idle_p50 = idle.p50;
    r.idle_max = idle.max;
    r.spin_runs = spin_runs;
    r.spin_runs_not_completed = failed + unfinished;
    r.load_secs = (finished - started).as_secs_f64();
    Ok(r)
}

/// The gaps of `conns` that ended within `[from, to]`, plus the silence before a close in that window.
pub fn measure(conns: &[ConnectionInfo], from: Instant, to: Instant, interval: Duration) -> HeartbeatResult {
    let mut r = HeartbeatResult::default();
    let mut gaps = Vec::new();
    let mut life = Vec::new();
    for c in conns {
        life.push(c.connected_at);
        let mut at = c.connected_at;
        let mut in_window = false;
        let dropped = c.disconnect_reason.as_deref() == Some("CONSECUTIVE_HEARTBEATS_MISSED");
        for (i, gap) in c.gaps.iter().enumerate() {
            at += *gap;
            // The silence before a drop ends with the drop, not with a sign of life.
            if !(dropped && i + 1 == c.gaps.len()) {
                life.push(at);
            }
            if at >= from && at <= to {
                gaps.push((at, *gap));
                in_window = true;
            }
        }
        // A connection dropped for missed heartbeats has its silence up to the drop as its last gap.
        if let Some(closed) = c.disconnected_at
            && closed >= from
            && closed <= to
        {
            r.closes.push(c.disconnect_reason.clone().unwrap_or_default());
            in_window = true;
        }
        if in_window || (c.connected_at <= to && c.disconnected_at.is_none_or(|d| d >= from)) {
            r.connections += 1;
            r.marked_unhealthy += c.marked_unhealthy;
        }
    }
    gaps.sort_by_key(|(at, _)| *at);
    life.sort();
    let mut last = life.iter().copied().filter(|t| *t <= from).max().unwrap_or(from);
    let mut silence = Duration::ZERO;
    for t in life.iter().copied().filter(|t| *t > from && *t <= to).chain([to]) {
        silence = silence.max(t.saturating_duration_since(last));
        last = t;
    }
    r.max_silence = (!gaps.is_empty()).then(|| ms(silence));
    let lateness: Vec<f64> = gaps.iter().map(|(_, g)| ms(*g) - ms(interval)).collect();
    r.samples =
        gaps.iter().map(|(at, g)| (at.saturating_duration_since(from).as_secs_f64(), ms(*g))).collect();
    r.p50 = percentile(&lateness, 50.0);
    r.p99 = percentile(&lateness, 99.0);
    r.max = max(&lateness);
    r.over_2x = gaps.iter().filter(|(_, g)| *g > interval * 2).count();
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use connect_core::gateway::ConnId;
    use connect_dev::ConnStatus;

    fn conn(id: u64, connected_at: Instant, gaps: &[u64], closed: Option<Instant>) -> ConnectionInfo {
        ConnectionInfo {
            conn: ConnId(id),
            connection_id: String::new(),
            instance_id: "hb-x-0".into(),
            group: String::new(),
            apps: vec![],
            sdk: String::new(),
            status: if closed.is_some() { ConnStatus::Disconnected } else { ConnStatus::Ready },
            max_worker_concurrency: None,
            in_flight: 0,
            heartbeats: gaps.len() as u64,
            gaps: gaps.iter().map(|g| Duration::from_millis(*g)).collect(),
            max_gap: Duration::ZERO,
            late: 0,
            marked_unhealthy: u64::from(closed.is_some()),
            disconnect_reason: closed.map(|_| "CONSECUTIVE_HEARTBEATS_MISSED".into()),
            connected_at,
            disconnected_at: closed,
        }
    }

    /// Gaps in the window count, a close adds its silence as a gap, and the
    /// longest silence spans the reconnect to the next connection's READY.
    #[test]
    fn gaps_in_the_window_the_silence_before_a_close_and_across_a_reconnect() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        // Heartbeats at 100, 200 (before the window), 300, 400; dropped at 1000 (the silence is its
        // last gap, as connect-dev records it); a new READY at 2500.
        let old = conn(1, t0, &[100, 100, 100, 100, 600], Some(at(1000)));
        let new = conn(2, at(2500), &[101, 100], None);
        let r = measure(&[old, new], at(250), at(3000), Duration::from_millis(100));
        let gaps: Vec<f64> = r.samples.iter().map(|s| s.1).collect();
        assert_eq!(gaps, [100.0, 100.0, 600.0, 101.0, 100.0]);
        assert_eq!(r.max, Some(500.0));
        assert_eq!(r.p50, Some(0.0));
        assert_eq!(r.over_2x, 1);
        assert_eq!(r.max_silence, Some(2100.0), "from the heartbeat at 400 to the READY at 2500");
        assert_eq!((r.connections, r.marked_unhealthy), (2, 1));
        assert_eq!(r.closes, ["CONSECUTIVE_HEARTBEATS_MISSED"]);
    }
}
