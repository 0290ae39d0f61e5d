//! `modelmux-server`: modelmux as a model server, so an existing control plane (KServe,
//! Seldon Core 2, ModelMesh) can place models across machines while modelmux manages memory on
//! each.
//!
//! ```text
//! HTTP (axum) → guard (token → 401, body size → 413, concurrency → 429/503 + Retry-After)
//!   → /v2 …     Open Inference Protocol v2 (JSON tensors, Triton's binary-data extension and
//!               raw binary requests, the generate extension), Triton's repository, statistics
//!               and model-configuration extensions
//!   → /v1 …     OpenAI-compatible routes (models, embeddings, chat completions with SSE, images)
//!   → /metrics  the manager's Prometheus text plus request counters
//! gRPC (tonic) → the same token check and limit per call
//!   → inference.GRPCInferenceService (the OIP's RPCs, typed or raw contents; Triton's
//!     repository, statistics and model-configuration RPCs)
//!   → mmesh.ModelRuntime (ModelMesh: capacity, load/unload, sizes from the ledger)
//!     └─ protocol (both transports) → ModelManager::get_model → lease → family object (or
//!        SessionPool) → ONNX Runtime
//! ```
//!
//! # Typed inputs and outputs per family
//!
//! Every catalog model is reachable under its catalog id (`/v2/models/{id}`, versions as
//! `/v2/models/{id}/versions/{catalog version}`). Family models take and return these tensors:
//!
//! | kind (architecture) | inputs | outputs | parameters |
//! |---|---|---|---|
//! | text encoder (`bert`, `openai-embedding`) | `text` BYTES `[n]` | `embedding` FP32 `[n, d]` | |
//! | text classifier (`bert` with `labels`) | `text` BYTES `[n]` | `probabilities` FP32 `[n, labels]` (label order), `label` BYTES `[n]` | |
//! | text generator (`decoder-only`, `encoder-decoder`, `openai-chat`) | `prompt` BYTES `[n]` | `text` BYTES `[n]`, `finish_reason` BYTES `[n]` (`length`, `eos_token`, `stop_sequence`) | `max_tokens`, `min_tokens`, `temperature`, `top_k`, `top_p`, `repetition_penalty`, `seed`, `stop` |
//! | image–text encoder (`clip`, `align`, `flava`) | `text` BYTES `[n]` and/or `image` BYTES `[m]` (PNG/JPEG/WebP files) | `embedding` FP32 `[n, d]`, `image_embedding` FP32 `[m, d]` | |
//! | text to image (`stable-diffusion`, `terrain-diffusion`, `dall-e`) | `prompt` BYTES `[1]`, optional `negative_prompt` BYTES `[1]` | `image` UINT8 `[b, h, w, 3]`, `seed` INT64 `[1]` | `width`, `height`, `steps`, `guidance_scale`, `seed`, `batch_count` |
//! | tensor (any other architecture, or `params.extra.serving: tensor`) | the ONNX inputs | the ONNX outputs | |
//!
//! Tensor models are served through a [`SessionPool`](modelmux::runtime::SessionPool) over their
//! main ONNX file (BOOL, UINT8, INT32, INT64, FP16, FP32); their metadata comes from the loaded
//! session.
//!
//! # Control modes
//!
//! [`ControlMode::Policy`]: models load on first request and modelmux's swap policy evicts idle
//! ones; a model is "ready" unless its last load failed. [`ControlMode::External`]: models load
//! and unload only through the repository extension, stay pinned while loaded (the policy never
//! evicts them), and a model that is not loaded answers 404, which ModelMesh reads as "not here".

mod error;
mod generate;
pub mod grpc;
pub mod modelmesh;
mod models;
mod oip;
mod openai;
mod ops;
mod protocol;
mod stats;
mod tensor;

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use modelmux::registry::ModelSpec;
use modelmux::{ModelManager, PinGuard};
use tokio::net::TcpListener;
use tokio::sync::{RwLock, Semaphore};

pub use crate::error::{ApiError, ServeError};
pub use crate::models::{Kind, ServeLoader};
pub use crate::ops::Tokens;
pub use crate::tensor::{Datatype, TensorData, WireTensor, decode_request};

use crate::models::Served;
use crate::stats::Stats;

/// Who decides which models are loaded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ControlMode {
    /// modelmux: load on first use, evict idle models under its swap policy.
    #[default]
    Policy,
    /// An external control plane: load and unload on command only, never evict.
    External,
}

