//! How each catalog model is served: its interface kind, its typed OIP signature, the loader
//! that builds it, and inference from OIP tensors to the family object and back.
//!
//! Family models take and return the documented typed tensors (see the crate docs); a model whose
//! architecture has no typed mapping, or whose catalog entry sets `params.extra.serving: tensor`,
//! is served tensor for tensor through a [`SessionPool`] over its main ONNX file.

use std::ops::ControlFlow;
use std::path::Path;
use std::sync::Arc;

use modelmux::adapters::diffusion::{ImageRequest, TextToImage, no_progress};
use modelmux::adapters::image::Image;
use modelmux::adapters::lm::{
    GenerationOptions, Prompt, TextClassifier, TextEncoder, TextGenerator, TokenEvent,
};
use modelmux::adapters::vlm::ImageTextEncoder;
use modelmux::registry::{Architecture, ModelSpec};
use modelmux::runtime::{Dim, Inputs, SessionPool};
use modelmux::{
    FamilyLoader, Lease, LoadRequest, LoadedModel, ManagerError, ModelLoader, ModelManager,
    OnnxLoader,
};
use serde_json::{Map, Value};

use crate::error::ApiError;
use crate::tensor::{Datatype, InferRequest, TensorData, WireTensor};

/// How a model is exposed over the protocols.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Raw ONNX, tensor for tensor.
    Tensor,
    /// `text` BYTES → `embedding` FP32.
    TextEncoder,
    /// `text` BYTES → `probabilities` FP32, `label` BYTES.
    TextClassifier,
    /// `prompt` BYTES → `text` BYTES, `finish_reason` BYTES.
    TextGenerator,
    /// `text` BYTES → `embedding` FP32 and/or `image` BYTES → `image_embedding` FP32.
    ImageTextEncoder,
    /// `prompt` BYTES → `image` UINT8 [n, h, w, 3], `seed` INT64.
    TextToImage,
}

impl Kind {
    /// The kind the catalog entry is served as.
    pub fn of(spec: &ModelSpec) -> Self {
        if spec.params.extra.get("serving").and_then(Value::as_str) == Some("tensor") {
            return Self::Tensor;
        }
        match spec.architecture {
            Architecture::Bert if !spec.params.labels.is_empty() => Self::TextClassifier,
            Architecture::Bert | Architecture::OpenaiEmbedding => Self::TextEncoder,
            Architecture::DecoderOnly | Architecture::EncoderDecoder | Architecture::OpenaiChat => {
                Self::TextGenerator
            }
            Architecture::Clip | Architecture::Align | Architecture::Flava => {
                Self::ImageTextEncoder
            }
            Architecture::StableDiffusion
            | Architecture::TerrainDiffusion
            | Architecture::DallE => Self::TextToImage,
            _ => Self::Tensor,
        }
    }

    /// The `platform` of the model metadata.
    pub fn platform(self) -> &'static str {
        match self {
            Self::Tensor => "onnx_onnxv1",
            Self::TextEncoder => "modelmux_text-encoder",
            Self::TextClassifier => "modelmux_text-classifier",
            Self::TextGenerator => "modelmux_text-generator",
            Self::ImageTextEncoder => "modelmux_image-text-encoder",
            Self::TextToImage => "modelmux_text-to-image",
        }
    }
}

/// Loads tensor-served models as session pools and every other model with its family adapter.
#[derive(Debug, Default, Clone, Copy)]
pub struct ServeLoader;

impl ModelLoader for ServeLoader {
    fn load(&self, request: &LoadRequest<'_>) -> Result<LoadedModel, String> {
        match Kind::of(request.spec) {
            Kind::Tensor => OnnxLoader.load(request),
            _ => FamilyLoader.load(request),
        }
    }

    fn weight_bytes(&self, spec: &ModelSpec, export_dir: &Path) -> Option<u64> {
        FamilyLoader.weight_bytes(spec, export_dir)
    }
}

