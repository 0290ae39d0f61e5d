//! Images in, `pixel_values` out: decoding with size limits, and the Hugging Face image
//! processors' steps (RGB conversion, resize, centre crop, rescale, normalise) reproduced exactly.
//!
//! The Hugging Face processors modelmux exports with use their PIL backend, so resizing here is
//! Pillow's `Image.resize` re-implemented operation for operation (`libImaging/Resample.c`):
//! separable filters with support scaled by the downscaling factor, coefficients in 22-bit fixed
//! point, two separable passes (in Pillow 13's order), each rounding and clamping to 8 bits. Matching
//! that integer arithmetic is what makes the output equal to the reference to the last bit, which
//! a float resampler (the `image` crate's) does not. Decoding uses the `image` crate.
//!
//! Shared by every family that reads images (vision-language models, classifiers, quality).

use std::io::Cursor;
use std::path::Path;

use ndarray::Array4;
use serde::Deserialize;

use crate::error::AdapterError;

/// A decoded image: 8-bit RGB, row-major, transparency already composited onto white.
#[derive(Clone, PartialEq, Eq)]
pub struct Image {
    width: u32,
    height: u32,
    rgb: Vec<u8>,
}

impl std::fmt::Debug for Image {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Image({}×{})", self.width, self.height)
    }
}

/// The most pixels an image may have by default, decoded or resized (64 Mi: 192 MiB of RGB).
const MAX_PIXELS: u64 = 64 * 1024 * 1024;

/// Limits applied while decoding, so a small file cannot expand into gigabytes
/// (decompression bombs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// The widest and tallest image accepted, in pixels.
    pub max_side: u32,
    /// The most pixels accepted (width × height).
    pub max_pixels: u64,
    /// The most bytes the decoder may allocate.
    pub max_alloc: u64,
}

impl Default for DecodeLimits {
    /// Pillow's own bomb limit is about 179 million pixels; 64 megapixels and 16 384 pixels a side
    /// cover every camera and generated image these models see, with a 1 GiB decoder budget.
    fn default() -> Self {
        Self {
            max_side: 16_384,
            max_pixels: MAX_PIXELS,
            max_alloc: 1 << 30,
        }
    }
}

/// Why an image could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImageError {
    /// The file could not be read.
    #[error("cannot read image {path}: {reason}")]
    Io { path: String, reason: String },
    /// The bytes are not an image in a supported format, or are corrupt.
    #[error("cannot decode image {source_name}: {reason}")]
    Decode { source_name: String, reason: String },
    /// The image is larger than the limits allow.
    #[error("image {source_name} is {width}×{height}, over the limit ({limit})")]
    TooLarge {
        source_name: String,
        width: u32,
        height: u32,
        limit: String,
    },
    /// Raw pixels whose length does not match the size.
    #[error("raw RGB image of {width}×{height} needs {expected} bytes, got {got}")]
    BadBuffer {
        width: u32,
        height: u32,
        expected: usize,
        got: usize,
    },
    /// An image with no pixels.
    #[error("image {source_name} is empty ({width}×{height})")]
    Empty {
        source_name: String,
        width: u32,
        height: u32,
    },
}

