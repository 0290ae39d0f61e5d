//! The `diffusion` family: the [`TextToImage`] interface, the Stable Diffusion pipeline over ONNX
//! Runtime, the schedulers and seeded noise it runs on, and PNG output.
//!
//! Applications hold an `Arc<dyn TextToImage>` (what the manager's lease hands out for
//! `stable-diffusion` and `dall-e` models) and call [`TextToImage::generate`] with an
//! [`ImageRequest`]; unset fields take the model's defaults from the catalog
//! ([`TextToImage::defaults`]). A generation is blocking (it runs many ONNX calls); call it from
//! `tokio::task::spawn_blocking` in async code. [`write_png`] stores an image with its generation
//! parameters in a `tEXt` chunk.

mod image;
pub mod noise;
mod pipeline;
pub mod scheduler;
mod terrain;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use modelmux_registry::Architecture;
use serde::{Deserialize, Serialize};

use crate::context::LoadContext;
use crate::error::AdapterError;
use crate::load::Loaded;

pub use self::image::{RgbImage, decode_png, read_png, write_png};
pub use self::noise::{NoiseSource, RecordedNoise, SeededNoise};
pub use self::pipeline::{Generation, StableDiffusion};
pub use self::scheduler::{
    PredictionType, SCHEDULER_KINDS, Scheduler, SchedulerConfig, SchedulerError, SchedulerKind,
    TimestepSpacing, default_spacing, parse_scheduler, scheduler_name,
};
pub use self::terrain::{TerrainConstants, TerrainDiffusion, TerrainGeneration};

/// What to generate. `None` fields take the model's [`ImageDefaults`].
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ImageRequest {
    /// The text prompt (optional for models that are not text-conditioned).
    pub prompt: String,
    /// What to steer away from (classifier-free guidance's unconditional branch).
    pub negative_prompt: Option<String>,
    /// Image width in pixels: a multiple of 8.
    pub width: Option<u32>,
    /// Image height in pixels: a multiple of 8.
    pub height: Option<u32>,
    /// Denoising steps.
    pub steps: Option<usize>,
    /// Classifier-free guidance scale; ≤ 1 turns guidance off (one UNet row instead of two).
    pub guidance_scale: Option<f32>,
    /// The sampler.
    pub scheduler: Option<SchedulerKind>,
    /// The noise seed; `None` picks one from the clock (returned in the result).
    pub seed: Option<u64>,
    /// Images generated together (one batch); at least 1.
    pub batch_count: Option<usize>,
    /// img2img: the starting image (resized to width × height when they differ).
    #[serde(skip)]
    pub init_image: Option<RgbImage>,
    /// img2img: how much of the schedule to run over the init image, in (0, 1].
    pub strength: Option<f32>,
    /// Model parameters that are not part of the common request (e.g. a terrain's difficulty).
    pub params: BTreeMap<String, f64>,
}

impl ImageRequest {
    /// A text-to-image request for `prompt` with the model's defaults.
    pub fn new(prompt: impl Into<String>) -> Self {
        Self {
            prompt: prompt.into(),
            ..Self::default()
        }
    }
}

/// A model's defaults for the request fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageDefaults {
    pub width: u32,
    pub height: u32,
    pub steps: usize,
    pub guidance_scale: f32,
    pub scheduler: Option<SchedulerKind>,
    /// Whether the prompt is used (false for unconditional or parameter-conditioned models).
    pub text_conditioned: bool,
}

/// Where a generation is, reported before each denoising step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    /// The step about to run (0-based).
    pub step: usize,
    /// All steps of this generation.
    pub total: usize,
    /// The timestep the denoiser sees at this step.
    pub timestep: f32,
}

/// What a progress callback tells the pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    Continue,
    /// Stop before the next step; `generate` returns [`AdapterError::Cancelled`].
    Cancel,
}

/// How long each stage took.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Timings {
    pub text_encoder: Duration,
    pub denoise: Duration,
    pub vae: Duration,
    pub total: Duration,
}

/// The request as it ran (defaults resolved), for reports and PNG metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResolvedRequest {
    pub model: String,
    pub prompt: String,
    pub negative_prompt: Option<String>,
    pub width: u32,
    pub height: u32,
    pub steps: usize,
    pub guidance_scale: f32,
    pub scheduler: Option<SchedulerKind>,
    pub seed: u64,
    pub batch_count: usize,
    pub strength: Option<f32>,
    pub params: BTreeMap<String, f64>,
}

impl ResolvedRequest {
    /// The parameters as one line of JSON, for the PNG `parameters` text chunk.
    pub fn to_text(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Generated images with the seed and timings.
#[derive(Debug, Clone)]
pub struct GeneratedImages {
    pub images: Vec<RgbImage>,
    /// The seed used (the request's, or the one picked).
    pub seed: u64,
    /// The request as it ran.
    pub request: ResolvedRequest,
    pub timings: Timings,
}

/// Text-to-image models, local or remote.
pub trait TextToImage: Send + Sync {
    /// The model's defaults for unset request fields.
    fn defaults(&self) -> ImageDefaults;

    /// Generates `request.batch_count` images. `progress` is called before each denoising step;
    /// returning [`Control::Cancel`] stops the generation between steps.
    fn generate(
        &self,
        request: &ImageRequest,
        progress: &mut dyn FnMut(Progress) -> Control,
    ) -> Result<GeneratedImages, AdapterError>;
}

impl std::fmt::Debug for dyn TextToImage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextToImage")
            .field("defaults", &self.defaults())
            .finish()
    }
}

/// A progress callback that never cancels.
pub fn no_progress() -> impl FnMut(Progress) -> Control {
    |_| Control::Continue
}

/// A seed from the clock, for requests that leave it unset.
pub(crate) fn fresh_seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    // Kept below 2^53 so the seed survives a round trip through JSON numbers.
    nanos % (1u64 << 53)
}

/// Loads the `diffusion` adapter for `context.spec`'s architecture: an `Arc<dyn TextToImage>`.
pub fn load(context: &LoadContext<'_>) -> Result<Loaded, AdapterError> {
    match context.spec.architecture {
        Architecture::StableDiffusion => {
            let pipeline = Arc::new(StableDiffusion::load(context)?);
            let stop = Arc::clone(&pipeline);
            let object: Arc<dyn TextToImage> = pipeline;
            Ok(Loaded::new(object, move || stop.shutdown()))
        }
        Architecture::TerrainDiffusion => {
            let pipeline = Arc::new(TerrainDiffusion::load(context)?);
            let stop = Arc::clone(&pipeline);
            let object: Arc<dyn TextToImage> = pipeline;
            Ok(Loaded::new(object, move || stop.shutdown()))
        }
        _ => Err(AdapterError::Unsupported {
            model: context.model(),
            architecture: context.spec.architecture.to_string(),
        }),
    }
}
