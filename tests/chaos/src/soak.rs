//! The chaos soak: workers of every adapter serve runs from one connect-dev
//! while a fault-injecting proxy in front of the gateway kills, stalls
//! (half-open), delays and truncates their connections, and the gateway
//! drains and NACKs lease extensions (forced lease loss). Then the faults
//! stop, every run is given time to end, and the outcome is counted at the
//! gateway and in the handlers:
//!
//! - lost: an event whose run never ended (or never started);
//! - duplicate: a run whose handler ran more than once (the handler never
//!   fails, so one execution is the norm). Allowed only after a lost lease: an
//!   attempt that ended `LeaseExpired` at the gateway, which then retried it.
//!
//! The report is a table; [`Report::ok`] is the verdict (exit status).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use connect_adapter::Function;
use connect_dev::{DevConfig, DevServer, Run, RunStatus};
use serde_json::json;

use crate::proxy::Proxy;
use crate::workers::{self, Adapter, Body, Running, Spec};

/// How big and how rough a soak is.
#[derive(Clone, Debug)]
pub struct SoakConfig {
    pub runs: usize,
    pub adapters: Vec<Adapter>,
    pub seed: u64,
    /// Runs in flight per adapter.
    pub in_flight: usize,
    /// Share of long runs (2 to 5 s: they outlive a lease and live on extensions).
    pub long_share: f64,
    /// A fault every this many milliseconds (drawn uniformly), from the first
    /// run sent until the last one is sent.
    pub fault_every_ms: (u64, u64),
    /// Runs sent per second, over all adapters: the pace that spreads the runs
    /// over the faults (10,000 runs take about 100 s).
    pub rate: f64,
    /// After the last run is sent and the faults stop: how long runs have to end.
    pub settle: Duration,
}

