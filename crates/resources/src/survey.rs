//! `survey()`: one look at every device this process could use, for `modelmux doctor`.
//!
//! Every number comes from NVML or the OS; when one cannot be read, the field is `None` and a
//! reason says why.

use std::fmt;

use serde::Serialize;

use crate::device::{DeviceProbe, HostMemoryProbe, mig_instances, nvml};

/// What NVML and the OS report about this machine's memory.
#[derive(Debug, Clone, Serialize)]
pub struct Survey {
    /// GPUs, or why NVML could not be used.
    pub nvml: NvmlSurvey,
    /// System RAM.
    pub host: HostMemory,
}

/// The outcome of loading NVML and listing GPUs.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum NvmlSurvey {
    /// NVML loaded; the driver and its GPUs.
    Available {
        /// The driver version (`nvidia-smi` shows the same string).
        driver_version: String,
        /// The CUDA version the driver supports, e.g. "13.0", when NVML reports it.
        cuda_driver_version: Option<String>,
        /// One entry per physical GPU, in NVML order.
        gpus: Vec<GpuReading>,
    },
    /// NVML could not be loaded or initialised; normal on machines without an NVIDIA GPU.
    Unavailable {
        /// The loader's or driver's error.
        reason: String,
    },
}

/// One physical GPU as NVML reports it.
#[derive(Debug, Clone, Serialize)]
pub struct GpuReading {
    /// The NVML index (not necessarily the CUDA ordinal: see `CUDA_DEVICE_ORDER`).
    pub index: u32,
    /// The GPU's UUID, the key modelmux uses for it.
    pub uuid: String,
    /// The product name.
    pub name: String,
    /// Total memory (NVML v2, reserved memory excluded), when readable.
    pub total_bytes: Option<u64>,
    /// Used memory, when readable.
    pub used_bytes: Option<u64>,
    /// Free memory, when readable.
    pub free_bytes: Option<u64>,
    /// Why the memory fields are `None`, when they are.
    pub memory_unavailable: Option<String>,
    /// MIG mode and instances.
    pub mig: MigSurvey,
}

/// A GPU's MIG state.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum MigSurvey {
    /// The GPU does not support MIG, or NVML would not say.
    NotSupported,
    /// MIG is supported but off.
    Disabled,
    /// MIG is on: each instance is its own memory domain and placement target.
    Enabled {
        /// The instances NVML lists.
        instances: Vec<MigInstanceReading>,
    },
}

/// One MIG instance.
#[derive(Debug, Clone, Serialize)]
pub struct MigInstanceReading {
    /// The instance index under its GPU.
    pub index: u32,
    /// The instance's `MIG-…` UUID.
    pub uuid: String,
    /// Total memory of the instance, when readable.
    pub total_bytes: Option<u64>,
    /// Used memory of the instance, when readable.
    pub used_bytes: Option<u64>,
    /// Free memory of the instance, when readable.
    pub free_bytes: Option<u64>,
}

/// System RAM.
#[derive(Debug, Clone, Serialize)]
pub struct HostMemory {
    /// Total RAM, when readable.
    pub total_bytes: Option<u64>,
    /// RAM available to new allocations, when readable.
    pub available_bytes: Option<u64>,
    /// Why the fields are `None`, when they are.
    pub unavailable: Option<String>,
}

/// Looks at NVML (loading it on first use) and the host's memory.
///
/// Never fails: whatever cannot be read is reported as unavailable with a reason.
pub fn survey() -> Survey {
    Survey {
        nvml: survey_nvml(),
        host: survey_host(),
    }
}

fn survey_host() -> HostMemory {
    match HostMemoryProbe::new().read() {
        Ok(reading) => HostMemory {
            total_bytes: Some(reading.total_bytes),
            available_bytes: Some(reading.free_bytes),
            unavailable: None,
        },
        Err(error) => HostMemory {
            total_bytes: None,
            available_bytes: None,
            unavailable: Some(error.reason),
        },
    }
}

fn survey_nvml() -> NvmlSurvey {
    let nvml = match nvml() {
        Ok(nvml) => nvml,
        Err(error) => {
            return NvmlSurvey::Unavailable {
                reason: error.reason,
            };
        }
    };
    let driver_version = match nvml.sys_driver_version() {
        Ok(version) => version,
        Err(error) => {
            return NvmlSurvey::Unavailable {
                reason: format!("driver version: {error}"),
            };
        }
    };
    let cuda_driver_version = nvml.sys_cuda_driver_version().ok().map(cuda_version_string);
    let count = match nvml.device_count() {
        Ok(count) => count,
        Err(error) => {
            return NvmlSurvey::Unavailable {
                reason: format!("device count: {error}"),
            };
        }
    };
    let gpus = (0..count)
        .filter_map(|index| survey_gpu(nvml, index))
        .collect();
    NvmlSurvey::Available {
        driver_version,
        cuda_driver_version,
        gpus,
    }
}

