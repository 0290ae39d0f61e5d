//! CLIP-style image embedding, images per second, side by side in one run on the same files and
//! the same ONNX file: modelmux (decoding with the `image` crate, Pillow-exact preprocessing in
//! Rust, ONNX Runtime through a session pool) against Python (PIL, Hugging Face's processor with
//! its PIL backend, onnxruntime). Two measures: preprocessing alone at CLIP's real config
//! (shortest edge 224, bicubic, centre crop 224), and embedding on tiny-clip's vision tower at
//! batch 1 and 16 (a 30×30 model, so preprocessing dominates, as it does for real CLIP on a GPU).
//! Ratios are what to read; absolute rates depend on the machine.
//!
//! Run it through `cargo xtask bench`, which sets up and names everything it needs; by hand,
//! `cargo bench -p modelmux-adapters --bench vlm` after `cargo xtask fixtures`. The Python side
//! (`xtask/python/vlm_bench.py`) runs with `$MODELMUX_PYTHON` (the export environment's);
//! `$MODELMUX_FIXTURES` names the fixtures folder.
//! A custom harness: the question is a ratio between set-ups run in the same process.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Instant;

use modelmux_adapters::LoadContext;
use modelmux_adapters::image::{Filter, Image, ImageProcessor, ResizeTo};
use modelmux_adapters::vlm::{DualEncoder, ImageTextEncoder};
use modelmux_registry::Catalog;
use modelmux_runtime_ort::SessionSpec;

/// Each photo this many times.
mod support;

const REPEAT: usize = 16;
const PHOTOS: [&str; 5] = [
    "astronaut.jpg",
    "coffee.jpg",
    "chelsea.png",
    "rocket.jpg",
    "camera-gray.png",
];

/// Runs a future on this thread (the bench needs no async runtime: the session pool answers
/// through a channel that wakes this thread).
fn block_on<F: Future>(future: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut context = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut context) {
            return output;
        }
        std::thread::park();
    }
}

fn rate(items: usize, mut work: impl FnMut()) -> f64 {
    work();
    let start = Instant::now();
    work();
    items as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let fixtures = std::env::var_os("MODELMUX_FIXTURES")
        .map_or_else(|| root.join("target/modelmux-fixtures"), PathBuf::from);
    let images_dir = root.join("tests/data/images");
    let paths: Vec<PathBuf> = PHOTOS.iter().map(|p| images_dir.join(p)).collect();
    let blobs: Vec<Vec<u8>> = paths
        .iter()
        .flat_map(|p| std::iter::repeat_n(std::fs::read(p).expect("read image"), REPEAT))
        .collect();
    let n = blobs.len();
    let decode = || -> Vec<Image> {
        blobs
            .iter()
            .map(|b| Image::decode(b).expect("decode"))
            .collect()
    };

    let clip224 = ImageProcessor {
        resize: Some(ResizeTo::ShortestEdge(224)),
        filter: Filter::Bicubic,
        crop: Some((224, 224)),
        rescale_factor: Some(1.0 / 255.0),
        rescale_offset: false,
        mean: Some([0.481_454_66, 0.457_827_5, 0.408_210_73]),
        std: Some([0.268_629_54, 0.261_302_6, 0.275_777_1]),
        include_top: false,
    };
    let pre = rate(n, || {
        for image in decode() {
            clip224
                .pixel_values("clip-224", std::slice::from_ref(&image))
                .expect("preprocess");
        }
    });

    let catalog = Catalog::load(&root.join("tests/data/tiny-models.yaml")).expect("tiny catalog");
    let spec = catalog.get("tiny-clip").expect("tiny-clip").clone();
    let export = fixtures.join("tiny/exports/tiny-clip/0.1.0");
    let context = LoadContext {
        spec: &spec,
        export_dir: export.clone(),
        session: SessionSpec::cpu(),
        queue_limit: 1024,
    };
    let encoder = DualEncoder::load(&context).expect("load tiny-clip (run `cargo xtask fixtures`)");
    let embed = |batch: usize| {
        rate(n, || {
            let images = decode();
            for chunk in images.chunks(batch) {
                block_on(encoder.embed_images(chunk)).expect("embed");
            }
        })
    };
    let (b1, b16) = (embed(1), embed(16));
    encoder.shutdown();

    println!(
        "images/s over {n} images ({} photos × {REPEAT}), decoding included",
        PHOTOS.len()
    );
    let py = python_rates(&root, &export, &paths);
    let row = |what: &str, ours: f64, key: &str| match &py {
        Ok(json) => {
            let theirs = json[key].as_f64().unwrap_or(f64::NAN);
            println!(
                "{what:<34} modelmux {ours:>8.1}   python {theirs:>8.1}   ratio {:.2}×",
                ours / theirs
            );
        }
        Err(_) => println!("{what:<34} modelmux {ours:>8.1}"),
    };
    row("CLIP-224 preprocessing", pre, "preprocess_224");
    row("tiny-clip embedding, batch 1", b1, "embed_b1");
    row("tiny-clip embedding, batch 16", b16, "embed_b16");
    if let Err(e) = py {
        println!("(no Python comparison: {e})");
    }
}

fn python_rates(
    root: &Path,
    export: &Path,
    paths: &[PathBuf],
) -> Result<serde_json::Value, String> {
    let python = support::python()?;
    let out = Command::new(python)
        .arg(root.join("xtask/python/vlm_bench.py"))
        .arg(export)
        .arg(REPEAT.to_string())
        .args(paths)
        .env("TRANSFORMERS_VERBOSITY", "error")
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.lines().last().unwrap_or("")).map_err(|e| e.to_string())
}
