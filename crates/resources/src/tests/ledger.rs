//! The ledger: runtime overhead once, other processes respected, verified release, and the invariants under random operation sequences.

use std::time::Duration;

use proptest::prelude::*;

use crate::*;

const MIB: u64 = 1 << 20;

fn gpu() -> DeviceId {
    DeviceId::Gpu("GPU-sim-0".into())
}

#[test]
fn runtime_overhead_is_charged_once_to_the_device() {
    let mut ledger = MemoryLedger::new(gpu(), 4000 * MIB, 546 * MIB);
    let first = ledger.reserve("clip".into(), 300 * MIB).unwrap();
    assert_eq!(first.overhead_bytes(), 546 * MIB);
    // A second load in flight does not reserve the overhead again.
    let second = ledger.reserve("bert".into(), 100 * MIB).unwrap();
    assert_eq!(second.overhead_bytes(), 0);
    let report = ledger.commit(first, 856 * MIB).unwrap();
    assert_eq!(report.runtime_overhead_charged, Some(546 * MIB));
    assert_eq!(report.committed_bytes, 310 * MIB);
    ledger.commit(second, 90 * MIB).unwrap();
    assert_eq!(ledger.runtime_overhead_bytes(), 546 * MIB);
    let third = ledger.reserve("t5".into(), 100 * MIB).unwrap();
    assert_eq!(third.overhead_bytes(), 0);
    ledger.abort(third).unwrap();
    // Releasing every model leaves the overhead on the device.
    for model in ["clip", "bert"] {
        let pending = ledger.release(&model.into(), None).unwrap();
        let device = SimulatedDevice::gpu("GPU-sim-0", 4000 * MIB);
        ledger
            .verify_release(
                pending,
                &device,
                &ManualClock::default(),
                &VerifySchedule::default(),
            )
            .unwrap();
    }
    assert_eq!(ledger.ours_bytes(), 546 * MIB);
}

#[test]
fn other_processes_usage_is_respected_and_the_error_names_the_numbers() {
    let device = SimulatedDevice::gpu("GPU-sim-0", 1000);
    let mut ledger = MemoryLedger::new(gpu(), 1000, 0);
    let r = ledger.reserve("a".into(), 300).unwrap();
    device.allocate(300);
    ledger.commit(r, 300).unwrap();
    device.set_external(500);
    ledger.observe(&device.read().unwrap());
    assert_eq!(ledger.external_bytes(), 500);
    assert_eq!(ledger.available_bytes(), 200);
    let error = ledger.reserve("b".into(), 250).unwrap_err();
    assert_eq!(
        error,
        LedgerError::InsufficientMemory {
            model: "b".into(),
            device: gpu(),
            requested_bytes: 250,
            available_bytes: 200,
            budget_bytes: 1000,
            committed_bytes: 300,
            reserved_bytes: 0,
            external_bytes: 500,
            runtime_overhead_bytes: 0,
            releasing_bytes: 0,
        }
    );
    let text = error.to_string();
    for number in ["250", "200", "1000", "300", "500"] {
        assert!(text.contains(number), "{text}");
    }
}

#[test]
fn duplicate_loads_and_double_release_are_errors() {
    let mut ledger = MemoryLedger::new(gpu(), 1000, 0);
    let r = ledger.reserve("a".into(), 100).unwrap();
    assert!(matches!(
        ledger.reserve("a".into(), 100),
        Err(LedgerError::LoadInFlight { .. })
    ));
    ledger.commit(r, 100).unwrap();
    assert!(matches!(
        ledger.reserve("a".into(), 100),
        Err(LedgerError::AlreadyResident { .. })
    ));
    let pending = ledger.release(&"a".into(), None).unwrap();
    assert!(matches!(
        ledger.release(&"a".into(), None),
        Err(LedgerError::NotResident { .. })
    ));
    let device = SimulatedDevice::gpu("GPU-sim-0", 1000);
    let report = ledger
        .verify_release(
            pending,
            &device,
            &ManualClock::default(),
            &VerifySchedule::default(),
        )
        .unwrap();
    assert!(matches!(
        report.outcome,
        ReleaseOutcome::Unverifiable { .. }
    ));
}

