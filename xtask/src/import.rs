//! `cargo xtask import <dir|file.onnx>`: brings an ONNX export made elsewhere under modelmux.
//!
//! Accepts a folder in optimum's layout (`model.onnx` or several `*.onnx`, `config.json`,
//! tokenizer files) or a bare `.onnx` file. What the files cannot say (id, version,
//! architecture, source) comes from flags or from a small `modelmux-import.json` beside them.
//! It writes `manifest.json` in the folder (sizes, hashes, IR/opsets and the I/O signature read
//! by ONNX Runtime) and runs the registry's compatibility check, failing on any error finding.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use modelmux_registry::{
    Catalog, DirProbe, FileRole, LoadOptions, MANIFEST_FILE, MANIFEST_VERSION, Manifest,
    ManifestFile, ManifestSource, OnnxInfo, OpsetImport, RuntimeCapabilities, Severity, TensorSpec,
};
use modelmux_runtime_ort::{Dim, Runtime, SessionSpec};

/// The optional description file of an import.
pub(crate) const DESCRIPTION_FILE: &str = "modelmux-import.json";

pub(crate) fn run(_root: &Path, args: &[&str]) -> anyhow::Result<()> {
    let mut target = None;
    let (mut id, mut version, mut arch, mut source) = (None, None, None, None);
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = || {
            it.next()
                .map(|s| (*s).to_owned())
                .with_context(|| format!("{arg} needs a value"))
        };
        match *arg {
            "--id" => id = Some(value()?),
            "--version" => version = Some(value()?),
            "--arch" => arch = Some(value()?),
            "--source" => source = Some(value()?),
            other if other.starts_with("--") => bail!("import: unknown option `{other}`"),
            other => target = Some(PathBuf::from(other)),
        }
    }
    let target = target.context(
        "usage: cargo xtask import <dir|file.onnx> [--id ID] [--version V] [--arch A] [--source URI]",
    )?;
    let description = Description {
        id,
        version,
        arch,
        source,
    };
    let dir = import(&target, description)?;
    println!(
        "imported {}: {} written, compatibility check passed",
        dir.display(),
        MANIFEST_FILE
    );
    Ok(())
}

/// What the files cannot say; unset fields come from `modelmux-import.json`, then defaults.
#[derive(Debug, Default, Clone)]
pub(crate) struct Description {
    pub(crate) id: Option<String>,
    pub(crate) version: Option<String>,
    pub(crate) arch: Option<String>,
    pub(crate) source: Option<String>,
}

/// Imports `target` (a folder or a bare `.onnx`), returns the folder holding the manifest.
pub(crate) fn import(target: &Path, mut description: Description) -> anyhow::Result<PathBuf> {
    let (dir, only) = if target.is_file() {
        let dir = target
            .parent()
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
        (
            dir,
            Some(
                target
                    .file_name()
                    .context("a file name")?
                    .to_string_lossy()
                    .into_owned(),
            ),
        )
    } else if target.is_dir() {
        (target.to_owned(), None)
    } else {
        bail!("{} does not exist", target.display());
    };
    let described = dir.join(DESCRIPTION_FILE);
    if described.exists() {
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&described)?)
                .with_context(|| format!("{} is not JSON", described.display()))?;
        let get = |k: &str| json.get(k).and_then(|v| v.as_str()).map(str::to_owned);
        description.id = description.id.or_else(|| get("id"));
        description.version = description.version.or_else(|| get("version"));
        description.arch = description.arch.or_else(|| get("architecture"));
        description.source = description.source.or_else(|| get("source"));
    }
    let arch = match description.arch {
        Some(a) => a,
        None => crate::export::infer_architecture(&dir).with_context(|| {
            format!(
                "pass --arch or write {{\"architecture\": …}} in {}",
                described.display()
            )
        })?,
    };
    let abs = std::path::absolute(&dir)?;
    let id = description.id.unwrap_or_else(|| {
        abs.file_name().map_or_else(
            || "imported".to_owned(),
            |n| n.to_string_lossy().to_lowercase(),
        )
    });
    let version = description.version.unwrap_or_else(|| "0.1.0".to_owned());
    let source = description
        .source
        .unwrap_or_else(|| abs.display().to_string());

    let runtime = Runtime::global()
        .map_err(|e| anyhow::anyhow!("{e}\n(`cargo xtask setup` installs ONNX Runtime)"))?;
    let mut files = Vec::new();
    for rel in list_files(&dir)? {
        if let Some(only) = &only {
            // A bare file: the model and its external data only.
            if !(rel == *only
                || rel.starts_with(&format!("{only}_data"))
                || rel.starts_with(&format!("{only}.data")))
            {
                continue;
            }
        }
        files.push(file_entry(&dir, &rel, runtime)?);
    }
    if !files.iter().any(|f| f.role == FileRole::Onnx) {
        bail!("{}: no .onnx file to import", dir.display());
    }
    let manifest = Manifest {
        manifest_version: MANIFEST_VERSION,
        id: id.clone(),
        version: version.clone(),
        source: ManifestSource {
            uri: source.clone(),
            revision: None,
        },
        files,
        validation: None,
        tool_versions: [("onnxruntime".to_owned(), runtime.version().to_owned())].into(),
        created: None,
        extra: [
            (
                "architecture".to_owned(),
                serde_json::Value::from(arch.clone()),
            ),
            ("imported".to_owned(), serde_json::Value::from(true)),
        ]
        .into(),
    };
    let manifest_path = dir.join(MANIFEST_FILE);
    manifest.write(&manifest_path)?;

    // The compatibility check, through a one-entry catalog describing the import.
    let family = family_of(&arch)?;
    let catalog_text = format!(
        "catalog_version: 1\nmodels:\n  {family}:\n    {id}:\n      version: {version}\n      architecture: {arch}\n      source: {}\n      providers: [cpu]\n",
        serde_json::Value::from(source.clone())
    );
    let catalog_path = dir.join("modelmux-import.yaml");
    let catalog = Catalog::from_str(&catalog_text, &catalog_path, &LoadOptions::default())
        .map_err(|e| anyhow::anyhow!("describing the import as a catalog entry: {e}"))?;
    let spec = catalog.get(&id).map_err(|e| anyhow::anyhow!("{e}"))?;
    let limits = runtime.onnx_limits();
    let caps = RuntimeCapabilities {
        onnxruntime_version: runtime.version().to_owned(),
        max_ir_version: limits.max_ir_version,
        max_opset: limits.max_opset,
        providers: runtime.usable_providers(),
    };
    let probe = DirProbe::new(&dir);
    let findings = modelmux_registry::check(spec, Some(&manifest), &caps, &probe);
    let _ = probe.save();
    for finding in &findings {
        eprintln!("{finding}");
    }
    if findings.iter().any(|f| f.severity == Severity::Error) {
        bail!(
            "{}: the compatibility check failed (see above)",
            dir.display()
        );
    }
    Ok(dir)
}

