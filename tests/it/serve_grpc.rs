//! The gRPC side of `modelmux serve`: Open Inference Protocol GRPCInferenceService, driven by
//! `tritonclient[grpc]` and compared with in-process results.
//!
//! Two servers run in-process, each with HTTP and gRPC on ephemeral 127.0.0.1 ports: the tiny
//! catalog under external control with a bearer token, and a catalog whose one model is the
//! `add` fixture served tensor for tensor. `xtask/python/serve_clients_grpc.py`, in the pinned
//! environment `cargo xtask serve-clients` makes, drives both and prints what it saw.

use modelmux_server::{ControlMode, ServerOptions, Tokens};
use modelmux_tests::fixture;
use serde_json::json;

use crate::serve::{
    Running, TEXTS, add_catalog, f32s, in_process_embeddings, in_process_sum, manager,
    run_client_script, tiny_catalog_path,
};

const TOKEN: &str = "grpc-test-token";

#[test]
fn tritonclient_grpc_sees_the_in_process_results() {
    let tiny = Running::with_grpc(
        manager(&tiny_catalog_path(), &fixture("tiny/exports")),
        ServerOptions {
            control: ControlMode::External,
            tokens: Tokens::new([TOKEN]),
            ..ServerOptions::default()
        },
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let (catalog, exports) = add_catalog(dir.path());
    let add = Running::with_grpc(manager(&catalog, &exports), ServerOptions::default());
    let tiny_grpc = tiny.grpc.as_deref().expect("gRPC runs");
    let add_grpc = add.grpc.as_deref().expect("gRPC runs");
    let seen = run_client_script("serve_clients_grpc.py", &[tiny_grpc, TOKEN, add_grpc]);

    assert_eq!(seen["live"], true);
    assert_eq!(seen["ready"], true);
    for case in ["no_token", "wrong_token"] {
        assert_eq!(seen[case]["status"], "StatusCode.UNAUTHENTICATED", "{case}");
    }
    // The server metadata is the HTTP side's.
    let http = tiny.client().with_token(TOKEN).get("/v2").ok();
    assert_eq!(seen["server_metadata"]["name"], http["name"]);
    assert_eq!(seen["server_metadata"]["version"], http["version"]);
    assert_eq!(seen["server_metadata"]["extensions"], http["extensions"]);

    // The repository extension under external control: nothing loads until asked.
    assert_eq!(seen["state_before_load"], "UNAVAILABLE");
    assert_eq!(seen["infer_before_load"]["status"], "StatusCode.NOT_FOUND");
    assert_eq!(seen["state_after_load"], "READY");
    assert_eq!(seen["model_ready"], true);
    assert_eq!(seen["state_after_unload"], "UNAVAILABLE");
    assert_eq!(seen["infer_after_unload"]["status"], "StatusCode.NOT_FOUND");

    // Metadata and configuration say what the HTTP side says.
    assert_eq!(
        seen["model_metadata"],
        json!({
            "name": "tiny-bert",
            "versions": ["0.1.0"],
            "platform": "modelmux_text-encoder",
            "inputs": [{ "name": "text", "datatype": "BYTES", "shape": [-1] }],
            "outputs": [{ "name": "embedding", "datatype": "FP32", "shape": [-1, 32] }],
        })
    );
    assert_eq!(
        seen["model_config"],
        json!({
            "name": "tiny-bert",
            "platform": "modelmux_text-encoder",
            "backend": "modelmux",
            "max_batch_size": 0,
            "input": [{ "name": "text", "data_type": "TYPE_STRING", "dims": [-1] }],
            "output": [{ "name": "embedding", "data_type": "TYPE_FP32", "dims": [-1, 32] }],
        })
    );

    // BYTES texts in, FP32 embeddings out: the in-process numbers exactly.
    let expected = in_process_embeddings(&TEXTS);
    let flat: Vec<f32> = expected.iter().flatten().copied().collect();
    assert_eq!(seen["infer"]["shape"], json!([3, 32]));
    assert_eq!(seen["infer"]["dtype"], "float32");
    assert_eq!(f32s(&seen["infer"]["data"]), flat);

    assert_eq!(seen["unknown_model"]["status"], "StatusCode.NOT_FOUND");
    assert!(
        seen["unknown_model"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("no-such-model")),
        "{}",
        seen["unknown_model"]
    );
    assert_eq!(
        seen["wrong_datatype"]["status"],
        "StatusCode.INVALID_ARGUMENT"
    );
    assert!(
        seen["wrong_datatype"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("`text`") && m.contains("BYTES")),
        "{}",
        seen["wrong_datatype"]
    );

    // Statistics: the three texts of the one successful request (the failures are not counted
    // as inferences), and the ledger's measured bytes.
    let stats = &seen["statistics"];
    assert_eq!(stats["name"], "tiny-bert");
    assert_eq!(stats["version"], "0.1.0");
    assert_eq!(stats["inference_count"], 3);
    assert_eq!(stats["execution_count"], 1);
    assert_eq!(stats["success_count"], 1);
    assert_eq!(stats["memory_usage"][0]["type"], "CPU");
    assert!(
        stats["memory_usage"][0]["byte_size"]
            .as_u64()
            .is_some_and(|b| b > 0),
        "{stats}"
    );

    // A raw ONNX model, tensor for tensor.
    let tensor = |name: &str| json!({ "name": name, "datatype": "FP32", "shape": [-1, 4] });
    assert_eq!(seen["add_metadata"]["platform"], "onnx_onnxv1");
    assert_eq!(
        seen["add_metadata"]["inputs"],
        json!([tensor("x"), tensor("y")])
    );
    assert_eq!(seen["add_metadata"]["outputs"], json!([tensor("sum")]));
    assert_eq!(seen["add_config"]["backend"], "onnxruntime");
    assert_eq!(
        seen["add_config"]["input"][0],
        json!({ "name": "x", "data_type": "TYPE_FP32", "dims": [-1, 4] })
    );
    let x: Vec<f32> = (0..8).map(|i| i as f32 * 0.5).collect();
    let y: Vec<f32> = (0..8).map(|i| 1.0 - i as f32).collect();
    assert_eq!(seen["add_infer"]["shape"], json!([2, 4]));
    assert_eq!(f32s(&seen["add_infer"]["data"]), in_process_sum(x, y));
    assert_eq!(
        seen["add_wrong_type"]["status"],
        "StatusCode.INVALID_ARGUMENT"
    );
    assert!(
        seen["add_wrong_type"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("`x`")),
        "{}",
        seen["add_wrong_type"]
    );
}