#[test]
fn a_token_given_to_the_wrong_ledger_comes_back_unused() {
    let mut a = MemoryLedger::new(gpu(), 1000, 0);
    let mut b = MemoryLedger::new(DeviceId::Host, 1000, 0);
    let r = a.reserve("m".into(), 100).unwrap();
    let error = b.commit(r, 100).unwrap_err();
    assert_eq!(error.ledger_device, DeviceId::Host);
    a.commit(error.token, 100).unwrap();
    assert_eq!(a.committed_bytes(&"m".into()), Some(100));
}

/// A 1000-byte device on which model "a" of `bytes` was loaded and then released (not yet verified).
fn loaded_then_released(
    bytes: u64,
) -> (SimulatedDevice, ManualClock, MemoryLedger, PendingRelease) {
    let device = SimulatedDevice::gpu("GPU-sim-0", 1000);
    let mut ledger = MemoryLedger::new(gpu(), 1000, 0);
    let r = ledger.reserve("a".into(), bytes).unwrap();
    device.allocate(bytes);
    ledger.commit(r, bytes).unwrap();
    let pending = ledger
        .release(&"a".into(), Some(device.read().unwrap()))
        .unwrap();
    (device, ManualClock::default(), ledger, pending)
}

#[test]
fn verified_release_waits_for_lagging_memory() {
    let (device, clock, mut ledger, pending) = loaded_then_released(400);
    device.free_lagging(400, 3);
    let report = ledger
        .verify_release(pending, &device, &clock, &VerifySchedule::default())
        .unwrap();
    assert_eq!(report.outcome, ReleaseOutcome::Verified);
    assert_eq!(report.attempts, 4);
    assert_eq!(report.unreclaimed_bytes, 0);
    assert_eq!(clock.now(), Duration::from_millis(750));
    assert_eq!(ledger.available_bytes(), 1000);
}

#[test]
fn memory_that_never_comes_back_is_recorded_and_forgiven_when_it_does() {
    let (device, clock, mut ledger, pending) = loaded_then_released(400);
    // The session frees only 100 bytes; the arena keeps the rest.
    device.free(100);
    let schedule = VerifySchedule {
        attempts: 5,
        ..VerifySchedule::default()
    };
    let report = ledger
        .verify_release(pending, &device, &clock, &schedule)
        .unwrap();
    assert_eq!(report.outcome, ReleaseOutcome::Unreclaimed);
    assert_eq!(report.attempts, 5);
    assert_eq!(report.unreclaimed_bytes, 300);
    assert_eq!(ledger.snapshot().unreclaimed, vec![("a".into(), 300)]);
    // Unreclaimed memory is ours, not another process's, and is not available.
    assert_eq!(ledger.external_bytes(), 0);
    assert_eq!(ledger.available_bytes(), 700);
    // Later the memory comes back after all.
    device.free(300);
    ledger.observe(&device.read().unwrap());
    assert!(ledger.snapshot().unreclaimed.is_empty());
    assert_eq!(ledger.available_bytes(), 1000);
}

#[test]
fn release_on_an_unreadable_device_is_unverifiable_not_invented() {
    let (device, clock, mut ledger, pending) = loaded_then_released(400);
    device.fail_next_reads(100, "NVML: insufficient permissions");
    let schedule = VerifySchedule {
        attempts: 3,
        ..VerifySchedule::default()
    };
    let report = ledger
        .verify_release(pending, &device, &clock, &schedule)
        .unwrap();
    assert_eq!(
        report.outcome,
        ReleaseOutcome::Unverifiable {
            reason: "NVML: insufficient permissions".into()
        }
    );
    assert_eq!(report.observed_freed_bytes, None);
}

#[test]
fn a_commit_above_the_reservation_is_recorded_and_reported() {
    let mut ledger = MemoryLedger::new(gpu(), 1000, 0);
    let r = ledger.reserve("a".into(), 900).unwrap();
    let report = ledger.commit(r, 1100).unwrap();
    assert_eq!(report.committed_bytes, 1100);
    assert_eq!(report.over_budget_bytes, 100);
    assert_eq!(ledger.available_bytes(), 0);
}

