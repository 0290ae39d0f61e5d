//! OpenAI-compatible routes over the same models: `/v1/models`, `/v1/embeddings` (text
//! encoders, image–text encoders' text tower), `/v1/chat/completions` (text generators, streamed
//! as server-sent events) and `/v1/images/generations` (text-to-image models, PNG as base64).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use modelmux::adapters::diffusion::{ImageRequest, no_progress};
use modelmux::adapters::lm::{ChatMessage, GenerationOptions, Prompt};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::error::ApiError;
use crate::models::{self, Served};

fn created() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Parses a JSON body into `T`, a 400 with serde's message otherwise.
fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("malformed request: {e}")))
}

fn respond(result: Result<Response, ApiError>) -> Response {
    result.unwrap_or_else(IntoResponse::into_response)
}

pub(crate) async fn models(State(state): State<Arc<AppState>>) -> Response {
    let catalog = state.manager.catalog();
    let mut data = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for spec in catalog.models() {
        // An id names its newest version; ids with several versions also list each one.
        if seen.insert(spec.id.clone()) {
            data.push(
                json!({ "id": spec.id, "object": "model", "created": 0, "owned_by": "modelmux" }),
            );
        }
        if catalog.versions(&spec.id).len() > 1 {
            data.push(json!({ "id": spec.key(), "object": "model", "created": 0, "owned_by": "modelmux" }));
        }
    }
    Json(json!({ "object": "list", "data": data })).into_response()
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum EmbeddingInput {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Deserialize)]
struct EmbeddingsRequest {
    model: String,
    input: EmbeddingInput,
    #[serde(default)]
    encoding_format: Option<String>,
}

pub(crate) async fn embeddings(State(state): State<Arc<AppState>>, body: Bytes) -> Response {
    respond(run_embeddings(&state, &body).await)
}

async fn run_embeddings(state: &AppState, body: &[u8]) -> Result<Response, ApiError> {
    let request: EmbeddingsRequest = parse(body)?;
    let texts = match request.input {
        EmbeddingInput::One(text) => vec![text],
        EmbeddingInput::Many(texts) => texts,
    };
    if texts.is_empty() {
        return Err(ApiError::bad_request("`input` holds no text"));
    }
    let base64 = match request.encoding_format.as_deref() {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "encoding_format `{other}` is not supported (float, base64)"
            )));
        }
    };
    let spec = state.spec(&request.model, None)?;
    let vectors = match state.lease(&spec).await? {
        Served::TextEncoder(encoder) => {
            tokio::task::spawn_blocking(move || -> Result<_, ApiError> {
                let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
                Ok(encoder.call(|e| e.embed(&refs))??)
            })
            .await
            .map_err(|e| ApiError::internal(e.to_string()))??
        }
        Served::ImageTextEncoder(encoder) => encoder.embed_texts(&texts).await?,
        other => {
            return Err(ApiError::bad_request(format!(
                "model {} is served as {:?}, not as a text encoder",
                spec.key(),
                other.kind()
            )));
        }
    };
    let data: Vec<Value> = vectors
        .iter()
        .enumerate()
        .map(|(index, vector)| {
            let embedding = if base64 {
                // The OpenAI client's default: little-endian f32 bytes, base64.
                let bytes: Vec<u8> = vector.iter().flat_map(|x| x.to_le_bytes()).collect();
                json!(BASE64.encode(bytes))
            } else {
                json!(vector)
            };
            json!({ "object": "embedding", "index": index, "embedding": embedding })
        })
        .collect();
    Ok(Json(json!({
        "object": "list",
        "data": data,
        "model": request.model,
        "usage": { "prompt_tokens": 0, "total_tokens": 0 },
    }))
    .into_response())
}

#[derive(Debug, Deserialize)]
struct ChatMessageIn {
    role: String,
    #[serde(default)]
    content: Value,
}

#[derive(Debug, Deserialize)]
struct ChatRequest {
    model: String,
    messages: Vec<ChatMessageIn>,
    #[serde(default)]
    stream: bool,
    #[serde(default)]
    max_tokens: Option<u64>,
    #[serde(default)]
    max_completion_tokens: Option<u64>,
    #[serde(default)]
    temperature: Option<f32>,
    #[serde(default)]
    top_p: Option<f32>,
    #[serde(default)]
    seed: Option<u64>,
    #[serde(default)]
    stop: Option<Value>,
    #[serde(default)]
    n: Option<u32>,
}

