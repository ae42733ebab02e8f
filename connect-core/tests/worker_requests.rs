//! Requests (issue 3, item 3): ACK, invocation, lease extension, replies,
//! reply ACK deadline and HTTP flush, duplicates, capacity.

mod sim;

use bytes::Bytes;
use connect_core::wire::{
    ExecutorRequest, GatewayExecutorRequestData, Limits, Message, SdkResponseStatus, WorkerReplyAckData,
    WorkerRequestExtendLeaseAckData,
};
use connect_core::worker::{CommandError, Event, HttpResponse, OUTPUT_TOO_LARGE, Reply};
use sim::*;

fn extend_ack(req: &str, lease: Option<String>) -> Message {
    Message::WorkerRequestExtendLeaseAck(Box::new(WorkerRequestExtendLeaseAckData {
        request_id: req.into(),
        new_lease_id: lease,
        ..Default::default()
    }))
}

fn extends(sim: &Sim) -> Vec<(std::time::Duration, String)> {
    sim.sent()
        .into_iter()
        .filter_map(|(t, _, m)| match m {
            Message::WorkerRequestExtendLease(e) => Some((t, e.lease_id)),
            _ => None,
        })
        .collect()
}

/// A request is ACKed at once on the connection that delivered it, with
/// every correlation field echoed, and handed to the app without copying.
#[test]
fn request_is_acked_on_its_connection_and_handed_to_the_app() {
    let mut sim = Sim::new(origin(), config());
    let conn = sim.active_conn();
    let req = sim.request("r1");
    sim.send(conn, Message::GatewayExecutorRequest(Box::new(req.clone())));
    let Some(Message::WorkerRequestAck(ack)) = sim.sent_on(conn).last().cloned() else { panic!("no ack") };
    assert_eq!(ack.request_id, "r1");
    assert_eq!(ack.account_id, req.account_id);
    assert_eq!(ack.env_id, req.env_id);
    assert_eq!(ack.app_id, req.app_id);
    assert_eq!(ack.function_slug, req.function_slug);
    assert_eq!(ack.step_id, req.step_id);
    assert_eq!(ack.run_id, req.run_id);
    assert_eq!(ack.system_trace_ctx, req.system_trace_ctx);
    assert_eq!(ack.user_trace_ctx, req.user_trace_ctx);
    assert_eq!(sim.invocations(), ["r1"]);
    assert!(sim.has_event(&Event::Invocation(ExecutorRequest::try_from(&req).expect("fits"))));
}

/// The reply goes out as WORKER_REPLY with ids and trace contexts echoed,
/// and the WORKER_REPLY_ACK turns into a ReplyAcked event.
#[test]
fn reply_echoes_ids_and_trace_contexts_and_is_acked() {
    let mut sim = Sim::new(origin(), config());
    let conn = sim.invoke("r1");
    let body = Bytes::from_static(b"{\"ok\":true}");
    sim.reply("r1", Reply::done(body.clone()));
    let reply = sim
        .sent_on(conn)
        .into_iter()
        .find_map(|m| match m {
            Message::WorkerReply(r) => Some(r),
            _ => None,
        })
        .expect("a reply");
    assert_eq!(reply.request_id, "r1");
    assert_eq!(
        (reply.account_id.as_str(), reply.env_id.as_str(), reply.app_id.as_str()),
        ("acct", "env", "app-uuid")
    );
    assert_eq!(reply.status, SdkResponseStatus::Done as i32);
    assert_eq!(reply.body, body);
    assert_eq!(reply.run_id, "01JRUN0000000000000000000");
    assert_eq!(&reply.system_trace_ctx[..], b"{\"traceparent\":\"00-abc-def-01\"}");
    assert_eq!(&reply.user_trace_ctx[..], b"{\"traceparent\":\"00-123-456-01\"}");
    assert!(reply.sdk_version.starts_with("rust:v"));
    assert!(sim.has_event(&Event::ReplyAcked { request_id: "r1".into() }));
    assert_eq!(sim.w.unacked_replies(), 0);
}

