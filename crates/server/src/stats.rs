//! Per-model inference statistics, as Triton's statistics extension reports them.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

/// A count and the nanoseconds spent (`$duration_stat`).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct DurationStat {
    pub count: u64,
    pub ns: u64,
}

impl DurationStat {
    fn add(&mut self, elapsed: Duration) {
        self.count += 1;
        self.ns += u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
    }

    fn json(self) -> Value {
        json!({ "count": self.count, "ns": self.ns })
    }
}

/// What one model has served.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ModelStats {
    /// Milliseconds since the epoch of the last request.
    pub last_inference: u64,
    /// Batch items served.
    pub inference_count: u64,
    /// Model executions.
    pub execution_count: u64,
    pub success: DurationStat,
    pub fail: DurationStat,
    /// Time spent waiting for the model (its load included).
    pub queue: DurationStat,
    /// Time spent running the model.
    pub compute_infer: DurationStat,
}

/// Memory a loaded model holds on one device: the ledger's measured bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MemoryUsage {
    /// `CPU` or `GPU`.
    pub kind: &'static str,
    /// The device's index among the manager's devices of its kind.
    pub id: i64,
    pub byte_size: u64,
}

/// One model's entry in the statistics extension, whichever transport reports it.
#[derive(Debug, Clone)]
pub(crate) struct Report {
    pub name: String,
    pub version: String,
    pub stats: ModelStats,
    pub memory: Vec<MemoryUsage>,
}

impl Report {
    /// The statistics-extension JSON (`$model_stat`).
    pub(crate) fn json(&self) -> Value {
        let s = &self.stats;
        let zero = DurationStat::default().json();
        let memory: Vec<Value> = self
            .memory
            .iter()
            .map(|m| json!({ "type": m.kind, "id": m.id, "byte_size": m.byte_size }))
            .collect();
        json!({
            "name": self.name,
            "version": self.version,
            "last_inference": s.last_inference,
            "inference_count": s.inference_count,
            "execution_count": s.execution_count,
            "inference_stats": {
                "success": s.success.json(),
                "fail": s.fail.json(),
                "queue": s.queue.json(),
                "compute_input": zero,
                "compute_infer": s.compute_infer.json(),
                "compute_output": zero,
                "cache_hit": zero,
                "cache_miss": zero,
            },
            "response_stats": {},
            "batch_stats": [],
            "memory_usage": memory,
        })
    }
}

/// A Prometheus counter: its name, its help text, and how to read it from a model's stats.
type Counter = (&'static str, &'static str, fn(&ModelStats) -> f64);

/// Statistics of every model, keyed by `id@version`.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    models: Mutex<HashMap<String, ModelStats>>,
}

impl Stats {
    fn with<R>(&self, key: &str, f: impl FnOnce(&mut ModelStats) -> R) -> R {
        let mut models = self
            .models
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(models.entry(key.to_owned()).or_default())
    }

    /// Records a successful request: time waiting for the lease, time computing, batch items.
    pub(crate) fn success(&self, key: &str, queue: Duration, compute: Duration, items: u64) {
        let now = epoch_ms();
        self.with(key, |s| {
            s.last_inference = now;
            s.inference_count += items;
            s.execution_count += 1;
            s.queue.add(queue);
            s.compute_infer.add(compute);
            s.success.add(queue + compute);
        });
    }

    /// Records a failed request.
    pub(crate) fn fail(&self, key: &str, elapsed: Duration) {
        let now = epoch_ms();
        self.with(key, |s| {
            s.last_inference = now;
            s.fail.add(elapsed);
        });
    }

    pub(crate) fn get(&self, key: &str) -> ModelStats {
        self.with(key, |s| *s)
    }

    /// Prometheus counters of the requests served, per model.
    pub(crate) fn prometheus(&self) -> String {
        use std::fmt::Write as _;
        let models = self
            .models
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut keys: Vec<&String> = models.keys().collect();
        keys.sort();
        let mut out = String::new();
        let families: [Counter; 4] = [
            (
                "modelmux_inference_request_success_total",
                "Inference requests that succeeded.",
                |s| s.success.count as f64,
            ),
            (
                "modelmux_inference_request_failure_total",
                "Inference requests that failed.",
                |s| s.fail.count as f64,
            ),
            (
                "modelmux_inference_count_total",
                "Batch items served.",
                |s| s.inference_count as f64,
            ),
            (
                "modelmux_inference_compute_seconds_total",
                "Seconds spent running models for requests.",
                |s| s.compute_infer.ns as f64 / 1e9,
            ),
        ];
        for (name, help, value) in families {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for key in &keys {
                let label = key.replace('\\', "\\\\").replace('"', "\\\"");
                let _ = writeln!(out, "{name}{{model=\"{label}\"}} {}", value(&models[*key]));
            }
        }
        out
    }
}

fn epoch_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
