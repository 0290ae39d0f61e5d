//! The terrain model (`terrain-diffusion`): the consistency UNet of `adaptive-terrain-diffusion`
//! run as the package's `TerrainGenerator` runs it, producing heightmaps.
//!
//! The model denoises in one step: `denoised = f(noise · σ_max, σ_max, difficulty)` in a model
//! space [-1, 1] that maps to heights through an asinh curve. With more than one step the
//! pipeline uses multistep consistency sampling (Song et al. 2023, Algorithm 1): re-noise the
//! estimate to a lower σ and denoise again; the package itself only offers one step, so only
//! one step is compared with it. It is not text-conditioned: the prompt is ignored and the
//! condition is the `difficulty` parameter (a label in [0, 1], or the package's levels with
//! `level` in 1..=100). Sampling constants come from the export manifest.

use std::time::Instant;

use ndarray::{Array1, ArrayD, Axis, IxDyn};

use modelmux_runtime_ort::{Inputs, SessionPool, Tensor};

use super::image::RgbImage;
use super::noise::{NoiseSource, SeededNoise};
use super::{
    Control, GeneratedImages, ImageDefaults, ImageRequest, Progress, ResolvedRequest, TextToImage,
    Timings, fresh_seed,
};
use crate::context::LoadContext;
use crate::error::AdapterError;

/// The package's sampling constants, read from the manifest's `extra`.
#[derive(Debug, Clone, PartialEq)]
pub struct TerrainConstants {
    pub native_size: usize,
    pub num_classes: u32,
    pub sigma_min: f64,
    pub sigma_max: f64,
    pub height_range: f64,
    pub asinh_scale: f64,
}

/// A loaded terrain model.
#[derive(Debug)]
pub struct TerrainDiffusion {
    model: String,
    pool: SessionPool,
    constants: TerrainConstants,
    default_difficulty: f32,
}

/// One generation: the images and the heightmaps they render.
#[derive(Debug, Clone)]
pub struct TerrainGeneration {
    pub output: GeneratedImages,
    /// Heights in metres, `[batch, size, size]`, each terrain's floor at 0 (the package's
    /// `zero_floor=True`).
    pub heights: ArrayD<f32>,
}

