//! Diffusion schedulers with diffusers' numerics: DDIM, PNDM (PLMS), Euler, Euler ancestral and
//! DPM-Solver++ (2M).
//!
//! Each scheduler follows the matching `diffusers` class (0.42) operation by operation: the noise
//! schedule and per-step coefficients are computed in `f32` in the order torch computes its 0-d
//! tensors, the timestep grids in `f64` as numpy computes them (including numpy's round-half-to-even
//! and `np.interp`), and each update applies its coefficients to the latents in the same order, so
//! a 50-step run stays within a few `f32` ulps of diffusers (the tests hold it to 1e-5).
//!
//! A scheduler is driven by step index rather than by timestep value: `timesteps()[i]` is what the
//! denoiser sees at step `i`, and `step(…, i, …)` advances from it. Schedulers that draw noise
//! (Euler ancestral, DDIM with η > 0) take it from a [`NoiseSource`], so a seeded run is
//! reproducible and a parity test can replay another implementation's draws.

use std::fmt;

use ndarray::{ArrayD, Zip};
use serde::{Deserialize, Serialize};

use super::noise::NoiseSource;

/// The latents a scheduler works on (any shape; `[batch, channels, height, width]` in practice).
pub type Latents = ArrayD<f32>;

/// Which sampler: the catalog's scheduler kinds (`params.scheduler.kind`), one type for both.
pub use modelmux_registry::SchedulerKind;

/// Every scheduler kind, in a stable order.
pub const SCHEDULER_KINDS: [SchedulerKind; 5] = [
    SchedulerKind::Ddim,
    SchedulerKind::Pndm,
    SchedulerKind::Euler,
    SchedulerKind::EulerAncestral,
    SchedulerKind::DpmSolverMultistep,
];

/// The name used in requests, PNG metadata and the catalog (`euler-ancestral`, …).
pub fn scheduler_name(kind: SchedulerKind) -> &'static str {
    match kind {
        SchedulerKind::Ddim => "ddim",
        SchedulerKind::Pndm => "pndm",
        SchedulerKind::Euler => "euler",
        SchedulerKind::EulerAncestral => "euler-ancestral",
        SchedulerKind::DpmSolverMultistep => "dpm-solver-multistep",
    }
}

/// A scheduler kind from its name, a common alias (`euler-a`, `dpm++`, `plms`) or its diffusers
/// class name.
pub fn parse_scheduler(name: &str) -> Result<SchedulerKind, SchedulerError> {
    let key = name.to_ascii_lowercase().replace(['_', ' '], "-");
    Ok(match key.as_str() {
        "ddim" | "ddimscheduler" => SchedulerKind::Ddim,
        "pndm" | "plms" | "pndmscheduler" => SchedulerKind::Pndm,
        "euler" | "eulerdiscretescheduler" => SchedulerKind::Euler,
        "euler-a" | "euler-ancestral" | "eulerancestraldiscretescheduler" => {
            SchedulerKind::EulerAncestral
        }
        "dpm"
        | "dpm++"
        | "dpm++-2m"
        | "dpmpp-2m"
        | "dpm-solver"
        | "dpm-solver++"
        | "dpm-solver-multistep"
        | "dpmsolvermultistepscheduler" => SchedulerKind::DpmSolverMultistep,
        _ => {
            return Err(SchedulerError::UnknownKind(format!(
                "{name} (known: ddim, pndm, euler, euler-ancestral, dpm-solver-multistep)"
            )));
        }
    })
}

/// The class's default `timestep_spacing`, used when a config does not name one (the SD 1.5
/// and 2.x hub configs predate the key, which is why the same config gives DDIM "leading" and
/// Euler "linspace" steps in diffusers).
pub fn default_spacing(kind: SchedulerKind) -> TimestepSpacing {
    match kind {
        SchedulerKind::Ddim | SchedulerKind::Pndm => TimestepSpacing::Leading,
        SchedulerKind::Euler
        | SchedulerKind::EulerAncestral
        | SchedulerKind::DpmSolverMultistep => TimestepSpacing::Linspace,
    }
}

/// What the denoiser predicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PredictionType {
    /// The added noise ε (SD 1.x, SD 2 base).
    #[default]
    Epsilon,
    /// v = √ᾱ·ε − √(1−ᾱ)·x₀ (SD 2.x 768).
    VPrediction,
}

/// How the inference timesteps are spread over the training timesteps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimestepSpacing {
    /// `arange(N) * (T // N) + steps_offset`, reversed.
    Leading,
    /// `round(arange(T, 0, -T / N)) - 1`.
    Trailing,
    /// `linspace(0, T - 1, N)` (rounded for the integer schedulers), reversed.
    Linspace,
}

/// How β grows over the training timesteps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BetaSchedule {
    /// `linspace(β0, β1, T)`.
    Linear,
    /// `linspace(√β0, √β1, T)²` (Stable Diffusion).
    #[default]
    ScaledLinear,
}