/// A message's text: a string, or the text parts of a list of content parts.
fn content_text(content: &Value) -> Result<String, ApiError> {
    match content {
        Value::String(s) => Ok(s.clone()),
        Value::Null => Ok(String::new()),
        Value::Array(parts) => {
            let mut text = String::new();
            for part in parts {
                match part.get("type").and_then(Value::as_str) {
                    Some("text") => {
                        text.push_str(part.get("text").and_then(Value::as_str).unwrap_or(""));
                    }
                    other => {
                        return Err(ApiError::bad_request(format!(
                            "content part type {other:?} is not supported (text only)"
                        )));
                    }
                }
            }
            Ok(text)
        }
        _ => Err(ApiError::bad_request(
            "message content must be a string or a list of parts",
        )),
    }
}

/// A plain transcript for models whose tokenizer has no chat template: one `role: content`
/// line per message, then `assistant:` to open the reply.
fn transcript(messages: &[ChatMessage]) -> String {
    let mut text = String::new();
    for m in messages {
        text.push_str(&m.role);
        text.push_str(": ");
        text.push_str(&m.content);
        text.push('\n');
    }
    text.push_str("assistant:");
    text
}

fn chat_options(request: &ChatRequest) -> Result<GenerationOptions, ApiError> {
    let mut parameters = serde_json::Map::new();
    if let Some(stop) = &request.stop {
        parameters.insert("stop".to_owned(), stop.clone());
    }
    let mut options = models::generation_options(&parameters)?;
    options.max_new_tokens = request
        .max_completion_tokens
        .or(request.max_tokens)
        .map(|n| n as usize);
    options.temperature = request.temperature;
    options.top_p = request.top_p;
    options.seed = request.seed;
    Ok(options)
}

/// OpenAI's names for why a generation ended.
fn openai_finish(reason: modelmux::adapters::lm::FinishReason) -> &'static str {
    use modelmux::adapters::lm::FinishReason as F;
    match reason {
        F::Length => "length",
        F::EndOfSequence | F::StopSequence | F::Cancelled => "stop",
    }
}

pub(crate) async fn chat_completions(State(state): State<Arc<AppState>>, body: Bytes) -> Response {
    respond(run_chat(&state, &body).await)
}

async fn run_chat(state: &AppState, body: &[u8]) -> Result<Response, ApiError> {
    let request: ChatRequest = parse(body)?;
    if request.n.is_some_and(|n| n != 1) {
        return Err(ApiError::bad_request("only n = 1 is supported"));
    }
    if request.messages.is_empty() {
        return Err(ApiError::bad_request("`messages` is empty"));
    }
    let messages = request
        .messages
        .iter()
        .map(|m| Ok(ChatMessage::new(m.role.clone(), content_text(&m.content)?)))
        .collect::<Result<Vec<_>, ApiError>>()?;
    let options = chat_options(&request)?;
    let spec = state.spec(&request.model, None)?;
    let Served::TextGenerator(generator) = state.lease(&spec).await? else {
        return Err(ApiError::bad_request(format!(
            "model {} is not a text generator",
            spec.key()
        )));
    };
    let id = format!("chatcmpl-{}", created_nanos());
    let model = request.model.clone();
    let stamp = created();
    // Runs the chat template; a model without one gets the plain transcript instead, which is
    // safe to retry because the failure comes before any token is produced.
    let run = move |on_text: &mut dyn FnMut(&str) -> bool| {
        let first = models::stream_generation(
            &generator,
            Prompt::Chat(messages.clone()),
            &options,
            on_text,
        );
        match first {
            Err(e) if e.message.contains("no chat template") => models::stream_generation(
                &generator,
                Prompt::Text(transcript(&messages)),
                &options,
                on_text,
            ),
            other => other,
        }
    };
    if !request.stream {
        let generation = tokio::task::spawn_blocking(move || run(&mut |_| true))
            .await
            .map_err(|e| ApiError::internal(e.to_string()))??;
        let completion_tokens = generation.tokens.len();
        return Ok(Json(json!({
            "id": id,
            "object": "chat.completion",
            "created": stamp,
            "model": model,
            "choices": [{
                "index": 0,
                "message": { "role": "assistant", "content": generation.text },
                "finish_reason": openai_finish(generation.finish_reason),
            }],
            "usage": {
                "prompt_tokens": 0,
                "completion_tokens": completion_tokens,
                "total_tokens": completion_tokens,
            },
        }))
        .into_response());
    }
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Result<Event, Infallible>>();
    let chunk = {
        let id = id.clone();
        let model = model.clone();
        move |delta: Value, finish: Option<&str>| {
            Event::default().data(
                json!({
                    "id": id,
                    "object": "chat.completion.chunk",
                    "created": stamp,
                    "model": model,
                    "choices": [{ "index": 0, "delta": delta, "finish_reason": finish }],
                })
                .to_string(),
            )
        }
    };
    tokio::task::spawn_blocking(move || {
        let _ = tx.send(Ok(chunk(
            json!({ "role": "assistant", "content": "" }),
            None,
        )));
        // A closed channel means the client went away: generation stops at the next token.
        let result = run(&mut |text| tx.send(Ok(chunk(json!({ "content": text }), None))).is_ok());
        match result {
            Ok(generation) => {
                let finish = openai_finish(generation.finish_reason);
                let _ = tx.send(Ok(chunk(json!({}), Some(finish))));
            }
            Err(e) => {
                let _ = tx.send(Ok(Event::default().data(
                    json!({ "error": { "message": e.message, "code": e.status.as_u16() } })
                        .to_string(),
                )));
            }
        }
        let _ = tx.send(Ok(Event::default().data("[DONE]")));
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|event| (event, rx))
    });
    Ok(Sse::new(stream).into_response())
}

