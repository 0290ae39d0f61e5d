//! The Stable Diffusion pipeline over ONNX Runtime: tokenizer → text encoder → denoising loop
//! (classifier-free guidance as one UNet call on a batch of uncond + cond rows) → VAE decoder,
//! plus img2img (VAE encoder, strength).
//!
//! The loop follows diffusers' `StableDiffusionPipeline` and `StableDiffusionImg2ImgPipeline`
//! step for step, including the order in which random tensors are drawn (initial latents; for
//! img2img the VAE posterior sample, then the added noise; then any the scheduler draws), so a
//! test can replay diffusers' draws through a [`RecordedNoise`](super::RecordedNoise) and compare
//! the decoded images.

use std::path::Path;
use std::time::Instant;

use half::f16;
use ndarray::{ArrayD, Axis, IxDyn, s};
use tokenizers::{Tokenizer, TruncationParams};

use modelmux_runtime_ort::{ElementType, Inputs, SessionPool, Tensor};

use super::image::RgbImage;
use super::noise::{NoiseSource, SeededNoise};
use super::scheduler::{Latents, SchedulerConfig, SchedulerKind, TimestepSpacing};
use super::{
    Control, GeneratedImages, ImageDefaults, ImageRequest, Progress, ResolvedRequest, TextToImage,
    Timings, fresh_seed,
};
use crate::context::LoadContext;
use crate::error::AdapterError;

/// How the UNet wants its timestep, read from the session (exporters differ: float32 `[batch]`
/// from this project's exporter, int64 or float16 scalars elsewhere).
#[derive(Debug, Clone, PartialEq)]
struct TimestepInput {
    element_type: ElementType,
    rank: usize,
}

/// A loaded Stable Diffusion model.
#[derive(Debug)]
pub struct StableDiffusion {
    model: String,
    tokenizer: Tokenizer,
    pad_id: u32,
    max_length: usize,
    text_encoder: SessionPool,
    unet: SessionPool,
    vae_decoder: SessionPool,
    vae_encoder: Option<SessionPool>,
    scheduler: SchedulerConfig,
    default_kind: SchedulerKind,
    defaults: ImageDefaults,
    timestep: TimestepInput,
    latent_channels: usize,
    vae_scale_factor: usize,
    scaling_factor: f32,
}

/// One generation's full result: the images and, for parity checks, the decoded floats.
#[derive(Debug, Clone)]
pub struct Generation {
    pub output: GeneratedImages,
    /// The decoded images in [0, 1], `[batch, height, width, 3]` (diffusers' `output_type="np"`).
    pub decoded: ArrayD<f32>,
    /// The final latents, `[batch, channels, height / f, width / f]`.
    pub latents: ArrayD<f32>,
}

