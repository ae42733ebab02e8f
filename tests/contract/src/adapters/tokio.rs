//! connect-tokio, isolated (the default): handler bodies run inside async
//! tasks on a two-worker multi-thread runtime, blocking them.

use std::time::Duration;

use connect_core::worker::ConnectionState;
use connect_tokio::{Builder, Worker, WorkerHandle};

use crate::{Adapter, Running, Spec};

#[derive(Debug)]
pub struct Tokio;

struct TokioWorker {
    rt: Option<tokio::runtime::Runtime>,
    handle: WorkerHandle,
}

fn builder(spec: Spec) -> Builder {
    let mut b = crate::apply_spec!(Worker::builder(spec.app.clone()), spec);
    for (f, body) in spec.functions {
        b = b.function(f, move |ctx| {
            let body = body.clone();
            async move { body(ctx) }
        });
    }
    b
}

impl Adapter for Tokio {
    const NAME: &'static str = "tokio";

    fn start(spec: Spec) -> Box<dyn Running> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(spec.handler_threads)
            .enable_all()
            .build()
            .expect("runtime");
        let b = builder(spec);
        let handle = rt.block_on(b.connect()).expect("connects");
        Box::new(TokioWorker { rt: Some(rt), handle })
    }

    fn builder_debug(spec: Spec) -> String {
        let b = builder(spec);
        format!("{b:?} {b:#?}")
    }
}

impl TokioWorker {
    fn rt(&self) -> &tokio::runtime::Runtime {
        self.rt.as_ref().expect("runtime lives until drop")
    }
}

impl Running for TokioWorker {
    fn ready(&self, timeout: Duration) -> Result<(), String> {
        let wait = async { tokio::time::timeout(timeout, self.handle.ready()).await };
        self.rt().block_on(wait).map_err(|e| e.to_string())?.map_err(|e| e.to_string())
    }

    fn state(&self) -> ConnectionState {
        self.handle.state()
    }

    fn shutdown(&self) {
        self.handle.shutdown();
    }

    fn closed(&self, timeout: Duration) -> Result<(), String> {
        let wait = async { tokio::time::timeout(timeout, self.handle.closed()).await };
        self.rt().block_on(wait).map_err(|e| e.to_string())?.map_err(|e| e.to_string())
    }

    fn restarts(&self) -> u64 {
        self.handle.restarts()
    }

    fn inject_connection_panic(&self) {
        self.handle.inject_connection_panic();
    }
}

impl Drop for TokioWorker {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_timeout(Duration::from_secs(1));
        }
    }
}
