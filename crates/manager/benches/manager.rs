//! The manager's costs, measured side by side in one run (ratios, not absolute timings):
//! `get_model` on a warm model (p50/p99 with 8 threads), dynamic batching's speed-up with 16
//! concurrent clients on a small encoder, and the manager path against a raw session.
//!
//! Run: `cargo bench -p modelmux --bench manager` (needs `cargo xtask fixtures` for tiny-bert).
//! A custom harness rather than criterion: the questions are latency percentiles across threads
//! and ratios between two set-ups run in the same process, which criterion does not report.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use modelmux::registry::{Catalog, LoadOptions};
use modelmux::resources::SimulatedDevice;
use modelmux::runtime::{Inputs, Runtime, SessionPool, SessionSpec};
use modelmux::{
    DeviceConfig, LoadRequest, LoadedModel, ManagerOptions, ModelLoader, ModelManager, OnnxLoader,
};
use ndarray::Array2;

struct Nothing;

impl ModelLoader for Nothing {
    fn load(&self, _: &LoadRequest<'_>) -> Result<LoadedModel, String> {
        Ok(LoadedModel::new(0u64, || {}))
    }
}

fn catalog(dir: &std::path::Path, entry: &str) -> Catalog {
    let text = format!("catalog_version: 1\nmodels:\n{entry}");
    let path = dir.join("models.yaml");
    std::fs::write(&path, &text).expect("catalog");
    Catalog::from_str(&text, &path, &LoadOptions::default()).unwrap_or_else(|e| panic!("{e}"))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn warm_get_model() {
    let dir = tempfile::tempdir().expect("tempdir");
    let catalog = catalog(
        dir.path(),
        "  lm:\n    m:\n      version: 1.0.0\n      architecture: bert\n      tasks: [feature-extraction]\n      source: m\n      memory_requirement: 1MiB\n      providers: [cpu]\n",
    );
    let mut options = ManagerOptions::with_devices(vec![DeviceConfig::new(Arc::new(
        SimulatedDevice::host(1 << 34),
    ))]);
    options.loader = Arc::new(Nothing);
    let manager = ModelManager::new(catalog, options);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    drop(rt.block_on(manager.get_model::<u64>("m")).expect("load"));
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let manager = manager.clone();
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .build()
                    .expect("runtime");
                let mut samples = Vec::with_capacity(50_000);
                for _ in 0..50_000 {
                    let start = Instant::now();
                    let lease = rt.block_on(manager.get_model::<u64>("m")).expect("warm");
                    drop(lease);
                    samples.push(start.elapsed());
                }
                samples
            })
        })
        .collect();
    let mut all: Vec<Duration> = threads
        .into_iter()
        .flat_map(|t| t.join().expect("thread"))
        .collect();
    all.sort();
    println!(
        "get_model, warm, 8 threads × 50,000 (lease taken and returned): p50 {:.2} µs, p99 {:.2} µs",
        percentile(&all, 0.50).as_secs_f64() * 1e6,
        percentile(&all, 0.99).as_secs_f64() * 1e6
    );
}

fn fixture_model() -> PathBuf {
    let root = std::env::var_os("MODELMUX_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/modelmux-fixtures")
        });
    let path = root.join("tiny/exports/tiny-bert/0.1.0/model.onnx");
    assert!(
        path.exists(),
        "{} is missing: run `cargo xtask fixtures`",
        path.display()
    );
    path
}

fn encoder_manager(dir: &std::path::Path, batching: &str) -> ModelManager {
    let export = dir.join("exports/enc/1.0.0");
    std::fs::create_dir_all(&export).expect("export dir");
    std::fs::copy(fixture_model(), export.join("model.onnx")).expect("copy");
    let catalog = catalog(
        dir,
        &format!(
            "  lm:\n    enc:\n      version: 1.0.0\n      architecture: bert\n      tasks: [feature-extraction]\n      source: enc\n      memory_requirement: 8MiB\n      providers: [cpu]\n      {batching}\n"
        ),
    );
    let mut options = ManagerOptions::with_devices(vec![DeviceConfig::new(Arc::new(
        SimulatedDevice::host(1 << 34),
    ))]);
    options.loader = Arc::new(OnnxLoader);
    ModelManager::new(catalog, options)
}

