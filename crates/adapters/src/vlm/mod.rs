//! The `vlm` family: image–text encoders (CLIP, ALIGN, FLAVA) and captioners (BLIP).
//!
//! Two traits, each served by the manager as an `Arc<dyn …>`:
//! - [`ImageTextEncoder`]: embeddings of images and texts in one space, similarity with the
//!   model's logit scale, zero-shot classification and CLIPScore.
//! - [`ImageCaptioner`]: a caption for an image, greedy or beam search, optionally after a text
//!   prefix.
//!
//! Methods return boxed futures so the traits stay object-safe; they await the session pools
//! and never block the async runtime.

mod blip;
mod dual;
mod text;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use modelmux_registry::Architecture;

use crate::context::LoadContext;
use crate::error::AdapterError;
use crate::image::Image;
use crate::load::Loaded;

pub use blip::BlipCaptioner;
pub use dual::DualEncoder;

/// The future every family method returns: boxed, so the traits can be used as `dyn`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// CLIPScore's weight: `w · max(cos, 0)` with w = 2.5 (Hessel et al., 2021).
pub const CLIP_SCORE_WEIGHT: f32 = 2.5;

/// A label and its score (a probability for zero-shot classification).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LabelScore {
    pub label: String,
    pub score: f32,
}

/// A dual encoder: images and texts embedded in one space.
pub trait ImageTextEncoder: Send + Sync + std::fmt::Debug {
    /// `id@version`.
    fn model(&self) -> &str;

    /// The embedding's length.
    fn dimensions(&self) -> usize;

    /// The factor the model's contrastive head multiplies cosine similarities by
    /// (CLIP and FLAVA: `exp(logit_scale)`; ALIGN: `1 / temperature`).
    fn logit_scale(&self) -> f32;

    /// One embedding per image, L2-normalised when the catalog's `embedding.normalize` says so
    /// (otherwise the projected vectors the model outputs).
    fn embed_images<'a>(
        &'a self,
        images: &'a [Image],
    ) -> BoxFuture<'a, Result<Vec<Vec<f32>>, AdapterError>>;

    /// One embedding per text, normalised as [`ImageTextEncoder::embed_images`].
    fn embed_texts<'a>(
        &'a self,
        texts: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<Vec<f32>>, AdapterError>>;

    /// `logit_scale · cos(image, text)` for every pair: rows are images, columns texts (the
    /// model's `logits_per_image`).
    fn similarity(&self, image_embeds: &[Vec<f32>], text_embeds: &[Vec<f32>]) -> Vec<Vec<f32>> {
        let scale = self.logit_scale();
        image_embeds
            .iter()
            .map(|i| text_embeds.iter().map(|t| scale * cosine(i, t)).collect())
            .collect()
    }

    /// Zero-shot classification: the probability of each label (softmax over the scaled
    /// similarities of `template` filled with each label, `{}` marking the place), in label
    /// order.
    fn zero_shot<'a>(
        &'a self,
        image: &'a Image,
        labels: &'a [String],
        template: &'a str,
    ) -> BoxFuture<'a, Result<Vec<LabelScore>, AdapterError>> {
        Box::pin(async move {
            let prompts: Vec<String> = labels.iter().map(|l| fill_template(template, l)).collect();
            self.classify_prompts(image, &prompts, labels).await
        })
    }

    /// Like [`ImageTextEncoder::zero_shot`] with ready-made prompts, one per label.
    fn classify_prompts<'a>(
        &'a self,
        image: &'a Image,
        prompts: &'a [String],
        labels: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<LabelScore>, AdapterError>> {
        Box::pin(async move {
            if prompts.is_empty() || prompts.len() != labels.len() {
                return Err(AdapterError::InvalidRequest {
                    model: self.model().to_owned(),
                    reason: format!(
                        "{} prompts for {} labels (at least one needed)",
                        prompts.len(),
                        labels.len()
                    ),
                });
            }
            let images = self.embed_images(std::slice::from_ref(image)).await?;
            let texts = self.embed_texts(prompts).await?;
            let logits = self.similarity(&images, &texts).swap_remove(0);
            Ok(labels
                .iter()
                .zip(softmax(&logits))
                .map(|(label, score)| LabelScore {
                    label: label.clone(),
                    score,
                })
                .collect())
        })
    }

    /// CLIPScore of each (image, prompt) pair: `2.5 · max(cos, 0)`, in [0, 2.5].
    fn clip_score<'a>(
        &'a self,
        images: &'a [Image],
        prompts: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<f32>, AdapterError>> {
        Box::pin(async move {
            if images.len() != prompts.len() {
                return Err(AdapterError::InvalidRequest {
                    model: self.model().to_owned(),
                    reason: format!("{} images for {} prompts", images.len(), prompts.len()),
                });
            }
            let i = self.embed_images(images).await?;
            let t = self.embed_texts(prompts).await?;
            Ok(i.iter()
                .zip(&t)
                .map(|(i, t)| CLIP_SCORE_WEIGHT * cosine(i, t).max(0.0))
                .collect())
        })
    }
}

