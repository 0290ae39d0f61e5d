//! The Open Inference Protocol v2 over HTTP: health, server and model metadata, model
//! readiness, inference; Triton's repository (index, load, unload) and statistics extensions.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use modelmux::registry::ModelSpec;
use modelmux::{ManagerError, ModelState, Preload, Released};
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::models::{self, Kind, Served};
use crate::tensor::{decode_request, encode_response};
use crate::{AppState, ControlMode};

type Params = Path<HashMap<String, String>>;

/// The extensions advertised in the server metadata.
const EXTENSIONS: &[&str] = &[
    "binary_tensor_data",
    "model_repository",
    "model_repository(unload_dependents)",
    "statistics",
];

/// The header carrying the JSON part's length in the binary-data extension.
const HEADER_LENGTH: &str = "inference-header-content-length";

fn name_and_version(params: &HashMap<String, String>) -> (&str, Option<&str>) {
    (
        params.get("name").map_or("", String::as_str),
        params.get("version").map(String::as_str),
    )
}

pub(crate) async fn live() -> Response {
    Json(json!({ "live": true })).into_response()
}

pub(crate) async fn ready(State(state): State<Arc<AppState>>) -> Response {
    if state.accepting.load(Ordering::Acquire) {
        Json(json!({ "ready": true })).into_response()
    } else {
        ApiError::unavailable("the server is shutting down", None).into_response()
    }
}

pub(crate) async fn server_metadata() -> Response {
    Json(json!({
        "name": "modelmux",
        "version": env!("CARGO_PKG_VERSION"),
        "extensions": EXTENSIONS,
    }))
    .into_response()
}

/// The model's state in the manager.
fn state_of(state: &AppState, spec: &ModelSpec) -> (ModelState, Option<String>) {
    let key = spec.key();
    state
        .manager
        .status()
        .models
        .into_iter()
        .find(|m| m.model == key)
        .map_or((ModelState::Unloaded, None), |m| (m.state, m.last_error))
}

/// Ready: under external control, loaded by command; under the policy, anything whose last
/// load did not fail (it loads on the first request).
async fn is_ready(state: &AppState, spec: &ModelSpec) -> bool {
    let (model_state, _) = state_of(state, spec);
    match state.options.control {
        ControlMode::External => {
            state.loaded_by_command(spec).await && model_state == ModelState::Ready
        }
        ControlMode::Policy => model_state != ModelState::Failed,
    }
}

pub(crate) async fn model_ready(
    State(state): State<Arc<AppState>>,
    Path(params): Params,
) -> Response {
    let (name, version) = name_and_version(&params);
    let spec = match state.spec(name, version) {
        Ok(spec) => spec,
        Err(e) => return e.into_response(),
    };
    if is_ready(&state, &spec).await {
        Json(json!({ "name": spec.id, "ready": true })).into_response()
    } else {
        ApiError::unavailable(format!("model {} is not ready", spec.key()), None).into_response()
    }
}

