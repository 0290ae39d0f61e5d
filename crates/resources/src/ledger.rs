//! The per-device memory ledger: reserve before a load, commit the measured footprint after it
//! (or abort), release after unload, then verify on the device that the memory came back.
//!
//! Every byte the ledger counts is in exactly one place: the runtime overhead (charged to the
//! device once), a reservation (a load in flight), a committed model, a release not yet
//! verified, or unreclaimed memory (released but never seen again on the device). What the
//! device uses beyond that belongs to other processes and is subtracted from what is available.
//!
//! **Invariants.** A reservation is granted only if everything the ledger counts, plus other
//! processes' usage, plus the reservation, stays within the budget. [`Reservation`] and
//! [`PendingRelease`] are move-only tokens: a reservation is committed or aborted once, a
//! release is verified once, and [`MemoryLedger::release`] of a model that is not resident is
//! an error, so nothing is released twice. Aborting a reservation restores the ledger exactly.
//! A commit records what was measured even when it exceeds the reservation (the memory is in
//! use whatever the ledger thinks); the overshoot is reported so that the manager can evict.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::clock::Clock;
use crate::device::{DeviceId, DeviceProbe, MemoryReading};

/// The name the manager gives a loaded model, for example `clip-vit-b32@2`.
///
/// This crate does not depend on the registry, so the manager chooses the string; it must be
/// unique among the models loaded on one device.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ModelKey(pub String);

impl From<&str> for ModelKey {
    fn from(name: &str) -> Self {
        Self(name.to_owned())
    }
}

impl From<String> for ModelKey {
    fn from(name: String) -> Self {
        Self(name)
    }
}

impl fmt::Display for ModelKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What the ledger refuses, with the numbers that made it refuse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LedgerError {
    /// The reservation does not fit in what is left of the budget.
    #[error(
        "cannot reserve {requested_bytes} bytes for {model} on {device}: {available_bytes} available \
         (budget {budget_bytes}, committed {committed_bytes}, reserved {reserved_bytes}, \
         other processes {external_bytes}, runtime overhead {runtime_overhead_bytes}, \
         releasing or unreclaimed {releasing_bytes})"
    )]
    InsufficientMemory {
        /// The model that asked.
        model: ModelKey,
        /// The device asked.
        device: DeviceId,
        /// Bytes asked for, including the runtime overhead when this is the device's first load.
        requested_bytes: u64,
        /// Bytes that were available.
        available_bytes: u64,
        /// The device's budget.
        budget_bytes: u64,
        /// Bytes committed to loaded models.
        committed_bytes: u64,
        /// Bytes reserved by loads in flight.
        reserved_bytes: u64,
        /// Bytes other processes use.
        external_bytes: u64,
        /// The per-process runtime overhead charged to the device.
        runtime_overhead_bytes: u64,
        /// Bytes released but not yet verified, or never reclaimed.
        releasing_bytes: u64,
    },
    /// The model is already loaded on this device.
    #[error("{model} is already loaded on {device} ({bytes} bytes)")]
    AlreadyResident {
        /// The model.
        model: ModelKey,
        /// The device.
        device: DeviceId,
        /// Its committed footprint.
        bytes: u64,
    },
    /// A load of the model is already in flight on this device.
    #[error("{model} is already being loaded on {device}")]
    LoadInFlight {
        /// The model.
        model: ModelKey,
        /// The device.
        device: DeviceId,
    },
    /// The model is not loaded on this device (never loaded, or already released).
    #[error("{model} is not loaded on {device}; nothing to release")]
    NotResident {
        /// The model.
        model: ModelKey,
        /// The device.
        device: DeviceId,
    },
}

/// A reservation or release given to a ledger that did not issue it; the token comes back
/// unused so that it can be given to the right one.
#[derive(Debug)]
pub struct ForeignToken<T: LedgerToken> {
    /// The token, returned unused.
    pub token: T,
    /// The ledger it was given to.
    pub ledger_device: DeviceId,
}

