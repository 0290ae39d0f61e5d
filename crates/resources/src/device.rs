//! Devices and their memory readings: NVML GPUs (and MIG instances), the host, and the `DeviceProbe` trait the rest of the crate reads through.
//!
//! A reading that cannot be had is an error value saying why ([`ReadingUnavailable`]); no
//! number is ever made up. NVML is loaded lazily, on the first GPU query, and its absence (no
//! driver, no `libnvidia-ml.so`, no permission) is a normal state that callers report.

use std::fmt;
use std::sync::{Mutex, OnceLock};

use nvml_wrapper::Nvml;
use serde::{Deserialize, Serialize};

/// What kind of memory a device offers; execution providers are tied to one kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceKind {
    /// Host memory (system RAM).
    Cpu,
    /// Memory of a CUDA GPU or of one MIG instance of it.
    Cuda,
}

impl fmt::Display for DeviceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DeviceKind::Cpu => "cpu",
            DeviceKind::Cuda => "cuda",
        })
    }
}

/// The stable identity of a device.
///
/// GPUs are keyed by UUID, never by ordinal: CUDA and NVML ordinals differ unless
/// `CUDA_DEVICE_ORDER=PCI_BUS_ID`, and `CUDA_VISIBLE_DEVICES` renumbers them (see
/// serving-anchors.md, "Device numbering").
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceId {
    /// The host's system memory.
    Host,
    /// A GPU or MIG instance, by its NVML UUID (`GPU-…` or `MIG-…`).
    Gpu(String),
}

impl DeviceId {
    /// The kind of memory this device offers.
    pub fn kind(&self) -> DeviceKind {
        match self {
            DeviceId::Host => DeviceKind::Cpu,
            DeviceId::Gpu(_) => DeviceKind::Cuda,
        }
    }
}

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceId::Host => f.write_str("cpu"),
            DeviceId::Gpu(uuid) => f.write_str(uuid),
        }
    }
}

/// One reading of a device's memory, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryReading {
    /// Memory the device offers (NVML v2 `total`; host RAM).
    pub total_bytes: u64,
    /// Memory in use by anyone, this process included.
    pub used_bytes: u64,
    /// Memory still free (NVML v2 `free`; host "available" memory).
    pub free_bytes: u64,
}

/// Why a reading could not be taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no memory reading for device {device}: {reason}")]
pub struct ReadingUnavailable {
    /// The device that was asked.
    pub device: DeviceId,
    /// What went wrong, in words (the NVML or OS error).
    pub reason: String,
}

/// Something that can tell how much memory a device has and uses.
///
/// Implemented by [`NvmlGpu`], [`HostMemory`](crate::HostMemoryProbe) and
/// [`SimulatedDevice`](crate::SimulatedDevice); the ledger and the load gate only see this
/// trait, so every policy path runs in tests without a GPU.
pub trait DeviceProbe: Send + Sync {
    /// The device this probe reads.
    fn id(&self) -> &DeviceId;
    /// A human-readable name (the GPU model, "host").
    fn name(&self) -> &str;
    /// Reads the device's memory now.
    fn read(&self) -> Result<MemoryReading, ReadingUnavailable>;
}

/// NVML could not be loaded or initialised: no NVIDIA driver, no `libnvidia-ml.so`, or no
/// permission. A normal state on machines without an NVIDIA GPU.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct NvmlUnavailable {
    /// The loader's or driver's error for each library name tried.
    pub reason: String,
}

/// The lazily loaded NVML library, or the reason it could not be loaded.
static NVML: OnceLock<Result<Nvml, NvmlUnavailable>> = OnceLock::new();

/// Library names tried in order. Containers often ship only the versioned `libnvidia-ml.so.1`
/// (the unversioned name comes with the driver's development package), so both are tried.
const NVML_LIBRARY_NAMES: [&str; 2] = ["libnvidia-ml.so", "libnvidia-ml.so.1"];

/// Returns NVML, loading it on the first call; the error says why it is unavailable.
///
/// The outcome is remembered for the life of the process: NVML does not appear or disappear
/// while a process runs, and retrying a failed `dlopen` on every reading would be wasted work.
pub fn nvml() -> Result<&'static Nvml, NvmlUnavailable> {
    NVML.get_or_init(load_nvml).as_ref().map_err(Clone::clone)
}

fn load_nvml() -> Result<Nvml, NvmlUnavailable> {
    let mut reasons = Vec::new();
    for name in NVML_LIBRARY_NAMES {
        match Nvml::builder().lib_path(std::ffi::OsStr::new(name)).init() {
            Ok(nvml) => return Ok(nvml),
            Err(error) => reasons.push(format!("{name}: {error}")),
        }
    }
    Err(NvmlUnavailable {
        reason: format!("NVML could not be loaded ({})", reasons.join("; ")),
    })
}

