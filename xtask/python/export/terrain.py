"""`terrain-diffusion`: the consistency UNet shipped in `adaptive-terrain-diffusion` (MIT), as is.

- model.onnx: `noisy` float32 [B, 1, 128, 128], `sigma` float32 [B], `difficulty` float32 [B]
  (label in [0, 1]) → `denoised` [B, 1, 128, 128] in the model space [-1, 1].
The file is copied byte for byte (its IR and opset already load in ONNX Runtime 1.31); the
golden case is the package's own ONNX file run by onnxruntime, and the manifest's `extra` records
the sampling constants of the package's `TerrainGenerator` (σ range, height range, asinh scale),
which the Rust pipeline reads instead of hard-coding them.
"""

import shutil
from pathlib import Path

import numpy as np
import onnx

from common import MAX_IR, MAX_OPSET, Export

ONNX_IN_PACKAGE = "terrain_diffusion/weights/terrain_consistency_unet_difficulty100.onnx"


def export(args, source):
    src = Path(source)
    if src.is_dir():
        # The package folder or the unpacked wheel: find the bundled ONNX file.
        candidates = [src / ONNX_IN_PACKAGE, src / "weights" / Path(ONNX_IN_PACKAGE).name]
        src = next((c for c in candidates if c.exists()), candidates[0])
    if not src.exists():
        raise SystemExit(f"{src}: the terrain model's ONNX file is missing")
    model = onnx.load(str(src))
    if model.ir_version > MAX_IR or any(i.version > MAX_OPSET for i in model.opset_import if i.domain in ("", "ai.onnx")):
        raise SystemExit(f"{src}: IR {model.ir_version} / opsets beyond ONNX Runtime 1.31's limits")
    ex = Export(args, "terrain-diffusion")
    shutil.copy(src, ex.out / "model.onnx")

    import onnxruntime as ort

    session = ort.InferenceSession(str(src), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    noisy = (rng.standard_normal((2, 1, 128, 128), dtype=np.float32) * np.float32(80.0)).astype(np.float32)
    sigma = np.array([80.0, 80.0], dtype=np.float32)
    difficulty = np.array([0.0, 0.5], dtype=np.float32)
    (denoised,) = session.run(["denoised"], {"noisy": noisy, "sigma": sigma, "difficulty": difficulty})
    ex.golden.update({"model/in/noisy": noisy, "model/in/sigma": sigma, "model/in/difficulty": difficulty,
                      "model/out/denoised": denoised.astype(np.float32)})
    ex.cases.append({"case": "model", "file": "model.onnx"})
    ex.extra.update({
        "reference": f"onnxruntime {ort.__version__} on the package's own ONNX file",
        "native_size": 128,
        "num_classes": 100,
        "sigma_min": 0.002,
        "sigma_max": 80.0,
        "sigma_data": 0.5,
        "height_range": 22.16864013671875,
        "asinh_scale": 0.1,
        "difficulty": "label in [0, 1] = (level - 1) / 99 for the package's levels 1..100",
    })
    return ex
