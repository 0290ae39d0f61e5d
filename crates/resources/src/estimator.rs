//! The footprint estimator: how many bytes a model will take on a device before it is loaded.
//!
//! In order of trust: the footprint measured the last time this (model, version, provider,
//! device kind) was loaded; the catalog's declared requirement; the export manifest's weight
//! bytes times a factor per provider. Measurements persist in a small JSON state file so that
//! the next process starts from them.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::device::DeviceKind;

/// An ONNX Runtime execution provider, as far as memory is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// The CPU provider: host memory.
    Cpu,
    /// The CUDA provider: GPU memory.
    Cuda,
    /// The TensorRT provider: GPU memory.
    #[serde(rename = "tensorrt")]
    TensorRt,
}

impl Provider {
    /// The kind of device this provider runs on.
    pub fn device_kind(self) -> DeviceKind {
        match self {
            Provider::Cpu => DeviceKind::Cpu,
            Provider::Cuda | Provider::TensorRt => DeviceKind::Cuda,
        }
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Provider::Cpu => "cpu",
            Provider::Cuda => "cuda",
            Provider::TensorRt => "tensorrt",
        })
    }
}

/// A provider name that is not one of `cpu`, `cuda`, `tensorrt`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown execution provider {0:?} (expected cpu, cuda or tensorrt)")]
pub struct UnknownProvider(pub String);

impl FromStr for Provider {
    type Err = UnknownProvider;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "cpu" => Ok(Provider::Cpu),
            "cuda" => Ok(Provider::Cuda),
            "tensorrt" | "trt" => Ok(Provider::TensorRt),
            _ => Err(UnknownProvider(s.to_owned())),
        }
    }
}

/// What a learned footprint is keyed by.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct FootprintKey {
    /// The catalog id of the model.
    pub model: String,
    /// The model's version.
    pub version: String,
    /// The execution provider it runs on.
    pub provider: Provider,
    /// The kind of device (the provider implies it; kept explicit in the state file).
    pub device_kind: DeviceKind,
}

impl FootprintKey {
    /// The key for `model`@`version` on `provider`.
    pub fn new(model: &str, version: &str, provider: Provider) -> Self {
        Self {
            model: model.to_owned(),
            version: version.to_owned(),
            provider,
            device_kind: provider.device_kind(),
        }
    }
}

/// Bytes on the device per byte of weights, per provider.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProviderFactors {
    /// CPU provider. Default 1.25: ModelMesh's Triton adapter multiplies disk size by 1.25
    /// (`MODELSIZE_MULTIPLIER`, serving-anchors.md §3a); the CPU provider copies the weights
    /// into its own buffers and adds a modest arena.
    pub cpu: f64,
    /// CUDA provider. Default 2.0: measured on an H200 with ORT 1.31, a session costs ~2× its
    /// weight bytes right after creation (64 MiB of weights → +130 MiB, ort-runtime.md §14).
    pub cuda: f64,
    /// TensorRT provider. Default 2.0, the CUDA figure: not measured for TensorRT; engines add
    /// workspace (1 GiB by default in Triton) that this does not cover, so declare TensorRT
    /// models' requirements in the catalog.
    pub tensorrt: f64,
}

impl Default for ProviderFactors {
    fn default() -> Self {
        Self {
            cpu: 1.25,
            cuda: 2.0,
            tensorrt: 2.0,
        }
    }
}

impl ProviderFactors {
    /// The factor for `provider`.
    pub fn factor(&self, provider: Provider) -> f64 {
        match provider {
            Provider::Cpu => self.cpu,
            Provider::Cuda => self.cuda,
            Provider::TensorRt => self.tensorrt,
        }
    }
}

/// Where an estimate came from.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "source", rename_all = "snake_case")]
pub enum FootprintSource {
    /// Measured on earlier loads (the peak of the measurements).
    Measured {
        /// How many loads were measured.
        samples: u32,
    },
    /// The catalog's declared requirement.
    Declared,
    /// Weight bytes × the provider's factor.
    Estimated {
        /// The weight bytes from the export manifest.
        weight_bytes: u64,
        /// The factor applied.
        factor: f64,
    },
}

/// An estimated footprint.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Footprint {
    /// Bytes to reserve.
    pub bytes: u64,
    /// Where the figure came from.
    pub source: FootprintSource,
    /// The last measured load time, when known: the policy's reload cost.
    pub load_time: Option<Duration>,
}

