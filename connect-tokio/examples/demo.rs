//! The main job: a worker serving real functions through connect-dev, with
//! CPU-heavy user code saturating every core while heartbeats stay on time.
//!
//! ```sh
//! cargo run --release -p connect-tokio --example demo                  # isolated (default)
//! cargo run --release -p connect-tokio --example demo -- --same-runtime # what isolation prevents
//! ```
//!
//! It starts connect-dev in-process (or, when `INNGEST_BASE_URL`,
//! `INNGEST_API_BASE_URL` or `INNGEST_DEV=<url>` point elsewhere, uses that
//! gateway), registers a CPU-bound function that does not yield for seconds
//! and a quick one, sends events that keep every core busy in user code for
//! about 20 s, and prints one summary line measured at the gateway. The load,
//! progress and summary are connect-demo's, shared by every adapter's demo.

use std::time::Duration;

use connect_demo::{Args, Demo, DemoWorker};
use connect_tokio::{Worker, WorkerHandle};

struct Tokio {
    worker: WorkerHandle,
    rt: tokio::runtime::Handle,
}

impl DemoWorker for Tokio {
    fn state(&self) -> String {
        format!("{:?}", self.worker.state())
    }

    fn shutdown(&self) {
        self.worker.shutdown();
    }

    fn wait_closed(&self, timeout: Option<Duration>) {
        let closed = self.worker.closed();
        self.rt.block_on(async {
            match timeout {
                Some(t) => drop(tokio::time::timeout(t, closed).await),
                None => drop(closed.await),
            }
        });
    }
}

fn main() {
    connect_demo::init_tracing();
    let demo = Demo::start(Args::parse(&["--same-runtime"]));
    let same_runtime = demo.args().has("--same-runtime");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(connect_demo::cores())
        .enable_all()
        .build()
        .expect("runtime");
    let spin_ms = demo.args().spin_ms;
    let crunched = demo.crunched.clone();
    let mut builder = Worker::builder("demo")
        .same_runtime(same_runtime)
        .function(connect_demo::crunch_function(), move |ctx| {
            let crunched = crunched.clone();
            // Deliberately blocking inside async code: no .await for seconds.
            async move { connect_demo::crunch(&ctx, spin_ms, &crunched) }
        })
        .function(connect_demo::quick_function(), |ctx| async move { connect_demo::quick(&ctx) });
    if let Some(url) = demo.api_url() {
        builder = builder.api_base_url(url).dev(true);
    }
    let worker = match runtime.block_on(builder.connect()) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("worker could not start: {e}");
            std::process::exit(1);
        }
    };
    let ready =
        runtime.block_on(async { tokio::time::timeout(Duration::from_secs(30), worker.ready()).await });
    if !matches!(ready, Ok(Ok(()))) {
        eprintln!("worker not ready within 30 s: {ready:?}");
        std::process::exit(1);
    }
    let mode =
        if same_runtime { "same-runtime: connection task on the handlers' runtime" } else { "isolated" };
    let code = demo.run(&Tokio { worker, rt: runtime.handle().clone() }, mode);
    runtime.shutdown_timeout(Duration::from_secs(1));
    std::process::exit(code);
}
