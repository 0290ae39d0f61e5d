//! The model's `tokenizer.json` through the `tokenizers` crate, with the catalog's length limit.
//!
//! Padding is done by the adapters, not by the tokenizer: encoders pad on the right and decoders
//! on the left, and both need the real lengths to build their masks.

use std::path::Path;

use tokenizers::{Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

use crate::context::LoadContext;
use crate::error::AdapterError;

/// A tokenizer with the catalog's `max_length` and truncation settings applied.
#[derive(Debug, Clone)]
pub struct TextTokenizer {
    inner: Tokenizer,
    model: String,
    max_length: Option<usize>,
    truncate: bool,
    pad_id: u32,
}

/// One text's tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    pub ids: Vec<u32>,
    pub type_ids: Vec<u32>,
}

impl TextTokenizer {
    /// Reads the tokenizer named by the catalog (`tokenizer.json` by default) from the export.
    pub fn load(context: &LoadContext<'_>) -> Result<Self, AdapterError> {
        let params = context.spec.params.tokenizer.clone().unwrap_or_default();
        let file = params.file.as_deref().unwrap_or("tokenizer.json");
        let path = context.file(file)?;
        let mut tokenizer = Self::from_file(&context.model(), &path)?;
        tokenizer.max_length = params.max_length.map(|n| n as usize);
        tokenizer.truncate = params.truncation.unwrap_or(false);
        if let Some(pad) = params.pad_token.as_deref() {
            tokenizer.pad_id =
                tokenizer
                    .inner
                    .token_to_id(pad)
                    .ok_or_else(|| AdapterError::Config {
                        model: context.model(),
                        reason: format!(
                            "params.tokenizer.pad_token {pad:?} is not in {}",
                            path.display()
                        ),
                    })?;
        }
        tokenizer.configure()?;
        Ok(tokenizer)
    }

    /// Reads `path` with no length limit; `model` names the model in errors.
    pub fn from_file(model: &str, path: &Path) -> Result<Self, AdapterError> {
        let inner = Tokenizer::from_file(path).map_err(|e| AdapterError::BadFile {
            model: model.to_owned(),
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        // The file's own padding setting is ignored (see the module comment); its pad token is
        // the default padding id, then the usual names, then 0.
        let pad_id = inner
            .get_padding()
            .map(|p| p.pad_id)
            .or_else(|| {
                ["[PAD]", "<pad>", "<|endoftext|>"]
                    .iter()
                    .find_map(|t| inner.token_to_id(t))
            })
            .unwrap_or(0);
        let mut tokenizer = Self {
            inner,
            model: model.to_owned(),
            max_length: None,
            truncate: false,
            pad_id,
        };
        tokenizer.configure()?;
        Ok(tokenizer)
    }

    fn configure(&mut self) -> Result<(), AdapterError> {
        self.inner.with_padding(None);
        // Truncation is done by the tokenizer so the special tokens it adds are kept, as
        // transformers does with `truncation=True`.
        let truncation = match (self.truncate, self.max_length) {
            (true, Some(max_length)) => Some(TruncationParams {
                direction: TruncationDirection::Right,
                max_length,
                strategy: TruncationStrategy::LongestFirst,
                stride: 0,
            }),
            _ => None,
        };
        self.inner
            .with_truncation(truncation)
            .map_err(|e| AdapterError::Config {
                model: self.model.clone(),
                reason: format!("tokenizer truncation: {e}"),
            })?;
        Ok(())
    }

    /// The id used for padding.
    pub fn pad_id(&self) -> u32 {
        self.pad_id
    }

    /// The longest sequence the catalog allows, special tokens included.
    pub fn max_length(&self) -> Option<usize> {
        self.max_length
    }

    /// The id of `token`, when the vocabulary has it.
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// Tokenizes every text; a text over the limit is an error unless truncation is on.
    pub fn encode_batch(
        &self,
        texts: &[&str],
        add_special_tokens: bool,
    ) -> Result<Vec<Encoded>, AdapterError> {
        let encodings = self
            .inner
            .encode_batch_fast(texts.to_vec(), add_special_tokens)
            .map_err(|e| self.invalid(format!("cannot tokenize: {e}")))?;
        let mut out = Vec::with_capacity(encodings.len());
        for (i, encoding) in encodings.into_iter().enumerate() {
            if let Some(max) = self.max_length
                && encoding.len() > max
            {
                return Err(self.invalid(format!(
                    "text {i} has {} tokens, more than the model's {max} (the catalog does not allow truncation)",
                    encoding.len()
                )));
            }
            out.push(Encoded {
                ids: encoding.get_ids().to_vec(),
                type_ids: encoding.get_type_ids().to_vec(),
            });
        }
        Ok(out)
    }

    /// The text of `ids`.
    pub fn decode(&self, ids: &[u32], skip_special_tokens: bool) -> Result<String, AdapterError> {
        self.inner
            .decode(ids, skip_special_tokens)
            .map_err(|e| self.invalid(format!("cannot decode tokens: {e}")))
    }

    fn invalid(&self, reason: String) -> AdapterError {
        AdapterError::InvalidRequest {
            model: self.model.clone(),
            reason,
        }
    }
}