/// What the estimator cannot do.
#[derive(Debug, thiserror::Error)]
pub enum EstimatorError {
    /// Nothing to estimate from: no measurement, no declared requirement, no weight bytes.
    #[error(
        "no footprint for {model}@{version} on {provider}: not measured yet, no declared \
         requirement in the catalog and no weight bytes in the export manifest"
    )]
    NoBasis {
        /// The model.
        model: String,
        /// Its version.
        version: String,
        /// The provider.
        provider: Provider,
    },
    /// The state file exists but cannot be read.
    #[error("cannot read footprint state file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The state file is not valid JSON of the expected shape (it is left as it is).
    #[error("footprint state file {path} is corrupt: {source}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The parse error, with line and column.
        source: serde_json::Error,
    },
    /// The state file was written by a newer modelmux.
    #[error(
        "footprint state file {path} has format version {found}; this build reads up to {supported}"
    )]
    TooNew {
        /// The file.
        path: PathBuf,
        /// The version in the file.
        found: u32,
        /// The newest version this build reads.
        supported: u32,
    },
    /// The state file could not be written.
    #[error("cannot write footprint state file {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// What the estimator remembers about one key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct LearnedFootprint {
    #[serde(flatten)]
    key: FootprintKey,
    /// The largest measurement: the arena grows with the largest batch seen, so the peak is the
    /// honest figure to reserve (wrong, optimistic estimates are the top OOM complaint,
    /// serving-anchors.md (c) 2).
    peak_bytes: u64,
    last_bytes: u64,
    samples: u32,
    load_time_ms: Option<u64>,
}

const STATE_FORMAT_VERSION: u32 = 1;

#[derive(Debug, Serialize, Deserialize)]
struct StateFile {
    format_version: u32,
    footprints: Vec<LearnedFootprint>,
}

/// Estimates footprints and learns them from measurements.
#[derive(Debug, Clone)]
pub struct FootprintEstimator {
    factors: ProviderFactors,
    learned: BTreeMap<FootprintKey, LearnedFootprint>,
    state_file: Option<PathBuf>,
    on_save: SaveMode,
}

/// What saving does with the file found at open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SaveMode {
    /// Replace it.
    Replace,
    /// It was corrupt: move it aside to `<file>.corrupt` first, so the evidence stays.
    PreserveCorrupt,
    /// It was written by a newer build: never overwrite it; learn in memory only.
    Never,
}

impl FootprintEstimator {
    /// An estimator that keeps what it learns in memory only.
    pub fn in_memory(factors: ProviderFactors) -> Self {
        Self {
            factors,
            learned: BTreeMap::new(),
            state_file: None,
            on_save: SaveMode::Replace,
        }
    }

    /// An estimator backed by `path`. A missing file is an empty start. A file that cannot be
    /// read or parsed is returned as an error value next to a working estimator that starts
    /// empty (declared and estimated footprints still work). A corrupt file is moved aside to
    /// `<file>.corrupt` on the first save, so the evidence stays; a file from a newer build is
    /// never overwritten.
    pub fn open(path: &Path, factors: ProviderFactors) -> (Self, Option<EstimatorError>) {
        let mut estimator = Self {
            factors,
            learned: BTreeMap::new(),
            state_file: Some(path.to_owned()),
            on_save: SaveMode::Replace,
        };
        let error = match read_state(path) {
            Ok(footprints) => {
                estimator.learned = footprints
                    .into_iter()
                    .map(|learned| (learned.key.clone(), learned))
                    .collect();
                None
            }
            Err(error) => {
                estimator.on_save = match error {
                    EstimatorError::TooNew { .. } => SaveMode::Never,
                    _ => SaveMode::PreserveCorrupt,
                };
                tracing::warn!(%error, "starting with no learned footprints");
                Some(error)
            }
        };
        (estimator, error)
    }

