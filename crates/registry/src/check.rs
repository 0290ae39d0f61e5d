//! Compatibility checking: can this runtime run this model version from these files?
//!
//! [`check`] is a pure function of the spec, the manifest, the runtime's capabilities and
//! what a [`FileProbe`] reports, and returns every finding rather than stopping at the first,
//! so one `modelmux models check` run shows everything to fix.

use std::fmt;
use std::path::Path;

use semver::Version;

use crate::caps::RuntimeCapabilities;
use crate::catalog::ModelSpec;
use crate::document::{Architecture, Provider};
use crate::manifest::{FileRole, Manifest, ManifestError, TensorSpec};
use crate::probe::{DirProbe, FileProbe};

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// The model works, but something deserves attention.
    Warning,
    /// The model cannot be used as is.
    Error,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Warning => "warning",
            Severity::Error => "error",
        })
    }
}

/// What a finding is about, for programs; people read `reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FindingKind {
    /// There is no manifest: the model has not been exported.
    NotExported,
    /// The manifest exists but cannot be read.
    ManifestUnreadable,
    /// The manifest is for another id or another catalog version.
    VersionMismatch,
    /// The catalog's source changed since the export.
    SourceChanged,
    /// A file listed in the manifest is missing or unreadable.
    FileMissing,
    /// A file's size or SHA-256 differs from the manifest.
    FileChanged,
    /// An ONNX file's IR version is newer than the runtime loads.
    IrTooNew,
    /// An ONNX file imports an opset newer than the runtime loads.
    OpsetTooNew,
    /// An ONNX file's header cannot be read, or differs from what the manifest says.
    OnnxHeader,
    /// A requested execution provider is not available.
    ProviderUnavailable,
    /// An input or output the family adapter needs is absent from every ONNX file.
    MissingIo,
}

impl FindingKind {
    /// A stable snake_case name, for JSON output and scripts.
    pub fn as_str(self) -> &'static str {
        match self {
            FindingKind::NotExported => "not_exported",
            FindingKind::ManifestUnreadable => "manifest_unreadable",
            FindingKind::VersionMismatch => "version_mismatch",
            FindingKind::SourceChanged => "source_changed",
            FindingKind::FileMissing => "file_missing",
            FindingKind::FileChanged => "file_changed",
            FindingKind::IrTooNew => "ir_too_new",
            FindingKind::OpsetTooNew => "opset_too_new",
            FindingKind::OnnxHeader => "onnx_header",
            FindingKind::ProviderUnavailable => "provider_unavailable",
            FindingKind::MissingIo => "missing_io",
        }
    }
}

/// One problem found by [`check`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Error or warning.
    pub severity: Severity,
    /// What it is about.
    pub kind: FindingKind,
    /// The model, as `id@version`.
    pub model: String,
    /// What is wrong and what to do, in one sentence.
    pub reason: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.severity, self.model, self.reason)
    }
}

/// Whether an I/O name is a graph input or output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// A graph input.
    Input,
    /// A graph output.
    Output,
}

/// One input or output an adapter needs: any of `names` (or a name starting with one, when
/// `prefix` is set) in any of the export's ONNX files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IoRequirement {
    /// Input or output.
    pub direction: Direction,
    /// Accepted names (alternatives).
    pub names: &'static [&'static str],
    /// Whether the names are prefixes (`present.` matches `present.0.key`).
    pub prefix: bool,
    /// Why the adapter needs it.
    pub why: &'static str,
}

const fn out(names: &'static [&'static str], why: &'static str) -> IoRequirement {
    IoRequirement {
        direction: Direction::Output,
        names,
        prefix: false,
        why,
    }
}

const fn input(names: &'static [&'static str], why: &'static str) -> IoRequirement {
    IoRequirement {
        direction: Direction::Input,
        names,
        prefix: false,
        why,
    }
}

const DUAL_ENCODER: &[IoRequirement] = &[
    out(&["text_embeds"], "the text tower's projected embedding"),
    out(&["image_embeds"], "the image tower's projected embedding"),
];