/// A scheduler configuration: the fields of diffusers' `scheduler_config.json` that matter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SchedulerConfig {
    pub num_train_timesteps: usize,
    pub beta_start: f64,
    pub beta_end: f64,
    pub beta_schedule: BetaSchedule,
    pub prediction_type: PredictionType,
    /// `None` means "the class's default" ([`SchedulerKind::default_spacing`]), as in diffusers.
    pub timestep_spacing: Option<TimestepSpacing>,
    pub steps_offset: usize,
    /// DDIM and PNDM: ᾱ before the first training step is 1 (true) or ᾱ[0] (false).
    pub set_alpha_to_one: bool,
    /// DDIM: clamp the predicted x₀ to [-1, 1].
    pub clip_sample: bool,
    /// DDIM: η (0 is deterministic DDIM, 1 is DDPM-like).
    pub eta: f32,
}

impl SchedulerConfig {
    /// Stable Diffusion 1.5's `scheduler_config.json` (no `timestep_spacing` key: each class
    /// uses its default, as `from_config` does in diffusers).
    pub fn sd15() -> Self {
        Self {
            num_train_timesteps: 1000,
            beta_start: 0.00085,
            beta_end: 0.012,
            beta_schedule: BetaSchedule::ScaledLinear,
            prediction_type: PredictionType::Epsilon,
            timestep_spacing: None,
            steps_offset: 1,
            set_alpha_to_one: false,
            clip_sample: false,
            eta: 0.0,
        }
    }

    /// Stable Diffusion 2.x (768, v-prediction): SD 1.5's schedule with `prediction_type`
    /// `v_prediction`. SD 2 base (512) is [`SchedulerConfig::sd15`].
    pub fn sd2() -> Self {
        Self {
            prediction_type: PredictionType::VPrediction,
            ..Self::sd15()
        }
    }

    /// Reads diffusers' `scheduler_config.json` (unknown keys are ignored, missing ones take the
    /// SD 1.5 values, except `timestep_spacing`, which stays "class default").
    pub fn from_diffusers_json(json: &serde_json::Value) -> Result<Self, SchedulerError> {
        let mut config = Self::sd15();
        let bad = |key: &str, v: &serde_json::Value| {
            SchedulerError::BadConfig(format!("{key} = {v} is not supported"))
        };
        if let Some(v) = json.get("num_train_timesteps").filter(|v| !v.is_null()) {
            config.num_train_timesteps =
                v.as_u64().ok_or_else(|| bad("num_train_timesteps", v))? as usize;
        }
        if let Some(v) = json.get("beta_start").filter(|v| !v.is_null()) {
            config.beta_start = v.as_f64().ok_or_else(|| bad("beta_start", v))?;
        }
        if let Some(v) = json.get("beta_end").filter(|v| !v.is_null()) {
            config.beta_end = v.as_f64().ok_or_else(|| bad("beta_end", v))?;
        }
        if let Some(v) = json.get("beta_schedule").filter(|v| !v.is_null()) {
            config.beta_schedule = match v.as_str() {
                Some("linear") => BetaSchedule::Linear,
                Some("scaled_linear") => BetaSchedule::ScaledLinear,
                _ => return Err(bad("beta_schedule", v)),
            };
        }
        if let Some(v) = json.get("trained_betas").filter(|v| !v.is_null()) {
            return Err(bad("trained_betas", v));
        }
        if let Some(v) = json.get("prediction_type").filter(|v| !v.is_null()) {
            config.prediction_type = match v.as_str() {
                Some("epsilon") => PredictionType::Epsilon,
                Some("v_prediction") => PredictionType::VPrediction,
                _ => return Err(bad("prediction_type", v)),
            };
        }
        if let Some(v) = json.get("timestep_spacing").filter(|v| !v.is_null()) {
            config.timestep_spacing = Some(match v.as_str() {
                Some("leading") => TimestepSpacing::Leading,
                Some("trailing") => TimestepSpacing::Trailing,
                Some("linspace") => TimestepSpacing::Linspace,
                _ => return Err(bad("timestep_spacing", v)),
            });
        }
        if let Some(v) = json.get("steps_offset").filter(|v| !v.is_null()) {
            config.steps_offset = v.as_u64().ok_or_else(|| bad("steps_offset", v))? as usize;
        }
        if let Some(v) = json.get("set_alpha_to_one").filter(|v| !v.is_null()) {
            config.set_alpha_to_one = v.as_bool().ok_or_else(|| bad("set_alpha_to_one", v))?;
        }
        if let Some(v) = json.get("clip_sample").filter(|v| !v.is_null()) {
            config.clip_sample = v.as_bool().ok_or_else(|| bad("clip_sample", v))?;
        }
        Ok(config)
    }

    /// The spacing `kind` resolves to under this config.
    pub fn spacing_for(&self, kind: SchedulerKind) -> TimestepSpacing {
        self.timestep_spacing
            .unwrap_or_else(|| default_spacing(kind))
    }