/// A lease on a model as the family object it is served through.
pub(crate) enum Served {
    Tensor(Lease<SessionPool>),
    TextEncoder(Lease<Arc<dyn TextEncoder>>),
    TextClassifier(Lease<Arc<dyn TextClassifier>>),
    TextGenerator(Lease<Arc<dyn TextGenerator>>),
    ImageTextEncoder(Lease<Arc<dyn ImageTextEncoder>>),
    TextToImage(Lease<Arc<dyn TextToImage>>),
}

impl std::fmt::Debug for Served {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Served").field(&self.kind()).finish()
    }
}

impl Served {
    pub(crate) fn kind(&self) -> Kind {
        match self {
            Self::Tensor(_) => Kind::Tensor,
            Self::TextEncoder(_) => Kind::TextEncoder,
            Self::TextClassifier(_) => Kind::TextClassifier,
            Self::TextGenerator(_) => Kind::TextGenerator,
            Self::ImageTextEncoder(_) => Kind::ImageTextEncoder,
            Self::TextToImage(_) => Kind::TextToImage,
        }
    }

    /// Leases `reference` as its kind. A BERT entry is a classifier only when its export has a
    /// `logits` output too, which only the adapter knows, so the other text kind is tried when
    /// the first turns out to be the wrong family.
    pub(crate) async fn lease(
        manager: &ModelManager,
        spec: &ModelSpec,
    ) -> Result<Self, ManagerError> {
        let reference = spec.key();
        let reference = reference.as_str();
        match Kind::of(spec) {
            Kind::Tensor => Ok(Self::Tensor(manager.get_model(reference).await?)),
            Kind::TextEncoder | Kind::TextClassifier => {
                let classifier_first = Kind::of(spec) == Kind::TextClassifier;
                let first = if classifier_first {
                    manager
                        .get_model::<Arc<dyn TextClassifier>>(reference)
                        .await
                        .map(Self::TextClassifier)
                } else {
                    manager
                        .get_model::<Arc<dyn TextEncoder>>(reference)
                        .await
                        .map(Self::TextEncoder)
                };
                match first {
                    Err(ManagerError::WrongFamily { .. }) if classifier_first => {
                        Ok(Self::TextEncoder(manager.get_model(reference).await?))
                    }
                    Err(ManagerError::WrongFamily { .. }) => {
                        Ok(Self::TextClassifier(manager.get_model(reference).await?))
                    }
                    other => other,
                }
            }
            Kind::TextGenerator => Ok(Self::TextGenerator(manager.get_model(reference).await?)),
            Kind::ImageTextEncoder => {
                Ok(Self::ImageTextEncoder(manager.get_model(reference).await?))
            }
            Kind::TextToImage => Ok(Self::TextToImage(manager.get_model(reference).await?)),
        }
    }
}

/// One tensor of a signature, as model metadata lists it (variable dimensions are -1).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub(crate) struct TensorMetadata {
    pub name: String,
    pub datatype: String,
    pub shape: Vec<i64>,
}

fn entry(name: &str, datatype: &str, shape: &[i64]) -> TensorMetadata {
    TensorMetadata {
        name: name.to_owned(),
        datatype: datatype.to_owned(),
        shape: shape.to_vec(),
    }
}

fn dims(shape: &[Dim]) -> Vec<i64> {
    shape
        .iter()
        .map(|d| match d {
            Dim::Fixed(n) => i64::try_from(*n).unwrap_or(-1),
            Dim::Symbolic(_) | Dim::Dynamic => -1,
        })
        .collect()
}