/// What [`Reservation`] and [`PendingRelease`] have in common: the model and the device
/// whose ledger issued them.
pub trait LedgerToken: fmt::Debug {
    /// The model the token is for.
    fn model(&self) -> &ModelKey;
    /// The device whose ledger issued it.
    fn device(&self) -> &DeviceId;
}

impl<T: LedgerToken> fmt::Display for ForeignToken<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "this token for {} belongs to device {}, not {}",
            self.token.model(),
            self.token.device(),
            self.ledger_device
        )
    }
}

impl<T: LedgerToken> std::error::Error for ForeignToken<T> {}

/// Memory held for a load in flight; commit it with the measured footprint or abort it.
///
/// Not `Clone`: each reservation is settled exactly once.
#[derive(Debug, PartialEq, Eq)]
#[must_use = "a reservation holds memory until it is committed or aborted"]
pub struct Reservation {
    id: u64,
    device: DeviceId,
    model: ModelKey,
    model_bytes: u64,
    overhead_bytes: u64,
}

impl LedgerToken for Reservation {
    fn model(&self) -> &ModelKey {
        &self.model
    }

    fn device(&self) -> &DeviceId {
        &self.device
    }
}

impl Reservation {
    /// Bytes reserved for the model itself.
    pub fn model_bytes(&self) -> u64 {
        self.model_bytes
    }

    /// Bytes reserved for the runtime overhead, non-zero only for the first load on a device.
    pub fn overhead_bytes(&self) -> u64 {
        self.overhead_bytes
    }
}

/// What a commit recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CommitReport {
    /// The model.
    pub model: ModelKey,
    /// Bytes that had been reserved for the model.
    pub reserved_bytes: u64,
    /// Bytes committed to the model (the measurement).
    pub committed_bytes: u64,
    /// The runtime overhead charged to the device by this commit (first load only).
    pub runtime_overhead_charged: Option<u64>,
    /// How far the ledger is now over its budget (0 unless the measurement exceeded the
    /// reservation by more than the headroom). The manager should evict this much.
    pub over_budget_bytes: u64,
}

/// A model taken off the ledger's committed list whose memory has not been seen coming back.
///
/// Not `Clone`: each release is verified once.
#[derive(Debug, PartialEq, Eq)]
#[must_use = "verify the release so that unreclaimed memory is recorded"]
pub struct PendingRelease {
    id: u64,
    device: DeviceId,
    model: ModelKey,
    bytes: u64,
    used_before: Option<u64>,
}

impl LedgerToken for PendingRelease {
    fn model(&self) -> &ModelKey {
        &self.model
    }

    fn device(&self) -> &DeviceId {
        &self.device
    }
}

impl PendingRelease {
    /// Its committed footprint.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

/// How long and how hard to look for released memory.
///
/// The defaults are Ollama's (`waitForVRAMRecovery`: every 250 ms for up to 5 s, done when 75%
/// has come back; serving-anchors.md §2), whose comment reports typical convergence in 0.5–1.5 s.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VerifySchedule {
    /// Readings to take at most.
    pub attempts: u32,
    /// Time between readings.
    pub interval: Duration,
    /// Fraction of the released bytes that must show as freed for the release to count as
    /// verified. Below 1 because the device reading moves with other processes too.
    pub required_fraction: f64,
}

impl Default for VerifySchedule {
    fn default() -> Self {
        Self {
            attempts: 20,
            interval: Duration::from_millis(250),
            required_fraction: 0.75,
        }
    }
}

/// How a verified release ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum ReleaseOutcome {
    /// Enough of the memory showed as freed.
    Verified,
    /// The memory did not come back within the schedule; the rest is recorded as unreclaimed.
    Unreclaimed,
    /// No reading could be taken; the ledger trusts the release.
    Unverifiable {
        /// Why no reading could be had.
        reason: String,
    },
}

