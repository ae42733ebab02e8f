//! The executor: events start runs, runs become requests routed to healthy
//! worker connections with capacity, replies end attempts, failed attempts
//! are retried. Sans-IO like the gateway: it reads [`Event`]s from the
//! gateway and asks for forwards through [`ExecOutput`].
//!
//! Rules kept from Inngest (PROTOCOL.md 2.6, 2.10, 5.2):
//! - a connection is routable when Ready and its last heartbeat (or READY)
//!   is at most two heartbeat intervals old, serves the function's slug, and
//!   its instance is under `max_worker_concurrency` leased requests;
//! - a reply is read with [`ReplyVerdict`]; `no_retry` fails the run;
//! - an attempt whose lease ran out fails with `connect_worker_stopped_responding`
//!   and is retried like an error reply; a request never acked (its socket closed,
//!   paused, or stayed silent) is routed again as the same attempt, up to three forwards.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::gateway::run::{Attempt, AttemptConn, ConnStatus, ConnectionInfo, Run, RunStatus};
use crate::gateway::{ConnId, Event, ForwardError, WorkerInfo};
use crate::payload::{FunctionConfig, ReplyVerdict};
use crate::wire::GatewayExecutorRequestData;

mod routing;
mod steps;
use routing::{trigger_matches, uuid_of};

#[derive(Clone, Debug)]
pub struct ExecutorConfig {
    /// The gateway's heartbeat interval: health is "a heartbeat within two of these".
    pub heartbeat_interval: Duration,
    /// Retries when a function does not say (Inngest's default is 3).
    pub default_retries: u32,
    /// Wait before a retry when the reply names no `retry_after`. Inngest backs
    /// off for seconds to minutes; a dev server retries at once by default.
    pub retry_delay: Duration,
    /// Forwards of one attempt that may go unacked before the attempt fails.
    pub max_forwards: u32,
    pub seed: u64,
}

impl Default for ExecutorConfig {
    fn default() -> Self {
        ExecutorConfig {
            heartbeat_interval: Duration::from_secs(10),
            default_retries: 3,
            retry_delay: Duration::ZERO,
            max_forwards: 3,
            seed: 0,
        }
    }
}

/// Runs by status.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct RunCounts {
    pub running: usize,
    pub completed: usize,
    pub failed: usize,
    pub cancelled: usize,
}

/// What the executor wants done, in order.
#[derive(Clone, Debug, PartialEq)]
pub enum ExecOutput {
    /// Forward this request on `conn` (the gateway leases it). If that fails, call `forward_failed`.
    Forward { conn: ConnId, request: Box<GatewayExecutorRequestData> },
    /// A run changed in a way worth a log line or a waiter's wake-up.
    Run(RunEvent),
}

#[derive(Clone, Debug, PartialEq)]
pub enum RunEvent {
    Started { run_id: String, event_id: String, function_id: String },
    AttemptStarted { run_id: String, attempt: u32, conn: ConnId },
    Retrying { run_id: String, attempt: u32, error: Value },
    Ended { run_id: String, event_id: String, status: RunStatus },
}

/// A registered function and the app that serves it.
#[derive(Clone, Debug)]
struct Function {
    app_name: String,
    config: FunctionConfig,
    uuid: String,
    app_uuid: String,
}

/// The executor's view of one worker connection.
#[derive(Debug)]
struct Worker {
    info: ConnectionInfo,
    slugs: Vec<String>,
    routable: bool,
    last_heartbeat: Instant,
    healthy: bool,
}

/// An attempt in flight: which run, where it went.
#[derive(Debug)]
struct InFlight {
    run_id: String,
    conn: ConnId,
    instance_id: String,
    forwards: u32,
}