/// The metadata `inputs` and `outputs` of a model: typed kinds from their fixed signature,
/// tensor models from the loaded session's (`None` when it is not loaded).
pub(crate) fn signature(
    spec: &ModelSpec,
    served: Option<&Served>,
) -> Option<(Vec<TensorMetadata>, Vec<TensorMetadata>)> {
    let kind = served.map_or_else(|| Kind::of(spec), Served::kind);
    let embedding_dim = spec
        .params
        .embedding
        .as_ref()
        .and_then(|e| e.dimensions)
        .map_or(-1, i64::from);
    Some(match kind {
        Kind::Tensor => {
            let Some(Served::Tensor(pool)) = served else {
                return None;
            };
            let info = pool.info();
            let side = |tensors: &[modelmux::runtime::TensorInfo]| {
                tensors
                    .iter()
                    .map(|t| {
                        let datatype = Datatype::of_element(&t.element_type)
                            .map_or_else(|| t.element_type.to_string(), |d| d.as_str().to_owned());
                        entry(&t.name, &datatype, &dims(&t.shape))
                    })
                    .collect()
            };
            (side(&info.inputs), side(&info.outputs))
        }
        Kind::TextEncoder => (
            vec![entry("text", "BYTES", &[-1])],
            vec![entry("embedding", "FP32", &[-1, embedding_dim])],
        ),
        Kind::TextClassifier => {
            let labels = i64::try_from(spec.params.labels.len()).unwrap_or(-1);
            (
                vec![entry("text", "BYTES", &[-1])],
                vec![
                    entry("probabilities", "FP32", &[-1, labels]),
                    entry("label", "BYTES", &[-1]),
                ],
            )
        }
        Kind::TextGenerator => (
            vec![entry("prompt", "BYTES", &[-1])],
            vec![
                entry("text", "BYTES", &[-1]),
                entry("finish_reason", "BYTES", &[-1]),
            ],
        ),
        Kind::ImageTextEncoder => (
            vec![
                entry("text", "BYTES", &[-1]),
                entry("image", "BYTES", &[-1]),
            ],
            vec![
                entry("embedding", "FP32", &[-1, embedding_dim]),
                entry("image_embedding", "FP32", &[-1, embedding_dim]),
            ],
        ),
        Kind::TextToImage => (
            vec![
                entry("prompt", "BYTES", &[1]),
                entry("negative_prompt", "BYTES", &[1]),
            ],
            vec![
                entry("image", "UINT8", &[-1, -1, -1, 3]),
                entry("seed", "INT64", &[1]),
            ],
        ),
    })
}

/// Runs `f` on a blocking thread (adapters block while ONNX Runtime works).
async fn blocking<R: Send + 'static>(
    f: impl FnOnce() -> Result<R, ApiError> + Send + 'static,
) -> Result<R, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(format!("a model call failed: {e}")))?
}

/// The texts of a BYTES input of shape `[n]` or `[n, 1]`.
fn texts_of(request: &InferRequest, name: &str) -> Result<Vec<String>, ApiError> {
    let tensor = request.required(name)?;
    if tensor.shape.len() > 2 || (tensor.shape.len() == 2 && tensor.shape[1] != 1) {
        return Err(ApiError::bad_request(format!(
            "input `{name}` must have shape [n] or [n, 1], got {:?}",
            tensor.shape
        )));
    }
    tensor.texts()
}

fn matrix(name: &str, rows: Vec<Vec<f32>>) -> WireTensor {
    let width = rows.first().map_or(0, Vec::len);
    let shape = vec![rows.len(), width];
    WireTensor::new(
        name,
        shape,
        TensorData::F32(rows.into_iter().flatten().collect()),
    )
}

fn strings(name: &str, items: Vec<String>) -> WireTensor {
    WireTensor::new(
        name,
        vec![items.len()],
        TensorData::Bytes(items.into_iter().map(String::into_bytes).collect()),
    )
}

/// Reads a request parameter as a number.
fn number(parameters: &Map<String, Value>, name: &str) -> Result<Option<f64>, ApiError> {
    match parameters.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_f64()
            .map(Some)
            .ok_or_else(|| ApiError::bad_request(format!("parameter `{name}` must be a number"))),
    }
}

fn count(parameters: &Map<String, Value>, name: &str) -> Result<Option<u64>, ApiError> {
    match parameters.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_u64().map(Some).ok_or_else(|| {
            ApiError::bad_request(format!("parameter `{name}` must be a non-negative integer"))
        }),
    }
}

