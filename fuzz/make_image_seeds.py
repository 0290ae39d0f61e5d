"""Writes the image_decode fuzz target's seeds: tiny PNG, JPEG and WebP files in the modes the
decoders handle differently, each followed by the 5 bytes that pick the image processor
(bodies/image_decode.rs: filter + 6 * resize kind, two sizes, crop height and width).

Run with any Python that has Pillow: python3 fuzz/make_image_seeds.py
"""

import io
import pathlib
import random

from PIL import Image

OUT = pathlib.Path(__file__).parent / "corpus" / "image_decode"
rng = random.Random(7)


def noise(mode, size):
    bands = len(Image.new(mode, (1, 1)).getbands())
    image = Image.new(mode, size)
    image.putdata([tuple(rng.randrange(256) for _ in range(bands)) if bands > 1 else rng.randrange(256)
                   for _ in range(size[0] * size[1])])
    return image


def save(name, image, fmt, params, **options):
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    (OUT / f"seed-{name}").write_bytes(buffer.getvalue() + bytes(params))


# (mode byte = filter + 6 * kind [+128 rescale offset], size a, size b, crop h (>=128: none), crop w)
BICUBIC_EDGE_CROP = [3 + 6 * 1, 16, 0, 12, 12]  # CLIP-like: shortest edge, bicubic, centre crop
BILINEAR_EXACT = [2 + 6 * 2, 9, 5, 200, 0]  # exact size, no crop
LANCZOS_UP = [1 + 6 * 1, 40, 0, 33, 20]  # upscale by the shortest edge, then crop
NEAREST_NONE = [0, 0, 0, 4, 7]  # no resize, crop larger than the image (zero padding)
BOX_EXACT = [4 + 6 * 2 + 128, 3, 11, 200, 0]
HAMMING_EDGE = [5 + 6 * 1, 5, 0, 200, 0]

OUT.mkdir(parents=True, exist_ok=True)
save("rgb-7x5.png", noise("RGB", (7, 5)), "PNG", BICUBIC_EDGE_CROP)
save("rgba-4x3.png", noise("RGBA", (4, 3)), "PNG", BILINEAR_EXACT)
save("gray-6x4.png", noise("L", (6, 4)), "PNG", LANCZOS_UP)
save("gray16-3x3.png", Image.frombytes("I;16", (3, 3), bytes(rng.randrange(256) for _ in range(18))), "PNG", NEAREST_NONE)
save("la-3x2.png", noise("LA", (3, 2)), "PNG", BOX_EXACT)
palette = noise("RGB", (5, 5)).convert("P", palette=Image.Palette.ADAPTIVE, colors=4)
save("palette-5x5.png", palette, "PNG", HAMMING_EDGE, transparency=0)
save("rgb-9x7.jpg", noise("RGB", (9, 7)), "JPEG", BICUBIC_EDGE_CROP, quality=90)
save("progressive-8x8.jpg", noise("RGB", (8, 8)), "JPEG", LANCZOS_UP, progressive=True)
save("gray-5x5.jpg", noise("L", (5, 5)), "JPEG", BILINEAR_EXACT)
save("cmyk-4x4.jpg", noise("CMYK", (4, 4)), "JPEG", NEAREST_NONE)
save("lossless-4x4.webp", noise("RGBA", (4, 4)), "WEBP", BOX_EXACT, lossless=True)
save("lossy-8x8.webp", noise("RGB", (8, 8)), "WEBP", HAMMING_EDGE, quality=50)
frames = [noise("RGBA", (3, 3)) for _ in range(2)]
buffer = io.BytesIO()
frames[0].save(buffer, "WEBP", save_all=True, append_images=frames[1:], lossless=True)
(OUT / "seed-animated-3x3.webp").write_bytes(buffer.getvalue() + bytes(BILINEAR_EXACT))
