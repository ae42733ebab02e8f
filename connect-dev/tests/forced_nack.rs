//! `DevServer::nack_extensions` (fault injection for chaos tests): the next
//! extension is NACKed as if the lease were lost, then the lease runs out and
//! the attempt is retried; later extensions are answered as usual. A call
//! replaces the unused budget rather than adding to it.

mod support;

use std::time::Duration;

use connect_core::wire::*;
use connect_dev::{DevConfig, DevServer, RunStatus};
use support::*;

fn extend(ws: &mut Socket, req: &GatewayExecutorRequestData, lease_id: &str) -> Option<String> {
    send(
        ws,
        Message::WorkerRequestExtendLease(Box::new(WorkerRequestExtendLeaseData {
            request_id: req.request_id.clone(),
            function_slug: req.function_slug.clone(),
            lease_id: lease_id.to_owned(),
            ..Default::default()
        })),
    );
    loop {
        if let Message::WorkerRequestExtendLeaseAck(a) = recv(ws) {
            return a.new_lease_id;
        }
    }
}

#[test]
fn a_forced_nack_refuses_one_extension_and_the_lease_then_expires_and_is_retried() {
    let dev = DevServer::spawn(DevConfig {
        heartbeat_interval: Duration::from_secs(5),
        extend_lease_interval: Duration::from_millis(300),
        seed: Some(3),
        ..DevConfig::ephemeral()
    })
    .expect("dev");
    let mut ws = connect(&dev, "nack", &[function("nack-f", "nack/go", 2)]);
    let event = dev.send_event("nack/go", serde_json::json!({})).expect("event");
    let req = loop {
        if let Message::GatewayExecutorRequest(r) = recv(&mut ws) {
            break *r;
        }
    };
    let ack = WorkerRequestAckData {
        request_id: req.request_id.clone(),
        run_id: req.run_id.clone(),
        ..Default::default()
    };
    send(&mut ws, Message::WorkerRequestAck(Box::new(ack)));
    let renewed = extend(&mut ws, &req, &req.lease_id).expect("an ordinary extension is granted");
    dev.nack_extensions(1).expect("switch");
    dev.nack_extensions(1).expect("a second call replaces the budget, it does not add to it");
    assert_eq!(extend(&mut ws, &req, &renewed), None, "the forced extension is NACKed");
    // The real lease is untouched by the refusal, and it runs out: the attempt is retried.
    let retry = loop {
        if let Message::GatewayExecutorRequest(r) = recv(&mut ws) {
            break *r;
        }
    };
    assert_ne!(retry.request_id, req.request_id, "a new attempt");
    assert!(extend(&mut ws, &retry, &retry.lease_id).is_some(), "only one extension was refused");
    let run = dev.run(&req.run_id).expect("query").expect("the run");
    assert_eq!(run.attempts[0].outcome.as_deref(), Some("LeaseExpired"), "{run:?}");
    assert_eq!(run.status, RunStatus::Running);
    drop(event);
}
