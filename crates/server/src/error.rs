//! The server's errors: [`ServeError`] for starting and running it, [`ApiError`] for one
//! request, mapped to HTTP statuses as Triton maps its error codes (`NOT_FOUND` → 404,
//! `INVALID_ARG` → 400, `UNAVAILABLE` → 503, `INTERNAL` → 500) with a `{"error": msg}` body.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use modelmux::ManagerError;
use modelmux::adapters::AdapterError;
use modelmux::runtime::RuntimeError;

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The address could not be bound.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        address: String,
        #[source]
        source: std::io::Error,
    },
    /// The token file could not be read or holds no token.
    #[error("token file {path}: {reason}")]
    TokenFile { path: String, reason: String },
    /// Serving failed after it started.
    #[error("serving HTTP failed: {0}")]
    Io(#[from] std::io::Error),
    /// Serving gRPC failed after it started.
    #[error("serving gRPC failed: {0}")]
    Grpc(#[source] tonic::transport::Error),
}

/// One failed request: an HTTP status, a message for the client and, for transient
/// conditions, how many seconds to wait before retrying.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub retry_after: Option<u32>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    pub fn unavailable(message: impl Into<String>, retry_after: Option<u32>) -> Self {
        Self {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: message.into(),
            retry_after,
        }
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }

    /// Sets the status, keeping message and retry hint (e.g. 429 on OpenAI routes).
    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.message });
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

impl From<RuntimeError> for ApiError {
    fn from(error: RuntimeError) -> Self {
        let message = error.to_string();
        match error {
            RuntimeError::Input { .. } | RuntimeError::Output { .. } => Self::bad_request(message),
            // A full queue is transient: clients back off and retry.
            RuntimeError::Overloaded { .. } => Self::unavailable(message, Some(1)),
            RuntimeError::SessionClosed { .. } => Self::unavailable(message, Some(1)),
            _ => Self::internal(message),
        }
    }
}

impl From<AdapterError> for ApiError {
    fn from(error: AdapterError) -> Self {
        match error {
            AdapterError::Runtime(e) => e.into(),
            e @ AdapterError::InvalidRequest { .. } => Self::bad_request(e.to_string()),
            e @ (AdapterError::Remote { .. } | AdapterError::RemoteApi { .. }) => {
                Self::new(StatusCode::BAD_GATEWAY, e.to_string())
            }
            e => Self::internal(e.to_string()),
        }
    }
}

impl From<ManagerError> for ApiError {
    fn from(error: ManagerError) -> Self {
        let message = error.to_string();
        match error {
            ManagerError::UnknownModel(_) => Self::not_found(message),
            ManagerError::Runtime(e) => e.into(),
            // Room may come back when other requests return their models.
            ManagerError::InsufficientRoom(_) | ManagerError::Busy { .. } => {
                Self::unavailable(message, Some(1))
            }
            ManagerError::Placement(_)
            | ManagerError::Ledger(_)
            | ManagerError::LoadFailed { .. }
            | ManagerError::ShuttingDown => Self::unavailable(message, None),
            ManagerError::Pinned { .. } => Self::bad_request(message),
            _ => Self::internal(message),
        }
    }
}
