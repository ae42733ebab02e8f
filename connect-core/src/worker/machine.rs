//! The worker machine: every state transition is in this file.
//!
//! # Theory of operation
//!
//! The machine holds at most two live connections: `primary`, the one being
//! built or in use, and `draining`, one the gateway asked us to leave
//! (GATEWAY_CLOSING) that still carries replies and lease extensions until
//! the replacement is ACTIVE or [`Timeouts::drain_replacement`] passes. Each
//! start attempt is a new [`ConnId`]; a connection that leaves both slots is
//! retired for good and anything naming it is ignored.
//!
//! A primary connection goes through these phases, each with a deadline:
//!
//! | phase       | waiting for                      | deadline (`Timer`) | on failure        |
//! |-------------|----------------------------------|--------------------|-------------------|
//! | Starting    | HTTP start response              | `StartCall`        | backoff, retry    |
//! | Dialing     | `handle_connected`               | `WsConnect`        | backoff, retry    |
//! | AwaitHello  | GATEWAY_HELLO                    | `Hello`            | backoff, retry    |
//! | AwaitReady  | GATEWAY_CONNECTION_READY         | `Ready`            | backoff, retry    |
//! | Active      | GATEWAY_HEARTBEAT per heartbeat  | `Heartbeat`        | reconnect         |
//!
//! The requests (in flight, replied, finished) live in `requests.rs`, outside
//! any connection: ACKs go on the delivering connection, extensions and
//! replies on the writable one (primary if ACTIVE, else the draining one), or
//! nowhere when there is none (an extension waits for its next tick, a reply
//! for its ack deadline, after which it is flushed over HTTP).
//!
//! # When the machine gives up
//!
//! It reconnects forever, with capped exponential backoff and full jitter
//! (the start call included), after any close it did not ask for (a clean
//! 1000 too), a socket error, a missed heartbeat limit or a failed handshake.
//! Only errors that a retry cannot fix become [`Event::Fatal`], after which
//! the machine closes:
//! - the start call answered 401/403 with the primary key and then the
//!   fallback key (or with the only key, or without any key in dev mode).
//!   Inngest's JS SDK toggles keys forever, Go gives up after the fallback;
//!   a key does not start working by itself, so we follow Go.
//! - SYNC_FAILED: the gateway's `/fn/register` rejected the app's function
//!   config; every reconnect would resend the same config. (No Inngest SDK
//!   special-cases it; they loop on "expected READY".)
//! - a close 1008 `connect_too_many_apps_per_connection` or
//!   `connect_worker_hello_invalid_payload`: the config itself is refused.
//!
//! Everything else heals or may heal: 429 (a connection slot frees up; Go
//! makes it fatal on the first connect, we retry), 5xx, garbage bodies,
//! `connect_authentication_failed` (a new start call brings a new session
//! token), `connect_gateway_closing`, `connect_internal_error`, 1007, 1009.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;
use ulid::Ulid;

use crate::auth::SigningKey;
use crate::backoff::Backoff;
use crate::payload::ErrorBody;
use crate::wire::{ExecutorRequest, Message, RequestId};

#[allow(unused_imports)] // named in the docs
use super::config::Timeouts;
use super::config::{ConfigError, WorkerConfig};
use super::events::{
    CommandError, ConnId, ConnectionState, Event, FatalError, HttpId, HttpResponse, Output, Reply, Timer,
};
use super::frames::{self, Hot, LeaseId};
use super::handshake::{self, StartInfo, StartOutcome, Statics};
use super::requests::{Durable, Entry, ReplyPhase, ReplyState, Requests};

/// Close code and reason for every close we ask for deliberately.
pub const CLOSE_SHUTDOWN: (u16, &str) = (1000, "WORKER_SHUTDOWN");
/// Close for a connection we abandon because the peer broke the protocol or went silent.
pub const CLOSE_UNEXPECTED: (u16, &str) = (4001, "UNEXPECTED");
/// Close after too many unanswered heartbeats.
pub const CLOSE_HEARTBEATS_MISSED: (u16, &str) = (4001, "CONSECUTIVE_HEARTBEATS_MISSED");
/// Close after an undecodable frame (the gateway uses the same code).
pub const CLOSE_BAD_FRAME: (u16, &str) = (1007, "failed to unmarshal Protobuf");

/// The error name of the reply that replaces one too large to send.
pub const OUTPUT_TOO_LARGE: &str = "OutputTooLarge";

/// Lease assumed when a lease id does not tell its expiry (or the clocks disagree).
const DEFAULT_LEASE: Duration = Duration::from_secs(120);
/// Lease-ULID expiries further away than this are treated as clock skew.
const MAX_LEASE: Duration = Duration::from_secs(600);

/// The sans-IO worker connection machine. See the [module docs](super).
#[derive(Debug)]
pub struct Worker {
    cfg: WorkerConfig,
    st: Statics,
    /// The `now` given to `new`; `cfg.started_at` is the wall clock at it.
    base: Instant,
    /// The latest `now` seen (time never goes backwards here).
    now: Instant,
    rng: fastrand::Rng,
    next_id: u64,
    primary: Option<Conn>,
    draining: Option<(Conn, Instant)>,
    reconnect_at: Option<Instant>,
    backoff: Backoff,
    /// Index into the configured keys (0 = primary, 1 = fallback).
    key_index: usize,
    unauthorized_in_a_row: u32,
    /// Gateway groups the next start call asks to avoid (the draining one).
    exclude: Vec<String>,
    requests: Requests,
    http: HashMap<HttpId, HttpPurpose>,
    out: VecDeque<Output>,
    state: ConnectionState,
    ever_active: bool,
    active_since: Option<Instant>,
    extend_every: Duration,
    shutdown_deadline: Option<Instant>,
    closed: bool,
    /// Why the last connection attempt failed or the last connection was lost, for logs.
    last_error: Option<String>,
}

