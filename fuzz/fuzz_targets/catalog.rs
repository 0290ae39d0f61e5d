//! Fuzz target: bytes as `models.yaml` through `Catalog::from_bytes` (YAML parsing and the
//! semantic checks); only located, typed errors may come back (body in `bodies/catalog.rs`).
#![no_main]

#[path = "../bodies/catalog.rs"]
mod catalog;

libfuzzer_sys::fuzz_target!(|data: &[u8]| catalog::run(data));
