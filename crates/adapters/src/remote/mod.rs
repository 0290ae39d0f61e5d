//! The `remote` family: the same traits over an OpenAI-compatible HTTP API.

use crate::context::LoadContext;
use crate::error::AdapterError;
use crate::load::Loaded;

/// What a remote API call can fail with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RemoteError {
    #[error("authentication failed")]
    Auth,
}

/// Loads the `remote` adapter for `context.spec`'s architecture.
pub fn load(context: &LoadContext<'_>) -> Result<Loaded, AdapterError> {
    Err(AdapterError::Unsupported {
        model: context.model(),
        architecture: context.spec.architecture.to_string(),
    })
}
