"""Shared export machinery: ONNX export stamped for ONNX Runtime 1.31, golden files, manifests.

Every architecture module builds a list of `Part`s (one ONNX file each: a torch module, example
inputs, names and dynamic axes) and hands them to `Export`, which exports, stamps IR ≤ 13,
runs the PyTorch reference on golden inputs and writes `golden.safetensors` and `manifest.json`.
`cargo xtask verify` then runs the ONNX files in Rust and compares (verify.rs).
"""

import datetime
import hashlib
import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import numpy as np
import onnx
import torch
from safetensors.numpy import save_file

MAX_IR = 13  # ONNX Runtime 1.31.1 (notes/export-and-compat.md §6.2)
MAX_OPSET = 26
DEFAULT_OPSET = 18
# Bytes of parameters above which weights go to `<file>_data` (overridable to test the path).
EXTERNAL_DATA_THRESHOLD = int(os.environ.get("MODELMUX_EXTERNAL_DATA_THRESHOLD", int(1.5 * 1024**3)))
DEFAULT_ATOL = {"fp32": 1e-4, "fp16": 1e-3}
# fp16 keeps ~3 significant digits: one ulp at |x| in [2, 4) is 2e-3, above any useful atol,
# so fp16 outputs are compared with atol + rtol · max |reference| (see `finish`).
DEFAULT_RTOL = {"fp32": 0.0, "fp16": 1e-2}
GOLDEN = "golden.safetensors"

DTYPE_NAMES = {
    onnx.TensorProto.FLOAT: "float32",
    onnx.TensorProto.FLOAT16: "float16",
    onnx.TensorProto.INT64: "int64",
    onnx.TensorProto.INT32: "int32",
    onnx.TensorProto.BOOL: "bool",
    onnx.TensorProto.UINT8: "uint8",
    onnx.TensorProto.DOUBLE: "float64",
    onnx.TensorProto.BFLOAT16: "bfloat16",
}


def seed(n=0):
    torch.manual_seed(n)
    np.random.seed(n)


@dataclass
class Part:
    """One ONNX file: `module(*args)` traced with `input_names` → `output_names`.

    `golden` are the inputs the reference is run on (a different shape from the traced `args`
    on purpose, so a dim wrongly frozen by tracing shows up at verify time).
    """

    file: str
    module: torch.nn.Module
    args: tuple
    input_names: list
    output_names: list
    dynamic_axes: dict
    golden: tuple
    atol: dict = field(default_factory=dict)  # output name → tolerance override (documented in CONTRACTS.md)


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def to_numpy(t):
    t = t.detach().cpu()
    if t.dtype == torch.bfloat16:
        t = t.float()
    return np.ascontiguousarray(t.numpy())


def half(tensors):
    """Float tensors to float16 (ids and masks stay integers)."""
    return tuple(t.half() if isinstance(t, torch.Tensor) and t.is_floating_point() else t for t in tensors)


def flatten_outputs(out):
    if isinstance(out, torch.Tensor):
        return [out]
    flat = []
    for o in out:
        flat.extend(flatten_outputs(o))
    return flat


def export_part(part, out_dir, opset, precision, metadata=None):
    """Exports one part to `out_dir/part.file`; external data when the weights are large.

    torch writes into a scratch folder first: for models over 2 GB it scatters one external file
    per tensor there, and only `part.file` (+ `part.file_data`) may reach the export folder.
    """
    import tempfile

    path = Path(out_dir) / part.file
    path.parent.mkdir(parents=True, exist_ok=True)
    module = part.module.eval()
    weight_bytes = sum(p.numel() * p.element_size() for p in module.parameters())
    with tempfile.TemporaryDirectory(dir=path.parent) as scratch, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = Path(scratch) / "model.onnx"
        torch.onnx.export(
            module,
            part.args,
            str(traced),
            input_names=part.input_names,
            output_names=part.output_names,
            dynamic_axes=part.dynamic_axes,
            opset_version=opset,
            do_constant_folding=True,
            dynamo=False,
        )
        model = onnx.load(str(traced))
    if model.ir_version > MAX_IR:
        model.ir_version = MAX_IR
    for imp in model.opset_import:
        if imp.domain in ("", "ai.onnx") and imp.version > MAX_OPSET:
            raise SystemExit(f"{path}: opset {imp.version} is beyond ONNX Runtime 1.31's {MAX_OPSET}")
    model.producer_name = "modelmux-xtask-export"
    for key, value in (metadata or {}).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, str(value)
    if weight_bytes > EXTERNAL_DATA_THRESHOLD:
        onnx.save(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                  location=path.name + "_data", size_threshold=1024)
    else:
        onnx.save(model, str(path))
    onnx.checker.check_model(str(path))
    return path


def signature(model):
    def spec(vi):
        t = vi.type.tensor_type
        dims = []
        for d in t.shape.dim:
            if d.HasField("dim_value"):
                dims.append(int(d.dim_value))
            elif d.dim_param:
                dims.append(d.dim_param)
            else:
                dims.append("?")
        return {"name": vi.name, "dtype": DTYPE_NAMES.get(t.elem_type, str(t.elem_type)), "shape": dims}

    inits = {i.name for i in model.graph.initializer}
    return (
        [spec(v) for v in model.graph.input if v.name not in inits],
        [spec(v) for v in model.graph.output],
    )


