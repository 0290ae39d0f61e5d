//! The adapters' errors: each names the model, and the file, input or setting at fault.

use std::path::PathBuf;

use modelmux_runtime_ort::RuntimeError;

/// What an adapter can run into.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdapterError {
    /// A file the adapter needs is missing from the export.
    #[error("model {model}: {path} is missing; run `cargo xtask export {model}`")]
    MissingFile { model: String, path: PathBuf },

    /// A file of the export could not be read or parsed.
    #[error("model {model}: cannot read {path}: {reason}")]
    BadFile {
        model: String,
        path: PathBuf,
        reason: String,
    },

    /// The catalog entry lacks a setting the adapter needs, or has one it cannot use.
    #[error("model {model}: {reason}")]
    Config { model: String, reason: String },

    /// The request itself is invalid (empty input, size not a multiple of 8, …).
    #[error("model {model}: invalid request: {reason}")]
    InvalidRequest { model: String, reason: String },

    /// No adapter serves this architecture yet.
    #[error("model {model}: no adapter for architecture {architecture}")]
    Unsupported { model: String, architecture: String },

    /// The runtime failed.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),

    /// A remote API failed.
    #[error("model {model}: {reason}")]
    Remote { model: String, reason: String },

    /// A remote API failed in a way callers handle differently (auth, quota, timeout…).
    #[error("model {model}: {error}")]
    RemoteApi {
        model: String,
        #[source]
        error: crate::remote::RemoteError,
    },

    /// The caller cancelled the request (e.g. a progress callback asked to stop).
    #[error("model {model}: cancelled")]
    Cancelled { model: String },
}

/// The message a caught panic carried (`panic!` with a literal or a formatted string), for the
/// errors that report it.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned())
}
