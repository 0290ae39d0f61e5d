//! `cargo xtask fixtures`, third stage: reference outputs of the vision adapters on the
//! committed test images (`tests/data/images`), made by `xtask/python/vision_refs.py` in the
//! export environment from the tiny models' PyTorch weights, into
//! `target/modelmux-fixtures/vision`. Keyed on the script, the images and the tiny models' stamp.

use std::path::Path;

use crate::run_command;

/// Makes the references unless they are up to date.
pub(crate) fn run(root: &Path, fixtures: &Path) -> anyhow::Result<()> {
    use sha2::{Digest, Sha256};
    let script = root.join("xtask/python/vision_refs.py");
    let images = root.join("tests/data/images");
    let tiny = fixtures.join("tiny");
    let out = fixtures.join("vision");
    let mut hasher = Sha256::new();
    hasher.update(crate::setup::sha256_file(&script)?.as_bytes());
    hasher.update(
        std::fs::read_to_string(tiny.join(".made-by"))
            .unwrap_or_default()
            .as_bytes(),
    );
    let mut files: Vec<_> = std::fs::read_dir(&images)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    files.sort();
    for file in files {
        hasher.update(file.file_name().unwrap_or_default().as_encoded_bytes());
        hasher.update(crate::setup::sha256_file(&file)?.as_bytes());
    }
    let key = format!("{:x}", hasher.finalize());
    let stamp = out.join(".made-by");
    if std::fs::read_to_string(&stamp).is_ok_and(|s| s == key) {
        eprintln!("vision references up to date in {}", out.display());
        return Ok(());
    }
    let python = crate::export::environment(root)?;
    run_command(
        crate::export::python(&python)
            .arg(&script)
            .arg(tiny.join("exports"))
            .arg(tiny.join("sources"))
            .arg(&images)
            .arg(&out),
    )?;
    std::fs::write(&stamp, key)?;
    Ok(())
}
