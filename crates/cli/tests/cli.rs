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

/// A committed test image.
fn image(name: &str) -> String {
    concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/data/images/").to_owned() + name
}

/// Runs modelmux on the tiny catalog; returns the exit code, stdout and stderr.
fn run_tiny(args: &[&str]) -> (Option<i32>, String, String) {
    let out = modelmux()
        .args(args)
        .args(tiny_catalog_args())
        .output()
        .expect("runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn embed_images_and_texts_with_a_dual_encoder_share_one_space() {
    let astronaut = image("astronaut.jpg");
    let images = json_of(&["embed", "tiny-clip", "--image", &astronaut, "--json"]);
    assert_eq!(images["model"], "tiny-clip@0.1.0");
    let texts = json_of(&["embed", "tiny-clip", "--text", "an astronaut", "--json"]);
    let length = |v: &serde_json::Value| v["embeddings"][0]["vector"].as_array().map(Vec::len);
    assert_eq!(length(&images), Some(32));
    assert_eq!(length(&images), length(&texts));
    assert_eq!(images["embeddings"][0]["input"], astronaut);
}

#[test]
fn embed_refuses_images_for_a_text_encoder_in_one_sentence() {
    let (code, stdout, stderr) =
        run_tiny(&["embed", "tiny-bert", "--image", &image("astronaut.jpg")]);
    assert_eq!(code, Some(2));
    assert!(stdout.is_empty(), "{stdout}");
    assert!(stderr.contains("vision-language model"), "{stderr}");
}

#[test]
fn generate_with_a_diffusion_model_writes_a_png_with_its_parameters() {
    let dir = tempfile::tempdir().expect("tempdir");
    let generate = |name: &str| {
        let out = dir.path().join(name).display().to_string();
        let report = json_of(&[
            "generate",
            "tiny-sd",
            "--prompt",
            "a red cube",
            "--negative",
            "blurry",
            "--steps",
            "2",
            "--guidance",
            "5",
            "--scheduler",
            "ddim",
            "--seed",
            "7",
            "--out",
            &out,
            "--json",
        ]);
        (report, out)
    };
    let (report, out) = generate("cube.png");
    assert_eq!(report["model"], "tiny-sd@0.1.0");
    assert_eq!(report["seed"], 7);
    assert_eq!(report["request"]["steps"], 2);
    assert_eq!(report["request"]["scheduler"], "ddim");
    assert_eq!(report["images"][0], out);
    let bytes = std::fs::read(&out).expect("the PNG was written");
    assert_eq!(&bytes[1..4], b"PNG");
    let (_, again) = generate("again.png");
    assert_eq!(
        std::fs::read(&again).expect("written"),
        bytes,
        "the same seed gives the same image"
    );
}

#[test]
fn generate_rejects_a_bad_parameter_before_loading() {
    let (code, _, stderr) = run_tiny(&[
        "generate",
        "tiny-sd",
        "--prompt",
        "x",
        "--param",
        "difficulty",
    ]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("KEY=VALUE"), "{stderr}");
    let (code, _, stderr) = run_tiny(&[
        "generate",
        "tiny-sd",
        "--prompt",
        "x",
        "--scheduler",
        "nope",
    ]);
    assert_eq!(code, Some(2));
    assert!(stderr.starts_with("error: --scheduler nope"), "{stderr}");
}

#[test]
fn caption_is_greedy_by_default_and_takes_beams() {
    let astronaut = image("astronaut.jpg");
    let greedy = json_of(&["caption", "tiny-blip", "--image", &astronaut, "--json"]);
    assert_eq!(greedy["model"], "tiny-blip@0.1.0");
    assert_eq!(greedy["captions"][0]["image"], astronaut);
    assert!(
        greedy["captions"][0]["tokens"]
            .as_array()
            .is_some_and(|t| !t.is_empty())
    );
    assert_eq!(
        json_of(&["caption", "tiny-blip", "--image", &astronaut, "--json"]),
        greedy
    );
    let beams = json_of(&[
        "caption",
        "tiny-blip",
        "--image",
        &astronaut,
        "--beams",
        "3",
        "--json",
    ]);
    assert!(beams["captions"][0]["text"].is_string());
}

#[test]
fn classify_with_a_classifier_and_zero_shot_labels() {
    let astronaut = image("astronaut.jpg");
    let report = json_of(&[
        "classify",
        "tiny-vit-classifier",
        "--image",
        &astronaut,
        "--json",
    ]);
    let labels = report["results"][0]["attributes"][0]["labels"]
        .as_array()
        .expect("labels");
    let mut names: Vec<&str> = labels.iter().filter_map(|l| l["label"].as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["bright", "dim", "neutral"]);
    let total: f64 = labels.iter().filter_map(|l| l["score"].as_f64()).sum();
    assert!((total - 1.0).abs() < 1e-4, "probabilities sum to {total}");

    let zero_shot = json_of(&[
        "classify",
        "tiny-clip",
        "--image",
        &astronaut,
        "--labels",
        "cat,dog,astronaut",
        "--json",
    ]);
    let labels = zero_shot["results"][0]["attributes"][0]["labels"]
        .as_array()
        .expect("labels");
    assert_eq!(labels.len(), 3);
    assert!(
        labels
            .iter()
            .all(|l| ["cat", "dog", "astronaut"].contains(&l["label"].as_str().unwrap_or("")))
    );
}

#[test]
fn assess_pairs_the_aesthetic_head_with_its_encoder() {
    let report = json_of(&[
        "assess",
        "tiny-aesthetic",
        "--image",
        &image("astronaut.jpg"),
        "--image",
        &image("camera-gray.png"),
        "--json",
    ]);
    assert_eq!(report["model"], "tiny-aesthetic@0.1.0");
    assert_eq!(report["scores"].as_array().map(Vec::len), Some(2));
    assert_eq!(report["scale"]["higher_is_better"], true);
}

#[test]
fn models_show_describes_one_entry_and_its_export() {
    let report = json_of(&["models", "show", "tiny-clip", "--json"]);
    assert_eq!(report["key"], "tiny-clip@0.1.0");
    assert_eq!(report["family"], "vlm");
    assert_eq!(report["exported"], "yes");
    assert_eq!(report["compatible"], "yes");
    assert!(
        report["manifest"]["files"]
            .as_array()
            .is_some_and(|f| !f.is_empty())
    );
    let (code, _, stderr) = run_tiny(&["models", "show", "tiny-clap"]);
    assert_eq!(code, Some(2));
    assert!(
        stderr.contains("tiny-clip"),
        "suggests the closest id: {stderr}"
    );
}

#[test]
fn a_missing_image_is_one_sentence_with_its_cause() {
    let (code, stdout, stderr) = run_tiny(&[
        "caption",
        "tiny-blip",
        "--image",
        "/nonexistent.png",
        "--json",
    ]);
    assert_eq!(code, Some(2));
    assert!(stdout.is_empty(), "nothing on stdout: {stdout}");
    assert!(
        stderr.starts_with("error: cannot read the image /nonexistent.png"),
        "{stderr}"
    );
    assert!(stderr.contains("caused by"), "{stderr}");
}

#[test]
fn the_pipeline_swaps_models_under_a_small_budget_and_still_completes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("run");
    // 40 MiB holds tiny-sd (32 MiB declared) or two 16 MiB models, never all of them.
    let report = json_of(&[
        "pipeline",
        "--prompt",
        "a red cube on a table",
        "--out",
        out.to_str().expect("utf-8"),
        "--memory-budget",
        "40MiB",
        "--json",
    ]);
    let images = report["images"].as_array().expect("images");
    assert_eq!(images.len(), 2);
    for image in images {
        assert!(std::path::Path::new(image["path"].as_str().expect("path")).is_file());
        assert!(image["clip_score"].as_f64().is_some(), "{image}");
        assert!(image["caption"].is_string(), "{image}");
        assert!(
            !image["attributes"]
                .as_array()
                .expect("attributes")
                .is_empty()
        );
        assert!(!image["quality"].as_array().expect("quality").is_empty());
    }
    assert!(images[1]["assessment"]["text"].is_string(), "{report}");
    let kinds: Vec<&str> = report["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    for kind in ["load", "evict", "reload"] {
        assert!(kinds.contains(&kind), "no {kind} in {kinds:?}");
    }
    assert!(report["peak_bytes"].as_u64().is_some_and(|p| p <= 40 << 20));
    let written: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("report.json")).expect("report.json"))
            .expect("JSON");
    assert_eq!(written["events"], report["events"]);
    let summary = std::fs::read_to_string(out.join("summary.md")).expect("summary.md");
    assert!(summary.contains("reload tiny-sd@0.1.0"), "{summary}");
}

