//! Diffusion benchmarks, side by side in one run: the Rust tiny-sd pipeline against diffusers'
//! `OnnxStableDiffusionPipeline` (Python, onnxruntime) on the same ONNX files, steps, size and
//! guidance, and each scheduler's step time against diffusers' `step` on SD-sized latents
//! (1×4×64×64).
//!
//! `cargo bench -p modelmux-adapters --bench diffusion` (after `cargo xtask fixtures`). The
//! Python side runs `xtask/python/bench_diffusion.py` with `$MODELMUX_PYTHON` (the export
//! environment's; `cargo xtask bench` sets it); without it, only the Rust numbers are printed,
//! with the reason. Medians; the first pipeline run warms up.
//! `BENCH_THREADS` sets ONNX Runtime's intra-op threads on both sides (default 1).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use modelmux_adapters::LoadContext;
use modelmux_adapters::diffusion::{
    Control, ImageRequest, NoiseSource, SCHEDULER_KINDS, SchedulerConfig, SchedulerKind,
    SeededNoise, StableDiffusion, TextToImage, scheduler_name,
};
use modelmux_registry::Catalog;
use modelmux_runtime_ort::SessionSpec;
use ndarray::ArrayD;

mod support;

const STEPS: usize = 20;
const RUNS: usize = 5;
const LATENT: usize = 64;

