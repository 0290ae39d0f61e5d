//! `evaluate(image, prompt)`: how well an image matches its prompt (CLIPScore), its attributes
//! and its quality, in one call — what the demo shows beside each generated image.

use std::sync::Arc;

use super::{AttributeScores, ImageClassifier, QualityAssessor, QualityScore};
use crate::error::AdapterError;
use crate::image::Image;
use crate::vlm::{ImageTextEncoder, cosine};

/// Everything `evaluate` found about one image.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Evaluation {
    /// `2.5 · max(cos, 0)` between the image and the prompt.
    pub clip_score: f32,
    /// The raw cosine similarity.
    pub cosine: f32,
    /// Each classifier's attributes.
    pub attributes: Vec<AttributeScores>,
    /// Each assessor's score, by model.
    pub quality: Vec<(String, QualityScore)>,
}

/// An encoder plus any classifiers and quality assessors. Hold the leases of every model it
/// uses while it is in use.
#[derive(Debug, Clone)]
pub struct Evaluator {
    pub encoder: Arc<dyn ImageTextEncoder>,
    pub classifiers: Vec<Arc<dyn ImageClassifier>>,
    pub assessors: Vec<Arc<dyn QualityAssessor>>,
}

impl Evaluator {
    pub fn new(encoder: Arc<dyn ImageTextEncoder>) -> Self {
        Self {
            encoder,
            classifiers: Vec::new(),
            assessors: Vec::new(),
        }
    }

    /// Scores one image against its prompt.
    pub async fn evaluate(&self, image: &Image, prompt: &str) -> Result<Evaluation, AdapterError> {
        let images = std::slice::from_ref(image);
        let image_embed = self.encoder.embed_images(images).await?;
        let text_embed = self.encoder.embed_texts(&[prompt.to_owned()]).await?;
        let cosine = cosine(&image_embed[0], &text_embed[0]);
        let mut attributes = Vec::new();
        for classifier in &self.classifiers {
            attributes.extend(classifier.classify(images).await?.into_iter().flatten());
        }
        let mut quality = Vec::new();
        for assessor in &self.assessors {
            for score in assessor.assess(images).await? {
                quality.push((assessor.model().to_owned(), score));
            }
        }
        Ok(Evaluation {
            clip_score: crate::vlm::CLIP_SCORE_WEIGHT * cosine.max(0.0),
            cosine,
            attributes,
            quality,
        })
    }
}