impl StableDiffusion {
    /// Loads the four sessions, the tokenizer and the scheduler config of an export laid out as
    /// `xtask/python/export/CONTRACTS.md` says.
    pub fn load(ctx: &LoadContext<'_>) -> Result<Self, AdapterError> {
        let model = ctx.model();
        let config_error = |reason: String| AdapterError::Config {
            model: model.clone(),
            reason,
        };
        let manifest_path = ctx.file("manifest.json")?;
        let manifest = read_json(&model, &manifest_path)?;
        let extra = manifest.get("extra").cloned().unwrap_or_default();
        let params = &ctx.spec.params;

        let tok_params = params.tokenizer.clone().unwrap_or_default();
        let tok_file = tok_params
            .file
            .clone()
            .unwrap_or_else(|| "tokenizer/tokenizer.json".into());
        let tok_path = ctx.file(&tok_file)?;
        let max_length = tok_params
            .max_length
            .map(|n| n as usize)
            .or_else(|| {
                extra
                    .get("text_max_length")
                    .and_then(|v| v.as_u64())
                    .map(|n| n as usize)
            })
            .unwrap_or(77);
        let mut tokenizer = Tokenizer::from_file(&tok_path).map_err(|e| AdapterError::BadFile {
            model: model.clone(),
            path: tok_path.clone(),
            reason: e.to_string(),
        })?;
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length,
                ..TruncationParams::default()
            }))
            .map_err(|e| config_error(format!("tokenizer truncation: {e}")))?;
        let pad_token = tok_params
            .pad_token
            .clone()
            .unwrap_or_else(|| "<|endoftext|>".into());
        let pad_id = tokenizer.token_to_id(&pad_token).ok_or_else(|| {
            config_error(format!(
                "the pad token {pad_token} is not in {}",
                tok_path.display()
            ))
        })?;

        let mut scheduler = match ctx.file("scheduler/scheduler_config.json") {
            Ok(path) => SchedulerConfig::from_diffusers_json(&read_json(&model, &path)?)
                .map_err(|e| config_error(e.to_string()))?,
            Err(_) => SchedulerConfig::sd15(),
        };
        let mut default_kind = SchedulerKind::Pndm;
        let mut defaults = ImageDefaults {
            width: 512,
            height: 512,
            steps: 50,
            guidance_scale: 7.5,
            scheduler: Some(SchedulerKind::Pndm),
            text_conditioned: true,
        };
        let mut scaling_factor = extra
            .get("scaling_factor")
            .and_then(|v| v.as_f64())
            .unwrap_or(0.18215) as f32;
        if let Some(d) = &params.scheduler {
            default_kind = d.kind;
            if let Some(v) = d.steps {
                defaults.steps = v as usize;
            }
            if let Some(v) = d.guidance_scale {
                defaults.guidance_scale = v as f32;
            }
            if let Some(v) = d.beta_start {
                scheduler.beta_start = v;
            }
            if let Some(v) = d.beta_end {
                scheduler.beta_end = v;
            }
            if let Some(p) = d.prediction_type {
                scheduler.prediction_type = match p {
                    modelmux_registry::PredictionType::Epsilon => super::PredictionType::Epsilon,
                    modelmux_registry::PredictionType::VPrediction => {
                        super::PredictionType::VPrediction
                    }
                    other => {
                        return Err(config_error(format!(
                            "prediction type {other:?} is not supported"
                        )));
                    }
                };
            }
            if let Some(t) = d.timestep_spacing {
                scheduler.timestep_spacing = Some(match t {
                    modelmux_registry::TimestepSpacing::Leading => TimestepSpacing::Leading,
                    modelmux_registry::TimestepSpacing::Linspace => TimestepSpacing::Linspace,
                    modelmux_registry::TimestepSpacing::Trailing => TimestepSpacing::Trailing,
                });
            }
            if let Some(v) = d.steps_offset {
                scheduler.steps_offset = v as usize;
            }
            if let Some(v) = d.width {
                defaults.width = v;
            }
            if let Some(v) = d.height {
                defaults.height = v;
            }
            if let Some(v) = d.latent_scale {
                scaling_factor = v as f32;
            }
        }
        defaults.scheduler = Some(default_kind);

        let text_encoder = ctx.pool("text_encoder/model.onnx", false)?;
        let unet = ctx.pool("unet/model.onnx", false)?;
        let vae_decoder = ctx.pool("vae_decoder/model.onnx", false)?;
        let vae_encoder = match ctx.file("vae_encoder/model.onnx") {
            Ok(_) => Some(ctx.pool("vae_encoder/model.onnx", false)?),
            Err(_) => None,
        };
        let ts = unet.info().input("timestep").ok_or_else(|| {
            config_error("the UNet has no `timestep` input (see CONTRACTS.md)".into())
        })?;
        let timestep = TimestepInput {
            element_type: ts.element_type.clone(),
            rank: ts.shape.len(),
        };
        if !matches!(
            timestep.element_type,
            ElementType::F32 | ElementType::F16 | ElementType::I64 | ElementType::I32
        ) || timestep.rank > 1
        {
            return Err(config_error(format!(
                "the UNet's timestep is {} {}: expected a float or integer scalar or [batch]",
                ts.element_type,
                ts.shape_text()
            )));
        }
        let latent_channels = extra
            .get("latent_channels")
            .and_then(|v| v.as_u64())
            .unwrap_or(4) as usize;
        let vae_scale_factor = extra
            .get("vae_scale_factor")
            .and_then(|v| v.as_u64())
            .unwrap_or(8) as usize;
        if vae_scale_factor == 0 || latent_channels == 0 || !scaling_factor.is_normal() {
            return Err(config_error(format!(
                "the manifest's vae_scale_factor {vae_scale_factor}, latent_channels \
                 {latent_channels} or scaling factor {scaling_factor} is unusable"
            )));
        }
        Ok(Self {
            model,
            tokenizer,
            pad_id,
            max_length,
            text_encoder,
            unet,
            vae_decoder,
            vae_encoder,
            scheduler,
            default_kind,
            defaults,
            timestep,
            latent_channels,
            vae_scale_factor,
            scaling_factor,
        })
    }

    /// Shuts every session down (their memory is returned when the last request finishes).
    pub fn shutdown(&self) {
        self.text_encoder.shutdown();
        self.unet.shutdown();
        self.vae_decoder.shutdown();
        if let Some(e) = &self.vae_encoder {
            e.shutdown();
        }
    }

    /// The scheduler config the model was exported with (after the catalog's overrides).
    pub fn scheduler_config(&self) -> &SchedulerConfig {
        &self.scheduler
    }

    fn invalid(&self, reason: impl Into<String>) -> AdapterError {
        AdapterError::InvalidRequest {
            model: self.model.clone(),
            reason: reason.into(),
        }
    }

    /// Resolves defaults and validates the request.
    fn resolve(&self, request: &ImageRequest) -> Result<ResolvedRequest, AdapterError> {
        let width = request.width.unwrap_or(self.defaults.width);
        let height = request.height.unwrap_or(self.defaults.height);
        for (name, v) in [("width", width), ("height", height)] {
            if v == 0 || !v.is_multiple_of(8) {
                return Err(self.invalid(format!("{name} {v} is not a positive multiple of 8")));
            }
            if !(v as usize).is_multiple_of(self.vae_scale_factor) {
                return Err(self.invalid(format!(
                    "{name} {v} is not a multiple of the VAE factor {}",
                    self.vae_scale_factor
                )));
            }
            if v > 4096 {
                return Err(self.invalid(format!("{name} {v} is larger than 4096")));
            }
        }
        let steps = request.steps.unwrap_or(self.defaults.steps);
        if steps == 0 || steps > self.scheduler.num_train_timesteps {
            return Err(self.invalid(format!(
                "steps {steps} must be between 1 and {}",
                self.scheduler.num_train_timesteps
            )));
        }
        let guidance_scale = request
            .guidance_scale
            .unwrap_or(self.defaults.guidance_scale);
        if !guidance_scale.is_finite() {
            return Err(self.invalid("the guidance scale is not a finite number"));
        }
        let batch_count = request.batch_count.unwrap_or(1);
        if !(1..=64).contains(&batch_count) {
            return Err(self.invalid(format!("batch count {batch_count} is not in 1..=64")));
        }
        let strength = match (&request.init_image, request.strength) {
            (Some(_), s) => {
                let s = s.unwrap_or(0.8);
                if !(s > 0.0 && s <= 1.0) {
                    return Err(self.invalid(format!("strength {s} is not in (0, 1]")));
                }
                if self.vae_encoder.is_none() {
                    return Err(self.invalid("img2img needs vae_encoder/model.onnx in the export"));
                }
                Some(s)
            }
            (None, Some(_)) => {
                return Err(self.invalid("strength is given without an init image"));
            }
            (None, None) => None,
        };
        if let Some(key) = request.params.keys().next() {
            return Err(self.invalid(format!("unknown model parameter {key}")));
        }
        Ok(ResolvedRequest {
            model: self.model.clone(),
            prompt: request.prompt.clone(),
            negative_prompt: request.negative_prompt.clone(),
            width,
            height,
            steps,
            guidance_scale,
            scheduler: Some(request.scheduler.unwrap_or(self.default_kind)),
            seed: request.seed.unwrap_or_else(fresh_seed),
            batch_count,
            strength,
            params: request.params.clone(),
        })
    }

    /// Token ids padded to `max_length` with the pad token, as CLIPTokenizer does with
    /// `padding="max_length", truncation=True`.
    fn tokenize(&self, text: &str) -> Result<Vec<i64>, AdapterError> {
        let encoding = self
            .tokenizer
            .encode(text, true)
            .map_err(|e| self.invalid(format!("cannot tokenize the prompt: {e}")))?;
        let mut ids: Vec<i64> = encoding.get_ids().iter().map(|&i| i as i64).collect();
        ids.truncate(self.max_length);
        ids.resize(self.max_length, self.pad_id as i64);
        Ok(ids)
    }

    /// Runs the text encoder on `texts` in one batch: `[texts, max_length, hidden]`.
    fn encode_text(&self, texts: &[&str]) -> Result<ArrayD<f32>, AdapterError> {
        let mut ids = Vec::with_capacity(texts.len() * self.max_length);
        for t in texts {
            ids.extend(self.tokenize(t)?);
        }
        let ids = ArrayD::from_shape_vec(IxDyn(&[texts.len(), self.max_length]), ids)
            .map_err(|e| self.invalid(e.to_string()))?;
        // This project's exporter takes int64 ids; optimum's SD exports take int32.
        let ids = match self
            .text_encoder
            .info()
            .input("input_ids")
            .map(|i| &i.element_type)
        {
            Some(ElementType::I32) => Tensor::I32(ids.mapv(|v| v as i32)),
            _ => Tensor::I64(ids),
        };
        let out = self
            .text_encoder
            .run_blocking(Inputs::new().with("input_ids", ids))?;
        let hidden = out
            .get("last_hidden_state")
            .cloned()
            .ok_or_else(|| self.invalid("the text encoder has no last_hidden_state"))?;
        to_f32(hidden, &self.model)
    }

    /// The UNet on `sample` at timestep `t` for every row.
    fn run_unet(
        &self,
        sample: &ArrayD<f32>,
        t: f32,
        hidden: &ArrayD<f32>,
    ) -> Result<ArrayD<f32>, AdapterError> {
        let batch = sample.shape()[0];
        let shape: Vec<usize> = if self.timestep.rank == 0 {
            vec![]
        } else {
            vec![batch]
        };
        let n: usize = shape.iter().product();
        let timestep = match self.timestep.element_type {
            ElementType::F16 => Tensor::F16(
                ArrayD::from_shape_vec(IxDyn(&shape), vec![f16::from_f32(t); n])
                    .map_err(|e| self.invalid(e.to_string()))?,
            ),
            ElementType::I64 => Tensor::I64(
                ArrayD::from_shape_vec(IxDyn(&shape), vec![t.round() as i64; n])
                    .map_err(|e| self.invalid(e.to_string()))?,
            ),
            ElementType::I32 => Tensor::I32(
                ArrayD::from_shape_vec(IxDyn(&shape), vec![t.round() as i32; n])
                    .map_err(|e| self.invalid(e.to_string()))?,
            ),
            _ => Tensor::F32(
                ArrayD::from_shape_vec(IxDyn(&shape), vec![t; n])
                    .map_err(|e| self.invalid(e.to_string()))?,
            ),
        };
        let inputs = Inputs::new()
            .with("sample", as_input(&self.unet, "sample", sample))
            .with("timestep", timestep)
            .with(
                "encoder_hidden_states",
                as_input(&self.unet, "encoder_hidden_states", hidden),
            );
        let out = self.unet.run_blocking(inputs)?;
        let name = self.unet.info().outputs.first().map(|o| o.name.clone());
        let tensor = name
            .and_then(|n| out.get(&n).cloned())
            .ok_or_else(|| self.invalid("the UNet returned nothing"))?;
        to_f32(tensor, &self.model)
    }

    /// img2img's starting latents: the VAE posterior sampled with `noise`, scaled, repeated to
    /// the batch (diffusers' `prepare_latents` before `add_noise`).
    fn encode_image(
        &self,
        image: &RgbImage,
        width: u32,
        height: u32,
        batch: usize,
        noise: &mut dyn NoiseSource,
    ) -> Result<ArrayD<f32>, AdapterError> {
        let encoder = self
            .vae_encoder
            .as_ref()
            .ok_or_else(|| self.invalid("img2img needs vae_encoder/model.onnx in the export"))?;
        let image = image.resized(width, height);
        let (h, w) = (height as usize, width as usize);
        let mut pixels = ArrayD::<f32>::zeros(IxDyn(&[1, 3, h, w]));
        for y in 0..h {
            for x in 0..w {
                let p = image.pixel(x as u32, y as u32);
                for c in 0..3 {
                    pixels[[0, c, y, x]] = 2.0 * (p[c] as f32 / 255.0) - 1.0;
                }
            }
        }
        let input_name = encoder
            .info()
            .inputs
            .first()
            .map(|i| i.name.clone())
            .unwrap_or_else(|| "sample".into());
        let out = encoder.run_blocking(
            Inputs::new().with(input_name.clone(), as_input(encoder, &input_name, &pixels)),
        )?;
        let params = out
            .get("latent_parameters")
            .cloned()
            .ok_or_else(|| self.invalid("the VAE encoder has no latent_parameters output"))?;
        let params = to_f32(params, &self.model)?;
        let c = self.latent_channels;
        if params.shape().len() != 4 || params.shape()[1] != 2 * c {
            return Err(self.invalid(format!(
                "the VAE encoder returned {:?}, expected [1, {}, h, w]",
                params.shape(),
                2 * c
            )));
        }
        let mean = params.slice(s![.., 0..c, .., ..]).to_owned().into_dyn();
        let logvar = params.slice(s![.., c..2 * c, .., ..]).to_owned().into_dyn();
        let eps = noise.normal(mean.shape());
        let mut latent = mean.clone();
        ndarray::Zip::from(&mut latent)
            .and(&logvar)
            .and(&eps)
            .for_each(|m, &lv, &e| {
                let std = (0.5 * lv.clamp(-30.0, 20.0)).exp();
                *m += std * e;
            });
        let scale = self.scaling_factor;
        latent.mapv_inplace(|v| scale * v);
        let views: Vec<_> = (0..batch).map(|_| latent.view()).collect();
        ndarray::concatenate(Axis(0), &views).map_err(|e| self.invalid(e.to_string()))
    }

    /// Generates with noise from `noise` (a [`SeededNoise`] for `generate`, a recording in
    /// parity tests).
    pub fn generate_with_noise(
        &self,
        request: &ImageRequest,
        noise: &mut dyn NoiseSource,
        progress: &mut dyn FnMut(Progress) -> Control,
    ) -> Result<Generation, AdapterError> {
        let started = Instant::now();
        let resolved = self.resolve(request)?;
        let kind = resolved.scheduler.unwrap_or(self.default_kind);
        let mut scheduler = self
            .scheduler
            .build(kind, resolved.steps)
            .map_err(|e| self.invalid(e.to_string()))?;
        let batch = resolved.batch_count;
        let cfg = resolved.guidance_scale > 1.0;

        // Text: one encoder call for the unconditional and conditional rows.
        let t0 = Instant::now();
        let negative = resolved.negative_prompt.as_deref().unwrap_or("");
        let hidden = if cfg {
            let both = self.encode_text(&[negative, &resolved.prompt])?;
            let rows: Vec<_> = (0..batch)
                .map(|_| both.slice(s![0..1, .., ..]))
                .chain((0..batch).map(|_| both.slice(s![1..2, .., ..])))
                .collect();
            ndarray::concatenate(Axis(0), &rows)
                .map_err(|e| self.invalid(e.to_string()))?
                .into_dyn()
        } else {
            let one = self.encode_text(&[&resolved.prompt])?;
            let rows: Vec<_> = (0..batch).map(|_| one.slice(s![0..1, .., ..])).collect();
            ndarray::concatenate(Axis(0), &rows)
                .map_err(|e| self.invalid(e.to_string()))?
                .into_dyn()
        };
        let text_time = t0.elapsed();

        // Starting latents.
        let f = self.vae_scale_factor;
        let shape = [
            batch,
            self.latent_channels,
            resolved.height as usize / f,
            resolved.width as usize / f,
        ];
        let timesteps = scheduler.timesteps().to_vec();
        let mut vae_time = std::time::Duration::ZERO;
        let (start, mut latents) = match (&request.init_image, resolved.strength) {
            (Some(image), Some(strength)) => {
                let n = resolved.steps;
                let init_timestep = ((n as f32 * strength) as usize).min(n);
                let start = n - init_timestep;
                if start >= timesteps.len() {
                    return Err(self.invalid(format!(
                        "strength {strength} with {n} steps leaves no step to run"
                    )));
                }
                let tv = Instant::now();
                let init =
                    self.encode_image(image, resolved.width, resolved.height, batch, noise)?;
                vae_time += tv.elapsed();
                let added = noise.normal(&shape);
                (start, scheduler.add_noise(&init, &added, start))
            }
            _ => {
                let sigma = scheduler.init_noise_sigma();
                let mut latents = noise.normal(&shape);
                latents.mapv_inplace(|v| v * sigma);
                (0, latents)
            }
        };

        // The denoising loop.
        let td = Instant::now();
        let total = timesteps.len() - start;
        let g = resolved.guidance_scale;
        for (i, &t) in timesteps.iter().enumerate().skip(start) {
            let step = Progress {
                step: i - start,
                total,
                timestep: t,
            };
            if progress(step) == Control::Cancel {
                return Err(AdapterError::Cancelled {
                    model: self.model.clone(),
                });
            }
            let input = if cfg {
                ndarray::concatenate(Axis(0), &[latents.view(), latents.view()])
                    .map_err(|e| self.invalid(e.to_string()))?
            } else {
                latents.clone()
            };
            let input = scheduler.scale_model_input(&input, i);
            let out = self.run_unet(&input, t, &hidden)?;
            let prediction: Latents = if cfg {
                let uncond = out.slice_axis(Axis(0), (0..batch).into());
                let text = out.slice_axis(Axis(0), (batch..2 * batch).into());
                let mut p = uncond.to_owned();
                ndarray::Zip::from(&mut p)
                    .and(&text)
                    .for_each(|u, &c| *u = *u + g * (c - *u));
                p
            } else {
                out
            };
            latents = scheduler.step(&prediction, i, &latents, noise);
        }
        let denoise_time = td.elapsed();

        // Decode.
        let tv = Instant::now();
        let scale = self.scaling_factor;
        let scaled = latents.mapv(|v| v / scale);
        let input_name = self
            .vae_decoder
            .info()
            .inputs
            .first()
            .map(|i| i.name.clone())
            .unwrap_or_else(|| "latent_sample".into());
        let out = self.vae_decoder.run_blocking(Inputs::new().with(
            input_name.clone(),
            as_input(&self.vae_decoder, &input_name, &scaled),
        ))?;
        let sample = out
            .get("sample")
            .cloned()
            .ok_or_else(|| self.invalid("the VAE decoder has no `sample` output"))?;
        let sample = to_f32(sample, &self.model)?;
        vae_time += tv.elapsed();
        let decoded = sample
            .mapv(|v| (v * 0.5 + 0.5).clamp(0.0, 1.0))
            .permuted_axes(IxDyn(&[0, 2, 3, 1]))
            .as_standard_layout()
            .to_owned();
        let images = to_images(&decoded);
        let seed = resolved.seed;
        Ok(Generation {
            output: GeneratedImages {
                images,
                seed,
                request: resolved,
                timings: Timings {
                    text_encoder: text_time,
                    denoise: denoise_time,
                    vae: vae_time,
                    total: started.elapsed(),
                },
            },
            decoded,
            latents,
        })
    }
}

