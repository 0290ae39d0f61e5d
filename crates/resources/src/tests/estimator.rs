//! The estimator: measured beats declared beats estimated; learned footprints survive a restart; a corrupt state file is an error value, not a stop.

use std::time::Duration;

use crate::*;

fn key(provider: Provider) -> FootprintKey {
    FootprintKey::new("clip", "2", provider)
}

#[test]
fn declared_then_estimated_then_measured() {
    let mut estimator = FootprintEstimator::in_memory(ProviderFactors::default());
    let cuda = key(Provider::Cuda);
    assert!(matches!(
        estimator.estimate(&cuda, None, None),
        Err(EstimatorError::NoBasis { .. })
    ));
    let estimated = estimator.estimate(&cuda, None, Some(100)).unwrap();
    assert_eq!(estimated.bytes, 200);
    assert_eq!(
        estimated.source,
        FootprintSource::Estimated {
            weight_bytes: 100,
            factor: 2.0
        }
    );
    assert_eq!(
        estimator
            .estimate(&key(Provider::Cpu), None, Some(100))
            .unwrap()
            .bytes,
        125
    );
    let declared = estimator.estimate(&cuda, Some(500), Some(100)).unwrap();
    assert_eq!(
        (declared.bytes, declared.source),
        (500, FootprintSource::Declared)
    );

    estimator
        .record(cuda.clone(), 300, Some(Duration::from_millis(900)))
        .unwrap();
    estimator.record(cuda.clone(), 250, None).unwrap();
    let measured = estimator.estimate(&cuda, Some(500), Some(100)).unwrap();
    assert_eq!(measured.bytes, 300, "the peak measurement is reserved");
    assert_eq!(measured.source, FootprintSource::Measured { samples: 2 });
    assert_eq!(measured.load_time, Some(Duration::from_millis(900)));
    // A measurement on CUDA says nothing about the CPU provider.
    assert_eq!(
        estimator
            .estimate(&key(Provider::Cpu), Some(77), None)
            .unwrap()
            .bytes,
        77
    );
}

#[test]
fn learned_footprints_persist_across_processes() {
    let folder = tempfile::tempdir().unwrap();
    let path = folder.path().join("state").join("footprints.json");
    let (mut first, error) = FootprintEstimator::open(&path, ProviderFactors::default());
    assert!(error.is_none());
    first
        .record(key(Provider::TensorRt), 4096, Some(Duration::from_secs(35)))
        .unwrap();
    let (second, error) = FootprintEstimator::open(&path, ProviderFactors::default());
    assert!(error.is_none(), "{error:?}");
    let footprint = second
        .estimate(&key(Provider::TensorRt), None, None)
        .unwrap();
    assert_eq!(footprint.bytes, 4096);
    assert_eq!(footprint.load_time, Some(Duration::from_secs(35)));
    // Only the state file is left in the folder: the temporary file was renamed over it.
    let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("footprints.json")]);
}

#[test]
fn a_corrupt_state_file_is_named_and_kept_aside_and_estimation_goes_on() {
    let folder = tempfile::tempdir().unwrap();
    let path = folder.path().join("footprints.json");
    std::fs::write(&path, "{\"format_version\": 1, \"footprints\": [").unwrap();
    let (mut estimator, error) = FootprintEstimator::open(&path, ProviderFactors::default());
    let error = error.expect("corrupt file reported");
    assert!(matches!(error, EstimatorError::Corrupt { .. }));
    assert!(error.to_string().contains("footprints.json"), "{error}");
    assert_eq!(
        estimator
            .estimate(&key(Provider::Cuda), Some(10), None)
            .unwrap()
            .bytes,
        10
    );
    estimator.record(key(Provider::Cuda), 20, None).unwrap();
    assert!(folder.path().join("footprints.json.corrupt").exists());
    let (reopened, error) = FootprintEstimator::open(&path, ProviderFactors::default());
    assert!(error.is_none());
    assert_eq!(
        reopened
            .estimate(&key(Provider::Cuda), None, None)
            .unwrap()
            .bytes,
        20
    );
}

#[test]
fn a_state_file_from_a_newer_build_is_never_overwritten() {
    let folder = tempfile::tempdir().unwrap();
    let path = folder.path().join("footprints.json");
    let newer = "{\"format_version\": 9, \"footprints\": [], \"more\": true}";
    std::fs::write(&path, newer).unwrap();
    let (mut estimator, error) = FootprintEstimator::open(&path, ProviderFactors::default());
    assert!(matches!(
        error,
        Some(EstimatorError::TooNew {
            found: 9,
            supported: 1,
            ..
        })
    ));
    estimator.record(key(Provider::Cuda), 20, None).unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), newer);
}

#[test]
fn providers_parse_and_name_their_device_kind() {
    assert_eq!("CUDA".parse::<Provider>(), Ok(Provider::Cuda));
    assert_eq!(
        "tensorrt".parse::<Provider>().map(Provider::device_kind),
        Ok(DeviceKind::Cuda)
    );
    assert_eq!(
        "cpu".parse::<Provider>().map(Provider::device_kind),
        Ok(DeviceKind::Cpu)
    );
    assert_eq!(
        "rocm".parse::<Provider>(),
        Err(UnknownProvider("rocm".into()))
    );
}
