//! The README's example is `examples/quickstart.rs` verbatim (minus its header), so
//! the code people copy from the README is the code that compiles and runs in CI.

#[test]
fn readme_example_is_the_quickstart() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let readme = std::fs::read_to_string(format!("{root}/README.md")).expect("README.md");
    let example = std::fs::read_to_string(format!("{root}/backend-cpu/examples/quickstart.rs"))
        .expect("quickstart.rs");
    let block = readme
        .split("## Example\n\n```rust\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("README has an ## Example section with a rust block");
    let body: String = example
        .lines()
        .skip_while(|l| l.starts_with("//!") || l.is_empty())
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(
        block, body,
        "README example and backend-cpu/examples/quickstart.rs differ: update one from the other"
    );
}
