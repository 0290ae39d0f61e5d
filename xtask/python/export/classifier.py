"""`image-classifier`: `model.onnx`, `pixel_values` → `logits` (any AutoModelForImageClassification).

Softmax is left to the adapter; the labels (config `id2label`, in output order) are recorded
in the manifest as `extra.labels`.
"""

import torch
from transformers import AutoModelForImageClassification

from common import Export, Part


class Classifier(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, pixel_values):
        return self.model(pixel_values=pixel_values).logits


def export(args, source):
    model = AutoModelForImageClassification.from_pretrained(source).eval()
    cfg = model.config
    size = cfg.image_size if isinstance(cfg.image_size, int) else cfg.image_size[0]
    channels = getattr(cfg, "num_channels", 3)
    gen = torch.Generator().manual_seed(1)
    ex = Export(args, "image-classifier")
    ex.add(Part("model.onnx", Classifier(model), (torch.randn(2, channels, size, size, generator=gen),), ["pixel_values"],
                ["logits"], {"pixel_values": {0: "batch_size"}, "logits": {0: "batch_size"}},
                (torch.randn(3, channels, size, size, generator=gen),)))
    ex.extra["labels"] = [cfg.id2label[i] for i in range(cfg.num_labels)]
    ex.extra["image_size"] = size
    return ex
