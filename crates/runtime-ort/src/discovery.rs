//! Where the ONNX Runtime library is looked for, in order, and what each attempt found.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;

/// File name of the library inside the folder `cargo xtask setup` fills.
pub const LIBRARY_FILE: &str = "libonnxruntime.so.1.31.1";

/// Where a candidate library path came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LibrarySource {
    /// The `ORT_DYLIB_PATH` environment variable.
    Environment,
    /// The folder `cargo xtask setup [--gpu]` fills.
    SetupFolder,
    /// The dynamic loader's search path (`LD_LIBRARY_PATH`, `ldconfig`).
    SystemSearchPath,
}

impl fmt::Display for LibrarySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Environment => "ORT_DYLIB_PATH",
            Self::SetupFolder => "setup folder",
            Self::SystemSearchPath => "system search path",
        })
    }
}

/// One place the library was looked for, and why it was not used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LoadAttempt {
    pub source: LibrarySource,
    pub path: PathBuf,
    pub error: String,
}

impl LoadAttempt {
    pub(crate) fn list(attempts: &[LoadAttempt]) -> String {
        attempts
            .iter()
            .map(|a| format!("  - {} ({}): {}", a.path.display(), a.source, a.error))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// The folder `cargo xtask setup` unpacks ONNX Runtime into: `<cache>/onnxruntime/<version>-<flavour>`,
/// where `<cache>` is `$MODELMUX_CACHE`, else `$XDG_CACHE_HOME/modelmux`, else `~/.cache/modelmux`.
/// It lives outside the repository so every clone and CI run reuses one download.
pub fn setup_dir(gpu: bool) -> PathBuf {
    let flavour = if gpu { "gpu" } else { "cpu" };
    cache_dir()
        .join("onnxruntime")
        .join(format!("{}-{flavour}", crate::ONNXRUNTIME_VERSION))
}

/// The cache folder shared by everything modelmux installs outside the repository.
pub fn cache_dir() -> PathBuf {
    let var = |name: &str| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    var("MODELMUX_CACHE")
        .or_else(|| var("XDG_CACHE_HOME").map(|p| p.join("modelmux")))
        .or_else(|| var("HOME").map(|p| p.join(".cache").join("modelmux")))
        .unwrap_or_else(|| std::env::temp_dir().join("modelmux-cache"))
}

/// The candidates in the order they are tried. An explicit `ORT_DYLIB_PATH` is the only candidate:
/// when someone names a library, silently loading another one instead would hide their mistake.
pub(crate) fn candidates(
    env_path: Option<&Path>,
    gpu_dir: &Path,
    cpu_dir: &Path,
) -> Vec<(LibrarySource, PathBuf)> {
    if let Some(path) = env_path {
        return vec![(LibrarySource::Environment, path.to_owned())];
    }
    vec![
        (LibrarySource::SetupFolder, gpu_dir.join(LIBRARY_FILE)),
        (LibrarySource::SetupFolder, cpu_dir.join(LIBRARY_FILE)),
        (
            LibrarySource::SystemSearchPath,
            PathBuf::from("libonnxruntime.so"),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_path_is_the_only_candidate() {
        let c = candidates(
            Some(Path::new("/x/lib.so")),
            Path::new("/g"),
            Path::new("/c"),
        );
        assert_eq!(
            c,
            vec![(LibrarySource::Environment, PathBuf::from("/x/lib.so"))]
        );
    }

    #[test]
    fn default_order_is_gpu_setup_cpu_setup_then_system() {
        let c = candidates(None, Path::new("/g"), Path::new("/c"));
        let sources: Vec<_> = c
            .iter()
            .map(|(s, p)| (*s, p.display().to_string()))
            .collect();
        assert_eq!(
            sources,
            vec![
                (LibrarySource::SetupFolder, format!("/g/{LIBRARY_FILE}")),
                (LibrarySource::SetupFolder, format!("/c/{LIBRARY_FILE}")),
                (
                    LibrarySource::SystemSearchPath,
                    "libonnxruntime.so".to_owned()
                ),
            ]
        );
    }
}
