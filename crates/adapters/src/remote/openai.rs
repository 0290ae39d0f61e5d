//! The OpenAI endpoints behind the family traits: images (`TextToImage`), chat completions
//! with streaming (`TextGenerator`) and embeddings (`TextEncoder`).

use std::ops::ControlFlow;
use std::time::Instant;

use base64::Engine;
use serde_json::{Value, json};

use super::client::{ApiClient, RemoteError};
use crate::diffusion::{
    Control, GeneratedImages, ImageDefaults, ImageRequest, Progress, ResolvedRequest, TextToImage,
    Timings,
};
use crate::error::AdapterError;
use crate::lm::{
    FinishReason, Generation, GenerationOptions, Prompt, TextEncoder, TextGenerator, TokenEvent,
};

fn remote(model: &str, error: RemoteError) -> AdapterError {
    AdapterError::RemoteApi {
        model: model.to_owned(),
        error,
    }
}

fn malformed(model: &str, what: &str) -> AdapterError {
    remote(
        model,
        RemoteError::MalformedResponse {
            message: what.to_owned(),
        },
    )
}

/// DALL-E (or a compatible `/images/generations` endpoint).
#[derive(Debug)]
pub struct RemoteImages {
    pub(crate) model: String,
    pub(crate) api_model: String,
    pub(crate) client: ApiClient,
    pub(crate) defaults: ImageDefaults,
    /// `quality` and other fields sent as they are (from the catalog's `params.extra`).
    pub(crate) extra: serde_json::Map<String, Value>,
}

impl TextToImage for RemoteImages {
    fn defaults(&self) -> ImageDefaults {
        self.defaults.clone()
    }