/// Options of one caption.
#[derive(Debug, Clone, PartialEq)]
pub struct CaptionOptions {
    /// Beam width; 1 is greedy decoding.
    pub beams: usize,
    /// The most tokens generated after the prompt; `None` takes the catalog's
    /// `generation.max_new_tokens` (20 when unset).
    pub max_new_tokens: Option<usize>,
    /// Text the caption must start with (BLIP's conditional captioning), e.g. "a photo of".
    pub prefix: Option<String>,
}

impl Default for CaptionOptions {
    fn default() -> Self {
        Self {
            beams: 1,
            max_new_tokens: None,
            prefix: None,
        }
    }
}

/// A caption and the token ids it was decoded from.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Caption {
    pub text: String,
    /// Every id, the start token and any prefix included (what `generate()` returns).
    pub tokens: Vec<i64>,
}

/// An image captioner.
pub trait ImageCaptioner: Send + Sync + std::fmt::Debug {
    /// `id@version`.
    fn model(&self) -> &str;

    /// Captions one image.
    fn caption<'a>(
        &'a self,
        image: &'a Image,
        options: &'a CaptionOptions,
    ) -> BoxFuture<'a, Result<Caption, AdapterError>>;
}

/// Loads the `vlm` adapter for `context.spec`'s architecture.
pub fn load(context: &LoadContext<'_>) -> Result<Loaded, AdapterError> {
    match context.spec.architecture {
        Architecture::Clip | Architecture::Align | Architecture::Flava => {
            let encoder = Arc::new(DualEncoder::load(context)?);
            let stop = Arc::clone(&encoder);
            let object: Arc<dyn ImageTextEncoder> = encoder;
            Ok(Loaded::new(object, move || stop.shutdown()))
        }
        Architecture::BlipCaption => {
            let captioner = Arc::new(BlipCaptioner::load(context)?);
            let stop = Arc::clone(&captioner);
            let object: Arc<dyn ImageCaptioner> = captioner;
            Ok(Loaded::new(object, move || stop.shutdown()))
        }
        _ => Err(AdapterError::Unsupported {
            model: context.model(),
            architecture: context.spec.architecture.to_string(),
        }),
    }
}

/// `template` with `{}` replaced by `label`; a template without `{}` gets the label appended.
pub fn fill_template(template: &str, label: &str) -> String {
    if template.contains("{}") {
        template.replacen("{}", label, 1)
    } else if template.is_empty() {
        label.to_owned()
    } else {
        format!("{template} {label}")
    }
}

/// Cosine similarity; 0 when either vector is zero.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        dot / (na * nb)
    }
}

/// Softmax, shifted by the maximum so large logits do not overflow.
pub fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f32> = logits.iter().map(|&x| (x - max).exp()).collect();
    let total: f32 = exps.iter().sum();
    exps.into_iter().map(|e| e / total).collect()
}

/// L2-normalises in place (a zero vector stays zero).
pub(crate) fn normalize(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}

/// A number from the export manifest's `extra`, e.g. the logit scale.
pub(crate) fn manifest_extra(
    context: &LoadContext<'_>,
) -> Result<serde_json::Map<String, serde_json::Value>, AdapterError> {
    let path = context.file(modelmux_registry::MANIFEST_FILE)?;
    let bad = |reason: String| AdapterError::BadFile {
        model: context.model(),
        path: path.clone(),
        reason,
    };
    let text = std::fs::read_to_string(&path).map_err(|e| bad(e.to_string()))?;
    let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    Ok(json
        .get("extra")
        .and_then(|e| e.as_object())
        .cloned()
        .unwrap_or_default())
}

/// A required number in the manifest's `extra`.
pub(crate) fn extra_number(
    context: &LoadContext<'_>,
    extra: &serde_json::Map<String, serde_json::Value>,
    key: &str,
) -> Result<f64, AdapterError> {
    extra
        .get(key)
        .and_then(serde_json::Value::as_f64)
        .ok_or_else(|| AdapterError::Config {
            model: context.model(),
            reason: format!("the export manifest's `extra.{key}` is missing or not a number"),
        })
}
