//! Routing queued runs to connections, and building the requests they become.

use std::collections::{HashSet, VecDeque};
use std::time::Instant;

use bytes::Bytes;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::{Attempt, AttemptConn, ExecOutput, Executor, InFlight, RunEvent, RunStatus};
use crate::gateway::ConnId;
use crate::gateway::token::{DEV_ACCOUNT_ID, DEV_ENV_ID};
use crate::payload::STEP_ID;
use crate::wire::GatewayExecutorRequestData;

impl Executor {
    /// Dispatch every queued run that has a routable connection now.
    pub(super) fn route(&mut self, now: Instant) {
        let mut waiting = VecDeque::new();
        // Dispatching only adds load, so a function with no candidate stays without one for this pass.
        let mut stuck: HashSet<String> = HashSet::new();
        while let Some((run_id, forwards)) = self.queue.pop_front() {
            let Some(run) = self.runs.get(&run_id) else { continue };
            if run.status != RunStatus::Running {
                continue;
            }
            if stuck.contains(&run.function_id) {
                waiting.push_back((run_id, forwards));
                continue;
            }
            let slug = run.function_id.clone();
            match self.pick(now, &slug) {
                Some(conn) => self.dispatch(now, run_id, forwards, conn),
                None => {
                    stuck.insert(slug);
                    waiting.push_back((run_id, forwards));
                }
            }
        }
        self.queue = waiting;
    }

    /// The least loaded healthy connection serving `slug` whose instance has capacity; newest on ties.
    fn pick(&mut self, now: Instant, slug: &str) -> Option<ConnId> {
        let stale_after = self.config.heartbeat_interval * 2;
        let mut best: Option<(usize, ConnId)> = None;
        for (id, w) in self.workers.iter_mut() {
            if !w.routable || !w.slugs.iter().any(|s| s == slug) {
                continue;
            }
            if now.saturating_duration_since(w.last_heartbeat) > stale_after {
                if w.healthy {
                    w.healthy = false;
                    w.info.marked_unhealthy += 1;
                }
                continue;
            }
            if let Some(limit) = w.info.max_worker_concurrency {
                let load = self.instance_load.get(&w.info.instance_id).copied().unwrap_or(0);
                if load as u64 >= limit {
                    continue;
                }
            }
            let better = match best {
                None => true,
                Some((load, bid)) => w.info.in_flight < load || (w.info.in_flight == load && *id > bid),
            };
            if better {
                best = Some((w.info.in_flight, *id));
            }
        }
        best.map(|(_, id)| id)
    }

    fn dispatch(&mut self, now: Instant, run_id: String, forwards: u32, conn: ConnId) {
        let started = self.wall_ms(now);
        let Some(w) = self.workers.get_mut(&conn) else { return };
        w.info.in_flight += 1;
        let instance_id = w.info.instance_id.clone();
        let attempt_conn = AttemptConn {
            conn,
            connection_id: w.info.connection_id.clone(),
            instance_id: instance_id.clone(),
        };
        *self.instance_load.entry(instance_id.clone()).or_default() += 1;
        let fresh_id = self.ulid(now);
        let (job_attempt, job_step) = match self.jobs.get(&run_id) {
            Some(job) => (job.attempt, job.step.clone()),
            None => (0, None),
        };
        let Some(run) = self.runs.get_mut(&run_id) else { return };
        // A re-routed attempt keeps its request id and its record of earlier forwards.
        let rerouted = run.attempts.last_mut().filter(|a| forwards > 0 && a.outcome.is_none());
        let (attempt_no, request_id) = match rerouted {
            Some(a) => {
                a.connections.push(attempt_conn);
                (a.attempt, a.request_id.clone())
            }
            None => {
                let attempt_no = job_attempt;
                run.attempts.push(Attempt {
                    attempt: attempt_no,
                    step: job_step,
                    request_id: fresh_id.clone(),
                    connections: vec![attempt_conn],
                    acked: false,
                    started_at: started,
                    ended_at: None,
                    outcome: None,
                    error: None,
                });
                (attempt_no, fresh_id)
            }
        };
        let request = self.build_request(&run_id, &request_id, attempt_no);
        let flight = InFlight { run_id: run_id.clone(), conn, instance_id, forwards: forwards + 1 };
        self.requests.insert(request_id, flight);
        self.out.push_back(ExecOutput::Run(RunEvent::AttemptStarted { run_id, attempt: attempt_no, conn }));
        if let Some(request) = request {
            self.out.push_back(ExecOutput::Forward { conn, request: Box::new(request) });
        }
    }

    fn build_request(
        &mut self,
        run_id: &str,
        request_id: &str,
        attempt: u32,
    ) -> Option<GatewayExecutorRequestData> {
        let run = self.runs.get(run_id)?;
        let f = self.functions.get(&run.function_id)?;
        let job = self.jobs.get(run_id)?;
        let event = self.events.get(&run.event_id).map(|e| e.event.clone()).unwrap_or(Value::Null);
        let job_id = format!("{run_id}-{}", run.attempts.len());
        let step_id = job.step.clone().unwrap_or_else(|| STEP_ID.to_owned());
        // serde_json's map keeps keys sorted, which is the canonical (JCS) order Inngest sends.
        let payload = json!({
            "event": event, "events": [event], "steps": run.steps, "version": job.version, "use_api": false,
            "ctx": { "fn_id": f.uuid, "run_id": run_id, "env": "", "step_id": step_id, "attempt": attempt,
                     "max_attempts": run.max_attempts,
                     "stack": { "stack": job.stack, "current": job.stack.len() },
                     "request_id": request_id, "job_id": job_id,
                     "disable_immediate_execution": false, "use_api": false },
        });
        let trace = format!("00-{:032x}-{:016x}-01", self.rng.u128(..), self.rng.u64(..));
        let system_trace_ctx = serde_json::to_vec(&json!({ "traceparent": trace })).unwrap_or_default();
        let user_trace_ctx = serde_json::to_vec(&json!({ "traceparent": trace,
            "tracestate": format!("inngest@app={},inngest@fn={}", f.app_uuid, f.uuid) }))
        .unwrap_or_default();
        Some(GatewayExecutorRequestData {
            request_id: request_id.to_owned(),
            account_id: DEV_ACCOUNT_ID.into(),
            env_id: DEV_ENV_ID.into(),
            app_id: f.app_uuid.clone(),
            app_name: f.app_name.clone(),
            function_id: f.uuid.clone(),
            function_slug: run.function_id.clone(),
            step_id: Some(step_id),
            request_payload: Bytes::from(serde_json::to_vec(&payload).unwrap_or_default()),
            system_trace_ctx: Bytes::from(system_trace_ctx),
            user_trace_ctx: Bytes::from(user_trace_ctx),
            run_id: run_id.to_owned(),
            lease_id: String::new(),
            job_id,
        })
    }
}

/// Exact names, plus a trailing `*` wildcard (`app/*`) as Inngest allows.
pub(super) fn trigger_matches(trigger: &str, name: &str) -> bool {
    match trigger.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => trigger == name,
    }
}

/// A stable UUID-shaped id for a name (Inngest gives apps and functions UUIDs).
pub(super) fn uuid_of(name: &str) -> String {
    let h = Sha256::digest(name.as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&h[..16]);
    b[6] = (b[6] & 0x0f) | 0x50;
    b[8] = (b[8] & 0x3f) | 0x80;
    let x = hex::encode(b);
    format!("{}-{}-{}-{}-{}", &x[0..8], &x[8..12], &x[12..16], &x[16..20], &x[20..32])
}
