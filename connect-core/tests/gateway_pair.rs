//! The worker machine and the gateway machine talking to each other on
//! simulated time over a perfect link that a test can cut: the two halves of
//! this crate agree on the protocol, through reconnects and drains.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use connect_core::gateway::executor::ExecutorConfig;
use connect_core::gateway::run::RunStatus;
use connect_core::gateway::{self as gw, CloseFrame, GatewayConfig, Server, ServerOutput};
use connect_core::payload::{FunctionConfig, Trigger};
use connect_core::wire::encode_body;
use connect_core::worker::{self as wk, Durable, Event, HttpResponse, Output, Reply, Worker, WorkerConfig};

fn wall_base() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_750_000_000)
}

/// How the app answers an invocation.
#[derive(Clone, Copy, PartialEq, Eq)]
enum App {
    /// Reply at once with the event's data.
    Echo,
    /// Hold the request; the test replies later.
    Hold,
}

struct Pair {
    worker: Worker,
    server: Server,
    now: Instant,
    base: Instant,
    app: App,
    held: Vec<String>,
    /// Worker connection -> gateway connection, and back.
    w2g: HashMap<wk::ConnId, gw::ConnId>,
    g2w: HashMap<gw::ConnId, wk::ConnId>,
    /// Connections whose frames are lost both ways (a partition).
    cut: HashSet<wk::ConnId>,
    work: VecDeque<Work>,
}

enum Work {
    Worker(Output),
    Server(ServerOutput),
}

impl Pair {
    fn new(gateway: GatewayConfig, functions: Vec<FunctionConfig>) -> Pair {
        let base = Instant::now();
        let mut config = WorkerConfig::new("app", functions, "instance-1", wall_base());
        config.seed = 3;
        let worker = Worker::new(config, Durable::default(), base).expect("worker config");
        let executor = ExecutorConfig { seed: 5, ..ExecutorConfig::default() };
        let server = Server::new(GatewayConfig { seed: 9, ..gateway }, executor, base, wall_base());
        let mut pair = Pair {
            worker,
            server,
            now: base,
            base,
            app: App::Echo,
            held: Vec::new(),
            w2g: HashMap::new(),
            g2w: HashMap::new(),
            cut: HashSet::new(),
            work: VecDeque::new(),
        };
        pair.pump();
        pair
    }

    /// Deliver everything both sides produce until both are quiet.
    fn pump(&mut self) {
        loop {
            while let Some(o) = self.worker.poll_output() {
                self.work.push_back(Work::Worker(o));
            }
            while let Some(o) = self.server.poll_output() {
                self.work.push_back(Work::Server(o));
            }
            let Some(next) = self.work.pop_front() else { break };
            match next {
                Work::Worker(o) => self.deliver_worker_output(o),
                Work::Server(o) => self.deliver_server_output(o),
            }
        }
        for (at, why) in [
            self.worker.poll_timeout().map(|(a, w)| (a, format!("{w:?}"))),
            self.server.poll_timeout().map(|(a, w)| (a, format!("{w:?}"))),
        ]
        .into_iter()
        .flatten()
        {
            assert!(at > self.now, "spin: {why} at {at:?} <= now");
        }
    }

