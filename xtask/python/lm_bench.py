"""The Python side of `cargo bench -p modelmux-adapters --bench lm`: minilm embeddings per second
with onnxruntime + tokenizers (the same ONNX file and tokenizer.json as modelmux) and with
sentence-transformers (PyTorch), at batch 1 and 32, on the texts the Rust bench passes.

    python lm_bench.py <exports/minilm/1.0.0> <sentence-transformers model dir> <texts.json> [<smollm2 .gguf>]

With the GGUF, also SmolLM2's greedy tokens per second for 64 new tokens with transformers
`generate` (float32 on CPU, the dequantised weights the export was made from).

Prints one JSON object: {"onnxruntime_b1": …, "onnxruntime_b32": …, "sentence_transformers_b1": …,
"sentence_transformers_b32": …} in embeddings per second (sentence-transformers is left out when
it cannot be imported, and the reason given instead).
"""

import json
import os
import sys
import time
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"

import numpy as np  # noqa: E402


def rate(embed, texts, batch):
    embed(texts[:batch])  # warm-up
    start = time.perf_counter()
    for i in range(0, len(texts), batch):
        embed(texts[i : i + batch])
    return len(texts) / (time.perf_counter() - start)


def main():
    export_dir, model_dir, texts_file = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    spec = json.loads(texts_file.read_text())
    texts, max_length = spec["texts"], spec["max_length"]
    counts = {1: spec["count_b1"], 32: spec["count_b32"]}

    import onnxruntime as ort
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(export_dir / "tokenizer.json"))
    tokenizer.enable_truncation(max_length)
    tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
    session = ort.InferenceSession(str(export_dir / "model.onnx"), providers=["CPUExecutionProvider"])
    names = {i.name for i in session.get_inputs()}

    def ort_embed(batch):
        encodings = tokenizer.encode_batch(batch)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        feed = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in names:
            feed["token_type_ids"] = np.zeros_like(ids)
        hidden = session.run(["last_hidden_state"], feed)[0]
        m = mask[:, :, None].astype(np.float32)
        pooled = (hidden * m).sum(1) / np.clip(m.sum(1), 1e-9, None)
        return pooled / np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)

    result = {f"onnxruntime_b{b}": rate(ort_embed, texts[: counts[b]], b) for b in (1, 32)}
    try:
        import torch
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(str(model_dir), device="cpu")

        def st_embed(batch):
            with torch.inference_mode():
                return model.encode(batch, batch_size=len(batch), convert_to_numpy=True)

        result.update({f"sentence_transformers_b{b}": rate(st_embed, texts[: counts[b]], b) for b in (1, 32)})
    except ImportError as e:
        result["sentence_transformers_error"] = str(e)
    if len(sys.argv) > 4:
        result.update(smollm2(Path(sys.argv[4]), spec["prompt"], spec["new_tokens"]))
    print(json.dumps(result))


def smollm2(gguf, prompt, new_tokens):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32).eval()
    encoded = tokenizer(prompt, return_tensors="pt")

    def run(n):
        with torch.inference_mode():
            model.generate(**encoded, do_sample=False, max_new_tokens=n, min_new_tokens=n,
                           pad_token_id=tokenizer.eos_token_id)

    run(8)  # warm-up
    start = time.perf_counter()
    run(new_tokens)
    return {"transformers_tokens_per_s": new_tokens / (time.perf_counter() - start)}


if __name__ == "__main__":
    main()