const STABLE_DIFFUSION: &[IoRequirement] = &[
    out(
        &["last_hidden_state"],
        "the text encoder's hidden states condition the UNet",
    ),
    out(&["out_sample"], "the UNet's noise prediction"),
    input(
        &["latent_sample"],
        "the VAE decoder turns latents into pixels",
    ),
];

const TERRAIN_DIFFUSION: &[IoRequirement] = &[
    input(&["noisy"], "the noisy sample the denoiser cleans"),
    input(&["sigma"], "the noise level of each sample"),
    out(&["denoised"], "the denoised sample"),
];

const BLIP_CAPTION: &[IoRequirement] = &[
    input(&["pixel_values"], "the vision encoder reads the image"),
    out(&["logits"], "the text decoder's next-token scores"),
];

const BERT: &[IoRequirement] = &[out(
    &[
        "last_hidden_state",
        "token_embeddings",
        "sentence_embedding",
    ],
    "the encoder's token vectors, pooled into an embedding",
)];

const DECODER_ONLY: &[IoRequirement] = &[
    out(&["logits"], "next-token scores"),
    IoRequirement {
        direction: Direction::Output,
        names: &["present."],
        prefix: true,
        why: "the KV cache (`present.*`) makes generation linear instead of quadratic",
    },
];

const ENCODER_DECODER: &[IoRequirement] = &[
    out(
        &["last_hidden_state"],
        "the encoder's output feeds cross-attention",
    ),
    out(&["logits"], "the decoder's next-token scores"),
];

/// The I/O each architecture's adapter needs, by the names optimum's exporters give them
/// (notes/export-and-compat.md §3). Kept small on purpose: it catches an export of the wrong
/// task or a missing submodel, not every detail an adapter checks when it opens a session.
pub fn required_io(architecture: Architecture) -> &'static [IoRequirement] {
    match architecture {
        Architecture::StableDiffusion => STABLE_DIFFUSION,
        Architecture::TerrainDiffusion => TERRAIN_DIFFUSION,
        Architecture::Clip | Architecture::Align | Architecture::Flava => DUAL_ENCODER,
        Architecture::BlipCaption => BLIP_CAPTION,
        Architecture::Bert => BERT,
        Architecture::DecoderOnly => DECODER_ONLY,
        Architecture::EncoderDecoder => ENCODER_DECODER,
        Architecture::DallE
        | Architecture::OpenaiChat
        | Architecture::OpenaiEmbedding
        | Architecture::ImageClassifier
        | Architecture::MlpHead
        | Architecture::Quality => &[],
    }
}

/// The command that exports a model, for messages.
pub fn export_command(id: &str) -> String {
    format!("cargo xtask export {id}")
}

