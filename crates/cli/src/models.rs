//! `modelmux models …`: list the catalog and check it against the exports and the runtime.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use modelmux_registry::{Catalog, Finding, ModelSpec, RuntimeCapabilities, Severity};
use serde_json::json;

#[derive(Debug, clap::Subcommand)]
pub(crate) enum Command {
    /// List the catalog's models: id, version, family, source, memory, policy, exported?, compatible?
    List(Args),
    /// Check every model against its export and the local ONNX Runtime; exits 1 on any error.
    Check(Args),
    /// Everything about one model: its catalog entry, its export and whether it is compatible.
    Show(ShowArgs),
}

#[derive(Debug, clap::Args)]
pub(crate) struct ShowArgs {
    /// The model (`id` or `id@version`).
    model: String,
    #[command(flatten)]
    args: Args,
}

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The catalog file.
    #[arg(long, value_name = "FILE", default_value = "models.yaml")]
    catalog: PathBuf,
    /// The exports folder [default: `exports/` next to the catalog].
    #[arg(long, value_name = "DIR")]
    exports: Option<PathBuf>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(command: &Command) -> anyhow::Result<ExitCode> {
    let (args, listing) = match command {
        Command::List(args) => (args, true),
        Command::Check(args) => (args, false),
        Command::Show(show_args) => return show(show_args),
    };
    let (catalog, caps, fallback, exports) = match setup(args) {
        Ok(found) => found,
        Err(code) => return Ok(code),
    };
    let report = check_catalog(&catalog, &exports, &caps);
    if listing {
        if args.json {
            emit(&json_text(&list_json(&report, &caps, fallback.is_some())));
        } else {
            emit(&list_text(&report));
        }
        return Ok(ExitCode::SUCCESS);
    }
    if args.json {
        emit(&json_text(&check_json(&report, &caps, fallback.is_some())));
    } else {
        emit(&check_text(&report, &caps));
    }
    Ok(if report.iter().any(ModelReport::has_errors) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// The catalog, what the runtime supports (with a warning when it is assumed), and the exports
/// folder; a catalog that does not load is reported here and ends the command with exit 1.
fn setup(args: &Args) -> Result<(Catalog, RuntimeCapabilities, Option<String>, PathBuf), ExitCode> {
    let catalog = match Catalog::load(&args.catalog) {
        Ok(catalog) => catalog,
        Err(err) => return Err(report_load_error(&err, args.json)),
    };
    let (caps, fallback) = runtime_capabilities();
    if let Some(warning) = &fallback {
        eprintln!("warning: {warning}");
    }
    let exports = args
        .exports
        .clone()
        .unwrap_or_else(|| catalog.exports_dir());
    Ok((catalog, caps, fallback, exports))
}

/// `models show <id>`: the entry, where its export is, what its manifest says, the findings.
fn show(show: &ShowArgs) -> anyhow::Result<ExitCode> {
    let args = &show.args;
    let (catalog, caps, fallback, exports) = match setup(args) {
        Ok(found) => found,
        Err(code) => return Ok(code),
    };
    let spec = catalog
        .get(&show.model)
        .map_err(|e| anyhow::format_err!("{e}"))?;
    let dir = spec.export_dir(&exports);
    let manifest_path = dir.join(modelmux_registry::MANIFEST_FILE);
    let manifest = modelmux_registry::Manifest::read(&manifest_path)
        .map_err(|e| anyhow::format_err!("{e}"))?;
    let report = ModelReport {
        spec,
        exported: manifest.is_some(),
        findings: modelmux_registry::check_export(spec, &exports, &caps),
    };
    let location = catalog.location_of(spec);
    if args.json {
        let value = json!({
            "id": spec.id,
            "version": spec.version.to_string(),
            "key": spec.key(),
            "family": spec.family.as_str(),
            "architecture": spec.architecture.as_str(),
            "description": spec.description,
            "tasks": spec.tasks.iter().map(|t| t.as_str()).collect::<Vec<_>>(),
            "source": spec.source.to_string(),
            "memory_bytes": spec.memory_requirement.map(|m| m.bytes()),
            "cache_policy": spec.cache_policy.to_string(),
            "priority": spec.priority.as_str(),
            "providers": spec.providers.iter().map(|p| p.as_str()).collect::<Vec<_>>(),
            "cpu_fallback": spec.cpu_fallback,
            "precision": format!("{:?}", spec.precision).to_lowercase(),
            "instances": spec.instances,
            "batching": {
                "max_batch_size": spec.batching.max_batch_size,
                "max_queue_delay_ms": spec.batching.max_queue_delay.as_secs_f64() * 1e3,
            },
            "params": spec.params,
            "defined_at": location.to_string(),
            "export_dir": dir.display().to_string(),
            "exported": report.exported(),
            "compatible": report.compatible(),
            "manifest": manifest,
            "findings": findings_json(&report.findings),
            "runtime": runtime_json(&caps, fallback.is_some()),
        });
        emit(&json_text(&value));
    } else {
        let mut out = String::new();
        let mut line = |k: &str, v: String| out.push_str(&format!("{k:<14} {v}\n"));
        line("model", spec.key());
        line("family", format!("{} ({})", spec.family, spec.architecture));
        if let Some(d) = &spec.description {
            line("description", d.trim().to_owned());
        }
        line(
            "tasks",
            spec.tasks
                .iter()
                .map(|t| t.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        );
        line("source", spec.source.to_string());
        line("memory", memory(spec));
        line(
            "policy",
            format!("{}, priority {}", spec.cache_policy, spec.priority.as_str()),
        );
        line(
            "providers",
            format!(
                "{}{}",
                spec.providers
                    .iter()
                    .map(|p| p.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                if spec.cpu_fallback {
                    " (cpu fallback allowed)"
                } else {
                    ""
                }
            ),
        );
        line(
            "instances",
            format!(
                "{}, batches up to {}",
                spec.instances, spec.batching.max_batch_size
            ),
        );
        line("defined at", location.to_string());
        line(
            "export",
            format!("{} ({})", dir.display(), report.exported()),
        );
        if let Some(m) = &manifest {
            for f in &m.files {
                line("  file", format!("{} ({} bytes)", f.path, f.size));
            }
        }
        line("compatible", report.compatible().to_owned());
        for finding in &report.findings {
            out.push_str(&format!("{finding}\n"));
        }
        emit(&out);
    }
    Ok(if report.has_errors() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Writes to stdout, ignoring a closed pipe (`modelmux models list | head`) instead of
/// panicking the way `print!` does.
fn emit(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

/// Pretty JSON with a trailing newline.
fn json_text(value: &serde_json::Value) -> String {
    let mut text = serde_json::to_string_pretty(value).unwrap_or_default();
    text.push('\n');
    text
}

/// What the runtime supports: the loaded ONNX Runtime's, or the registry's table for ONNX
/// Runtime 1.31 with only the CPU provider (and a warning saying so) when it cannot load.
fn runtime_capabilities() -> (RuntimeCapabilities, Option<String>) {
    match modelmux_runtime_ort::Runtime::global() {
        Ok(runtime) => {
            let limits = runtime.onnx_limits();
            let caps = RuntimeCapabilities {
                onnxruntime_version: runtime.version().to_owned(),
                max_ir_version: limits.max_ir_version,
                max_opset: limits.max_opset,
                providers: runtime.usable_providers(),
            };
            (caps, None)
        }
        Err(err) => {
            let caps = RuntimeCapabilities::default_cpu_only();
            let warning = format!(
                "ONNX Runtime could not be loaded ({err}); checking against ONNX Runtime {} limits (IR ≤ {}, opset ≤ {}) with the CPU provider only; run `cargo xtask setup` to install it",
                caps.onnxruntime_version, caps.max_ir_version, caps.max_opset
            );
            (caps, Some(warning))
        }
    }
}

/// One model's check result.
#[derive(Debug)]
struct ModelReport<'a> {
    spec: &'a ModelSpec,
    exported: bool,
    findings: Vec<Finding>,
}

impl ModelReport<'_> {
    fn has_errors(&self) -> bool {
        self.findings.iter().any(|f| f.severity == Severity::Error)
    }

    fn count(&self, severity: Severity) -> usize {
        self.findings
            .iter()
            .filter(|f| f.severity == severity)
            .count()
    }

    /// "yes", "no", or "-" when there is nothing to judge yet (not exported, no errors).
    fn compatible(&self) -> &'static str {
        if self.has_errors() {
            "no"
        } else if self.exported || self.spec.source.is_remote() {
            "yes"
        } else {
            "-"
        }
    }

    fn exported(&self) -> &'static str {
        match (self.spec.source.is_remote(), self.exported) {
            (true, _) => "remote",
            (false, true) => "yes",
            (false, false) => "no",
        }
    }
}

fn check_catalog<'a>(
    catalog: &'a Catalog,
    exports: &Path,
    caps: &RuntimeCapabilities,
) -> Vec<ModelReport<'a>> {
    catalog
        .models()
        .iter()
        .map(|spec| ModelReport {
            spec,
            exported: spec
                .export_dir(exports)
                .join(modelmux_registry::MANIFEST_FILE)
                .is_file(),
            findings: modelmux_registry::check_export(spec, exports, caps),
        })
        .collect()
}

fn report_load_error(err: &modelmux_registry::LoadError, json: bool) -> ExitCode {
    if json {
        let errors: Vec<_> = err
            .errors
            .iter()
            .map(|e| {
                json!({
                    "file": e.location.file,
                    "line": e.location.line,
                    "column": e.location.column,
                    "message": e.kind.to_string(),
                })
            })
            .collect();
        emit(&json_text(&json!({ "catalog_errors": errors })));
    } else {
        emit(&load_error_text(err));
    }
    ExitCode::from(1)
}

/// One line per catalog error: "error: FILE:LINE:COLUMN: message".
fn load_error_text(err: &modelmux_registry::LoadError) -> String {
    err.errors.iter().map(|e| format!("error: {e}\n")).collect()
}

fn memory(spec: &ModelSpec) -> String {
    spec.memory_requirement
        .map_or_else(|| "-".to_owned(), |m| m.to_string())
}

fn list_text(report: &[ModelReport<'_>]) -> String {
    let mut rows = vec![
        [
            "ID",
            "VERSION",
            "FAMILY",
            "ARCHITECTURE",
            "SOURCE",
            "MEMORY",
            "POLICY",
            "EXPORTED",
            "COMPATIBLE",
        ]
        .map(str::to_owned),
    ];
    for r in report {
        let s = r.spec;
        rows.push([
            s.id.clone(),
            s.version.to_string(),
            s.family.to_string(),
            s.architecture.to_string(),
            s.source.to_string(),
            memory(s),
            s.cache_policy.to_string(),
            r.exported().to_owned(),
            r.compatible().to_owned(),
        ]);
    }
    table(&rows)
}

/// Left-aligned columns separated by two spaces.
fn table<const N: usize>(rows: &[[String; N]]) -> String {
    let mut widths = [0usize; N];
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in rows {
        let line: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

fn check_text(report: &[ModelReport<'_>], caps: &RuntimeCapabilities) -> String {
    let mut out = String::new();
    for r in report {
        for finding in &r.findings {
            out.push_str(&format!("{finding}\n"));
        }
    }
    let mut rows = Vec::new();
    for r in report {
        let status = if r.has_errors() { "incompatible" } else { "ok" };
        let detail = match (r.count(Severity::Error), r.count(Severity::Warning)) {
            (0, 0) => String::new(),
            (e, w) => format!("{e} error(s), {w} warning(s)"),
        };
        rows.push([status.to_owned(), r.spec.key(), detail]);
    }
    if !rows.is_empty() {
        out.push('\n');
        out.push_str(&table(&rows));
    }
    let errors: usize = report.iter().map(|r| r.count(Severity::Error)).sum();
    let warnings: usize = report.iter().map(|r| r.count(Severity::Warning)).sum();
    let incompatible = report.iter().filter(|r| r.has_errors()).count();
    out.push_str(&format!(
        "\nchecked {} model(s) against ONNX Runtime {} (IR ≤ {}, opset ≤ {}; providers: {}): {incompatible} incompatible, {errors} error(s), {warnings} warning(s)\n",
        report.len(),
        caps.onnxruntime_version,
        caps.max_ir_version,
        caps.max_opset,
        caps.providers.join(", ")
    ));
    out
}

fn runtime_json(caps: &RuntimeCapabilities, fallback: bool) -> serde_json::Value {
    json!({
        "onnxruntime_version": caps.onnxruntime_version,
        "max_ir_version": caps.max_ir_version,
        "max_opset": caps.max_opset,
        "providers": caps.providers,
        "assumed": fallback,
    })
}

fn findings_json(findings: &[Finding]) -> Vec<serde_json::Value> {
    findings
        .iter()
        .map(|f| json!({ "severity": f.severity.to_string(), "kind": f.kind.as_str(), "reason": f.reason }))
        .collect()
}

fn list_json(
    report: &[ModelReport<'_>],
    caps: &RuntimeCapabilities,
    fallback: bool,
) -> serde_json::Value {
    let models: Vec<_> = report
        .iter()
        .map(|r| {
            let s = r.spec;
            json!({
                "id": s.id,
                "version": s.version.to_string(),
                "family": s.family.as_str(),
                "architecture": s.architecture.as_str(),
                "source": s.source.to_string(),
                "memory_bytes": s.memory_requirement.map(|m| m.bytes()),
                "memory": s.memory_requirement.map(|m| m.to_string()),
                "cache_policy": s.cache_policy.to_string(),
                "priority": s.priority.as_str(),
                "providers": s.providers.iter().map(|p| p.as_str()).collect::<Vec<_>>(),
                "exported": r.exported,
                "remote": s.source.is_remote(),
                "compatible": !r.has_errors(),
                "findings": findings_json(&r.findings),
            })
        })
        .collect();
    json!({ "runtime": runtime_json(caps, fallback), "models": models })
}

fn check_json(
    report: &[ModelReport<'_>],
    caps: &RuntimeCapabilities,
    fallback: bool,
) -> serde_json::Value {
    let models: Vec<_> = report
        .iter()
        .map(|r| {
            json!({
                "model": r.spec.key(),
                "compatible": !r.has_errors(),
                "findings": findings_json(&r.findings),
            })
        })
        .collect();
    json!({
        "runtime": runtime_json(caps, fallback),
        "models": models,
        "errors": report.iter().map(|r| r.count(Severity::Error)).sum::<usize>(),
        "warnings": report.iter().map(|r| r.count(Severity::Warning)).sum::<usize>(),
    })
}

#[cfg(test)]
mod tests {
    //! `models check` on small catalogs and hand-made exports, with the runtime's
    //! capabilities given as data so the tests need no ONNX Runtime.

    use std::path::Path;

    use modelmux_registry::{
        Catalog, Dim, FileRole, MANIFEST_FILE, MANIFEST_VERSION, Manifest, ManifestFile,
        ManifestSource, OnnxInfo, OpsetImport, RuntimeCapabilities, TensorSpec, onnx_stub,
        sha256_bytes,
    };

    use super::{check_catalog, check_text, load_error_text};

    const CATALOG: &str = "models:
  lm:
    minilm:
      version: 1.0.0
      architecture: bert
      source: hf:sentence-transformers/all-MiniLM-L6-v2@main
    bert2:
      version: 1.0.0
      architecture: bert
      source: hf:google-bert/bert-base-uncased@main
    t5:
      version: 1.0.0
      architecture: encoder-decoder
      source: hf:google-t5/t5-small@main
";

    /// Writes an export whose manifest claims IR 8 / opset 17; the file itself has `ir`.
    fn export(catalog: &Catalog, id: &str, ir: i64, outputs: &[&str]) {
        let spec = catalog.get(id).unwrap();
        let dir = spec.export_dir(&catalog.exports_dir());
        std::fs::create_dir_all(&dir).unwrap();
        let bytes = onnx_stub(ir, &[("", 17)]);
        std::fs::write(dir.join("model.onnx"), &bytes).unwrap();
        let tensor = |name: &str| TensorSpec {
            name: name.into(),
            dtype: "float32".into(),
            shape: vec![Dim::Symbolic("batch".into()), Dim::Fixed(384)],
        };
        let manifest = Manifest {
            manifest_version: MANIFEST_VERSION,
            id: id.into(),
            version: "1.0.0".into(),
            source: ManifestSource {
                uri: spec.source.to_string(),
                revision: None,
            },
            files: vec![ManifestFile {
                path: "model.onnx".into(),
                role: FileRole::Onnx,
                size: bytes.len() as u64,
                sha256: sha256_bytes(&bytes),
                onnx: Some(OnnxInfo {
                    ir_version: ir,
                    opset_imports: vec![OpsetImport {
                        domain: String::new(),
                        version: 17,
                    }],
                    inputs: vec![tensor("input_ids")],
                    outputs: outputs.iter().map(|o| tensor(o)).collect(),
                }),
            }],
            validation: None,
            tool_versions: Default::default(),
            created: None,
            extra: Default::default(),
        };
        manifest.write(&dir.join(MANIFEST_FILE)).unwrap();
    }

    fn catalog_in(dir: &Path, text: &str) -> Result<Catalog, modelmux_registry::LoadError> {
        let path = dir.join("models.yaml");
        std::fs::write(&path, text).unwrap();
        Catalog::load(&path)
    }

    #[test]
    fn a_misspelled_field_names_line_column_and_suggestion() {
        let tmp = tempfile::tempdir().unwrap();
        let text = CATALOG.replace(
            "      architecture: encoder-decoder\n",
            "      architecture: encoder-decoder\n      cache_polcy: keep_warm\n",
        );
        let err = catalog_in(tmp.path(), &text).unwrap_err();
        let out = load_error_text(&err);
        assert!(
            out.contains(
                "models.yaml:14:7: unknown field `cache_polcy` (did you mean `cache_policy`?)"
            ),
            "{out}"
        );
    }

    #[test]
    fn ir_14_and_a_changed_hash_make_only_those_models_incompatible() {
        let tmp = tempfile::tempdir().unwrap();
        let catalog = catalog_in(tmp.path(), CATALOG).unwrap();
        export(&catalog, "minilm", 14, &["last_hidden_state"]);
        export(&catalog, "bert2", 8, &["last_hidden_state"]);
        export(&catalog, "t5", 8, &["last_hidden_state", "logits"]);
        // Same size, other bytes: only the SHA-256 can tell.
        let bert2 = catalog
            .get("bert2")
            .unwrap()
            .export_dir(&catalog.exports_dir());
        std::fs::write(bert2.join("model.onnx"), onnx_stub(9, &[("", 17)])).unwrap();
        let caps = RuntimeCapabilities::default_cpu_only();
        let report = check_catalog(&catalog, &catalog.exports_dir(), &caps);
        let out = check_text(&report, &caps);
        assert!(
            out.contains("error: minilm@1.0.0: `model.onnx` has ONNX IR version 14"),
            "{out}"
        );
        assert!(
            out.contains("error: bert2@1.0.0: `model.onnx` has SHA-256"),
            "{out}"
        );
        assert!(out.contains("incompatible  minilm@1.0.0"), "{out}");
        assert!(out.contains("incompatible  bert2@1.0.0"), "{out}");
        assert!(out.contains("ok            t5@1.0.0"), "{out}");
        assert!(!out.contains("t5@1.0.0:"), "t5 has no findings:\n{out}");
        assert_eq!(report.iter().filter(|r| r.has_errors()).count(), 2);
    }

    #[test]
    fn the_repository_catalog_passes() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models.yaml");
        let catalog = Catalog::load(&path).unwrap_or_else(|e| panic!("{e}"));
        let caps = RuntimeCapabilities::default_cpu_only();
        let tmp = tempfile::tempdir().unwrap();
        let report = check_catalog(&catalog, tmp.path(), &caps);
        let out = check_text(&report, &caps);
        assert!(!report.iter().any(|r| r.has_errors()), "{out}");
    }
}
