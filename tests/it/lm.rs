//! Language-model adapters on the tiny fixtures against the exporter's PyTorch goldens
//! (`golden.safetensors`), and on the real `minilm` / `smollm2` exports against
//! sentence-transformers and transformers (`lm-golden.json`, made by `xtask/python/lm_goldens.py`).

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use modelmux::{ManagerOptions, ModelManager};
use modelmux_adapters::LoadContext;
use modelmux_adapters::lm::{
    BertEncoder, DecoderOnly, EncoderDecoder, FinishReason, GenerationOptions, Prompt,
    TextClassifier, TextEncoder, TextGenerator,
};
use modelmux_registry::{Catalog, Manifest};
use modelmux_runtime_ort::SessionSpec;
use modelmux_tests::{fixture, runtime};
use ndarray::{ArrayD, Axis};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn tiny_catalog() -> Catalog {
    Catalog::load(&root().join("tests/data/tiny-models.yaml")).unwrap_or_else(|e| panic!("{e}"))
}

fn tiny_exports() -> PathBuf {
    fixture("tiny/exports")
}

/// Loads an adapter directly (not through the manager), to reach its inherent methods.
fn load<T>(
    catalog: &Catalog,
    exports: &Path,
    id: &str,
    make: fn(&LoadContext<'_>) -> Result<T, modelmux_adapters::AdapterError>,
) -> T {
    runtime();
    let spec = catalog.get(id).unwrap_or_else(|e| panic!("{e}"));
    let context = LoadContext {
        spec,
        export_dir: spec.export_dir(exports),
        session: SessionSpec::cpu(),
        queue_limit: 64,
    };
    make(&context).unwrap_or_else(|e| panic!("{e}"))
}

fn manager() -> ModelManager {
    runtime();
    let mut options = ManagerOptions::local();
    options.exports_dir = Some(tiny_exports());
    ModelManager::new(tiny_catalog(), options)
}

/// The golden tensors of a tiny export, as f32 or i64 arrays by name.
struct Golden(HashMap<String, (Vec<usize>, Vec<u8>, safetensors::Dtype)>);

impl Golden {
    fn read(id: &str) -> Self {
        let bytes = std::fs::read(tiny_exports().join(id).join("0.1.0/golden.safetensors"))
            .expect("golden.safetensors");
        let tensors = safetensors::SafeTensors::deserialize(&bytes).expect("safetensors");
        Golden(
            tensors
                .tensors()
                .into_iter()
                .map(|(name, view)| {
                    (
                        name,
                        (view.shape().to_vec(), view.data().to_vec(), view.dtype()),
                    )
                })
                .collect(),
        )
    }

    fn f32(&self, name: &str) -> ArrayD<f32> {
        let (shape, data, dtype) = self
            .0
            .get(name)
            .unwrap_or_else(|| panic!("no golden {name}"));
        assert_eq!(*dtype, safetensors::Dtype::F32, "{name}");
        let values = data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        ArrayD::from_shape_vec(shape.clone(), values).unwrap()
    }

    fn i64(&self, name: &str) -> ArrayD<i64> {
        let (shape, data, dtype) = self
            .0
            .get(name)
            .unwrap_or_else(|| panic!("no golden {name}"));
        assert_eq!(*dtype, safetensors::Dtype::I64, "{name}");
        let values = data
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
            .collect();
        ArrayD::from_shape_vec(shape.clone(), values).unwrap()
    }

    /// Each row's ids where the attention mask is 1.
    fn unpadded(&self, ids: &str, mask: &str) -> Vec<Vec<u32>> {
        let ids = self.i64(ids);
        let mask = self.i64(mask);
        ids.outer_iter()
            .zip(mask.outer_iter())
            .map(|(ids, mask)| {
                ids.iter()
                    .zip(mask.iter())
                    .filter(|(_, m)| **m == 1)
                    .map(|(i, _)| *i as u32)
                    .collect()
            })
            .collect()
    }
}

/// The manifest's absolute tolerance.
fn tolerance(exports: &Path, id: &str, version: &str) -> f32 {
    let manifest = Manifest::read(&Manifest::path_for(exports, id, version))
        .unwrap()
        .expect("manifest");
    manifest.validation.expect("validation").atol as f32
}

fn max_abs(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (norm(a) * norm(b)).max(1e-12)
}

/// sentence-transformers' mean pooling and normalisation, applied to PyTorch's hidden states.
fn reference_embedding(hidden: &ArrayD<f32>, mask: &ArrayD<i64>, row: usize) -> Vec<f32> {
    let tokens = hidden.index_axis(Axis(0), row);
    let mut sum = vec![0f32; tokens.shape()[1]];
    let mut count = 0f32;
    for (t, token) in tokens.outer_iter().enumerate() {
        if mask[[row, t]] == 1 {
            count += 1.0;
            sum.iter_mut().zip(token.iter()).for_each(|(s, v)| *s += v);
        }
    }
    let mean: Vec<f32> = sum.iter().map(|s| s / count).collect();
    let norm = mean.iter().map(|v| v * v).sum::<f32>().sqrt();
    mean.iter().map(|v| v / norm).collect()
}

/// Varied texts: empty, punctuation, non-ASCII, emoji, and one far over the 128-token limit.
fn varied_texts() -> Vec<String> {
    vec![
        String::new(),
        "a photo of a cat sitting on a red sofa".to_owned(),
        "Numbers like 1234 and 56.78; symbols #, @, %!".to_owned(),
        "Ünïcödé façade — naïve café, 東京, Москва".to_owned(),
        "emoji 🚀🔥 and a 👩‍👩‍👧 family".to_owned(),
        "the quick brown fox jumps over the lazy dog ".repeat(40),
    ]
}

#[test]
fn tiny_bert_embeddings_match_pytorch_pooling_and_batching_changes_nothing() {
    let exports = tiny_exports();
    let encoder = load(&tiny_catalog(), &exports, "tiny-bert", BertEncoder::load);
    let golden = Golden::read("tiny-bert");
    assert!(
        golden
            .i64("model/in/token_type_ids")
            .iter()
            .all(|&t| t == 0),
        "one-segment inputs"
    );
    let ids = golden.unpadded("model/in/input_ids", "model/in/attention_mask");
    let hidden = golden.f32("model/out/last_hidden_state");
    let mask = golden.i64("model/in/attention_mask");
    let batched = encoder.embed_ids(&ids).unwrap_or_else(|e| panic!("{e}"));
    let atol = tolerance(&exports, "tiny-bert", "0.1.0");
    let mut worst = 0f32;
    for (row, vector) in batched.iter().enumerate() {
        worst = worst.max(max_abs(vector, &reference_embedding(&hidden, &mask, row)));
        let alone = encoder
            .embed_ids(std::slice::from_ref(&ids[row]))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            max_abs(&alone[0], vector) <= 1e-5,
            "row {row}: batched != unbatched"
        );
    }
    println!(
        "tiny-bert: {} rows, embeddings max abs diff {worst:.2e} (tolerance {atol:.0e})",
        ids.len()
    );
    assert!(worst <= atol, "{worst} > {atol}");
}

