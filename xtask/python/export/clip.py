"""Dual encoders (`clip`, `align`, `flava`): split towers.

`text_model.onnx` → `text_embeds`, `vision_model.onnx` → `image_embeds`. Both embeddings are the
projected, *unnormalised* vectors the model's own contrastive head compares (normalising is the
adapter's job); the logit scale, as the multiplier of the cosine similarity, is recorded in the
manifest as `extra.logit_scale`. FLAVA projects every token: its embedding is the projected
first ([CLS]) token, as FLAVA's contrastive head uses.
"""

import torch
from transformers import AlignModel, CLIPModel, FlavaModel

from bert import ids as random_ids, padded_mask
from common import Export, Part


def features(out):
    # transformers 5 returns an output object whose pooler_output is the projected embedding.
    out = out if isinstance(out, torch.Tensor) else out.pooler_output
    # FLAVA projects every position; its embedding is the first ([CLS]) one.
    return out[:, 0, :] if out.dim() == 3 else out


# architecture → (model class, image size of the config, logit scale of the model)
FAMILIES = {
    "clip": (CLIPModel, lambda c: c.vision_config.image_size, lambda m: float(m.logit_scale.exp())),
    "align": (AlignModel, lambda c: c.vision_config.image_size, lambda m: float(1.0 / m.temperature)),
    "flava": (FlavaModel, lambda c: c.image_config.image_size, lambda m: float(m.logit_scale.exp())),
}


class TextTower(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask):
        return features(self.model.get_text_features(input_ids=input_ids, attention_mask=attention_mask))


class VisionTower(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, pixel_values):
        return features(self.model.get_image_features(pixel_values=pixel_values))


def text_inputs(cfg, batch, seq, gen):
    """BOS, random tokens, EOS, then padding with the pad id (as a max_length tokenizer does)."""
    t = cfg.text_config
    ids = torch.randint(3, t.vocab_size, (batch, seq), generator=gen)
    ids[ids == t.eos_token_id] = 3
    mask = torch.ones(batch, seq, dtype=torch.int64)
    ids[:, 0] = t.bos_token_id
    for row in range(batch):
        end = seq - 1 - row
        ids[row, end] = t.eos_token_id
        ids[row, end + 1:] = t.pad_token_id
        mask[row, end + 1:] = 0
    return ids, mask


def bert_text_inputs(cfg, batch, seq, gen):
    return random_ids(batch, seq, cfg.text_config.vocab_size, gen), padded_mask(batch, seq)


def export(args, source):
    model_class, image_size, logit_scale = FAMILIES[args.arch]
    model = model_class.from_pretrained(source, attn_implementation="eager").eval()
    cfg = model.config
    size = image_size(cfg)
    text_inputs_of = text_inputs if args.arch == "clip" else bert_text_inputs
    gen = torch.Generator().manual_seed(1)
    ex = Export(args, args.arch)
    text_axes = {"input_ids": {0: "text_batch_size", 1: "sequence_length"},
                 "attention_mask": {0: "text_batch_size", 1: "sequence_length"}, "text_embeds": {0: "text_batch_size"}}
    ex.add(Part("text_model.onnx", TextTower(model), text_inputs_of(cfg, 2, 9, gen), ["input_ids", "attention_mask"],
                ["text_embeds"], text_axes, text_inputs_of(cfg, 3, 12, gen)))
    ex.add(Part("vision_model.onnx", VisionTower(model), (torch.randn(2, 3, size, size, generator=gen),),
                ["pixel_values"], ["image_embeds"], {"pixel_values": {0: "image_batch_size"}, "image_embeds": {0: "image_batch_size"}},
                (torch.randn(3, 3, size, size, generator=gen),)))
    ex.extra["logit_scale"] = logit_scale(model)
    ex.extra["projection_dim"] = cfg.projection_dim
    ex.extra["image_size"] = size
    if args.arch == "clip":
        ex.extra["eos_token_id"] = cfg.text_config.eos_token_id
    ex.extra["preprocessing_backend"] = "CLIPImageProcessorPil (no torchvision in the export environment)"
    return ex
