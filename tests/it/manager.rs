//! ModelManager on simulated GPUs (every policy path, without a GPU) and on real ONNX models:
//! single flight, eviction of idle models only, pins, busy releases, failed loads leaving the
//! ledger as it was, a many-task stress run, batching, and shutdown.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use modelmux::registry::{Catalog, LoadOptions};
use modelmux::resources::{DeviceId, DeviceProbe, EvictionPolicy, SimulatedDevice};
use modelmux::runtime::{Inputs, SessionPool};
use modelmux::{
    DeviceConfig, LoadRequest, LoadedModel, ManagerError, ManagerOptions, ModelLoader,
    ModelManager, ModelState, OnnxLoader, Preload, Released,
};
use modelmux_tests::fixture;
use ndarray::Array2;

const GIB: u64 = 1 << 30;

/// A model on a simulated GPU: loading allocates its declared bytes, unloading frees them.
#[derive(Debug)]
struct SimModel {
    id: String,
}

/// Loads `SimModel`s onto one simulated GPU, counting loads and failing on demand.
struct SimLoader {
    device: Arc<SimulatedDevice>,
    loads: Mutex<HashMap<String, usize>>,
    failures: Mutex<HashMap<String, u32>>,
    live: Arc<AtomicUsize>,
}

impl SimLoader {
    fn new(device: Arc<SimulatedDevice>) -> Arc<Self> {
        Arc::new(Self {
            device,
            loads: Mutex::default(),
            failures: Mutex::default(),
            live: Arc::default(),
        })
    }

    fn loads(&self, id: &str) -> usize {
        self.loads
            .lock()
            .expect("loads")
            .get(id)
            .copied()
            .unwrap_or(0)
    }

    fn fail_next(&self, id: &str, times: u32) {
        self.failures
            .lock()
            .expect("failures")
            .insert(id.to_owned(), times);
    }
}

impl ModelLoader for SimLoader {
    fn load(&self, request: &LoadRequest<'_>) -> Result<LoadedModel, String> {
        let id = request.spec.id.clone();
        if let Some(left) = self.failures.lock().expect("failures").get_mut(&id)
            && *left > 0
        {
            *left -= 1;
            return Err(format!("injected failure for {id}"));
        }
        *self
            .loads
            .lock()
            .expect("loads")
            .entry(id.clone())
            .or_default() += 1;
        let bytes = request
            .spec
            .memory_requirement
            .map(|b| b.bytes())
            .unwrap_or(GIB);
        // A load takes a little while, so concurrent requests really overlap.
        std::thread::sleep(Duration::from_millis(2));
        self.device.allocate(bytes);
        self.live.fetch_add(1, Ordering::SeqCst);
        let (device, live) = (Arc::clone(&self.device), Arc::clone(&self.live));
        Ok(LoadedModel::new(SimModel { id }, move || {
            device.free(bytes);
            live.fetch_sub(1, Ordering::SeqCst);
        }))
    }
}

/// A catalog of `models` (id, size in GiB, cache policy), all CUDA-only.
fn sim_catalog(dir: &Path, models: &[(&str, u64, &str)]) -> Catalog {
    let mut text = String::from("catalog_version: 1\nmodels:\n  lm:\n");
    for (id, gib, policy) in models {
        text.push_str(&format!(
            "    {id}:\n      version: 1.0.0\n      architecture: bert\n      tasks: [feature-extraction]\n      source: {id}\n      memory_requirement: {gib}GiB\n      cache_policy: {policy}\n      providers: [cuda]\n"
        ));
    }
    let path = dir.join("models.yaml");
    std::fs::write(&path, &text).expect("write catalog");
    Catalog::from_str(&text, &path, &LoadOptions::default())
        .unwrap_or_else(|e| panic!("{e}\n{text}"))
}

