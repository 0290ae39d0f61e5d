//! The remote adapters against a scripted OpenAI-compatible server on 127.0.0.1, started by each
//! test: success, streaming, 401, 429 with `Retry-After`, 500 then success, timeout, malformed
//! JSON, and proof that the API key never reaches logs or errors.
//!
//! The key can only come from the environment, and setting environment variables in a running
//! test process is `unsafe`; so each test re-runs itself in a child process with the key set
//! (`MODELMUX_TEST_REMOTE_KEY`), and the parent checks that the child passed and that nothing it
//! printed (its TRACE-level logs and the errors it prints) contains the key.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::ops::ControlFlow;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use modelmux_adapters::diffusion::{Control, ImageRequest, RgbImage, TextToImage};
use modelmux_adapters::lm::{FinishReason, GenerationOptions, Prompt, TextEncoder, TextGenerator};
use modelmux_adapters::remote::RemoteError;
use modelmux_adapters::{AdapterError, LoadContext, Loaded};
use modelmux_registry::Catalog;
use modelmux_runtime_ort::SessionSpec;

const KEY_VAR: &str = "MODELMUX_TEST_REMOTE_KEY";
const KEY: &str = "sk-modelmux-test-4f1c9a2b7e-SECRET";

/// In the parent (no key in the environment): runs `test` in a child process with the key set,
/// checks it, and returns true. In the child: installs a TRACE log subscriber and returns false,
/// so the test body runs.
fn run_in_child_with_key(test: &str) -> bool {
    if std::env::var_os(KEY_VAR).is_some() {
        let _ = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(std::io::stderr)
            .try_init();
        return false;
    }
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new(exe)
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(KEY_VAR, KEY)
        .output()
        .unwrap();
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "{test} failed in the child:\n{printed}"
    );
    assert!(
        printed.contains("1 passed"),
        "{test} did not run:\n{printed}"
    );
    assert!(
        printed.contains("remote request"),
        "the child logged nothing at TRACE level:\n{printed}"
    );
    assert!(
        !printed.contains(KEY),
        "the API key was printed:\n{printed}"
    );
    true
}

/// One scripted answer.
#[derive(Clone)]
struct Reply {
    status: u16,
    headers: Vec<(&'static str, String)>,
    /// Written in order, `chunk_delay` apart (several chunks make a stream).
    chunks: Vec<String>,
    delay: Duration,
    chunk_delay: Duration,
}

impl Reply {
    fn json(status: u16, body: &str) -> Self {
        Self {
            status,
            headers: vec![("Content-Type", "application/json".into())],
            chunks: vec![body.to_owned()],
            delay: Duration::ZERO,
            chunk_delay: Duration::ZERO,
        }
    }

    fn header(mut self, name: &'static str, value: &str) -> Self {
        self.headers.push((name, value.to_owned()));
        self
    }
}

/// What the server received.
#[derive(Debug, Clone)]
struct Received {
    request_line: String,
    headers: Vec<(String, String)>,
    body: serde_json::Value,
}

impl Received {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

struct Server {
    base_url: String,
    received: Arc<Mutex<Vec<Received>>>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// Answers one connection per reply, in order, then stops.
    fn start(replies: Vec<Reply>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base_url = format!("http://{}/v1", listener.local_addr().unwrap());
        let received = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&received);
        let thread = std::thread::spawn(move || {
            for reply in replies {
                let Ok((stream, _)) = listener.accept() else {
                    return;
                };
                handle(stream, &reply, &log);
            }
        });
        Self {
            base_url,
            received,
            thread: Some(thread),
        }
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(t) = self.thread.take()
            && !std::thread::panicking()
        {
            // Every scripted reply must have been asked for.
            let _ = t.join();
        }
    }
}

/// Reads one request, records it (before answering, so a test sees it as soon as the client
/// has its answer), then writes `reply`.
fn handle(stream: TcpStream, reply: &Reply, log: &Mutex<Vec<Received>>) -> Option<()> {
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line).ok()?;
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).ok()?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_owned(), v.trim().to_owned()));
        }
    }
    let length: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    log.lock().ok()?.push(Received {
        request_line: request_line.trim_end().to_owned(),
        headers,
        body: serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
    });
    std::thread::sleep(reply.delay);
    let mut out = stream;
    let mut head = format!(
        "HTTP/1.1 {} Scripted\r\nConnection: close\r\n",
        reply.status
    );
    for (k, v) in &reply.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if reply.chunks.len() == 1 {
        head.push_str(&format!("Content-Length: {}\r\n", reply.chunks[0].len()));
    }
    head.push_str("\r\n");
    let _ = out.write_all(head.as_bytes());
    for chunk in &reply.chunks {
        let _ = out.write_all(chunk.as_bytes());
        let _ = out.flush();
        std::thread::sleep(reply.chunk_delay);
    }
    Some(())
}

