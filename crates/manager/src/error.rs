//! The manager's errors: each names the model and, where it matters, the device and the numbers.

use modelmux_registry::LookupError;
use modelmux_resources::{InsufficientRoom, LedgerError, PlacementError};
use modelmux_runtime_ort::RuntimeError;

/// What a `get_model`, `load_model` or `release_model` can run into.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ManagerError {
    /// The catalog has no such model or version.
    #[error(transparent)]
    UnknownModel(#[from] LookupError),

    /// The model cannot be placed on any allowed device.
    #[error(transparent)]
    Placement(#[from] PlacementError),

    /// Even evicting every evictable model cannot make room; says what holds the rest.
    #[error("{0}")]
    InsufficientRoom(Box<InsufficientRoom>),

    /// The ledger refused the reservation.
    #[error(transparent)]
    Ledger(#[from] LedgerError),

    /// Loading failed; the reservation was returned and the next request retries.
    #[error("loading {model} failed: {reason}")]
    LoadFailed { model: String, reason: String },

    /// The model is loaded as a different family than the caller asked for.
    #[error("{model} is a {actual} model, not {expected}")]
    WrongFamily {
        model: String,
        expected: &'static str,
        actual: &'static str,
    },

    /// `release_model` on a model that is in use.
    #[error("{model} is busy with {leases} lease(s); it is unloaded once they are returned")]
    Busy { model: String, leases: u32 },

    /// `release_model` on a pinned model (`keep_warm`, or a live pin guard).
    #[error("{model} is pinned ({reason}) and stays loaded")]
    Pinned { model: String, reason: String },

    /// The manager is shutting down and admits no new requests.
    #[error("the model manager is shutting down")]
    ShuttingDown,

    /// A run of the model failed.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),

    /// A model call panicked; the model and the manager stay usable.
    #[error("a call into {model} panicked: {message}")]
    Panicked { model: String, message: String },
}

impl From<Box<InsufficientRoom>> for ManagerError {
    fn from(room: Box<InsufficientRoom>) -> Self {
        Self::InsufficientRoom(room)
    }
}
