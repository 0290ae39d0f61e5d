//! The swap policy: which idle models leave a device when a new one must come in, when idle
//! models expire, and when to evict ahead of need. A pure function of a [`DeviceSnapshot`].
//!
//! Rules, in the order they apply:
//! 1. Only idle models (no live lease) are victims; pinned (`keep_warm`) models never are.
//! 2. A model loaded less than `min_residency` ago is not a victim (hysteresis against
//!    thrashing: Ollama#8903, #10948).
//! 3. A request may only evict models of its own priority class or lower; lower classes go
//!    first (candidates are taken lowest class first, and the set is pruned highest class
//!    first).
//! 4. **Feasibility first**: if evicting every model rules 1–3 allow cannot make room, the
//!    policy fails at once with [`InsufficientRoom`], naming what is needed, what could be
//!    freed and what holds the rest. No partial eviction happens (Ollama#18282's livelock).
//! 5. Among the allowed victims, the policy evicts the set that frees enough memory at the
//!    least reload cost per byte freed, where a model's reload cost is its measured load time ×
//!    its recent use rate (0 once its keep-alive has expired).
//!
//! **Why this cost.** GreedyDual-Size-Frequency (Cherkasova 1998) ranks cache objects by
//! `frequency × cost / size` and evicts the lowest: it keeps what is used often, expensive to
//! bring back, and small. Here the "cost" is the measured load time (the latency a reload
//! adds), "frequency" is an exponentially decayed request count ([`UsageTracker`]; the decay
//! plays the part of GDSF's inflation value, ageing old popularity), and "size" is bytes freed.
//!
//! **Why this set.** GDSF evicts one object at a time; a swap must free a given number of bytes
//! at once. The policy takes candidates in order of cost per byte (lower priority classes
//! first) until enough is freed, then drops from the set, most expensive first, every victim
//! the rest can do without, so that no model is evicted for nothing. Two exact alternatives
//! were measured on the `swap` benchmark's traces (during development, with an earlier
//! version of the mixed trace) and rejected: the set of least *total* cost (a covering
//! knapsack, solved exactly by branch and bound) evicts several small models where one large
//! cold model would do, and lost 6–13 points of hit ratio while reloading about as many bytes
//! (−1% to +5%); the set of least cost per byte over the whole set (Dinkelbach iteration)
//! lost 2–3 points of hit ratio and reloaded 1–3% more bytes. The greedy, pruned set was
//! best on every trace.

use std::fmt;
use std::time::Duration;

use serde::Serialize;

use crate::clock::Timestamp;
use crate::device::DeviceId;
use crate::ledger::{MemoryLedger, ModelKey};

/// A priority class; higher is more important. A request evicts only its own class or lower.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize)]
pub struct Priority(pub u8);

/// A model resident on the device, as the policy sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResidentModel {
    /// The model.
    pub model: ModelKey,
    /// Its committed footprint.
    pub bytes: u64,
    /// `keep_warm`: never evicted.
    pub pinned: bool,
    /// Its priority class.
    pub priority: Priority,
    /// Live leases; a model with any is busy and never evicted.
    pub leases: u32,
    /// When it finished loading.
    pub loaded_at: Timestamp,
    /// When its last lease ended (or it was last used).
    pub last_used: Timestamp,
    /// How long it may stay idle before it expires; `None` keeps it until memory is needed.
    pub keep_alive: Option<Duration>,
    /// Its measured (or estimated) load time: what evicting it costs when it is needed again.
    pub load_time: Duration,
    /// Its recent use rate (see [`UsageTracker`]).
    pub recent_uses: f64,
}

impl ResidentModel {
    fn idle_since(&self) -> Timestamp {
        self.last_used.max(self.loaded_at)
    }

    fn expired(&self, now: Timestamp) -> bool {
        self.leases == 0
            && !self.pinned
            && self
                .keep_alive
                .is_some_and(|ttl| now.saturating_sub(self.idle_since()) >= ttl)
    }

    /// The expected cost of evicting this model: load time × recent use, 0 once expired.
    fn eviction_cost(&self, now: Timestamp) -> f64 {
        if self.expired(now) {
            0.0
        } else {
            self.load_time.as_secs_f64() * self.recent_uses.max(0.0)
        }
    }
}

/// A model's recent use: a request count that halves every `half_life`, so old popularity
/// fades (the role of GDSF's inflation value).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct UsageTracker {
    count: f64,
    updated: Timestamp,
    half_life: Duration,
}

impl UsageTracker {
    /// A tracker with no uses yet.
    pub fn new(half_life: Duration) -> Self {
        Self {
            count: 0.0,
            updated: Duration::ZERO,
            half_life,
        }
    }

