//! The two HTTP calls of the connect API: start (before a socket) and flush
//! (a reply that missed its WebSocket ack). The shell parses HTTP; these take
//! the `Authorization` header and the protobuf body.

use std::time::Instant;

use bytes::Bytes;

use crate::wire::{FlushResponse, SdkResponse, StartRequest, StartResponse, decode_body};

use super::{Event, Gateway, Output, token};

/// An error answer, rendered by the shell as Inngest's `publicerr` JSON:
/// `{"code"?, "error": message, "status"}`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{status} {message}")]
pub struct HttpError {
    pub status: u16,
    pub code: Option<&'static str>,
    pub message: String,
}

impl HttpError {
    fn new(status: u16, message: impl Into<String>) -> Self {
        HttpError { status, code: None, message: message.into() }
    }

    /// The JSON body Inngest's API sends with an error status.
    pub fn to_json(&self) -> serde_json::Value {
        let mut v = serde_json::json!({ "error": self.message, "status": self.status, "data": null });
        if let Some(code) = self.code {
            v["code"] = code.into();
        }
        v
    }
}

/// The hashed key of a bearer header, as the start call reads it: everything after "Bearer ".
fn bearer(authorization: Option<&str>) -> &str {
    match authorization {
        Some(h) if h.len() > 7 => &h[7..],
        _ => "",
    }
}

fn check_key(gw: &Gateway, authorization: Option<&str>) -> Result<(), HttpError> {
    let Some(key) = &gw.config.signing_key else { return Ok(()) };
    if bearer(authorization) == key.expose() {
        Ok(())
    } else {
        Err(HttpError { status: 401, code: Some("unauthorized"), message: "authentication failed".into() })
    }
}

pub(super) fn start(
    gw: &mut Gateway,
    now: Instant,
    authorization: Option<&str>,
    body: Bytes,
    gateway_endpoint: String,
) -> Result<StartResponse, HttpError> {
    check_key(gw, authorization)?;
    if body.len() > 1024 * 1024 {
        return Err(HttpError::new(400, "request body too large"));
    }
    // Exclusions name groups to avoid; the dev gateway has one live group, so they are only read.
    let _request: StartRequest = decode_body(body, "StartRequest")
        .map_err(|e| HttpError::new(400, format!("invalid request: {e}")))?;
    let wall = gw.wall(now);
    let connection_id = ulid::Ulid::from_parts(
        wall.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0),
        gw.rng.u128(..),
    );
    let token =
        token::issue(&gw.config.token_secret, wall, gw.config.token_lifetime, gw.config.apps_per_connection);
    Ok(StartResponse {
        connection_id: connection_id.to_string(),
        gateway_endpoint,
        gateway_group: gw.group_name(),
        session_token: token,
        sync_token: bearer(authorization).to_owned(),
    })
}

pub(super) fn flush(
    gw: &mut Gateway,
    authorization: Option<&str>,
    body: Bytes,
) -> Result<FlushResponse, HttpError> {
    check_key(gw, authorization)?;
    let response: SdkResponse =
        decode_body(body, "SDKResponse").map_err(|e| HttpError::new(400, format!("invalid request: {e}")))?;
    // Inngest decodes the system trace context and refuses a reply without a JSON one.
    if serde_json::from_slice::<serde_json::Value>(&response.system_trace_ctx).is_err() {
        return Err(HttpError::new(400, "invalid system trace context"));
    }
    let request_id = response.request_id.clone();
    gw.finish_lease(&request_id);
    gw.out.push_back(Output::Event(Event::Replied { conn: None, response: Box::new(response) }));
    Ok(FlushResponse { request_id })
}