impl Image {
    /// Reads and decodes an image file (PNG, JPEG or WebP) within the default limits.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, ImageError> {
        Self::open_with(path, DecodeLimits::default())
    }

    /// Reads and decodes an image file within `limits`.
    pub fn open_with(path: impl AsRef<Path>, limits: DecodeLimits) -> Result<Self, ImageError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| ImageError::Io {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        Self::decode_named(&bytes, &path.display().to_string(), limits)
    }

    /// Decodes an encoded image held in memory within the default limits.
    pub fn decode(bytes: &[u8]) -> Result<Self, ImageError> {
        Self::decode_named(bytes, "<bytes>", DecodeLimits::default())
    }

    /// Decodes an encoded image held in memory within `limits`; `name` appears in errors.
    pub fn decode_named(
        bytes: &[u8],
        name: &str,
        limits: DecodeLimits,
    ) -> Result<Self, ImageError> {
        let decode_err = |e: &dyn std::fmt::Display| ImageError::Decode {
            source_name: name.to_owned(),
            reason: e.to_string(),
        };
        let reader = || {
            image::ImageReader::new(Cursor::new(bytes))
                .with_guessed_format()
                .map_err(|e| decode_err(&e))
        };
        if reader()?.format().is_none() {
            return Err(decode_err(&"not a PNG, JPEG or WebP file"));
        }
        // The header is checked against the limits before any pixel is decoded.
        let (width, height) = unpanicked(name, || {
            reader()?.into_dimensions().map_err(|e| decode_err(&e))
        })??;
        check_size(name, width, height, limits)?;
        let mut image_limits = image::Limits::default();
        image_limits.max_image_width = Some(limits.max_side);
        image_limits.max_image_height = Some(limits.max_side);
        image_limits.max_alloc = Some(limits.max_alloc);
        let mut reader = reader()?;
        reader.limits(image_limits);
        let decoded = unpanicked(name, move || reader.decode())?.map_err(|e| match e {
            image::ImageError::Limits(_) => ImageError::TooLarge {
                source_name: name.to_owned(),
                width,
                height,
                limit: format!("decoder memory over {} bytes", limits.max_alloc),
            },
            other => decode_err(&other),
        })?;
        Ok(Self::from_dynamic(&decoded))
    }

    /// Wraps raw 8-bit RGB pixels (row-major, `width × height × 3` bytes).
    pub fn from_rgb8(width: u32, height: u32, rgb: Vec<u8>) -> Result<Self, ImageError> {
        let expected = width as usize * height as usize * 3;
        if rgb.len() != expected {
            return Err(ImageError::BadBuffer {
                width,
                height,
                expected,
                got: rgb.len(),
            });
        }
        if width == 0 || height == 0 {
            return Err(ImageError::Empty {
                source_name: "<raw>".into(),
                width,
                height,
            });
        }
        Ok(Self { width, height, rgb })
    }

    /// Converts a decoded image the way Hugging Face's `convert_to_rgb` does with PIL: gray is
    /// repeated, transparency is composited onto white with Pillow's integer arithmetic, and
    /// 16-bit samples keep their high byte (what Pillow does for 16-bit RGB PNGs; for 16-bit
    /// grayscale Pillow clamps at 255 instead, which flattens the picture, so modelmux keeps the
    /// high byte there too).
    pub fn from_dynamic(image: &image::DynamicImage) -> Self {
        use image::DynamicImage as D;
        let (width, height) = (image.width(), image.height());
        let n = width as usize * height as usize;
        let mut rgb = Vec::with_capacity(n * 3);
        let push_rgba = |rgb: &mut Vec<u8>, r: u8, g: u8, b: u8, a: u8| {
            let [r, g, b] = composite_on_white([r, g, b], a);
            rgb.extend_from_slice(&[r, g, b]);
        };
        match image {
            D::ImageLuma8(im) => im.pixels().for_each(|p| rgb.extend_from_slice(&[p[0]; 3])),
            D::ImageLumaA8(im) => im
                .pixels()
                .for_each(|p| push_rgba(&mut rgb, p[0], p[0], p[0], p[1])),
            D::ImageRgb8(im) => rgb.extend_from_slice(im.as_raw()),
            D::ImageRgba8(im) => im
                .pixels()
                .for_each(|p| push_rgba(&mut rgb, p[0], p[1], p[2], p[3])),
            D::ImageLuma16(im) => im
                .pixels()
                .for_each(|p| rgb.extend_from_slice(&[(p[0] >> 8) as u8; 3])),
            D::ImageLumaA16(im) => im.pixels().for_each(|p| {
                let v = (p[0] >> 8) as u8;
                push_rgba(&mut rgb, v, v, v, (p[1] >> 8) as u8)
            }),
            D::ImageRgb16(im) => im
                .pixels()
                .for_each(|p| rgb.extend(p.0.iter().map(|&v| (v >> 8) as u8))),
            D::ImageRgba16(im) => im.pixels().for_each(|p| {
                let [r, g, b, a] = p.0.map(|v| (v >> 8) as u8);
                push_rgba(&mut rgb, r, g, b, a)
            }),
            other => {
                // Float images (HDR, EXR) are not produced by the enabled decoders; converting
                // through RGBA8 keeps this total rather than failing.
                other
                    .to_rgba8()
                    .pixels()
                    .for_each(|p| push_rgba(&mut rgb, p[0], p[1], p[2], p[3]))
            }
        }
        Self { width, height, rgb }
    }

    pub fn width(&self) -> u32 {
        self.width
    }

    pub fn height(&self) -> u32 {
        self.height
    }

    /// The pixels: row-major RGB, 3 bytes each.
    pub fn as_rgb(&self) -> &[u8] {
        &self.rgb
    }
}

/// Runs a call into the `image` crate's decoders, turning a panic into a decode error: some
/// decoders assert on malformed files (zune-jpeg 0.5.15 in its AVX2 upsampler on certain
/// progressive JPEGs; fuzz/corpus/image_decode/regression-jpeg-upsampler-panic.jpg). Nothing
/// the call touched outlives it, so unwinding out of it leaves no broken state behind.
fn unpanicked<T>(name: &str, call: impl FnOnce() -> T) -> Result<T, ImageError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(call)).map_err(|panic| {
        ImageError::Decode {
            source_name: name.to_owned(),
            reason: format!("the decoder failed: {}", crate::panic_message(&*panic)),
        }
    })
}