    fn decayed(&self, now: Timestamp) -> f64 {
        let elapsed = now.saturating_sub(self.updated).as_secs_f64();
        let half_life = self.half_life.as_secs_f64();
        if half_life <= 0.0 {
            return self.count;
        }
        self.count * (-elapsed / half_life * std::f64::consts::LN_2).exp()
    }

    /// Records one use at `now`.
    pub fn record(&mut self, now: Timestamp) {
        self.count = self.decayed(now) + 1.0;
        self.updated = self.updated.max(now);
    }

    /// The decayed use count at `now`.
    pub fn recent_uses(&self, now: Timestamp) -> f64 {
        self.decayed(now)
    }
}

/// Everything the policy needs to know about one device at one moment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeviceSnapshot {
    /// The device.
    pub device: DeviceId,
    /// The time of the snapshot (from the manager's [`Clock`](crate::Clock)).
    pub now: Timestamp,
    /// The device's budget.
    pub budget_bytes: u64,
    /// The runtime overhead charged to the device.
    pub runtime_overhead_bytes: u64,
    /// Other processes' usage.
    pub external_bytes: u64,
    /// Reservations of loads in flight.
    pub in_flight_bytes: u64,
    /// Bytes released but not verified, or never reclaimed.
    pub unreclaimed_bytes: u64,
    /// The models resident on the device.
    pub residents: Vec<ResidentModel>,
}

impl DeviceSnapshot {
    /// A snapshot of what `ledger` counts, with the resident models as the manager describes them
    /// (their bytes should be the ledger's committed footprints).
    pub fn from_ledger(
        ledger: &MemoryLedger,
        now: Timestamp,
        residents: Vec<ResidentModel>,
    ) -> Self {
        let (in_flight_bytes, unreclaimed_bytes) = ledger.pending_bytes();
        Self {
            device: ledger.device().clone(),
            now,
            budget_bytes: ledger.budget_bytes(),
            runtime_overhead_bytes: ledger.runtime_overhead_bytes(),
            external_bytes: ledger.external_bytes(),
            in_flight_bytes,
            unreclaimed_bytes,
            residents,
        }
    }

    /// Bytes held by anything other than resident models.
    fn fixed_bytes(&self) -> u64 {
        self.runtime_overhead_bytes
            .saturating_add(self.external_bytes)
            .saturating_add(self.in_flight_bytes)
            .saturating_add(self.unreclaimed_bytes)
    }

    /// Bytes in use on the device by anyone.
    pub fn used_bytes(&self) -> u64 {
        self.fixed_bytes()
            .saturating_add(self.residents.iter().map(|r| r.bytes).sum())
    }

    /// Bytes free within the budget.
    pub fn free_bytes(&self) -> u64 {
        self.budget_bytes.saturating_sub(self.used_bytes())
    }
}

/// High and low watermarks, as fractions of the budget: above `high`, idle models are evicted
/// ahead of need until usage is at `low`. Defaults: LocalAI's reclaimer acts at 80% and Ollama
/// evicts when a load would exceed 80% of free memory (serving-anchors.md, "Defaults worth
/// copying"); 0.90/0.80 leaves the band between them for loads in flight.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Watermarks {
    /// Start evicting above this fraction.
    pub high: f64,
    /// Stop at this fraction.
    pub low: f64,
}

impl Default for Watermarks {
    fn default() -> Self {
        Self {
            high: 0.90,
            low: 0.80,
        }
    }
}

/// The swap policy's settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct EvictionPolicy {
    /// A model loaded less than this long ago is not evicted. Default 30 s: longer than a
    /// typical CUDA load (1–4 s measured, ort-runtime.md §14) and about one TensorRT engine
    /// build, so a model that was just paid for gets to serve.
    pub min_residency: Duration,
    /// Proactive eviction thresholds.
    pub watermarks: Watermarks,
}

impl Default for EvictionPolicy {
    fn default() -> Self {
        Self {
            min_residency: Duration::from_secs(30),
            watermarks: Watermarks::default(),
        }
    }
}

/// What a load asks of the policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RoomRequest {
    /// The model to load.
    pub model: ModelKey,
    /// Bytes it will take (including the runtime overhead for a device's first load).
    pub bytes: u64,
    /// Its priority class.
    pub priority: Priority,
}

/// A model chosen for eviction.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Victim {
    /// The model.
    pub model: ModelKey,
    /// Bytes its eviction frees.
    pub bytes: u64,
    /// Its expected reload cost (load seconds × recent use rate).
    pub cost: f64,
}

/// The models to evict, in the order to evict them.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct EvictionPlan {
    /// The victims.
    pub victims: Vec<Victim>,
    /// Bytes their eviction frees.
    pub freed_bytes: u64,
}

