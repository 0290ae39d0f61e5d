//! Typed tensors going into and out of a session: f32, f16, i64, i32, bool and u8.

use std::fmt;

use half::f16;
use ndarray::ArrayD;
use serde::{Deserialize, Serialize};

use crate::error::RuntimeError;

/// The element type of a tensor, in ONNX's terms.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ElementType {
    F32,
    F16,
    I64,
    I32,
    Bool,
    U8,
    /// A type modelmux does not exchange (strings, bf16, f64…), by ONNX Runtime's name.
    Other(String),
}

impl fmt::Display for ElementType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::F32 => f.write_str("float32"),
            Self::F16 => f.write_str("float16"),
            Self::I64 => f.write_str("int64"),
            Self::I32 => f.write_str("int32"),
            Self::Bool => f.write_str("bool"),
            Self::U8 => f.write_str("uint8"),
            Self::Other(name) => f.write_str(name),
        }
    }
}

impl From<ort::value::TensorElementType> for ElementType {
    fn from(ty: ort::value::TensorElementType) -> Self {
        use ort::value::TensorElementType as T;
        match ty {
            T::Float32 => Self::F32,
            T::Float16 => Self::F16,
            T::Int64 => Self::I64,
            T::Int32 => Self::I32,
            T::Bool => Self::Bool,
            T::Uint8 => Self::U8,
            other => Self::Other(format!("{other:?}").to_lowercase()),
        }
    }
}

/// A tensor owned by the caller.
#[derive(Debug, Clone, PartialEq)]
pub enum Tensor {
    F32(ArrayD<f32>),
    F16(ArrayD<f16>),
    I64(ArrayD<i64>),
    I32(ArrayD<i32>),
    Bool(ArrayD<bool>),
    U8(ArrayD<u8>),
}

impl Tensor {
    pub fn element_type(&self) -> ElementType {
        match self {
            Self::F32(_) => ElementType::F32,
            Self::F16(_) => ElementType::F16,
            Self::I64(_) => ElementType::I64,
            Self::I32(_) => ElementType::I32,
            Self::Bool(_) => ElementType::Bool,
            Self::U8(_) => ElementType::U8,
        }
    }

    pub fn shape(&self) -> &[usize] {
        match self {
            Self::F32(a) => a.shape(),
            Self::F16(a) => a.shape(),
            Self::I64(a) => a.shape(),
            Self::I32(a) => a.shape(),
            Self::Bool(a) => a.shape(),
            Self::U8(a) => a.shape(),
        }
    }

    /// The array, if the tensor holds elements of type `T`.
    pub fn array<T: Element>(&self) -> Option<&ArrayD<T>> {
        T::view(self)
    }

    /// Takes the array out, if the tensor holds elements of type `T`.
    pub fn into_array<T: Element>(self) -> Result<ArrayD<T>, Self> {
        T::take(self)
    }
}

/// An element type a [`Tensor`] can hold.
pub trait Element: Sized + Clone + 'static {
    const TYPE: ElementType;
    fn view(tensor: &Tensor) -> Option<&ArrayD<Self>>;
    fn take(tensor: Tensor) -> Result<ArrayD<Self>, Tensor>;
    fn wrap(array: ArrayD<Self>) -> Tensor;
}

macro_rules! element {
    ($t:ty, $variant:ident) => {
        impl Element for $t {
            const TYPE: ElementType = ElementType::$variant;
            fn view(tensor: &Tensor) -> Option<&ArrayD<Self>> {
                match tensor {
                    Tensor::$variant(a) => Some(a),
                    _ => None,
                }
            }
            fn take(tensor: Tensor) -> Result<ArrayD<Self>, Tensor> {
                match tensor {
                    Tensor::$variant(a) => Ok(a),
                    other => Err(other),
                }
            }
            fn wrap(array: ArrayD<Self>) -> Tensor {
                Tensor::$variant(array)
            }
        }

        impl<D: ndarray::Dimension> From<ndarray::Array<$t, D>> for Tensor {
            fn from(array: ndarray::Array<$t, D>) -> Self {
                Tensor::$variant(array.into_dyn())
            }
        }
    };
}

element!(f32, F32);
element!(f16, F16);
element!(i64, I64);
element!(i32, I32);
element!(bool, Bool);
element!(u8, U8);

/// Named inputs of one run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Inputs(pub(crate) Vec<(String, Tensor)>);

