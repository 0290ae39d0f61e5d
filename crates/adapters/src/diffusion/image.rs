//! RGB8 images: PNG writing (with the generation parameters in a `tEXt` chunk) and reading.

use std::io::{BufWriter, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::AdapterError;

/// An 8-bit RGB image, rows top to bottom, pixels interleaved `RGBRGB…`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RgbImage {
    pub width: u32,
    pub height: u32,
    pub pixels: Vec<u8>,
}

impl std::fmt::Debug for RgbImage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RgbImage({}×{})", self.width, self.height)
    }
}

impl RgbImage {
    /// An image from its pixels, which must number `width · height · 3`.
    pub fn new(width: u32, height: u32, pixels: Vec<u8>) -> Option<Self> {
        (pixels.len() == width as usize * height as usize * 3).then_some(Self {
            width,
            height,
            pixels,
        })
    }

    /// The pixel at (`x`, `y`).
    pub fn pixel(&self, x: u32, y: u32) -> [u8; 3] {
        let i = (y as usize * self.width as usize + x as usize) * 3;
        [self.pixels[i], self.pixels[i + 1], self.pixels[i + 2]]
    }

    /// Bilinearly resized to `width` × `height` (a copy when the size already matches). The
    /// pipelines resize init images only when their size differs from the request's.
    pub fn resized(&self, width: u32, height: u32) -> RgbImage {
        if width == self.width && height == self.height {
            return self.clone();
        }
        let mut pixels = Vec::with_capacity(width as usize * height as usize * 3);
        let sx = self.width as f32 / width as f32;
        let sy = self.height as f32 / height as f32;
        for y in 0..height {
            let fy = ((y as f32 + 0.5) * sy - 0.5).clamp(0.0, (self.height - 1) as f32);
            let (y0, wy) = (fy.floor() as u32, fy - fy.floor());
            let y1 = (y0 + 1).min(self.height - 1);
            for x in 0..width {
                let fx = ((x as f32 + 0.5) * sx - 0.5).clamp(0.0, (self.width - 1) as f32);
                let (x0, wx) = (fx.floor() as u32, fx - fx.floor());
                let x1 = (x0 + 1).min(self.width - 1);
                for c in 0..3 {
                    let p = |x: u32, y: u32| self.pixel(x, y)[c] as f32;
                    let top = p(x0, y0) * (1.0 - wx) + p(x1, y0) * wx;
                    let bottom = p(x0, y1) * (1.0 - wx) + p(x1, y1) * wx;
                    pixels.push((top * (1.0 - wy) + bottom * wy).round() as u8);
                }
            }
        }
        RgbImage {
            width,
            height,
            pixels,
        }
    }
}

/// Writes `image` as a PNG at `path`, with each `(keyword, text)` pair as a `tEXt` chunk
/// (the pipelines pass `("parameters", <the resolved request as JSON>)`).
pub fn write_png(path: &Path, image: &RgbImage, text: &[(&str, &str)]) -> Result<(), AdapterError> {
    let bad = |reason: String| AdapterError::BadFile {
        model: "png".into(),
        path: path.to_path_buf(),
        reason,
    };
    let file = std::fs::File::create(path).map_err(|e| bad(e.to_string()))?;
    let mut out = BufWriter::new(file);
    let mut encoder = png::Encoder::new(&mut out, image.width, image.height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    for (keyword, value) in text {
        encoder
            .add_text_chunk((*keyword).to_string(), (*value).to_string())
            .map_err(|e| bad(e.to_string()))?;
    }
    let mut writer = encoder.write_header().map_err(|e| bad(e.to_string()))?;
    writer
        .write_image_data(&image.pixels)
        .map_err(|e| bad(e.to_string()))?;
    writer.finish().map_err(|e| bad(e.to_string()))?;
    out.flush().map_err(|e| bad(e.to_string()))?;
    Ok(())
}

/// Reads an 8-bit PNG file (RGB, RGBA, grey or grey+alpha; alpha is dropped) and its `tEXt`
/// chunks.
pub fn read_png(path: &Path) -> Result<(RgbImage, Vec<(String, String)>), AdapterError> {
    let bytes = std::fs::read(path).map_err(|e| AdapterError::BadFile {
        model: "png".into(),
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    decode_png(&bytes).map_err(|reason| AdapterError::BadFile {
        model: "png".into(),
        path: path.to_path_buf(),
        reason,
    })
}

/// Decodes PNG bytes as [`read_png`] does; the error says what is wrong with them.
pub fn decode_png(bytes: &[u8]) -> Result<(RgbImage, Vec<(String, String)>), String> {
    let mut decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder.read_info().map_err(|e| e.to_string())?;
    let size = reader
        .output_buffer_size()
        .ok_or_else(|| "image too large".to_string())?;
    let mut buf = vec![0; size];
    let info = reader.next_frame(&mut buf).map_err(|e| e.to_string())?;
    let channels = match info.color_type {
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        png::ColorType::Grayscale => 1,
        png::ColorType::GrayscaleAlpha => 2,
        other => return Err(format!("unsupported colour type {other:?}")),
    };
    let mut pixels = Vec::with_capacity(info.width as usize * info.height as usize * 3);
    for row in buf[..info.buffer_size()].chunks(info.line_size) {
        for px in row.chunks(channels).take(info.width as usize) {
            match channels {
                1 | 2 => pixels.extend_from_slice(&[px[0], px[0], px[0]]),
                _ => pixels.extend_from_slice(&px[..3]),
            }
        }
    }
    let text = reader
        .info()
        .uncompressed_latin1_text
        .iter()
        .map(|t| (t.keyword.clone(), t.text.clone()))
        .collect();
    let image = RgbImage::new(info.width, info.height, pixels)
        .ok_or_else(|| "pixel count does not match the size".to_string())?;
    Ok((image, text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn png_round_trips_with_its_text() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.png");
        let image = RgbImage::new(3, 2, (0..18).collect()).unwrap();
        write_png(&path, &image, &[("parameters", "{\"seed\":1}")]).unwrap();
        let (back, text) = read_png(&path).unwrap();
        assert_eq!(back, image);
        assert_eq!(text, vec![("parameters".into(), "{\"seed\":1}".into())]);
    }
}
