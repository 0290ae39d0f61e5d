//! CUDA ordinals: given only when certain.

use crate::*;

fn gpus() -> Vec<OrdinalInput<'static>> {
    vec![
        OrdinalInput {
            uuid: "GPU-aaaa",
            nvml_index: 0,
            is_mig: false,
        },
        OrdinalInput {
            uuid: "GPU-bbbb",
            nvml_index: 1,
            is_mig: false,
        },
        OrdinalInput {
            uuid: "MIG-cccc",
            nvml_index: 2,
            is_mig: true,
        },
    ]
}

#[test]
fn ordinals_follow_cuda_visible_devices_and_the_device_order() {
    // Default (fastest first) order with several GPUs: unknown.
    assert_eq!(cuda_ordinals(&gpus(), None, None), vec![None, None, None]);
    assert_eq!(
        cuda_ordinals(&gpus(), None, Some("PCI_BUS_ID")),
        vec![Some(0), Some(1), None]
    );
    // Indices renumber, and only mean NVML indices under PCI order.
    assert_eq!(
        cuda_ordinals(&gpus(), Some("1"), Some("PCI_BUS_ID")),
        vec![None, Some(0), None]
    );
    assert_eq!(
        cuda_ordinals(&gpus(), Some("1"), None),
        vec![None, None, None]
    );
    // UUIDs (or unique prefixes) are certain in any order, MIG instances included.
    assert_eq!(
        cuda_ordinals(&gpus(), Some("MIG-cccc, GPU-bb"), None),
        vec![None, Some(1), Some(0)]
    );
    // A lone GPU is ordinal 0 whatever the order.
    assert_eq!(cuda_ordinals(&gpus()[..1], None, None), vec![Some(0)]);
    assert_eq!(
        cuda_ordinals(&gpus(), Some(""), None),
        vec![None, None, None]
    );
}
