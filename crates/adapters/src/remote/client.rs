//! A small client for OpenAI-compatible HTTP APIs: the key from the environment (kept out of
//! logs, errors and `Debug`), a configurable base URL, timeouts, and retries with exponential
//! backoff and jitter on 429 and 5xx that honour `Retry-After`.
//!
//! It is blocking (ureq): the adapters' traits are blocking, and a generation is a handful of
//! requests, so an async stack would buy nothing here. Async callers use `spawn_blocking`, as for
//! the local adapters.

use std::io::{BufRead, BufReader};
use std::time::{Duration, Instant};

use serde_json::Value;

/// What a remote API call can fail with. Messages from the server are included with the API key
/// (if the server echoes it) replaced by `[redacted]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RemoteError {
    /// The environment variable that should hold the API key is unset or empty.
    #[error("the API key is missing: set the environment variable {variable}")]
    MissingApiKey { variable: String },

    /// The server refused the key (401, 403).
    #[error("authentication failed (HTTP {status}): {message}")]
    Auth { status: u16, message: String },

    /// Rate limit or quota (429), still refused after the retries.
    #[error("rate limit or quota exceeded (HTTP 429) after {attempts} attempts: {message}")]
    Quota {
        message: String,
        attempts: u32,
        /// What the server last asked to wait, if it said.
        retry_after: Option<Duration>,
    },

    /// The request was invalid (400, 404, 413, 422…); retrying will not help.
    #[error("bad request (HTTP {status}): {message}")]
    BadRequest { status: u16, message: String },

    /// The server failed (5xx), still after the retries.
    #[error("server error (HTTP {status}) after {attempts} attempts: {message}")]
    Server {
        status: u16,
        message: String,
        attempts: u32,
    },

    /// No response (or no further streamed data) within the timeout.
    #[error("no response within {after:?}")]
    Timeout { after: Duration },

    /// The server could not be reached.
    #[error("cannot reach the server: {message}")]
    Connection { message: String },

    /// The response was not what the API documents (bad JSON, missing fields).
    #[error("malformed response: {message}")]
    MalformedResponse { message: String },
}

/// An API key: never printed, never logged.
#[derive(Clone)]
pub struct ApiKey(String);

impl ApiKey {
    /// Reads the key from the environment variable `variable`.
    pub fn from_env(variable: &str) -> Result<Self, RemoteError> {
        match std::env::var(variable) {
            Ok(key) if !key.trim().is_empty() => Ok(Self(key.trim().to_owned())),
            _ => Err(RemoteError::MissingApiKey {
                variable: variable.to_owned(),
            }),
        }
    }

    /// `text` with every occurrence of the key replaced by `[redacted]`.
    fn redact(&self, text: &str) -> String {
        if self.0.is_empty() {
            text.to_owned()
        } else {
            text.replace(&self.0, "[redacted]")
        }
    }
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKey([redacted])")
    }
}

/// Where and how to call the API.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteConfig {
    /// e.g. `https://api.openai.com/v1` (no trailing slash needed).
    pub base_url: String,
    /// The environment variable holding the key.
    pub api_key_env: String,
    /// How long to wait for a response, and between streamed chunks.
    pub timeout: Duration,
    /// Retries after the first attempt, on 429, 5xx and connection failures.
    pub max_retries: u32,
    /// The first backoff; each retry doubles it (with jitter in [½, 1]), up to `max_backoff`.
    pub initial_backoff: Duration,
    /// The longest wait between attempts, `Retry-After` included; a server asking for longer
    /// gets a [`RemoteError::Quota`] / [`RemoteError::Server`] instead of a wait.
    pub max_backoff: Duration,
}

impl Default for RemoteConfig {
    fn default() -> Self {
        Self {
            base_url: "https://api.openai.com/v1".into(),
            api_key_env: "OPENAI_API_KEY".into(),
            timeout: Duration::from_secs(60),
            max_retries: 3,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
        }
    }
}

/// A configured client with its key.
#[derive(Debug, Clone)]
pub struct ApiClient {
    config: RemoteConfig,
    key: ApiKey,
    agent: ureq::Agent,
}

/// A response being read line by line (server-sent events).
pub(crate) struct EventStream {
    lines: std::io::Lines<BufReader<ureq::BodyReader<'static>>>,
    timeout: Duration,
    key: ApiKey,
}

