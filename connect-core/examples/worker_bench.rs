//! The worker machine's request cycle, and its lease bookkeeping.
//!
//! Run: `cargo run --release -p connect-core --example worker_bench`
//!
//! One cycle is what a request costs the connection thread: a
//! GATEWAY_EXECUTOR_REQUEST frame decoded, ACKed (the ACK frame encoded),
//! handed to the app as an event, the app's reply encoded as WORKER_REPLY,
//! and the WORKER_REPLY_ACK decoded and reported. The machine holds 10,000
//! requests in flight throughout (each cycle delivers one new request and
//! finishes the oldest). Frames are prepared outside the timed region, as a
//! socket would hand them over. Heap allocations are counted by a
//! `#[global_allocator]` wrapping `System` (`stats_alloc`, since the workspace
//! forbids `unsafe` in our own code). The decode of the request frame alone
//! is measured in the same run, to show how much of a cycle is the wire layer's:
//! `Message::decode` allocates the boxed request and each of its ten non-empty
//! strings (the `Invocation` event hands that struct to the app), plus one
//! when a frame built from a `Vec` is first sliced. The machine's own share
//! is the request key, the ACK frame, the reply frame and the `ReplyAcked`
//! event's id string, plus the timer queues' amortised node allocations.
//!
//! The second table is the cost of one `handle_timeout` with N leases held
//! and only a few due: it should stay flat as N grows (a timer queue, not a
//! scan).

use std::alloc::System;
use std::hint::black_box;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use connect_core::payload::{FunctionConfig, Trigger};
use connect_core::wire::{
    ConnectMessage, ExecutorRequest, GatewayConnectionReadyData, GatewayExecutorRequestData, Limits, Message,
    StartResponse, WorkerReplyAckData, encode_body,
};
use connect_core::worker::{ConnId, Durable, HttpResponse, Output, Reply, Worker, WorkerConfig};
use prost::Message as _;
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const IN_FLIGHT: usize = 10_000;
const CYCLES_PER_ROUND: usize = 20_000;
const ROUNDS: usize = 7;

fn request_id(i: usize) -> String {
    format!("01JQ9A2B1C2D3E4F{i:010}")
}

/// A request as the gateway sends it (ULIDs, UUIDs, trace contexts, a 1 KiB payload).
fn request(i: usize, lease: &str) -> GatewayExecutorRequestData {
    let payload = format!(
        "{{\"event\":{{\"name\":\"shop/order.created\",\"data\":{{\"blob\":\"{}\"}}}}}}",
        "x".repeat(960)
    );
    GatewayExecutorRequestData {
        request_id: request_id(i),
        account_id: "3f1c2b8e-5d4a-4e6f-9a7b-1c2d3e4f5a6b".into(),
        env_id: "7a9b8c6d-1e2f-4a3b-8c4d-5e6f7a8b9c0d".into(),
        app_id: "c0ffee00-1234-4abc-9def-0123456789ab".into(),
        app_name: "shop".into(),
        function_id: "f00dbabe-4321-4cba-8fed-ba9876543210".into(),
        function_slug: "shop-process-order".into(),
        step_id: Some("step".into()),
        request_payload: Bytes::from(payload),
        system_trace_ctx: Bytes::from_static(
            br#"{"traceparent":"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}"#,
        ),
        user_trace_ctx: Bytes::from_static(
            br#"{"traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}"#,
        ),
        run_id: "01JQ9A1B1C2D3E4F5G6H7J8K9M".into(),
        lease_id: lease.into(),
        job_id: String::new(),
    }
}

fn frame(m: Message) -> Bytes {
    m.encode(&Limits::default()).expect("encodes")
}

/// A worker with an ACTIVE connection, driven through the handshake by hand.
fn connected_worker(now: Instant, wall: SystemTime) -> (Worker, ConnId) {
    let f = FunctionConfig::new("shop-process-order", "process order", Trigger::event("shop/order.created"));
    let config = WorkerConfig::new("shop", vec![f], "bench-1", wall);
    let mut w = Worker::new(config, Durable::default(), now).expect("config");
    let mut conn = None;
    while let Some(out) = w.poll_output() {
        if let Output::Http { id, .. } = out {
            let body = encode_body(&StartResponse {
                connection_id: ulid::Ulid::from_parts(1, 1).to_string(),
                gateway_endpoint: "ws://bench/v0/connect".into(),
                gateway_group: "gw".into(),
                session_token: "jwt".into(),
                sync_token: "sync".into(),
            });
            w.handle_http_response(now, id, Ok(HttpResponse { status: 200, body }));
        } else if let Output::Connect { conn: c, .. } = out {
            conn = Some(c);
            w.handle_connected(now, c);
            w.handle_frame(now, c, Bytes::new());
            let ready = GatewayConnectionReadyData {
                heartbeat_interval: "10s".into(),
                extend_lease_interval: "30s".into(),
                status_interval: "0s".into(),
            };
            w.handle_frame(now, c, frame(Message::GatewayConnectionReady(ready)));
        }
    }
    (w, conn.expect("dialed"))
}

