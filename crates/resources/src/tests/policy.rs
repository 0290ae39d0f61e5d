//! The swap policy: pins, leases, residency, priority classes, keep-alive, watermarks, the
//! feasibility check and the cheapest victim set, by example and by property.

use std::time::Duration;

use proptest::prelude::*;

use crate::*;

const GB: u64 = 1_000_000_000;

fn idle(name: &str, bytes: u64, load_secs: f64, uses: f64) -> ResidentModel {
    ResidentModel {
        model: name.into(),
        bytes,
        pinned: false,
        priority: Priority(0),
        leases: 0,
        loaded_at: Duration::ZERO,
        last_used: Duration::from_secs(100),
        keep_alive: None,
        load_time: Duration::from_secs_f64(load_secs),
        recent_uses: uses,
    }
}

fn snapshot(budget: u64, residents: Vec<ResidentModel>) -> DeviceSnapshot {
    DeviceSnapshot {
        device: DeviceId::Gpu("GPU-sim-0".into()),
        now: Duration::from_secs(1000),
        budget_bytes: budget,
        runtime_overhead_bytes: 0,
        external_bytes: 0,
        in_flight_bytes: 0,
        unreclaimed_bytes: 0,
        residents,
    }
}

fn ask(bytes: u64) -> RoomRequest {
    RoomRequest {
        model: "new".into(),
        bytes,
        priority: Priority(0),
    }
}

fn names(plan: &EvictionPlan) -> Vec<String> {
    let mut names: Vec<String> = plan.victims.iter().map(|v| v.model.0.clone()).collect();
    names.sort();
    names
}

#[test]
fn nothing_is_evicted_when_the_model_fits() {
    let snap = snapshot(10 * GB, vec![idle("a", 4 * GB, 1.0, 1.0)]);
    assert_eq!(
        EvictionPolicy::default().plan(&snap, &ask(6 * GB)).unwrap(),
        EvictionPlan::default()
    );
}

#[test]
fn cold_models_go_first_and_no_extra_model_is_evicted() {
    // Freeing 4 GB: two rarely used 2 GB models cost less than one popular 4 GB model.
    let snap = snapshot(
        8 * GB,
        vec![
            idle("big-popular", 4 * GB, 4.0, 10.0),
            idle("b", 2 * GB, 2.0, 1.0),
            idle("c", 2 * GB, 2.0, 1.0),
        ],
    );
    let plan = EvictionPolicy::default().plan(&snap, &ask(4 * GB)).unwrap();
    assert_eq!(names(&plan), ["b", "c"]);
    assert_eq!(plan.freed_bytes, 4 * GB);
    // One model that alone frees enough beats evicting an extra small one next to it.
    let snap = snapshot(
        8 * GB,
        vec![
            idle("large-cold", 5 * GB, 5.0, 0.1),
            idle("small", GB, 0.2, 0.1),
            idle("hot", 2 * GB, 2.0, 50.0),
        ],
    );
    let plan = EvictionPolicy::default().plan(&snap, &ask(4 * GB)).unwrap();
    assert_eq!(names(&plan), ["large-cold"]);
}

