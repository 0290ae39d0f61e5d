//! What an adapter is loaded with: the catalog entry, its export folder and the session options.

use std::path::PathBuf;

use modelmux_registry::ModelSpec;
use modelmux_runtime_ort::{BatchConfig, PoolConfig, Runtime, SessionPool, SessionSpec};

use crate::error::AdapterError;

/// Everything needed to load one model's adapter.
#[derive(Debug, Clone)]
pub struct LoadContext<'a> {
    /// The catalog entry.
    pub spec: &'a ModelSpec,
    /// `exports/<id>/<version>`.
    pub export_dir: PathBuf,
    /// Providers and options for every session of the model.
    pub session: SessionSpec,
    /// Requests admitted per session pool before it reports itself overloaded.
    pub queue_limit: usize,
}

impl LoadContext<'_> {
    /// `id@version`, for errors.
    pub fn model(&self) -> String {
        self.spec.key()
    }

    /// The path of `name` inside the export, which must exist.
    pub fn file(&self, name: &str) -> Result<PathBuf, AdapterError> {
        let path = self.export_dir.join(name);
        if path.exists() {
            Ok(path)
        } else {
            Err(AdapterError::MissingFile {
                model: self.spec.id.clone(),
                path,
            })
        }
    }

    /// A pool of `instances` sessions (from the catalog) over the ONNX file `name`, batching as
    /// the catalog says when `batchable` (models whose every input and output has a dynamic
    /// first dimension).
    pub fn pool(&self, name: &str, batchable: bool) -> Result<SessionPool, AdapterError> {
        let path = self.file(name)?;
        let runtime = Runtime::global()?;
        let mut instances = Vec::new();
        for _ in 0..self.spec.instances.max(1) {
            match runtime.load(&format!("{}:{name}", self.model()), &path, &self.session) {
                Ok(handle) => instances.push(handle),
                Err(e) => {
                    instances
                        .iter()
                        .for_each(modelmux_runtime_ort::SessionHandle::shutdown);
                    return Err(e.into());
                }
            }
        }
        let batching =
            (batchable && self.spec.batching.max_batch_size > 1).then_some(BatchConfig {
                max_batch_size: self.spec.batching.max_batch_size as usize,
                max_queue_delay: self.spec.batching.max_queue_delay,
            });
        Ok(SessionPool::new(
            instances,
            PoolConfig {
                queue_limit: self.queue_limit,
                batching,
            },
        )?)
    }
}
