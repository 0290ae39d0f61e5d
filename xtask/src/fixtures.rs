//! `cargo xtask fixtures`: the small ONNX graphs the runtime and registry tests run on, and the
//! tiny random-weight models of every exported architecture.
//!
//! Two stages, each cached on its own key so a re-run costs a few hashes:
//! - `make_fixtures.py` (onnx only): hand-made graphs in `target/modelmux-fixtures`.
//! - the tiny models of `tests/data/tiny-models.yaml`: built from real architecture configs by
//!   `xtask/python/export/tiny.py`, exported by the same exporters `cargo xtask export` uses,
//!   verified in Rust, then copied into deliberately broken variants for the tests, all in
//!   `target/modelmux-fixtures/tiny`. The key is the hash of the exporter scripts, its lock file
//!   and the test catalog.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::Context;
use modelmux_registry::{Catalog, ModelSource};

use crate::run_command;

/// The test catalog of the tiny models.
pub(crate) const TINY_CATALOG: &str = "tests/data/tiny-models.yaml";

/// Builds the fixtures into `target/modelmux-fixtures` unless they are up to date with the script
/// that makes them; returns the folder.
pub(crate) fn run(root: &Path) -> anyhow::Result<PathBuf> {
    let out = graphs(root)?;
    tiny_models(root, &out.join("tiny"))?;
    diffusion_goldens(root, &out)?;
    crate::vision_refs::run(root, &out)?;
    crate::lm_goldens::run(root, &out)?;
    crate::real_refs::run(root, &out)?;
    crate::serve_clients::run(root, &out)?;
    crate::kserve::run(root, &out)?;
    Ok(out)
}

fn graphs(root: &Path) -> anyhow::Result<PathBuf> {
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

/// The hash of everything the tiny models depend on: the exporters, their lock, the catalog.
fn tiny_key(root: &Path) -> anyhow::Result<String> {
    exporters_key(root, &[root.join(TINY_CATALOG)])
}

/// The hash of the exporters (every script of `xtask/python/export`), their lock and `extra`.
pub(crate) fn exporters_key(root: &Path, extra: &[PathBuf]) -> anyhow::Result<String> {
    use sha2::{Digest, Sha256};
    let mut files = vec![root.join("xtask/python/requirements-export.txt")];
    files.extend_from_slice(extra);
    let scripts = root.join("xtask/python/export");
    let mut entries: Vec<PathBuf> = std::fs::read_dir(&scripts)
        .with_context(|| format!("cannot list {}", scripts.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "py"))
        .collect();
    entries.sort();
    files.extend(entries);
    let mut hasher = Sha256::new();
    for file in files {
        hasher.update(file.file_name().unwrap_or_default().as_encoded_bytes());
        hasher.update(crate::setup::sha256_file(&file)?.as_bytes());
    }
    Ok(format!("{:x}", hasher.finalize()))
}

/// Builds, exports and verifies the tiny models into `dir` unless they are up to date.
fn tiny_models(root: &Path, dir: &Path) -> anyhow::Result<()> {
    let key = tiny_key(root)?;
    let stamp = dir.join(".made-by");
    if std::fs::read_to_string(&stamp).is_ok_and(|s| s == key) {
        eprintln!("tiny models up to date in {}", dir.display());
        return Ok(());
    }
    let started = Instant::now();
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir)?;
    let catalog_path = root.join(TINY_CATALOG);
    let catalog = Catalog::load(&catalog_path).map_err(|e| anyhow::anyhow!("{e}"))?;
    let exports = dir.join("exports");
    let mut jobs = Vec::new();
    for spec in catalog.models() {
        let ModelSource::Local { written, .. } = &spec.source else {
            anyhow::bail!(
                "{}: a tiny model's source is `fixtures/<builder>`, not `{}`",
                spec.key(),
                spec.source
            );
        };
        let builder = written.rsplit('/').next().unwrap_or(written);
        jobs.push(serde_json::json!({
            "tiny": builder,
            "source": dir.join("sources").join(&spec.id),
            "source_uri": written,
            "arch": spec.architecture.as_str(),
            "id": spec.id,
            "version": spec.version.to_string(),
            "precision": serde_json::to_value(spec.precision)?,
            "out": spec.export_dir(&exports),
        }));
    }
    let jobs_file = dir.join("jobs.json");
    std::fs::write(&jobs_file, serde_json::to_string_pretty(&jobs)?)?;
    let python = crate::export::environment(root)?;
    run_command(
        crate::export::python(&python)
            .arg(crate::export::script(root))
            .arg("batch")
            .arg(&jobs_file),
    )?;
    for spec in catalog.models() {
        let export = spec.export_dir(&exports);
        let report = crate::verify::verify_dir(&export)
            .with_context(|| format!("tiny model {}", spec.key()))?;
        crate::verify::print_report(&export, &report);
    }
    // Copies for the tests: a perturbed weight, swapped outputs, a too-new IR, optimum layout.
    run_command(
        crate::export::python(&python)
            .arg(root.join("xtask/python/export/variants.py"))
            .arg(&exports)
            .arg(dir.join("variants")),
    )?;
    std::fs::write(&stamp, key)?;
    eprintln!(
        "tiny models built, exported and verified in {} ({:.0} s)",
        dir.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// diffusers' scheduler steps and tiny-sd pipeline images, recorded for the diffusion adapter's
/// parity tests into `target/modelmux-fixtures/diffusion`; keyed on the script and the tiny models.
fn diffusion_goldens(root: &Path, out: &Path) -> anyhow::Result<()> {
    let script = root.join("xtask/python/diffusion_goldens.py");
    let dir = out.join("diffusion");
    let stamp = dir.join(".made-by");
    let key = format!(
        "{}{}",
        crate::setup::sha256_file(&script)?,
        std::fs::read_to_string(out.join("tiny/.made-by")).unwrap_or_default()
    );
    if std::fs::read_to_string(&stamp).is_ok_and(|s| s == key) {
        eprintln!("diffusion goldens up to date in {}", dir.display());
        return Ok(());
    }
    let python = crate::export::environment(root)?;
    run_command(
        crate::export::python(&python)
            .arg(&script)
            .arg(out.join("tiny/sources/tiny-sd"))
            .arg(&dir),
    )?;
    std::fs::write(&stamp, key)?;
    Ok(())
}
