//! connect-blocking: handler bodies run as they are, on its handler pool.

use std::time::Duration;

use connect_blocking::{Worker, WorkerHandle};
use connect_core::worker::ConnectionState;

use crate::{Adapter, Running, Spec};

#[derive(Debug)]
pub struct Blocking;

impl Adapter for Blocking {
    fn start(spec: Spec) -> Box<dyn Running> {
        let mut b = Worker::builder(spec.app)
            .api_base_url(spec.api_url)
            .instance_id(spec.instance_id)
            .dev(true)
            .handle_signals(false)
            .seed(42)
            .threads(spec.handler_threads);
        for (f, body) in spec.functions {
            b = b.function(f, move |ctx| body(ctx));
        }
        Box::new(b.connect().expect("connects"))
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