/// Generation options from OIP request parameters (`max_tokens`, `min_tokens`, `temperature`,
/// `top_k`, `top_p`, `repetition_penalty`, `seed`, `stop`).
pub(crate) fn generation_options(
    parameters: &Map<String, Value>,
) -> Result<GenerationOptions, ApiError> {
    let stop = match parameters.get("stop") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_str().map(str::to_owned).ok_or_else(|| {
                    ApiError::bad_request("parameter `stop` must be a string or a list of strings")
                })
            })
            .collect::<Result<_, _>>()?,
        Some(_) => {
            return Err(ApiError::bad_request(
                "parameter `stop` must be a string or a list of strings",
            ));
        }
    };
    Ok(GenerationOptions {
        max_new_tokens: count(parameters, "max_tokens")?.map(|n| n as usize),
        min_new_tokens: count(parameters, "min_tokens")?.map(|n| n as usize),
        stop_sequences: stop,
        temperature: number(parameters, "temperature")?.map(|x| x as f32),
        top_k: count(parameters, "top_k")?.map(|n| n as usize),
        top_p: number(parameters, "top_p")?.map(|x| x as f32),
        repetition_penalty: number(parameters, "repetition_penalty")?.map(|x| x as f32),
        seed: count(parameters, "seed")?,
    })
}

/// The finish reason as OIP's generate extension names it.
pub(crate) fn finish_reason(reason: modelmux::adapters::lm::FinishReason) -> &'static str {
    use modelmux::adapters::lm::FinishReason as F;
    match reason {
        F::Length => "length",
        F::EndOfSequence => "eos_token",
        F::StopSequence => "stop_sequence",
        F::Cancelled => "cancelled",
    }
}

