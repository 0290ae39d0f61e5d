//! The Open Inference Protocol's text-generation extension: `POST v2/models/{name}/generate`
//! (one JSON answer) and `…/generate_stream` (server-sent events, one per piece of text).

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use modelmux::adapters::lm::Prompt;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::AppState;
use crate::error::ApiError;
use crate::models::{self, Served};

#[derive(Debug, Deserialize)]
struct GenerateRequest {
    text_input: String,
    #[serde(default)]
    parameters: Map<String, Value>,
}

type Params = Path<HashMap<String, String>>;

pub(crate) async fn generate(
    State(state): State<Arc<AppState>>,
    Path(params): Params,
    body: Bytes,
) -> Response {
    run(&state, &params, &body, false)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

pub(crate) async fn generate_stream(
    State(state): State<Arc<AppState>>,
    Path(params): Params,
    body: Bytes,
) -> Response {
    run(&state, &params, &body, true)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn run(
    state: &AppState,
    params: &HashMap<String, String>,
    body: &[u8],
    stream: bool,
) -> Result<Response, ApiError> {
    let request: GenerateRequest = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("malformed generate request: {e}")))?;
    let options = models::generation_options(&request.parameters)?;
    let name = params.get("name").map_or("", String::as_str);
    let spec = state.spec(name, params.get("version").map(String::as_str))?;
    let Served::TextGenerator(generator) = state.lease(&spec).await? else {
        return Err(ApiError::bad_request(format!(
            "model {} is not a text generator",
            spec.key()
        )));
    };
    let model_name = spec.id.clone();
    let model_version = spec.version.to_string();
    let prompt = Prompt::Text(request.text_input);
    if !stream {
        let generation = tokio::task::spawn_blocking(move || {
            models::stream_generation(&generator, prompt, &options, &mut |_| true)
        })
        .await
        .map_err(|e| ApiError::internal(e.to_string()))??;
        return Ok(Json(json!({
            "model_name": model_name,
            "model_version": model_version,
            "text_output": generation.text,
            "finish_reason": models::finish_reason(generation.finish_reason),
        }))
        .into_response());
    }
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Result<Event, Infallible>>();
    let event = move |fields: Value| {
        let mut object = json!({ "model_name": model_name, "model_version": model_version });
        if let (Some(target), Value::Object(extra)) = (object.as_object_mut(), fields) {
            target.extend(extra);
        }
        Event::default().data(object.to_string())
    };
    tokio::task::spawn_blocking(move || {
        // A closed channel means the client went away: generation stops at the next token.
        let result = models::stream_generation(&generator, prompt, &options, &mut |text| {
            tx.send(Ok(event(json!({ "text_output": text })))).is_ok()
        });
        let last = match result {
            Ok(generation) => event(json!({
                "text_output": "",
                "finish_reason": models::finish_reason(generation.finish_reason),
            })),
            Err(e) => event(json!({ "error": e.message })),
        };
        let _ = tx.send(Ok(last));
    });
    let events = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|event| (event, rx))
    });
    Ok(Sse::new(events).into_response())
}
