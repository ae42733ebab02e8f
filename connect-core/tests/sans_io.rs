//! The crate's contract, checked on its source: connect-core reads no clock,
//! spawns no thread, touches no socket and depends on no runtime or network
//! crate. A violation anywhere under `src/` (test and fuzz harness code
//! included: they take their origin instant from their callers) fails here,
//! naming the file and line.

use std::fs;
use std::path::{Path, PathBuf};

/// What `src/` must never mention.
const FORBIDDEN: [&str; 4] = ["Instant::now", "SystemTime::now", "std::thread", "std::net"];

/// Crates that must never be a normal dependency.
const NOT_DEPENDENCIES: [&str; 10] =
    ["tokio", "tungstenite", "mio", "socket2", "ureq", "hyper", "async-std", "smol", "async-io", "rustls"];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).expect("readable source dir") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn the_source_reads_no_clock_and_touches_no_thread_or_socket() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    assert!(files.len() > 20, "found only {} files under {}", files.len(), src.display());
    let mut found = Vec::new();
    for file in &files {
        let text = fs::read_to_string(file).expect("utf-8 source");
        for (n, line) in text.lines().enumerate() {
            for pattern in FORBIDDEN {
                if line.contains(pattern) {
                    found.push(format!("{}:{}: {}", file.display(), n + 1, line.trim()));
                }
            }
        }
    }
    assert!(found.is_empty(), "connect-core/src must not use {FORBIDDEN:?}:\n{}", found.join("\n"));
}

#[test]
fn no_runtime_or_network_crate_is_a_dependency() {
    let manifest = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"))
        .expect("connect-core/Cargo.toml");
    let deps: Vec<&str> = manifest
        .lines()
        .skip_while(|l| l.trim() != "[dependencies]")
        .skip(1)
        .take_while(|l| !l.trim_start().starts_with('['))
        .filter_map(|l| l.split(['.', '=', ' ']).next().filter(|name| !name.is_empty()))
        .collect();
    assert!(deps.contains(&"prost"), "could not read [dependencies]: {deps:?}");
    for dep in deps {
        assert!(
            !NOT_DEPENDENCIES.iter().any(|bad| dep.contains(bad)),
            "connect-core depends on {dep}, a runtime or network crate"
        );
    }
}