/// Where a GPU's NVML handle is found: a top-level index, and a MIG index under it.
///
/// Handles are looked up again on every reading, instead of being cached, because NVML device
/// handles borrow the library and a GPU can fall off the bus between readings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct NvmlPath {
    index: u32,
    mig_index: Option<u32>,
}

/// A GPU (or one MIG instance of a GPU) read through NVML.
#[derive(Debug, Clone)]
pub struct NvmlGpu {
    id: DeviceId,
    name: String,
    path: NvmlPath,
}

impl NvmlGpu {
    /// The NVML index of the physical GPU (not necessarily the CUDA ordinal).
    pub fn nvml_index(&self) -> u32 {
        self.path.index
    }

    /// The MIG instance index under the physical GPU, when this is a MIG instance.
    pub fn mig_index(&self) -> Option<u32> {
        self.path.mig_index
    }

    /// The device's UUID.
    pub fn uuid(&self) -> &str {
        match &self.id {
            DeviceId::Gpu(uuid) => uuid,
            DeviceId::Host => "",
        }
    }
}

impl DeviceProbe for NvmlGpu {
    fn id(&self) -> &DeviceId {
        &self.id
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn read(&self) -> Result<MemoryReading, ReadingUnavailable> {
        let unavailable = |reason: String| ReadingUnavailable {
            device: self.id.clone(),
            reason,
        };
        let nvml = nvml().map_err(|e| unavailable(e.reason))?;
        let parent = nvml
            .device_by_index(self.path.index)
            .map_err(|e| unavailable(format!("device {}: {e}", self.path.index)))?;
        let device = match self.path.mig_index {
            None => parent,
            Some(mig) => parent
                .mig_device_by_index(mig)
                .map_err(|e| unavailable(format!("MIG instance {mig}: {e}")))?,
        };
        // nvml-wrapper 0.13's `memory_info` calls `nvmlDeviceGetMemoryInfo_v2`, whose `used`
        // excludes memory the driver reserves (v1 counted it: 912 MB vs 7.8 MB on an A100,
        // Cldfire/nvml-wrapper#57).
        let info = device
            .memory_info()
            .map_err(|e| unavailable(format!("memory info: {e}")))?;
        Ok(MemoryReading {
            total_bytes: info.total,
            used_bytes: info.used,
            free_bytes: info.free,
        })
    }
}

/// The GPUs NVML sees, as placement targets: a GPU in MIG mode is replaced by its MIG
/// instances, because each instance is its own memory domain (serving-anchors.md §5, MIG).
///
/// Returns the reason when NVML is unavailable. A GPU whose UUID or name cannot be read is
/// skipped with a `tracing` warning, since it cannot be keyed.
pub fn nvml_gpus() -> Result<Vec<NvmlGpu>, NvmlUnavailable> {
    let nvml = nvml()?;
    let count = nvml.device_count().map_err(|e| NvmlUnavailable {
        reason: format!("device count: {e}"),
    })?;
    let mut gpus = Vec::new();
    for index in 0..count {
        let device = match nvml.device_by_index(index) {
            Ok(device) => device,
            Err(error) => {
                tracing::warn!(index, %error, "skipping a GPU NVML cannot open");
                continue;
            }
        };
        let name = device.name().unwrap_or_else(|_| "unknown GPU".to_owned());
        let instances = mig_instances(&device);
        if instances.is_empty() {
            match device.uuid() {
                Ok(uuid) => gpus.push(NvmlGpu {
                    id: DeviceId::Gpu(uuid),
                    name: name.clone(),
                    path: NvmlPath {
                        index,
                        mig_index: None,
                    },
                }),
                Err(error) => tracing::warn!(index, %error, "skipping a GPU without a UUID"),
            }
        }
        for (mig_index, uuid) in instances {
            gpus.push(NvmlGpu {
                id: DeviceId::Gpu(uuid),
                name: format!("{name} (MIG {mig_index})"),
                path: NvmlPath {
                    index,
                    mig_index: Some(mig_index),
                },
            });
        }
    }
    Ok(gpus)
}

/// The MIG instances of a GPU as (index, UUID); empty when MIG is off or not supported.
pub(crate) fn mig_instances(device: &nvml_wrapper::Device<'_>) -> Vec<(u32, String)> {
    let enabled = device
        .mig_mode()
        .map(|mode| mode.current == 1)
        .unwrap_or(false);
    if !enabled {
        return Vec::new();
    }
    let slots = device.mig_device_count().unwrap_or(0);
    (0..slots)
        .filter_map(|i| {
            let instance = device.mig_device_by_index(i).ok()?;
            Some((i, instance.uuid().ok()?))
        })
        .collect()
}

/// A `sysinfo::System` set up on first use, shared by the host probes.
#[derive(Debug, Default)]
struct LazySystem(Mutex<Option<sysinfo::System>>);

impl LazySystem {
    /// Runs `read` on the system (set up now if needed), with host memory figures refreshed.
    fn read(
        &self,
        read: impl FnOnce(&mut sysinfo::System) -> Result<MemoryReading, String>,
    ) -> Result<MemoryReading, ReadingUnavailable> {
        let unavailable = |reason: String| ReadingUnavailable {
            device: DeviceId::Host,
            reason,
        };
        let mut slot = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if slot.is_none() {
            *slot =
                Some(sysinfo::System::new().map_err(|e| unavailable(format!("sysinfo: {e:?}")))?);
        }
        let Some(system) = slot.as_mut() else {
            return Err(unavailable("sysinfo could not be set up".to_owned()));
        };
        system.refresh_memory();
        if system.total_memory() == 0 {
            return Err(unavailable("the OS reported 0 bytes of RAM".to_owned()));
        }
        read(system).map_err(unavailable)
    }
}

/// The host's system memory, read through `sysinfo`.
#[derive(Debug)]
pub struct HostMemoryProbe {
    id: DeviceId,
    system: LazySystem,
}

impl HostMemoryProbe {
    /// A probe for the host's memory; `sysinfo` is set up on the first reading.
    pub fn new() -> Self {
        Self {
            id: DeviceId::Host,
            system: LazySystem::default(),
        }
    }
}

impl Default for HostMemoryProbe {
    fn default() -> Self {
        Self::new()
    }
}

impl DeviceProbe for HostMemoryProbe {
    fn id(&self) -> &DeviceId {
        &self.id
    }

