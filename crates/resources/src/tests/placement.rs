//! Placement: device strings, provider lists, best fit, and never landing where the model may not run.

use proptest::prelude::*;

use crate::*;

fn gpu(uuid: &str, ordinal: u32, available: u64, evictable: u64) -> DeviceCandidate {
    DeviceCandidate {
        id: DeviceId::Gpu(uuid.into()),
        cuda_ordinal: Some(ordinal),
        available_bytes: available,
        evictable_bytes: evictable,
    }
}

fn host(available: u64) -> DeviceCandidate {
    DeviceCandidate {
        id: DeviceId::Host,
        cuda_ordinal: None,
        available_bytes: available,
        evictable_bytes: 0,
    }
}

fn try_place(
    device: &str,
    providers: &[(Provider, u64)],
    cpu_fallback: CpuFallback,
    devices: &[DeviceCandidate],
) -> Result<Placement, PlacementError> {
    place(&request(device, providers, cpu_fallback), devices)
}

fn request(
    device: &str,
    providers: &[(Provider, u64)],
    cpu_fallback: CpuFallback,
) -> PlacementRequest {
    PlacementRequest {
        model: "unet".into(),
        device: device.parse().unwrap(),
        providers: providers.to_vec(),
        cpu_fallback,
    }
}

#[test]
fn device_strings_parse_with_typed_errors() {
    let cases = [
        ("auto", Ok(DeviceRequest::Auto)),
        (" CPU ", Ok(DeviceRequest::Cpu)),
        ("cuda", Ok(DeviceRequest::AnyGpu)),
        ("cuda:1", Ok(DeviceRequest::CudaOrdinal(1))),
        (
            "GPU-5b3c1f2e-9a7d-4c1e-8f00-0123456789ab",
            Ok(DeviceRequest::Uuid(
                "GPU-5b3c1f2e-9a7d-4c1e-8f00-0123456789ab".into(),
            )),
        ),
        ("MIG-1a2b", Ok(DeviceRequest::Uuid("MIG-1a2b".into()))),
        ("", Err(ParseDeviceError::Empty)),
        (
            "cuda:x",
            Err(ParseDeviceError::BadOrdinal {
                input: "cuda:x".into(),
            }),
        ),
        (
            "cuda:-1",
            Err(ParseDeviceError::BadOrdinal {
                input: "cuda:-1".into(),
            }),
        ),
        (
            "tpu:0",
            Err(ParseDeviceError::Unrecognised {
                input: "tpu:0".into(),
            }),
        ),
        (
            "GPU-",
            Err(ParseDeviceError::Unrecognised {
                input: "GPU-".into(),
            }),
        ),
    ];
    for (input, expected) in cases {
        assert_eq!(input.parse::<DeviceRequest>(), expected, "{input:?}");
    }
    for text in ["auto", "cpu", "cuda", "cuda:3", "GPU-ab"] {
        assert_eq!(text.parse::<DeviceRequest>().unwrap().to_string(), text);
    }
}

#[test]
fn auto_prefers_the_first_provider_and_the_best_fit() {
    let devices = [
        gpu("GPU-a", 0, 10_000, 0),
        gpu("GPU-b", 1, 3_000, 0),
        host(100_000),
    ];
    let placed = try_place(
        "auto",
        &[(Provider::Cuda, 2_000)],
        CpuFallback::Allowed { bytes: 1_000 },
        &devices,
    )
    .unwrap();
    assert_eq!(
        placed,
        Placement {
            device: DeviceId::Gpu("GPU-b".into()),
            provider: Provider::Cuda,
            bytes: 2_000,
            evict_bytes: 0
        }
    );
}

#[test]
fn a_preferred_gpu_that_needs_eviction_beats_the_cpu_fallback() {
    let devices = [gpu("GPU-a", 0, 1_000, 5_000), host(100_000)];
    let placed = try_place(
        "auto",
        &[(Provider::Cuda, 4_000)],
        CpuFallback::Allowed { bytes: 3_000 },
        &devices,
    )
    .unwrap();
    assert_eq!(
        (placed.provider, placed.evict_bytes),
        (Provider::Cuda, 3_000)
    );
    // When even eviction cannot make room on the GPU, the CPU fallback is used.
    let devices = [gpu("GPU-a", 0, 1_000, 1_000), host(100_000)];
    let placed = try_place(
        "auto",
        &[(Provider::Cuda, 4_000)],
        CpuFallback::Allowed { bytes: 3_000 },
        &devices,
    )
    .unwrap();
    assert_eq!(
        (placed.device, placed.provider),
        (DeviceId::Host, Provider::Cpu)
    );
}

#[test]
fn cpu_only_models_never_go_to_a_gpu() {
    let devices = [gpu("GPU-a", 0, 1 << 40, 0), host(1_000)];
    let placed = try_place(
        "auto",
        &[(Provider::Cpu, 500)],
        CpuFallback::Forbidden,
        &devices,
    )
    .unwrap();
    assert_eq!(placed.device, DeviceId::Host);
    let error = try_place(
        "cuda:0",
        &[(Provider::Cpu, 500)],
        CpuFallback::Forbidden,
        &devices,
    )
    .unwrap_err();
    assert!(
        matches!(error, PlacementError::NotAllowed { .. }),
        "{error}"
    );
}

