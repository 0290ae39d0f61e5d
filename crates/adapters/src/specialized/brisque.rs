//! BRISQUE, the no-reference image quality model of `brisque==0.2.0`: its 36 natural-scene
//! statistics computed here, its min/max scaling and ε-SVR run as ONNX (`features` [N, 36] →
//! `score` [N, 1], made by `xtask/python/brisque_refs.py`).
//!
//! The features follow the package step by step, in float64: grayscale as scikit-image's
//! `rgb2gray`, MSCN coefficients with a 7×7 Gaussian (σ = 7/6, zero-padded `convolve2d`,
//! C = 1/255), the four pairwise products, an asymmetric generalised Gaussian fit of each
//! (shape from the moment ratio, solved here by bisection where the package calls
//! `scipy.optimize.root`: the ratio is monotonic in the shape, so both find the same root), then
//! the same at half size (OpenCV's `resize(fx = 0.5, INTER_CUBIC)`: cubic a = −0.75,
//! replicated borders).

use modelmux_runtime_ort::{Inputs, SessionPool};
use ndarray::Array2;

use super::{QualityAssessor, QualityScore, ScoreScale};
use crate::context::LoadContext;
use crate::error::AdapterError;
use crate::image::Image;
use crate::vlm::BoxFuture;

/// The number of BRISQUE features: 18 per scale, two scales.
pub const FEATURES: usize = 36;

/// BRISQUE over an ONNX SVR.
#[derive(Debug)]
pub struct Brisque {
    model: String,
    pool: SessionPool,
}

impl Brisque {
    pub fn load(context: &LoadContext<'_>) -> Result<Self, AdapterError> {
        Ok(Self {
            model: context.model(),
            pool: context.pool("model.onnx", true)?,
        })
    }

    pub fn shutdown(&self) {
        self.pool.shutdown();
    }
}

impl QualityAssessor for Brisque {
    fn model(&self) -> &str {
        &self.model
    }

    fn scale(&self) -> ScoreScale {
        ScoreScale {
            min: None,
            max: None,
            higher_is_better: false,
            meaning: "BRISQUE distortion score from natural-scene statistics (LIVE-trained SVR): \
                      lower is better, about 0 for pristine photos to 100 for heavily distorted ones"
                .into(),
        }
    }

    fn assess<'a>(
        &'a self,
        images: &'a [Image],
    ) -> BoxFuture<'a, Result<Vec<QualityScore>, AdapterError>> {
        Box::pin(async move {
            if images.is_empty() {
                return Err(AdapterError::InvalidRequest {
                    model: self.model.clone(),
                    reason: "no images".into(),
                });
            }
            let mut data = Vec::with_capacity(images.len() * FEATURES);
            for image in images {
                let features = features(image).ok_or_else(|| AdapterError::InvalidRequest {
                    model: self.model.clone(),
                    reason: format!(
                        "{}×{} is too small or too flat for BRISQUE's statistics",
                        image.width(),
                        image.height()
                    ),
                })?;
                data.extend(features.iter().map(|&f| f as f32));
            }
            let input = Array2::from_shape_vec((images.len(), FEATURES), data).map_err(|e| {
                AdapterError::InvalidRequest {
                    model: self.model.clone(),
                    reason: e.to_string(),
                }
            })?;
            let mut outputs = self.pool.run(Inputs::new().with("features", input)).await?;
            let scores = outputs.take::<f32>("score")?;
            let scale = self.scale();
            Ok(scores
                .iter()
                .map(|&score| QualityScore {
                    score,
                    scale: scale.clone(),
                })
                .collect())
        })
    }
}

/// A grayscale image in float64, row-major.
struct Gray {
    width: usize,
    height: usize,
    data: Vec<f64>,
}

impl Gray {
    fn at(&self, y: usize, x: usize) -> f64 {
        self.data[y * self.width + x]
    }
}

/// The 36 BRISQUE features of an image; `None` when a statistic is undefined (an image too
/// small for two scales, or without negative or positive coefficients).
pub fn features(image: &Image) -> Option<[f64; FEATURES]> {
    let (width, height) = (image.width() as usize, image.height() as usize);
    // scikit-image's rgb2gray: img_as_float (÷ 255), then the Rec. 709 luma weights.
    let data = image
        .as_rgb()
        .chunks_exact(3)
        .map(|p| {
            let [r, g, b] = [p[0], p[1], p[2]].map(|v| f64::from(v) / 255.0);
            r * 0.2125 + g * 0.7154 + b * 0.0721
        })
        .collect();
    let gray = Gray {
        width,
        height,
        data,
    };
    let small = half_size_cubic(&gray)?;
    let mut out = [0.0; FEATURES];
    out[..18].copy_from_slice(&scale_features(&gray)?);
    out[18..].copy_from_slice(&scale_features(&small)?);
    Some(out)
}

