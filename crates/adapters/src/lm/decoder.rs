//! Decoder-only generation (GPT-2, Llama family) over one ONNX file with the KV cache in its
//! inputs and outputs (contract: `decoder-only` in the export CONTRACTS.md).
//!
//! The prompt is read once, with a zero-length past; each later step feeds one token per row and
//! the `present.*` outputs of the step before as `past_key_values.*`. Batched prompts are padded
//! on the left, so every row's next token is at the last position; padded positions are masked
//! out and position ids count real tokens only, as transformers' `generate` does.

use std::ops::ControlFlow;

use modelmux_registry::GenerationDefaults;
use modelmux_runtime_ort::{Dim, Inputs, Outputs, SessionPool};
use ndarray::{Array2, Array4, ArrayD, Axis, Ix3, s};

use crate::context::LoadContext;
use crate::error::AdapterError;
use crate::lm::chat::ChatTemplate;
use crate::lm::config::ExportFacts;
use crate::lm::generate::{self, LoopConfig, Stepper};
use crate::lm::tokenize::TextTokenizer;
use crate::lm::{Generation, GenerationOptions, Prompt, TextGenerator, TokenEvent};

/// A decoder-only language model.
#[derive(Debug)]
pub struct DecoderOnly {
    model: String,
    pool: SessionPool,
    tokenizer: TextTokenizer,
    chat: Option<ChatTemplate>,
    defaults: Option<GenerationDefaults>,
    layers: usize,
    kv_heads: usize,
    head_dim: usize,
    eos: Vec<u32>,
    bos: Option<u32>,
    pad: u32,
    context_length: Option<usize>,
}

impl DecoderOnly {
    /// Loads the tokenizer and a pool of sessions over `model.onnx`.
    pub fn load(context: &LoadContext<'_>) -> Result<Self, AdapterError> {
        let model = context.model();
        let facts = ExportFacts::read(context)?;
        let tokenizer = TextTokenizer::load(context)?;
        // Steps of one generation must not wait for company: the pool does not batch them.
        let pool = context.pool("model.onnx", false)?;
        let info = pool.info();
        let layers = (0..)
            .take_while(|i| info.input(&format!("past_key_values.{i}.key")).is_some())
            .count();
        if layers == 0 || info.output("logits").is_none() {
            return Err(AdapterError::Config {
                model,
                reason: "model.onnx lacks `logits` or `past_key_values.0.key` (see the decoder-only contract)".to_owned(),
            });
        }
        let past = info
            .input("past_key_values.0.key")
            .map(|t| t.shape.clone())
            .unwrap_or_default();
        let fixed = |axis: usize| match past.get(axis) {
            Some(Dim::Fixed(n)) => Some(*n),
            _ => None,
        };
        let kv_heads = match fixed(1) {
            Some(n) => n,
            None => facts.require_uint("num_key_value_heads")? as usize,
        };
        let head_dim = match fixed(3) {
            Some(n) => n,
            None => facts.require_uint("head_dim")? as usize,
        };
        let eos = facts.ids("eos_token_id");
        let bos = facts.ids("bos_token_id").first().copied();
        // transformers pads finished rows and left-pads prompts with the pad token, else EOS.
        let pad = facts
            .ids("pad_token_id")
            .first()
            .copied()
            .or_else(|| eos.first().copied())
            .unwrap_or_else(|| tokenizer.pad_id());
        let chat = match ChatTemplate::load(&model, &context.export_dir) {
            Ok(chat) => chat,
            Err(e) => {
                pool.shutdown();
                return Err(e);
            }
        };
        Ok(Self {
            model,
            pool,
            tokenizer,
            chat,
            defaults: context.spec.params.generation.clone(),
            layers,
            kv_heads,
            head_dim,
            eos,
            bos,
            pad,
            // Learned position embeddings end here; prompts are also held to the tokenizer's
            // `max_length` when they are tokenized.
            context_length: facts.max_positions(),
        })
    }

    /// Stops the sessions.
    pub fn shutdown(&self) {
        self.pool.shutdown();
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &TextTokenizer {
        &self.tokenizer
    }
}

impl DecoderOnly {
    fn loop_config(&self) -> LoopConfig<'_> {
        LoopConfig {
            model: &self.model,
            tokenizer: &self.tokenizer,
            defaults: self.defaults.as_ref(),
            eos: &self.eos,
            pad: self.pad,
            context_length: self.context_length,
            chat: self.chat.as_ref(),
            chat_by_default: self
                .defaults
                .as_ref()
                .and_then(|d| d.chat_template)
                .unwrap_or(false),
        }
    }

    /// The token ids the model reads for `prompts`: tokenized, through the chat template where
    /// it applies, an empty prompt started from BOS.
    pub fn prompt_ids(&self, prompts: &[Prompt]) -> Result<Vec<Vec<u32>>, AdapterError> {
        self.prompt_ids_with(&self.loop_config(), prompts)
    }

