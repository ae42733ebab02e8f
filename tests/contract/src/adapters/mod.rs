//! Each adapter behind the suite's [`Adapter`](crate::Adapter) trait: how
//! it wraps a handler body, builds a worker, and waits on its handle.

mod async_std;
mod blocking;
mod tokio;

pub use async_std::{AsyncStd, Smol};
pub use blocking::Blocking;
pub use tokio::Tokio;