    fn generate(
        &self,
        request: &ImageRequest,
        progress: &mut dyn FnMut(Progress) -> Control,
    ) -> Result<GeneratedImages, AdapterError> {
        let started = Instant::now();
        let invalid = |reason: String| AdapterError::InvalidRequest {
            model: self.model.clone(),
            reason,
        };
        let width = request.width.unwrap_or(self.defaults.width);
        let height = request.height.unwrap_or(self.defaults.height);
        if width == 0 || height == 0 || !width.is_multiple_of(8) || !height.is_multiple_of(8) {
            return Err(invalid(format!(
                "{width}×{height}: width and height must be positive multiples of 8"
            )));
        }
        if request.prompt.trim().is_empty() {
            return Err(invalid("the prompt is empty".into()));
        }
        if request.init_image.is_some() {
            return Err(invalid(
                "img2img is not supported by the images API adapter".into(),
            ));
        }
        let batch = request.batch_count.unwrap_or(1);
        if !(1..=10).contains(&batch) {
            return Err(invalid(format!("batch count {batch} is not in 1..=10")));
        }
        if progress(Progress {
            step: 0,
            total: 1,
            timestep: 0.0,
        }) == Control::Cancel
        {
            return Err(AdapterError::Cancelled {
                model: self.model.clone(),
            });
        }
        let mut body = json!({
            "model": self.api_model,
            "prompt": request.prompt,
            "n": batch,
            "size": format!("{width}x{height}"),
            "response_format": "b64_json",
        });
        if let Some(map) = body.as_object_mut() {
            for (k, v) in &self.extra {
                map.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
        let response = self
            .client
            .post_json("images/generations", &body)
            .map_err(|e| remote(&self.model, e))?;
        let data = response
            .get("data")
            .and_then(Value::as_array)
            .ok_or_else(|| malformed(&self.model, "no `data` array in the images response"))?;
        let mut images = Vec::with_capacity(data.len());
        for item in data {
            let b64 = item
                .get("b64_json")
                .and_then(Value::as_str)
                .ok_or_else(|| malformed(&self.model, "an image without `b64_json`"))?;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_err(|e| malformed(&self.model, &format!("bad base64: {e}")))?;
            let (image, _) = crate::diffusion::decode_png(&bytes)
                .map_err(|e| malformed(&self.model, &format!("bad PNG: {e}")))?;
            images.push(image);
        }
        if images.is_empty() {
            return Err(malformed(&self.model, "the images response has no image"));
        }
        let total = started.elapsed();
        Ok(GeneratedImages {
            images,
            seed: request.seed.unwrap_or(0),
            request: ResolvedRequest {
                model: self.model.clone(),
                prompt: request.prompt.clone(),
                negative_prompt: None,
                width,
                height,
                steps: 0,
                guidance_scale: 0.0,
                scheduler: None,
                seed: request.seed.unwrap_or(0),
                batch_count: batch,
                strength: None,
                params: request.params.clone(),
            },
            timings: Timings {
                total,
                ..Timings::default()
            },
        })
    }
}

/// Chat completions as a [`TextGenerator`]: each prompt is one user message, answers stream
/// as server-sent events. Remote tokens have no ids here: `tokens` stays empty and each event's
/// `token` is 0.
#[derive(Debug)]
pub struct RemoteChat {
    pub(crate) model: String,
    pub(crate) api_model: String,
    pub(crate) client: ApiClient,
    pub(crate) max_new_tokens: Option<u32>,
    pub(crate) temperature: Option<f64>,
    pub(crate) top_p: Option<f64>,
}

impl RemoteChat {
    fn body(&self, text: &str, options: &GenerationOptions) -> Value {
        let mut body = json!({
            "model": self.api_model,
            "messages": [{"role": "user", "content": text}],
            "stream": true,
        });
        let Some(map) = body.as_object_mut() else {
            return body;
        };
        if let Some(n) = options
            .max_new_tokens
            .map(|n| n as u64)
            .or(self.max_new_tokens.map(u64::from))
        {
            map.insert("max_tokens".into(), json!(n));
        }
        if let Some(t) = options.temperature.map(f64::from).or(self.temperature) {
            map.insert("temperature".into(), json!(t));
        }
        if let Some(p) = options.top_p.map(f64::from).or(self.top_p) {
            map.insert("top_p".into(), json!(p));
        }
        if !options.stop_sequences.is_empty() {
            map.insert("stop".into(), json!(options.stop_sequences));
        }
        if let Some(seed) = options.seed {
            map.insert("seed".into(), json!(seed));
        }
        body
    }
}

impl TextGenerator for RemoteChat {
    fn generate_stream(
        &self,
        prompts: &[Prompt],
        options: &GenerationOptions,
        on_token: &mut dyn FnMut(TokenEvent<'_>) -> ControlFlow<()>,
    ) -> Result<Vec<Generation>, AdapterError> {
        if options.top_k.is_some() || options.repetition_penalty.is_some_and(|p| p != 1.0) {
            return Err(AdapterError::InvalidRequest {
                model: self.model.clone(),
                reason: "top_k and repetition_penalty are not chat-completions parameters".into(),
            });
        }
        let mut results = Vec::with_capacity(prompts.len());
        for (index, prompt) in prompts.iter().enumerate() {
            let Prompt::Text(text) = prompt else {
                return Err(AdapterError::InvalidRequest {
                    model: self.model.clone(),
                    reason: "a remote chat model takes text prompts, not token ids".into(),
                });
            };
            let mut stream = self
                .client
                .post_stream("chat/completions", &self.body(text, options))
                .map_err(|e| remote(&self.model, e))?;
            let mut out = String::new();
            let mut finish = FinishReason::Length;
            while let Some(data) = stream.next_data().map_err(|e| remote(&self.model, e))? {
                let chunk: Value = serde_json::from_str(&data).map_err(|e| {
                    malformed(&self.model, &format!("a stream chunk is not JSON: {e}"))
                })?;
                if let Some(message) = chunk.pointer("/error/message").and_then(Value::as_str) {
                    return Err(remote(
                        &self.model,
                        RemoteError::Server {
                            status: 200,
                            message: message.to_owned(),
                            attempts: 1,
                        },
                    ));
                }
                let choice = chunk.pointer("/choices/0");
                if let Some(piece) = choice
                    .and_then(|c| c.pointer("/delta/content"))
                    .and_then(Value::as_str)
                    .filter(|s| !s.is_empty())
                {
                    out.push_str(piece);
                    let event = TokenEvent {
                        index,
                        token: 0,
                        text: piece,
                    };
                    if on_token(event).is_break() {
                        finish = FinishReason::Cancelled;
                        break;
                    }
                }
                match choice
                    .and_then(|c| c.get("finish_reason"))
                    .and_then(Value::as_str)
                {
                    Some("stop") => finish = FinishReason::EndOfSequence,
                    Some("length") => finish = FinishReason::Length,
                    Some(_) | None => {}
                }
            }
            if finish == FinishReason::EndOfSequence
                && options
                    .stop_sequences
                    .iter()
                    .any(|s| !s.is_empty() && out.ends_with(s.as_str()))
            {
                finish = FinishReason::StopSequence;
            }
            results.push(Generation {
                text: out,
                tokens: Vec::new(),
                finish_reason: finish,
            });
        }
        Ok(results)
    }
}

/// Embeddings as a [`TextEncoder`].
#[derive(Debug)]
pub struct RemoteEmbeddings {
    pub(crate) model: String,
    pub(crate) api_model: String,
    pub(crate) client: ApiClient,
    pub(crate) dimensions: usize,
}

impl TextEncoder for RemoteEmbeddings {
    fn dimensions(&self) -> usize {
        self.dimensions
    }

    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, AdapterError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let body = json!({"model": self.api_model, "input": texts, "encoding_format": "float"});
        let response = self
            .client
            .post_json("embeddings", &body)
            .map_err(|e| remote(&self.model, e))?;
        let data = response
            .get("data")
            .and_then(Value::as_array)
            .ok_or_else(|| malformed(&self.model, "no `data` array in the embeddings response"))?;
        let mut vectors: Vec<Option<Vec<f32>>> = vec![None; texts.len()];
        for (position, item) in data.iter().enumerate() {
            let index = item
                .get("index")
                .and_then(Value::as_u64)
                .map(|i| i as usize)
                .unwrap_or(position);
            let vector: Vec<f32> = item
                .get("embedding")
                .and_then(Value::as_array)
                .ok_or_else(|| malformed(&self.model, "an item without `embedding`"))?
                .iter()
                .map(|v| v.as_f64().map(|x| x as f32))
                .collect::<Option<_>>()
                .ok_or_else(|| malformed(&self.model, "an embedding with a non-number"))?;
            if self.dimensions != 0 && vector.len() != self.dimensions {
                return Err(malformed(
                    &self.model,
                    &format!(
                        "an embedding of {} values, expected {}",
                        vector.len(),
                        self.dimensions
                    ),
                ));
            }
            let slot = vectors
                .get_mut(index)
                .ok_or_else(|| malformed(&self.model, "an embedding index out of range"))?;
            *slot = Some(vector);
        }
        vectors
            .into_iter()
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| malformed(&self.model, "fewer embeddings than texts"))
    }
}

/// Known output sizes of OpenAI's embedding models (the catalog's `embedding.dimensions` wins).
pub(crate) fn known_dimensions(api_model: &str) -> usize {
    match api_model {
        "text-embedding-3-large" => 3072,
        "text-embedding-3-small" | "text-embedding-ada-002" => 1536,
        _ => 0,
    }
}