def file_entry(out_dir, rel, role):
    path = Path(out_dir) / rel
    entry = {"path": rel, "role": role, "size": path.stat().st_size, "sha256": sha256(path)}
    if role == "onnx":
        model = onnx.load(str(path), load_external_data=False)
        inputs, outputs = signature(model)
        entry["onnx"] = {
            "ir_version": model.ir_version,
            "opset_imports": [{"domain": i.domain, "version": i.version} for i in model.opset_import],
            "inputs": inputs,
            "outputs": outputs,
        }
    return entry


def tool_versions():
    import importlib.metadata as md

    versions = {}
    for name in ["torch", "transformers", "diffusers", "onnx", "safetensors", "tokenizers", "numpy"]:
        try:
            versions[name] = md.version(name)
        except md.PackageNotFoundError:
            pass
    return versions


def role_of(rel):
    name = Path(rel).name
    if name.endswith(".onnx"):
        return "onnx"
    if name.endswith(".onnx_data"):
        return "external-data"
    if name in ("tokenizer.json", "vocab.txt", "vocab.json", "merges.txt", "tokenizer_config.json",
                "special_tokens_map.json", "spiece.model"):
        return "tokenizer"
    if name in ("preprocessor_config.json",):
        return "preprocessing"
    if name.endswith(".json"):
        return "config"
    return "other"


class Export:
    """Collects the parts of one export and writes the folder."""

    def __init__(self, args, architecture):
        self.args = args
        self.out = Path(args.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.architecture = architecture
        self.golden = {}
        self.cases = []
        self.tolerances = {}
        self.extra = {"architecture": architecture, "contract": "xtask/python/export/CONTRACTS.md"}
        self.generate = None

    @property
    def atol(self):
        return DEFAULT_ATOL[self.args.precision]

    def add(self, part, case=None):
        """Exports `part` and records its golden inputs and PyTorch outputs under `case`."""
        if self.args.precision == "fp16":
            part.module = part.module.half()
            part.args, part.golden = half(part.args), half(part.golden)
        export_part(part, self.out, self.args.opset, self.args.precision, {
            "modelmux.id": f"{self.args.id}@{self.args.version}",
            "modelmux.architecture": self.architecture,
            "modelmux.precision": self.args.precision,
            "modelmux.export.tool": f"torch {torch.__version__} (TorchScript exporter)",
        })
        self.add_case(part, case or Path(part.file).stem, part.golden)
        for name, tol in part.atol.items():
            self.tolerances[f"{part.file}:{name}"] = tol

    def add_case(self, part, case, golden):
        """Records another set of golden inputs for an exported part, with the PyTorch outputs."""
        if self.args.precision == "fp16":
            golden = half(golden)
        with torch.inference_mode():
            ref = flatten_outputs(part.module(*golden))
        if len(ref) != len(part.output_names):
            raise SystemExit(f"{part.file}: the module returns {len(ref)} tensors for {len(part.output_names)} output names")
        for name, value in zip(part.input_names, golden):
            self.golden[f"{case}/in/{name}"] = to_numpy(value)
        for name, value in zip(part.output_names, ref):
            self.golden[f"{case}/out/{name}"] = to_numpy(value)
        self.cases.append({"case": case, "file": part.file})

    def save_json(self, rel, value):
        path = self.out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(value, indent=2, sort_keys=True) + "\n")

    def finish(self, source_uri, revision=None):
        save_file(self.golden, str(self.out / GOLDEN))
        verify = {"golden": GOLDEN, "cases": self.cases, "atol": self.atol, "rtol": DEFAULT_RTOL[self.args.precision]}
        if self.args.precision == "fp16":
            # Rounding differences accumulate in the intermediates, so an fp16 element near zero
            # can be off by a few ulps of the output's largest values: rtol scales max |reference|.
            verify["rtol_of"] = "max"
        if self.tolerances:
            verify["tolerances"] = self.tolerances
        if self.generate:
            verify["generate"] = self.generate
        self.extra["verify"] = verify
        self.extra["precision"] = self.args.precision
        self.extra["opset"] = self.args.opset
        files = []
        for path in sorted(self.out.rglob("*")):
            rel = path.relative_to(self.out).as_posix()
            if path.is_dir() or rel in ("manifest.json", ".modelmux-hashes.json") or rel.startswith("."):
                continue
            files.append(file_entry(self.out, rel, role_of(rel)))
        manifest = {
            "manifest_version": 1,
            "id": self.args.id,
            "version": self.args.version,
            "source": {"uri": source_uri, **({"revision": revision} if revision else {})},
            "files": files,
            "tool_versions": tool_versions(),
            "created": datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat(),
            "extra": self.extra,
        }
        (self.out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        print(f"exported {self.args.id}@{self.args.version} ({self.architecture}) to {self.out}")
