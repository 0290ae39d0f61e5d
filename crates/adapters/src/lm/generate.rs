//! The generation loop both generators share: choosing tokens, end of sequence, stop sequences,
//! streaming, limits. The model-specific part is a [`Stepper`] that turns tokens into logits.

use std::ops::ControlFlow;

use modelmux_registry::GenerationDefaults;
use ndarray::Array2;

use crate::error::AdapterError;
use crate::lm::chat::{ChatMessage, ChatTemplate};
use crate::lm::sampling::Sampler;
use crate::lm::tokenize::TextTokenizer;
use crate::lm::{FinishReason, Generation, GenerationOptions, Prompt, TokenEvent};

/// New tokens when neither the request nor the catalog says.
const DEFAULT_MAX_NEW_TOKENS: usize = 128;

/// A model's forward pass, one step at a time; both methods return next-token logits
/// `[batch, vocab]`.
pub(crate) trait Stepper {
    /// Reads the prompts (one per row, unpadded).
    fn start(&mut self, prompts: &[Vec<u32>]) -> Result<Array2<f32>, AdapterError>;
    /// Appends one token per row (finished rows get the padding token).
    fn step(&mut self, tokens: &[u32]) -> Result<Array2<f32>, AdapterError>;
}

/// What the loop needs to know about the model.
#[derive(Debug, Clone)]
pub(crate) struct LoopConfig<'a> {
    pub(crate) model: &'a str,
    pub(crate) tokenizer: &'a TextTokenizer,
    pub(crate) defaults: Option<&'a GenerationDefaults>,
    pub(crate) eos: &'a [u32],
    pub(crate) pad: u32,
    /// Tokens the model can see in total (prompt + new), when it has a limit.
    pub(crate) context_length: Option<usize>,
    /// The tokenizer's chat template, if any.
    pub(crate) chat: Option<&'a ChatTemplate>,
    /// Whether text prompts go through the chat template (the catalog's
    /// `generation.chat_template`).
    pub(crate) chat_by_default: bool,
}

impl LoopConfig<'_> {
    fn invalid(&self, reason: impl Into<String>) -> AdapterError {
        AdapterError::InvalidRequest {
            model: self.model.to_owned(),
            reason: reason.into(),
        }
    }

    /// Token ids of every prompt.
    pub(crate) fn tokenize(&self, prompts: &[Prompt]) -> Result<Vec<Vec<u32>>, AdapterError> {
        let mut out = Vec::with_capacity(prompts.len());
        for prompt in prompts {
            let ids = match prompt {
                Prompt::Tokens(ids) => ids.clone(),
                Prompt::Chat(messages) => self.chat_ids(messages)?,
                Prompt::Text(text) if self.chat_by_default && self.chat.is_some() => {
                    self.chat_ids(&[ChatMessage::new("user", text.as_str())])?
                }
                Prompt::Text(text) => self.encode(text, true)?,
            };
            out.push(ids);
        }
        Ok(out)
    }
}

impl LoopConfig<'_> {
    fn encode(&self, text: &str, add_special_tokens: bool) -> Result<Vec<u32>, AdapterError> {
        Ok(self
            .tokenizer
            .encode_batch(&[text], add_special_tokens)?
            .pop()
            .map(|e| e.ids)
            .unwrap_or_default())
    }

    /// A conversation's ids: the rendered template already holds its special tokens, so none
    /// are added (as `apply_chat_template` tokenizes).
    fn chat_ids(&self, messages: &[ChatMessage]) -> Result<Vec<u32>, AdapterError> {
        let template = self
            .chat
            .ok_or_else(|| self.invalid("the model's tokenizer has no chat template"))?;
        self.encode(&template.render(messages)?, false)
    }
}

/// One prompt's progress.
#[derive(Debug)]
struct Row {
    sampler: Sampler,
    history: Vec<u32>,
    tokens: Vec<u32>,
    /// Text already streamed.
    streamed: String,
    /// Where a stop sequence starts in the new text.
    stop_at: Option<usize>,
    finish: Option<FinishReason>,
}

