//! `cargo xtask schema`: regenerates the committed JSON Schemas of the catalog and manifests.
//!
//! Editors validate `models.yaml` against `crates/registry/catalog.schema.json` (through the
//! `yaml-language-server` modeline at its top), and the Python exporter follows
//! `crates/registry/manifest.schema.json`; both are generated from the registry's types, and
//! the registry's tests fail when a committed copy is stale.

use std::path::Path;

use anyhow::Context;

pub(crate) fn run(root: &Path) -> anyhow::Result<()> {
    let dir = root.join("crates").join("registry");
    for (name, generate) in modelmux_registry::SCHEMA_FILES {
        let path = dir.join(name);
        let text = modelmux_registry::render_schema(&generate());
        let unchanged = std::fs::read_to_string(&path).is_ok_and(|old| old == text);
        if unchanged {
            eprintln!("{} is up to date", path.display());
        } else {
            std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
            eprintln!("wrote {}", path.display());
        }
    }
    Ok(())
}