#[test]
fn the_load_gate_serialises_loads_and_measures_their_delta() {
    let device = SimulatedDevice::gpu("GPU-sim-0", 1000);
    let gate = LoadGate::new(gpu());
    let mut permit = gate.try_enter("a".into()).unwrap();
    assert!(matches!(
        gate.try_enter("b".into()),
        Err(GateError::Busy { .. })
    ));
    assert!(matches!(
        gate.enter("b".into(), Duration::from_millis(10)),
        Err(GateError::TimedOut { .. })
    ));
    assert!(matches!(
        permit.measure_delta(&device),
        Err(DeltaError::NoBaseline { .. })
    ));
    device.set_external(100);
    permit.take_baseline(&device).unwrap();
    device.allocate(250);
    assert_eq!(permit.measure_delta(&device), Ok(250));
    let waiter = {
        let gate = gate.clone();
        std::thread::spawn(move || {
            gate.enter("b".into(), Duration::from_secs(10))
                .map(|p| p.model().clone())
        })
    };
    std::thread::sleep(Duration::from_millis(20));
    drop(permit);
    assert_eq!(waiter.join().unwrap(), Ok("b".into()));
    assert_eq!(gate.holder(), None);
}

/// One step of a random ledger workload.
#[derive(Debug, Clone)]
enum Op {
    Reserve {
        model: u8,
        bytes: u64,
    },
    Commit {
        pick: usize,
        percent_of_reserved: u64,
    },
    Abort {
        pick: usize,
    },
    Release {
        model: u8,
    },
    Verify {
        pick: usize,
        freed_percent: u64,
    },
    External {
        bytes: u64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0u8..6, 0u64..600).prop_map(|(model, bytes)| Op::Reserve { model, bytes }),
        2 => (any::<usize>(), 50u64..=100).prop_map(|(pick, percent_of_reserved)| Op::Commit { pick, percent_of_reserved }),
        1 => any::<usize>().prop_map(|pick| Op::Abort { pick }),
        2 => (0u8..6).prop_map(|model| Op::Release { model }),
        2 => (any::<usize>(), 0u64..=100).prop_map(|(pick, freed_percent)| Op::Verify { pick, freed_percent }),
        1 => (0u64..400).prop_map(|bytes| Op::External { bytes }),
    ]
}

