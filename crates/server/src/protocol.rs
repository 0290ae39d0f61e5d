//! The Open Inference Protocol's operations, independent of the transport: readiness, server
//! and model metadata, model configuration, inference with output selection, statistics, and
//! Triton's repository extension (index, load, unload) under both control modes. The HTTP
//! routes (`oip`) and the gRPC service (`grpc`) decode their requests, call these, and encode
//! the answers.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use modelmux::registry::ModelSpec;
use modelmux::{ManagerError, ModelState, Preload, Released};
use serde::Serialize;

use crate::error::ApiError;
use crate::models::{self, Kind, Served, TensorMetadata};
use crate::stats::{MemoryUsage, Report};
use crate::tensor::{InferRequest, WireTensor};
use crate::{AppState, ControlMode};

/// The server's name in its metadata.
pub(crate) const SERVER_NAME: &str = "modelmux";

/// The extensions advertised in the server metadata.
pub(crate) const EXTENSIONS: &[&str] = &[
    "binary_tensor_data",
    "model_configuration",
    "model_repository",
    "model_repository(unload_dependents)",
    "statistics",
];

/// `None` for an empty string: gRPC leaves a version it was not given empty.
pub(crate) fn given(value: &str) -> Option<&str> {
    (!value.is_empty()).then_some(value)
}

/// Whether the server accepts work (false once shutdown begins).
pub(crate) fn server_ready(state: &AppState) -> bool {
    state.accepting.load(Ordering::Acquire)
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
pub(crate) async fn model_ready(state: &AppState, spec: &ModelSpec) -> bool {
    let (model_state, _) = state_of(state, spec);
    match state.options.control {
        ControlMode::External => {
            state.loaded_by_command(spec).await && model_state == ModelState::Ready
        }
        ControlMode::Policy => model_state != ModelState::Failed,
    }
}

/// A model's metadata.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ModelMetadata {
    pub name: String,
    pub versions: Vec<String>,
    pub platform: &'static str,
    pub inputs: Vec<TensorMetadata>,
    pub outputs: Vec<TensorMetadata>,
    /// How it is served (not part of the metadata on the wire).
    #[serde(skip)]
    pub kind: Kind,
}

pub(crate) async fn metadata(
    state: &AppState,
    spec: &ModelSpec,
) -> Result<ModelMetadata, ApiError> {
    let kind = Kind::of(spec);
    // A tensor model's signature is the loaded session's, so it is leased (loaded under the
    // policy; 404 under external control when it is not loaded).
    let served = if kind == Kind::Tensor {
        Some(state.lease(spec).await?)
    } else {
        None
    };
    let kind = served.as_ref().map_or(kind, Served::kind);
    let (inputs, outputs) = models::signature(spec, served.as_ref())
        .ok_or_else(|| ApiError::unavailable("the model's signature is unknown", None))?;
    Ok(ModelMetadata {
        name: spec.id.clone(),
        versions: vec![spec.version.to_string()],
        platform: kind.platform(),
        inputs,
        outputs,
        kind,
    })
}

/// Triton's name for an OIP datatype in a model configuration (`TYPE_FP32`; BYTES is
/// `TYPE_STRING`; a type modelmux does not exchange is `TYPE_INVALID`).
fn config_datatype(datatype: &str) -> &'static str {
    match datatype {
        "BOOL" => "TYPE_BOOL",
        "UINT8" => "TYPE_UINT8",
        "INT32" => "TYPE_INT32",
        "INT64" => "TYPE_INT64",
        "FP16" => "TYPE_FP16",
        "FP32" => "TYPE_FP32",
        "BYTES" => "TYPE_STRING",
        _ => "TYPE_INVALID",
    }
}

/// The backend of a model's configuration: ONNX Runtime for tensor models, modelmux's family
/// adapters for the others.
fn backend(kind: Kind) -> &'static str {
    match kind {
        Kind::Tensor => "onnxruntime",
        _ => "modelmux",
    }
}

/// One tensor of a model configuration.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ConfigTensor {
    pub name: String,
    /// Triton's type name (`TYPE_FP32`).
    pub data_type: &'static str,
    pub dims: Vec<i64>,
}

/// A model's configuration, serialized as Triton's model-configuration JSON.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ModelConfig {
    pub name: String,
    pub platform: &'static str,
    pub backend: &'static str,
    pub max_batch_size: i32,
    pub input: Vec<ConfigTensor>,
    pub output: Vec<ConfigTensor>,
}

/// A model's configuration as Triton's model-configuration extension gives it: the metadata's
/// tensors with `max_batch_size` 0 (the dims are whole shapes; batching happens inside the
/// session pools).
pub(crate) async fn config(state: &AppState, spec: &ModelSpec) -> Result<ModelConfig, ApiError> {
    let meta = metadata(state, spec).await?;
    let side = |tensors: Vec<TensorMetadata>| -> Vec<ConfigTensor> {
        tensors
            .into_iter()
            .map(|t| ConfigTensor {
                data_type: config_datatype(&t.datatype),
                name: t.name,
                dims: t.shape,
            })
            .collect()
    };
    Ok(ModelConfig {
        name: meta.name,
        platform: meta.platform,
        backend: backend(meta.kind),
        max_batch_size: 0,
        input: side(meta.inputs),
        output: side(meta.outputs),
    })
}

