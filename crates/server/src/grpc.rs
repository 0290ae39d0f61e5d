//! The Open Inference Protocol over gRPC: `inference.GRPCInferenceService` (tonic), with
//! Triton's model-configuration, statistics and repository extensions. Each RPC checks the
//! bearer token (`authorization: Bearer …` metadata) and takes a place under the concurrency
//! limit as the HTTP guard does, decodes its message, calls the transport-independent
//! operation in `protocol`, and encodes the answer. Tensors arrive as typed `contents` or as
//! `raw_input_contents` (laid out as the binary-data extension lays them out) and go back as
//! `raw_output_contents`, as Triton answers.

use std::sync::Arc;
use std::time::Instant;

use serde_json::{Map, Value};
use tokio::sync::OwnedSemaphorePermit;
use tonic::{Request, Response, Status};

use crate::AppState;
use crate::error::ApiError;
use crate::protocol::{self, given};
use crate::stats::{DurationStat, Report};
use crate::tensor::{
    Datatype, InferRequest, RequestedOutput, TensorData, WireTensor, decode_binary, encode_binary,
};

/// The tonic the generated client and server are built with (their API is tonic's).
pub use tonic;

/// The messages and service of `proto/grpc_predict_v2.proto` (package `inference`), server and
/// client.
pub mod proto {
    #![allow(clippy::all, clippy::pedantic, missing_docs)]
    tonic::include_proto!("inference");
}

use proto::grpc_inference_service_server::{GrpcInferenceService, GrpcInferenceServiceServer};
use proto::model_infer_request::InferInputTensor;
use proto::model_infer_response::InferOutputTensor;
use proto::model_metadata_response::TensorMetadata;
use proto::repository_index_response::ModelIndex;

/// The gRPC service over the server's state.
#[derive(Debug, Clone)]
pub(crate) struct Service {
    state: Arc<AppState>,
}

impl Service {
    /// The tonic service, refusing messages over the body limit the HTTP side applies.
    pub(crate) fn server(state: Arc<AppState>) -> GrpcInferenceServiceServer<Self> {
        let limit = state.options.max_body_bytes;
        GrpcInferenceServiceServer::new(Self { state })
            .max_decoding_message_size(limit)
            .max_encoding_message_size(usize::MAX)
    }

    fn admit<T>(&self, request: &Request<T>) -> Result<OwnedSemaphorePermit, Status> {
        admit(&self.state, request)
    }
}

/// For every gRPC call: the token check (`authorization: Bearer …` metadata) and a place under
/// the concurrency limit, held until the call returns.
pub(crate) fn admit<T>(
    state: &AppState,
    request: &Request<T>,
) -> Result<OwnedSemaphorePermit, Status> {
    let authorization = request
        .metadata()
        .get("authorization")
        .and_then(|v| v.to_str().ok());
    state.authorize(authorization)?;
    Ok(state.admit()?)
}

impl From<ApiError> for Status {
    /// As Triton maps its errors: 404 → `NOT_FOUND`, 400 → `INVALID_ARGUMENT`, 503 →
    /// `UNAVAILABLE`, 429 and 413 → `RESOURCE_EXHAUSTED`, 401 → `UNAUTHENTICATED`, 501 →
    /// `UNIMPLEMENTED`, anything else → `INTERNAL`.
    fn from(error: ApiError) -> Self {
        use axum::http::StatusCode as H;
        let code = match error.status {
            H::NOT_FOUND => tonic::Code::NotFound,
            H::BAD_REQUEST => tonic::Code::InvalidArgument,
            H::SERVICE_UNAVAILABLE | H::BAD_GATEWAY => tonic::Code::Unavailable,
            H::TOO_MANY_REQUESTS | H::PAYLOAD_TOO_LARGE => tonic::Code::ResourceExhausted,
            H::UNAUTHORIZED => tonic::Code::Unauthenticated,
            H::NOT_IMPLEMENTED => tonic::Code::Unimplemented,
            _ => tonic::Code::Internal,
        };
        Status::new(code, error.message)
    }
}

