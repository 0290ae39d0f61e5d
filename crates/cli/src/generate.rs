//! `modelmux generate <id> …`: text from a language model, or images from a diffusion model,
//! chosen by the catalog entry's family.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use modelmux::adapters::diffusion::{
    Control, GeneratedImages, ImageRequest, RgbImage, TextToImage, parse_scheduler, write_png,
};
use modelmux::adapters::lm::{GenerationOptions, Prompt, TextGenerator};
use modelmux::registry::Family;
use serde_json::json;

use crate::common::{CatalogArgs, open_image, print_json, spec};
use crate::progress::Progress;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The model (`id` or `id@version`): a language model or a diffusion model.
    model: String,
    /// What to continue (language models) or to draw (diffusion models; optional for models
    /// that are not text-conditioned, such as terrain).
    #[arg(long)]
    prompt: Option<String>,

    /// Language models: the most new tokens [default: the catalog's, else 128].
    #[arg(long, value_name = "N", help_heading = "Language models")]
    max_new_tokens: Option<usize>,
    /// Sampling temperature; greedy decoding when no sampling option is given.
    #[arg(long, value_name = "T", help_heading = "Language models")]
    temperature: Option<f32>,
    /// Nucleus sampling: keep the most likely tokens up to this probability mass.
    #[arg(long, value_name = "P", help_heading = "Language models")]
    top_p: Option<f32>,
    /// Keep only the K most likely tokens before sampling.
    #[arg(long, value_name = "K", help_heading = "Language models")]
    top_k: Option<usize>,

    /// Seed of the sampler (language models) or of the initial noise (diffusion models).
    #[arg(long, value_name = "S")]
    seed: Option<u64>,

    /// Diffusion models: what to steer away from.
    #[arg(long, value_name = "TEXT", help_heading = "Diffusion models")]
    negative: Option<String>,
    /// Denoising steps [default: the catalog's].
    #[arg(long, value_name = "N", help_heading = "Diffusion models")]
    steps: Option<usize>,
    /// Classifier-free guidance scale; ≤ 1 turns guidance off.
    #[arg(long, value_name = "G", help_heading = "Diffusion models")]
    guidance: Option<f32>,
    /// The sampler: ddim, pndm, euler, euler-ancestral, dpm-solver++.
    #[arg(long, value_name = "NAME", help_heading = "Diffusion models")]
    scheduler: Option<String>,
    /// Image width in pixels (a multiple of 8).
    #[arg(long, value_name = "PX", help_heading = "Diffusion models")]
    width: Option<u32>,
    /// Image height in pixels (a multiple of 8).
    #[arg(long, value_name = "PX", help_heading = "Diffusion models")]
    height: Option<u32>,
    /// Images generated together.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 1,
        help_heading = "Diffusion models"
    )]
    count: usize,
    /// img2img: the starting image.
    #[arg(long, value_name = "FILE", help_heading = "Diffusion models")]
    init_image: Option<PathBuf>,
    /// img2img: how much of the schedule runs over the init image, in (0, 1].
    #[arg(long, value_name = "S", help_heading = "Diffusion models")]
    strength: Option<f32>,
    /// A model parameter, e.g. `difficulty=0.7` for terrain (repeatable).
    #[arg(long = "param", value_name = "KEY=VALUE", value_parser = parse_param, help_heading = "Diffusion models")]
    params: Vec<(String, f64)>,
    /// Where the PNG goes; with --count N > 1, `-1`, `-2`, … are added before `.png`
    /// [default: `<id>-<seed>.png`].
    #[arg(long, value_name = "FILE.png", help_heading = "Diffusion models")]
    out: Option<PathBuf>,

    #[command(flatten)]
    catalog: CatalogArgs,
    /// Print one JSON object instead of streaming text or progress bars.
    #[arg(long)]
    json: bool,
}