/// The 18 features of one scale.
fn scale_features(image: &Gray) -> Option<[f64; 18]> {
    let (w, h) = (image.width, image.height);
    if w < 2 || h < 2 {
        return None;
    }
    let m = mscn(image);
    let at = |y: usize, x: usize| m[y * w + x];
    let mut out = [0.0; 18];
    let (alpha, _, left, right) = aggd_fit(&m)?;
    out[0] = alpha;
    out[1] = (left * left + right * right) / 2.0;
    let products: [Vec<f64>; 4] = [
        (0..h)
            .flat_map(|y| (0..w - 1).map(move |x| (y, x)))
            .map(|(y, x)| at(y, x) * at(y, x + 1))
            .collect(),
        (0..h - 1)
            .flat_map(|y| (0..w).map(move |x| (y, x)))
            .map(|(y, x)| at(y, x) * at(y + 1, x))
            .collect(),
        (0..h - 1)
            .flat_map(|y| (0..w - 1).map(move |x| (y, x)))
            .map(|(y, x)| at(y, x) * at(y + 1, x + 1))
            .collect(),
        (0..h - 1)
            .flat_map(|y| (0..w - 1).map(move |x| (y, x)))
            .map(|(y, x)| at(y + 1, x) * at(y, x + 1))
            .collect(),
    ];
    for (i, product) in products.iter().enumerate() {
        let (alpha, mean, left, right) = aggd_fit(product)?;
        out[2 + i * 4..6 + i * 4].copy_from_slice(&[alpha, mean, left * left, right * right]);
    }
    Some(out)
}

/// Mean-subtracted contrast-normalised coefficients: (I − μ) / (σ + 1/255) with μ and σ from a
/// 7×7 Gaussian window (σ = 7/6), zero-padded at the borders like `convolve2d(…, 'same')`.
fn mscn(image: &Gray) -> Vec<f64> {
    const N: usize = 7;
    let sigma = 7.0 / 6.0;
    let half = (N / 2) as i64;
    let mut kernel = [[0.0f64; N]; N];
    let mut total = 0.0;
    for (y, row) in kernel.iter_mut().enumerate() {
        for (x, k) in row.iter_mut().enumerate() {
            let (dy, dx) = (y as f64 - half as f64, x as f64 - half as f64);
            *k = 1.0 / (2.0 * std::f64::consts::PI * sigma * sigma)
                * (-(dx * dx + dy * dy) / (2.0 * sigma * sigma)).exp();
            total += *k;
        }
    }
    kernel.iter_mut().flatten().for_each(|k| *k /= total);
    let (w, h) = (image.width as i64, image.height as i64);
    let mut out = Vec::with_capacity(image.data.len());
    for y in 0..h {
        for x in 0..w {
            let (mut mu, mut second) = (0.0, 0.0);
            for (ky, row) in kernel.iter().enumerate() {
                let sy = y + ky as i64 - half;
                if sy < 0 || sy >= h {
                    continue;
                }
                for (kx, k) in row.iter().enumerate() {
                    let sx = x + kx as i64 - half;
                    if sx < 0 || sx >= w {
                        continue;
                    }
                    let v = image.at(sy as usize, sx as usize);
                    mu += v * k;
                    second += v * v * k;
                }
            }
            let deviation = (mu * mu - second).abs().sqrt();
            out.push((image.at(y as usize, x as usize) - mu) / (deviation + 1.0 / 255.0));
        }
    }
    out
}