#[derive(Debug)]
struct Conn {
    id: ConnId,
    phase: Phase,
    /// Deadline of the current phase; for Active, the next heartbeat.
    deadline: Instant,
    info: Option<StartInfo>,
    connection_id: String,
    heartbeat_every: Duration,
    extend_every: Duration,
    unanswered: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Starting(HttpId),
    Dialing,
    AwaitHello,
    AwaitReady,
    Active,
}

impl Phase {
    fn timer(self) -> Timer {
        match self {
            Phase::Starting(_) => Timer::StartCall,
            Phase::Dialing => Timer::WsConnect,
            Phase::AwaitHello => Timer::Hello,
            Phase::AwaitReady => Timer::Ready,
            Phase::Active => Timer::Heartbeat,
        }
    }
    /// The adapter may hold a socket (or a pending dial) for this connection.
    fn has_socket(self) -> bool {
        !matches!(self, Phase::Starting(_))
    }
}

#[derive(Debug)]
enum HttpPurpose {
    Start(ConnId),
    Flush(RequestId),
}

impl Worker {
    // ---- construction and getters ----------------------------------------

    /// Build the machine and start connecting: the first output is the start call.
    /// `durable` comes from a previous machine's [`Worker::take_durable`] (or `Durable::default()`).
    pub fn new(config: WorkerConfig, durable: Durable, now: Instant) -> Result<Worker, ConfigError> {
        config.validate()?;
        let st = Statics::new(&config)?;
        let backoff = Backoff::new(config.reconnect_backoff.clone(), config.seed ^ 0x9e37_79b9_7f4a_7c15);
        let extend_every = config.intervals.extend_lease.max(config.intervals.min_interval);
        let mut w = Worker {
            rng: fastrand::Rng::with_seed(config.seed),
            cfg: config,
            st,
            base: now,
            now,
            next_id: 0,
            primary: None,
            draining: None,
            reconnect_at: None,
            backoff,
            key_index: 0,
            unauthorized_in_a_row: 0,
            exclude: Vec::new(),
            requests: Requests::default(),
            http: HashMap::new(),
            out: VecDeque::new(),
            state: ConnectionState::Connecting,
            ever_active: false,
            active_since: None,
            extend_every,
            shutdown_deadline: None,
            closed: false,
            last_error: None,
        };
        w.restore(durable);
        w.out.push_back(Output::Event(Event::StateChanged(ConnectionState::Connecting)));
        w.start_attempt();
        Ok(w)
    }

    /// Resume a previous machine's work: leases are extended from now on,
    /// unacknowledged replies are re-sent once a connection is ACTIVE (or
    /// flushed at their deadline), known ids are not delivered again.
    fn restore(&mut self, durable: Durable) {
        let (requests, finished, next_id) = durable.into_parts();
        self.next_id = next_id;
        let now = self.now;
        // No connection is up yet: the first extension waits one interval (or
        // less, if the lease would expire sooner).
        let extend_at = now + self.extend_every;
        self.requests.insert_finished(finished, self.cfg.finished_memory);
        for r in requests {
            let id = r.text.id();
            let slot = match r.lease {
                Some((lease, expires)) if expires > now => {
                    self.requests.insert(r.text, r.delivered_on, lease, expires, extend_at)
                }
                Some(_) => {
                    // The lease ran out while the machine was being replaced.
                    if r.reply.is_none() {
                        self.event(Event::LeaseLost { request_id: id });
                    }
                    self.requests.insert_unleased(r.text, r.delivered_on)
                }
                None => self.requests.insert_unleased(r.text, r.delivered_on),
            };
            if let Some(reply) = r.reply {
                self.requests.set_pending(slot, reply, None, now + self.cfg.timeouts.reply_ack);
            }
        }
    }

    pub fn state(&self) -> ConnectionState {
        self.state
    }

    /// Requests handed to the app and not yet replied to.
    pub fn in_flight(&self) -> usize {
        self.requests.running()
    }

    /// Replies not yet acknowledged or flushed.
    pub fn unacked_replies(&self) -> usize {
        self.requests.pending_replies()
    }

    /// The connection that replies and extensions go on now, if any.
    pub fn writable_conn(&self) -> Option<ConnId> {
        self.writable()
    }

    /// Whether the start calls now use the fallback signing key (the primary
    /// was refused: a key rotation in progress, for logs).
    pub fn using_fallback_key(&self) -> bool {
        self.keys().len() == 2 && self.key_index % 2 == 1
    }

