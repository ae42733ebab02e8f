//! Outgoing frames on the request path, written straight from borrowed fields.
//!
//! `Message::encode` needs owned prost structs, which would mean cloning seven
//! strings per ACK, per extension and per reply. These writers produce the
//! same bytes (the tests decode them back with [`Message::decode`]) with one
//! allocation per frame: the frame itself.
//!
//! [`Message::decode`]: crate::wire::Message::decode

use std::borrow::Borrow;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use prost::encoding::{WireType, encode_key, encode_varint, encoded_len_varint, key_len};
use ulid::Ulid;

use crate::wire::{GatewayExecutorRequestData, GatewayMessageType as K};

use super::events::Reply;

/// The request fields echoed in ACK, extend and reply, kept in one string.
#[derive(Debug)]
pub(crate) struct Echo {
    /// request_id, account_id, env_id, app_id, function_slug, step_id, run_id, concatenated.
    text: Box<str>,
    ends: [u32; 7],
    has_step: bool,
    system_trace_ctx: Bytes,
    user_trace_ctx: Bytes,
}

const REQUEST_ID: usize = 0;
const ACCOUNT_ID: usize = 1;
const ENV_ID: usize = 2;
const APP_ID: usize = 3;
const FUNCTION_SLUG: usize = 4;
const STEP_ID: usize = 5;
const RUN_ID: usize = 6;

impl Echo {
    fn field(&self, i: usize) -> &str {
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        &self.text[start..self.ends[i] as usize]
    }
    pub(crate) fn request_id(&self) -> &str {
        self.field(REQUEST_ID)
    }
    fn step_id(&self) -> Option<&str> {
        self.has_step.then(|| self.field(STEP_ID))
    }
}

/// A request's identity: the map key of the in-flight table. Hashes and
/// compares as its request id, so the table can be searched with a `&str`.
/// Cloning is a reference-count increment.
#[derive(Clone, Debug)]
pub(crate) struct ReqKey(Arc<Echo>);

impl ReqKey {
    pub(crate) fn new(req: &GatewayExecutorRequestData) -> ReqKey {
        let step = req.step_id.as_deref();
        let parts = [
            req.request_id.as_str(),
            &req.account_id,
            &req.env_id,
            &req.app_id,
            &req.function_slug,
            step.unwrap_or(""),
            &req.run_id,
        ];
        let mut text = String::with_capacity(parts.iter().map(|p| p.len()).sum());
        let mut ends = [0u32; 7];
        for (i, part) in parts.iter().enumerate() {
            text.push_str(part);
            ends[i] = u32::try_from(text.len()).unwrap_or(u32::MAX);
        }
        ReqKey(Arc::new(Echo {
            text: text.into_boxed_str(),
            ends,
            has_step: step.is_some(),
            system_trace_ctx: req.system_trace_ctx.clone(),
            user_trace_ctx: req.user_trace_ctx.clone(),
        }))
    }

    pub(crate) fn id(&self) -> &str {
        self.0.request_id()
    }

    pub(crate) fn echo(&self) -> &Echo {
        &self.0
    }
}

impl PartialEq for ReqKey {
    fn eq(&self, other: &Self) -> bool {
        self.id() == other.id()
    }
}
impl Eq for ReqKey {}
impl Hash for ReqKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.id().hash(state)
    }
}
impl Borrow<str> for ReqKey {
    fn borrow(&self) -> &str {
        self.id()
    }
}

/// A lease id. Inngest's are ULIDs whose timestamp is the expiry; anything
/// else is kept verbatim (and the gateway will reject it, not us).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum LeaseId {
    Ulid(Ulid),
    Raw(Box<str>),
}

impl LeaseId {
    pub(crate) fn parse(s: &str) -> LeaseId {
        match Ulid::from_string(s) {
            Ok(u) => LeaseId::Ulid(u),
            Err(_) => LeaseId::Raw(s.into()),
        }
    }
    /// The expiry encoded in a ULID lease id, in Unix milliseconds.
    pub(crate) fn expiry_ms(&self) -> Option<u64> {
        match self {
            LeaseId::Ulid(u) => Some(u.timestamp_ms()),
            LeaseId::Raw(_) => None,
        }
    }
    /// True if `self` is strictly older than `other` (only ULIDs are comparable).
    pub(crate) fn older_than(&self, other: &LeaseId) -> bool {
        matches!((self, other), (LeaseId::Ulid(a), LeaseId::Ulid(b)) if a < b)
    }
    fn with_str<R>(&self, f: impl FnOnce(&str) -> R) -> R {
        match self {
            LeaseId::Ulid(u) => {
                let mut buf = [0u8; ulid::ULID_LEN];
                f(u.array_to_str(&mut buf))
            }
            LeaseId::Raw(s) => f(s),
        }
    }
}

impl std::fmt::Display for LeaseId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.with_str(|s| f.write_str(s))
    }
}

/// A protobuf field writer that either counts or writes, so that one
/// function describes a message for both passes.
struct Enc<'a> {
    buf: Option<&'a mut BytesMut>,
    len: usize,
}

