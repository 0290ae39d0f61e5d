//! The model catalog: `models.yaml`, export manifests and compatibility checks.
//!
//! Architecture invariant: this crate knows nothing about ONNX Runtime. What the runtime
//! supports comes in as data ([`RuntimeCapabilities`]), so every check here is a pure function
//! of the catalog, the manifests, the files and those capabilities.
//!
//! Entry points:
//! - [`Catalog::load`] reads `models.yaml` into validated [`ModelSpec`]s, or a [`LoadError`]
//!   listing every problem with its file, line and column; [`Catalog::get`] resolves `id`,
//!   `id@1.2.3` or `id@^1`.
//! - [`Manifest::read`] / [`Manifest::write`] handle `exports/<id>/<version>/manifest.json`.
//! - [`check`] (pure, files behind a [`FileProbe`]) and [`check_export`] (reads the manifest,
//!   hashes through a cached [`DirProbe`]) return every [`Finding`] for one model version.
//! - [`catalog_schema`] and [`manifest_schema`] generate the committed JSON Schemas.
//!
//! Code map: `document` is the file as written (serde + schemars types), `catalog` validates
//! it into specs, `locate` finds a node's line and column for errors raised after
//! deserialisation, `units` parses sizes and durations exactly, `manifest` is the export
//! manifest, `check` + `caps` + `probe` are the compatibility check.

mod caps;
mod catalog;
mod check;
mod document;
mod error;
mod locate;
mod manifest;
mod probe;
mod schema;
mod stub;
mod units;

pub use caps::{DEFAULT_ORT_VERSION, RuntimeCapabilities, onnx_limits_for};
pub use catalog::{Batching, CachePolicy, Catalog, LoadOptions, ModelSource, ModelSpec};
pub use check::{
    Direction, Finding, FindingKind, IoRequirement, Severity, check, check_export, export_command,
    required_io,
};
pub use document::*;
pub use error::{CatalogError, CatalogErrorKind, LoadError, Location, LookupError};
pub use manifest::{
    Dim, FileRole, MANIFEST_FILE, MANIFEST_VERSION, Manifest, ManifestError, ManifestFile,
    ManifestSource, OnnxInfo, OpsetImport, TensorSpec, Validation,
};
/// Reads an ONNX file's header (IR version, opsets); the reader lives in `modelmux-onnx`.
pub use modelmux_onnx::read_header as read_onnx_header;
pub use modelmux_onnx::{OnnxError, OnnxHeader};
pub use probe::{DirProbe, FileProbe, HASH_CACHE_FILE, sha256_bytes, sha256_file};
pub use schema::{SCHEMA_FILES, SchemaGenerator, catalog_schema, manifest_schema, render_schema};
pub use stub::onnx_stub;
pub use units::{ByteSize, UnitError, format_duration, parse_duration};

#[cfg(test)]
mod tests;
