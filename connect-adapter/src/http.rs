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
        // The URL names the call (start or flush) in logs; it holds no secret (the key is a header).
        let mut resp = result.map_err(|e| format!("POST {}: {e}", req.url))?;
        let status = resp.status().as_u16();
        let body = resp
            .body_mut()
            .with_config()
            .limit(MAX_BODY)
            .read_to_vec()
            .map_err(|e| format!("POST {}: reading the answer: {e}", req.url))?;
        Ok(HttpResponse { status, body: Bytes::from(body) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A failed call says which call it was: the operator reads it in a WARN line.
    #[test]
    fn a_failed_call_names_its_url() {
        let port =
            std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a port").port();
        let url = format!("http://127.0.0.1:{port}/v0/connect/start");
        let req = HttpRequest {
            url: url.clone(),
            headers: vec![("authorization".into(), "Bearer signkey-test-secret".into())],
            body: Bytes::from_static(b"x"),
            timeout: Duration::from_secs(5),
        };
        let e = HttpClient::new().perform(&req).expect_err("nothing listens there");
        assert!(e.starts_with(&format!("POST {url}: ")), "{e}");
        assert!(!e.contains("secret"), "{e}");
    }
}
