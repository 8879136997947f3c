"""The OpenVINO backend on the tiny exported bundle: features against
PyTorch, the explicit precision hint, its NNCF INT8 model, and how `auto`
decides. Skipped without OpenVINO (pip install 'cfnc-edge[openvino]')."""

import numpy as np
import pytest

pytest.importorskip("openvino", reason="OpenVINO is not installed (pip install 'cfnc-edge[openvino]')")

from cfnc_edge.bundle import Bundle  # noqa: E402
from cfnc_edge.data.bundle_images import sample_images  # noqa: E402
from cfnc_edge.errors import CfncError  # noqa: E402
from cfnc_edge.runtime.backends import auto_backend, create_backend  # noqa: E402
from cfnc_edge.runtime.backends.openvino_backend import INT8_FILES, cpu_name  # noqa: E402
from cfnc_edge.runtime.inspector import Inspector  # noqa: E402


@pytest.fixture(scope="module")
def batch(exported):
    return sample_images(exported[0], None, 5)  # 5: not the batch sizes export compiled for


def test_features_match_torch_at_the_fp32_export_tolerance(exported, batch):
    b, report = exported
    assert report["openvino"]["max_rel"] <= 1e-3  # checked by export itself
    ov, torch = create_backend(b, "openvino"), create_backend(b, "torch")
    (f, t), (rf, rt) = ov(batch), torch(batch)
    assert f.dtype == np.float32 and f.shape == rf.shape and t.shape == rt.shape
    assert np.abs(f - rf).max() / np.abs(rf).max() <= 1e-3
    np.testing.assert_allclose(t, rt, atol=1e-4)


def test_precision_hint_is_f32_not_the_cpu_default(exported, batch):
    be = create_backend(exported[0], "openvino")
    be(batch[:1])
    compiled = be.model.request(1).get_compiled_model()
    assert str(compiled.get_property("INFERENCE_PRECISION_HINT")) == "<Type: 'float32'>"
    assert "f32 hint" in be.provider


def test_nncf_int8_model_is_quantized_and_close(exported, batch):
    b = exported[0]
    assert b.has(INT8_FILES[0]) and b.has(INT8_FILES[1])
    xml = b.verify(INT8_FILES[0]).read_text()
    assert xml.count('type="FakeQuantize"') >= 10
    assert b.manifest["calibration"]["openvino"]["feature_error"]["mean_rel"] < 0.15
    fp32, int8 = create_backend(b, "openvino", "fp32")(batch)[0], create_backend(b, "openvino", "int8")(batch)[0]
    assert 0 < np.abs(int8 - fp32).mean() / np.abs(fp32).mean() < 0.15


def test_inspector_maps_on_openvino_match_torch(exported, tiny_data):
    from cfnc_edge.images import read_image

    frames = [read_image(p) for p in sorted((tiny_data / "test").glob("*/*.png"))[:4]]
    ref = Inspector(exported[0], "torch")(frames)
    for r, g in zip(ref, Inspector(exported[0], "openvino")(frames)):
        np.testing.assert_allclose(g.map, r.map, rtol=1e-3, atol=1e-3 * r.map.max())


def test_auto_follows_the_speed_measured_at_export_on_this_cpu(exported):
    b = Bundle.open(exported[0].path)
    m = b.manifest["cpu_backends"]
    assert m["cpu"] == cpu_name() and set(m["p50_ms"]) == {"onnxruntime", "openvino"}
    for fastest in ("openvino", "onnxruntime"):
        b.manifest["cpu_backends"] = dict(m, fastest=fastest)
        assert auto_backend(b, "fp32") == fastest
    b.manifest["cpu_backends"] = dict(m, fastest="openvino", cpu="another CPU")
    assert auto_backend(b, "fp32") == "onnxruntime"  # measured elsewhere: not evidence for this CPU
    assert auto_backend(b, "int8") == "onnxruntime"


def test_unsupported_precision_and_missing_int8_are_refused(exported, tiny_bundle):
    with pytest.raises(CfncError, match="runs fp32 or int8"):
        create_backend(exported[0], "openvino", "fp16")
    with pytest.raises(CfncError, match="cfnc-edge export"):
        create_backend(tiny_bundle, "openvino", "fp32")
