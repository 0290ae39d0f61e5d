//! The Open Inference Protocol v2 over HTTP: health, server and model metadata, model
//! readiness, model configuration, inference (JSON, Triton's binary-data extension and its raw
//! binary requests); Triton's repository (index, load, unload) and statistics extensions. Each
//! route decodes its request, calls the transport-independent operation in `protocol`, and
//! encodes the answer.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use modelmux::registry::ModelSpec;
use serde_json::{Value, json};

use crate::AppState;
use crate::error::ApiError;
use crate::protocol;
use crate::tensor::{InferRequest, decode_raw, decode_request, encode_response};

type Params = Path<HashMap<String, String>>;

/// The header carrying the JSON part's length in the binary-data extension.
const HEADER_LENGTH: &str = "inference-header-content-length";

/// The catalog entry a route names (`{name}`, optionally `/versions/{version}`).
fn spec_of(state: &AppState, params: &HashMap<String, String>) -> Result<ModelSpec, ApiError> {
    state.spec(
        params.get("name").map_or("", String::as_str),
        params.get("version").map(String::as_str),
    )
}

/// A JSON answer, or the error's.
fn answer<T: serde::Serialize>(result: Result<T, ApiError>) -> Response {
    match result {
        Ok(value) => Json(value).into_response(),
        Err(e) => e.into_response(),
    }
}

pub(crate) async fn live() -> Response {
    Json(json!({ "live": true })).into_response()
}

pub(crate) async fn ready(State(state): State<Arc<AppState>>) -> Response {
    if protocol::server_ready(&state) {
        Json(json!({ "ready": true })).into_response()
    } else {
        ApiError::unavailable("the server is shutting down", None).into_response()
    }
}

pub(crate) async fn server_metadata() -> Response {
    Json(json!({
        "name": protocol::SERVER_NAME,
        "version": env!("CARGO_PKG_VERSION"),
        "extensions": protocol::EXTENSIONS,
    }))
    .into_response()
}

pub(crate) async fn model_ready(
    State(state): State<Arc<AppState>>,
    Path(params): Params,
) -> Response {
    let spec = match spec_of(&state, &params) {
        Ok(spec) => spec,
        Err(e) => return e.into_response(),
    };
    if protocol::model_ready(&state, &spec).await {
        Json(json!({ "name": spec.id, "ready": true })).into_response()
    } else {
        ApiError::unavailable(format!("model {} is not ready", spec.key()), None).into_response()
    }
}

pub(crate) async fn model_metadata(
    State(state): State<Arc<AppState>>,
    Path(params): Params,
) -> Response {
    answer(match spec_of(&state, &params) {
        Ok(spec) => protocol::metadata(&state, &spec).await,
        Err(e) => Err(e),
    })
}

/// `GET /v2/models/{name}[/versions/{version}]/config`: Triton's model-configuration JSON.
pub(crate) async fn model_config(
    State(state): State<Arc<AppState>>,
    Path(params): Params,
) -> Response {
    answer(match spec_of(&state, &params) {
        Ok(spec) => protocol::config(&state, &spec).await,
        Err(e) => Err(e),
    })
}

pub(crate) async fn infer(
    State(state): State<Arc<AppState>>,
    Path(params): Params,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let started = Instant::now();
    let spec = match spec_of(&state, &params) {
        Ok(spec) => spec,
        Err(e) => return e.into_response(),
    };
    let request = decode(&state, &spec, &headers, &body).await;
    match protocol::infer(&state, &spec, started, request).await {
        Ok((request, outputs)) => encode(&spec, &request, &outputs),
        Err(e) => e.into_response(),
    }
}