/// What verified release found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReleaseReport {
    /// The model.
    pub model: ModelKey,
    /// Its committed footprint.
    pub released_bytes: u64,
    /// How much the device's used memory fell, at the last reading.
    pub observed_freed_bytes: Option<u64>,
    /// Bytes that did not come back; kept on the ledger as this process's.
    pub unreclaimed_bytes: u64,
    /// Readings taken.
    pub attempts: u32,
    /// The verdict.
    pub outcome: ReleaseOutcome,
}

/// A copy of everything the ledger counts, for tests, metrics and policy snapshots.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LedgerSnapshot {
    /// The device.
    pub device: DeviceId,
    /// The budget.
    pub budget_bytes: u64,
    /// The runtime overhead charged to the device (0 until the first load).
    pub runtime_overhead_bytes: u64,
    /// Other processes' usage at the last observation.
    pub external_bytes: u64,
    /// Reservations in flight: (model, bytes including any overhead).
    pub reservations: Vec<(ModelKey, u64)>,
    /// Committed models and their footprints.
    pub committed: Vec<(ModelKey, u64)>,
    /// Releases not yet verified.
    pub releasing: Vec<(ModelKey, u64)>,
    /// Bytes never reclaimed, per model.
    pub unreclaimed: Vec<(ModelKey, u64)>,
    /// Bytes still available for reservations.
    pub available_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct HeldReservation {
    model: ModelKey,
    model_bytes: u64,
    overhead_bytes: u64,
}

/// The memory ledger of one device.
#[derive(Debug, Clone)]
pub struct MemoryLedger {
    device: DeviceId,
    budget: u64,
    expected_overhead: u64,
    overhead: u64,
    external: u64,
    next_id: u64,
    reservations: BTreeMap<u64, HeldReservation>,
    committed: BTreeMap<ModelKey, u64>,
    /// Releases not yet verified, by release id: a model may be released, loaded again and
    /// released again before the first release is verified.
    releasing: BTreeMap<u64, (ModelKey, u64)>,
    unreclaimed: BTreeMap<ModelKey, u64>,
}

impl MemoryLedger {
    /// A ledger for `device` that may use `budget_bytes` in total, and that charges
    /// `runtime_overhead_bytes` to the device with the first load (the CUDA context and library
    /// handles: ~546 MiB measured on an H200 with ORT 1.31, ort-runtime.md §14; 0 for the host).
    pub fn new(device: DeviceId, budget_bytes: u64, runtime_overhead_bytes: u64) -> Self {
        Self {
            device,
            budget: budget_bytes,
            expected_overhead: runtime_overhead_bytes,
            overhead: 0,
            external: 0,
            next_id: 0,
            reservations: BTreeMap::new(),
            committed: BTreeMap::new(),
            releasing: BTreeMap::new(),
            unreclaimed: BTreeMap::new(),
        }
    }

    /// A ledger whose budget is the device's total memory and which counts everything already
    /// in use as other processes' (call it before this process touches the device).
    pub fn from_reading(
        device: DeviceId,
        reading: &MemoryReading,
        runtime_overhead_bytes: u64,
    ) -> Self {
        let mut ledger = Self::new(device, reading.total_bytes, runtime_overhead_bytes);
        ledger.observe(reading);
        ledger
    }

    /// The bytes in flight (reserved), and released but not yet verified or never reclaimed:
    /// what a policy snapshot counts besides resident models.
    pub fn pending_bytes(&self) -> (u64, u64) {
        (self.reserved_total(), self.releasing_total())
    }

    /// The device this ledger counts.
    pub fn device(&self) -> &DeviceId {
        &self.device
    }

    /// The budget.
    pub fn budget_bytes(&self) -> u64 {
        self.budget
    }

    /// Changes the budget (for example after a reading shows a different total). Reservations
    /// already granted stay; new ones see the new budget.
    pub fn set_budget(&mut self, budget_bytes: u64) {
        self.budget = budget_bytes;
    }

