"""ONNX export: ICA + backbone + FCA + projection in one graph, checked.

The graph takes uint8 RGB frames (B, 3, h, w) with a dynamic batch and emits
the d-channel feature map the Gaussian was fitted on, plus the ICA transform.
Opset 17: GridSample needs 16, and TensorRT 10.3 (JetPack 6) and 11 both
parse 17. Every export checks itself: the ONNX checker, then ONNX Runtime
against PyTorch on real images, and fails above the stated tolerance.

fp16: the backbone stages hold fp16 weights and compute in fp16; the spatial
transformers and the projection stay fp32. Measured on a trained bundle, an
all-fp16 graph moved features by up to ~10x the feature mean through the
FCA's regressed transforms, while the mixed graph stays within 1%.

Memory-bank bundles: the graph also emits `distances` (B, h, w), each
position's distance to its nearest bank row, with the bank a constant of
the graph (MatMul, ReduceSum, ReduceMin, Sqrt), so one call of ONNX Runtime,
OpenVINO or TensorRT gives features and scores. The fp16 graph stores the
bank in fp16 (half the file) and runs the product in fp16, as the GPU path
does; norms and the minimum stay fp32. The in-graph distances are checked
against a float64 exhaustive search on the graph's own features.
"""

from __future__ import annotations

import copy
import io
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

from cfnc_edge.bundle import BANK, WEIGHTS, Bundle
from cfnc_edge.data.bundle_images import sample_images
from cfnc_edge.deploy.parity import brute_force_distances, feature_error, run_session
from cfnc_edge.errors import CfncError
from cfnc_edge.images import as_hw
from cfnc_edge.model.loading import load_model
from cfnc_edge.runtime.artefacts import (
    BANK_KEY,
    ONNX_FILES,
    WEIGHTS_KEY,
    check_exported_from,
    onnx_file,
)
from cfnc_edge.runtime.backends.openvino_backend import (
    measure_cpu_backends,
    openvino_available,
    run_openvino,
)
from cfnc_edge.scoring.memory_bank import torch_nearest_distances

OPSET = 17
# max |onnx - torch| / max |torch| for fp32; mean |diff| / mean |torch| for fp16
TOLERANCE = {"fp32": 1e-3, "fp16": 2e-2}


class CastStage(nn.Module):
    """Run a backbone stage in another dtype, fp32 in and out."""

    def __init__(self, stage: nn.Module, dtype: torch.dtype):
        super().__init__()
        self.stage, self.dtype = stage.to(dtype), dtype

    def forward(self, x):
        return self.stage(x.to(self.dtype)).float()


class ScoredGraph(nn.Module):
    """The feature model followed by nearest-neighbour scoring against a constant bank."""

    def __init__(self, model: nn.Module, bank: dict[str, np.ndarray], dtype: torch.dtype):
        super().__init__()
        self.model = model
        b = torch.from_numpy(bank["bank"])
        self.register_buffer("bank_t", b.T.contiguous().to(dtype))
        self.register_buffer("bank_sq", (b.double() ** 2).sum(1).float())
        self.register_buffer("center", torch.from_numpy(bank["center"])[None, None, :])

    def forward(self, images):
        feats, theta = self.model(images)
        return feats, theta, torch_nearest_distances(feats, self.bank_t, self.bank_sq, self.center)


def to_onnx(model: nn.Module, image_size: tuple[int, int], props: dict[str, str]) -> onnx.ModelProto:
    buf = io.BytesIO()
    dummy = torch.zeros(2, 3, *image_size, dtype=torch.uint8)
    outputs = ["features", "theta"] + (["distances"] if isinstance(model, ScoredGraph) else [])
    with warnings.catch_warnings():
        # the TorchScript exporter is the one that emits opset 17; its
        # deprecation and tracer warnings are expected here
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (dummy,), buf, input_names=["images"], output_names=outputs,
                          dynamic_axes={n: {0: "batch"} for n in ["images", *outputs]},
                          opset_version=OPSET, dynamo=False)
    proto = onnx.load_from_string(buf.getvalue())
    onnx.helper.set_model_props(proto, props)
    onnx.checker.check_model(proto, full_check=True)
    return proto


