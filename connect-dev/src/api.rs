//! The HTTP API listener (Inngest's port 8288): the connect start and flush
//! calls, the event API, the run API, and the dev server's own endpoints.
//!
//! | route | what |
//! |---|---|
//! | `POST /v0/connect/start`, `POST /v0/connect/flush` | protobuf in and out, as Inngest's connect API |
//! | `POST /e/{event_key}` | one event or an array; answers `{"ids": [...], "status": 200}`; 400 for an event without a name or whose `data` is not an object |
//! | `GET /v1/events/{event_id}`, `GET /v1/events/{event_id}/runs`, `GET /v1/runs/{run_id}` | `{"data": ...}` |
//! | `DELETE /v1/runs/{run_id}` | cancel a run |
//! | `POST /v0/dev/drain` | drain the gateway (also SIGUSR1 on the binary) |
//! | `GET /v0/dev/connections` | every connection seen, with heartbeat stats |
//! | `GET /v0/dev/summary` | runs by status and heartbeat totals (the demo's summary line) |

use std::net::SocketAddr;

use bytes::Bytes;
use connect_core::gateway::HttpError;
use connect_core::wire::encode_body;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};

use crate::core::{Cmd, EventIn, Reply};

/// Event bodies are capped like Inngest's (512 KiB per event is its limit; a batch gets more room).
const MAX_BODY: usize = 16 * 1024 * 1024;

#[derive(Clone)]
pub(crate) struct Api {
    pub core: mpsc::UnboundedSender<Cmd>,
    pub gateway_addr: SocketAddr,
    pub heartbeat_interval: std::time::Duration,
}

