//! The catalog and manifest fuzz targets' bodies (fuzz/bodies) over their committed seeds and
//! regression inputs (fuzz/corpus), on stable.

#[path = "../../../fuzz/bodies/catalog.rs"]
mod catalog;
#[path = "../../../fuzz/bodies/manifest.rs"]
mod manifest;
#[path = "../../../fuzz/bodies/seeds.rs"]
mod seeds;

#[test]
fn catalog_fuzz_seeds() {
    seeds::replay("catalog", catalog::run);
}

#[test]
fn manifest_fuzz_seeds() {
    seeds::replay("manifest", manifest::run);
}
