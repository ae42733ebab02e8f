//! Wire codec throughput: encode and decode of a GATEWAY_EXECUTOR_REQUEST with
//! a 1 KiB and a 1 MiB `request_payload`, beside a plain copy of the same frame
//! bytes measured in the same run.
//!
//! Run: `cargo run --release -p connect-core --example wire_bench`
//!
//! `req pay` is the size of `request_payload`; `frame B` the whole encoded
//! frame. Each measurement runs 9 rounds; the table shows the medians. MB/s counts
//! frame bytes (1 MB = 10^6 bytes). The ratios are time per operation divided
//! by the copy's time (lower is better; the issue's target is decode of a
//! 1 MiB request within 2x of the copy). Heap allocations per operation are
//! counted by a `#[global_allocator]` wrapping `System` (`stats_alloc`, since
//! this workspace forbids `unsafe` code in our own crates).

use std::alloc::System;
use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::Bytes;
use connect_core::wire::{GatewayExecutorRequestData, Limits, Message};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const ROUNDS: usize = 9;
/// Wall time each round aims for.
const ROUND_TARGET: Duration = Duration::from_millis(25);

/// A request as the gateway sends it: ULIDs, UUIDs, W3C trace context, and a
/// JSON request payload padded to `payload_len` bytes.
fn request(payload_len: usize) -> GatewayExecutorRequestData {
    let head = r#"{"event":{"name":"app/order.created","id":"01JQ9A0B1C2D3E4F5G6H7J8K9M","ts":1796293230456,"data":{"blob":""#;
    let tail = r#""}},"events":[],"steps":{},"ctx":{"fn_id":"f00dbabe-4321-4cba-8fed-ba9876543210","run_id":"01JQ9A1B1C2D3E4F5G6H7J8K9M","attempt":0,"max_attempts":4,"stack":{"stack":[],"current":0}},"version":2,"use_api":false}"#;
    let pad = payload_len.saturating_sub(head.len() + tail.len());
    let mut payload = String::with_capacity(payload_len);
    payload.push_str(head);
    payload.extend(std::iter::repeat_n('x', pad));
    payload.push_str(tail);
    assert_eq!(payload.len(), payload_len.max(head.len() + tail.len()));
    GatewayExecutorRequestData {
        request_id: "01JQ9A2B1C2D3E4F5G6H7J8K9M".into(),
        account_id: "3f1c2b8e-5d4a-4e6f-9a7b-1c2d3e4f5a6b".into(),
        env_id: "7a9b8c6d-1e2f-4a3b-8c4d-5e6f7a8b9c0d".into(),
        app_id: "c0ffee00-1234-4abc-9def-0123456789ab".into(),
        app_name: "shop-backend".into(),
        function_id: "f00dbabe-4321-4cba-8fed-ba9876543210".into(),
        function_slug: "shop-backend-process-order".into(),
        step_id: Some("step".into()),
        request_payload: Bytes::from(payload),
        system_trace_ctx: Bytes::from_static(
            br#"{"traceparent":"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01","tracestate":"inngest@app=shop"}"#,
        ),
        user_trace_ctx: Bytes::from_static(br#"{"traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}"#),
        run_id: "01JQ9A1B1C2D3E4F5G6H7J8K9M".into(),
        lease_id: "01JQ9A3B1C2D3E4F5G6H7J8K9M".into(),
        job_id: "job-01JQ9A4B1C2D3E4F5G6H7J8K9M".into(),
    }
}

/// Median time per call of `f` over `ROUNDS` rounds.
fn measure<R>(mut f: impl FnMut() -> R) -> Duration {
    // Warm up and pick an iteration count that fills ROUND_TARGET.
    let start = Instant::now();
    let mut warm = 0u64;
    while start.elapsed() < ROUND_TARGET / 4 || warm < 3 {
        black_box(f());
        warm += 1;
    }
    let per_call = start.elapsed() / warm as u32;
    let iters = (ROUND_TARGET.as_nanos() / per_call.as_nanos().max(1)).clamp(3, 10_000_000) as u32;
    let mut rounds: Vec<Duration> = (0..ROUNDS)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..iters {
                black_box(f());
            }
            t.elapsed() / iters
        })
        .collect();
    rounds.sort();
    rounds[ROUNDS / 2]
}