fn created_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

#[derive(Debug, Deserialize)]
struct ImagesRequest {
    model: String,
    prompt: String,
    #[serde(default)]
    n: Option<usize>,
    #[serde(default)]
    size: Option<String>,
    #[serde(default)]
    response_format: Option<String>,
    /// Not OpenAI's: a seed makes the images repeatable.
    #[serde(default)]
    seed: Option<u64>,
    /// Not OpenAI's: denoising steps.
    #[serde(default)]
    steps: Option<usize>,
    #[serde(default)]
    negative_prompt: Option<String>,
}

pub(crate) async fn images(State(state): State<Arc<AppState>>, body: Bytes) -> Response {
    respond(run_images(&state, &body).await)
}

async fn run_images(state: &AppState, body: &[u8]) -> Result<Response, ApiError> {
    let request: ImagesRequest = parse(body)?;
    match request.response_format.as_deref() {
        None | Some("b64_json") => {}
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "response_format `{other}` is not supported: modelmux serves no image URLs; use b64_json"
            )));
        }
    }
    let (width, height) = match request.size.as_deref() {
        None | Some("auto") => (None, None),
        Some(size) => {
            let parsed = size
                .split_once('x')
                .and_then(|(w, h)| Some((w.parse::<u32>().ok()?, h.parse::<u32>().ok()?)));
            let (w, h) = parsed.ok_or_else(|| {
                ApiError::bad_request(format!("size `{size}` is not WIDTHxHEIGHT"))
            })?;
            (Some(w), Some(h))
        }
    };
    let spec = state.spec(&request.model, None)?;
    let Served::TextToImage(pipeline) = state.lease(&spec).await? else {
        return Err(ApiError::bad_request(format!(
            "model {} is not a text-to-image model",
            spec.key()
        )));
    };
    let image_request = ImageRequest {
        prompt: request.prompt,
        negative_prompt: request.negative_prompt,
        width,
        height,
        steps: request.steps,
        seed: request.seed,
        batch_count: request.n,
        ..ImageRequest::default()
    };
    let pngs = tokio::task::spawn_blocking(move || -> Result<Vec<String>, ApiError> {
        let mut progress = no_progress();
        let generated = pipeline.call(|p| p.generate(&image_request, &mut progress))??;
        generated
            .images
            .iter()
            .map(|image| {
                encode_png(image.width, image.height, &image.pixels).map(|b| BASE64.encode(b))
            })
            .collect()
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))??;
    let data: Vec<Value> = pngs.into_iter().map(|b| json!({ "b64_json": b })).collect();
    Ok(Json(json!({ "created": created(), "data": data })).into_response())
}

/// An RGB image as PNG bytes.
fn encode_png(width: u32, height: u32, pixels: &[u8]) -> Result<Vec<u8>, ApiError> {
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, width, height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder
        .write_header()
        .map_err(|e| ApiError::internal(format!("PNG encoding: {e}")))?;
    writer
        .write_image_data(pixels)
        .map_err(|e| ApiError::internal(format!("PNG encoding: {e}")))?;
    writer
        .finish()
        .map_err(|e| ApiError::internal(format!("PNG encoding: {e}")))?;
    Ok(out)
}
