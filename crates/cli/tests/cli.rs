//! The `modelmux` binary end to end: exit codes and what it prints.

use std::process::Command;

fn modelmux() -> Command {
    Command::new(env!("CARGO_BIN_EXE_modelmux"))
}

#[test]
fn doctor_reports_the_runtime_and_exits_zero() {
    let out = modelmux().args(["doctor", "--json"]).output().expect("runs");
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
    let providers = report["onnxruntime"]["providers"].as_array().expect("provider probes");
    assert!(providers.iter().any(|p| p["provider"] == "CUDAExecutionProvider"));
    assert!(report["devices"]["host"]["total_bytes"].as_u64().is_some_and(|b| b > 0));
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
