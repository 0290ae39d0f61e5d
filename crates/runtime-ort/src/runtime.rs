//! The process-wide runtime: the loaded library, its version and limits, and the one Environment.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use modelmux_onnx::OnnxLimits;
use ort::ep::{self, ExecutionProvider};
use serde::Serialize;

use crate::discovery::{self, LibrarySource, LoadAttempt};
use crate::error::RuntimeError;
use crate::spec::{ProviderSpec, SessionSpec};
use crate::worker::SessionHandle;

/// The loaded ONNX Runtime and the process's one `Environment` (ONNX Runtime refuses a second).
#[derive(Debug)]
pub struct Runtime {
    environment: ort::environment::Environment,
    library: PathBuf,
    source: LibrarySource,
    version: String,
    limits: OnnxLimits,
}

/// The outcome of loading, kept for the life of the process: the library cannot be unloaded,
/// and a failed load is reported the same way to every caller.
enum Loaded {
    Ready(Runtime),
    NotFound(Vec<LoadAttempt>),
    TooOld { path: PathBuf, found: String },
    Environment(String),
}

static RUNTIME: OnceLock<Loaded> = OnceLock::new();

/// Whether an execution provider can be registered on this machine, and why not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProviderProbe {
    pub provider: String,
    /// The library was built with it.
    pub compiled: bool,
    /// Registration on a session succeeded (needs the provider's libraries and a device).
    pub registers: bool,
    /// ONNX Runtime's reason when it did not register.
    pub error: Option<String>,
}

impl Runtime {
    /// The runtime, loading the library on first use: `ORT_DYLIB_PATH` if set, else the setup
    /// folder (GPU flavour first), else the system search path.
    pub fn global() -> Result<&'static Runtime, RuntimeError> {
        match RUNTIME.get_or_init(load) {
            Loaded::Ready(runtime) => Ok(runtime),
            Loaded::NotFound(attempts) => Err(RuntimeError::LibraryNotFound {
                attempts: attempts.clone(),
            }),
            Loaded::TooOld { path, found } => Err(RuntimeError::LibraryVersion {
                path: path.clone(),
                found: found.clone(),
            }),
            Loaded::Environment(message) => {
                Err(RuntimeError::Ort(ort::Error::new(message.clone())))
            }
        }
    }

    /// The library file that was loaded.
    pub fn library_path(&self) -> &Path {
        &self.library
    }

    /// Where the library was found.
    pub fn library_source(&self) -> LibrarySource {
        self.source
    }

    /// The loaded library's version, e.g. `1.31.1`.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The newest IR version and opset this runtime loads.
    pub fn onnx_limits(&self) -> OnnxLimits {
        self.limits
    }

    /// Execution providers the loaded library was built with, in ONNX Runtime's names.
    pub fn available_providers(&self) -> Vec<String> {
        [
            (ep::TensorRT::NAME, ep::TensorRT::is_available()),
            (ep::CUDA::NAME, ep::CUDA::is_available()),
            (ep::CPU::NAME, ep::CPU::is_available()),
        ]
        .into_iter()
        .filter(|(_, available)| matches!(available, Ok(true)))
        .map(|(name, _)| name.to_owned())
        .collect()
    }

    /// Tries to register `provider` on a throw-away session builder.
    pub fn probe_provider(&self, provider: &ProviderSpec) -> ProviderProbe {
        let name = provider.ort_name();
        let compiled = self.available_providers().iter().any(|p| p == name);
        let error = crate::session::register_alone(&self.environment, provider).err();
        ProviderProbe {
            provider: name.to_owned(),
            compiled,
            registers: error.is_none(),
            error,
        }
    }

    /// Tries each accelerator (TensorRT, CUDA) with default options on device 0: whether it
    /// registers here, and ONNX Runtime's reason when it does not.
    pub fn probe_accelerators(&self) -> Vec<ProviderProbe> {
        let accelerators = [
            ProviderSpec::TensorRt {
                device_id: 0,
                fp16: false,
                engine_cache: None,
                max_workspace_bytes: None,
            },
            ProviderSpec::Cuda {
                device_id: 0,
                memory_limit: None,
                arena_extend: crate::spec::ArenaExtend::default(),
            },
        ];
        accelerators
            .iter()
            .map(|p| self.probe_provider(p))
            .collect()
    }

    /// The providers a session can really use here: the accelerators that register on device 0,
    /// then the CPU. Being compiled in is not enough: the CUDA libraries and a GPU must be there.
    pub fn usable_providers(&self) -> Vec<String> {
        let mut usable: Vec<String> = self
            .probe_accelerators()
            .into_iter()
            .filter(|p| p.registers)
            .map(|p| p.provider)
            .collect();
        usable.push(ep::CPU::NAME.to_owned());
        usable
    }

    /// Loads the model at `path` as `spec` says and starts the worker that owns its session.
    /// `name` identifies the model in errors and logs.
    pub fn load(
        &self,
        name: &str,
        path: &Path,
        spec: &SessionSpec,
    ) -> Result<SessionHandle, RuntimeError> {
        let loaded = crate::session::build(self, name, path, spec)?;
        Ok(SessionHandle::spawn(name, loaded))
    }

    pub(crate) fn environment(&self) -> &ort::environment::Environment {
        &self.environment
    }
}

