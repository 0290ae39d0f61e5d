//! MLP heads over image embeddings (`mlp-head` exports: `image_embeds` → `score`), and the
//! aesthetic assessor that feeds one with a dual encoder's embeddings.

use std::sync::Arc;

use modelmux_runtime_ort::{Inputs, SessionPool};
use ndarray::Array2;

use super::{EmbeddingScorer, QualityAssessor, QualityScore, ScoreScale};
use crate::context::LoadContext;
use crate::error::AdapterError;
use crate::image::Image;
use crate::vlm::{BoxFuture, ImageTextEncoder, normalize};

/// An MLP head. Catalog `params.extra`: `input_model` (the encoder whose image embeddings it
/// reads), `input_dim`, `score_range: [min, max]`, `normalize_input` (default true: the LAION
/// predictor reads L2-normalised CLIP embeddings).
#[derive(Debug)]
pub struct MlpHead {
    model: String,
    pool: SessionPool,
    input_model: Option<String>,
    input_dim: usize,
    normalize_input: bool,
    scale: ScoreScale,
}

impl MlpHead {
    pub fn load(context: &LoadContext<'_>) -> Result<Self, AdapterError> {
        let extra = &context.spec.params.extra;
        let pool = context.pool("model.onnx", true)?;
        let input_dim = match extra.get("input_dim").and_then(serde_json::Value::as_u64) {
            Some(dim) => dim as usize,
            None => pool
                .info()
                .input("image_embeds")
                .and_then(|t| match t.shape.get(1) {
                    Some(modelmux_runtime_ort::Dim::Fixed(n)) => Some(*n),
                    _ => None,
                })
                .ok_or_else(|| AdapterError::Config {
                    model: context.model(),
                    reason: "set `params.extra.input_dim`: the model's `image_embeds` width is not fixed".into(),
                })?,
        };
        let range = extra
            .get("score_range")
            .and_then(|r| r.as_array())
            .map(|r| {
                let at = |i: usize| {
                    r.get(i)
                        .and_then(serde_json::Value::as_f64)
                        .map(|v| v as f32)
                };
                (at(0), at(1))
            });
        Ok(Self {
            model: context.model(),
            pool,
            input_model: extra.get("input_model").and_then(|v| v.as_str()).map(str::to_owned),
            input_dim,
            normalize_input: extra.get("normalize_input").and_then(serde_json::Value::as_bool).unwrap_or(true),
            scale: ScoreScale {
                min: range.and_then(|r| r.0),
                max: range.and_then(|r| r.1),
                higher_is_better: true,
                meaning: "aesthetic appeal predicted from image embeddings (LAION-style MLP head); higher is better"
                    .into(),
            },
        })
    }

    pub fn shutdown(&self) {
        self.pool.shutdown();
    }
}

impl EmbeddingScorer for MlpHead {
    fn model(&self) -> &str {
        &self.model
    }

    fn input_model(&self) -> Option<&str> {
        self.input_model.as_deref()
    }

    fn input_dim(&self) -> usize {
        self.input_dim
    }

    fn scale(&self) -> ScoreScale {
        self.scale.clone()
    }

    fn score_embeddings<'a>(
        &'a self,
        embeddings: &'a [Vec<f32>],
    ) -> BoxFuture<'a, Result<Vec<f32>, AdapterError>> {
        Box::pin(async move {
            if embeddings.is_empty() || embeddings.iter().any(|e| e.len() != self.input_dim) {
                return Err(AdapterError::InvalidRequest {
                    model: self.model.clone(),
                    reason: format!("needs one or more embeddings of length {}", self.input_dim),
                });
            }
            let mut data: Vec<f32> = Vec::with_capacity(embeddings.len() * self.input_dim);
            for e in embeddings {
                let mut e = e.clone();
                if self.normalize_input {
                    normalize(&mut e);
                }
                data.extend(e);
            }
            let input =
                Array2::from_shape_vec((embeddings.len(), self.input_dim), data).map_err(|e| {
                    AdapterError::InvalidRequest {
                        model: self.model.clone(),
                        reason: e.to_string(),
                    }
                })?;
            let mut outputs = self
                .pool
                .run(Inputs::new().with("image_embeds", input))
                .await?;
            let score = outputs.take::<f32>("score")?;
            Ok(score.iter().copied().collect())
        })
    }
}

/// Aesthetic quality: a head over an encoder's image embeddings. Hold the leases of both
/// models while using it (the manager accounts for them; this only borrows their objects).
#[derive(Debug, Clone)]
pub struct AestheticAssessor {
    head: Arc<dyn EmbeddingScorer>,
    encoder: Arc<dyn ImageTextEncoder>,
}

impl AestheticAssessor {
    /// Pairs a head with its encoder; their embedding widths must agree.
    pub fn new(
        head: Arc<dyn EmbeddingScorer>,
        encoder: Arc<dyn ImageTextEncoder>,
    ) -> Result<Self, AdapterError> {
        if head.input_dim() != encoder.dimensions() {
            return Err(AdapterError::Config {
                model: head.model().to_owned(),
                reason: format!(
                    "reads embeddings of length {}, but {} makes {}",
                    head.input_dim(),
                    encoder.model(),
                    encoder.dimensions()
                ),
            });
        }
        Ok(Self { head, encoder })
    }
}

impl QualityAssessor for AestheticAssessor {
    fn model(&self) -> &str {
        self.head.model()
    }

    fn scale(&self) -> ScoreScale {
        self.head.scale()
    }

    fn assess<'a>(
        &'a self,
        images: &'a [Image],
    ) -> BoxFuture<'a, Result<Vec<QualityScore>, AdapterError>> {
        Box::pin(async move {
            let embeddings = self.encoder.embed_images(images).await?;
            let scores = self.head.score_embeddings(&embeddings).await?;
            let scale = self.head.scale();
            Ok(scores
                .into_iter()
                .map(|score| QualityScore {
                    score,
                    scale: scale.clone(),
                })
                .collect())
        })
    }
}
