//! One integration-test binary: every suite is a module here.

mod export;
mod manager;
mod runtime;
mod send_sync;