/// A catalog with the three remote architectures pointed at `base_url`.
fn catalog(base_url: &str, timeout_s: f64) -> (tempfile::TempDir, Catalog) {
    catalog_with_key(base_url, timeout_s, KEY_VAR)
}

fn catalog_with_key(base_url: &str, timeout_s: f64, key_var: &str) -> (tempfile::TempDir, Catalog) {
    let dir = tempfile::tempdir().unwrap();
    let extra = format!(
        "base_url: \"{base_url}\", api_key_env: {key_var}, timeout_s: {timeout_s}, max_retries: 2, initial_backoff_ms: 10"
    );
    let yaml = format!(
        "catalog_version: 1\nmodels:\n  diffusion:\n    images:\n      version: 1.0.0\n      architecture: dall-e\n      tasks: [text-to-image]\n      source: openai:dall-e-3\n      params:\n        extra: {{ {extra}, size: 16x8, quality: hd }}\n  lm:\n    chat:\n      version: 1.0.0\n      architecture: openai-chat\n      tasks: [chat]\n      source: openai:gpt-4o-mini\n      params:\n        generation: {{ max_new_tokens: 32, temperature: 0.2 }}\n        extra: {{ {extra} }}\n    embed:\n      version: 1.0.0\n      architecture: openai-embedding\n      tasks: [text-embedding]\n      source: openai:text-embedding-3-small\n      params:\n        embedding: {{ dimensions: 3 }}\n        extra: {{ {extra} }}\n"
    );
    let path = dir.path().join("models.yaml");
    std::fs::write(&path, yaml).unwrap();
    let catalog = Catalog::load(&path).unwrap();
    (dir, catalog)
}

fn load(catalog: &Catalog, id: &str) -> Result<Loaded, AdapterError> {
    let spec = catalog.get(id).unwrap();
    modelmux_adapters::load(&LoadContext {
        spec,
        export_dir: std::env::temp_dir(),
        session: SessionSpec::cpu(),
        queue_limit: 4,
    })
}

fn chat(server: &Server, timeout_s: f64) -> Arc<dyn TextGenerator> {
    let (_dir, catalog) = catalog(&server.base_url, timeout_s);
    let loaded = load(&catalog, "chat").unwrap();
    loaded
        .object
        .downcast_ref::<Arc<dyn TextGenerator>>()
        .unwrap()
        .clone()
}

fn embeddings(server: &Server) -> Arc<dyn TextEncoder> {
    let (_dir, catalog) = catalog(&server.base_url, 2.0);
    let loaded = load(&catalog, "embed").unwrap();
    loaded
        .object
        .downcast_ref::<Arc<dyn TextEncoder>>()
        .unwrap()
        .clone()
}

const EMBEDDINGS: &str = r#"{"object":"list","data":[
  {"object":"embedding","index":1,"embedding":[0.4,0.5,0.6]},
  {"object":"embedding","index":0,"embedding":[0.1,0.2,0.3]}],"model":"text-embedding-3-small"}"#;

fn remote_error(err: AdapterError) -> RemoteError {
    // Printed on purpose: the parent checks the key is not in what the child printed.
    eprintln!("error: {err} / {err:?}");
    match err {
        AdapterError::RemoteApi { error, .. } => error,
        other => panic!("not a remote error: {other}"),
    }
}

#[test]
fn embeddings_success_sends_the_key_and_orders_by_index() {
    if run_in_child_with_key("remote::embeddings_success_sends_the_key_and_orders_by_index") {
        return;
    }
    let server = Server::start(vec![Reply::json(200, EMBEDDINGS)]);
    let encoder = embeddings(&server);
    assert_eq!(encoder.dimensions(), 3);
    let vectors = encoder.embed(&["first", "second"]).unwrap();
    assert_eq!(vectors, vec![vec![0.1, 0.2, 0.3], vec![0.4, 0.5, 0.6]]);
    let got = server.received();
    assert_eq!(got[0].request_line, "POST /v1/embeddings HTTP/1.1");
    assert_eq!(
        got[0].header("authorization"),
        Some(&*format!("Bearer {KEY}"))
    );
    assert_eq!(got[0].body["model"], "text-embedding-3-small");
    assert_eq!(got[0].body["input"], serde_json::json!(["first", "second"]));
}

