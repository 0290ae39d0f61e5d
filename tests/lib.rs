//! Shared helpers of the integration suites: where the fixtures are, the loaded runtime.
//!
//! A missing prerequisite fails the test with the command that provides it; nothing is skipped.

use std::path::{Path, PathBuf};

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

/// The path a pointer file in the fixtures folder names (a pinned Python, a folder in the cache),
/// which must exist; `cargo xtask <task>` writes the pointer and makes what it names.
pub fn pointed_to(pointer: &str, task: &str) -> PathBuf {
    let pointer = fixtures_dir().join(pointer);
    match std::fs::read_to_string(&pointer).map(|p| PathBuf::from(p.trim())) {
        Ok(path) if path.exists() => path,
        _ => panic!(
            "{} is missing or names something that is gone: run `cargo xtask {task}` (or `cargo xtask fixtures`)",
            pointer.display()
        ),
    }
}

/// Runs `xtask/python/<script>` with `args` in a pinned Python environment — the interpreter the
/// fixture file `pointer` names, written by `cargo xtask <task>` — and returns what the script
/// printed: one JSON object.
pub fn run_pinned_script(
    pointer: &str,
    task: &str,
    script: &str,
    args: &[&str],
) -> serde_json::Value {
    let python = pointed_to(pointer, task);
    let script_path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../xtask/python")
        .join(script);
    let run = std::process::Command::new(&python)
        .arg(&script_path)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
    assert!(
        run.status.success(),
        "{script} failed (`cargo xtask {task}` makes its environment):\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    serde_json::from_slice(&run.stdout)
        .unwrap_or_else(|e| panic!("{script} printed no JSON object ({e})"))
}
