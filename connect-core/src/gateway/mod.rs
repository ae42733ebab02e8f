//! The gateway side of the protocol: a sans-IO machine that behaves like
//! Inngest's connect gateway, plus a sans-IO [`executor`] and the [`Server`]
//! that joins them (what `connect-dev` runs and simulation tests drive).
//!
//! # Theory of operation
//!
//! The shell accepts a socket and calls [`Gateway::accept`], which queues the
//! 0-byte HELLO. Each received frame goes to [`Gateway::handle_frame`], a close
//! or broken socket to [`Gateway::handle_closed`], and the deadline from
//! [`Gateway::poll_timeout`] to [`Gateway::handle_timeout`]. After every call
//! the shell drains [`Gateway::poll_output`]: frames to send, sockets to close
//! and [`Event`]s for the executor. A connection the machine closes is gone
//! at once (its `Disconnected` event follows the `Close`), so later input for
//! it is ignored. Remote misbehaviour never returns `Err`: it closes that one
//! connection with the code and reason Inngest's gateway uses.
//!
//! Wall-clock time (lease ids encode their expiry, tokens their lifetime) is
//! the `SystemTime` anchor given at construction plus the `Instant`s passed in.
//!
//! The shell's loop over a whole dev server ([`Server`]: this machine and the
//! executor) looks like this:
//!
//! ```no_run
//! use std::time::{Instant, SystemTime};
//! use connect_core::gateway::{executor::ExecutorConfig, GatewayConfig, Server, ServerOutput};
//!
//! # let (clock, wall_clock) = (|| -> Instant { unimplemented!() }, || -> SystemTime { unimplemented!() });
//! let mut server = Server::new(GatewayConfig::default(), ExecutorConfig::default(), clock(), wall_clock());
//! loop {
//!     while let Some(out) = server.poll_output() {
//!         match out {
//!             ServerOutput::Send { conn, frame } => { /* write a binary message on conn */ }
//!             ServerOutput::Close { conn, frame } => { /* send the close frame (or just drop), forget conn */ }
//!             ServerOutput::Gateway(event) => { /* log it */ }
//!             ServerOutput::Run(event) => { /* log it, wake whoever waits for that run */ }
//!         }
//!     }
//!     let deadline = server.poll_timeout().map(|(at, _why)| at);
//!     // Wait for IO until `deadline`, feeding what happened with the time it happened:
//!     //   let conn = server.accept(clock());                      // a WebSocket upgrade on /v0/connect
//!     //   server.handle_frame(clock(), conn, bytes);              // a message from it
//!     //   server.handle_closed(clock(), conn, close_frame);       // its close, or None if it broke
//!     //   server.handle_start(clock(), auth, body, endpoint);     // POST /v0/connect/start
//!     //   server.send_event(clock(), name, data, id, ts);         // POST /e/{key}
//!     server.handle_timeout(clock());
//! }
//! ```
//!
//! # Transition table (per connection)
//!
//! ```text
//! phase            input                      -> phase           output
//! ---------------  -------------------------  ---------------  ----------------------------------------
//! (accept)                                    AwaitingConnect  HELLO; hello deadline
//! AwaitingConnect  WORKER_CONNECT ok, manual  AwaitingReady    READY; Connected
//! AwaitingConnect  WORKER_CONNECT ok, auto    Ready            READY; Connected, Ready
//! AwaitingConnect  WORKER_CONNECT invalid     (closed)         1008 hello_invalid_payload / auth_failed /
//!                                                              too_many_apps, 1011 internal_error
//! AwaitingConnect  any other kind             (closed)         1008 connect_worker_hello_invalid_msg
//! AwaitingConnect  hello deadline             (closed)         1008 connect_worker_hello_timeout
//! AwaitingReady    WORKER_READY               Ready            Ready
//! Ready            WORKER_PAUSE               Paused           Paused (unacked requests released)
//! Ready|Paused     drain()                    Draining         GATEWAY_CLOSING; drain deadline
//! Awaiting*        drain()                    (closed)         1001 connect_gateway_closing
//! Draining         WORKER_READY / deadline    (closed)         1001 connect_gateway_closing
//! established      WORKER_HEARTBEAT           same             Heartbeat; GATEWAY_HEARTBEAT unless AwaitingReady
//! established      heartbeat check, 5 missed  (closed)         dropped without a close frame, as Inngest does
//! established      REQUEST_ACK                same             RequestAcked (if pending on this socket)
//! established      EXTEND_LEASE               same             EXTEND_LEASE_ACK with or without a new id
//! established      EXTEND_LEASE bad lease id  (closed)         1008 ..._extend_lease_invalid_payload
//! established      WORKER_REPLY               same             Replied; WORKER_REPLY_ACK unless AwaitingReady
//! any              undecodable frame          (closed)         1007 "failed to unmarshal Protobuf"
//! any              frame over the read limit  (closed)         1009 "read limited at N bytes"
//! any              peer close / socket error  (closed)         Disconnected (reason read from the close)
//! ```
//!
//! Unknown kinds, WORKER_STATUS and gateway-to-worker kinds sent by a worker are ignored, as Inngest does.

