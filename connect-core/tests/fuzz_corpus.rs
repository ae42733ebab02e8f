//! Replays the committed fuzz corpus (`fuzz/corpus/<target>/*`, including the
//! inputs of crashes found and fixed) through the fuzz target bodies, so that
//! `cargo test` keeps every one of them passing without cargo-fuzz.

use std::path::Path;
use std::time::Instant;

#[test]
fn every_committed_fuzz_input_passes() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
    let mut total = 0;
    for (name, body) in connect_core::fuzz::TARGETS {
        let dir = root.join(name);
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.expect("corpus entry").path())
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        assert!(!files.is_empty(), "no corpus for {name} in {}", dir.display());
        for file in &files {
            let data = std::fs::read(file).expect("corpus file");
            let result = std::panic::catch_unwind(|| body(Instant::now(), &data));
            assert!(result.is_ok(), "{name}: {} fails (replay: cargo fuzz run {name} {0})", file.display());
        }
        println!("{name}: {} inputs", files.len());
        total += files.len();
    }
    assert!(total > 0);
}