    fn deliver_worker_output(&mut self, o: Output) {
        let now = self.now;
        match o {
            Output::Http { id, request } => {
                let auth = request.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case("authorization"));
                let auth = auth.map(|(_, v)| v.as_str());
                let result = if request.url.ends_with("/v0/connect/start") {
                    self.server
                        .handle_start(now, auth, request.body, "ws://gw/v0/connect".into())
                        .map(|r| encode_body(&r))
                } else {
                    self.server.handle_flush(now, auth, request.body).map(|r| encode_body(&r))
                };
                let response = match result {
                    Ok(body) => HttpResponse { status: 200, body },
                    Err(e) => HttpResponse { status: e.status, body: Bytes::from(e.to_json().to_string()) },
                };
                self.worker.handle_http_response(now, id, Ok(response));
            }
            Output::Connect { conn, .. } => {
                let g = self.server.accept(now);
                self.w2g.insert(conn, g);
                self.g2w.insert(g, conn);
                self.worker.handle_connected(now, conn);
            }
            Output::Send { conn, frame } => {
                if let (Some(g), false) = (self.w2g.get(&conn), self.cut.contains(&conn)) {
                    self.server.handle_frame(now, *g, frame);
                }
            }
            Output::Close { conn, code, reason } => {
                if let Some(g) = self.w2g.remove(&conn) {
                    self.g2w.remove(&g);
                    self.server.handle_closed(now, g, Some(CloseFrame::new(code, reason)));
                }
            }
            Output::Event(Event::Invocation(req)) => match self.app {
                App::Echo => {
                    let payload: serde_json::Value =
                        serde_json::from_slice(req.request_payload()).expect("payload");
                    let body = serde_json::to_vec(&payload["event"]["data"]).expect("json");
                    self.worker.reply(now, req.request_id(), Reply::done(body)).expect("reply");
                }
                App::Hold => self.held.push(req.request_id().to_owned()),
            },
            Output::Event(_) => {}
        }
    }

    fn deliver_server_output(&mut self, o: ServerOutput) {
        let now = self.now;
        match o {
            ServerOutput::Send { conn, frame } => {
                if let Some(w) = self.g2w.get(&conn).filter(|w| !self.cut.contains(w)) {
                    self.worker.handle_frame(now, *w, frame);
                }
            }
            ServerOutput::Close { conn, frame } => {
                if let Some(w) = self.g2w.remove(&conn) {
                    self.w2g.remove(&w);
                    if !self.cut.contains(&w) {
                        self.worker.handle_closed(now, w, frame.map(|f| (f.code, f.reason)));
                    }
                }
            }
            ServerOutput::Gateway(_) | ServerOutput::Run(_) => {}
        }
    }

    fn advance(&mut self, d: Duration) {
        let target = self.now + d;
        loop {
            let next = [self.worker.poll_timeout().map(|t| t.0), self.server.poll_timeout().map(|t| t.0)]
                .into_iter()
                .flatten()
                .min();
            match next {
                Some(at) if at <= target => {
                    self.now = self.now.max(at);
                    self.worker.handle_timeout(self.now);
                    self.server.handle_timeout(self.now);
                    self.pump();
                }
                _ => break,
            }
        }
        self.now = target;
        self.worker.handle_timeout(self.now);
        self.server.handle_timeout(self.now);
        self.pump();
    }

    fn send_event(&mut self, n: u64) -> String {
        let id = self.server.send_event(self.now, "pair/e", serde_json::json!({ "n": n }), None, None);
        self.pump();
        id
    }

    fn status(&self, event: &str) -> RunStatus {
        self.server.runs_for_event(event)[0].status
    }

    fn elapsed(&self) -> Duration {
        self.now - self.base
    }
}

fn function() -> FunctionConfig {
    FunctionConfig::new("app-f", "f", Trigger::event("pair/e")).with_retries(2)
}

/// Ten minutes of protocol time: the worker connects through the start call
/// and handshake, a hundred events become completed runs with the event data
/// as output, and every heartbeat gap is one interval.
#[test]
fn worker_and_gateway_machines_complete_runs_together() {
    let mut p = Pair::new(GatewayConfig::default(), vec![function()]);
    p.advance(Duration::from_secs(1));
    assert_eq!(p.server.connections().len(), 1);
    let events: Vec<String> = (0..100).map(|n| p.send_event(n)).collect();
    for (n, e) in events.iter().enumerate() {
        let run = &p.server.runs_for_event(e)[0];
        assert_eq!(run.status, RunStatus::Completed);
        assert_eq!(run.output, Some(serde_json::json!({ "n": n })));
    }
    p.advance(Duration::from_secs(600));
    let conn = &p.server.connections()[0];
    assert!(conn.heartbeats >= 59, "{conn:?}");
    assert_eq!(conn.late, 0);
    assert!(conn.max_gap <= Duration::from_secs(10), "{:?}", conn.max_gap);
}

