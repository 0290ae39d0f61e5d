//! Compile-time checks that the manager, its leases and the futures it returns cross threads.

use modelmux::runtime::SessionPool;
use modelmux::{Lease, ModelManager, PinGuard, Status};

fn send_sync<T: Send + Sync>(_: &T) {}
fn send<T: Send>(_: &T) {}

#[allow(dead_code)]
fn manager_types_are_send_and_sync(manager: ModelManager) {
    send_sync(&manager);
    let get = manager.get_model::<SessionPool>("x");
    send(&get);
    let load = manager.load_model("x", modelmux::Preload::default());
    send(&load);
    let release = manager.release_model("x");
    send(&release);
    let shutdown = manager.shutdown(std::time::Duration::ZERO);
    send(&shutdown);
}

#[allow(dead_code)]
fn leases_are_send_and_sync(lease: Lease<SessionPool>, guard: PinGuard, status: Status) {
    send_sync(&lease);
    send_sync(&guard);
    send_sync(&status);
}

#[test]
fn the_checks_above_compile() {
    // The assertions are the functions above; this test exists so the suite reports them.
    let _ = manager_types_are_send_and_sync as fn(ModelManager);
}
