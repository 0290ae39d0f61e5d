//! Decoding and encoding OIP tensors: JSON (nested and flat), binary data, and the 400s.

use super::*;

#[test]
fn nested_and_flat_json_decode_to_the_same_tensor() {
    let nested =
        br#"{"inputs":[{"name":"x","shape":[2,2],"datatype":"FP32","data":[[1,2],[3,4]]}]}"#;
    let flat = br#"{"inputs":[{"name":"x","shape":[2,2],"datatype":"FP32","data":[1,2,3,4]}]}"#;
    let a = decode_request(nested, None).unwrap();
    let b = decode_request(flat, None).unwrap();
    assert_eq!(a.inputs, b.inputs);
    assert_eq!(a.inputs[0].data, TensorData::F32(vec![1.0, 2.0, 3.0, 4.0]));
}

#[test]
fn a_count_that_does_not_match_the_shape_is_a_400_naming_the_input() {
    let body = br#"{"inputs":[{"name":"x","shape":[3],"datatype":"INT64","data":[1,2]}]}"#;
    let e = decode_request(body, None).unwrap_err();
    assert_eq!(e.status, axum::http::StatusCode::BAD_REQUEST);
    assert!(
        e.message.contains("`x`") && e.message.contains("3 elements"),
        "{}",
        e.message
    );
}

#[test]
fn wrong_element_kinds_and_datatypes_are_400s() {
    let body = br#"{"inputs":[{"name":"x","shape":[1],"datatype":"INT32","data":["a"]}]}"#;
    assert!(
        decode_request(body, None)
            .unwrap_err()
            .message
            .contains("element 0")
    );
    let body = br#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP64","data":[1]}]}"#;
    assert!(
        decode_request(body, None)
            .unwrap_err()
            .message
            .contains("FP64")
    );
    let body = br#"{"inputs":[{"name":"x","shape":[-1],"datatype":"FP32","data":[1]}]}"#;
    assert!(
        decode_request(body, None)
            .unwrap_err()
            .message
            .contains("negative")
    );
    assert!(
        decode_request(b"{not json", None)
            .unwrap_err()
            .message
            .contains("malformed")
    );
}

#[test]
fn binary_inputs_and_outputs_round_trip() {
    let header = br#"{"inputs":[{"name":"t","shape":[2],"datatype":"BYTES","parameters":{"binary_data_size":13}},{"name":"x","shape":[2],"datatype":"FP32","parameters":{"binary_data_size":8}}],"outputs":[{"name":"y","parameters":{"binary_data":true}}]}"#;
    let mut body = header.to_vec();
    for s in ["hello", ""] {
        body.extend_from_slice(&(s.len() as u32).to_le_bytes());
        body.extend_from_slice(s.as_bytes());
    }
    body.extend_from_slice(&[0; 1]);
    // 5 + 4 + 0 + 4 = 13 bytes of BYTES, then 8 bytes of FP32: one stray byte makes it 14.
    body.pop();
    body.extend_from_slice(&1.5f32.to_le_bytes());
    body.extend_from_slice(&(-2.0f32).to_le_bytes());
    let request = decode_request(&body, Some(header.len())).unwrap();
    assert_eq!(
        request.inputs[0].texts().unwrap(),
        vec!["hello".to_owned(), String::new()]
    );
    assert_eq!(request.inputs[1].data, TensorData::F32(vec![1.5, -2.0]));
    let out = WireTensor::new("y", vec![2], TensorData::F32(vec![1.5, -2.0]));
    let encoded = encode_response("m", "1", &request, &[out]);
    let n = encoded.header_len.expect("binary output");
    let json: Value = serde_json::from_slice(&encoded.body[..n]).unwrap();
    assert_eq!(json["outputs"][0]["parameters"]["binary_data_size"], 8);
    assert_eq!(&encoded.body[n..n + 4], &1.5f32.to_le_bytes());
}

#[test]
fn truncated_binary_data_is_a_400() {
    let header = br#"{"inputs":[{"name":"x","shape":[2],"datatype":"FP32","parameters":{"binary_data_size":8}}]}"#;
    let mut body = header.to_vec();
    body.extend_from_slice(&[0; 4]);
    assert!(
        decode_request(&body, Some(header.len()))
            .unwrap_err()
            .message
            .contains("exceeds")
    );
    assert!(decode_request(&body, Some(body.len() + 1)).is_err());
}

#[test]
fn the_request_id_is_echoed() {
    let body = br#"{"id":"r-7","inputs":[]}"#;
    let request = decode_request(body, None).unwrap();
    let encoded = encode_response("m", "1", &request, &[]);
    let json: Value = serde_json::from_slice(&encoded.body).unwrap();
    assert_eq!(json["id"], "r-7");
    assert_eq!(json["model_name"], "m");
}

#[test]
fn a_clients_model_name_and_version_in_the_body_are_accepted() {
    let body = br#"{"model_name":"m","model_version":"1","inputs":[{"name":"x","shape":[1],"datatype":"INT64","data":[7]}]}"#;
    let request = decode_request(body, None).unwrap();
    assert_eq!(request.inputs[0].data, TensorData::I64(vec![7]));
}

fn input(name: &str, datatype: &str, shape: &[i64]) -> TensorMetadata {
    TensorMetadata {
        name: name.to_owned(),
        datatype: datatype.to_owned(),
        shape: shape.to_vec(),
    }
}

#[test]
fn a_raw_binary_body_fills_the_one_variable_dimension() {
    let body: Vec<u8> = (0..6i32).flat_map(|v| v.to_le_bytes()).collect();
    let request = decode_raw(&input("x", "INT32", &[-1, 3]), &body).unwrap();
    assert_eq!(request.inputs[0].shape, vec![2, 3]);
    assert_eq!(request.inputs[0].data, TensorData::I32((0..6).collect()));
    let request = decode_raw(&input("x", "INT32", &[2, 3]), &body).unwrap();
    assert_eq!(request.inputs[0].shape, vec![2, 3]);
    // A BYTES input takes the body as its one element.
    let request = decode_raw(&input("text", "BYTES", &[-1]), b"a cat").unwrap();
    assert_eq!(request.inputs[0].shape, vec![1]);
    assert_eq!(
        request.inputs[0].data,
        TensorData::Bytes(vec![b"a cat".to_vec()])
    );
}

#[test]
fn a_raw_binary_body_that_cannot_fill_the_shape_is_a_400_saying_why() {
    let body: Vec<u8> = (0..5i32).flat_map(|v| v.to_le_bytes()).collect();
    for (shape, why) in [
        (&[-1, 3][..], "fixed dimensions"),
        (&[2, 3][..], "different number"),
        (&[-1, -1][..], "more than one dimension is variable"),
    ] {
        let e = decode_raw(&input("x", "INT32", shape), &body).unwrap_err();
        assert_eq!(e.status, axum::http::StatusCode::BAD_REQUEST);
        assert!(
            e.message.contains("`x`") && e.message.contains(why),
            "{shape:?}: {}",
            e.message
        );
    }
    let e = decode_raw(&input("x", "FP32", &[-1]), &[0, 0, 0]).unwrap_err();
    assert!(e.message.contains("4-byte"), "{}", e.message);
}