/// ERROR with no_retry and retry_after, and NOT_COMPLETED, are sent as given.
#[test]
fn error_and_not_completed_replies_carry_their_flags() {
    let mut sim = Sim::new(origin(), config());
    sim.invoke("e1");
    sim.invoke("n1");
    sim.reply("e1", Reply::error(Bytes::from_static(b"{\"name\":\"Error\"}"), true).with_retry_after("30"));
    sim.reply("n1", Reply::not_completed(Bytes::from_static(b"[]")));
    let replies: Vec<_> = sim
        .sent()
        .into_iter()
        .filter_map(|(_, _, m)| match m {
            Message::WorkerReply(r) => Some(r),
            _ => None,
        })
        .collect();
    assert_eq!(replies[0].status, SdkResponseStatus::Error as i32);
    assert!(replies[0].no_retry);
    assert_eq!(replies[0].retry_after.as_deref(), Some("30"));
    assert_eq!(replies[1].status, SdkResponseStatus::NotCompleted as i32);
    assert!(!replies[1].no_retry);
}

/// Leases are extended every extend interval from READY, each time with the
/// newest lease id the gateway handed out.
#[test]
fn lease_is_extended_every_interval_with_the_newest_lease_id() {
    let mut sim = Sim::new(origin(), config());
    sim.invoke("r1");
    let first_lease = sim.invocations_requests()[0].lease_id.clone();
    sim.advance(secs(29));
    assert!(extends(&sim).is_empty());
    sim.advance(secs(1));
    sim.advance(secs(30));
    sim.advance(secs(30));
    let ext = extends(&sim);
    assert_eq!(ext.iter().map(|(t, _)| t.as_secs()).collect::<Vec<_>>(), [30, 60, 90]);
    assert_eq!(ext[0].1, first_lease);
    assert_ne!(ext[1].1, ext[0].1, "the second extension uses the renewed lease");
    assert_ne!(ext[2].1, ext[1].1);
}

/// An extension ACK without a new lease id is a lost lease: the app hears
/// LeaseLost and extensions stop; the reply is still sent.
#[test]
fn nack_loses_the_lease_stops_extending_and_still_sends_the_reply() {
    let mut sim = Sim::new(origin(), config());
    sim.script.extend = Extend::Nack;
    sim.invoke("r1");
    sim.advance(secs(30));
    assert!(sim.has_event(&Event::LeaseLost { request_id: "r1".into() }));
    sim.advance(secs(120));
    assert_eq!(extends(&sim).len(), 1);
    sim.reply("r1", Reply::done("1"));
    assert_eq!(sim.count_sent(is_reply), 1);
    assert!(sim.has_event(&Event::ReplyAcked { request_id: "r1".into() }));
}

/// ACKs for unknown requests, and late ones carrying an older lease, are ignored.
#[test]
fn late_and_unknown_extend_acks_are_ignored() {
    let mut sim = Sim::new(origin(), config());
    sim.script.extend = Extend::Ignore;
    let conn = sim.invoke("r1");
    let old = sim.invocations_requests()[0].lease_id.clone();
    let newer = sim.new_lease();
    sim.send(conn, extend_ack("r1", Some(newer.clone())));
    sim.send(conn, extend_ack("r1", Some(old)));
    sim.send(conn, extend_ack("nobody", None));
    sim.advance(secs(30));
    assert_eq!(extends(&sim)[0].1, newer);
    assert!(!sim.events().iter().any(|e| matches!(e, Event::LeaseLost { .. })));
}

/// A NACK that arrives after the reply was acknowledged is late: no event.
#[test]
fn nack_after_the_request_finished_is_ignored() {
    let mut sim = Sim::new(origin(), config());
    let conn = sim.invoke("r1");
    sim.reply("r1", Reply::done("1"));
    sim.send(conn, extend_ack("r1", None));
    assert!(!sim.events().iter().any(|e| matches!(e, Event::LeaseLost { .. })));
}

/// Without a WORKER_REPLY_ACK within 5 s the reply is flushed over HTTP,
/// with the same headers as the start call and the SDKResponse as body.
#[test]
fn unacked_reply_is_flushed_after_the_ack_deadline() {
    let mut sim = Sim::new(origin(), config());
    sim.script.ack_replies = false;
    sim.invoke("r1");
    sim.reply("r1", Reply::done("42"));
    sim.advance(ms(4_999));
    assert!(sim.flushed.is_empty());
    sim.advance(ms(1));
    assert_eq!(sim.flushed.len(), 1);
    assert_eq!(sim.flushed[0].request_id, "r1");
    assert_eq!(&sim.flushed[0].body[..], b"42");
    let flush =
        sim.http_calls().into_iter().find(|(_, r)| r.url.ends_with("/v0/connect/flush")).expect("flush");
    assert!(flush.1.headers.iter().any(|(k, v)| k == "Content-Type" && v == "application/protobuf"));
    assert!(sim.has_event(&Event::ReplyAcked { request_id: "r1".into() }));
}

