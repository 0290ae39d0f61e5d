//! Facts about an export the adapters read once at load time: the manifest's `extra` and the
//! model's `config.json`.

use std::collections::BTreeMap;

use modelmux_registry::Manifest;
use serde_json::Value;

use crate::context::LoadContext;
use crate::error::AdapterError;

/// The manifest's `extra` merged with `config.json` (the manifest wins: it is what the exporter
/// checked).
#[derive(Debug, Clone, Default)]
pub(crate) struct ExportFacts {
    model: String,
    extra: BTreeMap<String, Value>,
    config: BTreeMap<String, Value>,
}

impl ExportFacts {
    pub(crate) fn read(context: &LoadContext<'_>) -> Result<Self, AdapterError> {
        let model = context.model();
        let manifest_path = context.export_dir.join("manifest.json");
        let extra = Manifest::read(&manifest_path)
            .map_err(|e| AdapterError::BadFile {
                model: model.clone(),
                path: manifest_path.clone(),
                reason: e.to_string(),
            })?
            .map(|m| m.extra)
            .unwrap_or_default();
        let config_path = context.export_dir.join("config.json");
        let config = match std::fs::read(&config_path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| AdapterError::BadFile {
                model: model.clone(),
                path: config_path.clone(),
                reason: e.to_string(),
            })?,
            Err(_) => BTreeMap::new(),
        };
        Ok(Self {
            model,
            extra,
            config,
        })
    }

    fn value(&self, key: &str) -> Option<&Value> {
        self.extra.get(key).or_else(|| self.config.get(key))
    }

    /// An unsigned integer fact, if present.
    pub(crate) fn uint(&self, key: &str) -> Option<u64> {
        self.value(key).and_then(Value::as_u64)
    }

    /// An unsigned integer fact that must be present.
    pub(crate) fn require_uint(&self, key: &str) -> Result<u64, AdapterError> {
        self.uint(key).ok_or_else(|| AdapterError::Config {
            model: self.model.clone(),
            reason: format!(
                "the export's manifest (extra) or config.json lacks `{key}`; re-export the model"
            ),
        })
    }

    /// Token ids given as one integer or a list (transformers allows both for `eos_token_id`).
    pub(crate) fn ids(&self, key: &str) -> Vec<u32> {
        match self.value(key) {
            Some(Value::Number(n)) => n.as_u64().map(|n| vec![n as u32]).unwrap_or_default(),
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(Value::as_u64)
                .map(|n| n as u32)
                .collect(),
            _ => Vec::new(),
        }
    }

    /// A list of strings (e.g. `labels`), empty if absent.
    pub(crate) fn strings(&self, key: &str) -> Vec<String> {
        self.value(key)
            .and_then(Value::as_array)
            .map(|items| {
                items
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The longest sequence the model's position embeddings cover, if the config says.
    pub(crate) fn max_positions(&self) -> Option<usize> {
        ["max_position_embeddings", "n_positions", "n_ctx"]
            .iter()
            .find_map(|k| self.uint(k))
            .map(|n| n as usize)
    }
}
