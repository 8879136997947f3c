import shutil

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from cfnc_edge.bundle import Bundle
from cfnc_edge.deploy.calibrate import calibrate
from cfnc_edge.errors import BundleError, CfncError
from cfnc_edge.images import read_image
from cfnc_edge.report.bench import run_bench
from cfnc_edge.runtime.artefacts import ONNX_FILES
from cfnc_edge.runtime.backends import auto_backend
from cfnc_edge.runtime.inspector import Inspector


@pytest.fixture(scope="module")
def frames(tiny_data):
    return [read_image(p) for p in sorted((tiny_data / "test").glob("*/*.png"))[:6]]


def test_export_parity_within_stated_tolerances(exported):
    b, report = exported
    assert report["fp32"]["max_rel"] <= 1e-3 and report["fp16"]["mean_rel"] <= 2e-2
    assert report["images_checked"] > 1
    for name in ONNX_FILES.values():
        m = onnx.load(str(b.verify(name)))
        assert m.opset_import[0].version == 17
        inp = m.graph.input[0]
        assert inp.type.tensor_type.elem_type == onnx.TensorProto.UINT8
        assert inp.type.tensor_type.shape.dim[0].dim_param  # dynamic batch


def test_fp16_graph_holds_fp16_backbone_weights(exported):
    m = onnx.load(str(exported[0].verify(ONNX_FILES["fp16"])))
    types = {numpy_helper.to_array(t).dtype for t in m.graph.initializer if t.dims and np.prod(t.dims) > 64}
    assert np.dtype(np.float16) in types


def test_qdq_model_is_really_quantized(exported):
    m = onnx.load(str(exported[0].verify(ONNX_FILES["int8"])))
    inits = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}
    producers = {o: n for n in m.graph.node for o in n.output}
    convs = [n for n in m.graph.node if n.op_type == "Conv"]
    quantized = [c for c in convs if all(producers.get(i) is not None and producers[i].op_type == "DequantizeLinear"
                                         for i in c.input[:2])]
    assert len(quantized) >= 10
    assert not any(c.name.startswith("/stages.0/") for c in quantized)  # kept in float by default
    for c in quantized:
        w_dq = producers[c.input[1]]
        weights, scale = inits[w_dq.input[0]], inits[w_dq.input[1]]
        assert weights.dtype == np.int8
        assert scale.size == weights.shape[0]  # per output channel
    zero_points = [inits[n.input[2]] for n in m.graph.node
                   if n.op_type in ("QuantizeLinear", "DequantizeLinear") and len(n.input) > 2]
    # symmetric: every zero point is 0 (int8 for weights and activations, int32 for biases)
    assert zero_points and all(not z.any() for z in zero_points)
    assert {z.dtype for z in zero_points} <= {np.dtype(np.int8), np.dtype(np.int32)}
    assert sum(z.dtype == np.int8 for z in zero_points) > len(quantized)


def test_onnxruntime_maps_match_torch(exported, frames):
    b = exported[0]
    ref = Inspector(b, "torch")(frames)
    got = Inspector(b, "onnxruntime", "fp32")(frames)
    for r, g in zip(ref, got):
        np.testing.assert_allclose(g.map, r.map, rtol=1e-3, atol=1e-3 * r.map.max())
    for precision, tol in (("fp16", 0.05), ("int8", 0.25)):
        got = Inspector(b, "onnxruntime", precision)(frames)
        rel = [abs(g.score - r.score) / r.score for r, g in zip(ref, got)]
        assert max(rel) < tol, (precision, rel)


def test_auto_backend_prefers_onnxruntime_once_exported(exported, tiny_bundle):
    # or OpenVINO, where installed and measured faster at export (tests/runtime/test_openvino.py)
    assert Inspector(exported[0]).backend.name == auto_backend(exported[0], "fp32") in ("onnxruntime", "openvino")
    assert Inspector(tiny_bundle.path).backend.name == "torch"


def test_missing_onnx_and_onnx_of_another_bundle_are_refused(exported, tiny_bundle, tmp_path):
    with pytest.raises(BundleError, match="cfnc-edge export"):
        Inspector(tiny_bundle.path, "onnxruntime", "fp32")
    other = tmp_path / "other"
    shutil.copytree(tiny_bundle.path, other)
    b = Bundle.open(other)
    b.write({ONNX_FILES["fp32"]: exported[0].verify(ONNX_FILES["fp32"]).read_bytes()})
    # same weights: accepted; now change the weights the bundle says it holds
    weights = (other / "weights.safetensors")
    b.write({"weights.safetensors": weights.read_bytes() + b" "})
    with pytest.raises(BundleError, match="exported from other weights"):
        Inspector(Bundle.open(other, verify=False), "onnxruntime", "fp32")


def test_calibration_folder_without_images_is_refused(exported, tmp_path):
    with pytest.raises(CfncError, match="holds no images"):
        calibrate(exported[0], images=tmp_path, log=lambda m: None)


def test_bench_measures_every_backend_present(exported, tiny_data):
    rows = run_bench(exported[0].path, tiny_data / "train" / "good", batch_sizes=(1, 2), warmup=1, repeats=3,
                     progress=False)
    combos = {(r["backend"], r["precision"]) for r in rows}
    assert combos == {("torch", "fp32"), ("onnxruntime", "fp32"), ("onnxruntime", "fp16"), ("onnxruntime", "int8")}
    for r in rows:
        assert r["p99_ms"] >= r["p50_ms"] > 0 and r["images_per_s"] > 0 and r["peak_rss_mib"] > 0
        assert r["features_ms"] > 0 and r["distance_ms"] > 0
