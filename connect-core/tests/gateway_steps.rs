//! Step functions at the executor: each step's result is stored and sent back
//! in `steps` on the next request, sleeps delay it, step errors are retried
//! and then handed to the function, planned steps run one by one.

mod gateway_sim;

use connect_core::gateway::run::RunStatus;
use connect_core::wire::*;
use gateway_sim::*;
use serde_json::{Value, json};

fn payload(req: &GatewayExecutorRequestData) -> Value {
    serde_json::from_slice(&req.request_payload).expect("payload JSON")
}

fn steps_reply(
    sim: &mut Sim,
    conn: connect_core::gateway::ConnId,
    req: &GatewayExecutorRequestData,
    ops: Value,
) {
    sim.ack(conn, req);
    let mut resp = response(req, SdkResponseStatus::NotCompleted, &ops.to_string());
    resp.request_version = 2;
    sim.reply_with(conn, resp);
}

const DONE: &str =
    r#"[{"op":"RunComplete","id":"0737c22d3bfae812339732d14d8c7dbd6dc4e09c","data":{"sum":3}}]"#;

/// step.run, then step.sleep, then the return: the executor memoizes the
/// step, waits out the sleep, and sends the SDK's execution version back.
#[test]
fn steps_are_memoized_and_sleeps_wait() {
    let mut sim = Sim::new(origin(), config());
    let conn = sim.connect("host", &[function("app-f", "e", 0)]);
    let event = sim.send_event("e");
    let first = sim.recv_request(conn).expect("first request");
    assert_eq!(payload(&first)["version"], -1);
    steps_reply(&mut sim, conn, &first, json!([{"op": "StepRun", "id": "aaa", "name": "a", "data": 1}]));

    let second = sim.recv_request(conn).expect("re-invoked after the step");
    let p = payload(&second);
    assert_eq!(p["steps"], json!({"aaa": {"data": 1}}));
    assert_eq!(p["ctx"]["stack"], json!({"stack": ["aaa"], "current": 1}));
    assert_eq!(p["version"], 2, "the SDK's version is adopted");
    assert_eq!(second.step_id.as_deref(), Some("step"));
    steps_reply(&mut sim, conn, &second, json!([{"op": "Sleep", "id": "zzz", "name": "1m30s"}]));

    for _ in 0..9 {
        sim.advance(secs(10) - ms(1));
        assert!(sim.recv_request(conn).is_none(), "still sleeping at {:?}", sim.elapsed());
        sim.advance(ms(1));
        sim.heartbeat(conn);
    }
    let third = sim.recv_request(conn).expect("woken after 90 s");
    assert_eq!(payload(&third)["steps"]["zzz"], json!({"data": null}));
    sim.ack(conn, &third);
    sim.reply(conn, &third, SdkResponseStatus::NotCompleted, DONE);
    let run = sim.run_of(&event);
    assert_eq!(run.status, RunStatus::Completed);
    assert_eq!(run.output, Some(json!({"sum": 3})));
    assert_eq!(run.attempts.len(), 3);
}

/// A step that fails is retried (ctx.attempt counts per step); after the last
/// attempt its error is stored and the function gets to handle it.
#[test]
fn step_errors_are_retried_then_handed_to_the_function() {
    let mut sim = Sim::new(origin(), config());
    let conn = sim.connect("host", &[function("app-f", "e", 1)]);
    let event = sim.send_event("e");
    let req = sim.recv_request(conn).expect("request");
    steps_reply(&mut sim, conn, &req, json!([{"op": "StepRun", "id": "ok", "data": "fine"}]));
    for attempt in 0..2 {
        let req = sim.recv_request(conn).expect("request");
        assert_eq!(payload(&req)["ctx"]["attempt"], attempt, "attempts count per step");
        let error = json!({"name": "Error", "message": "step broke"});
        steps_reply(&mut sim, conn, &req, json!([{"op": "StepError", "id": "bad", "error": error}]));
    }
    let req = sim.recv_request(conn).expect("the function runs with the step's error");
    let p = payload(&req);
    assert_eq!(p["ctx"]["attempt"], 0);
    assert_eq!(p["steps"]["bad"]["error"]["message"], "step broke");
    assert_eq!(p["steps"]["ok"], json!({"data": "fine"}));
    sim.ack(conn, &req);
    sim.reply(conn, &req, SdkResponseStatus::Done, "\"recovered\"");
    assert_eq!(sim.run_of(&event).output, Some(json!("recovered")));
}

/// Steps planned together run one at a time, each named in `step_id`, then the function continues.
#[test]
fn planned_steps_run_one_after_another() {
    let mut sim = Sim::new(origin(), config());
    let conn = sim.connect("host", &[function("app-f", "e", 0)]);
    let event = sim.send_event("e");
    let req = sim.recv_request(conn).expect("request");
    let planned = json!([{"op": "StepPlanned", "id": "p1"}, {"op": "StepPlanned", "id": "p2"}]);
    steps_reply(&mut sim, conn, &req, planned);
    for id in ["p1", "p2"] {
        let req = sim.recv_request(conn).expect("planned step request");
        assert_eq!(req.step_id.as_deref(), Some(id));
        assert_eq!(payload(&req)["ctx"]["step_id"], id);
        steps_reply(&mut sim, conn, &req, json!([{"op": "StepRun", "id": id, "data": id}]));
    }
    let req = sim.recv_request(conn).expect("back to the function");
    assert_eq!(req.step_id.as_deref(), Some("step"));
    assert_eq!(payload(&req)["steps"], json!({"p1": {"data": "p1"}, "p2": {"data": "p2"}}));
    sim.ack(conn, &req);
    sim.reply(conn, &req, SdkResponseStatus::NotCompleted, DONE);
    assert_eq!(sim.status_of(&event), RunStatus::Completed);
}

/// Opcodes connect-dev cannot carry out (waitForEvent here), or none at all, fail the run with a clear error.
#[test]
fn unsupported_or_empty_opcodes_fail_the_run() {
    let mut sim = Sim::new(origin(), config());
    let conn = sim.connect("host", &[function("app-f", "e", 3)]);
    let event = sim.send_event("e");
    let req = sim.recv_request(conn).expect("request");
    steps_reply(&mut sim, conn, &req, json!([{"op": "WaitForEvent", "id": "w"}]));
    let run = sim.run_of(&event);
    assert_eq!(run.status, RunStatus::Failed);
    assert_eq!(run.output.as_ref().map(|o| o["name"].clone()), Some(json!("UnsupportedStep")));

    let event = sim.send_event("e");
    let req = sim.recv_request(conn).expect("request");
    steps_reply(&mut sim, conn, &req, json!([]));
    assert_eq!(sim.status_of(&event), RunStatus::Failed);
}
