//! `ModelManager`: `get_model` / `load_model` / `release_model` over the catalog, the ledger and
//! the swap policy.
//!
//! A load, in order: resolve the catalog entry → estimate its footprint → place it on a device →
//! take the device's admission lock (one load per device at a time, so the memory delta of a
//! load is its own) → ask the policy for room, evicting idle victims, or wait (bounded) for busy
//! models to be returned, or fail at once when even that cannot make room → reserve on the
//! ledger → load on a blocking thread → measure → commit (or abort on failure, leaving the
//! ledger as it was) → hand out the first lease.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use dashmap::DashMap;
use modelmux_registry::{
    Catalog, ModelSpec, Priority as CatalogPriority, Provider as CatalogProvider,
};
use modelmux_resources::{
    CpuFallback, DeviceCandidate, DeviceId, DeviceRequest, DeviceSnapshot, EvictionPolicy,
    FootprintEstimator, FootprintKey, MemoryLedger, ModelKey, Placement, PlacementError,
    PlacementRequest, Priority, Provider, ProviderFactors, ResidentModel, RoomRequest, place,
};
use tokio::sync::Notify;
use tracing::Instrument;

use crate::error::ManagerError;
use crate::lease::{Lease, PinGuard};
use crate::loader::{LoadRequest, ModelLoader};
use crate::options::{DeviceConfig, ManagerOptions};
use crate::slot::{ModelSlot, Resident, SlotState};

/// The one way an application reaches its models. Cheap to clone; `Send + Sync`.
#[derive(Clone, Debug)]
pub struct ModelManager {
    inner: Arc<Inner>,
}

/// What leases and pin guards need after the manager itself may be gone.
pub(crate) struct Shared {
    pub(crate) clock: Arc<dyn modelmux_resources::Clock>,
    /// Signalled when a model becomes idle or unpinned.
    pub(crate) room_freed: Notify,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").finish_non_exhaustive()
    }
}

pub(crate) struct Inner {
    catalog: Catalog,
    exports_dir: std::path::PathBuf,
    pub(crate) devices: Vec<DeviceSlot>,
    pub(crate) models: DashMap<String, Arc<ModelSlot>>,
    estimator: Mutex<FootprintEstimator>,
    policy: EvictionPolicy,
    loader: Arc<dyn ModelLoader>,
    default_device: DeviceRequest,
    queue_limit: usize,
    room_wait: Duration,
    pub(crate) shared: Arc<Shared>,
    shutting_down: AtomicBool,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelManager")
            .field("catalog", &self.catalog.path())
            .field("devices", &self.devices.len())
            .field("models", &self.models.len())
            .finish_non_exhaustive()
    }
}

pub(crate) struct DeviceSlot {
    pub(crate) config: DeviceConfig,
    pub(crate) ledger: Mutex<MemoryLedger>,
    /// One load per device at a time.
    admission: tokio::sync::Mutex<()>,
}

impl DeviceSlot {
    pub(crate) fn id(&self) -> &DeviceId {
        self.config.probe.id()
    }