mod config;
mod conn;
pub mod executor;
mod handshake;
mod http;
pub mod lease;
mod messages;
pub mod run;
mod server;
mod timers;
pub mod token;
mod types;

use std::collections::{HashMap, VecDeque};
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use prost::Message as _;

use crate::duration::format_go_duration;
use crate::wire::{
    ConnectMessage, GatewayConnectionReadyData, GatewayExecutorRequestData, GatewayMessageType as K, Limits,
    Message,
};

pub use config::{GatewayConfig, GatewayConfigError};
use conn::Conn;
pub use conn::{ConnId, Phase};
pub use http::HttpError;
use lease::Lease;
pub use server::{Server, ServerOutput};
pub use timers::Timer;
use timers::Timers;
pub use types::{AppInfo, CloseFrame, Disconnect, Event, ForwardError, Output, WorkerInfo};

/// The gateway machine. See the module docs for the run loop and the transition table.
#[derive(Debug)]
pub struct Gateway {
    config: GatewayConfig,
    anchor: (Instant, SystemTime),
    last_now: Instant,
    conns: HashMap<ConnId, Conn>,
    next_conn: u64,
    leases: HashMap<String, Lease>,
    timers: Timers,
    out: VecDeque<Output>,
    rng: fastrand::Rng,
    /// The current gateway group (1-based); `drain` starts the next one.
    group: u32,
    ready_frame: Bytes,
}

impl Gateway {
    /// A gateway whose wall clock reads `wall` at `now`.
    pub fn new(config: GatewayConfig, now: Instant, wall: SystemTime) -> Self {
        let ready = Message::GatewayConnectionReady(GatewayConnectionReadyData {
            heartbeat_interval: format_go_duration(config.heartbeat_interval),
            extend_lease_interval: format_go_duration(config.extend_lease_interval),
            status_interval: format_go_duration(config.status_interval),
        });
        Gateway {
            rng: fastrand::Rng::with_seed(config.seed),
            ready_frame: encode(&ready),
            config,
            anchor: (now, wall),
            last_now: now,
            conns: HashMap::new(),
            next_conn: 1,
            leases: HashMap::new(),
            timers: Timers::default(),
            out: VecDeque::new(),
            group: 1,
        }
    }

    // ---- getters ----

    pub fn config(&self) -> &GatewayConfig {
        &self.config
    }

    /// The wall-clock time at `now`, from the construction anchor.
    pub fn wall(&self, now: Instant) -> SystemTime {
        self.anchor.1 + now.saturating_duration_since(self.anchor.0)
    }

    /// The group new sockets join, as named in start responses.
    pub fn group_name(&self) -> String {
        group_name(&self.config.group_name, self.group)
    }

    pub fn phase(&self, conn: ConnId) -> Option<Phase> {
        self.conns.get(&conn).map(|c| c.phase)
    }

    pub fn open_connections(&self) -> usize {
        self.conns.len()
    }

    /// The current lease id of a forwarded request, if it holds one.
    pub fn lease_of(&self, request_id: &str) -> Option<&str> {
        self.leases.get(request_id).map(|l| l.current.as_str())
    }

    // ---- inputs ----

    /// A socket was accepted (WebSocket upgrade done). Queues HELLO.
    pub fn accept(&mut self, now: Instant) -> ConnId {
        let now = self.clamp(now);
        let id = ConnId(self.next_conn);
        self.next_conn += 1;
        let mut conn = Conn::new(id, self.group, now);
        conn.timer = Some(self.timers.schedule(now + self.config.hello_timeout, Timer::Hello(id)));
        self.conns.insert(id, conn);
        self.out.push_back(Output::Send { conn: id, frame: Bytes::new() });
        id
    }