    /// The committed footprint of `model`, if it is loaded here.
    pub fn committed_bytes(&self, model: &ModelKey) -> Option<u64> {
        self.committed.get(model).copied()
    }

    /// The runtime overhead charged to the device so far.
    pub fn runtime_overhead_bytes(&self) -> u64 {
        self.overhead
    }

    /// Charges the runtime overhead now, measured by the caller: for when the CUDA context was
    /// created before the first load (then a load's delta no longer contains it, and the first
    /// commit must not subtract it). Replaces any overhead charged before. Other processes'
    /// usage is corrected at the next [`observe`](Self::observe).
    pub fn charge_runtime_overhead(&mut self, bytes: u64) {
        self.overhead = bytes;
        self.expected_overhead = bytes;
    }

    /// Other processes' usage at the last observation.
    pub fn external_bytes(&self) -> u64 {
        self.external
    }

    fn reserved_total(&self) -> u64 {
        self.reservations
            .values()
            .map(|r| r.model_bytes + r.overhead_bytes)
            .sum()
    }

    fn committed_total(&self) -> u64 {
        self.committed.values().sum()
    }

    fn releasing_total(&self) -> u64 {
        self.releasing.values().map(|(_, bytes)| bytes).sum::<u64>()
            + self.unreclaimed.values().sum::<u64>()
    }

    /// Everything this process holds on the device according to the ledger.
    pub fn ours_bytes(&self) -> u64 {
        self.overhead + self.reserved_total() + self.committed_total() + self.releasing_total()
    }

    /// Bytes still available for new reservations: the budget less what this process holds
    /// and what other processes use.
    pub fn available_bytes(&self) -> u64 {
        self.budget
            .saturating_sub(self.ours_bytes().saturating_add(self.external))
    }

    /// Takes a device reading into account: other processes' usage becomes `used − ours`.
    ///
    /// While loads are in flight the reading contains part of their reservations, so the new
    /// figure can only raise the previous one; it may fall again once no load is in flight.
    /// When the device uses less than the ledger holds, memory recorded as unreclaimed has come
    /// back after all, and the ledger forgets that much of it.
    pub fn observe(&mut self, reading: &MemoryReading) {
        let ours = self.ours_bytes();
        if reading.used_bytes < ours {
            let mut surplus = ours - reading.used_bytes;
            for bytes in self.unreclaimed.values_mut() {
                let back = surplus.min(*bytes);
                *bytes -= back;
                surplus -= back;
            }
            self.unreclaimed.retain(|_, bytes| *bytes > 0);
        }
        let external = reading.used_bytes.saturating_sub(self.ours_bytes());
        self.external = if self.reservations.is_empty() {
            external
        } else {
            external.max(self.external)
        };
    }

    /// Reserves memory for loading `model`, whose footprint is expected to be `bytes`.
    ///
    /// The first load on a device also reserves the runtime overhead, unless another load in
    /// flight already does.
    pub fn reserve(&mut self, model: ModelKey, bytes: u64) -> Result<Reservation, LedgerError> {
        if let Some(&resident) = self.committed.get(&model) {
            return Err(LedgerError::AlreadyResident {
                model,
                device: self.device.clone(),
                bytes: resident,
            });
        }
        if self.reservations.values().any(|r| r.model == model) {
            return Err(LedgerError::LoadInFlight {
                model,
                device: self.device.clone(),
            });
        }
        let overhead_pending =
            self.overhead == 0 && self.reservations.values().all(|r| r.overhead_bytes == 0);
        let overhead_bytes = if overhead_pending {
            self.expected_overhead
        } else {
            0
        };
        let requested = bytes.saturating_add(overhead_bytes);
        let available = self.available_bytes();
        if requested > available {
            return Err(LedgerError::InsufficientMemory {
                model,
                device: self.device.clone(),
                requested_bytes: requested,
                available_bytes: available,
                budget_bytes: self.budget,
                committed_bytes: self.committed_total(),
                reserved_bytes: self.reserved_total(),
                external_bytes: self.external,
                runtime_overhead_bytes: self.overhead,
                releasing_bytes: self.releasing_total(),
            });
        }
        let id = self.next_id;
        self.next_id += 1;
        self.reservations.insert(
            id,
            HeldReservation {
                model: model.clone(),
                model_bytes: bytes,
                overhead_bytes,
            },
        );
        Ok(Reservation {
            id,
            device: self.device.clone(),
            model,
            model_bytes: bytes,
            overhead_bytes,
        })
    }

