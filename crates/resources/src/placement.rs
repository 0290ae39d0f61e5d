//! Placement: which device (and provider) a model goes to, from a request string (`auto`,
//! `cpu`, `cuda`, `cuda:N`, a GPU or MIG UUID) and the model's allowed providers.
//!
//! Providers are tried in the catalog's order of preference; within one provider the best fit
//! wins (the device left with the least free memory that still fits, so large holes stay for
//! large models). A preferred provider that needs an eviction beats a less preferred one that
//! fits now: the CPU is a fallback, not a shortcut, and eviction is what the policy is for.
//! A model that may not run on the CPU never lands there.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use crate::device::{DeviceId, DeviceKind};
use crate::estimator::Provider;

/// Where a request asks a model to run.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceRequest {
    /// Anywhere the model's providers allow.
    Auto,
    /// The host.
    Cpu,
    /// Any GPU (`cuda`).
    AnyGpu,
    /// A GPU by CUDA ordinal (`cuda:N`), as the process sees it.
    CudaOrdinal(u32),
    /// A GPU or MIG instance by UUID.
    Uuid(String),
}

impl fmt::Display for DeviceRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceRequest::Auto => f.write_str("auto"),
            DeviceRequest::Cpu => f.write_str("cpu"),
            DeviceRequest::AnyGpu => f.write_str("cuda"),
            DeviceRequest::CudaOrdinal(n) => write!(f, "cuda:{n}"),
            DeviceRequest::Uuid(uuid) => f.write_str(uuid),
        }
    }
}

/// A device string that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseDeviceError {
    /// The string is empty.
    #[error("empty device string (expected auto, cpu, cuda, cuda:N or a GPU UUID)")]
    Empty,
    /// `cuda:` followed by something that is not an ordinal.
    #[error("{input:?}: the part after \"cuda:\" must be a GPU ordinal such as cuda:0")]
    BadOrdinal {
        /// The string given.
        input: String,
    },
    /// Not one of the accepted forms.
    #[error("{input:?} is not a device (expected auto, cpu, cuda, cuda:N, GPU-… or MIG-…)")]
    Unrecognised {
        /// The string given.
        input: String,
    },
}

impl FromStr for DeviceRequest {
    type Err = ParseDeviceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let trimmed = s.trim();
        let lower = trimmed.to_ascii_lowercase();
        match lower.as_str() {
            "" => Err(ParseDeviceError::Empty),
            "auto" => Ok(DeviceRequest::Auto),
            "cpu" => Ok(DeviceRequest::Cpu),
            "cuda" | "gpu" => Ok(DeviceRequest::AnyGpu),
            _ => {
                if let Some(ordinal) = lower.strip_prefix("cuda:") {
                    return ordinal
                        .parse()
                        .map(DeviceRequest::CudaOrdinal)
                        .map_err(|_| ParseDeviceError::BadOrdinal {
                            input: s.to_owned(),
                        });
                }
                // NVML UUIDs are "GPU-" or "MIG-" followed by hex groups; the case is kept as
                // given because UUIDs are compared exactly.
                let is_uuid = (lower.starts_with("gpu-") || lower.starts_with("mig-"))
                    && trimmed.len() > 4
                    && trimmed[4..]
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '/');
                if is_uuid {
                    Ok(DeviceRequest::Uuid(trimmed.to_owned()))
                } else {
                    Err(ParseDeviceError::Unrecognised {
                        input: s.to_owned(),
                    })
                }
            }
        }
    }
}

/// A device placement may choose, with what the ledger and the policy say about it now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceCandidate {
    /// The device.
    pub id: DeviceId,
    /// Its CUDA ordinal in this process, for `cuda:N` requests (the manager maps UUIDs to
    /// ordinals; NVML's order matches CUDA's only with `CUDA_DEVICE_ORDER=PCI_BUS_ID`).
    pub cuda_ordinal: Option<u32>,
    /// Bytes available without evicting anything.
    pub available_bytes: u64,
    /// Bytes the swap policy could free by evicting idle, unpinned models.
    pub evictable_bytes: u64,
}

/// Whether a model may run on the CPU when its listed providers cannot be placed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "cpu_fallback")]
pub enum CpuFallback {
    /// Never: a GPU-only model fails rather than run slowly somewhere unexpected.
    Forbidden,
    /// Allowed, with the footprint the model takes on the CPU.
    Allowed {
        /// Bytes the model takes in host memory.
        bytes: u64,
    },
}

/// What placement needs to know about the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlacementRequest {
    /// The model, for error messages.
    pub model: String,
    /// Where the request asks it to run.
    pub device: DeviceRequest,
    /// The allowed providers in order of preference, each with the model's footprint on it.
    pub providers: Vec<(Provider, u64)>,
    /// Whether the CPU may be used when the listed providers cannot.
    pub cpu_fallback: CpuFallback,
}

