//! `cargo xtask export` / `verify` / `import` on the tiny models `cargo xtask fixtures` builds:
//! every tiny export verifies, broken ones fail naming the output, a too-new IR is refused by
//! verify and by the registry's check, and an optimum-layout folder imports cleanly.
//!
//! verify and import are xtask commands, so these tests run them as `cargo run -p xtask`, on
//! copies of the fixtures (verify writes the measured error into the manifest).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use modelmux_registry::{
    Catalog, DirProbe, FindingKind, Manifest, Precision, RuntimeCapabilities, Severity, check,
};
use modelmux_tests::fixture;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_owned()
}

fn catalog() -> Catalog {
    Catalog::load(&root().join("tests/data/tiny-models.yaml"))
        .expect("the tiny-model catalog loads")
}

/// The tiny models' exports folder, which must exist.
fn exports() -> PathBuf {
    fixture("tiny/exports")
}

fn xtask(args: &[&str]) -> Output {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    Command::new(cargo)
        .current_dir(root())
        .args(["run", "--quiet", "--package", "xtask", "--"])
        .args(args)
        .output()
        .expect("cargo runs")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let path = entry.expect("entry").path();
        let dest = to.join(path.file_name().expect("name"));
        if path.is_dir() {
            copy_dir(&path, &dest);
        } else {
            std::fs::copy(&path, &dest).expect("copy");
        }
    }
}

/// A scratch copy of a fixture folder.
fn scratch(rel: &str) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp
        .path()
        .join(Path::new(rel).file_name().expect("a folder name"));
    copy_dir(&fixture(rel), &dir);
    (tmp, dir)
}

#[test]
fn every_tiny_model_verifies_within_its_tolerance() {
    let catalog = catalog();
    assert!(
        catalog.models().len() >= 5,
        "the tiny catalog lists the tiny models"
    );
    for spec in catalog.models() {
        let rel = format!("tiny/exports/{}/{}", spec.id, spec.version);
        let (_tmp, dir) = scratch(&rel);
        let out = xtask(&["verify", dir.to_str().expect("utf-8 path")]);
        assert!(
            out.status.success(),
            "{}: verify failed:\n{}",
            spec.key(),
            text(&out)
        );
        let manifest = Manifest::read(&dir.join("manifest.json"))
            .expect("readable")
            .expect("present");
        let validation = manifest.validation.expect("verify records the validation");
        // fp16 outputs are compared with atol + rtol · max |reference| (CONTRACTS.md).
        let allowed = validation.atol
            + if spec.precision == Precision::Fp16 {
                validation.rtol * 100.0
            } else {
                0.0
            };
        assert!(
            validation.max_abs_error.is_finite() && validation.max_abs_error <= allowed,
            "{}: {} > {allowed}",
            spec.key(),
            validation.max_abs_error,
        );
        assert!(
            !validation.per_output.is_empty(),
            "{}: per-output errors",
            spec.key()
        );
        if matches!(spec.id.as_str(), "tiny-gpt2" | "tiny-t5" | "tiny-blip") {
            assert!(
                text(&out).contains("steps identical to generate()"),
                "{}: the generation loop ran:\n{}",
                spec.key(),
                text(&out)
            );
        }
    }
}

#[test]
fn the_tiny_exports_pass_the_compatibility_check() {
    let caps = RuntimeCapabilities::default_cpu_only();
    for spec in catalog().models() {
        let findings = modelmux_registry::check_export(spec, &exports(), &caps);
        let errors: Vec<_> = findings
            .iter()
            .filter(|f| f.severity == Severity::Error)
            .collect();
        assert!(errors.is_empty(), "{}: {errors:?}", spec.key());
    }
}

#[test]
fn an_export_with_external_data_verifies() {
    let (_tmp, dir) = scratch("tiny/variants/external-data");
    assert!(dir.join("model.onnx_data").exists());
    let out = xtask(&["verify", dir.to_str().expect("utf-8 path")]);
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn a_perturbed_weight_fails_verify_naming_the_output() {
    let (_tmp, dir) = scratch("tiny/variants/perturbed-weight");
    let out = xtask(&["verify", dir.to_str().expect("utf-8 path")]);
    assert!(!out.status.success(), "verify passed a perturbed weight");
    let message = text(&out);
    assert!(
        message.contains("model.onnx: output `last_hidden_state`")
            && message.contains("max abs error"),
        "{message}"
    );
}

#[test]
fn swapped_outputs_fail_verify_naming_the_output() {
    let (_tmp, dir) = scratch("tiny/variants/swapped-outputs");
    let out = xtask(&["verify", dir.to_str().expect("utf-8 path")]);
    assert!(!out.status.success(), "verify passed swapped outputs");
    let message = text(&out);
    assert!(
        message.contains("output `present.0.key`") && message.contains("output `present.0.value`"),
        "{message}"
    );
}

#[test]
fn a_too_new_ir_is_refused_by_verify_and_by_the_check() {
    let (_tmp, dir) = scratch("tiny/variants/ir14");
    let out = xtask(&["verify", dir.to_str().expect("utf-8 path")]);
    assert!(!out.status.success(), "verify accepted IR 14");
    let message = text(&out);
    assert!(
        message.contains("model.onnx: ONNX IR version 14") && message.contains("IR ≤ 13"),
        "{message}"
    );

    let catalog = catalog();
    let spec = catalog.get("tiny-bert").expect("tiny-bert");
    let manifest = Manifest::read(&dir.join("manifest.json"))
        .expect("readable")
        .expect("present");
    let findings = check(
        spec,
        Some(&manifest),
        &RuntimeCapabilities::default_cpu_only(),
        &DirProbe::new(&dir),
    );
    assert!(
        findings
            .iter()
            .any(|f| f.kind == FindingKind::IrTooNew && f.severity == Severity::Error),
        "{findings:?}"
    );
}

#[test]
fn an_optimum_layout_folder_imports_and_passes_the_check() {
    let (_tmp, dir) = scratch("tiny/variants/optimum-layout");
    assert!(!dir.join("manifest.json").exists());
    let out = xtask(&[
        "import",
        dir.to_str().expect("utf-8 path"),
        "--id",
        "tiny-bert",
        "--version",
        "0.1.0",
    ]);
    assert!(out.status.success(), "import failed:\n{}", text(&out));
    let manifest = Manifest::read(&dir.join("manifest.json"))
        .expect("readable")
        .expect("import writes the manifest");
    let (file, info) = manifest.onnx_files().next().expect("one ONNX file");
    assert_eq!(file.path, "model.onnx");
    assert!(info.ir_version <= 13);
    let inputs: Vec<&str> = info.inputs.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(inputs, ["input_ids", "attention_mask", "token_type_ids"]);
    assert_eq!(info.outputs[0].name, "last_hidden_state");
    assert!(manifest.files.iter().any(|f| f.path == "tokenizer.json"));

    // The same check `modelmux models check` runs, against the tiny catalog's entry.
    let catalog = catalog();
    let spec = catalog.get("tiny-bert").expect("tiny-bert");
    let findings = check(
        spec,
        Some(&manifest),
        &RuntimeCapabilities::default_cpu_only(),
        &DirProbe::new(&dir),
    );
    let errors: Vec<_> = findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
}
