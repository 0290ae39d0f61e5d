//! A minimal protobuf wire-format reader over a seekable source, bounded by message ends.

use std::io::{Read, Seek, SeekFrom};

use crate::ReadError;

/// Strings longer than this are not names or metadata; refusing them bounds memory use.
const MAX_STRING: u64 = 1 << 20;

/// One decoded field tag with its scalar value, or the length of its payload.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Field {
    Varint(u32, u64),
    Fixed64,
    Fixed32,
    /// A length-delimited payload of `n` bytes, positioned at its start.
    Bytes(u32, u64),
}

pub(crate) struct WireReader<R> {
    inner: R,
    pos: u64,
    len: u64,
}

impl<R: Read + Seek> WireReader<R> {
    pub(crate) fn new(inner: R, len: u64) -> Self {
        Self { inner, pos: 0, len }
    }

    pub(crate) fn position(&self) -> u64 {
        self.pos
    }

    fn error(&self, reason: impl Into<String>) -> ReadError {
        ReadError {
            offset: self.pos,
            reason: reason.into(),
        }
    }

    fn read_byte(&mut self) -> Result<u8, ReadError> {
        let mut b = [0u8; 1];
        self.inner
            .read_exact(&mut b)
            .map_err(|e| self.error(format!("truncated: {e}")))?;
        self.pos += 1;
        Ok(b[0])
    }

    pub(crate) fn read_varint(&mut self) -> Result<u64, ReadError> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.read_byte()?;
            value |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(self.error("varint longer than 10 bytes"))
    }

    /// The next field before `end`, or `None` when the message ends there.
    pub(crate) fn next_field(&mut self, end: u64) -> Result<Option<Field>, ReadError> {
        if self.pos >= end {
            return Ok(None);
        }
        let key = self.read_varint()?;
        let number = u32::try_from(key >> 3).map_err(|_| self.error("field number too large"))?;
        let field = match key & 7 {
            0 => Field::Varint(number, self.read_varint()?),
            1 => Field::Fixed64,
            2 => {
                let n = self.read_varint()?;
                let stop = self.pos.checked_add(n).filter(|&s| s <= end.min(self.len));
                if stop.is_none() {
                    return Err(self.error(format!(
                        "field {number} claims {n} bytes, past the end of its message"
                    )));
                }
                Field::Bytes(number, n)
            }
            5 => Field::Fixed32,
            wire_type => {
                return Err(self.error(format!(
                    "field {number} has unsupported wire type {wire_type}"
                )));
            }
        };
        Ok(Some(field))
    }

    /// Moves past a field's payload without reading it.
    pub(crate) fn skip(&mut self, field: Field) -> Result<(), ReadError> {
        let n = match field {
            Field::Varint(..) => return Ok(()),
            Field::Fixed64 => 8,
            Field::Fixed32 => 4,
            Field::Bytes(_, n) => n,
        };
        let target = self.pos.saturating_add(n);
        if target > self.len {
            return Err(self.error("truncated field"));
        }
        let offset = i64::try_from(n).map_err(|_| self.error("field too long"))?;
        self.inner
            .seek(SeekFrom::Current(offset))
            .map_err(|e| self.error(format!("seek failed: {e}")))?;
        self.pos = target;
        Ok(())
    }

    pub(crate) fn read_string(&mut self, n: u64) -> Result<String, ReadError> {
        if n > MAX_STRING {
            return Err(self.error(format!("string of {n} bytes is too long")));
        }
        let mut buf = vec![0u8; n as usize];
        self.inner
            .read_exact(&mut buf)
            .map_err(|e| self.error(format!("truncated: {e}")))?;
        self.pos += n;
        String::from_utf8(buf).map_err(|_| self.error("string is not UTF-8"))
    }
}