fn check_size(name: &str, width: u32, height: u32, limits: DecodeLimits) -> Result<(), ImageError> {
    if width == 0 || height == 0 {
        return Err(ImageError::Empty {
            source_name: name.to_owned(),
            width,
            height,
        });
    }
    let too_large = |limit: String| ImageError::TooLarge {
        source_name: name.to_owned(),
        width,
        height,
        limit,
    };
    if width > limits.max_side || height > limits.max_side {
        return Err(too_large(format!("{} pixels a side", limits.max_side)));
    }
    if u64::from(width) * u64::from(height) > limits.max_pixels {
        return Err(too_large(format!("{} pixels", limits.max_pixels)));
    }
    Ok(())
}

/// `PIL.Image.alpha_composite(white, pixel)` for one pixel (`libImaging/AlphaComposite.c`).
fn composite_on_white(rgb: [u8; 3], alpha: u8) -> [u8; 3] {
    if alpha == 0 {
        return [255; 3];
    }
    const PRECISION_BITS: u32 = 7;
    let shift_div_255 = |a: u32| ((a >> 8) + a) >> 8;
    let a = u32::from(alpha);
    let blend = 255 * (255 - a);
    let outa255 = a * 255 + blend;
    let coef1 = a * 255 * 255 * (1 << PRECISION_BITS) / outa255;
    let coef2 = 255 * (1 << PRECISION_BITS) - coef1;
    rgb.map(|c| {
        let tmp = u32::from(c) * coef1 + 255 * coef2;
        (shift_div_255(tmp + (0x80 << PRECISION_BITS)) >> PRECISION_BITS) as u8
    })
}

/// Resampling filters, with Pillow's numbering (`PIL.Image.Resampling`), which is what
/// `preprocessor_config.json` stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filter {
    Nearest,
    Lanczos,
    Bilinear,
    Bicubic,
    Box,
    Hamming,
}

impl Filter {
    /// Pillow's number for the filter (0 nearest, 1 lanczos, 2 bilinear, 3 bicubic, 4 box,
    /// 5 hamming).
    pub fn from_pil(code: i64) -> Option<Self> {
        Some(match code {
            0 => Self::Nearest,
            1 => Self::Lanczos,
            2 => Self::Bilinear,
            3 => Self::Bicubic,
            4 => Self::Box,
            5 => Self::Hamming,
            _ => return None,
        })
    }

    fn support(self) -> f64 {
        match self {
            Self::Nearest | Self::Box => 0.5,
            Self::Bilinear | Self::Hamming => 1.0,
            Self::Bicubic => 2.0,
            Self::Lanczos => 3.0,
        }
    }

    fn weight(self, x: f64) -> f64 {
        match self {
            Self::Nearest | Self::Box => {
                if x > -0.5 && x <= 0.5 {
                    1.0
                } else {
                    0.0
                }
            }
            Self::Bilinear => {
                let x = x.abs();
                if x < 1.0 { 1.0 - x } else { 0.0 }
            }
            Self::Hamming => {
                let x = x.abs();
                if x == 0.0 {
                    1.0
                } else if x >= 1.0 {
                    0.0
                } else {
                    let x = x * std::f64::consts::PI;
                    x.sin() / x * (0.54 + 0.46 * x.cos())
                }
            }
            Self::Bicubic => {
                // Pillow's cubic with a = -0.5 (Catmull-Rom).
                const A: f64 = -0.5;
                let x = x.abs();
                if x < 1.0 {
                    ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
                } else if x < 2.0 {
                    (((x - 5.0) * x + 8.0) * x - 4.0) * A
                } else {
                    0.0
                }
            }
            Self::Lanczos => {
                if (-3.0..3.0).contains(&x) {
                    sinc(x) * sinc(x / 3.0)
                } else {
                    0.0
                }
            }
        }
    }
}

fn sinc(x: f64) -> f64 {
    if x == 0.0 {
        1.0
    } else {
        let x = x * std::f64::consts::PI;
        x.sin() / x
    }
}

/// Pillow's fixed-point precision for 8-bit resampling: 32 bits − 8 for the value − 2 for the
/// sign and the overshoot of negative lobes.
const PRECISION_BITS: u32 = 32 - 8 - 2;

/// The filter taps of one axis: for every output pixel, the first input pixel and its weights
/// in fixed point (`precompute_coeffs` + `normalize_coeffs_8bpc`).
struct Taps {
    bounds: Vec<(usize, usize)>,
    weights: Vec<Vec<i32>>,
}

