//! `modelmux serve` against the same encoder in-process and against KServe's own Python model
//! server, on MiniLM embeddings with 16 concurrent clients, side by side in one run.
//!
//! `cargo bench -p modelmux-server --bench serve` (needs `cargo xtask export minilm` and
//! `cargo xtask kserve`). One load generator, here in Rust, drives every side: 16 client threads,
//! each with its own keep-alive connection, sending the same Open Inference Protocol v2 REST
//! requests (BYTES `text` as JSON; outputs as Triton's binary data, `binary_data_output`, or as
//! JSON). The sides:
//! - `in-process`: `TextEncoder::embed` on 16 threads, no HTTP;
//! - `http-binary` / `http-json`: `modelmux serve` on 127.0.0.1, outputs binary / JSON;
//! - `kserve-binary`: `xtask/python/kserve_minilm.py`, a `kserve.Model` on KServe's `ModelServer`
//!   (tokenizers + onnxruntime CPU, mean pooling), started here as a child process.
//!
//! Both servers run onnxruntime's CPU defaults (intra-op threads = one per core); modelmux as its
//! catalog says (two session instances, dynamic batching up to 64 rows or 2 ms), KServe with one
//! session run per request on its event loop's thread pool (it has no batching of its own) and
//! per-request logging off. Each side is measured in rounds whose order alternates, so a drift
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
use modelmux::{ManagerOptions, ModelManager};
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

/// KServe's `ModelServer` on the MiniLM export, a child process killed on drop.
struct KServe {
    child: Child,
    log: PathBuf,
    base: String,
}

impl KServe {
    /// Starts `kserve_minilm.py` in the environment `cargo xtask kserve` made and waits until
    /// the model is ready.
    fn start(root: &Path, export: &Path, max_length: u32) -> Self {
        let fixtures = std::env::var_os("MODELMUX_FIXTURES")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("target/modelmux-fixtures"));
        let pointer = fixtures.join("kserve.python");
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
        let child = Command::new(&python)
            .arg(root.join("xtask/python/kserve_minilm.py"))
            .arg(export)
            .arg(port.to_string())
            .arg(max_length.to_string())
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
                "{batch:<6} {:<14} round {round}  {rate:>10.2} requests/s  {:>10.1} texts/s",
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

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let catalog = Catalog::load(&root.join("models.yaml")).unwrap_or_else(|e| panic!("{e}"));
    let spec = catalog
        .get("minilm")
        .unwrap_or_else(|e| panic!("{e}"))
        .clone();
    let export = spec.export_dir(&catalog.exports_dir());
    let max_length = spec
        .params
        .tokenizer
        .as_ref()
        .and_then(|t| t.max_length)
        .unwrap_or(512);
    let mut options = ManagerOptions::local();
    options.loader = Arc::new(ServeLoader);
    let manager = ModelManager::new(catalog, options);
    let rt = tokio::runtime::Runtime::new().expect("a runtime");
    let encoder = rt
        .block_on(manager.get_model::<Arc<dyn TextEncoder>>("minilm"))
        .unwrap_or_else(|e| panic!("{e} (run `cargo xtask export minilm`)"));
    let server = Server::new(manager.clone(), ServerOptions::default());
    let listener = rt
        .block_on(modelmux_server::bind("127.0.0.1", 0))
        .expect("bind");
    let address = listener.local_addr().expect("address");
    rt.spawn(server.serve(listener, std::future::pending()));
    let ours = format!("http://{address}/v2/models/minilm/infer");
    let kserve = KServe::start(&root, &export, max_length);
    let theirs = format!("{}/v2/models/minilm/infer", kserve.base);

    println!("minilm embeddings, {CLIENTS} concurrent clients; requests/s per side and round");
    let mut results = Vec::new();
    for (batch, rounds, warmup, window) in [
        (1usize, 3, Duration::from_secs(1), Duration::from_secs(4)),
        (32, 3, Duration::from_secs(4), Duration::from_secs(12)),
    ] {
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
        let direct: Vec<f32> = encoder.embed(&refs).expect("embeddings").concat();
        for (who, url) in [("modelmux serve", &ours), ("kserve", &theirs)] {
            let served = binary_embeddings(url, &binary_body);
            assert_eq!(served.len(), direct.len(), "{who}: embedding size");
            let gap = served
                .iter()
                .zip(&direct)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            println!("check  batch {batch}: {who} max |Δ| vs in-process {gap:.2e}");
            assert!(
                gap < 1e-4,
                "{who} computes other embeddings (max |Δ| {gap})"
            );
        }

        let in_process: Work = {
            let encoder = encoder.clone();
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
        let mut sides = vec![
            ("in-process", in_process),
            ("http-binary", over_http(&ours, &binary_body)),
            ("http-json", over_http(&ours, &json_body)),
        ];
        if batch == 1 {
            sides.push(("kserve-binary", over_http(&theirs, &binary_body)));
        }
        let means = compare(batch, &sides, rounds, warmup, window);
        let mean = |name: &str| means[sides.iter().position(|s| s.0 == name).expect("a side")];
        results.push((
            format!("http-binary-b{batch}"),
            mean("http-binary"),
            mean("in-process"),
        ));
        results.push((
            format!("http-json-b{batch}"),
            mean("http-json"),
            mean("in-process"),
        ));
        if batch == 1 {
            results.push((
                "kserve-b1".to_owned(),
                mean("http-binary"),
                mean("kserve-binary"),
            ));
        }
    }
    for (key, ours, baseline) in results {
        println!(
            "compare {key} ours {ours:.3} baseline {baseline:.3} requests/s (ratio {:.3})",
            ours / baseline
        );
    }
    drop(kserve);
    drop(encoder);
}
