//! `cargo xtask verify <id|export dir>`: runs an export's ONNX files through runtime-ort on the
//! golden inputs the exporter saved and compares every output with the PyTorch reference.
//!
//! A mismatch is an error naming the file, the output and the error, never a warning (optimum
//! only warns: notes/export-and-compat.md §4). Before anything runs, each file is checked
//! against the manifest (size, SHA-256) and against the IR/opset limits of the ONNX Runtime
//! in use. Decoder-only models are also run as a greedy generation loop with the KV cache and
//! must reproduce the tokens `generate()` produced, step for step. The measured errors are
//! written back into the manifest's `validation`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use half::f16;
use modelmux_registry::{Manifest, Validation};
use modelmux_runtime_ort::{Inputs, Outputs, Runtime, SessionHandle, SessionSpec, Tensor};
use ndarray::{ArrayD, Axis, IxDyn};
use safetensors::{Dtype, SafeTensors};
use serde_json::Value;

/// Default tolerances (absolute) when the manifest gives none.
const DEFAULT_ATOL_FP32: f64 = 1e-4;
const DEFAULT_ATOL_FP16: f64 = 1e-3;

/// What one verification measured.
#[derive(Debug, Clone)]
pub(crate) struct Report {
    /// `file:output` → largest absolute error.
    pub(crate) per_output: BTreeMap<String, f64>,
    /// Greedy steps that matched `generate()`, when the export has a generation check.
    pub(crate) generated_steps: Option<usize>,
}

impl Report {
    pub(crate) fn max_abs_error(&self) -> f64 {
        self.per_output.values().copied().fold(0.0, f64::max)
    }
}

/// `cargo xtask verify <id|dir> [--catalog FILE] [--exports DIR]`.
pub(crate) fn run(root: &Path, args: &[&str]) -> anyhow::Result<()> {
    let mut target = None;
    let mut catalog = root.join("models.yaml");
    let mut exports = None;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match *arg {
            "--catalog" => catalog = PathBuf::from(it.next().context("--catalog needs a file")?),
            "--exports" => {
                exports = Some(PathBuf::from(
                    it.next().context("--exports needs a folder")?,
                ))
            }
            other if other.starts_with("--") => bail!("verify: unknown option `{other}`"),
            other => target = Some(other.to_owned()),
        }
    }
    let target = target
        .context("usage: cargo xtask verify <id|export dir> [--catalog FILE] [--exports DIR]")?;
    let dir = export_dir(&target, &catalog, exports.as_deref())?;
    let report = verify_dir(&dir)?;
    print_report(&dir, &report);
    Ok(())
}

/// The export folder of `target`: a folder with a manifest, or a catalog id.
pub(crate) fn export_dir(
    target: &str,
    catalog: &Path,
    exports: Option<&Path>,
) -> anyhow::Result<PathBuf> {
    let path = Path::new(target);
    if path.join(modelmux_registry::MANIFEST_FILE).exists() {
        return Ok(path.to_owned());
    }
    let catalog = modelmux_registry::Catalog::load(catalog)
        .map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(|| {
            format!(
                "`{target}` is not an export folder, so it is looked up in {}",
                catalog.display()
            )
        })?;
    let spec = catalog.get(target).map_err(|e| anyhow::anyhow!("{e}"))?;
    let exports = exports.map_or_else(|| catalog.exports_dir(), Path::to_path_buf);
    let dir = spec.export_dir(&exports);
    if !dir.join(modelmux_registry::MANIFEST_FILE).exists() {
        bail!(
            "{} has no manifest: run `cargo xtask export {}` first",
            dir.display(),
            spec.id
        );
    }
    Ok(dir)
}

pub(crate) fn print_report(dir: &Path, report: &Report) {
    println!("verified {}", dir.display());
    for (output, err) in &report.per_output {
        println!("  {output}: max abs error {err:.3e}");
    }
    if let Some(steps) = report.generated_steps {
        println!("  greedy generation through ONNX Runtime: {steps} steps identical to generate()");
    }
}

