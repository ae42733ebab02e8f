//! Golden vectors: our wire codec against bytes made by the Inngest JS SDK.
//!
//! `tests/golden/vectors.json` (see `tests/golden/README.md`) holds frames and
//! HTTP bodies encoded by the code generated inside the real JS SDK, each with
//! its payload as JSON. For every vector we check, independently:
//!
//! - decoding: our decoder turns `hex` into exactly `payload` (same keys,
//!   proto3 defaults omitted, `optional` fields present whenever set);
//! - encoding: the message built from `payload` alone encodes to `hex`, byte
//!   for byte.
//!
//! `tests/golden/rust_frames.json` is the other direction: frames our encoder
//! writes from the same payloads plus a few of our own, which
//! `node tests/js/golden.mjs --check tests/golden/rust_frames.json --strict-bytes`
//! decodes with the JS SDK (run by `scripts/golden.sh`). Regenerate it with
//! `CONNECT_WRITE_GOLDEN=1 cargo test -p connect-core --test golden`; a test
//! fails when the committed file differs from what we would write now.

use std::collections::BTreeSet;
use std::path::PathBuf;

use bytes::Bytes;
use connect_core::wire::*;
use prost::Message as _;
use serde::Deserialize;
use serde_json::{Map, Value, json};

// ---------------------------------------------------------------------------
// The JSON shape: an ordered value, so rust_frames.json keeps field order.
// ---------------------------------------------------------------------------