/// A busy model holding memory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BusyModel {
    /// The model.
    pub model: ModelKey,
    /// Its footprint.
    pub bytes: u64,
    /// Its live leases.
    pub leases: u32,
}

/// Why not even evicting everything evictable makes room: what is needed, what could be
/// freed, and what holds the rest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
pub struct InsufficientRoom {
    /// The model that asked.
    pub model: ModelKey,
    /// The device.
    pub device: DeviceId,
    /// Bytes the model needs.
    pub needed_bytes: u64,
    /// Bytes free now.
    pub free_bytes: u64,
    /// Bytes eviction could free.
    pub evictable_bytes: u64,
    /// The budget.
    pub budget_bytes: u64,
    /// Pinned (`keep_warm`) models.
    pub pinned: Vec<(ModelKey, u64)>,
    /// Models with live leases.
    pub busy: Vec<BusyModel>,
    /// Models loaded less than the minimum residency ago.
    pub recently_loaded: Vec<(ModelKey, u64)>,
    /// Models of a higher priority class than the request.
    pub higher_priority: Vec<(ModelKey, u64)>,
    /// Other processes' usage.
    pub external_bytes: u64,
    /// The runtime overhead.
    pub runtime_overhead_bytes: u64,
    /// Loads in flight.
    pub in_flight_bytes: u64,
    /// Released or unreclaimed memory.
    pub unreclaimed_bytes: u64,
}

fn list(models: &[(ModelKey, u64)]) -> String {
    if models.is_empty() {
        return "none".to_owned();
    }
    models
        .iter()
        .map(|(m, b)| format!("{m} {b}"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl fmt::Display for InsufficientRoom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let busy = if self.busy.is_empty() {
            "none".to_owned()
        } else {
            self.busy
                .iter()
                .map(|b| format!("{} {} ({} leases)", b.model, b.bytes, b.leases))
                .collect::<Vec<_>>()
                .join(", ")
        };
        write!(
            f,
            "no room for {} on {}: needs {} bytes, {} free, eviction could free {} more \
             (budget {}); held by pinned: {}; busy: {}; recently loaded: {}; higher priority: {}; \
             other processes {}; runtime overhead {}; loads in flight {}; unreclaimed {}",
            self.model,
            self.device,
            self.needed_bytes,
            self.free_bytes,
            self.evictable_bytes,
            self.budget_bytes,
            list(&self.pinned),
            busy,
            list(&self.recently_loaded),
            list(&self.higher_priority),
            self.external_bytes,
            self.runtime_overhead_bytes,
            self.in_flight_bytes,
            self.unreclaimed_bytes,
        )
    }
}

/// Why a resident model may not be evicted for a given request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hold {
    Pinned,
    Busy,
    RecentlyLoaded,
    HigherPriority,
}

impl EvictionPolicy {
    fn hold(&self, resident: &ResidentModel, now: Timestamp, priority: Priority) -> Option<Hold> {
        if resident.pinned {
            Some(Hold::Pinned)
        } else if resident.leases > 0 {
            Some(Hold::Busy)
        } else if now.saturating_sub(resident.loaded_at) < self.min_residency {
            Some(Hold::RecentlyLoaded)
        } else if resident.priority > priority {
            Some(Hold::HigherPriority)
        } else {
            None
        }
    }

    /// Bytes a request of `priority` could free on this device (for placement).
    pub fn evictable_bytes(&self, snapshot: &DeviceSnapshot, priority: Priority) -> u64 {
        snapshot
            .residents
            .iter()
            .filter(|r| self.hold(r, snapshot.now, priority).is_none())
            .map(|r| r.bytes)
            .sum()
    }

    /// The victims to evict so that `request` fits, or why it cannot fit.
    ///
    /// Returns an empty plan when the model fits now.
    pub fn plan(
        &self,
        snapshot: &DeviceSnapshot,
        request: &RoomRequest,
    ) -> Result<EvictionPlan, Box<InsufficientRoom>> {
        let free = snapshot.free_bytes();
        if request.bytes <= free {
            return Ok(EvictionPlan::default());
        }
        let need = request.bytes - free;
        let candidates: Vec<&ResidentModel> = snapshot
            .residents
            .iter()
            .filter(|r| self.hold(r, snapshot.now, request.priority).is_none())
            .collect();
        let evictable: u64 = candidates.iter().map(|r| r.bytes).sum();
        if evictable < need {
            return Err(Box::new(
                self.insufficient(snapshot, request, free, evictable),
            ));
        }
        Ok(cheapest_cover(&candidates, need, snapshot.now))
    }