    /// A `kind` scheduler set for `steps` inference steps.
    pub fn build(
        &self,
        kind: SchedulerKind,
        steps: usize,
    ) -> Result<Box<dyn Scheduler>, SchedulerError> {
        if steps == 0 || steps > self.num_train_timesteps {
            return Err(SchedulerError::Steps {
                steps,
                max: self.num_train_timesteps,
            });
        }
        if !(self.beta_start > 0.0 && self.beta_end >= self.beta_start && self.beta_end < 1.0) {
            return Err(SchedulerError::BadConfig(format!(
                "betas {}..{} are not an increasing range in (0, 1)",
                self.beta_start, self.beta_end
            )));
        }
        let schedule = NoiseSchedule::new(self);
        let spacing = self.spacing_for(kind);
        Ok(match kind {
            SchedulerKind::Ddim => Box::new(Ddim::new(self, schedule, spacing, steps)),
            SchedulerKind::Pndm => Box::new(Pndm::new(self, schedule, spacing, steps)),
            SchedulerKind::Euler => Box::new(Euler::new(self, schedule, spacing, steps, false)),
            SchedulerKind::EulerAncestral => {
                Box::new(Euler::new(self, schedule, spacing, steps, true))
            }
            SchedulerKind::DpmSolverMultistep => {
                Box::new(DpmSolver::new(self, schedule, spacing, steps))
            }
        })
    }
}

/// A scheduler that cannot be built.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SchedulerError {
    #[error("unknown scheduler {0}")]
    UnknownKind(String),
    #[error("{steps} inference steps: must be between 1 and {max}")]
    Steps { steps: usize, max: usize },
    #[error("scheduler config: {0}")]
    BadConfig(String),
}

/// One sampler, set for a number of inference steps.
pub trait Scheduler: Send + Sync + fmt::Debug {
    /// Which sampler this is.
    fn kind(&self) -> SchedulerKind;

    /// The timestep the denoiser sees at each step (PNDM repeats one: N + 1 entries).
    fn timesteps(&self) -> &[f32];

    /// The standard deviation to give the initial noise.
    fn init_noise_sigma(&self) -> f32 {
        1.0
    }

    /// The denoiser's input at step `index` (the identity except for the Euler samplers).
    fn scale_model_input(&self, sample: &Latents, _index: usize) -> Latents {
        sample.clone()
    }

    /// Advances `sample` from step `index` given the denoiser's output there.
    fn step(
        &mut self,
        model_output: &Latents,
        index: usize,
        sample: &Latents,
        noise: &mut dyn NoiseSource,
    ) -> Latents;

    /// `original` noised to the level of step `index` (img2img's starting point).
    fn add_noise(&self, original: &Latents, noise: &Latents, index: usize) -> Latents;
}

/// β, ᾱ and σ over the training timesteps, in `f32` like torch's buffers.
#[derive(Debug, Clone)]
struct NoiseSchedule {
    alphas_cumprod: Vec<f32>,
    train_steps: usize,
}

impl NoiseSchedule {
    fn new(config: &SchedulerConfig) -> Self {
        let t = config.num_train_timesteps;
        let betas: Vec<f32> = match config.beta_schedule {
            BetaSchedule::Linear => {
                torch_linspace_f32(config.beta_start as f32, config.beta_end as f32, t)
            }
            BetaSchedule::ScaledLinear => torch_linspace_f32(
                config.beta_start.sqrt() as f32,
                config.beta_end.sqrt() as f32,
                t,
            )
            .into_iter()
            .map(|b| b * b)
            .collect(),
        };
        // torch's CPU cumprod accumulates float32 inputs in float64 (`acc_type`) and rounds each
        // partial product to float32; a float32 running product drifts by 6e-5 relative by t=999.
        let mut alphas_cumprod = Vec::with_capacity(t);
        let mut product = 1.0f64;
        for beta in &betas {
            product *= (1.0 - beta) as f64;
            alphas_cumprod.push(product as f32);
        }
        Self {
            alphas_cumprod,
            train_steps: t,
        }
    }

    /// ᾱ at training timestep `t`, or `final_alpha` before the first one (`t < 0`).
    fn alpha_at(&self, final_alpha: f32, t: i64) -> f32 {
        if t >= 0 {
            self.alphas_cumprod[(t as usize).min(self.train_steps - 1)]
        } else {
            final_alpha
        }
    }

    /// σ_t = √((1 − ᾱ_t)/ᾱ_t) for every training timestep, in `f32`.
    fn sigmas(&self) -> Vec<f32> {
        self.alphas_cumprod
            .iter()
            .map(|&a| ((1.0 - a) / a).sqrt())
            .collect()
    }
}

/// `torch.linspace(start, end, steps, dtype=float32)` on the CPU: the first half counts up from
/// `start`, the second half down from `end`, with the step computed in `f32`. torch's kernel is
/// compiled with floating-point contraction, so `start + step * i` is one fused multiply-add;
/// `mul_add` reproduces it exactly (a separate multiply and add differs in 145 of SD's 1000 β).
fn torch_linspace_f32(start: f32, end: f32, steps: usize) -> Vec<f32> {
    if steps == 1 {
        return vec![start];
    }
    let step = (end - start) / (steps - 1) as f32;
    let halfway = steps / 2;
    (0..steps)
        .map(|i| {
            if i < halfway {
                step.mul_add(i as f32, start)
            } else {
                (-step).mul_add((steps - i - 1) as f32, end)
            }
        })
        .collect()
}