/// Checks one model version against its export and the runtime; returns every finding.
///
/// `manifest` is None when the model has not been exported; `files` answers for the export
/// folder. Remote models (`openai:`) have no files and yield no findings.
pub fn check(
    spec: &ModelSpec,
    manifest: Option<&Manifest>,
    caps: &RuntimeCapabilities,
    files: &dyn FileProbe,
) -> Vec<Finding> {
    let mut findings = Vec::new();
    if spec.source.is_remote() {
        return findings;
    }
    let model = spec.key();
    let mut push = |severity, kind, reason: String| {
        findings.push(Finding {
            severity,
            kind,
            model: model.clone(),
            reason,
        })
    };
    check_providers(spec, caps, &mut push);
    let Some(manifest) = manifest else {
        push(
            Severity::Warning,
            FindingKind::NotExported,
            format!("not exported yet; run `{}`", export_command(&spec.id)),
        );
        return findings;
    };
    let reexport = export_command(&spec.id);
    if manifest.id != spec.id {
        push(
            Severity::Error,
            FindingKind::VersionMismatch,
            format!(
                "the manifest is for model `{}`, not `{}`; run `{reexport}`",
                manifest.id, spec.id
            ),
        );
    }
    match Version::parse(&manifest.version) {
        Ok(v) if v == spec.version => {}
        Ok(v) => push(
            Severity::Error,
            FindingKind::VersionMismatch,
            format!(
                "the export is of version {v} but the catalog entry is {}; run `{reexport}`",
                spec.version
            ),
        ),
        Err(err) => push(
            Severity::Error,
            FindingKind::VersionMismatch,
            format!(
                "the manifest's version `{}` is not semver ({err}); run `{reexport}`",
                manifest.version
            ),
        ),
    }
    let source = spec.source.to_string();
    if manifest.source.uri != source {
        push(
            Severity::Warning,
            FindingKind::SourceChanged,
            format!(
                "the catalog's source is `{source}` but the export was made from `{}`; run `{reexport}` to refresh it",
                manifest.source.uri
            ),
        );
    }
    for file in &manifest.files {
        check_file(file, caps, files, &reexport, &mut push);
    }
    for req in required_io(spec.architecture) {
        let present = manifest.onnx_files().any(|(_, info)| {
            let list: &[TensorSpec] = match req.direction {
                Direction::Input => &info.inputs,
                Direction::Output => &info.outputs,
            };
            list.iter().any(|t| {
                req.names.iter().any(|n| {
                    if req.prefix {
                        t.name.starts_with(n)
                    } else {
                        t.name == *n
                    }
                })
            })
        });
        // An export without any ONNX file lacks every requirement, which is reported too.
        if !present {
            let what = match req.direction {
                Direction::Input => "input",
                Direction::Output => "output",
            };
            let names = req
                .names
                .iter()
                .map(|n| format!("`{n}{}`", if req.prefix { "*" } else { "" }));
            push(
                Severity::Error,
                FindingKind::MissingIo,
                format!(
                    "no ONNX file has the {what} {} that a `{}` adapter needs ({}); re-export with the right task: `{reexport}`",
                    names.collect::<Vec<_>>().join(" or "),
                    spec.architecture,
                    req.why
                ),
            );
        }
    }
    findings
}

