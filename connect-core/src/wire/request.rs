//! GATEWAY_EXECUTOR_REQUEST as the worker reads it: [`ExecutorRequest`].
//!
//! The prost struct [`GatewayExecutorRequestData`] owns a `String` per field,
//! so decoding one costs a box and eleven allocations. The worker reads the
//! same bytes in place instead: the string fields are checked for UTF-8 once
//! and copied, back to back, into one `Arc<str>` of a few hundred bytes, and
//! `request_payload` stays a slice of the frame. A decode is one allocation.
//! The worker machine keeps a clone of that text (a reference count) to write
//! the ACK, the lease extensions and the reply, and the request ids in its
//! events ([`RequestId`]) point into it too.
//!
//! The trace contexts are copied into the text as well (they are small, and
//! a settled request then does not keep its frame alive). They are `bytes` on
//! the wire; Inngest's are JSON, so UTF-8, but if one is not, both are kept as
//! separate copies instead and echoed unchanged all the same.
//!
//! This reader accepts exactly what prost's decoder accepts, with the same
//! result: whatever it is not sure about (a group, a known field with another
//! wire type, a string that is not UTF-8) is handed to prost, which either
//! decodes it (the result is then converted) or names the error. The tests
//! compare both decoders on the golden vectors and on mutated frames.

use std::borrow::Borrow;
use std::cell::RefCell;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;
use std::sync::Arc;

use bytes::{Buf, Bytes};
use prost::Message as _;

use super::scan::{self, Field};
use super::{Direction, GatewayExecutorRequestData, WireError};

/// The parts of a request's text, in the order they are stored. The fields
/// echoed in every ACK, extension and reply come first, so that writing
/// those frames reads as few cache lines as possible.
mod part {
    pub(crate) const REQUEST_ID: usize = 0;
    pub(crate) const ACCOUNT_ID: usize = 1;
    pub(crate) const ENV_ID: usize = 2;
    pub(crate) const APP_ID: usize = 3;
    pub(crate) const FUNCTION_SLUG: usize = 4;
    pub(crate) const STEP_ID: usize = 5;
    pub(crate) const RUN_ID: usize = 6;
    pub(crate) const SYSTEM_TRACE_CTX: usize = 7;
    pub(crate) const USER_TRACE_CTX: usize = 8;
    pub(crate) const APP_NAME: usize = 9;
    pub(crate) const FUNCTION_ID: usize = 10;
    pub(crate) const LEASE_ID: usize = 11;
    pub(crate) const JOB_ID: usize = 12;
    pub(crate) const COUNT: usize = 13;
}

/// `GatewayExecutorRequestData` field numbers, with the part each is stored
/// as: every field but `request_payload` (9).
const FIELDS: [(usize, usize); 13] = [
    (1, part::REQUEST_ID),
    (2, part::ACCOUNT_ID),
    (3, part::ENV_ID),
    (4, part::APP_ID),
    (5, part::APP_NAME),
    (6, part::FUNCTION_ID),
    (7, part::FUNCTION_SLUG),
    (8, part::STEP_ID),
    (10, part::SYSTEM_TRACE_CTX),
    (11, part::USER_TRACE_CTX),
    (12, part::RUN_ID),
    (13, part::LEASE_ID),
    (14, part::JOB_ID),
];
const TAG_STEP_ID: usize = 8;
const TAG_REQUEST_PAYLOAD: usize = 9;
const LAST_TAG: u32 = 14;

const KIND: &str = "GATEWAY_EXECUTOR_REQUEST";

/// A GATEWAY_EXECUTOR_REQUEST payload, decoded with one allocation: what
/// [`Event::Invocation`](crate::worker::Event::Invocation) hands to the app.
///
/// The fields are those of [`GatewayExecutorRequestData`], read through
/// methods. `request_payload` shares the frame's memory; the strings share
/// one buffer, which cloning the request (or taking its [`RequestId`]) does
/// not copy. [`ExecutorRequest::to_data`] makes the owned prost struct.
#[derive(Clone)]
pub struct ExecutorRequest {
    text: RequestText,
    request_payload: Bytes,
}

/// The string fields (and trace contexts) of one request in one shared
/// allocation. Cloning is a reference count and an 80-byte copy.
#[derive(Clone)]
pub(crate) struct RequestText {
    text: Arc<str>,
    /// Where each part ends in `text`; part `i` starts where `i - 1` ends.
    ends: [u32; part::COUNT],
    /// `step_id` is an `optional` field: present, even if empty, or absent.
    has_step: bool,
    /// The trace contexts, when either is not UTF-8 (then both parts in `text` are empty).
    raw_traces: Option<Arc<[Bytes; 2]>>,
}

