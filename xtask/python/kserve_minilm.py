"""KServe's own Python model server on the text-encoder exports the serve bench runs (MiniLM and
the tiny fixture encoder): the baseline of
`cargo bench -p modelmux-server --bench serve` (started by the bench as a child process).

Usage: kserve_minilm.py <http port> <name> <export dir> <max_length> [<name> <export dir> <max_length> ...]

One `kserve.Model` per (name, export) — the bench serves `minilm` and the tiny fixture encoder
`tiny-bert` — each with the same Open Inference Protocol v2 signature as
`modelmux serve`'s text encoders: BYTES `text` [n] in, FP32 `embedding` [n, d] out. It tokenizes
with `tokenizers` (the export's tokenizer.json, truncation at max_length, padding to the longest),
runs the export's model.onnx on onnxruntime's CPU provider and mean-pools then L2-normalizes,
as the catalog's `embedding: { pooling: mean, normalize: true }` asks of modelmux.

Thread settings, as close as the two servers allow: onnxruntime's defaults on both sides (intra-op
threads = one per core, sequential execution); `predict` is async and runs tokenization and the
session on the event loop's default thread pool, so concurrent requests overlap the way modelmux's
two session instances do (onnxruntime releases the GIL while it runs). One uvicorn worker, gRPC off,
no per-request log lines; KServe's Python server has no dynamic batching of its own, so each
request is one session run.
Outputs are binary when the request asks for them (`binary_data_output`, or per output
`binary_data`), JSON otherwise, as KServe's encoder decides.
"""

import asyncio
import logging
import sys
import uuid
from pathlib import Path

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

import kserve
from kserve import InferOutput, InferRequest, InferResponse
from kserve.errors import InvalidInput


class Encoder(kserve.Model):
    def __init__(self, name: str, export_dir: Path, max_length: int):
        super().__init__(name)
        self.export_dir = export_dir
        self.max_length = max_length
        self.load()

    def load(self) -> bool:
        self.tokenizer = Tokenizer.from_file(str(self.export_dir / "tokenizer.json"))
        self.tokenizer.enable_truncation(self.max_length)
        self.tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        self.session = ort.InferenceSession(str(self.export_dir / "model.onnx"), providers=["CPUExecutionProvider"])
        self.input_names = {i.name for i in self.session.get_inputs()}
        self.ready = True
        return self.ready

    def embed(self, texts):
        encodings = self.tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        feed = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self.input_names:
            feed["token_type_ids"] = np.zeros_like(ids)
        hidden = self.session.run(["last_hidden_state"], feed)[0]
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(1) / np.clip(weights.sum(1), 1e-9, None)
        norms = np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
        return (pooled / norms).astype(np.float32)

    async def predict(self, payload: InferRequest, headers=None, response_headers=None) -> InferResponse:
        text = payload.get_input_by_name("text")
        if text is None or text.datatype != "BYTES":
            raise InvalidInput(f"{self.name} takes one BYTES input `text`")
        texts = [t.decode() if isinstance(t, bytes) else str(t) for t in text.as_numpy().ravel()]
        embeddings = await asyncio.get_running_loop().run_in_executor(None, self.embed, texts)
        # KServe's encoder turns the array into binary or JSON data, as the request asked.
        output = InferOutput(name="embedding", shape=list(embeddings.shape), datatype="FP32", data=embeddings)
        return InferResponse(
            response_id=payload.id or str(uuid.uuid4()),
            model_name=self.name,
            infer_outputs=[output],
            use_binary_outputs=payload.use_binary_outputs,
            requested_outputs=payload.request_outputs,
        )


def main():
    port, specs = int(sys.argv[1]), sys.argv[2:]
    models = [Encoder(specs[i], Path(specs[i + 1]), int(specs[i + 2])) for i in range(0, len(specs), 3)]
    server = kserve.ModelServer(http_port=port, workers=1, enable_grpc=False, enable_latency_logging=False)
    # No line per request (KServe's timing trace, uvicorn's access log): modelmux logs none either.
    for name in ["kserve.trace", "uvicorn.access"]:
        logging.getLogger(name).setLevel(logging.WARNING)
    server.start(models)


if __name__ == "__main__":
    main()
