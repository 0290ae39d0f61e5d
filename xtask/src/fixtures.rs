//! `cargo xtask fixtures`: the small ONNX graphs the runtime and registry tests run on.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::run_command;

/// Builds the fixtures into `target/modelmux-fixtures` unless they are up to date with the script
/// that makes them; returns the folder.
pub(crate) fn run(root: &Path) -> anyhow::Result<PathBuf> {
    let script = root.join("xtask/python/make_fixtures.py");
    let requirements = root.join("xtask/python/requirements-fixtures.txt");
    let out = root.join("target/modelmux-fixtures");
    let stamp = out.join(".made-by");
    let key = format!(
        "{}{}",
        crate::setup::sha256_file(&script)?,
        crate::setup::sha256_file(&requirements)?
    );
    if std::fs::read_to_string(&stamp).is_ok_and(|s| s == key) {
        eprintln!("fixtures up to date in {}", out.display());
        return Ok(out);
    }
    let python = crate::python::environment("fixtures", &requirements)?;
    run_command(Command::new(python).arg(&script).arg(&out))?;
    std::fs::write(&stamp, key)?;
    Ok(out)
}