/// Where a run is between requests: which step runs next and how many times it was tried.
#[derive(Debug)]
struct Job {
    /// Zero-based attempt of the current step (or of the function body).
    attempt: u32,
    /// The planned step to run next (`GatewayExecutorRequestData.step_id`); `None`: the function itself.
    step: Option<String>,
    /// Steps done, in order (`ctx.stack`).
    stack: Vec<String>,
    /// Steps planned in parallel, run one after another here.
    planned: VecDeque<String>,
    /// The execution version the SDK chose in its first reply (`-1` until then), sent back from then on.
    version: i64,
}

impl Default for Job {
    fn default() -> Self {
        Job { attempt: 0, step: None, stack: Vec::new(), planned: VecDeque::new(), version: -1 }
    }
}

#[derive(Debug)]
struct EventRecord {
    event: Value,
    runs: Vec<String>,
}

#[derive(Debug)]
pub struct Executor {
    config: ExecutorConfig,
    anchor: (Instant, SystemTime),
    rng: fastrand::Rng,
    functions: HashMap<String, Function>,
    workers: HashMap<ConnId, Worker>,
    instance_load: HashMap<String, usize>,
    // Every run and event ever seen (a dev server forgets nothing until it
    // exits): B-trees, because a hash map of hundreds of thousands of entries
    // stops the whole gateway for its resize (0.1 to 0.4 s at 115k to 230k
    // runs, measured), long enough for workers to miss heartbeat answers.
    runs: BTreeMap<String, Run>,
    jobs: BTreeMap<String, Job>,
    idempotency_keys: BTreeSet<String>,
    events: BTreeMap<String, EventRecord>,
    requests: HashMap<String, InFlight>,
    /// Runs waiting for a connection, oldest first, with the forwards already spent on their attempt.
    queue: VecDeque<(String, u32)>,
    retries: BTreeMap<(Instant, u64), String>,
    seq: u64,
    out: VecDeque<ExecOutput>,
}

impl Executor {
    pub fn new(config: ExecutorConfig, now: Instant, wall: SystemTime) -> Self {
        Executor {
            rng: fastrand::Rng::with_seed(config.seed ^ 0x9e37_79b9_7f4a_7c15),
            config,
            anchor: (now, wall),
            functions: HashMap::new(),
            workers: HashMap::new(),
            instance_load: HashMap::new(),
            runs: BTreeMap::new(),
            jobs: BTreeMap::new(),
            idempotency_keys: BTreeSet::new(),
            events: BTreeMap::new(),
            requests: HashMap::new(),
            queue: VecDeque::new(),
            retries: BTreeMap::new(),
            seq: 0,
            out: VecDeque::new(),
        }
    }

    // ---- getters ----

    pub fn run(&self, run_id: &str) -> Option<&Run> {
        self.runs.get(run_id)
    }

    /// The runs an event started, in start order (empty for an unknown event).
    pub fn runs_for_event(&self, event_id: &str) -> Vec<&Run> {
        let Some(rec) = self.events.get(event_id) else { return Vec::new() };
        rec.runs.iter().filter_map(|r| self.runs.get(r)).collect()
    }

    pub fn event(&self, event_id: &str) -> Option<&Value> {
        self.events.get(event_id).map(|e| &e.event)
    }

    /// Every connection seen, oldest first.
    pub fn connections(&self) -> Vec<ConnectionInfo> {
        let mut all: Vec<ConnectionInfo> = self.workers.values().map(|w| w.info.clone()).collect();
        all.sort_by_key(|c| c.conn);
        all
    }

    /// One connection's record.
    pub fn connection(&self, conn: ConnId) -> Option<&ConnectionInfo> {
        self.workers.get(&conn).map(|w| &w.info)
    }

    /// Registered function slugs, sorted.
    pub fn functions(&self) -> Vec<String> {
        let mut f: Vec<String> = self.functions.keys().cloned().collect();
        f.sort();
        f
    }

