//! `modelmux serve` over real HTTP on 127.0.0.1: the Open Inference Protocol (JSON and binary
//! tensors), Triton's repository and statistics extensions under external control, the
//! OpenAI-compatible routes, authentication, limits and graceful shutdown. Results are compared
//! with the same models called in-process.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use modelmux::adapters::diffusion::{ImageRequest, TextToImage, decode_png, no_progress};
use modelmux::adapters::lm::{GenerationOptions, Prompt, TextEncoder, TextGenerator};
use modelmux::registry::Catalog;
use modelmux::{ManagerOptions, ModelManager};
use modelmux_runtime_ort::{Inputs, SessionSpec};
use modelmux_server::{ControlMode, ServeLoader, Server, ServerOptions, Tokens};
use modelmux_tests::{fixture, runtime};
use ndarray::Array2;
use serde_json::{Value, json};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub(super) fn tiny_catalog_path() -> PathBuf {
    root().join("tests/data/tiny-models.yaml")
}

pub(super) fn manager(catalog: &Path, exports: &Path) -> ModelManager {
    runtime();
    let catalog = Catalog::load(catalog).unwrap_or_else(|e| panic!("{e}"));
    let mut options = ManagerOptions::local();
    options.exports_dir = Some(exports.to_path_buf());
    options.loader = Arc::new(ServeLoader);
    ModelManager::new(catalog, options)
}

/// A server on an ephemeral 127.0.0.1 port (and, when asked, gRPC on another), on a runtime of
/// its own; dropping it shuts it down.
pub(super) struct Running {
    pub(super) base: String,
    /// `127.0.0.1:PORT` of the gRPC service, when it runs.
    pub(super) grpc: Option<String>,
    pub(super) manager: ModelManager,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Running {
    fn start(manager: ModelManager, options: ServerOptions) -> Self {
        Self::launch(manager, options, false)
    }

    /// HTTP and gRPC together, stopped by one shutdown.
    pub(super) fn with_grpc(manager: ModelManager, options: ServerOptions) -> Self {
        Self::launch(manager, options, true)
    }

    fn launch(manager: ModelManager, options: ServerOptions, grpc: bool) -> Self {
        let server = Server::new(manager.clone(), options);
        let (address_tx, address_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("a runtime");
            rt.block_on(async move {
                let listener = modelmux_server::bind("127.0.0.1", 0).await.expect("bind");
                let grpc_listener = if grpc {
                    Some(
                        modelmux_server::bind("127.0.0.1", 0)
                            .await
                            .expect("bind gRPC"),
                    )
                } else {
                    None
                };
                address_tx
                    .send((
                        listener.local_addr().expect("address"),
                        grpc_listener
                            .as_ref()
                            .map(|l| l.local_addr().expect("gRPC address")),
                    ))
                    .expect("the test waits");
                let stopped = async {
                    let _ = stopped.await;
                };
                match grpc_listener {
                    Some(grpc) => server.serve_with_grpc(listener, grpc, stopped).await,
                    None => server.serve(listener, stopped).await,
                }
                .expect("serve");
            });
        });
        let (address, grpc) = address_rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the server binds");
        Self {
            base: format!("http://{address}"),
            grpc: grpc.map(|a| a.to_string()),
            manager,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    fn tiny(options: ServerOptions) -> Self {
        Self::start(
            manager(&tiny_catalog_path(), &fixture("tiny/exports")),
            options,
        )
    }

    pub(super) fn client(&self) -> Client {
        Client {
            base: self.base.clone(),
            token: None,
            agent: ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_global(Some(Duration::from_secs(120)))
                .build()
                .into(),
        }
    }

    /// Signals shutdown and waits until the server has stopped.
    pub(super) fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            thread.join().expect("the server thread ends cleanly");
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.shutdown();
    }
}

#[derive(Debug)]
pub(super) struct Reply {
    status: u16,
    headers: ureq::http::HeaderMap,
    body: Vec<u8>,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}), status {}: {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The JSON of a 200 reply; any other status fails the test with the body.
    pub(super) fn ok(&self) -> Value {
        assert_eq!(self.status, 200, "{}", String::from_utf8_lossy(&self.body));
        if self.body.is_empty() {
            Value::Null
        } else {
            self.json()
        }
    }

    /// The `error` message of an error reply.
    fn error(&self) -> String {
        self.json()["error"]
            .as_str()
            .unwrap_or_else(|| panic!("no error message in {}", self.json()))
            .to_owned()
    }
}

#[derive(Debug)]
pub(super) struct Client {
    base: String,
    token: Option<String>,
    agent: ureq::Agent,
}

impl Client {
    pub(super) fn with_token(mut self, token: &str) -> Self {
        self.token = Some(token.to_owned());
        self
    }

    fn finish(response: ureq::http::Response<ureq::Body>) -> Reply {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let mut body = Vec::new();
        response
            .into_body()
            .into_reader()
            .read_to_end(&mut body)
            .expect("read the body");
        Reply {
            status,
            headers,
            body,
        }
    }

    pub(super) fn get(&self, path: &str) -> Reply {
        let mut request = self.agent.get(format!("{}{path}", self.base));
        if let Some(token) = &self.token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        Self::finish(request.call().expect("GET"))
    }

    fn post_bytes(&self, path: &str, headers: &[(&str, String)], body: &[u8]) -> Reply {
        let mut request = self.agent.post(format!("{}{path}", self.base));
        if let Some(token) = &self.token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        for (name, value) in headers {
            request = request.header(*name, value.as_str());
        }
        Self::finish(request.send(body).expect("POST"))
    }

    fn post(&self, path: &str, body: &Value) -> Reply {
        self.post_bytes(
            path,
            &[("Content-Type", "application/json".to_owned())],
            body.to_string().as_bytes(),
        )
    }

