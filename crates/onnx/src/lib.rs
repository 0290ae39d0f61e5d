//! Reads what an ONNX file declares — IR version, opset imports, producer, metadata and the
//! bytes its weights take — without ONNX Runtime and without reading the weights themselves.
//!
//! The registry uses it to check compatibility before anything is loaded, the runtime to refuse
//! a model that ONNX Runtime cannot run with a typed error, and the estimator to size a model
//! from its initializers. An ONNX file is a protobuf `ModelProto`; only the handful of fields
//! named below are decoded, everything else (including multi-gigabyte `raw_data` payloads) is
//! skipped by seeking, so reading the header of a 2 GB UNet costs a few kilobytes of I/O.

mod limits;
mod wire;

pub use crate::limits::{OnnxLimits, limits_for_runtime};

use std::fs::File;
use std::io::{BufReader, Read, Seek};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::wire::{Field, WireReader};

/// What an ONNX file declares about itself.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct OnnxHeader {
    /// `ModelProto.ir_version`.
    pub ir_version: i64,
    /// `ModelProto.opset_import`: (domain, version); the default ONNX domain is `""`.
    pub opset_imports: Vec<OpsetImport>,
    pub producer_name: String,
    pub producer_version: String,
    /// `ModelProto.metadata_props`, in file order.
    pub metadata: Vec<(String, String)>,
    /// Number of graph initializers (weights).
    pub initializer_count: u64,
    /// Bytes the initializers take once decoded: element count × element size, whether the data
    /// is stored inline or in external files.
    pub initializer_bytes: u64,
    /// Whether any initializer keeps its data in an external file.
    pub uses_external_data: bool,
}

/// One entry of `opset_import`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OpsetImport {
    pub domain: String,
    pub version: i64,
}

impl OnnxHeader {
    /// The opset of the default ONNX domain (`""` or `"ai.onnx"`), if the model imports it.
    pub fn default_opset(&self) -> Option<i64> {
        self.opset_imports
            .iter()
            .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
            .map(|o| o.version)
    }
}

/// Why an ONNX file could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OnnxError {
    #[error("cannot read ONNX file {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a valid ONNX model: {reason} (at byte {offset})")]
    Malformed {
        path: PathBuf,
        offset: u64,
        reason: String,
    },
}

/// Reads the header of the ONNX file at `path`.
pub fn read_header(path: &Path) -> Result<OnnxHeader, OnnxError> {
    let file = File::open(path).map_err(|source| OnnxError::Io {
        path: path.to_owned(),
        source,
    })?;
    let len = file
        .metadata()
        .map_err(|source| OnnxError::Io {
            path: path.to_owned(),
            source,
        })?
        .len();
    read_header_from(BufReader::new(file), len).map_err(|e| e.at(path))
}

/// Reads a header from any seekable byte source of `len` bytes.
pub fn read_header_from<R: Read + Seek>(reader: R, len: u64) -> Result<OnnxHeader, ReadError> {
    let mut wire = WireReader::new(reader, len);
    let mut header = OnnxHeader::default();
    while let Some(field) = wire.next_field(len)? {
        match field {
            Field::Varint(1, v) => header.ir_version = v as i64,
            Field::Bytes(2, n) => header.producer_name = wire.read_string(n)?,
            Field::Bytes(3, n) => header.producer_version = wire.read_string(n)?,
            Field::Bytes(7, n) => {
                let end = wire.position() + n;
                read_graph(&mut wire, end, &mut header)?;
            }
            Field::Bytes(8, n) => {
                let end = wire.position() + n;
                header.opset_imports.push(read_opset(&mut wire, end)?);
            }
            Field::Bytes(14, n) => {
                let end = wire.position() + n;
                header.metadata.push(read_string_pair(&mut wire, end)?);
            }
            other => wire.skip(other)?,
        }
    }
    Ok(header)
}

/// A decoding failure, before the file's path is attached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadError {
    pub offset: u64,
    pub reason: String,
}

impl ReadError {
    fn at(self, path: &Path) -> OnnxError {
        OnnxError::Malformed {
            path: path.to_owned(),
            offset: self.offset,
            reason: self.reason,
        }
    }
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (at byte {})", self.reason, self.offset)
    }
}

impl std::error::Error for ReadError {}

fn read_graph<R: Read + Seek>(
    wire: &mut WireReader<R>,
    end: u64,
    header: &mut OnnxHeader,
) -> Result<(), ReadError> {
    while let Some(field) = wire.next_field(end)? {
        match field {
            // GraphProto.initializer and GraphProto.sparse_initializer hold the weights.
            Field::Bytes(5, n) => {
                let tensor_end = wire.position() + n;
                let tensor = read_tensor(wire, tensor_end)?;
                header.initializer_count += 1;
                header.initializer_bytes = header.initializer_bytes.saturating_add(tensor.bytes);
                header.uses_external_data |= tensor.external;
            }
            other => wire.skip(other)?,
        }
    }
    Ok(())
}

struct TensorSummary {
    bytes: u64,
    external: bool,
}

fn read_tensor<R: Read + Seek>(
    wire: &mut WireReader<R>,
    end: u64,
) -> Result<TensorSummary, ReadError> {
    let mut elements: u64 = 1;
    let mut data_type = 0u64;
    let mut external = false;
    while let Some(field) = wire.next_field(end)? {
        match field {
            // `dims` is a repeated int64, packed or not.
            Field::Varint(1, d) => elements = elements.saturating_mul(d),
            Field::Bytes(1, n) => {
                let packed_end = wire.position() + n;
                while wire.position() < packed_end {
                    elements = elements.saturating_mul(wire.read_varint()?);
                }
            }
            Field::Varint(2, t) => data_type = t,
            // TensorProto.data_location == EXTERNAL.
            Field::Varint(14, 1) => external = true,
            other => wire.skip(other)?,
        }
    }
    Ok(TensorSummary {
        bytes: elements.saturating_mul(element_size(data_type)),
        external,
    })
}

/// Bytes per element of `TensorProto.DataType`; sub-byte types count as one byte (an upper bound).
fn element_size(data_type: u64) -> u64 {
    match data_type {
        1 | 6 | 12 => 4,       // FLOAT, INT32, UINT32
        7 | 11 | 13 | 14 => 8, // INT64, DOUBLE, UINT64, COMPLEX64
        15 => 16,              // COMPLEX128
        5 | 4 | 10 | 16 => 2,  // INT16, UINT16, FLOAT16, BFLOAT16
        _ => 1,                // BOOL, (U)INT8, FLOAT8*, (U)INT4, FLOAT4, STRING
    }
}

fn read_opset<R: Read + Seek>(
    wire: &mut WireReader<R>,
    end: u64,
) -> Result<OpsetImport, ReadError> {
    let mut opset = OpsetImport {
        domain: String::new(),
        version: 0,
    };
    while let Some(field) = wire.next_field(end)? {
        match field {
            Field::Bytes(1, n) => opset.domain = wire.read_string(n)?,
            Field::Varint(2, v) => opset.version = v as i64,
            other => wire.skip(other)?,
        }
    }
    Ok(opset)
}

fn read_string_pair<R: Read + Seek>(
    wire: &mut WireReader<R>,
    end: u64,
) -> Result<(String, String), ReadError> {
    let (mut key, mut value) = (String::new(), String::new());
    while let Some(field) = wire.next_field(end)? {
        match field {
            Field::Bytes(1, n) => key = wire.read_string(n)?,
            Field::Bytes(2, n) => value = wire.read_string(n)?,
            other => wire.skip(other)?,
        }
    }
    Ok((key, value))
}

#[cfg(test)]
mod tests;
