"""OpenVINO feature backend for CPUs (fp32 from the bundle's ONNX, int8 from NNCF).

OpenVINO reads the exported ONNX graph directly. Its CPU plugin picks the
inference precision itself unless told: on a CPU with AVX512-BF16 it runs
bf16, which moved EfficientNet-Lite0 features by up to 13.6 here (their
mean magnitude is ~1), so the precision hint is always set explicitly:
f32 for both models (the int8 model's quantised convolutions run in int8
whatever the hint; the hint governs the layers NNCF left in float).

Each batch size gets its own compiled, static-shape model (compiled on first
use): OpenVINO's CPU kernels are faster on static shapes, and a stream or a
bench keeps one batch size.
"""

from __future__ import annotations

import platform
import time
from pathlib import Path

import numpy as np

from cfnc_edge.bundle import Bundle
from cfnc_edge.errors import CfncError
from cfnc_edge.runtime.artefacts import WEIGHTS_KEY, check_exported_from, onnx_file
from cfnc_edge.runtime.backends.base import HostBackend
from cfnc_edge.runtime.knn_openvino import available as openvino_available  # noqa: F401 (callers import it here)

INT8_FILES = ("openvino-int8.xml", "openvino-int8.bin")  # written by `calibrate` when NNCF is installed
PRECISIONS = ("fp32", "int8")
HINT = "f32"


def require_openvino():
    try:
        import openvino as ov
    except ImportError as exc:
        raise CfncError("the openvino backend needs OpenVINO: pip install 'cfnc-edge[openvino]'") from exc
    return ov


def model_path(bundle: Bundle, precision: str) -> Path:
    if precision not in PRECISIONS:
        raise CfncError(f"the openvino backend runs {' or '.join(PRECISIONS)}, not {precision!r}")
    if precision == "fp32":
        return onnx_file(bundle, "fp32")
    if not bundle.has(INT8_FILES[0]):
        raise CfncError(f"{bundle.path} has no OpenVINO INT8 model: run `cfnc-edge calibrate --bundle {bundle.path}` "
                        "with NNCF installed (pip install 'cfnc-edge[openvino]')")
    bundle.verify(INT8_FILES[1])
    return bundle.verify(INT8_FILES[0])


class OpenVinoModel:
    """An OpenVINO model on the CPU, f32 precision hint, compiled per batch size."""

    def __init__(self, model, threads: int | None = None):
        ov = require_openvino()
        self.core = ov.Core()
        self.model = self.core.read_model(model) if isinstance(model, (str, Path)) else model
        self.outputs = ("features", "theta")  # what a call returns
        self.config = {"INFERENCE_PRECISION_HINT": HINT, "PERFORMANCE_HINT": "LATENCY"}
        if threads:
            self.config["INFERENCE_NUM_THREADS"] = threads
        self.compiled: dict[int, object] = {}

    def request(self, batch: int):
        if batch not in self.compiled:
            m = self.model.clone()
            m.reshape({m.input(0).get_any_name(): [batch, *list(m.input(0).get_partial_shape())[1:]]})
            self.compiled[batch] = self.core.compile_model(m, "CPU", self.config).create_infer_request()
        return self.compiled[batch]

    def __call__(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        req = self.request(len(batch))
        req.infer({0: np.ascontiguousarray(batch)})
        # copies: the request's output buffers are reused by the next call
        first, theta = (req.get_tensor(name).data.copy() for name in self.outputs)
        return first, theta


def exported_from(model) -> dict[str, str]:
    """The ONNX metadata the exporter wrote (OpenVINO keeps it under 'framework')."""
    key = ["framework", WEIGHTS_KEY]
    return {WEIGHTS_KEY: model.get_rt_info(key).astype(str)} if model.has_rt_info(key) else {}


def run_openvino(model, batch: np.ndarray, chunk: int = 8) -> np.ndarray:
    """Features of a uint8 batch through an OpenVINO model (path or ov.Model), as
    parity.run_session does for ONNX Runtime."""
    m = OpenVinoModel(model)
    return np.concatenate([m(batch[i:i + chunk])[0] for i in range(0, len(batch), chunk)])


class OpenVinoBackend(HostBackend):
    name = "openvino"

    def __init__(self, bundle: Bundle, precision: str = "fp32"):
        ov = require_openvino()
        self.precision = precision
        path = model_path(bundle, precision)
        self.model = OpenVinoModel(path)
        check_exported_from(bundle, exported_from(self.model.model), path)
        # a memory-bank graph also emits the distances (deploy/export.py): use them, as ONNX
        # Runtime does, rather than searching the bank a second time on the features
        self.in_graph = "distances" in {o.get_any_name() for o in self.model.model.outputs}
        if self.in_graph:
            self.model.outputs = ("distances", "theta")
        self.provider = f"OpenVINO {ov.get_version().split('-')[0]} CPU ({HINT} hint)"

    def __call__(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.model(batch)


# the vector extensions that decide which kernels a runtime picks, in the order named
VECTOR_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "asimd", "sve")


def cpu_name(cpuinfo: str | None = None) -> str:
    """This CPU's model (what a speed measurement is valid for): its name, and on
    Linux its family/model and vector extensions, since a virtual machine may
    show only "AMD EPYC" for CPUs 2.6x apart (benchmarks/results/peers-cpu-zen1.md).
    `cpuinfo`: the text of /proc/cpuinfo (read when not given)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            cpuinfo = ""
    fields: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())  # the first processor's
    name = fields.get("model name") or platform.processor() or "unknown CPU"
    if "cpu family" in fields:
        name += f" (family {fields['cpu family']} model {fields.get('model', '?')})"
    flags = set((fields.get("flags") or fields.get("Features") or "").split())
    vector = [f for f in VECTOR_FLAGS if f in flags]
    return f"{name}, {platform.machine()}" + (f", {' '.join(vector)}" if vector else "")


def measure_cpu_backends(bundle: Bundle, batch: np.ndarray, rounds: int = 5, calls: int = 4) -> dict:
    """p50 ms of ONNX Runtime and OpenVINO (fp32) at batch 1 on this CPU,
    interleaved rounds so both see the same machine load; `auto` follows it."""
    from cfnc_edge.runtime.backends.onnxruntime_backend import OnnxRuntimeBackend

    one = np.ascontiguousarray(batch[:1])
    runs = {"onnxruntime": OnnxRuntimeBackend(bundle, "fp32"), "openvino": OpenVinoBackend(bundle, "fp32")}
    times: dict[str, list[float]] = {k: [] for k in runs}
    for r in range(rounds + 1):  # round 0 warms up (compiles, allocates)
        for k, run in runs.items():
            for _ in range(calls):
                t0 = time.perf_counter()
                run(one)
                if r:
                    times[k].append(1000 * (time.perf_counter() - t0))
    p50 = {k: round(float(np.median(v)), 3) for k, v in times.items()}
    return {"cpu": cpu_name(), "batch": 1, "p50_ms": p50, "fastest": min(p50, key=p50.get)}


def preferred_on_this_cpu(bundle: Bundle) -> bool:
    """True when the bundle's export measured OpenVINO fastest on a CPU of this model."""
    m = bundle.manifest.get("cpu_backends", {})
    return m.get("fastest") == "openvino" and m.get("cpu") == cpu_name()
