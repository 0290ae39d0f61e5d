//! Turning a catalog entry into something that serves requests: the [`ModelLoader`] seam, and the
//! ONNX loader that builds a [`SessionPool`] of `instances` sessions over a model's export.
//!
//! Family adapters plug in here: a loader returns any `Send + Sync` object, and
//! [`ModelManager::get_model`](crate::ModelManager::get_model) hands it out typed.

use std::path::{Path, PathBuf};

use modelmux_registry::{FileRole, Manifest, ModelSpec};
use modelmux_resources::{DeviceId, Provider};
use modelmux_runtime_ort::{
    ArenaExtend, BatchConfig, PoolConfig, ProviderSpec, Runtime, SessionPool, SessionSpec,
};

/// Everything a loader needs to know to load one model.
#[derive(Debug)]
pub struct LoadRequest<'a> {
    /// The catalog entry.
    pub spec: &'a ModelSpec,
    /// `exports/<id>/<version>`.
    pub export_dir: PathBuf,
    /// Where placement put it.
    pub device: DeviceId,
    /// The provider to load it with.
    pub provider: Provider,
    /// The CUDA ordinal of `device`, for GPU providers.
    pub cuda_ordinal: Option<u32>,
    /// Requests admitted per model before callers are told it is overloaded.
    pub queue_limit: usize,
}

/// A loaded model: the family object requests go to, its type name, and how to stop it. The
/// adapters' own type, so a loader's result and an adapter's are the same thing.
pub use modelmux_adapters::Loaded as LoadedModel;

/// Loads models. Called on a blocking thread, one load per device at a time.
pub trait ModelLoader: Send + Sync + 'static {
    /// Loads `request.spec` on `request.device`.
    fn load(&self, request: &LoadRequest<'_>) -> Result<LoadedModel, String>;

    /// Bytes of weights the model would load, for the estimate before it was ever measured.
    fn weight_bytes(&self, spec: &ModelSpec, export_dir: &Path) -> Option<u64> {
        let _ = spec;
        export_weight_bytes(export_dir)
    }
}

/// Loads each model with its family's adapter (`modelmux-adapters`), chosen by architecture: a
/// `bert` entry becomes an `Arc<dyn TextEncoder>`, and so on. The default loader.
#[derive(Debug, Default, Clone, Copy)]
pub struct FamilyLoader;

impl ModelLoader for FamilyLoader {
    fn load(&self, request: &LoadRequest<'_>) -> Result<LoadedModel, String> {
        let context = modelmux_adapters::LoadContext {
            spec: request.spec,
            export_dir: request.export_dir.clone(),
            session: session_spec(
                request.provider,
                request.cuda_ordinal,
                request.spec.cpu_fallback,
            ),
            queue_limit: request.queue_limit,
        };
        modelmux_adapters::load(&context).map_err(|e| e.to_string())
    }
}

/// Loads a model's main ONNX file into `instances` sessions behind a [`SessionPool`], with
/// dynamic batching when the catalog sets `max_batch_size` above 1. The family type handed out
/// is [`SessionPool`].
#[derive(Debug, Default, Clone, Copy)]
pub struct OnnxLoader;

impl ModelLoader for OnnxLoader {
    fn load(&self, request: &LoadRequest<'_>) -> Result<LoadedModel, String> {
        let spec = request.spec;
        let path = main_onnx_file(&request.export_dir).ok_or_else(|| {
            format!(
                "no ONNX file in {}: run `cargo xtask export {}`",
                request.export_dir.display(),
                spec.id
            )
        })?;
        let session_spec = session_spec(request.provider, request.cuda_ordinal, spec.cpu_fallback);
        let runtime = Runtime::global().map_err(|e| e.to_string())?;
        let mut instances = Vec::new();
        for i in 0..spec.instances.max(1) {
            match runtime.load(&spec.key(), &path, &session_spec) {
                Ok(handle) => instances.push(handle),
                Err(e) => {
                    instances
                        .iter()
                        .for_each(modelmux_runtime_ort::SessionHandle::shutdown);
                    return Err(format!("instance {i}: {e}"));
                }
            }
        }
        let batching = (spec.batching.max_batch_size > 1).then_some(BatchConfig {
            max_batch_size: spec.batching.max_batch_size as usize,
            max_queue_delay: spec.batching.max_queue_delay,
        });
        let pool = SessionPool::new(
            instances.clone(),
            PoolConfig {
                queue_limit: request.queue_limit,
                batching,
            },
        )
        .map_err(|e| {
            instances
                .iter()
                .for_each(modelmux_runtime_ort::SessionHandle::shutdown);
            e.to_string()
        })?;
        let stop = pool.clone();
        Ok(LoadedModel::new(pool, move || stop.shutdown()))
    }
}

/// The session options for `provider`: GPU arenas grow only by what is asked for, so a model's
/// footprint stays close to what it needs on a shared device.
pub fn session_spec(
    provider: Provider,
    cuda_ordinal: Option<u32>,
    cpu_fallback: bool,
) -> SessionSpec {
    let device_id = cuda_ordinal.map_or(0, |o| i32::try_from(o).unwrap_or(0));
    let cuda = ProviderSpec::Cuda {
        device_id,
        memory_limit: None,
        arena_extend: ArenaExtend::SameAsRequested,
    };
    let providers = match provider {
        Provider::Cpu => vec![ProviderSpec::Cpu { arena: true }],
        Provider::Cuda => vec![cuda],
        Provider::TensorRt => vec![
            ProviderSpec::TensorRt {
                device_id,
                fp16: false,
                engine_cache: None,
                max_workspace_bytes: None,
            },
            cuda,
        ],
    };
    SessionSpec {
        providers,
        cpu_fallback,
        ..SessionSpec::cpu()
    }
}

/// The export's main ONNX file: the manifest's first ONNX file, else `model.onnx`.
pub fn main_onnx_file(export_dir: &Path) -> Option<PathBuf> {
    let from_manifest = Manifest::read(&export_dir.join(modelmux_registry::MANIFEST_FILE))
        .ok()
        .flatten()
        .and_then(|m| m.files.into_iter().find(|f| f.role == FileRole::Onnx))
        .map(|f| export_dir.join(f.path));
    from_manifest
        .or_else(|| Some(export_dir.join("model.onnx")))
        .filter(|p| p.exists())
}

/// Bytes of the export's ONNX files and their external data, from the manifest.
fn export_weight_bytes(export_dir: &Path) -> Option<u64> {
    let manifest = Manifest::read(&export_dir.join(modelmux_registry::MANIFEST_FILE)).ok()??;
    let bytes: u64 = manifest
        .files
        .iter()
        .filter(|f| matches!(f.role, FileRole::Onnx | FileRole::ExternalData))
        .map(|f| f.size)
        .sum();
    (bytes > 0).then_some(bytes)
}