/// A failing flush is retried with backoff until it succeeds.
#[test]
fn failing_flush_is_retried_with_backoff_until_it_succeeds() {
    let mut sim = Sim::new(origin(), config());
    sim.script.ack_replies = false;
    sim.script.flush_status = Some(503);
    sim.invoke("r1");
    sim.reply("r1", Reply::done("1"));
    sim.advance(secs(60));
    let flushes = sim.http_calls().into_iter().filter(|(_, r)| r.url.ends_with("/flush")).count();
    assert!(flushes >= 4, "{flushes} flush attempts in a minute");
    assert!(!sim.has_event(&Event::ReplyAcked { request_id: "r1".into() }));
    sim.script.flush_status = Some(200);
    sim.run_until(secs(120), |s| s.has_event(&Event::ReplyAcked { request_id: "r1".into() }));
}

/// A flush call that never answers times out and is retried.
#[test]
fn hanging_flush_times_out_and_is_retried() {
    let mut sim = Sim::new(origin(), config());
    sim.script.ack_replies = false;
    sim.script.flush_status = None;
    sim.invoke("r1");
    sim.reply("r1", Reply::done("1"));
    sim.advance(secs(5));
    assert_eq!(sim.pending_http.len(), 1);
    sim.advance(secs(10));
    sim.run_until(secs(120), |s| s.pending_http.len() == 2);
    sim.answer_pending_http(Ok(HttpResponse { status: 200, body: Bytes::new() }));
    assert!(!sim.has_event(&Event::ReplyAcked { request_id: "r1".into() }), "the timed-out call is stale");
    sim.answer_pending_http(Ok(HttpResponse { status: 200, body: Bytes::new() }));
    assert!(sim.has_event(&Event::ReplyAcked { request_id: "r1".into() }));
}

/// The flush endpoint rejecting the body (400) will never change its mind:
/// the reply is reported failed, not retried.
#[test]
fn flush_rejected_with_400_is_reported_not_retried() {
    let mut sim = Sim::new(origin(), config());
    sim.script.ack_replies = false;
    sim.script.flush_status = Some(400);
    sim.invoke("r1");
    sim.reply("r1", Reply::done("1"));
    sim.advance(secs(120));
    assert!(
        sim.events().iter().any(|e| matches!(e, Event::ReplyFailed { request_id, .. } if request_id == "r1"))
    );
    assert_eq!(sim.http_calls().iter().filter(|(_, r)| r.url.ends_with("/flush")).count(), 1);
}

/// A reply too large for the gateway (its frame limit is 8 MiB) would be
/// refused there, and the run would fail only at lease expiry, blaming the
/// worker. Instead a small non-retriable error naming the size goes in its
/// place, settled like any reply; the connection stays up and other
/// requests go on.
#[test]
fn a_reply_over_the_frame_limit_is_replaced_by_a_non_retriable_error() {
    let mut c = config();
    c.limits = Limits { max_send_frame: 1024, ..Limits::default() };
    let mut sim = Sim::new(origin(), c);
    let conn = sim.invoke("big");
    sim.invoke("small");
    sim.reply("big", Reply::done(vec![b'x'; 4096]));
    sim.reply("small", Reply::done("1"));

    let replies: Vec<_> = sim
        .sent_on(conn)
        .into_iter()
        .filter_map(|m| match m {
            Message::WorkerReply(r) => Some(r),
            _ => None,
        })
        .collect();
    assert_eq!(replies.len(), 2);
    let big = replies.iter().find(|r| r.request_id == "big").expect("a reply for the big one");
    assert_eq!(big.status, SdkResponseStatus::Error as i32);
    assert!(big.no_retry, "the same output would be too large again");
    let body: serde_json::Value = serde_json::from_slice(&big.body).expect("an SDK error body");
    assert_eq!(body["name"], OUTPUT_TOO_LARGE);
    let message = body["message"].as_str().expect("a message");
    assert!(message.starts_with("output too large: "), "{message}");
    assert!(message.contains("4096 bytes of output") && message.contains("1024-byte limit"), "{message}");
    assert_eq!(&big.system_trace_ctx[..], b"{\"traceparent\":\"00-abc-def-01\"}", "echoed as ever");

    assert!(sim.events().iter().any(
        |e| matches!(e, Event::ReplyReplaced { request_id, error } if request_id == "big" && error == message)
    ));
    assert!(sim.has_event(&Event::ReplyAcked { request_id: "big".into() }));
    assert!(sim.has_event(&Event::ReplyAcked { request_id: "small".into() }));
    assert!(!sim.events().iter().any(|e| matches!(e, Event::ReplyFailed { .. })));
    assert_eq!(sim.w.writable_conn(), Some(conn));
    assert!(sim.closes().is_empty());
    sim.advance(secs(60));
    assert_eq!(sim.count_sent(is_reply), 2, "nothing is queued again");
}