    /// The `data:` payloads of a server-sent-event stream, in order.
    fn post_events(&self, path: &str, body: &Value) -> Vec<String> {
        let response = self
            .agent
            .post(format!("{}{path}", self.base))
            .header("Content-Type", "application/json")
            .send(body.to_string().as_bytes())
            .expect("POST");
        assert_eq!(response.status().as_u16(), 200);
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        assert!(
            content_type.starts_with("text/event-stream"),
            "{content_type}"
        );
        let reader = BufReader::new(response.into_body().into_reader());
        reader
            .lines()
            .map(|line| line.expect("a line"))
            .filter_map(|line| line.strip_prefix("data: ").map(str::to_owned))
            .collect()
    }
}

pub(super) fn f32s(value: &Value) -> Vec<f32> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {value}"))
        .iter()
        .map(|v| v.as_f64().expect("a number") as f32)
        .collect()
}

/// The bytes of a base64 string field.
/// tiny-sd's pixels for "a red square" (seed 7, 2 steps) in-process, what the image routes
/// are asked for.
fn red_square(pipeline: &dyn TextToImage) -> Vec<u8> {
    let request = ImageRequest {
        seed: Some(7),
        steps: Some(2),
        ..ImageRequest::new("a red square")
    };
    let direct = pipeline
        .generate(&request, &mut no_progress())
        .expect("generation");
    direct.images[0].pixels.clone()
}

fn base64_field(value: &Value) -> Vec<u8> {
    use base64::Engine as _;
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("not a string: {value}"));
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .expect("valid base64")
}

fn texts_request(name: &str, texts: &[&str]) -> Value {
    json!({
        "id": "req-1",
        "inputs": [{ "name": name, "shape": [texts.len()], "datatype": "BYTES", "data": texts }],
    })
}

pub(super) const TEXTS: [&str; 3] = ["A photo of a cat.", "modelmux serves many models", ""];

pub(super) fn in_process_embeddings(texts: &[&str]) -> Vec<Vec<f32>> {
    let manager = manager(&tiny_catalog_path(), &fixture("tiny/exports"));
    let rt = tokio::runtime::Runtime::new().expect("a runtime");
    let encoder = rt
        .block_on(manager.get_model::<Arc<dyn TextEncoder>>("tiny-bert"))
        .expect("tiny-bert loads");
    encoder.embed(texts).expect("embeddings")
}

/// What tiny-gpt2 answers `prompt` in-process, greedy, in `max_tokens` tokens.
fn tiny_gpt2_text(manager: &ModelManager, prompt: &str, max_tokens: usize) -> String {
    let rt = tokio::runtime::Runtime::new().expect("a runtime");
    let generator = rt
        .block_on(manager.get_model::<Arc<dyn TextGenerator>>("tiny-gpt2"))
        .expect("tiny-gpt2");
    let options = GenerationOptions {
        max_new_tokens: Some(max_tokens),
        ..GenerationOptions::default()
    };
    generator
        .generate_batch(&[Prompt::Text(prompt.to_owned())], &options)
        .expect("generation")
        .remove(0)
        .text
}

#[test]
fn health_server_and_model_metadata() {
    let server = Running::tiny(ServerOptions::default());
    let client = server.client();
    assert_eq!(client.get("/v2/health/live").status, 200);
    assert_eq!(client.get("/v2/health/ready").json()["ready"], true);
    let meta = client.get("/v2").json();
    assert_eq!(meta["name"], "modelmux");
    let extensions = meta["extensions"].to_string();
    for e in ["binary_tensor_data", "model_repository", "statistics"] {
        assert!(extensions.contains(e), "{extensions}");
    }
    let model = client.get("/v2/models/tiny-bert").json();
    assert_eq!(model["name"], "tiny-bert");
    assert_eq!(model["versions"], json!(["0.1.0"]));
    assert_eq!(
        model["inputs"],
        json!([{ "name": "text", "datatype": "BYTES", "shape": [-1] }])
    );
    assert_eq!(
        model["outputs"],
        json!([{ "name": "embedding", "datatype": "FP32", "shape": [-1, 32] }])
    );
    let versioned = client.get("/v2/models/tiny-bert/versions/0.1.0").json();
    assert_eq!(versioned, model);
    let generator = client.get("/v2/models/tiny-gpt2").json();
    assert_eq!(generator["inputs"][0]["name"], "prompt");
    assert_eq!(generator["outputs"][1]["name"], "finish_reason");
    let ready = client.get("/v2/models/tiny-bert/ready");
    assert_eq!(
        (ready.status, ready.json()["ready"].clone()),
        (200, json!(true))
    );
}