type Answer<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl GrpcInferenceService for Service {
    /// Liveness and readiness skip the token and the limit, as the HTTP probes do.
    async fn server_live(
        &self,
        _: Request<proto::ServerLiveRequest>,
    ) -> Answer<proto::ServerLiveResponse> {
        Ok(Response::new(proto::ServerLiveResponse { live: true }))
    }

    async fn server_ready(
        &self,
        _: Request<proto::ServerReadyRequest>,
    ) -> Answer<proto::ServerReadyResponse> {
        Ok(Response::new(proto::ServerReadyResponse {
            ready: protocol::server_ready(&self.state),
        }))
    }

    async fn model_ready(
        &self,
        request: Request<proto::ModelReadyRequest>,
    ) -> Answer<proto::ModelReadyResponse> {
        let _permit = self.admit(&request)?;
        let request = request.into_inner();
        let spec = self.state.spec(&request.name, given(&request.version))?;
        Ok(Response::new(proto::ModelReadyResponse {
            ready: protocol::model_ready(&self.state, &spec).await,
        }))
    }

    async fn server_metadata(
        &self,
        request: Request<proto::ServerMetadataRequest>,
    ) -> Answer<proto::ServerMetadataResponse> {
        let _permit = self.admit(&request)?;
        Ok(Response::new(proto::ServerMetadataResponse {
            name: protocol::SERVER_NAME.to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            extensions: protocol::EXTENSIONS.iter().map(|&e| e.to_owned()).collect(),
        }))
    }

    async fn model_metadata(
        &self,
        request: Request<proto::ModelMetadataRequest>,
    ) -> Answer<proto::ModelMetadataResponse> {
        let _permit = self.admit(&request)?;
        let request = request.into_inner();
        let spec = self.state.spec(&request.name, given(&request.version))?;
        let meta = protocol::metadata(&self.state, &spec).await?;
        let side = |tensors: Vec<crate::models::TensorMetadata>| {
            tensors
                .into_iter()
                .map(|t| TensorMetadata {
                    name: t.name,
                    datatype: t.datatype,
                    shape: t.shape,
                })
                .collect()
        };
        Ok(Response::new(proto::ModelMetadataResponse {
            name: meta.name,
            versions: meta.versions,
            platform: meta.platform.to_owned(),
            inputs: side(meta.inputs),
            outputs: side(meta.outputs),
        }))
    }

    async fn model_infer(
        &self,
        request: Request<proto::ModelInferRequest>,
    ) -> Answer<proto::ModelInferResponse> {
        let started = Instant::now();
        let _permit = self.admit(&request)?;
        let request = request.into_inner();
        let spec = self
            .state
            .spec(&request.model_name, given(&request.model_version))?;
        let decoded = decode_infer(request);
        let (request, outputs) = protocol::infer(&self.state, &spec, started, decoded).await?;
        Ok(Response::new(proto::ModelInferResponse {
            model_name: spec.id.clone(),
            model_version: spec.version.to_string(),
            id: request.id.unwrap_or_default(),
            raw_output_contents: outputs.iter().map(|o| encode_binary(&o.data)).collect(),
            outputs: outputs
                .into_iter()
                .map(|o| InferOutputTensor {
                    datatype: o.data.datatype().as_str().to_owned(),
                    shape: o.shape.iter().map(|&d| d as i64).collect(),
                    name: o.name,
                    ..InferOutputTensor::default()
                })
                .collect(),
            ..proto::ModelInferResponse::default()
        }))
    }

    async fn model_config(
        &self,
        request: Request<proto::ModelConfigRequest>,
    ) -> Answer<proto::ModelConfigResponse> {
        let _permit = self.admit(&request)?;
        let request = request.into_inner();
        let spec = self.state.spec(&request.name, given(&request.version))?;
        let config = protocol::config(&self.state, &spec).await?;
        let data_type = |name: &str| {
            proto::DataType::from_str_name(name).unwrap_or(proto::DataType::TypeInvalid) as i32
        };
        Ok(Response::new(proto::ModelConfigResponse {
            config: Some(proto::ModelConfig {
                name: config.name,
                platform: config.platform.to_owned(),
                backend: config.backend.to_owned(),
                max_batch_size: config.max_batch_size,
                input: config
                    .input
                    .into_iter()
                    .map(|t| proto::ModelInput {
                        data_type: data_type(t.data_type),
                        name: t.name,
                        dims: t.dims,
                    })
                    .collect(),
                output: config
                    .output
                    .into_iter()
                    .map(|t| proto::ModelOutput {
                        data_type: data_type(t.data_type),
                        name: t.name,
                        dims: t.dims,
                    })
                    .collect(),
            }),
        }))
    }

    async fn model_statistics(
        &self,
        request: Request<proto::ModelStatisticsRequest>,
    ) -> Answer<proto::ModelStatisticsResponse> {
        let _permit = self.admit(&request)?;
        let request = request.into_inner();
        let reports =
            protocol::statistics(&self.state, given(&request.name), given(&request.version))?;
        Ok(Response::new(proto::ModelStatisticsResponse {
            model_stats: reports.into_iter().map(statistics).collect(),
        }))
    }

    async fn repository_index(
        &self,
        request: Request<proto::RepositoryIndexRequest>,
    ) -> Answer<proto::RepositoryIndexResponse> {
        let _permit = self.admit(&request)?;
        let index = protocol::index(&self.state, request.get_ref().ready).await;
        Ok(Response::new(proto::RepositoryIndexResponse {
            models: index
                .into_iter()
                .map(|m| ModelIndex {
                    name: m.name,
                    version: m.version,
                    state: m.state.to_owned(),
                    reason: m.reason,
                })
                .collect(),
        }))
    }

    async fn repository_model_load(
        &self,
        request: Request<proto::RepositoryModelLoadRequest>,
    ) -> Answer<proto::RepositoryModelLoadResponse> {
        let _permit = self.admit(&request)?;
        let request = request.into_inner();
        let spec = self.state.spec(&request.model_name, None)?;
        let names = request.parameters.keys().map(String::as_str);
        protocol::load(&self.state, &spec, names).await?;
        Ok(Response::new(proto::RepositoryModelLoadResponse {}))
    }

    async fn repository_model_unload(
        &self,
        request: Request<proto::RepositoryModelUnloadRequest>,
    ) -> Answer<proto::RepositoryModelUnloadResponse> {
        let _permit = self.admit(&request)?;
        let spec = self.state.spec(&request.get_ref().model_name, None)?;
        protocol::unload(&self.state, &spec).await?;
        Ok(Response::new(proto::RepositoryModelUnloadResponse {}))
    }
}

