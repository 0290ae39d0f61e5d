//! Catalog errors that name the file, line and column, and say what to do about them.

use std::fmt;
use std::path::{Path, PathBuf};

/// Where in which file something was found; line and column count from 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The catalog file.
    pub file: PathBuf,
    /// 1-based line, or 0 when the position is unknown (an unreadable file).
    pub line: usize,
    /// 1-based column, or 0 when the position is unknown.
    pub column: usize,
}

impl Location {
    pub(crate) fn new(file: &Path, line: usize, column: usize) -> Self {
        Self {
            file: file.to_owned(),
            line,
            column,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}", self.file.display())
        } else {
            write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
        }
    }
}

/// One problem in a catalog, with the place it was found.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{location}: {kind}")]
pub struct CatalogError {
    /// Where the problem is.
    pub location: Location,
    /// What the problem is.
    pub kind: CatalogErrorKind,
}

/// Renders " (did you mean `x`?)" when there is a suggestion.
fn did_you_mean(suggestion: &Option<String>) -> String {
    match suggestion {
        Some(s) => format!(" (did you mean `{s}`?)"),
        None => String::new(),
    }
}

/// The kinds of catalog problems; each message says what was wrong and what is accepted.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum CatalogErrorKind {
    /// The file could not be read.
    #[error("cannot read the catalog: {0}")]
    Io(String),
    /// The text is not valid YAML (or not one YAML document).
    #[error("invalid YAML: {0}")]
    Syntax(String),
    /// A key that the catalog does not know, usually a typo.
    #[error("unknown field `{field}`{}; expected one of: {}", did_you_mean(.suggestion), .expected.join(", "))]
    UnknownField {
        /// The key as written.
        field: String,
        /// The keys accepted at this place.
        expected: Vec<String>,
        /// The closest accepted key, when it is close enough to be a likely typo.
        suggestion: Option<String>,
    },
    /// A group under `models:` that is not one of the model families.
    #[error("unknown model family `{family}`{}; the families are: {}", did_you_mean(.suggestion), .expected.join(", "))]
    UnknownFamily {
        /// The family as written.
        family: String,
        /// The known families.
        expected: Vec<String>,
        /// The closest family name.
        suggestion: Option<String>,
    },
    /// A value outside a fixed set (an architecture, a task, a provider…).
    #[error("unknown value `{value}`{}; expected one of: {}", did_you_mean(.suggestion), .expected.join(", "))]
    UnknownVariant {
        /// The value as written.
        value: String,
        /// The accepted values.
        expected: Vec<String>,
        /// The closest accepted value.
        suggestion: Option<String>,
    },
    /// A value of the wrong YAML type, such as a list where a string belongs.
    #[error("wrong type: {0}")]
    WrongType(String),
    /// A required key is absent.
    #[error("missing field `{0}`")]
    MissingField(String),
    /// A memory size that does not parse.
    #[error("bad size `{value}`: {reason}; write e.g. \"8GB\", \"512MiB\" or \"1.5 GiB\"")]
    BadSize {
        /// The text as written.
        value: String,
        /// Why it does not parse.
        reason: String,
    },
    /// A duration that does not parse.
    #[error("bad duration `{value}`: {reason}; write e.g. \"10m\", \"30s\", \"1h30m\" or \"5ms\"")]
    BadDuration {
        /// The text as written.
        value: String,
        /// Why it does not parse.
        reason: String,
    },
    /// A version that is not semver.
    #[error("bad version `{value}`: {reason}; write a semantic version such as \"1.0.0\"")]
    BadVersion {
        /// The text as written.
        value: String,
        /// Why it does not parse.
        reason: String,
    },
    /// A source that matches none of the source forms.
    #[error("bad source `{value}`: {reason}")]
    BadSource {
        /// The text as written.
        value: String,
        /// Why it is not accepted.
        reason: String,
    },
    /// A local source path that leaves the catalog's folder and the extra roots.
    #[error("source path `{path}` escapes the catalog's roots ({}); keep model files under the catalog's folder", .roots.join(", "))]
    SourceEscapesRoot {
        /// The path as written.
        path: String,
        /// The allowed roots.
        roots: Vec<String>,
    },
    /// The same id and version declared twice.
    #[error(
        "duplicate model `{id}@{version}`: already declared at {first}; give one of them another version"
    )]
    DuplicateModel {
        /// The model id.
        id: String,
        /// The version declared twice.
        version: String,
        /// The first declaration.
        first: Location,
    },
    /// An architecture placed under a family it does not belong to.
    #[error(
        "architecture `{architecture}` does not belong to family `{family}`; move it under `{expected_family}`"
    )]
    ArchitectureFamily {
        /// The architecture.
        architecture: String,
        /// The family it was placed under.
        family: String,
        /// The family it belongs to.
        expected_family: String,
    },
    /// More errors than are worth listing; fix the ones above and load again.
    #[error("{more} more error(s) not listed; fix the ones above and check again")]
    TooManyErrors {
        /// How many were not listed.
        more: usize,
    },
    /// Any other value that is well-formed but not allowed.
    #[error("invalid `{field}`: {reason}")]
    InvalidValue {
        /// The key whose value is wrong.
        field: String,
        /// Why.
        reason: String,
    },
}

/// Everything wrong with a catalog that failed to load; never empty.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadError {
    /// The problems, in file order where known.
    pub errors: Vec<CatalogError>,
}

impl LoadError {
    pub(crate) fn one(error: CatalogError) -> Self {
        Self {
            errors: vec![error],
        }
    }
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.errors.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for LoadError {}

/// A model reference that does not resolve in the catalog.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LookupError {
    /// No model has this id.
    #[error("no model `{id}` in the catalog{}", did_you_mean(.suggestion))]
    UnknownModel {
        /// The id asked for.
        id: String,
        /// The closest id in the catalog.
        suggestion: Option<String>,
    },
    /// The model exists but not in the version asked for.
    #[error("model `{id}` has no version matching `{requested}`; available: {}", .available.join(", "))]
    NoSuchVersion {
        /// The id asked for.
        id: String,
        /// The version or requirement asked for.
        requested: String,
        /// The versions in the catalog.
        available: Vec<String>,
    },
    /// The text after `@` is neither a version nor a version requirement.
    #[error("bad version `{requested}` in `{reference}`: {reason}")]
    BadVersion {
        /// The whole reference.
        reference: String,
        /// The part after `@`.
        requested: String,
        /// Why it does not parse.
        reason: String,
    },
}

/// The closest candidate to `word`, if it is close enough to be a likely typo.
pub(crate) fn suggest<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    let limit = (word.chars().count() / 3).max(2);
    candidates
        .into_iter()
        .map(|c| (strsim::damerau_levenshtein(word, c), c))
        .filter(|(distance, _)| *distance <= limit)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, c)| c.to_owned())
}