/// `np.linspace(start, stop, num)` in `f64` (the last value is `stop` exactly).
fn np_linspace(start: f64, stop: f64, num: usize) -> Vec<f64> {
    if num == 1 {
        return vec![start];
    }
    let step = (stop - start) / (num - 1) as f64;
    let mut v: Vec<f64> = (0..num).map(|i| i as f64 * step + start).collect();
    v[num - 1] = stop;
    v
}

/// `np.interp(x, arange(len(fp)), fp)` for one `x`, in `f64` like numpy.
fn np_interp(x: f64, fp: &[f32]) -> f64 {
    let last = fp.len() - 1;
    if x <= 0.0 {
        return fp[0] as f64;
    }
    if x >= last as f64 {
        return fp[last] as f64;
    }
    let j = x.floor() as usize;
    if j as f64 == x {
        return fp[j] as f64;
    }
    let slope = (fp[j + 1] as f64 - fp[j] as f64) / 1.0;
    slope * (x - j as f64) + fp[j] as f64
}

/// The integer timesteps DDIM and the multistep solvers use, as `i64` like numpy's casts.
fn integer_timesteps(
    spacing: TimestepSpacing,
    train: usize,
    steps: usize,
    offset: usize,
) -> Vec<i64> {
    match spacing {
        TimestepSpacing::Linspace => np_linspace(0.0, (train - 1) as f64, steps)
            .into_iter()
            .rev()
            .map(|t| t.round_ties_even() as i64)
            .collect(),
        TimestepSpacing::Leading => {
            let ratio = train / steps;
            (0..steps)
                .rev()
                .map(|i| (i * ratio + offset) as i64)
                .collect()
        }
        TimestepSpacing::Trailing => np_arange_down(train as f64, train as f64 / steps as f64)
            .into_iter()
            .map(|t| t.round_ties_even() as i64 - 1)
            .collect(),
    }
}

/// `np.arange(start, 0, -step)` for a float step: `start - i·step` while positive.
fn np_arange_down(start: f64, step: f64) -> Vec<f64> {
    let len = (start / step).ceil() as usize;
    (0..len).map(|i| start + i as f64 * -step).collect()
}

/// Applies `f` elementwise over two arrays of the same shape.
fn zip2(a: &Latents, b: &Latents, f: impl Fn(f32, f32) -> f32 + Sync + Send) -> Latents {
    let mut out = a.clone();
    Zip::from(&mut out).and(b).for_each(|o, &y| *o = f(*o, y));
    out
}

/// Deterministic DDIM (η = 0) or with η-scaled noise.
#[derive(Debug, Clone)]
struct Ddim {
    schedule: NoiseSchedule,
    timesteps: Vec<f32>,
    int_timesteps: Vec<i64>,
    inference_steps: usize,
    final_alpha_cumprod: f32,
    prediction: PredictionType,
    clip_sample: bool,
    eta: f32,
}

impl Ddim {
    fn new(
        config: &SchedulerConfig,
        schedule: NoiseSchedule,
        spacing: TimestepSpacing,
        steps: usize,
    ) -> Self {
        let int_timesteps =
            integer_timesteps(spacing, schedule.train_steps, steps, config.steps_offset);
        let final_alpha_cumprod = if config.set_alpha_to_one {
            1.0
        } else {
            schedule.alphas_cumprod[0]
        };
        Self {
            timesteps: int_timesteps.iter().map(|&t| t as f32).collect(),
            int_timesteps,
            schedule,
            inference_steps: steps,
            final_alpha_cumprod,
            prediction: config.prediction_type,
            clip_sample: config.clip_sample,
            eta: config.eta,
        }
    }
}

impl Scheduler for Ddim {
    fn kind(&self) -> SchedulerKind {
        SchedulerKind::Ddim
    }

    fn timesteps(&self) -> &[f32] {
        &self.timesteps
    }