#[test]
fn text_encoder_infer_over_json_and_binary_equals_in_process_embeddings() {
    let expected = in_process_embeddings(&TEXTS);
    let server = Running::tiny(ServerOptions::default());
    let client = server.client();

    let reply = client.post("/v2/models/tiny-bert/infer", &texts_request("text", &TEXTS));
    let body = reply.ok();
    assert_eq!(body["id"], "req-1");
    assert_eq!(body["model_name"], "tiny-bert");
    let output = &body["outputs"][0];
    assert_eq!(output["name"], "embedding");
    assert_eq!(output["datatype"], "FP32");
    assert_eq!(output["shape"], json!([3, 32]));
    let flat: Vec<f32> = expected.iter().flatten().copied().collect();
    assert_eq!(f32s(&output["data"]), flat, "JSON round trip is exact");

    // Triton's binary-data extension: BYTES in as length-prefixed bytes, FP32 out as raw bytes.
    let mut binary = Vec::new();
    for text in TEXTS {
        binary.extend_from_slice(&(text.len() as u32).to_le_bytes());
        binary.extend_from_slice(text.as_bytes());
    }
    let header = json!({
        "inputs": [{ "name": "text", "shape": [3], "datatype": "BYTES",
                     "parameters": { "binary_data_size": binary.len() } }],
        "outputs": [{ "name": "embedding", "parameters": { "binary_data": true } }],
    })
    .to_string();
    let mut body = header.as_bytes().to_vec();
    body.extend_from_slice(&binary);
    let reply = client.post_bytes(
        "/v2/models/tiny-bert/infer",
        &[
            ("Content-Type", "application/octet-stream".to_owned()),
            ("Inference-Header-Content-Length", header.len().to_string()),
        ],
        &body,
    );
    assert_eq!(
        reply.status,
        200,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    let json_len: usize = reply
        .header("inference-header-content-length")
        .expect("binary reply header")
        .parse()
        .expect("a length");
    let head: Value = serde_json::from_slice(&reply.body[..json_len]).expect("JSON header");
    assert_eq!(
        head["outputs"][0]["parameters"]["binary_data_size"],
        3 * 32 * 4
    );
    let values: Vec<f32> = reply.body[json_len..]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    assert_eq!(values, flat);
}

/// Output `output` of the fixture `name.onnx` run straight on ONNX Runtime.
fn run_fixture(name: &str, inputs: Inputs, output: &str) -> Vec<f32> {
    let session = runtime()
        .load(name, &fixture(&format!("{name}.onnx")), &SessionSpec::cpu())
        .unwrap_or_else(|e| panic!("{name} loads: {e}"));
    let outputs = session
        .run(inputs)
        .unwrap_or_else(|e| panic!("{name} runs: {e}"));
    outputs
        .array::<f32>(output)
        .unwrap_or_else(|e| panic!("{name}'s {output}: {e}"))
        .iter()
        .copied()
        .collect()
}

/// `x + y` for the add fixture's [2, 4] inputs, straight on ONNX Runtime.
pub(super) fn in_process_sum(x: Vec<f32>, y: Vec<f32>) -> Vec<f32> {
    let shape = |v| Array2::from_shape_vec((2, 4), v).expect("shape");
    run_fixture(
        "add",
        Inputs::new().with("x", shape(x)).with("y", shape(y)),
        "sum",
    )
}

/// A catalog whose one model is the `add` fixture served tensor for tensor.
pub(super) fn add_catalog(dir: &Path) -> (PathBuf, PathBuf) {
    tensor_catalog(dir, "add")
}

/// A catalog whose one model, `name`, is the fixture `name.onnx` served tensor for tensor.
fn tensor_catalog(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let exports = dir.join("exports");
    let export = exports.join(format!("{name}/1.0.0"));
    std::fs::create_dir_all(&export).expect("export folder");
    std::fs::copy(fixture(&format!("{name}.onnx")), export.join("model.onnx"))
        .unwrap_or_else(|e| panic!("copy {name}.onnx: {e}"));
    let catalog = dir.join("models.yaml");
    std::fs::write(
        &catalog,
        format!("catalog_version: 1\nmodels:\n  specialized:\n    {name}:\n      version: 1.0.0\n      architecture: mlp-head\n      source: {name}\n      memory_requirement: 1MiB\n      providers: [cpu]\n      params:\n        extra: {{ serving: tensor }}\n"),
    )
    .expect("catalog");
    (catalog, exports)
}

#[test]
fn raw_onnx_models_are_served_tensor_for_tensor() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (catalog, exports) = add_catalog(dir.path());
    let server = Running::start(manager(&catalog, &exports), ServerOptions::default());
    let client = server.client();

    let meta = client.get("/v2/models/add").json();
    assert_eq!(meta["platform"], "onnx_onnxv1");
    assert_eq!(
        meta["inputs"],
        json!([
            { "name": "x", "datatype": "FP32", "shape": [-1, 4] },
            { "name": "y", "datatype": "FP32", "shape": [-1, 4] },
        ])
    );
    assert_eq!(
        meta["outputs"],
        json!([{ "name": "sum", "datatype": "FP32", "shape": [-1, 4] }])
    );

    let x: Vec<f32> = (0..8).map(|i| i as f32 * 0.5).collect();
    let y: Vec<f32> = (0..8).map(|i| 1.0 - i as f32).collect();
    let reply = client.post(
        "/v2/models/add/infer",
        &json!({ "inputs": [
            { "name": "x", "shape": [2, 4], "datatype": "FP32", "data": [[0.0, 0.5, 1.0, 1.5], [2.0, 2.5, 3.0, 3.5]] },
            { "name": "y", "shape": [2, 4], "datatype": "FP32", "data": y },
        ] }),
    );
    reply.ok();
    let output = &reply.json()["outputs"][0];
    assert_eq!(output["shape"], json!([2, 4]));

    // The same run straight on ONNX Runtime.
    assert_eq!(f32s(&output["data"]), in_process_sum(x, y));

    // A wrong element type reaches the session's signature check: 400 naming the input.
    let reply = client.post(
        "/v2/models/add/infer",
        &json!({ "inputs": [
            { "name": "x", "shape": [1, 4], "datatype": "INT64", "data": [1, 2, 3, 4] },
            { "name": "y", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4] },
        ] }),
    );
    assert_eq!(reply.status, 400);
    assert!(reply.error().contains("`x`"), "{}", reply.error());
}

