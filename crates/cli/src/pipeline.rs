//! `modelmux pipeline --prompt P`: the job the model manager exists for — generate images with
//! a diffusion model, evaluate them with vision-language and specialized models (CLIPScore,
//! caption, attributes, quality), and have a language model write a short assessment — all
//! through one `ModelManager`, printing every load, eviction and reload and the memory ledger.
//!
//! Models are leased one at a time and returned as soon as their step is done, the way an
//! application on a small GPU would use them: under a `--memory-budget` smaller than the sum of
//! the models, the manager evicts idle ones to make room and reloads them when they are needed
//! again, and the run still completes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use modelmux::adapters::diffusion::{ImageRequest, TextToImage};
use modelmux::adapters::image::Image;
use modelmux::adapters::lm::{GenerationOptions, Prompt, TextGenerator};
use modelmux::adapters::specialized::{AttributeScores, ImageClassifier};
use modelmux::adapters::vlm::{CaptionOptions, ImageCaptioner, ImageTextEncoder};
use modelmux::registry::{Architecture, ByteSize, Family, ModelSpec};
use modelmux::{ModelManager, Status};
use serde_json::json;

use crate::assess::{lease_assessor, scale_text};
use crate::classify::{attribute_json, attribute_line};
use crate::common::{CatalogArgs, human_bytes, print_json};
use crate::progress::Progress;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// What the images should show.
    #[arg(long)]
    prompt: String,
    /// Where the images, `report.json` and `summary.md` go.
    #[arg(long, value_name = "DIR", default_value = "pipeline-out")]
    out: PathBuf,
    /// The most memory the models may take on each device, e.g. `300MiB`; smaller than the sum
    /// of the models, the manager swaps them [default: the device's free memory].
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    memory_budget: Option<u64>,
    /// How long a freshly loaded model is kept before it may be evicted, e.g. `30s`. A pipeline
    /// knows when it is done with a model, so by default none is kept.
    #[arg(long, value_name = "DURATION", default_value = "0s", value_parser = parse_duration)]
    min_residency: Duration,
    /// Images to generate (one generation round each).
    #[arg(long, value_name = "N", default_value_t = 2)]
    count: usize,
    /// Seed of the first image; image i uses seed + i.
    #[arg(long, value_name = "S", default_value_t = 0)]
    seed: u64,
    /// Denoising steps [default: the generator's].
    #[arg(long, value_name = "N")]
    steps: Option<usize>,
    /// A generator parameter, e.g. `difficulty=0.7` for terrain (repeatable).
    #[arg(long = "param", value_name = "KEY=VALUE", value_parser = crate::generate::parse_param)]
    params: Vec<(String, f64)>,
    /// The diffusion model [default: the catalog's first exported one].
    #[arg(long, value_name = "ID")]
    generator: Option<String>,
    /// The dual encoder for CLIPScore [default: the first exported clip/align/flava].
    #[arg(long, value_name = "ID")]
    encoder: Option<String>,
    /// The captioner [default: the first exported blip-caption].
    #[arg(long, value_name = "ID")]
    captioner: Option<String>,
    /// Attribute classifiers (repeatable) [default: every exported image classifier].
    #[arg(long = "classifier", value_name = "ID")]
    classifiers: Vec<String>,
    /// Quality assessors (repeatable) [default: every exported quality model and aesthetic head].
    #[arg(long = "assessor", value_name = "ID")]
    assessors: Vec<String>,
    /// The language model that writes the assessment [default: the first exported generator].
    #[arg(long, value_name = "ID")]
    interpreter: Option<String>,
    /// The most tokens of the written assessment.
    #[arg(long, value_name = "N", default_value_t = 96)]
    max_new_tokens: usize,
    #[command(flatten)]
    catalog: CatalogArgs,
    /// Print the report as one JSON object instead of the run's log (the log goes to stderr).
    #[arg(long)]
    json: bool,
}