    /// How many runs are in each status.
    pub fn run_counts(&self) -> RunCounts {
        let mut c = RunCounts::default();
        for run in self.runs.values() {
            match run.status {
                RunStatus::Running => c.running += 1,
                RunStatus::Completed => c.completed += 1,
                RunStatus::Failed => c.failed += 1,
                RunStatus::Cancelled => c.cancelled += 1,
            }
        }
        c
    }

    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    // ---- inputs ----

    /// An event arrived (`POST /e/{key}`). Starts a run of every function it
    /// triggers and returns the event's internal id.
    pub fn send_event(
        &mut self,
        now: Instant,
        name: &str,
        data: Value,
        id: Option<String>,
        ts: Option<i64>,
    ) -> String {
        let event_id = self.ulid(now);
        let ts = ts.unwrap_or_else(|| self.wall_ms(now) as i64);
        // An id given by the sender is an idempotency key: a repeat is stored but starts no runs.
        let repeat = id.as_ref().is_some_and(|id| !self.idempotency_keys.insert(id.clone()));
        let event = json!({ "name": name, "data": data, "id": id.unwrap_or_else(|| event_id.clone()),
                            "ts": ts, "user": {} });
        let mut slugs: Vec<&String> = self
            .functions
            .iter()
            .filter(|_| !repeat)
            .filter(|(_, f)| f.config.event_triggers().any(|t| trigger_matches(t, name)))
            .map(|(slug, _)| slug)
            .collect();
        slugs.sort();
        let slugs: Vec<String> = slugs.into_iter().cloned().collect();
        let mut run_ids = Vec::with_capacity(slugs.len());
        for slug in slugs {
            let run_id = self.ulid(now);
            let f = &self.functions[&slug];
            let retries = f.config.retries().unwrap_or(self.config.default_retries);
            let run = Run {
                run_id,
                event_id: event_id.clone(),
                function_id: slug.clone(),
                app_name: f.app_name.clone(),
                status: RunStatus::Running,
                output: None,
                max_attempts: retries + 1,
                attempts: Vec::new(),
                steps: serde_json::Map::new(),
                run_started_at: self.wall_ms(now),
                ended_at: None,
            };
            let run_id = run.run_id.clone();
            self.out.push_back(ExecOutput::Run(RunEvent::Started {
                run_id: run_id.clone(),
                event_id: event_id.clone(),
                function_id: slug,
            }));
            self.runs.insert(run_id.clone(), run);
            self.jobs.insert(run_id.clone(), Job::default());
            self.queue.push_back((run_id.clone(), 0));
            run_ids.push(run_id);
        }
        self.events.insert(event_id.clone(), EventRecord { event, runs: run_ids });
        self.route(now);
        event_id
    }

    /// Cancel a running run. Its in-flight attempt, if any, is left to finish and ignored.
    pub fn cancel(&mut self, now: Instant, run_id: &str) -> bool {
        let running = self.runs.get(run_id).is_some_and(|r| r.status == RunStatus::Running);
        if running {
            self.queue.retain(|(r, _)| r != run_id);
            self.retries.retain(|_, r| r != run_id);
            self.end_run(now, run_id, RunStatus::Cancelled, None);
        }
        running
    }

