//! Fuzz target bodies, and the simulation harnesses and models they share
//! with connect-core's tests. Behind the `fuzzing` feature: never in a normal
//! build. The cargo-fuzz targets in `fuzz/` are one-line calls into this
//! module, and `tests/fuzz_corpus.rs` replays the committed corpus
//! (`fuzz/corpus/<target>/`) through the same functions, so a crash found by
//! the fuzzer stays fixed without cargo-fuzz installed.
//!
//! - [`frame`]: any bytes as a received frame: decode, re-encode, decode
//!   again, and the JSON and duration parsers behind the payloads.
//! - [`worker_ops`]: a sequence of operations against the worker machine
//!   ([`worker_model`]), with its invariants after every step.
//! - [`gateway_ops`]: a sequence of operations against the gateway machine and
//!   executor ([`gateway_model`]), with its invariants after every step.
//!
//! Nothing here (and nothing in the machines) reads a clock: every harness
//! takes its simulation's origin, an `Instant` from its caller (a test, or a
//! fuzz target in `fuzz/fuzz_targets/`), and advances from there by simulated
//! durations only.
#![allow(missing_debug_implementations)]

pub mod gateway_model;
pub mod gateway_sim;
pub mod worker_model;
pub mod worker_sim;

mod frame;

use std::time::Instant;

pub use frame::frame;

/// The `worker_ops` target: decode operations from `data` and run the worker
/// model, its simulated time starting at `origin`.
pub fn worker_ops(origin: Instant, data: &[u8]) {
    worker_model::run_bytes(origin, data)
}

/// The `gateway_ops` target: decode operations from `data` and run the
/// gateway model, its simulated time starting at `origin`.
pub fn gateway_ops(origin: Instant, data: &[u8]) {
    gateway_model::run_bytes(origin, data)
}

/// A fuzz target's body: the simulation's origin, then the fuzz input.
pub type Target = fn(Instant, &[u8]);

/// The `frame` target as a [`Target`] (it has no simulated time).
fn frame_target(_origin: Instant, data: &[u8]) {
    frame(data)
}

/// Every fuzz target by name, as `fuzz/fuzz_targets/*.rs` and the corpus directories name them.
pub const TARGETS: [(&str, Target); 3] =
    [("frame", frame_target), ("worker_ops", worker_ops), ("gateway_ops", gateway_ops)];

/// Reads fuzz bytes as numbers; past the end every read is zero, so any input decodes.
#[derive(Debug)]
pub struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Reader { data }
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    pub fn u8(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    pub fn bool(&mut self) -> bool {
        self.u8() & 1 == 1
    }

    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }

    pub fn u32(&mut self) -> u32 {
        u32::from(self.u16()) | u32::from(self.u16()) << 16
    }

    pub fn u64(&mut self) -> u64 {
        u64::from(self.u32()) | u64::from(self.u32()) << 32
    }

    /// A length byte (at most `max`), then that many bytes (fewer at the end).
    pub fn bytes(&mut self, max: usize) -> &'a [u8] {
        let len = (self.u8() as usize % (max + 1)).min(self.data.len());
        let (head, rest) = self.data.split_at(len);
        self.data = rest;
        head
    }
}
