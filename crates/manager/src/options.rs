//! How a manager is set up: its devices and budgets, the default device, the policy, the loader.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use modelmux_resources::{
    Clock, DeviceId, DeviceProbe, DeviceRequest, EvictionPolicy, SystemClock, VerifySchedule,
};

use crate::loader::{FamilyLoader, ModelLoader};

/// The CUDA context and library handles one process keeps on a GPU until it exits: 546 MiB
/// measured on an H200 with ONNX Runtime 1.31.1 (notes/ort-runtime.md §14).
pub const CUDA_CONTEXT_BYTES: u64 = 546 * 1024 * 1024;

/// One device the manager may place models on.
#[derive(Clone)]
pub struct DeviceConfig {
    /// Reads the device's memory.
    pub probe: Arc<dyn DeviceProbe>,
    /// The most this manager may use there; the device's total when `None`.
    pub budget_bytes: Option<u64>,
    /// Charged to the device once, with its first load (the CUDA context on a GPU).
    pub runtime_overhead_bytes: u64,
    /// The CUDA ordinal of a GPU in this process.
    pub cuda_ordinal: Option<u32>,
    /// How hard to look for memory coming back after an unload.
    pub verify: VerifySchedule,
}

impl std::fmt::Debug for DeviceConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceConfig")
            .field("device", self.probe.id())
            .field("budget_bytes", &self.budget_bytes)
            .field("runtime_overhead_bytes", &self.runtime_overhead_bytes)
            .field("cuda_ordinal", &self.cuda_ordinal)
            .finish_non_exhaustive()
    }
}

impl DeviceConfig {
    /// A device with the defaults for its kind: a GPU is charged the CUDA context and verifies
    /// releases by polling; the host is charged nothing and checks once, because freed heap
    /// memory often stays with the process and polling for it would only add latency.
    pub fn new(probe: Arc<dyn DeviceProbe>) -> Self {
        let gpu = matches!(probe.id(), DeviceId::Gpu(_));
        Self {
            probe,
            budget_bytes: None,
            runtime_overhead_bytes: if gpu { CUDA_CONTEXT_BYTES } else { 0 },
            cuda_ordinal: None,
            verify: if gpu {
                VerifySchedule::default()
            } else {
                VerifySchedule {
                    attempts: 1,
                    interval: Duration::ZERO,
                    required_fraction: 0.0,
                }
            },
        }
    }

    /// Limits what the manager may use on this device.
    pub fn with_budget(mut self, bytes: u64) -> Self {
        self.budget_bytes = Some(bytes);
        self
    }
}

/// Everything a [`ModelManager`](crate::ModelManager) is built with besides the catalog.
#[derive(Clone)]
pub struct ManagerOptions {
    /// The devices, host first by convention.
    pub devices: Vec<DeviceConfig>,
    /// Where `get_model` places a model that is not loaded yet.
    pub default_device: DeviceRequest,
    /// Where exports are looked for; the catalog's `exports/` folder when `None`.
    pub exports_dir: Option<PathBuf>,
    /// Where learned footprints are kept between runs (`footprints.json`); in memory when `None`.
    pub state_dir: Option<PathBuf>,
    /// The swap policy.
    pub policy: EvictionPolicy,
    /// Time, injectable for tests.
    pub clock: Arc<dyn Clock>,
    /// Requests admitted per model at once before it reports itself overloaded.
    pub queue_limit: usize,
    /// How long a load waits for busy models to be returned when only they hold the room it needs.
    pub room_wait: Duration,
    /// Builds model objects; [`FamilyLoader`] (the family adapters) by default.
    pub loader: Arc<dyn ModelLoader>,
}

impl std::fmt::Debug for ManagerOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ManagerOptions")
            .field("devices", &self.devices)
            .field("default_device", &self.default_device)
            .field("state_dir", &self.state_dir)
            .field("policy", &self.policy)
            .field("queue_limit", &self.queue_limit)
            .field("room_wait", &self.room_wait)
            .finish_non_exhaustive()
    }
}

impl ManagerOptions {
    /// This machine's devices (the host, then NVML's GPUs) with their whole memory as budget.
    pub fn local() -> Self {
        let (probes, nvml_missing) = modelmux_resources::local_probes();
        if let Some(reason) = nvml_missing {
            tracing::debug!(%reason.reason, "no GPUs: NVML is unavailable");
        }
        let mut ordinal = 0;
        let devices = probes
            .into_iter()
            .map(|probe| {
                let mut config = DeviceConfig::new(probe);
                if matches!(config.probe.id(), DeviceId::Gpu(_)) {
                    config.cuda_ordinal = Some(ordinal);
                    ordinal += 1;
                }
                config
            })
            .collect();
        Self::with_devices(devices)
    }

    /// The given devices with default settings otherwise.
    pub fn with_devices(devices: Vec<DeviceConfig>) -> Self {
        Self {
            devices,
            default_device: DeviceRequest::Auto,
            exports_dir: None,
            state_dir: None,
            policy: EvictionPolicy::default(),
            clock: Arc::new(SystemClock::new()),
            queue_limit: 1024,
            room_wait: Duration::from_secs(30),
            loader: Arc::new(FamilyLoader),
        }
    }
}