#[test]
fn the_pipeline_fails_fast_when_one_model_cannot_fit_the_budget() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (code, stdout, stderr) = run_tiny(&[
        "pipeline",
        "--prompt",
        "x",
        "--out",
        dir.path().to_str().expect("utf-8"),
        "--memory-budget",
        "8MiB",
        "--json",
    ]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    assert!(stderr.contains("tiny-sd"), "{stderr}");
}

/// Whether `text` carries what a progress bar draws: carriage returns or terminal escapes.
fn has_bar_drawing(text: &str) -> bool {
    text.contains('\r') || text.contains('\u{1b}')
}

#[test]
fn piped_output_carries_no_progress_bars() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (code, stdout, stderr) = run_tiny(&[
        "pipeline",
        "--prompt",
        "a red cube on a table",
        "--count",
        "1",
        "--max-new-tokens",
        "4",
        "--out",
        dir.path().to_str().expect("utf-8"),
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[0].starts_with("prompt: "), "{stdout}");
    assert!(lines.contains(&"[1/1] generate (seed 0)"), "{stdout}");
    assert!(
        lines.last().is_some_and(|l| l.starts_with("done in ")),
        "{stdout}"
    );
    assert!(!has_bar_drawing(&stdout), "{stdout:?}");
    assert!(!has_bar_drawing(&stderr), "{stderr:?}");

    // Generated text piped out is the text alone, with nothing drawn beside it.
    let args = [
        "generate",
        "tiny-gpt2",
        "--prompt",
        "hello",
        "--max-new-tokens",
        "8",
    ];
    let (code, text, stderr) = run_tiny(&args);
    assert_eq!(code, Some(0), "{stderr}");
    let json = json_of(&[&args[..], &["--json"]].concat());
    assert_eq!(text, format!("{}\n", json["text"].as_str().expect("text")));
    assert!(!has_bar_drawing(&stderr), "{stderr:?}");
}