#[test]
fn pinned_busy_and_recently_loaded_models_stay_and_the_error_says_so() {
    let mut pinned = idle("pinned", 3 * GB, 1.0, 0.0);
    pinned.pinned = true;
    let mut busy = idle("busy", 3 * GB, 1.0, 0.0);
    busy.leases = 2;
    let mut fresh = idle("fresh", GB, 1.0, 0.0);
    fresh.loaded_at = Duration::from_secs(990);
    let mut important = idle("important", GB, 1.0, 0.0);
    important.priority = Priority(5);
    let mut snap = snapshot(
        12 * GB,
        vec![
            pinned,
            busy,
            fresh,
            important,
            idle("cold", 2 * GB, 1.0, 0.0),
        ],
    );
    snap.external_bytes = GB;
    snap.runtime_overhead_bytes = 546 << 20;
    let policy = EvictionPolicy::default();
    assert_eq!(policy.evictable_bytes(&snap, Priority(0)), 2 * GB);
    let plan = policy.plan(&snap, &ask(2 * GB)).unwrap();
    assert_eq!(names(&plan), ["cold"]);
    let error = policy.plan(&snap, &ask(3 * GB)).unwrap_err();
    assert_eq!(error.needed_bytes, 3 * GB);
    assert_eq!(error.evictable_bytes, 2 * GB);
    assert_eq!(error.free_bytes, 12 * GB - 10 * GB - GB - (546 << 20));
    assert_eq!(error.pinned, vec![("pinned".into(), 3 * GB)]);
    assert_eq!(
        error.busy,
        vec![BusyModel {
            model: "busy".into(),
            bytes: 3 * GB,
            leases: 2
        }]
    );
    assert_eq!(error.recently_loaded, vec![("fresh".into(), GB)]);
    assert_eq!(error.higher_priority, vec![("important".into(), GB)]);
    let text = error.to_string();
    for part in [
        "needs 3000000000 bytes",
        "eviction could free 2000000000",
        "busy 3000000000 (2 leases)",
        "pinned 3000000000",
        "other processes 1000000000",
        "runtime overhead 572522496",
    ] {
        assert!(text.contains(part), "{part:?} missing from {text}");
    }
    // A request of a higher class may evict the important model.
    let request = RoomRequest {
        model: "new".into(),
        bytes: 3 * GB,
        priority: Priority(5),
    };
    assert_eq!(
        names(&policy.plan(&snap, &request).unwrap()),
        ["cold", "important"]
    );
}

#[test]
fn lower_priority_classes_are_emptied_first() {
    let mut high = idle("high-but-cold", 4 * GB, 1.0, 0.0);
    high.priority = Priority(2);
    let snap = snapshot(8 * GB, vec![high, idle("low-but-hot", 4 * GB, 10.0, 100.0)]);
    let request = RoomRequest {
        model: "new".into(),
        bytes: 4 * GB,
        priority: Priority(2),
    };
    assert_eq!(
        names(&EvictionPolicy::default().plan(&snap, &request).unwrap()),
        ["low-but-hot"]
    );
}

#[test]
fn expired_models_are_listed_and_are_the_first_victims() {
    let mut expired = idle("expired", 2 * GB, 30.0, 100.0);
    expired.keep_alive = Some(Duration::from_secs(300));
    let mut alive = idle("alive", 2 * GB, 0.1, 0.1);
    alive.keep_alive = Some(Duration::from_secs(3600));
    let snap = snapshot(4 * GB, vec![expired, alive]);
    let policy = EvictionPolicy::default();
    assert_eq!(policy.expired(&snap), vec![ModelKey::from("expired")]);
    assert_eq!(
        names(&policy.plan(&snap, &ask(2 * GB)).unwrap()),
        ["expired"]
    );
}

#[test]
fn watermarks_evict_ahead_of_need_down_to_the_low_mark() {
    let policy = EvictionPolicy::default();
    let below = snapshot(
        10 * GB,
        vec![idle("a", 4 * GB, 1.0, 1.0), idle("b", 4 * GB, 1.0, 5.0)],
    );
    assert_eq!(policy.proactive(&below), EvictionPlan::default());
    let above = snapshot(
        10 * GB,
        vec![
            idle("a", 4 * GB, 1.0, 1.0),
            idle("b", 4 * GB, 1.0, 5.0),
            idle("c", GB + GB / 2, 1.0, 0.2),
        ],
    );
    // 9.5 GB used > 90%: free at least 1.5 GB to reach 80%.
    assert_eq!(names(&policy.proactive(&above)), ["c"]);
}

#[test]
fn usage_tracker_halves_every_half_life() {
    let mut usage = UsageTracker::new(Duration::from_secs(10));
    usage.record(Duration::ZERO);
    usage.record(Duration::ZERO);
    assert!((usage.recent_uses(Duration::from_secs(10)) - 1.0).abs() < 1e-9);
    usage.record(Duration::from_secs(10));
    assert!((usage.recent_uses(Duration::from_secs(20)) - 1.0).abs() < 1e-9);
}

