//! The README's "Writing a worker" example, kept compiling here (a test
//! checks that the README shows this file's code).
//!
//! ```sh
//! cargo run -p connect-dev                      # in one terminal: the local gateway
//! cargo run -p connect-tokio --example worker   # in another
//! curl -s localhost:8288/e/dev -d '{"name":"shop/order.paid","data":{"order_id":7}}'
//! ```

// README:begin
use connect_tokio::{Function, HandlerError, Worker};
use serde_json::json;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() {
    // The worker logs through `tracing`: connections, retries, failures. RUST_LOG picks the level.
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt().with_env_filter(filter).init();
    if let Err(e) = run().await {
        eprintln!("error: {e}"); // Display, not Debug: the messages say what to fix
        std::process::exit(1);
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let worker = Worker::builder("shop")
        .function(Function::new("send-receipt").on_event("shop/order.paid").retries(3), |ctx| async move {
            let order = &ctx.event().data["order_id"];
            if order.is_null() {
                return Err(HandlerError::non_retriable("no order id"));
            }
            Ok(json!({ "sent": order }))
        })
        .connect()
        .await?;
    // `worker.ready().await` would wait for the first ACTIVE connection (an error if the worker
    // closes first, e.g. Ctrl-C while the gateway is unreachable); this worker just serves:
    worker.closed().await?; // runs until SIGINT/SIGTERM, then shuts down gracefully
    Ok(())
}
// README:end