/// The error reply that replaces a too-large one is kept until acked like
/// any reply: without an ack it is flushed over HTTP, small as it is.
#[test]
fn a_replaced_reply_is_flushed_when_unacked() {
    let mut c = config();
    c.limits = Limits { max_send_frame: 1024, ..Limits::default() };
    let mut sim = Sim::new(origin(), c);
    sim.script.ack_replies = false;
    sim.invoke("big");
    sim.reply("big", Reply::done(vec![b'x'; 4096]));
    sim.advance(secs(5));
    assert_eq!(sim.flushed.len(), 1);
    assert_eq!(sim.flushed[0].request_id, "big");
    assert!(sim.flushed[0].no_retry);
    assert!(String::from_utf8_lossy(&sim.flushed[0].body).contains("output too large"));
    assert!(sim.has_event(&Event::ReplyAcked { request_id: "big".into() }));
}

/// When even the error reply cannot fit (the request's own fields, echoed
/// in every reply, are over the limit), the reply fails locally, once.
#[test]
fn a_reply_that_cannot_fit_even_as_an_error_fails_only_that_request() {
    let mut c = config();
    c.limits = Limits { max_send_frame: 64, ..Limits::default() };
    let mut sim = Sim::new(origin(), c);
    let conn = sim.invoke("big");
    sim.reply("big", Reply::done(vec![b'x'; 4096]));
    assert!(
        sim.events()
            .iter()
            .any(|e| matches!(e, Event::ReplyFailed { request_id, .. } if request_id == "big"))
    );
    assert_eq!(sim.w.writable_conn(), Some(conn));
    assert!(sim.closes().is_empty());
    sim.advance(secs(60));
    assert_eq!(sim.count_sent(is_reply), 0, "the failed reply is never queued again");
}

/// Replies are idempotent per request id; an id never seen is a local error.
#[test]
fn second_reply_is_ignored_and_unknown_id_is_an_error() {
    let mut sim = Sim::new(origin(), config());
    sim.invoke("r1");
    sim.reply("r1", Reply::done("1"));
    sim.reply("r1", Reply::done("2"));
    assert_eq!(sim.count_sent(is_reply), 1);
    assert_eq!(
        sim.w.reply(sim.now, "ghost", Reply::done("1")),
        Err(CommandError::UnknownRequest("ghost".into()))
    );
}

/// A request id already running is ACKed again but not handed to the app twice;
/// nor is one that already finished.
#[test]
fn duplicate_delivery_is_acked_but_not_run_twice() {
    let mut sim = Sim::new(origin(), config());
    let conn = sim.invoke("r1");
    let again = sim.request("r1");
    sim.send(conn, Message::GatewayExecutorRequest(Box::new(again)));
    assert_eq!(sim.invocations(), ["r1"]);
    assert_eq!(sim.count_sent(is_ack), 2);
    sim.reply("r1", Reply::done("1"));
    let third = sim.request("r1");
    sim.send(conn, Message::GatewayExecutorRequest(Box::new(third)));
    assert_eq!(sim.invocations(), ["r1"]);
}

/// A duplicate delivery carries a newer lease: extensions adopt it.
#[test]
fn duplicate_delivery_with_a_newer_lease_is_adopted() {
    let mut sim = Sim::new(origin(), config());
    sim.script.extend = Extend::Ignore;
    let conn = sim.invoke("r1");
    sim.advance(secs(1));
    let again = sim.request("r1");
    let newer = again.lease_id.clone();
    sim.send(conn, Message::GatewayExecutorRequest(Box::new(again)));
    sim.advance(secs(29));
    assert_eq!(extends(&sim)[0].1, newer);
}