    /// Why the last connection attempt failed or the last connection was lost (for logs).
    pub fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }

    /// Take the durable state out (for a respawn). The machine keeps running
    /// but knows no requests afterwards; the caller is about to drop it.
    pub fn take_durable(&mut self) -> Durable {
        let mut durable = self.requests.take();
        durable.next_id = self.next_id;
        durable
    }

    // ---- inputs -----------------------------------------------------------

    /// The answer to an [`Output::Http`]. `Err` is a transport failure or timeout.
    pub fn handle_http_response(&mut self, now: Instant, id: HttpId, result: Result<HttpResponse, String>) {
        self.tick(now);
        match self.http.remove(&id) {
            Some(HttpPurpose::Start(conn)) => self.on_start_result(conn, id, result),
            Some(HttpPurpose::Flush(request)) => self.on_flush_result(&request, id, result),
            None => {}
        }
        self.after_input();
    }

    /// The WebSocket upgrade of `conn` succeeded.
    pub fn handle_connected(&mut self, now: Instant, conn: ConnId) {
        self.tick(now);
        if let Some(c) = self.primary.as_mut().filter(|c| c.id == conn && c.phase == Phase::Dialing) {
            c.phase = Phase::AwaitHello;
            c.deadline = self.now + self.cfg.timeouts.hello;
        }
        self.after_input();
    }

    /// The WebSocket upgrade of `conn` failed.
    pub fn handle_connect_failed(&mut self, now: Instant, conn: ConnId, error: String) {
        self.tick(now);
        if self.primary.as_ref().is_some_and(|c| c.id == conn && c.phase == Phase::Dialing) {
            self.lose_primary(None, format!("WebSocket upgrade failed: {error}"));
        }
        self.after_input();
    }

    /// One message received on `conn`.
    pub fn handle_frame(&mut self, now: Instant, conn: ConnId, frame: Bytes) {
        self.tick(now);
        let is_primary = self.primary.as_ref().is_some_and(|c| c.id == conn);
        let is_draining = self.draining.as_ref().is_some_and(|(c, _)| c.id == conn);
        let active =
            is_draining || self.primary.as_ref().is_some_and(|c| c.id == conn && c.phase == Phase::Active);
        // The frequent frames are read in place: the small ones without
        // allocating, an executor request with one allocation.
        let hot = (active && !self.closed && frame.len() <= self.cfg.limits.max_recv_frame)
            .then(|| frames::peek(&frame))
            .flatten();
        match hot {
            Some(Hot::Heartbeat) => self.on_gateway_heartbeat(conn),
            Some(Hot::ReplyAck { request_id }) => self.on_reply_ack(request_id),
            Some(Hot::ExtendAck { request_id, new_lease_id }) => self.on_extend_ack(request_id, new_lease_id),
            Some(Hot::Request { at, len }) => match ExecutorRequest::decode_in_frame(frame, at, len) {
                Ok(req) => self.on_request(conn, req),
                Err(_) => self.bad_frame(is_primary),
            },
            None if !self.closed && (is_primary || is_draining) => {
                match Message::decode(frame, &self.cfg.limits) {
                    Ok(msg) if is_primary => self.on_primary_message(msg),
                    Ok(msg) => self.on_active_message(conn, msg, false),
                    Err(_) => self.bad_frame(is_primary),
                }
            }
            None => {}
        }
        self.after_input();
    }

    /// A frame from the primary or the draining connection did not decode:
    /// that connection is closed, as Inngest's gateway does (1007).
    fn bad_frame(&mut self, is_primary: bool) {
        if is_primary {
            self.lose_primary(Some(CLOSE_BAD_FRAME), "undecodable frame".to_owned())
        } else {
            self.retire_draining(Some(CLOSE_BAD_FRAME))
        }
    }

    /// `conn` closed or failed. `close` is the peer's close frame, if any.
    pub fn handle_closed(&mut self, now: Instant, conn: ConnId, close: Option<(u16, String)>) {
        self.tick(now);
        if self.primary.as_ref().is_some_and(|c| c.id == conn) {
            match close {
                Some((1008, reason))
                    if matches!(
                        reason.as_str(),
                        "connect_too_many_apps_per_connection" | "connect_worker_hello_invalid_payload"
                    ) =>
                {
                    self.primary = None;
                    self.fatal(FatalError::Rejected { code: 1008, reason });
                }
                close => self.lose_primary(None, close_text(&close)),
            }
        } else if self.draining.as_ref().is_some_and(|(c, _)| c.id == conn) {
            self.retire_draining(None);
        }
        self.after_input();
    }

    /// Deadlines up to `now` have passed. Harmless when early or repeated.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.tick(now);
        let now = self.now;
        // Each pass handles what is due; handlers only schedule later
        // deadlines, except a zero backoff, which the next pass picks up.
        for _ in 0..64 {
            if self.closed {
                break;
            }
            let mut progressed = false;
            if self.shutdown_deadline.is_some_and(|t| t <= now) {
                self.shutdown_expired();
                break;
            }
            if self.primary.as_ref().is_some_and(|c| c.deadline <= now) {
                self.on_primary_deadline();
                progressed = true;
            }
            if self.draining.as_ref().is_some_and(|(_, until)| *until <= now) {
                self.retire_draining(Some(CLOSE_SHUTDOWN));
                progressed = true;
            }
            if self.reconnect_at.is_some_and(|t| t <= now) {
                self.start_attempt();
                progressed = true;
            }
            while let Some(id) = self.requests.pop_lease_due(now) {
                self.on_lease_due(&id);
                progressed = true;
            }
            while let Some(id) = self.requests.pop_reply_due(now) {
                self.on_reply_due(&id);
                progressed = true;
            }
            if !progressed {
                break;
            }
        }
        self.after_input();
    }

    // ---- commands ---------------------------------------------------------

    /// The app's reply to `request_id`. Idempotent: a second reply for the
    /// same id is ignored. `Err` only for an id this machine never saw (or
    /// settled so long ago that it is no longer remembered, see
    /// [`WorkerConfig::finished_memory`]). A reply for a request whose lease
    /// was lost is still sent: the executor may yet take it. A reply too large
    /// for one frame (`limits.max_send_frame`, the gateway's 8 MiB) is replaced
    /// by a small non-retriable error naming the size ([`Event::ReplyReplaced`]),
    /// so that the run fails at once instead of at lease expiry.
    pub fn reply(&mut self, now: Instant, request_id: &str, reply: Reply) -> Result<(), CommandError> {
        self.tick(now);
        if self.closed {
            return Err(CommandError::Closed);
        }
        let Some((slot, entry)) = self.requests.find(request_id) else {
            return match self.requests.is_finished(request_id) {
                true => Ok(()), // replied before: idempotent
                false => Err(CommandError::UnknownRequest(request_id.into())),
            };
        };
        if !matches!(entry.reply, ReplyState::Awaiting) {
            return Ok(());
        }
        let max = self.cfg.limits.max_send_frame;
        let sdk_version = &self.st.reply_sdk_version;
        let (reply, frame, replaced) = match frames::reply(&entry.text, &reply, sdk_version, max) {
            Ok(frame) => (reply, Ok(frame), None),
            Err(len) => {
                // The gateway would refuse the frame and the run would fail only at
                // lease expiry, blaming the worker: fail it now, saying why.
                let error = format!(
                    "output too large: a reply of {len} bytes ({} bytes of output) is over the {max}-byte limit",
                    reply.body.len()
                );
                let substitute = output_too_large(&error, reply.request_version);
                let frame = frames::reply(&entry.text, &substitute, sdk_version, max);
                (substitute, frame, Some(error))
            }
        };
        let id = entry.text.id();
        match frame {
            Ok(frame) => {
                if let Some(error) = replaced {
                    self.event(Event::ReplyReplaced { request_id: id, error });
                }
                let sent_on = self.writable();
                if let Some(conn) = sent_on {
                    self.out.push_back(Output::Send { conn, frame: frame.bytes });
                }
                let deadline = self.now + self.cfg.timeouts.reply_ack;
                self.requests.set_pending(slot, reply, sent_on, deadline);
            }
            Err(len) => {
                // Even the small error reply does not fit (the request's own
                // fields, echoed in every reply, are too large): report it.
                self.requests.finish(request_id, self.cfg.finished_memory);
                let error = format!("reply frame of {len} bytes is over the {max}-byte limit");
                self.event(Event::ReplyFailed { request_id: id, error });
            }
        }
        self.after_input();
        Ok(())
    }

    /// Graceful shutdown: WORKER_PAUSE, keep heartbeating and extending while
    /// in-flight requests finish (bounded by [`Timeouts::shutdown`]), get
    /// every reply acknowledged or flushed, close 1000 `WORKER_SHUTDOWN`,
    /// then [`Event::Closed`]. Idempotent.
    pub fn shutdown(&mut self, now: Instant) {
        self.tick(now);
        if self.closed || self.shutdown_deadline.is_some() {
            return;
        }
        self.shutdown_deadline = Some(self.now + self.cfg.timeouts.shutdown);
        if let Some(c) = self.primary.as_ref().filter(|c| c.phase == Phase::Active) {
            self.out.push_back(Output::Send { conn: c.id, frame: frames::PAUSE });
        }
        self.after_input();
    }

    // ---- outputs ----------------------------------------------------------

    /// The next thing to do, in order. Drain it before waiting.
    #[must_use]
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// When to call [`Worker::handle_timeout`] next, and why. With outputs
    /// queued this is the last `now` ([`Timer::Output`]); `None` once closed.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<(Instant, Timer)> {
        if !self.out.is_empty() {
            return Some((self.now, Timer::Output));
        }
        if self.closed {
            return None;
        }
        let mut best: Option<(Instant, Timer)> = None;
        let mut offer = |at: Option<Instant>, why: Timer| {
            if let Some(at) = at {
                if best.is_none_or(|(b, _)| at < b) {
                    best = Some((at, why));
                }
            }
        };
        offer(self.shutdown_deadline, Timer::Shutdown);
        if let Some(c) = &self.primary {
            offer(Some(c.deadline), c.phase.timer());
        }
        offer(self.draining.as_ref().map(|(_, until)| *until), Timer::DrainReplacement);
        offer(self.reconnect_at, Timer::Backoff);
        offer(self.requests.next_lease_deadline(), Timer::LeaseExtension);
        if let Some((at, p)) = self.requests.next_reply_deadline() {
            let flushing = p.phase != ReplyPhase::AwaitAck;
            offer(Some(at), if flushing { Timer::Flush } else { Timer::ReplyAck });
        }
        best
    }

    // ---- connection lifecycle ---------------------------------------------

    fn tick(&mut self, now: Instant) {
        self.now = self.now.max(now);
    }

    fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    fn keys(&self) -> Vec<&SigningKey> {
        [&self.cfg.signing_key, &self.cfg.signing_key_fallback].into_iter().flatten().collect()
    }

    fn current_key(&self) -> Option<&SigningKey> {
        let keys = self.keys();
        keys.get(self.key_index % keys.len().max(1)).copied()
    }

    fn start_attempt(&mut self) {
        self.reconnect_at = None;
        let conn = ConnId(self.next_id());
        let http = HttpId(self.next_id());
        let request = handshake::start_request(&self.cfg, &self.st, self.current_key(), &self.exclude);
        self.http.insert(http, HttpPurpose::Start(conn));
        self.out.push_back(Output::Http { id: http, request });
        self.primary = Some(Conn {
            id: conn,
            phase: Phase::Starting(http),
            deadline: self.now + self.cfg.timeouts.start_call,
            info: None,
            connection_id: String::new(),
            heartbeat_every: self.cfg.intervals.heartbeat,
            extend_every: self.extend_every,
            unanswered: 0,
        });
    }

    fn on_start_result(&mut self, conn: ConnId, http: HttpId, result: Result<HttpResponse, String>) {
        if !self.primary.as_ref().is_some_and(|c| c.id == conn && c.phase == Phase::Starting(http)) {
            return;
        }
        match handshake::parse_start(result) {
            StartOutcome::Ok(info) => {
                self.unauthorized_in_a_row = 0;
                let url =
                    self.cfg.gateway_url_override.clone().unwrap_or_else(|| info.gateway_endpoint.clone());
                if url.is_empty() {
                    return self.lose_primary(None, "start response has no gateway endpoint".to_owned());
                }
                let connection_id = match Ulid::from_string(&info.connection_id) {
                    Ok(_) => info.connection_id.clone(),
                    Err(_) => self.new_ulid().to_string(),
                };
                let timeout = self.cfg.timeouts.ws_connect;
                if let Some(c) = self.primary.as_mut() {
                    c.phase = Phase::Dialing;
                    c.deadline = self.now + timeout;
                    c.info = Some(info);
                    c.connection_id = connection_id;
                }
                let subprotocol = crate::wire::SUBPROTOCOL;
                self.out.push_back(Output::Connect { conn, url, subprotocol, timeout });
            }
            StartOutcome::Unauthorized(status) => {
                self.unauthorized_in_a_row += 1;
                let keys = self.keys().len();
                if keys == 2 && self.unauthorized_in_a_row < 2 {
                    // The other key may be the one in force (key rotation): try it now.
                    self.key_index ^= 1;
                    self.primary = None;
                    self.start_attempt();
                } else if keys == 0 {
                    self.primary = None;
                    self.fatal(FatalError::KeyRequired { status });
                } else {
                    self.primary = None;
                    self.fatal(FatalError::Unauthorized { status, tried_fallback: keys == 2 });
                }
            }
            StartOutcome::Retry(why) => self.lose_primary(None, why),
        }
    }

    /// A ULID from the wall clock (derived from `started_at`) and the seeded rng.
    fn new_ulid(&mut self) -> Ulid {
        Ulid::from_parts(self.wall_ms(), self.rng.u128(..))
    }

    fn wall_ms(&self) -> u64 {
        let elapsed = u64::try_from(self.now.duration_since(self.base).as_millis()).unwrap_or(u64::MAX);
        self.st.started_unix_ms.saturating_add(elapsed)
    }

    fn on_primary_deadline(&mut self) {
        let Some(c) = self.primary.as_mut() else { return };
        match c.phase {
            Phase::Starting(http) => {
                self.http.remove(&http);
                self.lose_primary(None, "start call timed out".to_owned());
            }
            phase @ (Phase::Dialing | Phase::AwaitHello | Phase::AwaitReady) => {
                self.lose_primary(Some(CLOSE_UNEXPECTED), format!("{:?} timed out", phase.timer()))
            }
            Phase::Active => {
                if c.unanswered >= self.cfg.heartbeat_miss_limit {
                    return self
                        .lose_primary(Some(CLOSE_HEARTBEATS_MISSED), "heartbeats unanswered".to_owned());
                }
                c.unanswered += 1;
                // From the deadline, not from `now`: the lateness of each wake-up
                // must not add up over the heartbeats. A deadline already past (a
                // long stall, a clock jump) starts over from now, never a burst.
                let next = c.deadline + c.heartbeat_every;
                c.deadline = if next > self.now { next } else { self.now + c.heartbeat_every };
                self.out.push_back(Output::Send { conn: c.id, frame: frames::HEARTBEAT });
            }
        }
    }

    fn on_primary_message(&mut self, msg: Message) {
        let Some(c) = self.primary.as_mut() else { return };
        let conn = c.id;
        match (c.phase, msg) {
            (Phase::AwaitHello, Message::GatewayHello) => {
                let Some(info) = c.info.as_ref() else { return };
                let frame =
                    handshake::worker_connect(&self.cfg, &self.st, info, &c.connection_id, &self.cfg.limits);
                c.phase = Phase::AwaitReady;
                c.deadline = self.now + self.cfg.timeouts.ready;
                self.out.push_back(Output::Send { conn, frame });
            }
            (Phase::AwaitReady, Message::GatewayConnectionReady(ready)) => {
                let (heartbeat, extend) = handshake::intervals(&ready, &self.cfg.intervals);
                c.phase = Phase::Active;
                c.heartbeat_every = heartbeat;
                c.extend_every = extend;
                c.deadline = self.now + heartbeat;
                c.unanswered = 0;
                if self.shutdown_deadline.is_some() {
                    self.out.push_back(Output::Send { conn, frame: frames::PAUSE });
                } else if self.cfg.manual_readiness_ack {
                    self.out.push_back(Output::Send { conn, frame: frames::READY });
                }
                self.on_active();
            }
            (Phase::AwaitReady, Message::SyncFailed(e)) => {
                self.out.push_back(Output::Close {
                    conn,
                    code: CLOSE_SHUTDOWN.0,
                    reason: CLOSE_SHUTDOWN.1.into(),
                });
                self.primary = None;
                self.fatal(FatalError::SyncRejected { code: e.code, message: e.message });
            }
            (Phase::AwaitReady, Message::GatewayClosing) => {
                // The gateway started draining during our handshake: try another group.
                if let Some(group) = c.info.as_ref().map(|i| i.gateway_group.clone()) {
                    self.exclude = vec![group];
                }
                self.lose_primary(Some(CLOSE_SHUTDOWN), "gateway draining during the handshake".to_owned());
            }
            (Phase::AwaitReady, Message::GatewayHeartbeat | Message::Unknown { .. }) => {}
            (Phase::AwaitHello | Phase::AwaitReady, msg) => self.lose_primary(
                Some(CLOSE_UNEXPECTED),
                format!("unexpected {} during the handshake", msg.name()),
            ),
            (Phase::Active, msg) => self.on_active_message(conn, msg, true),
            (Phase::Starting(_) | Phase::Dialing, _) => {}
        }
    }

    /// The primary connection just became ACTIVE.
    fn on_active(&mut self) {
        let Some(c) = self.primary.as_ref() else { return };
        let (conn, connection_id) = (c.id, c.connection_id.clone());
        self.extend_every = c.extend_every;
        self.ever_active = true;
        self.active_since = Some(self.now);
        self.exclude.clear();
        self.refresh_state();
        self.event(Event::Ready { conn, connection_id });
        // Make-before-break: the replacement is up, the draining one can go.
        self.retire_draining(Some(CLOSE_SHUTDOWN));
        // Replies not riding on this connection move to it.
        let resend: Vec<RequestId> = self
            .requests
            .pending()
            .filter(|(_, p)| p.sent_on != Some(conn) && !matches!(p.phase, ReplyPhase::Flushing(_)))
            .map(|(text, _)| text.id())
            .collect();
        let deadline = self.now + self.cfg.timeouts.reply_ack;
        for id in resend {
            if let Some(frame) = self.encode_pending(&id) {
                self.out.push_back(Output::Send { conn, frame: frame.bytes });
            }
            if let Some(ReplyState::Pending(p)) = self.requests.get_mut(&id).map(|e| &mut e.reply) {
                p.sent_on = Some(conn);
            }
            self.requests.set_reply_phase(&id, ReplyPhase::AwaitAck, deadline);
        }
    }

    /// The WORKER_REPLY frame of a pending reply (it passed the size check when the app replied).
    fn encode_pending(&self, id: &str) -> Option<frames::Frame> {
        let Some(Entry { text, reply: ReplyState::Pending(p), .. }) = self.requests.get(id) else {
            return None;
        };
        frames::reply(text, &p.reply, &self.st.reply_sdk_version, usize::MAX).ok()
    }

    fn on_active_message(&mut self, conn: ConnId, msg: Message, is_primary: bool) {
        match msg {
            Message::GatewayHeartbeat => self.on_gateway_heartbeat(conn),
            Message::GatewayExecutorRequest(req) => {
                // Only when the frame reader passed it over (it reads requests itself).
                if let Ok(req) = ExecutorRequest::try_from(*req) {
                    self.on_request(conn, req)
                }
            }
            Message::WorkerReplyAck(ack) => self.on_reply_ack(&ack.request_id),
            Message::WorkerRequestExtendLeaseAck(ack) => {
                self.on_extend_ack(&ack.request_id, ack.new_lease_id.as_deref())
            }
            Message::GatewayClosing if is_primary => self.start_drain(),
            _ => {}
        }
    }

    fn on_gateway_heartbeat(&mut self, conn: ConnId) {
        if let Some(c) = self.primary.as_mut().filter(|c| c.id == conn) {
            c.unanswered = 0;
        }
    }

    /// GATEWAY_CLOSING on the primary: keep it as the draining connection and
    /// build a replacement at once, avoiding its gateway group.
    fn start_drain(&mut self) {
        let Some(old) = self.primary.take() else { return };
        // A second drain before the first replacement finished: the older
        // draining connection has to go now (we keep at most one).
        self.retire_draining(Some(CLOSE_SHUTDOWN));
        if let Some(group) = old.info.as_ref().map(|i| i.gateway_group.clone()).filter(|g| !g.is_empty()) {
            self.exclude = vec![group];
        }
        let until = self.now + self.cfg.timeouts.drain_replacement;
        self.draining = Some((old, until));
        // Why the state is RECONNECTING now (for logs): not an older failure.
        self.last_error = Some("the gateway is draining this connection (GATEWAY_CLOSING)".to_owned());
        self.refresh_state();
        self.start_attempt();
    }

    /// Close and forget the draining connection, if any (`None`: it is already closed).
    fn retire_draining(&mut self, close: Option<(u16, &str)>) {
        if let Some((c, _)) = self.draining.take() {
            if let Some((code, reason)) = close {
                self.out.push_back(Output::Close { conn: c.id, code, reason: reason.into() });
            }
        }
    }

    /// The primary connection failed or was lost: retire it and schedule the
    /// next attempt. `close`: tell the adapter to close it (it may still be open).
    fn lose_primary(&mut self, close: Option<(u16, &str)>, why: String) {
        let Some(c) = self.primary.take() else { return };
        self.last_error = Some(why);
        if let (Some((code, reason)), true) = (close, c.phase.has_socket()) {
            self.out.push_back(Output::Close { conn: c.id, code, reason: reason.into() });
        }
        if let Phase::Starting(http) = c.phase {
            self.http.remove(&http);
        }
        if c.phase == Phase::Active {
            if self
                .active_since
                .is_some_and(|t| self.now.duration_since(t) >= self.cfg.reconnect_backoff.reset_after)
            {
                self.backoff.reset();
            }
            self.active_since = None;
        }
        self.schedule_reconnect();
    }

    fn schedule_reconnect(&mut self) {
        if self.closed || self.primary.is_some() || self.reconnect_at.is_some() {
            return;
        }
        if self.shutdown_deadline.is_some() && self.requests.running() == 0 {
            // Nothing left to extend: replies settle over HTTP, no connection needed.
            return;
        }
        let delay = self.backoff.next_delay();
        if delay.is_zero() {
            self.start_attempt();
        } else {
            self.reconnect_at = Some(self.now + delay);
        }
    }

    fn writable(&self) -> Option<ConnId> {
        match (&self.primary, &self.draining) {
            (Some(c), _) if c.phase == Phase::Active => Some(c.id),
            (_, Some((c, _))) => Some(c.id),
            _ => None,
        }
    }

    // ---- requests ---------------------------------------------------------

    fn on_request(&mut self, conn: ConnId, req: ExecutorRequest) {
        let id = req.request_id();
        if let Some(Entry { text, .. }) = self.requests.get(id) {
            // Already running or finished: ACK so the executor's forward
            // completes, adopt a newer lease, never run it twice.
            self.out.push_back(Output::Send { conn, frame: frames::ack(text) });
            let lease = LeaseId::parse(req.lease_id());
            let expires = self.lease_expiry(&lease);
            if let Some(l) = self.requests.get_mut(id).and_then(|e| e.lease.as_mut()) {
                if !lease.older_than(&l.id) {
                    l.id = lease;
                    l.expires = expires;
                }
            }
            return;
        }
        if self.requests.is_finished(id) {
            // Done here already: ACK so the executor's forward completes (it
            // finds the stored reply), but never run it twice.
            self.out.push_back(Output::Send { conn, frame: frames::ack(req.text()) });
            return;
        }
        if self.shutdown_deadline.is_some() {
            return; // paused: a new request is not ACKed, the gateway re-routes it
        }
        if self.cfg.max_worker_concurrency.is_some_and(|max| self.requests.running() >= max as usize) {
            return; // over capacity: not ACKed, the gateway re-routes it
        }
        self.out.push_back(Output::Send { conn, frame: frames::ack(req.text()) });
        let lease = LeaseId::parse(req.lease_id());
        let expires = self.lease_expiry(&lease);
        self.requests.insert(req.text().clone(), conn, lease, expires, self.now + self.extend_every);
        self.event(Event::Invocation(req));
    }

    /// Local lease expiry, read from the lease ULID's timestamp. A lease that
    /// looks shorter than Inngest's 2 minutes (or absurdly long) is taken as
    /// clock skew between us and the executor, and 2 minutes assumed.
    fn lease_expiry(&self, lease: &LeaseId) -> Instant {
        let wall = self.wall_ms();
        let remaining = lease
            .expiry_ms()
            .and_then(|exp| exp.checked_sub(wall))
            .map(Duration::from_millis)
            .filter(|d| *d <= MAX_LEASE)
            .unwrap_or(DEFAULT_LEASE)
            .max(DEFAULT_LEASE);
        self.now + remaining
    }

    fn on_lease_due(&mut self, id: &RequestId) {
        let Some(Entry { text, lease: Some(lease), .. }) = self.requests.get(id) else { return };
        if lease.expires <= self.now {
            if self.requests.drop_lease(id) {
                self.event(Event::LeaseLost { request_id: id.clone() });
            }
            return;
        }
        if let Some(conn) = self.writable() {
            self.out.push_back(Output::Send { conn, frame: frames::extend(text, &lease.id) });
        }
        self.requests.reschedule_lease(id, self.now + self.extend_every);
    }

    /// WORKER_REQUEST_EXTEND_LEASE_ACK: a new lease id, or none (lost).
    fn on_extend_ack(&mut self, request_id: &str, new_lease_id: Option<&str>) {
        let Some(Entry { text, lease: Some(lease), .. }) = self.requests.get(request_id) else {
            return; // unknown, or late: no longer extending
        };
        match new_lease_id {
            Some(new) => {
                let new = LeaseId::parse(new);
                if new.older_than(&lease.id) {
                    return; // a late ack for an older extension
                }
                let expires = self.lease_expiry(&new);
                if let Some(l) = self.requests.get_mut(request_id).and_then(|e| e.lease.as_mut()) {
                    l.id = new;
                    l.expires = expires;
                }
            }
            None => {
                let id = text.id();
                if self.requests.drop_lease(request_id) {
                    self.event(Event::LeaseLost { request_id: id });
                }
            }
        }
    }

    fn on_reply_ack(&mut self, request_id: &str) {
        // Unknown, settled already, or not replied yet: ignored.
        if let Some(request_id) = self.requests.settle_reply(request_id, self.cfg.finished_memory) {
            self.event(Event::ReplyAcked { request_id });
        }
    }

    /// A reply's deadline: the ack did not come (flush it), a flush timed out
    /// (back off), or the backoff ended (flush again).
    fn on_reply_due(&mut self, id: &RequestId) {
        let Some(Entry { reply: ReplyState::Pending(p), .. }) = self.requests.get(id) else { return };
        match p.phase {
            ReplyPhase::AwaitAck | ReplyPhase::FlushWait => {
                let Some(frame) = self.encode_pending(id) else { return };
                let body = frame.bytes.slice(frame.payload_at..);
                let http = HttpId(self.next_id());
                let request = handshake::flush_request(&self.cfg, &self.st, self.current_key(), body);
                self.http.insert(http, HttpPurpose::Flush(id.clone()));
                self.out.push_back(Output::Http { id: http, request });
                let deadline = self.now + self.cfg.timeouts.flush_call;
                self.requests.set_reply_phase(id, ReplyPhase::Flushing(http), deadline);
            }
            ReplyPhase::Flushing(http) => {
                self.http.remove(&http);
                self.flush_failed(id);
            }
        }
    }

    fn on_flush_result(&mut self, id: &RequestId, http: HttpId, result: Result<HttpResponse, String>) {
        let Some(Entry { reply: ReplyState::Pending(p), .. }) = self.requests.get(id) else { return };
        if p.phase != ReplyPhase::Flushing(http) {
            return;
        }
        match result.map(|r| r.status) {
            Ok(200..=299) => {
                self.requests.finish(id, self.cfg.finished_memory);
                self.event(Event::ReplyAcked { request_id: id.clone() });
            }
            Ok(status @ (400 | 413)) => {
                self.requests.finish(id, self.cfg.finished_memory);
                let error = format!("the flush endpoint refused the reply (HTTP {status})");
                self.event(Event::ReplyFailed { request_id: id.clone(), error });
            }
            Ok(401 | 403) => {
                if self.keys().len() == 2 {
                    self.key_index ^= 1;
                }
                self.flush_failed(id);
            }
            _ => self.flush_failed(id),
        }
    }

    fn flush_failed(&mut self, id: &RequestId) {
        let Some(ReplyState::Pending(p)) = self.requests.get_mut(id).map(|e| &mut e.reply) else {
            return;
        };
        let attempt = p.flush_failures;
        p.flush_failures += 1;
        let delay = self.cfg.flush_backoff.delay(attempt, &mut self.rng).max(self.cfg.intervals.min_interval);
        self.requests.set_reply_phase(id, ReplyPhase::FlushWait, self.now + delay);
    }

    // ---- shutdown and the end ---------------------------------------------

    /// After every input: derive the state, and complete a shutdown whose work is done.
    fn after_input(&mut self) {
        if !self.closed && self.shutdown_deadline.is_some() {
            self.refresh_state(); // PAUSED or CLOSING first, even if CLOSED follows at once
            if self.requests.idle() {
                self.close_all();
            } else if self.requests.running() == 0 {
                // Only replies left: they settle over HTTP if no connection is up.
                self.reconnect_at = None;
                if self.primary.as_ref().is_some_and(|c| c.phase != Phase::Active) {
                    self.lose_primary(Some(CLOSE_SHUTDOWN), "shutting down".to_owned());
                }
            }
        }
        self.refresh_state();
    }

    fn shutdown_expired(&mut self) {
        let running: Vec<RequestId> = self.requests.awaiting().map(|t| t.id()).collect();
        for request_id in running {
            self.event(Event::Abandoned { request_id });
        }
        self.fail_pending_replies("the shutdown deadline passed before the reply was acknowledged");
        self.close_all();
    }

    fn fail_pending_replies(&mut self, why: &str) {
        let pending: Vec<RequestId> = self.requests.pending().map(|(t, _)| t.id()).collect();
        for request_id in pending {
            self.requests.finish(&request_id, self.cfg.finished_memory);
            self.event(Event::ReplyFailed { request_id, error: why.into() });
        }
    }

    fn fatal(&mut self, error: FatalError) {
        let why = format!("the worker stopped: {error}");
        self.event(Event::Fatal(error));
        let running: Vec<RequestId> = self.requests.awaiting().map(|t| t.id()).collect();
        for request_id in running {
            self.event(Event::Abandoned { request_id });
        }
        self.fail_pending_replies(&why);
        self.close_all();
    }

    /// Close every connection with 1000 `WORKER_SHUTDOWN`, then the last events.
    fn close_all(&mut self) {
        if self.closed {
            return;
        }
        if let Some(c) = self.primary.take() {
            if c.phase.has_socket() {
                let (code, reason) = CLOSE_SHUTDOWN;
                self.out.push_back(Output::Close { conn: c.id, code, reason: reason.into() });
            }
        }
        self.retire_draining(Some(CLOSE_SHUTDOWN));
        self.reconnect_at = None;
        self.http.clear();
        self.requests.clear_timers();
        self.closed = true;
        self.refresh_state();
        self.event(Event::Closed);
    }

    fn refresh_state(&mut self) {
        let state = if self.closed {
            ConnectionState::Closed
        } else if self.shutdown_deadline.is_some() {
            if self.requests.running() == 0 { ConnectionState::Closing } else { ConnectionState::Paused }
        } else if self.primary.as_ref().is_some_and(|c| c.phase == Phase::Active) {
            ConnectionState::Active
        } else if self.ever_active {
            ConnectionState::Reconnecting
        } else {
            ConnectionState::Connecting
        };
        if state != self.state {
            self.state = state;
            self.event(Event::StateChanged(state));
        }
    }

    fn event(&mut self, e: Event) {
        self.out.push_back(Output::Event(e));
    }
}

/// The reply sent instead of one too large for a gateway frame: a
/// non-retriable error (the same output would be too large again) whose
/// message the run's failure shows.
fn output_too_large(message: &str, request_version: u32) -> Reply {
    let body = ErrorBody { name: OUTPUT_TOO_LARGE.into(), message: message.into(), stack: None };
    let body = serde_json::to_vec(&body).unwrap_or_default();
    Reply { request_version, ..Reply::error(body, true) }
}

fn close_text(close: &Option<(u16, String)>) -> String {
    match close {
        Some((code, reason)) => format!("connection closed by the peer: {code} {reason}"),
        None => "connection lost without a close frame".to_owned(),
    }
}
