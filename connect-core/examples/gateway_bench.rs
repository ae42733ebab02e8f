//! Throughput of the gateway machine alone, so that later comparisons of
//! workers are not bounded by the gateway.
//!
//! A minimal in-process worker (decode the request, encode an ack and a
//! reply, decode the reply ack) drives `connect_core::gateway::Gateway`
//! with no sockets: one request cycle is forward -> GATEWAY_EXECUTOR_REQUEST
//! -> WORKER_REQUEST_ACK -> WORKER_REPLY -> WORKER_REPLY_ACK. Reported:
//! cycles per second of the whole loop, and of the gateway's share of it.
//! A second figure runs the whole dev server machine (`Server`: events, runs,
//! routing, retries bookkeeping) the same way.
//!
//! ```text
//! cargo run --release -p connect-core --example gateway_bench [-- CYCLES]
//! ```

use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use connect_core::gateway::executor::ExecutorConfig;
use connect_core::gateway::{ConnId, Gateway, GatewayConfig, Output, Server, ServerOutput};
use connect_core::payload::{FunctionConfig, Trigger};
use connect_core::wire::*;

fn main() {
    let cycles: u64 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(1_000_000);
    println!("gateway_bench: {cycles} request cycles per run (forward, request, ack, reply, reply ack)");
    for depth in [1usize, 64] {
        let (total, gateway_share) = gateway_only(cycles, depth);
        println!(
            "  gateway machine, {depth:>2} in flight: {:>9.0} cycles/s (whole loop), {:>9.0} cycles/s (gateway share, {:.2} us/cycle)",
            cycles as f64 / total.as_secs_f64(),
            cycles as f64 / gateway_share.as_secs_f64(),
            gateway_share.as_secs_f64() * 1e6 / cycles as f64,
        );
    }
    let runs = cycles / 4;
    let total = server(runs);
    println!(
        "  dev server machine (events -> runs -> routing -> replies), 64 in flight: {:>9.0} runs/s",
        runs as f64 / total.as_secs_f64()
    );
}

const LIMITS: Limits = Limits { max_send_frame: GATEWAY_READ_LIMIT, max_recv_frame: 16 * 1024 * 1024 };

fn functions() -> Bytes {
    let f = FunctionConfig::new("bench-f", "f", Trigger::event("bench/e"));
    Bytes::from(serde_json::to_vec(&[f]).expect("json"))
}

fn frame(msg: Message) -> Bytes {
    msg.encode(&LIMITS).expect("encode")
}

/// Start + HELLO + WORKER_CONNECT (no manual ack) on either machine: a Ready connection.
trait Handshake {
    fn start(&mut self, now: Instant) -> StartResponse;
    fn accept(&mut self, now: Instant) -> ConnId;
    fn frame(&mut self, now: Instant, conn: ConnId, frame: Bytes);

