//! JSON Schemas of the catalog and the export manifest, generated from the Rust types.
//!
//! The committed copies (`catalog.schema.json`, `manifest.schema.json` in this crate's
//! folder) are what editors and the Python exporter read; `cargo xtask schema` rewrites them
//! and a unit test fails when they are stale.

use crate::document::CatalogDocument;
use crate::manifest::Manifest;

/// The JSON Schema of `models.yaml`.
pub fn catalog_schema() -> serde_json::Value {
    schemars::schema_for!(CatalogDocument).to_value()
}

/// The JSON Schema of `manifest.json`.
pub fn manifest_schema() -> serde_json::Value {
    schemars::schema_for!(Manifest).to_value()
}

/// A function that generates one schema.
pub type SchemaGenerator = fn() -> serde_json::Value;

/// The committed schema files, relative to this crate's folder, with their generators.
pub const SCHEMA_FILES: &[(&str, SchemaGenerator)] = &[
    ("catalog.schema.json", catalog_schema),
    ("manifest.schema.json", manifest_schema),
];

/// A schema as it is committed: pretty JSON with a trailing newline.
pub fn render_schema(schema: &serde_json::Value) -> String {
    let mut text = serde_json::to_string_pretty(schema).unwrap_or_default();
    text.push('\n');
    text
}
