//! connect-blocking: handler bodies run as they are, on its handler pool.

use std::time::Duration;

use connect_blocking::{Builder, Worker, WorkerHandle};
use connect_core::worker::ConnectionState;

use crate::{Adapter, Running, Spec};

#[derive(Debug)]
pub struct Blocking;

fn builder(spec: Spec) -> Builder {
    let mut b = Worker::builder(spec.app)
        .api_base_url(spec.api_url)
        .instance_id(spec.instance_id)
        .dev(spec.signing_key.is_none())
        .handle_signals(spec.handle_signals)
        .seed(42)
        .threads(spec.handler_threads);
    if let Some(k) = &spec.signing_key {
        b = b.signing_key(k);
    }
    if let Some(t) = spec.shutdown_timeout {
        b = b.shutdown_timeout(t);
    }
    if let Some(k) = &spec.signing_key_fallback {
        b = b.signing_key_fallback(k);
    }
    for (f, body) in spec.functions {
        b = b.function(f, move |ctx| body(ctx));
    }
    b
}

impl Adapter for Blocking {
    const NAME: &'static str = "blocking";

    fn start(spec: Spec) -> Box<dyn Running> {
        Box::new(builder(spec).connect().expect("connects"))
    }

    fn builder_debug(spec: Spec) -> String {
        let b = builder(spec);
        format!("{b:?} {b:#?}")
    }
}

impl Running for WorkerHandle {
    fn ready(&self, timeout: Duration) -> Result<(), String> {
        WorkerHandle::ready(self, timeout).map_err(|e| e.to_string())
    }

    fn state(&self) -> ConnectionState {
        WorkerHandle::state(self)
    }

    fn shutdown(&self) {
        WorkerHandle::shutdown(self);
    }

    fn closed(&self, timeout: Duration) -> Result<(), String> {
        WorkerHandle::closed(self, timeout).map_err(|e| e.to_string())
    }

    fn restarts(&self) -> u64 {
        WorkerHandle::restarts(self)
    }

    fn inject_connection_panic(&self) {
        WorkerHandle::inject_connection_panic(self);
    }
}
