//! `cargo xtask bench [--json] [--only NAME]`: every benchmark of the workspace, each beside its
//! baseline measured in the same run, as one table of ratios (or, with `--json`, one JSON array
//! of rows `{name, ours, baseline, unit, ratio, target, higher_is_better, met}`).
//!
//! The benchmarks stay where they are (`cargo bench -p <crate> --bench <name>`) and print their
//! own reports; this task runs them one after another and reads their numbers from what they
//! print, so a benchmark can be run and read alone as before. A benchmark that fails or whose
//! baseline is missing (no Python environment, no export) is reported and leaves its rows out;
//! the others still run.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, bail};
use serde_json::{Value, json};

/// One comparison.
#[derive(Debug, Clone)]
struct Row {
    name: String,
    ours: f64,
    baseline: f64,
    unit: &'static str,
    target: f64,
    higher_is_better: bool,
}

impl Row {
    /// `ours ÷ baseline`.
    fn ratio(&self) -> f64 {
        self.ours / self.baseline
    }

    /// Whether the ratio reaches the target in the row's direction.
    fn met(&self) -> bool {
        if self.higher_is_better {
            self.ratio() >= self.target
        } else {
            self.ratio() <= self.target
        }
    }

    fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "ours": self.ours,
            "baseline": self.baseline,
            "unit": self.unit,
            "ratio": self.ratio(),
            "target": self.target,
            "higher_is_better": self.higher_is_better,
            "met": self.met(),
        })
    }
}

/// A benchmark: its crate, its name, extra arguments, and how to read its output.
struct Bench {
    package: &'static str,
    dir: &'static str,
    name: &'static str,
    args: &'static [&'static str],
    read: fn(&str) -> Vec<Row>,
}

const BENCHES: [Bench; 6] = [
    Bench {
        package: "modelmux",
        dir: "crates/manager",
        name: "manager",
        args: &[],
        read: read_manager,
    },
    Bench {
        package: "modelmux-resources",
        dir: "crates/resources",
        name: "swap",
        args: &["--json"],
        read: read_swap,
    },
    Bench {
        package: "modelmux-adapters",
        dir: "crates/adapters",
        name: "lm",
        args: &[],
        read: read_lm,
    },
    Bench {
        package: "modelmux-adapters",
        dir: "crates/adapters",
        name: "vlm",
        args: &[],
        read: read_vlm,
    },
    Bench {
        package: "modelmux-adapters",
        dir: "crates/adapters",
        name: "diffusion",
        args: &[],
        read: read_diffusion,
    },
    Bench {
        package: "modelmux-server",
        dir: "crates/server",
        name: "serve",
        args: &[],
        read: read_serve,
    },
];

pub(crate) fn run(root: &Path, args: &[&str]) -> anyhow::Result<()> {
    let mut json_out = false;
    let mut only: Option<String> = None;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match *arg {
            "--json" => json_out = true,
            "--only" => {
                only = Some(
                    it.next()
                        .context("--only needs a benchmark name")?
                        .to_string(),
                )
            }
            other => bail!(
                "bench: unknown option `{other}` (usage: cargo xtask bench [--json] [--only NAME])"
            ),
        }
    }
    // Everything the benchmarks and their Python baselines need, named for them: the fixtures,
    // the export environment with sentence-transformers beside it, and the real MiniLM and
    // SmolLM2 exports (in the cache folder, made by the fixtures' real-weight stage).
    crate::setup::run(false)?;
    let fixtures = crate::fixtures::run(root)?;
    let python = crate::export::environment(root)?;
    let extras = crate::real_refs::extras_dir(&python, &root.join(crate::real_refs::EXTRAS))?;
    let exports = crate::real_refs::exports_dir(&fixtures)?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut rows = Vec::new();
    let mut problems = Vec::new();
    for bench in BENCHES
        .iter()
        .filter(|b| only.as_deref().is_none_or(|o| o == b.name))
    {
        let file = root
            .join(bench.dir)
            .join("benches")
            .join(format!("{}.rs", bench.name));
        if !file.is_file() {
            problems.push(format!(
                "{}: no benchmark at {}",
                bench.name,
                file.display()
            ));
            continue;
        }
        eprintln!(
            "==> cargo bench -p {} --bench {}",
            bench.package, bench.name
        );
        let output = Command::new(&cargo)
            .current_dir(root)
            .env("MODELMUX_FIXTURES", &fixtures)
            .env("MODELMUX_PYTHON", &python)
            .env("MODELMUX_PYTHONPATH", &extras)
            .env("MODELMUX_EXPORTS", &exports)
            .args([
                "bench",
                "-q",
                "-p",
                bench.package,
                "--bench",
                bench.name,
                "--",
            ])
            .args(bench.args)
            .output()
            .with_context(|| format!("cannot start cargo bench for {}", bench.name))?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        if !json_out {
            eprint!("{stdout}");
        }
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let last: Vec<&str> = stderr.lines().rev().take(5).collect();
            problems.push(format!(
                "{}: failed with {} ({})",
                bench.name,
                output.status,
                last.into_iter().rev().collect::<Vec<_>>().join(" / ")
            ));
            continue;
        }
        let found = (bench.read)(&stdout);
        if found.is_empty() {
            problems.push(format!(
                "{}: no comparison in its output (baseline missing?): {}",
                bench.name,
                stdout.lines().rev().take(3).collect::<Vec<_>>().join(" / ")
            ));
        }
        rows.extend(found);
    }
    if json_out {
        println!("{}", Value::Array(rows.iter().map(Row::to_json).collect()));
    } else {
        println!("{}", table(&rows));
    }
    for p in &problems {
        eprintln!("note: {p}");
    }
    Ok(())
}

