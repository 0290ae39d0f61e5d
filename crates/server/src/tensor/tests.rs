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