    /// One received WebSocket message (binary or text: Inngest ignores the frame type).
    pub fn handle_frame(&mut self, now: Instant, id: ConnId, frame: Bytes) {
        let now = self.clamp(now);
        let Some(phase) = self.phase(id) else { return };
        if frame.len() > self.config.max_frame {
            return self.handle_frame_too_large(now, id);
        }
        let Ok(envelope) = ConnectMessage::decode(frame) else {
            return self.close(id, 1007, "failed to unmarshal Protobuf", None);
        };
        if phase == Phase::AwaitingConnect {
            return handshake::on_first_message(self, now, id, envelope);
        }
        match K::try_from(envelope.kind) {
            Ok(K::WorkerHeartbeat) => self.on_heartbeat(now, id),
            Ok(K::WorkerReady) => self.on_worker_ready(id),
            Ok(K::WorkerPause) => self.on_pause(id),
            Ok(K::WorkerRequestAck) => match Message::from_envelope(envelope) {
                Ok(Message::WorkerRequestAck(ack)) => self.on_ack(id, ack.request_id),
                _ => self.close(id, 1008, "connect_worker_request_ack_invalid_payload", None),
            },
            Ok(K::WorkerRequestExtendLease) => match Message::from_envelope(envelope) {
                Ok(Message::WorkerRequestExtendLease(ext)) => self.on_extend(now, id, *ext),
                _ => self.close(id, 1008, "connect_worker_request_extend_lease_invalid_payload", None),
            },
            Ok(K::WorkerReply) => match Message::from_envelope(envelope) {
                Ok(Message::WorkerReply(resp)) => self.on_reply(id, resp),
                _ => self.close(id, 1011, "connect_internal_error", None),
            },
            _ => {} // WORKER_STATUS, a second WORKER_CONNECT, gateway kinds, unknown kinds: ignored.
        }
    }

    /// The shell's WebSocket layer refused a message over the read limit.
    pub fn handle_frame_too_large(&mut self, now: Instant, id: ConnId) {
        self.clamp(now);
        let reason = format!("read limited at {} bytes", self.config.max_frame + 1);
        self.close(id, 1009, &reason, Some("MESSAGE_TOO_LARGE"));
    }

    /// The peer closed (with a close frame) or the socket broke (`None`).
    pub fn handle_closed(&mut self, now: Instant, id: ConnId, close: Option<CloseFrame>) {
        self.clamp(now);
        let reason = match &close {
            Some(c) if c.code == 1000 && c.reason == "WORKER_SHUTDOWN" => "WORKER_SHUTDOWN".to_owned(),
            Some(c) if c.code == 1001 && c.reason == "connect_gateway_closing" => {
                "GATEWAY_DRAINING".to_owned()
            }
            Some(c) if !c.reason.is_empty() => c.reason.clone(),
            _ => "UNEXPECTED".to_owned(),
        };
        self.remove(id, Disconnect { reason, close, by_gateway: false });
    }

    /// Fire every deadline due at `now`. Harmless when early or repeated.
    pub fn handle_timeout(&mut self, now: Instant) {
        let now = self.clamp(now);
        while let Some((handle, timer)) = self.timers.pop_due(now) {
            match timer {
                Timer::Hello(id) => {
                    if let Some(c) = self.conns.get_mut(&id) {
                        c.timer = None;
                    }
                    self.close(id, 1008, "connect_worker_hello_timeout", None);
                }
                Timer::HeartbeatCheck(id) => self.heartbeat_check(now, handle.at(), id),
                Timer::Drain(id) => {
                    if let Some(c) = self.conns.get_mut(&id) {
                        c.drain_timer = None;
                    }
                    self.close(id, 1001, "connect_gateway_closing", Some("GATEWAY_DRAINING"));
                }
                Timer::Lease { request_id } => self.lease_expired(request_id),
                Timer::PendingOutput | Timer::Retry => {}
            }
        }
    }

    /// `POST /v0/connect/start`: check the key, issue a connection id and session token.
    pub fn handle_start(
        &mut self,
        now: Instant,
        authorization: Option<&str>,
        body: Bytes,
        gateway_endpoint: String,
    ) -> Result<crate::wire::StartResponse, HttpError> {
        let now = self.clamp(now);
        http::start(self, now, authorization, body, gateway_endpoint)
    }

