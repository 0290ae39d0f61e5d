//! `modelmux serve`'s HTTP overhead: MiniLM embeddings with 16 concurrent clients, at batch 1
//! and 32, in-process (`TextEncoder::embed` on 16 threads) against OIP JSON requests to the
//! server on 127.0.0.1, side by side in one run.
//!
//! `cargo bench -p modelmux-server --bench serve` (needs `cargo xtask export minilm`). Prints
//! requests/s and texts/s per row and the HTTP/in-process ratio; asserts nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use modelmux::adapters::lm::TextEncoder;
use modelmux::registry::Catalog;
use modelmux::{ManagerOptions, ModelManager};
use modelmux_server::{ServeLoader, Server, ServerOptions};
use serde_json::json;

const CLIENTS: usize = 16;
const RUN: Duration = Duration::from_secs(5);

/// Runs `work` on `CLIENTS` threads for `RUN`; returns requests per second.
fn measure(work: impl Fn() + Send + Sync + 'static) -> f64 {
    let work = Arc::new(work);
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    // One untimed request per client warms sessions and connections.
    let threads: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (work, stop, done) = (Arc::clone(&work), Arc::clone(&stop), Arc::clone(&done));
            std::thread::spawn(move || {
                work();
                while !stop.load(Ordering::Relaxed) {
                    work();
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let start_count = done.load(Ordering::Relaxed);
    let start = Instant::now();
    std::thread::sleep(RUN);
    let count = done.load(Ordering::Relaxed) - start_count;
    let elapsed = start.elapsed();
    stop.store(true, Ordering::Relaxed);
    threads
        .into_iter()
        .for_each(|t| t.join().expect("client thread"));
    count as f64 / elapsed.as_secs_f64()
}

fn main() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let catalog = Catalog::load(&root.join("models.yaml")).unwrap_or_else(|e| panic!("{e}"));
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
    let url = format!("http://{address}/v2/models/minilm/infer");

    println!("minilm embeddings, {CLIENTS} concurrent clients, {RUN:?} per row");
    println!(
        "{:<8} {:>12} {:>12} {:>12} {:>10}",
        "batch", "path", "requests/s", "texts/s", "vs in-proc"
    );
    for batch in [1usize, 32] {
        let texts: Vec<String> = (0..batch)
            .map(|i| format!("sentence number {i} about serving many models on scarce memory"))
            .collect();
        let run_in_process = || {
            let encoder = encoder.clone();
            let texts = texts.clone();
            measure(move || {
                let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
                encoder.embed(&refs).expect("embeddings");
            })
        };
        let before = run_in_process();
        let body = json!({
            "inputs": [{ "name": "text", "shape": [batch], "datatype": "BYTES", "data": texts }],
        })
        .to_string();
        let over_http = {
            let url = url.clone();
            measure(move || {
                thread_local! {
                    static AGENT: ureq::Agent = ureq::Agent::new_with_defaults();
                }
                AGENT.with(|agent| {
                    let mut response = agent
                        .post(&url)
                        .header("Content-Type", "application/json")
                        .send(body.as_bytes())
                        .expect("infer");
                    let _ = response.body_mut().read_to_vec().expect("body");
                });
            })
        };
        // In-process runs before and after HTTP, so a drift of the machine (warm-up, other
        // processes) shows as the gap between the two rather than as HTTP's cost.
        let after = run_in_process();
        let in_process = (before + after) / 2.0;
        for (path, rate) in [
            ("in-process", before),
            ("http", over_http),
            ("in-process", after),
        ] {
            println!(
                "{batch:<8} {path:>12} {rate:>12.1} {:>12.1} {:>10.3}",
                rate * batch as f64,
                rate / in_process
            );
        }
    }
    drop(encoder);
}
