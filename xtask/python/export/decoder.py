"""`decoder-only` (GPT-2, Llama family): one `model.onnx` with the KV cache in its inputs.

Inputs `input_ids`, `attention_mask` (past + current), `position_ids`, `past_key_values.{i}.key`
/ `.value` `[batch, kv_heads, past, head_dim]` (zero-length on the first step); outputs
`logits`, `present.{i}.key` / `.value`. The exporter also saves the tokens `generate()` produces
greedily, which `cargo xtask verify` reproduces with the cache, step by step.
"""

import torch
from transformers import AutoModelForCausalLM, DynamicCache

from common import Export, Part


def kv_shape(cfg):
    heads = cfg.num_attention_heads
    kv_heads = getattr(cfg, "num_key_value_heads", None) or heads
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // heads
    return kv_heads, head_dim


def cache_from(past, layers):
    """A DynamicCache holding the flat `past_key_values.{i}.key/value` inputs."""
    cache = DynamicCache()
    for i in range(layers):
        cache.update(past[2 * i], past[2 * i + 1], i)
    return cache


def present_of(cache, layers):
    """The flat `present.{i}.key/value` outputs of a cache (its self-attention part)."""
    cache = getattr(cache, "self_attention_cache", cache)
    present = []
    for layer in cache.layers[:layers]:
        present += [layer.keys, layer.values]
    return present


def kv_names(layers):
    past = [f"past_key_values.{i}.{kv}" for i in range(layers) for kv in ("key", "value")]
    present = [f"present.{i}.{kv}" for i in range(layers) for kv in ("key", "value")]
    return past, present


def kv_axes(past_names, present_names):
    axes = {n: {0: "batch_size", 2: "past_sequence_length"} for n in past_names}
    axes.update({n: {0: "batch_size", 2: "total_sequence_length"} for n in present_names})
    return axes


class WithPast(torch.nn.Module):
    def __init__(self, model, layers):
        super().__init__()
        self.model = model
        self.layers = layers

    def forward(self, input_ids, attention_mask, position_ids, *past):
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                         past_key_values=cache_from(past, self.layers), use_cache=True)
        return (out.logits, *present_of(out.past_key_values, self.layers))


def load(source, out):
    """A Hugging Face folder, or a GGUF file (dequantized to float32 by transformers; its
    tokenizer and config are written beside the export)."""
    from pathlib import Path

    path = Path(source)
    if path.suffix != ".gguf":
        return AutoModelForCausalLM.from_pretrained(source, attn_implementation="eager").eval()
    from transformers import AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, attn_implementation="eager",
                                                 dtype=torch.float32).eval()
    AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name).save_pretrained(out)
    model.config.to_json_file(str(Path(out) / "config.json"))
    model.generation_config.to_json_file(str(Path(out) / "generation_config.json"))
    return model


def export(args, source):
    if args.precision != "fp32":
        raise SystemExit("decoder-only: only --precision fp32 is exported yet (verify's KV-cache loop runs float32)")
    model = load(source, args.out)
    cfg = model.config
    layers = cfg.num_hidden_layers
    kv_heads, head_dim = kv_shape(cfg)
    gen = torch.Generator().manual_seed(1)

    def inputs(batch, seq, past):
        ids = torch.randint(1, cfg.vocab_size, (batch, seq), generator=gen)
        mask = torch.ones(batch, past + seq, dtype=torch.int64)
        pos = torch.arange(past, past + seq).unsqueeze(0).repeat(batch, 1)
        # A real cache (the model run on a random prefix), not random numbers: random keys and
        # values are far outside what a trained model produces and inflate the error.
        prefix = torch.randint(1, cfg.vocab_size, (batch, past), generator=gen)
        if past == 0:
            kv = [torch.zeros(batch, kv_heads, 0, head_dim) for _ in range(2 * layers)]
        else:
            with torch.inference_mode():
                kv = present_of(model(input_ids=prefix, use_cache=True).past_key_values, layers)
            kv = [t.clone() for t in kv]
        return (ids, mask, pos, *kv)

    past_names, present_names = kv_names(layers)
    axes = {
        "input_ids": {0: "batch_size", 1: "sequence_length"},
        "attention_mask": {0: "batch_size", 1: "total_sequence_length"},
        "position_ids": {0: "batch_size", 1: "sequence_length"},
        "logits": {0: "batch_size", 1: "sequence_length"},
    }
    axes.update(kv_axes(past_names, present_names))
    wrapper = WithPast(model, layers)
    ex = Export(args, "decoder-only")
    part = Part("model.onnx", wrapper, inputs(2, 4, 3), ["input_ids", "attention_mask", "position_ids", *past_names],
                ["logits", *present_names], axes, inputs(3, 5, 6),
                # Logits of a real LM reach |30|: a 30-layer SmolLM2 differs by 1.5e-4 (5e-6 relative).
                atol={"logits": 5e-4})
    ex.add(part, case="with_past")
    # The first step of generation: zero-length past.
    ex.add_case(part, "first_step", inputs(2, 7, 0))

    # Greedy generation with transformers' own loop; verify repeats it with the ONNX cache.
    prompt = torch.randint(1, cfg.vocab_size, (1, 6), generator=gen)
    steps = 24
    with torch.inference_mode():
        tokens = model.generate(prompt, attention_mask=torch.ones_like(prompt), do_sample=False,
                                max_new_tokens=steps, pad_token_id=cfg.eos_token_id,
                                output_logits=True, return_dict_in_generate=True)
    ex.golden["generate/prompt"] = prompt.numpy()
    ex.golden["generate/tokens"] = tokens.sequences.numpy()
    ex.golden["generate/logits"] = torch.cat(tokens.logits).numpy()  # [steps, vocab], raw (greedy has no processors)
    ex.generate = {"file": "model.onnx", "kind": "decoder-only", "prompt": "generate/prompt", "tokens": "generate/tokens", "logits": "generate/logits",
                   "layers": layers, "kv_heads": kv_heads, "head_dim": head_dim, "eos_token_id": cfg.eos_token_id}
    ex.extra.update({"num_layers": layers, "num_key_value_heads": kv_heads, "head_dim": head_dim,
                     "vocab_size": cfg.vocab_size, "eos_token_id": cfg.eos_token_id})
    return ex
