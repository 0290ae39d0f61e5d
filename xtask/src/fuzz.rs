//! `cargo xtask fuzz <target> [--time SECS] [-- LIBFUZZER_ARGS…]`: one cargo-fuzz target for a
//! while, on the nightly toolchain, installing cargo-fuzz (pinned) into the cache folder first
//! when it is not there.
//!
//! The targets live in `fuzz/` (its own workspace; see fuzz/README.md). A run reads the committed
//! seeds in `fuzz/corpus/<target>` and keeps what it finds in `fuzz/target/corpus/<target>`, so
//! the committed seed folders stay small; a crash is written to `fuzz/artifacts/<target>/`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, bail};

/// The cargo-fuzz release installed when none is found.
const CARGO_FUZZ_VERSION: &str = "0.13.2";

/// The targets in fuzz/Cargo.toml.
const TARGETS: [&str; 3] = ["catalog", "manifest", "image_decode"];

/// How long a run lasts unless `--time` says otherwise: what the recorded runs used.
const DEFAULT_SECONDS: u64 = 600;

/// The most memory the fuzzing process may hold, and the largest single allocation it may make
/// (a bigger one is reported as a crash: the inputs must not make the code allocate unboundedly).
const RSS_LIMIT_MB: u32 = 2048;
const MALLOC_LIMIT_MB: u32 = 512;

/// Seconds one input may take before it is reported as a hang.
const TIMEOUT_S: u32 = 10;

pub(crate) fn run(root: &Path, args: &[&str]) -> anyhow::Result<()> {
    let (ours, extra) = match args.iter().position(|a| *a == "--") {
        Some(i) => (&args[..i], &args[i + 1..]),
        None => (args, &[][..]),
    };
    let mut target = None;
    let mut seconds = DEFAULT_SECONDS;
    let mut it = ours.iter();
    while let Some(&arg) = it.next() {
        match arg {
            "--time" => {
                let value = it.next().context("--time needs a number of seconds")?;
                seconds = value
                    .parse()
                    .with_context(|| format!("--time {value}: not a number of seconds"))?;
            }
            name if !name.starts_with('-') && target.is_none() => target = Some(name),
            other => bail!("unexpected argument `{other}`"),
        }
    }
    let Some(target) = target else {
        bail!(
            "which target? cargo xtask fuzz <{}> [--time SECS]",
            TARGETS.join("|")
        );
    };
    if !TARGETS.contains(&target) {
        bail!(
            "no fuzz target `{target}`; the targets are {}",
            TARGETS.join(", ")
        );
    }
    let nightly = Command::new("cargo")
        .args(["+nightly", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !nightly.is_ok_and(|s| s.success()) {
        bail!("cargo-fuzz needs the nightly toolchain: rustup toolchain install nightly");
    }
    let path = path_with_cargo_fuzz()?;

    let fuzz = root.join("fuzz");
    let found = fuzz.join("target").join("corpus").join(target);
    std::fs::create_dir_all(&found)
        .with_context(|| format!("cannot create {}", found.display()))?;
    let mut command = Command::new("cargo");
    command
        .current_dir(&fuzz)
        // cargo-fuzz builds into fuzz/target; a shared target folder would mix sanitizer builds
        // with ordinary ones.
        .env_remove("CARGO_TARGET_DIR")
        .env("PATH", path)
        .args(["+nightly", "fuzz", "run", target])
        .arg(&found)
        .arg(fuzz.join("corpus").join(target))
        .arg("--")
        .arg(format!("-max_total_time={seconds}"))
        .arg(format!("-rss_limit_mb={RSS_LIMIT_MB}"))
        .arg(format!("-malloc_limit_mb={MALLOC_LIMIT_MB}"))
        .arg(format!("-timeout={TIMEOUT_S}"))
        .arg("-print_final_stats=1");
    let dict = fuzz.join("dicts").join(format!("{target}.dict"));
    if dict.exists() {
        command.arg(format!("-dict={}", dict.display()));
    }
    command.args(extra);
    crate::run_command(&mut command).with_context(|| {
        format!(
            "the fuzz target `{target}` failed; the input is in {}",
            fuzz.join("artifacts").join(target).display()
        )
    })
}

/// `PATH` with a folder holding `cargo-fuzz` in front: the pinned release in the cache folder,
/// installed there when neither it nor a cargo-fuzz on `PATH` exists.
fn path_with_cargo_fuzz() -> anyhow::Result<OsString> {
    let root = modelmux_runtime_ort::cache_dir().join(format!("cargo-fuzz-{CARGO_FUZZ_VERSION}"));
    let bin = root.join("bin");
    let current = std::env::var_os("PATH").unwrap_or_default();
    let on_path = Command::new("cargo")
        .args(["fuzz", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !bin.join("cargo-fuzz").exists() && !on_path {
        let _lock = crate::lock_cache(&root)?;
        if !bin.join("cargo-fuzz").exists() {
            eprintln!(
                "installing cargo-fuzz {CARGO_FUZZ_VERSION} into {}",
                root.display()
            );
            crate::run_command(
                Command::new("cargo")
                    .env_remove("CARGO_TARGET_DIR")
                    .args(["install", "cargo-fuzz", "--locked", "--version"])
                    .arg(CARGO_FUZZ_VERSION)
                    .arg("--root")
                    .arg(&root),
            )?;
        }
    }
    let mut dirs: Vec<PathBuf> = vec![bin];
    dirs.extend(std::env::split_paths(&current));
    std::env::join_paths(dirs).context("PATH cannot hold the cargo-fuzz folder")
}
