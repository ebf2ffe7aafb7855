//! The README's "Embed the core" section shows the loop of `core/examples/embed_std.rs` in
//! full; this keeps that copy from drifting away from the code CI runs.

/// The example's loop: from `impl Peer {` (the one holding `fn turn`) to its closing brace.
fn example_loop(example: &str) -> Option<&str> {
    let start = example.find("impl Peer {\n    /// One turn")?;
    let len = example[start..].find("\n}\n")? + 2;
    Some(&example[start..start + len])
}

#[test]
fn readme_shows_the_example_loop_verbatim() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let example = std::fs::read_to_string(format!("{root}/core/examples/embed_std.rs"))
        .expect("the example is in the repository");
    let readme = std::fs::read_to_string(format!("{root}/README.md")).expect("README.md");
    let lp = example_loop(&example).expect("embed_std.rs has `impl Peer` with `fn turn`");
    assert!(lp.contains("fn turn") && lp.contains("fn drain") && lp.contains("poll_action"));
    let section = readme
        .split("## Embed the core")
        .nth(1)
        .expect("README has an \"Embed the core\" section");
    assert!(
        section.contains(lp),
        "README's \"Embed the core\" section must show the loop of core/examples/embed_std.rs \
         verbatim; copy `impl Peer {{ … fn turn … fn drain … }}` from the example"
    );
}