fn drain(w: &mut Worker) -> usize {
    let mut n = 0;
    while let Some(out) = w.poll_output() {
        black_box(&out);
        n += 1;
    }
    n
}

fn lease_for(wall: SystemTime, at: Duration) -> String {
    let ms = (wall + at + Duration::from_secs(120)).duration_since(SystemTime::UNIX_EPOCH).expect("epoch");
    ulid::Ulid::from_parts(ms.as_millis() as u64, 7).to_string()
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn cycle_bench() {
    let base = Instant::now();
    let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1_750_000_000);
    let (mut w, conn) = connected_worker(base, wall);
    let lease = lease_for(wall, Duration::ZERO);
    for i in 0..IN_FLIGHT {
        w.handle_frame(base, conn, frame(Message::GatewayExecutorRequest(Box::new(request(i, &lease)))));
        drain(&mut w);
    }
    assert_eq!(w.in_flight(), IN_FLIGHT);

    let body = Bytes::from_static(b"{\"ok\":true}");
    let mut next = IN_FLIGHT;
    let (mut cycle, mut decode, mut prost) = (Samples::default(), Samples::default(), Samples::default());
    for _ in 0..ROUNDS {
        // Untimed: the frames a socket would hand over, and the ids the app would reply to.
        let reqs: Vec<Bytes> = (next..next + CYCLES_PER_ROUND)
            .map(|i| frame(Message::GatewayExecutorRequest(Box::new(request(i, &lease)))))
            .collect();
        let done: Vec<String> =
            (next - IN_FLIGHT..next - IN_FLIGHT + CYCLES_PER_ROUND).map(request_id).collect();
        let acks: Vec<Bytes> = done
            .iter()
            .map(|id| frame(Message::WorkerReplyAck(WorkerReplyAckData { request_id: id.clone() })))
            .collect();
        let now = base; // no timer is due within the measurement

        // Copies of the request frames for the decode-only measurements.
        let reqs_again: Vec<Bytes> = reqs.iter().map(|f| Bytes::copy_from_slice(f)).collect();
        let reqs_prost: Vec<Bytes> = reqs.iter().map(|f| Bytes::copy_from_slice(f)).collect();

        cycle.measure(|| run_cycles(&mut w, conn, now, reqs, &done, acks, &body));
        assert_eq!(w.in_flight(), IN_FLIGHT);
        assert_eq!(w.unacked_replies(), 0);
        decode.measure(|| decode_all(reqs_again));
        prost.measure(|| decode_all_prost(reqs_prost));
        next += CYCLES_PER_ROUND;
    }
    println!(
        "request cycle with {IN_FLIGHT} requests in flight ({ROUNDS} rounds of {CYCLES_PER_ROUND}, medians)"
    );
    println!("{:<44} {:>10} {:>10} {:>14}", "", "ns/cycle", "cpu ns", "allocs/cycle");
    let row = |label: &str, [wall, cpu, allocs]: [f64; 3]| {
        let cpu = if cpu.is_nan() { "-".to_owned() } else { format!("{cpu:.0}") };
        println!("{label:<44} {wall:>10.0} {cpu:>10} {allocs:>14.2}");
    };
    let (cycle, decode) = (cycle.medians(), decode.medians());
    row("full cycle (decode, ack, reply, reply ack)", cycle);
    row("  of which: decode of the request", decode);
    row("  the rest (machine, ack and reply frames)", [0, 1, 2].map(|i| cycle[i] - decode[i]));
    row("for comparison: Message::decode (prost)", prost.medians());
    println!(
        "(ns/cycle: median wall time of {ROUNDS} rounds; cpu ns: mean time this thread was on a CPU \
         (Linux), which leaves out the time other processes held it on a shared machine)"
    );
}

/// Per-round measurements of one thing, each divided by the cycles in a round.
/// Per-round measurements of one thing, each divided by the cycles in a round.
#[derive(Default)]
struct Samples {
    wall: Vec<f64>,
    allocs: Vec<f64>,
    /// On-CPU time summed over every round: the scheduler accounts it in
    /// ticks (a few ms, ~10% of a round), so a per-round median would be coarse.
    cpu: Option<u64>,
    cycles: usize,
}