/// Verifies the export in `dir` and records the result in its manifest.
pub(crate) fn verify_dir(dir: &Path) -> anyhow::Result<Report> {
    let manifest_path = dir.join(modelmux_registry::MANIFEST_FILE);
    let mut manifest = Manifest::read(&manifest_path)?
        .with_context(|| format!("{} does not exist", manifest_path.display()))?;
    let runtime = Runtime::global().map_err(|e| {
        anyhow::anyhow!(
            "{e}\n(`cargo xtask setup` installs ONNX Runtime {})",
            modelmux_runtime_ort::ONNXRUNTIME_VERSION
        )
    })?;
    check_files(dir, &manifest, runtime)?;

    let spec = manifest
        .extra
        .get("verify")
        .cloned()
        .with_context(|| format!("{}: no `extra.verify` section: nothing to compare against (was it made by `cargo xtask export`?)", manifest_path.display()))?;
    let precision = manifest
        .extra
        .get("precision")
        .and_then(Value::as_str)
        .unwrap_or("fp32");
    let default_atol = if precision == "fp16" {
        DEFAULT_ATOL_FP16
    } else {
        DEFAULT_ATOL_FP32
    };
    let atol = spec
        .get("atol")
        .and_then(Value::as_f64)
        .unwrap_or(default_atol);
    let rtol = spec.get("rtol").and_then(Value::as_f64).unwrap_or(0.0);
    // `rtol_of: "max"`: rtol scales the output's largest magnitude instead of each element
    // (fp16, where rounding in the intermediates is relative to the output's scale).
    let of_max = spec.get("rtol_of").and_then(Value::as_str) == Some("max");
    let overrides: BTreeMap<String, f64> = spec
        .get("tolerances")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_f64().map(|v| (k.clone(), v)))
                .collect()
        })
        .unwrap_or_default();
    let golden_name = spec
        .get("golden")
        .and_then(Value::as_str)
        .unwrap_or("golden.safetensors");
    let golden_path = dir.join(golden_name);
    let golden = Golden::read(&golden_path)?;

    let mut sessions: BTreeMap<String, SessionHandle> = BTreeMap::new();
    let mut per_output = BTreeMap::new();
    let mut failures = Vec::new();
    let cases = spec
        .get("cases")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if cases.is_empty() {
        bail!(
            "{}: `extra.verify.cases` is empty: nothing to compare",
            manifest_path.display()
        );
    }
    for case in &cases {
        let name = case
            .get("case")
            .and_then(Value::as_str)
            .context("a verify case without `case`")?;
        let file = case
            .get("file")
            .and_then(Value::as_str)
            .context("a verify case without `file`")?;
        let session = session(&mut sessions, runtime, dir, file)?;
        let inputs = golden.inputs(name)?;
        let outputs = session
            .run(inputs)
            .with_context(|| format!("{file}: running case `{name}`"))?;
        for (output, expected) in golden.outputs(name)? {
            let key = format!("{file}:{output}");
            let tol = overrides.get(&key).copied().unwrap_or(atol);
            let Some(got) = outputs.get(&output) else {
                failures.push(format!(
                    "{file}: output `{output}` is missing (case `{name}`); the file has {:?}",
                    outputs.names().collect::<Vec<_>>()
                ));
                continue;
            };
            match compare(got, &expected, tol, rtol, of_max) {
                Ok(err) => {
                    let slot = per_output.entry(key).or_insert(0.0f64);
                    *slot = slot.max(err);
                }
                Err(why) => {
                    failures.push(format!("{file}: output `{output}` (case `{name}`): {why}"))
                }
            }
        }
    }

    let mut generated_steps = None;
    if let Some(generate) = spec.get("generate") {
        let file = generate
            .get("file")
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_owned();
        let tol = overrides
            .get(&format!("{file}:logits"))
            .copied()
            .unwrap_or(atol);
        match check_generation(&mut sessions, runtime, dir, &golden, generate, tol) {
            Ok((steps, err)) => {
                generated_steps = Some(steps);
                per_output.insert(format!("{file}:generate.logits"), err);
            }
            Err(err) => failures.push(format!("{err:#}")),
        }
    }

    if !failures.is_empty() {
        let mut text = format!(
            "{} does not match its PyTorch reference (atol {atol:e}, rtol {rtol:e}):",
            dir.display()
        );
        for f in &failures {
            let _ = write!(text, "\n  {f}");
        }
        bail!(text);
    }

    let report = Report {
        per_output,
        generated_steps,
    };
    let tools = &manifest.tool_versions;
    let reference = format!(
        "torch {} / transformers {} / diffusers {} on CPU ({golden_name}), compared in ONNX Runtime {}",
        tools.get("torch").map_or("?", String::as_str),
        tools.get("transformers").map_or("?", String::as_str),
        tools.get("diffusers").map_or("?", String::as_str),
        runtime.version()
    );
    manifest.validation = Some(Validation {
        atol,
        rtol,
        max_abs_error: report.max_abs_error(),
        per_output: report.per_output.clone(),
        reference: Some(reference),
    });
    if let (Some(steps), Some(Value::Object(verify))) =
        (generated_steps, manifest.extra.get_mut("verify"))
        && let Some(Value::Object(generate)) = verify.get_mut("generate")
    {
        generate.insert("matched_steps".into(), steps.into());
    }
    manifest.write(&manifest_path)?;
    Ok(report)
}

