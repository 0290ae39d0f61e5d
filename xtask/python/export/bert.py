"""`bert`: a BERT-style encoder → `last_hidden_state` (pooling is the adapter's job).

A checkpoint with a sequence-classification head (`*ForSequenceClassification` in its config's
`architectures`) also outputs the head's `logits`; its labels go to `extra.labels`.
"""

import inspect

import torch
from transformers import AutoModel, AutoModelForSequenceClassification

from common import Export, Part


class Encoder(torch.nn.Module):
    def __init__(self, model, with_token_types):
        super().__init__()
        self.model = model
        self.with_token_types = with_token_types

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        kwargs = {"token_type_ids": token_type_ids} if self.with_token_types else {}
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True, **kwargs)
        if hasattr(out, "logits"):
            return out.hidden_states[-1], out.logits
        return out.last_hidden_state


def ids(batch, seq, vocab, gen):
    return torch.randint(5, vocab, (batch, seq), generator=gen)


def padded_mask(batch, seq):
    """Ones, with the later rows padded by one more position each (exercises masking)."""
    mask = torch.ones(batch, seq, dtype=torch.int64)
    for row in range(1, batch):
        mask[row, seq - row:] = 0
    return mask


def export(args, source):
    from transformers import AutoConfig

    head = any(a.endswith("ForSequenceClassification") for a in AutoConfig.from_pretrained(source).architectures or [])
    loader = AutoModelForSequenceClassification if head else AutoModel
    model = loader.from_pretrained(source, attn_implementation="eager").eval()
    cfg = model.config
    with_types = "token_type_ids" in inspect.signature(model.forward).parameters and getattr(cfg, "type_vocab_size", 0) > 0
    gen = torch.Generator().manual_seed(1)

    def inputs(batch, seq):
        x = (ids(batch, seq, cfg.vocab_size, gen), padded_mask(batch, seq))
        return x + ((torch.zeros(batch, seq, dtype=torch.int64),) if with_types else ())

    names = ["input_ids", "attention_mask"] + (["token_type_ids"] if with_types else [])
    axes = {n: {0: "batch_size", 1: "sequence_length"} for n in names}
    axes["last_hidden_state"] = {0: "batch_size", 1: "sequence_length"}
    outputs = ["last_hidden_state"]
    if head:
        axes["logits"] = {0: "batch_size"}
        outputs.append("logits")
    ex = Export(args, "bert")
    ex.add(Part("model.onnx", Encoder(model, with_types), inputs(2, 8), names, outputs, axes, inputs(3, 11)))
    if head:
        ex.extra["labels"] = [cfg.id2label[i] for i in range(cfg.num_labels)]
    ex.extra["hidden_size"] = cfg.hidden_size
    ex.extra["token_type_ids"] = with_types
    return ex