    fn step(
        &mut self,
        model_output: &Latents,
        index: usize,
        sample: &Latents,
        noise: &mut dyn NoiseSource,
    ) -> Latents {
        let t = self.int_timesteps[index.min(self.int_timesteps.len() - 1)];
        let prev_t = t - (self.schedule.train_steps / self.inference_steps) as i64;
        let alpha_t = self.schedule.alpha_at(self.final_alpha_cumprod, t);
        let alpha_prev = self.schedule.alpha_at(self.final_alpha_cumprod, prev_t);
        let beta_t = 1.0 - alpha_t;
        let (sqrt_a, sqrt_b) = (alpha_t.sqrt(), beta_t.sqrt());
        let (mut x0, eps) = match self.prediction {
            PredictionType::Epsilon => (
                zip2(sample, model_output, |x, e| (x - sqrt_b * e) / sqrt_a),
                model_output.clone(),
            ),
            PredictionType::VPrediction => (
                zip2(sample, model_output, |x, v| sqrt_a * x - sqrt_b * v),
                zip2(sample, model_output, |x, v| sqrt_a * v + sqrt_b * x),
            ),
        };
        if self.clip_sample {
            x0.mapv_inplace(|v| v.clamp(-1.0, 1.0));
        }
        let beta_prev = 1.0 - alpha_prev;
        let variance = (beta_prev / beta_t) * (1.0 - alpha_t / alpha_prev);
        let std_dev = self.eta * variance.sqrt();
        let direction = (1.0 - alpha_prev - std_dev * std_dev).sqrt();
        let sqrt_prev = alpha_prev.sqrt();
        let mut prev = zip2(&x0, &eps, |x0, e| sqrt_prev * x0 + direction * e);
        if self.eta > 0.0 {
            let z = noise.normal(model_output.shape());
            prev = zip2(&prev, &z, |p, z| p + std_dev * z);
        }
        prev
    }

    fn add_noise(&self, original: &Latents, noise: &Latents, index: usize) -> Latents {
        let t = self.int_timesteps[index.min(self.int_timesteps.len() - 1)];
        alpha_noise(&self.schedule, original, noise, t)
    }
}

/// DDPM's forward process: `√ᾱ_t·x + √(1−ᾱ_t)·ε` (diffusers' `add_noise` for DDIM and PNDM).
fn alpha_noise(schedule: &NoiseSchedule, original: &Latents, noise: &Latents, t: i64) -> Latents {
    let a = schedule.alphas_cumprod[(t.max(0) as usize).min(schedule.train_steps - 1)];
    let (sa, sb) = (a.sqrt(), (1.0 - a).sqrt());
    zip2(original, noise, |x, n| sa * x + sb * n)
}

/// PNDM with `skip_prk_steps` (pseudo linear multistep).
#[derive(Debug, Clone)]
struct Pndm {
    schedule: NoiseSchedule,
    timesteps: Vec<f32>,
    int_timesteps: Vec<i64>,
    inference_steps: usize,
    final_alpha_cumprod: f32,
    prediction: PredictionType,
    ets: Vec<Latents>,
    counter: usize,
    cur_sample: Option<Latents>,
}

impl Pndm {
    fn new(
        config: &SchedulerConfig,
        schedule: NoiseSchedule,
        spacing: TimestepSpacing,
        steps: usize,
    ) -> Self {
        let train = schedule.train_steps;
        // `_timesteps` ascending, as diffusers keeps them before building the PLMS order.
        let ascending: Vec<i64> = match spacing {
            // PNDM does not reverse its linspace grid (a quirk kept for parity).
            TimestepSpacing::Linspace => np_linspace(0.0, (train - 1) as f64, steps)
                .into_iter()
                .map(|t| t.round_ties_even() as i64)
                .collect(),
            TimestepSpacing::Leading => (0..steps)
                .map(|i| (i * (train / steps) + config.steps_offset) as i64)
                .collect(),
            TimestepSpacing::Trailing => {
                let mut v: Vec<i64> = np_arange_down(train as f64, train as f64 / steps as f64)
                    .into_iter()
                    .map(|t| t.round_ties_even() as i64 - 1)
                    .collect();
                v.reverse();
                v
            }
        };
        // plms = concat(t[:-1], t[-2:-1], t[-1:])[::-1]: the second-to-last step runs twice.
        let mut plms: Vec<i64> = ascending[..ascending.len() - 1].to_vec();
        if ascending.len() >= 2 {
            plms.push(ascending[ascending.len() - 2]);
        }
        plms.push(ascending[ascending.len() - 1]);
        plms.reverse();
        let final_alpha_cumprod = if config.set_alpha_to_one {
            1.0
        } else {
            schedule.alphas_cumprod[0]
        };
        Self {
            timesteps: plms.iter().map(|&t| t as f32).collect(),
            int_timesteps: plms,
            schedule,
            inference_steps: steps,
            final_alpha_cumprod,
            prediction: config.prediction_type,
            ets: Vec::new(),
            counter: 0,
            cur_sample: None,
        }
    }

    /// Formula (9) of the PNDM paper, as diffusers' `_get_prev_sample`.
    fn prev_sample(&self, sample: &Latents, t: i64, prev_t: i64, output: &Latents) -> Latents {
        let alpha_t = self.schedule.alpha_at(self.final_alpha_cumprod, t);
        let alpha_prev = self.schedule.alpha_at(self.final_alpha_cumprod, prev_t);
        let beta_t = 1.0 - alpha_t;
        let beta_prev = 1.0 - alpha_prev;
        let eps = match self.prediction {
            PredictionType::Epsilon => output.clone(),
            PredictionType::VPrediction => {
                let (sa, sb) = (alpha_t.sqrt(), beta_t.sqrt());
                zip2(output, sample, |v, x| sa * v + sb * x)
            }
        };
        let sample_coeff = (alpha_prev / alpha_t).sqrt();
        let denom = alpha_t * beta_prev.sqrt() + (alpha_t * beta_t * alpha_prev).sqrt();
        let diff = alpha_prev - alpha_t;
        zip2(sample, &eps, |x, e| sample_coeff * x - diff * e / denom)
    }
}

