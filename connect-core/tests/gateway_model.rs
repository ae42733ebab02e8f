//! A proptest model of the gateway and executor: random sockets doing random
//! things, random time jumps, drains and events, with the invariants checked
//! after every step and at the end. The operations, the model and its
//! invariants are `connect_core::fuzz::gateway_model` (shared with the
//! `gateway_ops` fuzz target); this file only chooses the operations.

use connect_core::fuzz::gateway_model::{Op, run};
use proptest::prelude::*;
use std::time::Instant;

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => Just(Op::Accept),
        4 => (0u8..3, any::<bool>()).prop_map(|(instance, manual)| Op::Connect { instance, manual }),
        1 => any::<u8>().prop_map(|sock| Op::Hello { sock }),
        1 => (any::<u8>(), proptest::collection::vec(any::<u8>(), 0..24))
            .prop_map(|(sock, bytes)| Op::Garbage { sock, bytes }),
        2 => (any::<u8>(), 0i32..18, proptest::collection::vec(any::<u8>(), 0..24))
            .prop_map(|(sock, kind, payload)| Op::Kind { sock, kind, payload }),
        4 => any::<u8>().prop_map(|sock| Op::Heartbeat { sock }),
        1 => any::<u8>().prop_map(|sock| Op::Ready { sock }),
        1 => any::<u8>().prop_map(|sock| Op::Pause { sock }),
        4 => (any::<u8>(), any::<u8>()).prop_map(|(sock, req)| Op::Ack { sock, req }),
        4 => (any::<u8>(), any::<u8>(), 0i32..3, any::<bool>())
            .prop_map(|(sock, req, status, no_retry)| Op::Reply { sock, req, status, no_retry }),
        2 => (any::<u8>(), any::<u8>(), any::<bool>()).prop_map(|(sock, req, stale)| Op::Extend { sock, req, stale }),
        1 => (any::<u8>(), any::<bool>()).prop_map(|(sock, clean)| Op::Close { sock, clean }),
        4 => (0u32..70_000).prop_map(|ms| Op::Advance { ms }),
        1 => Just(Op::Drain),
        3 => any::<bool>().prop_map(|fast| Op::Event { fast }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Random operations keep every invariant and leave no request counted in flight.
    #[test]
    fn random_operations_keep_the_invariants(seed in any::<u64>(), ops in proptest::collection::vec(op(), 1..80)) {
        run(Instant::now(), seed, &ops);
    }
}
