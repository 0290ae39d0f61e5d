//! `cargo xtask setup [--gpu]`: ONNX Runtime's shared libraries from the pinned PyPI wheel.
//!
//! The wheels `onnxruntime==1.31.1` and `onnxruntime-gpu==1.31.1` carry exactly the library
//! `ort` 2.0.0-rc.15 wants. pip fetches the wheel (the package registry is reachable where a
//! prebuilt-binary download is not), its sha256 is checked against the pin below, and the
//! `.so` files are unpacked into the folder the runtime looks in. Idempotent: a stamp file
//! records the wheel hash that filled the folder.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use sha2::{Digest, Sha256};

use crate::run_command;

struct Wheel {
    package: &'static str,
    sha256: &'static str,
}

const CPU: Wheel = Wheel {
    package: "onnxruntime==1.31.1",
    sha256: "5752bd508126ae7c49894d3b9d2e83f0c3d487319246d04c444b393308d7ad7f",
};

const GPU: Wheel = Wheel {
    package: "onnxruntime-gpu==1.31.1",
    sha256: "e26c475fe361b2015f45b4b824bd13f0bb20204e59b62814e6f0acd5f3d491a6",
};

/// Makes sure the libraries are in place; returns their folder.
pub(crate) fn run(gpu: bool) -> anyhow::Result<PathBuf> {
    let wheel = if gpu { &GPU } else { &CPU };
    let dir = modelmux_runtime_ort::setup_dir(gpu);
    let stamp = dir.join(".installed-from");
    let library = dir.join(modelmux_runtime_ort::LIBRARY_FILE);
    if library.exists() && std::fs::read_to_string(&stamp).is_ok_and(|s| s.trim() == wheel.sha256) {
        eprintln!("ONNX Runtime already set up in {}", dir.display());
        return Ok(dir);
    }

    let download = tempdir_in(&modelmux_runtime_ort::cache_dir().join("downloads"))?;
    eprintln!("fetching {} with pip …", wheel.package);
    run_command(
        Command::new(crate::python::interpreter())
            .args(["-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--disable-pip-version-check"])
            // The wheel is unpacked, not installed: pin its tags so the same file (and hash)
            // comes whatever the local Python is.
            .args(["--python-version", "3.11", "--implementation", "cp", "--abi", "cp311"])
            .args(["--platform", "manylinux_2_28_x86_64", "--dest"])
            .arg(&download)
            .arg(wheel.package),
    )
    .with_context(|| {
        format!(
            "cannot fetch {} from the package registry; without network access, put the libraries in place by hand and set ORT_DYLIB_PATH",
            wheel.package
        )
    })?;
    let file = std::fs::read_dir(&download)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "whl"))
        .with_context(|| format!("pip left no wheel in {}", download.display()))?;
    let actual = sha256_file(&file)?;
    if actual != wheel.sha256 {
        bail!(
            "{} has sha256 {actual}, but {} is pinned to {}; refusing to use it",
            file.display(),
            wheel.package,
            wheel.sha256
        );
    }

    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    // Wheels are zip files; Python's zipfile unpacks them without another dependency here.
    run_command(
        Command::new(crate::python::interpreter())
            .arg("-c")
            .arg(UNPACK)
            .arg(&file)
            .arg(&dir),
    )?;
    std::fs::write(&stamp, wheel.sha256)?;
    std::fs::remove_dir_all(&download).ok();
    if !library.exists() {
        bail!(
            "{} did not contain {}",
            file.display(),
            modelmux_runtime_ort::LIBRARY_FILE
        );
    }
    eprintln!("ONNX Runtime set up in {}", dir.display());
    Ok(dir)
}

/// Copies every shared library under `onnxruntime/capi/` (the runtime and its provider
/// libraries) flat into the target folder.
const UNPACK: &str = r#"
import sys, zipfile, os
wheel, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        base = os.path.basename(name)
        if name.startswith("onnxruntime/capi/") and base.startswith("lib") and ".so" in base:
            with z.open(name) as src, open(os.path.join(out, base), "wb") as dst:
                dst.write(src.read())
            print("  " + base)
"#;

pub(crate) fn sha256_file(path: &Path) -> anyhow::Result<String> {
    let mut file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher)?;
    Ok(format!("{:x}", hasher.finalize()))
}

fn tempdir_in(parent: &Path) -> anyhow::Result<PathBuf> {
    let dir = parent.join(format!("tmp-{}", std::process::id()));
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}
