//! One standard interface per model family, and its implementations.
//!
//! Each family module defines its traits (the interface applications program against) and the
//! adapters that implement them over ONNX sessions ([`SessionPool`](modelmux_runtime_ort::SessionPool))
//! or a remote API. [`load`] turns a catalog entry into the family object the manager hands out
//! in leases, chosen by the entry's architecture.
//!
//! - [`lm`]: text encoders, classifiers and generators (BERT, GPT-style decoders, T5).
//! - [`vlm`]: image–text encoders and captioners (CLIP, ALIGN, FLAVA, BLIP).
//! - [`specialized`]: attribute classifiers and quality assessors.
//! - [`diffusion`]: text-to-image pipelines and schedulers.
//! - [`remote`]: the same traits over an OpenAI-compatible HTTP API.

mod context;
pub mod diffusion;
mod error;
pub mod image;
pub mod lm;
mod load;
pub mod remote;
pub mod specialized;
pub mod vlm;

pub use crate::context::LoadContext;
pub use crate::error::{AdapterError, panic_message};
pub use crate::load::{Loaded, load};