#[test]
fn chat_streams_tokens_as_they_arrive() {
    if run_in_child_with_key("remote::chat_streams_tokens_as_they_arrive") {
        return;
    }
    let event = |content: &str| {
        format!(
            "data: {{\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{content}\"}},\"finish_reason\":null}}]}}\n\n"
        )
    };
    let reply = Reply {
        status: 200,
        headers: vec![("Content-Type", "text/event-stream".into())],
        chunks: vec![
            event("Hel"),
            event("lo"),
            event(", world"),
            "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n"
                .into(),
            "data: [DONE]\n\n".into(),
        ],
        delay: Duration::ZERO,
        chunk_delay: Duration::from_millis(100),
    };
    let server = Server::start(vec![reply.clone(), reply]);
    let generator = chat(&server, 2.0);
    let started = Instant::now();
    let mut arrivals = Vec::new();
    let results = generator
        .generate_stream(
            &[Prompt::from("say hello")],
            &GenerationOptions {
                max_new_tokens: Some(8),
                ..GenerationOptions::default()
            },
            &mut |e| {
                arrivals.push((e.text.to_owned(), started.elapsed()));
                ControlFlow::Continue(())
            },
        )
        .unwrap();
    assert_eq!(results[0].text, "Hello, world");
    assert_eq!(results[0].finish_reason, FinishReason::EndOfSequence);
    let pieces: Vec<&str> = arrivals.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(pieces, ["Hel", "lo", ", world"]);
    // Streamed, not buffered: the first piece came well before the last.
    assert!(
        arrivals[2].1 - arrivals[0].1 >= Duration::from_millis(150),
        "{arrivals:?}"
    );
    let body = &server.received()[0].body;
    assert_eq!(body["stream"], true);
    assert_eq!(body["max_tokens"], 8);
    assert_eq!(body["temperature"], 0.2);
    assert_eq!(body["messages"][0]["content"], "say hello");
    // Breaking out of the callback stops reading.
    let stopped = generator
        .generate_stream(
            &[Prompt::from("again")],
            &GenerationOptions::default(),
            &mut |_| ControlFlow::Break(()),
        )
        .unwrap();
    assert_eq!(stopped[0].text, "Hel");
    assert_eq!(stopped[0].finish_reason, FinishReason::Cancelled);
}

#[test]
fn unauthorized_is_an_auth_error_without_the_key() {
    if run_in_child_with_key("remote::unauthorized_is_an_auth_error_without_the_key") {
        return;
    }
    // The server echoes the key, as OpenAI's "Incorrect API key provided" message does.
    let body = format!(
        r#"{{"error":{{"message":"Incorrect API key provided: {KEY}.","type":"invalid_request_error","code":"invalid_api_key"}}}}"#
    );
    let server = Server::start(vec![Reply::json(401, &body)]);
    let err = remote_error(embeddings(&server).embed(&["x"]).unwrap_err());
    let RemoteError::Auth { status, message } = &err else {
        panic!("{err:?}");
    };
    assert_eq!(*status, 401);
    assert!(message.contains("[redacted]"), "{message}");
    assert!(!format!("{err} {err:?}").contains(KEY));
    assert_eq!(server.received().len(), 1, "401 is not retried");
}

