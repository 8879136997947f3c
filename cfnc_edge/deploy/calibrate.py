"""INT8 by explicit quantization: a Q/DQ ONNX model that TensorRT builds as INT8.

Symmetric int8 (zero point 0) for weights (per output channel) and
activations, scales calibrated on good images (entropy, percentile or
min-max). Only the backbone convolutions are quantized: the spatial
transformers (grid sampling, a few kFLOPs) and the projection stay fp32.
`keep` names backbone stages to leave in float too: on EfficientNet-Lite0,
quantizing the stride-4 stage alone moves the features far more than the two
deeper stages together (measured: calibration/README.md), so stage 0 is kept
in float by default.
The same Q/DQ model runs in ONNX Runtime on the CPU, which is how its
accuracy cost is measured without a GPU.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import onnx

from cfnc_edge.bundle import Bundle
from cfnc_edge.data.bundle_images import sample_images
from cfnc_edge.deploy.export import onnx_path
from cfnc_edge.deploy.openvino_int8 import nncf_available, write_openvino_int8
from cfnc_edge.deploy.parity import feature_error, run_session
from cfnc_edge.deploy.qdq import check_tensorrt_qdq
from cfnc_edge.errors import CfncError
from cfnc_edge.runtime.artefacts import ONNX_FILES

METHODS = ("entropy", "percentile", "minmax")


def _reader(batch: np.ndarray):
    from onnxruntime.quantization import CalibrationDataReader

    # one image per call: ORT's histogram calibrators stack all calls' outputs
    # into one array, which a last partial batch would make ragged
    class Reader(CalibrationDataReader):
        def __init__(self):
            self._it = iter([{"images": batch[i:i + 1]} for i in range(len(batch))])

        def get_next(self):
            return next(self._it, None)

    return Reader()


def quantize(fp32_path: Path, calib: np.ndarray, method: str = "percentile",
             keep: tuple[str, ...] = ("stages.0",)) -> onnx.ModelProto:
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if method not in METHODS:
        raise CfncError(f"unknown calibration method {method!r}; choose from {', '.join(METHODS)}")
    model = onnx.load(str(fp32_path))
    # backbone convolutions: /stages... (or /model/stages... under a memory-bank graph's scorer)
    backbone = [n.name for n in model.graph.node
                if n.op_type == "Conv" and n.name.split("/stages")[0] in ("", "/model")]
    # a misspelt stage would otherwise keep nothing in float, without a word
    unknown = [k for k in keep if not any(f"/{k}/" in name for name in backbone)]
    if unknown:
        stages = sorted({"stages" + name.split("/stages", 1)[1].split("/")[0] for name in backbone})
        raise CfncError(f"--keep {', '.join(unknown)}: no such backbone stage; give some of {', '.join(stages)}")
    nodes = [name for name in backbone if not any(f"/{k}/" in name for k in keep)]
    if not nodes:
        raise CfncError("nothing left to quantize: every backbone stage is kept in float")
    cm = {"entropy": CalibrationMethod.Entropy, "percentile": CalibrationMethod.Percentile,
          "minmax": CalibrationMethod.MinMax}[method]
    with tempfile.TemporaryDirectory() as tmp:
        out, pre = Path(tmp) / "int8.onnx", Path(tmp) / "pre.onnx"
        quant_pre_process(str(fp32_path), str(pre), skip_symbolic_shape=True)
        quantize_static(str(pre), str(out), _reader(calib), quant_format=QuantFormat.QDQ,
                        activation_type=QuantType.QInt8, weight_type=QuantType.QInt8, per_channel=True,
                        calibrate_method=cm, nodes_to_quantize=nodes, op_types_to_quantize=["Conv"],
                        # biases stay float: TensorRT's parser refuses a DequantizeLinear of an INT32 bias
                        extra_options={"ActivationSymmetric": True, "WeightSymmetric": True,
                                       "QuantizeBias": False, "CalibPercentile": 99.99})
        q = onnx.load(str(out))
    check_tensorrt_qdq(q)
    onnx.helper.set_model_props(q, {p.key: p.value for p in model.metadata_props})
    return q


def calibrate(bundle: Bundle, images: Path | None = None, n: int = 64, method: str = "percentile",
              keep: tuple[str, ...] = ("stages.0",), eval_data: Path | None = None, log=print) -> dict:
    fp32 = onnx_path(bundle, "fp32")
    pool = sample_images(bundle, images, 2 * n)
    # every other image calibrates, the rest measure the error on images the
    # scales were not fitted on (all of them when there are too few)
    calib, check = (pool[::2], pool[1::2]) if len(pool) > 1 else (pool, pool)
    log(f"calibrating on {len(calib)} good images ({method}), float stages: {', '.join(keep) or 'none'}")
    try:
        q = quantize(fp32, calib, method, keep)
    except ValueError as exc:  # ORT's histogram calibrators on a degenerate activation range
        raise CfncError(f"{method} calibration failed ({exc}); try --method minmax") from exc
    data = q.SerializeToString()
    err = feature_error(run_session(str(fp32), check), run_session(data, check))
    report = {"method": method, "images": len(calib), "check_images": len(check), "keep_float": list(keep),
              "feature_error": err}
    log(f"int8 vs fp32 features: max |diff| {err['max_abs']:.3g}, mean |diff| {err['mean_abs']:.3g} "
        f"(mean_rel {err['mean_rel']:.3f})")
    bundle.write({ONNX_FILES["int8"]: data}, calibration=report)
    if nncf_available():  # OpenVINO's own INT8, same images and scope
        report["openvino"] = write_openvino_int8(bundle, calib, check, keep, log)
        bundle.manifest["calibration"] = report
        bundle.write_manifest()
    if eval_data is not None:
        report["accuracy"] = compare_accuracy(bundle, eval_data, log)
        bundle.manifest["calibration"] = report
        bundle.write_manifest()
    return report


def compare_accuracy(bundle: Bundle, data: Path, log=print) -> dict:
    from cfnc_edge.report.evaluate import evaluate
    from cfnc_edge.runtime.inspector import Inspector

    out = {}
    for precision in ("fp32", "int8"):
        r = evaluate(Inspector(bundle, "onnxruntime", precision), data, progress=False)
        out[precision] = r.metrics
        log(f"{precision}: image AUROC {100 * r.metrics['image_auroc']:.2f}, pixel AUROC "
            f"{100 * r.metrics['pixel_auroc']:.2f}, PRO {100 * r.metrics['pro']:.2f}")
    out["delta_points"] = {k: 100 * (out["int8"][k] - out["fp32"][k]) for k in out["fp32"]}
    return out