#[test]
fn unknown_models_are_404_and_malformed_tensors_are_400_with_a_message() {
    let server = Running::tiny(ServerOptions::default());
    let client = server.client();
    for reply in [
        client.get("/v2/models/no-such-model"),
        client.get("/v2/models/no-such-model/ready"),
        client.post(
            "/v2/models/no-such-model/infer",
            &texts_request("text", &["a"]),
        ),
        client.post("/v2/repository/models/no-such-model/load", &json!({})),
    ] {
        assert_eq!(reply.status, 404);
        assert!(reply.error().contains("no-such-model"), "{}", reply.error());
    }
    assert_eq!(
        client.get("/v2/models/tiny-bert/versions/9.9.9").status,
        404
    );

    let cases = [
        (json!({ "inputs": "nope" }), "malformed"),
        (
            json!({ "inputs": [{ "name": "text", "shape": [2], "datatype": "BYTES", "data": ["one"] }] }),
            "2 elements",
        ),
        (
            json!({ "inputs": [{ "name": "text", "shape": [1], "datatype": "FP32", "data": [1.0] }] }),
            "BYTES",
        ),
        (
            json!({ "inputs": [{ "name": "txt", "shape": [1], "datatype": "BYTES", "data": ["a"] }] }),
            "missing input `text`",
        ),
        (
            json!({ "inputs": [{ "name": "text", "shape": [1], "datatype": "COMPLEX", "data": ["a"] }] }),
            "unknown datatype",
        ),
    ];
    for (body, needle) in cases {
        let reply = client.post("/v2/models/tiny-bert/infer", &body);
        assert_eq!(reply.status, 400, "{body}");
        assert!(
            reply.error().contains(needle),
            "{needle}: {}",
            reply.error()
        );
    }
    let reply = client.post_bytes("/v2/models/tiny-bert/infer", &[], b"{\"inputs\": [");
    assert_eq!(reply.status, 400);
    assert_eq!(client.get("/v2/nowhere").status, 404);
    // The server is still healthy after all of that.
    assert_eq!(client.get("/v2/health/ready").status, 200);
}

#[test]
fn a_missing_or_wrong_bearer_token_is_401_and_health_probes_stay_open() {
    let options = ServerOptions {
        tokens: Tokens::new(["s3cret-token", "second"]),
        ..ServerOptions::default()
    };
    assert!(
        !format!("{options:?}").contains("s3cret"),
        "tokens never show in Debug"
    );
    let server = Running::tiny(options);
    let anonymous = server.client();
    let reply = anonymous.get("/v2");
    assert_eq!(reply.status, 401);
    assert_eq!(reply.header("www-authenticate"), Some("Bearer"));
    assert!(!reply.error().contains("s3cret"));
    assert_eq!(anonymous.get("/metrics").status, 401);
    assert_eq!(anonymous.get("/v2/health/live").status, 200);
    assert_eq!(anonymous.get("/v2/health/ready").status, 200);
    assert_eq!(
        server.client().with_token("s3cret-tokeN").get("/v2").status,
        401
    );
    assert_eq!(server.client().with_token("s3cret").get("/v2").status, 401);
    assert_eq!(
        server.client().with_token("s3cret-token").get("/v2").status,
        200
    );
    assert_eq!(
        server
            .client()
            .with_token("second")
            .get("/v1/models")
            .status,
        200
    );
}

#[test]
fn an_oversize_body_is_413() {
    let options = ServerOptions {
        max_body_bytes: 1024,
        ..ServerOptions::default()
    };
    let server = Running::tiny(options);
    let client = server.client();
    let long = "x".repeat(4096);
    let reply = client.post(
        "/v2/models/tiny-bert/infer",
        &texts_request("text", &[&long]),
    );
    assert_eq!(reply.status, 413);
    assert!(reply.error().contains("1024"), "{}", reply.error());
    let reply = client.post(
        "/v1/embeddings",
        &json!({ "model": "tiny-bert", "input": long }),
    );
    assert_eq!(reply.status, 413);
    // A small one still goes through.
    assert_eq!(
        client
            .post(
                "/v2/models/tiny-bert/infer",
                &texts_request("text", &["short"])
            )
            .status,
        200
    );
}