fn taps(in_size: usize, out_size: usize, filter: Filter) -> Taps {
    let scale = in_size as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = filter.support() * filterscale;
    let mut bounds = Vec::with_capacity(out_size);
    let mut weights = Vec::with_capacity(out_size);
    for xx in 0..out_size {
        let center = (xx as f64 + 0.5) * scale;
        let ss = 1.0 / filterscale;
        // Pillow truncates toward zero after adding 0.5 (a C cast), then clamps.
        let xmin = ((center - support + 0.5) as i64).max(0) as usize;
        let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
        let count = xmax.saturating_sub(xmin);
        let mut k: Vec<f64> = (0..count)
            .map(|x| filter.weight((x as f64 + xmin as f64 - center + 0.5) * ss))
            .collect();
        let total: f64 = k.iter().sum();
        if total != 0.0 {
            k.iter_mut().for_each(|w| *w /= total);
        }
        let fixed = k
            .iter()
            .map(|&w| {
                let scaled = w * f64::from(1u32 << PRECISION_BITS);
                if w < 0.0 {
                    (scaled - 0.5) as i32
                } else {
                    (scaled + 0.5) as i32
                }
            })
            .collect();
        bounds.push((xmin, count));
        weights.push(fixed);
    }
    Taps { bounds, weights }
}

