//! `modelmux serve` driven by the `kserve` SDK's v2 REST client, compared with in-process results.
//!
//! Two servers run in-process on ephemeral 127.0.0.1 ports: one over the tiny-model catalog (the
//! text encoder `tiny-bert`: BYTES text in, FP32 embeddings out), one over a catalog whose only
//! model is the `matmul` fixture served tensor for tensor. `xtask/python/kserve_client.py`, in the
//! pinned environment `cargo xtask kserve` makes, calls them with `kserve.InferenceRESTClient`
//! (protocol v2) and prints what it saw; every number must equal the in-process result exactly.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use modelmux::adapters::lm::TextEncoder;
use modelmux::registry::Catalog;
use modelmux::{ManagerOptions, ModelManager};
use modelmux_runtime_ort::{Inputs, SessionSpec};
use modelmux_server::{ServeLoader, Server, ServerOptions};
use modelmux_tests::{fixture, runtime};
use ndarray::Array2;
use serde_json::{Value, json};

const TEXTS: [&str; 3] = ["A photo of a cat.", "modelmux serves many models", ""];

/// `modelmux serve` over one catalog on 127.0.0.1:0, on a runtime of its own; dropping it stops
/// the server and waits for its graceful shutdown.
struct Served {
    base: String,
    manager: ModelManager,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    rt: tokio::runtime::Runtime,
}

impl Served {
    fn start(catalog: &Path, exports: &Path) -> Self {
        runtime();
        let mut options = ManagerOptions::local();
        options.exports_dir = Some(exports.to_path_buf());
        options.loader = Arc::new(ServeLoader);
        let manager = ModelManager::new(
            Catalog::load(catalog).unwrap_or_else(|e| panic!("{e}")),
            options,
        );
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime");
        let listener = rt
            .block_on(modelmux_server::bind("127.0.0.1", 0))
            .expect("bind 127.0.0.1:0");
        let base = format!("http://{}", listener.local_addr().expect("address"));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = Server::new(manager.clone(), ServerOptions::default());
        let task = rt.spawn(async move {
            server
                .serve(listener, async {
                    let _ = stopped.await;
                })
                .await
                .expect("serve");
        });
        Self {
            base,
            manager,
            stop: Some(stop),
            task: Some(task),
            rt,
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = self
                .rt
                .block_on(async { tokio::time::timeout(Duration::from_secs(60), task).await });
        }
    }
}

/// A catalog whose one model is the `matmul` fixture (`y = relu(x W + c)`, x FP32 [n, 64]),
/// served tensor for tensor.
fn matmul_catalog(dir: &Path) -> (PathBuf, PathBuf) {
    let export = dir.join("exports/matmul/1.0.0");
    std::fs::create_dir_all(&export).expect("export folder");
    std::fs::copy(fixture("matmul.onnx"), export.join("model.onnx")).expect("copy matmul.onnx");
    let catalog = dir.join("models.yaml");
    let entry = "matmul: { version: 1.0.0, architecture: mlp-head, source: matmul, \
                 memory_requirement: 1MiB, providers: [cpu], params: { extra: { serving: tensor } } }";
    std::fs::write(
        &catalog,
        format!("catalog_version: 1\nmodels:\n  specialized:\n    {entry}\n"),
    )
    .expect("catalog");
    (catalog, dir.join("exports"))
}

fn f32s(value: &Value) -> Vec<f32> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {value}"))
        .iter()
        .map(|v| v.as_f64().expect("a number") as f32)
        .collect()
}

/// What the script saw for a call that must succeed; a failed call fails the test with the
/// client's error, which carries the server's status and message.
fn succeeded<'a>(seen: &'a Value, step: &str) -> &'a Value {
    assert!(
        seen.get("status").is_none(),
        "{step}: the kserve client's request failed: {seen}"
    );
    seen
}

/// The client's error for a failing call: its HTTP status and its message, which must carry
/// the server's own words.
fn assert_error(seen: &Value, status: u16, needle: &str) {
    assert_eq!(seen["status"], status, "{seen}");
    let message = seen["message"].as_str().unwrap_or_default();
    assert!(message.contains(needle), "{needle}: {seen}");
}

