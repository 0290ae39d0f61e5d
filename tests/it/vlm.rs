//! Vision-language adapters on the tiny fixtures: Rust preprocessing against the Hugging Face
//! processors' `pixel_values`, and embeddings, zero-shot scores and captions against PyTorch on
//! the same image files (`xtask/python/vision_refs.py`, run by `cargo xtask fixtures`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use modelmux::{ManagerOptions, ModelManager};
use modelmux_adapters::image::{Filter, Image, ImageProcessor, ResizeTo};
use modelmux_adapters::vlm::{
    BlipCaptioner, CaptionOptions, ImageCaptioner, ImageTextEncoder, cosine,
};
use modelmux_registry::{Catalog, Manifest};
use modelmux_tests::{fixture, fixtures_dir, runtime};
use ndarray::ArrayD;

/// The committed test images.
pub(crate) fn image_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data/images")
}

/// The reference tensors of one file under `target/modelmux-fixtures/vision`.
pub(crate) fn refs(file: &str) -> BTreeMap<String, ArrayD<f32>> {
    refs_in(&fixture(&format!("vision/{file}")))
}

/// The tensors of a safetensors file, as f32 (integers converted).
pub(crate) fn refs_in(path: &std::path::Path) -> BTreeMap<String, ArrayD<f32>> {
    let bytes = std::fs::read(path).expect("read refs");
    let tensors = safetensors::SafeTensors::deserialize(&bytes).expect("parse refs");
    tensors
        .tensors()
        .into_iter()
        .map(|(name, view)| {
            let shape = view.shape().to_vec();
            let data: Vec<f32> = match view.dtype() {
                safetensors::Dtype::F32 => view
                    .data()
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
                safetensors::Dtype::U8 => view.data().iter().map(|&v| f32::from(v)).collect(),
                safetensors::Dtype::F64 => view
                    .data()
                    .chunks_exact(8)
                    .map(|c| f64::from_le_bytes(c.try_into().unwrap()) as f32)
                    .collect(),
                safetensors::Dtype::I64 => view
                    .data()
                    .chunks_exact(8)
                    .map(|c| i64::from_le_bytes(c.try_into().unwrap()) as f32)
                    .collect(),
                other => panic!("{name}: unexpected dtype {other:?}"),
            };
            (name, ArrayD::from_shape_vec(shape, data).expect("shape"))
        })
        .collect()
}

/// The images the references were made from, in their order.
pub(crate) fn ref_images() -> Vec<(String, Image)> {
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("vision/refs.json")).unwrap())
            .unwrap();
    json["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            let name = n.as_str().unwrap().to_owned();
            let image = Image::open(image_dir().join(&name)).unwrap_or_else(|e| panic!("{e}"));
            (name, image)
        })
        .collect()
}

/// The images for parity checks: decoded by modelmux, except JPEGs, which take Pillow's decoded
/// pixels. JPEG decoders legitimately differ by a level here and there (the `image` crate's
/// zune-jpeg against Pillow's libjpeg-turbo), which a random-weight tiny model amplifies; the
/// decoder difference is measured on its own in `preprocessing_matches_hugging_face`.
pub(crate) fn parity_images() -> Vec<(String, Image)> {
    let decoded = refs("preprocess.safetensors");
    ref_images()
        .into_iter()
        .map(|(name, image)| {
            if is_jpeg(&name) {
                (name.clone(), pil_decoded(&decoded, &name))
            } else {
                (name, image)
            }
        })
        .collect()
}

fn is_jpeg(name: &str) -> bool {
    name.ends_with(".jpg") || name.ends_with(".jpeg")
}

fn pil_decoded(decoded: &BTreeMap<String, ArrayD<f32>>, name: &str) -> Image {
    let pixels = &decoded[&format!("decoded/{name}")];
    let (h, w) = (pixels.shape()[0] as u32, pixels.shape()[1] as u32);
    Image::from_rgb8(w, h, pixels.iter().map(|&v| v as u8).collect()).unwrap()
}

pub(crate) fn exports() -> PathBuf {
    fixtures_dir().join("tiny/exports")
}