/// "300MiB", "1.5GB" or a byte count.
fn parse_size(text: &str) -> Result<u64, String> {
    ByteSize::parse(text)
        .map(ByteSize::bytes)
        .map_err(|e| e.to_string())
}

/// "30s", "500ms", "2m".
fn parse_duration(text: &str) -> Result<Duration, String> {
    modelmux::registry::parse_duration(text).map_err(|e| e.to_string())
}

/// The models of one run, by role.
#[derive(Debug, Default, serde::Serialize)]
struct Roles {
    generator: String,
    encoder: Option<String>,
    captioner: Option<String>,
    classifiers: Vec<String>,
    assessors: Vec<String>,
    interpreter: Option<String>,
}

impl Roles {
    /// Every role and its model, in one line.
    fn describe(&self) -> String {
        format!(
            "generator {}; encoder {}; captioner {}; classifiers {}; assessors {}; interpreter {}",
            self.generator,
            self.encoder.as_deref().unwrap_or("none"),
            self.captioner.as_deref().unwrap_or("none"),
            list_or_none(&self.classifiers),
            list_or_none(&self.assessors),
            self.interpreter.as_deref().unwrap_or("none"),
        )
    }
}

/// Whether `spec` can be loaded here: a local model with an export.
fn exported(spec: &ModelSpec, exports: &Path) -> bool {
    !spec.source.is_remote()
        && spec
            .export_dir(exports)
            .join(modelmux::registry::MANIFEST_FILE)
            .is_file()
}

/// The roles the flags name, the rest filled from the catalog's exported models.
fn choose_roles(args: &Args, manager: &ModelManager, exports: &Path) -> anyhow::Result<Roles> {
    let models: Vec<&ModelSpec> = manager
        .catalog()
        .models()
        .iter()
        .filter(|s| exported(s, exports))
        .collect();
    let first =
        |pick: &dyn Fn(&ModelSpec) -> bool| models.iter().find(|s| pick(s)).map(|s| s.id.clone());
    let all = |pick: &dyn Fn(&ModelSpec) -> bool| {
        models
            .iter()
            .filter(|s| pick(s))
            .map(|s| s.id.clone())
            .collect::<Vec<_>>()
    };
    let generator = match &args.generator {
        Some(id) => id.clone(),
        None => first(&|s| s.family == Family::Diffusion).with_context(|| {
            format!(
                "no diffusion model of {} is exported to {}; export one (`cargo xtask export terrain`) or name one with --generator",
                manager.catalog().path().display(),
                exports.display()
            )
        })?,
    };
    let encoder = args.encoder.clone().or_else(|| {
        first(&|s| {
            matches!(
                s.architecture,
                Architecture::Clip | Architecture::Align | Architecture::Flava
            )
        })
    });
    let captioner = args
        .captioner
        .clone()
        .or_else(|| first(&|s| s.architecture == Architecture::BlipCaption));
    let classifiers = if args.classifiers.is_empty() {
        all(&|s| s.architecture == Architecture::ImageClassifier)
    } else {
        args.classifiers.clone()
    };
    let assessors = if args.assessors.is_empty() {
        let encoders: Vec<String> = encoder.iter().cloned().collect();
        all(&|s| match s.architecture {
            Architecture::Quality => true,
            // A head is only usable when the encoder it reads is exported too.
            Architecture::MlpHead => s
                .params
                .extra
                .get("input_model")
                .and_then(|m| m.as_str())
                .is_some_and(|m| {
                    encoders.iter().any(|e| e == m) || models.iter().any(|x| x.id == m)
                }),
            _ => false,
        })
    } else {
        args.assessors.clone()
    };
    let interpreter = args.interpreter.clone().or_else(|| {
        first(&|s| s.architecture == Architecture::DecoderOnly)
            .or_else(|| first(&|s| s.architecture == Architecture::EncoderDecoder))
    });
    Ok(Roles {
        generator,
        encoder,
        captioner,
        classifiers,
        assessors,
        interpreter,
    })
}

