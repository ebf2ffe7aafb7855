//! The `unchoke` command line.
fn main() {}
