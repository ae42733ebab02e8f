//! The main job, without async: a worker serving real functions through
//! connect-dev, with CPU-heavy handlers on every thread of the pool while
//! heartbeats stay on time.
//!
//! ```sh
//! cargo run --release -p connect-blocking --example demo_blocking
//! ```
//!
//! The load, progress and summary line are connect-demo's, shared by every
//! adapter's demo.

use std::time::Duration;

use connect_blocking::{Worker, WorkerHandle};
use connect_demo::{Args, Demo, DemoWorker};

struct Blocking(WorkerHandle);

impl DemoWorker for Blocking {
    fn state(&self) -> String {
        format!("{:?}", self.0.state())
    }

    fn shutdown(&self) {
        self.0.shutdown();
    }

    fn wait_closed(&self, timeout: Option<Duration>) {
        let _ = self.0.closed(timeout.unwrap_or(Duration::MAX));
    }
}

fn main() {
    connect_demo::init_tracing();
    let demo = Demo::start(Args::parse(&[]));
    let spin_ms = demo.args().spin_ms;
    let crunched = demo.crunched.clone();
    let mut builder = Worker::builder("demo")
        .threads(connect_demo::cores())
        .function(connect_demo::crunch_function(), move |ctx| connect_demo::crunch(&ctx, spin_ms, &crunched))
        .function(connect_demo::quick_function(), |ctx| connect_demo::quick(&ctx));
    if let Some(url) = demo.api_url() {
        builder = builder.api_base_url(url).dev(true);
    }
    let worker = match builder.connect() {
        Ok(w) => w,
        Err(e) => {
            eprintln!("worker could not start: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = worker.ready(Duration::from_secs(30)) {
        eprintln!("worker not ready: {e}");
        std::process::exit(1);
    }
    std::process::exit(demo.run(&Blocking(worker), "blocking, handler pool"));
}
