//! From a catalog entry to the family object the manager hands out, chosen by architecture.

use std::any::Any;
use std::sync::Arc;

use modelmux_registry::Architecture;

use crate::context::LoadContext;
use crate::error::AdapterError;

/// A loaded adapter: the family object (e.g. an `Arc<dyn TextEncoder>`), its family's type name,
/// and how to stop it (shut its sessions down, so their memory is returned).
pub struct Loaded {
    pub object: Arc<dyn Any + Send + Sync>,
    pub family: &'static str,
    pub shutdown: Box<dyn Fn() + Send + Sync>,
}

impl std::fmt::Debug for Loaded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loaded")
            .field("family", &self.family)
            .finish_non_exhaustive()
    }
}

impl Loaded {
    /// Wraps a family object `T` (what `ModelManager::get_model::<T>` asks for).
    pub fn new<T: Send + Sync + 'static>(
        object: T,
        shutdown: impl Fn() + Send + Sync + 'static,
    ) -> Self {
        Self {
            object: Arc::new(object),
            family: std::any::type_name::<T>(),
            shutdown: Box::new(shutdown),
        }
    }
}

/// Loads the adapter for `context.spec`'s architecture.
pub fn load(context: &LoadContext<'_>) -> Result<Loaded, AdapterError> {
    let unsupported = || AdapterError::Unsupported {
        model: context.model(),
        architecture: context.spec.architecture.to_string(),
    };
    match context.spec.architecture {
        Architecture::Bert | Architecture::DecoderOnly | Architecture::EncoderDecoder => {
            crate::lm::load(context)
        }
        Architecture::Clip
        | Architecture::Align
        | Architecture::Flava
        | Architecture::BlipCaption => crate::vlm::load(context),
        Architecture::ImageClassifier | Architecture::MlpHead | Architecture::Quality => {
            crate::specialized::load(context)
        }
        Architecture::StableDiffusion | Architecture::TerrainDiffusion => {
            crate::diffusion::load(context)
        }
        Architecture::DallE | Architecture::OpenaiChat | Architecture::OpenaiEmbedding => {
            crate::remote::load(context)
        }
        #[allow(unreachable_patterns)]
        _ => Err(unsupported()),
    }
}
