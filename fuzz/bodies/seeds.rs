//! Replays a fuzz target's committed inputs (`fuzz/corpus/<target>/seed-*` and
//! `regression-*`) through its body on stable, so they stay regression tests in CI.

use std::path::Path;

/// Runs `body` on every committed input of `target`, then fails naming each input that
/// panicked.
pub(crate) fn replay(target: &str, body: fn(&[u8])) {
    // Both crates that replay seeds live in crates/<name>.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let mut inputs: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|entry| entry.expect("a readable folder entry").path())
        .filter(|path| {
            path.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("seed-") || n.starts_with("regression-"))
        })
        .collect();
    inputs.sort();
    assert!(!inputs.is_empty(), "no seeds in {}", dir.display());
    let failed: Vec<String> = inputs
        .iter()
        .filter(|path| {
            let data = std::fs::read(path).expect("a readable seed");
            std::panic::catch_unwind(|| body(&data)).is_err()
        })
        .map(|path| path.display().to_string())
        .collect();
    assert!(
        failed.is_empty(),
        "{target}: these inputs panicked: {failed:#?}"
    );
}