    fn name(&self) -> &str {
        "host"
    }

    fn read(&self) -> Result<MemoryReading, ReadingUnavailable> {
        self.system.read(|system| {
            let total = system.total_memory();
            let available = system.available_memory().min(total);
            Ok(MemoryReading {
                total_bytes: total,
                used_bytes: total - available,
                free_bytes: available,
            })
        })
    }
}

/// This process's resident memory (RSS), reported as the host's `used`: the probe to measure
/// a CPU load's footprint with ([`LoadPermit::measure_delta`](crate::LoadPermit::measure_delta)),
/// since system-wide usage moves with every other process. `total` and `free` are the host's.
/// Use [`HostMemoryProbe`] for what is available.
#[derive(Debug)]
pub struct ProcessMemoryProbe {
    id: DeviceId,
    system: LazySystem,
}

impl ProcessMemoryProbe {
    /// A probe for this process; `sysinfo` is set up on the first reading.
    pub fn new() -> Self {
        Self {
            id: DeviceId::Host,
            system: LazySystem::default(),
        }
    }
}

impl Default for ProcessMemoryProbe {
    fn default() -> Self {
        Self::new()
    }
}

impl DeviceProbe for ProcessMemoryProbe {
    fn id(&self) -> &DeviceId {
        &self.id
    }

    fn name(&self) -> &str {
        "this process"
    }

    fn read(&self) -> Result<MemoryReading, ReadingUnavailable> {
        let pid = sysinfo::get_current_pid().map_err(|e| ReadingUnavailable {
            device: DeviceId::Host,
            reason: format!("own pid: {e:?}"),
        })?;
        self.system.read(|system| {
            system.refresh_processes_specifics(
                sysinfo::ProcessesToUpdate::Some(&[pid]),
                false,
                sysinfo::ProcessRefreshKind::nothing().with_memory(),
            );
            let rss = system
                .process(pid)
                .map(sysinfo::Process::memory)
                .ok_or_else(|| "this process is not in the process table".to_owned())?;
            Ok(MemoryReading {
                total_bytes: system.total_memory(),
                used_bytes: rss,
                free_bytes: system.available_memory(),
            })
        })
    }
}

/// The devices this process can use: the host first, then NVML's GPUs (MIG instances in place
/// of their GPUs), with the reason when NVML is unavailable (then the host is the only device).
pub fn local_probes() -> (
    Vec<std::sync::Arc<dyn DeviceProbe>>,
    Option<NvmlUnavailable>,
) {
    let mut probes: Vec<std::sync::Arc<dyn DeviceProbe>> =
        vec![std::sync::Arc::new(HostMemoryProbe::new())];
    match nvml_gpus() {
        Ok(gpus) => {
            for gpu in gpus {
                probes.push(std::sync::Arc::new(gpu));
            }
            (probes, None)
        }
        Err(error) => (probes, Some(error)),
    }
}