/// What happened to the models during one step, from two status snapshots.
#[derive(Debug, Clone, serde::Serialize)]
struct Event {
    step: String,
    /// "load", "reload" or "evict".
    kind: &'static str,
    model: String,
    bytes: Option<u64>,
    seconds: Option<f64>,
}

/// Prints the run's log (to stderr with `--json`, so stdout stays one JSON object) above the
/// progress bars, and keeps every event for the report.
#[derive(Debug)]
struct Log {
    json: bool,
    progress: Progress,
    events: Vec<Event>,
    last: Status,
    peak_bytes: u64,
}

impl Log {
    fn say(&self, line: &str) {
        self.progress.suspend(|| {
            if self.json {
                eprintln!("{line}");
            } else {
                println!("{line}");
            }
        });
    }

    /// Compares the manager's status with the last one, reports loads, reloads and evictions
    /// since then, and the ledger.
    fn after(&mut self, step: &str, manager: &ModelManager) {
        let now = manager.status();
        let before: BTreeMap<&str, &modelmux::ModelStatus> = self
            .last
            .models
            .iter()
            .map(|m| (m.model.as_str(), m))
            .collect();
        let mut events = Vec::new();
        for m in &now.models {
            let (loads, evictions, old_bytes) = before
                .get(m.model.as_str())
                .map_or((0, 0, None), |b| (b.loads, b.evictions, b.bytes));
            for _ in evictions..m.evictions {
                events.push(Event {
                    step: step.to_owned(),
                    kind: "evict",
                    model: m.model.clone(),
                    bytes: old_bytes,
                    seconds: None,
                });
            }
            for n in loads..m.loads {
                events.push(Event {
                    step: step.to_owned(),
                    kind: if n == 0 { "load" } else { "reload" },
                    model: m.model.clone(),
                    bytes: m.bytes,
                    seconds: m.mean_load_seconds,
                });
            }
        }
        // Evictions happen to make room for the loads of the same step, so they come first.
        events.sort_by_key(|e| e.kind != "evict");
        for e in &events {
            let detail = match (e.kind, e.bytes, e.seconds) {
                ("evict", Some(b), _) => format!(" (frees {})", human_bytes(b)),
                (_, Some(b), Some(s)) => format!(" ({}, {s:.2} s)", human_bytes(b)),
                (_, Some(b), None) => format!(" ({})", human_bytes(b)),
                _ => String::new(),
            };
            self.say(&format!("  {:<7} {}{detail}", e.kind, e.model));
        }
        // The ledger is shown when the step changed what is resident, and not repeated otherwise.
        for d in now.devices.iter().filter(|_| !events.is_empty()) {
            let used = d.used_by_us_bytes + d.reserved_bytes + d.unreclaimed_bytes;
            self.peak_bytes = self.peak_bytes.max(d.used_by_us_bytes);
            let resident: Vec<String> = now
                .models
                .iter()
                .filter(|m| m.device.as_deref() == Some(d.device.as_str()))
                .map(|m| format!("{} {}", m.model, human_bytes(m.bytes.unwrap_or_default())))
                .collect();
            if resident.is_empty() && used == 0 {
                continue;
            }
            self.say(&format!(
                "  ledger  {}: models {} of {} available to them; resident: {}",
                d.device,
                human_bytes(d.used_by_us_bytes.saturating_sub(d.runtime_overhead_bytes)),
                human_bytes(
                    d.budget_bytes
                        .saturating_sub(d.other_processes_bytes + d.runtime_overhead_bytes)
                ),
                if resident.is_empty() {
                    "none".to_owned()
                } else {
                    resident.join(", ")
                }
            ));
        }
        self.events.extend(events);
        self.last = now;
    }
}