    fn prompt_ids_with(
        &self,
        config: &LoopConfig<'_>,
        prompts: &[Prompt],
    ) -> Result<Vec<Vec<u32>>, AdapterError> {
        let mut ids = config.tokenize(prompts)?;
        for prompt in &mut ids {
            // transformers starts an empty prompt from BOS; without one there is nothing to
            // condition on.
            if prompt.is_empty() {
                match self.bos {
                    Some(bos) => prompt.push(bos),
                    None => {
                        return Err(AdapterError::InvalidRequest {
                            model: self.model.clone(),
                            reason: "the prompt is empty and the model has no BOS token".to_owned(),
                        });
                    }
                }
            }
        }
        Ok(ids)
    }
}

impl TextGenerator for DecoderOnly {
    fn generate_stream(
        &self,
        prompts: &[Prompt],
        options: &GenerationOptions,
        on_token: &mut dyn FnMut(TokenEvent<'_>) -> ControlFlow<()>,
    ) -> Result<Vec<Generation>, AdapterError> {
        let config = self.loop_config();
        let ids = self.prompt_ids_with(&config, prompts)?;
        let mut stepper = CachedDecoder {
            model: self,
            past: Vec::new(),
            mask: Array2::zeros((0, 0)),
            positions: Vec::new(),
        };
        generate::generate(&config, &mut stepper, ids, options, on_token)
    }
}

/// One generation's KV cache, attention mask and next positions.
struct CachedDecoder<'a> {
    model: &'a DecoderOnly,
    /// (key, value) per layer, `[batch, kv_heads, past, head_dim]`.
    past: Vec<(ArrayD<f32>, ArrayD<f32>)>,
    mask: Array2<i64>,
    positions: Vec<i64>,
}

impl CachedDecoder<'_> {
    fn run(
        &mut self,
        ids: Array2<i64>,
        positions: Array2<i64>,
    ) -> Result<Array2<f32>, AdapterError> {
        let mut inputs = Inputs::new()
            .with("input_ids", ids)
            .with("attention_mask", self.mask.clone())
            .with("position_ids", positions);
        for (i, (key, value)) in std::mem::take(&mut self.past).into_iter().enumerate() {
            inputs.push(format!("past_key_values.{i}.key"), key);
            inputs.push(format!("past_key_values.{i}.value"), value);
        }
        let mut outputs = self.model.pool.run_blocking(inputs)?;
        for i in 0..self.model.layers {
            let key = outputs.take::<f32>(&format!("present.{i}.key"))?;
            let value = outputs.take::<f32>(&format!("present.{i}.value"))?;
            self.past.push((key, value));
        }
        last_logits(&self.model.model, &mut outputs)
    }
}

/// The logits of the last position of every row.
pub(crate) fn last_logits(model: &str, outputs: &mut Outputs) -> Result<Array2<f32>, AdapterError> {
    let logits = outputs.take::<f32>("logits")?;
    let logits = logits
        .into_dimensionality::<Ix3>()
        .map_err(|e| AdapterError::Config {
            model: model.to_owned(),
            reason: format!("output `logits` is not [batch, sequence, vocab]: {e}"),
        })?;
    let last = logits
        .len_of(Axis(1))
        .checked_sub(1)
        .ok_or_else(|| AdapterError::Config {
            model: model.to_owned(),
            reason: "output `logits` has no positions".to_owned(),
        })?;
    Ok(logits.slice(s![.., last, ..]).to_owned())
}

impl Stepper for CachedDecoder<'_> {
    fn start(&mut self, prompts: &[Vec<u32>]) -> Result<Array2<f32>, AdapterError> {
        let rows = prompts.len();
        let longest = prompts.iter().map(Vec::len).max().unwrap_or(0);
        let mut ids = Array2::from_elem((rows, longest), i64::from(self.model.pad));
        let mut mask = Array2::zeros((rows, longest));
        // Padded positions get position 1, real ones count from 0 (transformers' choice; the
        // padded positions are masked, so the value only has to be a valid index).
        let mut positions = Array2::from_elem((rows, longest), 1i64);
        self.positions = Vec::with_capacity(rows);
        for (row, prompt) in prompts.iter().enumerate() {
            let offset = longest - prompt.len();
            for (i, &token) in prompt.iter().enumerate() {
                ids[[row, offset + i]] = i64::from(token);
                mask[[row, offset + i]] = 1;
                positions[[row, offset + i]] = i as i64;
            }
            self.positions.push(prompt.len() as i64);
        }
        self.mask = mask;
        let empty =
            Array4::<f32>::zeros((rows, self.model.kv_heads, 0, self.model.head_dim)).into_dyn();
        self.past = (0..self.model.layers)
            .map(|_| (empty.clone(), empty.clone()))
            .collect();
        self.run(ids, positions)
    }

    fn step(&mut self, tokens: &[u32]) -> Result<Array2<f32>, AdapterError> {
        let rows = tokens.len();
        let ids = Array2::from_shape_fn((rows, 1), |(r, _)| i64::from(tokens[r]));
        let positions = Array2::from_shape_fn((rows, 1), |(r, _)| self.positions[r]);
        self.positions.iter_mut().for_each(|p| *p += 1);
        let ones = Array2::<i64>::ones((rows, 1));
        self.mask =
            ndarray::concatenate(Axis(1), &[self.mask.view(), ones.view()]).map_err(|e| {
                AdapterError::Config {
                    model: self.model.model.clone(),
                    reason: format!("attention mask: {e}"),
                }
            })?;
        self.run(ids, positions)
    }
}
