//! The gRPC side of `modelmux serve`: Open Inference Protocol GRPCInferenceService, driven by
//! `tritonclient[grpc]` and compared with in-process results.
//!
//! Two servers run in-process, each with HTTP and gRPC on ephemeral 127.0.0.1 ports: the tiny
//! catalog under external control with a bearer token, and a catalog whose one model is the
//! `add` fixture served tensor for tensor. `xtask/python/serve_clients_grpc.py`, in the pinned
//! environment `cargo xtask serve-clients` makes, drives both and prints what it saw.
//!
//! The generated tonic client (`modelmux_server::grpc::proto`) covers what tritonclient does not
//! send: typed `contents`, an oversize message, the concurrency limit shared with HTTP, and a
//! shutdown with a call in flight; and ModelMesh's runtime interface (`mmesh.ModelRuntime`) on
//! the same port.

use modelmux_server::grpc::proto::{
    self, grpc_inference_service_client::GrpcInferenceServiceClient,
};
use modelmux_server::grpc::tonic;
use modelmux_server::modelmesh::proto as mmesh;
use modelmux_server::modelmesh::proto::model_runtime_client::ModelRuntimeClient;
use modelmux_server::{ControlMode, ServerOptions, Tokens};
use modelmux_tests::fixture;
use serde_json::json;

use crate::serve::{
    Running, TEXTS, add_catalog, f32s, in_process_embeddings, in_process_sum, manager,
    run_client_script, tiny_catalog_path, wait_until_leased,
};

use proto::model_infer_request::InferInputTensor;

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

/// A BYTES input carried as typed `bytes_contents`.
fn bytes_input(name: &str, items: &[&[u8]]) -> InferInputTensor {
    InferInputTensor {
        name: name.to_owned(),
        datatype: "BYTES".to_owned(),
        shape: vec![items.len() as i64],
        contents: Some(proto::InferTensorContents {
            bytes_contents: items.iter().map(|t| t.to_vec()).collect(),
            ..proto::InferTensorContents::default()
        }),
        ..InferInputTensor::default()
    }
}

fn infer_request(model: &str, inputs: Vec<InferInputTensor>) -> proto::ModelInferRequest {
    proto::ModelInferRequest {
        model_name: model.to_owned(),
        inputs,
        ..proto::ModelInferRequest::default()
    }
}

/// The gRPC status of a call that must fail.
fn failure<T: std::fmt::Debug>(result: Result<tonic::Response<T>, tonic::Status>) -> tonic::Status {
    result.expect_err("the call fails")
}

