"""Drives a running `modelmux serve` with the real PyPI clients and prints what they saw as JSON.

Usage: serve_clients.py HOST:PORT

The server must run under external control with the tiny-model catalog; the Rust test
(tests/it/serve.rs) compares every number printed here with the same models called in-process.
Each step records either its result or the client's error status, so one failure does not hide
the others.
"""

import base64
import json
import sys

import numpy as np
import tritonclient.http as httpclient
from openai import OpenAI
from tritonclient.utils import InferenceServerException

TEXTS = ["A photo of a cat.", "modelmux serves many models", ""]


def error_status(call):
    """The status the client reports for a failing call (HTTP code, or gRPC StatusCode), or 'no error'."""
    try:
        call()
    except InferenceServerException as e:
        return {"status": e.status(), "message": e.message()}
    return {"status": "no error"}


def index_state(client, name):
    for model in client.get_model_repository_index():
        if model["name"] == name:
            return model.get("state")
    return None


def infer_embeddings(client, binary):
    text = httpclient.InferInput("text", [len(TEXTS)], "BYTES")
    text.set_data_from_numpy(np.array([t.encode() for t in TEXTS], dtype=np.object_), binary_data=binary)
    output = httpclient.InferRequestedOutput("embedding", binary_data=binary)
    result = client.infer("tiny-bert", [text], outputs=[output], request_id="py-1")
    assert result.get_response()["id"] == "py-1"
    array = result.as_numpy("embedding")
    return {"shape": list(array.shape), "dtype": str(array.dtype), "data": array.astype(float).ravel().tolist()}


def main():
    address = sys.argv[1]
    out = {}
    triton = httpclient.InferenceServerClient(url=address)
    out["live"] = triton.is_server_live()
    out["ready"] = triton.is_server_ready()
    out["server_metadata"] = triton.get_server_metadata()
    out["state_before_load"] = index_state(triton, "tiny-bert")
    out["infer_before_load"] = error_status(lambda: infer_embeddings(triton, True))
    for name in ["tiny-bert", "tiny-gpt2", "tiny-sd"]:
        triton.load_model(name)
    out["state_after_load"] = index_state(triton, "tiny-bert")
    out["model_ready"] = triton.is_model_ready("tiny-bert")
    out["model_metadata"] = triton.get_model_metadata("tiny-bert")
    out["infer_binary"] = infer_embeddings(triton, True)
    out["infer_json"] = infer_embeddings(triton, False)
    out["unknown_model"] = error_status(lambda: triton.get_model_metadata("no-such-model"))
    wrong = httpclient.InferInput("text", [1], "FP32")
    wrong.set_data_from_numpy(np.array([1.0], dtype=np.float32), binary_data=True)
    out["wrong_datatype"] = error_status(lambda: triton.infer("tiny-bert", [wrong]))
    out["statistics"] = triton.get_inference_statistics("tiny-bert")

    openai = OpenAI(base_url=f"http://{address}/v1", api_key="not-checked")
    embedded = openai.embeddings.create(model="tiny-bert", input=TEXTS[:2])
    out["openai_embeddings"] = [list(map(float, d.embedding)) for d in embedded.data]
    stream = openai.chat.completions.create(
        model="tiny-gpt2",
        messages=[{"role": "user", "content": "Tell me about cats."}],
        max_tokens=8,
        stream=True,
    )
    pieces = []
    finish = None
    for chunk in stream:
        if chunk.choices:
            pieces.append(chunk.choices[0].delta.content or "")
            finish = chunk.choices[0].finish_reason or finish
    out["openai_chat_stream"] = {"text": "".join(pieces), "chunks": len(pieces), "finish_reason": finish}
    image = openai.images.generate(
        model="tiny-sd", prompt="a red square", n=1, response_format="b64_json", extra_body={"seed": 7, "steps": 2}
    )
    out["openai_image_png_bytes"] = len(base64.b64decode(image.data[0].b64_json))
    out["openai_image_png_b64"] = image.data[0].b64_json

    triton.unload_model("tiny-bert")
    out["state_after_unload"] = index_state(triton, "tiny-bert")
    out["infer_after_unload"] = error_status(lambda: infer_embeddings(triton, True))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
