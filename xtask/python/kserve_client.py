"""Drives a running `modelmux serve` with the `kserve` SDK's v2 REST client and prints what it saw
as JSON.

Usage: kserve_client.py <base url of the tiny-model server> <base url of the `matmul` server>

The first server serves the tiny-model catalog (the text encoder `tiny-bert`), the second the raw
ONNX model `matmul` (FP32 x [n, 64] -> y [n, 64]) tensor for tensor. The Rust test
(tests/it/serve_kserve.rs) compares every number printed here with the same models called
in-process. `InferenceRESTClient` has no metadata calls, so metadata is fetched over its own HTTP
client and parsed by KServe's pydantic models of the v2 responses, which the answers must fit.
Each step records either its result or the client's error, so one failure does not hide the others.
"""

import asyncio
import json
import sys

import httpx
import numpy as np
from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig
from kserve.protocol.infer_type import RequestedOutput
from kserve.protocol.rest.v2_datamodels import ModelMetadataResponse, ServerMetadataResponse

TEXTS = ["A photo of a cat.", "modelmux serves many models", ""]


def array(response, name):
    """An output of an InferResponse as {shape, dtype, data}."""
    output = next(o for o in response.outputs if o.name == name)
    values = output.as_numpy()
    return {
        "shape": list(values.shape),
        "dtype": str(values.dtype),
        "datatype": output.datatype,
        "data": values.astype(float).ravel().tolist(),
    }


async def outcome(call, read=lambda result: {"status": "no error"}):
    """`read` of what a call returns, or the HTTP status and message the client raises for it."""
    try:
        result = await call
    except httpx.HTTPStatusError as e:
        return {"status": e.response.status_code, "message": str(e)}
    return read(result)


def embedding(response):
    return {"id": response.id, "model_name": response.model_name, **array(response, "embedding")}


async def metadata(client, url, model):
    reply = await client._client.get(url)
    reply.raise_for_status()
    return model.model_validate(reply.json()).model_dump()


def texts_request(binary_inputs, binary_outputs):
    text = InferInput("text", [len(TEXTS)], "BYTES")
    text.set_data_from_numpy(np.array([t.encode() for t in TEXTS], dtype=np.object_), binary_data=binary_inputs)
    return InferRequest(
        "tiny-bert",
        [text],
        request_id="kserve-1",
        request_outputs=[RequestedOutput("embedding", {"binary_data": binary_outputs})],
    )


async def main():
    tiny, matmul = sys.argv[1], sys.argv[2]
    out = {}
    client = InferenceRESTClient(RESTConfig(protocol="v2", retries=0, timeout=120))
    async with client:
        out["live"] = await client.is_server_live(tiny)
        out["ready"] = await client.is_server_ready(tiny)
        out["server_metadata"] = await metadata(client, f"{tiny}/v2", ServerMetadataResponse)
        out["model_ready"] = await client.is_model_ready(tiny, "tiny-bert")
        out["unknown_model_ready"] = await client.is_model_ready(tiny, "no-such-model")
        out["model_metadata"] = await metadata(client, f"{tiny}/v2/models/tiny-bert", ModelMetadataResponse)

        for name, binary_inputs, binary_outputs in [
            ("infer_json", False, False),
            ("infer_binary_in", True, False),
            ("infer_binary", True, True),
        ]:
            request = texts_request(binary_inputs, binary_outputs)
            out[name] = await outcome(client.infer(tiny, request, model_name="tiny-bert"), embedding)

        out["matmul_metadata"] = await metadata(client, f"{matmul}/v2/models/matmul", ModelMetadataResponse)
        x = np.linspace(-1, 1, 3 * 64, dtype=np.float32).reshape(3, 64)
        for name, binary in [("matmul_json", False), ("matmul_binary", True)]:
            tensor = InferInput("x", list(x.shape), "FP32")
            tensor.set_data_from_numpy(x, binary_data=binary)
            request = InferRequest("matmul", [tensor], parameters={"binary_data_output": binary})
            result = await outcome(client.infer(matmul, request, model_name="matmul"), lambda r: array(r, "y"))
            out[name] = {"x": x.astype(float).ravel().tolist(), "y": result}

        one = InferInput("text", [1], "BYTES")
        one.set_data_from_numpy(np.array([b"a"], dtype=np.object_), binary_data=False)
        out["unknown_model"] = await outcome(
            client.infer(tiny, InferRequest("no-such-model", [one]), model_name="no-such-model")
        )
        # The client checks shapes it builds from numpy, so the malformed tensor is given as data.
        short = InferInput("text", [2], "BYTES", data=["one"])
        out["wrong_shape"] = await outcome(client.infer(tiny, InferRequest("tiny-bert", [short]), model_name="tiny-bert"))
        wrong = InferInput("text", [1], "FP32")
        wrong.set_data_from_numpy(np.array([1.0], dtype=np.float32), binary_data=True)
        out["wrong_datatype"] = await outcome(client.infer(tiny, InferRequest("tiny-bert", [wrong]), model_name="tiny-bert"))
        int_x = InferInput("x", [1, 64], "INT64", data=list(range(64)))
        out["matmul_wrong_datatype"] = await outcome(
            client.infer(matmul, InferRequest("matmul", [int_x]), model_name="matmul")
        )
    print(json.dumps(out))


if __name__ == "__main__":
    asyncio.run(main())