/// The little-endian FP32 elements of a raw output.
fn raw_f32s(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

#[test]
fn typed_contents_limits_and_shutdown_over_grpc() {
    let mut server = Running::with_grpc(
        manager(&tiny_catalog_path(), &fixture("tiny/exports")),
        ServerOptions {
            max_concurrency: 1,
            max_body_bytes: 64 * 1024,
            ..ServerOptions::default()
        },
    );
    let address = format!("http://{}", server.grpc.as_deref().expect("gRPC runs"));
    let rt = tokio::runtime::Runtime::new().expect("a runtime");
    let mut client = rt
        .block_on(GrpcInferenceServiceClient::connect(address.clone()))
        .expect("connects");

    // BYTES as typed contents; the embeddings come back as raw contents, equal to in-process.
    let texts: Vec<&[u8]> = TEXTS.iter().map(|t| t.as_bytes()).collect();
    let mut request = infer_request("tiny-bert", vec![bytes_input("text", &texts)]);
    request.id = "typed-1".to_owned();
    let answer = rt
        .block_on(client.model_infer(request))
        .expect("infer")
        .into_inner();
    assert_eq!(answer.id, "typed-1");
    assert_eq!(answer.model_name, "tiny-bert");
    assert_eq!(answer.outputs[0].name, "embedding");
    assert_eq!(answer.outputs[0].datatype, "FP32");
    assert_eq!(answer.outputs[0].shape, vec![3, 32]);
    let expected: Vec<f32> = in_process_embeddings(&TEXTS)
        .into_iter()
        .flatten()
        .collect();
    assert_eq!(raw_f32s(&answer.raw_output_contents[0]), expected);

    // Malformed tensors: INVALID_ARGUMENT naming what is wrong.
    let mut fp16 = bytes_input("text", &[]);
    fp16.datatype = "FP16".to_owned();
    fp16.shape = vec![0];
    let status = failure(rt.block_on(client.model_infer(infer_request("tiny-bert", vec![fp16]))));
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(
        status.message().contains("raw_input_contents"),
        "{status:?}"
    );
    let mut short = bytes_input("text", &texts);
    short.shape = vec![4];
    let status = failure(rt.block_on(client.model_infer(infer_request("tiny-bert", vec![short]))));
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(
        status.message().contains("`text`") && status.message().contains("4 elements"),
        "{status:?}"
    );
    let mut raw = infer_request("tiny-bert", vec![bytes_input("text", &texts)]);
    raw.raw_input_contents = vec![Vec::new(), Vec::new()];
    let status = failure(rt.block_on(client.model_infer(raw)));
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(
        status.message().contains("2 entries for 1 inputs"),
        "{status:?}"
    );

    // A message over the body limit is refused before it is decoded, naming the limit.
    let big = vec![b'a'; 100 * 1024];
    let request = infer_request("tiny-bert", vec![bytes_input("text", &[&big])]);
    let status = failure(rt.block_on(client.model_infer(request)));
    assert_eq!(status.code(), tonic::Code::OutOfRange);
    assert!(status.message().contains("65536"), "{status:?}");

    // A slow call holds the one place: another call over either transport is UNAVAILABLE.
    let mut slow_client = client.clone();
    let mut slow = infer_request("tiny-sd", vec![bytes_input("prompt", &[b"slow"])]);
    slow.parameters = [("seed", 1), ("steps", 100)]
        .into_iter()
        .map(|(name, value)| {
            let value = proto::infer_parameter::ParameterChoice::Int64Param(value);
            (
                name.to_owned(),
                proto::InferParameter {
                    parameter_choice: Some(value),
                },
            )
        })
        .collect();
    let slow = std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().expect("a runtime");
        rt.block_on(slow_client.model_infer(slow))
    });
    wait_until_leased(&server, "tiny-sd@0.1.0");
    let request = infer_request("tiny-bert", vec![bytes_input("text", &texts)]);
    let status = failure(rt.block_on(client.model_infer(request)));
    assert_eq!(status.code(), tonic::Code::Unavailable);
    assert!(status.message().contains("retry later"), "{status:?}");

    // Shutdown lets the in-flight call finish, then neither port accepts connections.
    server.shutdown();
    let answer = slow
        .join()
        .expect("the slow call's thread")
        .expect("the in-flight call completed")
        .into_inner();
    let image = answer
        .outputs
        .iter()
        .find(|o| o.name == "image")
        .expect("an image");
    assert_eq!(image.datatype, "UINT8");
    assert_eq!(image.shape.len(), 4);
    for port in [&server.base, &address] {
        let address = port.rsplit("//").next().unwrap_or_default();
        assert!(
            std::net::TcpStream::connect(address).is_err(),
            "{address} refuses connections after shutdown"
        );
    }
}