impl TerrainDiffusion {
    /// Loads `model.onnx` and the constants of the export.
    pub fn load(ctx: &LoadContext<'_>) -> Result<Self, AdapterError> {
        let model = ctx.model();
        let manifest_path = ctx.file("manifest.json")?;
        let text = std::fs::read_to_string(&manifest_path).map_err(|e| AdapterError::BadFile {
            model: model.clone(),
            path: manifest_path.clone(),
            reason: e.to_string(),
        })?;
        let manifest: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| AdapterError::BadFile {
                model: model.clone(),
                path: manifest_path.clone(),
                reason: e.to_string(),
            })?;
        let extra = &manifest["extra"];
        let number = |key: &str| {
            extra
                .get(key)
                .and_then(serde_json::Value::as_f64)
                .ok_or_else(|| AdapterError::Config {
                    model: model.clone(),
                    reason: format!("the manifest's extra.{key} is missing (re-export the model)"),
                })
        };
        let constants = TerrainConstants {
            native_size: number("native_size")? as usize,
            num_classes: number("num_classes")? as u32,
            sigma_min: number("sigma_min")?,
            sigma_max: number("sigma_max")?,
            height_range: number("height_range")?,
            asinh_scale: number("asinh_scale")?,
        };
        let default_difficulty = ctx
            .spec
            .params
            .extra
            .get("difficulty")
            .and_then(serde_json::Value::as_f64)
            .unwrap_or(0.5) as f32;
        let pool = ctx.pool("model.onnx", false)?;
        Ok(Self {
            model,
            pool,
            constants,
            default_difficulty,
        })
    }

    /// Shuts the session down.
    pub fn shutdown(&self) {
        self.pool.shutdown();
    }

    /// The sampling constants.
    pub fn constants(&self) -> &TerrainConstants {
        &self.constants
    }

    fn invalid(&self, reason: impl Into<String>) -> AdapterError {
        AdapterError::InvalidRequest {
            model: self.model.clone(),
            reason: reason.into(),
        }
    }

    /// The difficulty label in [0, 1] from `difficulty` (a label) or `level` (1..=100).
    fn label(&self, request: &ImageRequest) -> Result<f32, AdapterError> {
        for key in request.params.keys() {
            if key != "difficulty" && key != "level" {
                return Err(self.invalid(format!(
                    "unknown parameter {key} (the terrain model takes difficulty or level)"
                )));
            }
        }
        match (
            request.params.get("difficulty"),
            request.params.get("level"),
        ) {
            (Some(_), Some(_)) => Err(self.invalid("give difficulty or level, not both")),
            (Some(&d), None) if (0.0..=1.0).contains(&d) => Ok(d as f32),
            (Some(d), None) => Err(self.invalid(format!("difficulty {d} is not in [0, 1]"))),
            (None, Some(&level)) => {
                let max = self.constants.num_classes as f64;
                if level.fract() != 0.0 || !(1.0..=max).contains(&level) {
                    return Err(
                        self.invalid(format!("level {level} is not a whole number in 1..={max}"))
                    );
                }
                Ok(((level - 1.0) / (max - 1.0)) as f32)
            }
            (None, None) => Ok(self.default_difficulty),
        }
    }

    /// The noise levels of an `steps`-step sampling: σ_max first, then Karras-spaced (ρ = 7)
    /// levels towards σ_min.
    fn sigmas(&self, steps: usize) -> Vec<f32> {
        let (lo, hi) = (self.constants.sigma_min, self.constants.sigma_max);
        let rho = 7.0;
        (0..steps)
            .map(|i| {
                let t = i as f64 / steps as f64;
                let s = hi.powf(1.0 / rho) + t * (lo.powf(1.0 / rho) - hi.powf(1.0 / rho));
                s.powf(rho) as f32
            })
            .collect()
    }

    fn denoise(
        &self,
        noisy: &ArrayD<f32>,
        sigma: f32,
        label: f32,
    ) -> Result<ArrayD<f32>, AdapterError> {
        let batch = noisy.shape()[0];
        let inputs = Inputs::new()
            .with("noisy", Tensor::F32(noisy.clone()))
            .with(
                "sigma",
                Tensor::F32(Array1::from_elem(batch, sigma).into_dyn()),
            )
            .with(
                "difficulty",
                Tensor::F32(Array1::from_elem(batch, label).into_dyn()),
            );
        let mut out = self.pool.run_blocking(inputs)?;
        Ok(out.take::<f32>("denoised")?)
    }

    /// Model space [-1, 1] → heights, as the package's `_from_model_space` computes them (the
    /// curve in `f64`, as numpy promotes it), then each terrain's floor moved to 0.
    fn heights(&self, values: &ArrayD<f32>) -> ArrayD<f32> {
        let c = &self.constants;
        let normalizer = (c.height_range / c.asinh_scale).asinh();
        let mut heights = values.mapv(|v| {
            let unit = ((v + 1.0) * 0.5).clamp(0.0, 1.0);
            let h = c.asinh_scale * (unit as f64 * normalizer).sinh();
            h.clamp(0.0, c.height_range) as f32
        });
        for mut terrain in heights.axis_iter_mut(Axis(0)) {
            let floor = terrain.iter().copied().fold(f32::INFINITY, f32::min);
            terrain.mapv_inplace(|h| h - floor);
        }
        heights
    }

    /// Generates with noise from `noise` (seeded in `generate`, recorded in parity tests).
    pub fn generate_with_noise(
        &self,
        request: &ImageRequest,
        noise: &mut dyn NoiseSource,
        progress: &mut dyn FnMut(Progress) -> Control,
    ) -> Result<TerrainGeneration, AdapterError> {
        let started = Instant::now();
        let size = self.constants.native_size;
        let width = request.width.unwrap_or(size as u32);
        let height = request.height.unwrap_or(size as u32);
        if width as usize != size || height as usize != size {
            return Err(self.invalid(format!(
                "{width}×{height}: the terrain model generates {size}×{size} heightmaps"
            )));
        }
        if request.init_image.is_some() || request.strength.is_some() {
            return Err(self.invalid("the terrain model does not take an init image"));
        }
        let steps = request.steps.unwrap_or(1);
        if !(1..=64).contains(&steps) {
            return Err(self.invalid(format!("steps {steps} is not in 1..=64")));
        }
        let batch = request.batch_count.unwrap_or(1);
        if !(1..=64).contains(&batch) {
            return Err(self.invalid(format!("batch count {batch} is not in 1..=64")));
        }
        let label = self.label(request)?;
        let shape = [batch, 1, size, size];
        let sigmas = self.sigmas(steps);
        let td = Instant::now();
        let mut estimate = ArrayD::<f32>::zeros(IxDyn(&shape));
        for (i, &sigma) in sigmas.iter().enumerate() {
            if progress(Progress {
                step: i,
                total: steps,
                timestep: sigma,
            }) == Control::Cancel
            {
                return Err(AdapterError::Cancelled {
                    model: self.model.clone(),
                });
            }
            let z = noise.normal(&shape);
            let noisy = if i == 0 {
                // The package: `noise * float32(sigma_max)`.
                z.mapv(|v| v * sigma)
            } else {
                let min = self.constants.sigma_min as f32;
                let scale = (sigma * sigma - min * min).max(0.0).sqrt();
                let mut x = estimate.clone();
                ndarray::Zip::from(&mut x)
                    .and(&z)
                    .for_each(|x, &z| *x += scale * z);
                x
            };
            estimate = self.denoise(&noisy, sigma, label)?;
        }
        let denoise_time = td.elapsed();
        let heights = self.heights(&estimate.index_axis(Axis(1), 0).to_owned().into_dyn());
        let images = render(&heights, self.constants.height_range as f32);
        let seed = request.seed.unwrap_or(0);
        let mut params = request.params.clone();
        params.insert("difficulty".into(), label as f64);
        params.remove("level");
        Ok(TerrainGeneration {
            output: GeneratedImages {
                images,
                seed,
                request: ResolvedRequest {
                    model: self.model.clone(),
                    prompt: request.prompt.clone(),
                    negative_prompt: None,
                    width,
                    height,
                    steps,
                    guidance_scale: 1.0,
                    scheduler: None,
                    seed,
                    batch_count: batch,
                    strength: None,
                    params,
                },
                timings: Timings {
                    text_encoder: std::time::Duration::ZERO,
                    denoise: denoise_time,
                    vae: std::time::Duration::ZERO,
                    total: started.elapsed(),
                },
            },
            heights,
        })
    }
}

/// Heightmaps as grey images: 0 m is black, the model's full height range is white, so images of
/// different terrains compare.
fn render(heights: &ArrayD<f32>, range: f32) -> Vec<RgbImage> {
    heights
        .axis_iter(Axis(0))
        .map(|terrain| {
            let (h, w) = (terrain.shape()[0], terrain.shape()[1]);
            let mut pixels = Vec::with_capacity(h * w * 3);
            for &v in terrain.iter() {
                let g = ((v / range).clamp(0.0, 1.0) * 255.0).round() as u8;
                pixels.extend_from_slice(&[g, g, g]);
            }
            RgbImage {
                width: w as u32,
                height: h as u32,
                pixels,
            }
        })
        .collect()
}

impl TextToImage for TerrainDiffusion {
    fn defaults(&self) -> ImageDefaults {
        ImageDefaults {
            width: self.constants.native_size as u32,
            height: self.constants.native_size as u32,
            steps: 1,
            guidance_scale: 1.0,
            scheduler: None,
            text_conditioned: false,
        }
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
