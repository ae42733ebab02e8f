//! The gateway simulation harness lives in `connect_core::fuzz::gateway_sim`
//! (the `fuzzing` feature, which connect-core's own tests always enable), so
//! that the proptest model and the fuzz targets drive the same harness.
#![allow(unused_imports)]

pub use connect_core::fuzz::gateway_sim::*;

/// Where a test's simulated time starts. The only clock read in a
/// simulation: the machines and harnesses take every instant from here on.
pub fn origin() -> std::time::Instant {
    std::time::Instant::now()
}