impl TextToImage for StableDiffusion {
    fn defaults(&self) -> ImageDefaults {
        self.defaults.clone()
    }

    fn generate(
        &self,
        request: &ImageRequest,
        progress: &mut dyn FnMut(Progress) -> Control,
    ) -> Result<GeneratedImages, AdapterError> {
        let seed = request.seed.unwrap_or_else(fresh_seed);
        let mut request = request.clone();
        request.seed = Some(seed);
        let mut noise = SeededNoise::new(seed);
        Ok(self
            .generate_with_noise(&request, &mut noise, progress)?
            .output)
    }
}

/// `[batch, h, w, 3]` floats in [0, 1] to RGB8 images, rounding half to even like numpy's
/// `(x * 255).round()`.
pub(crate) fn to_images(decoded: &ArrayD<f32>) -> Vec<RgbImage> {
    let shape = decoded.shape();
    let (b, h, w) = (shape[0], shape[1], shape[2]);
    (0..b)
        .map(|i| {
            let pixels: Vec<u8> = decoded
                .index_axis(Axis(0), i)
                .iter()
                .map(|&v| (v * 255.0).round_ties_even().clamp(0.0, 255.0) as u8)
                .collect();
            RgbImage {
                width: w as u32,
                height: h as u32,
                pixels,
            }
        })
        .collect()
}

/// `array` as the element type the session declares for `input` (float16 exports take f16).
fn as_input(pool: &SessionPool, input: &str, array: &ArrayD<f32>) -> Tensor {
    match pool.info().input(input).map(|i| &i.element_type) {
        Some(ElementType::F16) => Tensor::F16(array.mapv(f16::from_f32)),
        _ => Tensor::F32(array.clone()),
    }
}

/// A float output as `f32`.
fn to_f32(tensor: Tensor, model: &str) -> Result<ArrayD<f32>, AdapterError> {
    match tensor {
        Tensor::F32(a) => Ok(a),
        Tensor::F16(a) => Ok(a.mapv(f16::to_f32)),
        other => Err(AdapterError::InvalidRequest {
            model: model.to_owned(),
            reason: format!("expected a float output, got {}", other.element_type()),
        }),
    }
}

fn read_json(model: &str, path: &Path) -> Result<serde_json::Value, AdapterError> {
    let text = std::fs::read_to_string(path).map_err(|e| AdapterError::BadFile {
        model: model.to_owned(),
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    serde_json::from_str(&text).map_err(|e| AdapterError::BadFile {
        model: model.to_owned(),
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}