pub(crate) async fn model_metadata(
    State(state): State<Arc<AppState>>,
    Path(params): Params,
) -> Response {
    match metadata(&state, &params).await {
        Ok(value) => Json(value).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn metadata(state: &AppState, params: &HashMap<String, String>) -> Result<Value, ApiError> {
    let (name, version) = name_and_version(params);
    let spec = state.spec(name, version)?;
    let kind = Kind::of(&spec);
    // A tensor model's signature is the loaded session's, so it is leased (loaded under the
    // policy; 404 under external control when it is not loaded).
    let served = if kind == Kind::Tensor {
        Some(state.lease(&spec).await?)
    } else {
        None
    };
    let (inputs, outputs) = models::signature(&spec, served.as_ref())
        .ok_or_else(|| ApiError::unavailable("the model's signature is unknown", None))?;
    Ok(json!({
        "name": spec.id,
        "versions": [spec.version.to_string()],
        "platform": served.as_ref().map_or(kind, Served::kind).platform(),
        "inputs": inputs,
        "outputs": outputs,
    }))
}

pub(crate) async fn infer(
    State(state): State<Arc<AppState>>,
    Path(params): Params,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (name, version) = name_and_version(&params);
    let spec = match state.spec(name, version) {
        Ok(spec) => spec,
        Err(e) => return e.into_response(),
    };
    let key = spec.key();
    let started = Instant::now();
    match run_infer(&state, &spec, &headers, &body).await {
        Ok((response, leased, items)) => {
            let now = Instant::now();
            state
                .stats
                .success(&key, leased - started, now - leased, items);
            response
        }
        Err(e) => {
            state.stats.fail(&key, started.elapsed());
            e.into_response()
        }
    }
}

async fn run_infer(
    state: &AppState,
    spec: &ModelSpec,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(Response, Instant, u64), ApiError> {
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
    let request = decode_request(body, header_len)?;
    let served = state.lease(spec).await?;
    let leased = Instant::now();
    let (mut outputs, items) = models::infer(served, &request).await?;
    if let Some(wanted) = &request.outputs {
        let mut chosen = Vec::with_capacity(wanted.len());
        for output in wanted {
            let index = outputs
                .iter()
                .position(|o| o.name == output.name)
                .ok_or_else(|| {
                    let names: Vec<&str> = outputs.iter().map(|o| o.name.as_str()).collect();
                    ApiError::bad_request(format!(
                        "unknown output `{}`; the model gives {}",
                        output.name,
                        names.join(", ")
                    ))
                })?;
            chosen.push(outputs.swap_remove(index));
        }
        outputs = chosen;
    }
    let encoded = encode_response(&spec.id, &spec.version.to_string(), &request, &outputs);
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
    Ok((response, leased, items))
}

/// `memory_usage` of the statistics extension: the ledger's committed bytes for the model.
fn memory_usage(state: &AppState, spec: &ModelSpec) -> Vec<Value> {
    let status = state.manager.status();
    let key = spec.key();
    let Some(model) = status.models.iter().find(|m| m.model == key) else {
        return Vec::new();
    };
    let (Some(device), Some(bytes)) = (&model.device, model.bytes) else {
        return Vec::new();
    };
    let is_cpu = device == "cpu";
    // Triton numbers devices per type: GPUs by their order among the manager's GPUs.
    let id = status
        .devices
        .iter()
        .filter(|d| (d.device == "cpu") == is_cpu)
        .position(|d| &d.device == device)
        .unwrap_or(0);
    vec![json!({
        "type": if is_cpu { "CPU" } else { "GPU" },
        "id": id,
        "byte_size": bytes,
    })]
}

fn stats_json(state: &AppState, spec: &ModelSpec) -> Value {
    state.stats.json(
        &spec.id,
        &spec.version.to_string(),
        &spec.key(),
        memory_usage(state, spec),
    )
}

pub(crate) async fn all_stats(State(state): State<Arc<AppState>>) -> Response {
    let stats: Vec<Value> = state
        .manager
        .catalog()
        .models()
        .iter()
        .map(|spec| stats_json(&state, spec))
        .collect();
    Json(json!({ "model_stats": stats })).into_response()
}

pub(crate) async fn model_stats(
    State(state): State<Arc<AppState>>,
    Path(params): Params,
) -> Response {
    let (name, version) = name_and_version(&params);
    match state.spec(name, version) {
        Ok(spec) => Json(json!({ "model_stats": [stats_json(&state, &spec)] })).into_response(),
        Err(e) => e.into_response(),
    }
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
    let status = state.manager.status();
    let mut index = Vec::new();
    for spec in state.manager.catalog().models() {
        let key = spec.key();
        let model = status.models.iter().find(|m| m.model == key);
        let manager_state = model.map_or(ModelState::Unloaded, |m| m.state);
        let commanded =
            state.options.control == ControlMode::Policy || state.loaded_by_command(spec).await;
        let (text, reason) = match manager_state {
            ModelState::Ready if commanded => ("READY", String::new()),
            ModelState::Loading => ("LOADING", String::new()),
            ModelState::Evicting => ("UNLOADING", String::new()),
            ModelState::Failed => (
                "UNAVAILABLE",
                model
                    .and_then(|m| m.last_error.clone())
                    .unwrap_or_else(|| "the last load failed".to_owned()),
            ),
            _ => ("UNAVAILABLE", "unloaded".to_owned()),
        };
        if only_ready && text != "READY" {
            continue;
        }
        index.push(json!({
            "name": spec.id,
            "version": spec.version.to_string(),
            "state": text,
            "reason": reason,
        }));
    }
    Json(Value::Array(index)).into_response()
}

/// Model overrides (`config`, `file:…`) would load something the catalog does not describe,
/// which the ledger could not account for; they are refused rather than ignored.
fn refuse_overrides(body: &Value) -> Result<(), ApiError> {
    let Some(parameters) = body.get("parameters").and_then(Value::as_object) else {
        return Ok(());
    };
    match parameters
        .keys()
        .find(|k| *k == "config" || k.starts_with("file:"))
    {
        Some(key) => Err(ApiError::bad_request(format!(
            "parameter `{key}` is not supported: modelmux loads models as its catalog describes them"
        ))),
        None => Ok(()),
    }
}

pub(crate) async fn load(
    State(state): State<Arc<AppState>>,
    Path(params): Params,
    body: Bytes,
) -> Response {
    match run_load(&state, &params, &body).await {
        Ok(()) => StatusCode::OK.into_response(),
        Err(e) => e.into_response(),
    }
}

async fn run_load(
    state: &AppState,
    params: &HashMap<String, String>,
    body: &[u8],
) -> Result<(), ApiError> {
    let body = optional_json(body)?;
    refuse_overrides(&body)?;
    let (name, version) = name_and_version(params);
    let spec = state.spec(name, version)?;
    load_spec(state, &spec).await
}

/// Loads a catalog model: pinned under external control (the policy must never evict what the
/// control plane placed), a plain preload under the policy.
pub(crate) async fn load_spec(state: &AppState, spec: &ModelSpec) -> Result<(), ApiError> {
    let key = spec.key();
    match state.options.control {
        ControlMode::External => {
            let gate = state.gate(spec);
            let mut gate = gate.write().await;
            let pin = state
                .manager
                .load_model(
                    &key,
                    Preload {
                        pin: true,
                        ..Preload::default()
                    },
                )
                .await?;
            gate.pin = Some(pin);
            gate.loaded = true;
        }
        ControlMode::Policy => {
            state.manager.load_model(&key, Preload::default()).await?;
        }
    }
    tracing::info!(model = %key, "loaded by request");
    Ok(())
}

pub(crate) async fn unload(
    State(state): State<Arc<AppState>>,
    Path(params): Params,
    body: Bytes,
) -> Response {
    match run_unload(&state, &params, &body).await {
        Ok(()) => StatusCode::OK.into_response(),
        Err(e) => e.into_response(),
    }
}

async fn run_unload(
    state: &AppState,
    params: &HashMap<String, String>,
    body: &[u8],
) -> Result<(), ApiError> {
    // `unload_dependents` is accepted and has nothing to do: catalog models have no dependents.
    optional_json(body)?;
    let (name, version) = name_and_version(params);
    let spec = state.spec(name, version)?;
    let key = spec.key();
    if state.options.control == ControlMode::External {
        let gate = state.gate(&spec);
        let mut gate = gate.write().await;
        gate.loaded = false;
        gate.pin = None;
    }
    // Requests already holding the model finish first, as Triton's unload lets them.
    let deadline = Instant::now() + state.options.unload_wait;
    loop {
        match state.manager.release_model(&key).await {
            Ok(Released::Unloaded { bytes }) => {
                tracing::info!(model = %key, bytes, "unloaded by request");
                return Ok(());
            }
            Ok(Released::NotLoaded) => return Ok(()),
            Err(ManagerError::Busy { .. }) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}