/// Formats NVML's integer CUDA version (e.g. 13000) as "13.0".
fn cuda_version_string(version: i32) -> String {
    format!("{}.{}", version / 1000, (version % 1000) / 10)
}

fn survey_gpu(nvml: &nvml_wrapper::Nvml, index: u32) -> Option<GpuReading> {
    let device = match nvml.device_by_index(index) {
        Ok(device) => device,
        Err(error) => {
            tracing::warn!(index, %error, "NVML cannot open a GPU it counted");
            return None;
        }
    };
    let uuid = device
        .uuid()
        .unwrap_or_else(|error| format!("(uuid unavailable: {error})"));
    let name = device
        .name()
        .unwrap_or_else(|error| format!("(name unavailable: {error})"));
    let (total_bytes, used_bytes, free_bytes, memory_unavailable) = match device.memory_info() {
        Ok(info) => (Some(info.total), Some(info.used), Some(info.free), None),
        Err(error) => (None, None, None, Some(error.to_string())),
    };
    let mig = match device.mig_mode() {
        Err(_) => MigSurvey::NotSupported,
        Ok(mode) if mode.current != 1 => MigSurvey::Disabled,
        Ok(_) => MigSurvey::Enabled {
            instances: mig_instances(&device)
                .into_iter()
                .map(|(mig_index, uuid)| {
                    let memory = device
                        .mig_device_by_index(mig_index)
                        .and_then(|instance| instance.memory_info())
                        .ok();
                    MigInstanceReading {
                        index: mig_index,
                        uuid,
                        total_bytes: memory.as_ref().map(|m| m.total),
                        used_bytes: memory.as_ref().map(|m| m.used),
                        free_bytes: memory.as_ref().map(|m| m.free),
                    }
                })
                .collect(),
        },
    };
    Some(GpuReading {
        index,
        uuid,
        name,
        total_bytes,
        used_bytes,
        free_bytes,
        memory_unavailable,
        mig,
    })
}

/// Formats a byte count as MiB for people, keeping the exact number in JSON.
pub(crate) fn mib(bytes: u64) -> String {
    format!("{:.0} MiB", bytes as f64 / (1024.0 * 1024.0))
}

fn optional_mib(bytes: Option<u64>) -> String {
    bytes.map_or_else(|| "?".to_owned(), mib)
}

impl fmt::Display for Survey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.nvml {
            NvmlSurvey::Unavailable { reason } => writeln!(f, "nvml: unavailable ({reason})")?,
            NvmlSurvey::Available {
                driver_version,
                cuda_driver_version,
                gpus,
            } => {
                let cuda = cuda_driver_version.as_deref().unwrap_or("unknown");
                writeln!(
                    f,
                    "nvml: driver {driver_version}, CUDA {cuda}, {} GPU(s)",
                    gpus.len()
                )?;
                for gpu in gpus {
                    write!(
                        f,
                        "  gpu {} {} {}: total {}, used {}, free {}",
                        gpu.index,
                        gpu.uuid,
                        gpu.name,
                        optional_mib(gpu.total_bytes),
                        optional_mib(gpu.used_bytes),
                        optional_mib(gpu.free_bytes),
                    )?;
                    if let Some(reason) = &gpu.memory_unavailable {
                        write!(f, " (memory unavailable: {reason})")?;
                    }
                    writeln!(f)?;
                    if let MigSurvey::Enabled { instances } = &gpu.mig {
                        for instance in instances {
                            writeln!(
                                f,
                                "    mig {} {}: total {}, used {}, free {}",
                                instance.index,
                                instance.uuid,
                                optional_mib(instance.total_bytes),
                                optional_mib(instance.used_bytes),
                                optional_mib(instance.free_bytes),
                            )?;
                        }
                    }
                }
            }
        }
        match &self.host.unavailable {
            Some(reason) => writeln!(f, "host: memory unavailable ({reason})"),
            None => writeln!(
                f,
                "host: total {}, available {}",
                optional_mib(self.host.total_bytes),
                optional_mib(self.host.available_bytes),
            ),
        }
    }
}
