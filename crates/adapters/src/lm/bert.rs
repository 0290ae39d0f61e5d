//! BERT-family encoders: sentence embeddings (pooled, normalised) and sequence classification.

use modelmux_registry::Pooling;
use modelmux_runtime_ort::{Inputs, Outputs, SessionPool};
use ndarray::{Array2, ArrayView3, Axis};

use crate::context::LoadContext;
use crate::error::AdapterError;
use crate::lm::config::ExportFacts;
use crate::lm::tokenize::{Encoded, TextTokenizer};
use crate::lm::{LabelScore, TextClassifier, TextEncoder};

/// Texts per model run when the catalog sets no batch size: sentence-transformers' default.
const DEFAULT_CHUNK: usize = 32;

/// A BERT-style encoder over `model.onnx` (contract: `bert` in the export CONTRACTS.md).
#[derive(Debug)]
pub struct BertEncoder {
    model: String,
    pool: SessionPool,
    tokenizer: TextTokenizer,
    token_types: bool,
    pooling: Pooling,
    normalize: bool,
    dimensions: usize,
    labels: Vec<String>,
    chunk: usize,
}

impl BertEncoder {
    /// Loads the tokenizer and a pool of sessions over `model.onnx`.
    pub fn load(context: &LoadContext<'_>) -> Result<Self, AdapterError> {
        let model = context.model();
        let facts = ExportFacts::read(context)?;
        let tokenizer = TextTokenizer::load(context)?;
        let pool = context.pool("model.onnx", true)?;
        let info = pool.info();
        let config = |reason: String| AdapterError::Config {
            model: model.clone(),
            reason,
        };
        let hidden = info.output("last_hidden_state").ok_or_else(|| {
            config(
                "model.onnx has no `last_hidden_state` output (see the bert contract)".to_owned(),
            )
        })?;
        let embedding = context.spec.params.embedding.clone().unwrap_or_default();
        let dimensions = match hidden.shape.last() {
            Some(modelmux_runtime_ort::Dim::Fixed(n)) => *n,
            _ => embedding
                .dimensions
                .map(|d| d as usize)
                .or_else(|| facts.uint("hidden_size").map(|d| d as usize))
                .ok_or_else(|| {
                    config(
                        "the hidden size is neither fixed in model.onnx nor in the catalog"
                            .to_owned(),
                    )
                })?,
        };
        if let Some(declared) = embedding.dimensions
            && declared as usize != dimensions
        {
            return Err(config(format!(
                "params.embedding.dimensions is {declared} but the model's hidden size is {dimensions}"
            )));
        }
        let pooling = match embedding.pooling.unwrap_or(Pooling::Mean) {
            Pooling::None => return Err(config(
                "pooling `none` needs a model that outputs one vector; BERT outputs one per token"
                    .to_owned(),
            )),
            other => other,
        };
        let mut labels = context.spec.params.labels.clone();
        if labels.is_empty() {
            labels = facts.strings("labels");
        }
        let labels = if info.output("logits").is_some() {
            labels
        } else {
            Vec::new()
        };
        let chunk = match context.spec.batching.max_batch_size {
            0 | 1 => DEFAULT_CHUNK,
            n => n as usize,
        };
        Ok(Self {
            token_types: info.input("token_type_ids").is_some(),
            model,
            pool,
            tokenizer,
            pooling,
            normalize: embedding.normalize.unwrap_or(true),
            dimensions,
            labels,
            chunk,
        })
    }

    /// Whether the model has a classification head with labels.
    pub fn is_classifier(&self) -> bool {
        !self.labels.is_empty()
    }

    /// Stops the sessions.
    pub fn shutdown(&self) {
        self.pool.shutdown();
    }

    /// The tokenizer, as configured from the catalog.
    pub fn tokenizer(&self) -> &TextTokenizer {
        &self.tokenizer
    }

    /// Embeds already-tokenized texts (special tokens included), e.g. reference token ids.
    pub fn embed_ids(&self, ids: &[Vec<u32>]) -> Result<Vec<Vec<f32>>, AdapterError> {
        self.embed_encoded(untyped(ids))
    }

    /// Embeds in runs of at most `chunk` texts, grouped by length so each run pads little (as
    /// sentence-transformers sorts before batching), in the caller's order.
    fn embed_encoded(&self, encoded: Vec<Encoded>) -> Result<Vec<Vec<f32>>, AdapterError> {
        let mut order: Vec<usize> = (0..encoded.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(encoded[i].ids.len()));
        let mut vectors = vec![Vec::new(); encoded.len()];
        for indices in order.chunks(self.chunk) {
            let batch: Vec<Encoded> = indices.iter().map(|&i| encoded[i].clone()).collect();
            for (&i, vector) in indices.iter().zip(self.embed_chunk(&batch)?) {
                vectors[i] = vector;
            }
        }
        Ok(vectors)
    }

    fn embed_chunk(&self, batch: &[Encoded]) -> Result<Vec<Vec<f32>>, AdapterError> {
        let (mask, outputs) = self.run(batch)?;
        let hidden = outputs.array::<f32>("last_hidden_state")?;
        let hidden = hidden
            .view()
            .into_dimensionality::<ndarray::Ix3>()
            .map_err(|e| self.shape_error("last_hidden_state", &e.to_string()))?;
        Ok((0..batch.len())
            .map(|row| {
                let mut vector = pool(hidden, &mask, row, self.pooling);
                if self.normalize {
                    l2_normalize(&mut vector);
                }
                vector
            })
            .collect())
    }

