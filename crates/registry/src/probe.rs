//! File access for the compatibility check, behind a trait so the check stays a pure function
//! and tests can fake the disk; and the SHA-256 cache that keeps starts from rehashing
//! gigabytes of weights.

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::path::{Component, Path, PathBuf};
use std::sync::Mutex;
use std::time::UNIX_EPOCH;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use modelmux_onnx::{OnnxError, OnnxHeader};

/// The file facts the compatibility check asks for; paths are relative to an export folder.
pub trait FileProbe {
    /// The file's size, or the I/O error (NotFound when it is missing).
    fn size(&self, rel: &str) -> io::Result<u64>;
    /// The file's SHA-256, lowercase hex.
    fn sha256(&self, rel: &str) -> io::Result<String>;
    /// The ONNX header of a model file.
    fn onnx_header(&self, rel: &str) -> Result<OnnxHeader, OnnxError>;
}

/// The name of the hash cache inside an export folder.
pub const HASH_CACHE_FILE: &str = ".modelmux-sha256-cache.json";

/// A cached hash, valid while the file's size and modification time are unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct CacheEntry {
    size: u64,
    mtime_secs: u64,
    mtime_nanos: u32,
    sha256: String,
}

/// Reads files in one export folder, caching SHA-256 by (size, mtime) in a small JSON file.
#[derive(Debug)]
pub struct DirProbe {
    dir: PathBuf,
    cache: Mutex<(BTreeMap<String, CacheEntry>, bool)>,
}

impl DirProbe {
    /// A probe over `dir`, loading its hash cache if there is a readable one.
    pub fn new(dir: &Path) -> Self {
        // A missing or corrupt cache only costs a rehash, so it is ignored rather than reported.
        let entries = std::fs::read(dir.join(HASH_CACHE_FILE))
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default();
        Self {
            dir: dir.to_owned(),
            cache: Mutex::new((entries, false)),
        }
    }

    /// Writes the hash cache back if it changed.
    pub fn save(&self) -> io::Result<()> {
        let guard = self
            .cache
            .lock()
            .map_err(|_| io::Error::other("hash cache lock poisoned"))?;
        if !guard.1 {
            return Ok(());
        }
        let text = serde_json::to_string_pretty(&guard.0).map_err(io::Error::other)?;
        // Write then rename, so a concurrent check never reads half a cache file.
        let tmp = self
            .dir
            .join(format!("{HASH_CACHE_FILE}.{}.tmp", std::process::id()));
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, self.dir.join(HASH_CACHE_FILE))
    }

    fn resolve(&self, rel: &str) -> io::Result<PathBuf> {
        let path = Path::new(rel);
        if rel.is_empty()
            || path.is_absolute()
            || path
                .components()
                .any(|c| !matches!(c, Component::Normal(_)))
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("`{rel}` is not a plain relative path inside the export folder"),
            ));
        }
        Ok(self.dir.join(path))
    }
}

impl FileProbe for DirProbe {
    fn size(&self, rel: &str) -> io::Result<u64> {
        Ok(std::fs::metadata(self.resolve(rel)?)?.len())
    }

    fn sha256(&self, rel: &str) -> io::Result<String> {
        let path = self.resolve(rel)?;
        let meta = std::fs::metadata(&path)?;
        let mtime = meta
            .modified()?
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let key = (meta.len(), mtime.as_secs(), mtime.subsec_nanos());
        if let Ok(guard) = self.cache.lock()
            && let Some(e) = guard.0.get(rel)
            && (e.size, e.mtime_secs, e.mtime_nanos) == key
        {
            return Ok(e.sha256.clone());
        }
        let sha256 = sha256_file(&path)?;
        if let Ok(mut guard) = self.cache.lock() {
            guard.0.insert(
                rel.to_owned(),
                CacheEntry {
                    size: key.0,
                    mtime_secs: key.1,
                    mtime_nanos: key.2,
                    sha256: sha256.clone(),
                },
            );
            guard.1 = true;
        }
        Ok(sha256)
    }

    fn onnx_header(&self, rel: &str) -> Result<OnnxHeader, OnnxError> {
        let path = self.resolve(rel).map_err(|source| OnnxError::Io {
            path: self.dir.join(rel),
            source,
        })?;
        modelmux_onnx::read_header(&path)
    }
}

/// The SHA-256 of a file, lowercase hex, read in 1 MiB chunks.
pub fn sha256_file(path: &Path) -> io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

/// The SHA-256 of bytes, lowercase hex.
pub fn sha256_bytes(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
