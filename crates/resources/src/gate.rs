//! Per-device load serialisation, so that the change in a device's used memory during a load
//! can be attributed to that load.
//!
//! Concurrent loads on one device make NVML deltas meaningless (vLLM#55827 charged one
//! instance's load to another; Ollama loads one model at a time for the same reason,
//! serving-anchors.md §2). A [`LoadPermit`] is held for the whole load; it takes the baseline
//! reading on entry and measures the delta when the load is done.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::device::{DeviceId, DeviceProbe, MemoryReading, ReadingUnavailable};
use crate::ledger::ModelKey;

/// Why a load could not enter the gate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GateError {
    /// Another load holds the gate (from [`LoadGate::try_enter`]).
    #[error("{model} cannot start loading on {device}: {holder} is loading")]
    Busy {
        /// The device.
        device: DeviceId,
        /// The model that wanted to load.
        model: ModelKey,
        /// The model loading now.
        holder: ModelKey,
    },
    /// Another load held the gate for longer than the caller would wait.
    #[error("{model} waited {waited:?} to load on {device}; {holder} is still loading")]
    TimedOut {
        /// The device.
        device: DeviceId,
        /// The model that wanted to load.
        model: ModelKey,
        /// The model loading now.
        holder: ModelKey,
        /// How long the caller waited.
        waited: Duration,
    },
}

#[derive(Debug)]
struct GateInner {
    device: DeviceId,
    holder: Mutex<Option<ModelKey>>,
    freed: Condvar,
}

impl GateInner {
    fn holder(&self) -> MutexGuard<'_, Option<ModelKey>> {
        self.holder
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The load lock of one device. Cloning gives another handle to the same lock.
#[derive(Debug, Clone)]
pub struct LoadGate {
    inner: Arc<GateInner>,
}

impl LoadGate {
    /// A gate for `device`, open.
    pub fn new(device: DeviceId) -> Self {
        Self {
            inner: Arc::new(GateInner {
                device,
                holder: Mutex::new(None),
                freed: Condvar::new(),
            }),
        }
    }

    /// The model loading now, if any.
    pub fn holder(&self) -> Option<ModelKey> {
        self.inner.holder().clone()
    }

    /// Enters the gate if no load holds it.
    pub fn try_enter(&self, model: ModelKey) -> Result<LoadPermit, GateError> {
        let mut holder = self.inner.holder();
        if let Some(current) = holder.as_ref() {
            return Err(GateError::Busy {
                device: self.inner.device.clone(),
                model,
                holder: current.clone(),
            });
        }
        *holder = Some(model.clone());
        Ok(LoadPermit {
            inner: Arc::clone(&self.inner),
            model,
            baseline: None,
        })
    }

    /// Waits up to `timeout` for the gate, then enters it.
    ///
    /// This blocks the thread (async callers run it on a blocking thread). Every wait is
    /// bounded: a load that never finishes must not stall the device forever (Ollama#17408).
    pub fn enter(&self, model: ModelKey, timeout: Duration) -> Result<LoadPermit, GateError> {
        let started = Instant::now();
        let mut holder = self.inner.holder();
        while let Some(current) = holder.as_ref() {
            let waited = started.elapsed();
            if waited >= timeout {
                return Err(GateError::TimedOut {
                    device: self.inner.device.clone(),
                    model,
                    holder: current.clone(),
                    waited,
                });
            }
            holder = self
                .inner
                .freed
                .wait_timeout(holder, timeout - waited)
                .map(|(guard, _)| guard)
                .unwrap_or_else(|poisoned| poisoned.into_inner().0);
        }
        *holder = Some(model.clone());
        Ok(LoadPermit {
            inner: Arc::clone(&self.inner),
            model,
            baseline: None,
        })
    }
}

/// The right to load one model on one device; the gate opens again when it is dropped.
///
/// Owns its gate handle (no borrow), so it can be moved into the task that loads the model.
#[derive(Debug)]
#[must_use = "dropping the permit ends the load's exclusive window"]
pub struct LoadPermit {
    inner: Arc<GateInner>,
    model: ModelKey,
    baseline: Option<MemoryReading>,
}

/// Why a load's delta could not be measured.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeltaError {
    /// No baseline reading was taken when the load started.
    #[error("no baseline reading for the load of {model} on {device}")]
    NoBaseline {
        /// The model.
        model: ModelKey,
        /// The device.
        device: DeviceId,
    },
    /// The device could not be read.
    #[error(transparent)]
    Unavailable(#[from] ReadingUnavailable),
}

impl LoadPermit {
    /// The model this permit is for.
    pub fn model(&self) -> &ModelKey {
        &self.model
    }

    /// The device this permit is for.
    pub fn device(&self) -> &DeviceId {
        &self.inner.device
    }

    /// Reads `probe` as the baseline for this load; call it just before the load starts.
    pub fn take_baseline(
        &mut self,
        probe: &dyn DeviceProbe,
    ) -> Result<MemoryReading, ReadingUnavailable> {
        let reading = probe.read()?;
        self.baseline = Some(reading);
        Ok(reading)
    }

    /// The baseline reading, if one was taken.
    pub fn baseline(&self) -> Option<MemoryReading> {
        self.baseline
    }

    /// How much the device's used memory grew since the baseline (0 if it fell).
    pub fn measure_delta(&self, probe: &dyn DeviceProbe) -> Result<u64, DeltaError> {
        let Some(baseline) = self.baseline else {
            return Err(DeltaError::NoBaseline {
                model: self.model.clone(),
                device: self.inner.device.clone(),
            });
        };
        let now = probe.read()?;
        Ok(now.used_bytes.saturating_sub(baseline.used_bytes))
    }
}

impl Drop for LoadPermit {
    fn drop(&mut self) {
        *self.inner.holder() = None;
        self.inner.freed.notify_one();
    }
}
