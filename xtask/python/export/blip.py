"""`blip-caption`: `vision_model.onnx` and `text_decoder.onnx` with a self-attention KV cache.

- vision_model.onnx: `pixel_values` [batch_size, 3, image_size, image_size] → `image_embeds`
  [batch_size, patches + 1, vision_hidden] (the vision transformer's last hidden state).
- text_decoder.onnx: the decoder-only contract (`input_ids`, `attention_mask` over past +
  current, `position_ids`, `past_key_values.{i}.key/value` → `logits`, `present.{i}.key/value`)
  plus `encoder_hidden_states` (= `image_embeds`, every step: cross-attention keys are
  recomputed from it, so only self-attention is cached).
Captioning starts from `[bos_token_id]` (`[DEC]`) and stops at `sep_token_id` (`extra`).
"""

import torch
from transformers import BlipForConditionalGeneration

from common import Export, Part
from decoder import cache_from, kv_axes, kv_names, present_of


class Vision(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.vision = model.vision_model

    def forward(self, pixel_values):
        return self.vision(pixel_values=pixel_values).last_hidden_state


class TextDecoder(torch.nn.Module):
    def __init__(self, model, layers):
        super().__init__()
        self.decoder = model.text_decoder
        self.layers = layers

    def forward(self, input_ids, attention_mask, position_ids, encoder_hidden_states, *past):
        out = self.decoder(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                           encoder_hidden_states=encoder_hidden_states, cache=cache_from(past, self.layers),
                           use_cache=True, return_dict=True)
        return (out.logits, *present_of(out.past_key_values, self.layers))


def export(args, source):
    if args.precision != "fp32":
        raise SystemExit("blip-caption: only --precision fp32 is exported yet (verify's KV-cache loop runs float32)")
    model = BlipForConditionalGeneration.from_pretrained(source, attn_implementation="eager").eval()
    cfg = model.config
    t = cfg.text_config
    layers = t.num_hidden_layers
    heads = t.num_attention_heads
    head_dim = t.hidden_size // heads
    size = cfg.vision_config.image_size
    gen = torch.Generator().manual_seed(1)
    ex = Export(args, "blip-caption")
    ex.add(Part("vision_model.onnx", Vision(model), (torch.randn(1, 3, size, size, generator=gen),), ["pixel_values"],
                ["image_embeds"], {"pixel_values": {0: "batch_size"}, "image_embeds": {0: "batch_size"}},
                (torch.randn(2, 3, size, size, generator=gen),)), case="vision")
    with torch.inference_mode():
        patches = model.vision_model(pixel_values=torch.zeros(1, 3, size, size)).last_hidden_state.shape[1]

    def inputs(batch, seq, past):
        ids = torch.randint(1, t.vocab_size, (batch, seq), generator=gen)
        mask = torch.ones(batch, past + seq, dtype=torch.int64)
        pos = torch.arange(past, past + seq).unsqueeze(0).repeat(batch, 1)
        enc = torch.randn(batch, patches, cfg.vision_config.hidden_size, generator=gen)
        kv = [torch.randn(batch, heads, past, head_dim, generator=gen) for _ in range(2 * layers)]
        return (ids, mask, pos, enc, *kv)

    past_names, present_names = kv_names(layers)
    axes = {"input_ids": {0: "batch_size", 1: "sequence_length"},
            "attention_mask": {0: "batch_size", 1: "total_sequence_length"},
            "position_ids": {0: "batch_size", 1: "sequence_length"},
            "encoder_hidden_states": {0: "batch_size", 1: "image_sequence_length"},
            "logits": {0: "batch_size", 1: "sequence_length"}}
    axes.update(kv_axes(past_names, present_names))
    part = Part("text_decoder.onnx", TextDecoder(model, layers), inputs(2, 3, 2),
                ["input_ids", "attention_mask", "position_ids", "encoder_hidden_states", *past_names],
                ["logits", *present_names], axes, inputs(3, 4, 5))
    ex.add(part, case="with_past")
    ex.add_case(part, "first_step", inputs(2, 1, 0))

    pixels = torch.randn(1, 3, size, size, generator=gen)
    with torch.inference_mode():
        out = model.generate(pixel_values=pixels, do_sample=False, max_new_tokens=20, output_logits=True,
                             return_dict_in_generate=True)
    ex.golden["generate/pixel_values"] = pixels.numpy()
    ex.golden["generate/prompt"] = torch.tensor([[t.bos_token_id]]).numpy()
    ex.golden["generate/tokens"] = out.sequences.numpy()
    ex.golden["generate/logits"] = torch.cat(out.logits).numpy()
    ex.generate = {"file": "text_decoder.onnx", "kind": "decoder-only", "prompt": "generate/prompt",
                   "tokens": "generate/tokens", "logits": "generate/logits", "layers": layers, "kv_heads": heads,
                   "head_dim": head_dim, "encoder": "vision_model.onnx", "encoder_input": "generate/pixel_values",
                   "encoder_input_name": "pixel_values", "encoder_output": "image_embeds",
                   "cross_input": "encoder_hidden_states"}
    ex.extra.update({"num_layers": layers, "num_key_value_heads": heads, "head_dim": head_dim, "image_size": size,
                     "bos_token_id": t.bos_token_id, "sep_token_id": t.sep_token_id, "pad_token_id": t.pad_token_id,
                     "vocab_size": t.vocab_size})
    return ex
