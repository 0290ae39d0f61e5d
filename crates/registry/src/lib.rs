//! The model catalog: `models.yaml`, export manifests and compatibility checks.
