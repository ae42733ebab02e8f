//! The JSON carried inside frames, as serde types.
//!
//! - [`Capabilities`] is `WorkerConnectRequestData.capabilities`.
//! - [`FunctionConfig`] is one entry of `AppConfiguration.functions` (PROTOCOL.md 2.4).
//! - [`RequestPayload`] is `GatewayExecutorRequestData.request_payload` (5.1).
//! - [`Opcode`], [`ErrorBody`] and [`ReplyVerdict`] are the `SDKResponse` body and how
//!   the executor reads its status (5.2).
//!
//! Trace contexts are not here on purpose: they stay raw bytes and are echoed
//! byte for byte.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::wire::{SdkResponse, SdkResponseStatus};

/// What the worker tells the gateway it can do. `connect: "v1"` is what makes
/// the server treat the app as a Connect app.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capabilities {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust_probe: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_band_sync: Option<String>,
}

impl Default for Capabilities {
    /// What the Inngest JS SDK sends: `{"trust_probe":"v1","connect":"v1"}`.
    fn default() -> Self {
        Capabilities { connect: Some("v1".into()), trust_probe: Some("v1".into()), in_band_sync: None }
    }
}

/// One function in an app's registration. Fields this crate does not model
/// (concurrency, throttle, ...) are kept in `extra` and sent as given.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FunctionConfig {
    /// The function's slug. The step URL's `fnId` must equal it: the executor
    /// routes by that query parameter.
    pub id: String,
    pub name: String,
    pub triggers: Vec<Trigger>,
    pub steps: BTreeMap<String, StepConfig>,
    #[serde(flatten)]
    pub extra: serde_json::Map<String, Value>,
}

/// An event or cron trigger.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trigger {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expression: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
}

impl Trigger {
    pub fn event(name: impl Into<String>) -> Self {
        Trigger { event: Some(name.into()), expression: None, cron: None }
    }
    pub fn cron(spec: impl Into<String>) -> Self {
        Trigger { event: None, expression: None, cron: Some(spec.into()) }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepConfig {
    pub id: String,
    pub name: String,
    pub runtime: StepRuntime,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<Retries>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepRuntime {
    #[serde(rename = "type", default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    pub url: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retries {
    pub attempts: u32,
}

/// The id of the one step every Connect function has.
pub const STEP_ID: &str = "step";

impl FunctionConfig {
    /// A function with one trigger and the single `step` whose URL selects the
    /// Connect driver (`wss://connect?fnId=<id>&stepId=step`).
    pub fn new(id: impl Into<String>, name: impl Into<String>, trigger: Trigger) -> Self {
        let id = id.into();
        let step = StepConfig {
            id: STEP_ID.into(),
            name: STEP_ID.into(),
            runtime: StepRuntime { kind: "ws".into(), url: step_url(&id) },
            retries: None,
        };
        FunctionConfig {
            id,
            name: name.into(),
            triggers: vec![trigger],
            steps: BTreeMap::from([(STEP_ID.to_owned(), step)]),
            extra: Default::default(),
        }
    }

    /// Set the retry count (attempts after the first).
    pub fn with_retries(mut self, attempts: u32) -> Self {
        for step in self.steps.values_mut() {
            step.retries = Some(Retries { attempts });
        }
        self
    }

    /// Retries of the main step (Inngest's default is 3 when unset).
    pub fn retries(&self) -> Option<u32> {
        self.steps.get(STEP_ID).and_then(|s| s.retries).map(|r| r.attempts)
    }

    /// Event names this function is triggered by.
    pub fn event_triggers(&self) -> impl Iterator<Item = &str> {
        self.triggers.iter().filter_map(|t| t.event.as_deref())
    }

    /// The slug the executor will put in `function_slug`: the `fnId` of the
    /// main step's URL, which must equal `id`.
    pub fn routed_slug(&self) -> Option<String> {
        let url = &self.steps.get(STEP_ID)?.runtime.url;
        query_param(url, "fnId")
    }
}

/// The step URL for a function id. The id is percent-encoded where needed.
pub fn step_url(fn_id: &str) -> String {
    let mut url = String::from("wss://connect?fnId=");
    for b in fn_id.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            url.push(b as char);
        } else {
            url.push_str(&format!("%{b:02X}"));
        }
    }
    url.push_str("&stepId=");
    url.push_str(STEP_ID);
    url
}

/// A query parameter's value, percent-decoded. Enough for the step URLs above.
pub fn query_param(url: &str, name: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then(|| percent_decode(v))
    })
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Some(b) = s.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// An event as the executor delivers it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
pub struct Event {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub data: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Milliseconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ts: Option<i64>,
    #[serde(default)]
    pub user: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub v: Option<String>,
}