fn request(names: &[String]) -> Inputs {
    let ids = Array2::<i64>::from_shape_fn((1, 16), |(_, j)| 2 + (j as i64 * 7) % 90);
    names.iter().fold(Inputs::new(), |inputs, name| {
        let tensor = match name.as_str() {
            "input_ids" => ids.clone(),
            "token_type_ids" => Array2::<i64>::zeros((1, 16)),
            _ => Array2::<i64>::ones((1, 16)),
        };
        inputs.with(name.as_str(), tensor)
    })
}

/// Requests per second of 16 concurrent clients, each sending `per_client` one-row requests.
fn throughput(rt: &tokio::runtime::Runtime, pool: &SessionPool, per_client: usize) -> f64 {
    let names: Vec<String> = pool.info().inputs.iter().map(|t| t.name.clone()).collect();
    let start = Instant::now();
    rt.block_on(async {
        let tasks: Vec<_> = (0..16)
            .map(|_| {
                let (pool, names) = (pool.clone(), names.clone());
                tokio::spawn(async move {
                    for _ in 0..per_client {
                        pool.run(request(&names)).await.expect("run");
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("client");
        }
    });
    (16 * per_client) as f64 / start.elapsed().as_secs_f64()
}

fn batching_and_overhead() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (d1, d2) = (
        tempfile::tempdir().expect("tempdir"),
        tempfile::tempdir().expect("tempdir"),
    );
    let plain = rt
        .block_on(
            encoder_manager(d1.path(), "batching: { max_batch_size: 1 }")
                .get_model::<SessionPool>("enc"),
        )
        .expect("plain");
    let batched = rt
        .block_on(
            encoder_manager(
                d2.path(),
                "batching: { max_batch_size: 32, max_queue_delay: 2ms }",
            )
            .get_model::<SessionPool>("enc"),
        )
        .expect("batched");
    throughput(&rt, &plain, 20);
    let (unbatched_rps, batched_rps) =
        (throughput(&rt, &plain, 300), throughput(&rt, &batched, 300));
    println!(
        "tiny-bert, 16 concurrent clients, 1 row each: unbatched {unbatched_rps:.0} req/s, batched {batched_rps:.0} req/s, speed-up {:.2}×",
        batched_rps / unbatched_rps
    );

    // The manager path (lease + pool + worker) against a session run directly, same model and
    // input, one caller, interleaved rounds so drift hits both alike.
    let runtime = Runtime::global().expect("ONNX Runtime: run `cargo xtask setup`");
    let raw = runtime
        .load("raw", &fixture_model(), &SessionSpec::cpu())
        .expect("raw session");
    let names: Vec<String> = raw.info().inputs.iter().map(|t| t.name.clone()).collect();
    let manager = encoder_manager(d1.path(), "batching: { max_batch_size: 1 }");
    // Rounds alternate between the two paths; the median of the per-round ratios resists the
    // bursts of a shared machine better than a ratio of sums.
    let (mut raw_total, mut managed_total, mut ratios) =
        (Duration::ZERO, Duration::ZERO, Vec::new());
    for _ in 0..40 {
        let start = Instant::now();
        for _ in 0..50 {
            raw.run(request(&names)).expect("raw run");
        }
        let raw_time = start.elapsed();
        let start = Instant::now();
        for _ in 0..50 {
            let lease = rt
                .block_on(manager.get_model::<SessionPool>("enc"))
                .expect("lease");
            lease.run_blocking(request(&names)).expect("managed run");
        }
        let managed_time = start.elapsed();
        ratios.push(managed_time.as_secs_f64() / raw_time.as_secs_f64());
        raw_total += raw_time;
        managed_total += managed_time;
    }
    ratios.sort_by(f64::total_cmp);
    println!(
        "tiny-bert, 2,000 sequential requests: raw session {:.1} µs/req, manager + lease + pool {:.1} µs/req, overhead (median of 40 rounds) {:+.1}%",
        raw_total.as_secs_f64() / 2000.0 * 1e6,
        managed_total.as_secs_f64() / 2000.0 * 1e6,
        (ratios[ratios.len() / 2] - 1.0) * 100.0
    );
}

fn main() {
    warm_get_model();
    batching_and_overhead();
}
