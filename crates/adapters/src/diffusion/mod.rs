//! The `diffusion` family: its traits and adapters.

use crate::context::LoadContext;
use crate::error::AdapterError;
use crate::load::Loaded;

/// Loads the `diffusion` adapter for `context.spec`'s architecture.
pub fn load(context: &LoadContext<'_>) -> Result<Loaded, AdapterError> {
    Err(AdapterError::Unsupported {
        model: context.model(),
        architecture: context.spec.architecture.to_string(),
    })
}
