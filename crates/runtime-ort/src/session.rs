//! Building a session from a [`SessionSpec`]: compatibility check, providers registered one by
//! one with `error_on_failure`, the explicit CPU-fallback decision, and where the nodes landed.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use ort::ep::{self, ExecutionProviderDispatch};
use ort::logging::LogLevel;
use ort::session::Session;
use ort::session::builder::{AutoDevicePolicy, GraphOptimizationLevel, SessionBuilder};
use serde::Serialize;

use crate::error::RuntimeError;
use crate::info::{ModelInfo, TensorInfo};
use crate::runtime::Runtime;
use crate::spec::{ArenaExtend, Optimization, ProviderSpec, SessionSpec};

/// ONNX Runtime's name for the CPU provider, which runs whatever the others do not take.
const CPU_PROVIDER: &str = "CPUExecutionProvider";

/// Where a session really runs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Placement {
    /// Providers that were asked for and registered, in order.
    pub registered: Vec<String>,
    /// Providers that own at least one node of the graph, from ONNX Runtime's own placement report.
    pub providers_used: Vec<String>,
    /// Accelerators that could not be used, with ONNX Runtime's reason; non-empty only when the
    /// spec allowed CPU fallback.
    pub fallbacks: Vec<Fallback>,
}

/// An accelerator the session fell back from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Fallback {
    pub provider: String,
    pub reason: String,
}

impl Placement {
    /// Whether any node runs on an accelerator.
    pub fn on_accelerator(&self) -> bool {
        self.providers_used.iter().any(|p| p != CPU_PROVIDER)
    }
}

/// A built session with what is known about it.
pub(crate) struct LoadedSession {
    pub(crate) session: Session,
    pub(crate) info: ModelInfo,
    pub(crate) placement: Placement,
}

pub(crate) fn build(
    runtime: &Runtime,
    name: &str,
    path: &Path,
    spec: &SessionSpec,
) -> Result<LoadedSession, RuntimeError> {
    let header = modelmux_onnx::read_header(path)?;
    check_compatible(runtime, path, &header)?;

    // ONNX Runtime reports node placement only in its verbose log: capture those lines while the
    // session is built (registration success alone does not prove the graph runs there).
    let placement_log: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut builder = base_builder(runtime, spec, &placement_log)?;

    let mut placement = Placement::default();
    for provider in spec.providers.iter().filter(|p| p.is_accelerator()) {
        match builder.with_execution_providers([dispatch(provider)]) {
            Ok(b) => {
                builder = b;
                placement.registered.push(provider.ort_name().to_owned());
            }
            Err(e) => {
                let reason = e.message().to_owned();
                builder = e.recover();
                if !spec.cpu_fallback {
                    return Err(RuntimeError::ProviderUnavailable {
                        provider: provider.ort_name().to_owned(),
                        reason,
                    });
                }
                tracing::warn!(model = name, provider = provider.ort_name(), %reason, "falling back to CPU as the spec allows");
                placement.fallbacks.push(Fallback {
                    provider: provider.ort_name().to_owned(),
                    reason,
                });
            }
        }
    }
    let cpu_arena = spec.providers.iter().all(|p| match p {
        ProviderSpec::Cpu { arena } => *arena,
        _ => true,
    });
    builder = builder
        .with_execution_providers([ep::CPU::default()
            .with_arena_allocator(cpu_arena)
            .build()
            .error_on_failure()])
        .map_err(ort::Error::from)?;
    placement.registered.push(CPU_PROVIDER.to_owned());

    let session = builder.commit_from_file(path)?;
    placement.providers_used =
        providers_in_log(&placement_log.lock().map(|l| l.clone()).unwrap_or_default());

    let accelerators_registered = placement.registered.iter().any(|p| p != CPU_PROVIDER);
    if accelerators_registered
        && !placement.on_accelerator()
        && !placement.providers_used.is_empty()
    {
        let reason = format!(
            "registered, but ONNX Runtime placed every node on {}",
            placement.providers_used.join(", ")
        );
        let provider = placement.registered[0].clone();
        if !spec.cpu_fallback {
            return Err(RuntimeError::ProviderUnavailable { provider, reason });
        }
        placement.fallbacks.push(Fallback { provider, reason });
    }

    let info = ModelInfo {
        path: path.to_owned(),
        inputs: session
            .inputs()
            .iter()
            .map(TensorInfo::from_outlet)
            .collect(),
        outputs: session
            .outputs()
            .iter()
            .map(TensorInfo::from_outlet)
            .collect(),
        ir_version: header.ir_version,
        opset_imports: header.opset_imports,
        producer: header.producer_name,
        custom_metadata: header.metadata.into_iter().collect::<BTreeMap<_, _>>(),
        weight_bytes: header.initializer_bytes,
    };
    tracing::debug!(model = name, providers = ?placement.providers_used, "session built");
    Ok(LoadedSession {
        session,
        info,
        placement,
    })
}

/// Registers `provider` alone on a fresh builder; the error text when it does not register.
pub(crate) fn register_alone(
    environment: &ort::environment::Environment,
    provider: &ProviderSpec,
) -> Result<(), String> {
    let builder = Session::builder(environment).map_err(|e| e.to_string())?;
    builder
        .with_execution_providers([dispatch(provider)])
        .map(drop)
        .map_err(|e| e.message().to_owned())
}