    pub(crate) fn ledger(&self) -> MutexGuard<'_, MemoryLedger> {
        self.ledger
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Why `release_model` did nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Released {
    /// The model was unloaded; its memory is back.
    Unloaded { bytes: u64 },
    /// The model was not loaded.
    NotLoaded,
}

/// How `load_model` should load.
#[derive(Debug, Clone)]
pub struct Preload {
    /// Where to load (`auto`, `cpu`, `cuda:N`, a GPU UUID).
    pub device: DeviceRequest,
    /// Keep the model pinned while the returned guard lives.
    pub pin: bool,
}

impl Default for Preload {
    fn default() -> Self {
        Self {
            device: DeviceRequest::Auto,
            pin: false,
        }
    }
}

impl ModelManager {
    /// A manager over `catalog` with `options`. Reads each device once to size its ledger.
    pub fn new(catalog: Catalog, options: ManagerOptions) -> Self {
        let devices = options
            .devices
            .into_iter()
            .map(|config| {
                let id = config.probe.id().clone();
                let ledger = match config.probe.read() {
                    Ok(reading) => {
                        let mut ledger = MemoryLedger::from_reading(id, &reading, config.runtime_overhead_bytes);
                        if let Some(budget) = config.budget_bytes {
                            ledger.set_budget(budget.min(reading.total_bytes));
                        }
                        ledger
                    }
                    Err(e) => {
                        tracing::warn!(device = %e.device, reason = %e.reason, "no memory reading; using the configured budget alone");
                        MemoryLedger::new(id, config.budget_bytes.unwrap_or(0), config.runtime_overhead_bytes)
                    }
                };
                DeviceSlot {
                    config,
                    ledger: Mutex::new(ledger),
                    admission: tokio::sync::Mutex::new(()),
                }
            })
            .collect();
        let estimator = match &options.state_dir {
            Some(dir) => {
                let (estimator, problem) = FootprintEstimator::open(
                    &dir.join("footprints.json"),
                    ProviderFactors::default(),
                );
                if let Some(problem) = problem {
                    tracing::warn!("{problem}");
                }
                estimator
            }
            None => FootprintEstimator::in_memory(ProviderFactors::default()),
        };
        let models = catalog
            .models()
            .iter()
            .map(|spec| (spec.key(), Arc::new(ModelSlot::new(spec.clone()))))
            .collect();
        Self {
            inner: Arc::new(Inner {
                exports_dir: options.exports_dir.unwrap_or_else(|| catalog.exports_dir()),
                catalog,
                devices,
                models,
                estimator: Mutex::new(estimator),
                policy: options.policy,
                loader: options.loader,
                default_device: options.default_device,
                queue_limit: options.queue_limit,
                room_wait: options.room_wait,
                shared: Arc::new(Shared {
                    clock: options.clock,
                    room_freed: Notify::new(),
                }),
                shutting_down: AtomicBool::new(false),
            }),
        }
    }

    /// The catalog the manager serves.
    pub fn catalog(&self) -> &Catalog {
        &self.inner.catalog
    }

    pub(crate) fn inner(&self) -> &Inner {
        &self.inner
    }

    /// A lease on model `reference` (`id`, `id@1.2.3`, `id@^1`), loading it on first use onto the
    /// default device. Concurrent first requests share one load. `T` is the family type the
    /// model's loader produces; asking for another is [`ManagerError::WrongFamily`].
    pub async fn get_model<T: Send + Sync + 'static>(
        &self,
        reference: &str,
    ) -> Result<Lease<T>, ManagerError> {
        let slot = self.slot(reference)?;
        if let Some(lease) = self.try_lease::<T>(&slot)? {
            slot.counters().hits += 1;
            return Ok(lease);
        }
        let device = self.inner.default_device.clone();
        if !self.load_slot(&slot, &device).await? {
            // Another request's load finished while this one waited for it: served by it.
            slot.counters().hits += 1;
        }
        self.try_lease::<T>(&slot)?
            .ok_or_else(|| ManagerError::LoadFailed {
                model: slot.key.0.clone(),
                reason: "the model was unloaded before its first lease".to_owned(),
            })
    }

    /// Loads `reference` ahead of use where `preload` says; the returned guard pins it while it
    /// lives when `preload.pin` is set.
    pub async fn load_model(
        &self,
        reference: &str,
        preload: Preload,
    ) -> Result<PinGuard, ManagerError> {
        let slot = self.slot(reference)?;
        // Pinned before the load so nothing can evict it between the load and the guard.
        let guard = PinGuard::new(
            preload.pin.then(|| Arc::clone(&slot)),
            Arc::clone(&self.inner.shared),
        );
        self.load_slot(&slot, &preload.device).await?;
        Ok(guard)
    }

    /// Unloads `reference` if it is idle; says why not otherwise.
    pub async fn release_model(&self, reference: &str) -> Result<Released, ManagerError> {
        let slot = self.slot(reference)?;
        let _loading = slot.load_lock.lock().await;
        let Some(index) = slot.resident_device() else {
            return Ok(Released::NotLoaded);
        };
        // Unloads take the device's admission lock like loads, so no load's memory delta
        // includes another model's release.
        let _admission = self.inner.devices[index].admission.lock().await;
        self.evict(&slot)
    }

