//! Export manifests: `exports/<id>/<version>/manifest.json`, written by `cargo xtask export`.
//!
//! The format is plain JSON so the Python export tooling can write it without this crate:
//! every field is a string, a number, a list or an object, and `manifest_version` says which
//! shape it has. The committed schema (`manifest.schema.json`) documents it for that side.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The manifest format this crate reads and writes.
pub const MANIFEST_VERSION: u32 = 1;

/// The manifest's file name inside an export folder.
pub const MANIFEST_FILE: &str = "manifest.json";

/// What an export contains and how it was made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "modelmux export manifest")]
pub struct Manifest {
    /// The manifest format version; this crate reads version 1.
    pub manifest_version: u32,
    /// The catalog id of the exported model.
    pub id: String,
    /// The catalog version the export was made for.
    pub version: String,
    /// Where the weights came from.
    pub source: ManifestSource,
    /// Every file of the export, relative to the export folder.
    pub files: Vec<ManifestFile>,
    /// How the export was verified against the reference implementation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation: Option<Validation>,
    /// Tool name → version, e.g. `{"torch": "2.15.0", "onnx": "1.23.2"}`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tool_versions: BTreeMap<String, String>,
    /// When the export was made (RFC 3339), for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// Anything else the exporter wants to record (preprocessing backend, scheduler spacing…).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, serde_json::Value>,
}

/// The source of an export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ManifestSource {
    /// The catalog's source text, e.g. `hf:openai/clip-vit-base-patch32@3d74acf`.
    pub uri: String,
    /// The exact revision resolved at export (a commit hash or a package version).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
}

/// What a file is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum FileRole {
    /// An ONNX model.
    Onnx,
    /// Weights an ONNX model keeps outside its protobuf (`model.onnx_data`, `weights.pb`).
    ExternalData,
    /// A tokenizer file (`tokenizer.json`, `vocab.txt`).
    Tokenizer,
    /// A preprocessing config (`preprocessor_config.json`).
    Preprocessing,
    /// A model or scheduler config.
    Config,
    /// Anything else.
    Other,
}

/// One file of an export.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ManifestFile {
    /// The path relative to the export folder, with `/` separators.
    pub path: String,
    /// What the file is for.
    pub role: FileRole,
    /// The size in bytes.
    pub size: u64,
    /// The SHA-256 of the content, lowercase hex.
    pub sha256: String,
    /// For ONNX files: the header and the I/O signature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub onnx: Option<OnnxInfo>,
}

/// The ONNX facts of one model file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OnnxInfo {
    /// `ModelProto.ir_version`.
    pub ir_version: i64,
    /// `ModelProto.opset_import`; the default domain is written `""`.
    pub opset_imports: Vec<OpsetImport>,
    /// The graph's inputs.
    pub inputs: Vec<TensorSpec>,
    /// The graph's outputs.
    pub outputs: Vec<TensorSpec>,
}

/// One opset import.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OpsetImport {
    /// The operator domain: `""` (ai.onnx), `ai.onnx.ml`, `com.microsoft`…
    pub domain: String,
    /// The opset version.
    pub version: i64,
}

/// One graph input or output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TensorSpec {
    /// The tensor's name.
    pub name: String,
    /// The element type in ONNX's spelling: `float32`, `float16`, `int64`, `int32`, `bool`…
    pub dtype: String,
    /// The dimensions: numbers for fixed ones, names for symbolic ones (`["batch", 77]`).
    pub shape: Vec<Dim>,
}

/// One dimension of a tensor shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Dim {
    /// A fixed size.
    Fixed(u64),
    /// A symbolic size, e.g. `batch`.
    Symbolic(String),
}

/// How the export was verified.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Validation {
    /// Absolute tolerance used.
    pub atol: f64,
    /// Relative tolerance used.
    #[serde(default)]
    pub rtol: f64,
    /// The largest absolute difference measured, over all outputs.
    pub max_abs_error: f64,
    /// The largest absolute difference per output (`file:output` → error).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub per_output: BTreeMap<String, f64>,
    /// What the outputs were compared against, e.g. "transformers 4.57.1 on CPU".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
}

/// Why a manifest could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The manifest file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The JSON is malformed or has the wrong shape.
    #[error("{path}:{line}:{column}: {message}")]
    Json {
        /// The manifest file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// serde_json's description.
        message: String,
    },
    /// A manifest format this crate does not know.
    #[error(
        "{path}: manifest_version {found} is not supported (this modelmux reads {MANIFEST_VERSION}); re-export with `cargo xtask export`"
    )]
    UnsupportedVersion {
        /// The manifest file.
        path: PathBuf,
        /// The version found.
        found: u32,
    },
}

impl Manifest {
    /// The path of a model version's manifest under an exports folder.
    pub fn path_for(exports: &Path, id: &str, version: &str) -> PathBuf {
        exports.join(id).join(version).join(MANIFEST_FILE)
    }

    /// Reads a manifest; Ok(None) when the file does not exist (the model is not exported).
    pub fn read(path: &Path) -> Result<Option<Manifest>, ManifestError> {
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(ManifestError::Io {
                    path: path.to_owned(),
                    source,
                });
            }
        };
        Self::from_slice(&bytes, path).map(Some)
    }

    /// Parses manifest JSON; `path` names the file in errors.
    pub fn from_slice(bytes: &[u8], path: &Path) -> Result<Manifest, ManifestError> {
        // The version is read first so an unknown future format gets its own message instead
        // of a confusing "unknown field" from the newer shape.
        #[derive(Deserialize)]
        struct VersionOnly {
            manifest_version: u32,
        }
        let json_error = |err: serde_json::Error| ManifestError::Json {
            path: path.to_owned(),
            line: err.line(),
            column: err.column(),
            message: err.to_string(),
        };
        if let Ok(v) = serde_json::from_slice::<VersionOnly>(bytes)
            && v.manifest_version != MANIFEST_VERSION
        {
            return Err(ManifestError::UnsupportedVersion {
                path: path.to_owned(),
                found: v.manifest_version,
            });
        }
        serde_json::from_slice(bytes).map_err(json_error)
    }

    /// Writes the manifest as pretty JSON with a trailing newline.
    pub fn write(&self, path: &Path) -> Result<(), ManifestError> {
        let io = |source| ManifestError::Io {
            path: path.to_owned(),
            source,
        };
        let mut text =
            serde_json::to_string_pretty(self).map_err(|err| io(std::io::Error::other(err)))?;
        text.push('\n');
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        std::fs::write(path, text).map_err(io)
    }

    /// The ONNX files with their info.
    pub fn onnx_files(&self) -> impl Iterator<Item = (&ManifestFile, &OnnxInfo)> {
        self.files
            .iter()
            .filter_map(|f| f.onnx.as_ref().map(|info| (f, info)))
    }
}