/// max_worker_concurrency: a request over capacity is not ACKed nor run;
/// once a slot frees up, new requests are taken again.
#[test]
fn request_over_capacity_is_not_acked() {
    let mut c = config();
    c.max_worker_concurrency = Some(2);
    let mut sim = Sim::new(origin(), c);
    sim.invoke("a");
    sim.invoke("b");
    sim.invoke("c");
    assert_eq!(sim.invocations(), ["a", "b"]);
    assert_eq!(sim.count_sent(is_ack), 2);
    sim.reply("a", Reply::done("1"));
    sim.invoke("d");
    assert_eq!(sim.invocations(), ["a", "b", "d"]);
}

/// A reply ACK for an unknown request is ignored; so is a second one.
#[test]
fn unknown_and_repeated_reply_acks_are_ignored() {
    let mut sim = Sim::new(origin(), config());
    let conn = sim.invoke("r1");
    sim.reply("r1", Reply::done("1"));
    let ack = |id: &str| Message::WorkerReplyAck(WorkerReplyAckData { request_id: id.into() });
    sim.send(conn, ack("r1"));
    sim.send(conn, ack("nobody"));
    let acked = sim.events().iter().filter(|e| matches!(e, Event::ReplyAcked { .. })).count();
    assert_eq!(acked, 1);
}

/// The lease runs out locally (no connection for over two minutes): the app
/// hears LeaseLost without any NACK, and the lease is no longer extended.
#[test]
fn lease_expires_locally_when_no_extension_gets_through() {
    let mut sim = Sim::new(origin(), config());
    sim.script.extend = Extend::Ignore;
    sim.invoke("r1");
    sim.advance(secs(119));
    assert!(!sim.has_event(&Event::LeaseLost { request_id: "r1".into() }));
    sim.advance(secs(1));
    assert!(sim.has_event(&Event::LeaseLost { request_id: "r1".into() }));
    let n = extends(&sim).len();
    sim.advance(secs(120));
    assert_eq!(extends(&sim).len(), n);
}

/// Undecodable frames close the connection (1007) and the worker reconnects;
/// the in-flight request survives.
#[test]
fn undecodable_frame_closes_the_connection_and_reconnects() {
    let mut sim = Sim::new(origin(), config());
    let conn = sim.invoke("r1");
    sim.send_raw(conn, Bytes::from_static(&[0xff, 0xff]));
    assert_eq!(sim.closes()[0], (conn, 1007, "failed to unmarshal Protobuf".into()));
    sim.run_until(secs(10), |s| s.active_conn() != conn);
    sim.reply("r1", Reply::done("1"));
    assert!(sim.has_event(&Event::ReplyAcked { request_id: "r1".into() }));
}

/// An executor request whose payload is malformed (here a request id that
/// is not UTF-8) is an undecodable frame like any other: 1007, nothing is
/// run, and the request already in flight survives the reconnect.
#[test]
fn malformed_executor_request_closes_the_connection_and_runs_nothing() {
    let mut sim = Sim::new(origin(), config());
    let conn = sim.invoke("r1");
    sim.send_raw(conn, Bytes::from_static(&[0x08, 0x03, 0x12, 0x04, 0x0a, 0x02, 0xff, 0xfe]));
    assert_eq!(sim.closes()[0], (conn, 1007, "failed to unmarshal Protobuf".into()));
    assert_eq!(sim.invocations(), ["r1"]);
    sim.run_until(secs(10), |s| s.active_conn() != conn);
    sim.reply("r1", Reply::done("1"));
    assert!(sim.has_event(&Event::ReplyAcked { request_id: "r1".into() }));
}

/// Request payload bytes reach the app without a copy.
#[test]
fn invocation_payload_shares_the_frame_memory() {
    let mut sim = Sim::new(origin(), config());
    let conn = sim.active_conn();
    let req =
        GatewayExecutorRequestData { request_payload: Bytes::from(vec![b'{'; 4096]), ..sim.request("r1") };
    let frame = Message::GatewayExecutorRequest(Box::new(req)).encode(&Limits::default()).expect("enc");
    let range = frame.as_ptr_range();
    sim.w.handle_frame(sim.now, conn, frame.clone());
    let mut payload_ptr = None;
    while let Some(out) = sim.w.poll_output() {
        if let connect_core::worker::Output::Event(Event::Invocation(r)) = out {
            payload_ptr = Some(r.request_payload().as_ptr());
        }
    }
    assert!(range.contains(&payload_ptr.expect("invocation")));
}

