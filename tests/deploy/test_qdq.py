"""The INT8 models `calibrate` writes are ones TensorRT's ONNX parser takes:
no Q/DQ node on INT32 data, symmetric INT8 only. The check itself is shown to
catch the patterns TensorRT refuses, on models built with onnx.helper."""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from cfnc_edge.deploy.qdq import check_tensorrt_qdq, qdq_problems
from cfnc_edge.errors import CfncError
from cfnc_edge.runtime.artefacts import ONNX_FILES


def test_calibrated_int8_model_passes_the_tensorrt_check(exported):
    bundle, _ = exported
    model = onnx.load(str(bundle.path / ONNX_FILES["int8"]))
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("DequantizeLinear") > 0  # it is a Q/DQ model: the check has something to look at
    assert qdq_problems(model) == []
    # biases stay float (QuantizeBias off): no INT32 initializer feeds a DequantizeLinear
    int32 = {t.name for t in model.graph.initializer if t.data_type == TensorProto.INT32}
    assert not any(n.input[0] in int32 for n in model.graph.node if n.op_type == "DequantizeLinear")


def _conv_model(bias_dtype, bias_zp=None, act_zp=0, act_zp_dtype=TensorProto.INT8):
    """x -> Q -> DQ -> Conv(DQ(w), DQ(bias)) with the bias stored as `bias_dtype`."""
    w = numpy_helper.from_array(np.ones((2, 1, 1, 1), np.int8), "w_q")
    b_np = {TensorProto.INT32: np.int32, TensorProto.INT8: np.int8}[bias_dtype]
    inits = [
        w, numpy_helper.from_array(np.full(2, 0.1, np.float32), "w_scale"),
        numpy_helper.from_array(np.zeros(2, np.int8), "w_zp"),
        numpy_helper.from_array(np.array([3, -4], b_np), "b_q"),
        numpy_helper.from_array(np.full(2, 0.01, np.float32), "b_scale"),
        numpy_helper.from_array(np.array(0.05, np.float32), "x_scale"),
        helper.make_tensor("x_zp", act_zp_dtype, [], [act_zp]),
    ]
    b_inputs = ["b_q", "b_scale"]
    if bias_zp is not None:
        inits.append(numpy_helper.from_array(np.zeros(2, b_np), "b_zp"))
        b_inputs.append("b_zp")
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "x_scale", "x_zp"], ["x_q"], name="q_x"),
        helper.make_node("DequantizeLinear", ["x_q", "x_scale", "x_zp"], ["x_dq"], name="dq_x"),
        helper.make_node("DequantizeLinear", ["w_q", "w_scale", "w_zp"], ["w_dq"], name="dq_w", axis=0),
        helper.make_node("DequantizeLinear", b_inputs, ["b_dq"], name="dq_bias", axis=0),
        helper.make_node("Conv", ["x_dq", "w_dq", "b_dq"], ["y"], name="conv"),
    ]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 4, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 4, 4])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    return model


def test_check_catches_an_int32_dequantize_linear():
    bad = _conv_model(TensorProto.INT32)
    problems = qdq_problems(bad)
    assert len(problems) == 1 and "dq_bias" in problems[0] and "INT32" in problems[0]
    with pytest.raises(CfncError, match="TensorRT cannot parse: DequantizeLinear dq_bias takes INT32"):
        check_tensorrt_qdq(bad)
    assert qdq_problems(_conv_model(TensorProto.INT8, bias_zp=0)) == []  # the same graph, INT8: fine


def test_check_catches_asymmetric_and_uint8_activations():
    asym = qdq_problems(_conv_model(TensorProto.INT8, bias_zp=0, act_zp=5))
    assert len(asym) == 2 and all("zero point not 0" in p for p in asym)  # q_x and dq_x
    uint8 = qdq_problems(_conv_model(TensorProto.INT8, bias_zp=0, act_zp_dtype=TensorProto.UINT8))
    assert any("dq_x takes UINT8" in p for p in uint8) and any("zero point type UINT8" in p for p in uint8)
    assert qdq_problems(_conv_model(TensorProto.INT8)) == []  # DQ of INT8 without a zero point: 0 by default
    no_zp = _conv_model(TensorProto.INT8)
    del no_zp.graph.node[0].input[2]  # QuantizeLinear without a zero point quantizes to UINT8
    assert any("q_x has no zero point" in p for p in qdq_problems(no_zp))
