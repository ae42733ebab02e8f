//! connect-blocking: handler bodies run as they are, on its handler pool.

use std::time::Duration;

use connect_blocking::{Builder, Worker, WorkerHandle};
use connect_core::worker::ConnectionState;

use crate::{Adapter, Running, Spec};

#[derive(Debug)]
pub struct Blocking;

fn builder(spec: Spec) -> Builder {
    let mut b = crate::apply_spec!(Worker::builder(spec.app.clone()), spec).threads(spec.handler_threads);
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