impl Scheduler for Pndm {
    fn kind(&self) -> SchedulerKind {
        SchedulerKind::Pndm
    }

    fn timesteps(&self) -> &[f32] {
        &self.timesteps
    }

    fn step(
        &mut self,
        model_output: &Latents,
        index: usize,
        sample: &Latents,
        _noise: &mut dyn NoiseSource,
    ) -> Latents {
        let ratio = (self.schedule.train_steps / self.inference_steps) as i64;
        let mut t = self.int_timesteps[index.min(self.int_timesteps.len() - 1)];
        let mut prev_t = t - ratio;
        if self.counter != 1 {
            if self.ets.len() > 3 {
                self.ets.drain(..self.ets.len() - 3);
            }
            self.ets.push(model_output.clone());
        } else {
            prev_t = t;
            t += ratio;
        }
        let n = self.ets.len();
        let mut sample = sample.clone();
        let output = if n == 1 && self.counter == 0 {
            self.cur_sample = Some(sample.clone());
            model_output.clone()
        } else if n == 1 && self.counter == 1 {
            if let Some(cached) = self.cur_sample.take() {
                sample = cached;
            }
            zip2(model_output, &self.ets[n - 1], |m, e| (m + e) / 2.0)
        } else if n == 2 {
            zip2(&self.ets[1], &self.ets[0], |e1, e2| (3.0 * e1 - e2) / 2.0)
        } else if n == 3 {
            let mut out = self.ets[2].clone();
            Zip::from(&mut out)
                .and(&self.ets[1])
                .and(&self.ets[0])
                .for_each(|o, &e2, &e3| *o = (23.0 * *o - 16.0 * e2 + 5.0 * e3) / 12.0);
            out
        } else {
            let mut out = self.ets[n - 1].clone();
            Zip::from(&mut out)
                .and(&self.ets[n - 2])
                .and(&self.ets[n - 3])
                .and(&self.ets[n - 4])
                .for_each(|o, &e2, &e3, &e4| {
                    *o = (1.0f32 / 24.0) * (55.0 * *o - 59.0 * e2 + 37.0 * e3 - 9.0 * e4)
                });
            out
        };
        let prev = self.prev_sample(&sample, t, prev_t, &output);
        self.counter += 1;
        prev
    }

    fn add_noise(&self, original: &Latents, noise: &Latents, index: usize) -> Latents {
        let t = self.int_timesteps[index.min(self.int_timesteps.len() - 1)];
        alpha_noise(&self.schedule, original, noise, t)
    }
}

/// Euler (Karras et al. 2022, Algorithm 2 with s_churn = 0) and its ancestral variant.
#[derive(Debug, Clone)]
struct Euler {
    timesteps: Vec<f32>,
    /// σ at each step plus a final 0.
    sigmas: Vec<f32>,
    init_noise_sigma: f32,
    prediction: PredictionType,
    ancestral: bool,
}

impl Euler {
    fn new(
        config: &SchedulerConfig,
        schedule: NoiseSchedule,
        spacing: TimestepSpacing,
        steps: usize,
        ancestral: bool,
    ) -> Self {
        let train = schedule.train_steps;
        let timesteps: Vec<f32> = match spacing {
            TimestepSpacing::Linspace => np_linspace(0.0, (train - 1) as f64, steps)
                .into_iter()
                .rev()
                .map(|t| t as f32)
                .collect(),
            TimestepSpacing::Leading => (0..steps)
                .rev()
                .map(|i| (i * (train / steps)) as f32 + config.steps_offset as f32)
                .collect(),
            TimestepSpacing::Trailing => np_arange_down(train as f64, train as f64 / steps as f64)
                .into_iter()
                .map(|t| t.round_ties_even() as f32 - 1.0)
                .collect(),
        };
        let train_sigmas = schedule.sigmas();
        let mut sigmas: Vec<f32> = timesteps
            .iter()
            .map(|&t| np_interp(t as f64, &train_sigmas) as f32)
            .collect();
        sigmas.push(0.0);
        let max = sigmas.iter().copied().fold(f32::MIN, f32::max);
        let init_noise_sigma = match spacing {
            TimestepSpacing::Linspace | TimestepSpacing::Trailing => max,
            TimestepSpacing::Leading => (max * max + 1.0).sqrt(),
        };
        Self {
            timesteps,
            sigmas,
            init_noise_sigma,
            prediction: config.prediction_type,
            ancestral,
        }
    }

    /// x₀ predicted from the model output at σ.
    fn predicted_original(&self, output: &Latents, sample: &Latents, sigma: f32) -> Latents {
        match self.prediction {
            PredictionType::Epsilon => zip2(sample, output, |x, e| x - sigma * e),
            PredictionType::VPrediction => {
                let s2 = sigma * sigma + 1.0;
                let c_out = -sigma / s2.sqrt();
                zip2(output, sample, |v, x| v * c_out + x / s2)
            }
        }
    }
}

