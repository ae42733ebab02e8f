//! The `connect.v1` protobuf messages, declared by hand with `prost` derives.
//!
//! Field numbers and types follow `proto/connect/v1/connect.proto` in Inngest's
//! server (see PROTOCOL.md section 1). Declaring them in Rust keeps the build
//! free of `protoc` and build scripts. Every `bytes` field is a [`Bytes`], so a
//! frame decoded from a `Bytes` buffer shares its memory instead of copying the
//! (possibly multi-megabyte) request payload.
//!
//! Enums are stored as `i32` the way proto3 does: an unknown value from a newer
//! peer decodes fine and is reported by the typed accessors, never a panic.

use bytes::Bytes;

/// The envelope of every WebSocket message, in both directions.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ConnectMessage {
    /// A [`GatewayMessageType`] value.
    #[prost(enumeration = "GatewayMessageType", tag = "1")]
    pub kind: i32,
    #[prost(bytes = "bytes", tag = "2")]
    pub payload: Bytes,
}

/// What a [`ConnectMessage`] carries. `GATEWAY_HELLO` is 0, so a HELLO with no
/// payload encodes as a 0-byte frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum GatewayMessageType {
    GatewayHello = 0,
    WorkerConnect = 1,
    GatewayConnectionReady = 2,
    GatewayExecutorRequest = 3,
    WorkerReady = 4,
    WorkerRequestAck = 5,
    WorkerReply = 6,
    WorkerReplyAck = 7,
    WorkerPause = 8,
    WorkerHeartbeat = 9,
    GatewayHeartbeat = 10,
    GatewayClosing = 11,
    WorkerRequestExtendLease = 12,
    WorkerRequestExtendLeaseAck = 13,
    SyncFailed = 14,
    WorkerStatus = 15,
}

impl GatewayMessageType {
    /// The protocol's own name, as in the `.proto` (`WORKER_REPLY`, ...).
    pub fn proto_name(self) -> &'static str {
        use GatewayMessageType as K;
        match self {
            K::GatewayHello => "GATEWAY_HELLO",
            K::WorkerConnect => "WORKER_CONNECT",
            K::GatewayConnectionReady => "GATEWAY_CONNECTION_READY",
            K::GatewayExecutorRequest => "GATEWAY_EXECUTOR_REQUEST",
            K::WorkerReady => "WORKER_READY",
            K::WorkerRequestAck => "WORKER_REQUEST_ACK",
            K::WorkerReply => "WORKER_REPLY",
            K::WorkerReplyAck => "WORKER_REPLY_ACK",
            K::WorkerPause => "WORKER_PAUSE",
            K::WorkerHeartbeat => "WORKER_HEARTBEAT",
            K::GatewayHeartbeat => "GATEWAY_HEARTBEAT",
            K::GatewayClosing => "GATEWAY_CLOSING",
            K::WorkerRequestExtendLease => "WORKER_REQUEST_EXTEND_LEASE",
            K::WorkerRequestExtendLeaseAck => "WORKER_REQUEST_EXTEND_LEASE_ACK",
            K::SyncFailed => "SYNC_FAILED",
            K::WorkerStatus => "WORKER_STATUS",
        }
    }

    /// Every kind, in number order.
    pub const ALL: [GatewayMessageType; 16] = {
        use GatewayMessageType as K;
        [
            K::GatewayHello,
            K::WorkerConnect,
            K::GatewayConnectionReady,
            K::GatewayExecutorRequest,
            K::WorkerReady,
            K::WorkerRequestAck,
            K::WorkerReply,
            K::WorkerReplyAck,
            K::WorkerPause,
            K::WorkerHeartbeat,
            K::GatewayHeartbeat,
            K::GatewayClosing,
            K::WorkerRequestExtendLease,
            K::WorkerRequestExtendLeaseAck,
            K::SyncFailed,
            K::WorkerStatus,
        ]
    };
}

