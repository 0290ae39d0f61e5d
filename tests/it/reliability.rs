//! Reliability: a soak run of 10,000 get/run/release cycles over the tiny models under a budget
//! that holds two of them (resident memory sampled, every lease returned, the ledger equal to
//! the resident models), and fault injection — a corrupt ONNX file, a missing tokenizer, an
//! unknown id, absurd request sizes, a cancelled generation — each a typed error that leaves the
//! manager serving the other models.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use modelmux::adapters::AdapterError;
use modelmux::adapters::diffusion::{Control, ImageRequest, TextToImage};
use modelmux::adapters::image::Image;
use modelmux::adapters::lm::TextEncoder;
use modelmux::adapters::specialized::ImageClassifier;
use modelmux::adapters::vlm::ImageTextEncoder;
use modelmux::resources::{
    DeviceId, DeviceProbe, MemoryReading, ProcessMemoryProbe, ReadingUnavailable,
};
use modelmux::{DeviceConfig, ManagerError, ManagerOptions, ModelManager, ModelState};
use modelmux_registry::Catalog;

const MIB: u64 = 1024 * 1024;

/// The host as a fixed budget only the ledger fills, so the test's accounting does not move
/// with other processes (the same device `modelmux pipeline --memory-budget` uses).
#[derive(Debug)]
struct Budget(u64);

impl DeviceProbe for Budget {
    fn id(&self) -> &DeviceId {
        &DeviceId::Host
    }

    fn name(&self) -> &str {
        "budget"
    }

    fn read(&self) -> Result<MemoryReading, ReadingUnavailable> {
        Ok(MemoryReading {
            total_bytes: self.0,
            used_bytes: 0,
            free_bytes: self.0,
        })
    }
}