/// Sizes and hashes against the manifest; IR and opsets against the runtime's limits.
fn check_files(dir: &Path, manifest: &Manifest, runtime: &Runtime) -> anyhow::Result<()> {
    let limits = runtime.onnx_limits();
    let mut problems = Vec::new();
    for file in &manifest.files {
        let path = dir.join(&file.path);
        let size = match std::fs::metadata(&path) {
            Ok(m) => m.len(),
            Err(e) => {
                problems.push(format!("{}: {e}", file.path));
                continue;
            }
        };
        if size != file.size {
            problems.push(format!(
                "{}: {size} bytes, the manifest says {}",
                file.path, file.size
            ));
            continue;
        }
        let sha = modelmux_registry::sha256_file(&path)?;
        if !sha.eq_ignore_ascii_case(&file.sha256) {
            problems.push(format!(
                "{}: SHA-256 {sha}, the manifest says {}",
                file.path, file.sha256
            ));
        }
        if file.role != modelmux_registry::FileRole::Onnx {
            continue;
        }
        let header =
            modelmux_onnx::read_header(&path).map_err(|e| anyhow::anyhow!("{}: {e}", file.path))?;
        if header.ir_version > limits.max_ir_version {
            problems.push(format!(
                "{}: ONNX IR version {} is newer than ONNX Runtime {} loads (IR ≤ {}); re-export stamping IR ≤ {}",
                file.path,
                header.ir_version,
                runtime.version(),
                limits.max_ir_version,
                limits.max_ir_version
            ));
        }
        for opset in &header.opset_imports {
            if (opset.domain.is_empty() || opset.domain == "ai.onnx")
                && opset.version > limits.max_opset
            {
                problems.push(format!(
                    "{}: ai.onnx opset {} is newer than ONNX Runtime {} loads (opset ≤ {}); re-export with --opset {}",
                    file.path,
                    opset.version,
                    runtime.version(),
                    limits.max_opset,
                    limits.max_opset
                ));
            }
        }
    }
    if !problems.is_empty() {
        bail!("{} is refused:\n  {}", dir.display(), problems.join("\n  "));
    }
    Ok(())
}