/// `google.protobuf.Timestamp`, declared here to avoid a `prost-types` dependency.
#[derive(Clone, Copy, PartialEq, Eq, prost::Message)]
pub struct Timestamp {
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct WorkerConnectRequestData {
    /// A ULID; the gateway closes 1008 if it does not parse.
    #[prost(string, tag = "1")]
    pub connection_id: String,
    /// Required, non-empty. Stable per worker process (Inngest SDKs use the host name).
    #[prost(string, tag = "2")]
    pub instance_id: String,
    #[prost(message, optional, tag = "3")]
    pub auth_data: Option<AuthData>,
    /// JSON text, required and valid JSON (see `payload::Capabilities`).
    #[prost(bytes = "bytes", tag = "4")]
    pub capabilities: Bytes,
    /// Must be non-empty.
    #[prost(message, repeated, tag = "5")]
    pub apps: Vec<AppConfiguration>,
    #[prost(bool, tag = "6")]
    pub worker_manual_readiness_ack: bool,
    #[prost(message, optional, tag = "7")]
    pub system_attributes: Option<SystemAttributes>,
    #[prost(string, optional, tag = "8")]
    pub environment: Option<String>,
    #[prost(string, tag = "9")]
    pub framework: String,
    #[prost(string, optional, tag = "10")]
    pub platform: Option<String>,
    #[prost(string, tag = "11")]
    pub sdk_version: String,
    #[prost(string, tag = "12")]
    pub sdk_language: String,
    #[prost(message, optional, tag = "13")]
    pub started_at: Option<Timestamp>,
    /// 0 or absent means unlimited.
    #[prost(int64, optional, tag = "14")]
    pub max_worker_concurrency: Option<i64>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct AuthData {
    #[prost(string, tag = "1")]
    pub session_token: String,
    #[prost(string, tag = "2")]
    pub sync_token: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct AppConfiguration {
    #[prost(string, tag = "1")]
    pub app_name: String,
    #[prost(string, optional, tag = "2")]
    pub app_version: Option<String>,
    /// A JSON array of function configs (`payload::FunctionConfig`). Tag 3 is unused upstream.
    #[prost(bytes = "bytes", tag = "4")]
    pub functions: Bytes,
    #[prost(message, optional, tag = "5")]
    pub feature_observations: Option<FeatureObservations>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct SystemAttributes {
    #[prost(int32, tag = "1")]
    pub cpu_cores: i32,
    #[prost(int64, tag = "2")]
    pub mem_bytes: i64,
    #[prost(string, tag = "3")]
    pub os: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct GatewayConnectionReadyData {
    /// A Go `time.Duration` string such as `"10s"`; see [`crate::duration`].
    #[prost(string, tag = "1")]
    pub heartbeat_interval: String,
    #[prost(string, tag = "2")]
    pub extend_lease_interval: String,
    #[prost(string, tag = "3")]
    pub status_interval: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct GatewayExecutorRequestData {
    #[prost(string, tag = "1")]
    pub request_id: String,
    #[prost(string, tag = "2")]
    pub account_id: String,
    #[prost(string, tag = "3")]
    pub env_id: String,
    #[prost(string, tag = "4")]
    pub app_id: String,
    #[prost(string, tag = "5")]
    pub app_name: String,
    #[prost(string, tag = "6")]
    pub function_id: String,
    #[prost(string, tag = "7")]
    pub function_slug: String,
    #[prost(string, optional, tag = "8")]
    pub step_id: Option<String>,
    /// JSON (`payload::RequestPayload`), shared with the frame buffer, not copied.
    #[prost(bytes = "bytes", tag = "9")]
    pub request_payload: Bytes,
    /// JSON map, echoed byte for byte.
    #[prost(bytes = "bytes", tag = "10")]
    pub system_trace_ctx: Bytes,
    /// JSON map, echoed byte for byte.
    #[prost(bytes = "bytes", tag = "11")]
    pub user_trace_ctx: Bytes,
    #[prost(string, tag = "12")]
    pub run_id: String,
    /// A ULID whose timestamp is the lease expiry.
    #[prost(string, tag = "13")]
    pub lease_id: String,
    #[prost(string, tag = "14")]
    pub job_id: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct WorkerRequestAckData {
    #[prost(string, tag = "1")]
    pub request_id: String,
    #[prost(string, tag = "2")]
    pub account_id: String,
    #[prost(string, tag = "3")]
    pub env_id: String,
    #[prost(string, tag = "4")]
    pub app_id: String,
    #[prost(string, tag = "5")]
    pub function_slug: String,
    #[prost(string, optional, tag = "6")]
    pub step_id: Option<String>,
    #[prost(bytes = "bytes", tag = "7")]
    pub system_trace_ctx: Bytes,
    #[prost(bytes = "bytes", tag = "8")]
    pub user_trace_ctx: Bytes,
    #[prost(string, tag = "9")]
    pub run_id: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct WorkerRequestExtendLeaseData {
    #[prost(string, tag = "1")]
    pub request_id: String,
    #[prost(string, tag = "2")]
    pub account_id: String,
    #[prost(string, tag = "3")]
    pub env_id: String,
    #[prost(string, tag = "4")]
    pub app_id: String,
    #[prost(string, tag = "5")]
    pub function_slug: String,
    #[prost(string, optional, tag = "6")]
    pub step_id: Option<String>,
    #[prost(bytes = "bytes", tag = "7")]
    pub system_trace_ctx: Bytes,
    #[prost(bytes = "bytes", tag = "8")]
    pub user_trace_ctx: Bytes,
    #[prost(string, tag = "9")]
    pub run_id: String,
    /// The newest lease id known for the request; the gateway closes 1008 if it is not a ULID.
    #[prost(string, tag = "10")]
    pub lease_id: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct WorkerRequestExtendLeaseAckData {
    #[prost(string, tag = "1")]
    pub request_id: String,
    #[prost(string, tag = "2")]
    pub account_id: String,
    #[prost(string, tag = "3")]
    pub env_id: String,
    #[prost(string, tag = "4")]
    pub app_id: String,
    #[prost(string, tag = "5")]
    pub function_slug: String,
    /// Present: the extension worked, use this id next. Absent: the lease is lost (a NACK).
    #[prost(string, optional, tag = "6")]
    pub new_lease_id: Option<String>,
}

/// How the executor reads a reply: DONE is HTTP 200, NOT_COMPLETED 206 (opcodes), ERROR 500.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum SdkResponseStatus {
    NotCompleted = 0,
    Done = 1,
    Error = 2,
}

/// The payload of WORKER_REPLY and the body of the HTTP flush.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SdkResponse {
    #[prost(string, tag = "1")]
    pub request_id: String,
    #[prost(string, tag = "2")]
    pub account_id: String,
    #[prost(string, tag = "3")]
    pub env_id: String,
    #[prost(string, tag = "4")]
    pub app_id: String,
    #[prost(enumeration = "SdkResponseStatus", tag = "5")]
    pub status: i32,
    #[prost(bytes = "bytes", tag = "6")]
    pub body: Bytes,
    #[prost(bool, tag = "7")]
    pub no_retry: bool,
    #[prost(string, optional, tag = "8")]
    pub retry_after: Option<String>,
    #[prost(string, tag = "9")]
    pub sdk_version: String,
    #[prost(uint32, tag = "10")]
    pub request_version: u32,
    /// Must be valid JSON for the HTTP flush: always echo the request's value.
    #[prost(bytes = "bytes", tag = "11")]
    pub system_trace_ctx: Bytes,
    #[prost(bytes = "bytes", tag = "12")]
    pub user_trace_ctx: Bytes,
    #[prost(string, tag = "13")]
    pub run_id: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct WorkerReplyAckData {
    #[prost(string, tag = "1")]
    pub request_id: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct WorkerStatusData {
    #[prost(string, repeated, tag = "1")]
    pub in_flight_request_ids: Vec<String>,
    #[prost(bool, tag = "2")]
    pub shutdown_requested: bool,
}

/// Body of `POST /v0/connect/start`. An empty body means no exclusions.
#[derive(Clone, PartialEq, prost::Message)]
pub struct StartRequest {
    #[prost(string, repeated, tag = "1")]
    pub exclude_gateways: Vec<String>,
}

/// Answer to `POST /v0/connect/start`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct StartResponse {
    #[prost(string, tag = "1")]
    pub connection_id: String,
    #[prost(string, tag = "2")]
    pub gateway_endpoint: String,
    #[prost(string, tag = "3")]
    pub gateway_group: String,
    #[prost(string, tag = "4")]
    pub session_token: String,
    #[prost(string, tag = "5")]
    pub sync_token: String,
}

/// Answer to `POST /v0/connect/flush`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct FlushResponse {
    #[prost(string, tag = "1")]
    pub request_id: String,
}

/// Payload of SYNC_FAILED.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SystemError {
    #[prost(string, tag = "1")]
    pub code: String,
    #[prost(bytes = "bytes", optional, tag = "2")]
    pub data: Option<Bytes>,
    #[prost(string, tag = "3")]
    pub message: String,
}

/// Server-side connection status. Never sent to a worker; kept for the gateway's bookkeeping.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum ConnectionStatus {
    Connected = 0,
    Ready = 1,
    Draining = 2,
    Disconnecting = 3,
    Disconnected = 4,
}

/// Reasons that appear as *strings* in close frames and connection history.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum WorkerDisconnectReason {
    WorkerShutdown = 0,
    Unexpected = 1,
    GatewayDraining = 2,
    ConsecutiveHeartbeatsMissed = 3,
    MessageTooLarge = 4,
}

pub use feature_observations::*;

/// `sdk_feature_observations.v1`: optional SDK self-reports hashed by the gateway.
/// An absent value is fine; the gateway re-syncs an app when these change.
mod feature_observations {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct FeatureObservations {
        #[prost(message, optional, tag = "1")]
        pub ai_metadata_extraction: Option<AiMetadataExtraction>,
        #[prost(message, optional, tag = "2")]
        pub extended_traces: Option<ExtendedTraces>,
        #[prost(message, optional, tag = "3")]
        pub send_events: Option<SendEvents>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct OTelSetup {
        #[prost(int32, tag = "1")]
        pub path: i32,
        #[prost(bool, tag = "2")]
        pub provider_found: bool,
        #[prost(int32, tag = "3")]
        pub provider_source: i32,
        #[prost(bool, tag = "4")]
        pub add_span_processor_attempted: bool,
        #[prost(bool, tag = "5")]
        pub span_processor_added: bool,
        #[prost(int32, tag = "6")]
        pub failure: i32,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct AiMetadataExtraction {
        #[prost(int32, tag = "1")]
        pub readiness_reason: i32,
        #[prost(message, optional, tag = "2")]
        pub otel_setup: Option<OTelSetup>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ExtendedTraces {
        #[prost(int32, tag = "1")]
        pub readiness_reason: i32,
        #[prost(message, optional, tag = "2")]
        pub config: Option<ExtendedTracesConfig>,
        #[prost(message, optional, tag = "3")]
        pub otel_setup: Option<OTelSetup>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ExtendedTracesConfig {
        #[prost(int32, tag = "1")]
        pub behavior: i32,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct SendEvents {
        #[prost(int32, tag = "1")]
        pub readiness_reason: i32,
        #[prost(message, optional, tag = "2")]
        pub config: Option<SendEventsConfig>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct SendEventsConfig {
        #[prost(bool, tag = "1")]
        pub event_key_configured: bool,
        #[prost(bool, tag = "2")]
        pub event_api_origin_override_configured: bool,
    }
}