/// A gRPC inference request as the protocol's request: tensors from `raw_input_contents` (one
/// entry per input, in order) or from each input's typed `contents`; every output goes back as
/// raw contents.
fn decode_infer(request: proto::ModelInferRequest) -> Result<InferRequest, ApiError> {
    let raw = request.raw_input_contents;
    if !raw.is_empty() && raw.len() != request.inputs.len() {
        return Err(ApiError::bad_request(format!(
            "raw_input_contents has {} entries for {} inputs; give one per input, in order",
            raw.len(),
            request.inputs.len()
        )));
    }
    let mut inputs = Vec::with_capacity(request.inputs.len());
    for (i, input) in request.inputs.into_iter().enumerate() {
        let datatype = Datatype::parse(&input.datatype)
            .map_err(|e| ApiError::bad_request(format!("input `{}`: {e}", input.name)))?;
        let data = match raw.get(i) {
            Some(_) if input.contents.is_some() => {
                return Err(ApiError::bad_request(format!(
                    "input `{}` has both contents and raw_input_contents",
                    input.name
                )));
            }
            Some(bytes) => decode_binary(&input.name, datatype, bytes)?,
            None => typed_contents(&input, datatype)?,
        };
        inputs.push(WireTensor::checked(input.name, &input.shape, data)?);
    }
    let outputs = (!request.outputs.is_empty()).then(|| {
        request
            .outputs
            .into_iter()
            .map(|o| RequestedOutput {
                name: o.name,
                binary: true,
            })
            .collect()
    });
    Ok(InferRequest {
        id: given(&request.id).map(str::to_owned),
        parameters: parameters(request.parameters),
        inputs,
        outputs,
        binary_default: true,
    })
}

/// An input's typed `contents` (absent: no elements), from the field its datatype uses.
fn typed_contents(input: &InferInputTensor, datatype: Datatype) -> Result<TensorData, ApiError> {
    let contents = input.contents.clone().unwrap_or_default();
    let name = &input.name;
    Ok(match datatype {
        Datatype::Bool => TensorData::Bool(contents.bool_contents),
        Datatype::Uint8 => TensorData::U8(
            contents
                .uint_contents
                .iter()
                .map(|&v| u8::try_from(v))
                .collect::<Result<_, _>>()
                .map_err(|_| {
                    ApiError::bad_request(format!(
                        "input `{name}`: a UINT8 element in uint_contents exceeds 255"
                    ))
                })?,
        ),
        Datatype::Int32 => TensorData::I32(contents.int_contents),
        Datatype::Int64 => TensorData::I64(contents.int64_contents),
        Datatype::Fp32 => TensorData::F32(contents.fp32_contents),
        Datatype::Bytes => TensorData::Bytes(contents.bytes_contents),
        Datatype::Fp16 => {
            return Err(ApiError::bad_request(format!(
                "input `{name}`: FP16 has no typed contents; send it as raw_input_contents"
            )));
        }
    })
}

/// Request parameters as the JSON values the HTTP side reads them as.
fn parameters(
    parameters: std::collections::HashMap<String, proto::InferParameter>,
) -> Map<String, Value> {
    use proto::infer_parameter::ParameterChoice as P;
    parameters
        .into_iter()
        .filter_map(|(name, p)| {
            let value = match p.parameter_choice? {
                P::BoolParam(b) => Value::from(b),
                P::Int64Param(n) => Value::from(n),
                P::StringParam(s) => Value::from(s),
                P::DoubleParam(x) => Value::from(x),
                P::Uint64Param(n) => Value::from(n),
            };
            Some((name, value))
        })
        .collect()
}

fn duration(stat: DurationStat) -> Option<proto::StatisticDuration> {
    Some(proto::StatisticDuration {
        count: stat.count,
        ns: stat.ns,
    })
}

fn statistics(report: Report) -> proto::ModelStatistics {
    let s = report.stats;
    let zero = DurationStat::default();
    proto::ModelStatistics {
        name: report.name,
        version: report.version,
        last_inference: s.last_inference,
        inference_count: s.inference_count,
        execution_count: s.execution_count,
        inference_stats: Some(proto::InferStatistics {
            success: duration(s.success),
            fail: duration(s.fail),
            queue: duration(s.queue),
            compute_input: duration(zero),
            compute_infer: duration(s.compute_infer),
            compute_output: duration(zero),
            cache_hit: duration(zero),
            cache_miss: duration(zero),
        }),
        memory_usage: report
            .memory
            .into_iter()
            .map(|m| proto::MemoryUsage {
                r#type: m.kind.to_owned(),
                id: m.id,
                byte_size: m.byte_size,
            })
            .collect(),
    }
}
