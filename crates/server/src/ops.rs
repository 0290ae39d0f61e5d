//! Operations: bearer tokens (compared in constant time, never logged), request size and
//! concurrency limits, `/metrics`, and the answer for unknown routes.

use std::path::Path;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt as _;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::sync::OwnedSemaphorePermit;

use crate::AppState;
use crate::error::{ApiError, ServeError};

/// The accepted bearer tokens, kept only as SHA-256 digests: comparing digests in constant
/// time reveals neither the tokens nor their lengths, and `Debug` shows only how many there are.
#[derive(Clone, Default)]
pub struct Tokens {
    digests: Vec<[u8; 32]>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tokens({} configured)", self.digests.len())
    }
}

impl Tokens {
    /// No authentication.
    pub fn none() -> Self {
        Self::default()
    }

    /// These tokens (empty strings are ignored).
    pub fn new<S: AsRef<str>>(tokens: impl IntoIterator<Item = S>) -> Self {
        Self {
            digests: tokens
                .into_iter()
                .filter(|t| !t.as_ref().is_empty())
                .map(|t| digest(t.as_ref().as_bytes()))
                .collect(),
        }
    }

    /// One token per non-empty line of `path` (surrounding whitespace ignored).
    pub fn from_file(path: &Path) -> Result<Self, ServeError> {
        let text = std::fs::read_to_string(path).map_err(|e| ServeError::TokenFile {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        let tokens = Self::new(text.lines().map(str::trim));
        if tokens.is_empty() {
            return Err(ServeError::TokenFile {
                path: path.display().to_string(),
                reason: "it holds no token".to_owned(),
            });
        }
        Ok(tokens)
    }

    pub fn is_empty(&self) -> bool {
        self.digests.is_empty()
    }

    /// Whether `candidate` is one of the tokens; every stored digest is compared, so the time
    /// taken does not depend on which one matches.
    pub fn accepts(&self, candidate: &str) -> bool {
        let candidate = digest(candidate.as_bytes());
        let mut found = subtle::Choice::from(0);
        for stored in &self.digests {
            found |= stored.ct_eq(&candidate);
        }
        found.into()
    }
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

impl AppState {
    /// Checks an `Authorization` value (`Bearer <token>`) against the accepted tokens; without
    /// configured tokens everything passes. A missing or wrong token is a 401.
    pub(crate) fn authorize(&self, authorization: Option<&str>) -> Result<(), ApiError> {
        let tokens = &self.options.tokens;
        if tokens.is_empty() {
            return Ok(());
        }
        let presented = authorization
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim);
        if presented.is_some_and(|token| tokens.accepts(token)) {
            Ok(())
        } else {
            Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "missing or invalid bearer token",
            ))
        }
    }

    /// A place under the concurrency limit, held until the request is answered; none left is a
    /// 503 with a retry hint.
    pub(crate) fn admit(&self) -> Result<OwnedSemaphorePermit, ApiError> {
        Arc::clone(&self.limiter).try_acquire_owned().map_err(|_| {
            ApiError::unavailable(
                format!(
                    "the server is handling {} requests already; retry later",
                    self.options.max_concurrency
                ),
                Some(1),
            )
        })
    }
}

/// Health probes come from kubelets without credentials and cost nothing, so they skip the
/// token check and the concurrency limit.
fn is_probe(path: &str) -> bool {
    matches!(path, "/v2/health/live" | "/v2/health/ready")
}

/// The HTTP guard: token check → 401, declared body size → 413, concurrency → 429 on `/v1`
/// (what OpenAI clients retry on) or 503 elsewhere, both with `Retry-After`.
pub(crate) async fn guard(
    State(state): State<Arc<AppState>>,
    request: Request<Body>,
    next: Next,
) -> Response {
    let path = request.uri().path().to_owned();
    if is_probe(&path) {
        return next.run(request).await;
    }
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if let Err(e) = state.authorize(authorization) {
        let mut response = e.into_response();
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return response;
    }
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let limit = state.options.max_body_bytes;
    if declared.is_some_and(|n| n > limit as u64) {
        return ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the request body exceeds the limit of {limit} bytes"),
        )
        .into_response();
    }
    let permit = match state.admit() {
        Ok(permit) => permit,
        // OpenAI clients retry on 429.
        Err(e) if path.starts_with("/v1/") => {
            return e.with_status(StatusCode::TOO_MANY_REQUESTS).into_response();
        }
        Err(e) => return e.into_response(),
    };
    let response = next.run(request).await;
    // A streamed answer (server-sent events) keeps its permit until its last event, not just
    // until its headers; other bodies are complete here and keep their Content-Length.
    let streamed = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    let response = if streamed {
        response.map(|body| {
            Body::from_stream(body.into_data_stream().map(move |chunk| {
                let _held = &permit;
                chunk
            }))
        })
    } else {
        drop(permit);
        response
    };
    // A body cut off by the streaming limit (no Content-Length) comes back as axum's plain
    // 413; it is answered in the protocol's JSON shape instead.
    if response.status() == StatusCode::PAYLOAD_TOO_LARGE
        && response.headers().get(header::CONTENT_TYPE)
            != Some(&HeaderValue::from_static("application/json"))
    {
        return ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the request body exceeds the limit of {limit} bytes"),
        )
        .into_response();
    }
    response
}

/// `GET /metrics`: the manager's Prometheus text, then the request counters.
pub(crate) async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let mut text = state.manager.prometheus();
    text.push_str(&state.stats.prometheus());
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        )],
        text,
    )
        .into_response()
}

/// Any other path.
pub(crate) async fn no_route(request: Request<Body>) -> Response {
    ApiError::not_found(format!(
        "no route {} {}",
        request.method(),
        request.uri().path()
    ))
    .into_response()
}
