//! A proptest model of the worker: random operations against the scripted
//! gateway, with the invariants checked after every step. The operations, the
//! model and its invariants are `connect_core::fuzz::worker_model` (shared
//! with the `worker_ops` fuzz target); this file only chooses the operations.

use connect_core::fuzz::worker_model::{Op, run};
use proptest::prelude::*;
use std::time::Instant;

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u64..40_000).prop_map(Op::Advance),
        1 => (0u64..4_000).prop_map(Op::Jump),
        1 => (0u64..10_000).prop_map(Op::Backwards),
        1 => Just(Op::LinkDown),
        1 => any::<u8>().prop_map(Op::GatewayClose),
        1 => any::<bool>().prop_map(Op::HeartbeatsAnswered),
        1 => any::<bool>().prop_map(Op::RepliesAcked),
        1 => (0u8..3).prop_map(Op::Extend),
        1 => prop_oneof![Just(Some(200u16)), Just(Some(200)), Just(Some(500)), Just(Some(429)), Just(None)]
            .prop_map(Op::StartStatus),
        1 => prop_oneof![Just(Some(200u16)), Just(Some(503)), Just(None)].prop_map(Op::FlushStatus),
        1 => any::<u8>().prop_map(Op::AnswerHttp),
        4 => (0u8..12).prop_map(Op::Deliver),
        4 => (0u8..12).prop_map(Op::Reply),
        1 => Just(Op::Closing),
        1 => (0i32..20, proptest::collection::vec(any::<u8>(), 0..32))
            .prop_map(|(kind, payload)| Op::Raw { kind, payload }),
        1 => proptest::collection::vec(any::<u8>(), 0..24).prop_map(Op::Garbage),
        1 => Just(Op::Shutdown),
        1 => Just(Op::Respawn),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Random operations keep every invariant, and a final shutdown settles every reply.
    #[test]
    fn random_operations_keep_the_invariants(
        seed in any::<u64>(),
        max in proptest::option::of(1u32..4),
        ops in proptest::collection::vec(op(), 1..80),
    ) {
        run(Instant::now(), seed, max, &ops);
    }
}