    fn handshake(&mut self, now: Instant) -> ConnId {
        let start = self.start(now);
        let conn = self.accept(now);
        let hello = WorkerConnectRequestData {
            connection_id: start.connection_id,
            instance_id: "bench".into(),
            auth_data: Some(AuthData { session_token: start.session_token, sync_token: String::new() }),
            capabilities: Bytes::from_static(br#"{"connect":"v1"}"#),
            apps: vec![AppConfiguration {
                app_name: "bench".into(),
                functions: functions(),
                ..Default::default()
            }],
            sdk_language: "bench".into(),
            ..Default::default()
        };
        self.frame(now, conn, frame(Message::WorkerConnect(Box::new(hello))));
        conn
    }
}

impl Handshake for Gateway {
    fn start(&mut self, now: Instant) -> StartResponse {
        self.handle_start(now, None, Bytes::new(), "ws://bench".into()).expect("start")
    }
    fn accept(&mut self, now: Instant) -> ConnId {
        Gateway::accept(self, now)
    }
    fn frame(&mut self, now: Instant, conn: ConnId, frame: Bytes) {
        self.handle_frame(now, conn, frame)
    }
}

impl Handshake for Server {
    fn start(&mut self, now: Instant) -> StartResponse {
        self.handle_start(now, None, Bytes::new(), "ws://bench".into()).expect("start")
    }
    fn accept(&mut self, now: Instant) -> ConnId {
        Server::accept(self, now)
    }
    fn frame(&mut self, now: Instant, conn: ConnId, frame: Bytes) {
        self.handle_frame(now, conn, frame)
    }
}

/// The worker's half of a cycle: read a request frame, answer ack + reply.
fn worker_answers(request_frame: Bytes) -> Option<[Bytes; 2]> {
    let Ok(Message::GatewayExecutorRequest(req)) = Message::decode(request_frame, &LIMITS) else {
        return None;
    };
    let ack = WorkerRequestAckData {
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
    let reply = SdkResponse {
        request_id: req.request_id.clone(),
        account_id: req.account_id.clone(),
        env_id: req.env_id.clone(),
        app_id: req.app_id.clone(),
        status: SdkResponseStatus::NotCompleted as i32,
        body: Bytes::from_static(
            br#"[{"op":"RunComplete","id":"0737c22d3bfae812339732d14d8c7dbd6dc4e09c","data":{"ok":true}}]"#,
        ),
        sdk_version: "bench:v0".into(),
        request_version: 2,
        system_trace_ctx: req.system_trace_ctx,
        user_trace_ctx: req.user_trace_ctx,
        run_id: req.run_id,
        ..Default::default()
    };
    Some([frame(Message::WorkerRequestAck(Box::new(ack))), frame(Message::WorkerReply(Box::new(reply)))])
}

fn request(n: u64) -> GatewayExecutorRequestData {
    GatewayExecutorRequestData {
        request_id: format!("01JREQ{n:020}"),
        account_id: "00000000-0000-4000-a000-000000000000".into(),
        env_id: "00000000-0000-4000-b000-000000000000".into(),
        app_id: "5f0c7a4e-9d1b-5c3e-8a2f-1b2c3d4e5f60".into(),
        app_name: "bench".into(),
        function_id: "7a1b2c3d-4e5f-5a6b-8c7d-8e9f0a1b2c3d".into(),
        function_slug: "bench-f".into(),
        step_id: Some("step".into()),
        request_payload: Bytes::from_static(
            br#"{"ctx":{"attempt":0,"fn_id":"7a1b2c3d-4e5f-5a6b-8c7d-8e9f0a1b2c3d","max_attempts":4,"run_id":"01JRUN","step_id":"step"},"event":{"data":{"n":1},"id":"01JEVT","name":"bench/e","ts":1,"user":{}},"events":[],"steps":{},"use_api":false,"version":-1}"#,
        ),
        system_trace_ctx: Bytes::from_static(br#"{"traceparent":"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}"#),
        user_trace_ctx: Bytes::from_static(br#"{"traceparent":"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}"#),
        run_id: format!("01JRUN{n:020}"),
        lease_id: String::new(),
        job_id: String::new(),
    }
}

/// Returns (whole loop time, time inside gateway calls).
fn gateway_only(cycles: u64, depth: usize) -> (Duration, Duration) {
    let t0 = Instant::now();
    let mut gw = Gateway::new(GatewayConfig { seed: 1, ..GatewayConfig::default() }, t0, SystemTime::now());
    let mut inbound: Vec<Bytes> = Vec::new();
    let conn = gw.handshake(t0);
    while gw.poll_output().is_some() {}
    let mut in_gateway = Duration::ZERO;
    let start = Instant::now();
    let mut now = start;
    let (mut sent, mut done) = (0u64, 0u64);
    while done < cycles {
        if sent % 1024 == 0 {
            now = Instant::now();
        }
        let g0 = Instant::now();
        while sent < cycles && sent - done < depth as u64 {
            gw.forward(now, conn, request(sent)).expect("forward");
            sent += 1;
        }
        inbound.clear();
        while let Some(out) = gw.poll_output() {
            if let Output::Send { frame, .. } = out {
                inbound.push(frame);
            }
        }
        in_gateway += g0.elapsed();
        let mut answers = Vec::with_capacity(inbound.len() * 2);
        for f in inbound.drain(..) {
            answers.extend(worker_answers(f).into_iter().flatten());
        }
        let g1 = Instant::now();
        for a in answers {
            gw.handle_frame(now, conn, a);
        }
        while let Some(out) = gw.poll_output() {
            if let Output::Send { frame, .. } = out {
                inbound.push(frame);
            }
        }
        in_gateway += g1.elapsed();
        for f in inbound.drain(..) {
            if let Ok(Message::WorkerReplyAck(_)) = Message::decode(f, &LIMITS) {
                done += 1;
            }
        }
    }
    (start.elapsed(), in_gateway)
}

fn server(runs: u64) -> Duration {
    let t0 = Instant::now();
    let mut s = Server::new(
        GatewayConfig { seed: 1, ..GatewayConfig::default() },
        ExecutorConfig::default(),
        t0,
        SystemTime::now(),
    );
    let conn = s.handshake(t0);
    while s.poll_output().is_some() {}
    let start = Instant::now();
    let (mut sent, mut done) = (0u64, 0u64);
    let mut frames = Vec::new();
    while done < runs {
        let now = Instant::now();
        while sent < runs && sent - done < 64 {
            s.send_event(now, "bench/e", serde_json::json!({ "n": sent }), None, None);
            sent += 1;
        }
        while let Some(out) = s.poll_output() {
            match out {
                ServerOutput::Send { frame, .. } => frames.push(frame),
                ServerOutput::Run(connect_core::gateway::executor::RunEvent::Ended { .. }) => done += 1,
                _ => {}
            }
        }
        for f in frames.drain(..) {
            if let Some(answers) = worker_answers(f) {
                for a in answers {
                    s.handle_frame(now, conn, a);
                }
            }
        }
    }
    start.elapsed()
}
