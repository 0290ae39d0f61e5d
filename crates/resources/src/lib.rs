//! Devices, the memory ledger, the footprint estimator, placement and the swap policy.
//!
//! The crate knows nothing about ONNX Runtime: the manager tells it what happened (a load
//! started, finished with a measured footprint, failed; a model was unloaded) and asks it what
//! to do (where to place a model, what to evict). The policy core is pure and takes time from
//! an injectable [`Clock`]; the only outside world it touches is NVML (loaded lazily) and the
//! OS's memory figures, both behind [`DeviceProbe`].
//!
//! # The path of a load, as the manager drives it
//!
//! 1. [`FootprintEstimator::estimate`]: bytes to reserve (measured > declared > weights × factor).
//! 2. [`place`]: which device and provider, from the request string ([`DeviceRequest`]) and the
//!    model's providers; candidates carry [`MemoryLedger::available_bytes`] and
//!    [`EvictionPolicy::evictable_bytes`].
//! 3. [`EvictionPolicy::plan`] on a [`DeviceSnapshot::from_ledger`]: the victims, or
//!    [`InsufficientRoom`] at once when nothing could make room. Unload the victims (step 7).
//! 4. [`LoadGate::try_enter`] / [`LoadGate::enter`]: one load per device at a time;
//!    [`LoadPermit::take_baseline`] reads the device (on the CPU, this process's RSS through
//!    [`ProcessMemoryProbe`], since system-wide usage moves with every other process).
//! 5. [`MemoryLedger::reserve`] → load → [`LoadPermit::measure_delta`] →
//!    [`MemoryLedger::commit`] (or [`MemoryLedger::abort`] if the load failed) → drop the permit.
//! 6. [`FootprintEstimator::record`]: remember the measured footprint and load time.
//! 7. Unload: [`MemoryLedger::release`] with a reading taken *before* the session is dropped,
//!    drop the session, then [`MemoryLedger::verify_release`] (Ollama-style polling, bounded).
//!
//! On every lease: [`UsageTracker::record`], whose decayed count is the policy's "recent use".
//! Between loads: [`EvictionPolicy::expired`] (keep-alive) and [`EvictionPolicy::proactive`]
//! (watermarks); [`MemoryLedger::observe`] after any reading keeps other processes' usage
//! current. [`survey`] is what `modelmux doctor` prints.

mod clock;
mod device;
mod estimator;
mod gate;
mod ledger;
mod ordinals;
mod placement;
mod policy;
pub mod sim;
mod simulated;
mod survey;

pub use clock::{Clock, ManualClock, SystemClock, Timestamp};
pub use device::{
    DeviceId, DeviceKind, DeviceProbe, HostMemoryProbe, MemoryReading, NvmlGpu, NvmlUnavailable,
    ProcessMemoryProbe, ReadingUnavailable, local_probes, nvml, nvml_gpus,
};
pub use estimator::{
    EstimatorError, Footprint, FootprintEstimator, FootprintKey, FootprintSource, Provider,
    ProviderFactors, UnknownProvider,
};
pub use gate::{DeltaError, GateError, LoadGate, LoadPermit};
pub use ledger::{
    CommitReport, ForeignToken, LedgerError, LedgerSnapshot, LedgerToken, MemoryLedger, ModelKey,
    PendingRelease, ReleaseOutcome, ReleaseReport, Reservation, VerifySchedule,
};
pub use ordinals::{OrdinalInput, cuda_ordinals, cuda_ordinals_from_env};
pub use placement::{
    CpuFallback, DeviceCandidate, DeviceRequest, ParseDeviceError, Placement, PlacementError,
    PlacementRequest, RejectedOption, place,
};
pub use policy::{
    BusyModel, DeviceSnapshot, EvictionPlan, EvictionPolicy, InsufficientRoom, Priority,
    ResidentModel, RoomRequest, UsageTracker, Victim, Watermarks,
};
pub use simulated::{ScriptedLoad, ScriptedOutcome, SimulatedDevice, SimulatedLoadError};
pub use survey::{
    GpuReading, HostMemory, MigInstanceReading, MigSurvey, NvmlSurvey, Survey, survey,
};

#[cfg(test)]
mod tests;
