//! The main job on async-std or smol: a worker serving real functions
//! through connect-dev, with CPU-heavy async handlers that never yield
//! saturating every executor thread while heartbeats stay on time.
//!
//! ```sh
//! cargo run --release -p connect-async-std --example demo_async_std           # handlers on async-std
//! cargo run --release -p connect-async-std --example demo_async_std -- --smol # handlers on a smol executor
//! ```
//!
//! The load, progress and summary line are connect-demo's, shared by every
//! adapter's demo.

use std::sync::Arc;
use std::time::Duration;

use connect_async_std::{Worker, WorkerError, WorkerHandle};
use connect_demo::{Args, Demo, DemoWorker};

/// The handle, and the `block_on` of the executor under demonstration.
struct Async {
    handle: WorkerHandle,
    smol: bool,
}

impl Async {
    fn block_on<T>(&self, fut: impl std::future::Future<Output = T>) -> T {
        if self.smol { smol::block_on(fut) } else { async_std::task::block_on(fut) }
    }
}

impl DemoWorker for Async {
    fn state(&self) -> String {
        format!("{:?}", self.handle.state())
    }

    fn shutdown(&self) {
        self.handle.shutdown();
    }

    fn wait_closed(&self, timeout: Option<Duration>) {
        let closed = async {
            let _ = self.handle.closed().await;
        };
        match timeout {
            Some(t) => self.block_on(futures_lite::future::or(closed, async {
                smol::Timer::after(t).await;
            })),
            None => self.block_on(closed),
        }
    }
}

fn main() {
    connect_demo::init_tracing();
    let demo = Demo::start(Args::parse(&["--smol"]));
    let smol = demo.args().has("--smol");
    let spin_ms = demo.args().spin_ms;
    let crunched = demo.crunched.clone();
    let mut builder = Worker::builder("demo")
        .function(connect_demo::crunch_function(), move |ctx| {
            let crunched = crunched.clone();
            // Deliberately blocking inside async code: no .await for seconds.
            async move { connect_demo::crunch(&ctx, spin_ms, &crunched) }
        })
        .function(connect_demo::quick_function(), |ctx| async move { connect_demo::quick(&ctx) });
    if smol {
        // smol's global executor has one thread unless SMOL_THREADS says
        // otherwise; the demo keeps every core busy with its own.
        let ex = Arc::new(smol::Executor::<'static>::new());
        for i in 0..connect_demo::cores() {
            let ex = ex.clone();
            std::thread::Builder::new()
                .name(format!("smol-{i}"))
                .spawn(move || smol::block_on(ex.run(std::future::pending::<()>())))
                .expect("executor thread");
        }
        builder = builder.spawner(move |fut| ex.spawn(fut).detach());
    }
    if let Some(url) = demo.api_url() {
        builder = builder.api_base_url(url).dev(true);
    }
    let worker = Async {
        handle: async_std::task::block_on(builder.connect()).unwrap_or_else(|e| {
            eprintln!("worker could not start: {e}");
            std::process::exit(1)
        }),
        smol,
    };
    let ready = worker.block_on(futures_lite::future::or(worker.handle.ready(), async {
        smol::Timer::after(Duration::from_secs(30)).await;
        Err(WorkerError::TimedOut(Duration::from_secs(30)))
    }));
    if let Err(e) = ready {
        eprintln!("worker not ready: {e}");
        std::process::exit(1);
    }
    let mode = if smol { "smol executor" } else { "async-std executor" };
    std::process::exit(demo.run(&worker, mode));
}