/// Runs a request on the model and keeps its statistics (`started` is when the request arrived;
/// a request that could not be decoded counts as a failure too). Returns the request, whose
/// `id` and output choices the answer needs, and the outputs in the order asked for.
pub(crate) async fn infer(
    state: &AppState,
    spec: &ModelSpec,
    started: Instant,
    request: Result<InferRequest, ApiError>,
) -> Result<(InferRequest, Vec<WireTensor>), ApiError> {
    let key = spec.key();
    match run(state, spec, request).await {
        Ok((request, outputs, leased, items)) => {
            state
                .stats
                .success(&key, leased - started, leased.elapsed(), items);
            Ok((request, outputs))
        }
        Err(e) => {
            state.stats.fail(&key, started.elapsed());
            Err(e)
        }
    }
}

async fn run(
    state: &AppState,
    spec: &ModelSpec,
    request: Result<InferRequest, ApiError>,
) -> Result<(InferRequest, Vec<WireTensor>, Instant, u64), ApiError> {
    let request = request?;
    let served = state.lease(spec).await?;
    let leased = Instant::now();
    let (outputs, items) = models::infer(served, &request).await?;
    let outputs = select(outputs, &request)?;
    Ok((request, outputs, leased, items))
}

/// The outputs the request asked for, in its order (all of them when it named none).
fn select(
    mut outputs: Vec<WireTensor>,
    request: &InferRequest,
) -> Result<Vec<WireTensor>, ApiError> {
    let Some(wanted) = &request.outputs else {
        return Ok(outputs);
    };
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
    Ok(chosen)
}

/// `memory_usage` of the statistics extension: the ledger's committed bytes for the model.
pub(crate) fn memory_usage(state: &AppState, spec: &ModelSpec) -> Vec<MemoryUsage> {
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
    vec![MemoryUsage {
        kind: if is_cpu { "CPU" } else { "GPU" },
        id: i64::try_from(id).unwrap_or(0),
        byte_size: bytes,
    }]
}

fn report(state: &AppState, spec: &ModelSpec) -> Report {
    Report {
        name: spec.id.clone(),
        version: spec.version.to_string(),
        stats: state.stats.get(&spec.key()),
        memory: memory_usage(state, spec),
    }
}

/// Statistics of the model `name` (at `version`), or of every catalog model when no name is
/// given; an unknown model is 404.
pub(crate) fn statistics(
    state: &AppState,
    name: Option<&str>,
    version: Option<&str>,
) -> Result<Vec<Report>, ApiError> {
    match name {
        Some(name) => Ok(vec![report(state, &state.spec(name, version)?)]),
        None => Ok(state
            .manager
            .catalog()
            .models()
            .iter()
            .map(|spec| report(state, spec))
            .collect()),
    }
}

/// One model of the repository index.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct IndexEntry {
    pub name: String,
    pub version: String,
    /// `READY`, `LOADING`, `UNLOADING` or `UNAVAILABLE`.
    pub state: &'static str,
    pub reason: String,
}

/// Every catalog model and its state (only the ready ones if `only_ready`).
pub(crate) async fn index(state: &AppState, only_ready: bool) -> Vec<IndexEntry> {
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
        index.push(IndexEntry {
            name: spec.id.clone(),
            version: spec.version.to_string(),
            state: text,
            reason,
        });
    }
    index
}

/// Loads a catalog model by the repository extension's command. Model overrides (`config`,
/// `file:…` among `parameters`) would load something the catalog does not describe, which the
/// ledger could not account for; they are refused rather than ignored.
pub(crate) async fn load<'a>(
    state: &AppState,
    spec: &ModelSpec,
    mut parameters: impl Iterator<Item = &'a str>,
) -> Result<(), ApiError> {
    if let Some(key) = parameters.find(|k| *k == "config" || k.starts_with("file:")) {
        return Err(ApiError::bad_request(format!(
            "parameter `{key}` is not supported: modelmux loads models as its catalog describes them"
        )));
    }
    load_spec(state, spec).await
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

/// Unloads a catalog model once its in-flight requests return, as Triton's unload lets them
/// (`unload_dependents` has nothing to do: catalog models have no dependents).
pub(crate) async fn unload(state: &AppState, spec: &ModelSpec) -> Result<(), ApiError> {
    let key = spec.key();
    if state.options.control == ControlMode::External {
        let gate = state.gate(spec);
        let mut gate = gate.write().await;
        gate.loaded = false;
        gate.pin = None;
    }
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
