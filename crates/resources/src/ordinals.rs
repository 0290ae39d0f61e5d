//! Mapping GPUs (keyed by UUID) to the CUDA ordinals a `cuda:N` request means in this process.
//!
//! NVML numbers GPUs by PCI bus id; CUDA numbers them fastest first unless
//! `CUDA_DEVICE_ORDER=PCI_BUS_ID`, and `CUDA_VISIBLE_DEVICES` hides and renumbers them
//! (serving-anchors.md, "Device numbering"; gpustack#1633, dask-cuda PR #671). An ordinal is
//! given only when it is certain; otherwise it is `None` and callers should name the UUID.

use crate::device::NvmlGpu;

/// What the mapping needs to know about one NVML device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrdinalInput<'a> {
    /// The device's UUID (`GPU-…` or `MIG-…`).
    pub uuid: &'a str,
    /// The NVML index of its physical GPU.
    pub nvml_index: u32,
    /// Whether it is a MIG instance.
    pub is_mig: bool,
}

/// The CUDA ordinal of each device, given the values of `CUDA_VISIBLE_DEVICES` and
/// `CUDA_DEVICE_ORDER`; `None` where the ordinal cannot be known for sure.
///
/// - With `CUDA_VISIBLE_DEVICES` listing UUIDs, the ordinal is the position in the list.
/// - With it listing indices, those are CUDA's own numbering: they match NVML's only under
///   `PCI_BUS_ID` order (or with a single physical GPU).
/// - Without it, physical GPUs under `PCI_BUS_ID` order (or a lone GPU) have ordinal = NVML
///   index. MIG instances get an ordinal only when listed by UUID.
pub fn cuda_ordinals(
    devices: &[OrdinalInput<'_>],
    visible: Option<&str>,
    order: Option<&str>,
) -> Vec<Option<u32>> {
    let physical: std::collections::BTreeSet<u32> = devices.iter().map(|d| d.nvml_index).collect();
    let pci_order = order.is_some_and(|o| o.trim() == "PCI_BUS_ID") || physical.len() <= 1;
    match visible.map(str::trim) {
        None => devices
            .iter()
            .map(|d| (!d.is_mig && pci_order).then_some(d.nvml_index))
            .collect(),
        Some(list) => {
            let entries: Vec<&str> = list
                .split(',')
                .map(str::trim)
                .filter(|e| !e.is_empty())
                .collect();
            devices
                .iter()
                .map(|d| {
                    let position = entries.iter().position(|entry| {
                        if entry.starts_with("GPU-") || entry.starts_with("MIG-") {
                            // CUDA accepts a unique prefix of a UUID.
                            d.uuid.starts_with(entry)
                        } else {
                            !d.is_mig
                                && pci_order
                                && entry.parse::<u32>().is_ok_and(|i| i == d.nvml_index)
                        }
                    })?;
                    u32::try_from(position).ok()
                })
                .collect()
        }
    }
}

/// [`cuda_ordinals`] for NVML's GPUs, from this process's environment.
pub fn cuda_ordinals_from_env(gpus: &[NvmlGpu]) -> Vec<Option<u32>> {
    let inputs: Vec<OrdinalInput<'_>> = gpus
        .iter()
        .map(|gpu| OrdinalInput {
            uuid: gpu.uuid(),
            nvml_index: gpu.nvml_index(),
            is_mig: gpu.mig_index().is_some(),
        })
        .collect();
    let visible = std::env::var("CUDA_VISIBLE_DEVICES").ok();
    let order = std::env::var("CUDA_DEVICE_ORDER").ok();
    cuda_ordinals(&inputs, visible.as_deref(), order.as_deref())
}
