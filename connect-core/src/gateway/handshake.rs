//! The first message: WORKER_CONNECT, checked in the order Inngest's gateway
//! checks it (`establishConnection`), each failure with its close code.

use std::time::Instant;

use crate::payload::{Capabilities, FunctionConfig};
use crate::wire::{ConnectMessage, GatewayMessageType, Message, WorkerConnectRequestData};

use super::{AppInfo, ConnId, Gateway, WorkerInfo, token};

const INVALID_PAYLOAD: &str = "connect_worker_hello_invalid_payload";

pub(super) fn on_first_message(gw: &mut Gateway, now: Instant, id: ConnId, envelope: ConnectMessage) {
    if envelope.kind != GatewayMessageType::WorkerConnect as i32 {
        return gw.close(id, 1008, "connect_worker_hello_invalid_msg", None);
    }
    let Ok(Message::WorkerConnect(hello)) = Message::from_envelope(envelope) else {
        return gw.close(id, 1008, INVALID_PAYLOAD, None);
    };
    match validate(gw, now, *hello) {
        Ok(worker) => gw.establish(now, id, worker),
        Err((code, reason)) => gw.close(id, code, reason, None),
    }
}

fn validate(
    gw: &Gateway,
    now: Instant,
    hello: WorkerConnectRequestData,
) -> Result<WorkerInfo, (u16, &'static str)> {
    if ulid::Ulid::from_string(&hello.connection_id).is_err() || hello.instance_id.is_empty() {
        return Err((1008, INVALID_PAYLOAD));
    }
    let session_token = hello.auth_data.as_ref().map_or("", |a| a.session_token.as_str());
    let claims = token::verify(&gw.config.token_secret, session_token, gw.wall(now))
        .map_err(|_| (1008, "connect_authentication_failed"))?;
    if hello.apps.is_empty() {
        return Err((1008, INVALID_PAYLOAD));
    }
    let limit = match claims.entitlements.apps_per_connection {
        0 => gw.config.apps_per_connection,
        n => n,
    };
    if hello.apps.len() > limit {
        return Err((1008, "connect_too_many_apps_per_connection"));
    }
    // Inngest parses these while building worker groups; a failure there surfaces as an internal error.
    const INTERNAL: (u16, &str) = (1011, "connect_internal_error");
    serde_json::from_slice::<Capabilities>(&hello.capabilities).map_err(|_| INTERNAL)?;
    let mut apps = Vec::with_capacity(hello.apps.len());
    for app in hello.apps {
        let functions: Vec<FunctionConfig> = serde_json::from_slice(&app.functions).map_err(|_| INTERNAL)?;
        apps.push(AppInfo { name: app.app_name, version: app.app_version, functions });
    }
    Ok(WorkerInfo {
        connection_id: hello.connection_id,
        instance_id: hello.instance_id,
        group: gw.group_name(),
        apps,
        max_worker_concurrency: hello.max_worker_concurrency.filter(|&n| n > 0).map(|n| n as u64),
        sdk_language: hello.sdk_language,
        sdk_version: hello.sdk_version,
        manual_readiness_ack: hello.worker_manual_readiness_ack,
    })
}
