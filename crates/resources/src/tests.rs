//! Unit tests, one module per part of the crate.

mod devices;
mod estimator;
mod ledger;
mod ordinals;
mod placement;
mod policy;
mod send_sync;
mod sim;
mod walkthrough;
