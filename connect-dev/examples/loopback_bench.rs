//! Runs per second through a whole dev server over loopback sockets: events
//! in through the library API, requests out over the WebSocket to a minimal
//! blocking worker (ack + reply per request, on its own thread), replies back,
//! runs ended. Compare with `connect-core/examples/gateway_bench.rs` (the
//! machine alone) to see what the shell and the sockets cost.
//!
//! ```text
//! cargo run --release -p connect-dev --example loopback_bench [-- RUNS]
//! ```

use std::io::ErrorKind;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use bytes::Bytes;
use connect_core::payload::{FunctionConfig, Trigger};
use connect_core::wire::*;
use connect_dev::{DevConfig, DevServer, RunStatus};
use tokio_tungstenite::tungstenite::{self, Message as Ws, client::IntoClientRequest};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let runs: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(50_000);
    let dev = DevServer::spawn(DevConfig::ephemeral())?;
    let api = dev.api_addr();
    let worker = std::thread::spawn(move || worker(api));
    dev.wait_for_function("bench-f", Duration::from_secs(10))?;

    let start = Instant::now();
    let mut last = String::new();
    for chunk in (0..runs).collect::<Vec<_>>().chunks(500) {
        let ids =
            dev.send_events(chunk.iter().map(|n| ("bench/e".to_owned(), serde_json::json!({ "n": n }))))?;
        last = ids.last().cloned().unwrap_or_default();
    }
    let run = dev.wait_for_run_end(&last, Duration::from_secs(120))?;
    let elapsed = start.elapsed();
    let summary = dev.summary()?;
    assert_eq!(run.status, RunStatus::Completed);
    println!(
        "loopback_bench: {} runs completed in {:.2?}: {:.0} runs/s (dev server + one blocking worker, loopback)",
        summary.completed,
        elapsed,
        summary.completed as f64 / elapsed.as_secs_f64()
    );
    dev.shutdown();
    let _ = worker.join();
    Ok(())
}

fn frame(msg: Message) -> Bytes {
    msg.encode(&Limits::default()).unwrap_or_default()
}

/// Start, handshake, then answer every request with an ack and a DONE reply, batching writes per read burst.
fn worker(api: std::net::SocketAddr) {
    let start = start_call(api);
    let mut req = start.gateway_endpoint.as_str().into_client_request().expect("request");
    req.headers_mut().insert("Sec-WebSocket-Protocol", SUBPROTOCOL.parse().expect("header"));
    let tcp = TcpStream::connect(
        start.gateway_endpoint.trim_start_matches("ws://").trim_end_matches("/v0/connect"),
    )
    .expect("dial");
    tcp.set_nodelay(true).ok();
    let (mut ws, _) = tungstenite::client(req, tcp).expect("upgrade");
    let f = FunctionConfig::new("bench-f", "f", Trigger::event("bench/e"));
    let hello = WorkerConnectRequestData {
        connection_id: start.connection_id,
        instance_id: "bench".into(),
        auth_data: Some(AuthData { session_token: start.session_token, sync_token: String::new() }),
        capabilities: Bytes::from_static(br#"{"connect":"v1"}"#),
        apps: vec![AppConfiguration {
            app_name: "bench".into(),
            functions: Bytes::from(serde_json::to_vec(&[f]).expect("json")),
            ..Default::default()
        }],
        sdk_language: "bench".into(),
        ..Default::default()
    };
    ws.send(Ws::Binary(frame(Message::WorkerConnect(Box::new(hello))))).expect("connect");
    loop {
        let msg = match ws.read() {
            Ok(Ws::Binary(b)) => b,
            Ok(Ws::Close(_)) | Err(_) => return,
            Ok(_) => continue,
        };
        if let Ok(Message::GatewayExecutorRequest(r)) = Message::decode(msg, &Limits::default()) {
            let ack = WorkerRequestAckData {
                request_id: r.request_id.clone(),
                run_id: r.run_id.clone(),
                ..Default::default()
            };
            let reply = SdkResponse {
                request_id: r.request_id,
                status: SdkResponseStatus::Done as i32,
                body: Bytes::from_static(b"true"),
                system_trace_ctx: r.system_trace_ctx,
                run_id: r.run_id,
                ..Default::default()
            };
            let _ = ws.write(Ws::Binary(frame(Message::WorkerRequestAck(Box::new(ack)))));
            let _ = ws.write(Ws::Binary(frame(Message::WorkerReply(Box::new(reply)))));
        }
        if would_block(&ws) {
            let _ = ws.flush();
        }
    }
}

/// Flush unless more input is already waiting (then the next read batches with it).
fn would_block(ws: &tungstenite::WebSocket<TcpStream>) -> bool {
    ws.get_ref().set_nonblocking(true).ok();
    let r = ws.get_ref().peek(&mut [0u8; 1]);
    ws.get_ref().set_nonblocking(false).ok();
    matches!(r, Err(e) if e.kind() == ErrorKind::WouldBlock)
}

fn start_call(api: std::net::SocketAddr) -> StartResponse {
    use std::io::{Read, Write};
    let mut s = TcpStream::connect(api).expect("api");
    write!(
        s,
        "POST /v0/connect/start HTTP/1.1\r\nHost: {api}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .expect("write");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read");
    let at = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("headers") + 4;
    decode_body(Bytes::from(raw[at..].to_vec()), "StartResponse").expect("StartResponse")
}