#[test]
fn repository_load_unload_index_and_statistics_under_external_control() {
    let options = ServerOptions {
        control: ControlMode::External,
        ..ServerOptions::default()
    };
    let server = Running::tiny(options);
    let client = server.client();
    let state_of = |name: &str| {
        let index = client.post_bytes("/v2/repository/index", &[], b"").json();
        index
            .as_array()
            .expect("an array")
            .iter()
            .find(|m| m["name"] == name)
            .map(|m| m["state"].as_str().unwrap_or_default().to_owned())
            .expect("listed")
    };

    // Not loaded by command: 404 (ModelMesh reads it as "not here"), and nothing is loaded.
    let reply = client.post("/v2/models/tiny-bert/infer", &texts_request("text", &["a"]));
    assert_eq!(reply.status, 404);
    assert!(reply.error().contains("not loaded"), "{}", reply.error());
    assert_eq!(client.get("/v2/models/tiny-bert/ready").status, 503);
    assert_eq!(state_of("tiny-bert"), "UNAVAILABLE");
    assert!(
        server
            .manager
            .status()
            .models
            .iter()
            .all(|m| m.bytes.is_none())
    );

    // Load as KServe's agent does (`{}`), then as tritonclient does.
    assert_eq!(
        client
            .post("/v2/repository/models/tiny-bert/load", &json!({}))
            .status,
        200
    );
    assert_eq!(
        client
            .post_bytes("/v2/repository/models/tiny-gpt2/load", &[], b"")
            .status,
        200
    );
    assert_eq!(state_of("tiny-bert"), "READY");
    assert_eq!(client.get("/v2/models/tiny-bert/ready").status, 200);
    let ready_only = client
        .post("/v2/repository/index", &json!({ "ready": true }))
        .json();
    let names: Vec<&str> = ready_only
        .as_array()
        .expect("an array")
        .iter()
        .filter_map(|m| m["name"].as_str())
        .collect();
    assert_eq!(names, ["tiny-bert", "tiny-gpt2"]);
    let status = server.manager.status();
    let bert = status
        .models
        .iter()
        .find(|m| m.model == "tiny-bert@0.1.0")
        .expect("tiny-bert");
    assert!(
        bert.pinned,
        "externally loaded models are pinned: the policy never evicts them"
    );

    for _ in 0..2 {
        let reply = client.post("/v2/models/tiny-bert/infer", &texts_request("text", &TEXTS));
        assert_eq!(reply.status, 200);
    }
    let _ = client.post(
        "/v2/models/tiny-bert/infer",
        &json!({ "inputs": [{ "name": "text", "shape": [1], "datatype": "FP32", "data": [1] }] }),
    );
    let stats = client.get("/v2/models/tiny-bert/stats").json();
    let stats = &stats["model_stats"][0];
    assert_eq!(stats["name"], "tiny-bert");
    assert_eq!(stats["inference_count"], 6);
    assert_eq!(stats["execution_count"], 2);
    assert_eq!(stats["inference_stats"]["success"]["count"], 2);
    // The 404 before the load and the 400 just now.
    assert_eq!(stats["inference_stats"]["fail"]["count"], 2);
    assert!(stats["last_inference"].as_u64().expect("ms") > 0);
    let memory = &stats["memory_usage"][0];
    assert_eq!(memory["type"], "CPU");
    assert_eq!(
        memory["byte_size"].as_u64(),
        bert.bytes,
        "memory_usage is the ledger's committed bytes"
    );
    let all = client.get("/v2/models/stats").json();
    assert_eq!(
        all["model_stats"].as_array().expect("all models").len(),
        server.manager.catalog().models().len()
    );

    // Model overrides are refused, not ignored.
    let reply = client.post(
        "/v2/repository/models/tiny-bert/load",
        &json!({ "parameters": { "config": "{}" } }),
    );
    assert_eq!(reply.status, 400);

    // Unload as tritonclient does; the model is gone from memory and answers 404 again.
    let reply = client.post(
        "/v2/repository/models/tiny-bert/unload",
        &json!({ "parameters": { "unload_dependents": false } }),
    );
    assert_eq!(reply.status, 200);
    assert_eq!(state_of("tiny-bert"), "UNAVAILABLE");
    assert_eq!(
        client
            .post("/v2/models/tiny-bert/infer", &texts_request("text", &["a"]))
            .status,
        404
    );
    let status = server.manager.status();
    let bert = status
        .models
        .iter()
        .find(|m| m.model == "tiny-bert@0.1.0")
        .expect("tiny-bert");
    assert!(bert.bytes.is_none() && !bert.pinned, "{bert:?}");

    let metrics = client.get("/metrics");
    let text = String::from_utf8_lossy(&metrics.body);
    assert!(
        text.contains("modelmux_model_ready{model=\"tiny-gpt2@0.1.0\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("modelmux_inference_request_success_total{model=\"tiny-bert@0.1.0\"} 2"),
        "{text}"
    );
}

#[test]
fn openai_embeddings_and_chat_streaming_equal_in_process_results() {
    let expected = in_process_embeddings(&TEXTS[..2]);
    let server = Running::tiny(ServerOptions::default());
    let client = server.client();

    let listed = client.get("/v1/models").json();
    let ids: Vec<&str> = listed["data"]
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|m| m["id"].as_str())
        .collect();
    assert!(
        ids.contains(&"tiny-bert") && ids.contains(&"tiny-gpt2"),
        "{ids:?}"
    );

    let reply = client.post(
        "/v1/embeddings",
        &json!({ "model": "tiny-bert", "input": TEXTS[..2] }),
    );
    let body = reply.ok();
    assert_eq!(body["object"], "list");
    for (i, vector) in expected.iter().enumerate() {
        assert_eq!(body["data"][i]["index"], i);
        assert_eq!(&f32s(&body["data"][i]["embedding"]), vector);
    }
    // The OpenAI Python client asks for base64 (little-endian f32) by default.
    let reply = client.post(
        "/v1/embeddings",
        &json!({ "model": "tiny-bert", "input": TEXTS[0], "encoding_format": "base64" }),
    );
    let bytes = base64_field(&reply.ok()["data"][0]["embedding"]);
    let decoded: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    assert_eq!(decoded, expected[0]);
    let reply = client.post(
        "/v1/embeddings",
        &json!({ "model": "tiny-gpt2", "input": "a" }),
    );
    assert_eq!(reply.status, 400);

    // tiny-gpt2's tokenizer has no chat template: the messages go as a plain transcript.
    let request = json!({
        "model": "tiny-gpt2",
        "messages": [{ "role": "user", "content": "Tell me about cats." }],
        "max_tokens": 8,
    });
    let whole = client.post("/v1/chat/completions", &request).json();
    let text = whole["choices"][0]["message"]["content"]
        .as_str()
        .expect("content")
        .to_owned();
    assert_eq!(whole["object"], "chat.completion");
    assert_eq!(whole["choices"][0]["finish_reason"], "length");

    let mut streamed = request.clone();
    streamed["stream"] = json!(true);
    let events = client.post_events("/v1/chat/completions", &streamed);
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).expect("a JSON chunk"))
        .collect();
    assert!(chunks.len() >= 3, "{events:?}");
    assert!(
        chunks
            .iter()
            .all(|c| c["object"] == "chat.completion.chunk")
    );
    let joined: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(joined, text, "streamed pieces add up to the whole answer");
    assert_eq!(
        chunks.last().expect("a final chunk")["choices"][0]["finish_reason"],
        "length"
    );

    let direct = tiny_gpt2_text(&server.manager, "user: Tell me about cats.\nassistant:", 8);
    assert_eq!(direct, text);
}

