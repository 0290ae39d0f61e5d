//! Tensors as the Open Inference Protocol carries them: JSON (nested or flat) and Triton's
//! binary-data extension, converted to and from the runtime's typed [`Tensor`]s.
//!
//! Only the element types ONNX Runtime sessions exchange in modelmux (BOOL, UINT8, INT32, INT64,
//! FP16, FP32) and BYTES (texts, encoded images) are accepted; any other OIP datatype is a 400
//! naming it, never a silent conversion.

use half::f16;
use modelmux::runtime::{ElementType, Tensor};
use ndarray::{ArrayD, IxDyn};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::error::ApiError;
use crate::models::TensorMetadata;

/// An OIP datatype.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Datatype {
    Bool,
    Uint8,
    Int32,
    Int64,
    Fp16,
    Fp32,
    Bytes,
}

impl Datatype {
    /// Parses an OIP datatype name; the known but unsupported ones are named in the error.
    pub fn parse(name: &str) -> Result<Self, String> {
        Ok(match name {
            "BOOL" => Self::Bool,
            "UINT8" => Self::Uint8,
            "INT32" => Self::Int32,
            "INT64" => Self::Int64,
            "FP16" => Self::Fp16,
            "FP32" => Self::Fp32,
            "BYTES" => Self::Bytes,
            "INT8" | "INT16" | "UINT16" | "UINT32" | "UINT64" | "FP64" | "BF16" => {
                return Err(format!(
                    "datatype {name} is not supported by modelmux (BOOL, UINT8, INT32, INT64, FP16, FP32 and BYTES are)"
                ));
            }
            other => return Err(format!("unknown datatype `{other}`")),
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Bool => "BOOL",
            Self::Uint8 => "UINT8",
            Self::Int32 => "INT32",
            Self::Int64 => "INT64",
            Self::Fp16 => "FP16",
            Self::Fp32 => "FP32",
            Self::Bytes => "BYTES",
        }
    }

    /// The OIP datatype of an ONNX element type, when modelmux exchanges it.
    pub fn of_element(element: &ElementType) -> Option<Self> {
        Some(match element {
            ElementType::F32 => Self::Fp32,
            ElementType::F16 => Self::Fp16,
            ElementType::I64 => Self::Int64,
            ElementType::I32 => Self::Int32,
            ElementType::Bool => Self::Bool,
            ElementType::U8 => Self::Uint8,
            ElementType::Other(_) => return None,
        })
    }
}

/// The elements of a tensor, flat and row-major.
#[derive(Debug, Clone, PartialEq)]
pub enum TensorData {
    Bool(Vec<bool>),
    U8(Vec<u8>),
    I32(Vec<i32>),
    I64(Vec<i64>),
    F16(Vec<f16>),
    F32(Vec<f32>),
    Bytes(Vec<Vec<u8>>),
}

impl TensorData {
    pub fn len(&self) -> usize {
        match self {
            Self::Bool(v) => v.len(),
            Self::U8(v) => v.len(),
            Self::I32(v) => v.len(),
            Self::I64(v) => v.len(),
            Self::F16(v) => v.len(),
            Self::F32(v) => v.len(),
            Self::Bytes(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn datatype(&self) -> Datatype {
        match self {
            Self::Bool(_) => Datatype::Bool,
            Self::U8(_) => Datatype::Uint8,
            Self::I32(_) => Datatype::Int32,
            Self::I64(_) => Datatype::Int64,
            Self::F16(_) => Datatype::Fp16,
            Self::F32(_) => Datatype::Fp32,
            Self::Bytes(_) => Datatype::Bytes,
        }
    }
}

/// One named tensor of a request or a response.
#[derive(Debug, Clone, PartialEq)]
pub struct WireTensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub data: TensorData,
}

impl WireTensor {
    pub fn new(name: impl Into<String>, shape: Vec<usize>, data: TensorData) -> Self {
        Self {
            name: name.into(),
            shape,
            data,
        }
    }

    /// A tensor whose `shape` (as requests carry it) holds exactly the elements of `data`;
    /// a negative dimension or a count that does not match is a 400 naming the input.
    pub(crate) fn checked(name: String, shape: &[i64], data: TensorData) -> Result<Self, ApiError> {
        let dims = shape
            .iter()
            .map(|&d| usize::try_from(d))
            .collect::<Result<Vec<usize>, _>>()
            .map_err(|_| {
                ApiError::bad_request(format!(
                    "input `{name}`: shape {shape:?} has a negative dimension"
                ))
            })?;
        let count = dims
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d))
            .ok_or_else(|| ApiError::bad_request(format!("input `{name}`: shape is too large")))?;
        if data.len() != count {
            return Err(ApiError::bad_request(format!(
                "input `{name}`: shape {dims:?} holds {count} elements but {} were given",
                data.len()
            )));
        }
        Ok(Self {
            name,
            shape: dims,
            data,
        })
    }

