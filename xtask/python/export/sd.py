"""`stable-diffusion`: text_encoder, unet, vae_decoder and vae_encoder, each `<part>/model.onnx`.

- text_encoder: `input_ids` int64 [batch, 77] → `last_hidden_state`, `pooler_output`.
- unet: `sample` [batch, 4, h, w], `timestep` float32 [batch], `encoder_hidden_states` → `out_sample`.
- vae_decoder: `latent_sample` → `sample` (no latent scaling inside: the pipeline divides by
  `scaling_factor`, recorded in the manifest).
- vae_encoder: `sample` → `latent_parameters` (mean and logvar concatenated on the channel axis;
  deterministic, unlike a traced `latent_dist.sample()`).
The scheduler config and the tokenizer are copied beside them.
"""

import shutil
from pathlib import Path

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from transformers import CLIPTextModel

from common import Export, Part
from clip import text_inputs


class TextEncoder(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids):
        out = self.model(input_ids=input_ids)
        return out.last_hidden_state, out.pooler_output


class Unet(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, sample, timestep, encoder_hidden_states):
        return self.model(sample, timestep, encoder_hidden_states, return_dict=False)[0]


class VaeDecoder(torch.nn.Module):
    def __init__(self, vae):
        super().__init__()
        self.vae = vae

    def forward(self, latent_sample):
        return self.vae.decode(latent_sample, return_dict=False)[0]


class VaeEncoder(torch.nn.Module):
    def __init__(self, vae):
        super().__init__()
        self.vae = vae

    def forward(self, sample):
        h = self.vae.encoder(sample)
        return self.vae.quant_conv(h) if self.vae.quant_conv is not None else h


class _TextCfg:
    def __init__(self, cfg):
        self.text_config = cfg


def export(args, source):
    src = Path(source)
    text = CLIPTextModel.from_pretrained(src / "text_encoder", attn_implementation="eager").eval()
    unet = UNet2DConditionModel.from_pretrained(src / "unet").eval()
    vae = AutoencoderKL.from_pretrained(src / "vae").eval()
    gen = torch.Generator().manual_seed(1)
    ex = Export(args, "stable-diffusion")
    max_len = text.config.max_position_embeddings
    tcfg = _TextCfg(text.config)
    ex.add(Part("text_encoder/model.onnx", TextEncoder(text), (text_inputs(tcfg, 2, max_len, gen)[0],), ["input_ids"],
                ["last_hidden_state", "pooler_output"],
                {"input_ids": {0: "batch_size", 1: "sequence_length"}, "last_hidden_state": {0: "batch_size", 1: "sequence_length"},
                 "pooler_output": {0: "batch_size"}},
                (text_inputs(tcfg, 3, max_len, gen)[0],)), case="text_encoder")
    c = unet.config
    lat = c.in_channels
    hidden = c.cross_attention_dim
    s = c.sample_size if isinstance(c.sample_size, int) else c.sample_size[0]

    def unet_inputs(batch, h, w):
        return (torch.randn(batch, lat, h, w, generator=gen), torch.tensor([981.0, 501.0, 1.0, 21.0][:batch]),
                torch.randn(batch, 7, hidden, generator=gen))

    ex.add(Part("unet/model.onnx", Unet(unet), unet_inputs(2, s, s), ["sample", "timestep", "encoder_hidden_states"],
                ["out_sample"],
                {"sample": {0: "batch_size", 2: "height", 3: "width"}, "timestep": {0: "batch_size"},
                 "encoder_hidden_states": {0: "batch_size", 1: "sequence_length"},
                 "out_sample": {0: "batch_size", 2: "height", 3: "width"}},
                unet_inputs(2, s // 2 * 2 + 8, s)), case="unet")
    factor = 2 ** (len(vae.config.block_out_channels) - 1)
    vl = vae.config.latent_channels
    ex.add(Part("vae_decoder/model.onnx", VaeDecoder(vae), (torch.randn(1, vl, 8, 8, generator=gen),), ["latent_sample"],
                ["sample"], {"latent_sample": {0: "batch_size", 2: "latent_height", 3: "latent_width"},
                             "sample": {0: "batch_size", 2: "height", 3: "width"}},
                (torch.randn(2, vl, 12, 10, generator=gen),)), case="vae_decoder")
    ex.add(Part("vae_encoder/model.onnx", VaeEncoder(vae), (torch.rand(1, 3, 16, 16, generator=gen) * 2 - 1,), ["sample"],
                ["latent_parameters"], {"sample": {0: "batch_size", 2: "height", 3: "width"},
                                        "latent_parameters": {0: "batch_size", 2: "latent_height", 3: "latent_width"}},
                (torch.rand(2, 3, 24, 20, generator=gen) * 2 - 1,)), case="vae_encoder")
    for sub in ["tokenizer", "scheduler"]:
        if (src / sub).exists():
            shutil.copytree(src / sub, Path(args.out) / sub)
    if (src / "model_index.json").exists():
        shutil.copy(src / "model_index.json", Path(args.out) / "model_index.json")
    ex.extra.update({
        "timestep": {"dtype": "float32", "shape": ["batch_size"]},
        "vae_scale_factor": factor,
        "latent_channels": vl,
        "scaling_factor": float(vae.config.scaling_factor),
        "text_max_length": max_len,
    })
    return ex