impl EventStream {
    /// The next `data:` payload, or `None` at `[DONE]` or the end of the body.
    pub(crate) fn next_data(&mut self) -> Result<Option<String>, RemoteError> {
        for line in self.lines.by_ref() {
            let line = line.map_err(|e| io_error(&e, self.timeout, &self.key))?;
            let Some(data) = line.strip_prefix("data:") else {
                continue;
            };
            let data = data.trim();
            if data == "[DONE]" {
                return Ok(None);
            }
            return Ok(Some(data.to_owned()));
        }
        Ok(None)
    }
}

impl ApiClient {
    /// A client for `config`, with the key read from `config.api_key_env`.
    pub fn new(config: RemoteConfig) -> Result<Self, RemoteError> {
        let key = ApiKey::from_env(&config.api_key_env)?;
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(config.timeout.min(Duration::from_secs(10))))
            .timeout_recv_response(Some(config.timeout))
            .timeout_per_read(Some(config.timeout))
            .user_agent(concat!("modelmux/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Ok(Self { config, key, agent })
    }

    /// The configuration.
    pub fn config(&self) -> &RemoteConfig {
        &self.config
    }

    fn url(&self, path: &str) -> String {
        format!(
            "{}/{}",
            self.config.base_url.trim_end_matches('/'),
            path.trim_start_matches('/')
        )
    }

    /// POSTs `body` as JSON to `path` and parses the JSON answer, retrying as configured.
    pub fn post_json(&self, path: &str, body: &Value) -> Result<Value, RemoteError> {
        let mut response = self.send(path, body)?;
        let text = response
            .body_mut()
            .with_config()
            .limit(256 * 1024 * 1024)
            .read_to_string()
            .map_err(|e| transport_error(e, self.config.timeout, &self.key))?;
        serde_json::from_str(&text).map_err(|e| RemoteError::MalformedResponse {
            message: format!("not JSON ({e}): {}", preview(&self.key.redact(&text))),
        })
    }

    /// POSTs `body` and returns the answer as a stream of server-sent events.
    pub(crate) fn post_stream(&self, path: &str, body: &Value) -> Result<EventStream, RemoteError> {
        let response = self.send(path, body)?;
        Ok(EventStream {
            lines: BufReader::new(response.into_body().into_reader()).lines(),
            timeout: self.config.timeout,
            key: self.key.clone(),
        })
    }

    /// Sends until a success, a final error, or the retries are spent.
    fn send(
        &self,
        path: &str,
        body: &Value,
    ) -> Result<ureq::http::Response<ureq::Body>, RemoteError> {
        let url = self.url(path);
        let payload = body.to_string();
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let started = Instant::now();
            // The log names the endpoint and the attempt, never the headers (the key is one).
            tracing::debug!(url = %url, attempt, "remote request");
            let result = self
                .agent
                .post(&url)
                .header("Authorization", &format!("Bearer {}", self.key.0))
                .header("Content-Type", "application/json")
                .send(payload.as_str());
            let retryable = match result {
                Ok(mut response) => {
                    let status = response.status().as_u16();
                    tracing::debug!(url = %url, attempt, status, elapsed = ?started.elapsed(), "remote response");
                    if (200..300).contains(&status) {
                        return Ok(response);
                    }
                    let retry_after = retry_after(response.headers());
                    let text = response.body_mut().read_to_string().unwrap_or_default();
                    let message = self.key.redact(&error_message(&text));
                    match status {
                        401 | 403 => return Err(RemoteError::Auth { status, message }),
                        429 => Failure::Quota {
                            message,
                            retry_after,
                        },
                        500..=599 => Failure::Server {
                            status,
                            message,
                            retry_after,
                        },
                        _ => return Err(RemoteError::BadRequest { status, message }),
                    }
                }
                Err(e) => match transport_error(e, self.config.timeout, &self.key) {
                    RemoteError::Connection { message } => Failure::Connection { message },
                    other => return Err(other),
                },
            };
            let wait = self.backoff(attempt, retryable.retry_after());
            let give_up = attempt > self.config.max_retries || wait > self.config.max_backoff;
            if give_up {
                return Err(retryable.into_error(attempt));
            }
            tracing::debug!(url = %url, attempt, wait = ?wait, "remote retry");
            std::thread::sleep(wait);
        }
    }