/// The asymmetric generalised Gaussian fit: (shape α, mean, σ left, σ right).
fn aggd_fit(x: &[f64]) -> Option<(f64, f64, f64, f64)> {
    let n = x.len() as f64;
    let (mut abs_sum, mut sq_sum) = (0.0, 0.0);
    let (mut left_sq, mut left_n, mut right_sq, mut right_n) = (0.0, 0usize, 0.0, 0usize);
    for &v in x {
        abs_sum += v.abs();
        sq_sum += v * v;
        if v < 0.0 {
            left_sq += v * v;
            left_n += 1;
        } else {
            right_sq += v * v;
            right_n += 1;
        }
    }
    if left_n == 0 || right_n == 0 || sq_sum == 0.0 {
        return None;
    }
    let r_hat = (abs_sum / n).powi(2) / (sq_sum / n);
    let left = (left_sq / left_n as f64).sqrt();
    let right = (right_sq / right_n as f64).sqrt();
    let gamma = left / right;
    let big_r = r_hat * (gamma.powi(3) + 1.0) * (gamma + 1.0) / (gamma * gamma + 1.0).powi(2);
    let alpha = solve_shape(big_r)?;
    let constant = (0.5 * (ln_gamma(1.0 / alpha) - ln_gamma(3.0 / alpha))).exp();
    let mean = (right - left) * constant * (ln_gamma(2.0 / alpha) - ln_gamma(1.0 / alpha)).exp();
    Some((alpha, mean, left, right))
}

/// The shape α with Γ(2/α)² / (Γ(1/α) Γ(3/α)) = `target`: the ratio rises monotonically with α
/// (towards 3/4), so bisection on [0.01, 50] finds the root the package's solver finds.
fn solve_shape(target: f64) -> Option<f64> {
    let phi = |a: f64| (2.0 * ln_gamma(2.0 / a) - ln_gamma(1.0 / a) - ln_gamma(3.0 / a)).exp();
    let (mut lo, mut hi) = (0.01f64, 50.0f64);
    if !target.is_finite() || target <= phi(lo) || target >= phi(hi) {
        return None;
    }
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if phi(mid) < target {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Some(0.5 * (lo + hi))
}

/// ln Γ(x) for x > 0 (Lanczos, g = 7, 9 terms: about 15 significant digits).
fn ln_gamma(x: f64) -> f64 {
    const G: f64 = 7.0;
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Reflection: Γ(x) Γ(1 − x) = π / sin(πx).
        let pi = std::f64::consts::PI;
        return (pi / (pi * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut a = C[0];
    let t = x + G + 0.5;
    for (i, c) in C.iter().enumerate().skip(1) {
        a += c / (x + i as f64);
    }
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

/// OpenCV's `resize(image, fx = 0.5, fy = 0.5, INTER_CUBIC)` on a float64 image: output size
/// rounded half to even, source position 2·d + 0.5, cubic weights with a = −0.75 (at a fraction
/// of exactly 0.5 they are −0.09375, 0.59375, 0.59375, −0.09375), borders replicated.
fn half_size_cubic(image: &Gray) -> Option<Gray> {
    let round_even = |v: f64| {
        let r = v.round();
        if (v - v.trunc()).abs() == 0.5 && r % 2.0 != 0.0 {
            r - v.signum()
        } else {
            r
        }
    };
    let width = round_even(image.width as f64 * 0.5) as usize;
    let height = round_even(image.height as f64 * 0.5) as usize;
    if width < 2 || height < 2 {
        return None;
    }
    const W: [f64; 4] = [-0.09375, 0.59375, 0.59375, -0.09375];
    let clamp = |v: i64, n: usize| v.clamp(0, n as i64 - 1) as usize;
    // Horizontal pass over every source row, then vertical.
    let mut rows = vec![0.0; image.height * width];
    for y in 0..image.height {
        for dx in 0..width {
            let sx = 2 * dx as i64;
            let mut v = 0.0;
            for (k, w) in W.iter().enumerate() {
                v += image.at(y, clamp(sx - 1 + k as i64, image.width)) * w;
            }
            rows[y * width + dx] = v;
        }
    }
    let mut data = vec![0.0; height * width];
    for dy in 0..height {
        let sy = 2 * dy as i64;
        for x in 0..width {
            let mut v = 0.0;
            for (k, w) in W.iter().enumerate() {
                v += rows[clamp(sy - 1 + k as i64, image.height) * width + x] * w;
            }
            data[dy * width + x] = v;
        }
    }
    Some(Gray {
        width,
        height,
        data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ln_gamma_matches_known_values() {
        assert!((ln_gamma(1.0)).abs() < 1e-13);
        assert!((ln_gamma(5.0) - 24f64.ln()).abs() < 1e-12);
        assert!((ln_gamma(0.5) - std::f64::consts::PI.sqrt().ln()).abs() < 1e-12);
    }

    #[test]
    fn gaussian_shape_is_recovered() {
        // α = 2 (a Gaussian): Γ(1)² / (Γ(1/2) Γ(3/2)) = 2/π.
        let alpha = solve_shape(2.0 / std::f64::consts::PI).unwrap();
        assert!((alpha - 2.0).abs() < 1e-9, "{alpha}");
    }
}
