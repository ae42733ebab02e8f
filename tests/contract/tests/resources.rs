//! Resource checks of the contract, in a process of their own because they
//! count the process's threads; one adapter at a time.

#![cfg(target_os = "linux")]

use std::sync::Mutex;

use connect_contract_tests::adapters::{AsyncStd, Blocking, Smol, Tokio};
use connect_contract_tests::scenarios::reconnects_leave_no_threads_or_sockets_behind;

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn alone(f: fn()) {
    let _guard = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    f();
}

#[test]
fn tokio_reconnects_leave_no_threads_or_sockets_behind() {
    alone(reconnects_leave_no_threads_or_sockets_behind::<Tokio>);
}

#[test]
fn blocking_reconnects_leave_no_threads_or_sockets_behind() {
    alone(reconnects_leave_no_threads_or_sockets_behind::<Blocking>);
}

#[test]
fn async_std_reconnects_leave_no_threads_or_sockets_behind() {
    alone(reconnects_leave_no_threads_or_sockets_behind::<AsyncStd>);
}

#[test]
fn smol_reconnects_leave_no_threads_or_sockets_behind() {
    alone(reconnects_leave_no_threads_or_sockets_behind::<Smol>);
}
