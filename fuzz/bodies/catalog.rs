//! The catalog fuzz target's body: any bytes as `models.yaml` load into a catalog whose every
//! model resolves, or fail with located errors; never a panic.
//!
//! Shared by `fuzz_targets/catalog.rs` and the stable test that replays the committed seeds
//! (`crates/registry/tests/fuzz_seeds.rs`).

use std::path::Path;

use modelmux_registry::{Catalog, LoadOptions};

/// The name the fuzzed bytes are loaded as; every error must name it.
const FILE: &str = "models.yaml";

/// Loads `data` as a catalog and checks what comes back.
pub(crate) fn run(data: &[u8]) {
    let path = Path::new(FILE);
    match Catalog::from_bytes(data, path, &LoadOptions::default()) {
        Ok(catalog) => {
            for spec in catalog.models() {
                let location = catalog.location_of(spec);
                assert_eq!(location.file, path, "{spec:?} located in another file");
                let newest = catalog.get(&spec.id).expect("a loaded id resolves");
                assert_eq!(newest.id, spec.id);
                assert!(
                    newest.version >= spec.version,
                    "`get(id)` is not the newest"
                );
                let exact = catalog
                    .get(&format!("{}@{}", spec.id, spec.version))
                    .expect("a loaded id@version resolves");
                assert_eq!(exact.version, spec.version);
            }
        }
        Err(error) => {
            assert!(!error.errors.is_empty(), "a LoadError without errors");
            // Lines count from 1, and an error may point just past the last line (end of file).
            let lines = yaml_lines(data);
            for e in &error.errors {
                assert_eq!(e.location.file, path, "{e} names another file");
                assert!(
                    e.location.line <= lines + 1,
                    "{e}: line past the end ({lines} lines)"
                );
                assert!(
                    e.location.line > 0 || e.location.column == 0,
                    "{e}: column without line"
                );
            }
            let _ = error.to_string();
        }
    }
}

/// At least as many lines as YAML counts: it breaks lines at `\n`, `\r` (alone or before `\n`)
/// and, in UTF-8 text, at U+0085, U+2028 and U+2029.
fn yaml_lines(data: &[u8]) -> usize {
    let bytes = data.iter().filter(|&&b| b == b'\n' || b == b'\r').count();
    let unicode = std::str::from_utf8(data)
        .map(|text| text.matches(['\u{85}', '\u{2028}', '\u{2029}']).count())
        .unwrap_or(0);
    1 + bytes + unicode
}
