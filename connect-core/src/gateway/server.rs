//! A whole dev server, sans-IO: the [`Gateway`] and the [`Executor`] wired
//! together. Gateway events feed the executor; the executor's forwards go to
//! the gateway; everything else comes out of [`Server::poll_output`] for the
//! shell (frames, closes, and events to log or to wake waiters on).
//!
//! The run loop is the gateway's: call an input, then drain `poll_output`,
//! then sleep until `poll_timeout`.

use std::collections::VecDeque;
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use serde_json::Value;

use super::executor::{ExecOutput, Executor, ExecutorConfig, RunEvent};
use super::run::{ConnectionInfo, Run};
use super::{CloseFrame, ConnId, Event, Gateway, GatewayConfig, HttpError, Output, Timer};
use crate::wire::{FlushResponse, StartResponse};

/// What the shell must do or may log, in order.
#[derive(Clone, Debug, PartialEq)]
pub enum ServerOutput {
    Send {
        conn: ConnId,
        frame: Bytes,
    },
    Close {
        conn: ConnId,
        frame: Option<CloseFrame>,
    },
    /// A gateway event (already applied to the executor).
    Gateway(Event),
    Run(RunEvent),
}

#[derive(Debug)]
pub struct Server {
    gateway: Gateway,
    executor: Executor,
    out: VecDeque<ServerOutput>,
    now: Instant,
}

impl Server {
    /// The executor's heartbeat interval is taken from the gateway's.
    pub fn new(gateway: GatewayConfig, mut executor: ExecutorConfig, now: Instant, wall: SystemTime) -> Self {
        executor.heartbeat_interval = gateway.heartbeat_interval;
        Server {
            gateway: Gateway::new(gateway, now, wall),
            executor: Executor::new(executor, now, wall),
            out: VecDeque::new(),
            now,
        }
    }

    // ---- getters ----

    pub fn gateway(&self) -> &Gateway {
        &self.gateway
    }

    pub fn executor(&self) -> &Executor {
        &self.executor
    }

    pub fn run(&self, run_id: &str) -> Option<&Run> {
        self.executor.run(run_id)
    }

    pub fn runs_for_event(&self, event_id: &str) -> Vec<&Run> {
        self.executor.runs_for_event(event_id)
    }

    pub fn connections(&self) -> Vec<ConnectionInfo> {
        self.executor.connections()
    }

    // ---- inputs (each pumps both machines) ----

    pub fn accept(&mut self, now: Instant) -> ConnId {
        let id = self.gateway.accept(now);
        self.pump(now);
        id
    }

    pub fn handle_frame(&mut self, now: Instant, conn: ConnId, frame: Bytes) {
        self.gateway.handle_frame(now, conn, frame);
        self.pump(now);
    }

    pub fn handle_frame_too_large(&mut self, now: Instant, conn: ConnId) {
        self.gateway.handle_frame_too_large(now, conn);
        self.pump(now);
    }

    pub fn handle_closed(&mut self, now: Instant, conn: ConnId, close: Option<CloseFrame>) {
        self.gateway.handle_closed(now, conn, close);
        self.pump(now);
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        let now = self.clamp(now);
        self.gateway.handle_timeout(now);
        self.executor.handle_timeout(now);
        self.pump(now);
    }

    pub fn handle_start(
        &mut self,
        now: Instant,
        authorization: Option<&str>,
        body: Bytes,
        gateway_endpoint: String,
    ) -> Result<StartResponse, HttpError> {
        let r = self.gateway.handle_start(now, authorization, body, gateway_endpoint);
        self.pump(now);
        r
    }

    pub fn handle_flush(
        &mut self,
        now: Instant,
        authorization: Option<&str>,
        body: Bytes,
    ) -> Result<FlushResponse, HttpError> {
        let r = self.gateway.handle_flush(now, authorization, body);
        self.pump(now);
        r
    }

    // ---- commands ----

    /// An event (the body of `POST /e/{key}`, one element). Returns its internal id.
    pub fn send_event(
        &mut self,
        now: Instant,
        name: &str,
        data: Value,
        id: Option<String>,
        ts: Option<i64>,
    ) -> String {
        let now = self.clamp(now);
        let event_id = self.executor.send_event(now, name, data, id, ts);
        self.pump(now);
        event_id
    }

    pub fn cancel(&mut self, now: Instant, run_id: &str) -> bool {
        let now = self.clamp(now);
        let cancelled = self.executor.cancel(now, run_id);
        self.pump(now);
        cancelled
    }

    /// Drain the current gateway group; returns how many sockets it held.
    pub fn drain(&mut self, now: Instant) -> usize {
        let n = self.gateway.drain(now);
        self.pump(now);
        n
    }

    pub fn close_all(&mut self, now: Instant) {
        self.gateway.close_all(now);
        self.pump(now);
    }

    // ---- outputs ----

    #[must_use]
    pub fn poll_output(&mut self) -> Option<ServerOutput> {
        self.out.pop_front()
    }

    #[must_use]
    pub fn poll_timeout(&self) -> Option<(Instant, Timer)> {
        if !self.out.is_empty() {
            return Some((self.now, Timer::PendingOutput));
        }
        let gw = self.gateway.poll_timeout();
        match (gw, self.executor.poll_timeout()) {
            (Some((g, t)), Some(e)) if g <= e => Some((g, t)),
            (_, Some(e)) => Some((e, Timer::Retry)),
            (g, None) => g,
        }
    }

    /// Move everything both machines produced into the output queue, feeding each to the other.
    fn pump(&mut self, now: Instant) {
        let now = self.clamp(now);
        loop {
            let mut progressed = false;
            while let Some(o) = self.gateway.poll_output() {
                progressed = true;
                match o {
                    Output::Send { conn, frame } => self.out.push_back(ServerOutput::Send { conn, frame }),
                    Output::Close { conn, frame } => self.out.push_back(ServerOutput::Close { conn, frame }),
                    Output::Event(e) => {
                        self.executor.handle_event(now, &e);
                        self.out.push_back(ServerOutput::Gateway(e));
                    }
                }
            }
            while let Some(o) = self.executor.poll_output() {
                progressed = true;
                match o {
                    ExecOutput::Forward { conn, request } => {
                        let request_id = request.request_id.clone();
                        if let Err(e) = self.gateway.forward(now, conn, *request) {
                            self.executor.forward_failed(now, &request_id, e);
                        }
                    }
                    ExecOutput::Run(r) => self.out.push_back(ServerOutput::Run(r)),
                }
            }
            if !progressed {
                break;
            }
        }
    }

    fn clamp(&mut self, now: Instant) -> Instant {
        self.now = self.now.max(now);
        self.now
    }
}
