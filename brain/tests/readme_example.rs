//! The README's training example is `examples/train_brainmclip.rs` verbatim (minus its
//! header), so the code people copy is the code CI compiles and runs.

#[test]
fn readme_training_example_is_the_example_file() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let readme = std::fs::read_to_string(format!("{root}/README.md")).expect("README.md");
    let example = std::fs::read_to_string(format!("{root}/brain/examples/train_brainmclip.rs"))
        .expect("train_brainmclip.rs");
    let block = readme
        .split("`brain/examples/train_brainmclip.rs`:\n\n```rust\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("README quotes the training example");
    let body: String = example
        .lines()
        .skip_while(|l| l.starts_with("//!") || l.is_empty())
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(
        block, body,
        "README and brain/examples/train_brainmclip.rs differ"
    );
}
