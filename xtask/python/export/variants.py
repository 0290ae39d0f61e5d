"""Copies of tiny exports for the tests: deliberately broken ones, and one in optimum's layout.

    variants.py EXPORTS_DIR OUT_DIR

- `perturbed-weight`: tiny-bert with noise (σ 0.01) on its largest weight (verify must fail on
  `last_hidden_state`).
- `swapped-outputs`: tiny-gpt2 with `present.0.key` and `present.0.value` swapped inside the
  graph (verify must fail naming `present.0.key`).
- `ir14`: tiny-bert stamped IR 14 (verify and `models check` must refuse it).
- `external-data`: tiny-bert with its weights in `model.onnx_data` (verify must pass: ONNX
  Runtime loads external data by path).
- `optimum-layout`: tiny-bert's `model.onnx`, `config.json` and tokenizer files only, as
  `optimum-cli export onnx` lays them out (for `cargo xtask import`).
The broken copies get a manifest with the new hashes, so only the values give them away.
"""

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from common import file_entry


def copy(src, dst):
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(src, dst)


def rehash(dst, rel):
    manifest = json.loads((dst / "manifest.json").read_text())
    manifest.pop("validation", None)
    manifest["files"] = [file_entry(dst, f["path"], f["role"]) if f["path"] == rel else f for f in manifest["files"]]
    (dst / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")


def main():
    exports, out = Path(sys.argv[1]), Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    bert = exports / "tiny-bert" / "0.1.0"
    gpt2 = exports / "tiny-gpt2" / "0.1.0"

    dst = out / "perturbed-weight"
    copy(bert, dst)
    model = onnx.load(str(dst / "model.onnx"))
    floats = [t for t in model.graph.initializer if t.data_type == onnx.TensorProto.FLOAT]
    biggest = max(floats, key=lambda t: int(np.prod(t.dims)))
    # Random, not constant: a constant shift of an embedding would vanish in the LayerNorm.
    noise = np.random.default_rng(0).standard_normal(tuple(biggest.dims)).astype(np.float32) * np.float32(0.01)
    array = numpy_helper.to_array(biggest) + noise
    biggest.CopyFrom(numpy_helper.from_array(array, biggest.name))
    onnx.save(model, str(dst / "model.onnx"))
    rehash(dst, "model.onnx")

    dst = out / "swapped-outputs"
    copy(gpt2, dst)
    model = onnx.load(str(dst / "model.onnx"))
    rename = {"present.0.key": "present.0.value", "present.0.value": "present.0.key"}
    for node in model.graph.node:
        for i, name in enumerate(node.output):
            if name in rename:
                node.output[i] = rename[name]
        for i, name in enumerate(node.input):
            if name in rename:
                node.input[i] = rename[name]
    onnx.save(model, str(dst / "model.onnx"))
    rehash(dst, "model.onnx")

    dst = out / "ir14"
    copy(bert, dst)
    model = onnx.load(str(dst / "model.onnx"))
    model.ir_version = 14
    onnx.save(model, str(dst / "model.onnx"))
    rehash(dst, "model.onnx")

    dst = out / "external-data"
    copy(bert, dst)
    model = onnx.load(str(dst / "model.onnx"))
    onnx.save(model, str(dst / "model.onnx"), save_as_external_data=True, all_tensors_to_one_file=True,
              location="model.onnx_data", size_threshold=0)
    rehash(dst, "model.onnx")
    manifest = json.loads((dst / "manifest.json").read_text())
    manifest["files"].append(file_entry(dst, "model.onnx_data", "external-data"))
    (dst / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")

    dst = out / "optimum-layout"
    shutil.rmtree(dst, ignore_errors=True)
    dst.mkdir()
    for name in ["model.onnx", "config.json", "tokenizer.json", "tokenizer_config.json"]:
        shutil.copy(bert / name, dst / name)
    print(f"test variants written to {out}")


if __name__ == "__main__":
    main()
