//! The start and flush HTTP calls, made with ureq over rustls.
//!
//! Calls are blocking; adapters run them off the connection thread's event
//! loop (a blocking pool or a helper thread), so a slow API never delays a
//! heartbeat. Certificates are verified against the Mozilla roots.

use bytes::Bytes;
use connect_core::worker::{HttpRequest, HttpResponse};

/// Largest response body read (a start or flush answer is a few hundred bytes).
const MAX_BODY: u64 = 1024 * 1024;

/// A shared HTTP client; cheap to clone.
#[derive(Clone, Debug)]
pub struct HttpClient {
    agent: ureq::Agent,
}

impl Default for HttpClient {
    fn default() -> Self {
        Self::new()
    }
}

impl HttpClient {
    pub fn new() -> Self {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .user_agent(concat!("connect-rs/", env!("CARGO_PKG_VERSION")))
            .build();
        HttpClient { agent: config.into() }
    }

    /// POST the request and read the whole answer. `Err` is a transport
    /// failure (refused, reset, timed out, TLS); any HTTP status is `Ok`.
    pub fn perform(&self, req: &HttpRequest) -> Result<HttpResponse, String> {
        let mut builder = self.agent.post(&req.url);
        for (k, v) in &req.headers {
            builder = builder.header(k, v);
        }
        let result = builder.config().timeout_global(Some(req.timeout)).build().send(&req.body[..]);
        let mut resp = result.map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        let body = resp.body_mut().with_config().limit(MAX_BODY).read_to_vec().map_err(|e| e.to_string())?;
        Ok(HttpResponse { status, body: Bytes::from(body) })
    }
}