def torch_features(model: nn.Module, batch: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return model(torch.from_numpy(batch))[0].numpy()


def export(bundle: Bundle, images: Path | None = None, n_check: int = 16, log=print) -> dict:
    """Write model.onnx and model-fp16.onnx into the bundle; return the parity report."""
    model = load_model(bundle)
    size = as_hw(bundle.model_config["image_size"])
    props = {WEIGHTS_KEY: bundle.manifest["files"][WEIGHTS]}
    bank = bundle.tensors(BANK) if bundle.scorer == "knn" else None
    if bank is not None:
        props[BANK_KEY] = bundle.manifest["files"][BANK]
    batch = sample_images(bundle, images, n_check)
    ref = torch_features(model, batch)

    half = copy.deepcopy(model)
    half.stages = nn.ModuleList(CastStage(s, torch.float16) for s in half.stages)
    files, report = {}, {"opset": OPSET, "images_checked": len(batch), "tolerance": TOLERANCE}
    for precision, m in (("fp32", model), ("fp16", half)):
        if bank is not None:
            m = ScoredGraph(m, bank, torch.float32 if precision == "fp32" else torch.float16)
        data = to_onnx(m, size, props).SerializeToString()
        key = "max_rel" if precision == "fp32" else "mean_rel"
        if bank is None:
            report[precision] = _check(precision, "features", "PyTorch", ref, run_session(data, batch), key, log)
        else:
            feats, dist = run_session(data, batch, outputs=("features", "distances"))
            report[precision] = _check(precision, "features", "PyTorch", ref, feats, key, log)
            report[f"{precision}_distances"] = _check(
                precision, "distances", "float64 exhaustive search", brute_force_distances(
                    feats, bank["bank"], bank["center"]), dist, key, log)
        files[ONNX_FILES[precision]] = data
    bundle.write(files, onnx=report)
    if openvino_available():
        check_openvino(bundle, ref, batch, report, log)
    return report


def check_openvino(bundle: Bundle, ref: np.ndarray, batch: np.ndarray, report: dict, log) -> None:
    """OpenVINO (f32 hint) against PyTorch at the fp32 tolerance, then which
    CPU runtime is faster here, recorded for `auto`."""
    err = feature_error(ref, run_openvino(onnx_file(bundle, "fp32"), batch))
    log(f"fp32: OpenVINO vs PyTorch: max |diff| {err['max_abs']:.2e} (max_rel {err['max_rel']:.2e}, "
        f"tolerance {TOLERANCE['fp32']:.0e})")
    if not err["max_rel"] <= TOLERANCE["fp32"]:
        raise CfncError(f"OpenVINO features do not match PyTorch: max_rel {err['max_rel']:.3e} > "
                        f"{TOLERANCE['fp32']:.0e}; use --backend onnxruntime")
    speed = measure_cpu_backends(bundle, batch)
    log(f"batch 1 on {speed['cpu']}: " + ", ".join(f"{k} {v:.1f} ms" for k, v in speed["p50_ms"].items()))
    report["openvino"] = err
    bundle.write({}, onnx=report, cpu_backends=speed)


def _check(precision: str, what: str, ref_name: str, ref: np.ndarray, got: np.ndarray, key: str, log) -> dict:
    err = feature_error(ref, got)
    log(f"{precision}: ONNX Runtime {what} vs {ref_name} on {len(got)} images: max |diff| {err['max_abs']:.2e}, "
        f"mean |diff| {err['mean_abs']:.2e} ({key} {err[key]:.2e}, tolerance {TOLERANCE[precision]:.0e})")
    if not err[key] <= TOLERANCE[precision]:
        raise CfncError(f"{precision} export: {what} do not match {ref_name}: {key} {err[key]:.3e} > "
                        f"{TOLERANCE[precision]:.0e}")
    return err


def onnx_path(bundle: Bundle, precision: str) -> Path:
    """The bundle's ONNX file for a precision, refusing one made from other weights."""
    path = onnx_file(bundle, precision)
    props = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
    check_exported_from(bundle, props, path)
    return path
