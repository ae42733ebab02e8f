//! What a worker is configured with, and the checks done once at construction.

use std::time::{Duration, SystemTime};

use crate::auth::SigningKey;
use crate::backoff::BackoffConfig;
use crate::duration::format_go_duration as go;
use crate::payload::{Capabilities, FunctionConfig};
use crate::wire::Limits;

pub use crate::wire::SystemAttributes;

/// One app served over the connection. Inngest allows 10 per connection by default.
#[derive(Clone, Debug, PartialEq)]
pub struct AppConfig {
    pub app_name: String,
    pub app_version: Option<String>,
    pub functions: Vec<FunctionConfig>,
}

impl AppConfig {
    pub fn new(app_name: impl Into<String>, functions: Vec<FunctionConfig>) -> Self {
        AppConfig { app_name: app_name.into(), app_version: None, functions }
    }
}

/// Every phase has a deadline (DESIGN.md "Behaviour rules").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// The HTTP start call (also put in the request for the adapter to enforce).
    pub start_call: Duration,
    /// The WebSocket upgrade.
    pub ws_connect: Duration,
    /// From the upgrade to GATEWAY_HELLO.
    pub hello: Duration,
    /// From WORKER_CONNECT to GATEWAY_CONNECTION_READY. At least 20 s: the first
    /// app sync happens inside the gateway's handshake and can be slow.
    pub ready: Duration,
    /// From WORKER_REPLY to WORKER_REPLY_ACK; past it the reply is flushed over HTTP.
    pub reply_ack: Duration,
    /// One HTTP flush call.
    pub flush_call: Duration,
    /// How long a draining connection is kept while its replacement connects.
    /// Inngest's gateway force-closes 25 s after GATEWAY_CLOSING; Go waits 10 s.
    pub drain_replacement: Duration,
    /// The bound on a graceful shutdown: waiting for in-flight requests and
    /// for their replies to be acknowledged or flushed.
    pub shutdown: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            start_call: Duration::from_secs(10),
            ws_connect: Duration::from_secs(10),
            hello: Duration::from_secs(5),
            ready: Duration::from_secs(20),
            reply_ack: Duration::from_secs(5),
            flush_call: Duration::from_secs(10),
            drain_replacement: Duration::from_secs(10),
            shutdown: Duration::from_secs(60),
        }
    }
}

/// Interval values used when READY leaves a field empty (or zero) or cannot be parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IntervalDefaults {
    /// Inngest's gateway sends 10 s; the router drops connections silent for 20 s.
    pub heartbeat: Duration,
    /// Older gateways (20 s lease) used 5 s, current ones 30 s (2 min lease):
    /// 5 s is safe for both.
    pub extend_lease: Duration,
    /// Lower bound applied to any interval from READY, so that a `"1ns"` cannot make the loop spin.
    pub min_interval: Duration,
}

impl Default for IntervalDefaults {
    fn default() -> Self {
        IntervalDefaults {
            heartbeat: Duration::from_secs(10),
            extend_lease: Duration::from_secs(5),
            min_interval: Duration::from_millis(10),
        }
    }
}