    fn insufficient(
        &self,
        snapshot: &DeviceSnapshot,
        request: &RoomRequest,
        free: u64,
        evictable: u64,
    ) -> InsufficientRoom {
        let held = |hold: Hold| -> Vec<(ModelKey, u64)> {
            snapshot
                .residents
                .iter()
                .filter(|r| self.hold(r, snapshot.now, request.priority) == Some(hold))
                .map(|r| (r.model.clone(), r.bytes))
                .collect()
        };
        InsufficientRoom {
            model: request.model.clone(),
            device: snapshot.device.clone(),
            needed_bytes: request.bytes,
            free_bytes: free,
            evictable_bytes: evictable,
            budget_bytes: snapshot.budget_bytes,
            pinned: held(Hold::Pinned),
            busy: snapshot
                .residents
                .iter()
                .filter(|r| self.hold(r, snapshot.now, request.priority) == Some(Hold::Busy))
                .map(|r| BusyModel {
                    model: r.model.clone(),
                    bytes: r.bytes,
                    leases: r.leases,
                })
                .collect(),
            recently_loaded: held(Hold::RecentlyLoaded),
            higher_priority: held(Hold::HigherPriority),
            external_bytes: snapshot.external_bytes,
            runtime_overhead_bytes: snapshot.runtime_overhead_bytes,
            in_flight_bytes: snapshot.in_flight_bytes,
            unreclaimed_bytes: snapshot.unreclaimed_bytes,
        }
    }

    /// Idle models whose keep-alive has run out: unload them now (Ollama's `keep_alive`).
    pub fn expired(&self, snapshot: &DeviceSnapshot) -> Vec<ModelKey> {
        snapshot
            .residents
            .iter()
            .filter(|r| r.expired(snapshot.now))
            .map(|r| r.model.clone())
            .collect()
    }

    /// Proactive eviction: above the high watermark, the cheapest idle models to evict to get
    /// down to the low watermark (as far as evictable models allow). Empty below the high mark.
    pub fn proactive(&self, snapshot: &DeviceSnapshot) -> EvictionPlan {
        let budget = snapshot.budget_bytes as f64;
        let used = snapshot.used_bytes();
        if (used as f64) <= budget * self.watermarks.high {
            return EvictionPlan::default();
        }
        // Truncation is fine: the target is a byte count within the budget.
        let target = (budget * self.watermarks.low.clamp(0.0, 1.0)) as u64;
        let need = used.saturating_sub(target);
        // Proactive eviction takes only what any request could take: the lowest priority.
        let candidates: Vec<&ResidentModel> = snapshot
            .residents
            .iter()
            .filter(|r| self.hold(r, snapshot.now, Priority(u8::MAX)).is_none())
            .collect();
        let evictable: u64 = candidates.iter().map(|r| r.bytes).sum();
        if evictable <= need {
            let victims = ordered_by_cost_per_byte(&candidates, snapshot.now);
            let freed_bytes = victims.iter().map(|v| v.bytes).sum();
            return EvictionPlan {
                victims,
                freed_bytes,
            };
        }
        cheapest_cover(&candidates, need, snapshot.now)
    }
}

fn victim(resident: &ResidentModel, now: Timestamp) -> Victim {
    Victim {
        model: resident.model.clone(),
        bytes: resident.bytes,
        cost: resident.eviction_cost(now),
    }
}

/// All candidates, lower priority classes first, then cheapest per byte first; ties evict the
/// larger model (fewer evictions), then go by name so that plans are deterministic.
fn ordered_by_cost_per_byte(candidates: &[&ResidentModel], now: Timestamp) -> Vec<Victim> {
    let mut ordered: Vec<&ResidentModel> = candidates.to_vec();
    ordered.sort_by(|a, b| {
        let per_byte = |r: &ResidentModel| r.eviction_cost(now) / r.bytes.max(1) as f64;
        a.priority
            .cmp(&b.priority)
            .then(per_byte(a).total_cmp(&per_byte(b)))
            .then(b.bytes.cmp(&a.bytes))
            .then(a.model.cmp(&b.model))
    });
    ordered.into_iter().map(|r| victim(r, now)).collect()
}

/// The victims that free at least `need` bytes: candidates in [`ordered_by_cost_per_byte`]
/// order until enough is freed, then every victim the others can do without is dropped, most
/// expensive first. The caller has checked that all candidates together free enough.
fn cheapest_cover(candidates: &[&ResidentModel], need: u64, now: Timestamp) -> EvictionPlan {
    let mut victims = Vec::new();
    let mut freed = 0u64;
    for candidate in ordered_by_cost_per_byte(candidates, now) {
        if freed >= need {
            break;
        }
        freed += candidate.bytes;
        victims.push(candidate);
    }
    let mut position = victims.len();
    while position > 0 {
        position -= 1;
        if freed - victims[position].bytes >= need {
            freed -= victims[position].bytes;
            victims.remove(position);
        }
    }
    EvictionPlan {
        victims,
        freed_bytes: freed,
    }
}
