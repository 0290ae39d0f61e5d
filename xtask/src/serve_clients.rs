//! The PyPI clients the serve suites drive `modelmux serve` with (`tritonclient[http]` and
//! `[grpc]`, `openai`): a pinned environment in the cache folder, and a pointer to its Python in the
//! fixtures folder (`serve-clients.python`) for the test to find.

use std::path::Path;

/// The requirements of the clients' environment.
pub(crate) const REQUIREMENTS: &str = "xtask/python/requirements-serve-clients.txt";

/// Makes (or reuses) the environment and writes `out/serve-clients.python`.
pub(crate) fn run(root: &Path, out: &Path) -> anyhow::Result<()> {
    let python = crate::python::environment("serve-clients", &root.join(REQUIREMENTS))?;
    std::fs::create_dir_all(out)?;
    std::fs::write(
        out.join("serve-clients.python"),
        python.display().to_string(),
    )?;
    eprintln!("serve clients ready: {}", python.display());
    Ok(())
}
