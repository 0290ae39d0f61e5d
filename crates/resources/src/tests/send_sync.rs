//! Compile-time checks that the types the manager shares across threads and tasks are `Send` and `Sync` (as tokio's `async_send_sync.rs` does).

use crate::*;

fn send<T: Send>() {}
fn send_sync<T: Send + Sync>() {}

#[test]
fn shared_types_are_send_and_sync() {
    send_sync::<MemoryLedger>();
    send_sync::<FootprintEstimator>();
    send_sync::<LoadGate>();
    send_sync::<SimulatedDevice>();
    send_sync::<HostMemoryProbe>();
    send_sync::<NvmlGpu>();
    send_sync::<EvictionPolicy>();
    send_sync::<DeviceSnapshot>();
    send_sync::<Survey>();
    send_sync::<Box<dyn DeviceProbe>>();
    send_sync::<Box<dyn Clock>>();
    // Tokens move into the task that performs the load or unload.
    send::<Reservation>();
    send::<PendingRelease>();
    send::<LoadPermit>();
}