/// The worker's configuration. Build it with [`WorkerConfig::new`] and adjust the public fields.
#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// `http://127.0.0.1:8288`, `https://api.inngest.com`, ... The start call goes
    /// to `{api}/v0/connect/start`, the flush to `{api}/v0/connect/flush`.
    pub api_base_url: String,
    /// Dial this instead of the `gateway_endpoint` of the start response.
    pub gateway_url_override: Option<String>,
    /// None in dev mode: no `Authorization` header is sent.
    pub signing_key: Option<SigningKey>,
    /// Tried after a 401/403 with the primary key (and back again).
    pub signing_key_fallback: Option<SigningKey>,
    /// `X-Inngest-Env` header and `WorkerConnect.environment`.
    pub env: Option<String>,
    /// Stable per worker process; Inngest SDKs use the host name.
    pub instance_id: String,
    pub apps: Vec<AppConfig>,
    pub capabilities: Capabilities,
    pub sdk_language: String,
    pub sdk_version: String,
    pub framework: String,
    pub platform: Option<String>,
    /// As measured by the adapter (the core reads nothing from the system).
    pub system_attributes: SystemAttributes,
    /// The wall clock at the `now` passed to [`Worker::new`](super::Worker::new):
    /// sent as `started_at`, and the anchor from which the machine derives wall
    /// time (connection ULIDs, lease expiry read from lease-id ULIDs).
    pub started_at: SystemTime,
    /// Requests held at once; a request over capacity is not acked (the gateway re-routes it).
    pub max_worker_concurrency: Option<u32>,
    /// Send WORKER_READY after READY (as the JS SDK does) instead of being routable at once.
    pub manual_readiness_ack: bool,
    pub timeouts: Timeouts,
    pub intervals: IntervalDefaults,
    /// Unanswered heartbeats after which the connection is declared dead.
    pub heartbeat_miss_limit: u32,
    pub reconnect_backoff: BackoffConfig,
    /// Retry policy for HTTP flushes of one reply.
    pub flush_backoff: BackoffConfig,
    /// Seeds every random choice (jitter, generated ULIDs): a run replays exactly.
    pub seed: u64,
    pub limits: Limits,
    /// Finished request ids remembered, so that a re-delivery is not run twice.
    pub finished_memory: usize,
}

impl WorkerConfig {
    /// A config for one app, with every other field at its default.
    pub fn new(
        app_name: impl Into<String>,
        functions: Vec<FunctionConfig>,
        instance_id: impl Into<String>,
        started_at: SystemTime,
    ) -> Self {
        WorkerConfig {
            api_base_url: "http://127.0.0.1:8288".into(),
            gateway_url_override: None,
            signing_key: None,
            signing_key_fallback: None,
            env: None,
            instance_id: instance_id.into(),
            apps: vec![AppConfig::new(app_name, functions)],
            capabilities: Capabilities::default(),
            sdk_language: "rust".into(),
            sdk_version: concat!("v", env!("CARGO_PKG_VERSION")).into(),
            framework: "connect".into(),
            platform: None,
            system_attributes: SystemAttributes::default(),
            started_at,
            max_worker_concurrency: None,
            manual_readiness_ack: true,
            timeouts: Timeouts::default(),
            intervals: IntervalDefaults::default(),
            heartbeat_miss_limit: 2,
            reconnect_backoff: BackoffConfig::default(),
            flush_backoff: BackoffConfig { max: Duration::from_secs(60), ..BackoffConfig::default() },
            seed: 0,
            limits: Limits::default(),
            finished_memory: 10_000,
        }
    }

