//! The `lm` family: text encoders, classifiers and generators, and their ONNX adapters.
//!
//! The traits are what applications (and the CLI) program against; the manager hands them out as
//! `Arc<dyn TextEncoder>`, `Arc<dyn TextClassifier>` or `Arc<dyn TextGenerator>` leases, chosen
//! from the catalog entry when the model is loaded:
//!
//! - `bert` → [`BertEncoder`]: a [`TextClassifier`] when the export has a `logits` output and
//!   labels, otherwise a [`TextEncoder`].
//! - `decoder-only` → [`DecoderOnly`]: a [`TextGenerator`] over the KV-cached decoder.
//! - `encoder-decoder` → [`EncoderDecoder`]: a [`TextGenerator`] over the T5 encoder and decoder.
//!
//! Every method blocks the calling thread while ONNX Runtime works (the sessions live on worker
//! threads of their own); async callers wrap calls in `tokio::task::spawn_blocking`.

mod bert;
mod chat;
mod config;
mod decoder;
mod generate;
mod sampling;
mod t5;
mod tokenize;

use std::ops::ControlFlow;
use std::sync::Arc;

use modelmux_registry::Architecture;

use crate::context::LoadContext;
use crate::error::AdapterError;
use crate::load::Loaded;

pub use self::bert::BertEncoder;
pub use self::chat::ChatMessage;
pub use self::decoder::DecoderOnly;
pub use self::sampling::SeededRng;
pub use self::t5::EncoderDecoder;
pub use self::tokenize::TextTokenizer;

/// Turns texts into fixed-length vectors, pooled and normalised as the catalog entry says.
pub trait TextEncoder: Send + Sync {
    /// The length of every vector.
    fn dimensions(&self) -> usize;

    /// One vector per text, in order. Texts longer than the model's limit are truncated when
    /// the catalog allows it (sentence-transformers does the same) and refused otherwise.
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, AdapterError>;
}

/// One label and its probability.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelScore {
    pub label: String,
    /// Softmax probability over the model's labels.
    pub score: f32,
}

/// Scores texts against a fixed set of labels.
pub trait TextClassifier: Send + Sync {
    /// The labels, in the model's output order.
    fn labels(&self) -> &[String];

    /// For each text, every label with its probability, most likely first.
    fn classify(&self, texts: &[&str]) -> Result<Vec<Vec<LabelScore>>, AdapterError>;
}

/// What to generate from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prompt {
    /// Text, tokenized with the model's tokenizer (special tokens added as transformers adds
    /// them by default). When the catalog sets `generation.chat_template` and the tokenizer has
    /// a template, the text is sent as one user message through it instead.
    Text(String),
    /// A conversation, rendered with the model's chat template (an error without one) and the
    /// assistant's turn opened.
    Chat(Vec<ChatMessage>),
    /// Token ids, used as they are.
    Tokens(Vec<u32>),
}

impl From<&str> for Prompt {
    fn from(text: &str) -> Self {
        Prompt::Text(text.to_owned())
    }
}

impl From<String> for Prompt {
    fn from(text: String) -> Self {
        Prompt::Text(text)
    }
}

/// How to generate. The default is greedy decoding up to the catalog's `max_new_tokens`.
///
/// Sampling happens when `temperature` is above 0 or `top_k` / `top_p` is set (then the
/// temperature defaults to 1); otherwise each step takes the most likely token, as transformers'
/// `generate(do_sample=False)` does. The catalog's `generation.temperature` and `top_p` apply
/// when the request leaves them unset.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GenerationOptions {
    /// The most new tokens; the catalog's `generation.max_new_tokens` (else 128) when unset.
    pub max_new_tokens: Option<usize>,
    /// The end-of-sequence token is suppressed until this many new tokens exist (transformers'
    /// `min_new_tokens`).
    pub min_new_tokens: Option<usize>,
    /// Generation stops once the new text contains one of these; the text ends before it.
    pub stop_sequences: Vec<String>,
    /// Softmax temperature; 0 means greedy.
    pub temperature: Option<f32>,
    /// Keep only the k most likely tokens before sampling.
    pub top_k: Option<usize>,
    /// Keep the smallest set of tokens whose probability reaches p before sampling.
    pub top_p: Option<f32>,
    /// CTRL's penalty on tokens already present (prompt or output), as transformers applies
    /// it; 1 or unset means none.
    pub repetition_penalty: Option<f32>,
    /// Seed of the sampler, so a sampled generation can be repeated; 0 when unset.
    pub seed: Option<u64>,
}