fn session<'a>(
    sessions: &'a mut BTreeMap<String, SessionHandle>,
    runtime: &Runtime,
    dir: &Path,
    file: &str,
) -> anyhow::Result<&'a SessionHandle> {
    if !sessions.contains_key(file) {
        let handle = runtime
            .load(file, &dir.join(file), &SessionSpec::cpu())
            .with_context(|| format!("{}: cannot load", dir.join(file).display()))?;
        sessions.insert(file.to_owned(), handle);
    }
    Ok(&sessions[file])
}

/// The largest absolute error, or why the output does not match.
fn compare(
    got: &Tensor,
    expected: &Tensor,
    atol: f64,
    rtol: f64,
    of_max: bool,
) -> Result<f64, String> {
    if got.shape() != expected.shape() {
        return Err(format!(
            "shape {:?}, the reference has {:?}",
            got.shape(),
            expected.shape()
        ));
    }
    if got.element_type() != expected.element_type() {
        return Err(format!(
            "element type {}, the reference has {}",
            got.element_type(),
            expected.element_type()
        ));
    }
    let pairs: Vec<(f64, f64)> = match (got, expected) {
        (Tensor::F32(a), Tensor::F32(b)) => a
            .iter()
            .zip(b)
            .map(|(x, y)| (f64::from(*x), f64::from(*y)))
            .collect(),
        (Tensor::F16(a), Tensor::F16(b)) => a
            .iter()
            .zip(b)
            .map(|(x, y)| (x.to_f64(), y.to_f64()))
            .collect(),
        (Tensor::I64(a), Tensor::I64(b)) => a
            .iter()
            .zip(b)
            .map(|(x, y)| (*x as f64, *y as f64))
            .collect(),
        (Tensor::I32(a), Tensor::I32(b)) => a
            .iter()
            .zip(b)
            .map(|(x, y)| (f64::from(*x), f64::from(*y)))
            .collect(),
        (Tensor::U8(a), Tensor::U8(b)) => a
            .iter()
            .zip(b)
            .map(|(x, y)| (f64::from(*x), f64::from(*y)))
            .collect(),
        (Tensor::Bool(a), Tensor::Bool(b)) => a
            .iter()
            .zip(b)
            .map(|(x, y)| (f64::from(u8::from(*x)), f64::from(u8::from(*y))))
            .collect(),
        _ => unreachable!("element types compared above"),
    };
    let exact = !matches!(got, Tensor::F32(_) | Tensor::F16(_));
    let scale = pairs.iter().map(|(_, b)| b.abs()).fold(0.0, f64::max);
    let mut max = 0.0f64;
    let mut worst = None;
    for (i, (a, b)) in pairs.iter().enumerate() {
        if a.is_nan() != b.is_nan() {
            return Err(format!(
                "NaN mismatch at flat index {i} (got {a}, reference {b})"
            ));
        }
        let err = (a - b).abs();
        if err.is_nan() {
            continue;
        }
        let allowed = match (exact, of_max) {
            (true, _) => 0.0,
            (false, true) => atol + rtol * scale,
            (false, false) => atol + rtol * b.abs(),
        };
        if err > allowed && worst.is_none_or(|(_, e, _)| err > e) {
            worst = Some((i, err, allowed));
        }
        max = max.max(err);
    }
    match worst {
        Some((i, err, allowed)) => Err(format!(
            "max abs error {max:.3e} exceeds the tolerance (worst at flat index {i}: {err:.3e} > {allowed:.3e})"
        )),
        None => Ok(max),
    }
}