/// A manager over the tiny catalog and `exports`, on a host budget of `budget` bytes, with
/// no minimum residency (the soak switches models on purpose).
fn manager(exports: PathBuf, budget: u64) -> ModelManager {
    modelmux_tests::runtime();
    let catalog =
        Catalog::load(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data/tiny-models.yaml"))
            .unwrap_or_else(|e| panic!("{e}"));
    let mut options = ManagerOptions::with_devices(vec![
        DeviceConfig::new(Arc::new(Budget(budget))).with_budget(budget),
    ]);
    options.exports_dir = Some(exports);
    options.policy.min_residency = std::time::Duration::ZERO;
    options.room_wait = std::time::Duration::from_secs(5);
    ModelManager::new(catalog, options)
}

fn tiny_exports() -> PathBuf {
    modelmux_tests::fixture("tiny/exports")
}

fn rss() -> u64 {
    ProcessMemoryProbe::new()
        .read()
        .map(|r| r.used_bytes)
        .unwrap_or(0)
}

fn image() -> Image {
    Image::open(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data/images/astronaut.jpg"))
        .unwrap_or_else(|e| panic!("{e}"))
}

/// The ledger holds exactly the resident models, nothing is reserved or leased.
fn assert_consistent(manager: &ModelManager) {
    let status = manager.status();
    let resident: u64 = status.models.iter().filter_map(|m| m.bytes).sum();
    for m in &status.models {
        assert_eq!(m.leases, 0, "{} still leased", m.model);
        assert!(
            m.state != ModelState::Loading && m.state != ModelState::Evicting,
            "{m:?}"
        );
    }
    let device = &status.devices[0];
    assert_eq!(device.reserved_bytes, 0);
    assert_eq!(
        device.used_by_us_bytes + device.unreclaimed_bytes,
        resident + device.runtime_overhead_bytes,
        "{status:?}"
    );
    assert!(device.used_by_us_bytes <= device.budget_bytes);
}

/// The soak measures this process's resident memory, which the other tests of the binary
/// (running in parallel threads) would move too: it runs alone in a child process of the same
/// test binary, and this test checks that child's verdict.
#[test]
fn soak_10000_cycles_under_a_two_model_budget() {
    const CHILD: &str = "MODELMUX_SOAK_CHILD";
    if std::env::var_os(CHILD).is_some() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime");
        runtime.block_on(soak());
        return;
    }
    let exe = std::env::current_exe().expect("the test binary's path");
    let out = std::process::Command::new(exe)
        .args([
            "reliability::soak_10000_cycles_under_a_two_model_budget",
            "--exact",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(CHILD, "1")
        .output()
        .expect("start the soak in a child process");
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "the soak failed in its own process:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn soak() {
    // 16 MiB each: two fit in 40 MiB, three do not, so every switch evicts.
    let manager = manager(tiny_exports(), 40 * MIB);
    let picture = image();
    let texts = ["a soak test", "of many cycles"];
    let owned: Vec<String> = texts.iter().map(|t| (*t).to_owned()).collect();
    let models = ["tiny-bert", "tiny-vit-classifier", "tiny-clip"];
    const CYCLES: usize = 10_000;
    const BLOCK: usize = 250;
    let mut baseline = 0;
    let mut peak = 0;
    for cycle in 0..CYCLES {
        // Blocks of one model, the next block another: 40 switches, each one evicting.
        match models[(cycle / BLOCK) % models.len()] {
            "tiny-bert" => {
                let lease = manager
                    .get_model::<Arc<dyn TextEncoder>>("tiny-bert")
                    .await
                    .unwrap();
                let encoder = Arc::clone(&*lease);
                let vectors = tokio::task::spawn_blocking(move || encoder.embed(&texts))
                    .await
                    .unwrap()
                    .unwrap();
                assert_eq!(vectors.len(), 2);
            }
            "tiny-vit-classifier" => {
                let lease = manager
                    .get_model::<Arc<dyn ImageClassifier>>("tiny-vit-classifier")
                    .await
                    .unwrap();
                let scores = lease
                    .classify(std::slice::from_ref(&picture))
                    .await
                    .unwrap();
                assert_eq!(scores.len(), 1);
            }
            _ => {
                let lease = manager
                    .get_model::<Arc<dyn ImageTextEncoder>>("tiny-clip")
                    .await
                    .unwrap();
                assert_eq!(lease.embed_texts(&owned).await.unwrap().len(), 2);
            }
        }
        if cycle == 3 * BLOCK {
            // Every model has been loaded once and the allocator has warmed up.
            baseline = rss();
        }
        if cycle > 3 * BLOCK && cycle % 500 == 0 {
            peak = peak.max(rss());
        }
    }
    assert_consistent(&manager);
    let status = manager.status();
    let loads: u64 = status.models.iter().map(|m| m.loads).sum();
    let evictions: u64 = status.models.iter().map(|m| m.evictions).sum();
    let resident = status
        .models
        .iter()
        .filter(|m| m.state == ModelState::Ready)
        .count() as u64;
    // At most one load per block (the policy may keep the model the next block needs), and
    // every load but the resident ones ended in an eviction.
    assert!(
        (3..=(CYCLES / BLOCK) as u64).contains(&loads),
        "{loads} loads"
    );
    assert_eq!(evictions + resident, loads, "{status:?}");
    assert!(resident <= 2, "the budget holds two models");
    // The bound: 64 MiB over the warmed-up process across 37 more load/evict rounds (a leak of
    // one model's sessions per round would pass it by the tenth round).
    let growth = peak.saturating_sub(baseline);
    println!(
        "soak: {CYCLES} cycles, {loads} loads, {evictions} evictions, RSS {} MiB after warm-up, peak {} MiB",
        baseline / MIB,
        peak / MIB
    );
    assert!(
        growth <= 64 * MIB,
        "resident memory grew by {} MiB",
        growth / MIB
    );
}

/// A copy of the tiny exports of `ids`, for breaking.
fn copy_exports(ids: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for id in ids {
        copy_dir(&tiny_exports().join(id), &dir.path().join(id));
    }
    dir
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// After a failed load the ledger is back where it was and another model still serves.
async fn still_serves(manager: &ModelManager) {
    assert_consistent(manager);
    let clip = manager
        .get_model::<Arc<dyn ImageTextEncoder>>("tiny-clip")
        .await
        .unwrap();
    assert_eq!(
        clip.embed_texts(&["still here".to_owned()])
            .await
            .unwrap()
            .len(),
        1
    );
    drop(clip);
    assert_consistent(manager);
}

/// Loads tiny-bert from a copy of its export that `break_it` damaged; the manager's error.
async fn load_broken_bert(
    break_it: impl FnOnce(&Path),
) -> (ModelManager, ManagerError, tempfile::TempDir) {
    let exports = copy_exports(&["tiny-bert", "tiny-clip"]);
    break_it(&exports.path().join("tiny-bert/0.1.0"));
    let manager = manager(exports.path().to_owned(), 64 * MIB);
    let err = manager
        .get_model::<Arc<dyn TextEncoder>>("tiny-bert")
        .await
        .unwrap_err();
    (manager, err, exports)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_onnx_file_is_a_load_error_and_nothing_else_is_affected() {
    let (manager, err, _dir) = load_broken_bert(|dir| {
        std::fs::write(dir.join("model.onnx"), b"not an onnx file").unwrap();
    })
    .await;
    assert!(matches!(err, ManagerError::LoadFailed { .. }), "{err}");
    assert!(err.to_string().contains("tiny-bert"), "{err}");
    still_serves(&manager).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_onnx_file_is_a_load_error() {
    let (manager, err, _dir) = load_broken_bert(|dir| {
        let bytes = std::fs::read(dir.join("model.onnx")).unwrap();
        std::fs::write(dir.join("model.onnx"), &bytes[..bytes.len() / 2]).unwrap();
    })
    .await;
    assert!(matches!(err, ManagerError::LoadFailed { .. }), "{err}");
    still_serves(&manager).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_tokenizer_names_the_file() {
    let (manager, err, _dir) = load_broken_bert(|dir| {
        std::fs::remove_file(dir.join("tokenizer.json")).unwrap();
    })
    .await;
    assert!(err.to_string().contains("tokenizer"), "{err}");
    still_serves(&manager).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_id_and_a_wrong_family_are_typed_errors() {
    let manager = manager(tiny_exports(), 64 * MIB);
    let err = manager
        .get_model::<Arc<dyn TextEncoder>>("tiny-berd")
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("tiny-bert"),
        "suggests the closest id: {err}"
    );
    let err = manager
        .get_model::<Arc<dyn TextEncoder>>("tiny-clip")
        .await
        .unwrap_err();
    assert!(matches!(err, ManagerError::WrongFamily { .. }), "{err}");
    still_serves(&manager).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absurd_sizes_and_a_cancelled_generation_are_typed_errors() {
    let manager = manager(tiny_exports(), 128 * MIB);
    let lease = manager
        .get_model::<Arc<dyn TextToImage>>("tiny-sd")
        .await
        .unwrap();
    let pipeline = Arc::clone(&*lease);
    let (too_big, cancelled, fine) = tokio::task::spawn_blocking(move || {
        let mut huge = ImageRequest::new("a cube");
        huge.width = Some(1 << 20);
        huge.height = Some(1 << 20);
        let too_big = pipeline.generate(&huge, &mut |_| Control::Continue);
        let mut odd = ImageRequest::new("a cube");
        odd.steps = Some(3);
        let cancelled = pipeline.generate(&odd, &mut |p| {
            if p.step == 1 {
                Control::Cancel
            } else {
                Control::Continue
            }
        });
        let fine = pipeline.generate(&odd, &mut |_| Control::Continue);
        (too_big, cancelled, fine)
    })
    .await
    .unwrap();
    assert!(
        matches!(too_big, Err(AdapterError::InvalidRequest { .. })),
        "{too_big:?}"
    );
    assert!(
        matches!(cancelled, Err(AdapterError::Cancelled { .. })),
        "{cancelled:?}"
    );
    assert_eq!(
        fine.unwrap().images.len(),
        1,
        "the pipeline still generates after both"
    );
    drop(lease);
    still_serves(&manager).await;
}