/// The rows as a Markdown table (what README shows).
fn table(rows: &[Row]) -> String {
    let mut out = String::from(
        "| benchmark | ours | baseline | unit | ratio | target | met |\n|---|---:|---:|---|---:|---:|---|\n",
    );
    for r in rows {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {:.3} | {} {} | {} |\n",
            r.name,
            number(r.ours),
            number(r.baseline),
            r.unit,
            r.ratio(),
            if r.higher_is_better { "≥" } else { "≤" },
            r.target,
            if r.met() { "yes" } else { "no" }
        ));
    }
    out
}

/// A number with the digits that matter.
fn number(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.4}")
    }
}

/// The number right after `key` in `line` (units and separators after it are ignored).
fn after(line: &str, key: &str) -> Option<f64> {
    let rest = line.split_once(key)?.1.trim_start();
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == '+' || c == 'e'))
        .unwrap_or(rest.len());
    rest[..end].trim_end_matches('.').parse().ok()
}

fn line_with<'a>(text: &'a str, needle: &str) -> Option<&'a str> {
    text.lines().find(|l| l.contains(needle))
}

fn row(name: &str, ours: f64, baseline: f64, unit: &'static str, target: f64, higher: bool) -> Row {
    Row {
        name: name.to_owned(),
        ours,
        baseline,
        unit,
        target,
        higher_is_better: higher,
    }
}

/// `get_model` hit latency, batching speed-up, the manager path against a raw session.
fn read_manager(out: &str) -> Vec<Row> {
    let mut rows = Vec::new();
    let raw = line_with(out, "raw session").and_then(|l| after(l, "raw session"));
    let managed = line_with(out, "raw session").and_then(|l| after(l, "manager + lease + pool"));
    if let (Some(raw), Some(managed)) = (raw, managed) {
        rows.push(row(
            "adapter overhead: manager+lease+pool vs raw ONNX Runtime session (tiny-bert)",
            managed,
            raw,
            "µs/request",
            1.10,
            false,
        ));
    }
    if let (Some(p99), Some(raw)) = (
        line_with(out, "get_model, warm").and_then(|l| after(l, "p99")),
        raw,
    ) {
        rows.push(row(
            "get_model warm hit p99 (8 threads) vs one raw tiny-bert run",
            p99,
            raw,
            "µs",
            0.05,
            false,
        ));
    }
    if let Some(l) = line_with(out, "concurrent clients")
        && let (Some(u), Some(b)) = (after(l, "unbatched"), after(l, ", batched"))
    {
        rows.push(row(
            "dynamic batching vs none (tiny-bert, 16 clients)",
            b,
            u,
            "requests/s",
            1.5,
            true,
        ));
    }
    rows
}