impl Samples {
    fn measure(&mut self, f: impl FnOnce()) {
        let n = CYCLES_PER_ROUND as f64;
        let region = Region::new(GLOBAL);
        let (t0, c0) = (Instant::now(), cpu_ns());
        f();
        let (wall, c1) = (t0.elapsed(), cpu_ns());
        let allocs = region.change().allocations;
        self.wall.push(wall.as_nanos() as f64 / n);
        self.allocs.push(allocs as f64 / n);
        let round = c0.zip(c1).map(|(a, b)| b - a);
        self.cpu = if self.cycles == 0 { round } else { self.cpu.zip(round).map(|(a, b)| a + b) };
        self.cycles += CYCLES_PER_ROUND;
    }

    /// Median wall ns, mean on-CPU ns (NaN if unknown), median allocations.
    fn medians(&self) -> [f64; 3] {
        let cpu = self.cpu.map_or(f64::NAN, |c| c as f64 / self.cycles as f64);
        [median(&self.wall), cpu, median(&self.allocs)]
    }
}

/// Time this thread has spent on a CPU, in ns (Linux's scheduler statistics).
fn cpu_ns() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    stat.split_whitespace().next()?.parse().ok()
}

/// The timed loop of [`cycle_bench`]: one cycle per request frame. Kept out
/// of line so that a profiler can be pointed at it alone, e.g.
/// `valgrind --tool=callgrind --toggle-collect='*run_cycles*' worker_bench cycle`.
#[inline(never)]
fn run_cycles(
    w: &mut Worker,
    conn: ConnId,
    now: Instant,
    reqs: Vec<Bytes>,
    done: &[String],
    acks: Vec<Bytes>,
    body: &Bytes,
) {
    for ((req, id), ack) in reqs.into_iter().zip(done).zip(acks) {
        w.handle_frame(now, conn, req);
        drain(w);
        w.reply(now, id, Reply::done(body.clone())).expect("known request");
        drain(w);
        w.handle_frame(now, conn, ack);
        drain(w);
    }
}

/// The decode-only measurement of [`cycle_bench`] (`--toggle-collect='*decode_all*'`):
/// the envelope, then the request as the worker reads it.
#[inline(never)]
fn decode_all(frames: Vec<Bytes>) {
    for f in frames {
        let envelope = ConnectMessage::decode(f).expect("envelope");
        black_box(ExecutorRequest::decode(envelope.payload).expect("decodes"));
    }
}

/// The same frames through `Message::decode` (prost's owned structs), for comparison.
#[inline(never)]
fn decode_all_prost(frames: Vec<Bytes>) {
    for f in frames {
        black_box(Message::decode(f, &Limits::default()).expect("decodes"));
    }
}

/// One handle_timeout with `held` leases, 10 of them due.
fn lease_tick_bench() {
    println!();
    println!("handle_timeout with N leases held, 10 due (medians of {ROUNDS})");
    println!("{:>10} {:>12} {:>12}", "leases", "ns/tick", "ns/due");
    for held in [1_000usize, 10_000, 100_000] {
        let base = Instant::now();
        let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1_750_000_000);
        let (mut w, conn) = connected_worker(base, wall);
        // Requests delivered evenly over 30 s: their first extensions fall due
        // evenly over the next 30 s. The gateway answers every heartbeat.
        let extend = Duration::from_secs(30);
        let spacing = extend / held as u32;
        for i in 0..held {
            let t = base + spacing * i as u32;
            let lease = lease_for(wall, t - base);
            w.handle_frame(t, conn, frame(Message::GatewayExecutorRequest(Box::new(request(i, &lease)))));
            if i % 1_000 == 0 {
                w.handle_timeout(t);
                w.handle_frame(t, conn, frame(Message::GatewayHeartbeat));
            }
            drain(&mut w);
        }
        let mut samples = vec![];
        for round in 0..ROUNDS as u32 {
            let at = base + extend + spacing * (10 * round + 9);
            let t0 = Instant::now();
            w.handle_timeout(at);
            let n = drain(&mut w);
            samples.push(t0.elapsed().as_nanos() as f64);
            assert!(n >= 10, "{n} outputs: the 10 extensions are due");
        }
        let per_tick = median(&samples);
        println!("{held:>10} {per_tick:>12.0} {:>12.0}", per_tick / 10.0);
    }
}

fn main() {
    // `worker_bench cycle` or `worker_bench leases` runs one part (for a profiler).
    let only = std::env::args().nth(1);
    if only.as_deref() != Some("leases") {
        cycle_bench();
    }
    if only.as_deref() != Some("cycle") {
        lease_tick_bench();
    }
}