thread_local! {
    /// Reused to assemble a request's text before it becomes an `Arc<str>`
    /// (which is made from one `&str`), so that a decode allocates once.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Past this, the scratch buffer is given back rather than kept.
const SCRATCH_KEEP: usize = 64 * 1024;

impl RequestText {
    /// Copy the parts into one text. `None` if a string part is not UTF-8
    /// (trace contexts may be anything) or the whole is over 4 GiB.
    fn new(mut parts: [&[u8]; part::COUNT], has_step: bool) -> Option<Self> {
        let mut raw_traces = None;
        loop {
            let concat = SCRATCH.with_borrow_mut(|s| {
                let text = Self::concat(s, &parts);
                if s.capacity() > SCRATCH_KEEP {
                    *s = Vec::new();
                }
                text
            });
            if let Some((text, ends)) = concat {
                return Some(RequestText { text, ends, has_step, raw_traces });
            }
            if raw_traces.is_some() {
                return None; // a string part is not UTF-8
            }
            // Rare: something is not UTF-8. Unless it is only a trace context,
            // that is an error (prost's decoder names it).
            let traces = [part::SYSTEM_TRACE_CTX, part::USER_TRACE_CTX].map(|i| parts[i]);
            raw_traces = Some(Arc::new(traces.map(Bytes::copy_from_slice)));
            parts[part::SYSTEM_TRACE_CTX] = &[];
            parts[part::USER_TRACE_CTX] = &[];
        }
    }

    /// The parts back to back, checked as UTF-8 in one pass, and where each ends.
    fn concat(s: &mut Vec<u8>, parts: &[&[u8]; part::COUNT]) -> Option<(Arc<str>, [u32; part::COUNT])> {
        s.clear();
        let mut ends = [0u32; part::COUNT];
        for (end, p) in ends.iter_mut().zip(parts) {
            s.extend_from_slice(p);
            *end = u32::try_from(s.len()).ok()?;
        }
        // The whole is UTF-8 and every part ends on a character boundary:
        // exactly when every part is UTF-8 on its own.
        let text = std::str::from_utf8(s).ok()?;
        if !ends.iter().all(|&end| text.is_char_boundary(end as usize)) {
            return None;
        }
        Some((Arc::from(text), ends))
    }

    pub(crate) fn part(&self, i: usize) -> &str {
        let start = match i {
            0 => 0,
            _ => self.ends.get(i - 1).copied().unwrap_or(0),
        };
        let end = self.ends.get(i).copied().unwrap_or(0);
        self.text.get(start as usize..end as usize).unwrap_or_default()
    }

    pub(crate) fn request_id(&self) -> &str {
        self.part(part::REQUEST_ID)
    }

    pub(crate) fn step_id(&self) -> Option<&str> {
        self.has_step.then(|| self.part(part::STEP_ID))
    }

    pub(crate) fn system_trace_ctx(&self) -> &[u8] {
        match &self.raw_traces {
            Some(raw) => &raw[0],
            None => self.part(part::SYSTEM_TRACE_CTX).as_bytes(),
        }
    }

    pub(crate) fn user_trace_ctx(&self) -> &[u8] {
        match &self.raw_traces {
            Some(raw) => &raw[1],
            None => self.part(part::USER_TRACE_CTX).as_bytes(),
        }
    }

    /// The fields echoed in ACKs, extensions and replies, found in one go.
    pub(crate) fn echo(&self) -> Echo<'_> {
        let text = self.text.as_bytes();
        let mut parts: [&[u8]; part::RUN_ID + 1] = [&[]; part::RUN_ID + 1];
        let mut start = 0;
        for (p, &end) in parts.iter_mut().zip(&self.ends) {
            *p = text.get(start..end as usize).unwrap_or_default();
            start = end as usize;
        }
        let [request_id, account_id, env_id, app_id, function_slug, step_id, run_id] = parts;
        Echo {
            request_id,
            account_id,
            env_id,
            app_id,
            function_slug,
            step_id: self.has_step.then_some(step_id),
            run_id,
            system_trace_ctx: self.system_trace_ctx(),
            user_trace_ctx: self.user_trace_ctx(),
        }
    }

    /// The request id, sharing this text.
    pub(crate) fn id(&self) -> RequestId {
        RequestId { text: self.text.clone(), len: self.ends[part::REQUEST_ID] as usize }
    }
}

