//! What the adapters' benchmarks share: the Python their baselines run with.

use std::path::PathBuf;

/// The export environment's Python, which `cargo xtask bench` names in `$MODELMUX_PYTHON`.
pub(crate) fn python() -> Result<PathBuf, String> {
    std::env::var_os("MODELMUX_PYTHON")
        .map(PathBuf::from)
        .ok_or_else(|| {
            "no Python: set MODELMUX_PYTHON to the export environment's python (`cargo xtask bench` does)"
                .to_owned()
        })
}