#[test]
fn tiny_bert_classifier_probabilities_are_the_softmax_of_pytorch_logits() {
    let exports = tiny_exports();
    let classifier = load(
        &tiny_catalog(),
        &exports,
        "tiny-bert-classifier",
        BertEncoder::load,
    );
    assert!(classifier.is_classifier());
    assert_eq!(
        TextClassifier::labels(&classifier),
        ["negative", "positive"]
    );
    let golden = Golden::read("tiny-bert-classifier");
    let ids = golden.unpadded("model/in/input_ids", "model/in/attention_mask");
    let logits = golden.f32("model/out/logits");
    let scores = classifier
        .classify_ids(&ids)
        .unwrap_or_else(|e| panic!("{e}"));
    let mut worst = 0f32;
    for (row, scores) in scores.iter().enumerate() {
        let l = logits.index_axis(Axis(0), row);
        let z = l
            .iter()
            .map(|v| (v - l[0].max(l[1])).exp())
            .collect::<Vec<_>>();
        let expected = [z[0] / (z[0] + z[1]), z[1] / (z[0] + z[1])];
        assert!(scores[0].score >= scores[1].score, "most likely first");
        for score in scores {
            let i = usize::from(score.label == "positive");
            worst = worst.max((score.score - expected[i]).abs());
        }
    }
    println!("tiny-bert-classifier: probabilities max abs diff {worst:.2e}");
    assert!(worst <= tolerance(&exports, "tiny-bert-classifier", "0.1.0"));
    let texts = classifier
        .classify(&["a photo of a cat", ""])
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(texts.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tiny_bert_through_the_manager_embeds_varied_texts() {
    let manager = manager();
    let encoder = manager
        .get_model::<Arc<dyn TextEncoder>>("tiny-bert")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(encoder.dimensions(), 32);
    let encoder = Arc::clone(&*encoder);
    let (batched, single) = tokio::task::spawn_blocking(move || {
        let texts = varied_texts();
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let batched = encoder.embed(&refs).unwrap_or_else(|e| panic!("{e}"));
        let single: Vec<Vec<f32>> = refs
            .iter()
            .map(|t| {
                encoder
                    .embed(&[t])
                    .unwrap_or_else(|e| panic!("{e}"))
                    .remove(0)
            })
            .collect();
        (batched, single)
    })
    .await
    .unwrap();
    for (i, (b, s)) in batched.iter().zip(&single).enumerate() {
        assert_eq!(b.len(), 32);
        let norm = b.iter().map(|v| v * v).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "text {i}: norm {norm}");
        assert!(max_abs(b, s) <= 1e-5, "text {i}: batched != unbatched");
    }
    assert!(
        manager
            .get_model::<Arc<dyn TextGenerator>>("tiny-bert")
            .await
            .is_err(),
        "a BERT encoder is not a generator"
    );
}

/// The exporter's reference generation: `generate()` on `generate/prompt`, greedy.
fn golden_generation(id: &str, skip: usize) -> (Vec<u32>, Vec<u32>) {
    let golden = Golden::read(id);
    let prompt = golden
        .i64("generate/prompt")
        .iter()
        .map(|&t| t as u32)
        .collect::<Vec<_>>();
    let tokens = golden
        .i64("generate/tokens")
        .iter()
        .map(|&t| t as u32)
        .collect::<Vec<_>>();
    (prompt, tokens[skip..].to_vec())
}

fn greedy(max_new_tokens: usize) -> GenerationOptions {
    GenerationOptions {
        max_new_tokens: Some(max_new_tokens),
        ..Default::default()
    }
}

#[test]
fn tiny_gpt2_greedy_tokens_equal_transformers_generate() {
    let generator = load(
        &tiny_catalog(),
        &tiny_exports(),
        "tiny-gpt2",
        DecoderOnly::load,
    );
    let (prompt, expected) = golden_generation(
        "tiny-gpt2",
        Golden::read("tiny-gpt2").i64("generate/prompt").len(),
    );
    let result = generator
        .generate_batch(&[Prompt::Tokens(prompt)], &greedy(expected.len()))
        .unwrap_or_else(|e| panic!("{e}"))
        .remove(0);
    println!(
        "tiny-gpt2: {} greedy tokens, equal: {}",
        expected.len(),
        result.tokens == expected
    );
    assert_eq!(result.tokens, expected);
    assert_eq!(result.finish_reason, FinishReason::Length);
}

#[test]
fn tiny_t5_greedy_tokens_equal_transformers_generate() {
    let generator = load(
        &tiny_catalog(),
        &tiny_exports(),
        "tiny-t5",
        EncoderDecoder::load,
    );
    // The golden tokens start with the decoder start token, which is not generated.
    let (prompt, expected) = golden_generation("tiny-t5", 1);
    let result = generator
        .generate_batch(&[Prompt::Tokens(prompt)], &greedy(expected.len()))
        .unwrap_or_else(|e| panic!("{e}"))
        .remove(0);
    println!(
        "tiny-t5: {} greedy tokens, equal: {}",
        expected.len(),
        result.tokens == expected
    );
    assert_eq!(result.tokens, expected);
}

fn prompts() -> Vec<Prompt> {
    [
        "a photo of a cat",
        "translate english to german: the house is wonderful",
        "the quick brown fox jumps over the lazy dog and then",
        "Ünïcödé 🚀",
    ]
    .into_iter()
    .map(Prompt::from)
    .collect()
}

/// Batched prompts (left-padded for decoders) give each prompt the tokens it gets alone.
fn check_batched_equals_unbatched(generator: &dyn TextGenerator) {
    let options = greedy(32);
    let batched = generator
        .generate_batch(&prompts(), &options)
        .unwrap_or_else(|e| panic!("{e}"));
    for (i, prompt) in prompts().into_iter().enumerate() {
        let alone = generator
            .generate_batch(&[prompt], &options)
            .unwrap_or_else(|e| panic!("{e}"))
            .remove(0);
        assert_eq!(batched[i].tokens, alone.tokens, "prompt {i}");
        assert_eq!(batched[i].text, alone.text, "prompt {i}");
    }
}

#[test]
fn tiny_gpt2_batched_equals_unbatched() {
    let generator = load(
        &tiny_catalog(),
        &tiny_exports(),
        "tiny-gpt2",
        DecoderOnly::load,
    );
    check_batched_equals_unbatched(&generator);
}

#[test]
fn tiny_t5_batched_equals_unbatched() {
    let generator = load(
        &tiny_catalog(),
        &tiny_exports(),
        "tiny-t5",
        EncoderDecoder::load,
    );
    check_batched_equals_unbatched(&generator);
}

#[test]
fn streaming_stop_sequences_and_seeded_sampling() {
    let generator = load(
        &tiny_catalog(),
        &tiny_exports(),
        "tiny-gpt2",
        DecoderOnly::load,
    );
    let prompt = [Prompt::from("a photo of a cat")];
    let full = generator
        .generate_batch(&prompt, &greedy(32))
        .unwrap_or_else(|e| panic!("{e}"))
        .remove(0);

    // Streaming: one event per token, and the streamed pieces make up the text.
    let mut streamed = String::new();
    let mut events = Vec::new();
    let result = generator
        .generate_stream(&prompt, &greedy(32), &mut |event| {
            streamed.push_str(event.text);
            events.push(event.token);
            ControlFlow::Continue(())
        })
        .unwrap_or_else(|e| panic!("{e}"))
        .remove(0);
    assert_eq!(events, full.tokens);
    assert_eq!(streamed, full.text);
    assert_eq!(result, full);

    // A stop sequence taken from the middle of the greedy text ends the text before it.
    let chars: Vec<char> = full.text.chars().collect();
    assert!(
        chars.len() > 6,
        "the tiny model writes some text: {:?}",
        full.text
    );
    let stop: String = chars[chars.len() / 2..chars.len() / 2 + 2].iter().collect();
    let options = GenerationOptions {
        stop_sequences: vec![stop.clone()],
        ..greedy(32)
    };
    let mut streamed = String::new();
    let stopped = generator
        .generate_stream(&prompt, &options, &mut |event| {
            streamed.push_str(event.text);
            ControlFlow::Continue(())
        })
        .unwrap_or_else(|e| panic!("{e}"))
        .remove(0);
    assert_eq!(stopped.finish_reason, FinishReason::StopSequence);
    assert_eq!(stopped.text, full.text[..full.text.find(&stop).unwrap()]);
    assert_eq!(
        streamed, stopped.text,
        "nothing past the stop sequence is streamed"
    );

    // Cancelling from the callback.
    let mut count = 0;
    let cancelled = generator
        .generate_stream(&prompt, &greedy(32), &mut |_| {
            count += 1;
            if count == 3 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })
        .unwrap_or_else(|e| panic!("{e}"))
        .remove(0);
    assert_eq!(cancelled.tokens.len(), 3);
    assert_eq!(cancelled.finish_reason, FinishReason::Cancelled);

    // Seeded sampling repeats; another seed (almost surely) differs.
    let sampled = |seed| {
        let options = GenerationOptions {
            temperature: Some(1.5),
            top_k: Some(50),
            top_p: Some(0.95),
            repetition_penalty: Some(1.2),
            seed: Some(seed),
            ..greedy(32)
        };
        generator
            .generate_batch(&prompt, &options)
            .unwrap_or_else(|e| panic!("{e}"))
            .remove(0)
            .tokens
    };
    assert_eq!(sampled(1), sampled(1));
    assert_ne!(sampled(1), sampled(2));

    // Bad options are typed errors, not panics.
    let bad = GenerationOptions {
        top_p: Some(2.0),
        ..greedy(4)
    };
    assert!(generator.generate_batch(&prompt, &bad).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generators_through_the_manager() {
    let manager = manager();
    for id in ["tiny-gpt2", "tiny-t5"] {
        let generator = manager
            .get_model::<Arc<dyn TextGenerator>>(id)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let generator = Arc::clone(&*generator);
        let result = tokio::task::spawn_blocking(move || {
            generator.generate("a photo of a cat", &GenerationOptions::default())
        })
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("{e}"));
        // The catalog's max_new_tokens applies when the request sets none.
        let limit = if id == "tiny-gpt2" { 24 } else { 16 };
        assert!(
            result.tokens.len() <= limit,
            "{id}: {} tokens",
            result.tokens.len()
        );
    }
}

/// The real-weight export of `id` and its Python reference, from the folder `cargo xtask fixtures`
/// exports them into (named by the fixture `real-exports.path`).
fn real_export(id: &str) -> (Catalog, PathBuf, serde_json::Value) {
    let catalog = Catalog::load(&root().join("models.yaml")).unwrap_or_else(|e| panic!("{e}"));
    let exports = modelmux_tests::pointed_to("real-exports.path", "real-refs");
    let spec = catalog.get(id).unwrap_or_else(|e| panic!("{e}"));
    let golden = spec.export_dir(&exports).join("lm-golden.json");
    let text = std::fs::read_to_string(&golden).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run `cargo xtask fixtures`, which exports {id} and writes its reference",
            golden.display()
        )
    });
    (
        catalog,
        exports,
        serde_json::from_str(&text).expect("lm-golden.json"),
    )
}

