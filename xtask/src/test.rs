//! `cargo xtask test`: every set-up step the tests need, then the whole suite.

use std::path::Path;
use std::process::Command;

use crate::run_command;

/// Sets up ONNX Runtime (CPU) and the fixtures, then runs `cargo test` on the workspace with
/// any extra arguments passed through (e.g. `cargo xtask test -- --nocapture`).
pub(crate) fn run(root: &Path, extra: &[&str]) -> anyhow::Result<()> {
    crate::setup::run(false)?;
    let fixtures = crate::fixtures::run(root)?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    run_command(
        Command::new(cargo)
            .current_dir(root)
            .env("MODELMUX_FIXTURES", &fixtures)
            .args(["test", "--workspace"])
            .args(extra),
    )
}
