//! One integration-test binary: every suite is a module here.

mod diffusion;
mod export;
mod lm;
mod manager;
mod reliability;
mod remote;
mod runtime;
mod send_sync;
mod serve;
mod serve_grpc;
mod serve_kserve;
mod specialized;
mod vlm;
