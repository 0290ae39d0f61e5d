//! What an ONNX Runtime build can load, as plain data, and a table of known releases.
//!
//! The runtime crate fills [`RuntimeCapabilities`] from the loaded library; the table is the
//! fallback when no runtime is available and the reference for diagnostics.

use crate::document::Provider;

/// What the ONNX Runtime in use supports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeCapabilities {
    /// The ONNX Runtime version, e.g. "1.31.1".
    pub onnxruntime_version: String,
    /// The highest `ModelProto.ir_version` it loads.
    pub max_ir_version: i64,
    /// The highest ai.onnx opset it loads.
    pub max_opset: i64,
    /// Available execution providers, by ONNX Runtime name ("CPUExecutionProvider") or by
    /// catalog name ("cpu"); both are understood.
    pub providers: Vec<String>,
}

/// The ONNX Runtime version `ort` 2.0.0-rc.15 targets, used when no runtime can be loaded.
pub const DEFAULT_ORT_VERSION: &str = "1.31.1";

/// The (max IR, max ai.onnx opset) of an ONNX Runtime version ("1.31.1" or "1.31"); None
/// for versions older than the table or text that is not a version.
///
/// The table itself lives in `modelmux-onnx` (one table for the registry, the runtime and
/// xtask): rows are measurements on the PyPI wheels (notes/export-and-compat.md §6.2), and a
/// release between two rows gets the older row, which can only under-state what it loads.
pub fn onnx_limits_for(version: &str) -> Option<(i64, i64)> {
    modelmux_onnx::limits_for_runtime(version).map(|l| (l.max_ir_version, l.max_opset))
}

impl RuntimeCapabilities {
    /// Capabilities of a given ONNX Runtime version from the table, with the given providers.
    pub fn from_table(version: &str, providers: Vec<String>) -> Option<Self> {
        let (max_ir_version, max_opset) = onnx_limits_for(version)?;
        Some(Self {
            onnxruntime_version: version.to_owned(),
            max_ir_version,
            max_opset,
            providers,
        })
    }

    /// ONNX Runtime 1.31 with only the CPU provider: the assumption when no runtime loads.
    pub fn default_cpu_only() -> Self {
        Self {
            onnxruntime_version: DEFAULT_ORT_VERSION.to_owned(),
            max_ir_version: 13,
            max_opset: 26,
            providers: vec![Provider::Cpu.ort_name().to_owned()],
        }
    }

    /// Whether a provider is available.
    pub fn has(&self, provider: Provider) -> bool {
        self.providers
            .iter()
            .any(|p| p == provider.ort_name() || p.eq_ignore_ascii_case(provider.as_str()))
    }
}
