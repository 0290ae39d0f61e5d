//! `modelmux`: one model manager for many ML models on scarce GPU memory.
//!
//! ```text
//! ModelManager::get_model::<T>("id")  → Lease<T>  (loads on first use, single flight)
//!   load: catalog entry → estimate → place → admission (one load per device) → room (evict idle
//!         victims, wait for busy ones, or fail fast) → reserve → load → measure → commit
//! ModelManager::load_model("id", Preload { device, pin })  → PinGuard
//! ModelManager::release_model("id")  → Released, or Busy / Pinned
//! ModelManager::status() / prometheus()
//! ```
//!
//! A lease keeps its model from being evicted; dropping it makes the model idle again. Raw ONNX
//! models are served by their family's adapter through the default [`FamilyLoader`] (or as plain
//! [`SessionPool`](modelmux_runtime_ort::SessionPool)s by [`OnnxLoader`]); other loaders plug in
//! through [`ModelLoader`].

mod error;
mod lease;
mod loader;
mod manager;
mod options;
mod slot;
mod status;

pub use crate::error::ManagerError;
pub use crate::lease::{Lease, PinGuard};
pub use crate::loader::{
    FamilyLoader, LoadRequest, LoadedModel, ModelLoader, OnnxLoader, main_onnx_file, session_spec,
};
pub use crate::manager::{ModelManager, Preload, Released};
pub use crate::options::{CUDA_CONTEXT_BYTES, DeviceConfig, ManagerOptions};
pub use crate::slot::ModelState;
pub use crate::status::{DeviceStatus, ModelStatus, Status};

pub use modelmux_adapters as adapters;
pub use modelmux_registry as registry;
pub use modelmux_resources as resources;
pub use modelmux_runtime_ort as runtime;