#[test]
fn openai_image_generation_and_oip_images_equal_in_process_pixels() {
    let server = Running::tiny(ServerOptions::default());
    let client = server.client();
    let reply = client.post(
        "/v1/images/generations",
        &json!({ "model": "tiny-sd", "prompt": "a red square", "seed": 7, "steps": 2, "n": 1 }),
    );
    let png = base64_field(&reply.ok()["data"][0]["b64_json"]);
    let (image, _) = decode_png(&png).expect("a PNG");

    let rt = tokio::runtime::Runtime::new().expect("a runtime");
    let pipeline = rt
        .block_on(server.manager.get_model::<Arc<dyn TextToImage>>("tiny-sd"))
        .expect("tiny-sd");
    let direct = red_square(pipeline.as_ref());
    assert_eq!(image.pixels, direct);

    let reply = client.post(
        "/v2/models/tiny-sd/infer",
        &json!({
            "inputs": [{ "name": "prompt", "shape": [1], "datatype": "BYTES", "data": ["a red square"] }],
            "parameters": { "seed": 7, "steps": 2 },
        }),
    );
    let body = reply.ok();
    let image = &body["outputs"][0];
    assert_eq!(image["datatype"], "UINT8");
    assert_eq!(image["shape"], json!([1, 32, 32, 3]));
    let pixels: Vec<u8> = image["data"]
        .as_array()
        .expect("pixels")
        .iter()
        .map(|v| v.as_u64().expect("a byte") as u8)
        .collect();
    assert_eq!(pixels, direct);
    assert_eq!(body["outputs"][1]["data"], json!([7]));

    let reply = client.post(
        "/v1/images/generations",
        &json!({ "model": "tiny-sd", "prompt": "x", "response_format": "url" }),
    );
    assert_eq!(reply.status, 400);
}

#[test]
fn shutdown_finishes_in_flight_requests_then_refuses_connections() {
    let mut server = Running::tiny(ServerOptions::default());
    let base = server.base.clone();
    let slow = start_slow_request(&server, server.client());
    server.shutdown();
    let reply = slow.join().expect("the client thread");
    assert_eq!(reply.status, 200, "the in-flight request completed");
    assert!(
        std::net::TcpStream::connect(base.trim_start_matches("http://")).is_err(),
        "no new connections after shutdown"
    );
    assert!(
        server
            .manager
            .status()
            .models
            .iter()
            .all(|m| m.bytes.is_none()),
        "shutdown unloaded every model"
    );
}

/// Starts a slow image generation on `client` and returns once the server holds the model
/// for it, so the request is certainly in flight.
fn start_slow_request(server: &Running, client: Client) -> std::thread::JoinHandle<Reply> {
    let slow = std::thread::spawn(move || {
        client.post(
            "/v2/models/tiny-sd/infer",
            &json!({
                "inputs": [{ "name": "prompt", "shape": [1], "datatype": "BYTES", "data": ["slow"] }],
                "parameters": { "seed": 1, "steps": 100 },
            }),
        )
    });
    wait_until_leased(server, "tiny-sd@0.1.0");
    slow
}