/// One generated image and what the evaluators found.
#[derive(Debug, Default)]
struct Scored {
    path: PathBuf,
    seed: u64,
    image: Option<Image>,
    clip_score: Option<f32>,
    cosine: Option<f32>,
    caption: Option<String>,
    attributes: Vec<AttributeScores>,
    quality: Vec<serde_json::Value>,
    quality_text: Vec<String>,
    /// The interpreter's written assessment: model, prompt, text.
    assessment: Option<serde_json::Value>,
}

pub(crate) fn run(args: &Args) -> anyhow::Result<ExitCode> {
    if args.count == 0 {
        bail!("--count must be at least 1");
    }
    let started = Instant::now();
    let manager = args
        .catalog
        .manager_with_budget(args.memory_budget, Some(args.min_residency))?;
    let runtime = crate::common::runtime()?;
    let exports = args
        .catalog
        .exports
        .clone()
        .unwrap_or_else(|| manager.catalog().exports_dir());
    let roles = choose_roles(args, &manager, &exports)?;
    let images_dir = args.out.join("images");
    std::fs::create_dir_all(&images_dir)
        .with_context(|| format!("cannot create the folder {}", images_dir.display()))?;

    let mut log = Log {
        json: args.json,
        progress: Progress::new(args.json),
        events: Vec::new(),
        last: manager.status(),
        peak_bytes: 0,
    };
    log.say(&format!("prompt: {:?}", args.prompt));
    log.say(&format!("models: {}", roles.describe()));
    match args.memory_budget {
        Some(b) => log.say(&format!(
            "memory budget: {} for models on each device",
            human_bytes(b)
        )),
        None => log.say("memory budget: the devices' free memory"),
    }

    let mut timings: BTreeMap<&str, Duration> = BTreeMap::new();
    let mut scored: Vec<Scored> = Vec::new();
    let stages_per_image = if roles.interpreter.is_some() { 3 } else { 2 };
    let stages = log
        .progress
        .bar("pipeline", (args.count * stages_per_image) as u64, "stages");
    for i in 0..args.count {
        let seed = args.seed + i as u64;
        let t = Instant::now();
        let stage = format!("[{}/{}] generate (seed {seed})", i + 1, args.count);
        stages.set_message(stage.clone());
        log.say(&stage);
        let mut item = generate_one(args, &runtime, &manager, &roles, seed, &images_dir, &log)?;
        *timings.entry("generate").or_default() += t.elapsed();
        log.after("generate", &manager);
        stages.inc(1);
        let t = Instant::now();
        stages.set_message(format!("[{}/{}] evaluate", i + 1, args.count));
        log.say(&format!(
            "[{}/{}] evaluate {}",
            i + 1,
            args.count,
            item.path.display()
        ));
        evaluate_one(args, &runtime, &manager, &roles, &mut item, &mut log)?;
        *timings.entry("evaluate").or_default() += t.elapsed();
        stages.inc(1);
        if let Some(id) = &roles.interpreter {
            let t = Instant::now();
            let stage = format!("[{}/{}] interpret with {id}", i + 1, args.count);
            stages.set_message(stage.clone());
            log.say(&stage);
            item.assessment = Some(interpret(args, &runtime, &manager, id, &item, &mut log)?);
            *timings.entry("interpret").or_default() += t.elapsed();
            stages.inc(1);
        }
        scored.push(item);
    }
    stages.finish_and_clear();

    timings.insert("total", started.elapsed());

    let report = report_json(args, &roles, &scored, &log, &timings, &manager);
    let report_path = args.out.join("report.json");
    std::fs::write(&report_path, serde_json::to_string_pretty(&report)? + "\n")
        .with_context(|| format!("cannot write {}", report_path.display()))?;
    let summary_path = args.out.join("summary.md");
    std::fs::write(
        &summary_path,
        summary_text(args, &roles, &scored, &log, &timings),
    )
    .with_context(|| format!("cannot write {}", summary_path.display()))?;
    let loads = log.events.iter().filter(|e| e.kind == "load").count();
    let reloads = log.events.iter().filter(|e| e.kind == "reload").count();
    let evictions = log.events.iter().filter(|e| e.kind == "evict").count();
    log.say(&format!(
        "done in {:.2} s: {loads} load(s), {reloads} reload(s), {evictions} eviction(s), ledger peak {} (process resident memory now {}); wrote {}, {} and {} image(s) in {}",
        started.elapsed().as_secs_f64(),
        human_bytes(log.peak_bytes),
        crate::common::process_rss().map_or_else(|| "unknown".to_owned(), human_bytes),
        report_path.display(),
        summary_path.display(),
        scored.len(),
        images_dir.display()
    ));
    if args.json {
        print_json(&report);
    }
    Ok(ExitCode::SUCCESS)
}

