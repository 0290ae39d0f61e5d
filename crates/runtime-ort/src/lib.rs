//! ONNX Runtime sessions for modelmux: finding and loading the library, one environment per
//! process, sessions built from a plain [`SessionSpec`], typed tensor I/O and session workers.
//!
//! This is the only crate that depends on `ort`. A request reaches it as
//! [`SessionHandle::run`]: the handle hands the inputs to the worker thread that owns the
//! session (ONNX Runtime's `run` needs exclusive access), which checks them against the model's
//! signature, runs them and sends the outputs back.
//!
//! ```text
//! Runtime::global()      library discovery + the process's one Environment
//!   └─ Runtime::load()   SessionSpec → session on the requested providers → SessionHandle
//!        └─ SessionHandle::run / run_async → worker thread → Session::run
//! ```

mod discovery;
mod error;
mod info;
mod pool;
mod runtime;
mod session;
mod spec;
mod tensor;
mod worker;

pub use crate::discovery::{LIBRARY_FILE, LibrarySource, LoadAttempt, cache_dir, setup_dir};
pub use crate::error::{InputMismatch, RuntimeError};
pub use crate::info::{Dim, ModelInfo, TensorInfo};
pub use crate::pool::{BatchConfig, PoolConfig, SessionPool};
pub use crate::runtime::{ProviderProbe, Runtime};
pub use crate::session::{Fallback, Placement};
pub use crate::spec::{ArenaExtend, Optimization, ProviderSpec, SessionSpec};
pub use crate::tensor::{Element, ElementType, Inputs, Outputs, Tensor};
pub use crate::worker::SessionHandle;
pub use modelmux_onnx::{OnnxLimits, OpsetImport};

/// The ONNX Runtime release this crate is built against (`ort` 2.0.0-rc.15, API 31).
pub const ONNXRUNTIME_VERSION: &str = "1.31.1";
