"""Is a Q/DQ ONNX model one TensorRT's parser takes? Checked by construction.

TensorRT's ONNX parser accepts QuantizeLinear/DequantizeLinear only on
INT8/FP8/INT4 tensors and, for INT8, only symmetric quantization (zero
point 0). ONNX Runtime's quantizer can write models ONNX Runtime runs but
TensorRT refuses, e.g. a DequantizeLinear of an INT32 bias ("only activation
types allowed as input to this layer"). `calibrate` runs this check on every
model it writes, so such a model never reaches a GPU.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

from cfnc_edge.errors import CfncError

QDQ = ("QuantizeLinear", "DequantizeLinear")


def _elem_types(model: onnx.ModelProto) -> dict[str, int]:
    """Element type of every named tensor: initializers, constants, and what shape inference finds."""
    g = onnx.shape_inference.infer_shapes(model).graph
    types = {v.name: v.type.tensor_type.elem_type for v in (*g.input, *g.output, *g.value_info)}
    types.update({t.name: t.data_type for t in g.initializer})
    for n in g.node:
        if n.op_type == "Constant":
            types[n.output[0]] = n.attribute[0].t.data_type
    return types


def _constants(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    values = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    for n in model.graph.node:
        if n.op_type == "Constant" and n.attribute[0].name == "value":
            values[n.output[0]] = numpy_helper.to_array(n.attribute[0].t)
    return values


def qdq_problems(model: onnx.ModelProto) -> list[str]:
    """Every Q/DQ node TensorRT would refuse, one line each (empty: the model is fine)."""
    types, values = _elem_types(model), _constants(model)
    int8 = TensorProto.INT8
    problems = []
    for n in model.graph.node:
        if n.op_type not in QDQ:
            continue
        name = n.name or n.output[0]
        # the quantized side: DequantizeLinear's input, QuantizeLinear's output
        q = n.input[0] if n.op_type == "DequantizeLinear" else n.output[0]
        zp = n.input[2] if len(n.input) > 2 and n.input[2] else None
        if n.op_type == "DequantizeLinear" and types.get(q) != int8:
            problems.append(f"{n.op_type} {name} takes {TensorProto.DataType.Name(types.get(q, 0))} {q!r}, "
                            "TensorRT only dequantizes INT8")
        if zp is None:
            # DequantizeLinear's zero point then defaults to 0 of its (checked) input type;
            # QuantizeLinear without one produces UINT8
            if n.op_type == "QuantizeLinear":
                problems.append(f"QuantizeLinear {name} has no zero point (so UINT8), TensorRT needs INT8")
        elif types.get(zp) != int8:
            problems.append(f"{n.op_type} {name} has zero point type {TensorProto.DataType.Name(types.get(zp, 0))}, "
                            "TensorRT needs INT8")
        elif zp not in values or np.any(values[zp] != 0):
            problems.append(f"{n.op_type} {name} is asymmetric (zero point not 0), TensorRT needs zero point 0")
    return problems


def check_tensorrt_qdq(model: onnx.ModelProto, what: str = "the INT8 model") -> None:
    """Raise a CfncError naming the first refused Q/DQ nodes, if any."""
    problems = qdq_problems(model)
    if problems:
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise CfncError(f"{what} has Q/DQ nodes TensorRT cannot parse: {'; '.join(problems[:3])}{more}; "
                        "this is a bug in the quantization options, please report it")
