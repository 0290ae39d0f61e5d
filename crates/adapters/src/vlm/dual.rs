//! CLIP, ALIGN and FLAVA as dual encoders: `text_model.onnx` → `text_embeds`,
//! `vision_model.onnx` → `image_embeds`, compared with the manifest's logit scale.

use modelmux_runtime_ort::{Inputs, SessionPool};

use super::text::TextInputs;
use super::{BoxFuture, ImageTextEncoder, manifest_extra, normalize};
use crate::context::LoadContext;
use crate::error::AdapterError;
use crate::image::{Image, ImageProcessor};

/// A dual encoder over the split towers of the export contract.
#[derive(Debug)]
pub struct DualEncoder {
    model: String,
    text: SessionPool,
    vision: SessionPool,
    tokenizer: TextInputs,
    processor: ImageProcessor,
    logit_scale: f32,
    dimensions: usize,
    normalize: bool,
}

impl DualEncoder {
    /// Loads both towers, the tokenizer and the image processor of the export.
    pub fn load(context: &LoadContext<'_>) -> Result<Self, AdapterError> {
        let extra = manifest_extra(context)?;
        let logit_scale = super::extra_number(context, &extra, "logit_scale")? as f32;
        let dimensions = super::extra_number(context, &extra, "projection_dim")? as usize;
        let tokenizer = TextInputs::load(context)?;
        let processor = ImageProcessor::for_model(context)?;
        let text = context.pool("text_model.onnx", true)?;
        let vision = match context.pool("vision_model.onnx", true) {
            Ok(vision) => vision,
            Err(e) => {
                text.shutdown();
                return Err(e);
            }
        };
        let normalize = context
            .spec
            .params
            .embedding
            .as_ref()
            .and_then(|e| e.normalize)
            .unwrap_or(false);
        Ok(Self {
            model: context.model(),
            text,
            vision,
            tokenizer,
            processor,
            logit_scale,
            dimensions,
            normalize,
        })
    }

    /// Stops both towers' sessions.
    pub fn shutdown(&self) {
        self.text.shutdown();
        self.vision.shutdown();
    }

    /// The image processor (what turns images into `pixel_values` for this model).
    pub fn processor(&self) -> &ImageProcessor {
        &self.processor
    }

    fn rows(
        &self,
        mut outputs: modelmux_runtime_ort::Outputs,
        name: &str,
    ) -> Result<Vec<Vec<f32>>, AdapterError> {
        let array = outputs.take::<f32>(name)?;
        let shape = array.shape().to_vec();
        if shape.len() != 2 || shape[1] != self.dimensions {
            return Err(AdapterError::InvalidRequest {
                model: self.model.clone(),
                reason: format!(
                    "`{name}` has shape {shape:?}, expected [batch, {}]",
                    self.dimensions
                ),
            });
        }
        Ok(array
            .outer_iter()
            .map(|row| {
                let mut v = row.iter().copied().collect::<Vec<f32>>();
                if self.normalize {
                    normalize(&mut v);
                }
                v
            })
            .collect())
    }
}

impl ImageTextEncoder for DualEncoder {
    fn model(&self) -> &str {
        &self.model
    }

    fn dimensions(&self) -> usize {
        self.dimensions
    }

    fn logit_scale(&self) -> f32 {
        self.logit_scale
    }

    fn embed_images<'a>(
        &'a self,
        images: &'a [Image],
    ) -> BoxFuture<'a, Result<Vec<Vec<f32>>, AdapterError>> {
        Box::pin(async move {
            let pixels = self.processor.pixel_values(&self.model, images)?;
            let outputs = self
                .vision
                .run(Inputs::new().with("pixel_values", pixels))
                .await?;
            self.rows(outputs, "image_embeds")
        })
    }

    fn embed_texts<'a>(
        &'a self,
        texts: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<Vec<f32>>, AdapterError>> {
        Box::pin(async move {
            let (ids, mask) = self.tokenizer.encode(texts)?;
            let outputs = self
                .text
                .run(
                    Inputs::new()
                        .with("input_ids", ids)
                        .with("attention_mask", mask),
                )
                .await?;
            self.rows(outputs, "text_embeds")
        })
    }
}