fn resident() -> impl Strategy<Value = ResidentModel> {
    (
        1u64..40,
        any::<bool>(),
        0u8..3,
        0u32..3,
        0u64..100,
        0u64..100,
        0u32..50,
    )
        .prop_map(
            |(gb_tenths, pinned, priority, leases, loaded, load_tenths, uses)| {
                let mut r = idle(
                    "",
                    gb_tenths * GB / 10,
                    load_tenths as f64 / 10.0,
                    uses as f64,
                );
                r.pinned = pinned && gb_tenths % 3 == 0;
                r.priority = Priority(priority);
                r.leases = if leases == 2 { 1 } else { 0 };
                r.loaded_at = Duration::from_secs(960 + loaded % 40);
                r
            },
        )
}

fn device() -> impl Strategy<Value = (DeviceSnapshot, RoomRequest)> {
    (
        prop::collection::vec(resident(), 0..12),
        0u64..20,
        1u64..120,
        0u8..3,
    )
        .prop_map(|(mut residents, external_tenths, ask_tenths, priority)| {
            for (i, r) in residents.iter_mut().enumerate() {
                r.model = ModelKey(format!("m{i}"));
            }
            let used: u64 = residents.iter().map(|r| r.bytes).sum();
            let mut snap = snapshot(used + 2 * GB, residents);
            snap.external_bytes = external_tenths * GB / 10;
            let request = RoomRequest {
                model: "new".into(),
                bytes: ask_tenths * GB / 10,
                priority: Priority(priority),
            };
            (snap, request)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    /// Pinned, busy, recently loaded and higher-priority models are never victims; a plan frees
    /// enough; a refusal is exactly the case where even all evictable memory is too little, and
    /// it names the numbers.
    #[test]
    fn policy_rules_hold_for_random_devices((snap, request) in device()) {
        let policy = EvictionPolicy::default();
        let free = snap.free_bytes();
        let evictable = policy.evictable_bytes(&snap, request.priority);
        match policy.plan(&snap, &request) {
            Ok(plan) => {
                prop_assert!(free + plan.freed_bytes >= request.bytes);
                let mut seen = std::collections::BTreeSet::new();
                for victim in &plan.victims {
                    prop_assert!(seen.insert(victim.model.clone()), "evicted twice");
                    let r = snap.residents.iter().find(|r| r.model == victim.model).unwrap();
                    prop_assert!(!r.pinned, "pinned model evicted");
                    prop_assert_eq!(r.leases, 0, "busy model evicted");
                    prop_assert!(snap.now - r.loaded_at >= policy.min_residency);
                    prop_assert!(r.priority <= request.priority);
                }
                prop_assert_eq!(plan.freed_bytes, plan.victims.iter().map(|v| v.bytes).sum::<u64>());
            }
            Err(error) => {
                prop_assert!(free + evictable < request.bytes);
                prop_assert_eq!(error.needed_bytes, request.bytes);
                prop_assert_eq!(error.free_bytes, free);
                prop_assert_eq!(error.evictable_bytes, evictable);
                let held: u64 = error.pinned.iter().map(|p| p.1).sum::<u64>()
                    + error.busy.iter().map(|b| b.bytes).sum::<u64>()
                    + error.recently_loaded.iter().map(|p| p.1).sum::<u64>()
                    + error.higher_priority.iter().map(|p| p.1).sum::<u64>();
                let resident: u64 = snap.residents.iter().map(|r| r.bytes).sum();
                prop_assert_eq!(held + evictable, resident, "every resident byte is accounted for");
                for b in &error.busy {
                    prop_assert!(b.leases > 0);
                }
                let text = error.to_string();
                let needs = format!("needs {} bytes", request.bytes);
                let could_free = format!("eviction could free {evictable}");
                prop_assert!(text.contains(&needs), "{}", text);
                prop_assert!(text.contains(&could_free), "{}", text);
            }
        }
    }

    /// Every victim is needed: dropping any one of them would free too little.
    #[test]
    fn no_model_is_evicted_for_nothing((snap, request) in device()) {
        let policy = EvictionPolicy::default();
        if let Ok(plan) = policy.plan(&snap, &request) {
            let free = snap.free_bytes();
            for victim in &plan.victims {
                prop_assert!(free + plan.freed_bytes - victim.bytes < request.bytes, "{victim:?} was not needed");
            }
        }
    }
}