/// How the server behaves.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    pub control: ControlMode,
    /// Accepted bearer tokens; none means no authentication.
    pub tokens: Tokens,
    /// The largest request body accepted (larger is 413).
    pub max_body_bytes: usize,
    /// Requests handled at once (more is 429 on `/v1`, 503 on `/v2`, with `Retry-After`).
    pub max_concurrency: usize,
    /// How long shutdown waits for models in use to be returned.
    pub shutdown_grace: Duration,
    /// How long an unload waits for a model's in-flight requests.
    pub unload_wait: Duration,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            control: ControlMode::Policy,
            tokens: Tokens::none(),
            max_body_bytes: 64 * 1024 * 1024,
            max_concurrency: 256,
            shutdown_grace: Duration::from_secs(30),
            unload_wait: Duration::from_secs(30),
        }
    }
}

/// Whether a model is loaded by command (external control), and the pin that keeps it.
#[derive(Debug, Default)]
pub(crate) struct Gate {
    loaded: bool,
    pin: Option<PinGuard>,
}

pub(crate) struct AppState {
    manager: ModelManager,
    options: ServerOptions,
    /// One per catalog entry (`id@version`): infer takes it shared, load and unload exclusively,
    /// so no request slips a lease in between an unload's check and the unload.
    gates: HashMap<String, Arc<RwLock<Gate>>>,
    stats: Stats,
    limiter: Arc<Semaphore>,
    /// Cleared when shutdown begins: readiness turns 503 while in-flight requests finish.
    accepting: AtomicBool,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl AppState {
    /// The catalog entry `name` (an id, or `id@version`) at `version` if given; 404 otherwise.
    pub(crate) fn spec(&self, name: &str, version: Option<&str>) -> Result<ModelSpec, ApiError> {
        let reference = match version {
            Some(v) => format!("{name}@{v}"),
            None => name.to_owned(),
        };
        self.manager
            .catalog()
            .get(&reference)
            .cloned()
            .map_err(|e| ApiError::not_found(e.to_string()))
    }

    fn gate(&self, spec: &ModelSpec) -> Arc<RwLock<Gate>> {
        self.gates
            .get(&spec.key())
            .cloned()
            .unwrap_or_else(|| Arc::new(RwLock::new(Gate::default())))
    }

    /// A lease on the model as its kind. Under external control a model that was not loaded
    /// by command is 404 and is never loaded here.
    pub(crate) async fn lease(&self, spec: &ModelSpec) -> Result<Served, ApiError> {
        if self.options.control == ControlMode::External {
            let gate = self.gate(spec);
            let gate = gate.read().await;
            if !gate.loaded {
                return Err(not_loaded(spec));
            }
            return Ok(Served::lease(&self.manager, spec).await?);
        }
        Ok(Served::lease(&self.manager, spec).await?)
    }

    /// Whether the model is loaded by command (external control).
    pub(crate) async fn loaded_by_command(&self, spec: &ModelSpec) -> bool {
        self.gate(spec).read().await.loaded
    }
}

pub(crate) fn not_loaded(spec: &ModelSpec) -> ApiError {
    ApiError::not_found(format!(
        "model {} is not loaded (external control): POST /v2/repository/models/{}/load first",
        spec.key(),
        spec.id
    ))
}

/// The model server: a router over one [`ModelManager`].
#[derive(Debug, Clone)]
pub struct Server {
    state: Arc<AppState>,
}

impl Server {
    /// A server over `manager`. The manager should load with [`ServeLoader`] so tensor-served
    /// models become session pools.
    pub fn new(manager: ModelManager, options: ServerOptions) -> Self {
        let gates = manager
            .catalog()
            .models()
            .iter()
            .map(|spec| (spec.key(), Arc::new(RwLock::new(Gate::default()))))
            .collect();
        let limiter = Arc::new(Semaphore::new(options.max_concurrency.max(1)));
        Self {
            state: Arc::new(AppState {
                manager,
                options,
                gates,
                stats: Stats::default(),
                limiter,
                accepting: AtomicBool::new(true),
            }),
        }
    }