    /// Runs the model on a right-padded batch; returns the attention mask and the outputs.
    fn run(&self, batch: &[Encoded]) -> Result<(Array2<i64>, Outputs), AdapterError> {
        let rows = batch.len();
        let longest = batch.iter().map(|e| e.ids.len()).max().unwrap_or(0).max(1);
        let mut ids = Array2::<i64>::from_elem((rows, longest), i64::from(self.tokenizer.pad_id()));
        let mut mask = Array2::<i64>::zeros((rows, longest));
        let mut types = Array2::<i64>::zeros((rows, longest));
        for (row, encoded) in batch.iter().enumerate() {
            for (col, (&id, &ty)) in encoded.ids.iter().zip(&encoded.type_ids).enumerate() {
                ids[[row, col]] = i64::from(id);
                types[[row, col]] = i64::from(ty);
                mask[[row, col]] = 1;
            }
        }
        let mut inputs = Inputs::new()
            .with("input_ids", ids)
            .with("attention_mask", mask.clone());
        if self.token_types {
            inputs.push("token_type_ids", types);
        }
        Ok((mask, self.pool.run_blocking(inputs)?))
    }

    /// Classifies already-tokenized texts (special tokens included), e.g. reference token ids.
    pub fn classify_ids(&self, ids: &[Vec<u32>]) -> Result<Vec<Vec<LabelScore>>, AdapterError> {
        let encoded = untyped(ids);
        let mut results = Vec::with_capacity(encoded.len());
        for chunk in encoded.chunks(self.chunk) {
            results.extend(self.classify_chunk(chunk)?);
        }
        Ok(results)
    }

    fn classify_chunk(&self, batch: &[Encoded]) -> Result<Vec<Vec<LabelScore>>, AdapterError> {
        if self.labels.is_empty() {
            return Err(AdapterError::InvalidRequest {
                model: self.model.clone(),
                reason: "the model has no classification head (no `logits` output or no labels)"
                    .to_owned(),
            });
        }
        let (_, outputs) = self.run(batch)?;
        let logits = outputs.array::<f32>("logits")?;
        let logits = logits
            .view()
            .into_dimensionality::<ndarray::Ix2>()
            .map_err(|e| self.shape_error("logits", &e.to_string()))?;
        if logits.ncols() != self.labels.len() {
            return Err(self.shape_error(
                "logits",
                &format!(
                    "{} columns for {} labels",
                    logits.ncols(),
                    self.labels.len()
                ),
            ));
        }
        Ok(logits
            .outer_iter()
            .map(|row| {
                let probabilities = crate::lm::sampling::softmax(&row.to_vec());
                let mut scores: Vec<LabelScore> = self
                    .labels
                    .iter()
                    .zip(probabilities)
                    .map(|(label, score)| LabelScore {
                        label: label.clone(),
                        score,
                    })
                    .collect();
                scores.sort_by(|a, b| b.score.total_cmp(&a.score));
                scores
            })
            .collect())
    }

    fn shape_error(&self, output: &str, reason: &str) -> AdapterError {
        AdapterError::Config {
            model: self.model.clone(),
            reason: format!("output `{output}` has an unexpected shape: {reason}"),
        }
    }
}

/// Token ids as one-segment encodings (token type 0 throughout).
fn untyped(ids: &[Vec<u32>]) -> Vec<Encoded> {
    ids.iter()
        .map(|ids| Encoded {
            type_ids: vec![0; ids.len()],
            ids: ids.clone(),
        })
        .collect()
}

/// Pools one row's token vectors: the mask-weighted mean (sentence-transformers divides by the
/// token count clamped to 1e-9) or the first ([CLS]) token.
fn pool(hidden: ArrayView3<'_, f32>, mask: &Array2<i64>, row: usize, pooling: Pooling) -> Vec<f32> {
    let tokens = hidden.index_axis(Axis(0), row);
    match pooling {
        Pooling::Cls | Pooling::None => tokens.row(0).to_vec(),
        Pooling::Mean => {
            let mut sum = vec![0f32; tokens.ncols()];
            let mut count = 0f32;
            for (t, token) in tokens.outer_iter().enumerate() {
                if mask[[row, t]] != 0 {
                    count += 1.0;
                    sum.iter_mut().zip(token.iter()).for_each(|(s, v)| *s += v);
                }
            }
            let count = count.max(1e-9);
            sum.iter_mut().for_each(|s| *s /= count);
            sum
        }
    }
}

/// Divides by the L2 norm, clamped to 1e-12 as `torch.nn.functional.normalize` does.
pub(crate) fn l2_normalize(vector: &mut [f32]) {
    let norm = vector.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
    vector.iter_mut().for_each(|v| *v /= norm);
}

impl TextEncoder for BertEncoder {
    fn dimensions(&self) -> usize {
        self.dimensions
    }

    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, AdapterError> {
        self.embed_encoded(self.tokenizer.encode_batch(texts, true)?)
    }
}

impl TextClassifier for BertEncoder {
    fn labels(&self) -> &[String] {
        &self.labels
    }

    fn classify(&self, texts: &[&str]) -> Result<Vec<Vec<LabelScore>>, AdapterError> {
        let mut results = Vec::with_capacity(texts.len());
        for chunk in texts.chunks(self.chunk) {
            results.extend(self.classify_chunk(&self.tokenizer.encode_batch(chunk, true)?)?);
        }
        Ok(results)
    }
}