fn list_or_none(ids: &[String]) -> String {
    if ids.is_empty() {
        "none".to_owned()
    } else {
        ids.join(", ")
    }
}

/// Generates one image with the generator's lease, returned as soon as the image exists.
fn generate_one(
    args: &Args,
    runtime: &tokio::runtime::Runtime,
    manager: &ModelManager,
    roles: &Roles,
    seed: u64,
    dir: &Path,
    log: &Log,
) -> anyhow::Result<Scored> {
    let pipeline =
        log.progress
            .lease::<Arc<dyn TextToImage>>(runtime, manager, &roles.generator)?;
    let request = ImageRequest {
        prompt: args.prompt.clone(),
        steps: args.steps,
        seed: Some(seed),
        params: args.params.iter().cloned().collect(),
        ..ImageRequest::default()
    };
    let result = crate::generate::denoise(&log.progress, "denoising", &**pipeline, &request)?;
    drop(pipeline);
    let path = dir.join(format!("image-{seed}.png"));
    crate::generate::write_images(&result, &path)?;
    let rgb = result
        .images
        .into_iter()
        .next()
        .context("the generator returned no image")?;
    let image = Image::from_rgb8(rgb.width, rgb.height, rgb.pixels)
        .context("the generated image's pixels do not match its size")?;
    Ok(Scored {
        path,
        seed,
        image: Some(image),
        ..Scored::default()
    })
}

/// Runs every evaluator on one image, each model leased only for its own step.
fn evaluate_one(
    args: &Args,
    runtime: &tokio::runtime::Runtime,
    manager: &ModelManager,
    roles: &Roles,
    item: &mut Scored,
    log: &mut Log,
) -> anyhow::Result<()> {
    let image = item.image.clone().context("no image to evaluate")?;
    let images = std::slice::from_ref(&image);
    if let Some(id) = &roles.encoder {
        let encoder = log
            .progress
            .lease::<Arc<dyn ImageTextEncoder>>(runtime, manager, id)?;
        let i = runtime.block_on(encoder.embed_images(images))?;
        let t = runtime.block_on(encoder.embed_texts(std::slice::from_ref(&args.prompt)))?;
        drop(encoder);
        let cosine = modelmux::adapters::vlm::cosine(&i[0], &t[0]);
        item.cosine = Some(cosine);
        item.clip_score = Some(modelmux::adapters::vlm::CLIP_SCORE_WEIGHT * cosine.max(0.0));
        log.after("clip-score", manager);
        log.say(&format!(
            "  CLIPScore {:.3} (cosine {cosine:.3}) by {id}",
            item.clip_score.unwrap_or_default()
        ));
    }
    if let Some(id) = &roles.captioner {
        let captioner = log
            .progress
            .lease::<Arc<dyn ImageCaptioner>>(runtime, manager, id)?;
        let caption = runtime.block_on(captioner.caption(&image, &CaptionOptions::default()))?;
        drop(captioner);
        log.after("caption", manager);
        log.say(&format!("  caption {:?} by {id}", caption.text));
        item.caption = Some(caption.text);
    }
    for id in &roles.classifiers {
        let classifier = log
            .progress
            .lease::<Arc<dyn ImageClassifier>>(runtime, manager, id)?;
        let scores = runtime.block_on(classifier.classify(images))?;
        drop(classifier);
        log.after("classify", manager);
        for attribute in scores.into_iter().flatten() {
            log.say(&format!("  {} by {id}", attribute_line(&attribute, 3)));
            item.attributes.push(attribute);
        }
    }
    for id in &roles.assessors {
        let assessor = runtime.block_on(log.progress.loading(id, lease_assessor(manager, id)))?;
        let scores = runtime.block_on(assessor.assessor.assess(images))?;
        let scale = assessor.assessor.scale();
        drop(assessor);
        log.after("assess", manager);
        for s in scores {
            let line = format!("{id} {:.3} ({})", s.score, scale_text(&scale));
            log.say(&format!("  quality {line}"));
            item.quality_text.push(line);
            item.quality
                .push(json!({ "model": id, "score": s.score, "scale": scale }));
        }
    }
    Ok(())
}