impl Inputs {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an input; validation against the model happens when the run starts.
    pub fn with(mut self, name: impl Into<String>, tensor: impl Into<Tensor>) -> Self {
        self.0.push((name.into(), tensor.into()));
        self
    }

    pub fn push(&mut self, name: impl Into<String>, tensor: impl Into<Tensor>) {
        self.0.push((name.into(), tensor.into()));
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Tensor)> {
        self.0.iter().map(|(n, t)| (n.as_str(), t))
    }
}

/// Named outputs of one run, in the model's output order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outputs {
    pub(crate) model: String,
    pub(crate) values: Vec<(String, Tensor)>,
}

impl Outputs {
    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.values.iter().find(|(n, _)| n == name).map(|(_, t)| t)
    }

    /// The output `name` as an array of `T`, or an error naming the output and what it holds.
    pub fn array<T: Element>(&self, name: &str) -> Result<&ArrayD<T>, RuntimeError> {
        let tensor = self.get(name).ok_or_else(|| self.missing(name))?;
        tensor
            .array::<T>()
            .ok_or_else(|| self.wrong_type::<T>(name, tensor))
    }

    /// Takes the output `name` out as an array of `T`.
    pub fn take<T: Element>(&mut self, name: &str) -> Result<ArrayD<T>, RuntimeError> {
        let index = self
            .values
            .iter()
            .position(|(n, _)| n == name)
            .ok_or_else(|| self.missing(name))?;
        let (name, tensor) = self.values.remove(index);
        tensor.into_array::<T>().map_err(|tensor| {
            let err = self.wrong_type::<T>(&name, &tensor);
            self.values.insert(index, (name, tensor));
            err
        })
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.values.iter().map(|(n, _)| n.as_str())
    }

    pub fn into_vec(self) -> Vec<(String, Tensor)> {
        self.values
    }

    fn missing(&self, name: &str) -> RuntimeError {
        RuntimeError::Output {
            model: self.model.clone(),
            name: name.to_owned(),
            reason: format!(
                "no such output; the model has {}",
                self.names().collect::<Vec<_>>().join(", ")
            ),
        }
    }

    fn wrong_type<T: Element>(&self, name: &str, tensor: &Tensor) -> RuntimeError {
        RuntimeError::Output {
            model: self.model.clone(),
            name: name.to_owned(),
            reason: format!("holds {}, not {}", tensor.element_type(), T::TYPE),
        }
    }
}

macro_rules! each_variant {
    ($tensor:expr, $a:ident => $body:expr) => {
        match $tensor {
            Tensor::F32($a) => Tensor::F32($body),
            Tensor::F16($a) => Tensor::F16($body),
            Tensor::I64($a) => Tensor::I64($body),
            Tensor::I32($a) => Tensor::I32($body),
            Tensor::Bool($a) => Tensor::Bool($body),
            Tensor::U8($a) => Tensor::U8($body),
        }
    };
}

impl Tensor {
    /// Stacks tensors of one element type along axis 0; `None` when their types or their other
    /// dimensions differ.
    pub fn concat(parts: &[&Tensor]) -> Option<Tensor> {
        fn join<T: Element>(parts: &[&Tensor]) -> Option<ArrayD<T>> {
            let views: Option<Vec<_>> = parts
                .iter()
                .map(|t| t.array::<T>().map(|a| a.view()))
                .collect();
            ndarray::concatenate(ndarray::Axis(0), &views?).ok()
        }
        let first = parts.first()?;
        Some(match first {
            Tensor::F32(_) => Tensor::F32(join(parts)?),
            Tensor::F16(_) => Tensor::F16(join(parts)?),
            Tensor::I64(_) => Tensor::I64(join(parts)?),
            Tensor::I32(_) => Tensor::I32(join(parts)?),
            Tensor::Bool(_) => Tensor::Bool(join(parts)?),
            Tensor::U8(_) => Tensor::U8(join(parts)?),
        })
    }

    /// Splits along axis 0 into consecutive pieces of the given sizes; `None` when the sizes do
    /// not add up to the tensor's first dimension.
    pub fn split(&self, sizes: &[usize]) -> Option<Vec<Tensor>> {
        if self.shape().first().copied() != Some(sizes.iter().sum()) {
            return None;
        }
        let mut start = 0;
        Some(
            sizes
                .iter()
                .map(|&n| {
                    let range = ndarray::Slice::from(start..start + n);
                    start += n;
                    each_variant!(self, a => a.slice_axis(ndarray::Axis(0), range).to_owned())
                })
                .collect(),
        )
    }
}