/// A greedy generation loop through the ONNX files against the tokens of `generate()` (and, when
/// saved, its raw logits at every step): returns the steps and the largest logits error.
///
/// `decoder-only` feeds the prompt with a zero-length past, then one token per step with the KV
/// cache; `encoder-decoder` runs the encoder once and the decoder on the growing prefix.
fn check_generation(
    sessions: &mut BTreeMap<String, SessionHandle>,
    runtime: &Runtime,
    dir: &Path,
    golden: &Golden,
    spec: &Value,
    atol: f64,
) -> anyhow::Result<(usize, f64)> {
    let field = |k: &str| {
        spec.get(k)
            .with_context(|| format!("extra.verify.generate has no `{k}`"))
    };
    let text = |k: &str| -> anyhow::Result<String> {
        Ok(field(k)?
            .as_str()
            .with_context(|| format!("generate.{k} is not text"))?
            .to_owned())
    };
    let number = |k: &str| -> anyhow::Result<usize> {
        Ok(field(k)?
            .as_u64()
            .with_context(|| format!("generate.{k} is not a number"))? as usize)
    };
    let file = text("file")?;
    let kind = spec
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or("decoder-only");
    let prompt: Vec<i64> = golden.i64(&text("prompt")?)?.iter().copied().collect();
    let tokens: Vec<i64> = golden.i64(&text("tokens")?)?.iter().copied().collect();
    let reference = match spec.get("logits").and_then(Value::as_str) {
        Some(name) => Some(golden.f32(name)?.clone()),
        None => None,
    };
    let mut stepper: Box<Stepper>;
    let (start, mut feed) = match kind {
        "decoder-only" => {
            if tokens.len() < prompt.len() + 2 || tokens[..prompt.len()] != prompt[..] {
                bail!("{file}: the golden tokens do not extend the prompt over several steps");
            }
            // A captioner's decoder also reads the encoder's output at every step.
            let mut cross = Vec::new();
            if let Some(encoder) = spec.get("encoder").and_then(Value::as_str) {
                let input = golden.get(&text("encoder_input")?)?.clone();
                let mut out = session(sessions, runtime, dir, encoder)?
                    .run(Inputs::new().with(text("encoder_input_name")?, input))
                    .with_context(|| format!("{encoder}: running the encoder"))?;
                let hidden = out.take::<f32>(&text("encoder_output")?)?;
                cross.push((text("cross_input")?, Tensor::F32(hidden)));
            }
            let session = session(sessions, runtime, dir, &file)?.clone();
            let mut cache =
                KvCache::new(number("layers")?, number("kv_heads")?, number("head_dim")?);
            let file = file.clone();
            stepper = Box::new(move |new: &[i64]| cache.step(&session, new, &cross, &file));
            (prompt.len(), prompt.clone())
        }
        "encoder-decoder" => {
            let encoder = session(sessions, runtime, dir, &text("encoder")?)?.clone();
            let decoder = session(sessions, runtime, dir, &file)?.clone();
            let len = prompt.len();
            let mask = ArrayD::<i64>::ones(IxDyn(&[1, len]));
            let mut out = encoder
                .run(
                    Inputs::new()
                        .with(
                            "input_ids",
                            ArrayD::from_shape_vec(IxDyn(&[1, len]), prompt.clone())?,
                        )
                        .with("attention_mask", mask.clone()),
                )
                .context("running the encoder")?;
            let hidden = out.take::<f32>("last_hidden_state")?;
            let mut prefix: Vec<i64> = Vec::new();
            stepper = Box::new(move |new: &[i64]| {
                prefix.extend_from_slice(new);
                let mut out = decoder.run(
                    Inputs::new()
                        .with(
                            "input_ids",
                            ArrayD::from_shape_vec(IxDyn(&[1, prefix.len()]), prefix.clone())?,
                        )
                        .with("encoder_hidden_states", hidden.clone())
                        .with("encoder_attention_mask", mask.clone()),
                )?;
                last_row(out.take::<f32>("logits")?)
            });
            if tokens.len() < 3 {
                bail!("{file}: the golden tokens cover fewer than two steps");
            }
            (1, vec![tokens[0]])
        }
        other => bail!("{file}: unknown generation check `{other}`"),
    };
    let steps = tokens.len() - start;
    let mut max_err = 0.0f64;
    for step in 0..steps {
        let logits = stepper(&feed).with_context(|| format!("{file}: generation step {step}"))?;
        if let Some(reference) = &reference {
            let row = reference.index_axis(Axis(0), step);
            let err = row
                .iter()
                .zip(&logits)
                .map(|(a, b)| (f64::from(*a) - f64::from(*b)).abs())
                .fold(0.0, f64::max);
            if err.is_nan() || err > atol {
                bail!(
                    "{file}: output `logits` at generation step {step}: max abs error {err:.3e} against generate()'s logits exceeds {atol:e}"
                );
            }
            max_err = max_err.max(err);
        }
        let next = argmax(logits.iter().copied()) as i64;
        let want = tokens[start + step];
        if next != want {
            bail!(
                "{file}: output `logits`: greedy generation diverges from generate() at step {step}: token {next}, expected {want} (tokens so far {:?})",
                &tokens[..start + step]
            );
        }
        feed = vec![next];
    }
    Ok((steps, max_err))
}

