"""Reference outputs for the vision adapters, from the committed test images (tests/data/images).

For every image: the Hugging Face image processor's `pixel_values` (PIL backend, the one the
exports record) for each tiny model's `preprocessor_config.json` and for CLIP's real 224-pixel
config; then the PyTorch outputs of the tiny models on those pixel values (dual-encoder image and
text embeddings, BLIP greedy and beam captions, ViT logits, the aesthetic head's scores). The
Rust tests read the same image files, so their preprocessing is inside the comparison.

    python vision_refs.py <tiny exports> <tiny sources> <images> <out>

Writes `<out>/preprocess.safetensors`, `<out>/<model id>.safetensors` and `<out>/refs.json`.
"""

import json
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors.numpy import save_file

sys.path.insert(0, str(Path(__file__).parent / "export"))

PROMPTS = [
    "a photo of a cat sitting on a red sofa",
    "a painting of a lighthouse by the sea at dusk",
    "bright lighting in a white kitchen",
    "dim lighting in a jazz bar",
    "an astronaut riding a horse on the moon",
]

VERSION = "0.1.0"

INITIAL_RNG = torch.random.default_generator.get_state()


def images(folder):
    return sorted(p for p in Path(folder).iterdir() if p.suffix in (".png", ".jpg", ".webp"))


def shift16(path):
    """16-bit images as 8-bit by their high byte, what modelmux does (PIL clips I;16 at 255)."""
    array = np.array(Image.open(path))
    return Image.fromarray((array >> 8).astype(np.uint8))


def processors(exports):
    from transformers import AutoImageProcessor, CLIPImageProcessorPil

    procs = {}
    for model in ["tiny-clip", "tiny-align", "tiny-flava", "tiny-blip", "tiny-vit-classifier"]:
        procs[model] = AutoImageProcessor.from_pretrained(str(exports / model / VERSION), backend="pil")
    procs["clip-224"] = CLIPImageProcessorPil()
    return procs


def pixel_values(proc, image):
    return proc(images=image, do_convert_rgb=True, return_tensors="np")["pixel_values"][0].astype(np.float32)


def main(exports, sources, image_dir, out):
    exports, sources, out = Path(exports), Path(sources), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files = images(image_dir)
    procs = processors(exports)
    pre = {}
    from transformers.image_transforms import convert_to_rgb

    for path in files:
        # Pillow's decoded pixels (after Hugging Face's RGB conversion): JPEG decoders differ by
        # a level here and there, so the tests compare decoding and processing separately.
        image = shift16(path) if Image.open(path).mode.startswith("I;16") else Image.open(path)
        pre[f"decoded/{path.name}"] = np.asarray(convert_to_rgb(image, return_numpy=True), np.float32)
    for name, proc in procs.items():
        for path in files:
            pre[f"{name}/{path.name}"] = pixel_values(proc, Image.open(path))
            if Image.open(path).mode.startswith("I;16"):
                pre[f"{name}/{path.name}#shift8"] = pixel_values(proc, shift16(path))
    save_file(pre, str(out / "preprocess.safetensors"))
    refs = {"images": [p.name for p in files], "prompts": PROMPTS, "processors": sorted(procs)}

    def batch(model):
        # 16-bit images go in as modelmux reads them (high bytes), not as PIL clamps them.
        return torch.from_numpy(np.stack([pre.get(f"{model}/{p.name}#shift8", pre[f"{model}/{p.name}"]) for p in files]))

    torch.set_grad_enabled(False)

    def load(cls, folder):
        # Weights a checkpoint leaves out (FLAVA has some) are initialised from torch's global
        # generator; the exporter loads each model in a fresh process, so the generator is put
        # back to its initial state before every load to get the same weights.
        torch.random.default_generator.set_state(INITIAL_RNG)
        return cls.from_pretrained(str(folder), attn_implementation="eager").eval()

    from clip import TextTower, VisionTower
    from transformers import AlignModel, AutoTokenizer, CLIPModel, FlavaModel

    for model_id, cls in [("tiny-clip", CLIPModel), ("tiny-align", AlignModel), ("tiny-flava", FlavaModel)]:
        model = load(cls, sources / model_id)
        tok = AutoTokenizer.from_pretrained(str(exports / model_id / VERSION))
        enc = tok(PROMPTS, padding=True, return_tensors="pt")
        golden = {
            "image_embeds": VisionTower(model)(batch(model_id)).numpy(),
            "text_embeds": TextTower(model)(enc["input_ids"], enc["attention_mask"]).numpy(),
            "input_ids": enc["input_ids"].numpy(),
            "attention_mask": enc["attention_mask"].numpy(),
        }
        # FLAVA's embedding is a strided view (the first position); safetensors writes raw buffers.
        golden = {k: np.ascontiguousarray(v) for k, v in golden.items()}
        save_file(golden, str(out / f"{model_id}.safetensors"))
        if model_id == "tiny-clip":
            clip_embeds = golden["image_embeds"]

    from mlp import AestheticMlp
    from safetensors.torch import load_file

    config = json.loads((sources / "tiny-aesthetic" / "config.json").read_text())
    head = AestheticMlp(config)
    head.load_state_dict(load_file(str(sources / "tiny-aesthetic" / "model.safetensors")))
    unit = clip_embeds / np.linalg.norm(clip_embeds, axis=1, keepdims=True)
    save_file({"score": head(torch.from_numpy(unit)).numpy()}, str(out / "tiny-aesthetic.safetensors"))

    from transformers import AutoModelForImageClassification, BlipForConditionalGeneration

    vit = load(AutoModelForImageClassification, sources / "tiny-vit-classifier")
    save_file({"logits": vit(pixel_values=batch("tiny-vit-classifier")).logits.numpy()},
              str(out / "tiny-vit-classifier.safetensors"))

    blip = load(BlipForConditionalGeneration, sources / "tiny-blip")
    bos = blip.config.text_config.bos_token_id
    prefix = [bos, 10, 11]
    captions = {}
    pixels = batch("tiny-blip")
    for i, path in enumerate(files):
        one = pixels[i:i + 1]
        for beams in (1, 2, 3):
            seq = blip.generate(pixel_values=one, do_sample=False, num_beams=beams, max_new_tokens=20)
            captions[f"{path.name}/beams{beams}"] = seq[0].numpy().astype(np.int64)
        seq = blip.generate(pixel_values=one, input_ids=torch.tensor([prefix]), do_sample=False, num_beams=1,
                            max_new_tokens=12)
        captions[f"{path.name}/prefix"] = seq[0].numpy().astype(np.int64)
    captions["prefix"] = np.array(prefix, dtype=np.int64)
    save_file(captions, str(out / "tiny-blip.safetensors"))
    (out / "refs.json").write_text(json.dumps(refs, indent=2) + "\n")


if __name__ == "__main__":
    main(*sys.argv[1:])
