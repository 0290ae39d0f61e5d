//! Text inputs of the vision-language models: `tokenizer.json` with the catalog's padding and
//! truncation, turned into `input_ids` and `attention_mask` tensors (int64).

use modelmux_registry::Padding;
use ndarray::Array2;
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

use crate::context::LoadContext;
use crate::error::AdapterError;

/// A tokenizer set up as the catalog says.
#[derive(Debug)]
pub(crate) struct TextInputs {
    model: String,
    tokenizer: Tokenizer,
}

impl TextInputs {
    /// `params.tokenizer.file` (default `tokenizer.json`), padded and truncated to
    /// `max_length` as the catalog says; the padding token comes from the catalog, else the
    /// export's `tokenizer_config.json`, else the tokenizer's own padding setting.
    pub(crate) fn load(context: &LoadContext<'_>) -> Result<Self, AdapterError> {
        let params = context.spec.params.tokenizer.clone().unwrap_or_default();
        let path = context.file(params.file.as_deref().unwrap_or("tokenizer.json"))?;
        let bad = |reason: String| AdapterError::BadFile {
            model: context.model(),
            path: path.clone(),
            reason,
        };
        let mut tokenizer = Tokenizer::from_file(&path).map_err(|e| bad(e.to_string()))?;
        let max_length = params.max_length.map(|m| m as usize);
        if params.truncation.unwrap_or(true)
            && let Some(max_length) = max_length
        {
            tokenizer
                .with_truncation(Some(TruncationParams {
                    max_length,
                    ..TruncationParams::default()
                }))
                .map_err(|e| bad(e.to_string()))?;
        }
        let pad_token = params
            .pad_token
            .clone()
            .or_else(|| config_pad_token(context))
            .or_else(|| tokenizer.get_padding().map(|p| p.pad_token.clone()));
        let pad_id = pad_token
            .as_deref()
            .and_then(|t| tokenizer.token_to_id(t))
            .unwrap_or(0);
        let strategy = match (params.padding, max_length) {
            (Some(Padding::MaxLength), Some(n)) => PaddingStrategy::Fixed(n),
            _ => PaddingStrategy::BatchLongest,
        };
        tokenizer.with_padding(Some(PaddingParams {
            strategy,
            pad_id,
            pad_token: pad_token.unwrap_or_else(|| "[PAD]".into()),
            ..PaddingParams::default()
        }));
        Ok(Self {
            model: context.model(),
            tokenizer,
        })
    }

    /// `input_ids` and `attention_mask`, [texts, length].
    pub(crate) fn encode(
        &self,
        texts: &[String],
    ) -> Result<(Array2<i64>, Array2<i64>), AdapterError> {
        if texts.is_empty() {
            return Err(AdapterError::InvalidRequest {
                model: self.model.clone(),
                reason: "no texts".into(),
            });
        }
        let encodings = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| AdapterError::InvalidRequest {
                model: self.model.clone(),
                reason: e.to_string(),
            })?;
        let length = encodings
            .iter()
            .map(|e| e.get_ids().len())
            .max()
            .unwrap_or(0);
        let mut ids = Array2::<i64>::zeros((texts.len(), length));
        let mut mask = Array2::<i64>::zeros((texts.len(), length));
        for (row, encoding) in encodings.iter().enumerate() {
            for (col, (&id, &m)) in encoding
                .get_ids()
                .iter()
                .zip(encoding.get_attention_mask())
                .enumerate()
            {
                ids[[row, col]] = i64::from(id);
                mask[[row, col]] = i64::from(m);
            }
        }
        Ok((ids, mask))
    }

    /// Token ids of one text with the tokenizer's special tokens.
    pub(crate) fn ids(&self, text: &str) -> Result<Vec<i64>, AdapterError> {
        let encoding =
            self.tokenizer
                .encode(text, true)
                .map_err(|e| AdapterError::InvalidRequest {
                    model: self.model.clone(),
                    reason: e.to_string(),
                })?;
        Ok(encoding
            .get_ids()
            .iter()
            .zip(encoding.get_attention_mask())
            .filter(|(_, m)| **m == 1)
            .map(|(&id, _)| i64::from(id))
            .collect())
    }

    /// Text of token ids, special tokens left out.
    pub(crate) fn decode(&self, ids: &[i64]) -> Result<String, AdapterError> {
        let ids: Vec<u32> = ids.iter().filter_map(|&i| u32::try_from(i).ok()).collect();
        self.tokenizer
            .decode(&ids, true)
            .map_err(|e| AdapterError::InvalidRequest {
                model: self.model.clone(),
                reason: e.to_string(),
            })
    }
}

fn config_pad_token(context: &LoadContext<'_>) -> Option<String> {
    let text = std::fs::read_to_string(context.export_dir.join("tokenizer_config.json")).ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    match json.get("pad_token")? {
        serde_json::Value::String(s) => Some(s.clone()),
        other => other.get("content")?.as_str().map(str::to_owned),
    }
}
