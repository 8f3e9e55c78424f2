//! The README's Rust example is `examples/shout.rs`, which cargo builds with
//! the tests, so the README cannot drift into code that does not compile.

#[test]
fn readme_example_is_the_compiled_example() {
    let readme = include_str!("../README.md");
    let example = include_str!("../examples/shout.rs");
    let start = readme.find("```rust\n").expect("README has a Rust example") + 8;
    let len = readme[start..].find("```").expect("closed code block");
    let code: String = example
        .lines()
        .filter(|l| !l.starts_with("//!"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(&readme[start..start + len], code);
}
