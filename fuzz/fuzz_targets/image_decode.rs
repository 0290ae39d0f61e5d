//! Fuzz target: bytes through `Image::decode_named` (PNG, JPEG, WebP within limits) and, for
//! an image, an image processor's Pillow-exact resize, crop and normalise (body in
//! `bodies/image_decode.rs`).
#![no_main]

#[path = "../bodies/image_decode.rs"]
mod image_decode;

libfuzzer_sys::fuzz_target!(|data: &[u8]| image_decode::run(data));