    fn check_reservation(
        &self,
        reservation: Reservation,
    ) -> Result<Reservation, ForeignToken<Reservation>> {
        let known = self.reservations.get(&reservation.id).is_some_and(|held| {
            held.model == reservation.model && reservation.device == self.device
        });
        if known {
            Ok(reservation)
        } else {
            Err(ForeignToken {
                ledger_device: self.device.clone(),
                token: reservation,
            })
        }
    }

    /// Records a finished load. `measured_bytes` is the device delta the load caused (taken
    /// with loads serialised, see [`LoadGate`](crate::LoadGate)); when this reservation carried
    /// the runtime overhead, the delta includes it, and the expected overhead is charged to the
    /// device and the rest to the model.
    pub fn commit(
        &mut self,
        reservation: Reservation,
        measured_bytes: u64,
    ) -> Result<CommitReport, ForeignToken<Reservation>> {
        let reservation = self.check_reservation(reservation)?;
        self.reservations.remove(&reservation.id);
        let (overhead_charged, model_bytes) = if reservation.overhead_bytes > 0 {
            let overhead = reservation.overhead_bytes.min(measured_bytes);
            self.overhead += overhead;
            (Some(overhead), measured_bytes - overhead)
        } else {
            (None, measured_bytes)
        };
        self.committed
            .insert(reservation.model.clone(), model_bytes);
        let over_budget_bytes =
            (self.ours_bytes().saturating_add(self.external)).saturating_sub(self.budget);
        if over_budget_bytes > 0 {
            tracing::warn!(
                model = %reservation.model,
                device = %self.device,
                reserved = reservation.model_bytes,
                measured = model_bytes,
                over_budget_bytes,
                "a load took more memory than reserved and the device is over budget"
            );
        }
        Ok(CommitReport {
            model: reservation.model,
            reserved_bytes: reservation.model_bytes,
            committed_bytes: model_bytes,
            runtime_overhead_charged: overhead_charged,
            over_budget_bytes,
        })
    }

    /// Gives back a reservation whose load failed; the ledger is exactly as before `reserve`.
    pub fn abort(&mut self, reservation: Reservation) -> Result<(), ForeignToken<Reservation>> {
        let reservation = self.check_reservation(reservation)?;
        self.reservations.remove(&reservation.id);
        Ok(())
    }

    /// Takes `model` off the committed list before its session is dropped.
    ///
    /// Call this *before* dropping the session: `before` (a reading taken now) is the baseline
    /// that verification compares against. The bytes stay counted until
    /// [`verify_release`](Self::verify_release) has seen them come back.
    pub fn release(
        &mut self,
        model: &ModelKey,
        before: Option<MemoryReading>,
    ) -> Result<PendingRelease, LedgerError> {
        let Some(bytes) = self.committed.remove(model) else {
            return Err(LedgerError::NotResident {
                model: model.clone(),
                device: self.device.clone(),
            });
        };
        let id = self.next_id;
        self.next_id += 1;
        self.releasing.insert(id, (model.clone(), bytes));
        Ok(PendingRelease {
            id,
            device: self.device.clone(),
            model: model.clone(),
            bytes,
            used_before: before.map(|reading| reading.used_bytes),
        })
    }