/// Why a generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// `max_new_tokens` (or the model's context length) was reached.
    Length,
    /// The model produced its end-of-sequence token.
    EndOfSequence,
    /// The text reached one of the stop sequences.
    StopSequence,
    /// The streaming callback asked to stop.
    Cancelled,
}

/// The result of one prompt.
#[derive(Debug, Clone, PartialEq)]
pub struct Generation {
    /// The new text (special tokens skipped; cut before a stop sequence).
    pub text: String,
    /// The ids of the new tokens, the end-of-sequence token included when it was produced.
    pub tokens: Vec<u32>,
    pub finish_reason: FinishReason,
}

/// One new token, as streamed.
#[derive(Debug, Clone, Copy)]
pub struct TokenEvent<'a> {
    /// Which prompt of the batch it belongs to.
    pub index: usize,
    pub token: u32,
    /// The text this token completes (empty while a multi-byte character is incomplete or the
    /// token is special).
    pub text: &'a str,
}

/// Continues prompts: greedy or sampled, batched, with streaming of tokens.
pub trait TextGenerator: Send + Sync {
    /// Generates for every prompt of the batch together (left-padded where the model needs it),
    /// calling `on_token` for each new token as it is chosen; returning `Break` from it stops
    /// that prompt.
    fn generate_stream(
        &self,
        prompts: &[Prompt],
        options: &GenerationOptions,
        on_token: &mut dyn FnMut(TokenEvent<'_>) -> ControlFlow<()>,
    ) -> Result<Vec<Generation>, AdapterError>;

    /// Generates for one prompt.
    fn generate(
        &self,
        prompt: &str,
        options: &GenerationOptions,
    ) -> Result<Generation, AdapterError> {
        let mut results = self.generate_stream(&[Prompt::from(prompt)], options, &mut |_| {
            ControlFlow::Continue(())
        })?;
        results.pop().ok_or_else(|| AdapterError::InvalidRequest {
            model: String::new(),
            reason: "the generator returned no result".to_owned(),
        })
    }

    /// Generates for several prompts at once.
    fn generate_batch(
        &self,
        prompts: &[Prompt],
        options: &GenerationOptions,
    ) -> Result<Vec<Generation>, AdapterError> {
        self.generate_stream(prompts, options, &mut |_| ControlFlow::Continue(()))
    }
}

/// Loads the `lm` adapter for `context.spec`'s architecture.
pub fn load(context: &LoadContext<'_>) -> Result<Loaded, AdapterError> {
    match context.spec.architecture {
        Architecture::Bert => {
            let encoder = Arc::new(BertEncoder::load(context)?);
            let stop = Arc::clone(&encoder);
            let shutdown = move || stop.shutdown();
            if encoder.is_classifier() {
                Ok(Loaded::new(encoder as Arc<dyn TextClassifier>, shutdown))
            } else {
                Ok(Loaded::new(encoder as Arc<dyn TextEncoder>, shutdown))
            }
        }
        Architecture::DecoderOnly => {
            let generator = Arc::new(DecoderOnly::load(context)?);
            let stop = Arc::clone(&generator);
            Ok(Loaded::new(
                generator as Arc<dyn TextGenerator>,
                move || stop.shutdown(),
            ))
        }
        Architecture::EncoderDecoder => {
            let generator = Arc::new(EncoderDecoder::load(context)?);
            let stop = Arc::clone(&generator);
            Ok(Loaded::new(
                generator as Arc<dyn TextGenerator>,
                move || stop.shutdown(),
            ))
        }
        _ => Err(AdapterError::Unsupported {
            model: context.model(),
            architecture: context.spec.architecture.to_string(),
        }),
    }
}
