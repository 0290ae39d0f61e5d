//! The errors of this crate: each names the library, model, provider or tensor involved.

use std::path::PathBuf;

use crate::discovery::LoadAttempt;
use crate::tensor::ElementType;

/// Everything that can go wrong between finding ONNX Runtime and reading a session's outputs.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RuntimeError {
    /// No candidate library could be loaded.
    #[error(
        "ONNX Runtime could not be loaded; tried:\n{}\nrun `cargo xtask setup` (or `cargo xtask setup --gpu`), or set ORT_DYLIB_PATH to a libonnxruntime.so of version {} or newer",
        LoadAttempt::list(.attempts),
        crate::ONNXRUNTIME_VERSION
    )]
    LibraryNotFound { attempts: Vec<LoadAttempt> },

    /// A library was found but it is too old for this build.
    #[error(
        "the ONNX Runtime at {path} is version {found}, older than the {} modelmux is built for; run `cargo xtask setup`",
        crate::ONNXRUNTIME_VERSION
    )]
    LibraryVersion { path: PathBuf, found: String },

    /// ONNX Runtime itself reported an error.
    #[error("ONNX Runtime: {0}")]
    Ort(#[from] ort::Error),

    /// An execution provider could not be used, and the spec does not allow running on CPU instead.
    #[error("execution provider {provider} is unavailable: {reason}")]
    ProviderUnavailable { provider: String, reason: String },

    /// The model needs a newer ONNX Runtime than the one loaded.
    #[error(
        "{path}: incompatible model: {found} (ONNX Runtime {runtime_version} supports IR version ≤ {max_ir_version} and ai.onnx opset ≤ {max_opset})"
    )]
    IncompatibleModel {
        path: PathBuf,
        found: String,
        runtime_version: String,
        max_ir_version: i64,
        max_opset: i64,
    },

    /// The model file is missing, unreadable or not ONNX.
    #[error(transparent)]
    ModelFile(#[from] modelmux_onnx::OnnxError),

    /// The inputs given to a run do not match the model's signature.
    #[error("model {model}: {mismatch}")]
    Input {
        model: String,
        mismatch: InputMismatch,
    },

    /// An output was asked for with the wrong name or element type.
    #[error("model {model}: output `{name}`: {reason}")]
    Output {
        model: String,
        name: String,
        reason: String,
    },

    /// The model's request queue is full; the caller should back off and retry.
    #[error("model {model} is overloaded: {limit} requests are already queued")]
    Overloaded { model: String, limit: usize },

    /// A batched run's output did not carry the batch on axis 0, so it cannot be split back.
    #[error("model {model}: output `{output}` cannot be split back into the batch's requests")]
    Unbatchable { model: String, output: String },

    /// The worker owning the session has stopped (the model was unloaded).
    #[error("model {model}: the session has been shut down")]
    SessionClosed { model: String },
}

/// How a run's inputs differ from what the model declares.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InputMismatch {
    #[error("unknown input `{name}`{}; the model takes {}", suggestion(.did_you_mean), .expected.join(", "))]
    Unknown {
        name: String,
        expected: Vec<String>,
        did_you_mean: Option<String>,
    },
    #[error("missing input `{name}`")]
    Missing { name: String },
    #[error("input `{name}` given twice")]
    Duplicate { name: String },
    #[error("input `{name}`: expected element type {expected}, got {actual}")]
    ElementType {
        name: String,
        expected: ElementType,
        actual: ElementType,
    },
    #[error("input `{name}`: expected shape {expected}, got {actual:?}")]
    Shape {
        name: String,
        expected: String,
        actual: Vec<usize>,
    },
    #[error(
        "dimension `{symbol}` is {first_size} in input `{first_input}` but {second_size} in input `{second_input}`"
    )]
    InconsistentDimension {
        symbol: String,
        first_input: String,
        first_size: usize,
        second_input: String,
        second_size: usize,
    },
}

fn suggestion(did_you_mean: &Option<String>) -> String {
    did_you_mean
        .as_ref()
        .map(|s| format!(" (did you mean `{s}`?)"))
        .unwrap_or_default()
}