/// Returns once a request holds `model` (`id@version`), so it is certainly in flight.
pub(super) fn wait_until_leased(server: &Running, model: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !server
        .manager
        .status()
        .models
        .iter()
        .any(|m| m.model == model && m.leases > 0)
    {
        assert!(Instant::now() < deadline, "the slow request never started");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn past_the_concurrency_limit_requests_get_503_or_429_with_retry_after() {
    let options = ServerOptions {
        max_concurrency: 1,
        ..ServerOptions::default()
    };
    let server = Running::tiny(options);
    let client = server.client();
    let slow = start_slow_request(&server, server.client());
    let reply = client.post("/v2/models/tiny-bert/infer", &texts_request("text", &["a"]));
    assert_eq!(reply.status, 503);
    assert_eq!(reply.header("retry-after"), Some("1"));
    let reply = client.post(
        "/v1/embeddings",
        &json!({ "model": "tiny-bert", "input": "a" }),
    );
    assert_eq!(reply.status, 429, "OpenAI clients retry on 429");
    assert_eq!(reply.header("retry-after"), Some("1"));
    // Probes are never turned away.
    assert_eq!(client.get("/v2/health/ready").status, 200);
    assert_eq!(slow.join().expect("the slow request").status, 200);
    assert_eq!(
        client
            .post("/v2/models/tiny-bert/infer", &texts_request("text", &["a"]))
            .status,
        200
    );
}

/// Runs `xtask/python/<script>` with `args` in the pinned client environment; what it printed
/// (one JSON object).
pub(super) fn run_client_script(script: &str, args: &[&str]) -> Value {
    modelmux_tests::run_pinned_script("serve-clients.python", "serve-clients", script, args)
}

#[test]
fn tritonclient_and_openai_from_pypi_see_the_in_process_results() {
    let options = ServerOptions {
        control: ControlMode::External,
        ..ServerOptions::default()
    };
    let server = Running::tiny(options);
    let address = server.base.trim_start_matches("http://").to_owned();
    let seen = run_client_script("serve_clients.py", &[&address]);

    assert_eq!(seen["live"], true);
    assert_eq!(seen["ready"], true);
    assert_eq!(seen["server_metadata"]["name"], "modelmux");
    assert_eq!(seen["state_before_load"], "UNAVAILABLE");
    assert_eq!(seen["infer_before_load"]["status"], "404");
    assert_eq!(seen["state_after_load"], "READY");
    assert_eq!(seen["model_ready"], true);
    assert_eq!(
        seen["model_metadata"]["outputs"][0]["shape"],
        json!([-1, 32])
    );
    assert_eq!(seen["unknown_model"]["status"], "404");
    assert_eq!(seen["wrong_datatype"]["status"], "400");
    assert!(
        seen["wrong_datatype"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("BYTES")),
        "{}",
        seen["wrong_datatype"]
    );
    assert_eq!(seen["state_after_unload"], "UNAVAILABLE");
    assert_eq!(seen["infer_after_unload"]["status"], "404");

    // tritonclient's binary-data default and its JSON mode both give the in-process numbers.
    let expected = in_process_embeddings(&TEXTS);
    let flat: Vec<f32> = expected.iter().flatten().copied().collect();
    for mode in ["infer_binary", "infer_json"] {
        assert_eq!(seen[mode]["shape"], json!([3, 32]), "{mode}");
        assert_eq!(seen[mode]["dtype"], "float32", "{mode}");
        assert_eq!(f32s(&seen[mode]["data"]), flat, "{mode}");
    }
    let stats = &seen["statistics"]["model_stats"][0];
    assert_eq!(stats["inference_count"], 6);
    assert!(
        stats["memory_usage"][0]["byte_size"]
            .as_u64()
            .expect("bytes")
            > 0
    );

    // The openai client asks for base64 embeddings and decodes them itself.
    for (i, vector) in expected[..2].iter().enumerate() {
        assert_eq!(&f32s(&seen["openai_embeddings"][i]), vector);
    }
    let rt = tokio::runtime::Runtime::new().expect("a runtime");
    let direct = tiny_gpt2_text(&server.manager, "user: Tell me about cats.\nassistant:", 8);
    assert_eq!(seen["openai_chat_stream"]["text"], direct);
    assert_eq!(seen["openai_chat_stream"]["finish_reason"], "length");

    let png = base64_field(&seen["openai_image_png_b64"]);
    let (image, _) = decode_png(&png).expect("a PNG");
    let pipeline = rt
        .block_on(server.manager.get_model::<Arc<dyn TextToImage>>("tiny-sd"))
        .expect("tiny-sd is loaded");
    assert_eq!(image.pixels, red_square(pipeline.as_ref()));
}

#[test]
fn classifier_and_image_text_encoder_tensors_equal_in_process_results() {
    use modelmux::adapters::image::Image;
    use modelmux::adapters::lm::TextClassifier;
    use modelmux::adapters::vlm::ImageTextEncoder;

    let server = Running::tiny(ServerOptions::default());
    let client = server.client();
    let rt = tokio::runtime::Runtime::new().expect("a runtime");

    // A BERT entry with labels: probabilities in label order and the top label.
    let reply = client.post(
        "/v2/models/tiny-bert-classifier/infer",
        &texts_request("text", &TEXTS[..2]),
    );
    let body = reply.ok();
    let classifier = rt
        .block_on(
            server
                .manager
                .get_model::<Arc<dyn TextClassifier>>("tiny-bert-classifier"),
        )
        .expect("tiny-bert-classifier");
    let scored = classifier.classify(&TEXTS[..2]).expect("classification");
    let labels = classifier.labels().to_vec();
    let mut expected = Vec::new();
    for scores in &scored {
        for label in &labels {
            let score = scores
                .iter()
                .find(|s| &s.label == label)
                .expect("every label");
            expected.push(score.score);
        }
    }
    assert_eq!(body["outputs"][0]["name"], "probabilities");
    assert_eq!(body["outputs"][0]["shape"], json!([2, labels.len()]));
    assert_eq!(f32s(&body["outputs"][0]["data"]), expected);
    let top: Vec<&str> = scored.iter().map(|s| s[0].label.as_str()).collect();
    assert_eq!(body["outputs"][1]["data"], json!(top));

    // A dual encoder: an encoded image as BYTES (binary data) and a text, in one request.
    let png = std::fs::read(root().join("tests/data/images/astronaut-palette.png")).expect("image");
    let mut binary = (png.len() as u32).to_le_bytes().to_vec();
    binary.extend_from_slice(&png);
    let header = json!({
        "inputs": [
            { "name": "image", "shape": [1], "datatype": "BYTES",
              "parameters": { "binary_data_size": binary.len() } },
            { "name": "text", "shape": [1], "datatype": "BYTES", "data": ["an astronaut"] },
        ],
    })
    .to_string();
    let mut request = header.as_bytes().to_vec();
    request.extend_from_slice(&binary);
    let reply = client.post_bytes(
        "/v2/models/tiny-clip/infer",
        &[("Inference-Header-Content-Length", header.len().to_string())],
        &request,
    );
    let body = reply.ok();
    let encoder = rt
        .block_on(
            server
                .manager
                .get_model::<Arc<dyn ImageTextEncoder>>("tiny-clip"),
        )
        .expect("tiny-clip");
    let image = Image::decode(&png).expect("decodes");
    let images = rt
        .block_on(encoder.embed_images(std::slice::from_ref(&image)))
        .expect("image embedding");
    let texts = rt
        .block_on(encoder.embed_texts(&["an astronaut".to_owned()]))
        .expect("text embedding");
    let output = |name: &str| {
        body["outputs"]
            .as_array()
            .expect("outputs")
            .iter()
            .find(|o| o["name"] == name)
            .unwrap_or_else(|| panic!("no output {name}: {body}"))
            .clone()
    };
    assert_eq!(f32s(&output("embedding")["data"]), texts[0]);
    assert_eq!(f32s(&output("image_embedding")["data"]), images[0]);

    // Not an image: a 400 naming the input, not a panic.
    let reply = client.post(
        "/v2/models/tiny-clip/infer",
        &json!({ "inputs": [{ "name": "image", "shape": [1], "datatype": "BYTES", "data": ["not a picture"] }] }),
    );
    assert_eq!(reply.status, 400);
    assert!(reply.error().contains("`image`"), "{}", reply.error());
}

#[test]
fn the_generate_extension_answers_whole_and_streamed_text() {
    let server = Running::tiny(ServerOptions::default());
    let client = server.client();
    let request = json!({ "text_input": "Once upon a time", "parameters": { "max_tokens": 6 } });
    let whole = client.post("/v2/models/tiny-gpt2/generate", &request).ok();
    assert_eq!(whole["model_name"], "tiny-gpt2");
    assert_eq!(whole["finish_reason"], "length");

    let direct = tiny_gpt2_text(&server.manager, "Once upon a time", 6);
    assert_eq!(whole["text_output"], direct);

    let events = client.post_events("/v2/models/tiny-gpt2/generate_stream", &request);
    let events: Vec<Value> = events
        .iter()
        .map(|e| serde_json::from_str(e).expect("JSON events"))
        .collect();
    let joined: String = events
        .iter()
        .filter_map(|e| e["text_output"].as_str())
        .collect();
    assert_eq!(joined, direct);
    assert_eq!(events.last().expect("events")["finish_reason"], "length");

    let reply = client.post("/v2/models/tiny-bert/generate", &request);
    assert_eq!(reply.status, 400, "not a text generator");
}

/// The raw binary request of Triton's binary-data extension (`Inference-Header-Content-Length:
/// 0`): the body is the one input's data.
#[test]
fn raw_binary_requests_feed_a_model_with_one_input() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (catalog, exports) = tensor_catalog(dir.path(), "matmul");
    let server = Running::start(manager(&catalog, &exports), ServerOptions::default());
    let client = server.client();
    let raw = [("Inference-Header-Content-Length", "0".to_owned())];

    // matmul's `x` is FP32 [batch, 64]: 128 floats are two rows.
    let x: Vec<f32> = (0..128).map(|i| (i as f32 * 0.37).sin()).collect();
    let body: Vec<u8> = x.iter().flat_map(|v| v.to_le_bytes()).collect();
    let reply = client.post_bytes("/v2/models/matmul/infer", &raw, &body);
    let answer = reply.ok();
    let output = &answer["outputs"][0];
    assert_eq!(output["name"], "y");
    assert_eq!(output["shape"], json!([2, 64]));
    let x = Array2::from_shape_vec((2, 64), x).expect("shape");
    let direct = run_fixture("matmul", Inputs::new().with("x", x), "y");
    assert_eq!(f32s(&output["data"]), direct);

    // Bytes that do not fill whole rows of 64 are refused, naming the input and its shape.
    let reply = client.post_bytes("/v2/models/matmul/infer", &raw, &body[..100 * 4]);
    assert_eq!(reply.status, 400);
    assert!(
        reply.error().contains("`x`") && reply.error().contains("[-1, 64]"),
        "{}",
        reply.error()
    );

    // A text encoder's one input is BYTES: the body is one text.
    let tiny = Running::tiny(ServerOptions::default());
    let client = tiny.client();
    let reply = client.post_bytes("/v2/models/tiny-bert/infer", &raw, TEXTS[0].as_bytes());
    let answer = reply.ok();
    assert_eq!(answer["outputs"][0]["shape"], json!([1, 32]));
    assert_eq!(
        f32s(&answer["outputs"][0]["data"]),
        in_process_embeddings(&TEXTS[..1])[0]
    );

    // A model with two inputs cannot take one body: 400 saying why.
    let dir = tempfile::tempdir().expect("temp dir");
    let (catalog, exports) = add_catalog(dir.path());
    let add = Running::start(manager(&catalog, &exports), ServerOptions::default());
    let reply = add
        .client()
        .post_bytes("/v2/models/add/infer", &raw, &body[..32]);
    assert_eq!(reply.status, 400);
    assert!(
        reply.error().contains("exactly one input") && reply.error().contains("x, y"),
        "{}",
        reply.error()
    );
}

/// `GET /v2/models/{name}[/versions/{v}]/config`: Triton's model configuration, the metadata's
/// tensors with Triton's type names.
#[test]
fn the_config_endpoint_answers_tritons_model_configuration() {
    let server = Running::tiny(ServerOptions::default());
    let client = server.client();
    let config = client.get("/v2/models/tiny-bert/config").ok();
    let meta = client.get("/v2/models/tiny-bert").ok();
    assert_eq!(config["name"], "tiny-bert");
    assert_eq!(config["platform"], meta["platform"]);
    assert_eq!(config["backend"], "modelmux");
    assert_eq!(config["max_batch_size"], 0);
    assert_eq!(
        config["input"],
        json!([{ "name": "text", "data_type": "TYPE_STRING", "dims": meta["inputs"][0]["shape"] }])
    );
    assert_eq!(
        config["output"],
        json!([{ "name": "embedding", "data_type": "TYPE_FP32", "dims": meta["outputs"][0]["shape"] }])
    );
    assert_eq!(
        client
            .get("/v2/models/tiny-bert/versions/0.1.0/config")
            .ok(),
        config
    );
    assert_eq!(client.get("/v2/models/no-such-model/config").status, 404);

    // A tensor model's configuration is its loaded session's signature.
    let dir = tempfile::tempdir().expect("temp dir");
    let (catalog, exports) = add_catalog(dir.path());
    let add = Running::start(manager(&catalog, &exports), ServerOptions::default());
    let config = add.client().get("/v2/models/add/config").ok();
    assert_eq!(config["platform"], "onnx_onnxv1");
    assert_eq!(config["backend"], "onnxruntime");
    let tensor = |name: &str| json!({ "name": name, "data_type": "TYPE_FP32", "dims": [-1, 4] });
    assert_eq!(config["input"], json!([tensor("x"), tensor("y")]));
    assert_eq!(config["output"], json!([tensor("sum")]));
}
