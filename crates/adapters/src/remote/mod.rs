//! The `remote` family: the same traits as the local adapters over an OpenAI-compatible HTTP API.
//!
//! - `dall-e` → [`RemoteImages`], a [`TextToImage`](crate::diffusion::TextToImage)
//!   (`/images/generations`, images returned as base64 PNG).
//! - `openai-chat` → [`RemoteChat`], a [`TextGenerator`](crate::lm::TextGenerator)
//!   (`/chat/completions`, streamed).
//! - `openai-embedding` → [`RemoteEmbeddings`], a [`TextEncoder`](crate::lm::TextEncoder)
//!   (`/embeddings`).
//!
//! The catalog entry's source is `openai:<api model>`; `params.extra` may set `base_url` (else
//! `$OPENAI_BASE_URL`, else `https://api.openai.com/v1`), `api_key_env` (the variable holding
//! the key, `OPENAI_API_KEY` by default: the key is only ever read from the environment),
//! `timeout_s`, `max_retries`, `initial_backoff_ms`, `max_backoff_s`; for images `size`
//! (`1024x1024`) and any other field of the request body (e.g. `quality`).

mod client;
mod openai;

use std::sync::Arc;
use std::time::Duration;

use modelmux_registry::{Architecture, ModelSource};
use serde_json::Value;

use crate::context::LoadContext;
use crate::diffusion::{ImageDefaults, TextToImage};
use crate::error::AdapterError;
use crate::lm::{TextEncoder, TextGenerator};
use crate::load::Loaded;

pub use self::client::{ApiClient, ApiKey, RemoteConfig, RemoteError};
pub use self::openai::{RemoteChat, RemoteEmbeddings, RemoteImages};

/// `params.extra` keys that configure the client rather than the request body.
const CLIENT_KEYS: [&str; 7] = [
    "base_url",
    "api_key_env",
    "timeout_s",
    "max_retries",
    "initial_backoff_ms",
    "max_backoff_s",
    "size",
];

/// The client configuration a catalog entry describes (see the module documentation).
pub fn config_for(context: &LoadContext<'_>) -> Result<RemoteConfig, AdapterError> {
    let extra = &context.spec.params.extra;
    let bad = |key: &str| AdapterError::Config {
        model: context.model(),
        reason: format!("params.extra.{key} has the wrong type"),
    };
    let mut config = RemoteConfig::default();
    match extra.get("base_url") {
        Some(v) => config.base_url = v.as_str().ok_or_else(|| bad("base_url"))?.to_owned(),
        None => {
            if let Ok(url) = std::env::var("OPENAI_BASE_URL")
                && !url.trim().is_empty()
            {
                config.base_url = url.trim().to_owned();
            }
        }
    }
    if let Some(v) = extra.get("api_key_env") {
        config.api_key_env = v.as_str().ok_or_else(|| bad("api_key_env"))?.to_owned();
    }
    let seconds = |key: &str, scale: f64| -> Result<Option<Duration>, AdapterError> {
        extra
            .get(key)
            .map(|v| {
                v.as_f64()
                    .filter(|s| s.is_finite() && *s >= 0.0)
                    .map(|s| Duration::from_secs_f64(s * scale))
                    .ok_or_else(|| bad(key))
            })
            .transpose()
    };
    if let Some(d) = seconds("timeout_s", 1.0)? {
        config.timeout = d;
    }
    if let Some(d) = seconds("initial_backoff_ms", 0.001)? {
        config.initial_backoff = d;
    }
    if let Some(d) = seconds("max_backoff_s", 1.0)? {
        config.max_backoff = d;
    }
    if let Some(v) = extra.get("max_retries") {
        config.max_retries = v.as_u64().ok_or_else(|| bad("max_retries"))? as u32;
    }
    Ok(config)
}

/// Loads the `remote` adapter for `context.spec`'s architecture.
pub fn load(context: &LoadContext<'_>) -> Result<Loaded, AdapterError> {
    let model = context.model();
    let ModelSource::OpenAi { model: api_model } = &context.spec.source else {
        return Err(AdapterError::Config {
            model,
            reason: format!(
                "a remote model's source is `openai:<model>`, not `{}`",
                context.spec.source
            ),
        });
    };
    let api_model = api_model.clone();
    let client = ApiClient::new(config_for(context)?).map_err(|error| AdapterError::RemoteApi {
        model: model.clone(),
        error,
    })?;
    let extra = &context.spec.params.extra;
    match context.spec.architecture {
        Architecture::DallE => {
            let (width, height) = match extra.get("size").and_then(Value::as_str) {
                Some(size) => parse_size(size).ok_or_else(|| AdapterError::Config {
                    model: model.clone(),
                    reason: format!("params.extra.size {size} is not WIDTHxHEIGHT"),
                })?,
                None => (1024, 1024),
            };
            let body_extra = extra
                .iter()
                .filter(|(k, _)| !CLIENT_KEYS.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            let object: Arc<dyn TextToImage> = Arc::new(RemoteImages {
                model,
                api_model,
                client,
                defaults: ImageDefaults {
                    width,
                    height,
                    steps: 0,
                    guidance_scale: 0.0,
                    scheduler: None,
                    text_conditioned: true,
                },
                extra: body_extra,
            });
            Ok(Loaded::new(object, || {}))
        }
        Architecture::OpenaiChat => {
            let generation = context.spec.params.generation.clone().unwrap_or_default();
            let object: Arc<dyn TextGenerator> = Arc::new(RemoteChat {
                model,
                api_model,
                client,
                max_new_tokens: generation.max_new_tokens,
                temperature: generation.temperature,
                top_p: generation.top_p,
            });
            Ok(Loaded::new(object, || {}))
        }
        Architecture::OpenaiEmbedding => {
            let dimensions = context
                .spec
                .params
                .embedding
                .as_ref()
                .and_then(|e| e.dimensions)
                .map(|d| d as usize)
                .unwrap_or_else(|| openai::known_dimensions(&api_model));
            let object: Arc<dyn TextEncoder> = Arc::new(RemoteEmbeddings {
                model,
                api_model,
                client,
                dimensions,
            });
            Ok(Loaded::new(object, || {}))
        }
        _ => Err(AdapterError::Unsupported {
            model,
            architecture: context.spec.architecture.to_string(),
        }),
    }
}

/// `1024x1024` → (1024, 1024).
fn parse_size(size: &str) -> Option<(u32, u32)> {
    let (w, h) = size.split_once(['x', 'X', '×'])?;
    Some((w.trim().parse().ok()?, h.trim().parse().ok()?))
}
