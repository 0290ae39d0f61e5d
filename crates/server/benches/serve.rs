//! `modelmux serve` against the same encoder in-process and against KServe's own Python model
//! server, on MiniLM embeddings with 16 concurrent clients, side by side in one run; and the two
//! servers on the tiny fixture encoder `tiny-bert`, whose model costs next to nothing, so that
//! their own per-request overhead shows.
//!
//! `cargo bench -p modelmux-server --bench serve` (needs `cargo xtask export minilm`, or
//! `$MODELMUX_EXPORTS` naming a folder with it, and `cargo xtask fixtures`, which makes
//! `tiny-bert` and the kserve environment; `cargo xtask bench` sets both up). One load
//! generator, here in Rust, drives every side: 16 client threads, each with its own keep-alive
//! connection, sending the same Open Inference Protocol v2 REST requests (BYTES `text` as JSON; outputs as Triton's binary data, `binary_data_output`, or as
//! JSON). The sides:
//! - `in-process`: `TextEncoder::embed` on 16 threads, no HTTP;
//! - `http-binary` / `http-json`: `modelmux serve` on 127.0.0.1, outputs binary / JSON;
//! - `kserve-binary`: `xtask/python/kserve_minilm.py`, a `kserve.Model` per encoder on KServe's
//!   `ModelServer` (tokenizers + onnxruntime CPU, mean pooling), started here as a child process.
//!
//! Both servers run onnxruntime's CPU defaults (intra-op threads = one per core); modelmux as its
//! catalog says (MiniLM: two session instances, dynamic batching up to 64 rows or 2 ms;
//! tiny-bert: one instance, no batching), KServe with one session run per request on its event
//! loop's thread pool (it has no batching of its own) and per-request logging off. Each side is measured in rounds whose order alternates, so a drift
//! of the shared machine falls on every side alike; a rate is completions between the first and
//! last completion of a window (no rounding to whole requests). Prints every round, then lines
//! `compare <key> ours <rate> baseline <rate> requests/s` that `cargo xtask bench` reads.
//! Asserts nothing about speed.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use modelmux::adapters::lm::TextEncoder;
use modelmux::registry::Catalog;
use modelmux::{Lease, ManagerOptions, ModelManager};
use modelmux_server::{ServeLoader, Server, ServerOptions};
use serde_json::json;

const CLIENTS: usize = 16;

/// One way of answering a request, run by every client thread in a loop.
type Work = Arc<dyn Fn() + Send + Sync>;

/// Runs `work` on `CLIENTS` threads: `warmup` unrecorded, then `window` recorded; returns the
/// requests per second between the first and the last completion inside the window.
fn measure(work: &Work, warmup: Duration, window: Duration) -> f64 {
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(Mutex::new(Vec::<Instant>::new()));
    let threads: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (work, stop, done) = (Arc::clone(work), Arc::clone(&stop), Arc::clone(&done));
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    work();
                    done.lock().expect("completions").push(Instant::now());
                }
            })
        })
        .collect();
    std::thread::sleep(warmup);
    let start = Instant::now();
    std::thread::sleep(window);
    let end = Instant::now();
    stop.store(true, Ordering::Relaxed);
    threads
        .into_iter()
        .for_each(|t| t.join().expect("client thread"));
    let times: Vec<Instant> = done
        .lock()
        .expect("completions")
        .iter()
        .copied()
        .filter(|t| (start..=end).contains(t))
        .collect();
    let (Some(first), Some(last)) = (times.iter().min(), times.iter().max()) else {
        panic!("no request completed in {window:?}: lengthen the window");
    };
    assert!(
        times.len() >= 3,
        "only {} requests completed in {window:?}: lengthen the window",
        times.len()
    );
    (times.len() - 1) as f64 / last.duration_since(*first).as_secs_f64()
}

/// POSTs `body` as JSON on the thread's own keep-alive connection; returns the binary-data
/// header length (0 for a plain JSON reply) and the body. Any status but 200 panics.
fn post(url: &str, body: &[u8]) -> (usize, Vec<u8>) {
    thread_local! {
        static AGENT: ureq::Agent = ureq::Agent::new_with_defaults();
    }
    AGENT.with(|agent| {
        let mut response = agent
            .post(url)
            .header("Content-Type", "application/json")
            .send(body)
            .unwrap_or_else(|e| panic!("POST {url}: {e}"));
        let json_len = response
            .headers()
            .get("inference-header-content-length")
            .and_then(|v| v.to_str().ok()?.parse().ok())
            .unwrap_or(0);
        let bytes = response.body_mut().read_to_vec().expect("body");
        (json_len, bytes)
    })
}