impl fmt::Debug for RequestText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("RequestText").field(&self.request_id()).finish()
    }
}

/// What the worker's frames echo of a request.
pub(crate) struct Echo<'a> {
    pub(crate) request_id: &'a [u8],
    pub(crate) account_id: &'a [u8],
    pub(crate) env_id: &'a [u8],
    pub(crate) app_id: &'a [u8],
    pub(crate) function_slug: &'a [u8],
    pub(crate) step_id: Option<&'a [u8]>,
    pub(crate) run_id: &'a [u8],
    pub(crate) system_trace_ctx: &'a [u8],
    pub(crate) user_trace_ctx: &'a [u8],
}

/// The fields of one request found in place: its parts, not yet checked
/// for UTF-8, and its payload.
struct Found<'a> {
    parts: [&'a [u8]; part::COUNT],
    has_step: bool,
    payload: Option<&'a [u8]>,
}

/// Read a GatewayExecutorRequestData in place. `None` for anything prost
/// should look at: malformed bytes, groups, wire type mismatches.
fn find(buf: &[u8]) -> Option<Found<'_>> {
    let mut by_tag: [Option<&[u8]>; LAST_TAG as usize + 1] = [None; LAST_TAG as usize + 1];
    scan::fields(buf, |tag, value| match (tag, value) {
        // Every field of this message is length-delimited; for a repeated
        // field the last one wins, as in prost.
        (1..=LAST_TAG, Field::Bytes(b)) => {
            by_tag[tag as usize] = Some(b);
            Some(())
        }
        (1..=LAST_TAG, _) => None,
        _ => Some(()),
    })?;
    let mut parts: [&[u8]; part::COUNT] = [&[]; part::COUNT];
    for (tag, i) in FIELDS {
        parts[i] = by_tag[tag].unwrap_or_default();
    }
    Some(Found { parts, has_step: by_tag[TAG_STEP_ID].is_some(), payload: by_tag[TAG_REQUEST_PAYLOAD] })
}

impl ExecutorRequest {
    /// Decode the payload of a GATEWAY_EXECUTOR_REQUEST frame (the
    /// `ConnectMessage.payload`). One allocation; `request_payload` is a
    /// slice of `payload`. Malformed input is an error, never a panic.
    pub fn decode(payload: Bytes) -> Result<ExecutorRequest, WireError> {
        let Some(found) = find(&payload) else {
            return ExecutorRequest::decode_with_prost(payload);
        };
        let Some(text) = RequestText::new(found.parts, found.has_step) else {
            return ExecutorRequest::decode_with_prost(payload);
        };
        let request_payload = match found.payload {
            Some(p) => {
                let at = scan::offset_in(&payload, p);
                let len = p.len();
                narrow(payload, at, len)
            }
            None => Bytes::new(),
        };
        Ok(ExecutorRequest { text, request_payload })
    }

    /// The reader in place alone: `None` where [`ExecutorRequest::decode`] would ask prost.
    #[cfg(test)]
    pub(crate) fn read_in_place(payload: &Bytes) -> Option<ExecutorRequest> {
        let found = find(payload)?;
        let text = RequestText::new(found.parts, found.has_step)?;
        let request_payload = found.payload.map(|p| payload.slice_ref(p)).unwrap_or_default();
        Some(ExecutorRequest { text, request_payload })
    }

    /// What the reader in place was unsure about: prost decodes it or names the error.
    fn decode_with_prost(payload: Bytes) -> Result<ExecutorRequest, WireError> {
        let data = GatewayExecutorRequestData::decode(payload)
            .map_err(|source| WireError::Payload { kind: KIND, source })?;
        ExecutorRequest::try_from(data)
    }

    /// Like [`ExecutorRequest::decode`] for a whole frame whose payload is
    /// at `at..at + len` (as the worker's frame reader found it), reusing
    /// the frame's handle instead of taking a second one.
    pub(crate) fn decode_in_frame(frame: Bytes, at: usize, len: usize) -> Result<ExecutorRequest, WireError> {
        ExecutorRequest::decode(narrow(frame, at, len))
    }