/// A manager over the tiny catalog and its fixture exports.
pub(crate) fn manager() -> ModelManager {
    runtime();
    let catalog =
        Catalog::load(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data/tiny-models.yaml"))
            .unwrap_or_else(|e| panic!("{e}"));
    let mut options = ManagerOptions::local();
    options.exports_dir = Some(exports());
    ModelManager::new(catalog, options)
}

/// The manifest's absolute tolerance.
pub(crate) fn tolerance(id: &str) -> f32 {
    let manifest = Manifest::read(&Manifest::path_for(&exports(), id, "0.1.0"))
        .unwrap()
        .expect("manifest");
    manifest.validation.expect("validation").atol as f32
}

fn max_abs(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

// CLIP's constants as Hugging Face writes them, more digits than an f32 keeps.
#[allow(clippy::excessive_precision)]
fn processor(name: &str) -> ImageProcessor {
    if name == "clip-224" {
        // CLIPImageProcessor's defaults (openai/clip-vit-base-patch32): the real size, where
        // the bicubic filter's support is scaled by the downscaling factor.
        return ImageProcessor {
            resize: Some(ResizeTo::ShortestEdge(224)),
            filter: Filter::Bicubic,
            crop: Some((224, 224)),
            rescale_factor: Some(1.0 / 255.0),
            rescale_offset: false,
            mean: Some([0.48145466, 0.4578275, 0.40821073]),
            std: Some([0.26862954, 0.26130258, 0.27577711]),
            include_top: false,
        };
    }
    let path = exports().join(name).join("0.1.0/preprocessor_config.json");
    ImageProcessor::from_config_file(name, &path).unwrap_or_else(|e| panic!("{e}"))
}

/// Rust preprocessing equals the Hugging Face processors' (PIL backend) on every test image,
/// for every processor config; prints the table of differences.
#[test]
fn preprocessing_matches_hugging_face() {
    let reference = refs("preprocess.safetensors");
    let images = ref_images();
    assert!(images.len() >= 10);
    let mut worst = 0.0f32;
    let mut jpeg_worst = 0.0f32;
    for (file, image) in &images {
        // Decoding alone, in 8-bit levels.
        let ours: Vec<f32> = image.as_rgb().iter().map(|&v| f32::from(v)).collect();
        let levels = max_abs(
            &ours,
            reference[&format!("decoded/{file}")].as_slice().unwrap(),
        );
        if is_jpeg(file) {
            println!(
                "decoding {file}: max difference to Pillow {levels} levels (JPEG decoders differ)"
            );
        } else {
            assert_eq!(levels, 0.0, "{file} decodes differently from Pillow");
        }
    }
    for name in [
        "tiny-clip",
        "tiny-align",
        "tiny-flava",
        "tiny-blip",
        "tiny-vit-classifier",
        "clip-224",
    ] {
        let processor = processor(name);
        let mut line = Vec::new();
        for (file, image) in &images {
            let key = format!("{name}/{file}");
            let theirs = &reference[&key];
            let diff_of = |image: &Image, theirs: &ArrayD<f32>| {
                let ours = processor
                    .pixel_values(name, std::slice::from_ref(image))
                    .unwrap();
                assert_eq!(&ours.shape()[1..], theirs.shape(), "{key}");
                max_abs(ours.as_slice().unwrap(), theirs.as_slice().unwrap())
            };
            let diff = diff_of(image, theirs);
            if let Some(shifted) = reference.get(&format!("{key}#shift8")) {
                // PIL clamps 16-bit grayscale at 255 when converting to RGB; modelmux keeps the
                // high byte (as PIL does for 16-bit RGB), so that image is compared with the
                // reference made from its high bytes, and the raw difference is reported.
                let exact = diff_of(image, shifted);
                line.push(format!("{file}={exact:.1e} (vs PIL's clamp {diff:.2})"));
                worst = worst.max(exact);
            } else if is_jpeg(file) {
                // The pipeline on Pillow's own decoded pixels must be exact; the file as
                // decoded here differs by the decoder's levels.
                let exact = diff_of(&pil_decoded(&reference, file), theirs);
                line.push(format!("{file}={exact:.1e} (own decoder {diff:.1e})"));
                worst = worst.max(exact);
                jpeg_worst = jpeg_worst.max(diff);
            } else {
                line.push(format!("{file}={diff:.1e}"));
                worst = worst.max(diff);
            }
        }
        println!("{name}: {}", line.join(", "));
    }
    println!("JPEG files through modelmux's decoder: max abs diff {jpeg_worst:.2e}");
    println!("preprocessing: max abs diff over all images and processors {worst:.2e}");
    assert!(worst <= 1e-5, "max abs diff {worst}");
}

#[test]
fn corrupt_truncated_and_oversized_images_are_typed_errors() {
    // A PNG cut short fails (JPEG decoders, Pillow's too, fill a truncated scan instead).
    let png = std::fs::read(image_dir().join("chelsea.png")).unwrap();
    assert!(
        Image::decode(&png[..png.len() / 3]).is_err(),
        "a truncated PNG"
    );
    let bytes = std::fs::read(image_dir().join("astronaut.jpg")).unwrap();
    assert!(Image::decode(b"GIF89a not supported").is_err());
    assert!(Image::decode(&[]).is_err());
    let limits = modelmux_adapters::image::DecodeLimits {
        max_side: 100,
        ..Default::default()
    };
    let err = Image::decode_named(&bytes, "astronaut.jpg", limits).unwrap_err();
    assert!(err.to_string().contains("over the limit"), "{err}");
}

async fn encoder_parity(id: &str) {
    let manager = manager();
    let encoder = manager
        .get_model::<Arc<dyn ImageTextEncoder>>(id)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let golden = refs(&format!("{id}.safetensors"));
    let atol = tolerance(id);
    let images: Vec<Image> = parity_images().into_iter().map(|(_, i)| i).collect();
    // The catalog normalises embeddings; the golden ones are the raw projections, normalised
    // here for the comparison.
    let unit = |a: &ArrayD<f32>| -> Vec<Vec<f32>> {
        a.outer_iter()
            .map(|r| {
                let n = r.iter().map(|x| x * x).sum::<f32>().sqrt();
                r.iter().map(|x| x / n).collect()
            })
            .collect()
    };
    let ours = encoder
        .embed_images(&images)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let theirs = unit(&golden["image_embeds"]);
    let image_diff = ours
        .iter()
        .zip(&theirs)
        .map(|(a, b)| max_abs(a, b))
        .fold(0.0, f32::max);
    let prompts: Vec<String> = serde_json::from_str::<serde_json::Value>(
        &std::fs::read_to_string(fixture("vision/refs.json")).unwrap(),
    )
    .unwrap()["prompts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap().to_owned())
        .collect();
    let ours_t = encoder
        .embed_texts(&prompts)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let theirs_t = unit(&golden["text_embeds"]);
    let text_diff = ours_t
        .iter()
        .zip(&theirs_t)
        .map(|(a, b)| max_abs(a, b))
        .fold(0.0, f32::max);
    println!(
        "{id}: {} images, image embeddings max abs diff {image_diff:.2e}, {} texts {text_diff:.2e} (atol {atol})",
        images.len(),
        prompts.len()
    );
    let own: Vec<Image> = ref_images().into_iter().map(|(_, i)| i).collect();
    let own = encoder.embed_images(&own).await.unwrap();
    let own_diff = own
        .iter()
        .zip(&theirs)
        .map(|(a, b)| max_abs(a, b))
        .fold(0.0, f32::max);
    println!(
        "{id}: with modelmux's own JPEG decoding, image embeddings max abs diff {own_diff:.2e}"
    );
    assert!(image_diff <= atol, "{id} image embeddings: {image_diff}");
    assert!(text_diff <= atol, "{id} text embeddings: {text_diff}");

    // Similarity, zero-shot and CLIPScore follow from the embeddings and the logit scale.
    let sims = encoder.similarity(&ours[..1], &ours_t);
    let expected = encoder.logit_scale() * cosine(&theirs[0], &theirs_t[0]);
    assert!(
        (sims[0][0] - expected).abs() <= 1e-3,
        "{} vs {expected}",
        sims[0][0]
    );
    let labels: Vec<String> = vec!["cat".into(), "lighthouse".into(), "astronaut".into()];
    let probs = encoder
        .zero_shot(&images[0], &labels, "a photo of a {}")
        .await
        .unwrap();
    assert_eq!(probs.len(), 3);
    assert!((probs.iter().map(|p| p.score).sum::<f32>() - 1.0).abs() < 1e-5);
    let score = encoder
        .clip_score(&images[..1], &prompts[..1])
        .await
        .unwrap()[0];
    let expected = 2.5 * cosine(&theirs[0], &theirs_t[0]).max(0.0);
    assert!(
        (score - expected).abs() <= 1e-4,
        "CLIPScore {score} vs {expected}"
    );
    // Empty input is an error, not a panic.
    assert!(encoder.embed_images(&[]).await.is_err());
    assert!(encoder.embed_texts(&[]).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tiny_clip_matches_pytorch_from_image_files() {
    encoder_parity("tiny-clip").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tiny_align_matches_pytorch_from_image_files() {
    encoder_parity("tiny-align").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tiny_flava_matches_pytorch_from_image_files() {
    encoder_parity("tiny-flava").await;
}

/// Greedy and beam captions (1, 2 and 3 beams) and prefix-conditioned captions are
/// token-identical to `generate()` on every test image.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tiny_blip_captions_are_token_identical() {
    let manager = manager();
    let captioner = manager
        .get_model::<Arc<dyn ImageCaptioner>>("tiny-blip")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let golden = refs("tiny-blip.safetensors");
    let as_ids = |a: &ArrayD<f32>| a.iter().map(|&v| v as i64).collect::<Vec<i64>>();
    let images = parity_images();
    let mut checked = 0;
    for (name, image) in &images {
        for beams in [1, 2, 3] {
            let options = CaptionOptions {
                beams,
                max_new_tokens: Some(20),
                prefix: None,
            };
            let caption = captioner
                .caption(image, &options)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(
                caption.tokens,
                as_ids(&golden[&format!("{name}/beams{beams}")]),
                "{name} with {beams} beams"
            );
            checked += 1;
        }
    }
    // Prefix conditioning: the reference prompt is [DEC] + the prefix ids.
    let blip = BlipCaptionerRef::new();
    let prefix = as_ids(&golden["prefix"]);
    for (name, image) in &images {
        let tokens = blip
            .0
            .generate(image, &prefix[..prefix.len() - 1], 1, 12)
            .await
            .unwrap();
        assert_eq!(
            tokens,
            as_ids(&golden[&format!("{name}/prefix")]),
            "{name} with a prefix"
        );
        checked += 1;
    }
    println!(
        "tiny-blip: {checked} captions token-identical ({} images)",
        images.len()
    );
    let caption = captioner
        .caption(
            &images[0].1,
            &CaptionOptions {
                beams: 0,
                max_new_tokens: None,
                prefix: None,
            },
        )
        .await;
    assert!(caption.is_err(), "a beam width of 0 is an error");
}

/// The concrete captioner, for calls with explicit prompt ids.
struct BlipCaptionerRef(BlipCaptioner);

impl BlipCaptionerRef {
    fn new() -> Self {
        runtime();
        let catalog =
            Catalog::load(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data/tiny-models.yaml"))
                .unwrap();
        let spec = catalog.get("tiny-blip").unwrap().clone();
        let context = modelmux_adapters::LoadContext {
            spec: &spec,
            export_dir: exports().join("tiny-blip/0.1.0"),
            session: modelmux_runtime_ort::SessionSpec::cpu(),
            queue_limit: 16,
        };
        Self(BlipCaptioner::load(&context).unwrap_or_else(|e| panic!("{e}")))
    }
}

/// The family objects cross tasks and threads (the manager hands leases to any task), and so do
/// the boxed futures their methods return (`BoxFuture` is `Send` by definition).
#[allow(dead_code)]
fn vision_types_are_send_and_sync() {
    fn both<T: Send + Sync>() {}
    both::<Image>();
    both::<Arc<dyn ImageTextEncoder>>();
    both::<Arc<dyn ImageCaptioner>>();
    both::<Arc<dyn modelmux_adapters::specialized::ImageClassifier>>();
    both::<Arc<dyn modelmux_adapters::specialized::QualityAssessor>>();
    both::<Arc<dyn modelmux_adapters::specialized::EmbeddingScorer>>();
    both::<modelmux_adapters::specialized::Evaluator>();
    both::<BlipCaptioner>();
    both::<modelmux_adapters::vlm::DualEncoder>();
}
