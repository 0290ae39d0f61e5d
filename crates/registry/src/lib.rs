//! The model catalog: `models.yaml`, export manifests and compatibility checks.
//!
//! Architecture invariant: this crate knows nothing about ONNX Runtime. What the runtime
//! supports comes in as data ([`RuntimeCapabilities`]), so every check here is a pure function
//! of the catalog, the manifests, the files and those capabilities.

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