/// One generation step: the newly fed ids in, the last position's logits out.
type Stepper = dyn FnMut(&[i64]) -> anyhow::Result<Vec<f32>>;

/// The last position's logits of a `[1, seq, vocab]` output.
fn last_row(logits: ArrayD<f32>) -> anyhow::Result<Vec<f32>> {
    let seq = logits
        .shape()
        .get(1)
        .copied()
        .context("logits is not [batch, seq, vocab]")?;
    Ok(logits
        .index_axis(Axis(0), 0)
        .index_axis(Axis(0), seq - 1)
        .iter()
        .copied()
        .collect())
}

/// The KV cache of a decoder-only model between steps: `present.*` become `past_key_values.*`.
struct KvCache {
    past: Vec<ArrayD<f32>>,
    past_len: usize,
}

impl KvCache {
    fn new(layers: usize, kv_heads: usize, head_dim: usize) -> Self {
        let past = (0..2 * layers)
            .map(|_| ArrayD::zeros(IxDyn(&[1, kv_heads, 0, head_dim])))
            .collect();
        Self { past, past_len: 0 }
    }

    fn name(prefix: &str, i: usize) -> String {
        format!(
            "{prefix}.{}.{}",
            i / 2,
            if i.is_multiple_of(2) { "key" } else { "value" }
        )
    }

    fn step(
        &mut self,
        session: &SessionHandle,
        ids: &[i64],
        extra: &[(String, Tensor)],
        file: &str,
    ) -> anyhow::Result<Vec<f32>> {
        let seq = ids.len();
        let total = self.past_len + seq;
        let mut inputs = Inputs::new()
            .with(
                "input_ids",
                ArrayD::from_shape_vec(IxDyn(&[1, seq]), ids.to_vec())?,
            )
            .with("attention_mask", ArrayD::<i64>::ones(IxDyn(&[1, total])))
            .with(
                "position_ids",
                ArrayD::from_shape_vec(
                    IxDyn(&[1, seq]),
                    (self.past_len as i64..total as i64).collect(),
                )?,
            );
        for (i, kv) in self.past.iter().enumerate() {
            inputs.push(Self::name("past_key_values", i), kv.clone());
        }
        for (name, tensor) in extra {
            inputs.push(name.clone(), tensor.clone());
        }
        let mut outputs: Outputs = session
            .run(inputs)
            .with_context(|| format!("{file}: running a step"))?;
        for (i, kv) in self.past.iter_mut().enumerate() {
            *kv = outputs.take::<f32>(&Self::name("present", i))?;
        }
        self.past_len = total;
        last_row(outputs.take::<f32>("logits")?)
    }
}

/// Index of the largest value; the first one on ties, as torch.argmax.
fn argmax(values: impl Iterator<Item = f32>) -> usize {
    let mut best = (0, f32::NEG_INFINITY);
    for (i, v) in values.enumerate() {
        if v > best.1 {
            best = (i, v);
        }
    }
    best.0
}