/// The swap policy against LRU and Belady on the simulated traces.
fn read_swap(out: &str) -> Vec<Row> {
    let Some(report) = out
        .lines()
        .find_map(|l| serde_json::from_str::<Value>(l).ok())
    else {
        return Vec::new();
    };
    let mut rows = Vec::new();
    for t in report["traces"].as_array().into_iter().flatten() {
        let name = t["name"].as_str().unwrap_or("?");
        let hit = |who: &str| t[who]["hit_ratio"].as_f64();
        let bytes = |who: &str| t[who]["bytes_reloaded"].as_f64();
        if let (Some(ours), Some(lru)) = (hit("modelmux"), hit("lru")) {
            rows.push(row(
                &format!("swap policy hit ratio vs LRU ({name} trace)"),
                ours,
                lru,
                "hit ratio",
                1.0,
                true,
            ));
        }
        if name == "mixed"
            && let (Some(ours), Some(lru)) = (bytes("modelmux"), bytes("lru"))
        {
            rows.push(row(
                "swap policy bytes reloaded vs LRU (mixed trace)",
                ours / 1e9,
                lru / 1e9,
                "GB",
                0.8,
                false,
            ));
        }
        if let (Some(ours), Some(belady)) = (hit("modelmux"), hit("belady")) {
            let target = if name == "zipf" { 0.85 } else { 0.0 };
            if target > 0.0 {
                rows.push(row(
                    &format!("swap policy hit ratio vs Belady ({name} trace)"),
                    ours,
                    belady,
                    "hit ratio",
                    target,
                    true,
                ));
            }
        }
    }
    rows
}

/// MiniLM embeddings/s against Python, SmolLM2 tokens/s against transformers.
fn read_lm(out: &str) -> Vec<Row> {
    let mut rows = Vec::new();
    for l in out.lines().filter(|l| l.trim_start().starts_with("batch")) {
        let (Some(batch), Some(ours)) = (after(l, "batch"), after(l, "modelmux")) else {
            continue;
        };
        if let Some(o) = after(l, "python onnxruntime+tokenizers") {
            rows.push(row(
                &format!("MiniLM embeddings/s, batch {batch} vs Python onnxruntime+tokenizers"),
                ours,
                o,
                "texts/s",
                1.0,
                true,
            ));
        }
        if let Some(s) = after(l, "sentence-transformers") {
            rows.push(row(
                &format!("MiniLM embeddings/s, batch {batch} vs sentence-transformers"),
                ours,
                s,
                "texts/s",
                1.0,
                true,
            ));
        }
    }
    if let Some(l) = line_with(out, "smollm2 greedy tokens/s")
        && let (Some(ours), Some(theirs)) =
            (after(l, "modelmux"), after(l, "transformers generate"))
    {
        rows.push(row(
            "SmolLM2-135M greedy tokens/s vs transformers generate",
            ours,
            theirs,
            "tokens/s",
            1.0,
            true,
        ));
    }
    rows
}

/// Image preprocessing and CLIP-style embedding against the Python processor and runtime.
fn read_vlm(out: &str) -> Vec<Row> {
    out.lines()
        .filter_map(|l| {
            let (what, _) = l.split_once(" modelmux ")?;
            let ours = after(l, "modelmux")?;
            let theirs = after(l, "python")?;
            Some(row(
                &format!("{} vs Python (images/s)", what.trim()),
                ours,
                theirs,
                "images/s",
                1.0,
                true,
            ))
        })
        .collect()
}

/// tiny-sd against diffusers' ONNX pipeline, and each scheduler step against diffusers'.
fn read_diffusion(out: &str) -> Vec<Row> {
    let mut rows = Vec::new();
    if let (Some(ours), Some(theirs)) = (
        line_with(out, "rust pipeline").and_then(|l| after(l, "rust pipeline")),
        line_with(out, "OnnxStableDiffusionPipeline")
            .and_then(|l| after(l, "OnnxStableDiffusionPipeline")),
    ) {
        rows.push(row(
            "tiny-sd text-to-image vs diffusers OnnxStableDiffusionPipeline",
            ours,
            theirs,
            "ms",
            1.0,
            false,
        ));
    }
    for l in out
        .lines()
        .filter(|l| l.contains(" rust ") && l.contains("diffusers"))
    {
        let name = l.split_whitespace().next().unwrap_or("?");
        if let (Some(ours), Some(theirs)) = (after(l, " rust "), after(l, "diffusers")) {
            rows.push(row(
                &format!("{name} scheduler step vs diffusers"),
                ours,
                theirs,
                "µs",
                1.0,
                false,
            ));
        }
    }
    rows
}

