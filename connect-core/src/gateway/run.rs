//! What the executor reports: runs with their attempts, and worker connections
//! with their heartbeat record. Serialized as the dev server's REST answers.

use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;

use super::ConnId;

/// Inngest's run statuses as its REST API spells them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum RunStatus {
    /// Queued, in flight, or waiting for a retry.
    Running,
    Completed,
    Failed,
    Cancelled,
}

impl RunStatus {
    pub fn is_end(self) -> bool {
        self != RunStatus::Running
    }
}

/// One function run started by an event.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Run {
    pub run_id: String,
    /// The internal id of the event that started it (as `POST /e/{key}` returned it).
    pub event_id: String,
    /// The function's slug (`<app id>-<function id>` for the JS SDK).
    pub function_id: String,
    pub app_name: String,
    pub status: RunStatus,
    /// The return value when Completed, the last error when Failed.
    pub output: Option<Value>,
    /// Attempts allowed for each step (and the function body): the function's retries plus one.
    pub max_attempts: u32,
    /// Every request sent for this run, in order.
    pub attempts: Vec<Attempt>,
    /// Memoized step results by hashed step id (`{"data": ...}` or `{"error": ...}`), as sent back to the SDK.
    pub steps: serde_json::Map<String, Value>,
    /// Milliseconds since the Unix epoch (RFC 3339 in JSON, as Inngest's API).
    #[serde(serialize_with = "ser_time")]
    pub run_started_at: u64,
    #[serde(serialize_with = "ser_opt_time")]
    pub ended_at: Option<u64>,
}

/// One attempt of a run, and which worker connection ran it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Attempt {
    /// Zero-based, as `ctx.attempt` in the request payload; counted per step.
    pub attempt: u32,
    /// The hashed step id the request asked to run, `None` for the function itself.
    pub step: Option<String>,
    pub request_id: String,
    /// The connections the attempt was forwarded to (more than one if it was re-routed before an ack).
    pub connections: Vec<AttemptConn>,
    pub acked: bool,
    #[serde(serialize_with = "ser_time")]
    pub started_at: u64,
    #[serde(serialize_with = "ser_opt_time")]
    pub ended_at: Option<u64>,
    /// `Completed`, `Failed`, `Error` (retried), `LeaseExpired` (`connect_worker_stopped_responding`), `Cancelled`.
    pub outcome: Option<String>,
    pub error: Option<Value>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AttemptConn {
    pub conn: ConnId,
    /// The worker's connection id (from the start call).
    pub connection_id: String,
    pub instance_id: String,
}

/// Where a connection is, from the executor's side.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum ConnStatus {
    /// READY sent, waiting for WORKER_READY.
    Connected,
    Ready,
    Paused,
    Draining,
    Disconnected,
}

/// A worker connection as the dev server saw it, kept after it closes.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ConnectionInfo {
    pub conn: ConnId,
    pub connection_id: String,
    pub instance_id: String,
    pub group: String,
    pub apps: Vec<String>,
    pub sdk: String,
    pub status: ConnStatus,
    pub max_worker_concurrency: Option<u64>,
    pub in_flight: usize,
    pub heartbeats: u64,
    /// Every heartbeat gap, in order (the first measured from READY); for a
    /// connection dropped for missed heartbeats, the silence up to the drop last.
    #[serde(serialize_with = "ser_gaps")]
    pub gaps: Vec<Duration>,
    #[serde(serialize_with = "ser_ms")]
    pub max_gap: Duration,
    /// Gaps over 1.25 x the heartbeat interval (a drop for missed heartbeats counts as one).
    pub late: u64,
    /// Times the router found this connection's last heartbeat older than two intervals.
    pub marked_unhealthy: u64,
    pub disconnect_reason: Option<String>,
    /// When READY was sent: the base of the first gap, so gap `k` ended at
    /// `connected_at + gaps[..=k].sum()` (a timeline of gaps, for plots).
    #[serde(skip)]
    pub connected_at: Instant,
    /// When the connection closed (the silence after its last heartbeat ends here).
    #[serde(skip)]
    pub disconnected_at: Option<Instant>,
}

fn ser_ms<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64() * 1000.0)
}

fn ser_gaps<S: serde::Serializer>(gaps: &[Duration], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(gaps.iter().map(|d| d.as_secs_f64() * 1000.0))
}

fn ser_time<S: serde::Serializer>(ms: &u64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&rfc3339(*ms))
}

fn ser_opt_time<S: serde::Serializer>(ms: &Option<u64>, s: S) -> Result<S::Ok, S::Error> {
    match ms {
        Some(ms) => ser_time(ms, s),
        None => s.serialize_none(),
    }
}

/// `2026-12-03T16:48:11.031Z` for milliseconds since the Unix epoch (UTC, proleptic Gregorian).
pub fn rfc3339(ms: u64) -> String {
    let (secs, millis) = (ms / 1000, ms % 1000);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Days to civil date (Howard Hinnant's algorithm), valid for every u64 day count we can meet.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let (h, m, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}.{millis:03}Z")
}

#[cfg(test)]
mod tests {
    use super::rfc3339;

    #[test]
    fn rfc3339_formats_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(rfc3339(1_796_316_491_031), "2026-12-03T16:48:11.031Z");
    }
}
