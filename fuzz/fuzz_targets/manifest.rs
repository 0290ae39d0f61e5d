//! Fuzz target: bytes as an export's `manifest.json` through `Manifest::from_slice`, the
//! write/read round trip and the compatibility check (body in `bodies/manifest.rs`).
#![no_main]

#[path = "../bodies/manifest.rs"]
mod manifest;

libfuzzer_sys::fuzz_target!(|data: &[u8]| manifest::run(data));