/// The language model's short written assessment of one evaluated image.
fn interpret(
    args: &Args,
    runtime: &tokio::runtime::Runtime,
    manager: &ModelManager,
    id: &str,
    item: &Scored,
    log: &mut Log,
) -> anyhow::Result<serde_json::Value> {
    let generator = log
        .progress
        .lease::<Arc<dyn TextGenerator>>(runtime, manager, id)?;
    // Greedy, with transformers' repetition penalty: small models otherwise loop on a phrase
    // of the prompt.
    let options = GenerationOptions {
        max_new_tokens: Some(args.max_new_tokens),
        repetition_penalty: Some(1.3),
        ..GenerationOptions::default()
    };
    // The detailed prompt first; a model with a short context gets the gist instead.
    let mut prompt = interpretation_prompt(&args.prompt, item);
    let write = |prompt: &str| {
        let tokens = log
            .progress
            .bar("writing", args.max_new_tokens as u64, "tokens");
        let result = generator.generate_stream(&[Prompt::from(prompt)], &options, &mut |_| {
            tokens.inc(1);
            std::ops::ControlFlow::Continue(())
        });
        tokens.finish_and_clear();
        result.and_then(|mut all| {
            all.pop()
                .ok_or_else(|| modelmux::adapters::AdapterError::InvalidRequest {
                    model: id.to_owned(),
                    reason: "the generator returned no result".to_owned(),
                })
        })
    };
    let generation = match write(&prompt) {
        Err(modelmux::adapters::AdapterError::InvalidRequest { reason, .. }) => {
            log.say(&format!(
                "  the detailed prompt does not fit ({reason}); asking with the gist"
            ));
            prompt = short_prompt(&args.prompt, item);
            write(&prompt)
        }
        other => other,
    }
    .with_context(|| format!("{id} could not write the assessment"))?;
    let model = generator.model().to_owned();
    drop(generator);
    log.after("interpret", manager);
    let text = generation.text.trim().to_owned();
    log.say(&format!("  assessment: {text}"));
    Ok(json!({ "model": model, "prompt": prompt, "text": text, "tokens": generation.tokens.len() }))
}

/// What the language model is asked: the request, each image's numbers, and what to write.
fn interpretation_prompt(prompt: &str, s: &Scored) -> String {
    let mut facts = Vec::new();
    if let Some(c) = s.clip_score {
        facts.push(format!(
            "- match with the request (CLIPScore, 0 to 2.5, higher is closer): {c:.2}"
        ));
    }
    for a in &s.attributes {
        if let Some(v) = a.expected_value() {
            facts.push(format!("- {} estimate: {v:.0}", a.attribute));
        } else if let Some(b) = a.best() {
            facts.push(format!(
                "- {}: {} ({:.0}% sure)",
                a.attribute,
                b.label,
                b.score * 100.0
            ));
        }
    }
    for q in &s.quality_text {
        facts.push(format!("- quality: {q}"));
    }
    if let Some(c) = &s.caption {
        facts.push(format!("- automatic caption: {c}"));
    }
    format!(
        "You review images made by an image generator. The request was: \"{prompt}\".\nMeasurements of the image:\n{}\nIn two or three sentences of your own, say whether the image matches the request and whether its quality is good.",
        facts.join("\n")
    )
}

