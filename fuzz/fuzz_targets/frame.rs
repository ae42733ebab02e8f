#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| connect_core::fuzz::frame(data));