    /// `POST /v0/connect/flush`: a reply sent over HTTP. Emits `Replied { conn: None }`.
    pub fn handle_flush(
        &mut self,
        now: Instant,
        authorization: Option<&str>,
        body: Bytes,
    ) -> Result<crate::wire::FlushResponse, HttpError> {
        self.clamp(now);
        http::flush(self, authorization, body)
    }

    // ---- commands ----

    /// Forward an executor request on `conn`, leasing it. Returns the lease id
    /// (also written into the request). Fails only for local misuse.
    pub fn forward(
        &mut self,
        now: Instant,
        id: ConnId,
        mut request: GatewayExecutorRequestData,
    ) -> Result<String, ForwardError> {
        let now = self.clamp(now);
        let conn = self.conns.get(&id).ok_or(ForwardError::UnknownConn(id))?;
        if conn.phase != Phase::Ready {
            return Err(ForwardError::NotRoutable { conn: id, phase: conn.phase });
        }
        if self.leases.contains_key(&request.request_id) {
            return Err(ForwardError::AlreadyLeased(request.request_id));
        }
        let expires = now + self.config.lease_duration();
        let lease_id = lease::lease_id(self.wall(expires), self.rng.u128(..));
        request.lease_id.clone_from(&lease_id);
        let request_id = request.request_id.clone();
        let frame = Message::GatewayExecutorRequest(Box::new(request))
            .encode(&Limits { max_send_frame: self.config.max_frame, max_recv_frame: 0 })
            .map_err(|e| ForwardError::TooLarge(e.to_string()))?;
        let timer = self
            .timers
            .schedule(expires + self.config.lease_grace(), Timer::Lease { request_id: request_id.clone() });
        let conn = self.conns.get_mut(&id).ok_or(ForwardError::UnknownConn(id))?;
        conn.pending_acks.insert(request_id.clone());
        let lease = Lease {
            conn: id,
            instance_id: conn.instance_id.clone(),
            current: lease_id.clone(),
            previous: None,
            expires,
            timer,
            acked: false,
        };
        self.leases.insert(request_id, lease);
        self.out.push_back(Output::Send { conn: id, frame });
        Ok(lease_id)
    }

    /// Drain this gateway group: GATEWAY_CLOSING to every established socket,
    /// 1001 to those still in the handshake, and a fresh group for new sockets
    /// (so a worker's replacement connection has somewhere to go).
    pub fn drain(&mut self, now: Instant) -> usize {
        let now = self.clamp(now);
        let draining = self.group;
        self.group += 1;
        let mut ids: Vec<ConnId> =
            self.conns.values().filter(|c| c.group == draining).map(|c| c.id).collect();
        ids.sort();
        for id in &ids {
            let Some(conn) = self.conns.get_mut(id) else { continue };
            match conn.phase {
                Phase::Ready | Phase::Paused => {
                    conn.phase = Phase::Draining;
                    let deadline = now + self.config.drain_timeout;
                    conn.drain_timer = Some(self.timers.schedule(deadline, Timer::Drain(*id)));
                    self.send(*id, &Message::GatewayClosing);
                    self.out.push_back(Output::Event(Event::Draining { conn: *id }));
                }
                Phase::AwaitingConnect | Phase::AwaitingReady => {
                    self.close(*id, 1001, "connect_gateway_closing", Some("GATEWAY_DRAINING"))
                }
                Phase::Draining => {}
            }
        }
        ids.len()
    }

    /// Close every socket 1001 `connect_gateway_closing` (process shutdown).
    pub fn close_all(&mut self, now: Instant) {
        self.clamp(now);
        let mut ids: Vec<ConnId> = self.conns.keys().copied().collect();
        ids.sort();
        for id in ids {
            self.close(id, 1001, "connect_gateway_closing", Some("GATEWAY_DRAINING"));
        }
    }

    // ---- outputs ----

    /// The next thing to do. Drain after every input and command.
    #[must_use]
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// The next deadline and why. A queued output makes it "now".
    #[must_use]
    pub fn poll_timeout(&self) -> Option<(Instant, Timer)> {
        if !self.out.is_empty() {
            return Some((self.last_now, Timer::PendingOutput));
        }
        self.timers.next().map(|(at, t)| (at, t.clone()))
    }

    /// Whether outputs are queued (a cheaper check than `poll_timeout`).
    pub fn has_output(&self) -> bool {
        !self.out.is_empty()
    }

    // ---- internals ----