    /// The checks [`Worker::new`](super::Worker::new) makes; adapters call it
    /// when a worker is built, so a bad value is an error there, not later.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.instance_id.trim().is_empty() {
            return Err(ConfigError::EmptyInstanceId);
        }
        if self.apps.is_empty() {
            return Err(ConfigError::NoApps);
        }
        if let Some(app) = self.apps.iter().find(|a| a.app_name.is_empty()) {
            return Err(ConfigError::EmptyAppName { functions: app.functions.len() });
        }
        let keys = [&self.signing_key, &self.signing_key_fallback];
        if self.env.is_none()
            && keys.iter().any(|k| k.as_ref().is_some_and(|k| k.prefix() == "signkey-branch-"))
        {
            return Err(ConfigError::BranchKeyWithoutEnv);
        }
        if self.heartbeat_miss_limit == 0 {
            return Err(ConfigError::ZeroHeartbeatMissLimit);
        }
        if self.reconnect_backoff.initial.is_zero() || self.flush_backoff.initial.is_zero() {
            // Retrying with no delay at all is a hot loop whenever the peer fails fast.
            return Err(ConfigError::ZeroBackoff);
        }
        self.check_durations()
    }

    /// Every configured deadline and interval within a range that makes sense:
    /// not so short that a timer fires before any network can answer (or a
    /// loop spins), not so long that a stuck phase goes unnoticed for hours.
    fn check_durations(&self) -> Result<(), ConfigError> {
        let t = &self.timeouts;
        let phases = [
            ("timeouts.start_call", t.start_call),
            ("timeouts.ws_connect", t.ws_connect),
            ("timeouts.hello", t.hello),
            ("timeouts.ready", t.ready),
            ("timeouts.reply_ack", t.reply_ack),
            ("timeouts.flush_call", t.flush_call),
            ("timeouts.drain_replacement", t.drain_replacement),
        ];
        for (what, value) in phases {
            in_range(what, value, MIN_TIMER, MAX_PHASE)?;
        }
        // Zero is allowed: shut down without waiting for anything in flight.
        in_range("timeouts.shutdown", t.shutdown, Duration::ZERO, MAX_SHUTDOWN)?;
        in_range(
            "intervals.min_interval",
            self.intervals.min_interval,
            Duration::from_millis(1),
            MIN_TIMER * 100,
        )?;
        in_range("intervals.heartbeat", self.intervals.heartbeat, MIN_TIMER, MAX_INTERVAL)?;
        in_range("intervals.extend_lease", self.intervals.extend_lease, MIN_TIMER, MAX_INTERVAL)?;
        for (what, b) in
            [("reconnect_backoff", &self.reconnect_backoff), ("flush_backoff", &self.flush_backoff)]
        {
            in_range(what, b.max, b.initial, MAX_BACKOFF).map_err(|_| ConfigError::BackoffMax {
                what,
                initial: b.initial,
                max: b.max,
            })?;
        }
        Ok(())
    }
}

/// The shortest phase deadline or interval a worker accepts (also what an
/// interval from READY is raised to by default).
pub const MIN_TIMER: Duration = Duration::from_millis(10);
/// The longest phase deadline (start call, upgrade, HELLO, READY, reply ack, flush, drain).
pub const MAX_PHASE: Duration = Duration::from_secs(600);
/// The longest heartbeat or lease-extension interval: a lease lasts 2 minutes,
/// and Inngest's router drops a connection silent for 20 s.
pub const MAX_INTERVAL: Duration = Duration::from_secs(300);
/// The longest graceful shutdown: Inngest gives up on a run after 2 hours anyway.
pub const MAX_SHUTDOWN: Duration = Duration::from_secs(2 * 3600);
/// The longest delay between two retries.
pub const MAX_BACKOFF: Duration = Duration::from_secs(3600);

fn in_range(what: &'static str, value: Duration, min: Duration, max: Duration) -> Result<(), ConfigError> {
    if (min..=max).contains(&value) { Ok(()) } else { Err(ConfigError::OutOfRange { what, value, min, max }) }
}

/// A config that cannot work, caught before anything is sent.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("instance_id is empty: the gateway rejects the handshake without one")]
    EmptyInstanceId,
    #[error("no apps configured: the gateway rejects a handshake without apps")]
    NoApps,
    #[error("an app with {functions} functions has an empty name")]
    EmptyAppName { functions: usize },
    #[error("a branch signing key needs an env name (`env`)")]
    BranchKeyWithoutEnv,
    #[error("heartbeat_miss_limit must be at least 1")]
    ZeroHeartbeatMissLimit,
    #[error("a backoff's initial delay must be above zero")]
    ZeroBackoff,
    /// A deadline or interval outside the range that makes sense for it.
    #[error("{what} is {}: it must be between {} and {}", go(*.value), go(*.min), go(*.max))]
    OutOfRange { what: &'static str, value: Duration, min: Duration, max: Duration },
    #[error("{what}.max ({}) must be at least its initial delay ({}) and at most {}", go(*.max), go(*.initial), go(MAX_BACKOFF))]
    BackoffMax { what: &'static str, initial: Duration, max: Duration },
    #[error("could not encode {what} as JSON: {error}")]
    Json { what: &'static str, error: String },
}
