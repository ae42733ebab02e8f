//! The README's worker example is `examples/worker.rs` (which the build
//! compiles): the two must not drift apart.

#[test]
fn the_readme_shows_the_example_that_compiles() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let example = std::fs::read_to_string(root.join("examples/worker.rs")).expect("examples/worker.rs");
    let readme = std::fs::read_to_string(root.join("../README.md")).expect("README.md");
    let code = example
        .split("// README:begin\n")
        .nth(1)
        .and_then(|rest| rest.split("// README:end").next())
        .expect("README:begin/end markers in examples/worker.rs");
    assert!(code.lines().count() > 20, "the marked code is the whole example");
    assert!(
        readme.contains(&format!("```rust\n{code}```")),
        "README.md's tokio example differs from examples/worker.rs"
    );
}
