//! One integration-test binary: every suite is a module here.

mod diffusion;
mod export;
mod lm;
mod manager;
mod runtime;
mod send_sync;