    /// A BYTES tensor's elements as UTF-8 texts; anything else is a 400 naming the input.
    pub fn texts(&self) -> Result<Vec<String>, ApiError> {
        let TensorData::Bytes(items) = &self.data else {
            return Err(ApiError::bad_request(format!(
                "input `{}` must be BYTES, got {}",
                self.name,
                self.data.datatype().as_str()
            )));
        };
        items
            .iter()
            .enumerate()
            .map(|(i, bytes)| {
                String::from_utf8(bytes.clone()).map_err(|_| {
                    ApiError::bad_request(format!(
                        "input `{}`: element {i} is not UTF-8 text",
                        self.name
                    ))
                })
            })
            .collect()
    }

    /// The runtime tensor with the same shape and elements (BYTES has no runtime counterpart).
    pub fn into_runtime(self) -> Result<Tensor, ApiError> {
        let shape = IxDyn(&self.shape);
        let name = self.name;
        let bad = |e: ndarray::ShapeError| {
            ApiError::bad_request(format!(
                "input `{name}`: shape does not match the data: {e}"
            ))
        };
        Ok(match self.data {
            TensorData::Bool(v) => Tensor::Bool(ArrayD::from_shape_vec(shape, v).map_err(bad)?),
            TensorData::U8(v) => Tensor::U8(ArrayD::from_shape_vec(shape, v).map_err(bad)?),
            TensorData::I32(v) => Tensor::I32(ArrayD::from_shape_vec(shape, v).map_err(bad)?),
            TensorData::I64(v) => Tensor::I64(ArrayD::from_shape_vec(shape, v).map_err(bad)?),
            TensorData::F16(v) => Tensor::F16(ArrayD::from_shape_vec(shape, v).map_err(bad)?),
            TensorData::F32(v) => Tensor::F32(ArrayD::from_shape_vec(shape, v).map_err(bad)?),
            TensorData::Bytes(_) => {
                return Err(ApiError::bad_request(format!(
                    "input `{name}`: BYTES inputs are not accepted by raw ONNX models"
                )));
            }
        })
    }