    /// Stops admitting requests, waits up to `grace` for leases to be returned, then unloads
    /// every model (pinned ones too) and verifies the memory came back. Returns the models that
    /// were still leased when the grace period ended (they are unloaded when their leases drop
    /// only if the application does so; their memory stays on the ledger).
    pub async fn shutdown(&self, grace: Duration) -> Vec<String> {
        self.inner.shutting_down.store(true, Ordering::Release);
        let deadline = Instant::now() + grace;
        loop {
            let busy = self
                .slots()
                .iter()
                .any(|s| s.leases.load(Ordering::Acquire) > 0);
            if !busy || Instant::now() >= deadline {
                break;
            }
            let _ = tokio::time::timeout(
                Duration::from_millis(20),
                self.inner.shared.room_freed.notified(),
            )
            .await;
        }
        let mut still_leased = Vec::new();
        for slot in self.slots() {
            let _loading = slot.load_lock.lock().await;
            if slot.leases.load(Ordering::Acquire) > 0 {
                still_leased.push(slot.key.0.clone());
                continue;
            }
            let Some(index) = slot.resident_device() else {
                continue;
            };
            let _admission = self.inner.devices[index].admission.lock().await;
            if let Err(e) = self.unload(&slot) {
                tracing::warn!(model = %slot.key, "shutdown: {e}");
            }
        }
        still_leased
    }

    /// Evicts models whose keep-alive expired and, above a device's high watermark, idle models
    /// down to its low watermark. Runs before every load; applications may also call it on a timer.
    pub fn maintain(&self) {
        for (index, device) in self.inner.devices.iter().enumerate() {
            // Opportunistic: a device busy loading is looked at next time.
            let Ok(_admission) = device.admission.try_lock() else {
                continue;
            };
            let snapshot = self.snapshot(index);
            let mut victims = self.inner.policy.expired(&snapshot);
            victims.extend(
                self.inner
                    .policy
                    .proactive(&snapshot)
                    .victims
                    .into_iter()
                    .map(|v| v.model),
            );
            for victim in victims {
                if let Some(slot) = self.inner.models.get(&victim.0).map(|s| Arc::clone(&s))
                    && let Ok(_loading) = slot.load_lock.try_lock()
                {
                    match self.evict(&slot) {
                        Ok(_) => {
                            tracing::info!(model = %victim, device = %device.id(), "evicted ahead of need")
                        }
                        Err(e) => tracing::debug!(model = %victim, "not evicted: {e}"),
                    }
                }
            }
        }
    }

    fn slot(&self, reference: &str) -> Result<Arc<ModelSlot>, ManagerError> {
        if self.inner.shutting_down.load(Ordering::Acquire) {
            return Err(ManagerError::ShuttingDown);
        }
        let spec = self.inner.catalog.get(reference)?;
        let key = spec.key();
        Ok(Arc::clone(
            &self
                .inner
                .models
                .entry(key)
                .or_insert_with(|| Arc::new(ModelSlot::new(spec.clone()))),
        ))
    }

    pub(crate) fn slots(&self) -> Vec<Arc<ModelSlot>> {
        self.inner
            .models
            .iter()
            .map(|e| Arc::clone(e.value()))
            .collect()
    }