    /// Polls `probe` until the released memory shows as freed, for at most `schedule.attempts`
    /// readings `schedule.interval` apart; records what did not come back as unreclaimed.
    ///
    /// Verification compares against the reading taken at [`release`](Self::release), not
    /// against zero: the CUDA context stays until the process exits (ort-runtime.md §14).
    pub fn verify_release(
        &mut self,
        pending: PendingRelease,
        probe: &dyn DeviceProbe,
        clock: &dyn Clock,
        schedule: &VerifySchedule,
    ) -> Result<ReleaseReport, ForeignToken<PendingRelease>> {
        let known = self
            .releasing
            .get(&pending.id)
            .is_some_and(|(model, _)| *model == pending.model);
        if pending.device != self.device || !known {
            return Err(ForeignToken {
                ledger_device: self.device.clone(),
                token: pending,
            });
        }
        self.releasing.remove(&pending.id);
        let Some(before) = pending.used_before else {
            return Ok(ReleaseReport {
                model: pending.model,
                released_bytes: pending.bytes,
                observed_freed_bytes: None,
                unreclaimed_bytes: 0,
                attempts: 0,
                outcome: ReleaseOutcome::Unverifiable {
                    reason: "no reading was taken before the release".to_owned(),
                },
            });
        };
        // Truncation is intended: the threshold is a whole number of bytes at most `bytes`.
        let required = (pending.bytes as f64 * schedule.required_fraction.clamp(0.0, 1.0)) as u64;
        let mut attempts = 0;
        let mut freed = None;
        let mut last_error = None;
        let mut last_reading = None;
        while attempts < schedule.attempts.max(1) {
            if attempts > 0 {
                clock.sleep(schedule.interval);
            }
            attempts += 1;
            match probe.read() {
                Ok(reading) => {
                    let now_freed = before.saturating_sub(reading.used_bytes);
                    freed = Some(now_freed);
                    last_reading = Some(reading);
                    if now_freed >= required {
                        break;
                    }
                }
                Err(error) => last_error = Some(error.reason),
            }
        }
        let report = match freed {
            None => ReleaseReport {
                model: pending.model,
                released_bytes: pending.bytes,
                observed_freed_bytes: None,
                unreclaimed_bytes: 0,
                attempts,
                outcome: ReleaseOutcome::Unverifiable {
                    reason: last_error.unwrap_or_else(|| "no reading".to_owned()),
                },
            },
            Some(freed) => {
                let unreclaimed = pending.bytes.saturating_sub(freed);
                if unreclaimed > 0 {
                    *self.unreclaimed.entry(pending.model.clone()).or_default() += unreclaimed;
                }
                let outcome = if freed >= required {
                    ReleaseOutcome::Verified
                } else {
                    tracing::warn!(
                        model = %pending.model,
                        device = %self.device,
                        released = pending.bytes,
                        freed,
                        "released memory did not come back on the device"
                    );
                    ReleaseOutcome::Unreclaimed
                };
                ReleaseReport {
                    model: pending.model,
                    released_bytes: pending.bytes,
                    observed_freed_bytes: Some(freed),
                    unreclaimed_bytes: unreclaimed,
                    attempts,
                    outcome,
                }
            }
        };
        if let Some(reading) = last_reading {
            self.observe(&reading);
        }
        Ok(report)
    }

    /// A copy of everything the ledger counts.
    pub fn snapshot(&self) -> LedgerSnapshot {
        let pairs =
            |map: &BTreeMap<ModelKey, u64>| map.iter().map(|(m, b)| (m.clone(), *b)).collect();
        LedgerSnapshot {
            device: self.device.clone(),
            budget_bytes: self.budget,
            runtime_overhead_bytes: self.overhead,
            external_bytes: self.external,
            reservations: self
                .reservations
                .values()
                .map(|r| (r.model.clone(), r.model_bytes + r.overhead_bytes))
                .collect(),
            committed: pairs(&self.committed),
            releasing: self.releasing.values().cloned().collect(),
            unreclaimed: pairs(&self.unreclaimed),
            available_bytes: self.available_bytes(),
        }
    }
}
