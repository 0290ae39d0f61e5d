//! Devices, the memory ledger, the footprint estimator, placement and the swap policy.
//!
//! The crate knows nothing about ONNX Runtime: the manager tells it what happened (a load
//! started, finished with a measured footprint, failed; a model was unloaded) and asks it what
//! to do (where to place a model, what to evict). The policy core is pure and takes time from
//! an injectable [`Clock`]; the only outside world it touches is NVML (loaded lazily) and the
//! OS's memory figures, both behind [`DeviceProbe`].

mod clock;
mod device;
mod estimator;
mod gate;
mod ledger;
mod placement;
mod policy;
pub mod sim;
mod simulated;
mod survey;

pub use clock::{Clock, ManualClock, SystemClock, Timestamp};
pub use device::{
    DeviceId, DeviceKind, DeviceProbe, HostMemoryProbe, MemoryReading, NvmlGpu, NvmlUnavailable,
    ReadingUnavailable, nvml, nvml_gpus,
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
