//! The swap policy: which idle models leave a device when a new one must come in, when idle
//! models expire, and when to evict ahead of need. A pure function of a [`DeviceSnapshot`].
//!
//! Rules, in the order they apply:
//! 1. Only idle models (no live lease) are victims; pinned (`keep_warm`) models never are.
//! 2. A model loaded less than `min_residency` ago is not a victim (hysteresis against
//!    thrashing: Ollama#8903, #10948).
//! 3. A request may only evict models of its own priority class or lower; lower classes go
//!    first (the victim set's cost is compared class by class, highest class first).
//! 4. **Feasibility first**: if evicting every model rules 1–3 allow cannot make room, the
//!    policy fails at once with [`InsufficientRoom`], naming what is needed, what could be
//!    freed and what holds the rest. No partial eviction happens (Ollama#18282's livelock).
//! 5. Among the allowed victims, the policy chooses the *set* that frees enough memory at the
//!    least expected reload cost, where a model's cost is its measured load time × its recent
//!    use rate (0 once its keep-alive has expired).
//!
//! **Why this cost.** GreedyDual-Size-Frequency (Cherkasova 1998) ranks cache objects by
//! `frequency × cost / size` and evicts the lowest: it keeps what is used often, expensive to
//! bring back, and small. Here the "cost" is the measured load time (seconds of latency a
//! reload adds), "frequency" is an exponentially decayed request count (the decay plays the
//! part of GDSF's inflation value `L`, ageing old popularity), and "size" is bytes freed. GDSF
//! evicts one object at a time; a model swap must free a given number of bytes at once, which
//! is a minimum-cost covering knapsack: choose victims whose bytes sum to at least the need,
//! minimising the summed `load time × use rate`. Ranking by cost ÷ bytes is the greedy
//! approximation of that problem; with at most a few dozen resident models the exact answer is
//! cheap, so the policy finds it by branch and bound (items in cost-per-byte order, the
//! fractional cover as the bound, the greedy cover as the first incumbent), and among equally
//! cheap sets evicts the fewest bytes.

use std::fmt;
use std::time::Duration;

use serde::Serialize;

use crate::clock::Timestamp;
use crate::device::DeviceId;
use crate::ledger::ModelKey;

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

/// All candidates, cheapest per byte first (lower priority classes first).
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

/// The cheapest set of candidates whose bytes sum to at least `need` (the caller has checked
/// that all of them together suffice), compared class by class from the highest priority
/// class down: first the cheapest choice within the highest class, assuming every lower-class
/// candidate is evicted; then, with that fixed, the cheapest within the next class; and so on.
fn cheapest_cover(candidates: &[&ResidentModel], need: u64, now: Timestamp) -> EvictionPlan {
    let mut classes: Vec<Priority> = candidates.iter().map(|r| r.priority).collect();
    classes.sort_unstable_by(|a, b| b.cmp(a));
    classes.dedup();
    let mut chosen: Vec<&ResidentModel> = Vec::new();
    let mut fixed_bytes = 0u64;
    for class in classes {
        let lower: u64 = candidates
            .iter()
            .filter(|r| r.priority < class)
            .map(|r| r.bytes)
            .sum();
        let still_needed = need.saturating_sub(fixed_bytes.saturating_add(lower));
        let in_class: Vec<&ResidentModel> = candidates
            .iter()
            .copied()
            .filter(|r| r.priority == class)
            .collect();
        let items: Vec<(u64, f64)> = in_class
            .iter()
            .map(|r| (r.bytes, r.eviction_cost(now)))
            .collect();
        for index in min_cost_cover(&items, still_needed) {
            fixed_bytes = fixed_bytes.saturating_add(in_class[index].bytes);
            chosen.push(in_class[index]);
        }
    }
    let victims = ordered_by_cost_per_byte(&chosen, now);
    let freed_bytes = victims.iter().map(|v| v.bytes).sum();
    EvictionPlan {
        victims,
        freed_bytes,
    }
}