    pub fn request_id(&self) -> &str {
        self.text.request_id()
    }
    /// The request id as a cheap handle (it shares this request's memory).
    pub fn id(&self) -> RequestId {
        self.text.id()
    }
    pub fn account_id(&self) -> &str {
        self.text.part(part::ACCOUNT_ID)
    }
    pub fn env_id(&self) -> &str {
        self.text.part(part::ENV_ID)
    }
    /// The app's UUID.
    pub fn app_id(&self) -> &str {
        self.text.part(part::APP_ID)
    }
    /// The worker's `AppConfiguration.app_name`, set by the router.
    pub fn app_name(&self) -> &str {
        self.text.part(part::APP_NAME)
    }
    /// The function's UUID.
    pub fn function_id(&self) -> &str {
        self.text.part(part::FUNCTION_ID)
    }
    pub fn function_slug(&self) -> &str {
        self.text.part(part::FUNCTION_SLUG)
    }
    /// An `optional` field: `Some("")` and `None` differ on the wire.
    pub fn step_id(&self) -> Option<&str> {
        self.text.step_id()
    }
    /// JSON (`payload::RequestPayload`), shared with the frame buffer, not copied.
    pub fn request_payload(&self) -> &Bytes {
        &self.request_payload
    }
    /// JSON map, echoed byte for byte.
    pub fn system_trace_ctx(&self) -> &[u8] {
        self.text.system_trace_ctx()
    }
    /// JSON map, echoed byte for byte.
    pub fn user_trace_ctx(&self) -> &[u8] {
        self.text.user_trace_ctx()
    }
    /// A ULID.
    pub fn run_id(&self) -> &str {
        self.text.part(part::RUN_ID)
    }
    /// A ULID whose timestamp is the lease expiry.
    pub fn lease_id(&self) -> &str {
        self.text.part(part::LEASE_ID)
    }
    pub fn job_id(&self) -> &str {
        self.text.part(part::JOB_ID)
    }

    /// Take the payload out (the rest is dropped).
    pub fn into_payload(self) -> Bytes {
        self.request_payload
    }

    /// The owned prost struct with the same fields (copies every string).
    pub fn to_data(&self) -> GatewayExecutorRequestData {
        GatewayExecutorRequestData {
            request_id: self.request_id().to_owned(),
            account_id: self.account_id().to_owned(),
            env_id: self.env_id().to_owned(),
            app_id: self.app_id().to_owned(),
            app_name: self.app_name().to_owned(),
            function_id: self.function_id().to_owned(),
            function_slug: self.function_slug().to_owned(),
            step_id: self.step_id().map(str::to_owned),
            request_payload: self.request_payload.clone(),
            system_trace_ctx: Bytes::copy_from_slice(self.system_trace_ctx()),
            user_trace_ctx: Bytes::copy_from_slice(self.user_trace_ctx()),
            run_id: self.run_id().to_owned(),
            lease_id: self.lease_id().to_owned(),
            job_id: self.job_id().to_owned(),
        }
    }

    pub(crate) fn text(&self) -> &RequestText {
        &self.text
    }