    /// The wait before attempt `attempt + 1`: the server's `Retry-After` when it gave one,
    /// otherwise `initial · 2^(attempt-1)` scaled by a jitter in [½, 1] and capped.
    fn backoff(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(wait) = retry_after {
            return wait;
        }
        let exp = self
            .config
            .initial_backoff
            .saturating_mul(1u32 << (attempt - 1).min(16));
        let capped = exp.min(self.config.max_backoff);
        capped.mul_f64(0.5 + 0.5 * jitter())
    }
}

/// A failure worth retrying, kept until the retries are spent.
enum Failure {
    Quota {
        message: String,
        retry_after: Option<Duration>,
    },
    Server {
        status: u16,
        message: String,
        retry_after: Option<Duration>,
    },
    Connection {
        message: String,
    },
}

impl Failure {
    fn retry_after(&self) -> Option<Duration> {
        match self {
            Failure::Quota { retry_after, .. } | Failure::Server { retry_after, .. } => {
                *retry_after
            }
            Failure::Connection { .. } => None,
        }
    }

    fn into_error(self, attempts: u32) -> RemoteError {
        match self {
            Failure::Quota {
                message,
                retry_after,
            } => RemoteError::Quota {
                message,
                attempts,
                retry_after,
            },
            Failure::Server {
                status, message, ..
            } => RemoteError::Server {
                status,
                message,
                attempts,
            },
            Failure::Connection { message } => RemoteError::Connection { message },
        }
    }
}

/// `Retry-After` in seconds (or OpenAI's `retry-after-ms`); HTTP dates are ignored.
fn retry_after(headers: &ureq::http::HeaderMap) -> Option<Duration> {
    if let Some(ms) = headers
        .get("retry-after-ms")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|v| v.is_finite() && *v >= 0.0)
    {
        return Some(Duration::from_secs_f64(ms / 1000.0));
    }
    headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|v| v.is_finite() && *v >= 0.0)
        .map(Duration::from_secs_f64)
}

/// The `error.message` of an OpenAI error body, else the body itself (shortened).
fn error_message(body: &str) -> String {
    serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| {
            v.pointer("/error/message")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .unwrap_or_else(|| preview(body))
}

fn preview(text: &str) -> String {
    let mut s: String = text.chars().take(200).collect();
    if text.chars().count() > 200 {
        s.push('…');
    }
    s
}

fn transport_error(e: ureq::Error, timeout: Duration, key: &ApiKey) -> RemoteError {
    match e {
        ureq::Error::Timeout(_) => RemoteError::Timeout { after: timeout },
        ureq::Error::Io(io) => io_error(&io, timeout, key),
        other => RemoteError::Connection {
            message: key.redact(&other.to_string()),
        },
    }
}

fn io_error(e: &std::io::Error, timeout: Duration, key: &ApiKey) -> RemoteError {
    if matches!(
        e.kind(),
        std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
    ) || e.to_string().to_ascii_lowercase().contains("timeout")
    {
        RemoteError::Timeout { after: timeout }
    } else {
        RemoteError::Connection {
            message: key.redact(&e.to_string()),
        }
    }
}

/// A number in [0, 1) that differs between calls, for backoff jitter (not for anything that
/// must be unpredictable).
fn jitter() -> f64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64)
        .unwrap_or(0);
    let mut z = nanos ^ COUNTER.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_redacted_and_never_debug_printed() {
        let key = ApiKey("sk-secret".into());
        assert_eq!(format!("{key:?}"), "ApiKey([redacted])");
        assert_eq!(key.redact("bad key sk-secret!"), "bad key [redacted]!");
    }

    #[test]
    fn error_messages_come_from_the_openai_error_body() {
        assert_eq!(
            error_message(r#"{"error":{"message":"nope","type":"x"}}"#),
            "nope"
        );
        assert_eq!(error_message("plain"), "plain");
    }

    #[test]
    fn jitter_stays_in_the_unit_interval() {
        for _ in 0..1000 {
            let j = jitter();
            assert!((0.0..1.0).contains(&j));
        }
    }
}