impl Scheduler for Euler {
    fn kind(&self) -> SchedulerKind {
        if self.ancestral {
            SchedulerKind::EulerAncestral
        } else {
            SchedulerKind::Euler
        }
    }

    fn timesteps(&self) -> &[f32] {
        &self.timesteps
    }

    fn init_noise_sigma(&self) -> f32 {
        self.init_noise_sigma
    }

    fn scale_model_input(&self, sample: &Latents, index: usize) -> Latents {
        let sigma = self.sigmas[index.min(self.sigmas.len() - 1)];
        let scale = (sigma * sigma + 1.0).sqrt();
        sample.mapv(|x| x / scale)
    }

    fn step(
        &mut self,
        model_output: &Latents,
        index: usize,
        sample: &Latents,
        noise: &mut dyn NoiseSource,
    ) -> Latents {
        let i = index.min(self.sigmas.len() - 2);
        let sigma = self.sigmas[i];
        let x0 = self.predicted_original(model_output, sample, sigma);
        if !self.ancestral {
            let dt = self.sigmas[i + 1] - sigma;
            return zip2(sample, &x0, |x, x0| x + ((x - x0) / sigma) * dt);
        }
        let (from, to) = (sigma, self.sigmas[i + 1]);
        let sigma_up = ((to * to) * (from * from - to * to) / (from * from)).sqrt();
        let sigma_down = (to * to - sigma_up * sigma_up).sqrt();
        let dt = sigma_down - sigma;
        let z = noise.normal(model_output.shape());
        let mut prev = zip2(sample, &x0, |x, x0| x + ((x - x0) / sigma) * dt);
        Zip::from(&mut prev)
            .and(&z)
            .for_each(|p, &z| *p += z * sigma_up);
        prev
    }

    fn add_noise(&self, original: &Latents, noise: &Latents, index: usize) -> Latents {
        let sigma = self.sigmas[index.min(self.sigmas.len() - 1)];
        zip2(original, noise, |x, n| x + n * sigma)
    }
}

/// DPM-Solver++ (2M, midpoint), diffusers' defaults: lower order on the first step, on the last
/// (σ = 0) and, below 15 steps, on the second-to-last.
#[derive(Debug, Clone)]
struct DpmSolver {
    timesteps: Vec<f32>,
    sigmas: Vec<f32>,
    prediction: PredictionType,
    /// The last two converted outputs (x₀ predictions), oldest first.
    outputs: [Option<Latents>; 2],
    lower_order_nums: usize,
}

impl DpmSolver {
    fn new(
        config: &SchedulerConfig,
        schedule: NoiseSchedule,
        spacing: TimestepSpacing,
        steps: usize,
    ) -> Self {
        let train = schedule.train_steps;
        // `lambda_min_clipped` is -inf by default, so the last timestep is `train`.
        let ints: Vec<i64> = match spacing {
            TimestepSpacing::Linspace => {
                let grid = np_linspace(0.0, (train - 1) as f64, steps + 1);
                grid.into_iter()
                    .rev()
                    .take(steps)
                    .map(|t| t.round_ties_even() as i64)
                    .collect()
            }
            TimestepSpacing::Leading => {
                let ratio = train / (steps + 1);
                (1..=steps)
                    .rev()
                    .map(|i| (i * ratio + config.steps_offset) as i64)
                    .collect()
            }
            TimestepSpacing::Trailing => np_arange_down(train as f64, train as f64 / steps as f64)
                .into_iter()
                .map(|t| t.round_ties_even() as i64 - 1)
                .collect(),
        };
        let train_sigmas = schedule.sigmas();
        let mut sigmas: Vec<f32> = ints
            .iter()
            .map(|&t| np_interp(t as f64, &train_sigmas) as f32)
            .collect();
        sigmas.push(0.0);
        Self {
            timesteps: ints.iter().map(|&t| t as f32).collect(),
            sigmas,
            prediction: config.prediction_type,
            outputs: [None, None],
            lower_order_nums: 0,
        }
    }

    /// (α_t, σ_t) of the variance-preserving process at noise level σ.
    fn alpha_sigma(sigma: f32) -> (f32, f32) {
        let alpha = 1.0 / (sigma * sigma + 1.0).sqrt();
        (alpha, sigma * alpha)
    }
}

impl Scheduler for DpmSolver {
    fn kind(&self) -> SchedulerKind {
        SchedulerKind::DpmSolverMultistep
    }

    fn timesteps(&self) -> &[f32] {
        &self.timesteps
    }

