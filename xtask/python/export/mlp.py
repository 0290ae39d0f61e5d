"""`mlp-head`: a small MLP over an embedding (the LAION aesthetic predictor's layer sizes)."""

import json
from pathlib import Path

import torch

from common import Export, Part


class AestheticMlp(torch.nn.Module):
    """Linear layers with the given widths; dropout (identity at inference) is left out."""

    def __init__(self, config):
        super().__init__()
        dims = [config["input_dim"], *config["hidden_dims"], config["output_dim"]]
        self.layers = torch.nn.Sequential(*[torch.nn.Linear(a, b) for a, b in zip(dims, dims[1:])])

    def forward(self, image_embeds):
        return self.layers(image_embeds)


def export(args, source):
    from safetensors.torch import load_file

    config = json.loads((Path(source) / "config.json").read_text())
    model = AestheticMlp(config)
    model.load_state_dict(load_file(str(Path(source) / "model.safetensors")))
    gen = torch.Generator().manual_seed(1)
    d = config["input_dim"]
    ex = Export(args, "mlp-head")
    ex.add(Part("model.onnx", model.eval(), (torch.randn(2, d, generator=gen),), ["image_embeds"], ["score"],
                {"image_embeds": {0: "batch_size"}, "score": {0: "batch_size"}}, (torch.randn(5, d, generator=gen),)))
    ex.save_json("config.json", config)
    ex.extra["input_dim"] = d
    return ex
