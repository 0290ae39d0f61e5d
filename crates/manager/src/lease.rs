//! Leases and pin guards: what keeps a model loaded while someone uses it.

use std::ops::Deref;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::error::ManagerError;
use crate::manager::Shared;
use crate::slot::ModelSlot;

/// A model in use. While any lease lives the model is never evicted; dropping the last one makes
/// it idle (and a candidate for eviction) again. `T` is the family type the model was loaded as,
/// e.g. [`SessionPool`](modelmux_runtime_ort::SessionPool) for raw ONNX models.
pub struct Lease<T: Send + Sync + 'static> {
    object: Arc<T>,
    slot: Arc<ModelSlot>,
    shared: Arc<Shared>,
}

impl<T: Send + Sync + 'static> std::fmt::Debug for Lease<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease")
            .field("model", &self.slot.key)
            .finish_non_exhaustive()
    }
}

impl<T: Send + Sync + 'static> Lease<T> {
    /// Called with the slot's lease count already incremented.
    pub(crate) fn new(object: Arc<T>, slot: Arc<ModelSlot>, shared: Arc<Shared>) -> Self {
        Self {
            object,
            slot,
            shared,
        }
    }

    /// `id@version` of the leased model.
    pub fn model(&self) -> &str {
        &self.slot.key.0
    }

    /// Runs `f` on the model, turning a panic inside it into an error for this call: the model
    /// and the manager stay usable.
    pub fn call<R>(&self, f: impl FnOnce(&T) -> R) -> Result<R, ManagerError> {
        std::panic::catch_unwind(AssertUnwindSafe(|| f(&self.object))).map_err(|payload| {
            ManagerError::Panicked {
                model: self.slot.key.0.clone(),
                message: modelmux_adapters::panic_message(&*payload),
            }
        })
    }
}

impl<T: Send + Sync + 'static> Deref for Lease<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.object
    }
}

impl<T: Send + Sync + 'static> Clone for Lease<T> {
    fn clone(&self) -> Self {
        self.slot.leases.fetch_add(1, Ordering::AcqRel);
        Self {
            object: Arc::clone(&self.object),
            slot: Arc::clone(&self.slot),
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<T: Send + Sync + 'static> Drop for Lease<T> {
    fn drop(&mut self) {
        self.slot.record_use(self.shared.clock.now());
        if self.slot.leases.fetch_sub(1, Ordering::AcqRel) == 1 {
            // The model just became idle: a load waiting for room may now evict it.
            self.shared.room_freed.notify_waiters();
        }
    }
}

/// Keeps a model pinned (never evicted) while it lives; returned by
/// [`ModelManager::load_model`](crate::ModelManager::load_model) when a pin was asked for.
#[derive(Debug)]
pub struct PinGuard {
    slot: Option<Arc<ModelSlot>>,
    shared: Arc<Shared>,
}

impl PinGuard {
    pub(crate) fn new(slot: Option<Arc<ModelSlot>>, shared: Arc<Shared>) -> Self {
        if let Some(slot) = &slot {
            slot.pins.fetch_add(1, Ordering::AcqRel);
        }
        Self { slot, shared }
    }

    /// Whether this guard pins the model (a preload without a pin returns a guard that does not).
    pub fn pins(&self) -> bool {
        self.slot.is_some()
    }
}

impl Drop for PinGuard {
    fn drop(&mut self) {
        if let Some(slot) = &self.slot
            && slot.pins.fetch_sub(1, Ordering::AcqRel) == 1
        {
            self.shared.room_freed.notify_waiters();
        }
    }
}
