//! `cargo xtask fixtures`, last stage: text-level references for the `lm` adapters
//! (`xtask/python/lm_goldens.py tiny`, in the export environment, from the tiny models' PyTorch
//! weights) into `target/modelmux-fixtures/lm`; keyed on the script and the tiny models' stamp.

use std::path::Path;

use crate::run_command;

/// Makes the references unless they are up to date.
pub(crate) fn run(root: &Path, fixtures: &Path) -> anyhow::Result<()> {
    let script = root.join("xtask/python/lm_goldens.py");
    let tiny = fixtures.join("tiny");
    let out = fixtures.join("lm");
    let stamp = out.join(".made-by");
    let key = format!(
        "{}{}",
        crate::setup::sha256_file(&script)?,
        std::fs::read_to_string(tiny.join(".made-by")).unwrap_or_default()
    );
    if std::fs::read_to_string(&stamp).is_ok_and(|s| s == key) {
        eprintln!("lm references up to date in {}", out.display());
        return Ok(());
    }
    let python = crate::export::environment(root)?;
    run_command(
        crate::export::python(&python)
            .arg(&script)
            .arg("tiny")
            .arg(&tiny)
            .arg(&out),
    )?;
    std::fs::write(&stamp, key)?;
    Ok(())
}