/// A JSON value whose objects keep their keys in field-number order.
#[derive(Clone, Debug, PartialEq)]
enum J {
    Null,
    Bool(bool),
    Int(i64),
    Str(String),
    Arr(Vec<J>),
    Obj(Vec<(&'static str, J)>),
}

impl serde::Serialize for J {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeSeq};
        match self {
            J::Null => s.serialize_unit(),
            J::Bool(b) => s.serialize_bool(*b),
            J::Int(n) => s.serialize_i64(*n),
            J::Str(v) => s.serialize_str(v),
            J::Arr(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            J::Obj(fields) => {
                let mut map = s.serialize_map(Some(fields.len()))?;
                for (k, v) in fields {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
    }
}

impl J {
    fn to_value(&self) -> Value {
        serde_json::to_value(self).expect("J is always representable as JSON")
    }
}

type Res<T> = Result<T, String>;

/// Writes one message in the vector shape. Implicit-presence fields are left
/// out at their proto3 default; `optional` fields and sub-messages appear
/// exactly when set.
#[derive(Default)]
struct Wr(Vec<(&'static str, J)>);

impl Wr {
    fn put(mut self, k: &'static str, v: J) -> Self {
        self.0.push((k, v));
        self
    }
    fn string(self, k: &'static str, v: &str) -> Self {
        if v.is_empty() { self } else { self.put(k, J::Str(v.to_owned())) }
    }
    fn opt_string(self, k: &'static str, v: Option<&String>) -> Self {
        match v {
            Some(v) => self.put(k, J::Str(v.clone())),
            None => self,
        }
    }
    fn bytes(self, k: &'static str, v: &[u8]) -> Self {
        if v.is_empty() { self } else { self.put(k, J::Str(hex::encode(v))) }
    }
    fn opt_bytes(self, k: &'static str, v: Option<&Bytes>) -> Self {
        match v {
            Some(v) => self.put(k, J::Str(hex::encode(v))),
            None => self,
        }
    }
    fn boolean(self, k: &'static str, v: bool) -> Self {
        if v { self.put(k, J::Bool(true)) } else { self }
    }
    /// int32, uint32 and enum fields: JSON numbers.
    fn num(self, k: &'static str, v: impl Into<i64>) -> Self {
        let v = v.into();
        if v == 0 { self } else { self.put(k, J::Int(v)) }
    }
    /// int64 fields: decimal strings.
    fn int64(self, k: &'static str, v: i64) -> Self {
        if v == 0 { self } else { self.put(k, J::Str(v.to_string())) }
    }
    fn opt_int64(self, k: &'static str, v: Option<i64>) -> Self {
        match v {
            Some(v) => self.put(k, J::Str(v.to_string())),
            None => self,
        }
    }
    /// A Timestamp always shows both of its fields.
    fn timestamp(self, k: &'static str, v: Option<&Timestamp>) -> Self {
        match v {
            Some(t) => self.put(
                k,
                J::Obj(vec![("seconds", J::Str(t.seconds.to_string())), ("nanos", J::Int(t.nanos.into()))]),
            ),
            None => self,
        }
    }
    fn msg<T: Golden>(self, k: &'static str, v: Option<&T>) -> Self {
        match v {
            Some(m) => self.put(k, m.to_golden_json()),
            None => self,
        }
    }
    fn rep_msg<T: Golden>(self, k: &'static str, v: &[T]) -> Self {
        if v.is_empty() { self } else { self.put(k, J::Arr(v.iter().map(Golden::to_golden_json).collect())) }
    }
    fn rep_string(self, k: &'static str, v: &[String]) -> Self {
        if v.is_empty() { self } else { self.put(k, J::Arr(v.iter().map(|s| J::Str(s.clone())).collect())) }
    }
    fn done(self) -> J {
        J::Obj(self.0)
    }
}

/// Reads one message from the vector shape, strictly: a wrong JSON type, an
/// implicit-presence field written at its default, or a key the message does
/// not have is an error naming the field.
struct Rd<'a> {
    at: String,
    map: &'a Map<String, Value>,
    used: BTreeSet<&'static str>,
}

impl<'a> Rd<'a> {
    fn path(&self, k: &str) -> String {
        format!("{}.{k}", self.at)
    }
    fn get(&mut self, k: &'static str) -> Option<&'a Value> {
        self.used.insert(k);
        self.map.get(k)
    }
    fn implicit<T>(
        &mut self,
        k: &'static str,
        read: impl Fn(&Value, &str) -> Res<T>,
        is_default: impl Fn(&T) -> bool,
    ) -> Res<T>
    where
        T: Default,
    {
        let at = self.path(k);
        match self.get(k) {
            None => Ok(T::default()),
            Some(v) => {
                let out = read(v, &at)?;
                if is_default(&out) {
                    return Err(format!(
                        "{at}: holds its proto3 default {v}, but the vector shape omits such fields"
                    ));
                }
                Ok(out)
            }
        }
    }
    fn optional<T>(&mut self, k: &'static str, read: impl Fn(&Value, &str) -> Res<T>) -> Res<Option<T>> {
        let at = self.path(k);
        match self.get(k) {
            None => Ok(None),
            Some(Value::Null) => Err(format!("{at}: null is not a value; an unset field is omitted")),
            Some(v) => read(v, &at).map(Some),
        }
    }
    fn string(&mut self, k: &'static str) -> Res<String> {
        self.implicit(k, read_string, String::is_empty)
    }
    fn opt_string(&mut self, k: &'static str) -> Res<Option<String>> {
        self.optional(k, read_string)
    }
    fn bytes(&mut self, k: &'static str) -> Res<Bytes> {
        self.implicit(k, read_bytes, Bytes::is_empty)
    }
    fn opt_bytes(&mut self, k: &'static str) -> Res<Option<Bytes>> {
        self.optional(k, read_bytes)
    }
    fn boolean(&mut self, k: &'static str) -> Res<bool> {
        self.implicit(
            k,
            |v, at| v.as_bool().ok_or_else(|| format!("{at}: expected a boolean, got {v}")),
            |b| !*b,
        )
    }
    fn int32(&mut self, k: &'static str) -> Res<i32> {
        self.implicit(k, read_int32, |n| *n == 0)
    }
    fn uint32(&mut self, k: &'static str) -> Res<u32> {
        self.implicit(
            k,
            |v, at| {
                v.as_u64()
                    .and_then(|n| u32::try_from(n).ok())
                    .ok_or_else(|| format!("{at}: expected a uint32 number, got {v}"))
            },
            |n| *n == 0,
        )
    }
    fn int64(&mut self, k: &'static str) -> Res<i64> {
        self.implicit(k, read_int64, |n| *n == 0)
    }
    fn opt_int64(&mut self, k: &'static str) -> Res<Option<i64>> {
        self.optional(k, read_int64)
    }
    fn timestamp(&mut self, k: &'static str) -> Res<Option<Timestamp>> {
        self.optional(k, |v, at| {
            let mut r = Rd::new(v, at)?;
            let seconds = r.get("seconds").ok_or_else(|| format!("{at}.seconds: missing"))?;
            let seconds = read_int64(seconds, &format!("{at}.seconds"))?;
            let nanos = r.get("nanos").ok_or_else(|| format!("{at}.nanos: missing"))?;
            let nanos = read_int32(nanos, &format!("{at}.nanos"))?;
            r.finish()?;
            Ok(Timestamp { seconds, nanos })
        })
    }
    fn msg<T: Golden>(&mut self, k: &'static str) -> Res<Option<T>> {
        self.optional(k, from_json::<T>)
    }
    fn rep_msg<T: Golden>(&mut self, k: &'static str) -> Res<Vec<T>> {
        self.repeated(k, from_json::<T>)
    }
    fn rep_string(&mut self, k: &'static str) -> Res<Vec<String>> {
        self.repeated(k, read_string)
    }
    fn repeated<T>(&mut self, k: &'static str, read: impl Fn(&Value, &str) -> Res<T>) -> Res<Vec<T>> {
        let at = self.path(k);
        match self.get(k) {
            None => Ok(Vec::new()),
            Some(Value::Array(items)) if items.is_empty() => {
                Err(format!("{at}: an empty repeated field is omitted in the vector shape"))
            }
            Some(Value::Array(items)) => {
                items.iter().enumerate().map(|(i, v)| read(v, &format!("{at}[{i}]"))).collect()
            }
            Some(v) => Err(format!("{at}: expected an array, got {v}")),
        }
    }

    fn new(v: &'a Value, at: &str) -> Res<Self> {
        match v {
            Value::Object(map) => Ok(Rd { at: at.to_owned(), map, used: BTreeSet::new() }),
            v => Err(format!("{at}: expected an object, got {v}")),
        }
    }
    fn finish(self) -> Res<()> {
        let unknown: Vec<&String> = self.map.keys().filter(|k| !self.used.contains(k.as_str())).collect();
        if unknown.is_empty() { Ok(()) } else { Err(format!("{}: unknown field(s) {unknown:?}", self.at)) }
    }
}

fn read_string(v: &Value, at: &str) -> Res<String> {
    v.as_str().map(str::to_owned).ok_or_else(|| format!("{at}: expected a string, got {v}"))
}

fn read_bytes(v: &Value, at: &str) -> Res<Bytes> {
    let s = v.as_str().ok_or_else(|| format!("{at}: expected a hex string, got {v}"))?;
    if s.bytes().any(|c| c.is_ascii_uppercase()) {
        return Err(format!("{at}: hex must be lowercase"));
    }
    hex::decode(s).map(Bytes::from).map_err(|e| format!("{at}: bad hex: {e}"))
}

fn read_int32(v: &Value, at: &str) -> Res<i32> {
    v.as_i64()
        .and_then(|n| i32::try_from(n).ok())
        .ok_or_else(|| format!("{at}: expected an int32 number, got {v}"))
}

fn read_int64(v: &Value, at: &str) -> Res<i64> {
    let s = v.as_str().ok_or_else(|| format!("{at}: expected an int64 as a decimal string, got {v}"))?;
    s.parse::<i64>().map_err(|e| format!("{at}: {s:?} is not an int64: {e}"))
}

fn from_json<T: Golden>(v: &Value, at: &str) -> Res<T> {
    let mut r = Rd::new(v, at)?;
    let out = T::from_golden_json(&mut r)?;
    r.finish()?;
    Ok(out)
}

// ---------------------------------------------------------------------------
// Per message: our prost struct <-> the vector JSON.
// ---------------------------------------------------------------------------

trait Golden: Sized {
    fn to_golden_json(&self) -> J;
    fn from_golden_json(r: &mut Rd<'_>) -> Res<Self>;
}

impl Golden for WorkerConnectRequestData {
    fn to_golden_json(&self) -> J {
        Wr::default()
            .string("connection_id", &self.connection_id)
            .string("instance_id", &self.instance_id)
            .msg("auth_data", self.auth_data.as_ref())
            .bytes("capabilities", &self.capabilities)
            .rep_msg("apps", &self.apps)
            .boolean("worker_manual_readiness_ack", self.worker_manual_readiness_ack)
            .msg("system_attributes", self.system_attributes.as_ref())
            .opt_string("environment", self.environment.as_ref())
            .string("framework", &self.framework)
            .opt_string("platform", self.platform.as_ref())
            .string("sdk_version", &self.sdk_version)
            .string("sdk_language", &self.sdk_language)
            .timestamp("started_at", self.started_at.as_ref())
            .opt_int64("max_worker_concurrency", self.max_worker_concurrency)
            .done()
    }
    fn from_golden_json(r: &mut Rd<'_>) -> Res<Self> {
        Ok(WorkerConnectRequestData {
            connection_id: r.string("connection_id")?,
            instance_id: r.string("instance_id")?,
            auth_data: r.msg("auth_data")?,
            capabilities: r.bytes("capabilities")?,
            apps: r.rep_msg("apps")?,
            worker_manual_readiness_ack: r.boolean("worker_manual_readiness_ack")?,
            system_attributes: r.msg("system_attributes")?,
            environment: r.opt_string("environment")?,
            framework: r.string("framework")?,
            platform: r.opt_string("platform")?,
            sdk_version: r.string("sdk_version")?,
            sdk_language: r.string("sdk_language")?,
            started_at: r.timestamp("started_at")?,
            max_worker_concurrency: r.opt_int64("max_worker_concurrency")?,
        })
    }
}

impl Golden for AuthData {
    fn to_golden_json(&self) -> J {
        Wr::default()
            .string("session_token", &self.session_token)
            .string("sync_token", &self.sync_token)
            .done()
    }
    fn from_golden_json(r: &mut Rd<'_>) -> Res<Self> {
        Ok(AuthData { session_token: r.string("session_token")?, sync_token: r.string("sync_token")? })
    }
}

impl Golden for AppConfiguration {
    fn to_golden_json(&self) -> J {
        Wr::default()
            .string("app_name", &self.app_name)
            .opt_string("app_version", self.app_version.as_ref())
            .bytes("functions", &self.functions)
            .msg("feature_observations", self.feature_observations.as_ref())
            .done()
    }
    fn from_golden_json(r: &mut Rd<'_>) -> Res<Self> {
        Ok(AppConfiguration {
            app_name: r.string("app_name")?,
            app_version: r.opt_string("app_version")?,
            functions: r.bytes("functions")?,
            feature_observations: r.msg("feature_observations")?,
        })
    }
}

impl Golden for SystemAttributes {
    fn to_golden_json(&self) -> J {
        Wr::default()
            .num("cpu_cores", self.cpu_cores)
            .int64("mem_bytes", self.mem_bytes)
            .string("os", &self.os)
            .done()
    }
    fn from_golden_json(r: &mut Rd<'_>) -> Res<Self> {
        Ok(SystemAttributes {
            cpu_cores: r.int32("cpu_cores")?,
            mem_bytes: r.int64("mem_bytes")?,
            os: r.string("os")?,
        })
    }
}

impl Golden for FeatureObservations {
    fn to_golden_json(&self) -> J {
        Wr::default()
            .msg("ai_metadata_extraction", self.ai_metadata_extraction.as_ref())
            .msg("extended_traces", self.extended_traces.as_ref())
            .msg("send_events", self.send_events.as_ref())
            .done()
    }
    fn from_golden_json(r: &mut Rd<'_>) -> Res<Self> {
        Ok(FeatureObservations {
            ai_metadata_extraction: r.msg("ai_metadata_extraction")?,
            extended_traces: r.msg("extended_traces")?,
            send_events: r.msg("send_events")?,
        })
    }
}

impl Golden for OTelSetup {
    fn to_golden_json(&self) -> J {
        Wr::default()
            .num("path", self.path)
            .boolean("provider_found", self.provider_found)
            .num("provider_source", self.provider_source)
            .boolean("add_span_processor_attempted", self.add_span_processor_attempted)
            .boolean("span_processor_added", self.span_processor_added)
            .num("failure", self.failure)
            .done()
    }
    fn from_golden_json(r: &mut Rd<'_>) -> Res<Self> {
        Ok(OTelSetup {
            path: r.int32("path")?,
            provider_found: r.boolean("provider_found")?,
            provider_source: r.int32("provider_source")?,
            add_span_processor_attempted: r.boolean("add_span_processor_attempted")?,
            span_processor_added: r.boolean("span_processor_added")?,
            failure: r.int32("failure")?,
        })
    }
}

impl Golden for AiMetadataExtraction {
    fn to_golden_json(&self) -> J {
        Wr::default()
            .num("readiness_reason", self.readiness_reason)
            .msg("otel_setup", self.otel_setup.as_ref())
            .done()
    }
    fn from_golden_json(r: &mut Rd<'_>) -> Res<Self> {
        Ok(AiMetadataExtraction {
            readiness_reason: r.int32("readiness_reason")?,
            otel_setup: r.msg("otel_setup")?,
        })
    }
}

impl Golden for ExtendedTraces {
    fn to_golden_json(&self) -> J {
        Wr::default()
            .num("readiness_reason", self.readiness_reason)
            .msg("config", self.config.as_ref())
            .msg("otel_setup", self.otel_setup.as_ref())
            .done()
    }
    fn from_golden_json(r: &mut Rd<'_>) -> Res<Self> {
        Ok(ExtendedTraces {
            readiness_reason: r.int32("readiness_reason")?,
            config: r.msg("config")?,
            otel_setup: r.msg("otel_setup")?,
        })
    }
}

impl Golden for ExtendedTracesConfig {
    fn to_golden_json(&self) -> J {
        Wr::default().num("behavior", self.behavior).done()
    }
    fn from_golden_json(r: &mut Rd<'_>) -> Res<Self> {
        Ok(ExtendedTracesConfig { behavior: r.int32("behavior")? })
    }
}

impl Golden for SendEvents {
    fn to_golden_json(&self) -> J {
        Wr::default()
            .num("readiness_reason", self.readiness_reason)
            .msg("config", self.config.as_ref())
            .done()
    }
    fn from_golden_json(r: &mut Rd<'_>) -> Res<Self> {
        Ok(SendEvents { readiness_reason: r.int32("readiness_reason")?, config: r.msg("config")? })
    }
}

impl Golden for SendEventsConfig {
    fn to_golden_json(&self) -> J {
        Wr::default()
            .boolean("event_key_configured", self.event_key_configured)
            .boolean("event_api_origin_override_configured", self.event_api_origin_override_configured)
            .done()
    }
    fn from_golden_json(r: &mut Rd<'_>) -> Res<Self> {
        Ok(SendEventsConfig {
            event_key_configured: r.boolean("event_key_configured")?,
            event_api_origin_override_configured: r.boolean("event_api_origin_override_configured")?,
        })
    }
}

impl Golden for GatewayConnectionReadyData {
    fn to_golden_json(&self) -> J {
        Wr::default()
            .string("heartbeat_interval", &self.heartbeat_interval)
            .string("extend_lease_interval", &self.extend_lease_interval)
            .string("status_interval", &self.status_interval)
            .done()
    }
    fn from_golden_json(r: &mut Rd<'_>) -> Res<Self> {
        Ok(GatewayConnectionReadyData {
            heartbeat_interval: r.string("heartbeat_interval")?,
            extend_lease_interval: r.string("extend_lease_interval")?,
            status_interval: r.string("status_interval")?,
        })
    }
}

impl Golden for GatewayExecutorRequestData {
    fn to_golden_json(&self) -> J {
        Wr::default()
            .string("request_id", &self.request_id)
            .string("account_id", &self.account_id)
            .string("env_id", &self.env_id)
            .string("app_id", &self.app_id)
            .string("app_name", &self.app_name)
            .string("function_id", &self.function_id)
            .string("function_slug", &self.function_slug)
            .opt_string("step_id", self.step_id.as_ref())
            .bytes("request_payload", &self.request_payload)
            .bytes("system_trace_ctx", &self.system_trace_ctx)
            .bytes("user_trace_ctx", &self.user_trace_ctx)
            .string("run_id", &self.run_id)
            .string("lease_id", &self.lease_id)
            .string("job_id", &self.job_id)
            .done()
    }
    fn from_golden_json(r: &mut Rd<'_>) -> Res<Self> {
        Ok(GatewayExecutorRequestData {
            request_id: r.string("request_id")?,
            account_id: r.string("account_id")?,
            env_id: r.string("env_id")?,
            app_id: r.string("app_id")?,
            app_name: r.string("app_name")?,
            function_id: r.string("function_id")?,
            function_slug: r.string("function_slug")?,
            step_id: r.opt_string("step_id")?,
            request_payload: r.bytes("request_payload")?,
            system_trace_ctx: r.bytes("system_trace_ctx")?,
            user_trace_ctx: r.bytes("user_trace_ctx")?,
            run_id: r.string("run_id")?,
            lease_id: r.string("lease_id")?,
            job_id: r.string("job_id")?,
        })
    }
}

impl Golden for WorkerRequestAckData {
    fn to_golden_json(&self) -> J {
        Wr::default()
            .string("request_id", &self.request_id)
            .string("account_id", &self.account_id)
            .string("env_id", &self.env_id)
            .string("app_id", &self.app_id)
            .string("function_slug", &self.function_slug)
            .opt_string("step_id", self.step_id.as_ref())
            .bytes("system_trace_ctx", &self.system_trace_ctx)
            .bytes("user_trace_ctx", &self.user_trace_ctx)
            .string("run_id", &self.run_id)
            .done()
    }
    fn from_golden_json(r: &mut Rd<'_>) -> Res<Self> {
        Ok(WorkerRequestAckData {
            request_id: r.string("request_id")?,
            account_id: r.string("account_id")?,
            env_id: r.string("env_id")?,
            app_id: r.string("app_id")?,
            function_slug: r.string("function_slug")?,
            step_id: r.opt_string("step_id")?,
            system_trace_ctx: r.bytes("system_trace_ctx")?,
            user_trace_ctx: r.bytes("user_trace_ctx")?,
            run_id: r.string("run_id")?,
        })
    }
}

impl Golden for WorkerRequestExtendLeaseData {
    fn to_golden_json(&self) -> J {
        Wr::default()
            .string("request_id", &self.request_id)
            .string("account_id", &self.account_id)
            .string("env_id", &self.env_id)
            .string("app_id", &self.app_id)
            .string("function_slug", &self.function_slug)
            .opt_string("step_id", self.step_id.as_ref())
            .bytes("system_trace_ctx", &self.system_trace_ctx)
            .bytes("user_trace_ctx", &self.user_trace_ctx)
            .string("run_id", &self.run_id)
            .string("lease_id", &self.lease_id)
            .done()
    }
    fn from_golden_json(r: &mut Rd<'_>) -> Res<Self> {
        Ok(WorkerRequestExtendLeaseData {
            request_id: r.string("request_id")?,
            account_id: r.string("account_id")?,
            env_id: r.string("env_id")?,
            app_id: r.string("app_id")?,
            function_slug: r.string("function_slug")?,
            step_id: r.opt_string("step_id")?,
            system_trace_ctx: r.bytes("system_trace_ctx")?,
            user_trace_ctx: r.bytes("user_trace_ctx")?,
            run_id: r.string("run_id")?,
            lease_id: r.string("lease_id")?,
        })
    }
}

impl Golden for WorkerRequestExtendLeaseAckData {
    fn to_golden_json(&self) -> J {
        Wr::default()
            .string("request_id", &self.request_id)
            .string("account_id", &self.account_id)
            .string("env_id", &self.env_id)
            .string("app_id", &self.app_id)
            .string("function_slug", &self.function_slug)
            .opt_string("new_lease_id", self.new_lease_id.as_ref())
            .done()
    }
    fn from_golden_json(r: &mut Rd<'_>) -> Res<Self> {
        Ok(WorkerRequestExtendLeaseAckData {
            request_id: r.string("request_id")?,
            account_id: r.string("account_id")?,
            env_id: r.string("env_id")?,
            app_id: r.string("app_id")?,
            function_slug: r.string("function_slug")?,
            new_lease_id: r.opt_string("new_lease_id")?,
        })
    }
}

impl Golden for SdkResponse {
    fn to_golden_json(&self) -> J {
        Wr::default()
            .string("request_id", &self.request_id)
            .string("account_id", &self.account_id)
            .string("env_id", &self.env_id)
            .string("app_id", &self.app_id)
            .num("status", self.status)
            .bytes("body", &self.body)
            .boolean("no_retry", self.no_retry)
            .opt_string("retry_after", self.retry_after.as_ref())
            .string("sdk_version", &self.sdk_version)
            .num("request_version", self.request_version)
            .bytes("system_trace_ctx", &self.system_trace_ctx)
            .bytes("user_trace_ctx", &self.user_trace_ctx)
            .string("run_id", &self.run_id)
            .done()
    }
    fn from_golden_json(r: &mut Rd<'_>) -> Res<Self> {
        Ok(SdkResponse {
            request_id: r.string("request_id")?,
            account_id: r.string("account_id")?,
            env_id: r.string("env_id")?,
            app_id: r.string("app_id")?,
            status: r.int32("status")?,
            body: r.bytes("body")?,
            no_retry: r.boolean("no_retry")?,
            retry_after: r.opt_string("retry_after")?,
            sdk_version: r.string("sdk_version")?,
            request_version: r.uint32("request_version")?,
            system_trace_ctx: r.bytes("system_trace_ctx")?,
            user_trace_ctx: r.bytes("user_trace_ctx")?,
            run_id: r.string("run_id")?,
        })
    }
}

impl Golden for WorkerReplyAckData {
    fn to_golden_json(&self) -> J {
        Wr::default().string("request_id", &self.request_id).done()
    }
    fn from_golden_json(r: &mut Rd<'_>) -> Res<Self> {
        Ok(WorkerReplyAckData { request_id: r.string("request_id")? })
    }
}

impl Golden for WorkerStatusData {
    fn to_golden_json(&self) -> J {
        Wr::default()
            .rep_string("in_flight_request_ids", &self.in_flight_request_ids)
            .boolean("shutdown_requested", self.shutdown_requested)
            .done()
    }
    fn from_golden_json(r: &mut Rd<'_>) -> Res<Self> {
        Ok(WorkerStatusData {
            in_flight_request_ids: r.rep_string("in_flight_request_ids")?,
            shutdown_requested: r.boolean("shutdown_requested")?,
        })
    }
}

impl Golden for SystemError {
    fn to_golden_json(&self) -> J {
        Wr::default()
            .string("code", &self.code)
            .opt_bytes("data", self.data.as_ref())
            .string("message", &self.message)
            .done()
    }
    fn from_golden_json(r: &mut Rd<'_>) -> Res<Self> {
        Ok(SystemError { code: r.string("code")?, data: r.opt_bytes("data")?, message: r.string("message")? })
    }
}

impl Golden for StartRequest {
    fn to_golden_json(&self) -> J {
        Wr::default().rep_string("exclude_gateways", &self.exclude_gateways).done()
    }
    fn from_golden_json(r: &mut Rd<'_>) -> Res<Self> {
        Ok(StartRequest { exclude_gateways: r.rep_string("exclude_gateways")? })
    }
}

impl Golden for StartResponse {
    fn to_golden_json(&self) -> J {
        Wr::default()
            .string("connection_id", &self.connection_id)
            .string("gateway_endpoint", &self.gateway_endpoint)
            .string("gateway_group", &self.gateway_group)
            .string("session_token", &self.session_token)
            .string("sync_token", &self.sync_token)
            .done()
    }
    fn from_golden_json(r: &mut Rd<'_>) -> Res<Self> {
        Ok(StartResponse {
            connection_id: r.string("connection_id")?,
            gateway_endpoint: r.string("gateway_endpoint")?,
            gateway_group: r.string("gateway_group")?,
            session_token: r.string("session_token")?,
            sync_token: r.string("sync_token")?,
        })
    }
}

impl Golden for FlushResponse {
    fn to_golden_json(&self) -> J {
        Wr::default().string("request_id", &self.request_id).done()
    }
    fn from_golden_json(r: &mut Rd<'_>) -> Res<Self> {
        Ok(FlushResponse { request_id: r.string("request_id")? })
    }
}

// ---------------------------------------------------------------------------
// Vectors and frames.
// ---------------------------------------------------------------------------

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Vector {
    name: String,
    message: String,
    kind: Option<String>,
    hex: String,
    payload_type: Option<String>,
    payload: Value,
}

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/golden")
}

fn js_vectors() -> Vec<Vector> {
    let path = golden_dir().join("vectors.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parse {}: {e}", path.display()))
}

fn kind_by_name(name: &str) -> Res<GatewayMessageType> {
    GatewayMessageType::ALL
        .into_iter()
        .find(|k| k.proto_name() == name)
        .ok_or_else(|| format!("kind {name:?} is not a GatewayMessageType"))
}

/// The payload message of a kind, by its `.proto` name (None: no payload).
fn payload_type_of(kind: GatewayMessageType) -> Option<&'static str> {
    use GatewayMessageType as K;
    match kind {
        K::GatewayHello
        | K::WorkerReady
        | K::WorkerPause
        | K::WorkerHeartbeat
        | K::GatewayHeartbeat
        | K::GatewayClosing => None,
        K::WorkerConnect => Some("WorkerConnectRequestData"),
        K::GatewayConnectionReady => Some("GatewayConnectionReadyData"),
        K::GatewayExecutorRequest => Some("GatewayExecutorRequestData"),
        K::WorkerRequestAck => Some("WorkerRequestAckData"),
        K::WorkerReply => Some("SDKResponse"),
        K::WorkerReplyAck => Some("WorkerReplyAckData"),
        K::WorkerRequestExtendLease => Some("WorkerRequestExtendLeaseData"),
        K::WorkerRequestExtendLeaseAck => Some("WorkerRequestExtendLeaseAckData"),
        K::SyncFailed => Some("SystemError"),
        K::WorkerStatus => Some("WorkerStatusData"),
    }
}

/// A frame's payload in the vector shape (`null` for payload-less kinds).
fn message_payload_json(m: &Message) -> Res<J> {
    Ok(match m {
        Message::GatewayHello
        | Message::WorkerReady
        | Message::WorkerPause
        | Message::WorkerHeartbeat
        | Message::GatewayHeartbeat
        | Message::GatewayClosing => J::Null,
        Message::WorkerConnect(p) => p.to_golden_json(),
        Message::GatewayConnectionReady(p) => p.to_golden_json(),
        Message::GatewayExecutorRequest(p) => p.to_golden_json(),
        Message::WorkerRequestAck(p) => p.to_golden_json(),
        Message::WorkerReply(p) => p.to_golden_json(),
        Message::WorkerReplyAck(p) => p.to_golden_json(),
        Message::WorkerRequestExtendLease(p) => p.to_golden_json(),
        Message::WorkerRequestExtendLeaseAck(p) => p.to_golden_json(),
        Message::SyncFailed(p) => p.to_golden_json(),
        Message::WorkerStatus(p) => p.to_golden_json(),
        Message::Unknown { kind, .. } => return Err(format!("decoded an unknown kind {kind}")),
    })
}

/// Build a frame from its kind and payload JSON alone.
fn message_from_json(kind: GatewayMessageType, p: &Value) -> Res<Message> {
    use GatewayMessageType as K;
    let none = |m: Message| {
        if p.is_null() {
            Ok(m)
        } else {
            Err(format!("payload: {} carries no payload, expected null", kind.proto_name()))
        }
    };
    let at = "payload";
    Ok(match kind {
        K::GatewayHello => none(Message::GatewayHello)?,
        K::WorkerReady => none(Message::WorkerReady)?,
        K::WorkerPause => none(Message::WorkerPause)?,
        K::WorkerHeartbeat => none(Message::WorkerHeartbeat)?,
        K::GatewayHeartbeat => none(Message::GatewayHeartbeat)?,
        K::GatewayClosing => none(Message::GatewayClosing)?,
        K::WorkerConnect => Message::WorkerConnect(Box::new(from_json(p, at)?)),
        K::GatewayConnectionReady => Message::GatewayConnectionReady(from_json(p, at)?),
        K::GatewayExecutorRequest => Message::GatewayExecutorRequest(Box::new(from_json(p, at)?)),
        K::WorkerRequestAck => Message::WorkerRequestAck(Box::new(from_json(p, at)?)),
        K::WorkerReply => Message::WorkerReply(Box::new(from_json(p, at)?)),
        K::WorkerReplyAck => Message::WorkerReplyAck(from_json(p, at)?),
        K::WorkerRequestExtendLease => Message::WorkerRequestExtendLease(Box::new(from_json(p, at)?)),
        K::WorkerRequestExtendLeaseAck => Message::WorkerRequestExtendLeaseAck(Box::new(from_json(p, at)?)),
        K::SyncFailed => Message::SyncFailed(from_json(p, at)?),
        K::WorkerStatus => Message::WorkerStatus(from_json(p, at)?),
    })
}

/// Decode a bare HTTP body of the named message into the vector shape.
fn body_to_json(message: &str, body: Bytes) -> Res<J> {
    macro_rules! dec {
        ($t:ty) => {
            decode_body::<$t>(body, stringify!($t)).map_err(|e| format!("decode_body: {e}"))?.to_golden_json()
        };
    }
    Ok(match message {
        "StartRequest" => dec!(StartRequest),
        "StartResponse" => dec!(StartResponse),
        "FlushResponse" => dec!(FlushResponse),
        "SDKResponse" => dec!(SdkResponse),
        other => return Err(format!("message {other:?} is not an HTTP body we know")),
    })
}

/// Encode a bare HTTP body of the named message, built from its JSON alone.
fn body_from_json(message: &str, p: &Value) -> Res<Bytes> {
    let at = "payload";
    Ok(match message {
        "StartRequest" => encode_body(&from_json::<StartRequest>(p, at)?),
        "StartResponse" => encode_body(&from_json::<StartResponse>(p, at)?),
        "FlushResponse" => encode_body(&from_json::<FlushResponse>(p, at)?),
        "SDKResponse" => encode_body(&from_json::<SdkResponse>(p, at)?),
        other => return Err(format!("message {other:?} is not an HTTP body we know")),
    })
}

/// Check the entry's `kind`/`payload_type`/`message` triple is consistent.
fn entry_kind(v: &Vector) -> Res<Option<GatewayMessageType>> {
    match (v.message.as_str(), &v.kind) {
        ("ConnectMessage", Some(name)) => {
            let kind = kind_by_name(name)?;
            let want = payload_type_of(kind);
            if v.payload_type.as_deref() != want {
                return Err(format!("payload_type: {:?}, but {name} carries {want:?}", v.payload_type));
            }
            Ok(Some(kind))
        }
        ("ConnectMessage", None) => Err("kind: null for a ConnectMessage".into()),
        (body, None) => {
            if v.payload_type.as_deref() != Some(body) {
                return Err(format!("payload_type: {:?}, expected {body:?} for a bare body", v.payload_type));
            }
            Ok(None)
        }
        (body, Some(k)) => Err(format!("kind: {k:?} on a bare {body}")),
    }
}

/// (a) Decode `hex` with our decoder; return the payload in the vector shape.
fn decode_entry(v: &Vector) -> Res<J> {
    let bytes = Bytes::from(hex::decode(&v.hex).map_err(|e| format!("hex: {e}"))?);
    match entry_kind(v)? {
        Some(kind) => {
            let m =
                Message::decode(bytes, &Limits::default()).map_err(|e| format!("Message::decode: {e}"))?;
            if m.kind() != Ok(kind) {
                return Err(format!("kind: expected {}, decoded {}", kind.proto_name(), m.name()));
            }
            message_payload_json(&m)
        }
        None => body_to_json(&v.message, bytes),
    }
}

/// (b) Build our message from `payload` alone and encode it.
fn encode_entry(v: &Vector) -> Res<Bytes> {
    match entry_kind(v)? {
        Some(kind) => {
            let m = message_from_json(kind, &v.payload)?;
            m.encode(&Limits::default()).map_err(|e| format!("Message::encode: {e}"))
        }
        None => body_from_json(&v.message, &v.payload),
    }
}

/// Every difference between two JSON values, as `path: ...` lines.
fn diff(exp: &Value, act: &Value, at: &str, out: &mut Vec<String>) {
    match (exp, act) {
        (Value::Object(e), Value::Object(a)) => {
            for (k, ev) in e {
                match a.get(k) {
                    None => out.push(format!("{at}.{k}: expected {ev}, absent from our decoding")),
                    Some(av) => diff(ev, av, &format!("{at}.{k}"), out),
                }
            }
            for (k, av) in a {
                if !e.contains_key(k) {
                    out.push(format!("{at}.{k}: we decoded {av}, absent from the vector"));
                }
            }
        }
        (Value::Array(e), Value::Array(a)) => {
            if e.len() != a.len() {
                out.push(format!("{at}: expected {} entries, we decoded {}", e.len(), a.len()));
            }
            for (i, (ev, av)) in e.iter().zip(a).enumerate() {
                diff(ev, av, &format!("{at}[{i}]"), out);
            }
        }
        _ if exp == act => {}
        _ => out.push(format!("{at}: expected {}, we decoded {}", short(exp), short(act))),
    }
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 120 {
        format!("{}…({} chars)", s.chars().take(120).collect::<String>(), s.len())
    } else {
        s
    }
}

/// Where two byte strings first differ, for a failure message.
fn first_difference(exp: &[u8], act: &[u8]) -> String {
    let i = exp.iter().zip(act).position(|(a, b)| a != b).unwrap_or(exp.len().min(act.len()));
    let window = |b: &[u8]| hex::encode(&b[i.saturating_sub(4)..(i + 12).min(b.len())]);
    format!(
        "{} bytes expected, {} encoded; first difference at byte {i}: expected …{}…, encoded …{}…",
        exp.len(),
        act.len(),
        window(exp),
        window(act)
    )
}

fn fail_if_any(what: &str, failures: Vec<String>) {
    assert!(failures.is_empty(), "{what}: {} failure(s)\n{}", failures.len(), failures.join("\n"));
}

// ---------------------------------------------------------------------------
// Our own extra vectors for rust_frames.json (checked by the JS SDK via
// scripts/golden.sh). Their hex is whatever our encoder writes.
// ---------------------------------------------------------------------------

fn hex_json(v: &str) -> String {
    hex::encode(v.as_bytes())
}

fn extra_vectors() -> Vec<Vector> {
    let sys = hex_json(r#"{"traceparent":"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}"#);
    let request_payload = hex_json(&format!(
        r#"{{"event":{{"name":"rust/hello","data":{{"pad":"{}"}},"id":"01JQ90A1B2C3D4E5F6G7H8J9K0","ts":1796293230456}},"events":[],"steps":{{}},"ctx":{{"run_id":"01JQ90B1B2C3D4E5F6G7H8J9K0","attempt":0}},"version":2,"use_api":false}}"#,
        "r".repeat(300)
    ));
    let entry = |name: &str, kind: &str, payload: Value| Vector {
        name: name.to_owned(),
        message: "ConnectMessage".to_owned(),
        kind: Some(kind.to_owned()),
        hex: String::new(),
        payload_type: kind_by_name(kind).ok().and_then(payload_type_of).map(str::to_owned),
        payload,
    };
    vec![
        entry(
            "rust.WORKER_CONNECT.rust_worker",
            "WORKER_CONNECT",
            json!({
                "connection_id": "01JQ90C1B2C3D4E5F6G7H8J9K0",
                "instance_id": "rust-host-1",
                "auth_data": {"session_token": "eyJhbGciOiJIUzI1NiJ9.e30.c2lnbmF0dXJl", "sync_token": "signkey-prod-0011223344"},
                "capabilities": hex_json(r#"{"trust_probe":"v1","connect":"v1"}"#),
                "apps": [{
                    "app_name": "rust-app",
                    "functions": hex_json(r#"[{"id":"rust-app-hello","name":"hello","triggers":[{"event":"rust/hello"}],"steps":{"step":{"id":"step","name":"step","runtime":{"type":"ws","url":"wss://connect?fnId=rust-app-hello&stepId=step"}}}}]"#),
                    "feature_observations": {"extended_traces": {"config": {}}, "send_events": {"readiness_reason": 99}}
                }],
                "system_attributes": {"cpu_cores": 2, "mem_bytes": "25769803776", "os": "linux"},
                "framework": "connect",
                "platform": "fly",
                "sdk_version": "0.1.0",
                "sdk_language": "rust",
                "started_at": {"seconds": "1796293230", "nanos": 7000000},
                "max_worker_concurrency": "16"
            }),
        ),
        entry(
            "rust.GATEWAY_CONNECTION_READY.minutes",
            "GATEWAY_CONNECTION_READY",
            json!({"heartbeat_interval": "1m0s", "extend_lease_interval": "2m30s", "status_interval": "5s"}),
        ),
        entry(
            "rust.GATEWAY_EXECUTOR_REQUEST.two_byte_lengths",
            "GATEWAY_EXECUTOR_REQUEST",
            json!({
                "request_id": "01JQ90D1B2C3D4E5F6G7H8J9K0",
                "account_id": "3f1c2b8e-5d4a-4e6f-9a7b-1c2d3e4f5a6b",
                "env_id": "7a9b8c6d-1e2f-4a3b-8c4d-5e6f7a8b9c0d",
                "app_id": "c0ffee00-1234-4abc-9def-0123456789ab",
                "app_name": "rust-app",
                "function_id": "f00dbabe-4321-4cba-8fed-ba9876543210",
                "function_slug": "rust-app-hello",
                "step_id": "step",
                "request_payload": request_payload,
                "system_trace_ctx": sys,
                "user_trace_ctx": hex_json("{}"),
                "run_id": "01JQ90B1B2C3D4E5F6G7H8J9K0",
                "lease_id": "01JQ90E1B2C3D4E5F6G7H8J9K0"
            }),
        ),
        entry(
            "rust.WORKER_REQUEST_ACK.empty_step_id",
            "WORKER_REQUEST_ACK",
            json!({"request_id": "01JQ90D1B2C3D4E5F6G7H8J9K0", "function_slug": "rust-app-hello", "step_id": "", "system_trace_ctx": sys, "run_id": "01JQ90B1B2C3D4E5F6G7H8J9K0"}),
        ),
        entry(
            "rust.WORKER_REPLY.done_retry_after_empty_max_version",
            "WORKER_REPLY",
            json!({
                "request_id": "01JQ90D1B2C3D4E5F6G7H8J9K0",
                "status": 1,
                "body": hex_json(r#"{"ok":true}"#),
                "retry_after": "",
                "sdk_version": "connect-rs:v0.1.0",
                "request_version": 4294967295u32,
                "system_trace_ctx": sys,
                "user_trace_ctx": hex_json("{}"),
                "run_id": "01JQ90B1B2C3D4E5F6G7H8J9K0"
            }),
        ),
        entry(
            "rust.WORKER_REQUEST_EXTEND_LEASE.no_step_id",
            "WORKER_REQUEST_EXTEND_LEASE",
            json!({"request_id": "01JQ90D1B2C3D4E5F6G7H8J9K0", "account_id": "3f1c2b8e-5d4a-4e6f-9a7b-1c2d3e4f5a6b", "function_slug": "rust-app-hello", "run_id": "01JQ90B1B2C3D4E5F6G7H8J9K0", "lease_id": "01JQ90E1B2C3D4E5F6G7H8J9K0"}),
        ),
        entry(
            "rust.SYNC_FAILED.json_data",
            "SYNC_FAILED",
            json!({"code": "sync_failed", "data": hex_json(r#"{"reason":"duplicate function id"}"#), "message": "duplicate function id"}),
        ),
        entry("rust.WORKER_STATUS.shutdown_only", "WORKER_STATUS", json!({"shutdown_requested": true})),
        Vector {
            name: "rust.http.StartResponse.partial".to_owned(),
            message: "StartResponse".to_owned(),
            kind: None,
            hex: String::new(),
            payload_type: Some("StartResponse".to_owned()),
            payload: json!({"connection_id": "01JQ90C1B2C3D4E5F6G7H8J9K0", "gateway_endpoint": "wss://gw.example/v0/connect"}),
        },
    ]
}

/// One rust_frames.json entry: our encoding of `v.payload`, and our decoding
/// of those bytes back into the vector shape (which must equal the input).
fn rust_frame(v: &Vector) -> Res<J> {
    let bytes = encode_entry(v)?;
    let payload = decode_entry(&Vector { hex: hex::encode(&bytes), ..v.clone() })?;
    let mut problems = Vec::new();
    diff(&v.payload, &payload.to_value(), "payload", &mut problems);
    if !problems.is_empty() {
        return Err(problems.join("; "));
    }
    Ok(entry_json(v, &hex::encode(&bytes), payload))
}

/// One entry in the vectors.json shape, keys in the JS generator's order.
fn entry_json(v: &Vector, hex: &str, payload: J) -> J {
    J::Obj(vec![
        ("name", J::Str(v.name.clone())),
        ("message", J::Str(v.message.clone())),
        ("kind", v.kind.clone().map_or(J::Null, J::Str)),
        ("hex", J::Str(hex.to_owned())),
        ("payload_type", v.payload_type.clone().map_or(J::Null, J::Str)),
        ("payload", payload),
    ])
}

fn rust_frames_text() -> String {
    let mut entries = Vec::new();
    let mut failures = Vec::new();
    for v in js_vectors().iter().chain(&extra_vectors()) {
        match rust_frame(v) {
            Ok(e) => entries.push(e),
            Err(e) => failures.push(format!("vector {}: {e}", v.name)),
        }
    }
    fail_if_any("building rust_frames.json", failures);
    serde_json::to_string_pretty(&J::Arr(entries)).expect("serializable") + "\n"
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[test]
fn js_vectors_cover_every_kind_and_every_http_body() {
    let vectors = js_vectors();
    assert_eq!(vectors.len(), 36, "tests/golden/vectors.json changed size; update this count deliberately");
    let mut names = BTreeSet::new();
    for v in &vectors {
        assert!(names.insert(v.name.as_str()), "vector {}: duplicate name", v.name);
    }
    for kind in GatewayMessageType::ALL {
        assert!(
            vectors.iter().any(|v| v.kind.as_deref() == Some(kind.proto_name())),
            "no vector for {}",
            kind.proto_name()
        );
    }
    for body in ["StartRequest", "StartResponse", "FlushResponse", "SDKResponse"] {
        assert!(
            vectors.iter().any(|v| v.kind.is_none() && v.message == body),
            "no HTTP body vector for {body}"
        );
    }
}

#[test]
fn our_decoder_turns_every_js_vector_into_exactly_its_payload_json() {
    let mut failures = Vec::new();
    for v in js_vectors() {
        match decode_entry(&v) {
            Err(e) => failures.push(format!("vector {}: {e}", v.name)),
            Ok(got) => {
                let mut problems = Vec::new();
                diff(&v.payload, &got.to_value(), "payload", &mut problems);
                failures.extend(problems.into_iter().map(|p| format!("vector {}: {p}", v.name)));
            }
        }
    }
    fail_if_any("decoding the JS SDK's vectors", failures);
}

/// The worker does not read GATEWAY_EXECUTOR_REQUEST with the prost structs
/// but in place ([`ExecutorRequest`]); it must see exactly what they see.
#[test]
fn the_workers_request_reader_turns_every_executor_request_vector_into_its_payload_json() {
    let mut failures = Vec::new();
    let mut seen = 0;
    for v in js_vectors().into_iter().chain(extra_vectors()) {
        if v.kind.as_deref() != Some("GATEWAY_EXECUTOR_REQUEST") {
            continue;
        }
        seen += 1;
        let frame = match v.hex.as_str() {
            "" => encode_entry(&v).expect("our vector encodes"),
            hex => Bytes::from(hex::decode(hex).expect("vector hex")),
        };
        let envelope = ConnectMessage::decode(frame).expect("envelope");
        let ours = ExecutorRequest::decode(envelope.payload.clone()).map(|r| r.to_data());
        let prost = GatewayExecutorRequestData::decode(envelope.payload).map_err(|e| e.to_string());
        match (ours, prost) {
            (Ok(ours), Ok(prost)) if ours == prost => {
                let mut problems = Vec::new();
                diff(&v.payload, &ours.to_golden_json().to_value(), "payload", &mut problems);
                failures.extend(problems.into_iter().map(|p| format!("vector {}: {p}", v.name)));
            }
            (ours, prost) => failures.push(format!("vector {}: ours {ours:?}, prost {prost:?}", v.name)),
        }
    }
    assert!(seen >= 2, "{seen} executor request vectors");
    fail_if_any("reading executor requests in place", failures);
}

#[test]
fn our_encoder_writes_every_js_vector_byte_for_byte_from_its_payload_json() {
    let mut failures = Vec::new();
    for v in js_vectors() {
        let expected = hex::decode(&v.hex).expect("vector hex");
        match encode_entry(&v) {
            Err(e) => failures.push(format!("vector {}: {e}", v.name)),
            Ok(got) if got[..] != expected[..] => failures.push(format!(
                "vector {}: bytes differ: {}",
                v.name,
                first_difference(&expected, &got)
            )),
            Ok(_) => {}
        }
    }
    fail_if_any("encoding the JS SDK's vectors", failures);
}

#[test]
fn our_json_shape_reproduces_vectors_json_text_from_our_decoding() {
    // Key order, omissions and number formats of to_golden_json are the JS
    // generator's own: rendering our decoding of every vector gives back
    // vectors.json character for character.
    let path = golden_dir().join("vectors.json");
    let committed = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let mut entries = Vec::new();
    for v in js_vectors() {
        let payload = decode_entry(&v).unwrap_or_else(|e| panic!("vector {}: {e}", v.name));
        entries.push(entry_json(&v, &v.hex, payload));
    }
    let ours = serde_json::to_string_pretty(&J::Arr(entries)).expect("serializable") + "\n";
    if ours != committed {
        let line = ours.lines().zip(committed.lines()).position(|(a, b)| a != b).unwrap_or(0);
        panic!(
            "our rendering differs from vectors.json at line {}:\n ours: {}\n file: {}",
            line + 1,
            ours.lines().nth(line).unwrap_or(""),
            committed.lines().nth(line).unwrap_or("")
        );
    }
}

#[test]
fn payload_json_reader_rejects_unknown_fields_defaults_and_wrong_types() {
    let cases = [
        (json!({"request_id": "r", "bogus": 1}), "unknown field"),
        (json!({"request_id": ""}), "proto3 default"),
        (json!({"request_id": 5}), "payload.request_id: expected a string"),
        (json!({"step_id": null}), "payload.step_id: null"),
        (json!({"request_payload": "ABCD"}), "lowercase"),
    ];
    for (payload, want) in cases {
        let err =
            from_json::<GatewayExecutorRequestData>(&payload, "payload").expect_err(&payload.to_string());
        assert!(err.contains(want), "{payload}: error {err:?} should mention {want:?}");
    }
}

#[test]
fn rust_frames_json_is_what_our_encoder_writes_now() {
    let path = golden_dir().join("rust_frames.json");
    let text = rust_frames_text();
    if std::env::var_os("CONNECT_WRITE_GOLDEN").is_some_and(|v| v == "1") {
        std::fs::write(&path, &text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == text,
        "{} is stale or missing: regenerate with CONNECT_WRITE_GOLDEN=1 cargo test -p connect-core --test golden, \
         then check it with scripts/golden.sh",
        path.display()
    );
}