    /// Feed one gateway event.
    pub fn handle_event(&mut self, now: Instant, event: &Event) {
        match event {
            Event::Connected { conn, worker } => self.on_connected(now, *conn, worker),
            Event::Ready { conn } => {
                if let Some(w) = self.workers.get_mut(conn) {
                    w.routable = true;
                    w.healthy = true;
                    w.last_heartbeat = now;
                    w.info.status = ConnStatus::Ready;
                }
                self.route(now);
            }
            Event::Heartbeat { conn, gap } => {
                let late_after = self.config.heartbeat_interval.mul_f64(1.25);
                if let Some(w) = self.workers.get_mut(conn) {
                    w.last_heartbeat = now;
                    w.healthy = true;
                    w.info.heartbeats += 1;
                    w.info.gaps.push(*gap);
                    w.info.max_gap = w.info.max_gap.max(*gap);
                    w.info.late += u64::from(*gap > late_after);
                }
                if !self.queue.is_empty() {
                    self.route(now);
                }
            }
            Event::RequestAcked { request_id, .. } => {
                if let Some(attempt) = self.current_attempt_mut(request_id) {
                    attempt.acked = true;
                }
            }
            Event::LeaseExtended { .. } | Event::LeaseNacked { .. } => {}
            Event::LeaseExpired { request_id, acked } => {
                if *acked {
                    let error = json!({ "name": "connect_worker_stopped_responding",
                        "message": "the worker stopped extending the request's lease" });
                    self.attempt_failed(now, request_id, error, "LeaseExpired", None);
                } else {
                    self.reroute(now, request_id);
                }
                if !self.queue.is_empty() {
                    self.route(now);
                }
            }
            Event::Replied { response, .. } => {
                self.adopt_version(&response.request_id, response.request_version);
                let verdict = ReplyVerdict::of(response);
                self.on_reply(now, &response.request_id, verdict);
                // The finished attempt freed capacity.
                if !self.queue.is_empty() {
                    self.route(now);
                }
            }
            Event::Paused { conn, released } => {
                self.set_status(*conn, ConnStatus::Paused);
                self.reroute_all(now, released);
            }
            Event::Draining { conn } => self.set_status(*conn, ConnStatus::Draining),
            Event::Disconnected { conn, disconnect, released } => {
                self.set_status(*conn, ConnStatus::Disconnected);
                if let Some(w) = self.workers.get_mut(conn) {
                    w.info.disconnect_reason = Some(disconnect.reason.clone());
                    // Dropped for silence: that silence is the connection's
                    // last gap, and a late one, though no heartbeat ended it.
                    // Without it a worker that never heartbeats looks punctual.
                    if disconnect.reason == "CONSECUTIVE_HEARTBEATS_MISSED" {
                        let silence = now.saturating_duration_since(w.last_heartbeat);
                        w.info.gaps.push(silence);
                        w.info.max_gap = w.info.max_gap.max(silence);
                        w.info.late += 1;
                    }
                    w.info.disconnected_at = Some(now);
                }
                self.reroute_all(now, released);
            }
        }
    }

    /// The gateway refused a forward (the connection left Ready meanwhile): route it again.
    pub fn forward_failed(&mut self, now: Instant, request_id: &str, error: ForwardError) {
        if let ForwardError::TooLarge(why) = error {
            // No connection will ever take it: fail the run and say why,
            // rather than re-route it and blame the worker.
            let error = json!({ "name": "request_too_large", "message": why });
            let Some(run_id) = self.finish_attempt(now, request_id, "Failed", Some(error.clone())) else {
                return;
            };
            return self.end_run(now, &run_id, RunStatus::Failed, Some(error));
        }
        self.reroute(now, request_id);
    }