fn ids(value: &serde_json::Value) -> Vec<u32> {
    value
        .as_array()
        .expect("ids")
        .iter()
        .map(|v| v.as_u64().expect("id") as u32)
        .collect()
}

/// Tokenizes and embeds a reference's `texts`, checks the token ids equal its `input_ids`, and
/// returns (text, our vector, the reference vector) for each.
fn embed_reference_texts(
    encoder: &BertEncoder,
    golden: &serde_json::Value,
) -> Vec<(String, Vec<f32>, Vec<f32>)> {
    let texts: Vec<&str> = golden["texts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    let tokenized = encoder
        .tokenizer()
        .encode_batch(&texts, true)
        .unwrap_or_else(|e| panic!("{e}"));
    for (i, (ours, theirs)) in tokenized
        .iter()
        .zip(golden["input_ids"].as_array().unwrap())
        .enumerate()
    {
        assert_eq!(
            ours.ids,
            ids(theirs),
            "text {i} {:?}: token ids differ",
            texts[i]
        );
    }
    let vectors = encoder.embed(&texts).unwrap_or_else(|e| panic!("{e}"));
    let references = golden["embeddings"].as_array().unwrap();
    texts
        .iter()
        .zip(vectors)
        .zip(references)
        .map(|((text, ours), theirs)| {
            let theirs = theirs
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap() as f32)
                .collect();
            ((*text).to_owned(), ours, theirs)
        })
        .collect()
}

