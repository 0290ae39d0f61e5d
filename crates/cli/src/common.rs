//! What every model command shares: the catalog and exports it reads, and the manager it builds.

use std::path::PathBuf;

use anyhow::Context;
use modelmux::registry::Catalog;
use modelmux::resources::DeviceRequest;
use modelmux::{ManagerOptions, ModelManager};

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
        let catalog = self.catalog()?;
        let mut options = ManagerOptions::local();
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
