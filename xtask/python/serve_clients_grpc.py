"""Drives `modelmux serve`'s gRPC service with the real PyPI tritonclient[grpc] and prints what it
saw as JSON.

Usage: serve_clients_grpc.py TINY_ADDRESS TOKEN ADD_ADDRESS

TINY_ADDRESS serves the tiny-model catalog under external control and accepts the bearer token
TOKEN; ADD_ADDRESS serves a catalog whose one model is the `add` fixture (tensor for tensor).
The Rust test (tests/it/serve_grpc.rs) compares every number printed here with the same models
called in-process. Each step records either its result or the client's error, so one failure
does not hide the others.
"""

import json
import sys

import numpy as np
import tritonclient.grpc as grpcclient

# The texts, and each failing call's status (here the gRPC code) and message, as for HTTP.
from serve_clients import TEXTS, error_status


def tensors(items):
    return [{"name": t.name, "datatype": t.datatype, "shape": list(t.shape)} for t in items]


def metadata(client, name, headers):
    m = client.get_model_metadata(name, headers=headers)
    return {
        "name": m.name,
        "versions": list(m.versions),
        "platform": m.platform,
        "inputs": tensors(m.inputs),
        "outputs": tensors(m.outputs),
    }


def config(client, name, headers):
    c = client.get_model_config(name, headers=headers, as_json=True)["config"]
    side = lambda items: [
        {"name": t["name"], "data_type": t["data_type"], "dims": [int(d) for d in t.get("dims", [])]}
        for t in items
    ]
    return {
        "name": c["name"],
        "platform": c.get("platform", ""),
        "backend": c.get("backend", ""),
        "max_batch_size": int(c.get("max_batch_size", 0)),
        "input": side(c.get("input", [])),
        "output": side(c.get("output", [])),
    }


def index_state(client, name, headers):
    for model in client.get_model_repository_index(headers=headers).models:
        if model.name == name:
            return model.state
    return None


def as_list(array):
    return {"shape": list(array.shape), "dtype": str(array.dtype), "data": array.astype(float).ravel().tolist()}


def infer_embeddings(client, headers):
    text = grpcclient.InferInput("text", [len(TEXTS)], "BYTES")
    text.set_data_from_numpy(np.array([t.encode() for t in TEXTS], dtype=np.object_))
    output = grpcclient.InferRequestedOutput("embedding")
    result = client.infer("tiny-bert", [text], outputs=[output], request_id="grpc-1", headers=headers)
    assert result.get_response().id == "grpc-1"
    return as_list(result.as_numpy("embedding"))


def statistics(client, name, headers):
    s = client.get_inference_statistics(name, headers=headers, as_json=True)["model_stats"][0]
    success = s.get("inference_stats", {}).get("success", {})
    return {
        "name": s["name"],
        "version": s.get("version", ""),
        "inference_count": int(s.get("inference_count", 0)),
        "execution_count": int(s.get("execution_count", 0)),
        "success_count": int(success.get("count", 0)),
        "memory_usage": [
            {"type": m["type"], "id": int(m.get("id", 0)), "byte_size": int(m.get("byte_size", 0))}
            for m in s.get("memory_usage", [])
        ],
    }


def main():
    tiny_address, token, add_address = sys.argv[1:4]
    auth = {"authorization": f"Bearer {token}"}
    out = {}

    tiny = grpcclient.InferenceServerClient(url=tiny_address)
    out["live"] = tiny.is_server_live()
    out["ready"] = tiny.is_server_ready()
    out["no_token"] = error_status(lambda: tiny.get_server_metadata())
    out["wrong_token"] = error_status(lambda: tiny.get_server_metadata(headers={"authorization": "Bearer wrong"}))
    server = tiny.get_server_metadata(headers=auth)
    out["server_metadata"] = {"name": server.name, "version": server.version, "extensions": list(server.extensions)}
    out["state_before_load"] = index_state(tiny, "tiny-bert", auth)
    out["infer_before_load"] = error_status(lambda: infer_embeddings(tiny, auth))
    tiny.load_model("tiny-bert", headers=auth)
    out["state_after_load"] = index_state(tiny, "tiny-bert", auth)
    out["model_ready"] = tiny.is_model_ready("tiny-bert", headers=auth)
    out["model_metadata"] = metadata(tiny, "tiny-bert", auth)
    out["model_config"] = config(tiny, "tiny-bert", auth)
    out["infer"] = infer_embeddings(tiny, auth)
    out["unknown_model"] = error_status(lambda: tiny.get_model_metadata("no-such-model", headers=auth))
    wrong = grpcclient.InferInput("text", [1], "FP32")
    wrong.set_data_from_numpy(np.array([1.0], dtype=np.float32))
    out["wrong_datatype"] = error_status(lambda: tiny.infer("tiny-bert", [wrong], headers=auth))
    out["statistics"] = statistics(tiny, "tiny-bert", auth)
    tiny.unload_model("tiny-bert", headers=auth)
    out["state_after_unload"] = index_state(tiny, "tiny-bert", auth)
    out["infer_after_unload"] = error_status(lambda: infer_embeddings(tiny, auth))

    add = grpcclient.InferenceServerClient(url=add_address)
    out["add_metadata"] = metadata(add, "add", None)
    out["add_config"] = config(add, "add", None)
    x = (np.arange(8, dtype=np.float32) * 0.5).reshape([2, 4])
    y = (1.0 - np.arange(8, dtype=np.float32)).reshape([2, 4])
    inputs = [grpcclient.InferInput("x", [2, 4], "FP32"), grpcclient.InferInput("y", [2, 4], "FP32")]
    inputs[0].set_data_from_numpy(x)
    inputs[1].set_data_from_numpy(y)
    out["add_infer"] = as_list(add.infer("add", inputs).as_numpy("sum"))
    wrong_type = grpcclient.InferInput("x", [2, 4], "INT64")
    wrong_type.set_data_from_numpy(np.arange(8, dtype=np.int64).reshape([2, 4]))
    out["add_wrong_type"] = error_status(lambda: add.infer("add", [wrong_type, inputs[1]]))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
