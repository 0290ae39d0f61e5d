//! `cargo xtask kserve`: KServe's Python SDK (`kserve` 0.21.0, with onnxruntime and tokenizers)
//! in a pinned environment in the cache folder, and a pointer to its Python in the fixtures folder
//! (`kserve.python`). The serve suite drives `modelmux serve` with its v2 REST client; the serve
//! bench runs its `ModelServer` as the baseline (`xtask/python/kserve_minilm.py`).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context;

use crate::run_command;

/// The lock file of the environment.
pub(crate) const REQUIREMENTS: &str = "xtask/python/requirements-kserve.txt";

/// The file in the fixtures folder that holds the environment's Python.
pub(crate) const POINTER: &str = "kserve.python";

/// Makes (or reuses) the environment and writes `out/kserve.python`; returns the Python.
pub(crate) fn run(root: &Path, out: &Path) -> anyhow::Result<PathBuf> {
    let python = crate::python::environment("kserve", &root.join(REQUIREMENTS))?;
    // The environment is installed with --no-deps: a module missing from the lock file shows
    // here, once per environment (the mark lives inside it), rather than in a test or a bench.
    let checked = python.with_file_name(".imports-checked");
    if !checked.exists() {
        run_command(Command::new(&python).args([
            "-c",
            "import kserve, kserve.protocol.rest.v2_datamodels, onnxruntime, tokenizers, uvicorn",
        ]))
        .with_context(|| format!("{REQUIREMENTS} misses a module kserve imports"))?;
        std::fs::write(&checked, "")?;
    }
    std::fs::create_dir_all(out)?;
    let pointer = out.join(POINTER);
    std::fs::write(&pointer, python.display().to_string())
        .with_context(|| format!("cannot write {}", pointer.display()))?;
    eprintln!("kserve environment ready: {}", python.display());
    Ok(python)
}