/// Heap allocations (and bytes) of one call, the result dropped inside.
fn allocs<R>(mut f: impl FnMut() -> R) -> (usize, usize) {
    black_box(f()); // first call may promote shared buffers; count a steady-state one
    let region = Region::new(GLOBAL);
    drop(black_box(f()));
    let s = region.change();
    (s.allocations + s.reallocations, s.bytes_allocated + s.bytes_reallocated.max(0).unsigned_abs())
}

fn mbps(len: usize, per_op: Duration) -> f64 {
    len as f64 / per_op.as_secs_f64() / 1e6
}

fn fmt_time(d: Duration) -> String {
    let ns = d.as_secs_f64() * 1e9;
    if ns < 1e3 {
        format!("{ns:.0} ns")
    } else if ns < 1e6 {
        format!("{:.2} us", ns / 1e3)
    } else {
        format!("{:.2} ms", ns / 1e6)
    }
}

struct Row {
    label: &'static str,
    op: &'static str,
    time: Duration,
    frame_len: usize,
    ratio: f64,
    allocs: (usize, usize),
}

fn main() {
    let limits = Limits::default();
    let mut rows = Vec::new();
    let mut verdicts = Vec::new();
    for (label, payload_len) in [("1 KiB", 1024), ("1 MiB", 1024 * 1024)] {
        let msg = Message::GatewayExecutorRequest(Box::new(request(payload_len)));
        let frame = msg.encode(&limits).expect("encodes");
        // The frame must decode to the same message, sharing the payload memory.
        let Ok(Message::GatewayExecutorRequest(back)) = Message::decode(frame.clone(), &limits) else {
            panic!("frame does not decode back to a GATEWAY_EXECUTOR_REQUEST");
        };
        assert_eq!(Message::GatewayExecutorRequest(back.clone()), msg);
        let range = frame.as_ptr_range();
        let zero_copy = range.contains(&back.request_payload.as_ptr());

        let copy = measure(|| Bytes::copy_from_slice(black_box(&frame[..])));
        let decode = measure(|| Message::decode(black_box(frame.clone()), &limits));
        let encode = measure(|| black_box(&msg).encode(&limits));
        let copy_allocs = allocs(|| Bytes::copy_from_slice(black_box(&frame[..])));
        let decode_allocs = allocs(|| Message::decode(black_box(frame.clone()), &limits));
        let encode_allocs = allocs(|| black_box(&msg).encode(&limits));

        let ratio = |t: Duration| t.as_secs_f64() / copy.as_secs_f64();
        for (op, time, a) in [
            ("copy", copy, copy_allocs),
            ("decode", decode, decode_allocs),
            ("encode", encode, encode_allocs),
        ] {
            rows.push(Row { label, op, time, frame_len: frame.len(), ratio: ratio(time), allocs: a });
        }
        if payload_len == 1024 * 1024 {
            let met = ratio(decode) <= 2.0 && zero_copy;
            verdicts.push(format!(
                "target (decode of a 1 MiB request within 2x of the copy, payload not copied): {} \
                 (decode/copy = {:.3}, request_payload shares the frame's memory: {})",
                if met { "MET" } else { "NOT MET" },
                ratio(decode),
                if zero_copy { "yes, 0 payload copies" } else { "NO, it was copied" },
            ));
        } else {
            verdicts.push(format!(
                "{label}: request_payload shares the frame's memory: {}",
                if zero_copy { "yes" } else { "NO" }
            ));
        }
    }

    println!(
        "wire_bench: GATEWAY_EXECUTOR_REQUEST, median of {ROUNDS} rounds (~{} ms each)",
        ROUND_TARGET.as_millis()
    );
    println!(
        "{:<8} {:>9} {:<7} {:>10} {:>10} {:>8} {:>7} {:>11}",
        "req pay", "frame B", "op", "time/op", "MB/s", "x copy", "allocs", "alloc B"
    );
    for r in &rows {
        println!(
            "{:<8} {:>9} {:<7} {:>10} {:>10.0} {:>8.3} {:>7} {:>11}",
            r.label,
            r.frame_len,
            r.op,
            fmt_time(r.time),
            mbps(r.frame_len, r.time),
            r.ratio,
            r.allocs.0,
            r.allocs.1
        );
    }
    for v in verdicts {
        println!("{v}");
    }
}