/// The gist for models with a short context: the request and the CLIPScore.
fn short_prompt(prompt: &str, s: &Scored) -> String {
    match s.clip_score {
        Some(c) => format!("An image for \"{prompt}\" has CLIPScore {c:.2} of 2.5. Verdict:"),
        None => format!("An image for \"{prompt}\". Verdict:"),
    }
}

fn report_json(
    args: &Args,
    roles: &Roles,
    scored: &[Scored],
    log: &Log,
    timings: &BTreeMap<&str, Duration>,
    manager: &ModelManager,
) -> serde_json::Value {
    let images: Vec<_> = scored
        .iter()
        .map(|s| {
            json!({
                "path": s.path.display().to_string(),
                "seed": s.seed,
                "clip_score": s.clip_score,
                "cosine": s.cosine,
                "caption": s.caption,
                "attributes": s.attributes.iter().map(attribute_json).collect::<Vec<_>>(),
                "quality": s.quality,
                "assessment": s.assessment,
            })
        })
        .collect();
    let status = manager.status();
    let models: Vec<_> = status
        .models
        .iter()
        .filter(|m| m.loads > 0 || m.load_failures > 0)
        .map(|m| {
            json!({
                "model": m.model,
                "loads": m.loads,
                "evictions": m.evictions,
                "state": format!("{:?}", m.state).to_lowercase(),
                "bytes": m.bytes,
                "mean_load_seconds": m.mean_load_seconds,
            })
        })
        .collect();
    json!({
        "prompt": args.prompt,
        "memory_budget_bytes": args.memory_budget,
        "roles": roles,
        "images": images,
        "events": log.events,
        "models": models,
        "peak_bytes": log.peak_bytes,
        "devices": status.devices,
        "timings_s": timings.iter().map(|(k, v)| ((*k).to_owned(), json!(v.as_secs_f64()))).collect::<serde_json::Map<_, _>>(),
    })
}

fn summary_text(
    args: &Args,
    roles: &Roles,
    scored: &[Scored],
    log: &Log,
    timings: &BTreeMap<&str, Duration>,
) -> String {
    let mut out = format!("# modelmux pipeline\n\nPrompt: \"{}\"\n\n", args.prompt);
    out.push_str(&format!("Models: {}.\n\n", roles.describe()));
    out.push_str("## Images\n\n");
    for s in scored {
        out.push_str(&format!("- `{}` (seed {})", s.path.display(), s.seed));
        if let Some(c) = s.clip_score {
            out.push_str(&format!(": CLIPScore {c:.3}"));
        }
        if let Some(c) = &s.caption {
            out.push_str(&format!("; caption \"{c}\""));
        }
        for a in &s.attributes {
            out.push_str(&format!("; {}", attribute_line(a, 1)));
        }
        for q in &s.quality_text {
            out.push_str(&format!("; quality {q}"));
        }
        out.push('\n');
        if let Some(a) = &s.assessment {
            out.push_str(&format!(
                "\n  > {} ({})\n\n",
                a["text"].as_str().unwrap_or_default().replace('\n', " "),
                a["model"].as_str().unwrap_or_default()
            ));
        }
    }
    out.push_str("\n## Memory\n\n");
    match args.memory_budget {
        Some(b) => out.push_str(&format!("Budget {} for models; ", human_bytes(b))),
        None => out.push_str("No budget beyond the devices' free memory; "),
    }
    out.push_str(&format!("peak {} in use.\n\n", human_bytes(log.peak_bytes)));
    for e in &log.events {
        out.push_str(&format!("- {}: {} {}\n", e.step, e.kind, e.model));
    }
    out.push_str("\n## Time\n\n");
    for (k, v) in timings {
        out.push_str(&format!("- {k}: {:.2} s\n", v.as_secs_f64()));
    }
    out
}
