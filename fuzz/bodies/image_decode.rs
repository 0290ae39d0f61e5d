//! The image fuzz target's body: any bytes decode (PNG, JPEG, WebP) into an RGB image within
//! the limits, or fail with a typed `ImageError`; a decoded image then goes through an image
//! processor's resize, centre crop, rescale and normalise into `pixel_values`. Never a panic.
//!
//! The last [`PARAMS`] bytes of the input pick the processor (the decoders ignore bytes after
//! the image ends, so a real image with these bytes appended is a good seed). The limits keep
//! every image small, so the fuzzer spends its time in the decoders, not allocating.
//!
//! Shared by `fuzz_targets/image_decode.rs` and the stable test that replays the committed
//! seeds (`crates/adapters/tests/fuzz_seeds.rs`).

use modelmux_adapters::image::{DecodeLimits, Filter, Image, ImageError, ImageProcessor, ResizeTo};

/// How many trailing bytes choose the processor.
pub(crate) const PARAMS: usize = 5;

/// Small limits: 512 pixels a side, 64 Ki pixels, 16 MiB of decoder memory.
const LIMITS: DecodeLimits = DecodeLimits {
    max_side: 512,
    max_pixels: 64 * 1024,
    max_alloc: 16 << 20,
};

/// The most pixels the resize step may produce here (a long thin image resized by its shortest
/// edge grows along the other): larger outputs are skipped to keep each run fast.
const MAX_RESIZED_PIXELS: u64 = 256 * 1024;

/// The processor the trailing bytes describe: filter, resize (none, shortest edge, exact),
/// sizes up to 64 (0 included) and an optional centre crop; CLIP's rescale and normalisation.
pub(crate) fn processor(params: [u8; PARAMS]) -> ImageProcessor {
    let [mode, a, b, crop_h, crop_w] = params;
    let size = |v: u8| u32::from(v % 65);
    ImageProcessor {
        resize: match mode / 6 % 3 {
            0 => None,
            1 => Some(ResizeTo::ShortestEdge(size(a))),
            _ => Some(ResizeTo::Exact {
                height: size(a),
                width: size(b),
            }),
        },
        filter: Filter::from_pil(i64::from(mode % 6)).expect("0..6 are Pillow filters"),
        crop: (crop_h < 128).then(|| (size(crop_h), size(crop_w))),
        rescale_factor: Some(1.0 / 255.0),
        rescale_offset: mode >= 128,
        mean: Some([0.481_454_66, 0.457_827_5, 0.408_210_73]),
        std: Some([0.268_629_54, 0.261_302_6, 0.275_777_1]),
        include_top: false,
    }
}

/// Decodes `data` and, when it is an image, processes it.
pub(crate) fn run(data: &[u8]) {
    let image = match Image::decode_named(data, "fuzz", LIMITS) {
        Ok(image) => image,
        Err(error) => {
            assert!(
                matches!(
                    error,
                    ImageError::Decode { .. }
                        | ImageError::TooLarge { .. }
                        | ImageError::Empty { .. }
                ),
                "decoding bytes gave {error:?}"
            );
            let _ = error.to_string();
            return;
        }
    };
    let (width, height) = (image.width(), image.height());
    assert!(width > 0 && height > 0 && width <= LIMITS.max_side && height <= LIMITS.max_side);
    assert!(u64::from(width) * u64::from(height) <= LIMITS.max_pixels);
    assert_eq!(image.as_rgb().len(), width as usize * height as usize * 3);

    let Some(params) = data.last_chunk::<PARAMS>() else {
        return;
    };
    let processor = processor(*params);
    let resized = ImageProcessor {
        crop: None,
        ..processor.clone()
    }
    .output_size(&image);
    if u64::from(resized.0) * u64::from(resized.1) > MAX_RESIZED_PIXELS {
        return;
    }
    match processor.pixel_values("fuzz", std::slice::from_ref(&image)) {
        Ok(pixels) => {
            let (h, w) = processor.output_size(&image);
            assert_eq!(pixels.shape(), [1, 3, h as usize, w as usize]);
            assert!(
                pixels.iter().all(|v| v.is_finite()),
                "non-finite pixel values"
            );
        }
        Err(error) => {
            let _ = error.to_string();
        }
    }
}
