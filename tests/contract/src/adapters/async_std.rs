//! connect-async-std, twice: under async-std (its default spawner, handlers
//! on async-std's executor) and under smol (handlers on a two-thread smol
//! executor, the handle's waits on `smol::block_on`). Handler bodies run
//! inside async tasks, blocking the executor's threads.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use connect_async_std::{Builder, Worker, WorkerHandle};
use connect_core::worker::ConnectionState;

use crate::{Adapter, Running, Spec};

#[derive(Debug)]
pub struct AsyncStd;

#[derive(Debug)]
pub struct Smol;

type Wait<'a> = Pin<Box<dyn Future<Output = Result<(), String>> + 'a>>;

struct AsyncWorker {
    handle: WorkerHandle,
    /// The `block_on` of the executor under test.
    block_on: fn(Wait<'_>) -> Result<(), String>,
    /// Ends the smol executor's threads on drop.
    _stop: Option<async_channel::Sender<()>>,
}

fn builder(spec: &mut Spec) -> Builder {
    let mut b = crate::apply_spec!(Worker::builder(spec.app.clone()), spec);
    for (f, body) in spec.functions.drain(..) {
        b = b.function(f, move |ctx| {
            let body = body.clone();
            async move { body(ctx) }
        });
    }
    b
}

impl Adapter for AsyncStd {
    const NAME: &'static str = "async_std";

    fn builder_debug(mut spec: Spec) -> String {
        let b = builder(&mut spec);
        format!("{b:?} {b:#?}")
    }

    fn start(mut spec: Spec) -> Box<dyn Running> {
        let handle = async_std::task::block_on(builder(&mut spec).connect()).expect("connects");
        Box::new(AsyncWorker { handle, block_on: |f| async_std::task::block_on(f), _stop: None })
    }
}

impl Adapter for Smol {
    const NAME: &'static str = "smol";

    fn builder_debug(mut spec: Spec) -> String {
        let b = builder(&mut spec);
        format!("{b:?} {b:#?}")
    }

    fn start(mut spec: Spec) -> Box<dyn Running> {
        let ex = Arc::new(smol::Executor::new());
        let (stop, stopped) = async_channel::bounded::<()>(1);
        for i in 0..spec.handler_threads {
            let (ex, stopped) = (ex.clone(), stopped.clone());
            std::thread::Builder::new()
                .name(format!("smol-{i}"))
                .spawn(move || smol::block_on(ex.run(stopped.recv())))
                .expect("executor thread");
        }
        let b = builder(&mut spec).spawner(move |fut| ex.spawn(fut).detach());
        let handle = smol::block_on(b.connect()).expect("connects");
        Box::new(AsyncWorker { handle, block_on: |f| smol::block_on(f), _stop: Some(stop) })
    }
}

/// `fut`, or an error once `timeout` passes; works on any executor.
async fn within<E: std::fmt::Display>(
    timeout: Duration,
    fut: impl Future<Output = Result<(), E>>,
) -> Result<(), String> {
    let done = async { Some(fut.await.map_err(|e| e.to_string())) };
    let expired = async {
        async_io::Timer::after(timeout).await;
        None
    };
    futures_lite::future::or(done, expired)
        .await
        .unwrap_or_else(|| Err(format!("timed out after {timeout:?}")))
}

impl Running for AsyncWorker {
    fn ready(&self, timeout: Duration) -> Result<(), String> {
        (self.block_on)(Box::pin(within(timeout, self.handle.ready())))
    }

    fn state(&self) -> ConnectionState {
        self.handle.state()
    }

    fn shutdown(&self) {
        self.handle.shutdown();
    }

    fn closed(&self, timeout: Duration) -> Result<(), String> {
        (self.block_on)(Box::pin(within(timeout, self.handle.closed())))
    }

    fn restarts(&self) -> u64 {
        self.handle.restarts()
    }

    fn inject_connection_panic(&self) {
        self.handle.inject_connection_panic();
    }
}
