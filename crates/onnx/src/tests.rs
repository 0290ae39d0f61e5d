//! Header decoding on hand-encoded models, and robustness on arbitrary bytes.

use std::io::Cursor;

use proptest::prelude::*;

use super::*;

fn varint(mut v: u64, out: &mut Vec<u8>) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

fn bytes_field(number: u32, payload: &[u8], out: &mut Vec<u8>) {
    varint(u64::from(number) << 3 | 2, out);
    varint(payload.len() as u64, out);
    out.extend_from_slice(payload);
}

fn varint_field(number: u32, value: u64, out: &mut Vec<u8>) {
    varint(u64::from(number) << 3, out);
    varint(value, out);
}

fn model(ir: u64, opset: u64) -> Vec<u8> {
    let mut m = Vec::new();
    varint_field(1, ir, &mut m);
    bytes_field(2, b"modelmux-test", &mut m);
    let mut op = Vec::new();
    bytes_field(1, b"", &mut op);
    varint_field(2, opset, &mut op);
    bytes_field(8, &op, &mut m);
    // One float initializer of shape [3, 4] with raw data, one external fp16 of shape [10].
    let mut t1 = Vec::new();
    let mut dims = Vec::new();
    varint(3, &mut dims);
    varint(4, &mut dims);
    bytes_field(1, &dims, &mut t1);
    varint_field(2, 1, &mut t1);
    bytes_field(9, &[0u8; 48], &mut t1);
    let mut t2 = Vec::new();
    varint_field(1, 10, &mut t2);
    varint_field(2, 10, &mut t2);
    varint_field(14, 1, &mut t2);
    let mut graph = Vec::new();
    bytes_field(1, b"node-bytes-skipped", &mut graph);
    bytes_field(5, &t1, &mut graph);
    bytes_field(5, &t2, &mut graph);
    bytes_field(7, &graph, &mut m);
    let mut kv = Vec::new();
    bytes_field(1, b"family", &mut kv);
    bytes_field(2, b"bert", &mut kv);
    bytes_field(14, &kv, &mut m);
    m
}

#[test]
fn decodes_declared_fields() {
    let bytes = model(8, 18);
    let header = read_header_from(Cursor::new(&bytes), bytes.len() as u64).expect("valid model");
    assert_eq!(header.ir_version, 8);
    assert_eq!(header.default_opset(), Some(18));
    assert_eq!(header.producer_name, "modelmux-test");
    assert_eq!(header.initializer_count, 2);
    assert_eq!(header.initializer_bytes, 3 * 4 * 4 + 10 * 2);
    assert!(header.uses_external_data);
    assert_eq!(header.metadata, vec![("family".into(), "bert".into())]);
}

#[test]
fn truncated_model_is_an_error_with_offset() {
    let bytes = model(14, 26);
    let cut = &bytes[..bytes.len() - 5];
    let err = read_header_from(Cursor::new(cut), cut.len() as u64).expect_err("truncated");
    assert!(
        err.reason.contains("past the end") || err.reason.contains("truncated"),
        "{err}"
    );
}

#[test]
fn missing_file_names_the_path() {
    let err = read_header(Path::new("/nonexistent/model.onnx")).expect_err("missing");
    assert!(err.to_string().contains("/nonexistent/model.onnx"), "{err}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]
    #[test]
    fn never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = read_header_from(Cursor::new(&bytes), bytes.len() as u64);
    }

    #[test]
    fn never_panics_on_corrupted_models(flip in 0usize..200, value in any::<u8>()) {
        let mut bytes = model(8, 18);
        let i = flip % bytes.len();
        bytes[i] = value;
        let _ = read_header_from(Cursor::new(&bytes), bytes.len() as u64);
    }
}
