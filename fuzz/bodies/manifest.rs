//! The manifest fuzz target's body: any bytes as `manifest.json` parse into a manifest that
//! survives a write/read round trip and a compatibility check, or fail with a typed error
//! naming the file; never a panic.
//!
//! Shared by `fuzz_targets/manifest.rs` and the stable test that replays the committed seeds
//! (`crates/registry/tests/fuzz_seeds.rs`).

use std::io;
use std::path::Path;
use std::sync::OnceLock;

use modelmux_registry::{
    Catalog, FileProbe, FindingKind, LoadOptions, Manifest, ManifestError, OnnxError, OnnxHeader,
    RuntimeCapabilities, check,
};

/// The name the fuzzed bytes are parsed as; every error must name it.
const FILE: &str = "exports/model/1.0.0/manifest.json";

/// The repository's catalog: the specs a fuzzed manifest is checked against.
fn catalog() -> &'static Catalog {
    static CATALOG: OnceLock<Catalog> = OnceLock::new();
    CATALOG.get_or_init(|| {
        let text = include_str!("../../models.yaml");
        Catalog::from_str(text, Path::new("models.yaml"), &LoadOptions::default())
            .expect("the repository's models.yaml loads")
    })
}

/// Files exactly as the manifest describes them (first entry of a path wins), so every
/// finding `check` reports comes from the manifest itself, not from the disk.
struct AsDeclared<'a>(&'a Manifest);

impl AsDeclared<'_> {
    fn file(&self, rel: &str) -> io::Result<&modelmux_registry::ManifestFile> {
        self.0
            .files
            .iter()
            .find(|f| f.path == rel)
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))
    }
}

impl FileProbe for AsDeclared<'_> {
    fn size(&self, rel: &str) -> io::Result<u64> {
        self.file(rel).map(|f| f.size)
    }

    fn sha256(&self, rel: &str) -> io::Result<String> {
        self.file(rel).map(|f| f.sha256.clone())
    }

    fn onnx_header(&self, rel: &str) -> Result<OnnxHeader, OnnxError> {
        let info = self.file(rel).ok().and_then(|f| f.onnx.as_ref());
        let Some(info) = info else {
            return Err(OnnxError::Malformed {
                path: rel.into(),
                offset: 0,
                reason: "no ONNX info in the manifest".into(),
            });
        };
        Ok(OnnxHeader {
            ir_version: info.ir_version,
            opset_imports: info
                .opset_imports
                .iter()
                .map(|o| modelmux_onnx::OpsetImport {
                    domain: o.domain.clone(),
                    version: o.version,
                })
                .collect(),
            ..OnnxHeader::default()
        })
    }
}

/// Parses `data` as a manifest and checks what comes back.
pub(crate) fn run(data: &[u8]) {
    let path = Path::new(FILE);
    let manifest = match Manifest::from_slice(data, path) {
        Ok(manifest) => manifest,
        Err(error) => {
            match &error {
                ManifestError::Json { path: p, line, .. } => {
                    assert_eq!(p, path);
                    let lines = data.split(|&b| b == b'\n').count();
                    assert!(
                        *line <= lines + 1,
                        "{error}: line past the end ({lines} lines)"
                    );
                }
                ManifestError::UnsupportedVersion { path: p, .. } => assert_eq!(p, path),
                other => panic!("parsing bytes gave {other}"),
            }
            let _ = error.to_string();
            return;
        }
    };
    // What `Manifest::write` writes reads back as the same manifest.
    let written = serde_json::to_vec_pretty(&manifest).expect("a manifest serialises");
    let reread = Manifest::from_slice(&written, path).expect("a written manifest reads back");
    assert_eq!(
        reread, manifest,
        "the write/read round trip changed the manifest"
    );
    // The compatibility check over the files as declared: never a missing file.
    let catalog = catalog();
    let spec = catalog
        .get(&manifest.id)
        .unwrap_or_else(|_| &catalog.models()[0]);
    let caps = RuntimeCapabilities::default_cpu_only();
    for finding in check(spec, Some(&manifest), &caps, &AsDeclared(&manifest)) {
        assert_ne!(finding.kind, FindingKind::FileMissing, "{finding:?}");
        let _ = finding.to_string();
    }
}