/// The chosen device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Placement {
    /// The device.
    pub device: DeviceId,
    /// The provider to load the model with.
    pub provider: Provider,
    /// Bytes to reserve.
    pub bytes: u64,
    /// Bytes the swap policy must free first (0 when the model fits now).
    pub evict_bytes: u64,
}

/// An option placement considered and rejected, for the error message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RejectedOption {
    /// The device.
    pub device: DeviceId,
    /// The provider.
    pub provider: Provider,
    /// Bytes the model needs there.
    pub needed_bytes: u64,
    /// Bytes available there.
    pub available_bytes: u64,
    /// Bytes eviction could free there.
    pub evictable_bytes: u64,
}

/// Why no device could be chosen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlacementError {
    /// The request names a device this process does not have.
    #[error("{model}: no device {request} (devices: {known})")]
    UnknownDevice {
        /// The model.
        model: String,
        /// The request.
        request: DeviceRequest,
        /// The devices there are, comma-separated.
        known: String,
    },
    /// The requested device's kind is not allowed for this model.
    #[error("{model} cannot run on {request}: its providers are {allowed}")]
    NotAllowed {
        /// The model.
        model: String,
        /// The request.
        request: DeviceRequest,
        /// The allowed providers, comma-separated (with cpu when fallback is allowed).
        allowed: String,
    },
    /// No allowed device has room, even after eviction.
    #[error("{model} fits on no allowed device, even after eviction: {}", describe(.rejected))]
    NoRoom {
        /// The model.
        model: String,
        /// Every (device, provider) considered.
        rejected: Vec<RejectedOption>,
    },
}

fn describe(rejected: &[RejectedOption]) -> String {
    rejected
        .iter()
        .map(|r| {
            format!(
                "{} on {} needs {} bytes, {} available, {} evictable",
                r.provider, r.device, r.needed_bytes, r.available_bytes, r.evictable_bytes
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn matches_request(request: &DeviceRequest, candidate: &DeviceCandidate) -> bool {
    match request {
        DeviceRequest::Auto => true,
        DeviceRequest::Cpu => candidate.id == DeviceId::Host,
        DeviceRequest::AnyGpu => candidate.id.kind() == DeviceKind::Cuda,
        DeviceRequest::CudaOrdinal(n) => candidate.cuda_ordinal == Some(*n),
        DeviceRequest::Uuid(uuid) => matches!(&candidate.id, DeviceId::Gpu(id) if id == uuid),
    }
}

/// Chooses a device and provider for `request` among `candidates`.
pub fn place(
    request: &PlacementRequest,
    candidates: &[DeviceCandidate],
) -> Result<Placement, PlacementError> {
    let requested: Vec<&DeviceCandidate> = candidates
        .iter()
        .filter(|c| matches_request(&request.device, c))
        .collect();
    if requested.is_empty() && request.device != DeviceRequest::Auto {
        return Err(PlacementError::UnknownDevice {
            model: request.model.clone(),
            request: request.device.clone(),
            known: candidates
                .iter()
                .map(|c| c.id.to_string())
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    let mut options = request.providers.clone();
    if let CpuFallback::Allowed { bytes } = request.cpu_fallback
        && !options.iter().any(|(p, _)| *p == Provider::Cpu)
    {
        options.push((Provider::Cpu, bytes));
    }
    let usable = |provider: Provider| {
        requested
            .iter()
            .copied()
            .filter(move |c| c.id.kind() == provider.device_kind())
    };
    let nothing_usable = options
        .iter()
        .all(|(provider, _)| usable(*provider).next().is_none());
    if nothing_usable && request.device != DeviceRequest::Auto {
        return Err(PlacementError::NotAllowed {
            model: request.model.clone(),
            request: request.device.clone(),
            allowed: options
                .iter()
                .map(|(p, _)| p.to_string())
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    let mut rejected = Vec::new();
    for &(provider, bytes) in &options {
        let fits_now = usable(provider)
            .filter(|c| c.available_bytes >= bytes)
            .min_by_key(|c| (c.available_bytes - bytes, c.id.clone()));
        if let Some(device) = fits_now {
            return Ok(Placement {
                device: device.id.clone(),
                provider,
                bytes,
                evict_bytes: 0,
            });
        }
        let fits_after_eviction = usable(provider)
            .filter(|c| c.available_bytes.saturating_add(c.evictable_bytes) >= bytes)
            .min_by_key(|c| (bytes.saturating_sub(c.available_bytes), c.id.clone()));
        if let Some(device) = fits_after_eviction {
            return Ok(Placement {
                device: device.id.clone(),
                provider,
                bytes,
                evict_bytes: bytes.saturating_sub(device.available_bytes),
            });
        }
        rejected.extend(usable(provider).map(|c| RejectedOption {
            device: c.id.clone(),
            provider,
            needed_bytes: bytes,
            available_bytes: c.available_bytes,
            evictable_bytes: c.evictable_bytes,
        }));
    }
    Err(PlacementError::NoRoom {
        model: request.model.clone(),
        rejected,
    })
}