/// A long request is kept alive by the worker's lease extensions (30 s, two
/// minute leases) for ten minutes, then completes on its first attempt.
#[test]
fn lease_extensions_keep_a_long_run_on_its_first_attempt() {
    let mut p = Pair::new(GatewayConfig::default(), vec![function()]);
    p.advance(Duration::from_secs(1));
    p.app = App::Hold;
    let e = p.send_event(7);
    p.advance(Duration::from_secs(600));
    assert_eq!(p.status(&e), RunStatus::Running);
    let request_id = p.held.pop().expect("held request");
    p.worker.reply(p.now, &request_id, Reply::done(&b"\"late\""[..])).expect("reply");
    p.pump();
    let run = &p.server.runs_for_event(&e)[0];
    assert_eq!((run.status, run.attempts.len()), (RunStatus::Completed, 1));
}

/// A drain: the worker connects a replacement in the fresh group, moves over,
/// closes the old socket itself, and no run is lost or run twice.
#[test]
fn a_gateway_drain_moves_the_worker_without_losing_runs() {
    let mut p = Pair::new(GatewayConfig::default(), vec![function()]);
    p.advance(Duration::from_secs(1));
    p.app = App::Hold;
    let held = p.send_event(1);
    p.server.drain(p.now);
    p.pump();
    p.advance(Duration::from_secs(5));
    p.app = App::Echo;
    let after = p.send_event(2);
    assert_eq!(p.status(&after), RunStatus::Completed, "new work runs on the replacement");
    let request_id = p.held.pop().expect("held request");
    p.worker.reply(p.now, &request_id, Reply::done(&b"1"[..])).expect("reply");
    p.pump();
    p.advance(Duration::from_secs(30));
    let run = &p.server.runs_for_event(&held)[0];
    assert_eq!((run.status, run.attempts.len()), (RunStatus::Completed, 1));
    let conns = p.server.connections();
    assert_eq!(conns.len(), 2, "{conns:?}");
    assert_eq!(conns[1].group, "gw-dev-2");
    assert_eq!(
        conns[0].disconnect_reason.as_deref(),
        Some("WORKER_SHUTDOWN"),
        "closed by the worker: {:?}",
        conns[0]
    );
    assert_eq!(conns[1].disconnect_reason, None);
}

/// A partition: frames are lost both ways. The worker notices the missing
/// heartbeat answers and reconnects; the gateway drops the silent socket
/// after five intervals; the request survives on its first attempt because
/// the lease is extended over the new connection of the same instance.
#[test]
fn a_partitioned_connection_is_replaced_and_the_lease_survives() {
    let mut p = Pair::new(GatewayConfig::default(), vec![function()]);
    p.advance(Duration::from_secs(1));
    p.app = App::Hold;
    let e = p.send_event(3);
    let first = *p.w2g.keys().next().expect("one connection");
    p.cut.insert(first);
    p.advance(Duration::from_secs(90));
    let conns = p.server.connections();
    assert_eq!(conns[0].disconnect_reason.as_deref(), Some("CONSECUTIVE_HEARTBEATS_MISSED"), "{conns:?}");
    assert!(
        conns.len() >= 2 && conns.last().map(|c| c.disconnect_reason.is_none()) == Some(true),
        "{conns:?}"
    );
    p.advance(Duration::from_secs(200)); // past the first lease's two minutes
    assert_eq!(p.status(&e), RunStatus::Running);
    let request_id = p.held.pop().expect("held request");
    p.worker.reply(p.now, &request_id, Reply::done(&b"2"[..])).expect("reply");
    p.pump();
    let run = &p.server.runs_for_event(&e)[0];
    assert_eq!(
        (run.status, run.attempts.len()),
        (RunStatus::Completed, 1),
        "{run:?} after {:?}",
        p.elapsed()
    );
}