/// ModelMesh's runtime interface: capacity from the manager's budget, sizes from the catalog and
/// the ledger, loads that serve inference under the same name, and a purge at ModelMesh's start.
#[test]
fn modelmesh_runtime_loads_sizes_and_unloads_through_the_ledger() {
    let server = Running::with_grpc(
        manager(&tiny_catalog_path(), &fixture("tiny/exports")),
        ServerOptions {
            control: ControlMode::External,
            ..ServerOptions::default()
        },
    );
    let address = format!("http://{}", server.grpc.as_deref().expect("gRPC runs"));
    let rt = tokio::runtime::Runtime::new().expect("a runtime");
    let mut runtime = rt
        .block_on(ModelRuntimeClient::connect(address.clone()))
        .expect("connects");
    let mut inference = rt
        .block_on(GrpcInferenceServiceClient::connect(address))
        .expect("connects");
    let status = rt
        .block_on(runtime.runtime_status(mmesh::RuntimeStatusRequest {}))
        .expect("runtimeStatus")
        .into_inner();
    assert_eq!(
        status.status,
        mmesh::runtime_status_response::Status::Ready as i32
    );
    let devices = server.manager.status().devices;
    let host = devices
        .iter()
        .find(|d| d.device == "cpu")
        .expect("the host");
    assert_eq!(status.capacity_in_bytes, host.budget_bytes);
    let declared = |id: &str| {
        let spec = server.manager.catalog().get(id).expect("in the catalog");
        spec.memory_requirement.expect("declared").bytes()
    };
    let largest = server
        .manager
        .catalog()
        .models()
        .iter()
        .filter_map(|spec| spec.memory_requirement.map(|b| b.bytes()))
        .max();
    assert_eq!(Some(status.default_model_size_in_bytes), largest);
    assert_eq!(
        status.method_infos["inference.GRPCInferenceService/ModelInfer"].id_injection_path,
        vec![1]
    );

    let predicted = rt
        .block_on(runtime.predict_model_size(mmesh::PredictModelSizeRequest {
            model_id: "tiny-bert".to_owned(),
            ..mmesh::PredictModelSizeRequest::default()
        }))
        .expect("predictModelSize")
        .into_inner();
    assert_eq!(predicted.size_in_bytes, declared("tiny-bert"));

    // loadModel answers the ledger's measured bytes, and modelSize reads them again.
    let ledger = || {
        server
            .manager
            .status()
            .models
            .into_iter()
            .find(|m| m.model == "tiny-bert@0.1.0")
            .and_then(|m| m.bytes)
    };
    let loaded = rt
        .block_on(runtime.load_model(mmesh::LoadModelRequest {
            model_id: "tiny-bert".to_owned(),
            ..mmesh::LoadModelRequest::default()
        }))
        .expect("loadModel")
        .into_inner();
    assert!(loaded.size_in_bytes > 0);
    assert_eq!(Some(loaded.size_in_bytes), ledger());
    let size = rt
        .block_on(runtime.model_size(mmesh::ModelSizeRequest {
            model_id: "tiny-bert".to_owned(),
        }))
        .expect("modelSize")
        .into_inner();
    assert_eq!(size.size_in_bytes, loaded.size_in_bytes);

    // Inference reaches the model under the id ModelMesh loaded it by.
    let texts: Vec<&[u8]> = TEXTS.iter().map(|t| t.as_bytes()).collect();
    let request = infer_request("tiny-bert", vec![bytes_input("text", &texts)]);
    let answer = rt
        .block_on(inference.model_infer(request))
        .expect("infer")
        .into_inner();
    let expected: Vec<f32> = in_process_embeddings(&TEXTS)
        .into_iter()
        .flatten()
        .collect();
    assert_eq!(raw_f32s(&answer.raw_output_contents[0]), expected);

    // An id the catalog does not know: INVALID_ARGUMENT (no load was attempted).
    let unknown = rt.block_on(runtime.load_model(mmesh::LoadModelRequest {
        model_id: "no-such-model".to_owned(),
        ..mmesh::LoadModelRequest::default()
    }));
    let status = unknown.expect_err("an unknown id fails");
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(status.message().contains("no-such-model"), "{status:?}");

    // A restarted ModelMesh asks for the status again: what it had loaded is unloaded first.
    rt.block_on(runtime.runtime_status(mmesh::RuntimeStatusRequest {}))
        .expect("runtimeStatus");
    assert_eq!(ledger(), None, "purged");
    let status = failure(rt.block_on(runtime.model_size(mmesh::ModelSizeRequest {
        model_id: "tiny-bert".to_owned(),
    })));
    assert_eq!(status.code(), tonic::Code::NotFound);
    let request = infer_request("tiny-bert", vec![bytes_input("text", &texts)]);
    let status = failure(rt.block_on(inference.model_infer(request)));
    assert_eq!(
        status.code(),
        tonic::Code::NotFound,
        "ModelMesh reads NOT_FOUND as not here"
    );

    // Unloading what is not loaded, or not known, succeeds at once.
    for id in ["tiny-bert", "no-such-model"] {
        rt.block_on(runtime.unload_model(mmesh::UnloadModelRequest {
            model_id: id.to_owned(),
        }))
        .expect("unloadModel");
    }
}
