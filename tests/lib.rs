//! Shared helpers of the integration suites: where the fixtures are, the loaded runtime.
//!
//! A missing prerequisite fails the test with the command that provides it; nothing is skipped.

use std::path::PathBuf;

use modelmux_runtime_ort::Runtime;

/// The folder `cargo xtask fixtures` fills: `$MODELMUX_FIXTURES`, else `target/modelmux-fixtures`.
pub fn fixtures_dir() -> PathBuf {
    std::env::var_os("MODELMUX_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/modelmux-fixtures")
        })
}

/// The path of fixture `name`, which must exist.
pub fn fixture(name: &str) -> PathBuf {
    let path = fixtures_dir().join(name);
    assert!(
        path.exists(),
        "fixture {} is missing: run `cargo xtask fixtures` (or `cargo xtask test`, which makes them)",
        path.display()
    );
    path
}

/// The process's ONNX Runtime, which must load.
pub fn runtime() -> &'static Runtime {
    match Runtime::global() {
        Ok(runtime) => runtime,
        Err(e) => panic!("{e}\n(`cargo xtask test` sets ONNX Runtime up before running the tests)"),
    }
}
