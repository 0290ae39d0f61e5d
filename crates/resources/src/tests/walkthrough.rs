//! The path the manager takes, end to end on a simulated GPU: estimate, place, plan eviction,
//! serialise the load, reserve, measure, commit, learn, unload, verify the release.

use std::time::Duration;

use crate::*;

const GIB: u64 = 1 << 30;

#[test]
fn a_model_swap_on_a_simulated_gpu() {
    let clock = ManualClock::starting_at(Duration::from_secs(3600));
    let gpu = SimulatedDevice::gpu("GPU-sim-0", 24 * GIB);
    gpu.set_external(2 * GIB);
    let mut ledger = MemoryLedger::from_reading(gpu.id().clone(), &gpu.read().unwrap(), 546 << 20);
    assert_eq!(ledger.external_bytes(), 2 * GIB);
    let mut estimator = FootprintEstimator::in_memory(ProviderFactors::default());
    let gate = LoadGate::new(gpu.id().clone());
    let policy = EvictionPolicy::default();

    // The first model: 6 GiB of weights, no declared requirement: 12 GiB estimated on CUDA.
    let unet = FootprintKey::new("sd15-unet", "1", Provider::Cuda);
    let estimate = estimator.estimate(&unet, None, Some(6 * GIB)).unwrap();
    assert_eq!(estimate.bytes, 12 * GIB);
    let candidates = [DeviceCandidate {
        id: gpu.id().clone(),
        cuda_ordinal: Some(0),
        available_bytes: ledger.available_bytes(),
        evictable_bytes: 0,
    }];
    let request = PlacementRequest {
        model: "sd15-unet@1".into(),
        device: "auto".parse().unwrap(),
        providers: vec![(Provider::Cuda, estimate.bytes)],
        cpu_fallback: CpuFallback::Forbidden,
    };
    let placement = place(&request, &candidates).unwrap();
    assert_eq!(placement.evict_bytes, 0);

    let mut permit = gate.try_enter("sd15-unet@1".into()).unwrap();
    permit.take_baseline(&gpu).unwrap();
    let reservation = ledger
        .reserve("sd15-unet@1".into(), placement.bytes)
        .unwrap();
    gpu.script_load(
        "sd15-unet@1",
        ScriptedLoad {
            latency: Duration::from_secs(4),
            // The session takes 11 GiB, plus the CUDA context on this first load.
            outcome: ScriptedOutcome::Succeeds {
                bytes: 11 * GIB + (546 << 20),
            },
        },
    );
    let started = clock.now();
    gpu.load("sd15-unet@1", &clock).unwrap();
    let delta = permit.measure_delta(&gpu).unwrap();
    let report = ledger.commit(reservation, delta).unwrap();
    drop(permit);
    assert_eq!(report.committed_bytes, 11 * GIB);
    assert_eq!(report.runtime_overhead_charged, Some(546 << 20));
    estimator
        .record(
            unet.clone(),
            report.committed_bytes,
            Some(clock.now() - started),
        )
        .unwrap();
    assert_eq!(
        estimator
            .estimate(&unet, None, Some(6 * GIB))
            .unwrap()
            .bytes,
        11 * GIB
    );

    // A second model needs more than is left: the policy picks the idle UNet, which has been
    // resident long enough.
    clock.advance(Duration::from_secs(600));
    let residents = vec![ResidentModel {
        model: "sd15-unet@1".into(),
        bytes: 11 * GIB,
        pinned: false,
        priority: Priority(0),
        leases: 0,
        loaded_at: started,
        last_used: started,
        keep_alive: Some(Duration::from_secs(300)),
        load_time: Duration::from_secs(4),
        recent_uses: 1.0,
    }];
    let snapshot = DeviceSnapshot::from_ledger(&ledger, clock.now(), residents);
    assert_eq!(
        policy.expired(&snapshot),
        vec![ModelKey::from("sd15-unet@1")]
    );
    let need = RoomRequest {
        model: "llm@3".into(),
        bytes: 14 * GIB,
        priority: Priority(0),
    };
    let plan = policy.plan(&snapshot, &need).unwrap();
    assert_eq!(plan.victims.len(), 1);
    assert_eq!(
        plan.victims[0].cost, 0.0,
        "an expired model costs nothing to evict"
    );

    // Unload it and verify that the memory came back.
    let pending = ledger
        .release(&"sd15-unet@1".into(), Some(gpu.read().unwrap()))
        .unwrap();
    gpu.free_lagging(11 * GIB, 2);
    let release = ledger
        .verify_release(pending, &gpu, &clock, &VerifySchedule::default())
        .unwrap();
    assert_eq!(release.outcome, ReleaseOutcome::Verified);
    assert_eq!(release.attempts, 3);
    // The CUDA context stays charged to the device; the LLM now fits.
    assert_eq!(ledger.runtime_overhead_bytes(), 546 << 20);
    let reservation = ledger.reserve("llm@3".into(), 14 * GIB).unwrap();
    assert_eq!(reservation.overhead_bytes(), 0);
    ledger.abort(reservation).unwrap();
}
