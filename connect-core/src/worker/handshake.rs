//! The pieces of the handshake that are pure functions of the config: the
//! start and flush HTTP requests, reading the start response, the
//! WORKER_CONNECT frame and the READY intervals (PROTOCOL.md 2.1 to 2.3).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use crate::auth::SigningKey;
use crate::duration::parse_go_duration;
use crate::wire::{
    AppConfiguration, AuthData, GatewayConnectionReadyData, Limits, Message, StartRequest, StartResponse,
    Timestamp, WorkerConnectRequestData, decode_body, encode_body,
};

use super::config::{ConfigError, IntervalDefaults, WorkerConfig};
use super::events::{HttpRequest, HttpResponse};

/// What a start call gave us.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct StartInfo {
    pub(crate) connection_id: String,
    pub(crate) gateway_endpoint: String,
    pub(crate) gateway_group: String,
    pub(crate) session_token: String,
    pub(crate) sync_token: String,
}

/// How a start call ended.
#[derive(Debug)]
pub(crate) enum StartOutcome {
    Ok(StartInfo),
    /// 401/403: try the other key, or give up if there is none.
    Unauthorized(u16),
    /// Anything else: try again after a backoff (the text says why).
    Retry(String),
}

/// Parts of WORKER_CONNECT that never change, encoded once.
#[derive(Debug)]
pub(crate) struct Statics {
    pub(crate) start_url: String,
    pub(crate) flush_url: String,
    apps: Vec<AppConfiguration>,
    capabilities: Bytes,
    /// `<lang>:v<semver>`, the `sdk_version` of every SDKResponse.
    pub(crate) reply_sdk_version: String,
    /// `started_at` in Unix milliseconds: the machine's wall-clock anchor.
    pub(crate) started_unix_ms: u64,
}

impl Statics {
    pub(crate) fn new(cfg: &WorkerConfig) -> Result<Statics, ConfigError> {
        let json = |what, r: serde_json::Result<Vec<u8>>| {
            r.map(Bytes::from).map_err(|e| ConfigError::Json { what, error: e.to_string() })
        };
        let capabilities = json("capabilities", serde_json::to_vec(&cfg.capabilities))?;
        let mut apps = Vec::with_capacity(cfg.apps.len());
        for app in &cfg.apps {
            apps.push(AppConfiguration {
                app_name: app.app_name.clone(),
                app_version: app.app_version.clone(),
                functions: json("functions", serde_json::to_vec(&app.functions))?,
                feature_observations: None,
            });
        }
        let base = cfg.api_base_url.trim_end_matches('/');
        let version = cfg.sdk_version.trim_start_matches('v');
        Ok(Statics {
            started_unix_ms: unix_ms(cfg.started_at),
            start_url: format!("{base}/v0/connect/start"),
            flush_url: format!("{base}/v0/connect/flush"),
            apps,
            capabilities,
            reply_sdk_version: format!("{}:v{version}", cfg.sdk_language),
        })
    }
}

fn headers(cfg: &WorkerConfig, key: Option<&SigningKey>) -> Vec<(String, String)> {
    let mut h = vec![("Content-Type".to_owned(), "application/protobuf".to_owned())];
    if let Some(key) = key {
        h.push(("Authorization".to_owned(), key.hashed().bearer()));
    }
    if let Some(env) = &cfg.env {
        h.push(("X-Inngest-Env".to_owned(), env.clone()));
    }
    h
}

pub(crate) fn start_request(
    cfg: &WorkerConfig,
    st: &Statics,
    key: Option<&SigningKey>,
    exclude: &[String],
) -> HttpRequest {
    HttpRequest {
        url: st.start_url.clone(),
        headers: headers(cfg, key),
        body: encode_body(&StartRequest { exclude_gateways: exclude.to_vec() }),
        timeout: cfg.timeouts.start_call,
    }
}

pub(crate) fn flush_request(
    cfg: &WorkerConfig,
    st: &Statics,
    key: Option<&SigningKey>,
    body: Bytes,
) -> HttpRequest {
    HttpRequest {
        url: st.flush_url.clone(),
        headers: headers(cfg, key),
        body,
        timeout: cfg.timeouts.flush_call,
    }
}

pub(crate) fn parse_start(result: Result<HttpResponse, String>) -> StartOutcome {
    let resp = match result {
        Ok(r) => r,
        Err(e) => return StartOutcome::Retry(format!("start call failed: {e}")),
    };
    match resp.status {
        200 => match decode_body::<StartResponse>(resp.body, "StartResponse") {
            Ok(r) => StartOutcome::Ok(StartInfo {
                connection_id: r.connection_id,
                gateway_endpoint: r.gateway_endpoint,
                gateway_group: r.gateway_group,
                session_token: r.session_token,
                sync_token: r.sync_token,
            }),
            Err(e) => StartOutcome::Retry(format!("start response unreadable: {e}")),
        },
        401 | 403 => StartOutcome::Unauthorized(resp.status),
        429 => StartOutcome::Retry("start call: connection limit reached (429)".into()),
        s => StartOutcome::Retry(format!("start call answered HTTP {s}")),
    }
}

/// The WORKER_CONNECT frame for one connection.
pub(crate) fn worker_connect(
    cfg: &WorkerConfig,
    st: &Statics,
    info: &StartInfo,
    connection_id: &str,
    limits: &Limits,
) -> Bytes {
    let started = cfg.started_at.duration_since(UNIX_EPOCH).unwrap_or_default();
    let msg = WorkerConnectRequestData {
        connection_id: connection_id.to_owned(),
        instance_id: cfg.instance_id.clone(),
        auth_data: Some(AuthData {
            session_token: info.session_token.clone(),
            sync_token: info.sync_token.clone(),
        }),
        capabilities: st.capabilities.clone(),
        apps: st.apps.clone(),
        worker_manual_readiness_ack: cfg.manual_readiness_ack,
        system_attributes: Some(cfg.system_attributes.clone()),
        environment: cfg.env.clone(),
        framework: cfg.framework.clone(),
        platform: cfg.platform.clone(),
        sdk_version: cfg.sdk_version.clone(),
        sdk_language: cfg.sdk_language.clone(),
        started_at: Some(Timestamp {
            seconds: i64::try_from(started.as_secs()).unwrap_or(i64::MAX),
            nanos: started.subsec_nanos() as i32,
        }),
        max_worker_concurrency: cfg.max_worker_concurrency.map(i64::from),
    };
    // The handshake is ours and small; refusing it for size would only hide a
    // config problem the gateway reports better (too many apps, say).
    let unlimited = Limits { max_send_frame: usize::MAX, ..*limits };
    Message::WorkerConnect(Box::new(msg)).encode(&unlimited).unwrap_or_default()
}

/// Heartbeat and extend intervals from READY: Go durations; empty, zero or
/// unparsable values fall back to the defaults, tiny ones are raised to the floor.
pub(crate) fn intervals(ready: &GatewayConnectionReadyData, d: &IntervalDefaults) -> (Duration, Duration) {
    let pick = |s: &str, default: Duration| match parse_go_duration(s) {
        Ok(v) if !v.is_zero() => v.max(d.min_interval),
        _ => default.max(d.min_interval),
    };
    (pick(&ready.heartbeat_interval, d.heartbeat), pick(&ready.extend_lease_interval, d.extend_lease))
}

/// Wall-clock milliseconds since the Unix epoch.
pub(crate) fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)).unwrap_or(0)
}
