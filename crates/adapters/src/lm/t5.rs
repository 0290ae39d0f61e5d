//! Encoder-decoder generation (T5) over `encoder_model.onnx` and `decoder_model.onnx`
//! (contract: `encoder-decoder` in the export CONTRACTS.md).
//!
//! The encoder runs once per request. The exported decoder has no self-attention cache, on
//! purpose (T5's relative position bias depends on the past length, and a traced cached decoder
//! froze it), so each step runs the whole decoder prefix: exact, and O(n²) in the output length.
//! When a cached decoder file is exported, it belongs in a second [`Stepper`].

use std::ops::ControlFlow;

use modelmux_registry::GenerationDefaults;
use modelmux_runtime_ort::{Inputs, SessionPool};
use ndarray::{Array2, ArrayD};

use crate::context::LoadContext;
use crate::error::AdapterError;
use crate::lm::config::ExportFacts;
use crate::lm::decoder::last_logits;
use crate::lm::generate::{self, LoopConfig, Stepper};
use crate::lm::tokenize::TextTokenizer;
use crate::lm::{Generation, GenerationOptions, Prompt, TextGenerator, TokenEvent};

/// A T5-style encoder-decoder.
#[derive(Debug)]
pub struct EncoderDecoder {
    model: String,
    encoder: SessionPool,
    decoder: SessionPool,
    tokenizer: TextTokenizer,
    defaults: Option<GenerationDefaults>,
    decoder_start: u32,
    eos: Vec<u32>,
    pad: u32,
}

impl EncoderDecoder {
    /// Loads the tokenizer and pools over both ONNX files.
    pub fn load(context: &LoadContext<'_>) -> Result<Self, AdapterError> {
        let model = context.model();
        let facts = ExportFacts::read(context)?;
        let tokenizer = TextTokenizer::load(context)?;
        let decoder_start = facts.require_uint("decoder_start_token_id")? as u32;
        let encoder = context.pool("encoder_model.onnx", false)?;
        let decoder = match context.pool("decoder_model.onnx", false) {
            Ok(decoder) => decoder,
            Err(e) => {
                encoder.shutdown();
                return Err(e);
            }
        };
        let pad = facts
            .ids("pad_token_id")
            .first()
            .copied()
            .unwrap_or_else(|| tokenizer.pad_id());
        Ok(Self {
            eos: facts.ids("eos_token_id"),
            defaults: context.spec.params.generation.clone(),
            model,
            encoder,
            decoder,
            tokenizer,
            decoder_start,
            pad,
        })
    }

    /// Stops the sessions.
    pub fn shutdown(&self) {
        self.encoder.shutdown();
        self.decoder.shutdown();
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &TextTokenizer {
        &self.tokenizer
    }
}

impl TextGenerator for EncoderDecoder {
    fn generate_stream(
        &self,
        prompts: &[Prompt],
        options: &GenerationOptions,
        on_token: &mut dyn FnMut(TokenEvent<'_>) -> ControlFlow<()>,
    ) -> Result<Vec<Generation>, AdapterError> {
        let config = LoopConfig {
            model: &self.model,
            tokenizer: &self.tokenizer,
            defaults: self.defaults.as_ref(),
            eos: &self.eos,
            pad: self.pad,
            context_length: None,
            chat: None,
            chat_by_default: false,
        };
        let ids = config.tokenize(prompts)?;
        let mut stepper = UncachedDecoder {
            model: self,
            encoder_states: None,
            encoder_mask: Array2::zeros((0, 0)),
            prefix: Vec::new(),
        };
        generate::generate(&config, &mut stepper, ids, options, on_token)
    }
}

/// One generation's encoder output and decoder prefixes.
struct UncachedDecoder<'a> {
    model: &'a EncoderDecoder,
    encoder_states: Option<ArrayD<f32>>,
    encoder_mask: Array2<i64>,
    prefix: Vec<Vec<u32>>,
}

impl UncachedDecoder<'_> {
    fn decode(&mut self) -> Result<Array2<f32>, AdapterError> {
        let rows = self.prefix.len();
        let length = self.prefix.first().map(Vec::len).unwrap_or(0);
        let ids = Array2::from_shape_fn((rows, length), |(r, c)| i64::from(self.prefix[r][c]));
        let states = self
            .encoder_states
            .clone()
            .ok_or_else(|| AdapterError::Config {
                model: self.model.model.clone(),
                reason: "the decoder ran before the encoder".to_owned(),
            })?;
        let inputs = Inputs::new()
            .with("input_ids", ids)
            .with("encoder_hidden_states", states)
            .with("encoder_attention_mask", self.encoder_mask.clone());
        let mut outputs = self.model.decoder.run_blocking(inputs)?;
        last_logits(&self.model.model, &mut outputs)
    }
}

impl Stepper for UncachedDecoder<'_> {
    fn start(&mut self, prompts: &[Vec<u32>]) -> Result<Array2<f32>, AdapterError> {
        let rows = prompts.len();
        // The encoder is bidirectional and masked, so right padding is exact.
        let longest = prompts.iter().map(Vec::len).max().unwrap_or(0).max(1);
        let mut ids = Array2::from_elem((rows, longest), i64::from(self.model.pad));
        let mut mask = Array2::<i64>::zeros((rows, longest));
        for (row, prompt) in prompts.iter().enumerate() {
            for (i, &token) in prompt.iter().enumerate() {
                ids[[row, i]] = i64::from(token);
                mask[[row, i]] = 1;
            }
        }
        let mut outputs = self.model.encoder.run_blocking(
            Inputs::new()
                .with("input_ids", ids)
                .with("attention_mask", mask.clone()),
        )?;
        self.encoder_states = Some(outputs.take::<f32>("last_hidden_state")?);
        self.encoder_mask = mask;
        self.prefix = vec![vec![self.model.decoder_start]; rows];
        self.decode()
    }

    fn step(&mut self, tokens: &[u32]) -> Result<Array2<f32>, AdapterError> {
        self.prefix
            .iter_mut()
            .zip(tokens)
            .for_each(|(prefix, &token)| prefix.push(token));
        self.decode()
    }
}