/// Search nodes after which the exact search settles for the best set found so far (the
/// greedy set at worst). Resident model counts are small, so the cap is rarely reached.
const SEARCH_NODE_LIMIT: u32 = 200_000;

/// The indices of the items (bytes, cost) that cover `need` bytes at the least total cost,
/// freeing the fewest bytes among equally cheap sets; empty when `need` is 0.
///
/// Branch and bound over items sorted by cost per byte, with the fractional (greedy) cover as
/// the lower bound and the greedy cover as the first incumbent. Exact unless the node limit is
/// hit.
fn min_cost_cover(items: &[(u64, f64)], need: u64) -> Vec<usize> {
    if need == 0 {
        return Vec::new();
    }
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_by(|&a, &b| {
        let per_byte = |i: usize| items[i].1 / items[i].0.max(1) as f64;
        per_byte(a)
            .total_cmp(&per_byte(b))
            .then(items[b].0.cmp(&items[a].0))
            .then(a.cmp(&b))
    });
    let mut search = CoverSearch {
        items,
        order: &order,
        best: greedy_cover(items, &order, need),
        chosen: Vec::new(),
        nodes: 0,
    };
    search.explore(0, need, 0.0, 0);
    search.best.0
}

/// A cover and its (cost, bytes freed).
type Cover = (Vec<usize>, f64, u64);

#[derive(Debug)]
struct CoverSearch<'a> {
    items: &'a [(u64, f64)],
    order: &'a [usize],
    best: Cover,
    chosen: Vec<usize>,
    nodes: u32,
}

/// Costs closer than this (relative) are equal, so that floating-point noise never decides.
fn cheaper(a_cost: f64, a_bytes: u64, b_cost: f64, b_bytes: u64) -> bool {
    let tolerance = 1e-9 * a_cost.abs().max(b_cost.abs()).max(1e-12);
    if (a_cost - b_cost).abs() > tolerance {
        a_cost < b_cost
    } else {
        a_bytes < b_bytes
    }
}

impl CoverSearch<'_> {
    fn explore(&mut self, position: usize, remaining: u64, cost: f64, freed: u64) {
        self.nodes += 1;
        if remaining == 0 {
            if cheaper(cost, freed, self.best.1, self.best.2) {
                self.best = (self.chosen.clone(), cost, freed);
            }
            return;
        }
        if position == self.order.len() || self.nodes > SEARCH_NODE_LIMIT {
            return;
        }
        // Lower bound: cover the rest fractionally with the cheapest-per-byte items left.
        let mut bound = cost;
        let mut left = remaining;
        for &i in &self.order[position..] {
            let (bytes, item_cost) = self.items[i];
            if bytes >= left {
                bound += item_cost * left as f64 / bytes.max(1) as f64;
                left = 0;
                break;
            }
            bound += item_cost;
            left -= bytes;
        }
        let tolerance = 1e-9 * bound.abs().max(self.best.1.abs()).max(1e-12);
        if left > 0 || bound > self.best.1 + tolerance {
            return;
        }
        let i = self.order[position];
        let (bytes, item_cost) = self.items[i];
        self.chosen.push(i);
        self.explore(
            position + 1,
            remaining.saturating_sub(bytes),
            cost + item_cost,
            freed + bytes,
        );
        self.chosen.pop();
        self.explore(position + 1, remaining, cost, freed);
    }
}

/// Cheapest cost per byte first until `need` is covered, then drops the most expensive items
/// that turn out not to be needed. The caller guarantees that all items together cover it.
fn greedy_cover(items: &[(u64, f64)], order: &[usize], need: u64) -> Cover {
    let mut chosen = Vec::new();
    let mut freed = 0u64;
    for &i in order {
        if freed >= need {
            break;
        }
        freed += items[i].0;
        chosen.push(i);
    }
    let mut position = chosen.len();
    while position > 0 {
        position -= 1;
        let bytes = items[chosen[position]].0;
        if freed - bytes >= need {
            freed -= bytes;
            chosen.remove(position);
        }
    }
    let cost = chosen.iter().map(|&i| items[i].1).sum();
    (chosen, cost, freed)
}
