//! One integration-test binary: every suite is a module here.

mod export;
mod runtime;
