//! What every model command shares: the catalog and exports it reads, and the manager it builds.

use std::path::PathBuf;

use anyhow::Context;
use modelmux::registry::Catalog;
use modelmux::resources::{
    DeviceId, DeviceProbe, DeviceRequest, MemoryReading, ReadingUnavailable,
};
use modelmux::{ManagerOptions, ModelManager};
use std::sync::Arc;

/// `--catalog`, `--exports`, `--device`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct CatalogArgs {
    /// The catalog file.
    #[arg(long, value_name = "FILE", default_value = "models.yaml")]
    pub(crate) catalog: PathBuf,
    /// The exports folder [default: `exports/` next to the catalog].
    #[arg(long, value_name = "DIR")]
    pub(crate) exports: Option<PathBuf>,
    /// Where models load: auto, cpu, cuda, cuda:N or a GPU UUID.
    #[arg(long, value_name = "DEVICE", default_value = "auto")]
    pub(crate) device: String,
}

impl CatalogArgs {
    /// Loads the catalog; its errors (with file, line and column) become the error message.
    pub(crate) fn catalog(&self) -> anyhow::Result<Catalog> {
        Catalog::load(&self.catalog).map_err(|e| anyhow::format_err!("{e}"))
    }

    /// A manager over this machine's devices and the catalog.
    pub(crate) fn manager(&self) -> anyhow::Result<ModelManager> {
        self.manager_with_budget(None, None)
    }

    /// A manager whose models may take at most `budget` bytes on each device, over what is in
    /// use when it starts. On a GPU the ledger keeps reading NVML. On the host it counts the
    /// models' declared (or estimated) footprints instead of reading memory: freed heap pages
    /// mostly stay with the process, so resident memory would not fall after an eviction and
    /// every swap would look like a leak, and the machine's usage moves with every other program.
    ///
    /// `min_residency` overrides how long a freshly loaded model is protected from eviction.
    pub(crate) fn manager_with_budget(
        &self,
        budget: Option<u64>,
        min_residency: Option<std::time::Duration>,
    ) -> anyhow::Result<ModelManager> {
        let catalog = self.catalog()?;
        let mut options = ManagerOptions::local();
        if let Some(residency) = min_residency {
            options.policy.min_residency = residency;
        }
        if let Some(budget) = budget {
            for device in &mut options.devices {
                if matches!(device.probe.id(), DeviceId::Host) {
                    device.probe = Arc::new(DeclaredHost { budget });
                }
                let in_use =
                    device.probe.read().map(|r| r.used_bytes).with_context(|| {
                        format!("cannot read the memory of {}", device.probe.id())
                    })?;
                device.budget_bytes = Some(in_use + device.runtime_overhead_bytes + budget);
            }
        }
        options.exports_dir = self.exports.clone();
        options.default_device = self
            .device
            .parse::<DeviceRequest>()
            .with_context(|| format!("--device {}", self.device))?;
        Ok(ModelManager::new(catalog, options))
    }
}

/// A tokio runtime for one command; model calls run on the main thread outside it.
pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Bytes as a person reads them.
pub(crate) fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Opens an image for a vision model, naming the file when it cannot be read or decoded.
pub(crate) fn open_image(
    path: &std::path::Path,
) -> anyhow::Result<modelmux::adapters::image::Image> {
    modelmux::adapters::image::Image::open(path)
        .with_context(|| format!("cannot read the image {}", path.display()))
}

/// Prints one JSON value on one line of stdout, ignoring a closed pipe: `--json` output is
/// exactly one object, so scripts can parse stdout as a whole.
pub(crate) fn print_json(value: &serde_json::Value) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{value}").and_then(|()| out.flush());
}

/// The catalog entry `reference` names, or an error listing the catalog's ids.
pub(crate) fn spec<'a>(
    manager: &'a ModelManager,
    reference: &str,
) -> anyhow::Result<&'a modelmux::registry::ModelSpec> {
    manager
        .catalog()
        .get(reference)
        .map_err(|e| anyhow::format_err!("{e}"))
}

/// The host as a budget of `budget` bytes that only the ledger's own accounts fill: a reading
/// always says nothing is in use, so each load is charged its declared or estimated footprint.
#[derive(Debug)]
struct DeclaredHost {
    budget: u64,
}

impl DeviceProbe for DeclaredHost {
    fn id(&self) -> &DeviceId {
        &DeviceId::Host
    }

    fn name(&self) -> &str {
        "host (declared footprints)"
    }

    fn read(&self) -> Result<MemoryReading, ReadingUnavailable> {
        Ok(MemoryReading {
            total_bytes: self.budget,
            used_bytes: 0,
            free_bytes: self.budget,
        })
    }
}

/// This process's resident memory, when it can be read: shown beside the ledger so the two
/// can be compared.
pub(crate) fn process_rss() -> Option<u64> {
    modelmux::resources::ProcessMemoryProbe::new()
        .read()
        .ok()
        .map(|r| r.used_bytes)
}
