//! Step functions: what the executor does with the opcodes of a NOT_COMPLETED reply.
//!
//! An SDK runs the function from the top on every request and skips the steps
//! whose results come back in `steps` (by hashed step id). So the executor's
//! part is to store each result and ask again:
//! - `StepRun` / `Step`: `steps[id] = {"data": ...}`; the next request runs the function (attempt 0).
//! - `StepFailed`: `steps[id] = {"error": ...}`: the SDK gave up on the step; the function may catch it.
//! - `StepError`: the step failed this attempt; retried like an error reply. After the last attempt it is
//!   stored as `{"error": ...}` and the function is asked again, so that it can handle it.
//! - `StepPlanned`: run that step next (`step_id` = its id); several planned at once run one after another.
//! - `Sleep`: `steps[id] = {"data": null}`, and the next request waits for the duration (`"1h30m"`) or
//!   until the instant (RFC 3339) in its `name`.
//!
//! Anything else (waitForEvent, invoke, AI gateway, signals, ...) fails the run: connect-dev does not do it.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{Executor, RunStatus};
use crate::payload::Opcode;

/// A run that asks for more requests than this is failed (an SDK looping on a step).
const MAX_REQUESTS_PER_RUN: usize = 10_000;

impl Executor {
    pub(super) fn on_steps(&mut self, now: Instant, request_id: &str, ops: Vec<Opcode>) {
        let unsupported: Vec<&str> = ops
            .iter()
            .map(|o| o.op.as_str())
            .filter(|op| {
                !matches!(
                    *op,
                    "StepRun" | "Step" | "StepFailed" | "StepError" | "StepPlanned" | "Sleep" | "None"
                )
            })
            .collect();
        if !unsupported.is_empty() {
            let error = json!({ "name": "UnsupportedStep",
                "message": format!("connect-dev does not support the {unsupported:?} opcodes") });
            return self.fail(now, request_id, error);
        }
        let nothing_to_do = ops.iter().all(|o| o.op == "None") && !self.has_planned(request_id);
        if nothing_to_do {
            let error = json!({ "name": "NothingToDo", "message": "the reply had no opcode to act on" });
            return self.fail(now, request_id, error);
        }
        if let Some(op) = ops.iter().find(|o| o.op == "StepError") {
            let error = op.error.clone().or_else(|| op.data.clone()).unwrap_or(Value::Null);
            if !self.on_last_attempt(request_id) {
                return self.attempt_failed(now, request_id, error, "StepError", None);
            }
        }
        let mut delay = Duration::ZERO;
        for op in ops.iter().filter(|o| o.op == "Sleep") {
            match self.sleep_for(now, op) {
                Some(d) => delay = delay.max(d),
                None => {
                    let error = json!({ "name": "InvalidSleep", "message": format!("cannot read sleep {:?}", op.name) });
                    return self.fail(now, request_id, error);
                }
            }
        }
        let Some(run_id) = self.finish_attempt(now, request_id, "Step", None) else { return };
        let (Some(run), Some(job)) = (self.runs.get_mut(&run_id), self.jobs.get_mut(&run_id)) else { return };
        for op in ops {
            let memo = match op.op.as_str() {
                "StepRun" | "Step" => json!({ "data": op.data.unwrap_or(Value::Null) }),
                "StepFailed" | "StepError" => json!({ "error": op.error.or(op.data).unwrap_or(Value::Null) }),
                "Sleep" => json!({ "data": Value::Null }),
                "StepPlanned" => {
                    if !run.steps.contains_key(&op.id) && !job.planned.contains(&op.id) {
                        job.planned.push_back(op.id);
                    }
                    continue;
                }
                _ => continue,
            };
            job.stack.push(op.id.clone());
            run.steps.insert(op.id, memo);
        }
        job.attempt = 0;
        job.step = job.planned.pop_front();
        if run.attempts.len() >= MAX_REQUESTS_PER_RUN {
            let error = json!({ "name": "TooManySteps", "message": "the run asked for too many requests" });
            return self.end_run(now, &run_id, RunStatus::Failed, Some(error));
        }
        self.requeue(now, run_id, delay);
    }