    /// The footprint to reserve for `key`: measured if known, else `declared_bytes`, else
    /// `weight_bytes` × the provider's factor.
    pub fn estimate(
        &self,
        key: &FootprintKey,
        declared_bytes: Option<u64>,
        weight_bytes: Option<u64>,
    ) -> Result<Footprint, EstimatorError> {
        let load_time = self.load_time(key);
        if let Some(learned) = self.learned.get(key) {
            return Ok(Footprint {
                bytes: learned.peak_bytes,
                source: FootprintSource::Measured {
                    samples: learned.samples,
                },
                load_time,
            });
        }
        if let Some(bytes) = declared_bytes {
            return Ok(Footprint {
                bytes,
                source: FootprintSource::Declared,
                load_time,
            });
        }
        if let Some(weight_bytes) = weight_bytes {
            let factor = self.factors.factor(key.provider);
            // Rounded up: an estimate errs on the side of reserving too much.
            let bytes = (weight_bytes as f64 * factor).ceil() as u64;
            return Ok(Footprint {
                bytes,
                source: FootprintSource::Estimated {
                    weight_bytes,
                    factor,
                },
                load_time,
            });
        }
        Err(EstimatorError::NoBasis {
            model: key.model.clone(),
            version: key.version.clone(),
            provider: key.provider,
        })
    }

    /// The last measured load time of `key`.
    pub fn load_time(&self, key: &FootprintKey) -> Option<Duration> {
        self.learned
            .get(key)
            .and_then(|l| l.load_time_ms)
            .map(Duration::from_millis)
    }

    /// Remembers a measured footprint (and load time) and writes the state file, if any.
    ///
    /// The measurement is kept in memory even when writing fails; the error says so.
    pub fn record(
        &mut self,
        key: FootprintKey,
        measured_bytes: u64,
        load_time: Option<Duration>,
    ) -> Result<(), EstimatorError> {
        let load_time_ms = load_time.map(|t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX));
        let entry = self
            .learned
            .entry(key.clone())
            .or_insert_with(|| LearnedFootprint {
                key,
                peak_bytes: 0,
                last_bytes: 0,
                samples: 0,
                load_time_ms: None,
            });
        entry.peak_bytes = entry.peak_bytes.max(measured_bytes);
        entry.last_bytes = measured_bytes;
        entry.samples = entry.samples.saturating_add(1);
        if load_time_ms.is_some() {
            entry.load_time_ms = load_time_ms;
        }
        self.save()
    }

    /// Writes the state file atomically (a temporary file in the same folder, then a rename),
    /// so that a crash mid-write never leaves a half-written file.
    pub fn save(&mut self) -> Result<(), EstimatorError> {
        let Some(path) = &self.state_file else {
            return Ok(());
        };
        let write_error = |source| EstimatorError::Write {
            path: path.clone(),
            source,
        };
        match self.on_save {
            SaveMode::Never => return Ok(()),
            SaveMode::PreserveCorrupt => {
                let mut aside = path.clone().into_os_string();
                aside.push(".corrupt");
                match std::fs::rename(path, &aside) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(write_error(e)),
                }
                self.on_save = SaveMode::Replace;
            }
            SaveMode::Replace => {}
        }
        let state = StateFile {
            format_version: STATE_FORMAT_VERSION,
            footprints: self.learned.values().cloned().collect(),
        };
        let json =
            serde_json::to_vec_pretty(&state).map_err(|e| write_error(std::io::Error::other(e)))?;
        let folder = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::create_dir_all(folder).map_err(write_error)?;
        let file_name = path
            .file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default();
        let temporary = folder.join(format!(".{file_name}.{}.tmp", std::process::id()));
        let written = std::fs::File::create(&temporary).and_then(|mut file| {
            file.write_all(&json)?;
            file.sync_all()
        });
        if let Err(error) = written.and_then(|()| std::fs::rename(&temporary, path)) {
            // Best effort: the temporary file is garbage either way.
            let _ = std::fs::remove_file(&temporary);
            return Err(write_error(error));
        }
        Ok(())
    }
}

fn read_state(path: &Path) -> Result<Vec<LearnedFootprint>, EstimatorError> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(EstimatorError::Read {
                path: path.to_owned(),
                source,
            });
        }
    };
    #[derive(Deserialize)]
    struct VersionOnly {
        format_version: u32,
    }
    let corrupt = |source| EstimatorError::Corrupt {
        path: path.to_owned(),
        source,
    };
    let version: VersionOnly = serde_json::from_slice(&bytes).map_err(corrupt)?;
    if version.format_version > STATE_FORMAT_VERSION {
        return Err(EstimatorError::TooNew {
            path: path.to_owned(),
            found: version.format_version,
            supported: STATE_FORMAT_VERSION,
        });
    }
    let state: StateFile = serde_json::from_slice(&bytes).map_err(corrupt)?;
    Ok(state.footprints)
}