pub(crate) async fn serve(listener: TcpListener, api: Api) {
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let _ = stream.set_nodelay(true);
        let api = api.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let api = api.clone();
                async move { Ok::<_, std::convert::Infallible>(api.handle(req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(std::time::Duration::from_secs(30))
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

type Resp = Response<Full<Bytes>>;

impl Api {
    async fn handle(&self, req: Request<Incoming>) -> Resp {
        let method = req.method().clone();
        let path = req.uri().path().to_owned();
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        let auth = req.headers().get(AUTHORIZATION).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let host = req.headers().get(HOST).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let resp = match (&method, segments.as_slice()) {
            (&Method::POST, ["v0", "connect", "start"]) => match body(req).await {
                Ok(body) => {
                    let endpoint = self.gateway_endpoint(host.as_deref());
                    let r = self.ask(|reply| Cmd::Start { auth, body, endpoint, reply }).await;
                    proto_or_error(r.map(|r| r.map(|s| encode_body(&s))))
                }
                Err(e) => e,
            },
            (&Method::POST, ["v0", "connect", "flush"]) => match body(req).await {
                Ok(body) => {
                    let r = self.ask(|reply| Cmd::Flush { auth, body, reply }).await;
                    proto_or_error(r.map(|r| r.map(|s| encode_body(&s))))
                }
                Err(e) => e,
            },
            (&Method::POST, ["e", _key]) => match body(req).await {
                Ok(body) => self.events(&body).await,
                Err(e) => e,
            },
            (&Method::GET, ["v1", "runs", run_id]) => {
                let run_id = (*run_id).to_owned();
                match self.ask(move |reply| query(move |s| reply(s.run(&run_id).cloned()))).await {
                    Some(Some(run)) => json_resp(StatusCode::OK, json!({ "data": run })),
                    Some(None) => error(StatusCode::NOT_FOUND, "run not found"),
                    None => unavailable(),
                }
            }
            (&Method::DELETE, ["v1", "runs", run_id]) => {
                let run_id = (*run_id).to_owned();
                match self.ask(move |reply| Cmd::Cancel { run_id, reply }).await {
                    Some(true) => json_resp(StatusCode::OK, json!({ "data": { "status": "Cancelled" } })),
                    Some(false) => error(StatusCode::NOT_FOUND, "no running run with that id"),
                    None => unavailable(),
                }
            }
            (&Method::GET, ["v1", "events", event_id]) => {
                let id = (*event_id).to_owned();
                match self.ask(move |reply| query(move |s| reply(s.executor().event(&id).cloned()))).await {
                    Some(Some(event)) => json_resp(
                        StatusCode::OK,
                        json!({ "data": { "internal_id": event_id, "event": event } }),
                    ),
                    Some(None) => error(StatusCode::NOT_FOUND, "event not found"),
                    None => unavailable(),
                }
            }
            (&Method::GET, ["v1", "events", event_id, "runs"]) => {
                let id = (*event_id).to_owned();
                let runs = self
                    .ask(move |reply| {
                        query(move |s| reply(s.runs_for_event(&id).into_iter().cloned().collect::<Vec<_>>()))
                    })
                    .await;
                match runs {
                    Some(runs) => json_resp(StatusCode::OK, json!({ "data": runs })),
                    None => unavailable(),
                }
            }
            (&Method::POST, ["v0", "dev", "drain"]) => match self.ask(|reply| Cmd::Drain { reply }).await {
                Some(n) => json_resp(StatusCode::OK, json!({ "drained": n })),
                None => unavailable(),
            },
            (&Method::GET, ["v0", "dev", "connections"]) => {
                match self.ask(|reply| query(move |s| reply(s.connections()))).await {
                    Some(c) => json_resp(StatusCode::OK, json!({ "data": c })),
                    None => unavailable(),
                }
            }
            (&Method::GET, ["v0", "dev", "summary"]) => {
                let interval = self.heartbeat_interval;
                match self.ask(move |reply| query(move |s| reply(crate::Summary::of(s, interval)))).await {
                    Some(summary) => {
                        json_resp(StatusCode::OK, json!({ "data": summary, "line": summary.to_string() }))
                    }
                    None => unavailable(),
                }
            }
            (&Method::GET, ["health"] | ["v0"]) => json_resp(StatusCode::OK, json!({ "status": "ok" })),
            _ => error(StatusCode::NOT_FOUND, "not found"),
        };
        tracing::debug!(%method, %path, status = resp.status().as_u16(), "api");
        resp
    }

    async fn events(&self, body: &[u8]) -> Resp {
        let mut events: Vec<EventIn> = match serde_json::from_slice::<Value>(body) {
            Ok(Value::Array(items)) => match items.into_iter().map(serde_json::from_value).collect() {
                Ok(events) => events,
                Err(e) => return error(StatusCode::BAD_REQUEST, &format!("invalid event: {e}")),
            },
            Ok(v @ Value::Object(_)) => match serde_json::from_value(v) {
                Ok(e) => vec![e],
                Err(e) => return error(StatusCode::BAD_REQUEST, &format!("invalid event: {e}")),
            },
            Ok(_) => {
                return error(StatusCode::BAD_REQUEST, "body must be an event object or an array of events");
            }
            Err(e) => return error(StatusCode::BAD_REQUEST, &format!("invalid JSON: {e}")),
        };
        for (i, e) in events.iter_mut().enumerate() {
            if e.name.is_empty() {
                return error(StatusCode::BAD_REQUEST, &format!("event {i}: name is empty"));
            }
            // Inngest's event `data` is an object (a Go map): anything else is
            // refused; a missing or null one is an empty object.
            match &e.data {
                Value::Object(_) => {}
                Value::Null => e.data = Value::Object(serde_json::Map::new()),
                other => {
                    let message = format!(
                        "event {i} ({:?}): data must be a JSON object, not {}",
                        e.name,
                        json_kind(other)
                    );
                    return error(StatusCode::BAD_REQUEST, &message);
                }
            }
        }
        match self.ask(|reply| Cmd::Events { events, reply }).await {
            Some(ids) => json_resp(StatusCode::OK, json!({ "ids": ids, "status": 200 })),
            None => unavailable(),
        }
    }

    /// `ws://<host of the request>:<gateway port>/v0/connect`, as Inngest's dev server answers.
    fn gateway_endpoint(&self, host: Option<&str>) -> String {
        let host = host.map(|h| match h.rsplit_once(':') {
            Some((name, port)) if port.chars().all(|c| c.is_ascii_digit()) => name,
            _ => h,
        });
        let ip = self.gateway_addr.ip();
        let host = match host {
            Some(h) if !h.is_empty() => h.to_owned(),
            _ if ip.is_unspecified() => "127.0.0.1".to_owned(),
            _ => ip.to_string(),
        };
        format!("ws://{host}:{}/v0/connect", self.gateway_addr.port())
    }

    async fn ask<T: Send + 'static>(&self, make: impl FnOnce(Reply<T>) -> Cmd) -> Option<T> {
        let (tx, rx) = oneshot::channel();
        self.core.send(make(Box::new(move |v| drop(tx.send(v))))).ok()?;
        rx.await.ok()
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn query(f: impl FnOnce(&connect_core::gateway::Server) + Send + 'static) -> Cmd {
    Cmd::Query(Box::new(f))
}

async fn body(req: Request<Incoming>) -> Result<Bytes, Resp> {
    match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => Ok(b.to_bytes()),
        Err(_) => Err(error(StatusCode::PAYLOAD_TOO_LARGE, "request body too large")),
    }
}

fn proto_or_error(r: Option<Result<Bytes, HttpError>>) -> Resp {
    match r {
        Some(Ok(bytes)) => Response::builder()
            .status(StatusCode::OK)
            .header(CONTENT_TYPE, "application/octet-stream")
            .body(Full::new(bytes))
            .unwrap_or_default(),
        Some(Err(e)) => {
            json_resp(StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST), e.to_json())
        }
        None => unavailable(),
    }
}

fn json_resp(status: StatusCode, body: Value) -> Resp {
    Response::builder()
        .status(status)
        .header(CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap_or_default()
}

fn error(status: StatusCode, message: &str) -> Resp {
    json_resp(status, json!({ "error": message, "status": status.as_u16() }))
}

fn unavailable() -> Resp {
    error(StatusCode::SERVICE_UNAVAILABLE, "dev server is shutting down")
}
