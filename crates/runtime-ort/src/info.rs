//! What a loaded model declares: its inputs and outputs, IR version, opsets and metadata, and
//! the check of a run's inputs against that signature.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::PathBuf;

use modelmux_onnx::OpsetImport;
use serde::{Serialize, Serializer};

use crate::error::InputMismatch;
use crate::tensor::{ElementType, Inputs};

/// A model's signature and header, read once when its session is built.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelInfo {
    pub path: PathBuf,
    pub inputs: Vec<TensorInfo>,
    pub outputs: Vec<TensorInfo>,
    pub ir_version: i64,
    pub opset_imports: Vec<OpsetImport>,
    pub producer: String,
    /// `metadata_props` of the ONNX file.
    pub custom_metadata: BTreeMap<String, String>,
    /// Bytes of weights (initializers), decoded size.
    pub weight_bytes: u64,
}

/// One input or output.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TensorInfo {
    pub name: String,
    pub element_type: ElementType,
    pub shape: Vec<Dim>,
}

/// One dimension of a declared shape.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Dim {
    Fixed(usize),
    /// A named dynamic dimension, e.g. `batch`: equal wherever the name appears.
    Symbolic(String),
    /// A dynamic dimension without a name.
    Dynamic,
}

impl fmt::Display for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Fixed(n) => write!(f, "{n}"),
            Self::Symbolic(s) => f.write_str(s),
            Self::Dynamic => f.write_str("?"),
        }
    }
}

impl Serialize for Dim {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Fixed(n) => s.serialize_u64(*n as u64),
            other => s.serialize_str(&other.to_string()),
        }
    }
}

impl TensorInfo {
    /// The shape as text, e.g. `[batch, 77]`.
    pub fn shape_text(&self) -> String {
        let dims: Vec<String> = self.shape.iter().map(Dim::to_string).collect();
        format!("[{}]", dims.join(", "))
    }

    pub(crate) fn from_outlet(outlet: &ort::value::Outlet) -> Self {
        match outlet.dtype() {
            ort::value::ValueType::Tensor {
                ty,
                shape,
                dimension_symbols,
            } => {
                let shape = shape
                    .iter()
                    .enumerate()
                    .map(|(i, &d)| match usize::try_from(d) {
                        Ok(n) => Dim::Fixed(n),
                        Err(_) => match dimension_symbols.get(i).map(String::as_str) {
                            Some(s) if !s.is_empty() => Dim::Symbolic(s.to_owned()),
                            _ => Dim::Dynamic,
                        },
                    })
                    .collect();
                Self {
                    name: outlet.name().to_owned(),
                    element_type: (*ty).into(),
                    shape,
                }
            }
            other => Self {
                name: outlet.name().to_owned(),
                element_type: ElementType::Other(format!("{other:?}")),
                shape: Vec::new(),
            },
        }
    }
}

impl ModelInfo {
    pub fn input(&self, name: &str) -> Option<&TensorInfo> {
        self.inputs.iter().find(|t| t.name == name)
    }

    pub fn output(&self, name: &str) -> Option<&TensorInfo> {
        self.outputs.iter().find(|t| t.name == name)
    }

    /// The default-domain opset.
    pub fn opset(&self) -> Option<i64> {
        self.opset_imports
            .iter()
            .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
            .map(|o| o.version)
    }

    /// Checks names, element types, ranks, fixed sizes and that each named dimension has one size
    /// across all inputs — before ONNX Runtime sees them, so the error names what is wrong.
    pub fn check_inputs(&self, inputs: &Inputs) -> Result<(), InputMismatch> {
        let mut seen: HashMap<&str, ()> = HashMap::new();
        let mut symbols: HashMap<&str, (&str, usize)> = HashMap::new();
        for (name, tensor) in inputs.iter() {
            let Some(declared) = self.input(name) else {
                let expected: Vec<String> = self.inputs.iter().map(|t| t.name.clone()).collect();
                let did_you_mean = closest(name, &expected);
                return Err(InputMismatch::Unknown {
                    name: name.to_owned(),
                    expected,
                    did_you_mean,
                });
            };
            if seen.insert(name, ()).is_some() {
                return Err(InputMismatch::Duplicate {
                    name: name.to_owned(),
                });
            }
            if tensor.element_type() != declared.element_type {
                return Err(InputMismatch::ElementType {
                    name: name.to_owned(),
                    expected: declared.element_type.clone(),
                    actual: tensor.element_type(),
                });
            }
            let actual = tensor.shape();
            let shape_error = || InputMismatch::Shape {
                name: name.to_owned(),
                expected: declared.shape_text(),
                actual: actual.to_vec(),
            };
            if actual.len() != declared.shape.len() {
                return Err(shape_error());
            }
            for (dim, &size) in declared.shape.iter().zip(actual) {
                match dim {
                    Dim::Fixed(n) if *n != size => return Err(shape_error()),
                    Dim::Symbolic(symbol) => match symbols.get(symbol.as_str()) {
                        Some(&(first_input, first_size)) if first_size != size => {
                            return Err(InputMismatch::InconsistentDimension {
                                symbol: symbol.clone(),
                                first_input: first_input.to_owned(),
                                first_size,
                                second_input: name.to_owned(),
                                second_size: size,
                            });
                        }
                        Some(_) => {}
                        None => {
                            symbols.insert(symbol, (name, size));
                        }
                    },
                    _ => {}
                }
            }
        }
        if let Some(missing) = self
            .inputs
            .iter()
            .find(|t| !seen.contains_key(t.name.as_str()))
        {
            return Err(InputMismatch::Missing {
                name: missing.name.clone(),
            });
        }
        Ok(())
    }
}

/// The expected name nearest to `name`, if it is close enough to be a typo.
fn closest(name: &str, expected: &[String]) -> Option<String> {
    expected
        .iter()
        .map(|e| (edit_distance(name, e), e))
        .filter(|(d, e)| *d <= (e.len() / 3).max(2))
        .min_by_key(|(d, _)| *d)
        .map(|(_, e)| e.clone())
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let substitution = previous + usize::from(ca != cb);
            previous = row[j + 1];
            row[j + 1] = substitution.min(previous + 1).min(row[j] + 1);
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests;