/// Runs one inference request on a leased model; returns its outputs and how many items the
/// batch held (Triton's `inference_count`).
pub(crate) async fn infer(
    served: Served,
    request: &InferRequest,
) -> Result<(Vec<WireTensor>, u64), ApiError> {
    match served {
        Served::Tensor(pool) => {
            let mut inputs = Inputs::new();
            let mut batch = 1;
            for (i, tensor) in request.inputs.iter().enumerate() {
                if i == 0 {
                    batch = tensor.shape.first().copied().unwrap_or(1) as u64;
                }
                inputs.push(tensor.name.clone(), tensor.clone().into_runtime()?);
            }
            let outputs = pool.run(inputs).await?;
            let mut wire = Vec::new();
            for (name, tensor) in outputs.into_vec() {
                wire.push(WireTensor::from_runtime(name, &tensor));
            }
            Ok((wire, batch))
        }
        Served::TextEncoder(encoder) => {
            let texts = texts_of(request, "text")?;
            let n = texts.len() as u64;
            let vectors = blocking(move || {
                let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
                Ok(encoder.call(|e| e.embed(&refs))??)
            })
            .await?;
            Ok((vec![matrix("embedding", vectors)], n))
        }
        Served::TextClassifier(classifier) => {
            let texts = texts_of(request, "text")?;
            let n = texts.len() as u64;
            let (probabilities, labels) = blocking(move || {
                let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
                let scored = classifier.call(|c| c.classify(&refs))??;
                let order = classifier.labels().to_vec();
                let mut rows = Vec::with_capacity(scored.len());
                let mut top = Vec::with_capacity(scored.len());
                for scores in scored {
                    top.push(scores.first().map(|s| s.label.clone()).unwrap_or_default());
                    // Probabilities in the model's label order, not most likely first.
                    rows.push(
                        order
                            .iter()
                            .map(|label| {
                                scores
                                    .iter()
                                    .find(|s| &s.label == label)
                                    .map_or(0.0, |s| s.score)
                            })
                            .collect(),
                    );
                }
                Ok((rows, top))
            })
            .await?;
            Ok((
                vec![
                    matrix("probabilities", probabilities),
                    strings("label", labels),
                ],
                n,
            ))
        }
        Served::TextGenerator(generator) => {
            let prompts = texts_of(request, "prompt")?;
            let n = prompts.len() as u64;
            let options = generation_options(&request.parameters)?;
            let results = blocking(move || {
                let prompts: Vec<Prompt> = prompts.into_iter().map(Prompt::Text).collect();
                Ok(generator.call(|g| g.generate_batch(&prompts, &options))??)
            })
            .await?;
            let reasons = results
                .iter()
                .map(|g| finish_reason(g.finish_reason).to_owned())
                .collect();
            let texts = results.into_iter().map(|g| g.text).collect();
            Ok((
                vec![strings("text", texts), strings("finish_reason", reasons)],
                n,
            ))
        }
        Served::ImageTextEncoder(encoder) => {
            let mut outputs = Vec::new();
            let mut n = 0;
            if request.input("text").is_some() {
                let texts = texts_of(request, "text")?;
                n += texts.len() as u64;
                let vectors = encoder.embed_texts(&texts).await?;
                outputs.push(matrix("embedding", vectors));
            }
            if let Some(tensor) = request.input("image") {
                let TensorData::Bytes(items) = &tensor.data else {
                    return Err(ApiError::bad_request(
                        "input `image` must be BYTES holding encoded images (PNG, JPEG, WebP)",
                    ));
                };
                let images = items
                    .iter()
                    .enumerate()
                    .map(|(i, bytes)| {
                        Image::decode(bytes).map_err(|e| {
                            ApiError::bad_request(format!("input `image`: element {i}: {e}"))
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                n += images.len() as u64;
                let vectors = encoder.embed_images(&images).await?;
                outputs.push(matrix("image_embedding", vectors));
            }
            if outputs.is_empty() {
                return Err(ApiError::bad_request(
                    "give a `text` input, an `image` input, or both",
                ));
            }
            Ok((outputs, n))
        }
        Served::TextToImage(pipeline) => {
            let prompts = texts_of(request, "prompt")?;
            let [prompt] = <[String; 1]>::try_from(prompts).map_err(|p| {
                ApiError::bad_request(format!(
                    "input `prompt` must hold one prompt, got {}",
                    p.len()
                ))
            })?;
            let negative = match request.input("negative_prompt") {
                Some(_) => texts_of(request, "negative_prompt")?.into_iter().next(),
                None => None,
            };
            let p = &request.parameters;
            let image_request = ImageRequest {
                prompt,
                negative_prompt: negative,
                width: count(p, "width")?.map(|v| v as u32),
                height: count(p, "height")?.map(|v| v as u32),
                steps: count(p, "steps")?.map(|v| v as usize),
                guidance_scale: number(p, "guidance_scale")?.map(|v| v as f32),
                seed: count(p, "seed")?,
                batch_count: count(p, "batch_count")?.map(|v| v as usize),
                ..ImageRequest::default()
            };
            generate_images(pipeline, image_request).await
        }
    }
}

/// Generates images and returns them as one UINT8 `[n, h, w, 3]` tensor plus the seed used.
async fn generate_images(
    pipeline: Lease<Arc<dyn TextToImage>>,
    request: ImageRequest,
) -> Result<(Vec<WireTensor>, u64), ApiError> {
    let generated = blocking(move || {
        let mut progress = no_progress();
        Ok(pipeline.call(|p| p.generate(&request, &mut progress))??)
    })
    .await?;
    let n = generated.images.len();
    let (h, w) = generated
        .images
        .first()
        .map_or((0, 0), |i| (i.height as usize, i.width as usize));
    let pixels: Vec<u8> = generated
        .images
        .into_iter()
        .flat_map(|i| i.pixels)
        .collect();
    let seed = i64::try_from(generated.seed).unwrap_or(i64::MAX);
    Ok((
        vec![
            WireTensor::new("image", vec![n, h, w, 3], TensorData::U8(pixels)),
            WireTensor::new("seed", vec![1], TensorData::I64(vec![seed])),
        ],
        n as u64,
    ))
}

/// Streams a generation: `on_text` receives each new piece of text; returning `false` stops.
pub(crate) fn stream_generation(
    generator: &Lease<Arc<dyn TextGenerator>>,
    prompt: Prompt,
    options: &GenerationOptions,
    on_text: &mut dyn FnMut(&str) -> bool,
) -> Result<modelmux::adapters::lm::Generation, ApiError> {
    let mut callback = |event: TokenEvent<'_>| {
        if event.text.is_empty() || on_text(event.text) {
            ControlFlow::Continue(())
        } else {
            ControlFlow::Break(())
        }
    };
    let mut results = generator
        .call(|g| g.generate_stream(std::slice::from_ref(&prompt), options, &mut callback))??;
    results
        .pop()
        .ok_or_else(|| ApiError::internal("the generator returned no result"))
}
