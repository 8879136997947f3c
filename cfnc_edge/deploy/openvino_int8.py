"""OpenVINO INT8 by NNCF post-training quantisation, from the same calibration
images as the ONNX Q/DQ model (deploy/calibrate.py calls this when NNCF is
installed).

The same scope as the Q/DQ model: only backbone stages are quantised, stage 0
(stride 4) and every stage named in `keep` stay in float, and so do the
spatial transformers and the projection. NNCF's default (mixed: symmetric
weights, asymmetric activations) is kept: it is what OpenVINO's CPU int8
kernels (VNNI) are built for. The result is checked against the fp32
OpenVINO features on images it was not calibrated on, and written into the
bundle as openvino-int8.xml/.bin (IR with FakeQuantize nodes).
"""

from __future__ import annotations

import logging
import re
import tempfile
from pathlib import Path

import numpy as np

from cfnc_edge.bundle import Bundle
from cfnc_edge.deploy.parity import feature_error
from cfnc_edge.runtime.artefacts import onnx_file
from cfnc_edge.runtime.backends.openvino_backend import INT8_FILES, run_openvino


def nncf_available() -> bool:
    try:
        import nncf  # noqa: F401

        return True
    except ImportError:
        return False


def quantize_openvino(fp32_onnx: Path, calib: np.ndarray, keep: tuple[str, ...]):
    import nncf
    import openvino as ov

    nncf.set_log_level(logging.ERROR)  # its INFO log lists every ignored node
    model = ov.Core().read_model(str(fp32_onnx))
    images = [calib[i:i + 1] for i in range(len(calib))]  # NNCF counts dataset items: one image each
    # regexes over node names: everything outside /stages, and the stages kept in float
    ignored = nncf.IgnoredScope(patterns=[r"(?!/stages\.).*", *(rf"/{re.escape(k)}/.*" for k in keep)],
                                validate=False)
    return nncf.quantize(model, nncf.Dataset(images), subset_size=len(images), ignored_scope=ignored)


def write_openvino_int8(bundle: Bundle, calib: np.ndarray, check: np.ndarray, keep: tuple[str, ...], log) -> dict:
    """Quantise, check against fp32 OpenVINO on `check`, write into the bundle; return the report."""
    import openvino as ov

    fp32 = onnx_file(bundle, "fp32")
    q = quantize_openvino(fp32, calib, keep)
    err = feature_error(run_openvino(fp32, check), run_openvino(q, check))
    log(f"OpenVINO int8 (NNCF) vs fp32 features: max |diff| {err['max_abs']:.3g}, mean |diff| "
        f"{err['mean_abs']:.3g} (mean_rel {err['mean_rel']:.3f})")
    with tempfile.TemporaryDirectory() as tmp:
        xml = Path(tmp) / INT8_FILES[0]
        ov.save_model(q, str(xml), compress_to_fp16=False)
        files = {name: (Path(tmp) / name).read_bytes() for name in INT8_FILES}
    bundle.write(files)
    return {"images": len(calib), "check_images": len(check), "keep_float": list(keep), "feature_error": err}