fn check_compatible(
    runtime: &Runtime,
    path: &Path,
    header: &modelmux_onnx::OnnxHeader,
) -> Result<(), RuntimeError> {
    let limits = runtime.onnx_limits();
    let mut problems = Vec::new();
    if header.ir_version > limits.max_ir_version {
        problems.push(format!("IR version {}", header.ir_version));
    }
    for opset in &header.opset_imports {
        let default_domain = opset.domain.is_empty() || opset.domain == "ai.onnx";
        if default_domain && opset.version > limits.max_opset {
            problems.push(format!("ai.onnx opset {}", opset.version));
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    Err(RuntimeError::IncompatibleModel {
        path: path.to_owned(),
        found: problems.join(" and "),
        runtime_version: runtime.version().to_owned(),
        max_ir_version: limits.max_ir_version,
        max_opset: limits.max_opset,
    })
}

fn base_builder(
    runtime: &Runtime,
    spec: &SessionSpec,
    placement_log: &Arc<Mutex<Vec<String>>>,
) -> Result<SessionBuilder, ort::Error> {
    let log = Arc::clone(placement_log);
    let mut builder = Session::builder(runtime.environment())?
        // Only the providers the spec names, never ones ONNX Runtime picks by itself: memory
        // accounting depends on knowing where the weights go.
        .with_auto_device(AutoDevicePolicy::PreferCPU)?
        .with_no_environment_execution_providers()?
        .with_optimization_level(match spec.optimization {
            Optimization::Disable => GraphOptimizationLevel::Disable,
            Optimization::Basic => GraphOptimizationLevel::Level1,
            Optimization::Extended => GraphOptimizationLevel::Level2,
            Optimization::All => GraphOptimizationLevel::All,
        })?
        .with_log_level(LogLevel::Verbose)?
        .with_logger(Arc::new(
            move |level, _category, _id, location: &str, message: &str| {
                if location.contains("VerifyEachNodeIsAssignedToAnEp") {
                    if let Ok(mut lines) = log.lock() {
                        lines.push(message.to_owned());
                    }
                } else if level >= LogLevel::Warning {
                    tracing::warn!(target: "ort", "{message}");
                }
            },
        ))?;
    if let Some(n) = spec.intra_threads {
        builder = builder.with_intra_threads(n)?;
    }
    if let Some(n) = spec.inter_threads {
        builder = builder
            .with_parallel_execution(true)?
            .with_inter_threads(n)?;
    }
    Ok(builder)
}

fn dispatch(provider: &ProviderSpec) -> ExecutionProviderDispatch {
    match provider {
        ProviderSpec::TensorRt {
            device_id,
            fp16,
            engine_cache,
            max_workspace_bytes,
        } => {
            let mut trt = ep::TensorRT::default()
                .with_device_id(*device_id)
                .with_fp16(*fp16);
            if let Some(dir) = engine_cache {
                trt = trt
                    .with_engine_cache(true)
                    .with_engine_cache_path(dir.display())
                    .with_timing_cache(true)
                    .with_timing_cache_path(dir.display());
            }
            if let Some(bytes) = max_workspace_bytes {
                trt = trt.with_max_workspace_size(usize::try_from(*bytes).unwrap_or(usize::MAX));
            }
            trt.build().error_on_failure()
        }
        ProviderSpec::Cuda {
            device_id,
            memory_limit,
            arena_extend,
        } => {
            let mut cuda = ep::CUDA::default()
                .with_device_id(*device_id)
                .with_arena_extend_strategy(match arena_extend {
                    ArenaExtend::NextPowerOfTwo => ep::ArenaExtendStrategy::NextPowerOfTwo,
                    ArenaExtend::SameAsRequested => ep::ArenaExtendStrategy::SameAsRequested,
                });
            if let Some(limit) = memory_limit {
                cuda = cuda.with_memory_limit(usize::try_from(*limit).unwrap_or(usize::MAX));
            }
            cuda.build().error_on_failure()
        }
        ProviderSpec::Cpu { arena } => ep::CPU::default()
            .with_arena_allocator(*arena)
            .build()
            .error_on_failure(),
    }
}

/// Provider names from ONNX Runtime's placement lines, e.g.
/// `All nodes placed on [CPUExecutionProvider]. Number of nodes: 10` or
/// `Node(s) placed on [CUDAExecutionProvider]. Number of nodes: 7`.
pub(crate) fn providers_in_log(lines: &[String]) -> Vec<String> {
    let mut providers: Vec<String> = Vec::new();
    for line in lines {
        let Some(start) = line.find("placed on [") else {
            continue;
        };
        let rest = &line[start + "placed on [".len()..];
        let Some(end) = rest.find(']') else { continue };
        let name = rest[..end].trim().to_owned();
        if !name.is_empty() && !providers.contains(&name) {
            providers.push(name);
        }
    }
    providers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placement_lines_are_parsed() {
        let lines = vec![
            "Node placements".to_owned(),
            " Node(s) placed on [CUDAExecutionProvider]. Number of nodes: 7".to_owned(),
            "  Add (node_1)".to_owned(),
            " Node(s) placed on [CPUExecutionProvider]. Number of nodes: 2".to_owned(),
        ];
        assert_eq!(
            providers_in_log(&lines),
            vec!["CUDAExecutionProvider", "CPUExecutionProvider"]
        );
        let all_cpu =
            vec![" All nodes placed on [CPUExecutionProvider]. Number of nodes: 10".to_owned()];
        assert_eq!(providers_in_log(&all_cpu), vec!["CPUExecutionProvider"]);
    }
}