#[test]
fn minilm_matches_sentence_transformers() {
    let (catalog, exports, golden) = real_export("minilm");
    let encoder = load(&catalog, &exports, "minilm", BertEncoder::load);
    let compared = embed_reference_texts(&encoder, &golden);
    assert!(compared.len() >= 50);
    let mut worst = 1f32;
    for (text, ours, theirs) in &compared {
        let c = cosine(ours, theirs);
        worst = worst.min(c);
        assert!(c >= 0.9999, "{text:?}: cosine {c}");
    }
    println!(
        "minilm: {} texts, token ids identical, min cosine vs sentence-transformers {worst:.7}",
        compared.len()
    );
}

#[test]
fn smollm2_greedy_tokens_equal_transformers_generate() {
    let (catalog, exports, golden) = real_export("smollm2");
    let generator = load(&catalog, &exports, "smollm2", DecoderOnly::load);
    let prompts = golden["prompts"].as_array().unwrap();
    assert!(prompts.len() >= 5);
    for (i, prompt) in prompts.iter().enumerate() {
        let prompt = prompt.as_str().unwrap();
        // Plain text, tokenized as transformers' `tokenizer(prompt)` (the catalog's chat template
        // is bypassed by passing the ids).
        let prompt_ids = generator
            .tokenizer()
            .encode_batch(&[prompt], true)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            prompt_ids[0].ids,
            ids(&golden["prompt_ids"][i]),
            "prompt {i}: token ids differ"
        );
        let expected = ids(&golden["tokens"][i]);
        // The goldens ask for exactly 32 new tokens (min_new_tokens), so both sides suppress EOS.
        let options = GenerationOptions {
            min_new_tokens: Some(expected.len()),
            ..greedy(expected.len())
        };
        let result = generator
            .generate_batch(&[Prompt::Tokens(prompt_ids[0].ids.clone())], &options)
            .unwrap_or_else(|e| panic!("{e}"))
            .remove(0);
        assert_eq!(result.tokens, expected, "prompt {i} {prompt:?}");
        println!(
            "smollm2 prompt {i}: {} greedy tokens identical: {:?}",
            result.tokens.len(),
            result.text
        );
    }
    // The same prompts as one user message through the chat template (the catalog turns it on,
    // so plain text goes through it): the rendered ids and the greedy answer.
    let chat_ids = golden["chat_prompt_ids"]
        .as_array()
        .expect("chat_prompt_ids (the tokenizer has a chat template)");
    for (i, prompt) in prompts.iter().enumerate() {
        let expected = ids(&golden["chat_tokens"][i]);
        let mut first = None;
        let result = generator
            .generate_stream(
                &[Prompt::from(prompt.as_str().unwrap())],
                &greedy(32),
                &mut |event| {
                    first.get_or_insert(event.token);
                    ControlFlow::Continue(())
                },
            )
            .unwrap_or_else(|e| panic!("{e}"))
            .remove(0);
        assert_eq!(result.tokens, expected, "chat prompt {i}");
        let ours = generator
            .prompt_ids(&[Prompt::from(prompt.as_str().unwrap())])
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            ours[0],
            ids(&chat_ids[i]),
            "chat prompt {i}: templated ids differ"
        );
        println!(
            "smollm2 chat {i}: {} tokens identical: {:?}",
            result.tokens.len(),
            result.text
        );
    }
}

