"""The Python side of `cargo bench -p modelmux-adapters --bench vlm`: images per second for
(1) Hugging Face's CLIP processor (PIL backend) at CLIP's real 224-pixel config, decoding
included, and (2) CLIP image embedding on an exported vision tower: the export's own processor
+ onnxruntime (one session, default options, batch 1 and batch 16). Prints one JSON object.

    python vlm_bench.py <export dir> <repeat> <image>...
"""

import json
import sys
import time

import numpy as np
import onnxruntime as ort
from PIL import Image
from transformers import AutoImageProcessor, CLIPImageProcessorPil


def rate(work, items):
    work(items[:1])
    start = time.perf_counter()
    work(items)
    return len(items) / (time.perf_counter() - start)


def main(export, repeat, *paths):
    files = [p for p in paths for _ in range(int(repeat))]
    raw = [open(p, "rb").read() for p in files]
    import io

    def decode(blobs):
        return [Image.open(io.BytesIO(b)) for b in blobs]

    clip224 = CLIPImageProcessorPil()
    pre = rate(lambda blobs: [clip224(images=im, return_tensors="np") for im in decode(blobs)], raw)
    proc = AutoImageProcessor.from_pretrained(export, backend="pil")
    session = ort.InferenceSession(f"{export}/vision_model.onnx", providers=["CPUExecutionProvider"])

    def embed(blobs, batch):
        images = decode(blobs)
        for i in range(0, len(images), batch):
            pixels = proc(images=images[i:i + batch], return_tensors="np")["pixel_values"].astype(np.float32)
            session.run(None, {"pixel_values": pixels})

    out = {
        "preprocess_224": pre,
        "embed_b1": rate(lambda b: embed(b, 1), raw),
        "embed_b16": rate(lambda b: embed(b, 16), raw),
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main(*sys.argv[1:])