    fn step(
        &mut self,
        model_output: &Latents,
        index: usize,
        sample: &Latents,
        _noise: &mut dyn NoiseSource,
    ) -> Latents {
        let n = self.timesteps.len();
        let i = index.min(n - 1);
        // `final_sigmas_type == "zero"` makes the last step first order whatever the count.
        let lower_order_final = i == n - 1;
        let lower_order_second = i + 2 == n && n < 15;
        let (alpha_s0, sigma_s0) = Self::alpha_sigma(self.sigmas[i]);
        let x0 = match self.prediction {
            PredictionType::Epsilon => {
                zip2(sample, model_output, |x, e| (x - sigma_s0 * e) / alpha_s0)
            }
            PredictionType::VPrediction => {
                zip2(sample, model_output, |x, v| alpha_s0 * x - sigma_s0 * v)
            }
        };
        self.outputs.swap(0, 1);
        self.outputs[1] = Some(x0);
        let (alpha_t, sigma_t) = Self::alpha_sigma(self.sigmas[i + 1]);
        let lambda_t = alpha_t.ln() - sigma_t.ln();
        let lambda_s0 = alpha_s0.ln() - sigma_s0.ln();
        let h = lambda_t - lambda_s0;
        let c_sample = sigma_t / sigma_s0;
        let c_d0 = alpha_t * ((-h).exp() - 1.0);
        let prev = match (&self.outputs[0], &self.outputs[1]) {
            (Some(m1), Some(m0)) if self.lower_order_nums >= 1 && !lower_order_final => {
                let _ = lower_order_second;
                let (alpha_s1, sigma_s1) = Self::alpha_sigma(self.sigmas[i - 1]);
                let lambda_s1 = alpha_s1.ln() - sigma_s1.ln();
                let h0 = lambda_s0 - lambda_s1;
                let r0 = h0 / h;
                let inv_r0 = 1.0 / r0;
                let half_c = 0.5 * c_d0;
                let mut out = sample.clone();
                Zip::from(&mut out).and(m0).and(m1).for_each(|x, &m0, &m1| {
                    let d1 = inv_r0 * (m0 - m1);
                    *x = c_sample * *x - c_d0 * m0 - half_c * d1;
                });
                out
            }
            (_, Some(m0)) => zip2(sample, m0, |x, m0| c_sample * x - c_d0 * m0),
            _ => sample.clone(),
        };
        if self.lower_order_nums < 2 {
            self.lower_order_nums += 1;
        }
        prev
    }

    fn add_noise(&self, original: &Latents, noise: &Latents, index: usize) -> Latents {
        let (alpha, sigma) = Self::alpha_sigma(self.sigmas[index.min(self.sigmas.len() - 1)]);
        zip2(original, noise, |x, n| alpha * x + sigma * n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sd_noise_schedule_matches_the_golden_values() {
        let s = NoiseSchedule::new(&SchedulerConfig::sd15());
        assert!((s.alphas_cumprod[0] - 0.99915).abs() < 1e-6);
        assert!((s.alphas_cumprod[999] - 0.0046601).abs() < 1e-6);
        let sig = s.sigmas();
        assert!((sig[0] - 0.0291675).abs() < 1e-6);
        assert!((sig[999] - 14.61464).abs() < 1e-4);
    }

    #[test]
    fn timestep_grids_follow_diffusers() {
        let c = SchedulerConfig::sd15();
        let ddim = c.build(SchedulerKind::Ddim, 50).unwrap();
        assert_eq!(ddim.timesteps()[0], 981.0);
        assert_eq!(*ddim.timesteps().last().unwrap(), 1.0);
        let pndm = c.build(SchedulerKind::Pndm, 50).unwrap();
        assert_eq!(pndm.timesteps().len(), 51);
        assert_eq!(&pndm.timesteps()[..3], &[981.0, 961.0, 961.0]);
        let dpm = c.build(SchedulerKind::DpmSolverMultistep, 50).unwrap();
        assert_eq!(dpm.timesteps()[0], 999.0);
        assert_eq!(dpm.timesteps()[1], 979.0);
        assert_eq!(*dpm.timesteps().last().unwrap(), 20.0);
        let euler = c.build(SchedulerKind::Euler, 50).unwrap();
        assert_eq!(euler.timesteps()[0], 999.0);
        assert!((euler.init_noise_sigma() - 14.6146).abs() < 1e-3);
        let trailing = SchedulerConfig {
            timestep_spacing: Some(TimestepSpacing::Trailing),
            ..c
        };
        let t = trailing.build(SchedulerKind::Ddim, 50).unwrap();
        assert_eq!(t.timesteps()[0], 999.0);
        assert_eq!(*t.timesteps().last().unwrap(), 19.0);
    }

    #[test]
    fn bad_steps_and_names_are_errors() {
        assert!(
            SchedulerConfig::sd15()
                .build(SchedulerKind::Ddim, 0)
                .is_err()
        );
        assert!(
            SchedulerConfig::sd15()
                .build(SchedulerKind::Ddim, 1001)
                .is_err()
        );
        assert!(parse_scheduler("nope").is_err());
        assert_eq!(
            parse_scheduler("euler-a"),
            Ok(SchedulerKind::EulerAncestral)
        );
        assert_eq!(
            parse_scheduler("dpm++"),
            Ok(SchedulerKind::DpmSolverMultistep)
        );
        for kind in SCHEDULER_KINDS {
            assert_eq!(parse_scheduler(scheduler_name(kind)), Ok(kind));
        }
    }
}
