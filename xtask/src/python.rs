//! Pinned Python environments, cached outside the repository and keyed by their lock file.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context;

use crate::run_command;

/// The Python used to create environments and run pip: `$MODELMUX_PYTHON`, else `python3`.
pub(crate) fn interpreter() -> String {
    std::env::var("MODELMUX_PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

/// A virtual environment with exactly the packages of `requirements` (a file of `name==version`
/// lines), created once in `<cache>/venv/<name>-<hash of the file>` and reused: a changed pin makes
/// a new environment, an unchanged one costs nothing. Returns the environment's `python`.
pub(crate) fn environment(name: &str, requirements: &Path) -> anyhow::Result<PathBuf> {
    let hash = crate::setup::sha256_file(requirements)?;
    let dir = modelmux_runtime_ort::cache_dir()
        .join("venv")
        .join(format!("{name}-{}", &hash[..16]));
    let python = dir.join("bin").join("python");
    crate::make_once(&dir, &hash, || {
        eprintln!(
            "creating the Python environment `{name}` in {} …",
            dir.display()
        );
        run_command(Command::new(interpreter()).args(["-m", "venv"]).arg(&dir))?;
        pip_install(&python, requirements, None)
    })?;
    Ok(python)
}

/// Installs exactly the pins of `requirements` (no dependencies) with `python`'s pip: into its
/// environment, or with `target` into that folder (put on `PYTHONPATH` to use it).
pub(crate) fn pip_install(
    python: &Path,
    requirements: &Path,
    target: Option<&Path>,
) -> anyhow::Result<()> {
    let mut command = Command::new(python);
    command.args([
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--no-deps",
    ]);
    if let Some(target) = target {
        command.arg("--target").arg(target);
    }
    run_command(command.arg("-r").arg(requirements))
        .with_context(|| format!("cannot install {}", requirements.display()))
}
