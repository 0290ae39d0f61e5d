//! The image_decode fuzz target's body (fuzz/bodies) over its committed seeds and regression
//! inputs (fuzz/corpus), on stable.

#[path = "../../../fuzz/bodies/image_decode.rs"]
mod image_decode;
#[path = "../../../fuzz/bodies/seeds.rs"]
mod seeds;

#[test]
fn image_decode_fuzz_seeds() {
    seeds::replay("image_decode", image_decode::run);
}
