//! ModelMesh's model-runtime interface (`mmesh.ModelRuntime`) on the gRPC port, so ModelMesh can
//! place models across pods by bytes while modelmux manages memory on each: `runtimeStatus`
//! reports the manager's memory budget as the capacity, `loadModel` loads by the repository
//! extension's command (pinned under external control) and answers the ledger's measured size,
//! `modelSize` reads it again, `predictModelSize` answers the catalog's declared requirement, and
//! `unloadModel` unloads. A ModelMesh model id is a catalog id (or `id@version`), the same name
//! inference requests carry. Run it with `--control external`: ModelMesh decides what is loaded.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use crate::error::ApiError;
use crate::protocol;
use crate::{AppState, ControlMode};

/// The messages and service of `proto/model_runtime.proto` (package `mmesh`), server and client.
pub mod proto {
    #![allow(clippy::all, clippy::pedantic, missing_docs)]
    tonic::include_proto!("mmesh");
}

use proto::model_runtime_server::{ModelRuntime, ModelRuntimeServer};
use proto::runtime_status_response::{MethodInfo, Status as RuntimeState};

/// How long ModelMesh should wait for one load, in milliseconds.
const LOAD_TIMEOUT_MS: u32 = 10 * 60 * 1000;

/// The inference RPCs ModelMesh forwards, each with the field (number 1 in every one of them)
/// that carries the model name.
const FORWARDED: &[&str] = &[
    "inference.GRPCInferenceService/ModelInfer",
    "inference.GRPCInferenceService/ModelMetadata",
    "inference.GRPCInferenceService/ModelReady",
    "inference.GRPCInferenceService/ModelConfig",
    "inference.GRPCInferenceService/ModelStatistics",
];

/// The runtime interface over the server's state.
#[derive(Debug, Clone)]
pub(crate) struct Runtime {
    state: Arc<AppState>,
}

impl Runtime {
    pub(crate) fn server(state: Arc<AppState>) -> ModelRuntimeServer<Self> {
        ModelRuntimeServer::new(Self { state })
    }

    fn admit<T>(&self, request: &Request<T>) -> Result<tokio::sync::OwnedSemaphorePermit, Status> {
        crate::grpc::admit(&self.state, request)
    }

    /// The catalog entry a model id names; an unknown id is `INVALID_ARGUMENT`, which tells
    /// ModelMesh no load was attempted.
    fn spec(&self, model_id: &str) -> Result<modelmux::registry::ModelSpec, Status> {
        self.state
            .spec(model_id, None)
            .map_err(|e| Status::invalid_argument(e.message))
    }

    /// The ledger's measured bytes of a loaded model (0 when it is not loaded).
    fn measured(&self, spec: &modelmux::registry::ModelSpec) -> u64 {
        protocol::memory_usage(&self.state, spec)
            .iter()
            .map(|m| m.byte_size)
            .sum()
    }

    /// What models take on the devices they are placed on: the GPUs' budgets when there are
    /// GPUs, else the host's.
    fn capacity(&self) -> u64 {
        let devices = self.state.manager.status().devices;
        let gpus: u64 = devices
            .iter()
            .filter(|d| d.device != "cpu")
            .map(|d| d.budget_bytes)
            .sum();
        if gpus > 0 {
            return gpus;
        }
        devices
            .iter()
            .filter(|d| d.device == "cpu")
            .map(|d| d.budget_bytes)
            .sum()
    }

    /// The largest declared requirement in the catalog: a conservative size for a model ModelMesh
    /// knows nothing about yet.
    fn default_size(&self) -> u64 {
        self.state
            .manager
            .catalog()
            .models()
            .iter()
            .filter_map(|spec| spec.memory_requirement.map(|b| b.bytes()))
            .max()
            .unwrap_or(0)
    }
}

type Answer<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl ModelRuntime for Runtime {
    async fn load_model(
        &self,
        request: Request<proto::LoadModelRequest>,
    ) -> Answer<proto::LoadModelResponse> {
        let _permit = self.admit(&request)?;
        let spec = self.spec(&request.get_ref().model_id)?;
        protocol::load_spec(&self.state, &spec).await?;
        Ok(Response::new(proto::LoadModelResponse {
            size_in_bytes: self.measured(&spec),
        }))
    }

    async fn unload_model(
        &self,
        request: Request<proto::UnloadModelRequest>,
    ) -> Answer<proto::UnloadModelResponse> {
        let _permit = self.admit(&request)?;
        // An id that names nothing was never loaded: nothing to do.
        if let Ok(spec) = self.state.spec(&request.get_ref().model_id, None) {
            protocol::unload(&self.state, &spec).await?;
        }
        Ok(Response::new(proto::UnloadModelResponse {}))
    }

    async fn predict_model_size(
        &self,
        request: Request<proto::PredictModelSizeRequest>,
    ) -> Answer<proto::PredictModelSizeResponse> {
        let _permit = self.admit(&request)?;
        let spec = self.spec(&request.get_ref().model_id)?;
        let declared = spec.memory_requirement.map(|b| b.bytes());
        Ok(Response::new(proto::PredictModelSizeResponse {
            size_in_bytes: declared.unwrap_or_else(|| self.default_size()),
        }))
    }

    async fn model_size(
        &self,
        request: Request<proto::ModelSizeRequest>,
    ) -> Answer<proto::ModelSizeResponse> {
        let _permit = self.admit(&request)?;
        let spec = self.spec(&request.get_ref().model_id)?;
        match self.measured(&spec) {
            0 => Err(ApiError::not_found(format!("model {} is not loaded", spec.key())).into()),
            bytes => Ok(Response::new(proto::ModelSizeResponse {
                size_in_bytes: bytes,
            })),
        }
    }

    async fn runtime_status(
        &self,
        request: Request<proto::RuntimeStatusRequest>,
    ) -> Answer<proto::RuntimeStatusResponse> {
        let _permit = self.admit(&request)?;
        // ModelMesh asks at its start: whatever was loaded by an earlier ModelMesh is unloaded,
        // so its view and the ledger agree.
        if self.state.options.control == ControlMode::External {
            for spec in self.state.manager.catalog().models() {
                if self.state.loaded_by_command(spec).await {
                    protocol::unload(&self.state, spec).await?;
                }
            }
        }
        let status = if protocol::server_ready(&self.state) {
            RuntimeState::Ready
        } else {
            RuntimeState::Starting
        };
        let method_infos = FORWARDED
            .iter()
            .map(|&method| {
                let info = MethodInfo {
                    id_injection_path: vec![1],
                };
                (method.to_owned(), info)
            })
            .collect();
        Ok(Response::new(proto::RuntimeStatusResponse {
            status: status as i32,
            capacity_in_bytes: self.capacity(),
            // The manager loads one model per device at a time.
            max_loading_concurrency: 1,
            model_loading_timeout_ms: LOAD_TIMEOUT_MS,
            default_model_size_in_bytes: self.default_size(),
            runtime_version: env!("CARGO_PKG_VERSION").to_owned(),
            method_infos,
            limit_model_concurrency: false,
            allow_any_method: false,
        }))
    }
}