    /// A runtime output as a wire tensor (logical, row-major order).
    pub fn from_runtime(name: String, tensor: &Tensor) -> Self {
        let shape = tensor.shape().to_vec();
        let data = match tensor {
            Tensor::F32(a) => TensorData::F32(a.iter().copied().collect()),
            Tensor::F16(a) => TensorData::F16(a.iter().copied().collect()),
            Tensor::I64(a) => TensorData::I64(a.iter().copied().collect()),
            Tensor::I32(a) => TensorData::I32(a.iter().copied().collect()),
            Tensor::Bool(a) => TensorData::Bool(a.iter().copied().collect()),
            Tensor::U8(a) => TensorData::U8(a.iter().copied().collect()),
        };
        Self { name, shape, data }
    }
}

/// An inference request as the JSON header carries it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RequestJson {
    #[serde(default)]
    id: Option<String>,
    /// Sent by some clients (KServe's); the route names the model, so these are not read.
    #[serde(default, rename = "model_name")]
    _model_name: Option<serde::de::IgnoredAny>,
    #[serde(default, rename = "model_version")]
    _model_version: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    parameters: Map<String, Value>,
    inputs: Vec<InputJson>,
    #[serde(default)]
    outputs: Option<Vec<OutputJson>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InputJson {
    name: String,
    shape: Vec<i64>,
    datatype: String,
    #[serde(default)]
    parameters: Map<String, Value>,
    #[serde(default)]
    data: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OutputJson {
    name: String,
    #[serde(default)]
    parameters: Map<String, Value>,
}

/// An output the client asked for, and whether it wants it as binary data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestedOutput {
    pub name: String,
    pub binary: bool,
}

/// A decoded inference request.
#[derive(Debug, Clone)]
pub struct InferRequest {
    pub id: Option<String>,
    pub parameters: Map<String, Value>,
    pub inputs: Vec<WireTensor>,
    /// `None`: every output.
    pub outputs: Option<Vec<RequestedOutput>>,
    /// `binary_data_output`: every output as binary unless one says otherwise.
    pub binary_default: bool,
}

impl InferRequest {
    /// The input named `name`.
    pub fn input(&self, name: &str) -> Option<&WireTensor> {
        self.inputs.iter().find(|t| t.name == name)
    }

    /// The input named `name`, which must be present.
    pub fn required(&self, name: &str) -> Result<&WireTensor, ApiError> {
        self.input(name).ok_or_else(|| {
            let given: Vec<&str> = self.inputs.iter().map(|t| t.name.as_str()).collect();
            ApiError::bad_request(format!(
                "missing input `{name}` (given: {})",
                if given.is_empty() {
                    "none".to_owned()
                } else {
                    given.join(", ")
                }
            ))
        })
    }