/// The FP32 embeddings of a reply with binary outputs.
fn binary_embeddings(url: &str, body: &[u8]) -> Vec<f32> {
    let (json_len, bytes) = post(url, body);
    assert!(json_len > 0, "{url} did not answer with binary data");
    bytes[json_len..]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// KServe's `ModelServer` on the bench's encoders, a child process killed on drop.
struct KServe {
    child: Child,
    log: PathBuf,
    base: String,
}

impl KServe {
    /// Starts `kserve_minilm.py` in the environment `cargo xtask kserve` made with one model per
    /// `(name, export folder, max_length)` and waits until every model is ready.
    fn start(root: &Path, models: &[(&str, PathBuf, u32)]) -> Self {
        let pointer = fixtures(root).join("kserve.python");
        let python = match std::fs::read_to_string(&pointer).map(|p| PathBuf::from(p.trim())) {
            Ok(python) if python.exists() => python,
            _ => panic!(
                "{} is missing or names a Python that is gone: run `cargo xtask kserve`, which installs the pinned kserve 0.21.0 baseline",
                pointer.display()
            ),
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let log = std::env::temp_dir().join(format!("modelmux-serve-bench-kserve-{port}.log"));
        let file = std::fs::File::create(&log).expect("the KServe log file");
        let mut command = Command::new(&python);
        command
            .arg(root.join("xtask/python/kserve_minilm.py"))
            .arg(port.to_string());
        for (name, export, max_length) in models {
            command.arg(name).arg(export).arg(max_length.to_string());
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log file"))
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", python.display()));
        let mut server = Self {
            child,
            log,
            base: format!("http://127.0.0.1:{port}"),
        };
        let ready = format!("{}/v2/models/minilm/ready", server.base);
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!(
                    "kserve_minilm.py exited with {status}:\n{}",
                    server.log_tail()
                );
            }
            if ureq::get(&ready).call().is_ok() {
                return server;
            }
            assert!(
                Instant::now() < deadline,
                "KServe was not ready in 180 s:\n{}",
                server.log_tail()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    fn log_tail(&self) -> String {
        let mut text = String::new();
        let _ = std::fs::File::open(&self.log).and_then(|mut f| f.read_to_string(&mut text));
        let lines: Vec<&str> = text.lines().rev().take(20).collect();
        lines.into_iter().rev().collect::<Vec<_>>().join("\n")
    }
}

impl Drop for KServe {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

/// The sides of one batch size, measured in `rounds` rounds of alternating order; returns each
/// side's mean rate.
fn compare(
    label: &str,
    batch: usize,
    sides: &[(&str, Work)],
    rounds: usize,
    warmup: Duration,
    window: Duration,
) -> Vec<f64> {
    let mut rates = vec![Vec::new(); sides.len()];
    for round in 0..rounds {
        let mut order: Vec<usize> = (0..sides.len()).collect();
        if round % 2 == 1 {
            order.reverse();
        }
        for i in order {
            let rate = measure(&sides[i].1, warmup, window);
            println!(
                "{label:<13} {:<14} round {round}  {rate:>10.2} requests/s  {:>10.1} texts/s",
                sides[i].0,
                rate * batch as f64
            );
            rates[i].push(rate);
        }
    }
    rates
        .iter()
        .map(|r| r.iter().sum::<f64>() / r.len() as f64)
        .collect()
}

/// The folder `cargo xtask fixtures` fills: `$MODELMUX_FIXTURES`, else `target/modelmux-fixtures`.
fn fixtures(root: &Path) -> PathBuf {
    std::env::var_os("MODELMUX_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target/modelmux-fixtures"))
}

/// A text encoder of `catalog`, in-process and behind `modelmux serve` on 127.0.0.1:0 (on `rt`),
/// with what KServe needs to serve the same export: (name, export folder, max_length).
struct Encoder {
    id: &'static str,
    encoder: Lease<Arc<dyn TextEncoder>>,
    url: String,
    kserve: (&'static str, PathBuf, u32),
}

fn encoder(
    rt: &tokio::runtime::Runtime,
    catalog: Catalog,
    exports: Option<PathBuf>,
    id: &'static str,
    hint: &str,
) -> Encoder {
    let spec = catalog.get(id).unwrap_or_else(|e| panic!("{e}")).clone();
    let exports = exports.unwrap_or_else(|| catalog.exports_dir());
    let max_length = spec
        .params
        .tokenizer
        .as_ref()
        .and_then(|t| t.max_length)
        .unwrap_or(512);
    let mut options = ManagerOptions::local();
    options.loader = Arc::new(ServeLoader);
    options.exports_dir = Some(exports.clone());
    let manager = ModelManager::new(catalog, options);
    let encoder = rt
        .block_on(manager.get_model::<Arc<dyn TextEncoder>>(id))
        .unwrap_or_else(|e| panic!("{e} (run `{hint}`)"));
    let listener = rt
        .block_on(modelmux_server::bind("127.0.0.1", 0))
        .expect("bind");
    let address = listener.local_addr().expect("address");
    let server = Server::new(manager, ServerOptions::default());
    rt.spawn(server.serve(listener, std::future::pending()));
    Encoder {
        id,
        encoder,
        url: format!("http://{address}/v2/models/{id}/infer"),
        kserve: (id, spec.export_dir(&exports), max_length),
    }
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let rt = tokio::runtime::Runtime::new().expect("a runtime");
    let load = |path: PathBuf| Catalog::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let minilm = encoder(
        &rt,
        load(root.join("models.yaml")),
        std::env::var_os("MODELMUX_EXPORTS").map(PathBuf::from),
        "minilm",
        "cargo xtask export minilm",
    );
    let tiny = encoder(
        &rt,
        load(root.join("tests/data/tiny-models.yaml")),
        Some(fixtures(&root).join("tiny/exports")),
        "tiny-bert",
        "cargo xtask fixtures",
    );
    let kserve = KServe::start(&root, &[minilm.kserve.clone(), tiny.kserve.clone()]);

    println!("text embeddings, {CLIENTS} concurrent clients; requests/s per side and round");
    let mut results = Vec::new();
    for (model, batch, rounds, warmup, window) in [
        (
            &minilm,
            1usize,
            3,
            Duration::from_secs(1),
            Duration::from_secs(4),
        ),
        (
            &minilm,
            32,
            3,
            Duration::from_secs(4),
            Duration::from_secs(12),
        ),
        (&tiny, 1, 3, Duration::from_secs(1), Duration::from_secs(3)),
    ] {
        let id = model.id;
        let theirs = format!("{}/v2/models/{id}/infer", kserve.base);
        let texts: Vec<String> = (0..batch)
            .map(|i| format!("sentence number {i} about serving many models on scarce memory"))
            .collect();
        let inputs =
            json!([{ "name": "text", "shape": [batch], "datatype": "BYTES", "data": texts }]);
        let json_body: Arc<[u8]> = json!({ "inputs": inputs }).to_string().into_bytes().into();
        let binary_body: Arc<[u8]> =
            json!({ "inputs": inputs, "parameters": { "binary_data_output": true } })
                .to_string()
                .into_bytes()
                .into();

        // Both servers must compute what the encoder computes in-process.
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let direct: Vec<f32> = model.encoder.embed(&refs).expect("embeddings").concat();
        for (who, url) in [("modelmux serve", &model.url), ("kserve", &theirs)] {
            let served = binary_embeddings(url, &binary_body);
            assert_eq!(served.len(), direct.len(), "{who}: embedding size");
            let gap = served
                .iter()
                .zip(&direct)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            println!("check  {id} batch {batch}: {who} max |Δ| vs in-process {gap:.2e}");
            assert!(
                gap < 1e-4,
                "{who} computes other {id} embeddings (max |Δ| {gap})"
            );
        }

        let in_process: Work = {
            let encoder = model.encoder.clone();
            let texts = texts.clone();
            Arc::new(move || {
                let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
                encoder.embed(&refs).expect("embeddings");
            })
        };
        let over_http = |url: &String, body: &Arc<[u8]>| -> Work {
            let (url, body) = (url.clone(), Arc::clone(body));
            Arc::new(move || {
                post(&url, &body);
            })
        };
        // MiniLM: HTTP against in-process at both batch sizes, KServe at batch 1; tiny-bert,
        // whose model costs next to nothing, shows the two servers' own overhead.
        let mut sides = vec![("http-binary", over_http(&model.url, &binary_body))];
        if id == "minilm" {
            sides.push(("in-process", in_process));
            sides.push(("http-json", over_http(&model.url, &json_body)));
        }
        if batch == 1 {
            sides.push(("kserve-binary", over_http(&theirs, &binary_body)));
        }
        let means = compare(
            &format!("{id} {batch}"),
            batch,
            &sides,
            rounds,
            warmup,
            window,
        );
        let mean = |name: &str| sides.iter().position(|s| s.0 == name).map(|i| means[i]);
        let http = mean("http-binary").expect("http-binary");
        if let (Some(json), Some(direct)) = (mean("http-json"), mean("in-process")) {
            results.push((format!("http-binary-b{batch}"), http, direct));
            results.push((format!("http-json-b{batch}"), json, direct));
        }
        if let Some(theirs) = mean("kserve-binary") {
            let key = if id == "minilm" {
                "kserve-b1"
            } else {
                "kserve-tiny-b1"
            };
            results.push((key.to_owned(), http, theirs));
        }
    }
    for (key, ours, baseline) in results {
        println!(
            "compare {key} ours {ours:.3} baseline {baseline:.3} requests/s (ratio {:.3})",
            ours / baseline
        );
    }
    drop(kserve);
}