/// A text-level reference of `cargo xtask fixtures` (`xtask/python/lm_goldens.py tiny`).
fn tiny_text_golden(id: &str) -> serde_json::Value {
    let path = fixture(&format!("lm/{id}.json"));
    serde_json::from_str(&std::fs::read_to_string(path).expect("read")).expect("json")
}

#[test]
fn tiny_bert_texts_tokenize_and_embed_as_transformers() {
    let exports = tiny_exports();
    let encoder = load(&tiny_catalog(), &exports, "tiny-bert", BertEncoder::load);
    let compared = embed_reference_texts(&encoder, &tiny_text_golden("tiny-bert"));
    let worst = compared
        .iter()
        .map(|(_, ours, theirs)| max_abs(ours, theirs))
        .fold(0.0, f32::max);
    let atol = tolerance(&exports, "tiny-bert", "0.1.0");
    println!(
        "tiny-bert: {} texts, token ids identical, embeddings max abs diff {worst:.2e}",
        compared.len()
    );
    assert!(worst <= atol, "{worst} > {atol}");
}

/// 32 greedy tokens from text prompts, as transformers' `generate(min_new_tokens=32)`.
fn check_text_generation(generator: &dyn TextGenerator, id: &str) {
    let golden = tiny_text_golden(id);
    for (i, prompt) in golden["prompts"].as_array().unwrap().iter().enumerate() {
        let expected = ids(&golden["tokens"][i]);
        let options = GenerationOptions {
            min_new_tokens: Some(expected.len()),
            ..greedy(expected.len())
        };
        let result = generator
            .generate_batch(&[Prompt::from(prompt.as_str().unwrap())], &options)
            .unwrap_or_else(|e| panic!("{e}"))
            .remove(0);
        assert_eq!(result.tokens, expected, "{id} prompt {i} {prompt}");
    }
    println!(
        "{id}: {} text prompts × 32 greedy tokens identical",
        golden["prompts"].as_array().unwrap().len()
    );
}

#[test]
fn tiny_gpt2_text_prompts_generate_32_tokens_as_transformers() {
    let generator = load(
        &tiny_catalog(),
        &tiny_exports(),
        "tiny-gpt2",
        DecoderOnly::load,
    );
    let golden = tiny_text_golden("tiny-gpt2");
    for (i, prompt) in golden["prompts"].as_array().unwrap().iter().enumerate() {
        let ours = generator
            .tokenizer()
            .encode_batch(&[prompt.as_str().unwrap()], true)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(ours[0].ids, ids(&golden["prompt_ids"][i]), "prompt {i}");
    }
    check_text_generation(&generator, "tiny-gpt2");
}

#[test]
fn tiny_t5_text_prompts_generate_32_tokens_as_transformers() {
    let generator = load(
        &tiny_catalog(),
        &tiny_exports(),
        "tiny-t5",
        EncoderDecoder::load,
    );
    check_text_generation(&generator, "tiny-t5");
}