impl Default for SoakConfig {
    fn default() -> Self {
        SoakConfig {
            runs: 10_000,
            adapters: Adapter::ALL.to_vec(),
            seed: 1,
            in_flight: 48,
            long_share: 0.03,
            fault_every_ms: (40, 160),
            rate: 100.0,
            settle: Duration::from_secs(120),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Fault {
    Kill,
    Stall,
    Delay,
    Truncate,
    Drain,
    Nack,
}

impl Fault {
    const ALL: [(Fault, u32); 6] = [
        (Fault::Kill, 22),
        (Fault::Stall, 22),
        (Fault::Delay, 18),
        (Fault::Truncate, 18),
        (Fault::Drain, 10),
        // A NACK refuses the next extension of any long run (budget 1, not cumulative).
        (Fault::Nack, 10),
    ];

    fn name(self) -> &'static str {
        match self {
            Fault::Kill => "kill",
            Fault::Stall => "stall",
            Fault::Delay => "delay",
            Fault::Truncate => "truncate",
            Fault::Drain => "drain",
            Fault::Nack => "nack",
        }
    }
}

/// One execution of the handler.
#[derive(Clone, Debug)]
struct Exec {
    request_id: String,
    /// How long the handler sleeps.
    ms: u64,
}

type Executions = Arc<Mutex<HashMap<String, Vec<Exec>>>>;

/// Figures for one adapter.
#[derive(Clone, Debug, Default)]
pub struct AdapterFigures {
    pub name: &'static str,
    pub runs: usize,
    pub completed: usize,
    pub failed: usize,
    pub lost: usize,
    /// Duplicate executions after a lost lease (allowed).
    pub dup_lease_lost: usize,
    /// The same request id run twice (never allowed).
    pub dup_same_request: usize,
    /// Any other duplicate (never allowed).
    pub dup_other: usize,
    pub lease_expired_attempts: usize,
    /// Of those, attempts of short runs (under 1 s): lost while the reply was on its way.
    pub short_leases_lost: usize,
    pub reconnects: usize,
    pub restarts: u64,
    pub half_open: Vec<HalfOpen>,
    /// Run ids of lost runs and unexplained duplicates, for the log.
    pub examples: Vec<String>,
}

/// One stalled (half-open) connection, timed from the stall: `replaced`, until
/// the worker dialed its replacement (the detection time: two unanswered
/// heartbeats, or a handshake deadline if the stall hit the handshake, plus the
/// reconnect backoff); `closed`, until the worker closed the dead socket.
#[derive(Clone, Copy, Debug)]
pub struct HalfOpen {
    pub closed: Option<Duration>,
    pub replaced: Option<Duration>,
}

#[derive(Clone, Debug)]
pub struct Report {
    pub config: SoakConfig,
    pub elapsed: Duration,
    pub faults: Vec<(Fault, usize)>,
    pub heartbeat: Duration,
    pub adapters: Vec<AdapterFigures>,
}

impl Report {
    /// Every run completed, none lost, and duplicates only after a lost lease.
    pub fn ok(&self) -> bool {
        self.adapters
            .iter()
            .all(|a| a.lost == 0 && a.failed == 0 && a.dup_same_request == 0 && a.dup_other == 0)
    }
}

struct Worker {
    adapter: Adapter,
    proxy: Proxy,
    running: Running,
    events: Vec<String>,
}

const HEARTBEAT: Duration = Duration::from_millis(250);

/// Threads of connect-blocking's handler pool in the soak. The handler sleeps
/// (up to 5 s) and ignores its cancel signal, so an execution abandoned after a
/// lost lease keeps its thread to the end while the gateway's retry needs
/// another. tokio and async-std run the same body with `spawn_blocking` (pools of
/// up to 512 and 500 threads); with the 8 threads the runtimes get, the blocking
/// pool was the bottleneck: short runs queued seconds behind long ones (acked,
/// their leases held), a soak took about 4 times as long, so it met 4 times as
/// many faults, with all 48 runs in flight instead of about 12, and each outage
/// longer than a lease lost all of them (2,000 runs on one adapter: 256 to 607
/// leases lost, against 3 to 30 for tokio; 14 to 42 with this pool).
const BLOCKING_POOL: usize = 128;

pub fn run(config: SoakConfig) -> Report {
    let mut rng = fastrand::Rng::with_seed(config.seed);
    let dev = DevServer::spawn(DevConfig {
        heartbeat_interval: HEARTBEAT,
        // Inngest's intervals scaled by 1/40: heartbeat 10 s -> 250 ms, extensions
        // 30 s -> 750 ms, leases 2 min -> 3 s.
        extend_lease_interval: Duration::from_millis(750),
        drain_timeout: Duration::from_secs(2),
        hello_timeout: Duration::from_secs(2),
        seed: Some(config.seed),
        ..DevConfig::ephemeral()
    })
    .expect("connect-dev starts");
    let executions: Executions = Arc::default();
    let mut workers: Vec<Worker> = config
        .adapters
        .iter()
        .map(|&adapter| {
            let proxy = Proxy::start(dev.gateway_addr()).expect("proxy");
            let spec = Spec {
                app: format!("chaos-{}", adapter.name()),
                api_url: dev.api_url(),
                gateway_url: proxy.gateway_url(),
                function: Function::new("run").on_event(format!("chaos/{}", adapter.name())).retries(20),
                body: body(executions.clone()),
                handler_threads: if adapter == Adapter::Blocking { BLOCKING_POOL } else { 8 },
                seed: config.seed ^ adapter as u64,
                tune: workers::tune,
            };
            let running = workers::start(adapter, spec);
            running.ready(Duration::from_secs(30)).expect("the worker becomes ready");
            Worker { adapter, proxy, running, events: Vec::new() }
        })
        .collect();

    let started = Instant::now();
    let mut faults: HashMap<Fault, usize> = HashMap::new();
    let mut delayed_until: Vec<Option<Instant>> = vec![None; workers.len()];
    let mut next_fault =
        started + Duration::from_millis(rng.u64(config.fault_every_ms.0..=config.fault_every_ms.1));
    let mut sent = 0;
    let mut n = 0u64;
    // Faults last as long as runs are being sent (paced, so that they spread over
    // the faults). Not after: at the tail a few runs would take every fault, a
    // NACK on each of their extensions, which no protocol can survive.
    while sent < config.runs {
        let busy = dev.summary().map(|s| s.running).unwrap_or(usize::MAX);
        // Top up the runs in flight, spread over the adapters in turn, at the configured pace.
        let paced = (started.elapsed().as_secs_f64() * config.rate) as usize;
        let room = (config.in_flight * workers.len())
            .saturating_sub(busy)
            .min(config.runs - sent)
            .min(paced.saturating_sub(sent));
        let mut batches: Vec<Vec<(String, serde_json::Value)>> = vec![Vec::new(); workers.len()];
        for k in 0..room {
            n += 1;
            let i = (sent + k) % workers.len();
            let ms = if rng.f64() < config.long_share { rng.u64(2000..5000) } else { rng.u64(0..20) };
            batches[i].push((format!("chaos/{}", workers[i].adapter.name()), json!({ "n": n, "ms": ms })));
        }
        for (w, batch) in workers.iter_mut().zip(batches) {
            if !batch.is_empty() {
                let ids = dev.send_events(batch).expect("events");
                sent += ids.len();
                w.events.extend(ids);
            }
        }
        // Faults.
        let now = Instant::now();
        for (i, until) in delayed_until.iter_mut().enumerate() {
            if until.is_some_and(|t| t <= now) {
                workers[i].proxy.set_delay(Duration::ZERO);
                *until = None;
            }
        }
        if now >= next_fault {
            let fault = pick(&mut rng);
            let i = rng.usize(..workers.len());
            let p = &workers[i].proxy;
            let applied = match fault {
                Fault::Kill => one(&mut rng, p.live(Duration::ZERO)).map(|id| p.kill(id)).is_some(),
                Fault::Stall => {
                    one(&mut rng, p.live(Duration::from_millis(200))).map(|id| p.stall(id)).is_some()
                }
                Fault::Truncate => one(&mut rng, p.live(Duration::ZERO)).map(|id| p.truncate(id)).is_some(),
                Fault::Delay => {
                    p.set_delay(Duration::from_millis(rng.u64(20..150)));
                    delayed_until[i] = Some(now + Duration::from_millis(rng.u64(300..1500)));
                    true
                }
                Fault::Drain => dev.drain().is_ok(),
                Fault::Nack => dev.nack_extensions(1).is_ok(),
            };
            if applied {
                *faults.entry(fault).or_default() += 1;
            }
            next_fault =
                now + Duration::from_millis(rng.u64(config.fault_every_ms.0..=config.fault_every_ms.1));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    // Heal, and give every run time to end.
    for w in &workers {
        w.proxy.set_delay(Duration::ZERO);
    }
    let deadline = Instant::now() + config.settle;
    while Instant::now() < deadline && dev.summary().map(|s| s.running > 0).unwrap_or(false) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let elapsed = started.elapsed();

    let mut figures = Vec::new();
    let execs = executions.lock().unwrap_or_else(|p| p.into_inner()).clone();
    for w in workers.drain(..) {
        figures.push(figures_of(&dev, &w, &execs));
        let _ = w.running.stop(Duration::from_secs(10));
    }
    let mut faults: Vec<(Fault, usize)> = faults.into_iter().collect();
    faults.sort();
    Report { config, elapsed, faults, heartbeat: HEARTBEAT, adapters: figures }
}

/// The handler: note the execution, sleep as the event says, return.
fn body(executions: Executions) -> Body {
    Arc::new(move |ctx| {
        let exec = Exec {
            request_id: ctx.request_id().to_owned(),
            ms: ctx.event().data["ms"].as_u64().unwrap_or(0),
        };
        executions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(ctx.run_id().to_owned())
            .or_default()
            .push(exec);
        let ms = ctx.event().data["ms"].as_u64().unwrap_or(0);
        std::thread::sleep(Duration::from_millis(ms));
        Ok(json!({ "n": ctx.event().data["n"] }))
    })
}

fn pick(rng: &mut fastrand::Rng) -> Fault {
    let total: u32 = Fault::ALL.iter().map(|(_, w)| w).sum();
    let mut x = rng.u32(..total);
    for (f, w) in Fault::ALL {
        if x < w {
            return f;
        }
        x -= w;
    }
    Fault::Kill
}

fn one(rng: &mut fastrand::Rng, ids: Vec<u64>) -> Option<u64> {
    (!ids.is_empty()).then(|| ids[rng.usize(..ids.len())])
}

fn figures_of(dev: &DevServer, w: &Worker, execs: &HashMap<String, Vec<Exec>>) -> AdapterFigures {
    let mut f = AdapterFigures { name: w.adapter.name(), runs: w.events.len(), ..Default::default() };
    for event in &w.events {
        let runs: Vec<Run> = dev.runs_for_event(event).unwrap_or_default();
        let Some(run) = runs.first() else {
            f.lost += 1;
            f.examples.push(format!("lost: event {event} started no run"));
            continue;
        };
        match run.status {
            RunStatus::Completed => f.completed += 1,
            RunStatus::Failed | RunStatus::Cancelled => {
                f.failed += 1;
                let attempts: Vec<String> = run
                    .attempts
                    .iter()
                    .map(|a| {
                        let conns: Vec<u64> = a.connections.iter().map(|c| c.conn.0).collect();
                        format!(
                            "{}:{}:acked={}:conns={conns:?}:{}ms",
                            a.attempt,
                            a.outcome.as_deref().unwrap_or("-"),
                            a.acked,
                            a.ended_at.unwrap_or(a.started_at).saturating_sub(a.started_at)
                        )
                    })
                    .collect();
                let ran = execs.get(&run.run_id).map_or(0, Vec::len);
                f.examples.push(format!(
                    "failed: {} {:?} executions {ran} attempts {attempts:?}",
                    run.run_id, run.output
                ));
            }
            RunStatus::Running => {
                f.lost += 1;
                f.examples.push(format!("lost: {} still running, attempts {:?}", run.run_id, run.attempts));
            }
        }
        let expired = run.attempts.iter().filter(|a| a.outcome.as_deref() == Some("LeaseExpired")).count();
        f.lease_expired_attempts += expired;
        if execs.get(&run.run_id).and_then(|e| e.first()).is_some_and(|e| e.ms < 1000) {
            f.short_leases_lost += expired;
        }
        let ran = execs.get(&run.run_id).map(Vec::as_slice).unwrap_or_default();
        if ran.len() > 1 {
            let mut ids: Vec<&str> = ran.iter().map(|e| e.request_id.as_str()).collect();
            ids.sort_unstable();
            let repeated = ids.windows(2).any(|p| p[0] == p[1]);
            if repeated {
                f.dup_same_request += 1;
                f.examples.push(format!("duplicate: {} ran one request twice: {ids:?}", run.run_id));
            } else if expired > 0 {
                f.dup_lease_lost += 1;
            } else {
                f.dup_other += 1;
                f.examples.push(format!("duplicate: {} ran {} times, no lease lost", run.run_id, ran.len()));
            }
        }
    }
    let history = w.proxy.history();
    f.reconnects = history.len().saturating_sub(1);
    f.restarts = w.running.restarts();
    for link in history.iter().filter(|l| l.stalled.is_some()) {
        let at = link.stalled.unwrap_or(link.accepted);
        let next = history.iter().find(|l| l.accepted > at).map(|l| l.accepted - at);
        f.half_open.push(HalfOpen {
            closed: link.client_closed.map(|t| t.saturating_duration_since(at)),
            replaced: next,
        });
    }
    f
}

fn ms(d: Option<Duration>) -> String {
    d.map_or("-".into(), |d| format!("{}", d.as_millis()))
}

fn percentile(mut v: Vec<Duration>, p: f64) -> Option<Duration> {
    if v.is_empty() {
        return None;
    }
    v.sort();
    Some(v[((v.len() - 1) as f64 * p).round() as usize])
}

impl std::fmt::Display for Report {
    fn fmt(&self, out: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let c = &self.config;
        let names: Vec<&str> = c.adapters.iter().map(|a| a.name()).collect();
        writeln!(
            out,
            "chaos soak: {} runs over {} (seed {}), {:.1} s; heartbeat {} ms, a worker gives up after 2 unanswered",
            c.runs,
            names.join(", "),
            c.seed,
            self.elapsed.as_secs_f64(),
            self.heartbeat.as_millis()
        )?;
        let faults: Vec<String> = self.faults.iter().map(|(f, n)| format!("{} {n}", f.name())).collect();
        writeln!(out, "faults injected: {}", faults.join(", "))?;
        let mut t = String::new();
        let _ = writeln!(
            t,
            "{:<9} {:>6} {:>9} {:>6} {:>5} {:>11} {:>12} {:>10} {:>10} {:>8} {:>9} {:>21} {:>24}",
            "adapter",
            "runs",
            "completed",
            "failed",
            "lost",
            "leases lost",
            "dup(lease)",
            "dup(other)",
            "reconnects",
            "restarts",
            "half-open",
            "closed ms p50/p99/max",
            "reconnect ms p50/p99/max"
        );
        for a in &self.adapters {
            let detect: Vec<Duration> = a.half_open.iter().filter_map(|h| h.closed).collect();
            let reconn: Vec<Duration> = a.half_open.iter().filter_map(|h| h.replaced).collect();
            let trio = |v: &Vec<Duration>| {
                format!(
                    "{}/{}/{}",
                    ms(percentile(v.clone(), 0.5)),
                    ms(percentile(v.clone(), 0.99)),
                    ms(percentile(v.clone(), 1.0))
                )
            };
            let _ = writeln!(
                t,
                "{:<9} {:>6} {:>9} {:>6} {:>5} {:>11} {:>12} {:>10} {:>10} {:>8} {:>9} {:>21} {:>24}",
                a.name,
                a.runs,
                a.completed,
                a.failed,
                a.lost,
                a.lease_expired_attempts,
                a.dup_lease_lost,
                a.dup_same_request + a.dup_other,
                a.reconnects,
                a.restarts,
                a.half_open.len(),
                trio(&detect),
                trio(&reconn)
            );
        }
        out.write_str(&t)?;
        let expired: usize = self.adapters.iter().map(|a| a.lease_expired_attempts).sum();
        let short: Vec<String> =
            self.adapters.iter().map(|a| format!("{} {}", a.name, a.short_leases_lost)).collect();
        writeln!(
            out,
            "attempts that lost their lease (LeaseExpired at the gateway, then retried): {expired}; of short runs: {}",
            short.join(", ")
        )?;
        for a in &self.adapters {
            for e in a.examples.iter().take(10) {
                writeln!(out, "  {}: {e}", a.name)?;
            }
        }
        write!(
            out,
            "verdict: {}",
            if self.ok() {
                "ok (0 lost, every run completed, duplicates only after a lost lease)"
            } else {
                "FAILED"
            }
        )
    }
}