fn family_of(arch: &str) -> anyhow::Result<&'static str> {
    Ok(match arch {
        "stable-diffusion" => "diffusion",
        "clip" | "align" | "flava" | "blip-caption" => "vlm",
        "bert" | "decoder-only" | "encoder-decoder" => "lm",
        "image-classifier" | "mlp-head" | "quality" => "specialized",
        other => bail!("unknown architecture `{other}`"),
    })
}

/// Every file under `dir`, relative with `/`, except the manifest, dotfiles and our own files.
fn list_files(dir: &Path) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in
            std::fs::read_dir(&d).with_context(|| format!("cannot list {}", d.display()))?
        {
            let path = entry?.path();
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if name.starts_with('.') {
                continue;
            }
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let rel = path.strip_prefix(dir)?.to_string_lossy().replace('\\', "/");
            if [MANIFEST_FILE, DESCRIPTION_FILE, "modelmux-import.yaml"].contains(&rel.as_str()) {
                continue;
            }
            out.push(rel);
        }
    }
    out.sort();
    Ok(out)
}

fn role_of(rel: &str) -> FileRole {
    let name = rel.rsplit('/').next().unwrap_or(rel);
    if name.ends_with(".onnx") {
        FileRole::Onnx
    } else if name.ends_with(".onnx_data") || name.ends_with(".onnx.data") || name == "weights.pb" {
        FileRole::ExternalData
    } else if matches!(
        name,
        "tokenizer.json"
            | "vocab.txt"
            | "vocab.json"
            | "merges.txt"
            | "tokenizer_config.json"
            | "special_tokens_map.json"
            | "spiece.model"
    ) {
        FileRole::Tokenizer
    } else if name == "preprocessor_config.json" {
        FileRole::Preprocessing
    } else if name.ends_with(".json") {
        FileRole::Config
    } else {
        FileRole::Other
    }
}

fn file_entry(dir: &Path, rel: &str, runtime: &Runtime) -> anyhow::Result<ManifestFile> {
    let path = dir.join(rel);
    let size = std::fs::metadata(&path)?.len();
    let sha256 = modelmux_registry::sha256_file(&path)?;
    let role = role_of(rel);
    let onnx = if role == FileRole::Onnx {
        let header =
            modelmux_onnx::read_header(&path).map_err(|e| anyhow::anyhow!("{rel}: {e}"))?;
        let limits = runtime.onnx_limits();
        let opset_imports = header
            .opset_imports
            .iter()
            .map(|o| OpsetImport {
                domain: o.domain.clone(),
                version: o.version,
            })
            .collect();
        // The signature comes from a session, which a too-new file cannot open: the check
        // below then reports the IR/opset, so an empty signature is enough here.
        let loadable = header.ir_version <= limits.max_ir_version
            && header.opset_imports.iter().all(|o| {
                !(o.domain.is_empty() || o.domain == "ai.onnx") || o.version <= limits.max_opset
            });
        let (inputs, outputs) = if loadable {
            let handle = runtime
                .load(rel, &path, &SessionSpec::cpu())
                .with_context(|| format!("{}: cannot open with ONNX Runtime", path.display()))?;
            let info = handle.info();
            let specs = |list: &[modelmux_runtime_ort::TensorInfo]| -> Vec<TensorSpec> {
                list.iter()
                    .map(|t| TensorSpec {
                        name: t.name.clone(),
                        dtype: t.element_type.to_string(),
                        shape: t
                            .shape
                            .iter()
                            .map(|d| match d {
                                Dim::Fixed(n) => modelmux_registry::Dim::Fixed(*n as u64),
                                Dim::Symbolic(s) => modelmux_registry::Dim::Symbolic(s.clone()),
                                Dim::Dynamic => modelmux_registry::Dim::Symbolic("?".into()),
                            })
                            .collect(),
                    })
                    .collect()
            };
            let io = (specs(&info.inputs), specs(&info.outputs));
            handle.shutdown();
            io
        } else {
            (Vec::new(), Vec::new())
        };
        Some(OnnxInfo {
            ir_version: header.ir_version,
            opset_imports,
            inputs,
            outputs,
        })
    } else {
        None
    };
    Ok(ManifestFile {
        path: rel.to_owned(),
        role,
        size,
        sha256,
        onnx,
    })
}