fn sim_manager(
    models: &[(&str, u64, &str)],
    budget_gib: u64,
) -> (
    ModelManager,
    Arc<SimLoader>,
    Arc<SimulatedDevice>,
    tempfile::TempDir,
) {
    let dir = tempfile::tempdir().expect("tempdir");
    let catalog = sim_catalog(dir.path(), models);
    let device = Arc::new(SimulatedDevice::gpu("GPU-sim-0", 80 * GIB));
    let loader = SimLoader::new(Arc::clone(&device));
    let mut config = DeviceConfig::new(device.clone()).with_budget(budget_gib * GIB);
    config.runtime_overhead_bytes = 0;
    config.cuda_ordinal = Some(0);
    let mut options = ManagerOptions::with_devices(vec![config]);
    options.loader = loader.clone();
    options.policy = EvictionPolicy {
        min_residency: Duration::ZERO,
        ..EvictionPolicy::default()
    };
    options.room_wait = Duration::from_secs(20);
    (ModelManager::new(catalog, options), loader, device, dir)
}

fn used(device: &SimulatedDevice) -> u64 {
    device.read().expect("simulated reading").used_bytes
}

fn committed(manager: &ModelManager) -> u64 {
    manager.status().devices[0].used_by_us_bytes
}

fn ready(manager: &ModelManager) -> Vec<String> {
    manager
        .status()
        .models
        .into_iter()
        .filter(|m| m.state == ModelState::Ready)
        .map(|m| m.model)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_first_requests_share_one_load() {
    let (manager, loader, _device, _dir) = sim_manager(&[("a", 2, "on_demand")], 10);
    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let manager = manager.clone();
            tokio::spawn(async move {
                manager
                    .get_model::<SimModel>("a")
                    .await
                    .map(|lease| lease.id.clone())
            })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.expect("task").expect("lease"), "a");
    }
    assert_eq!(loader.loads("a"), 1);
    let status = manager.status();
    assert_eq!(status.models[0].leases, 0, "every lease was returned");
    assert_eq!(status.models[0].loads, 1);
    assert_eq!(status.models[0].hits + status.models[0].misses, 32);
    assert_eq!(committed(&manager), 2 * GIB);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_idle_models_are_evicted_under_a_small_budget() {
    let (manager, loader, device, _dir) = sim_manager(
        &[
            ("a", 4, "on_demand"),
            ("b", 4, "on_demand"),
            ("c", 4, "on_demand"),
        ],
        10,
    );
    let a = manager.get_model::<SimModel>("a").await.expect("a");
    drop(manager.get_model::<SimModel>("b").await.expect("b"));
    // c needs 4 GiB with 8 committed of 10: b is idle, a is leased, so b goes.
    let c = manager.get_model::<SimModel>("c").await.expect("c");
    assert_eq!(ready(&manager), vec!["a@1.0.0", "c@1.0.0"]);
    assert_eq!(committed(&manager), 8 * GIB);
    assert_eq!(used(&device), 8 * GIB);
    drop((a, c));
    // b again: the least valuable idle model is evicted, and the ledger follows the device.
    drop(manager.get_model::<SimModel>("b").await.expect("b again"));
    assert_eq!(loader.loads("b"), 2);
    assert_eq!(ready(&manager).len(), 2);
    assert_eq!(committed(&manager), 8 * GIB);
    assert_eq!(
        manager
            .status()
            .models
            .iter()
            .map(|m| m.evictions)
            .sum::<u64>(),
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pinned_models_survive_and_the_feasibility_error_names_them() {
    let (manager, _loader, _device, _dir) = sim_manager(
        &[
            ("warm", 6, "keep_warm"),
            ("x", 3, "on_demand"),
            ("big", 5, "on_demand"),
        ],
        10,
    );
    drop(manager.get_model::<SimModel>("warm").await.expect("warm"));
    drop(manager.get_model::<SimModel>("x").await.expect("x"));
    // big (5) fits only by evicting warm (6, pinned): x (3) is not enough, so it fails at once.
    let err = manager
        .get_model::<SimModel>("big")
        .await
        .expect_err("no room");
    let ManagerError::InsufficientRoom(room) = &err else {
        panic!("expected InsufficientRoom, got {err}")
    };
    assert_eq!(room.needed_bytes, 5 * GIB);
    assert_eq!(room.evictable_bytes, 3 * GIB);
    assert_eq!(room.pinned.len(), 1);
    assert!(err.to_string().contains("warm@1.0.0"), "{err}");
    assert_eq!(
        ready(&manager),
        vec!["warm@1.0.0", "x@1.0.0"],
        "a failed feasibility check evicts nothing"
    );
    assert!(matches!(
        manager.release_model("warm").await,
        Err(ManagerError::Pinned { .. })
    ));

    // A pin guard protects an on_demand model the same way, until it is dropped.
    let guard = manager
        .load_model(
            "x",
            Preload {
                pin: true,
                ..Preload::default()
            },
        )
        .await
        .expect("pin x");
    assert!(matches!(
        manager.release_model("x").await,
        Err(ManagerError::Pinned { .. })
    ));
    drop(guard);
    assert_eq!(
        manager.release_model("x").await.expect("release"),
        Released::Unloaded { bytes: 3 * GIB }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn releasing_a_busy_model_is_refused_with_its_lease_count() {
    let (manager, _loader, _device, _dir) = sim_manager(&[("a", 1, "on_demand")], 10);
    let first = manager.get_model::<SimModel>("a").await.expect("a");
    let second = first.clone();
    match manager.release_model("a").await {
        Err(ManagerError::Busy { model, leases }) => {
            assert_eq!((model.as_str(), leases), ("a@1.0.0", 2))
        }
        other => panic!("expected Busy, got {other:?}"),
    }
    drop((first, second));
    assert_eq!(
        manager.release_model("a").await.expect("idle now"),
        Released::Unloaded { bytes: GIB }
    );
    assert_eq!(
        manager.release_model("a").await.expect("again"),
        Released::NotLoaded
    );
    assert_eq!(committed(&manager), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_load_leaves_the_ledger_as_it_was_and_the_next_request_retries() {
    let (manager, loader, _device, _dir) =
        sim_manager(&[("a", 2, "on_demand"), ("b", 3, "on_demand")], 10);
    drop(manager.get_model::<SimModel>("a").await.expect("a"));
    let before = manager.status().devices[0].clone();
    loader.fail_next("b", 1);
    let err = manager
        .get_model::<SimModel>("b")
        .await
        .expect_err("injected");
    assert!(err.to_string().contains("injected failure for b"), "{err}");
    let after = manager.status().devices[0].clone();
    assert_eq!(
        (
            after.used_by_us_bytes,
            after.reserved_bytes,
            after.available_bytes
        ),
        (
            before.used_by_us_bytes,
            before.reserved_bytes,
            before.available_bytes
        )
    );
    let b = manager
        .status()
        .models
        .into_iter()
        .find(|m| m.model == "b@1.0.0")
        .expect("b");
    assert_eq!((b.state, b.load_failures), (ModelState::Failed, 1));
    drop(
        manager
            .get_model::<SimModel>("b")
            .await
            .expect("retry succeeds"),
    );
    assert_eq!(committed(&manager), 5 * GIB);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_tasks_over_many_models_under_a_tight_budget_never_deadlock() {
    let models: Vec<(String, u64)> = (0..10).map(|i| (format!("m{i}"), 1 + i % 3)).collect();
    let spec: Vec<(&str, u64, &str)> = models
        .iter()
        .map(|(id, gib)| (id.as_str(), *gib, "on_demand"))
        .collect();
    let (manager, loader, device, _dir) = sim_manager(&spec, 8);
    let work = async {
        let tasks: Vec<_> = (0..64u64)
            .map(|t| {
                let manager = manager.clone();
                tokio::spawn(async move {
                    let mut x = t
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    for _ in 0..1_000 {
                        x = x
                            .wrapping_mul(6364136223846793005)
                            .wrapping_add(1442695040888963407);
                        // Skewed: low-numbered models are asked for far more often.
                        let pick = ((x >> 33) % 100) as usize;
                        let id = format!("m{}", (pick * pick) / 1000);
                        let lease = manager
                            .get_model::<SimModel>(&id)
                            .await
                            .expect("every request is served");
                        assert_eq!(lease.id, id);
                        tokio::task::yield_now().await;
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("task");
        }
    };
    tokio::time::timeout(Duration::from_secs(120), work)
        .await
        .expect("no deadlock: finished within the timeout");
    let status = manager.status();
    assert!(
        status.models.iter().all(|m| m.leases == 0),
        "every lease returned"
    );
    let loaded: u64 = status.models.iter().filter_map(|m| m.bytes).sum();
    assert_eq!(
        committed(&manager),
        loaded,
        "the ledger equals the models loaded"
    );
    assert_eq!(used(&device), loaded, "and so does the device");
    assert!(loaded <= 8 * GIB);
    assert_eq!(
        loader.live.load(Ordering::SeqCst),
        status
            .models
            .iter()
            .filter(|m| m.state == ModelState::Ready)
            .count()
    );
    let loads: u64 = status.models.iter().map(|m| m.loads).sum();
    assert!(loads > 10, "the budget forced swapping ({loads} loads)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asking_for_the_wrong_family_is_an_error_not_a_panic() {
    let (manager, _loader, _device, _dir) = sim_manager(&[("a", 1, "on_demand")], 10);
    match manager.get_model::<SessionPool>("a").await {
        Err(ManagerError::WrongFamily { model, .. }) => assert_eq!(model, "a@1.0.0"),
        other => panic!("expected WrongFamily, got {other:?}"),
    }
    assert!(matches!(
        manager.get_model::<SimModel>("nope").await,
        Err(ManagerError::UnknownModel(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_inside_a_model_call_is_an_error_and_the_model_stays_usable() {
    let (manager, _loader, _device, _dir) = sim_manager(&[("a", 1, "on_demand")], 10);
    let lease = manager.get_model::<SimModel>("a").await.expect("a");
    let err = lease
        .call(|_| -> usize { panic!("adapter bug") })
        .expect_err("panics");
    assert!(
        matches!(&err, ManagerError::Panicked { message, .. } if message == "adapter bug"),
        "{err}"
    );
    assert_eq!(lease.call(|m| m.id.len()).expect("still usable"), 1);
    drop(lease);
    drop(
        manager
            .get_model::<SimModel>("a")
            .await
            .expect("manager usable"),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_unloads_everything_and_refuses_new_requests() {
    let (manager, loader, device, _dir) =
        sim_manager(&[("a", 1, "keep_warm"), ("b", 2, "on_demand")], 10);
    drop(manager.get_model::<SimModel>("a").await.expect("a"));
    let b = manager.get_model::<SimModel>("b").await.expect("b");
    let returner = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        drop(b);
    });
    let still_leased = manager.shutdown(Duration::from_secs(5)).await;
    returner.await.expect("returner");
    assert!(still_leased.is_empty());
    assert_eq!(loader.live.load(Ordering::SeqCst), 0);
    assert_eq!(used(&device), 0);
    assert_eq!(committed(&manager), 0);
    assert!(matches!(
        manager.get_model::<SimModel>("a").await,
        Err(ManagerError::ShuttingDown)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_exposition_names_devices_and_models() {
    let (manager, _loader, _device, _dir) = sim_manager(&[("a", 1, "on_demand")], 10);
    drop(manager.get_model::<SimModel>("a").await.expect("a"));
    let text = manager.prometheus();
    assert!(
        text.contains("# TYPE modelmux_model_loads_total counter"),
        "{text}"
    );
    assert!(
        text.contains("modelmux_model_loads_total{model=\"a@1.0.0\"} 1"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "modelmux_device_memory_used_bytes{{device=\"{}\"}} {}",
            DeviceId::Gpu("GPU-sim-0".into()),
            GIB
        )),
        "{text}"
    );
}

/// A manager over the real `matmul.onnx` fixture, exported as `exports/mm/1.0.0/model.onnx`.
fn onnx_manager(batching: &str, instances: u32) -> (ModelManager, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let export = dir.path().join("exports/mm/1.0.0");
    std::fs::create_dir_all(&export).expect("export dir");
    std::fs::copy(fixture("matmul.onnx"), export.join("model.onnx")).expect("copy model");
    let text = format!(
        "catalog_version: 1\nmodels:\n  specialized:\n    mm:\n      version: 1.0.0\n      architecture: mlp-head\n      tasks: [aesthetic-scoring]\n      source: mm\n      memory_requirement: 1MiB\n      providers: [cpu]\n      instances: {instances}\n      {batching}\n"
    );
    let path = dir.path().join("models.yaml");
    std::fs::write(&path, &text).expect("catalog");
    let catalog =
        Catalog::from_str(&text, &path, &LoadOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    let host = Arc::new(SimulatedDevice::host(16 * GIB));
    let mut options = ManagerOptions::with_devices(vec![DeviceConfig::new(host)]);
    options.loader = Arc::new(OnnxLoader);
    options.queue_limit = 64;
    (ModelManager::new(catalog, options), dir)
}

fn rows(i: usize, n: usize) -> Array2<f32> {
    Array2::from_shape_fn((n, 64), |(r, c)| {
        ((i * 31 + r * 7 + c) % 17) as f32 / 17.0 - 0.5
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn batched_runs_return_the_same_numbers_as_unbatched_runs() {
    let (plain, _d1) = onnx_manager("batching: { max_batch_size: 1 }", 1);
    let (batched, _d2) = onnx_manager("batching: { max_batch_size: 32, max_queue_delay: 20ms }", 2);
    let plain = plain.get_model::<SessionPool>("mm").await.expect("plain");
    let pool = batched
        .get_model::<SessionPool>("mm")
        .await
        .expect("batched");
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let pool = pool.clone();
            tokio::spawn(async move { pool.run(Inputs::new().with("x", rows(i, 1 + i % 3))).await })
        })
        .collect();
    for (i, task) in tasks.into_iter().enumerate() {
        let out = task.await.expect("task").expect("batched run");
        let expected = plain
            .run(Inputs::new().with("x", rows(i, 1 + i % 3)))
            .await
            .expect("plain run");
        assert_eq!(
            out.array::<f32>("y").expect("y"),
            expected.array::<f32>("y").expect("y"),
            "request {i}"
        );
    }
    assert_eq!(pool.queued(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_queue_is_refused_as_overloaded() {
    let (manager, _dir) = onnx_manager(
        "batching: { max_batch_size: 64, max_queue_delay: 300ms }",
        1,
    );
    let pool = manager.get_model::<SessionPool>("mm").await.expect("pool");
    // The batch waits 300 ms for company, so the first 64 requests are all admitted and waiting.
    let tasks: Vec<_> = (0..80)
        .map(|i| {
            let pool = pool.clone();
            tokio::spawn(async move { pool.run(Inputs::new().with("x", rows(i, 1))).await })
        })
        .collect();
    let mut overloaded = 0;
    for task in tasks {
        match task.await.expect("task") {
            Ok(_) => {}
            Err(modelmux::runtime::RuntimeError::Overloaded { limit, .. }) => {
                assert_eq!(limit, 64);
                overloaded += 1;
            }
            Err(other) => panic!("unexpected {other}"),
        }
    }
    assert!(overloaded >= 1, "the queue limit was never hit");
    assert_eq!(pool.queued(), 0);
}