    /// Start the retries that are due.
    pub fn handle_timeout(&mut self, now: Instant) {
        let mut due = false;
        while let Some(entry) = self.retries.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let run_id = entry.remove();
            self.queue.push_back((run_id, 0));
            due = true;
        }
        if due {
            self.route(now);
        }
    }

    // ---- outputs ----

    #[must_use]
    pub fn poll_output(&mut self) -> Option<ExecOutput> {
        self.out.pop_front()
    }

    /// The next retry deadline.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.retries.keys().next().map(|k| k.0)
    }

    // ---- internals ----

    fn on_connected(&mut self, now: Instant, conn: ConnId, worker: &WorkerInfo) {
        let mut slugs = Vec::new();
        for app in &worker.apps {
            for f in &app.functions {
                let slug = f.routed_slug().unwrap_or_else(|| f.id.clone());
                let function = Function {
                    app_name: app.name.clone(),
                    config: f.clone(),
                    uuid: uuid_of(&format!("fn:{slug}")),
                    app_uuid: uuid_of(&format!("app:{}", app.name)),
                };
                self.functions.insert(slug.clone(), function);
                slugs.push(slug);
            }
        }
        let info = ConnectionInfo {
            conn,
            connection_id: worker.connection_id.clone(),
            instance_id: worker.instance_id.clone(),
            group: worker.group.clone(),
            apps: worker.apps.iter().map(|a| a.name.clone()).collect(),
            sdk: format!("{}:{}", worker.sdk_language, worker.sdk_version),
            status: ConnStatus::Connected,
            max_worker_concurrency: worker.max_worker_concurrency,
            in_flight: 0,
            heartbeats: 0,
            gaps: Vec::new(),
            max_gap: Duration::ZERO,
            late: 0,
            marked_unhealthy: 0,
            disconnect_reason: None,
            connected_at: now,
            disconnected_at: None,
        };
        let w = Worker { info, slugs, routable: false, last_heartbeat: now, healthy: true };
        self.workers.insert(conn, w);
    }

    fn set_status(&mut self, conn: ConnId, status: ConnStatus) {
        if let Some(w) = self.workers.get_mut(&conn) {
            w.routable = false;
            w.info.status = status;
        }
    }

    fn on_reply(&mut self, now: Instant, request_id: &str, verdict: ReplyVerdict) {
        match verdict {
            ReplyVerdict::Completed(output) => {
                if let Some(run_id) = self.finish_attempt(now, request_id, "Completed", None) {
                    self.end_run(now, &run_id, RunStatus::Completed, Some(output));
                }
            }
            ReplyVerdict::Failed(error) => {
                if let Some(run_id) = self.finish_attempt(now, request_id, "Failed", Some(error.clone())) {
                    self.end_run(now, &run_id, RunStatus::Failed, Some(error));
                }
            }
            ReplyVerdict::Retry { error, retry_after } => {
                let delay = retry_after
                    .as_deref()
                    .and_then(|s| s.trim().parse::<u64>().ok())
                    .map(Duration::from_secs);
                self.attempt_failed(now, request_id, error, "Error", delay);
            }
            ReplyVerdict::Steps(ops) => self.on_steps(now, request_id, ops),
        }
    }

    /// An attempt failed: retry it if attempts are left, else fail the run.
    fn attempt_failed(
        &mut self,
        now: Instant,
        request_id: &str,
        error: Value,
        outcome: &str,
        delay: Option<Duration>,
    ) {
        let Some(run_id) = self.finish_attempt(now, request_id, outcome, Some(error.clone())) else { return };
        let Some(run) = self.runs.get(&run_id) else { return };
        let max = run.max_attempts;
        let Some(job) = self.jobs.get_mut(&run_id) else { return };
        if job.attempt + 1 >= max {
            return self.end_run(now, &run_id, RunStatus::Failed, Some(error));
        }
        job.attempt += 1;
        let attempt = job.attempt;
        self.out.push_back(ExecOutput::Run(RunEvent::Retrying { run_id: run_id.clone(), attempt, error }));
        self.requeue(now, run_id, delay.unwrap_or(self.config.retry_delay));
    }

    /// A run with no version yet takes the one its SDK replied with, as Inngest's executor does.
    fn adopt_version(&mut self, request_id: &str, version: u32) {
        let Some(flight) = self.requests.get(request_id) else { return };
        if let Some(job) = self.jobs.get_mut(&flight.run_id) {
            if job.version < 0 && version > 0 {
                job.version = i64::from(version);
            }
        }
    }

    /// Queue the run's next request now, or after `delay`.
    fn requeue(&mut self, now: Instant, run_id: String, delay: Duration) {
        if delay.is_zero() {
            self.queue.push_back((run_id, 0));
            self.route(now);
        } else {
            self.seq += 1;
            self.retries.insert((now + delay, self.seq), run_id);
        }
    }

    /// Close the in-flight attempt of `request_id`; returns its run if the run still wants the result.
    fn finish_attempt(
        &mut self,
        now: Instant,
        request_id: &str,
        outcome: &str,
        error: Option<Value>,
    ) -> Option<String> {
        let run_id = match self.requests.remove(request_id) {
            Some(flight) => {
                self.unload(&flight);
                flight.run_id
            }
            // The reply of an attempt waiting to be re-routed: its connection
            // dropped before the ack reached us, but the worker had read the
            // request and ran it. Inngest buffers a response by request id and
            // never forwards that request again; neither do we.
            None => self.take_queued(request_id)?,
        };
        let ended = self.wall_ms(now);
        let run = self.runs.get_mut(&run_id)?;
        if run.status != RunStatus::Running {
            return None;
        }
        let attempt = run.attempts.last_mut()?;
        attempt.ended_at = Some(ended);
        attempt.outcome = Some(outcome.to_owned());
        attempt.error = error;
        Some(run_id)
    }

    /// Take out of the re-route queue the run whose current attempt is `request_id`.
    fn take_queued(&mut self, request_id: &str) -> Option<String> {
        let runs = &self.runs;
        let pos = self.queue.iter().position(|(run_id, _)| {
            runs.get(run_id).and_then(|r| r.attempts.last()).is_some_and(|a| a.request_id == request_id)
        })?;
        self.queue.remove(pos).map(|(run_id, _)| run_id)
    }

    fn end_run(&mut self, now: Instant, run_id: &str, status: RunStatus, output: Option<Value>) {
        let ended = self.wall_ms(now);
        let Some(run) = self.runs.get_mut(run_id) else { return };
        run.status = status;
        run.output = output;
        run.ended_at = Some(ended);
        let event_id = run.event_id.clone();
        self.out.push_back(ExecOutput::Run(RunEvent::Ended { run_id: run_id.to_owned(), event_id, status }));
    }

    /// Route a never-acked request again as the same attempt, or fail the attempt after too many forwards.
    fn reroute(&mut self, now: Instant, request_id: &str) {
        let Some(flight) = self.requests.get(request_id) else { return };
        if flight.forwards >= self.config.max_forwards {
            let error = json!({ "name": "connect_worker_stopped_responding",
                "message": format!("no worker acknowledged the request after {} forwards", flight.forwards) });
            return self.attempt_failed(now, request_id, error, "LeaseExpired", None);
        }
        let Some(flight) = self.requests.remove(request_id) else { return };
        self.unload(&flight);
        let still_running = self.runs.get(&flight.run_id).is_some_and(|r| r.status == RunStatus::Running);
        if still_running {
            self.queue.push_front((flight.run_id, flight.forwards));
            self.route(now);
        }
    }

    fn reroute_all(&mut self, now: Instant, released: &[String]) {
        for r in released {
            self.reroute(now, r);
        }
        self.route(now);
    }

    fn unload(&mut self, flight: &InFlight) {
        if let Some(n) = self.instance_load.get_mut(&flight.instance_id) {
            *n = n.saturating_sub(1);
        }
        if let Some(w) = self.workers.get_mut(&flight.conn) {
            w.info.in_flight = w.info.in_flight.saturating_sub(1);
        }
    }

    fn current_attempt_mut(&mut self, request_id: &str) -> Option<&mut Attempt> {
        let flight = self.requests.get(request_id)?;
        self.runs.get_mut(&flight.run_id)?.attempts.last_mut()
    }

    fn wall_ms(&self, now: Instant) -> u64 {
        let wall = self.anchor.1 + now.saturating_duration_since(self.anchor.0);
        wall.duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
    }

    fn ulid(&mut self, now: Instant) -> String {
        ulid::Ulid::from_parts(self.wall_ms(now), self.rng.u128(..)).to_string()
    }
}
