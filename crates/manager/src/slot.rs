//! One catalog model's life in the manager: its state, leases, pins and counters.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use modelmux_registry::{CachePolicy, ModelSpec};
use modelmux_resources::{ModelKey, Provider, Timestamp, UsageTracker};
use serde::Serialize;

use crate::loader::LoadedModel;

/// Where a model is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelState {
    Unloaded,
    Loading,
    Ready,
    Evicting,
    Failed,
}

/// A loaded model and where it lives.
#[derive(Debug)]
pub(crate) struct Resident {
    pub(crate) model: LoadedModel,
    /// The device index; `None` for remote models, which hold no local memory.
    pub(crate) device: Option<usize>,
    pub(crate) provider: Provider,
    pub(crate) bytes: u64,
    pub(crate) loaded_at: Timestamp,
    pub(crate) load_time: Duration,
}

#[derive(Debug)]
pub(crate) enum SlotState {
    Unloaded,
    Loading,
    Ready(Arc<Resident>),
    Evicting,
    Failed,
}

impl SlotState {
    pub(crate) fn public(&self) -> ModelState {
        match self {
            Self::Unloaded => ModelState::Unloaded,
            Self::Loading => ModelState::Loading,
            Self::Ready(_) => ModelState::Ready,
            Self::Evicting => ModelState::Evicting,
            Self::Failed => ModelState::Failed,
        }
    }
}

/// Counters kept per model for status and metrics.
#[derive(Debug, Clone, Default)]
pub(crate) struct Counters {
    pub(crate) loads: u64,
    pub(crate) load_failures: u64,
    pub(crate) evictions: u64,
    pub(crate) hits: u64,
    pub(crate) misses: u64,
    pub(crate) load_seconds: f64,
    pub(crate) last_error: Option<String>,
    pub(crate) last_used: Option<Timestamp>,
}

#[derive(Debug)]
pub(crate) struct ModelSlot {
    pub(crate) spec: ModelSpec,
    pub(crate) key: ModelKey,
    /// Held while the model loads: concurrent first requests wait here and share the one load.
    pub(crate) load_lock: tokio::sync::Mutex<()>,
    state: Mutex<SlotState>,
    pub(crate) leases: AtomicU32,
    pub(crate) pins: AtomicU32,
    counters: Mutex<Counters>,
    usage: Mutex<UsageTracker>,
}

/// How fast a model's recent use decays when the policy weighs reload costs.
const USAGE_HALF_LIFE: Duration = Duration::from_secs(300);

impl ModelSlot {
    pub(crate) fn new(spec: ModelSpec) -> Self {
        Self {
            key: ModelKey(spec.key()),
            spec,
            load_lock: tokio::sync::Mutex::new(()),
            state: Mutex::new(SlotState::Unloaded),
            leases: AtomicU32::new(0),
            pins: AtomicU32::new(0),
            counters: Mutex::default(),
            usage: Mutex::new(UsageTracker::new(USAGE_HALF_LIFE)),
        }
    }

    /// The state, recovering from a poisoned lock: every writer leaves it consistent.
    pub(crate) fn state(&self) -> MutexGuard<'_, SlotState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn counters(&self) -> MutexGuard<'_, Counters> {
        self.counters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn record_use(&self, now: Timestamp) {
        self.usage
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .record(now);
        self.counters().last_used = Some(now);
    }

    pub(crate) fn recent_uses(&self, now: Timestamp) -> f64 {
        self.usage
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .recent_uses(now)
    }

    /// The device index the model is loaded on, if it is.
    pub(crate) fn resident_device(&self) -> Option<usize> {
        match &*self.state() {
            SlotState::Ready(resident) => resident.device,
            _ => None,
        }
    }

    /// `keep_warm`, or a live pin guard.
    pub(crate) fn pinned(&self) -> bool {
        self.spec.cache_policy == CachePolicy::KeepWarm || self.pins.load(Ordering::Acquire) > 0
    }

    pub(crate) fn keep_alive(&self) -> Option<Duration> {
        match self.spec.cache_policy {
            CachePolicy::Ttl(ttl) => Some(ttl),
            _ => None,
        }
    }
}
