//! Devices: NVML absence is a reported state, the host reads real numbers, simulated devices do what they are told.

use std::time::Duration;

use crate::*;

#[test]
fn survey_reports_nvml_state_and_host_memory() {
    let survey = survey();
    match &survey.nvml {
        // On a machine without an NVIDIA driver the reason names the library.
        NvmlSurvey::Unavailable { reason } => assert!(reason.contains("libnvidia-ml"), "{reason}"),
        NvmlSurvey::Available { gpus, .. } => {
            for gpu in gpus {
                assert!(!gpu.uuid.is_empty());
            }
        }
    }
    assert!(
        survey.host.total_bytes.unwrap_or(0) > 0,
        "{:?}",
        survey.host
    );
    let json = serde_json::to_value(&survey).unwrap();
    assert!(json["nvml"]["status"].is_string());
    assert!(json["host"]["total_bytes"].is_u64());
    let text = survey.to_string();
    assert!(text.starts_with("nvml: "), "{text}");
    assert!(text.contains("host: total"), "{text}");
}

#[test]
fn nvml_absence_is_the_same_answer_every_time() {
    let first = nvml_gpus().map(|gpus| gpus.len());
    let second = nvml_gpus().map(|gpus| gpus.len());
    assert_eq!(first, second);
}

#[test]
fn host_probe_reads_consistent_numbers() {
    let reading = HostMemoryProbe::new().read().unwrap();
    assert!(reading.total_bytes > 0);
    assert_eq!(reading.used_bytes + reading.free_bytes, reading.total_bytes);
}

#[test]
fn simulated_device_scripts_usage_lag_failures_and_loads() {
    let device = SimulatedDevice::gpu("GPU-sim-0", 1000);
    device.set_external(100);
    device.allocate(200);
    assert_eq!(device.read().unwrap().used_bytes, 300);
    device.free_lagging(200, 2);
    assert_eq!(device.read().unwrap().used_bytes, 300);
    assert_eq!(device.read().unwrap().used_bytes, 300);
    assert_eq!(device.read().unwrap().used_bytes, 100);
    device.fail_next_reads(1, "NVML: GPU is lost");
    let error = device.read().unwrap_err();
    assert_eq!(error.device, DeviceId::Gpu("GPU-sim-0".into()));
    assert!(error.to_string().contains("GPU is lost"));
    assert!(device.read().is_ok());

    let clock = ManualClock::default();
    device.script_load(
        "unet",
        ScriptedLoad {
            latency: Duration::from_secs(4),
            outcome: ScriptedOutcome::Succeeds { bytes: 500 },
        },
    );
    device.script_load(
        "vae",
        ScriptedLoad {
            latency: Duration::from_secs(1),
            outcome: ScriptedOutcome::Fails {
                reason: "out of memory".into(),
            },
        },
    );
    assert_eq!(device.load("unet", &clock), Ok(500));
    assert_eq!(clock.now(), Duration::from_secs(4));
    assert!(matches!(
        device.load("vae", &clock),
        Err(SimulatedLoadError::Failed { .. })
    ));
    assert!(matches!(
        device.load("clip", &clock),
        Err(SimulatedLoadError::NotScripted { .. })
    ));
    assert_eq!(device.read().unwrap().used_bytes, 600);
}

#[test]
fn local_probes_always_include_the_host() {
    let (probes, nvml_error) = local_probes();
    assert_eq!(probes[0].id(), &DeviceId::Host);
    assert!(probes[0].read().is_ok());
    // Here there is no NVIDIA driver; where there is one, the GPUs follow the host.
    assert_eq!(nvml_error.is_some(), probes.len() == 1);
}

#[test]
fn the_process_probe_sees_this_process_grow() {
    let probe = ProcessMemoryProbe::new();
    let before = probe.read().unwrap();
    assert!(before.used_bytes > 0 && before.used_bytes < before.total_bytes);
    // Touch 64 MiB so that it is resident.
    let block = std::hint::black_box(vec![1u8; 64 << 20]);
    let after = probe.read().unwrap();
    assert!(
        after.used_bytes >= before.used_bytes + (32 << 20),
        "{before:?} {after:?}"
    );
    drop(block);
}