    fn has_planned(&self, request_id: &str) -> bool {
        let Some(flight) = self.requests.get(request_id) else { return false };
        self.jobs.get(&flight.run_id).is_some_and(|j| !j.planned.is_empty())
    }

    fn on_last_attempt(&self, request_id: &str) -> bool {
        let Some(flight) = self.requests.get(request_id) else { return true };
        match (self.runs.get(&flight.run_id), self.jobs.get(&flight.run_id)) {
            (Some(run), Some(job)) => job.attempt + 1 >= run.max_attempts,
            _ => true,
        }
    }

    fn fail(&mut self, now: Instant, request_id: &str, error: Value) {
        if let Some(run_id) = self.finish_attempt(now, request_id, "Failed", Some(error.clone())) {
            self.end_run(now, &run_id, RunStatus::Failed, Some(error));
        }
    }

    /// How long a Sleep opcode waits: its `name` is `"1w2d3h4m5s"` or an RFC 3339 instant.
    fn sleep_for(&self, now: Instant, op: &Opcode) -> Option<Duration> {
        let spec = op.name.as_deref().or_else(|| op.opts.as_ref()?.get("duration")?.as_str())?;
        if let Some(d) = parse_period(spec) {
            return Some(d);
        }
        let until = parse_rfc3339_ms(spec)?;
        Some(Duration::from_millis(until.saturating_sub(self.wall_ms(now))))
    }
}

/// `"1w2d3h4m5s"`, `"500ms"`, `"10s"`: integer amounts with units w, d, h, m, s, ms.
fn parse_period(s: &str) -> Option<Duration> {
    let mut total = Duration::ZERO;
    let mut rest = s.trim();
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit())?;
        let n: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "ms" => Duration::from_millis(1),
            "s" => Duration::from_secs(1),
            "m" => Duration::from_secs(60),
            "h" => Duration::from_secs(3600),
            "d" => Duration::from_secs(86_400),
            "w" => Duration::from_secs(7 * 86_400),
            _ => return None,
        };
        total += unit.checked_mul(u32::try_from(n).ok()?)?;
        rest = &rest[unit_len..];
    }
    Some(total)
}

/// `2026-12-03T16:48:11.031Z` (UTC, optional fraction) as milliseconds since the Unix epoch.
fn parse_rfc3339_ms(s: &str) -> Option<u64> {
    let s = s.strip_suffix('Z')?;
    let (date, time) = s.split_once('T')?;
    let mut d = date.split('-').map(|p| p.parse::<i64>().ok());
    let (y, mo, day) = (d.next()??, d.next()??, d.next()??);
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let mut t = hms.split(':').map(|p| p.parse::<i64>().ok());
    let (h, mi, sec) = (t.next()??, t.next()??, t.next()??);
    let millis: i64 = format!("{frac:0<3}").get(..3)?.parse().ok()?;
    // Days from civil (Howard Hinnant's algorithm).
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let doy = (153 * (if mo > 2 { mo - 3 } else { mo + 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let ms = ((days * 86_400 + h * 3600 + mi * 60 + sec) * 1000) + millis;
    u64::try_from(ms).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::run::rfc3339;

    #[test]
    fn sleep_periods_parse_as_the_js_sdk_writes_them() {
        assert_eq!(parse_period("1s"), Some(Duration::from_secs(1)));
        assert_eq!(parse_period("2h30m10s"), Some(Duration::from_secs(9010)));
        assert_eq!(parse_period("1w1d"), Some(Duration::from_secs(8 * 86_400)));
        assert_eq!(parse_period("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_period(""), None);
        assert_eq!(parse_period("soon"), None);
        assert_eq!(parse_period("3x"), None);
    }

    #[test]
    fn rfc3339_instants_round_trip() {
        for ms in [0, 951_782_400_123, 1_796_316_491_031] {
            assert_eq!(parse_rfc3339_ms(&rfc3339(ms)), Some(ms));
        }
        assert_eq!(parse_rfc3339_ms("2026-12-03T16:48:11Z"), Some(1_796_316_491_000));
        assert_eq!(parse_rfc3339_ms("yesterday"), None);
    }
}