    /// Every route, behind the guard.
    pub fn router(&self) -> Router {
        let state = Arc::clone(&self.state);
        Router::new()
            .route("/v2/health/live", get(oip::live))
            .route("/v2/health/ready", get(oip::ready))
            .route("/v2", get(oip::server_metadata))
            .route("/v2/models/stats", get(oip::all_stats))
            .route("/v2/models/{name}", get(oip::model_metadata))
            .route("/v2/models/{name}/ready", get(oip::model_ready))
            .route("/v2/models/{name}/config", get(oip::model_config))
            .route("/v2/models/{name}/infer", post(oip::infer))
            .route("/v2/models/{name}/stats", get(oip::model_stats))
            .route("/v2/models/{name}/generate", post(generate::generate))
            .route(
                "/v2/models/{name}/generate_stream",
                post(generate::generate_stream),
            )
            .route(
                "/v2/models/{name}/versions/{version}/generate",
                post(generate::generate),
            )
            .route(
                "/v2/models/{name}/versions/{version}/generate_stream",
                post(generate::generate_stream),
            )
            .route(
                "/v2/models/{name}/versions/{version}",
                get(oip::model_metadata),
            )
            .route(
                "/v2/models/{name}/versions/{version}/ready",
                get(oip::model_ready),
            )
            .route(
                "/v2/models/{name}/versions/{version}/config",
                get(oip::model_config),
            )
            .route(
                "/v2/models/{name}/versions/{version}/infer",
                post(oip::infer),
            )
            .route(
                "/v2/models/{name}/versions/{version}/stats",
                get(oip::model_stats),
            )
            .route("/v2/repository/index", post(oip::repository_index))
            .route("/v2/repository/models/{name}/load", post(oip::load))
            .route("/v2/repository/models/{name}/unload", post(oip::unload))
            .route("/v1/models", get(openai::models))
            .route("/v1/embeddings", post(openai::embeddings))
            .route("/v1/chat/completions", post(openai::chat_completions))
            .route("/v1/images/generations", post(openai::images))
            .route("/metrics", get(ops::metrics))
            .fallback(ops::no_route)
            .layer(axum::middleware::from_fn_with_state(
                Arc::clone(&state),
                ops::guard,
            ))
            .layer(DefaultBodyLimit::max(state.options.max_body_bytes))
            .with_state(state)
    }

    /// Loads `name` (an id or `id@version`) as the repository extension's load does; for
    /// models a deployment wants loaded before the first request.
    pub async fn load(&self, name: &str) -> Result<(), ApiError> {
        let spec = self.state.spec(name, None)?;
        protocol::load_spec(&self.state, &spec).await
    }

    /// The manager this server serves from.
    pub fn manager(&self) -> &ModelManager {
        &self.state.manager
    }

    /// Serves HTTP on `listener` until `shutdown` completes, then stops accepting connections,
    /// lets in-flight requests finish, and shuts the manager down (unloading every model).
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        self.run(listener, None, shutdown).await
    }

    /// Serves HTTP on `http` and gRPC (`inference.GRPCInferenceService`) on `grpc` until
    /// `shutdown` completes; then both stop accepting, both finish their in-flight calls, and
    /// the manager shuts down.
    pub async fn serve_with_grpc(
        self,
        http: TcpListener,
        grpc: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        self.run(http, Some(grpc), shutdown).await
    }

    async fn run(
        self,
        http: TcpListener,
        grpc: Option<TcpListener>,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        let state = Arc::clone(&self.state);
        // One shutdown signal, seen by both servers.
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let stopping = Arc::clone(&self.state);
        tokio::spawn(async move {
            shutdown.await;
            stopping.accepting.store(false, Ordering::Release);
            tracing::info!("shutting down: finishing in-flight requests");
            let _ = stop.send(true);
        });
        let signal = |mut stopped: tokio::sync::watch::Receiver<bool>| async move {
            let _ = stopped.wait_for(|&s| s).await;
        };
        let http = async {
            axum::serve(http, self.router())
                .with_graceful_shutdown(signal(stopped.clone()))
                .await
                .map_err(ServeError::from)
        };
        let grpc = async {
            let Some(listener) = grpc else {
                return Ok(());
            };
            tonic::transport::Server::builder()
                .add_service(grpc::Service::server(Arc::clone(&state)))
                .add_service(modelmesh::Runtime::server(Arc::clone(&state)))
                .serve_with_incoming_shutdown(
                    // Without TCP_NODELAY a small answer waits on the client's delayed ACK
                    // (about 40 ms a call).
                    tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
                    signal(stopped.clone()),
                )
                .await
                .map_err(ServeError::Grpc)
        };
        tokio::try_join!(http, grpc)?;
        // Pins of externally loaded models are dropped so the manager can unload them.
        for gate in state.gates.values() {
            gate.write().await.pin = None;
        }
        let still_leased = state.manager.shutdown(state.options.shutdown_grace).await;
        if !still_leased.is_empty() {
            tracing::warn!(models = ?still_leased, "models still in use at shutdown");
        }
        Ok(())
    }
}

/// Binds `host:port` (port 0 picks a free one).
pub async fn bind(host: &str, port: u16) -> Result<TcpListener, ServeError> {
    let address = format!("{host}:{port}");
    TcpListener::bind((host, port))
        .await
        .map_err(|source| ServeError::Bind { address, source })
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM (what Kubernetes sends before killing a pod).
pub async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::warn!("cannot listen for SIGTERM: {e}");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
}
