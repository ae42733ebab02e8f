//! The results of one run: the printed tables, the targets with their
//! ratios to the JS SDK (worker-thread mode) measured in the same run, and the JSON.

use serde_json::{Value, json};

use crate::config::{BASELINE, Config, WorkerSpec};
use crate::drain::DrainResult;
use crate::heartbeat::HeartbeatResult;
use crate::memory::MemoryResult;
use crate::throughput::Level;

/// One worker's results; a section is `None` when it was not run, `Err` when it failed.
#[derive(Debug, Clone)]
pub struct Row {
    pub spec: WorkerSpec,
    pub skipped: Option<String>,
    pub heartbeat: Option<Result<HeartbeatResult, String>>,
    pub throughput: Option<Result<Vec<Level>, String>>,
    pub memory: Option<Result<MemoryResult, String>>,
    pub drain: Option<Result<DrainResult, String>>,
}

impl Row {
    pub fn new(spec: WorkerSpec, skipped: Option<String>) -> Row {
        Row { spec, skipped, heartbeat: None, throughput: None, memory: None, drain: None }
    }
}

fn ok<T>(r: &Option<Result<T, String>>) -> Option<&T> {
    r.as_ref().and_then(|r| r.as_ref().ok())
}

/// A row's cells, or its skip reason / error across the row.
fn cells<T>(
    row: &Row,
    section: &Option<Result<T, String>>,
    f: impl FnOnce(&T) -> Vec<String>,
) -> Vec<String> {
    let mut out = vec![row.spec.label.to_owned()];
    match (&row.skipped, section) {
        (Some(why), _) => out.push(why.clone()),
        (None, None) => out.push("not run".into()),
        (None, Some(Err(e))) => out.push(format!("error: {e}")),
        (None, Some(Ok(v))) => out.extend(f(v)),
    }
    out
}

fn f(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{v:.digits$}"))
}

fn table(head: &[&str], rows: &[Vec<String>]) -> String {
    let n = head.len();
    let mut width: Vec<usize> = head.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        if r.len() == n {
            for (w, c) in width.iter_mut().zip(r) {
                *w = (*w).max(c.chars().count());
            }
        }
    }
    let line = |r: &[String]| -> String {
        let mut s = String::new();
        for (i, c) in r.iter().enumerate() {
            let pad = if r.len() == n { width[i] } else { 0 };
            if i == 0 {
                s.push_str(&format!("{c:<pad$}"));
            } else {
                s.push_str(&format!("  {c:>pad$}"));
            }
        }
        s.trim_end().to_owned() + "\n"
    };
    let mut s = line(&head.iter().map(|h| (*h).to_owned()).collect::<Vec<_>>());
    for r in rows {
        s.push_str(&line(r));
    }
    s
}

