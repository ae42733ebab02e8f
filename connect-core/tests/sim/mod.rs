//! The worker simulation harness lives in `connect_core::fuzz::worker_sim`
//! (the `fuzzing` feature, which connect-core's own tests always enable), so
//! that the proptest model and the fuzz targets drive the same scripted gateway.
#![allow(unused_imports)]

pub use connect_core::fuzz::worker_sim::*;