/// `request_payload`: the same body an HTTP `serve` handler receives.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
pub struct RequestPayload {
    #[serde(default)]
    pub event: Event,
    #[serde(default)]
    pub events: Vec<Event>,
    /// Memoized step outputs by hashed step id.
    #[serde(default)]
    pub steps: serde_json::Map<String, Value>,
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub defers: serde_json::Map<String, Value>,
    #[serde(default)]
    pub ctx: RequestCtx,
    /// -1 means a new run with no version yet.
    #[serde(default = "minus_one")]
    pub version: i64,
    /// True when events/steps were left out for size.
    #[serde(default)]
    pub use_api: bool,
}

fn minus_one() -> i64 {
    -1
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
pub struct RequestCtx {
    #[serde(default)]
    pub fn_id: String,
    #[serde(default)]
    pub run_id: String,
    #[serde(default)]
    pub env: String,
    #[serde(default)]
    pub step_id: String,
    /// Zero-based attempt number.
    #[serde(default)]
    pub attempt: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stack: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qi_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation_id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    #[serde(default)]
    pub disable_immediate_execution: bool,
    #[serde(default)]
    pub use_api: bool,
}

/// A generator opcode in a NOT_COMPLETED body.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Opcode {
    pub op: String,
    #[serde(default)]
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "displayName")]
    pub display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opts: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Value>,
}

/// The JSON error body an ERROR reply carries, as the executor reads it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub name: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stack: Option<String>,
}

/// What an executor concludes from a reply (the rules of PROTOCOL.md 5.2 and
/// what the JS SDK was seen to send in section 6).
#[derive(Clone, Debug, PartialEq)]
pub enum ReplyVerdict {
    /// The run finished with this output.
    Completed(Value),
    /// The attempt failed; retry if attempts are left (and not before `retry_after`).
    Retry { error: Value, retry_after: Option<String> },
    /// The run failed for good (`no_retry`).
    Failed(Value),
    /// The function returned opcodes other than RunComplete (steps, sleeps):
    /// not something a single-step executor can continue.
    Steps(Vec<Opcode>),
}

impl ReplyVerdict {
    /// Read a reply the way Inngest's executor does: `no_retry` fails the run
    /// whatever the status; DONE completes with the body; NOT_COMPLETED with a
    /// `RunComplete` opcode completes with its data; ERROR retries.
    pub fn of(resp: &SdkResponse) -> ReplyVerdict {
        let body = parse_body(&resp.body);
        if resp.no_retry {
            return ReplyVerdict::Failed(body);
        }
        match SdkResponseStatus::try_from(resp.status) {
            Ok(SdkResponseStatus::Done) => ReplyVerdict::Completed(body),
            Ok(SdkResponseStatus::NotCompleted) => {
                let ops: Vec<Opcode> = match serde_json::from_slice::<Value>(&resp.body) {
                    Ok(Value::Array(items)) => {
                        items.into_iter().filter_map(|v| serde_json::from_value(v).ok()).collect()
                    }
                    Ok(v @ Value::Object(_)) => serde_json::from_value(v).into_iter().collect(),
                    _ => {
                        return ReplyVerdict::Retry {
                            error: Value::String("NOT_COMPLETED reply without opcodes".into()),
                            retry_after: resp.retry_after.clone(),
                        };
                    }
                };
                match ops.iter().find(|o| o.op == "RunComplete") {
                    Some(done) => ReplyVerdict::Completed(done.data.clone().unwrap_or(Value::Null)),
                    None => ReplyVerdict::Steps(ops),
                }
            }
            Ok(SdkResponseStatus::Error) | Err(_) => {
                ReplyVerdict::Retry { error: body, retry_after: resp.retry_after.clone() }
            }
        }
    }
}