/// `key=value` with a numeric value.
pub(crate) fn parse_param(text: &str) -> Result<(String, f64), String> {
    let (key, value) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}` is not KEY=VALUE"))?;
    let value = value
        .trim()
        .parse::<f64>()
        .map_err(|e| format!("the value of `{key}` is not a number: {e}"))?;
    Ok((key.trim().to_owned(), value))
}

pub(crate) fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let manager = args.catalog.manager()?;
    let runtime = crate::common::runtime()?;
    let progress = Progress::new(args.json);
    match spec(&manager, &args.model)?.family {
        Family::Lm => {
            let generator =
                progress.lease::<Arc<dyn TextGenerator>>(&runtime, &manager, &args.model)?;
            generate_text(args, &progress, generator.model(), &**generator)
        }
        Family::Diffusion => {
            let pipeline =
                progress.lease::<Arc<dyn TextToImage>>(&runtime, &manager, &args.model)?;
            generate_images(args, &progress, pipeline.model(), &**pipeline)
        }
        other => bail!(
            "{} is a {} model; generate needs a language model or a diffusion model",
            args.model,
            other.as_str()
        ),
    }
}

fn generate_text(
    args: &Args,
    progress: &Progress,
    model: &str,
    generator: &dyn TextGenerator,
) -> anyhow::Result<ExitCode> {
    let Some(prompt) = &args.prompt else {
        bail!("{model} is a language model and needs --prompt");
    };
    let options = GenerationOptions {
        max_new_tokens: args.max_new_tokens,
        temperature: args.temperature,
        top_p: args.top_p,
        top_k: args.top_k,
        seed: args.seed,
        ..GenerationOptions::default()
    };
    let prompts = [Prompt::from(prompt.as_str())];
    let json = args.json;
    let mut stdout = std::io::stdout();
    // Text streamed to a terminal is its own progress; a bar there would overwrite it. Text
    // going to a file or a pipe leaves the terminal to a bar counting the tokens.
    let tokens = if stdout.is_terminal() && !json {
        indicatif::ProgressBar::hidden()
    } else {
        match args.max_new_tokens {
            Some(n) => progress.bar("generating", n as u64, "tokens"),
            None => progress.counter("generating", "tokens"),
        }
    };
    let mut results = generator.generate_stream(&prompts, &options, &mut |event| {
        tokens.inc(1);
        if !json {
            let _ = write!(stdout, "{}", event.text);
            let _ = stdout.flush();
        }
        ControlFlow::Continue(())
    })?;
    tokens.finish_and_clear();
    let generation = results
        .pop()
        .ok_or_else(|| anyhow::format_err!("the model returned no generation"))?;
    if json {
        print_json(
            &json!({ "model": model, "text": generation.text, "tokens": generation.tokens }),
        );
    } else {
        println!();
    }
    Ok(ExitCode::SUCCESS)
}

/// The request the flags describe; unset fields take the model's defaults.
pub(crate) fn image_request(args: &Args) -> anyhow::Result<ImageRequest> {
    let init_image = match &args.init_image {
        Some(path) => {
            let image = open_image(path)?;
            Some(
                RgbImage::new(image.width(), image.height(), image.as_rgb().to_vec())
                    .context("the init image's pixels do not match its size")?,
            )
        }
        None => None,
    };
    let scheduler = match &args.scheduler {
        Some(name) => Some(parse_scheduler(name).with_context(|| format!("--scheduler {name}"))?),
        None => None,
    };
    if args.count == 0 {
        bail!("--count must be at least 1");
    }
    Ok(ImageRequest {
        prompt: args.prompt.clone().unwrap_or_default(),
        negative_prompt: args.negative.clone(),
        width: args.width,
        height: args.height,
        steps: args.steps,
        guidance_scale: args.guidance,
        scheduler,
        seed: args.seed,
        batch_count: Some(args.count),
        init_image,
        strength: args.strength,
        params: args.params.iter().cloned().collect::<BTreeMap<_, _>>(),
    })
}

fn generate_images(
    args: &Args,
    progress: &Progress,
    model: &str,
    pipeline: &dyn TextToImage,
) -> anyhow::Result<ExitCode> {
    let request = image_request(args)?;
    let defaults = pipeline.defaults();
    if defaults.text_conditioned && request.prompt.is_empty() {
        bail!("{model} is text-conditioned and needs --prompt");
    }
    let result = denoise(progress, "denoising", pipeline, &request)?;
    let id = model.split('@').next().unwrap_or(model);
    let base = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("{id}-{}.png", result.seed)));
    let paths = write_images(&result, &base)?;
    if args.json {
        print_json(&json!({
            "model": model,
            "images": paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
            "seed": result.seed,
            "request": result.request,
            "timings_ms": timings_ms(&result),
        }));
    } else {
        for path in &paths {
            println!("{}", path.display());
        }
        eprintln!(
            "{model}: {} image(s) of {}×{}, seed {}, {} step(s) in {:.2} s",
            paths.len(),
            result.request.width,
            result.request.height,
            result.seed,
            result.request.steps,
            result.timings.total.as_secs_f64()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs `pipeline` on `request` with a bar of its denoising steps.
pub(crate) fn denoise(
    progress: &Progress,
    label: &str,
    pipeline: &dyn TextToImage,
    request: &ImageRequest,
) -> anyhow::Result<GeneratedImages> {
    let planned = request.steps.unwrap_or(pipeline.defaults().steps);
    let steps = progress.bar(label, planned as u64, "steps");
    let result = pipeline.generate(request, &mut |p| {
        steps.set_length(p.total as u64);
        steps.set_position(p.step as u64);
        Control::Continue
    });
    steps.finish_and_clear();
    Ok(result?)
}

/// Each stage's time in milliseconds.
pub(crate) fn timings_ms(result: &GeneratedImages) -> serde_json::Value {
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
    json!({
        "text_encoder": ms(result.timings.text_encoder),
        "denoise": ms(result.timings.denoise),
        "vae": ms(result.timings.vae),
        "total": ms(result.timings.total),
    })
}

/// Writes every image as a PNG with its parameters; `base` as is for one image, numbered for
/// several.
pub(crate) fn write_images(result: &GeneratedImages, base: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let parameters = result.request.to_text();
    let mut paths = Vec::new();
    for (i, image) in result.images.iter().enumerate() {
        let path = if result.images.len() == 1 {
            base.to_path_buf()
        } else {
            let stem = base.file_stem().and_then(|s| s.to_str()).unwrap_or("image");
            base.with_file_name(format!("{stem}-{}.png", i + 1))
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create the folder {}", dir.display()))?;
        }
        write_png(&path, image, &[("parameters", &parameters)])
            .with_context(|| format!("cannot write {}", path.display()))?;
        paths.push(path);
    }
    Ok(paths)
}