#[test]
fn rate_limit_waits_for_retry_after_then_succeeds() {
    if run_in_child_with_key("remote::rate_limit_waits_for_retry_after_then_succeeds") {
        return;
    }
    let server = Server::start(vec![
        Reply::json(429, r#"{"error":{"message":"Rate limit reached"}}"#)
            .header("Retry-After", "1"),
        Reply::json(200, EMBEDDINGS),
    ]);
    let started = Instant::now();
    let vectors = embeddings(&server).embed(&["a", "b"]).unwrap();
    let waited = started.elapsed();
    assert_eq!(vectors.len(), 2);
    assert_eq!(server.received().len(), 2);
    assert!(
        waited >= Duration::from_millis(950),
        "retried after {waited:?}"
    );
}

#[test]
fn rate_limit_past_the_retries_is_a_quota_error() {
    if run_in_child_with_key("remote::rate_limit_past_the_retries_is_a_quota_error") {
        return;
    }
    let quota = Reply::json(
        429,
        r#"{"error":{"message":"You exceeded your current quota"}}"#,
    )
    .header("Retry-After", "0");
    let server = Server::start(vec![quota.clone(), quota.clone(), quota]);
    let err = remote_error(embeddings(&server).embed(&["a"]).unwrap_err());
    assert!(
        matches!(&err, RemoteError::Quota { attempts: 3, message, .. } if message.contains("quota")),
        "{err:?}"
    );
}

#[test]
fn server_error_then_success_is_retried_with_backoff() {
    if run_in_child_with_key("remote::server_error_then_success_is_retried_with_backoff") {
        return;
    }
    let server = Server::start(vec![
        Reply::json(500, r#"{"error":{"message":"internal"}}"#),
        Reply::json(503, "Service Unavailable"),
        Reply::json(200, EMBEDDINGS),
    ]);
    let vectors = embeddings(&server).embed(&["a", "b"]).unwrap();
    assert_eq!(vectors[0], vec![0.1, 0.2, 0.3]);
    assert_eq!(server.received().len(), 3);
}

#[test]
fn bad_request_is_not_retried() {
    if run_in_child_with_key("remote::bad_request_is_not_retried") {
        return;
    }
    let server = Server::start(vec![Reply::json(
        400,
        r#"{"error":{"message":"'input' is required"}}"#,
    )]);
    let err = remote_error(embeddings(&server).embed(&["a"]).unwrap_err());
    assert_eq!(
        err,
        RemoteError::BadRequest {
            status: 400,
            message: "'input' is required".into()
        }
    );
    assert_eq!(server.received().len(), 1);
}

#[test]
fn a_slow_server_is_a_timeout() {
    if run_in_child_with_key("remote::a_slow_server_is_a_timeout") {
        return;
    }
    let mut slow = Reply::json(200, EMBEDDINGS);
    slow.delay = Duration::from_millis(1500);
    let server = Server::start(vec![slow]);
    let (_dir, catalog) = catalog(&server.base_url, 0.3);
    let loaded = load(&catalog, "embed").unwrap();
    let encoder = loaded
        .object
        .downcast_ref::<Arc<dyn TextEncoder>>()
        .unwrap()
        .clone();
    let started = Instant::now();
    let err = remote_error(encoder.embed(&["a"]).unwrap_err());
    assert!(matches!(err, RemoteError::Timeout { .. }), "{err:?}");
    assert!(started.elapsed() < Duration::from_millis(1400));
}

#[test]
fn malformed_json_is_a_typed_error() {
    if run_in_child_with_key("remote::malformed_json_is_a_typed_error") {
        return;
    }
    let server = Server::start(vec![
        Reply::json(200, "{\"data\": [oops"),
        Reply::json(200, r#"{"data":[{"index":0}]}"#),
    ]);
    let encoder = embeddings(&server);
    let err = remote_error(encoder.embed(&["a"]).unwrap_err());
    assert!(
        matches!(err, RemoteError::MalformedResponse { .. }),
        "{err:?}"
    );
    let err = remote_error(encoder.embed(&["a"]).unwrap_err());
    assert!(
        matches!(err, RemoteError::MalformedResponse { .. }),
        "{err:?}"
    );
}

#[test]
fn images_decode_base64_pngs() {
    if run_in_child_with_key("remote::images_decode_base64_pngs") {
        return;
    }
    let image = RgbImage::new(16, 8, (0..16 * 8 * 3).map(|i| (i % 251) as u8).collect()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.png");
    modelmux_adapters::diffusion::write_png(&path, &image, &[]).unwrap();
    let b64 = base64(&std::fs::read(&path).unwrap());
    let server = Server::start(vec![Reply::json(
        200,
        &format!(r#"{{"created":1,"data":[{{"b64_json":"{b64}"}}]}}"#),
    )]);
    let (_dir, catalog) = catalog(&server.base_url, 2.0);
    let loaded = load(&catalog, "images").unwrap();
    let images = loaded
        .object
        .downcast_ref::<Arc<dyn TextToImage>>()
        .unwrap()
        .clone();
    assert_eq!((images.defaults().width, images.defaults().height), (16, 8));
    let out = images
        .generate(&ImageRequest::new("a red fox"), &mut |_| Control::Continue)
        .unwrap();
    assert_eq!(out.images, vec![image]);
    let body = &server.received()[0].body;
    assert_eq!(body["prompt"], "a red fox");
    assert_eq!(body["size"], "16x8");
    assert_eq!(body["quality"], "hd");
    assert_eq!(body["response_format"], "b64_json");
    assert!(
        body.get("base_url").is_none(),
        "client settings stay out of the body"
    );
}

#[test]
fn a_missing_key_is_a_typed_load_error() {
    const UNSET: &str = "MODELMUX_TEST_REMOTE_KEY_NEVER_SET";
    assert!(std::env::var_os(UNSET).is_none());
    let (_dir, catalog) = catalog_with_key("http://127.0.0.1:9/v1", 1.0, UNSET);
    let err = load(&catalog, "chat").unwrap_err();
    assert!(
        matches!(
            &err,
            AdapterError::RemoteApi {
                error: RemoteError::MissingApiKey { variable },
                ..
            } if variable == UNSET
        ),
        "{err}"
    );
}

/// Standard base64 with padding (the test's own, to keep the test crate's dependencies small).
fn base64(bytes: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(TABLE[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}
