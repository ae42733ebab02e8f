//! The connect-async-std bench worker: `worker-async-std --app ID [--connections N]`.
//! Handlers run on async-std's executor (one thread per core by default). See
//! `connect_bench::worker` for the functions and protocol.

use std::time::Duration;

use connect_async_std::{Function, Worker};
use connect_bench::worker::{self, WorkerArgs};

fn main() {
    let args = WorkerArgs::parse();
    std::process::exit(async_std::task::block_on(run(args)));
}

async fn run(args: WorkerArgs) -> i32 {
    // Start async-std's executor threads now, as any app that has spawned a task has: otherwise the
    // first spawn (on the connection thread, for the first request) starts them.
    async_std::task::spawn(async {}).await;
    let mut workers = Vec::with_capacity(args.connections);
    for i in 0..args.connections {
        let builder = Worker::builder(args.app.clone())
            .instance_id(args.instance_id(i))
            .api_base_url(args.api_url.clone())
            .dev(true)
            .handle_signals(false)
            .function(
                Function::new("spin").on_event(worker::spin_event(&args.app)).retries(0),
                |ctx| async move {
                    // Deliberately blocking inside async code: no .await while it spins.
                    Ok(serde_json::json!(worker::spin(worker::spin_ms(&ctx.event().data))))
                },
            )
            .function(
                Function::new("echo").on_event(worker::echo_event(&args.app)).retries(0),
                |ctx| async move { Ok(ctx.event().data.clone()) },
            );
        match builder.connect().await {
            Ok(w) => workers.push(w),
            Err(e) => {
                eprintln!("worker-async-std: could not start: {e}");
                return 1;
            }
        }
    }
    for w in &workers {
        if let Err(e) = w.ready().await {
            eprintln!("worker-async-std: not ready: {e}");
            return 1;
        }
    }
    worker::print_ready();
    async_std::task::spawn_blocking(worker::wait_for_stdin_eof).await;
    for w in &workers {
        w.shutdown();
    }
    for w in &workers {
        let _ = async_std::future::timeout(Duration::from_secs(10), w.closed()).await;
    }
    0
}
