//! The `modelmux` binary end to end: exit codes and what it prints.

use std::process::Command;

fn modelmux() -> Command {
    Command::new(env!("CARGO_BIN_EXE_modelmux"))
}

#[test]
fn doctor_reports_the_runtime_and_exits_zero() {
    let out = modelmux()
        .args(["doctor", "--json"])
        .output()
        .expect("runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "doctor failed (run `cargo xtask setup` first):\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("one JSON object");
    assert_eq!(report["onnxruntime"]["status"], "loaded");
    assert_eq!(report["onnxruntime"]["version"], "1.31.1");
    assert_eq!(report["onnxruntime"]["max_ir_version"], 13);
    let providers = report["onnxruntime"]["providers"]
        .as_array()
        .expect("provider probes");
    assert!(
        providers
            .iter()
            .any(|p| p["provider"] == "CUDAExecutionProvider")
    );
    assert!(
        report["devices"]["host"]["total_bytes"]
            .as_u64()
            .is_some_and(|b| b > 0)
    );
}

#[test]
fn doctor_with_a_wrong_library_path_names_it_and_the_fix() {
    let out = modelmux()
        .args(["doctor"])
        .env("ORT_DYLIB_PATH", "/nonexistent/libonnxruntime.so")
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("/nonexistent/libonnxruntime.so"), "{text}");
    assert!(text.contains("cargo xtask setup"), "{text}");
}

/// `--catalog` and `--exports` for the tiny models `cargo xtask fixtures` builds.
fn tiny_catalog_args() -> Vec<String> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let fixtures = std::env::var_os("MODELMUX_FIXTURES")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| root.join("target/modelmux-fixtures"));
    let exports = fixtures.join("tiny/exports");
    assert!(
        exports.exists(),
        "{} is missing: run `cargo xtask fixtures`",
        exports.display()
    );
    vec![
        "--catalog".into(),
        root.join("tests/data/tiny-models.yaml")
            .display()
            .to_string(),
        "--exports".into(),
        exports.display().to_string(),
    ]
}

fn json_of(args: &[&str]) -> serde_json::Value {
    let out = modelmux()
        .args(args)
        .args(tiny_catalog_args())
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("stdout is exactly one JSON object")
}

#[test]
fn embed_prints_normalised_vectors_as_json() {
    let report = json_of(&[
        "embed",
        "tiny-bert",
        "--text",
        "hello world",
        "--text",
        "ünïcode 🙂",
        "--json",
    ]);
    assert_eq!(report["model"], "tiny-bert@0.1.0");
    let embeddings = report["embeddings"].as_array().expect("embeddings");
    assert_eq!(embeddings.len(), 2);
    assert_eq!(embeddings[1]["input"], "ünïcode 🙂");
    let vector: Vec<f64> = serde_json::from_value(embeddings[0]["vector"].clone()).expect("floats");
    let norm = vector.iter().map(|v| v * v).sum::<f64>().sqrt();
    assert!((norm - 1.0).abs() < 1e-5, "norm {norm}");
}

#[test]
fn greedy_generation_is_repeatable_and_prints_tokens() {
    let args = [
        "generate",
        "tiny-gpt2",
        "--prompt",
        "hello",
        "--max-new-tokens",
        "8",
        "--json",
    ];
    let first = json_of(&args);
    assert_eq!(first["model"], "tiny-gpt2@0.1.0");
    let tokens = first["tokens"].as_array().expect("tokens");
    assert!(!tokens.is_empty() && tokens.len() <= 8, "{first}");
    assert_eq!(json_of(&args), first, "greedy decoding is deterministic");
}

#[test]
fn a_model_that_is_not_exported_names_the_export_command() {
    let out = modelmux()
        .args(["embed", "tiny-bert", "--text", "x"])
        .args([
            "--catalog",
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../tests/data/tiny-models.yaml"
            ),
        ])
        .args(["--exports", "/nonexistent/exports"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cargo xtask export tiny-bert"), "{stderr}");
}