/// ONNX Runtime intra-op threads on both sides (`$BENCH_THREADS`, default 1): the same count,
/// because ONNX Runtime's automatic choice differs between the two bindings on some machines
/// and spinning threads on a loaded machine can triple a run's time.
fn threads() -> usize {
    std::env::var("BENCH_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(1)
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn fixtures() -> PathBuf {
    std::env::var_os("MODELMUX_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target/modelmux-fixtures"))
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn rust_pipeline(export: &Path) -> Duration {
    let catalog = Catalog::load(&root().join("tests/data/tiny-models.yaml")).expect("catalog");
    let spec = catalog.get("tiny-sd").expect("tiny-sd").clone();
    let ctx = LoadContext {
        spec: &spec,
        export_dir: export.to_path_buf(),
        session: SessionSpec {
            intra_threads: Some(threads()),
            ..SessionSpec::cpu()
        },
        queue_limit: 8,
    };
    let sd = StableDiffusion::load(&ctx).expect("tiny-sd loads");
    let mut request = ImageRequest::new("a photo of a cat sitting on a red sofa");
    request.negative_prompt = Some("dim lighting".into());
    request.steps = Some(STEPS);
    request.guidance_scale = Some(7.5);
    request.scheduler = Some(SchedulerKind::Pndm);
    request.width = Some(32);
    request.height = Some(32);
    let mut times = Vec::new();
    for i in 0..=RUNS {
        request.seed = Some(i as u64);
        let started = Instant::now();
        let out = sd
            .generate(&request, &mut |_| Control::Continue)
            .expect("generation");
        if i > 0 {
            times.push(started.elapsed());
        }
        if i == RUNS {
            let t = out.timings;
            println!(
                "  rust stages (last run): text {:.1} ms, denoise {:.1} ms, vae {:.1} ms",
                t.text_encoder.as_secs_f64() * 1e3,
                t.denoise.as_secs_f64() * 1e3,
                t.vae.as_secs_f64() * 1e3
            );
        }
    }
    sd.shutdown();
    // The UNet alone, as the pipeline calls it (batch 2, 16×16 latents, 77 tokens).
    let unet = ctx.pool("unet/model.onnx", false).expect("unet");
    let mut raw = Vec::new();
    for i in 0..=STEPS {
        let inputs = modelmux_runtime_ort::Inputs::new()
            .with(
                "sample",
                ArrayD::<f32>::zeros(ndarray::IxDyn(&[2, 4, 16, 16])),
            )
            .with(
                "timestep",
                ArrayD::<f32>::from_elem(ndarray::IxDyn(&[2]), 500.0),
            )
            .with(
                "encoder_hidden_states",
                ArrayD::<f32>::zeros(ndarray::IxDyn(&[2, 77, 32])),
            );
        let started = Instant::now();
        unet.run_blocking(inputs).expect("unet run");
        if i > 0 {
            raw.push(started.elapsed());
        }
    }
    unet.shutdown();
    println!(
        "  rust raw UNet call (batch 2): median {:.2} ms",
        median(raw).as_secs_f64() * 1e3
    );
    median(times)
}

fn rust_step(kind: SchedulerKind) -> Duration {
    let mut scheduler = SchedulerConfig::sd15().build(kind, 50).expect("scheduler");
    let mut noise = SeededNoise::new(0);
    let shape = [1, 4, LATENT, LATENT];
    let mut x: ArrayD<f32> = noise.normal(&shape);
    let eps = noise.normal(&shape);
    let mut times = Vec::new();
    for i in 0..scheduler.timesteps().len() {
        let started = Instant::now();
        let _ = scheduler.scale_model_input(&x, i);
        x = scheduler.step(&eps, i, &x, &mut noise);
        times.push(started.elapsed());
    }
    assert_eq!(x.shape(), &shape[..]);
    median(times)
}

fn main() {
    let export = fixtures().join("tiny/exports/tiny-sd/0.1.0");
    assert!(
        export.exists(),
        "{} is missing: run `cargo xtask fixtures`",
        export.display()
    );
    let rust = rust_pipeline(&export);
    let python = support::python().ok().map(|py| {
        Command::new(py)
            .arg(root().join("xtask/python/bench_diffusion.py"))
            .arg(&export)
            .args(["--steps", &STEPS.to_string(), "--runs", &RUNS.to_string()])
            // diffusers' ONNX pipeline assumes SD's VAE factor of 8 (tiny-sd's is 2), so it is
            // asked for 128×128 to get the same 16×16 latents the Rust pipeline denoises for a
            // 32×32 image; the VAE decoder then makes the same 32×32 image on both sides.
            .args(["--width", "128", "--height", "128"])
            .args(["--latent-size", &LATENT.to_string()])
            .args(["--threads", &threads().to_string()])
            .output()
    });
    let python: Option<serde_json::Value> = match python {
        Some(Ok(out)) if out.status.success() => {
            let text = String::from_utf8_lossy(&out.stdout);
            text.lines()
                .rev()
                .find_map(|l| serde_json::from_str(l).ok())
        }
        Some(Ok(out)) => {
            eprintln!(
                "python side failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
            None
        }
        Some(Err(e)) => {
            eprintln!("python side did not start: {e}");
            None
        }
        None => {
            eprintln!(
                "no Python environment (set MODELMUX_PYTHON to the export environment's python; `cargo xtask bench` does)"
            );
            None
        }
    };
    println!(
        "tiny-sd 32x32, {STEPS} steps, PNDM, guidance 7.5 (CFG batch 2), {} intra-op thread(s), median of {RUNS} runs",
        threads()
    );
    println!(
        "  rust pipeline                          {:>9.1} ms",
        rust.as_secs_f64() * 1e3
    );
    if let Some(p) = python.as_ref().and_then(|v| v["pipeline_s"].as_f64()) {
        println!(
            "  diffusers OnnxStableDiffusionPipeline  {:>9.1} ms",
            p * 1e3
        );
        println!(
            "  speed-up                               {:>9.2}x",
            p / rust.as_secs_f64()
        );
    }
    if let Some(u) = python.as_ref().and_then(|v| v["unet_call_s"].as_f64()) {
        println!("  python raw UNet call (batch 2): median {:.2} ms", u * 1e3);
    }
    println!(
        "scheduler step (scale_model_input + step), 1x4x{LATENT}x{LATENT}, median over 50 steps"
    );
    for kind in SCHEDULER_KINDS {
        let r = rust_step(kind).as_secs_f64() * 1e6;
        let name = scheduler_name(kind);
        match python.as_ref().and_then(|v| v["step_us"][name].as_f64()) {
            Some(p) => println!(
                "  {name:<22} rust {r:>8.1} us   diffusers {p:>8.1} us   {:>5.2}x",
                p / r
            ),
            None => println!("  {name:<22} rust {r:>8.1} us"),
        }
    }
}