fn counted(snapshot: &LedgerSnapshot) -> u64 {
    let sum = |pairs: &Vec<(ModelKey, u64)>| pairs.iter().map(|(_, b)| b).sum::<u64>();
    snapshot.runtime_overhead_bytes
        + sum(&snapshot.reservations)
        + sum(&snapshot.committed)
        + sum(&snapshot.releasing)
        + sum(&snapshot.unreclaimed)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Random reserve/commit/abort/release/verify/measure sequences keep the ledger's invariants.
    #[test]
    fn ledger_invariants_hold_under_random_operations(ops in prop::collection::vec(op(), 1..60)) {
        const BUDGET: u64 = 2000;
        let device = SimulatedDevice::gpu("GPU-sim-0", 4000);
        let clock = ManualClock::default();
        let mut ledger = MemoryLedger::new(gpu(), BUDGET, 150);
        let mut reservations: Vec<Reservation> = Vec::new();
        let mut pending: Vec<PendingRelease> = Vec::new();
        let mut released_and_not_reloaded = std::collections::BTreeSet::new();
        for op in ops {
            match op {
                Op::Reserve { model, bytes } => {
                    let model = ModelKey(format!("m{model}"));
                    let before = ledger.snapshot();
                    // A failed load leaves the ledger exactly as it was.
                    let mut probe = ledger.clone();
                    if let Ok(r) = probe.reserve(model.clone(), bytes) {
                        probe.abort(r).unwrap();
                        prop_assert_eq!(probe.snapshot(), before.clone());
                    }
                    match ledger.reserve(model.clone(), bytes) {
                        Ok(r) => {
                            // Granted only if it fitted in what was available.
                            prop_assert!(r.model_bytes() + r.overhead_bytes() <= before.available_bytes);
                            reservations.push(r);
                        }
                        Err(LedgerError::InsufficientMemory { requested_bytes, available_bytes, .. }) => {
                            prop_assert!(requested_bytes > available_bytes);
                            prop_assert_eq!(ledger.snapshot(), before);
                        }
                        Err(LedgerError::AlreadyResident { .. }) => {
                            prop_assert!(before.committed.iter().any(|(m, _)| *m == model));
                        }
                        Err(LedgerError::LoadInFlight { .. }) => {
                            prop_assert!(reservations.iter().any(|r| *r.model() == model));
                        }
                        Err(other) => prop_assert!(false, "unexpected {other}"),
                    }
                }
                Op::Commit { pick, percent_of_reserved } if !reservations.is_empty() => {
                    let r = reservations.swap_remove(pick % reservations.len());
                    let measured = r.overhead_bytes() + r.model_bytes() * percent_of_reserved / 100;
                    let model = r.model().clone();
                    device.allocate(measured);
                    let report = ledger.commit(r, measured).unwrap();
                    // Over budget only because other processes grew after the reservation.
                    let after = ledger.snapshot();
                    prop_assert_eq!(
                        report.over_budget_bytes,
                        (counted(&after) + after.external_bytes).saturating_sub(BUDGET)
                    );
                    released_and_not_reloaded.remove(&model);
                }
                Op::Abort { pick } if !reservations.is_empty() => {
                    let r = reservations.swap_remove(pick % reservations.len());
                    ledger.abort(r).unwrap();
                }
                Op::Release { model } => {
                    let model = ModelKey(format!("m{model}"));
                    let resident = ledger.committed_bytes(&model);
                    match ledger.release(&model, Some(device.read().unwrap())) {
                        Ok(p) => {
                            prop_assert_eq!(Some(p.bytes()), resident);
                            prop_assert!(released_and_not_reloaded.insert(model));
                            pending.push(p);
                        }
                        Err(LedgerError::NotResident { .. }) => prop_assert_eq!(resident, None),
                        Err(other) => prop_assert!(false, "unexpected {other}"),
                    }
                }
                Op::Verify { pick, freed_percent } if !pending.is_empty() => {
                    let p = pending.swap_remove(pick % pending.len());
                    let bytes = p.bytes();
                    device.free(bytes * freed_percent / 100);
                    let schedule = VerifySchedule { attempts: 2, ..VerifySchedule::default() };
                    let report = ledger.verify_release(p, &device, &clock, &schedule).unwrap();
                    prop_assert!(report.unreclaimed_bytes <= bytes);
                }
                Op::External { bytes } => {
                    device.set_external(bytes);
                    ledger.observe(&device.read().unwrap());
                }
                _ => {}
            }
            let snapshot = ledger.snapshot();
            // Reservations + committed (+ overhead + releasing) never exceed the budget.
            prop_assert!(counted(&snapshot) <= BUDGET, "{snapshot:?}");
            prop_assert_eq!(
                snapshot.available_bytes,
                BUDGET.saturating_sub(counted(&snapshot) + snapshot.external_bytes)
            );
        }
    }
}

#[test]
fn an_overhead_charged_up_front_is_not_taken_from_the_first_model() {
    let device = SimulatedDevice::gpu("GPU-sim-0", 10_000);
    // The runtime created its CUDA context before the ledger existed.
    device.allocate(546);
    let mut ledger = MemoryLedger::from_reading(gpu(), &device.read().unwrap(), 546);
    assert_eq!(ledger.external_bytes(), 546);
    ledger.charge_runtime_overhead(546);
    ledger.observe(&device.read().unwrap());
    assert_eq!(ledger.external_bytes(), 0);
    let r = ledger.reserve("a".into(), 1000).unwrap();
    assert_eq!(r.overhead_bytes(), 0);
    let report = ledger.commit(r, 900).unwrap();
    assert_eq!(
        (report.committed_bytes, report.runtime_overhead_charged),
        (900, None)
    );
}