fn check_providers(
    spec: &ModelSpec,
    caps: &RuntimeCapabilities,
    push: &mut impl FnMut(Severity, FindingKind, String),
) {
    let available: Vec<Provider> = spec
        .providers
        .iter()
        .copied()
        .filter(|p| caps.has(*p))
        .collect();
    let wanted = spec
        .providers
        .iter()
        .map(|p| p.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    // The list is an order of preference: running on a later entry is what the catalog asked
    // for, so only running on none of them (or on an unlisted CPU) is worth a finding.
    match available.first() {
        None if spec.cpu_fallback && caps.has(Provider::Cpu) => push(
            Severity::Warning,
            FindingKind::ProviderUnavailable,
            format!(
                "none of the requested providers ({wanted}) is available in ONNX Runtime {}; it will run on the CPU (cpu_fallback: true)",
                caps.onnxruntime_version
            ),
        ),
        None => push(
            Severity::Error,
            FindingKind::ProviderUnavailable,
            format!(
                "none of the requested providers ({wanted}) is available in ONNX Runtime {} (available: {}); install a GPU build (`cargo xtask setup --gpu`) or set `cpu_fallback: true`",
                caps.onnxruntime_version,
                caps.providers.join(", ")
            ),
        ),
        Some(_) => {}
    }
}

fn check_file(
    file: &crate::manifest::ManifestFile,
    caps: &RuntimeCapabilities,
    files: &dyn FileProbe,
    reexport: &str,
    push: &mut impl FnMut(Severity, FindingKind, String),
) {
    let path = &file.path;
    match files.size(path) {
        Err(err) => {
            push(
                Severity::Error,
                FindingKind::FileMissing,
                format!("`{path}` cannot be read ({err}); run `{reexport}`"),
            );
            return;
        }
        Ok(size) if size != file.size => {
            push(
                Severity::Error,
                FindingKind::FileChanged,
                format!(
                    "`{path}` has {size} bytes but the manifest says {}; the file changed since export; run `{reexport}`",
                    file.size
                ),
            );
            return;
        }
        Ok(_) => {}
    }
    match files.sha256(path) {
        Ok(sha) if sha.eq_ignore_ascii_case(&file.sha256) => {}
        Ok(sha) => push(
            Severity::Error,
            FindingKind::FileChanged,
            format!(
                "`{path}` has SHA-256 {sha} but the manifest says {}; the file changed since export; run `{reexport}`",
                file.sha256
            ),
        ),
        Err(err) => push(
            Severity::Error,
            FindingKind::FileMissing,
            format!("`{path}` cannot be hashed ({err})"),
        ),
    }
    if file.role != FileRole::Onnx {
        return;
    }
    // The limits are checked on the file's own header: a manifest can be stale or wrong.
    let header = match files.onnx_header(path) {
        Ok(header) => header,
        Err(err) => {
            push(
                Severity::Error,
                FindingKind::OnnxHeader,
                format!("`{path}`: {err}"),
            );
            return;
        }
    };
    if header.ir_version > caps.max_ir_version {
        push(
            Severity::Error,
            FindingKind::IrTooNew,
            format!(
                "`{path}` has ONNX IR version {} but ONNX Runtime {} loads at most {}; re-export stamping IR ≤ {} (`{reexport}`)",
                header.ir_version,
                caps.onnxruntime_version,
                caps.max_ir_version,
                caps.max_ir_version
            ),
        );
    }
    for opset in &header.opset_imports {
        let default_domain = opset.domain.is_empty() || opset.domain == "ai.onnx";
        if default_domain && opset.version > caps.max_opset {
            push(
                Severity::Error,
                FindingKind::OpsetTooNew,
                format!(
                    "`{path}` imports ai.onnx opset {} but ONNX Runtime {} loads at most {}; re-export with opset ≤ {} (`{reexport}`)",
                    opset.version, caps.onnxruntime_version, caps.max_opset, caps.max_opset
                ),
            );
        }
    }
    if let Some(info) = &file.onnx {
        let mut claimed: Vec<(&str, i64)> = info
            .opset_imports
            .iter()
            .map(|o| (o.domain.as_str(), o.version))
            .collect();
        let mut actual: Vec<(&str, i64)> = header
            .opset_imports
            .iter()
            .map(|o| (o.domain.as_str(), o.version))
            .collect();
        claimed.sort_unstable();
        actual.sort_unstable();
        if info.ir_version != header.ir_version || claimed != actual {
            push(
                Severity::Warning,
                FindingKind::OnnxHeader,
                format!(
                    "`{path}` says IR {} / opsets {:?} but the manifest says IR {} / opsets {:?}; the manifest is stale",
                    header.ir_version, actual, info.ir_version, claimed
                ),
            );
        }
    }
}

/// Reads the manifest of `spec` under `exports`, checks it with a [`DirProbe`] (saving its
/// hash cache) and returns the findings: the whole check for one model, as the CLI and the
/// manager run it.
pub fn check_export(spec: &ModelSpec, exports: &Path, caps: &RuntimeCapabilities) -> Vec<Finding> {
    if spec.source.is_remote() {
        return Vec::new();
    }
    let dir = spec.export_dir(exports);
    let manifest = match Manifest::read(&dir.join(crate::manifest::MANIFEST_FILE)) {
        Ok(manifest) => manifest,
        Err(err) => {
            return vec![Finding {
                severity: Severity::Error,
                kind: FindingKind::ManifestUnreadable,
                model: spec.key(),
                reason: manifest_reason(&err, &spec.id),
            }];
        }
    };
    let probe = DirProbe::new(&dir);
    let findings = check(spec, manifest.as_ref(), caps, &probe);
    // A read-only export folder only means the next check hashes again; not worth a finding.
    let _ = probe.save();
    findings
}

fn manifest_reason(err: &ManifestError, id: &str) -> String {
    format!("{err}; run `{}`", export_command(id))
}