impl Enc<'_> {
    /// A proto3 `bytes`/`string` field: skipped when empty.
    fn bytes(&mut self, tag: u32, v: &[u8]) {
        if !v.is_empty() {
            self.always_bytes(tag, v);
        }
    }
    /// An `optional` field that is present: written even when empty.
    fn always_bytes(&mut self, tag: u32, v: &[u8]) {
        self.len += key_len(tag) + encoded_len_varint(v.len() as u64) + v.len();
        if let Some(buf) = self.buf.as_deref_mut() {
            encode_key(tag, WireType::LengthDelimited, buf);
            encode_varint(v.len() as u64, buf);
            buf.put_slice(v);
        }
    }
    fn varint(&mut self, tag: u32, v: u64) {
        if v != 0 {
            self.len += key_len(tag) + encoded_len_varint(v);
            if let Some(buf) = self.buf.as_deref_mut() {
                encode_key(tag, WireType::Varint, buf);
                encode_varint(v, buf);
            }
        }
    }
}

/// An encoded frame and where its payload starts (the flush body is the payload).
pub(crate) struct Frame {
    pub(crate) bytes: Bytes,
    pub(crate) payload_at: usize,
}

/// Write one `ConnectMessage{kind, payload}`; `Err(len)` if it would exceed `max`.
fn frame(kind: K, max: usize, fields: impl Fn(&mut Enc<'_>)) -> Result<Frame, usize> {
    let mut count = Enc { buf: None, len: 0 };
    fields(&mut count);
    let payload_len = count.len;
    let kind = kind as i32 as u64;
    let mut head = 0;
    if kind != 0 {
        head += key_len(1) + encoded_len_varint(kind);
    }
    if payload_len != 0 {
        head += key_len(2) + encoded_len_varint(payload_len as u64);
    }
    let total = head + payload_len;
    if total > max {
        return Err(total);
    }
    let mut buf = BytesMut::with_capacity(total);
    if kind != 0 {
        encode_key(1, WireType::Varint, &mut buf);
        encode_varint(kind, &mut buf);
    }
    if payload_len != 0 {
        encode_key(2, WireType::LengthDelimited, &mut buf);
        encode_varint(payload_len as u64, &mut buf);
        fields(&mut Enc { buf: Some(&mut buf), len: 0 });
    }
    debug_assert_eq!(buf.len(), total);
    Ok(Frame { bytes: buf.freeze(), payload_at: head })
}

/// The fields ACK and extend share (tags 1..=9 in both messages).
fn common(e: &Echo, enc: &mut Enc<'_>) {
    enc.bytes(1, e.field(REQUEST_ID).as_bytes());
    enc.bytes(2, e.field(ACCOUNT_ID).as_bytes());
    enc.bytes(3, e.field(ENV_ID).as_bytes());
    enc.bytes(4, e.field(APP_ID).as_bytes());
    enc.bytes(5, e.field(FUNCTION_SLUG).as_bytes());
    if let Some(step) = e.step_id() {
        enc.always_bytes(6, step.as_bytes());
    }
    enc.bytes(7, &e.system_trace_ctx);
    enc.bytes(8, &e.user_trace_ctx);
    enc.bytes(9, e.field(RUN_ID).as_bytes());
}

/// WORKER_REQUEST_ACK. Small and bounded by the request we received, so no limit check.
pub(crate) fn ack(e: &Echo) -> Bytes {
    frame(K::WorkerRequestAck, usize::MAX, |enc| common(e, enc)).map(|f| f.bytes).unwrap_or_default()
}

/// WORKER_REQUEST_EXTEND_LEASE with the given (newest) lease id.
pub(crate) fn extend(e: &Echo, lease: &LeaseId) -> Bytes {
    lease
        .with_str(|lease| {
            frame(K::WorkerRequestExtendLease, usize::MAX, |enc| {
                common(e, enc);
                enc.bytes(10, lease.as_bytes());
            })
        })
        .map(|f| f.bytes)
        .unwrap_or_default()
}

/// WORKER_REPLY carrying the app's reply; `Err(len)` when over `max`.
pub(crate) fn reply(e: &Echo, r: &Reply, sdk_version: &str, max: usize) -> Result<Frame, usize> {
    frame(K::WorkerReply, max, |enc| {
        enc.bytes(1, e.field(REQUEST_ID).as_bytes());
        enc.bytes(2, e.field(ACCOUNT_ID).as_bytes());
        enc.bytes(3, e.field(ENV_ID).as_bytes());
        enc.bytes(4, e.field(APP_ID).as_bytes());
        enc.varint(5, r.status as i32 as u64);
        enc.bytes(6, &r.body);
        enc.varint(7, u64::from(r.no_retry));
        if let Some(after) = &r.retry_after {
            enc.always_bytes(8, after.as_bytes());
        }
        enc.bytes(9, sdk_version.as_bytes());
        enc.varint(10, u64::from(r.request_version));
        enc.bytes(11, &e.system_trace_ctx);
        enc.bytes(12, &e.user_trace_ctx);
        enc.bytes(13, e.field(RUN_ID).as_bytes());
    })
}

pub(crate) const HEARTBEAT: Bytes = Bytes::from_static(&[0x08, K::WorkerHeartbeat as u8]);
pub(crate) const PAUSE: Bytes = Bytes::from_static(&[0x08, K::WorkerPause as u8]);
pub(crate) const READY: Bytes = Bytes::from_static(&[0x08, K::WorkerReady as u8]);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Limits, Message, SdkResponse, WorkerRequestAckData, WorkerRequestExtendLeaseData};

    fn request(step: Option<&str>) -> GatewayExecutorRequestData {
        GatewayExecutorRequestData {
            request_id: "req-1".into(),
            account_id: "acct".into(),
            env_id: "env".into(),
            app_id: "app".into(),
            app_name: "my-app".into(),
            function_id: "fn-uuid".into(),
            function_slug: "my-app-hello".into(),
            step_id: step.map(Into::into),
            request_payload: Bytes::from_static(b"{}"),
            system_trace_ctx: Bytes::from_static(b"{\"traceparent\":\"00-1\"}"),
            user_trace_ctx: Bytes::from_static(b"{}"),
            run_id: "run".into(),
            lease_id: "01J0000000000000000000000Z".into(),
            job_id: String::new(),
        }
    }

    #[test]
    fn ack_and_extend_decode_to_the_prost_messages() {
        for step in [None, Some(""), Some("step")] {
            let req = request(step);
            let key = ReqKey::new(&req);
            let want_ack = WorkerRequestAckData {
                request_id: req.request_id.clone(),
                account_id: req.account_id.clone(),
                env_id: req.env_id.clone(),
                app_id: req.app_id.clone(),
                function_slug: req.function_slug.clone(),
                step_id: req.step_id.clone(),
                system_trace_ctx: req.system_trace_ctx.clone(),
                user_trace_ctx: req.user_trace_ctx.clone(),
                run_id: req.run_id.clone(),
            };
            let got = Message::decode(ack(key.echo()), &Limits::default()).expect("decodes");
            assert_eq!(got, Message::WorkerRequestAck(Box::new(want_ack.clone())));
            let bytes =
                Message::WorkerRequestAck(Box::new(want_ack)).encode(&Limits::default()).expect("enc");
            assert_eq!(bytes, ack(key.echo()), "byte-identical to prost");

            let lease = LeaseId::parse(&req.lease_id);
            let got = Message::decode(extend(key.echo(), &lease), &Limits::default()).expect("decodes");
            let Message::WorkerRequestExtendLease(got) = got else { panic!("kind") };
            assert_eq!(
                *got,
                WorkerRequestExtendLeaseData {
                    request_id: req.request_id.clone(),
                    account_id: req.account_id.clone(),
                    env_id: req.env_id.clone(),
                    app_id: req.app_id.clone(),
                    function_slug: req.function_slug.clone(),
                    step_id: req.step_id.clone(),
                    system_trace_ctx: req.system_trace_ctx.clone(),
                    user_trace_ctx: req.user_trace_ctx.clone(),
                    run_id: req.run_id.clone(),
                    lease_id: req.lease_id.clone(),
                }
            );
        }
    }

    #[test]
    fn reply_is_byte_identical_to_prost_and_its_payload_is_the_flush_body() {
        let req = request(Some("step"));
        let key = ReqKey::new(&req);
        let r = Reply::error(Bytes::from_static(b"{\"name\":\"E\"}"), true).with_retry_after("");
        let f = reply(key.echo(), &r, "rust:v0.1.0", usize::MAX).expect("fits");
        let want = SdkResponse {
            request_id: "req-1".into(),
            account_id: "acct".into(),
            env_id: "env".into(),
            app_id: "app".into(),
            status: r.status as i32,
            body: r.body.clone(),
            no_retry: true,
            retry_after: Some(String::new()),
            sdk_version: "rust:v0.1.0".into(),
            request_version: 2,
            system_trace_ctx: req.system_trace_ctx.clone(),
            user_trace_ctx: req.user_trace_ctx.clone(),
            run_id: "run".into(),
        };
        let prost_bytes =
            Message::WorkerReply(Box::new(want.clone())).encode(&Limits::default()).expect("enc");
        assert_eq!(f.bytes, prost_bytes);
        assert_eq!(&f.bytes[f.payload_at..], &crate::wire::encode_body(&want)[..]);
        assert_eq!(reply(key.echo(), &r, "x", 10).err(), Some(f.bytes.len() - "rust:v0.1.0".len() + 1));
    }

    #[test]
    fn lease_ids_order_by_time_and_print_back() {
        let a = LeaseId::parse(&Ulid::from_parts(1_000, 5).to_string());
        let b = LeaseId::parse(&Ulid::from_parts(2_000, 1).to_string());
        assert!(a.older_than(&b) && !b.older_than(&a));
        assert_eq!(a.expiry_ms(), Some(1_000));
        assert_eq!(LeaseId::parse("not-a-ulid").to_string(), "not-a-ulid");
        assert_eq!(a.to_string(), Ulid::from_parts(1_000, 5).to_string());
    }
}
