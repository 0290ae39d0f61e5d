"""`encoder-decoder` (T5): `encoder_model.onnx` and a decoder without self-attention cache.

- encoder_model.onnx: `input_ids`, `attention_mask` → `last_hidden_state`.
- decoder_model.onnx: `input_ids` (the whole decoder prefix, starting with
  `decoder_start_token_id`), `encoder_hidden_states`, `encoder_attention_mask` → `logits`.

Why no KV cache: T5's relative position bias depends on the past length, and the traced cached
decoder bakes it in as a constant, so greedy decoding diverged from generate() after 4 tokens
(notes/export-recipes.md). Re-running the prefix is O(n²) in the output length but exact; the
generation check in verify runs the loop for many steps against generate().
"""

import torch
from transformers import T5ForConditionalGeneration

from bert import padded_mask
from common import Export, Part


class Encoder(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.encoder = model.get_encoder()

    def forward(self, input_ids, attention_mask):
        return self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state


class Decoder(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, encoder_hidden_states, encoder_attention_mask):
        out = self.model.get_decoder()(input_ids=input_ids, encoder_hidden_states=encoder_hidden_states,
                                       encoder_attention_mask=encoder_attention_mask, use_cache=False)
        hidden = out.last_hidden_state
        if self.model.config.tie_word_embeddings:
            hidden = hidden * (self.model.model_dim ** -0.5)
        return self.model.lm_head(hidden)


def export(args, source):
    model = T5ForConditionalGeneration.from_pretrained(source, attn_implementation="eager").eval()
    cfg = model.config
    d = cfg.d_model
    gen = torch.Generator().manual_seed(1)

    def ids(batch, seq):
        return torch.randint(2, cfg.vocab_size, (batch, seq), generator=gen)

    ex = Export(args, "encoder-decoder")
    axes = {"input_ids": {0: "batch_size", 1: "encoder_sequence_length"},
            "attention_mask": {0: "batch_size", 1: "encoder_sequence_length"},
            "last_hidden_state": {0: "batch_size", 1: "encoder_sequence_length"}}
    ex.add(Part("encoder_model.onnx", Encoder(model), (ids(2, 8), padded_mask(2, 8)), ["input_ids", "attention_mask"],
                ["last_hidden_state"], axes, (ids(3, 11), padded_mask(3, 11))), case="encoder")
    daxes = {"input_ids": {0: "batch_size", 1: "decoder_sequence_length"},
             "encoder_hidden_states": {0: "batch_size", 1: "encoder_sequence_length"},
             "encoder_attention_mask": {0: "batch_size", 1: "encoder_sequence_length"},
             "logits": {0: "batch_size", 1: "decoder_sequence_length"}}
    ex.add(Part("decoder_model.onnx", Decoder(model), (ids(2, 5), torch.randn(2, 8, d, generator=gen), padded_mask(2, 8)),
                ["input_ids", "encoder_hidden_states", "encoder_attention_mask"], ["logits"], daxes,
                (ids(3, 9), torch.randn(3, 11, d, generator=gen), padded_mask(3, 11))), case="decoder")

    prompt = ids(1, 9)
    with torch.inference_mode():
        tokens = model.generate(prompt, attention_mask=torch.ones_like(prompt), do_sample=False, max_new_tokens=16,
                                output_logits=True, return_dict_in_generate=True)
    ex.golden["generate/prompt"] = prompt.numpy()
    ex.golden["generate/tokens"] = tokens.sequences.numpy()
    ex.golden["generate/logits"] = torch.cat(tokens.logits).numpy()  # [steps, vocab], raw (greedy has no processors)
    ex.generate = {"kind": "encoder-decoder", "encoder": "encoder_model.onnx", "file": "decoder_model.onnx",
                   "prompt": "generate/prompt", "tokens": "generate/tokens", "logits": "generate/logits",
                   "decoder_start_token_id": cfg.decoder_start_token_id, "eos_token_id": cfg.eos_token_id}
    ex.extra.update({"decoder_start_token_id": cfg.decoder_start_token_id, "eos_token_id": cfg.eos_token_id,
                     "pad_token_id": cfg.pad_token_id, "vocab_size": cfg.vocab_size, "decoder_cache": "none"})
    return ex
