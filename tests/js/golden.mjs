// Golden protobuf vectors for the Connect wire protocol, produced by the code
// generated inside the real Inngest JS SDK (npm `inngest`, pinned in package.json).
//
// Setup (once):      npm ci --prefix tests/js
// Run (repo root, Node 20):
//   node tests/js/golden.mjs                  write tests/golden/vectors.json
//   node tests/js/golden.mjs --out FILE       write the vectors to FILE instead
//   node tests/js/golden.mjs --verify         exit 1 if tests/golden/vectors.json is stale
//   node tests/js/golden.mjs --check FILE     decode every entry of FILE (same JSON shape, e.g.
//                                             tests/golden/rust_frames.json) with the JS code and
//                                             compare kind + every payload field; exit 1 on mismatch
//   node tests/js/golden.mjs --check FILE --strict-bytes
//                                             also fail when the JS re-encoding of an entry is not
//                                             byte-identical to its hex (default: a warning)
//
// Only the SDK's own generated encoders/decoders produce and read the bytes. The one exception is
// `SystemError` (payload of SYNC_FAILED): the SDK's bundler dropped its codec from the shipped
// JavaScript (it is only in the source map), so it is encoded and decoded here with the same wire
// library the generated code uses (@bufbuild/protobuf/wire), field by field in declaration order.
// The output is deterministic: no clock, no randomness.
//
// Vector shape (tests/golden/README.md): { name, message, kind, hex, payload_type, payload }.
// payload uses the .proto snake_case names; bytes are lowercase hex; int64 are decimal strings;
// enums are numbers; a Timestamp is {"seconds": "<str>", "nanos": n}. Fields with implicit presence
// are omitted when they hold the proto3 default; `optional` fields and sub-messages are present
// exactly when set (even to a default value); empty repeated fields are omitted.

import { readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

// The package's "exports" map does not expose these files, so load them by path. The wire library
// is the copy the package itself resolves (hoisted into tests/js/node_modules by npm).
const PROTO_DIR = new URL("./node_modules/inngest/proto/", import.meta.url);
let pb, Timestamp, FeatureObservations, BinaryReader, BinaryWriter, SDK_VERSION;
try {
  pb = await import(new URL("src/components/connect/protobuf/connect.js", PROTO_DIR).href);
  ({ Timestamp } = await import(new URL("google/protobuf/timestamp.js", PROTO_DIR).href));
  ({ FeatureObservations } = await import(
    new URL("src/components/sdkFeatureObservations/protobuf/feature_observations.js", PROTO_DIR).href
  ));
  ({ BinaryReader, BinaryWriter } = await import("@bufbuild/protobuf/wire"));
  SDK_VERSION = JSON.parse(readFileSync(new URL("./node_modules/inngest/package.json", import.meta.url), "utf8")).version;
} catch (err) {
  console.error(`cannot load the inngest package (${err.message}).\nRun: npm ci --prefix tests/js`);
  process.exit(2);
}

const DEFAULT_OUT = fileURLToPath(new URL("../golden/vectors.json", import.meta.url));

// ---------------------------------------------------------------------------------------------
// Schema: field name (snake_case as in the .proto), number, type, label.
// label: "implicit" (proto3 default elided), "optional" (explicit presence), "repeated".
// type: string | bytes | bool | int32 | uint32 | int64 | enum | timestamp | <message name>.
// Sub-message fields always have explicit presence, so they are labelled "optional".
// The schema is checked against the SDK's generated code at start-up (checkSchemaAgainstSdk).
// ---------------------------------------------------------------------------------------------

const f = (name, no, type, label = "implicit") => ({ name, no, type, label, js: camel(name) });

const SCHEMA = {
  ConnectMessage: [f("kind", 1, "enum"), f("payload", 2, "bytes")],
  WorkerConnectRequestData: [
    f("connection_id", 1, "string"),
    f("instance_id", 2, "string"),
    f("auth_data", 3, "AuthData", "optional"),
    f("capabilities", 4, "bytes"),
    f("apps", 5, "AppConfiguration", "repeated"),
    f("worker_manual_readiness_ack", 6, "bool"),
    f("system_attributes", 7, "SystemAttributes", "optional"),
    f("environment", 8, "string", "optional"),
    f("framework", 9, "string"),
    f("platform", 10, "string", "optional"),
    f("sdk_version", 11, "string"),
    f("sdk_language", 12, "string"),
    f("started_at", 13, "timestamp", "optional"),
    f("max_worker_concurrency", 14, "int64", "optional"),
  ],
  AuthData: [f("session_token", 1, "string"), f("sync_token", 2, "string")],
  AppConfiguration: [
    f("app_name", 1, "string"),
    f("app_version", 2, "string", "optional"),
    f("functions", 4, "bytes"),
    f("feature_observations", 5, "FeatureObservations", "optional"),
  ],
  SystemAttributes: [f("cpu_cores", 1, "int32"), f("mem_bytes", 2, "int64"), f("os", 3, "string")],
  FeatureObservations: [
    f("ai_metadata_extraction", 1, "AIMetadataExtraction", "optional"),
    f("extended_traces", 2, "ExtendedTraces", "optional"),
    f("send_events", 3, "SendEvents", "optional"),
  ],
  OTelSetup: [
    f("path", 1, "enum"),
    f("provider_found", 2, "bool"),
    f("provider_source", 3, "enum"),
    f("add_span_processor_attempted", 4, "bool"),
    f("span_processor_added", 5, "bool"),
    f("failure", 6, "enum"),
  ],
  AIMetadataExtraction: [f("readiness_reason", 1, "enum"), f("otel_setup", 2, "OTelSetup", "optional")],
  ExtendedTraces: [
    f("readiness_reason", 1, "enum"),
    f("config", 2, "ExtendedTracesConfig", "optional"),
    f("otel_setup", 3, "OTelSetup", "optional"),
  ],
  ExtendedTracesConfig: [f("behavior", 1, "enum")],
  SendEvents: [f("readiness_reason", 1, "enum"), f("config", 2, "SendEventsConfig", "optional")],
  SendEventsConfig: [
    f("event_key_configured", 1, "bool"),
    f("event_api_origin_override_configured", 2, "bool"),
  ],
  GatewayConnectionReadyData: [
    f("heartbeat_interval", 1, "string"),
    f("extend_lease_interval", 2, "string"),
    f("status_interval", 3, "string"),
  ],
  GatewayExecutorRequestData: [
    f("request_id", 1, "string"),
    f("account_id", 2, "string"),
    f("env_id", 3, "string"),
    f("app_id", 4, "string"),
    f("app_name", 5, "string"),
    f("function_id", 6, "string"),
    f("function_slug", 7, "string"),
    f("step_id", 8, "string", "optional"),
    f("request_payload", 9, "bytes"),
    f("system_trace_ctx", 10, "bytes"),
    f("user_trace_ctx", 11, "bytes"),
    f("run_id", 12, "string"),
    f("lease_id", 13, "string"),
    f("job_id", 14, "string"),
  ],
  WorkerRequestAckData: [
    f("request_id", 1, "string"),
    f("account_id", 2, "string"),
    f("env_id", 3, "string"),
    f("app_id", 4, "string"),
    f("function_slug", 5, "string"),
    f("step_id", 6, "string", "optional"),
    f("system_trace_ctx", 7, "bytes"),
    f("user_trace_ctx", 8, "bytes"),
    f("run_id", 9, "string"),
  ],
  WorkerRequestExtendLeaseData: [
    f("request_id", 1, "string"),
    f("account_id", 2, "string"),
    f("env_id", 3, "string"),
    f("app_id", 4, "string"),
    f("function_slug", 5, "string"),
    f("step_id", 6, "string", "optional"),
    f("system_trace_ctx", 7, "bytes"),
    f("user_trace_ctx", 8, "bytes"),
    f("run_id", 9, "string"),
    f("lease_id", 10, "string"),
  ],
  WorkerRequestExtendLeaseAckData: [
    f("request_id", 1, "string"),
    f("account_id", 2, "string"),
    f("env_id", 3, "string"),
    f("app_id", 4, "string"),
    f("function_slug", 5, "string"),
    f("new_lease_id", 6, "string", "optional"),
  ],
  SDKResponse: [
    f("request_id", 1, "string"),
    f("account_id", 2, "string"),
    f("env_id", 3, "string"),
    f("app_id", 4, "string"),
    f("status", 5, "enum"),
    f("body", 6, "bytes"),
    f("no_retry", 7, "bool"),
    f("retry_after", 8, "string", "optional"),
    f("sdk_version", 9, "string"),
    f("request_version", 10, "uint32"),
    f("system_trace_ctx", 11, "bytes"),
    f("user_trace_ctx", 12, "bytes"),
    f("run_id", 13, "string"),
  ],
  WorkerReplyAckData: [f("request_id", 1, "string")],
  WorkerStatusData: [
    f("in_flight_request_ids", 1, "string", "repeated"),
    f("shutdown_requested", 2, "bool"),
  ],
  SystemError: [
    f("code", 1, "string"),
    f("data", 2, "bytes", "optional"),
    f("message", 3, "string"),
  ],
  StartRequest: [f("exclude_gateways", 1, "string", "repeated")],
  StartResponse: [
    f("connection_id", 1, "string"),
    f("gateway_endpoint", 2, "string"),
    f("gateway_group", 3, "string"),
    f("session_token", 4, "string"),
    f("sync_token", 5, "string"),
  ],
  FlushResponse: [f("request_id", 1, "string")],
};

// SystemError codec. NOT from the SDK: its generated codec is absent from the shipped JS (see the
// header). Same rules as the generated code: declaration order, implicit fields elided at their
// default, the optional field written whenever it is set.
const SystemErrorCodec = {
  encode(m, w = new BinaryWriter()) {
    if (m.code !== "") w.uint32(10).string(m.code);
    if (m.data !== undefined) w.uint32(18).bytes(m.data);
    if (m.message !== "") w.uint32(26).string(m.message);
    return w;
  },
  decode(input) {
    const r = new BinaryReader(input);
    const m = { code: "", data: undefined, message: "" };
    while (r.pos < r.len) {
      const tag = r.uint32();
      if (tag === 10) m.code = r.string();
      else if (tag === 18) m.data = r.bytes();
      else if (tag === 26) m.message = r.string();
      else if ((tag & 7) === 4 || tag === 0) break;
      else r.skip(tag & 7);
    }
    return m;
  },
  fromPartial(o) {
    return { code: o.code ?? "", data: o.data ?? undefined, message: o.message ?? "" };
  },
};

// Top-level codecs: every one but SystemError is the SDK's generated object.
const CODECS = {
  ConnectMessage: pb.ConnectMessage,
  WorkerConnectRequestData: pb.WorkerConnectRequestData,
  GatewayConnectionReadyData: pb.GatewayConnectionReadyData,
  GatewayExecutorRequestData: pb.GatewayExecutorRequestData,
  WorkerRequestAckData: pb.WorkerRequestAckData,
  SDKResponse: pb.SDKResponse,
  WorkerReplyAckData: pb.WorkerReplyAckData,
  WorkerRequestExtendLeaseData: pb.WorkerRequestExtendLeaseData,
  WorkerRequestExtendLeaseAckData: pb.WorkerRequestExtendLeaseAckData,
  SystemError: SystemErrorCodec,
  WorkerStatusData: pb.WorkerStatusData,
  StartRequest: pb.StartRequest,
  StartResponse: pb.StartResponse,
  FlushResponse: pb.FlushResponse,
  FeatureObservations, // used only by the schema self-check
};

const GMT = pb.GatewayMessageType;
// kind -> payload message (null: the kind carries no payload).
const KIND_PAYLOAD = {
  GATEWAY_HELLO: null,
  WORKER_CONNECT: "WorkerConnectRequestData",
  GATEWAY_CONNECTION_READY: "GatewayConnectionReadyData",
  GATEWAY_EXECUTOR_REQUEST: "GatewayExecutorRequestData",
  WORKER_READY: null,
  WORKER_REQUEST_ACK: "WorkerRequestAckData",
  WORKER_REPLY: "SDKResponse",
  WORKER_REPLY_ACK: "WorkerReplyAckData",
  WORKER_PAUSE: null,
  WORKER_HEARTBEAT: null,
  GATEWAY_HEARTBEAT: null,
  GATEWAY_CLOSING: null,
  WORKER_REQUEST_EXTEND_LEASE: "WorkerRequestExtendLeaseData",
  WORKER_REQUEST_EXTEND_LEASE_ACK: "WorkerRequestExtendLeaseAckData",
  SYNC_FAILED: "SystemError",
  WORKER_STATUS: "WorkerStatusData",
};
const KIND_NAMES = Object.keys(KIND_PAYLOAD).sort((a, b) => GMT[a] - GMT[b]);
const HTTP_BODIES = ["StartRequest", "StartResponse", "FlushResponse", "SDKResponse"];

// ---------------------------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------------------------

function camel(s) {
  return s.replace(/_([a-z0-9])/g, (_, c) => c.toUpperCase());
}
const hex = (u8) => Buffer.from(u8).toString("hex");
const utf8 = (s) => new Uint8Array(Buffer.from(s, "utf8"));
const jsonBytesHex = (v) => hex(utf8(JSON.stringify(v)));
const isObj = (v) => v !== null && typeof v === "object" && !Array.isArray(v);

class Mismatch extends Error {}

function fromHex(s, where) {
  if (typeof s !== "string" || !/^([0-9a-f]{2})*$/.test(s)) {
    throw new Mismatch(`${where}: expected a lowercase hex string with an even length, got ${JSON.stringify(s)}`);
  }
  return new Uint8Array(Buffer.from(s, "hex"));
}

// Default value of a field with implicit presence, in the plain (vector JSON) representation.
function plainDefault(type) {
  switch (type) {
    case "string":
    case "bytes":
      return "";
    case "bool":
      return false;
    case "int64":
      return "0";
    case "int32":
    case "uint32":
    case "enum":
      return 0;
    default:
      throw new Error(`no implicit default for type ${type}`);
  }
}

// Plain value -> canonical plain value, validating its JSON type strictly.
function canonScalar(type, v, where) {
  switch (type) {
    case "string":
      if (typeof v !== "string") throw new Mismatch(`${where}: expected a string, got ${JSON.stringify(v)}`);
      return v;
    case "bytes":
      return hex(fromHex(v, where));
    case "bool":
      if (typeof v !== "boolean") throw new Mismatch(`${where}: expected a boolean, got ${JSON.stringify(v)}`);
      return v;
    case "int64":
      if (typeof v !== "string" || !/^-?[0-9]+$/.test(v)) {
        throw new Mismatch(`${where}: expected an int64 as a decimal string, got ${JSON.stringify(v)}`);
      }
      return BigInt(v).toString();
    case "int32":
    case "enum":
    case "uint32": {
      const [lo, hi] = type === "uint32" ? [0, 2 ** 32 - 1] : [-(2 ** 31), 2 ** 31 - 1];
      if (!Number.isInteger(v) || v < lo || v > hi) {
        throw new Mismatch(`${where}: expected a ${type} number, got ${JSON.stringify(v)}`);
      }
      return v;
    }
    case "timestamp": {
      if (!isObj(v)) throw new Mismatch(`${where}: expected {"seconds": "<str>", "nanos": n}, got ${JSON.stringify(v)}`);
      for (const k of Object.keys(v)) {
        if (k !== "seconds" && k !== "nanos") throw new Mismatch(`${where}.${k}: unknown Timestamp field`);
      }
      return {
        seconds: v.seconds === undefined ? "0" : canonScalar("int64", v.seconds, `${where}.seconds`),
        nanos: v.nanos === undefined ? 0 : canonScalar("int32", v.nanos, `${where}.nanos`),
      };
    }
    default:
      return canonMessage(type, v, where);
  }
}

// Canonical plain message: unknown keys rejected, implicit defaults and empty repeated dropped,
// keys in field-number order.
function canonMessage(type, v, where) {
  const fields = SCHEMA[type];
  if (!fields) throw new Error(`unknown message type ${type}`);
  if (!isObj(v)) throw new Mismatch(`${where}: expected a ${type} object, got ${JSON.stringify(v)}`);
  const known = new Set(fields.map((x) => x.name));
  for (const k of Object.keys(v)) {
    if (!known.has(k)) throw new Mismatch(`${where}.${k}: field not in ${type}`);
  }
  const out = {};
  for (const fd of fields) {
    if (!(fd.name in v)) continue;
    const val = v[fd.name];
    const at = `${where}.${fd.name}`;
    if (fd.label === "repeated") {
      if (!Array.isArray(val)) throw new Mismatch(`${at}: expected an array, got ${JSON.stringify(val)}`);
      if (val.length) out[fd.name] = val.map((e, i) => canonScalar(fd.type, e, `${at}[${i}]`));
    } else if (fd.label === "optional") {
      if (val === null) throw new Mismatch(`${at}: null is not a value; omit the field when unset`);
      out[fd.name] = canonScalar(fd.type, val, at);
    } else {
      const c = canonScalar(fd.type, val, at);
      if (c !== plainDefault(fd.type)) out[fd.name] = c;
    }
  }
  return out;
}

// Plain -> JS object in the shape the generated fromPartial expects.
function toJsValue(type, v) {
  switch (type) {
    case "string":
    case "bool":
    case "int32":
    case "uint32":
    case "enum":
      return v;
    case "bytes":
      return fromHex(v, "bytes");
    case "int64": {
      const n = Number(v);
      if (!Number.isSafeInteger(n)) throw new Error(`int64 ${v} is outside what the JS SDK can represent`);
      return n;
    }
    case "timestamp": {
      const ms = Number(BigInt(v.seconds) * 1000n) + v.nanos / 1e6;
      if (v.nanos % 1e6 !== 0) throw new Error("the JS SDK keeps Timestamps as Date: nanos must be whole milliseconds");
      return new Date(ms);
    }
    default:
      return toJsMessage(type, v);
  }
}
function toJsMessage(type, plain) {
  const out = {};
  for (const fd of SCHEMA[type]) {
    if (!(fd.name in plain)) continue;
    const v = plain[fd.name];
    out[fd.js] = fd.label === "repeated" ? v.map((e) => toJsValue(fd.type, e)) : toJsValue(fd.type, v);
  }
  return out;
}

// JS object (as returned by the generated decode) -> canonical plain value.
function fromJsValue(type, v, where) {
  switch (type) {
    case "string":
    case "bool":
    case "int32":
    case "uint32":
    case "enum":
      return v;
    case "bytes":
      return hex(v);
    case "int64":
      return BigInt(v).toString();
    case "timestamp": {
      const ms = v.getTime();
      const seconds = Math.floor(ms / 1000);
      return { seconds: String(seconds), nanos: (ms - seconds * 1000) * 1e6 };
    }
    default:
      return fromJsMessage(type, v, where);
  }
}
function fromJsMessage(type, m, where = type) {
  const out = {};
  for (const fd of SCHEMA[type]) {
    const v = m[fd.js];
    const at = `${where}.${fd.name}`;
    if (fd.label === "repeated") {
      if (v.length) out[fd.name] = v.map((e) => fromJsValue(fd.type, e, at));
    } else if (fd.label === "optional") {
      if (v !== undefined) out[fd.name] = fromJsValue(fd.type, v, at);
    } else {
      const c = fromJsValue(fd.type, v, at);
      if (c !== plainDefault(fd.type)) out[fd.name] = c;
    }
  }
  return out;
}

// Every difference between two canonical plain values, as "path: ..." lines.
function diff(exp, act, where, out = []) {
  if (isObj(exp) && isObj(act)) {
    for (const k of Object.keys(exp)) {
      if (!(k in act)) out.push(`${where}.${k}: expected ${JSON.stringify(exp[k])}, field absent after decoding`);
      else diff(exp[k], act[k], `${where}.${k}`, out);
    }
    for (const k of Object.keys(act)) {
      if (!(k in exp)) out.push(`${where}.${k}: decoded ${JSON.stringify(act[k])}, field absent from the JSON`);
    }
  } else if (Array.isArray(exp) && Array.isArray(act)) {
    if (exp.length !== act.length) out.push(`${where}: expected ${exp.length} entries, decoded ${act.length}`);
    for (let i = 0; i < Math.min(exp.length, act.length); i++) diff(exp[i], act[i], `${where}[${i}]`, out);
  } else if (JSON.stringify(exp) !== JSON.stringify(act)) {
    out.push(`${where}: expected ${JSON.stringify(exp)}, decoded ${JSON.stringify(act)}`);
  }
  return out;
}

// The generated decode turns a Timestamp into a Date (millisecond precision). For an exact
// comparison, read top-level Timestamp fields again with the SDK's own Timestamp codec.
function rawTimestamps(type, bytes) {
  const ts = SCHEMA[type].filter((x) => x.type === "timestamp");
  const found = {};
  if (!ts.length) return found;
  const r = new BinaryReader(bytes);
  while (r.pos < r.len) {
    const tag = r.uint32();
    const fd = ts.find((x) => tag === ((x.no << 3) | 2));
    if (fd) {
      const t = Timestamp.decode(r, r.uint32());
      found[fd.name] = { seconds: BigInt(t.seconds).toString(), nanos: t.nanos };
    } else {
      r.skip(tag & 7);
    }
  }
  return found;
}

function decodePlain(type, bytes) {
  const plain = fromJsMessage(type, CODECS[type].decode(bytes));
  return Object.assign(plain, rawTimestamps(type, bytes));
}

function encodeMessage(type, plainPayload) {
  const codec = CODECS[type];
  return codec.encode(codec.fromPartial(toJsMessage(type, plainPayload))).finish();
}

// Fail fast if the schema above and the SDK's generated code disagree on any field name.
function checkSchemaAgainstSdk() {
  const problems = [];
  const cmp = (type, obj, where) => {
    const want = SCHEMA[type].map((x) => x.js).sort();
    const got = Object.keys(obj).sort();
    if (JSON.stringify(want) !== JSON.stringify(got)) {
      problems.push(`${where} (${type}): SDK fields [${got}] vs schema [${want}]`);
    }
  };
  const fullFo = {
    aiMetadataExtraction: { otelSetup: {} },
    extendedTraces: { config: {}, otelSetup: {} },
    sendEvents: { config: {} },
  };
  for (const type of Object.keys(CODECS)) {
    if (type === "SystemError") continue;
    cmp(type, CODECS[type].fromPartial({}), type);
  }
  const wc = pb.WorkerConnectRequestData.fromPartial({
    authData: {},
    systemAttributes: {},
    apps: [{ featureObservations: fullFo }],
  });
  cmp("AuthData", wc.authData, "WorkerConnectRequestData.auth_data");
  cmp("SystemAttributes", wc.systemAttributes, "WorkerConnectRequestData.system_attributes");
  cmp("AppConfiguration", wc.apps[0], "WorkerConnectRequestData.apps[0]");
  const fo = wc.apps[0].featureObservations;
  cmp("AIMetadataExtraction", fo.aiMetadataExtraction, "FeatureObservations.ai_metadata_extraction");
  cmp("OTelSetup", fo.aiMetadataExtraction.otelSetup, "AIMetadataExtraction.otel_setup");
  cmp("ExtendedTraces", fo.extendedTraces, "FeatureObservations.extended_traces");
  cmp("ExtendedTracesConfig", fo.extendedTraces.config, "ExtendedTraces.config");
  cmp("SendEvents", fo.sendEvents, "FeatureObservations.send_events");
  cmp("SendEventsConfig", fo.sendEvents.config, "SendEvents.config");
  for (const k of KIND_NAMES) {
    if (typeof GMT[k] !== "number") problems.push(`GatewayMessageType.${k} missing from the SDK`);
  }
  if (Object.keys(GMT).filter((k) => isNaN(Number(k)) && k !== "UNRECOGNIZED").length !== KIND_NAMES.length) {
    problems.push("the SDK's GatewayMessageType has kinds this script does not know");
  }
  if (problems.length) {
    console.error("schema does not match the SDK's generated code:\n  " + problems.join("\n  "));
    process.exit(2);
  }
}

// ---------------------------------------------------------------------------------------------
// vector inputs (plain JSON form). Fake ids, tokens and hosts; fixed values only.
// ---------------------------------------------------------------------------------------------

const IDS = {
  connection: "01JQ8Z6W3N4M5P6Q7R8S9T0VWX",
  request: "01JQ8ZE7G8H9J0K1M2N3P4Q5R6",
  run: "01JQ8Z7A1B2C3D4E5F6G7H8J9K",
  lease: "01JQ8ZC5M6N7P8Q9R0S1T2V3W4",
  newLease: "01JQ8ZD6X7Y8Z9A0B1C2D3E4F5",
  account: "3f1c2b8e-5d4a-4e6f-9a7b-1c2d3e4f5a6b",
  env: "7a9b8c6d-1e2f-4a3b-8c4d-5e6f7a8b9c0d",
  app: "c0ffee00-1234-4abc-9def-0123456789ab",
  fn: "f00dbabe-4321-4cba-8fed-ba9876543210",
};
const APP = "golden-app";
const SLUG = "golden-app-hello-world";
const SYS_TRACE = jsonBytesHex({ traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01" });
const USER_TRACE = jsonBytesHex({
  traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
  tracestate: `inngest@app=${APP},inngest@fn=${SLUG},inngest@traceref=golden-ref`,
});
const SESSION_TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJnb2xkZW4tdmVjdG9ycyJ9.Z29sZGVuLXNpZ25hdHVyZQ";
const SYNC_TOKEN = "signkey-test-" + "0123456789abcdef".repeat(4);

const fnConfig = (id, trigger) => ({
  id: `${APP}-${id}`,
  name: `Golden ${id}`,
  triggers: [trigger],
  steps: {
    step: {
      id: "step",
      name: "step",
      runtime: { type: "ws", url: `wss://connect?fnId=${APP}-${id}&stepId=step` },
      retries: { attempts: 3 },
    },
  },
});

const FULL_FEATURE_OBS = {
  ai_metadata_extraction: {
    readiness_reason: 4,
    otel_setup: {
      path: 1,
      provider_found: true,
      provider_source: 2,
      add_span_processor_attempted: true,
      span_processor_added: true,
      failure: 3,
    },
  },
  extended_traces: {
    readiness_reason: 6,
    config: { behavior: 5 },
    otel_setup: {
      path: 2,
      provider_found: true,
      provider_source: 3,
      add_span_processor_attempted: true,
      span_processor_added: true,
      failure: 4,
    },
  },
  send_events: {
    readiness_reason: 2,
    config: { event_key_configured: true, event_api_origin_override_configured: true },
  },
};

const PAYLOADS = {
  WORKER_CONNECT: {
    connection_id: IDS.connection,
    instance_id: "golden-host-01",
    auth_data: { session_token: SESSION_TOKEN, sync_token: SYNC_TOKEN },
    capabilities: jsonBytesHex({ trust_probe: "v1", connect: "v1" }),
    apps: [
      {
        app_name: APP,
        app_version: "2026.12.03-1",
        functions: jsonBytesHex([
          fnConfig("hello-world", { event: "golden/hello" }),
          fnConfig("nightly", { cron: "0 3 * * *" }),
        ]),
        feature_observations: FULL_FEATURE_OBS,
      },
      {
        app_name: "golden-app-two",
        app_version: "v2",
        functions: jsonBytesHex([fnConfig("second", { event: "golden/second" })]),
        feature_observations: {
          ai_metadata_extraction: {
            readiness_reason: 1,
            otel_setup: {
              path: 1,
              provider_found: true,
              provider_source: 1,
              add_span_processor_attempted: true,
              span_processor_added: true,
              failure: 1,
            },
          },
          extended_traces: {
            readiness_reason: 1,
            config: { behavior: 3 },
            otel_setup: {
              path: 1,
              provider_found: true,
              provider_source: 1,
              add_span_processor_attempted: true,
              span_processor_added: true,
              failure: 2,
            },
          },
          send_events: {
            readiness_reason: 1,
            config: { event_key_configured: true, event_api_origin_override_configured: true },
          },
        },
      },
    ],
    worker_manual_readiness_ack: true,
    system_attributes: { cpu_cores: 16, mem_bytes: "68719476736", os: "linux" },
    environment: "branch-golden",
    framework: "connect",
    platform: "golden-platform",
    sdk_version: `v${SDK_VERSION}`,
    sdk_language: "typescript",
    // 2026-12-03T10:20:30.456Z; JS keeps Timestamps as Date, so nanos are whole milliseconds.
    started_at: { seconds: "1796293230", nanos: 456000000 },
    max_worker_concurrency: "8589934593",
  },
  GATEWAY_CONNECTION_READY: { heartbeat_interval: "10s", extend_lease_interval: "30s", status_interval: "1m0s" },
  GATEWAY_EXECUTOR_REQUEST: {
    request_id: IDS.request,
    account_id: IDS.account,
    env_id: IDS.env,
    app_id: IDS.app,
    app_name: APP,
    function_id: IDS.fn,
    function_slug: SLUG,
    step_id: "step",
    request_payload: jsonBytesHex({
      event: { name: "golden/hello", data: { greeting: "héllo wörld ✓" }, id: "evt-1", ts: 1796293230000, user: {} },
      events: [
        { name: "golden/hello", data: { greeting: "héllo wörld ✓" }, id: "evt-1", ts: 1796293230000, user: {} },
        { name: "golden/hello", data: { n: 2 }, id: "evt-2", ts: 1796293231000, user: {} },
      ],
      steps: {},
      ctx: {
        fn_id: IDS.fn,
        run_id: IDS.run,
        env: "",
        step_id: "step",
        attempt: 0,
        max_attempts: 4,
        stack: { stack: [], current: 0 },
        request_id: IDS.request,
        disable_immediate_execution: false,
        use_api: false,
      },
      version: -1,
      use_api: false,
    }),
    system_trace_ctx: SYS_TRACE,
    user_trace_ctx: USER_TRACE,
    run_id: IDS.run,
    lease_id: IDS.lease,
    job_id: "golden-job-0001",
  },
  WORKER_REQUEST_ACK: {
    request_id: IDS.request,
    account_id: IDS.account,
    env_id: IDS.env,
    app_id: IDS.app,
    function_slug: SLUG,
    step_id: "step",
    system_trace_ctx: SYS_TRACE,
    user_trace_ctx: USER_TRACE,
    run_id: IDS.run,
  },
  WORKER_REPLY: {
    request_id: IDS.request,
    account_id: IDS.account,
    env_id: IDS.env,
    app_id: IDS.app,
    status: 2,
    body: jsonBytesHex({
      name: "Error",
      message: "golden failure: ünïcödé ✗ and a long enough message to need a two-byte length prefix",
      stack: "Error: golden failure\n    at golden (golden.mjs:1:1)",
    }),
    no_retry: true,
    retry_after: "30",
    sdk_version: `inngest-js:v${SDK_VERSION}`,
    request_version: 2,
    system_trace_ctx: SYS_TRACE,
    user_trace_ctx: USER_TRACE,
    run_id: IDS.run,
  },
  WORKER_REPLY_ACK: { request_id: IDS.request },
  WORKER_REQUEST_EXTEND_LEASE: {
    request_id: IDS.request,
    account_id: IDS.account,
    env_id: IDS.env,
    app_id: IDS.app,
    function_slug: SLUG,
    step_id: "step",
    system_trace_ctx: SYS_TRACE,
    user_trace_ctx: USER_TRACE,
    run_id: IDS.run,
    lease_id: IDS.lease,
  },
  WORKER_REQUEST_EXTEND_LEASE_ACK: {
    request_id: IDS.request,
    account_id: IDS.account,
    env_id: IDS.env,
    app_id: IDS.app,
    function_slug: SLUG,
    new_lease_id: IDS.newLease,
  },
  SYNC_FAILED: {
    code: "golden_sync_failed",
    data: "00fffe80c3287f0d0a",
    message: "sync failed: función inválida ✗",
  },
  WORKER_STATUS: {
    in_flight_request_ids: [IDS.request, "01JQ8ZG9K0M1N2P3Q4R5S6T7V8", "01JQ8ZH0M1N2P3Q4R5S6T7V8W9"],
    shutdown_requested: true,
  },
};

const binaryBody = (n) => hex(Uint8Array.from({ length: n }, (_, i) => (i * 31 + 7) & 0xff));

// [name, message, kind, payload_type, payload]
const INPUTS = [
  ...KIND_NAMES.map((k) => [k, "ConnectMessage", k, KIND_PAYLOAD[k], KIND_PAYLOAD[k] ? PAYLOADS[k] : null]),
  [
    "http.StartRequest",
    "StartRequest",
    null,
    "StartRequest",
    { exclude_gateways: ["gw-group-a", "gw-group-b"] },
  ],
  [
    "http.StartResponse",
    "StartResponse",
    null,
    "StartResponse",
    {
      connection_id: IDS.connection,
      gateway_endpoint: "ws://127.0.0.1:8289/v0/connect",
      gateway_group: "gw-dev",
      session_token: SESSION_TOKEN,
      sync_token: SYNC_TOKEN,
    },
  ],
  ["http.FlushResponse", "FlushResponse", null, "FlushResponse", { request_id: IDS.request }],
  ["http.flush_request.SDKResponse", "SDKResponse", null, "SDKResponse", PAYLOADS.WORKER_REPLY],
  ["http.StartRequest.empty", "StartRequest", null, "StartRequest", {}],
  ["edge.GATEWAY_HELLO.empty_frame", "ConnectMessage", "GATEWAY_HELLO", null, null],
  ["edge.WORKER_HEARTBEAT.no_payload", "ConnectMessage", "WORKER_HEARTBEAT", null, null],
  [
    "edge.WORKER_CONNECT.explicit_defaults",
    "ConnectMessage",
    "WORKER_CONNECT",
    "WorkerConnectRequestData",
    {
      connection_id: IDS.connection,
      instance_id: "golden-host-02",
      auth_data: {},
      capabilities: jsonBytesHex({ connect: "v1" }),
      apps: [{ app_name: APP, app_version: "", functions: jsonBytesHex([]), feature_observations: {} }],
      system_attributes: {},
      environment: "",
      platform: "",
      started_at: { seconds: "0", nanos: 0 },
      max_worker_concurrency: "0",
    },
  ],
  [
    "edge.WORKER_CONNECT.extreme_ints",
    "ConnectMessage",
    "WORKER_CONNECT",
    "WorkerConnectRequestData",
    {
      connection_id: IDS.connection,
      instance_id: "golden-host-03",
      capabilities: jsonBytesHex({ trust_probe: "v1", connect: "v1" }),
      apps: [
        { app_name: APP, functions: jsonBytesHex([fnConfig("hello-world", { event: "golden/hello" })]) },
        { app_name: "golden-app-empty-fo", feature_observations: { send_events: {} } },
      ],
      system_attributes: { cpu_cores: -1, mem_bytes: "9007199254740991", os: "darwin" },
      sdk_version: `v${SDK_VERSION}`,
      sdk_language: "typescript",
      // 2200-01-01T00:00:00.001Z: seconds above 2^32.
      started_at: { seconds: "7258118400", nanos: 1000000 },
      max_worker_concurrency: "-1",
    },
  ],
  [
    "edge.GATEWAY_CONNECTION_READY.gateway_defaults",
    "ConnectMessage",
    "GATEWAY_CONNECTION_READY",
    "GatewayConnectionReadyData",
    { heartbeat_interval: "10s", extend_lease_interval: "30s", status_interval: "0s" },
  ],
  [
    "edge.GATEWAY_EXECUTOR_REQUEST.no_step_id",
    "ConnectMessage",
    "GATEWAY_EXECUTOR_REQUEST",
    "GatewayExecutorRequestData",
    (({ step_id, job_id, ...rest }) => rest)(PAYLOADS.GATEWAY_EXECUTOR_REQUEST),
  ],
  [
    "edge.GATEWAY_EXECUTOR_REQUEST.empty_step_id",
    "ConnectMessage",
    "GATEWAY_EXECUTOR_REQUEST",
    "GatewayExecutorRequestData",
    { ...PAYLOADS.GATEWAY_EXECUTOR_REQUEST, step_id: "" },
  ],
  [
    "edge.WORKER_REQUEST_EXTEND_LEASE_ACK.nack",
    "ConnectMessage",
    "WORKER_REQUEST_EXTEND_LEASE_ACK",
    "WorkerRequestExtendLeaseAckData",
    (({ new_lease_id, ...rest }) => rest)(PAYLOADS.WORKER_REQUEST_EXTEND_LEASE_ACK),
  ],
  [
    "edge.WORKER_REPLY.not_completed",
    "ConnectMessage",
    "WORKER_REPLY",
    "SDKResponse",
    {
      request_id: IDS.request,
      account_id: IDS.account,
      env_id: IDS.env,
      app_id: IDS.app,
      status: 0,
      body: jsonBytesHex([{ op: "StepRun", id: "a9993e364706816aba3e25717850c26c9cd0d89d", name: "say-hi", data: "hi" }]),
      sdk_version: `inngest-js:v${SDK_VERSION}`,
      request_version: 2,
      system_trace_ctx: SYS_TRACE,
      user_trace_ctx: USER_TRACE,
      run_id: IDS.run,
    },
  ],
  [
    "edge.WORKER_REPLY.binary_body_3_byte_length",
    "ConnectMessage",
    "WORKER_REPLY",
    "SDKResponse",
    { request_id: IDS.request, status: 1, body: binaryBody(20000), system_trace_ctx: SYS_TRACE },
  ],
  ["edge.WORKER_REPLY_ACK.empty_payload", "ConnectMessage", "WORKER_REPLY_ACK", "WorkerReplyAckData", {}],
  ["edge.WORKER_STATUS.empty_payload", "ConnectMessage", "WORKER_STATUS", "WorkerStatusData", {}],
  [
    "edge.WORKER_STATUS.empty_string_entry",
    "ConnectMessage",
    "WORKER_STATUS",
    "WorkerStatusData",
    { in_flight_request_ids: [IDS.request, "", "x"] },
  ],
  [
    "edge.SYNC_FAILED.no_data",
    "ConnectMessage",
    "SYNC_FAILED",
    "SystemError",
    { code: "golden_sync_failed", message: "plain message" },
  ],
  [
    "edge.SYNC_FAILED.empty_data",
    "ConnectMessage",
    "SYNC_FAILED",
    "SystemError",
    { code: "golden_sync_failed", data: "", message: "" },
  ],
];

// ---------------------------------------------------------------------------------------------
// generate
// ---------------------------------------------------------------------------------------------

function buildVectors() {
  const seen = new Set();
  return INPUTS.map(([name, message, kind, payloadType, payload]) => {
    if (seen.has(name)) throw new Error(`duplicate vector name ${name}`);
    seen.add(name);
    let bytes;
    let canon = null;
    if (payloadType) canon = canonMessage(payloadType, payload, `${name}.payload`);
    if (message === "ConnectMessage") {
      const inner = payloadType ? encodeMessage(payloadType, canon) : new Uint8Array(0);
      bytes = pb.ConnectMessage.encode(pb.ConnectMessage.fromPartial({ kind: GMT[kind], payload: inner })).finish();
    } else {
      bytes = encodeMessage(message, canon);
    }
    const v = { name, message, kind, hex: hex(bytes), payload_type: payloadType, payload: canon };
    // Round-trip through the SDK decoder: the JSON must say exactly what the bytes say.
    const problems = checkEntry(v);
    if (problems.length) throw new Error(`vector ${name} does not round-trip:\n  ${problems.join("\n  ")}`);
    if (payloadType) v.payload = decodedPayloadOf(v);
    return v;
  });
}

function decodedPayloadOf(v) {
  const bytes = fromHex(v.hex, "hex");
  if (v.message !== "ConnectMessage") return decodePlain(v.message, bytes);
  return decodePlain(v.payload_type, pb.ConnectMessage.decode(bytes).payload);
}

// ---------------------------------------------------------------------------------------------
// check
// ---------------------------------------------------------------------------------------------

const ENTRY_KEYS = ["name", "message", "kind", "hex", "payload_type", "payload"];

// Returns a list of mismatch descriptions (empty = entry matches).
function checkEntry(e, warnings = []) {
  const name = typeof e?.name === "string" ? e.name : "<unnamed>";
  try {
    if (!isObj(e)) throw new Mismatch("entry is not an object");
    for (const k of ENTRY_KEYS) if (!(k in e)) throw new Mismatch(`missing key "${k}"`);
    for (const k of Object.keys(e)) if (!ENTRY_KEYS.includes(k)) warnings.push(`${name}: unknown key "${k}" ignored`);
    const bytes = fromHex(e.hex, `${name}.hex`);
    const problems = [];
    let payloadBytes;
    let payloadType;
    if (e.message === "ConnectMessage") {
      if (!(e.kind in KIND_PAYLOAD)) throw new Mismatch(`kind ${JSON.stringify(e.kind)} is not a GatewayMessageType name`);
      const expectedType = KIND_PAYLOAD[e.kind];
      if (e.payload_type !== expectedType) {
        throw new Mismatch(`payload_type ${JSON.stringify(e.payload_type)} but ${e.kind} carries ${JSON.stringify(expectedType)}`);
      }
      let cm;
      try {
        cm = pb.ConnectMessage.decode(bytes);
      } catch (err) {
        throw new Mismatch(`ConnectMessage does not decode: ${err.message}`);
      }
      const gotKind = pb.gatewayMessageTypeToJSON(cm.kind);
      if (cm.kind !== GMT[e.kind]) problems.push(`kind: expected ${e.kind} (${GMT[e.kind]}), decoded ${gotKind} (${cm.kind})`);
      const reenc = hex(pb.ConnectMessage.encode(cm).finish());
      if (reenc !== e.hex) warnings.push(`${name}: JS re-encodes the ConnectMessage envelope as ${reenc.slice(0, 80)}…`);
      if (expectedType === null) {
        if (e.payload !== null) problems.push(`payload: ${e.kind} has no payload message, expected null`);
        if (cm.payload.length) problems.push(`payload: ${e.kind} should carry no payload bytes, decoded ${hex(cm.payload)}`);
        return problems;
      }
      payloadBytes = cm.payload;
      payloadType = expectedType;
    } else {
      if (!HTTP_BODIES.includes(e.message) && !(e.message in CODECS)) {
        throw new Mismatch(`unknown message type ${JSON.stringify(e.message)}`);
      }
      if (e.kind !== null) throw new Mismatch(`kind must be null for a bare ${e.message}`);
      if (e.payload_type !== e.message) throw new Mismatch(`payload_type must equal message (${e.message}) for a bare message`);
      payloadBytes = bytes;
      payloadType = e.message;
    }
    const expected = canonMessage(payloadType, e.payload, "payload");
    let actual;
    try {
      actual = decodePlain(payloadType, payloadBytes);
    } catch (err) {
      throw new Mismatch(`${payloadType} does not decode with the JS code: ${err.message}`);
    }
    if (expected.started_at && expected.started_at.nanos % 1e6 !== 0) {
      warnings.push(`${name}: started_at has sub-millisecond nanos; the JS SDK only keeps milliseconds`);
    }
    problems.push(...diff(expected, actual, "payload"));
    if (!problems.length) {
      const reenc = hex(encodeMessage(payloadType, actual));
      if (reenc !== hex(payloadBytes)) {
        warnings.push(`${name}: bytes differ from the JS encoding of the same ${payloadType} (JS: ${reenc.slice(0, 80)}…)`);
      }
    }
    return problems;
  } catch (err) {
    if (err instanceof Mismatch) return [err.message];
    throw err;
  }
}

function runCheck(file, strictBytes) {
  let entries;
  try {
    entries = JSON.parse(readFileSync(file, "utf8"));
  } catch (err) {
    console.error(`cannot read ${file}: ${err.message}`);
    process.exit(1);
  }
  if (!Array.isArray(entries)) {
    console.error(`${file}: expected a JSON array of vectors`);
    process.exit(1);
  }
  let failed = 0;
  const warnings = [];
  const names = new Set();
  for (const e of entries) {
    const w = [];
    const problems = checkEntry(e, w);
    if (names.has(e?.name)) problems.push(`duplicate entry name`);
    names.add(e?.name);
    const byteWarnings = w.filter((x) => x.includes("encod"));
    if (strictBytes) problems.push(...byteWarnings);
    warnings.push(...(strictBytes ? w.filter((x) => !byteWarnings.includes(x)) : w));
    if (problems.length) {
      failed++;
      console.error(`MISMATCH ${e?.name ?? "<unnamed>"}:\n  ${problems.join("\n  ")}`);
    }
  }
  for (const w of warnings) console.error(`warning: ${w}`);
  if (entries.length === 0) {
    console.error(`${file}: no entries`);
    process.exit(1);
  }
  console.log(`golden check (inngest@${SDK_VERSION}) ${file}: ${entries.length - failed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}

// ---------------------------------------------------------------------------------------------
// main
// ---------------------------------------------------------------------------------------------

function main(argv) {
  checkSchemaAgainstSdk();
  const opt = (flag) => {
    const i = argv.indexOf(flag);
    if (i < 0) return undefined;
    if (!argv[i + 1] || argv[i + 1].startsWith("--")) {
      console.error(`${flag} needs a file argument`);
      process.exit(2);
    }
    return argv[i + 1];
  };
  const known = new Set(["--check", "--out", "--verify", "--strict-bytes"]);
  for (let i = 0; i < argv.length; i++) {
    if (!known.has(argv[i])) {
      console.error(`unknown argument ${argv[i]}\nusage: node tests/js/golden.mjs [--out FILE | --verify | --check FILE [--strict-bytes]]`);
      process.exit(2);
    }
    if (argv[i] === "--check" || argv[i] === "--out") i++;
  }
  const checkFile = opt("--check");
  if (checkFile) return runCheck(checkFile, argv.includes("--strict-bytes"));

  const text = JSON.stringify(buildVectors(), null, 2) + "\n";
  if (argv.includes("--verify")) {
    let current = "";
    try {
      current = readFileSync(DEFAULT_OUT, "utf8");
    } catch {}
    if (current !== text) {
      console.error(`${DEFAULT_OUT} is stale: run node tests/js/golden.mjs and commit the result`);
      process.exit(1);
    }
    console.log(`${DEFAULT_OUT} is up to date (inngest@${SDK_VERSION})`);
    return;
  }
  const out = opt("--out") ?? DEFAULT_OUT;
  writeFileSync(out, text);
  console.log(`wrote ${INPUTS.length} vectors from inngest@${SDK_VERSION} to ${out}`);
}

main(process.argv.slice(2));