trait Requests {
    fn invocations_requests(&self) -> Vec<GatewayExecutorRequestData>;
}

impl Requests for Sim {
    fn invocations_requests(&self) -> Vec<GatewayExecutorRequestData> {
        self.events()
            .into_iter()
            .filter_map(|e| match e {
                Event::Invocation(r) => Some(r.to_data()),
                _ => None,
            })
            .collect()
    }
}

/// A reply made while no connection is up waits for its ACK deadline, then
/// goes out as an HTTP flush.
#[test]
fn reply_without_a_connection_is_flushed_at_the_deadline() {
    let mut sim = Sim::new(origin(), config());
    let conn = sim.invoke("r1");
    sim.script.start_status = None; // no reconnect for now
    sim.close(conn, None);
    sim.reply("r1", Reply::done("1"));
    assert_eq!(sim.w.poll_timeout().map(|(_, t)| t), Some(connect_core::worker::Timer::Backoff));
    sim.advance(secs(5));
    assert_eq!(sim.flushed.len(), 1);
    assert!(sim.has_event(&Event::ReplyAcked { request_id: "r1".into() }));
}

/// A reply made while reconnecting goes out on the new connection once it is
/// ACTIVE (within the ACK deadline), not over HTTP.
#[test]
fn reply_made_while_reconnecting_goes_on_the_new_connection() {
    let mut sim = Sim::new(origin(), config());
    let old = sim.invoke("r1");
    sim.close(old, None);
    sim.reply("r1", Reply::done("1"));
    sim.run_until(secs(5), |s| s.state() == connect_core::worker::ConnectionState::Active);
    let new = sim.active_conn();
    assert!(sim.sent_on(new).iter().any(is_reply));
    assert!(sim.flushed.is_empty());
    assert!(sim.has_event(&Event::ReplyAcked { request_id: "r1".into() }));
}

/// Extensions due while disconnected are skipped (nothing is written
/// anywhere) and resume, with the newest lease, on the next connection.
#[test]
fn extensions_pause_while_disconnected_and_resume_on_reconnect() {
    let mut sim = Sim::new(origin(), config());
    let old = sim.invoke("r1");
    sim.advance(secs(30));
    let renewed = extends(&sim).len();
    assert_eq!(renewed, 1);
    sim.script.start_status = None;
    sim.close(old, None);
    sim.advance(secs(30));
    assert_eq!(extends(&sim).len(), 1, "no connection: no extension");
    sim.script.start_status = Some(200);
    let (id, req) = sim.pending_http.pop_front().expect("a start call");
    sim.answer_http(id, &req, 200);
    sim.pump();
    sim.advance(secs(30));
    let ext = extends(&sim);
    assert_eq!(ext.len(), 2);
    let granted_on_first = sim.lease_grants.iter().filter(|(id, _)| id == "r1").count();
    assert!(granted_on_first >= 2, "the renewed lease is the one extended");
    assert_ne!(ext[1].1, ext[0].1);
}

/// poll_timeout names why it wants to be woken.
#[test]
fn poll_timeout_names_the_reply_ack_and_lease_deadlines() {
    use connect_core::worker::Timer;
    let mut sim = Sim::new(origin(), config());
    sim.script.ack_replies = false;
    sim.invoke("r1");
    sim.advance(secs(9));
    assert_eq!(sim.w.poll_timeout().map(|(_, t)| t), Some(Timer::Heartbeat));
    sim.invoke("r2");
    sim.reply("r2", Reply::done("1"));
    sim.advance(ms(1_500)); // heartbeat at 10 s done; the reply's deadline is 14 s
    assert_eq!(sim.w.poll_timeout().map(|(at, t)| (at - sim.base, t)), Some((secs(14), Timer::ReplyAck)));
    sim.script.flush_status = None;
    sim.advance(secs(4));
    assert_eq!(sim.w.poll_timeout().map(|(_, t)| t), Some(Timer::Heartbeat));
    sim.advance(secs(6));
    assert_eq!(sim.w.poll_timeout().map(|(at, t)| (at - sim.base, t)), Some((secs(24), Timer::Flush)));
}
