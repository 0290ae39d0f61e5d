"""Builds the small ONNX graphs the runtime tests run on.

Each graph is stamped with the IR version and opset chosen here on purpose: `onnx.helper.make_model`
would stamp the newest IR (14), which ONNX Runtime 1.31 refuses.

Usage: make_fixtures.py OUT_DIR
"""

import json
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 18
IR = 8  # The minimal IR for opset 18, as make_model_gen_version would pick.


def model(graph, ir=IR, opset=OPSET, metadata=None):
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="modelmux-fixtures")
    m.ir_version = ir
    for key, value in (metadata or {}).items():
        entry = m.metadata_props.add()
        entry.key, entry.value = key, value
    return m


def add():
    """sum = x + y over [batch, 4] float32, with custom metadata."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])
    out = helper.make_tensor_value_info("sum", TensorProto.FLOAT, ["batch", 4])
    graph = helper.make_graph([helper.make_node("Add", ["x", "y"], ["sum"])], "add", [x, y], [out])
    return model(graph, metadata={"modelmux.family": "test", "modelmux.note": "x + y"})


def types():
    """One input and output per element type the runtime exchanges, all of length n."""
    inputs, outputs, nodes = [], [], []
    for name, ty, op in [
        ("h", TensorProto.FLOAT16, "Add"),
        ("i", TensorProto.INT64, "Add"),
        ("j", TensorProto.INT32, "Add"),
        ("u", TensorProto.UINT8, "Identity"),
    ]:
        inputs.append(helper.make_tensor_value_info(name, ty, ["n"]))
        outputs.append(helper.make_tensor_value_info(name + "_out", ty, ["n"]))
        nodes.append(helper.make_node(op, [name, name] if op == "Add" else [name], [name + "_out"]))
    inputs.append(helper.make_tensor_value_info("b", TensorProto.BOOL, ["n"]))
    outputs.append(helper.make_tensor_value_info("b_out", TensorProto.BOOL, ["n"]))
    nodes.append(helper.make_node("Not", ["b"], ["b_out"]))
    return model(helper.make_graph(nodes, "types", inputs, outputs))


def matmul():
    """y = relu(x @ W + c) with fixed seeded weights: 64×64 float32, 16 KiB of initializers."""
    rng = np.random.default_rng(7)
    w = rng.standard_normal((64, 64)).astype(np.float32) / 8
    c = rng.standard_normal((64,)).astype(np.float32)
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 64])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 64])
    nodes = [
        helper.make_node("MatMul", ["x", "W"], ["xw"]),
        helper.make_node("Add", ["xw", "c"], ["pre"]),
        helper.make_node("Relu", ["pre"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes, "matmul", [x], [y], initializer=[numpy_helper.from_array(w, "W"), numpy_helper.from_array(c, "c")]
    )
    return model(graph), {"W": w, "c": c}


def identity(ir, opset):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])
    return model(helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "identity", [x], [y]), ir=ir, opset=opset)


def main():
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    onnx.save(add(), out / "add.onnx")
    onnx.save(types(), out / "types.onnx")
    mm, weights = matmul()
    onnx.save(mm, out / "matmul.onnx")
    # A reference run of matmul.onnx computed with numpy, for the runtime test to compare against.
    x = np.linspace(-1, 1, 3 * 64, dtype=np.float32).reshape(3, 64)
    y = np.maximum(x @ weights["W"] + weights["c"], 0)
    (out / "matmul.golden.json").write_text(json.dumps({"x": x.tolist(), "y": y.tolist()}))
    onnx.save(identity(IR, OPSET), out / "identity.onnx")
    onnx.save(identity(14, OPSET), out / "identity-ir14.onnx")
    onnx.save(identity(IR, 27), out / "identity-opset27.onnx")
    for name in ["add", "types", "matmul", "identity"]:
        onnx.checker.check_model(onnx.load(out / f"{name}.onnx"))
    print(f"fixtures written to {out}")


if __name__ == "__main__":
    main()
