"""BRISQUE (`brisque==0.2.0`, Apache-2.0) for modelmux: its SVR as ONNX, and reference scores.

- `<exports>/brisque/0.2.0/model.onnx`: `features` [N, 36] float → `score` [N, 1]: the
  package's min/max scaling to [-1, 1] (ai.onnx.ml `Scaler`) then its libsvm ε-SVR (RBF,
  γ = 0.05, 770 support vectors) as an ai.onnx.ml `SVMRegressor`. libsvm computes
  Σ coef·K − rho; the ONNX operator adds `rho`, so the sign is flipped. The conversion is checked
  against libsvm's own prediction on every reference image.
- `<out>/images/*.png`: distorted versions (Gaussian blur, noise, JPEG at quality 10) of the
  committed photos, as PNG so both sides read the same pixels.
- `<out>/brisque.safetensors`: the package's score (`score/<image>`) and its 36 features
  (`features/<image>`) for each.

The package fails on numpy ≥ 2.4 in `scale_features` (its features are 1-element arrays and
`float()` of those is an error now): the same values are flattened with `.item()` first.

    python brisque_refs.py <images> <out> <exports>
"""

import io
import pickle
import shutil
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter
from safetensors.numpy import save_file

PHOTOS = ["astronaut.jpg", "coffee.jpg", "chelsea.png", "rocket.jpg", "camera-gray.png"]


def distorted(images):
    """(name, RGB uint8 array) for each photo and four distortions of it."""
    rng = np.random.default_rng(0)
    for photo in PHOTOS:
        base = Image.open(images / photo).convert("RGB")
        stem = Path(photo).stem
        yield f"{stem}.png", base
        yield f"{stem}-blur1.png", base.filter(ImageFilter.GaussianBlur(1))
        yield f"{stem}-blur3.png", base.filter(ImageFilter.GaussianBlur(3))
        noisy = np.asarray(base, np.float64) + rng.normal(0, 20, (base.height, base.width, 3))
        yield f"{stem}-noise20.png", Image.fromarray(noisy.clip(0, 255).round().astype(np.uint8))
        buffer = io.BytesIO()
        base.save(buffer, "JPEG", quality=10)
        yield f"{stem}-jpeg10.png", Image.open(buffer).convert("RGB")


def svr_onnx(svm_path, scale):
    """The libsvm model file and the min/max scaling as an ONNX graph."""
    import onnx
    from onnx import TensorProto, helper

    header, coefs, vectors = {}, [], []
    lines = Path(svm_path).read_text().splitlines()
    start = lines.index("SV")
    for line in lines[:start]:
        key, *value = line.split()
        header[key] = value
    for line in lines[start + 1:]:
        if not line.strip():
            continue
        coef, *pairs = line.split()
        v = np.zeros(36)
        for pair in pairs:
            i, x = pair.split(":")
            v[int(i) - 1] = float(x)
        coefs.append(float(coef))
        vectors.append(v)
    assert header["svm_type"] == ["epsilon_svr"] and header["kernel_type"] == ["rbf"], header
    gamma, rho = float(header["gamma"][0]), float(header["rho"][0])
    lo = np.array([float(np.asarray(m).item()) for m in scale["min_"]])
    hi = np.array([float(np.asarray(m).item()) for m in scale["max_"]])
    # -1 + 2 (x - lo) / (hi - lo) = (x - offset) · s with s = 2 / (hi - lo), offset = lo + 1 / s.
    s = 2.0 / (hi - lo)
    offset = lo + 1.0 / s
    ml = "ai.onnx.ml"
    graph = helper.make_graph(
        [
            helper.make_node("Scaler", ["features"], ["scaled"], domain=ml, offset=offset.tolist(), scale=s.tolist()),
            helper.make_node("SVMRegressor", ["scaled"], ["score"], domain=ml, kernel_type="RBF",
                             kernel_params=[gamma, 0.0, 3.0], n_supports=len(coefs), coefficients=coefs,
                             support_vectors=np.concatenate(vectors).tolist(), rho=[-rho], post_transform="NONE"),
        ],
        "brisque",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch_size", 36])],
        [helper.make_tensor_value_info("score", TensorProto.FLOAT, ["batch_size", 1])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid(ml, 3)],
                              producer_name="modelmux-xtask-brisque")
    model.ir_version = 8
    onnx.checker.check_model(model)
    numpy_svr = lambda f: sum(c * np.exp(-gamma * np.sum(((f - offset) * s - v) ** 2))
                              for c, v in zip(coefs, vectors)) - rho
    return model, numpy_svr


def main(images, out, exports):
    import onnx
    from brisque import BRISQUE
    from brisque.models import MODEL_PATH

    images, out = Path(images), Path(out)
    shutil.rmtree(out, ignore_errors=True)
    (out / "images").mkdir(parents=True)
    model = BRISQUE(url=False)
    original_scale = BRISQUE.scale_features
    model.scale_features = lambda features: original_scale(model, [np.asarray(f).item() for f in features])
    onnx_model, numpy_svr = svr_onnx(Path(MODEL_PATH) / "svm.txt", model.scale_params)
    export = Path(exports) / "brisque" / "0.2.0"
    shutil.rmtree(export, ignore_errors=True)
    export.mkdir(parents=True)
    onnx.save(onnx_model, str(export / "model.onnx"))
    refs = {}
    import cv2
    import skimage.color

    for name, image in distorted(images):
        image.save(out / "images" / name)
        pixels = np.asarray(Image.open(out / "images" / name).convert("RGB"))
        score = float(model.score(pixels))
        gray = skimage.color.rgb2gray(pixels)
        small = cv2.resize(gray, None, fx=1 / 2, fy=1 / 2, interpolation=cv2.INTER_CUBIC)
        features = np.array([np.asarray(f).item() for f in np.concatenate(
            (model.calculate_brisque_features(gray, 7, 7 / 6), model.calculate_brisque_features(small, 7, 7 / 6)))])
        check = numpy_svr(features)
        assert abs(check - score) < 1e-6, f"{name}: the converted SVR gives {check}, libsvm {score}"
        refs[f"score/{name}"] = np.array([score], np.float64)
        refs[f"features/{name}"] = features.astype(np.float64)
        print(f"{name}: {score:.3f}")
    save_file(refs, str(out / "brisque.safetensors"))


if __name__ == "__main__":
    main(*sys.argv[1:])
