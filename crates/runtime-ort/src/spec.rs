//! The plain description of a session: execution providers in order, their options, threads.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// How to build a session. Plain data, so the catalog and the manager can produce it without
/// knowing ONNX Runtime.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionSpec {
    /// Execution providers, most preferred first. The CPU provider always runs the nodes the
    /// others do not take; list it alone for a CPU-only session.
    pub providers: Vec<ProviderSpec>,
    /// Whether the session may run on CPU when an accelerator listed above cannot be used.
    /// When false, such a failure is a [`RuntimeError::ProviderUnavailable`](crate::RuntimeError).
    #[serde(default)]
    pub cpu_fallback: bool,
    #[serde(default)]
    pub optimization: Optimization,
    /// Threads used inside one operator; ONNX Runtime's default (one per core) when `None`.
    #[serde(default)]
    pub intra_threads: Option<usize>,
    /// Threads used to run independent operators in parallel; enables parallel execution.
    #[serde(default)]
    pub inter_threads: Option<usize>,
}

impl SessionSpec {
    /// A CPU-only session with default options.
    pub fn cpu() -> Self {
        Self {
            providers: vec![ProviderSpec::Cpu { arena: true }],
            cpu_fallback: false,
            optimization: Optimization::default(),
            intra_threads: None,
            inter_threads: None,
        }
    }

    /// A CUDA session on `device_id`; `cpu_fallback` decides what happens where CUDA is missing.
    pub fn cuda(device_id: i32, cpu_fallback: bool) -> Self {
        Self {
            providers: vec![ProviderSpec::Cuda {
                device_id,
                memory_limit: None,
                arena_extend: ArenaExtend::default(),
            }],
            cpu_fallback,
            ..Self::cpu()
        }
    }
}

/// One execution provider and its options.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ProviderSpec {
    #[serde(rename = "tensorrt")]
    TensorRt {
        #[serde(default)]
        device_id: i32,
        #[serde(default)]
        fp16: bool,
        /// Folder for built engines; building one takes minutes, so production use wants it.
        #[serde(default)]
        engine_cache: Option<PathBuf>,
        #[serde(default)]
        max_workspace_bytes: Option<u64>,
    },
    Cuda {
        #[serde(default)]
        device_id: i32,
        /// Caps the CUDA arena only; cuDNN/cuBLAS workspaces come on top.
        #[serde(default)]
        memory_limit: Option<u64>,
        #[serde(default)]
        arena_extend: ArenaExtend,
    },
    Cpu {
        #[serde(default = "yes")]
        arena: bool,
    },
}

fn yes() -> bool {
    true
}

impl ProviderSpec {
    /// ONNX Runtime's name for this provider.
    pub fn ort_name(&self) -> &'static str {
        match self {
            Self::TensorRt { .. } => "TensorrtExecutionProvider",
            Self::Cuda { .. } => "CUDAExecutionProvider",
            Self::Cpu { .. } => "CPUExecutionProvider",
        }
    }

    /// Whether this provider runs on an accelerator.
    pub fn is_accelerator(&self) -> bool {
        !matches!(self, Self::Cpu { .. })
    }
}

/// How the CUDA arena grows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ArenaExtend {
    /// ONNX Runtime's default: fast, but can reserve up to twice what is needed.
    #[default]
    NextPowerOfTwo,
    /// Grows by what is asked for: tighter memory, the choice for sharing a GPU between models.
    SameAsRequested,
}

/// Graph optimisation level.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Optimization {
    Disable,
    Basic,
    Extended,
    #[default]
    All,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_reads_from_json_with_defaults() {
        let spec: SessionSpec = serde_json::from_str(
            r#"{"providers":[{"kind":"tensorrt","fp16":true},{"kind":"cuda","device_id":1},{"kind":"cpu"}],"cpu_fallback":true}"#,
        )
        .expect("valid spec");
        assert_eq!(spec.providers.len(), 3);
        assert_eq!(spec.providers[0].ort_name(), "TensorrtExecutionProvider");
        assert_eq!(spec.providers[2], ProviderSpec::Cpu { arena: true });
        assert_eq!(spec.optimization, Optimization::All);
    }

    #[test]
    fn unknown_option_is_rejected() {
        let err =
            serde_json::from_str::<SessionSpec>(r#"{"providers":[{"kind":"cuda","devise_id":1}]}"#)
                .expect_err("typo");
        assert!(err.to_string().contains("devise_id"), "{err}");
    }
}