/// Pillow's accumulators are 32-bit: the coefficient budget (22 bits + 8 for the value + 2 for
/// the overshoot of negative lobes) is what keeps the sums inside an `i32`.
fn clip8(value: i32) -> u8 {
    (value >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Resizes 8-bit interleaved pixels (`channels` per pixel) exactly as Pillow's `Image.resize`
/// does for 8-bit modes.
fn resize_u8(
    src: &[u8],
    (width, height): (usize, usize),
    channels: usize,
    (out_w, out_h): (usize, usize),
    filter: Filter,
) -> Vec<u8> {
    if out_w == 0 || out_h == 0 {
        // No pixels to compute; the passes below cannot split rows of zero width.
        return Vec::new();
    }
    if filter == Filter::Nearest {
        return resize_nearest(src, (width, height), channels, (out_w, out_h));
    }
    let horizontal = taps(width, out_w, filter);
    let vertical = taps(height, out_h, filter);
    let need_h = out_w != width;
    let need_v = out_h != height;
    // Pillow 13 runs the vertical pass first when the height shrinks by more than twice as many
    // pixels as the width (to make the horizontal pass cheaper); the order changes the
    // rounding of the 8-bit intermediate, so it is followed exactly.
    let dh = height as i64 - out_h as i64;
    let dw = width as i64 - out_w as i64;
    let horizontal_first = !(dh > 0 && dh > dw * 2);
    if horizontal_first {
        // Only the rows the vertical pass reads are resampled horizontally.
        let first_row = vertical.bounds.first().map_or(0, |b| b.0);
        let last_row = vertical.bounds.last().map_or(height, |b| b.0 + b.1);
        let (mid, rows_offset) = if need_h {
            let rows = &src[first_row * width * channels..last_row * width * channels];
            (
                pass_horizontal(rows, width, last_row - first_row, channels, &horizontal),
                first_row,
            )
        } else {
            (src.to_vec(), 0)
        };
        if !need_v {
            return mid;
        }
        pass_vertical(&mid, out_w, channels, &vertical, rows_offset)
    } else {
        let mid = pass_vertical(src, width, channels, &vertical, 0);
        if !need_h {
            return mid;
        }
        pass_horizontal(&mid, width, out_h, channels, &horizontal)
    }
}

/// `ImagingResampleHorizontal_8bpc`: every row of `src` (`width` pixels) through the taps.
fn pass_horizontal(src: &[u8], width: usize, rows: usize, channels: usize, taps: &Taps) -> Vec<u8> {
    let out_w = taps.bounds.len();
    let mut out = vec![0u8; rows * out_w * channels];
    for (line, dst) in src
        .chunks_exact(width * channels)
        .take(rows)
        .zip(out.chunks_exact_mut(out_w * channels))
    {
        for ((&(xmin, count), k), pixel) in taps
            .bounds
            .iter()
            .zip(&taps.weights)
            .zip(dst.chunks_exact_mut(channels))
        {
            let mut ss = [1i32 << (PRECISION_BITS - 1); 4];
            let window = &line[xmin * channels..(xmin + count) * channels];
            for (source, &w) in window.chunks_exact(channels).zip(k) {
                for (acc, &v) in ss.iter_mut().zip(source) {
                    *acc += i32::from(v) * w;
                }
            }
            for (d, &acc) in pixel.iter_mut().zip(&ss) {
                *d = clip8(acc);
            }
        }
    }
    out
}

/// `ImagingResampleVertical_8bpc`: every column of `src` (`width` pixels a row) through the
/// taps; `row_offset` is the first source row `src` holds. Rows are accumulated whole, which
/// adds the same products in the same order as Pillow's per-pixel loop.
fn pass_vertical(
    src: &[u8],
    width: usize,
    channels: usize,
    taps: &Taps,
    row_offset: usize,
) -> Vec<u8> {
    let out_h = taps.bounds.len();
    let stride = width * channels;
    let mut out = vec![0u8; out_h * stride];
    let mut acc = vec![0i32; stride];
    for ((&(ymin, count), k), dst) in taps
        .bounds
        .iter()
        .zip(&taps.weights)
        .zip(out.chunks_exact_mut(stride))
    {
        acc.fill(1 << (PRECISION_BITS - 1));
        let first = (ymin - row_offset) * stride;
        for (row, &w) in src[first..first + count * stride]
            .chunks_exact(stride)
            .zip(k)
        {
            for (a, &v) in acc.iter_mut().zip(row) {
                *a += i32::from(v) * w;
            }
        }
        for (d, &a) in dst.iter_mut().zip(&acc) {
            *d = clip8(a);
        }
    }
    out
}

/// Pillow's nearest-neighbour resize: an affine transform sampling pixel centres.
fn resize_nearest(
    src: &[u8],
    (width, height): (usize, usize),
    channels: usize,
    (out_w, out_h): (usize, usize),
) -> Vec<u8> {
    let sx = width as f64 / out_w as f64;
    let sy = height as f64 / out_h as f64;
    let mut out = Vec::with_capacity(out_w * out_h * channels);
    for y in 0..out_h {
        let yin = (((y as f64 + 0.5) * sy) as usize).min(height - 1);
        for x in 0..out_w {
            let xin = (((x as f64 + 0.5) * sx) as usize).min(width - 1);
            out.extend_from_slice(&src[(yin * width + xin) * channels..][..channels]);
        }
    }
    out
}

/// How the resize step sizes its output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResizeTo {
    /// The shortest edge becomes this many pixels; the longest keeps the aspect ratio,
    /// truncated (Hugging Face's `get_resize_output_image_size`).
    ShortestEdge(u32),
    /// Exactly this height and width.
    Exact { height: u32, width: u32 },
}

/// A Hugging Face image processor's steps, read from `preprocessor_config.json` (or the catalog).
#[derive(Debug, Clone, PartialEq)]
pub struct ImageProcessor {
    pub resize: Option<ResizeTo>,
    pub filter: Filter,
    /// Centre crop to (height, width).
    pub crop: Option<(u32, u32)>,
    pub rescale_factor: Option<f64>,
    /// EfficientNet's `rescale_offset`: subtract 1 after rescaling (maps to [-1, 1]).
    pub rescale_offset: bool,
    pub mean: Option<[f32; 3]>,
    pub std: Option<[f32; 3]>,
    /// EfficientNet's `include_top`: divide by `std` a second time after normalising, as its
    /// processor does.
    pub include_top: bool,
}

#[derive(Debug, Deserialize)]
struct SizeJson {
    shortest_edge: Option<u32>,
    height: Option<u32>,
    width: Option<u32>,
}

#[derive(Debug, Deserialize)]
struct ProcessorJson {
    image_processor_type: Option<String>,
    do_resize: Option<bool>,
    size: Option<SizeJson>,
    resample: Option<i64>,
    do_center_crop: Option<bool>,
    crop_size: Option<SizeJson>,
    do_rescale: Option<bool>,
    rescale_factor: Option<f64>,
    rescale_offset: Option<bool>,
    do_normalize: Option<bool>,
    image_mean: Option<Vec<f32>>,
    image_std: Option<Vec<f32>>,
    include_top: Option<bool>,
}

impl ImageProcessor {
    /// Reads a `preprocessor_config.json`. Settings it leaves out take the Hugging Face base
    /// processor's defaults (bilinear, rescale by 1/255, no crop, no normalisation).
    pub fn from_config_file(model: &str, path: &Path) -> Result<Self, AdapterError> {
        let bad = |reason: String| AdapterError::BadFile {
            model: model.to_owned(),
            path: path.to_owned(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
        let json: ProcessorJson = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
        for (name, size) in [("size", &json.size), ("crop_size", &json.crop_size)] {
            let sides = size
                .iter()
                .flat_map(|s| [s.shortest_edge, s.height, s.width]);
            if sides.flatten().any(|side| side == 0) {
                return Err(bad(format!("`{name}` has a side of 0 pixels")));
            }
        }
        let is_efficientnet = json
            .image_processor_type
            .as_deref()
            .is_some_and(|t| t.starts_with("EfficientNet"));
        let resize = if json.do_resize.unwrap_or(true) {
            match &json.size {
                Some(SizeJson {
                    shortest_edge: Some(edge),
                    ..
                }) => Some(ResizeTo::ShortestEdge(*edge)),
                Some(SizeJson {
                    height: Some(height),
                    width: Some(width),
                    ..
                }) => Some(ResizeTo::Exact {
                    height: *height,
                    width: *width,
                }),
                _ => {
                    return Err(bad(
                        "`size` needs `shortest_edge` or `height` and `width`".into()
                    ));
                }
            }
        } else {
            None
        };
        let filter = match json.resample {
            None => Filter::Bilinear,
            Some(code) => Filter::from_pil(code)
                .ok_or_else(|| bad(format!("unknown resample filter {code}")))?,
        };
        let crop = if json.do_center_crop.unwrap_or(false) {
            match &json.crop_size {
                Some(SizeJson {
                    height: Some(h),
                    width: Some(w),
                    ..
                }) => Some((*h, *w)),
                Some(SizeJson {
                    shortest_edge: Some(edge),
                    ..
                }) => Some((*edge, *edge)),
                _ => return Err(bad("`do_center_crop` without a `crop_size`".into())),
            }
        } else {
            None
        };
        let three = |name: &str, v: &Option<Vec<f32>>| -> Result<Option<[f32; 3]>, AdapterError> {
            match v {
                None => Ok(None),
                Some(v) => <[f32; 3]>::try_from(v.as_slice())
                    .map(Some)
                    .map_err(|_| bad(format!("`{name}` needs 3 values, has {}", v.len()))),
            }
        };
        let normalize = json.do_normalize.unwrap_or(true);
        Ok(Self {
            resize,
            filter,
            crop,
            rescale_factor: json
                .do_rescale
                .unwrap_or(true)
                .then_some(json.rescale_factor.unwrap_or(1.0 / 255.0)),
            rescale_offset: json.rescale_offset.unwrap_or(false),
            mean: if normalize {
                three("image_mean", &json.image_mean)?
            } else {
                None
            },
            std: if normalize {
                three("image_std", &json.image_std)?
            } else {
                None
            },
            include_top: is_efficientnet && json.include_top.unwrap_or(true),
        })
    }

    /// The processor the catalog's `params.preprocessing` describes (for exports without a
    /// `preprocessor_config.json`).
    pub fn from_catalog(p: &modelmux_registry::ImagePreprocessing) -> Self {
        use modelmux_registry::Resample;
        let to32 = |v: [f64; 3]| v.map(|x| x as f32);
        Self {
            resize: p.resize_shortest_edge.map(ResizeTo::ShortestEdge),
            filter: match p.resample {
                Some(Resample::Nearest) => Filter::Nearest,
                Some(Resample::Bicubic) => Filter::Bicubic,
                Some(Resample::Bilinear) | None => Filter::Bilinear,
            },
            crop: p.crop_size.map(|c| (c, c)),
            rescale_factor: Some(p.rescale_factor.unwrap_or(1.0 / 255.0)),
            rescale_offset: false,
            mean: p.mean.map(to32),
            std: p.std.map(to32),
            include_top: false,
        }
    }

    /// The processor of a model's export: `preprocessor_config.json` when the export has one,
    /// else the catalog's `params.preprocessing`.
    pub fn for_model(ctx: &crate::LoadContext<'_>) -> Result<Self, AdapterError> {
        let file = ctx.export_dir.join("preprocessor_config.json");
        if file.exists() {
            return Self::from_config_file(&ctx.model(), &file);
        }
        match &ctx.spec.params.preprocessing {
            Some(p) => Ok(Self::from_catalog(p)),
            None => Err(AdapterError::Config {
                model: ctx.model(),
                reason: "no preprocessor_config.json in the export and no params.preprocessing \
                         in the catalog"
                    .into(),
            }),
        }
    }

    /// The (height, width) of the processed image.
    pub fn output_size(&self, image: &Image) -> (u32, u32) {
        if let Some(crop) = self.crop {
            return crop;
        }
        self.resized_size(image.height, image.width)
    }

    fn resized_size(&self, height: u32, width: u32) -> (u32, u32) {
        match self.resize {
            None => (height, width),
            Some(ResizeTo::Exact { height, width }) => (height, width),
            Some(ResizeTo::ShortestEdge(edge)) => {
                let (short, long) = if width <= height {
                    (width, height)
                } else {
                    (height, width)
                };
                // Python's int(size * long / short): a float division, truncated.
                let new_long = (f64::from(edge) * f64::from(long) / f64::from(short)) as u32;
                if width <= height {
                    (new_long, edge)
                } else {
                    (edge, new_long)
                }
            }
        }
    }

    /// The resized and cropped 8-bit pixels (height, width, RGB interleaved): what PIL hands
    /// back before rescaling.
    pub fn resize_and_crop(&self, image: &Image) -> (u32, u32, Vec<u8>) {
        let (mut h, mut w) = (image.height, image.width);
        let mut pixels = std::borrow::Cow::Borrowed(image.rgb.as_slice());
        if self.resize.is_some() {
            let (nh, nw) = self.resized_size(h, w);
            if (nh, nw) != (h, w) {
                pixels = resize_u8(
                    &pixels,
                    (w as usize, h as usize),
                    3,
                    (nw as usize, nh as usize),
                    self.filter,
                )
                .into();
                (h, w) = (nh, nw);
            }
        }
        if let Some((ch, cw)) = self.crop {
            pixels = center_crop(&pixels, (h, w), (ch, cw)).into();
            (h, w) = (ch, cw);
        }
        (h, w, pixels.into_owned())
    }

    /// One image as a [3, height, width] float tensor, appended to `out`.
    fn write_chw(&self, image: &Image, out: &mut Vec<f32>) {
        let (h, w, pixels) = self.resize_and_crop(image);
        let plane = h as usize * w as usize;
        for c in 0..3 {
            for i in 0..plane {
                out.push(self.value(pixels[i * 3 + c], c));
            }
        }
    }

    /// One 8-bit sample through rescale and normalise, in the same float widths as the Python
    /// code: rescale in float64 then cast to float32, normalise in float32.
    fn value(&self, sample: u8, channel: usize) -> f32 {
        let mut v = match self.rescale_factor {
            Some(factor) => (f64::from(sample) * factor) as f32,
            None => f32::from(sample),
        };
        if self.rescale_offset {
            v -= 1.0;
        }
        if let (Some(mean), Some(std)) = (self.mean, self.std) {
            v = (v - mean[channel]) / std[channel];
        }
        if self.include_top
            && let Some(std) = self.std
        {
            v /= std[channel];
        }
        v
    }

    /// A batch of images as `pixel_values` [batch, 3, height, width]. Every processed image
    /// must have the same size (true whenever the processor crops or resizes to a fixed size).
    pub fn pixel_values(&self, model: &str, images: &[Image]) -> Result<Array4<f32>, AdapterError> {
        let Some(first) = images.first() else {
            return Err(AdapterError::InvalidRequest {
                model: model.to_owned(),
                reason: "no images".into(),
            });
        };
        let (h, w) = self.output_size(first);
        let mut data = Vec::with_capacity(images.len() * 3 * h as usize * w as usize);
        for image in images {
            if self.output_size(image) != (h, w) {
                return Err(AdapterError::InvalidRequest {
                    model: model.to_owned(),
                    reason: format!(
                        "images of different processed sizes in one batch ({:?} and {:?})",
                        (h, w),
                        self.output_size(image)
                    ),
                });
            }
            // A long thin image resized by its shortest edge grows along the other: 16 384×1
            // pixels to CLIP's 224 would be 822 million pixels (2.4 GB) from a tiny file.
            let (rh, rw) = self.resized_size(image.height, image.width);
            if u64::from(rh) * u64::from(rw) > MAX_PIXELS {
                return Err(AdapterError::InvalidRequest {
                    model: model.to_owned(),
                    reason: format!(
                        "a {}×{} image would be resized to {rw}×{rh}, over {MAX_PIXELS} pixels; \
                         crop it closer to a square first",
                        image.width, image.height
                    ),
                });
            }
            self.write_chw(image, &mut data);
        }
        Array4::from_shape_vec((images.len(), 3, h as usize, w as usize), data).map_err(|e| {
            AdapterError::InvalidRequest {
                model: model.to_owned(),
                reason: e.to_string(),
            }
        })
    }
}

/// Hugging Face's `center_crop`: top-left at ((H − h) / 2, (W − w) / 2) floored; where the
/// crop is larger than the image, the missing pixels are zeros.
fn center_crop(src: &[u8], (h, w): (u32, u32), (ch, cw): (u32, u32)) -> Vec<u8> {
    let (h, w, ch, cw) = (h as i64, w as i64, ch as i64, cw as i64);
    // Python's floor division; negative when the crop is larger than the image, in which case
    // the rows and columns outside the image stay zero (the padding).
    let top = (h - ch).div_euclid(2);
    let left = (w - cw).div_euclid(2);
    let mut out = vec![0u8; (ch * cw * 3) as usize];
    for y in 0..ch {
        let sy = y + top;
        if sy < 0 || sy >= h {
            continue;
        }
        for x in 0..cw {
            let sx = x + left;
            if sx < 0 || sx >= w {
                continue;
            }
            let s = ((sy * w + sx) * 3) as usize;
            let d = ((y * cw + x) * 3) as usize;
            out[d..d + 3].copy_from_slice(&src[s..s + 3]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn composite_matches_pillow_corners() {
        assert_eq!(composite_on_white([10, 20, 30], 255), [10, 20, 30]);
        assert_eq!(composite_on_white([10, 20, 30], 0), [255, 255, 255]);
    }

    #[test]
    fn identity_resize_keeps_pixels() {
        let src: Vec<u8> = (0..(4 * 3 * 3)).map(|v| v as u8).collect();
        assert_eq!(resize_u8(&src, (4, 3), 3, (4, 3), Filter::Bicubic), src);
    }

    /// Found by the image_decode fuzz target (fuzz/corpus/image_decode/regression-*): a
    /// resize to zero width split rows into chunks of zero bytes, which panics.
    #[test]
    fn resize_to_no_pixels_is_empty() {
        let src: Vec<u8> = (0..(4 * 3 * 3)).map(|v| v as u8).collect();
        for filter in (0..6).filter_map(Filter::from_pil) {
            for out in [(0, 3), (4, 0), (0, 0), (0, 7), (9, 0)] {
                assert!(
                    resize_u8(&src, (4, 3), 3, out, filter).is_empty(),
                    "{filter:?} {out:?}"
                );
            }
        }
        let image = Image::from_rgb8(4, 3, src).unwrap();
        let processor = ImageProcessor {
            resize: Some(ResizeTo::ShortestEdge(0)),
            filter: Filter::Bicubic,
            crop: None,
            rescale_factor: Some(1.0 / 255.0),
            rescale_offset: false,
            mean: None,
            std: None,
            include_top: false,
        };
        assert_eq!(processor.resize_and_crop(&image), (0, 0, Vec::new()));
    }

    #[test]
    fn a_resize_over_the_pixel_limit_is_an_error() {
        let processor = ImageProcessor {
            resize: Some(ResizeTo::ShortestEdge(224)),
            filter: Filter::Bicubic,
            crop: Some((224, 224)),
            rescale_factor: Some(1.0 / 255.0),
            rescale_offset: false,
            mean: None,
            std: None,
            include_top: false,
        };
        let strip = Image::from_rgb8(16_384, 1, vec![0; 16_384 * 3]).unwrap();
        let err = processor.pixel_values("m", &[strip]).unwrap_err();
        assert!(
            matches!(&err, AdapterError::InvalidRequest { reason, .. } if reason.contains("3670016×224")),
            "{err}"
        );
        let wide = Image::from_rgb8(100, 10, vec![0; 100 * 10 * 3]).unwrap();
        assert_eq!(
            processor.pixel_values("m", &[wide]).unwrap().shape(),
            [1, 3, 224, 224]
        );
    }

    #[test]
    fn zero_sizes_in_a_processor_config_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("preprocessor_config.json");
        for config in [
            r#"{"size": {"shortest_edge": 0}}"#,
            r#"{"size": {"height": 224, "width": 0}}"#,
            r#"{"size": {"shortest_edge": 224}, "do_center_crop": true, "crop_size": {"height": 0, "width": 224}}"#,
        ] {
            std::fs::write(&path, config).unwrap();
            let err = ImageProcessor::from_config_file("m", &path).unwrap_err();
            assert!(
                matches!(&err, AdapterError::BadFile { reason, .. } if reason.contains("side of 0")),
                "{config}: {err}"
            );
        }
    }

    #[test]
    fn a_decoder_panic_is_a_decode_error() {
        let seed = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fuzz/corpus/image_decode/regression-jpeg-upsampler-panic.jpg");
        let bytes = std::fs::read(seed).unwrap();
        let err = Image::decode(&bytes).unwrap_err();
        assert!(
            matches!(&err, ImageError::Decode { reason, .. } if reason.starts_with("the decoder failed")),
            "{err}"
        );
        assert!(matches!(
            unpanicked("x", || panic!("boom")),
            Err(ImageError::Decode { reason, .. }) if reason == "the decoder failed: boom"
        ));
    }

    #[test]
    fn corrupt_and_huge_images_are_errors() {
        assert!(matches!(
            Image::decode(b"\x89PNG\r\n\x1a\nnot really"),
            Err(ImageError::Decode { .. })
        ));
        let mut png = Vec::new();
        image::RgbImage::new(64, 64)
            .write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        let limits = DecodeLimits {
            max_side: 32,
            ..DecodeLimits::default()
        };
        assert!(matches!(
            Image::decode_named(&png, "big", limits),
            Err(ImageError::TooLarge { .. })
        ));
        assert!(Image::decode(&png).is_ok());
    }
}
