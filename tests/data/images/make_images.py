"""Writes the test images of the vision suites (run once; the images are committed).

Photos come from scikit-image's bundled data (`skimage/data` inside its wheel: astronaut and
rocket are NASA public-domain photos, coffee and chelsea are CC0), downscaled so the repository
stays small; the rest are synthetic edge cases: 1×1, very wide, very tall, grayscale, RGBA, LA,
palette with transparency, 16-bit grayscale and 16-bit RGB PNGs, WebP.

    python make_images.py <skimage/data folder> <out folder>
"""

import sys
import zlib
import struct
from pathlib import Path

import numpy as np
from PIL import Image


def png16_rgb(path, array):
    """PIL cannot write 16-bit RGB PNGs; this writes one by hand (big-endian samples)."""
    h, w, _ = array.shape
    raw = b"".join(b"\x00" + array[y].astype(">u2").tobytes() for y in range(h))
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    header = struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)
    Path(path).write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def main(data, out):
    data, out = Path(data), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    photo = lambda name: Image.open(data / name)
    photo("astronaut.png").convert("RGB").resize((160, 160), Image.LANCZOS).save(out / "astronaut.jpg", quality=90)
    photo("coffee.png").convert("RGB").resize((200, 133), Image.LANCZOS).save(out / "coffee.jpg", quality=90)
    photo("chelsea.png").convert("RGB").resize((113, 75), Image.LANCZOS).save(out / "chelsea.png")
    photo("rocket.jpg").convert("RGB").resize((85, 128), Image.LANCZOS).save(out / "rocket.jpg", quality=85)
    photo("camera.png").convert("L").resize((96, 96), Image.LANCZOS).save(out / "camera-gray.png")
    photo("coffee.png").convert("RGB").resize((64, 43), Image.LANCZOS).save(out / "coffee.webp", lossless=True)
    Image.fromarray(np.array([[[200, 30, 90]]], dtype=np.uint8)).save(out / "one-pixel.png")
    x = np.linspace(0, 255, 400)
    wide = np.stack([np.tile(x, (7, 1)), np.tile(x[::-1], (7, 1)), rng.integers(0, 256, (7, 400))], -1)
    Image.fromarray(wide.astype(np.uint8)).save(out / "wide-400x7.png")
    tall = rng.integers(0, 256, (300, 5, 3)).astype(np.uint8)
    Image.fromarray(tall).save(out / "tall-5x300.png")
    rgba = np.array(photo("chelsea.png").convert("RGB").resize((48, 32), Image.LANCZOS))
    alpha = np.tile(np.linspace(0, 255, 48), (32, 1)).astype(np.uint8)
    Image.fromarray(np.dstack([rgba, alpha])).save(out / "chelsea-rgba.png")
    la = np.dstack([rng.integers(0, 256, (20, 37)), np.tile(np.linspace(255, 0, 37), (20, 1))]).astype(np.uint8)
    Image.fromarray(la, "LA").save(out / "noise-la.png")
    pal = photo("astronaut.png").convert("RGB").resize((40, 40)).quantize(16)
    pal.info["transparency"] = 3
    pal.save(out / "astronaut-palette.png", transparency=3)
    g16 = (np.tile(np.linspace(0, 65535, 50), (30, 1)) + rng.integers(0, 300, (30, 50))).clip(0, 65535)
    Image.fromarray(g16.astype(np.uint16)).save(out / "gradient-gray16.png")
    rgb16 = (np.array(photo("coffee.png").convert("RGB").resize((41, 27), Image.LANCZOS)).astype(np.uint32) * 257
             + rng.integers(0, 257, (27, 41, 3))).clip(0, 65535)
    png16_rgb(out / "coffee-rgb16.png", rgb16.astype(np.uint16))
    Image.fromarray(rng.integers(0, 256, (23, 17, 3)).astype(np.uint8)).save(out / "noise-17x23.png")


if __name__ == "__main__":
    main(*sys.argv[1:])
