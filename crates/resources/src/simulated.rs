//! A scripted device for tests and the simulation: totals, other processes' usage, load
//! latencies, slow or missing memory release, and failing readings, all set by the test.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use crate::clock::Clock;
use crate::device::{DeviceId, DeviceProbe, MemoryReading, ReadingUnavailable};

/// How a scripted load behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptedLoad {
    /// How long the load takes (the clock is advanced by this much).
    pub latency: Duration,
    /// What the load does to the device.
    pub outcome: ScriptedOutcome,
}

/// The outcome of a scripted load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScriptedOutcome {
    /// The load succeeds and the device's used memory grows by `bytes`.
    Succeeds {
        /// Bytes the loaded model really takes on the device.
        bytes: u64,
    },
    /// The load fails (for example an out-of-memory error from the runtime); nothing stays allocated.
    Fails {
        /// The runtime's error, in words.
        reason: String,
    },
}

/// A failed simulated load.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SimulatedLoadError {
    /// The test did not script this model.
    #[error("model {model} has no scripted load on {device}")]
    NotScripted {
        /// The model asked for.
        model: String,
        /// The simulated device.
        device: DeviceId,
    },
    /// The script says this load fails.
    #[error("scripted failure loading {model} on {device}: {reason}")]
    Failed {
        /// The model asked for.
        model: String,
        /// The simulated device.
        device: DeviceId,
        /// The scripted reason.
        reason: String,
    },
}

#[derive(Debug, Default)]
struct SimulatedState {
    total: u64,
    external: u64,
    ours: u64,
    /// Freed memory that shows in readings only after some more readings (driver lag).
    lagging_frees: Vec<(u64, u32)>,
    failing_reads: u32,
    unavailable: Option<String>,
    loads: BTreeMap<String, ScriptedLoad>,
}

/// A device whose memory is whatever the test says it is.
#[derive(Debug)]
pub struct SimulatedDevice {
    id: DeviceId,
    name: String,
    state: Mutex<SimulatedState>,
}

impl SimulatedDevice {
    /// A simulated GPU with the given UUID and total memory.
    pub fn gpu(uuid: &str, total_bytes: u64) -> Self {
        Self::new(DeviceId::Gpu(uuid.to_owned()), "simulated GPU", total_bytes)
    }

    /// A simulated host with the given RAM.
    pub fn host(total_bytes: u64) -> Self {
        Self::new(DeviceId::Host, "simulated host", total_bytes)
    }

    fn new(id: DeviceId, name: &str, total: u64) -> Self {
        Self {
            id,
            name: name.to_owned(),
            state: Mutex::new(SimulatedState {
                total,
                ..SimulatedState::default()
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, SimulatedState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Sets the memory used by other processes.
    pub fn set_external(&self, bytes: u64) {
        self.state().external = bytes;
    }

    /// This process allocates `bytes` (a session, the CUDA context).
    pub fn allocate(&self, bytes: u64) {
        let mut state = self.state();
        state.ours = state.ours.saturating_add(bytes);
    }

    /// This process frees `bytes`; the readings show it at once.
    pub fn free(&self, bytes: u64) {
        let mut state = self.state();
        state.ours = state.ours.saturating_sub(bytes);
    }

    /// This process frees `bytes`, but readings show it only after `after_reads` more readings.
    pub fn free_lagging(&self, bytes: u64, after_reads: u32) {
        let mut state = self.state();
        let bytes = bytes.min(state.ours);
        state.ours -= bytes;
        state.lagging_frees.push((bytes, after_reads));
    }

    /// The next `count` readings fail with `reason`.
    pub fn fail_next_reads(&self, count: u32, reason: &str) {
        let mut state = self.state();
        state.failing_reads = count;
        state.unavailable = Some(reason.to_owned());
    }

    /// Scripts how loading `model` behaves.
    pub fn script_load(&self, model: &str, load: ScriptedLoad) {
        self.state().loads.insert(model.to_owned(), load);
    }

    /// Loads `model` as scripted: waits its latency on `clock`, then allocates its bytes or fails.
    pub fn load(&self, model: &str, clock: &dyn Clock) -> Result<u64, SimulatedLoadError> {
        let script = self.state().loads.get(model).cloned().ok_or_else(|| {
            SimulatedLoadError::NotScripted {
                model: model.to_owned(),
                device: self.id.clone(),
            }
        })?;
        clock.sleep(script.latency);
        match script.outcome {
            ScriptedOutcome::Succeeds { bytes } => {
                self.allocate(bytes);
                Ok(bytes)
            }
            ScriptedOutcome::Fails { reason } => Err(SimulatedLoadError::Failed {
                model: model.to_owned(),
                device: self.id.clone(),
                reason,
            }),
        }
    }
}

impl DeviceProbe for SimulatedDevice {
    fn id(&self) -> &DeviceId {
        &self.id
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn read(&self) -> Result<MemoryReading, ReadingUnavailable> {
        let mut state = self.state();
        if state.failing_reads > 0 {
            state.failing_reads -= 1;
            let reason = state.unavailable.clone().unwrap_or_default();
            return Err(ReadingUnavailable {
                device: self.id.clone(),
                reason,
            });
        }
        let lagging: u64 = state.lagging_frees.iter().map(|(bytes, _)| bytes).sum();
        for (_, reads_left) in &mut state.lagging_frees {
            *reads_left = reads_left.saturating_sub(1);
        }
        state
            .lagging_frees
            .retain(|(_, reads_left)| *reads_left > 0);
        let used = state
            .external
            .saturating_add(state.ours)
            .saturating_add(lagging)
            .min(state.total);
        Ok(MemoryReading {
            total_bytes: state.total,
            used_bytes: used,
            free_bytes: state.total - used,
        })
    }
}