fn load() -> Loaded {
    let env_path = std::env::var_os("ORT_DYLIB_PATH")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from);
    let candidates = discovery::candidates(
        env_path.as_deref(),
        &discovery::setup_dir(true),
        &discovery::setup_dir(false),
    );
    let mut attempts = Vec::new();
    let mut too_old = None;
    for (source, path) in candidates {
        if source == LibrarySource::SetupFolder && !path.exists() {
            attempts.push(LoadAttempt {
                source,
                path,
                error: "not there".to_owned(),
            });
            continue;
        }
        // A `LoadDynamicError` is kept as text: converting it into `ort::Error` calls into
        // the very library that failed to load, and panics.
        match ort::init_from(&path) {
            Ok(builder) => {
                let version = library_version(&path).unwrap_or_else(|e| format!("unknown ({e})"));
                let limits = modelmux_onnx::limits_for_runtime(&version).unwrap_or(OnnxLimits {
                    max_ir_version: 13,
                    max_opset: 26,
                });
                return match builder.with_name("modelmux").with_telemetry(false).build() {
                    Ok(environment) => Loaded::Ready(Runtime {
                        environment,
                        library: path,
                        source,
                        version,
                        limits,
                    }),
                    Err(e) => Loaded::Environment(e.to_string()),
                };
            }
            Err(ort::LoadDynamicError::BadVersion { version_str, path }) => {
                attempts.push(LoadAttempt {
                    source,
                    path: path.clone(),
                    error: format!("version {version_str} is too old"),
                });
                too_old.get_or_insert((path, version_str));
            }
            Err(e) => attempts.push(LoadAttempt {
                source,
                path,
                error: e.to_string(),
            }),
        }
    }
    match too_old {
        Some((path, found)) => Loaded::TooOld { path, found },
        None => Loaded::NotFound(attempts),
    }
}

/// Asks the library at `path` (already loaded by ort, so this only takes another reference)
/// for its version string.
///
/// Rationale for the `unsafe`: ort checks the version while loading but does not expose it,
/// and `modelmux doctor` and the compatibility checks need the exact release.
#[allow(unsafe_code)]
fn library_version(path: &Path) -> Result<String, String> {
    #[repr(C)]
    struct OrtApiBase {
        get_api: unsafe extern "C" fn(u32) -> *const std::ffi::c_void,
        get_version_string: unsafe extern "C" fn() -> *const std::ffi::c_char,
    }
    // SAFETY: `OrtGetApiBase` takes no arguments and returns a pointer to a static struct whose
    // layout is fixed by the ONNX Runtime C API (two function pointers, in this order);
    // `GetVersionString` returns a static NUL-terminated string.
    unsafe {
        let library = libloading::Library::new(path).map_err(|e| e.to_string())?;
        let get_base: libloading::Symbol<'_, unsafe extern "C" fn() -> *const OrtApiBase> =
            library.get(b"OrtGetApiBase").map_err(|e| e.to_string())?;
        let base = get_base();
        if base.is_null() {
            return Err("OrtGetApiBase returned null".to_owned());
        }
        let version = ((*base).get_version_string)();
        if version.is_null() {
            return Err("GetVersionString returned null".to_owned());
        }
        Ok(std::ffi::CStr::from_ptr(version)
            .to_string_lossy()
            .into_owned())
    }
}
