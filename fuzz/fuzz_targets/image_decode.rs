//! Fuzz target: bytes through `Image::decode_named` (PNG, JPEG, WebP within limits) and, for
//! an image, an image processor's Pillow-exact resize, crop and normalise (body in
//! `bodies/image_decode.rs`).
//!
//! `decode_named` turns a panic inside the `image` crate's decoders into a decode error, which
//! libfuzzer-sys's panic hook (abort on any panic, even a caught one) would report as a crash;
//! the init replaces it with one that only prints the panic's one-line message. A panic anywhere
//! else still reaches libfuzzer-sys's `catch_unwind`, which aborts: a crash, its message above.
#![no_main]

#[path = "../bodies/image_decode.rs"]
mod image_decode;

libfuzzer_sys::fuzz_target!(
    init: {
        std::panic::set_hook(Box::new(|info| eprintln!("{info}")));
    },
    |data: &[u8]| image_decode::run(data)
);