    /// Whether output `name` goes back as binary data.
    pub fn wants_binary(&self, name: &str) -> bool {
        self.outputs
            .as_ref()
            .and_then(|outs| outs.iter().find(|o| o.name == name))
            .map_or(self.binary_default, |o| o.binary)
    }
}

/// Decodes a request body: all JSON, or (Triton's binary-data extension) a JSON header of
/// `header_len` bytes followed by the tensors' bytes in input order.
pub fn decode_request(body: &[u8], header_len: Option<usize>) -> Result<InferRequest, ApiError> {
    let (header, mut binary) = match header_len {
        Some(0) => {
            return Err(ApiError::bad_request(
                "a raw binary request (Inference-Header-Content-Length: 0) has no JSON header; it is decoded against the model's one input",
            ));
        }
        Some(n) if n > body.len() => {
            return Err(ApiError::bad_request(format!(
                "Inference-Header-Content-Length is {n} but the body has {} bytes",
                body.len()
            )));
        }
        Some(n) => (&body[..n], &body[n..]),
        None => (body, &body[body.len()..]),
    };
    let request: RequestJson = serde_json::from_slice(header)
        .map_err(|e| ApiError::bad_request(format!("malformed inference request: {e}")))?;
    let mut inputs = Vec::with_capacity(request.inputs.len());
    for input in request.inputs {
        let datatype = Datatype::parse(&input.datatype)
            .map_err(|e| ApiError::bad_request(format!("input `{}`: {e}", input.name)))?;
        let data = match input.parameters.get("binary_data_size") {
            Some(size) => {
                let size = size
                    .as_u64()
                    .and_then(|s| usize::try_from(s).ok())
                    .ok_or_else(|| {
                        ApiError::bad_request(format!(
                            "input `{}`: binary_data_size must be a non-negative integer",
                            input.name
                        ))
                    })?;
                if input.data.is_some() {
                    return Err(ApiError::bad_request(format!(
                        "input `{}` has both `data` and binary_data_size",
                        input.name
                    )));
                }
                if size > binary.len() {
                    return Err(ApiError::bad_request(format!(
                        "input `{}`: binary_data_size {size} exceeds the {} bytes left in the body",
                        input.name,
                        binary.len()
                    )));
                }
                let (bytes, rest) = binary.split_at(size);
                binary = rest;
                decode_binary(&input.name, datatype, bytes)?
            }
            None => {
                let data = input.data.as_ref().ok_or_else(|| {
                    ApiError::bad_request(format!("input `{}` has no `data`", input.name))
                })?;
                decode_json(&input.name, datatype, data)?
            }
        };
        inputs.push(WireTensor::checked(input.name, &input.shape, data)?);
    }
    if !binary.is_empty() {
        return Err(ApiError::bad_request(format!(
            "{} bytes of binary data follow the inputs unclaimed",
            binary.len()
        )));
    }
    let binary_default = flag(&request.parameters, "binary_data_output");
    let outputs = request.outputs.map(|outs| {
        outs.into_iter()
            .map(|o| RequestedOutput {
                binary: o
                    .parameters
                    .get("binary_data")
                    .and_then(Value::as_bool)
                    .unwrap_or(binary_default),
                name: o.name,
            })
            .collect()
    });
    Ok(InferRequest {
        id: request.id,
        parameters: request.parameters,
        inputs,
        outputs,
        binary_default,
    })
}

/// Decodes Triton's raw binary request (`Inference-Header-Content-Length: 0`): the whole body
/// is the data of the model's one input, `input`. A BYTES input gets the body as its one
/// element; any other type is laid out as binary data, its shape the input's with at most one
/// variable dimension deduced from the byte count.
pub(crate) fn decode_raw(input: &TensorMetadata, body: &[u8]) -> Result<InferRequest, ApiError> {
    let name = &input.name;
    let datatype = Datatype::parse(&input.datatype)
        .map_err(|e| ApiError::bad_request(format!("input `{name}`: {e}")))?;
    let (shape, data) = if datatype == Datatype::Bytes {
        (vec![1], TensorData::Bytes(vec![body.to_vec()]))
    } else {
        let data = decode_binary(name, datatype, body)?;
        (deduce_shape(input, data.len())?, data)
    };
    Ok(InferRequest {
        id: None,
        parameters: Map::new(),
        inputs: vec![WireTensor::checked(name.clone(), &shape, data)?],
        outputs: None,
        binary_default: false,
    })
}

/// `input`'s shape for `count` elements: its one variable dimension (if any) is what is left.
fn deduce_shape(input: &TensorMetadata, count: usize) -> Result<Vec<i64>, ApiError> {
    let (name, shape) = (&input.name, &input.shape);
    let fixed: i64 = shape.iter().filter(|&&d| d >= 0).product();
    let count = i64::try_from(count)
        .map_err(|_| ApiError::bad_request(format!("input `{name}`: too many elements")))?;
    let cannot = |why: &str| {
        ApiError::bad_request(format!(
            "a raw binary request gives {count} elements for input `{name}` of shape {shape:?}: {why}"
        ))
    };
    match shape.iter().filter(|&&d| d < 0).count() {
        0 if fixed == count => Ok(shape.clone()),
        0 => Err(cannot("the shape holds a different number")),
        1 if fixed > 0 && count % fixed == 0 => Ok(shape
            .iter()
            .map(|&d| if d < 0 { count / fixed } else { d })
            .collect()),
        1 => Err(cannot("they do not fill its fixed dimensions")),
        _ => Err(cannot(
            "more than one dimension is variable, so the shape cannot be deduced; send a JSON header",
        )),
    }
}

fn flag(parameters: &Map<String, Value>, name: &str) -> bool {
    parameters
        .get(name)
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

/// Flattens nested JSON arrays into their leaves, row-major.
fn leaves<'a>(value: &'a Value, out: &mut Vec<&'a Value>) {
    match value {
        Value::Array(items) => items.iter().for_each(|v| leaves(v, out)),
        other => out.push(other),
    }
}

fn decode_json(name: &str, datatype: Datatype, data: &Value) -> Result<TensorData, ApiError> {
    let mut flat = Vec::new();
    leaves(data, &mut flat);
    let bad = |i: usize, want: &str| {
        ApiError::bad_request(format!(
            "input `{name}`: element {i} is {}, not {want} as datatype {} needs",
            flat[i],
            datatype.as_str()
        ))
    };
    macro_rules! ints {
        ($t:ty, $variant:ident) => {{
            let mut v = Vec::with_capacity(flat.len());
            for (i, x) in flat.iter().enumerate() {
                let n = x
                    .as_i64()
                    .and_then(|n| <$t>::try_from(n).ok())
                    .ok_or_else(|| bad(i, concat!("an integer that fits ", stringify!($t))))?;
                v.push(n);
            }
            TensorData::$variant(v)
        }};
    }
    Ok(match datatype {
        Datatype::Bool => {
            let mut v = Vec::with_capacity(flat.len());
            for (i, x) in flat.iter().enumerate() {
                v.push(x.as_bool().ok_or_else(|| bad(i, "a boolean"))?);
            }
            TensorData::Bool(v)
        }
        Datatype::Uint8 => ints!(u8, U8),
        Datatype::Int32 => ints!(i32, I32),
        Datatype::Int64 => ints!(i64, I64),
        Datatype::Fp16 | Datatype::Fp32 => {
            let mut v = Vec::with_capacity(flat.len());
            for (i, x) in flat.iter().enumerate() {
                v.push(x.as_f64().ok_or_else(|| bad(i, "a number"))? as f32);
            }
            if datatype == Datatype::Fp16 {
                TensorData::F16(v.into_iter().map(f16::from_f32).collect())
            } else {
                TensorData::F32(v)
            }
        }
        Datatype::Bytes => {
            let mut v = Vec::with_capacity(flat.len());
            for (i, x) in flat.iter().enumerate() {
                v.push(
                    x.as_str()
                        .ok_or_else(|| bad(i, "a string"))?
                        .as_bytes()
                        .to_vec(),
                );
            }
            TensorData::Bytes(v)
        }
    })
}

pub(crate) fn decode_binary(
    name: &str,
    datatype: Datatype,
    bytes: &[u8],
) -> Result<TensorData, ApiError> {
    let width = match datatype {
        Datatype::Bool | Datatype::Uint8 => 1,
        Datatype::Fp16 => 2,
        Datatype::Int32 | Datatype::Fp32 => 4,
        Datatype::Int64 => 8,
        Datatype::Bytes => 0,
    };
    if width > 1 && !bytes.len().is_multiple_of(width) {
        return Err(ApiError::bad_request(format!(
            "input `{name}`: {} bytes of {} data is not a whole number of {width}-byte elements",
            bytes.len(),
            datatype.as_str()
        )));
    }
    macro_rules! le {
        ($t:ty, $n:expr) => {
            bytes
                .chunks_exact($n)
                .map(|c| {
                    let mut a = [0u8; $n];
                    a.copy_from_slice(c);
                    <$t>::from_le_bytes(a)
                })
                .collect()
        };
    }
    Ok(match datatype {
        Datatype::Bool => TensorData::Bool(bytes.iter().map(|&b| b != 0).collect()),
        Datatype::Uint8 => TensorData::U8(bytes.to_vec()),
        Datatype::Int32 => TensorData::I32(le!(i32, 4)),
        Datatype::Int64 => TensorData::I64(le!(i64, 8)),
        Datatype::Fp16 => {
            let bits: Vec<u16> = le!(u16, 2);
            TensorData::F16(bits.into_iter().map(f16::from_bits).collect())
        }
        Datatype::Fp32 => TensorData::F32(le!(f32, 4)),
        Datatype::Bytes => {
            // Each element: a 4-byte little-endian length, then that many bytes.
            let mut items = Vec::new();
            let mut rest = bytes;
            while !rest.is_empty() {
                if rest.len() < 4 {
                    return Err(ApiError::bad_request(format!(
                        "input `{name}`: BYTES data ends inside an element's length prefix"
                    )));
                }
                let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
                rest = &rest[4..];
                if len > rest.len() {
                    return Err(ApiError::bad_request(format!(
                        "input `{name}`: a BYTES element claims {len} bytes but {} are left",
                        rest.len()
                    )));
                }
                items.push(rest[..len].to_vec());
                rest = &rest[len..];
            }
            TensorData::Bytes(items)
        }
    })
}

/// The little-endian bytes of a tensor, as the binary-data extension and gRPC's raw contents
/// carry them.
pub(crate) fn encode_binary(data: &TensorData) -> Vec<u8> {
    match data {
        TensorData::Bool(v) => v.iter().map(|&b| u8::from(b)).collect(),
        TensorData::U8(v) => v.clone(),
        TensorData::I32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        TensorData::I64(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        TensorData::F16(v) => v.iter().flat_map(|x| x.to_bits().to_le_bytes()).collect(),
        TensorData::F32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        TensorData::Bytes(v) => {
            let mut out = Vec::new();
            for item in v {
                out.extend_from_slice(&(item.len() as u32).to_le_bytes());
                out.extend_from_slice(item);
            }
            out
        }
    }
}

fn json_data(data: &TensorData) -> Value {
    match data {
        TensorData::Bool(v) => json!(v),
        TensorData::U8(v) => json!(v),
        TensorData::I32(v) => json!(v),
        TensorData::I64(v) => json!(v),
        TensorData::F16(v) => json!(v.iter().map(|x| x.to_f32()).collect::<Vec<_>>()),
        TensorData::F32(v) => json!(v),
        TensorData::Bytes(v) => json!(
            v.iter()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .collect::<Vec<_>>()
        ),
    }
}

/// An encoded response: the body and, when binary data follows the JSON, the JSON's length
/// (the `Inference-Header-Content-Length` header).
#[derive(Debug)]
pub(crate) struct EncodedResponse {
    pub body: Vec<u8>,
    pub header_len: Option<usize>,
}

/// Encodes a response, each output as JSON data or binary data as the request asked.
pub(crate) fn encode_response(
    model_name: &str,
    model_version: &str,
    request: &InferRequest,
    outputs: &[WireTensor],
) -> EncodedResponse {
    let mut binary = Vec::new();
    let mut any_binary = false;
    let mut described = Vec::with_capacity(outputs.len());
    for output in outputs {
        let mut entry = json!({
            "name": output.name,
            "datatype": output.data.datatype().as_str(),
            "shape": output.shape,
        });
        if request.wants_binary(&output.name) {
            let bytes = encode_binary(&output.data);
            any_binary = true;
            entry["parameters"] = json!({ "binary_data_size": bytes.len() });
            binary.extend_from_slice(&bytes);
        } else {
            entry["data"] = json_data(&output.data);
        }
        described.push(entry);
    }
    let mut header = json!({
        "model_name": model_name,
        "model_version": model_version,
        "outputs": described,
    });
    if let Some(id) = &request.id {
        header["id"] = json!(id);
    }
    let mut body = serde_json::to_vec(&header).unwrap_or_default();
    if !any_binary {
        return EncodedResponse {
            body,
            header_len: None,
        };
    }
    let header_len = body.len();
    body.extend_from_slice(&binary);
    EncodedResponse {
        body,
        header_len: Some(header_len),
    }
}

#[cfg(test)]
mod tests;