/// The serve bench's comparisons, by the key it prints: the row's name and its target
/// (every one higher-is-better, in requests/s). HTTP against in-process may cost 20 % of the
/// throughput at batch 1, where a request is small, and 10 % at batch 32; `modelmux serve`
/// should answer twice the requests KServe's Python server does on the same model (MiniLM, and
/// tiny-bert, where the servers' own overhead is most of a request).
const SERVE_ROWS: [(&str, &str, f64); 6] = [
    (
        "kserve-b1",
        "MiniLM over OIP v2 REST, batch 1, 16 clients: modelmux serve vs KServe ModelServer (Python)",
        2.0,
    ),
    (
        "kserve-tiny-b1",
        "tiny-bert over OIP v2 REST, batch 1, 16 clients: modelmux serve vs KServe ModelServer (Python)",
        2.0,
    ),
    (
        "http-binary-b1",
        "MiniLM served over HTTP (binary outputs) vs in-process, batch 1",
        0.8,
    ),
    (
        "http-json-b1",
        "MiniLM served over HTTP (JSON outputs) vs in-process, batch 1",
        0.8,
    ),
    (
        "http-binary-b32",
        "MiniLM served over HTTP (binary outputs) vs in-process, batch 32",
        0.9,
    ),
    (
        "http-json-b32",
        "MiniLM served over HTTP (JSON outputs) vs in-process, batch 32",
        0.9,
    ),
];

/// `modelmux serve` against the encoder in-process and against KServe's Python server: the
/// bench's `compare <key> ours <rate> baseline <rate> requests/s` lines.
fn read_serve(out: &str) -> Vec<Row> {
    out.lines()
        .filter_map(|l| {
            let cells: Vec<&str> = l.split_whitespace().collect();
            let [
                "compare",
                key,
                "ours",
                ours,
                "baseline",
                baseline,
                "requests/s",
                ..,
            ] = cells.as_slice()
            else {
                return None;
            };
            let (_, name, target) = SERVE_ROWS.iter().find(|(k, _, _)| k == key)?;
            Some(row(
                name,
                ours.parse().ok()?,
                baseline.parse().ok()?,
                "requests/s",
                *target,
                true,
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    //! The readers on the benchmarks' printed lines.

    use super::*;

    #[test]
    fn manager_lines_become_three_rows() {
        let out = "get_model, warm, 8 threads × 50,000 (lease taken and returned): p50 0.81 µs, p99 3.20 µs\n\
                   tiny-bert, 16 concurrent clients, 1 row each: unbatched 2100 req/s, batched 6300 req/s, speed-up 3.00×\n\
                   tiny-bert, 2,000 sequential requests: raw session 80.5 µs/req, manager + lease + pool 84.0 µs/req, overhead +4.3%\n";
        let rows = read_manager(out);
        assert_eq!(rows.len(), 3);
        assert!((rows[0].ratio() - 84.0 / 80.5).abs() < 1e-9);
        assert!((rows[1].ours - 3.20).abs() < 1e-9);
        assert!((rows[2].ratio() - 3.0).abs() < 1e-9 && rows[2].met());
    }

    #[test]
    fn lm_and_diffusion_lines_are_read() {
        let lm = "  batch  1: modelmux    120.5 | python onnxruntime+tokenizers    100.0 (modelmux ×1.21) | sentence-transformers     60.0 (modelmux ×2.01)\n\
                  smollm2 greedy tokens/s, 64 new tokens: modelmux   30.0 | transformers generate   20.0 (modelmux ×1.50)\n";
        let rows = read_lm(lm);
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[2].baseline, 20.0);
        let diffusion = "  rust pipeline                              20.0 ms\n  diffusers OnnxStableDiffusionPipeline       40.0 ms\n  ddim                   rust      5.0 us   diffusers     50.0 us   10.00x\n";
        let rows = read_diffusion(diffusion);
        assert_eq!(rows.len(), 2);
        assert!(rows.iter().all(Row::met));
        let serve = "1      in-process     round 0      122.41 requests/s       122.4 texts/s\n\
                     compare http-binary-b32 ours 4.500 baseline 4.800 requests/s (ratio 0.938)\n\
                     compare kserve-b1 ours 120.000 baseline 80.000 requests/s (ratio 1.500)\n";
        let rows = read_serve(serve);
        assert_eq!(rows.len(), 2);
        assert!((rows[0].baseline - 4.8).abs() < 1e-9 && rows[0].met());
        assert!(rows[1].name.contains("KServe") && !rows[1].met());
    }
}