/// Generates for every prompt together until each row ends or the limit is reached.
pub(crate) fn generate(
    config: &LoopConfig<'_>,
    stepper: &mut dyn Stepper,
    prompts: Vec<Vec<u32>>,
    options: &GenerationOptions,
    on_token: &mut dyn FnMut(TokenEvent<'_>) -> ControlFlow<()>,
) -> Result<Vec<Generation>, AdapterError> {
    if prompts.is_empty() {
        return Ok(Vec::new());
    }
    if options.stop_sequences.iter().any(String::is_empty) {
        return Err(config.invalid("a stop sequence is empty"));
    }
    let longest = prompts.iter().map(Vec::len).max().unwrap_or(0);
    let mut max_new = options
        .max_new_tokens
        .or(config
            .defaults
            .and_then(|d| d.max_new_tokens)
            .map(|n| n as usize))
        .unwrap_or(DEFAULT_MAX_NEW_TOKENS);
    if let Some(context) = config.context_length {
        if longest >= context {
            return Err(config.invalid(format!(
                "the prompt has {longest} tokens; the model sees at most {context}"
            )));
        }
        max_new = max_new.min(context - longest);
    }
    let mut rows = Vec::with_capacity(prompts.len());
    for (index, prompt) in prompts.iter().enumerate() {
        rows.push(Row {
            sampler: Sampler::new(options, config.defaults, index)
                .map_err(|reason| config.invalid(reason))?,
            history: prompt.clone(),
            tokens: Vec::new(),
            streamed: String::new(),
            stop_at: None,
            finish: None,
        });
    }
    if max_new == 0 {
        return finish(config, rows);
    }
    let mut logits = stepper.start(&prompts)?;
    for step in 0..max_new {
        let mut next = vec![config.pad; rows.len()];
        for (index, row) in rows.iter_mut().enumerate() {
            if row.finish.is_some() {
                continue;
            }
            let mut scores = logits.row(index).to_vec();
            if row.tokens.len() < options.min_new_tokens.unwrap_or(0) {
                for &eos in config.eos {
                    if let Some(score) = scores.get_mut(eos as usize) {
                        *score = f32::NEG_INFINITY;
                    }
                }
            }
            let token = row.sampler.choose(&mut scores, &row.history);
            next[index] = token;
            row.tokens.push(token);
            row.history.push(token);
            if config.eos.contains(&token) {
                row.finish = Some(FinishReason::EndOfSequence);
            }
            let last = row.finish.is_some() || step + 1 == max_new;
            let delta = advance_text(config, row, &options.stop_sequences, last)?;
            let event = TokenEvent {
                index,
                token,
                text: &delta,
            };
            if on_token(event).is_break() && row.finish.is_none() {
                row.finish = Some(FinishReason::Cancelled);
            }
        }
        if step + 1 == max_new || rows.iter().all(|r| r.finish.is_some()) {
            break;
        }
        logits = stepper.step(&next)?;
    }
    finish(config, rows)
}

/// Decodes the row's new tokens and returns the text not streamed yet, holding back an
/// incomplete UTF-8 character (decoded as U+FFFD) and anything from a stop sequence on, unless
/// this is the row's `last` token.
fn advance_text(
    config: &LoopConfig<'_>,
    row: &mut Row,
    stops: &[String],
    last: bool,
) -> Result<String, AdapterError> {
    let text = config.tokenizer.decode(&row.tokens, true)?;
    if let Some(at) = stops.iter().filter_map(|s| text.find(s.as_str())).min() {
        row.stop_at = Some(at);
        row.finish = Some(FinishReason::StopSequence);
        let visible = &text[..at];
        let delta = visible
            .strip_prefix(row.streamed.as_str())
            .unwrap_or("")
            .to_owned();
        row.streamed = visible.to_owned();
        return Ok(delta);
    }
    if !text.starts_with(row.streamed.as_str()) || (!last && text.ends_with('\u{FFFD}')) {
        return Ok(String::new());
    }
    // A stop sequence may be completed by a later token: hold back the longest tail of the
    // text that starts one, so no streamed text has to be taken back.
    let pending: &[String] = if last { &[] } else { stops };
    let held = pending
        .iter()
        .flat_map(|stop| {
            (1..stop.len())
                .filter(|&n| stop.is_char_boundary(n) && text.ends_with(&stop[..n]))
                .max()
        })
        .max()
        .unwrap_or(0);
    let ready = &text[..text.len() - held];
    if ready.len() <= row.streamed.len() {
        return Ok(String::new());
    }
    let delta = ready[row.streamed.len()..].to_owned();
    row.streamed = ready.to_owned();
    Ok(delta)
}

fn finish(config: &LoopConfig<'_>, rows: Vec<Row>) -> Result<Vec<Generation>, AdapterError> {
    rows.into_iter()
        .map(|row| {
            let mut text = config.tokenizer.decode(&row.tokens, true)?;
            if let Some(at) = row.stop_at {
                text.truncate(at);
            }
            Ok(Generation {
                text,
                tokens: row.tokens,
                finish_reason: row.finish.unwrap_or(FinishReason::Length),
            })
        })
        .collect()
}