    /// A lease if the model is ready; the lease count moves under the state lock, so an eviction
    /// (which checks it under the same lock) never takes a model someone is about to use.
    fn try_lease<T: Send + Sync + 'static>(
        &self,
        slot: &Arc<ModelSlot>,
    ) -> Result<Option<Lease<T>>, ManagerError> {
        let state = slot.state();
        let SlotState::Ready(resident) = &*state else {
            return Ok(None);
        };
        let object = Arc::clone(&resident.model.object);
        let object = object
            .downcast::<T>()
            .map_err(|_| ManagerError::WrongFamily {
                model: slot.key.0.clone(),
                expected: std::any::type_name::<T>(),
                actual: resident.model.family,
            })?;
        slot.leases.fetch_add(1, Ordering::AcqRel);
        drop(state);
        slot.record_use(self.inner.shared.clock.now());
        Ok(Some(Lease::new(
            object,
            Arc::clone(slot),
            Arc::clone(&self.inner.shared),
        )))
    }

    /// Loads `slot` unless it is ready (single flight through the slot's load lock); whether
    /// this call did the load.
    async fn load_slot(
        &self,
        slot: &Arc<ModelSlot>,
        device: &DeviceRequest,
    ) -> Result<bool, ManagerError> {
        let _loading = slot.load_lock.lock().await;
        if matches!(&*slot.state(), SlotState::Ready(_)) {
            return Ok(false);
        }
        if self.inner.shutting_down.load(Ordering::Acquire) {
            return Err(ManagerError::ShuttingDown);
        }
        slot.counters().misses += 1;
        self.maintain();
        *slot.state() = SlotState::Loading;
        let span = tracing::info_span!("load", model = %slot.key);
        let result = if slot.spec.architecture.is_remote() {
            self.load_remote(slot).instrument(span).await
        } else {
            self.load_locked(slot, device).instrument(span).await
        };
        match result {
            Ok(resident) => {
                let mut counters = slot.counters();
                counters.loads += 1;
                counters.load_seconds += resident.load_time.as_secs_f64();
                counters.last_error = None;
                drop(counters);
                *slot.state() = SlotState::Ready(Arc::new(resident));
                Ok(true)
            }
            Err(e) => {
                let mut counters = slot.counters();
                counters.load_failures += 1;
                counters.last_error = Some(e.to_string());
                drop(counters);
                *slot.state() = SlotState::Failed;
                Err(e)
            }
        }
    }

    async fn load_locked(
        &self,
        slot: &Arc<ModelSlot>,
        device: &DeviceRequest,
    ) -> Result<Resident, ManagerError> {
        let spec = &slot.spec;
        let export_dir = spec.export_dir(&self.inner.exports_dir);
        let placement = self.place(spec, &export_dir, device)?;
        let index = self
            .inner
            .devices
            .iter()
            .position(|d| *d.id() == placement.device)
            .ok_or_else(|| ManagerError::LoadFailed {
                model: slot.key.0.clone(),
                reason: format!("placement chose unknown device {}", placement.device),
            })?;
        let device = &self.inner.devices[index];
        let _admission = device.admission.lock().await;
        self.make_room(slot, index, placement.bytes).await?;

        let reservation = device.ledger().reserve(slot.key.clone(), placement.bytes)?;
        let before = device.config.probe.read().ok();
        let loader = Arc::clone(&self.inner.loader);
        let (owned_spec, device_id, provider) =
            (spec.clone(), placement.device.clone(), placement.provider);
        let (cuda_ordinal, queue_limit) = (device.config.cuda_ordinal, self.inner.queue_limit);
        let started = Instant::now();
        // On a blocking thread: loading takes seconds and must not stall the async runtime. A
        // panicking loader ends that thread, not the manager.
        let loaded = tokio::task::spawn_blocking(move || {
            loader.load(&LoadRequest {
                spec: &owned_spec,
                export_dir,
                device: device_id,
                provider,
                cuda_ordinal,
                queue_limit,
            })
        })
        .await;
        let load_time = started.elapsed();
        let loaded = match loaded {
            Ok(Ok(model)) => model,
            Ok(Err(reason)) => {
                abort(device, reservation);
                return Err(ManagerError::LoadFailed {
                    model: slot.key.0.clone(),
                    reason,
                });
            }
            Err(_) => {
                abort(device, reservation);
                return Err(ManagerError::LoadFailed {
                    model: slot.key.0.clone(),
                    reason: "the loader panicked".to_owned(),
                });
            }
        };
        let after = device.config.probe.read().ok();
        // Loads are serialised per device, so the device's growth during this one is its own.
        // Without readings (or when other processes freed memory meanwhile) the estimate stands.
        let measured = match (before, after) {
            (Some(b), Some(a)) if a.used_bytes > b.used_bytes => a.used_bytes - b.used_bytes,
            _ => placement.bytes,
        };
        let report = {
            let mut ledger = device.ledger();
            let report = ledger.commit(reservation, measured);
            if let Some(reading) = &after {
                ledger.observe(reading);
            }
            report
        };
        let committed = match report {
            Ok(report) => report.committed_bytes,
            Err(foreign) => {
                (loaded.shutdown)();
                return Err(ManagerError::LoadFailed {
                    model: slot.key.0.clone(),
                    reason: foreign.to_string(),
                });
            }
        };
        let key = FootprintKey::new(&spec.id, &spec.version.to_string(), placement.provider);
        if let Err(e) = self.estimator().record(key, committed, Some(load_time)) {
            tracing::warn!("{e}");
        }
        tracing::info!(model = %slot.key, device = %placement.device, provider = %placement.provider, bytes = committed, ms = load_time.as_millis() as u64, "loaded");
        Ok(Resident {
            model: loaded,
            device: Some(index),
            provider: placement.provider,
            bytes: committed,
            loaded_at: self.inner.shared.clock.now(),
            load_time,
        })
    }

    /// A remote model holds no local memory: no placement, no ledger; its adapter is built on a
    /// blocking thread like any other load, and its leases count as use.
    async fn load_remote(&self, slot: &Arc<ModelSlot>) -> Result<Resident, ManagerError> {
        let loader = Arc::clone(&self.inner.loader);
        let spec = slot.spec.clone();
        let export_dir = spec.export_dir(&self.inner.exports_dir);
        let queue_limit = self.inner.queue_limit;
        let started = Instant::now();
        let loaded = tokio::task::spawn_blocking(move || {
            loader.load(&LoadRequest {
                spec: &spec,
                export_dir,
                device: DeviceId::Host,
                provider: Provider::Cpu,
                cuda_ordinal: None,
                queue_limit,
            })
        })
        .await;
        let model = match loaded {
            Ok(Ok(model)) => model,
            Ok(Err(reason)) => {
                return Err(ManagerError::LoadFailed {
                    model: slot.key.0.clone(),
                    reason,
                });
            }
            Err(_) => {
                return Err(ManagerError::LoadFailed {
                    model: slot.key.0.clone(),
                    reason: "the loader panicked".to_owned(),
                });
            }
        };
        Ok(Resident {
            model,
            device: None,
            provider: Provider::Cpu,
            bytes: 0,
            loaded_at: self.inner.shared.clock.now(),
            load_time: started.elapsed(),
        })
    }

    fn estimator(&self) -> MutexGuard<'_, FootprintEstimator> {
        self.inner
            .estimator
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn place(
        &self,
        spec: &ModelSpec,
        export_dir: &std::path::Path,
        device: &DeviceRequest,
    ) -> Result<Placement, ManagerError> {
        let declared = spec.memory_requirement.map(|b| b.bytes());
        let weights = self.inner.loader.weight_bytes(spec, export_dir);
        let footprint = |provider: Provider| -> Result<u64, ManagerError> {
            let key = FootprintKey::new(&spec.id, &spec.version.to_string(), provider);
            self.estimator()
                .estimate(&key, declared, weights)
                .map(|f| f.bytes)
                .map_err(|e| ManagerError::LoadFailed {
                    model: spec.key(),
                    reason: e.to_string(),
                })
        };
        let mut providers = Vec::new();
        for provider in &spec.providers {
            let provider = provider_of(*provider);
            providers.push((provider, footprint(provider)?));
        }
        let cpu_fallback = if spec.cpu_fallback {
            CpuFallback::Allowed {
                bytes: footprint(Provider::Cpu)?,
            }
        } else {
            CpuFallback::Forbidden
        };
        let priority = priority_of(spec.priority);
        let candidates: Vec<DeviceCandidate> = (0..self.inner.devices.len())
            .map(|i| {
                let snapshot = self.snapshot(i);
                let device = &self.inner.devices[i];
                DeviceCandidate {
                    id: device.id().clone(),
                    cuda_ordinal: device.config.cuda_ordinal,
                    available_bytes: device.ledger().available_bytes(),
                    // Busy and recently loaded models and loads in flight count too: a load
                    // waits for them (`make_room`), so placement must not rule their device out.
                    evictable_bytes: snapshot
                        .residents
                        .iter()
                        .filter(|r| !r.pinned && r.priority <= priority)
                        .map(|r| r.bytes)
                        .sum::<u64>()
                        + snapshot.in_flight_bytes,
                }
            })
            .collect();
        let request = PlacementRequest {
            model: spec.key(),
            device: device.clone(),
            providers,
            cpu_fallback,
        };
        match place(&request, &candidates) {
            Ok(placement) => Ok(placement),
            Err(PlacementError::NoRoom { model, rejected }) => {
                // The policy's own verdict on the roomiest device says what holds the memory
                // (pinned, busy, higher priority, other processes), which placement cannot.
                let best = rejected
                    .iter()
                    .max_by_key(|r| r.available_bytes.saturating_add(r.evictable_bytes));
                if let Some(best) = best
                    && let Some(index) = self
                        .inner
                        .devices
                        .iter()
                        .position(|d| *d.id() == best.device)
                    && let Err(room) = self.inner.policy.plan(
                        &self.snapshot(index),
                        &RoomRequest {
                            model: ModelKey(model.clone()),
                            bytes: best.needed_bytes,
                            priority,
                        },
                    )
                {
                    return Err(room.into());
                }
                Err(PlacementError::NoRoom { model, rejected }.into())
            }
            Err(other) => Err(other.into()),
        }
    }

    /// Evicts the policy's victims until `bytes` fit on device `index`, waiting (up to
    /// `room_wait`) for busy models to be returned when only they stand in the way.
    async fn make_room(
        &self,
        slot: &Arc<ModelSlot>,
        index: usize,
        bytes: u64,
    ) -> Result<(), ManagerError> {
        let deadline = Instant::now() + self.inner.room_wait;
        let request = RoomRequest {
            model: slot.key.clone(),
            bytes,
            priority: priority_of(slot.spec.priority),
        };
        loop {
            // Registered before looking, so a lease returned in between is not missed.
            let freed = self.inner.shared.room_freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            let snapshot = self.snapshot(index);
            match self.inner.policy.plan(&snapshot, &request) {
                Ok(plan) => {
                    let mut all_evicted = true;
                    for victim in plan.victims {
                        let Some(victim_slot) = self
                            .inner
                            .models
                            .get(&victim.model.0)
                            .map(|s| Arc::clone(&s))
                        else {
                            continue;
                        };
                        // A victim mid-load by someone else is not idle; look again.
                        let Ok(_victim_loading) = victim_slot.load_lock.try_lock() else {
                            all_evicted = false;
                            continue;
                        };
                        if self.evict(&victim_slot).is_err() {
                            all_evicted = false;
                        } else {
                            tracing::info!(model = %victim.model, for_model = %slot.key, "evicted to make room");
                        }
                    }
                    if all_evicted {
                        return Ok(());
                    }
                }
                Err(room) => {
                    let waitable = !room.busy.is_empty() || !room.recently_loaded.is_empty();
                    let could_fit = room.free_bytes
                        + room.evictable_bytes
                        + room.busy.iter().map(|b| b.bytes).sum::<u64>()
                        + room.recently_loaded.iter().map(|(_, b)| b).sum::<u64>()
                        >= room.needed_bytes;
                    if !(waitable && could_fit) || Instant::now() >= deadline {
                        return Err(room.into());
                    }
                }
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            let _ = tokio::time::timeout(remaining.min(Duration::from_millis(50)), freed).await;
        }
    }

    /// Unloads an idle, unpinned model; the caller holds the slot's load lock.
    fn evict(&self, slot: &Arc<ModelSlot>) -> Result<Released, ManagerError> {
        {
            let state = slot.state();
            if !matches!(&*state, SlotState::Ready(_)) {
                return Ok(Released::NotLoaded);
            }
            let leases = slot.leases.load(Ordering::Acquire);
            if leases > 0 {
                return Err(ManagerError::Busy {
                    model: slot.key.0.clone(),
                    leases,
                });
            }
            if slot.pinned() {
                let reason = if slot.pins.load(Ordering::Acquire) > 0 {
                    "a pin guard is alive"
                } else {
                    "cache_policy: keep_warm"
                };
                return Err(ManagerError::Pinned {
                    model: slot.key.0.clone(),
                    reason: reason.to_owned(),
                });
            }
        }
        self.unload(slot)
    }

    /// Unloads whatever the state holds, pinned or not (shutdown and eviction both end here).
    fn unload(&self, slot: &Arc<ModelSlot>) -> Result<Released, ManagerError> {
        let _span = tracing::info_span!("evict", model = %slot.key).entered();
        let resident = {
            let mut state = slot.state();
            if slot.leases.load(Ordering::Acquire) > 0 {
                return Err(ManagerError::Busy {
                    model: slot.key.0.clone(),
                    leases: slot.leases.load(Ordering::Acquire),
                });
            }
            match std::mem::replace(&mut *state, SlotState::Evicting) {
                SlotState::Ready(resident) => resident,
                other => {
                    *state = other;
                    return Ok(Released::NotLoaded);
                }
            }
        };
        let Some(index) = resident.device else {
            (resident.model.shutdown)();
            slot.counters().evictions += 1;
            *slot.state() = SlotState::Unloaded;
            return Ok(Released::Unloaded { bytes: 0 });
        };
        let device = &self.inner.devices[index];
        let before = device.config.probe.read().ok();
        let pending = device.ledger().release(&slot.key, before);
        (resident.model.shutdown)();
        let bytes = resident.bytes;
        match pending {
            Ok(pending) => {
                let clock = Arc::clone(&self.inner.shared.clock);
                let report = device.ledger().verify_release(
                    pending,
                    device.config.probe.as_ref(),
                    clock.as_ref(),
                    &device.config.verify,
                );
                if let Ok(report) = report
                    && report.unreclaimed_bytes > 0
                {
                    tracing::warn!(model = %slot.key, unreclaimed = report.unreclaimed_bytes, "memory not returned after unload");
                }
            }
            Err(e) => tracing::error!(model = %slot.key, "ledger release: {e}"),
        }
        slot.counters().evictions += 1;
        *slot.state() = SlotState::Unloaded;
        self.inner.shared.room_freed.notify_waiters();
        Ok(Released::Unloaded { bytes })
    }

    /// What the policy sees of device `index` now.
    pub(crate) fn snapshot(&self, index: usize) -> DeviceSnapshot {
        let now = self.inner.shared.clock.now();
        let residents = self
            .slots()
            .into_iter()
            .filter_map(|slot| {
                let state = slot.state();
                let SlotState::Ready(resident) = &*state else {
                    return None;
                };
                if resident.device != Some(index) {
                    return None;
                }
                Some(ResidentModel {
                    model: slot.key.clone(),
                    bytes: resident.bytes,
                    pinned: slot.pinned(),
                    priority: priority_of(slot.spec.priority),
                    leases: slot.leases.load(Ordering::Acquire),
                    loaded_at: resident.loaded_at,
                    last_used: slot.counters().last_used.unwrap_or(resident.loaded_at),
                    keep_alive: slot.keep_alive(),
                    load_time: resident.load_time,
                    recent_uses: slot.recent_uses(now),
                })
            })
            .collect();
        DeviceSnapshot::from_ledger(&self.inner.devices[index].ledger(), now, residents)
    }
}

fn abort(device: &DeviceSlot, reservation: modelmux_resources::Reservation) {
    if let Err(e) = device.ledger().abort(reservation) {
        tracing::error!("ledger abort: {e}");
    }
}

/// The catalog's provider as the resources crate names it.
pub(crate) fn provider_of(provider: CatalogProvider) -> Provider {
    match provider {
        CatalogProvider::Tensorrt => Provider::TensorRt,
        CatalogProvider::Cuda => Provider::Cuda,
        CatalogProvider::Cpu => Provider::Cpu,
    }
}

/// The catalog's priority classes as ordered numbers.
pub(crate) fn priority_of(priority: CatalogPriority) -> Priority {
    Priority(match priority {
        CatalogPriority::Low => 0,
        CatalogPriority::Normal => 1,
        CatalogPriority::High => 2,
        CatalogPriority::Critical => 3,
    })
}