pub fn tables(cfg: &Config, rows: &[Row]) -> String {
    let mut s = String::new();
    let interval = cfg.interval.as_millis();
    if cfg.section("heartbeat") {
        s.push_str(&format!(
            "\n1. Heartbeats under CPU starvation: handlers spin on every core for {} s ({} ms runs), interval {interval} ms\n   lateness = heartbeat gap at the gateway minus the interval, ms (a close counts its silence as a gap);\n   silence = longest time with no heartbeat or new READY, ms, across reconnects; runs ok = spin runs completed\n",
            cfg.load.as_secs(),
            cfg.spin.as_millis()
        ));
        let body: Vec<_> = rows
            .iter()
            .map(|r| {
                cells(r, &r.heartbeat, |h| {
                    vec![
                        f(h.p50, 2),
                        f(h.p99, 2),
                        f(h.max, 2),
                        h.over_2x.to_string(),
                        f(h.max_silence, 0),
                        if h.marked_unhealthy > 0 {
                            format!("yes ({})", h.marked_unhealthy)
                        } else {
                            "no".into()
                        },
                        h.connections.to_string(),
                        h.samples.len().to_string(),
                        format!("{}/{}", h.spin_runs - h.spin_runs_not_completed, h.spin_runs),
                        f(h.idle_max, 2),
                    ]
                })
            })
            .collect();
        s.push_str(&table(
            &[
                "worker",
                "p50",
                "p99",
                "max",
                &format!(">{}ms", interval * 2),
                "silence",
                "unhealthy",
                "conns",
                "gaps",
                "runs ok",
                "idle max",
            ],
            &body,
        ));
    }
    if cfg.section("throughput") {
        s.push_str(&format!(
            "\n2. Throughput: echo with {} B of data, closed loop, {:.1} s window; runs/s and event-to-completed-run latency p50/p99 ms;\n   hb max gap = longest heartbeat gap at each level; closes = connections closed meanwhile (dropped for missed heartbeats)\n",
            cfg.payload_bytes,
            cfg.window.as_secs_f64()
        ));
        let mut head = vec!["worker".to_owned()];
        for n in &cfg.levels {
            head.extend([format!("{n}: runs/s"), "p50".into(), "p99".into()]);
        }
        head.extend(["hb max gap ms".into(), "closes".into()]);
        let body: Vec<_> = rows
            .iter()
            .map(|r| {
                cells(r, &r.throughput, |levels| {
                    let mut c: Vec<String> = levels
                        .iter()
                        .flat_map(|l| [format!("{:.0}", l.runs_per_sec), f(l.p50_ms, 2), f(l.p99_ms, 2)])
                        .collect();
                    c.push(levels.iter().map(|l| f(l.max_gap_ms, 0)).collect::<Vec<_>>().join("/"));
                    c.push(levels.iter().map(|l| l.closes.len()).sum::<usize>().to_string());
                    c
                })
            })
            .collect();
        s.push_str(&table(&head.iter().map(String::as_str).collect::<Vec<_>>(), &body));
    }
    if cfg.section("memory") {
        s.push_str(&format!(
            "\n3. Memory and start-up: RSS idle after {:.1} s; extra KiB per connection in one process; process start to ACTIVE (median of {})\n",
            cfg.settle.as_secs_f64(),
            cfg.startups
        ));
        let mut head = vec!["worker".to_owned(), "idle RSS MiB".into()];
        for n in &cfg.connection_counts {
            head.push(format!("KiB/conn @{n}"));
        }
        head.push("start->ACTIVE ms".into());
        let body: Vec<_> = rows
            .iter()
            .map(|r| {
                cells(r, &r.memory, |m| {
                    let mut c = vec![f(m.idle_rss_kib.map(|k| k as f64 / 1024.0), 1)];
                    c.extend(m.per_connection.iter().map(|p| format!("{:.0}", p.2)));
                    c.push(f(m.startup_median_ms, 1));
                    c
                })
            })
            .collect();
        s.push_str(&table(&head.iter().map(String::as_str).collect::<Vec<_>>(), &body));
    }
    if cfg.section("drain") {
        s.push_str(&format!(
            "\n4. Drain with {} runs in flight: GATEWAY_CLOSING to the replacement's READY, to the old socket's close;\n   closed before = connections lost in the same load before the drain (then nothing is left to replace); runs lost\n",
            cfg.drain_in_flight
        ));
        let body: Vec<_> = rows
            .iter()
            .map(|r| {
                cells(r, &r.drain, |d| {
                    vec![
                        f(d.replacement_ms, 1),
                        f(d.old_closed_ms, 1),
                        d.old_close_reason.clone().unwrap_or_else(|| "-".into()),
                        if d.closed_before.is_empty() {
                            "0".into()
                        } else {
                            format!("{} ({})", d.closed_before.len(), d.closed_before[0])
                        },
                        d.runs_sent.to_string(),
                        d.lost.to_string(),
                    ]
                })
            })
            .collect();
        s.push_str(&table(
            &["worker", "replacement ms", "old closed ms", "old close", "closed before", "runs", "lost"],
            &body,
        ));
    }
    s
}

/// One target for one of our workers: its value, the bound, met or not.
#[derive(Debug, Clone)]
pub struct Target {
    pub worker: String,
    pub what: String,
    pub value: f64,
    pub bound: f64,
    /// `true`: value must be at most the bound; `false`: at least.
    pub at_most: bool,
    pub unit: &'static str,
}

impl Target {
    pub fn met(&self) -> bool {
        if self.at_most { self.value <= self.bound } else { self.value >= self.bound }
    }

    pub fn line(&self) -> String {
        let cmp = if self.at_most { "<=" } else { ">=" };
        let verdict = if self.met() {
            "met".to_owned()
        } else {
            format!("MISSED by {:.2}{}", (self.value - self.bound).abs(), self.unit)
        };
        format!(
            "{:<24} {:<44} {:>9.3}{:<3} {cmp} {:<8} {verdict}",
            self.worker,
            self.what,
            self.value,
            self.unit,
            format!("{}{}", trim(self.bound), self.unit)
        )
    }

    pub fn json(&self) -> Value {
        json!({ "worker": self.worker, "target": self.what, "value": self.value, "bound": self.bound,
                "at_most": self.at_most, "unit": self.unit, "met": self.met() })
    }
}

