//! See <https://github.com/matklad/cargo-xtask/>: project automation, run as `cargo xtask <task>`.
fn main() {}