/// A body is JSON when it parses; anything else is kept as a string.
fn parse_body(body: &[u8]) -> Value {
    serde_json::from_slice(body).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn function_config_has_the_connect_step_url_with_fn_id() {
        let f = FunctionConfig::new("app-hello", "Hello", Trigger::event("demo/hello")).with_retries(2);
        let json = serde_json::to_value(&f).expect("serializes");
        assert_eq!(json["steps"]["step"]["runtime"]["url"], "wss://connect?fnId=app-hello&stepId=step");
        assert_eq!(json["steps"]["step"]["runtime"]["type"], "ws");
        assert_eq!(json["steps"]["step"]["retries"]["attempts"], 2);
        assert_eq!(json["triggers"][0]["event"], "demo/hello");
        assert_eq!(f.routed_slug().as_deref(), Some("app-hello"));
        let back: FunctionConfig = serde_json::from_value(json).expect("parses");
        assert_eq!(back, f);
    }

    #[test]
    fn unusual_fn_ids_survive_the_step_url() {
        let f = FunctionConfig::new("a b&c=d", "x", Trigger::event("e"));
        assert_eq!(f.routed_slug().as_deref(), Some("a b&c=d"));
    }

    #[test]
    fn unknown_function_fields_are_kept() {
        let raw = r#"{"id":"f","name":"F","triggers":[{"cron":"* * * * *"}],"steps":{},"concurrency":[{"limit":2}]}"#;
        let f: FunctionConfig = serde_json::from_str(raw).expect("parses");
        assert_eq!(f.extra["concurrency"][0]["limit"], 2);
        assert_eq!(serde_json::to_value(&f).expect("ser")["concurrency"][0]["limit"], 2);
    }

    #[test]
    fn request_payload_parses_the_executor_shape() {
        let raw = r#"{"event":{"name":"demo/hello","data":{"n":1},"id":"01J","ts":1700000000000,"user":{}},
            "events":[{"name":"demo/hello","data":{"n":1},"user":{}}],"steps":{},
            "ctx":{"fn_id":"f","run_id":"01R","env":"","step_id":"step","attempt":1,"max_attempts":4,
                   "stack":{"stack":[],"current":0},"disable_immediate_execution":false,"use_api":false},
            "version":-1,"use_api":false}"#;
        let p: RequestPayload = serde_json::from_str(raw).expect("parses");
        assert_eq!(p.event.name, "demo/hello");
        assert_eq!(p.event.data["n"], 1);
        assert_eq!(p.ctx.attempt, 1);
        assert_eq!(p.ctx.max_attempts, Some(4));
        assert_eq!(p.version, -1);
        assert_eq!(p.events.len(), 1);
    }

    fn resp(status: SdkResponseStatus, body: &str, no_retry: bool) -> SdkResponse {
        SdkResponse {
            status: status as i32,
            body: Bytes::from(body.to_owned()),
            no_retry,
            ..Default::default()
        }
    }

    #[test]
    fn verdicts_follow_the_executor_rules() {
        assert_eq!(
            ReplyVerdict::of(&resp(SdkResponseStatus::Done, r#"{"ok":true}"#, false)),
            ReplyVerdict::Completed(serde_json::json!({"ok":true}))
        );
        assert_eq!(
            ReplyVerdict::of(&resp(SdkResponseStatus::Done, "plain", false)),
            ReplyVerdict::Completed("plain".into())
        );
        let js_done = r#"[{"op":"RunComplete","id":"0737c22d3bfae812339732d14d8c7dbd6dc4e09c","data":{"greeting":"hi"}}]"#;
        assert_eq!(
            ReplyVerdict::of(&resp(SdkResponseStatus::NotCompleted, js_done, false)),
            ReplyVerdict::Completed(serde_json::json!({"greeting":"hi"}))
        );
        assert!(matches!(
            ReplyVerdict::of(&resp(SdkResponseStatus::Error, r#"{"name":"Error","message":"x"}"#, false)),
            ReplyVerdict::Retry { .. }
        ));
        // JS on its last attempt: DONE with no_retry and the error body is a failure.
        assert!(matches!(
            ReplyVerdict::of(&resp(SdkResponseStatus::Done, r#"{"name":"Error"}"#, true)),
            ReplyVerdict::Failed(_)
        ));
        assert!(matches!(
            ReplyVerdict::of(&resp(SdkResponseStatus::NotCompleted, r#"[{"op":"Sleep","id":"x"}]"#, false)),
            ReplyVerdict::Steps(_)
        ));
        assert!(matches!(
            ReplyVerdict::of(&resp(SdkResponseStatus::NotCompleted, "", false)),
            ReplyVerdict::Retry { .. }
        ));
    }
}