fn trim(v: f64) -> String {
    let s = format!("{v:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

pub fn targets(cfg: &Config, rows: &[Row]) -> Vec<Target> {
    let Some(base) = rows.iter().find(|r| r.spec.key == BASELINE && r.skipped.is_none()) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for r in rows.iter().filter(|r| r.spec.ours_isolated && r.skipped.is_none()) {
        let t = |what: String, value: f64, bound: f64, at_most: bool, unit: &'static str| Target {
            worker: r.spec.label.to_owned(),
            what,
            value,
            bound,
            at_most,
            unit,
        };
        if let (Some(h), Some(b)) = (ok(&r.heartbeat), ok(&base.heartbeat))
            && let (Some(m), Some(bm)) = (h.max, b.max)
        {
            out.push(t("heartbeat max lateness".into(), m, 5.0, true, "ms"));
            if bm > 0.0 {
                out.push(t("heartbeat max lateness / JS worker-thread".into(), m / bm, 0.5, true, "x"));
            }
        }
        if let (Some(l), Some(bl)) = (ok(&r.throughput), ok(&base.throughput)) {
            for (a, b) in l.iter().zip(bl) {
                if b.runs_per_sec > 0.0 {
                    let what = format!("runs/s / JS at {} in flight", a.in_flight);
                    out.push(t(what, a.runs_per_sec / b.runs_per_sec, 10.0, false, "x"));
                }
            }
        }
        if let (Some(m), Some(bm)) = (ok(&r.memory), ok(&base.memory)) {
            if let (Some(a), Some(b)) = (m.idle_rss_kib, bm.idle_rss_kib) {
                out.push(t("idle RSS / JS".into(), a as f64 / b as f64, 0.1, true, "x"));
            }
            if let (Some(a), Some(b)) = (m.startup_median_ms, bm.startup_median_ms) {
                out.push(t("process start to ACTIVE / JS".into(), a / b, 0.1, true, "x"));
            }
        }
        if let Some(d) = ok(&r.drain) {
            out.push(t("runs lost in a drain".into(), d.lost as f64, 0.0, true, ""));
        }
    }
    let _ = cfg;
    out
}

pub fn json(cfg: &Config, meta: Value, rows: &[Row], targets: &[Target]) -> Value {
    let sec = |r: &Option<Result<Value, String>>| match r {
        None => Value::Null,
        Some(Ok(v)) => v.clone(),
        Some(Err(e)) => json!({ "error": e }),
    };
    let workers: Vec<Value> = rows
        .iter()
        .map(|r| {
            json!({
                "key": r.spec.key, "label": r.spec.label, "skipped": r.skipped,
                "heartbeat": sec(&r.heartbeat.as_ref().map(|x| x.as_ref().map(HeartbeatResult::json).map_err(Clone::clone))),
                "throughput": sec(&r.throughput.as_ref().map(|x| x.as_ref().map(|l| Value::from(l.iter().map(Level::json).collect::<Vec<_>>())).map_err(Clone::clone))),
                "memory": sec(&r.memory.as_ref().map(|x| x.as_ref().map(MemoryResult::json).map_err(Clone::clone))),
                "drain": sec(&r.drain.as_ref().map(|x| x.as_ref().map(DrainResult::json).map_err(Clone::clone))),
            })
        })
        .collect();
    json!({
        "meta": meta,
        "config": {
            "quick": cfg.quick, "interval_ms": cfg.interval.as_millis() as u64, "load_s": cfg.load.as_secs_f64(),
            "spin_ms": cfg.spin.as_millis() as u64, "probe_every_ms": cfg.probe_every.as_millis() as u64,
            "levels": cfg.levels, "warmup_s": cfg.warmup.as_secs_f64(), "warmup_cap_s": cfg.warmup_cap.as_secs_f64(),
            "window_s": cfg.window.as_secs_f64(), "finish_timeout_s": cfg.finish_timeout.as_secs_f64(),
            "idle_s": cfg.idle.as_secs_f64(), "dev_nice": cfg.dev_nice, "autogroup_nice": cfg.autogroup_nice,
            "payload_bytes": cfg.payload_bytes, "startups": cfg.startups,
            "connection_counts": cfg.connection_counts, "settle_s": cfg.settle.as_secs_f64(),
            "drain_in_flight": cfg.drain_in_flight, "drain_window_s": cfg.drain_window.as_secs_f64(),
        },
        "workers": workers,
        "targets": targets.iter().map(Target::json).collect::<Vec<_>>(),
    })
}
