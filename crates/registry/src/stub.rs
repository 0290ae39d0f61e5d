//! Minimal ONNX-looking files for tests and fixtures: only `ir_version` and `opset_import`.
//!
//! Enough for the compatibility check, which reads just those two fields; ONNX Runtime would
//! refuse such a file (it has no graph), which is the point: it can be stamped with any IR
//! or opset, including ones no exporter writes.

/// Protobuf bytes of a `ModelProto` with `ir_version` (field 1) and one `opset_import`
/// (field 8: domain = field 1, version = field 2) per `(domain, version)`.
pub fn onnx_stub(ir_version: i64, opset_imports: &[(&str, i64)]) -> Vec<u8> {
    fn varint(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }
    let mut out = Vec::new();
    varint(&mut out, 1 << 3);
    varint(&mut out, ir_version as u64);
    for (domain, version) in opset_imports {
        let mut msg = Vec::new();
        varint(&mut msg, (1 << 3) | 2);
        varint(&mut msg, domain.len() as u64);
        msg.extend_from_slice(domain.as_bytes());
        varint(&mut msg, 2 << 3);
        varint(&mut msg, *version as u64);
        varint(&mut out, (8 << 3) | 2);
        varint(&mut out, msg.len() as u64);
        out.extend_from_slice(&msg);
    }
    out
}
