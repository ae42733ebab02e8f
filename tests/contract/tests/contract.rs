//! The contract suite, once per adapter: `cargo test -p connect-contract-tests`
//! (or `-- blocking::` for one adapter).

mod tokio {
    connect_contract_tests::contract_suite!(connect_contract_tests::adapters::Tokio);
}

mod blocking {
    connect_contract_tests::contract_suite!(connect_contract_tests::adapters::Blocking);
}

mod async_std {
    connect_contract_tests::contract_suite!(connect_contract_tests::adapters::AsyncStd);
}

mod smol {
    connect_contract_tests::contract_suite!(connect_contract_tests::adapters::Smol);
}
