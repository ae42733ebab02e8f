#![no_main]

// The simulation starts at the instant the input arrives; from there it
// advances by simulated time only.
libfuzzer_sys::fuzz_target!(|data: &[u8]| connect_core::fuzz::gateway_ops(std::time::Instant::now(), data));