/// The golden tensors: `<case>/in/<name>`, `<case>/out/<name>`, and named extras.
pub(crate) struct Golden {
    path: PathBuf,
    tensors: BTreeMap<String, Tensor>,
}

impl Golden {
    pub(crate) fn read(path: &Path) -> anyhow::Result<Self> {
        let bytes =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        let st = SafeTensors::deserialize(&bytes)
            .map_err(|e| anyhow::anyhow!("{}: not a safetensors file: {e}", path.display()))?;
        let mut tensors = BTreeMap::new();
        for (name, view) in st.tensors() {
            let shape = IxDyn(view.shape());
            let data = view.data();
            let tensor = match view.dtype() {
                Dtype::F32 => {
                    Tensor::F32(ArrayD::from_shape_vec(shape, le(data, f32::from_le_bytes))?)
                }
                Dtype::F16 => Tensor::F16(ArrayD::from_shape_vec(
                    shape,
                    le(data, |b: [u8; 2]| f16::from_le_bytes(b)),
                )?),
                Dtype::I64 => {
                    Tensor::I64(ArrayD::from_shape_vec(shape, le(data, i64::from_le_bytes))?)
                }
                Dtype::I32 => {
                    Tensor::I32(ArrayD::from_shape_vec(shape, le(data, i32::from_le_bytes))?)
                }
                Dtype::U8 => Tensor::U8(ArrayD::from_shape_vec(shape, data.to_vec())?),
                Dtype::BOOL => Tensor::Bool(ArrayD::from_shape_vec(
                    shape,
                    data.iter().map(|b| *b != 0).collect(),
                )?),
                other => bail!(
                    "{}: tensor `{name}` has dtype {other:?}, which verify does not compare",
                    path.display()
                ),
            };
            tensors.insert(name, tensor);
        }
        Ok(Self {
            path: path.to_owned(),
            tensors,
        })
    }

    fn with_prefix(&self, prefix: &str) -> Vec<(String, Tensor)> {
        self.tensors
            .iter()
            .filter_map(|(k, v)| k.strip_prefix(prefix).map(|n| (n.to_owned(), v.clone())))
            .collect()
    }

    pub(crate) fn inputs(&self, case: &str) -> anyhow::Result<Inputs> {
        let tensors = self.with_prefix(&format!("{case}/in/"));
        if tensors.is_empty() {
            bail!(
                "{}: no golden inputs for case `{case}`",
                self.path.display()
            );
        }
        let mut inputs = Inputs::new();
        for (name, tensor) in tensors {
            inputs.push(name, tensor);
        }
        Ok(inputs)
    }

    pub(crate) fn outputs(&self, case: &str) -> anyhow::Result<Vec<(String, Tensor)>> {
        let outputs = self.with_prefix(&format!("{case}/out/"));
        if outputs.is_empty() {
            bail!(
                "{}: no reference outputs for case `{case}`",
                self.path.display()
            );
        }
        Ok(outputs)
    }

    fn get(&self, name: &str) -> anyhow::Result<&Tensor> {
        self.tensors
            .get(name)
            .with_context(|| format!("{}: no tensor `{name}`", self.path.display()))
    }

    fn f32(&self, name: &str) -> anyhow::Result<&ArrayD<f32>> {
        self.tensors
            .get(name)
            .and_then(|t| t.array::<f32>())
            .with_context(|| format!("{}: no float32 tensor `{name}`", self.path.display()))
    }

    fn i64(&self, name: &str) -> anyhow::Result<&ArrayD<i64>> {
        self.tensors
            .get(name)
            .and_then(|t| t.array::<i64>())
            .with_context(|| format!("{}: no int64 tensor `{name}`", self.path.display()))
    }
}

fn le<const N: usize, T>(data: &[u8], f: impl Fn([u8; N]) -> T) -> Vec<T> {
    data.chunks_exact(N)
        .map(|c| f(c.try_into().expect("chunks_exact yields N bytes")))
        .collect()
}