#[test]
fn kserve_rest_client_sees_the_in_process_results() {
    let tiny = Served::start(
        &PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data/tiny-models.yaml"),
        &fixture("tiny/exports"),
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let (catalog, exports) = matmul_catalog(dir.path());
    let matmul = Served::start(&catalog, &exports);

    let seen = modelmux_tests::run_pinned_script(
        "kserve.python",
        "kserve",
        "kserve_client.py",
        &[&tiny.base, &matmul.base],
    );

    assert_eq!(seen["live"], true);
    assert_eq!(seen["ready"], true);
    assert_eq!(seen["server_metadata"]["name"], "modelmux");
    assert!(
        seen["server_metadata"]["extensions"]
            .as_array()
            .is_some_and(|e| e.contains(&json!("binary_tensor_data"))),
        "{}",
        seen["server_metadata"]
    );
    assert_eq!(seen["model_ready"], true);
    assert_eq!(seen["unknown_model_ready"], false);
    let metadata = &seen["model_metadata"];
    assert_eq!(metadata["name"], "tiny-bert");
    assert_eq!(metadata["versions"], json!(["0.1.0"]));
    assert!(
        metadata["platform"].as_str().is_some_and(|p| !p.is_empty()),
        "{metadata}"
    );
    assert_eq!(
        metadata["inputs"],
        json!([{ "name": "text", "datatype": "BYTES", "shape": [-1] }])
    );
    assert_eq!(
        metadata["outputs"],
        json!([{ "name": "embedding", "datatype": "FP32", "shape": [-1, 32] }])
    );

    // JSON in and out, binary BYTES in, binary FP32 out: each the in-process embeddings.
    let rt = tokio::runtime::Runtime::new().expect("a runtime");
    let encoder = rt
        .block_on(tiny.manager.get_model::<Arc<dyn TextEncoder>>("tiny-bert"))
        .expect("tiny-bert loads");
    let flat: Vec<f32> = encoder
        .embed(&TEXTS)
        .expect("embeddings")
        .into_iter()
        .flatten()
        .collect();
    drop(encoder);
    for mode in ["infer_json", "infer_binary_in", "infer_binary"] {
        let output = succeeded(&seen[mode], mode);
        assert_eq!(output["id"], "kserve-1", "{mode}");
        assert_eq!(output["model_name"], "tiny-bert", "{mode}");
        assert_eq!(output["datatype"], "FP32", "{mode}");
        assert_eq!(output["dtype"], "float32", "{mode}");
        assert_eq!(output["shape"], json!([3, 32]), "{mode}");
        assert_eq!(f32s(&output["data"]), flat, "{mode}");
    }

    // The raw ONNX model: metadata is the session's signature, outputs those of a direct run.
    assert_eq!(seen["matmul_metadata"]["platform"], "onnx_onnxv1");
    assert_eq!(
        seen["matmul_metadata"]["inputs"],
        json!([{ "name": "x", "datatype": "FP32", "shape": [-1, 64] }])
    );
    assert_eq!(
        seen["matmul_metadata"]["outputs"],
        json!([{ "name": "y", "datatype": "FP32", "shape": [-1, 64] }])
    );
    let session = runtime()
        .load("matmul", &fixture("matmul.onnx"), &SessionSpec::cpu())
        .expect("matmul loads");
    for mode in ["matmul_json", "matmul_binary"] {
        let x = f32s(&seen[mode]["x"]);
        let rows = x.len() / 64;
        let direct: Vec<f32> = session
            .run(Inputs::new().with("x", Array2::from_shape_vec((rows, 64), x).expect("shape")))
            .expect("matmul runs")
            .array::<f32>("y")
            .expect("y")
            .iter()
            .copied()
            .collect();
        let y = succeeded(&seen[mode]["y"], mode);
        assert!(rows > 1, "{mode}: a batch of rows");
        assert_eq!(y["shape"], json!([rows, 64]), "{mode}");
        assert_eq!(f32s(&y["data"]), direct, "{mode}");
    }

    // Errors reach the client as HTTP errors carrying the server's status and message.
    assert_error(&seen["unknown_model"], 404, "no-such-model");
    assert_error(&seen["wrong_shape"], 400, "2 elements");
    assert_error(&seen["wrong_datatype"], 400, "BYTES");
    assert_error(&seen["matmul_wrong_datatype"], 400, "`x`");
}