#[test]
fn gpu_models_without_fallback_never_land_on_the_cpu() {
    let devices = [gpu("GPU-a", 0, 1_000, 0), host(1 << 40)];
    let error = try_place(
        "auto",
        &[(Provider::Cuda, 4_000)],
        CpuFallback::Forbidden,
        &devices,
    )
    .unwrap_err();
    let PlacementError::NoRoom { rejected, .. } = &error else {
        panic!("{error}")
    };
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0].device, DeviceId::Gpu("GPU-a".into()));
    assert!(
        error
            .to_string()
            .contains("needs 4000 bytes, 1000 available, 0 evictable"),
        "{error}"
    );
    let error = try_place(
        "cpu",
        &[(Provider::Cuda, 4_000)],
        CpuFallback::Forbidden,
        &devices,
    )
    .unwrap_err();
    assert!(
        matches!(error, PlacementError::NotAllowed { .. }),
        "{error}"
    );
    // No GPU at all: still not the CPU.
    let error = try_place(
        "auto",
        &[(Provider::Cuda, 4_000)],
        CpuFallback::Forbidden,
        &[host(1 << 40)],
    )
    .unwrap_err();
    assert!(
        matches!(error, PlacementError::NoRoom { ref rejected, .. } if rejected.is_empty()),
        "{error}"
    );
}

#[test]
fn explicit_devices_are_honoured_or_named_as_missing() {
    let devices = [gpu("GPU-a", 0, 10_000, 0), gpu("GPU-b", 1, 3_000, 0)];
    let providers = [(Provider::TensorRt, 2_500), (Provider::Cuda, 2_000)];
    let placed = try_place("cuda:0", &providers, CpuFallback::Forbidden, &devices).unwrap();
    assert_eq!(
        (placed.device, placed.provider),
        (DeviceId::Gpu("GPU-a".into()), Provider::TensorRt)
    );
    let placed = try_place("GPU-b", &providers, CpuFallback::Forbidden, &devices).unwrap();
    assert_eq!(placed.device, DeviceId::Gpu("GPU-b".into()));
    let error = try_place("cuda:7", &providers, CpuFallback::Forbidden, &devices).unwrap_err();
    assert_eq!(
        error.to_string(),
        "unet: no device cuda:7 (devices: GPU-a, GPU-b)"
    );
}

fn candidate() -> impl Strategy<Value = DeviceCandidate> {
    (any::<bool>(), 0u32..4, 0u64..10_000, 0u64..10_000).prop_map(
        |(is_gpu, n, available, evictable)| {
            if is_gpu {
                gpu(&format!("GPU-{n}"), n, available, evictable)
            } else {
                host(available)
            }
        },
    )
}

fn provider() -> impl Strategy<Value = Provider> {
    prop_oneof![
        Just(Provider::Cpu),
        Just(Provider::Cuda),
        Just(Provider::TensorRt)
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    /// Whatever the devices and the request, a placement uses an allowed provider on a device of
    /// its kind with room (after eviction), and never the CPU unless the model allows it.
    #[test]
    fn placements_respect_providers_and_room(
        mut candidates in prop::collection::vec(candidate(), 0..5),
        providers in prop::collection::vec((provider(), 1u64..12_000), 1..3),
        fallback in prop::option::of(1u64..12_000),
        device in prop_oneof![Just("auto"), Just("cpu"), Just("cuda"), Just("cuda:1"), Just("GPU-2")],
    ) {
        // Device ids are unique in a real process.
        let mut seen = std::collections::BTreeSet::new();
        candidates.retain(|c| seen.insert(c.id.clone()));
        let cpu_fallback = fallback.map_or(CpuFallback::Forbidden, |bytes| CpuFallback::Allowed { bytes });
        let request = request(device, &providers, cpu_fallback);
        if let Ok(placed) = place(&request, &candidates) {
            let cpu_allowed = fallback.is_some() || providers.iter().any(|(p, _)| *p == Provider::Cpu);
            let listed = providers.iter().any(|(p, _)| *p == placed.provider);
            prop_assert!(listed || (placed.provider == Provider::Cpu && cpu_allowed));
            prop_assert_eq!(placed.device.kind(), placed.provider.device_kind());
            if placed.device == DeviceId::Host {
                prop_assert!(cpu_allowed, "landed on the CPU without permission");
            }
            let chosen = candidates.iter().find(|c| c.id == placed.device).unwrap();
            prop_assert!(chosen.available_bytes + chosen.evictable_bytes >= placed.bytes);
            prop_assert_eq!(placed.evict_bytes, placed.bytes.saturating_sub(chosen.available_bytes));
        }
    }
}