    /// Every field, for comparing and printing.
    fn fields(&self) -> [(&'static str, &[u8]); part::COUNT + 1] {
        [
            ("request_id", self.request_id().as_bytes()),
            ("account_id", self.account_id().as_bytes()),
            ("env_id", self.env_id().as_bytes()),
            ("app_id", self.app_id().as_bytes()),
            ("app_name", self.app_name().as_bytes()),
            ("function_id", self.function_id().as_bytes()),
            ("function_slug", self.function_slug().as_bytes()),
            ("step_id", self.step_id().unwrap_or_default().as_bytes()),
            ("request_payload", &self.request_payload),
            ("system_trace_ctx", self.system_trace_ctx()),
            ("user_trace_ctx", self.user_trace_ctx()),
            ("run_id", self.run_id().as_bytes()),
            ("lease_id", self.lease_id().as_bytes()),
            ("job_id", self.job_id().as_bytes()),
        ]
    }
}

/// Narrow a buffer to `at..at + len` in place: no second handle, so no
/// reference-count traffic.
fn narrow(mut b: Bytes, at: usize, len: usize) -> Bytes {
    if at.checked_add(len).is_none_or(|end| end > b.len()) {
        return Bytes::new(); // not a slice of `b`: cannot happen for the callers' offsets
    }
    b.advance(at);
    b.truncate(len);
    b
}

impl ExecutorRequest {
    fn from_data(d: &GatewayExecutorRequestData, request_payload: Bytes) -> Result<Self, WireError> {
        let mut parts: [&[u8]; part::COUNT] = [&[]; part::COUNT];
        parts[part::REQUEST_ID] = d.request_id.as_bytes();
        parts[part::ACCOUNT_ID] = d.account_id.as_bytes();
        parts[part::ENV_ID] = d.env_id.as_bytes();
        parts[part::APP_ID] = d.app_id.as_bytes();
        parts[part::FUNCTION_SLUG] = d.function_slug.as_bytes();
        parts[part::STEP_ID] = d.step_id.as_deref().unwrap_or_default().as_bytes();
        parts[part::RUN_ID] = d.run_id.as_bytes();
        parts[part::SYSTEM_TRACE_CTX] = &d.system_trace_ctx;
        parts[part::USER_TRACE_CTX] = &d.user_trace_ctx;
        parts[part::APP_NAME] = d.app_name.as_bytes();
        parts[part::FUNCTION_ID] = d.function_id.as_bytes();
        parts[part::LEASE_ID] = d.lease_id.as_bytes();
        parts[part::JOB_ID] = d.job_id.as_bytes();
        // The strings are UTF-8 already: only the size can be refused.
        let Some(text) = RequestText::new(parts, d.step_id.is_some()) else {
            let len = parts.iter().map(|p| p.len()).sum();
            return Err(WireError::TooLarge { direction: Direction::Receive, len, limit: u32::MAX as usize });
        };
        Ok(ExecutorRequest { text, request_payload })
    }
}

/// The same request, its strings copied into one buffer; the payload is shared.
/// Fails only for string fields over 4 GiB in total.
impl TryFrom<&GatewayExecutorRequestData> for ExecutorRequest {
    type Error = WireError;
    fn try_from(d: &GatewayExecutorRequestData) -> Result<Self, WireError> {
        ExecutorRequest::from_data(d, d.request_payload.clone())
    }
}

impl TryFrom<GatewayExecutorRequestData> for ExecutorRequest {
    type Error = WireError;
    fn try_from(mut d: GatewayExecutorRequestData) -> Result<Self, WireError> {
        let payload = std::mem::take(&mut d.request_payload);
        ExecutorRequest::from_data(&d, payload)
    }
}

impl PartialEq for ExecutorRequest {
    fn eq(&self, other: &Self) -> bool {
        self.step_id().is_some() == other.step_id().is_some() && self.fields() == other.fields()
    }
}
impl Eq for ExecutorRequest {}

impl fmt::Debug for ExecutorRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = f.debug_struct("ExecutorRequest");
        for (name, value) in self.fields() {
            match (name, std::str::from_utf8(value)) {
                ("step_id", _) => s.field(name, &self.step_id()),
                ("request_payload", _) => s.field(name, &format_args!("{} bytes", value.len())),
                (_, Ok(text)) => s.field(name, &text),
                (_, Err(_)) => s.field(name, &format_args!("b\"{}\"", value.escape_ascii())),
            };
        }
        s.finish()
    }
}

/// A request id. Cloning it is a reference count: it shares the memory of
/// the request it came from. It reads as a `&str` (`Deref`), compares with
/// strings, and hashes like one, so a `HashMap<RequestId, _>` is searched
/// with a `&str`.
#[derive(Clone)]
pub struct RequestId {
    text: Arc<str>,
    len: usize,
}

impl RequestId {
    pub fn as_str(&self) -> &str {
        self.text.get(..self.len).unwrap_or_default()
    }
}

impl Deref for RequestId {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for RequestId {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl Borrow<str> for RequestId {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl From<&str> for RequestId {
    fn from(s: &str) -> Self {
        RequestId { text: Arc::from(s), len: s.len() }
    }
}

impl From<String> for RequestId {
    fn from(s: String) -> Self {
        RequestId::from(s.as_str())
    }
}

impl From<RequestId> for String {
    fn from(id: RequestId) -> Self {
        id.as_str().to_owned()
    }
}

impl PartialEq for RequestId {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}
impl Eq for RequestId {}

impl PartialOrd for RequestId {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for RequestId {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl Hash for RequestId {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state)
    }
}

macro_rules! eq_str {
    ($($t:ty),*) => {$(
        impl PartialEq<$t> for RequestId {
            fn eq(&self, other: &$t) -> bool {
                self.as_str() == AsRef::<str>::as_ref(other)
            }
        }
        impl PartialEq<RequestId> for $t {
            fn eq(&self, other: &RequestId) -> bool {
                AsRef::<str>::as_ref(self) == other.as_str()
            }
        }
    )*};
}
eq_str!(str, &str, String);

impl fmt::Debug for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
