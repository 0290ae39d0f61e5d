//! What the manager holds right now — devices, ledgers, models — as data and as Prometheus text.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use serde::Serialize;

use crate::manager::ModelManager;
use crate::slot::{ModelState, SlotState};

/// A snapshot of the whole manager.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub devices: Vec<DeviceStatus>,
    pub models: Vec<ModelStatus>,
}

/// One device's memory as the ledger counts it.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceStatus {
    pub device: String,
    pub name: String,
    pub budget_bytes: u64,
    /// Committed models plus the runtime overhead.
    pub used_by_us_bytes: u64,
    pub runtime_overhead_bytes: u64,
    /// Reservations of loads in flight.
    pub reserved_bytes: u64,
    /// Other processes' usage at the last reading.
    pub other_processes_bytes: u64,
    /// Released but not seen coming back.
    pub unreclaimed_bytes: u64,
    pub available_bytes: u64,
}

/// One model's state and counters.
#[derive(Debug, Clone, Serialize)]
pub struct ModelStatus {
    pub model: String,
    pub family: String,
    pub architecture: String,
    pub state: ModelState,
    pub device: Option<String>,
    pub provider: Option<String>,
    pub bytes: Option<u64>,
    pub leases: u32,
    pub pinned: bool,
    /// Seconds since the last lease ended or began.
    pub idle_seconds: Option<f64>,
    pub loads: u64,
    pub load_failures: u64,
    pub evictions: u64,
    pub hits: u64,
    pub misses: u64,
    pub mean_load_seconds: Option<f64>,
    pub last_error: Option<String>,
}

impl ModelManager {
    /// Devices and models, now.
    pub fn status(&self) -> Status {
        let inner = self.inner();
        let devices = inner
            .devices
            .iter()
            .map(|device| {
                let ledger = device.ledger();
                let snapshot = ledger.snapshot();
                let (reserved, unreclaimed) = ledger.pending_bytes();
                DeviceStatus {
                    device: device.id().to_string(),
                    name: device.config.probe.name().to_owned(),
                    budget_bytes: ledger.budget_bytes(),
                    used_by_us_bytes: ledger
                        .ours_bytes()
                        .saturating_sub(reserved)
                        .saturating_sub(unreclaimed),
                    runtime_overhead_bytes: snapshot.runtime_overhead_bytes,
                    reserved_bytes: reserved,
                    other_processes_bytes: ledger.external_bytes(),
                    unreclaimed_bytes: unreclaimed,
                    available_bytes: ledger.available_bytes(),
                }
            })
            .collect();
        let now = inner.shared.clock.now();
        let mut models: Vec<ModelStatus> = self
            .slots()
            .into_iter()
            .map(|slot| {
                let counters = slot.counters().clone();
                let state = slot.state();
                let resident = match &*state {
                    SlotState::Ready(r) => Some(std::sync::Arc::clone(r)),
                    _ => None,
                };
                let public = state.public();
                drop(state);
                ModelStatus {
                    model: slot.key.0.clone(),
                    family: slot.spec.family.as_str().to_owned(),
                    architecture: slot.spec.architecture.as_str().to_owned(),
                    state: public,
                    device: resident
                        .as_ref()
                        .and_then(|r| r.device)
                        .map(|d| inner.devices[d].id().to_string()),
                    provider: resident.as_ref().map(|r| r.provider.to_string()),
                    bytes: resident.as_ref().map(|r| r.bytes),
                    leases: slot.leases.load(Ordering::Acquire),
                    pinned: slot.pinned(),
                    idle_seconds: counters
                        .last_used
                        .map(|t| now.saturating_sub(t).as_secs_f64()),
                    loads: counters.loads,
                    load_failures: counters.load_failures,
                    evictions: counters.evictions,
                    hits: counters.hits,
                    misses: counters.misses,
                    mean_load_seconds: (counters.loads > 0)
                        .then(|| counters.load_seconds / counters.loads as f64),
                    last_error: counters.last_error,
                }
            })
            .collect();
        models.sort_by(|a, b| a.model.cmp(&b.model));
        Status { devices, models }
    }

    /// The status in Prometheus' text exposition format, names after Triton's and ModelMesh's
    /// conventions with a `modelmux_` prefix.
    pub fn prometheus(&self) -> String {
        let status = self.status();
        let mut out = String::new();
        for (name, kind, help, value) in DEVICE_METRICS {
            let rows = status
                .devices
                .iter()
                .map(|d| (format!("device=\"{}\"", escape(&d.device)), value(d)));
            write_family(&mut out, name, kind, help, rows);
        }
        for (name, kind, help, value) in MODEL_METRICS {
            let rows = status
                .models
                .iter()
                .map(|m| (format!("model=\"{}\"", escape(&m.model)), value(m)));
            write_family(&mut out, name, kind, help, rows);
        }
        out
    }
}

type Metric<T> = (&'static str, &'static str, &'static str, fn(&T) -> f64);

const DEVICE_METRICS: &[Metric<DeviceStatus>] = &[
    (
        "modelmux_device_memory_budget_bytes",
        "gauge",
        "Memory the manager may use on the device.",
        |d| d.budget_bytes as f64,
    ),
    (
        "modelmux_device_memory_used_bytes",
        "gauge",
        "Memory held by loaded models and the runtime overhead.",
        |d| d.used_by_us_bytes as f64,
    ),
    (
        "modelmux_device_memory_reserved_bytes",
        "gauge",
        "Memory reserved for loads in flight.",
        |d| d.reserved_bytes as f64,
    ),
    (
        "modelmux_device_memory_external_bytes",
        "gauge",
        "Memory used by other processes.",
        |d| d.other_processes_bytes as f64,
    ),
    (
        "modelmux_device_memory_unreclaimed_bytes",
        "gauge",
        "Memory released but not seen coming back.",
        |d| d.unreclaimed_bytes as f64,
    ),
];

const MODEL_METRICS: &[Metric<ModelStatus>] = &[
    (
        "modelmux_model_ready",
        "gauge",
        "1 when the model is loaded and serving.",
        |m| f64::from(u8::from(m.state == ModelState::Ready)),
    ),
    (
        "modelmux_model_memory_bytes",
        "gauge",
        "Measured footprint of the loaded model.",
        |m| m.bytes.unwrap_or(0) as f64,
    ),
    (
        "modelmux_model_leases",
        "gauge",
        "Leases currently held on the model.",
        |m| f64::from(m.leases),
    ),
    (
        "modelmux_model_loads_total",
        "counter",
        "Loads that succeeded.",
        |m| m.loads as f64,
    ),
    (
        "modelmux_model_load_failures_total",
        "counter",
        "Loads that failed.",
        |m| m.load_failures as f64,
    ),
    (
        "modelmux_model_evictions_total",
        "counter",
        "Unloads, by eviction or release.",
        |m| m.evictions as f64,
    ),
    (
        "modelmux_model_cache_hits_total",
        "counter",
        "get_model calls served by a loaded model.",
        |m| m.hits as f64,
    ),
    (
        "modelmux_model_cache_misses_total",
        "counter",
        "Loads started because the model was not loaded.",
        |m| m.misses as f64,
    ),
    (
        "modelmux_model_load_seconds_sum",
        "counter",
        "Seconds spent in successful loads.",
        |m| m.mean_load_seconds.unwrap_or(0.0) * m.loads as f64,
    ),
];

fn write_family(
    out: &mut String,
    name: &str,
    kind: &str,
    help: &str,
    rows: impl Iterator<Item = (String, f64)>,
) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    for (labels, value) in rows {
        let _ = writeln!(out, "{name}{{{labels}}} {value}");
    }
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