/// Decodes an inference body: JSON, a JSON header followed by binary data, or (header length
/// 0) Triton's raw binary request, which only a model with one input can take.
async fn decode(
    state: &AppState,
    spec: &ModelSpec,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<InferRequest, ApiError> {
    let header_len = match headers.get(HEADER_LENGTH) {
        None => None,
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|s| s.trim().parse::<usize>().ok())
                .ok_or_else(|| {
                    ApiError::bad_request("Inference-Header-Content-Length must be a number")
                })?,
        ),
    };
    if header_len != Some(0) {
        return decode_request(body, header_len);
    }
    let meta = protocol::metadata(state, spec).await?;
    match meta.inputs.as_slice() {
        [input] => decode_raw(input, body),
        inputs => {
            let names: Vec<&str> = inputs.iter().map(|t| t.name.as_str()).collect();
            Err(ApiError::bad_request(format!(
                "a raw binary request (Inference-Header-Content-Length: 0) needs a model with exactly one input; {} has {} ({}): send a JSON header naming the inputs",
                spec.key(),
                inputs.len(),
                names.join(", ")
            )))
        }
    }
}

fn encode(
    spec: &ModelSpec,
    request: &InferRequest,
    outputs: &[crate::tensor::WireTensor],
) -> Response {
    let encoded = encode_response(&spec.id, &spec.version.to_string(), request, outputs);
    let mut response = encoded.body.into_response();
    let headers = response.headers_mut();
    match encoded.header_len {
        Some(n) => {
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            );
            headers.insert(HEADER_LENGTH, HeaderValue::from(n));
        }
        None => {
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
        }
    }
    response
}

fn stats_answer(state: &AppState, name: Option<&str>, version: Option<&str>) -> Response {
    match protocol::statistics(state, name, version) {
        Ok(reports) => {
            let stats: Vec<Value> = reports.iter().map(|r| r.json()).collect();
            Json(json!({ "model_stats": stats })).into_response()
        }
        Err(e) => e.into_response(),
    }
}

pub(crate) async fn all_stats(State(state): State<Arc<AppState>>) -> Response {
    stats_answer(&state, None, None)
}

pub(crate) async fn model_stats(
    State(state): State<Arc<AppState>>,
    Path(params): Params,
) -> Response {
    stats_answer(
        &state,
        params.get("name").map(String::as_str),
        params.get("version").map(String::as_str),
    )
}

/// Parses an optional JSON body (callers send nothing, `{}` or an object).
fn optional_json(body: &[u8]) -> Result<Value, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("malformed request body: {e}")))?;
    if value.is_object() {
        Ok(value)
    } else {
        Err(ApiError::bad_request(
            "the request body must be a JSON object",
        ))
    }
}

pub(crate) async fn repository_index(State(state): State<Arc<AppState>>, body: Bytes) -> Response {
    let body = match optional_json(&body) {
        Ok(body) => body,
        Err(e) => return e.into_response(),
    };
    let only_ready = body.get("ready").and_then(Value::as_bool).unwrap_or(false);
    Json(protocol::index(&state, only_ready).await).into_response()
}

/// What a load or unload answers: 200 with an empty body, or the error.
fn done(result: Result<(), ApiError>) -> Response {
    match result {
        Ok(()) => StatusCode::OK.into_response(),
        Err(e) => e.into_response(),
    }
}

pub(crate) async fn load(
    State(state): State<Arc<AppState>>,
    Path(params): Params,
    body: Bytes,
) -> Response {
    done(run_load(&state, &params, &body).await)
}

async fn run_load(
    state: &AppState,
    params: &HashMap<String, String>,
    body: &[u8],
) -> Result<(), ApiError> {
    let body = optional_json(body)?;
    let spec = spec_of(state, params)?;
    let parameters = body.get("parameters").and_then(Value::as_object);
    let names = parameters
        .into_iter()
        .flat_map(|p| p.keys().map(String::as_str));
    protocol::load(state, &spec, names).await
}

pub(crate) async fn unload(
    State(state): State<Arc<AppState>>,
    Path(params): Params,
    body: Bytes,
) -> Response {
    done(run_unload(&state, &params, &body).await)
}

async fn run_unload(
    state: &AppState,
    params: &HashMap<String, String>,
    body: &[u8],
) -> Result<(), ApiError> {
    optional_json(body)?;
    let spec = spec_of(state, params)?;
    protocol::unload(state, &spec).await
}