    /// READY sent after an accepted WORKER_CONNECT (called by the handshake).
    fn establish(&mut self, now: Instant, id: ConnId, worker: WorkerInfo) {
        let Some(conn) = self.conns.get_mut(&id) else { return };
        self.timers.cancel(conn.timer.take());
        conn.instance_id.clone_from(&worker.instance_id);
        conn.phase = if worker.manual_readiness_ack { Phase::AwaitingReady } else { Phase::Ready };
        conn.last_heartbeat = now;
        let tick = now + self.config.heartbeat_interval;
        conn.timer = Some(self.timers.schedule(tick, Timer::HeartbeatCheck(id)));
        let routable = conn.phase == Phase::Ready;
        self.out.push_back(Output::Send { conn: id, frame: self.ready_frame.clone() });
        self.out.push_back(Output::Event(Event::Connected { conn: id, worker: Box::new(worker) }));
        if routable {
            self.out.push_back(Output::Event(Event::Ready { conn: id }));
        }
    }

    fn heartbeat_check(&mut self, now: Instant, due: Instant, id: ConnId) {
        let interval = self.config.heartbeat_interval;
        let Some(conn) = self.conns.get_mut(&id) else { return };
        conn.timer = None;
        if now.saturating_duration_since(conn.last_heartbeat) > interval * self.config.heartbeat_misses {
            return self.abort(id, "CONSECUTIVE_HEARTBEATS_MISSED");
        }
        let next = (due + interval).max(now + interval / 2);
        conn.timer = Some(self.timers.schedule(next, Timer::HeartbeatCheck(id)));
    }

    fn lease_expired(&mut self, request_id: String) {
        let Some(lease) = self.leases.remove(&request_id) else { return };
        if let Some(conn) = self.conns.get_mut(&lease.conn) {
            conn.pending_acks.remove(&request_id);
        }
        self.out.push_back(Output::Event(Event::LeaseExpired { request_id, acked: lease.acked }));
    }

    fn finish_lease(&mut self, request_id: &str) {
        if let Some(lease) = self.leases.remove(request_id) {
            self.timers.cancel(Some(lease.timer));
        }
    }

    /// Requests forwarded on `id` and never acked: drop their leases so that the executor re-routes them.
    fn release_pending(&mut self, id: ConnId) -> Vec<String> {
        let Some(conn) = self.conns.get_mut(&id) else { return Vec::new() };
        let mut released: Vec<String> = conn.pending_acks.drain().collect();
        released.sort();
        for r in &released {
            self.finish_lease(r);
        }
        released
    }

    fn send(&mut self, id: ConnId, msg: &Message) {
        self.out.push_back(Output::Send { conn: id, frame: encode(msg) });
    }

    /// Close with a frame; `recorded` overrides the disconnect reason (default: the close reason).
    fn close(&mut self, id: ConnId, code: u16, reason: &str, recorded: Option<&str>) {
        if !self.conns.contains_key(&id) {
            return;
        }
        let frame = CloseFrame::new(code, reason);
        self.out.push_back(Output::Close { conn: id, frame: Some(frame.clone()) });
        let reason = recorded.unwrap_or(reason).to_owned();
        self.remove(id, Disconnect { reason, close: Some(frame), by_gateway: true });
    }

    /// Drop the socket without a close frame (Inngest's `CloseNow`).
    fn abort(&mut self, id: ConnId, reason: &str) {
        self.out.push_back(Output::Close { conn: id, frame: None });
        self.remove(id, Disconnect { reason: reason.to_owned(), close: None, by_gateway: true });
    }

    fn remove(&mut self, id: ConnId, disconnect: Disconnect) {
        let released = self.release_pending(id);
        let Some(conn) = self.conns.remove(&id) else { return };
        self.timers.cancel(conn.timer);
        self.timers.cancel(conn.drain_timer);
        self.out.push_back(Output::Event(Event::Disconnected { conn: id, disconnect, released }));
    }

    fn clamp(&mut self, now: Instant) -> Instant {
        self.last_now = self.last_now.max(now);
        self.last_now
    }
}

fn group_name(base: &str, n: u32) -> String {
    if n == 1 { base.to_owned() } else { format!("{base}-{n}") }
}

fn encode(msg: &Message) -> Bytes {
    // Gateway-built control frames are tiny; the only large one (a request) goes through `forward`.
    msg.encode(&Limits { max_send_frame: usize::MAX, max_recv_frame: 0 }).unwrap_or_default()
}
