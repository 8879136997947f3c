"""Which TensorRT engine of a bundle runs here.

Engines are tied to a GPU and a TensorRT version: they are named by both and
an engine built elsewhere is refused with the command that rebuilds it. The
runtime (the TensorRT backend, `auto`) and the builder both use these names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from cfnc_edge.bundle import Bundle
from cfnc_edge.errors import BundleError
from cfnc_edge.runtime.gpu.device import gpu_info

ENGINE_DIR = "engines"


@dataclass(frozen=True)
class Target:
    gpu: str
    compute_capability: str
    tensorrt: str

    @property
    def slug(self) -> str:
        return f"{re.sub(r'[^a-z0-9]+', '-', self.gpu.lower()).strip('-')}-sm{self.compute_capability}-trt{self.tensorrt}"


def current_target() -> Target:
    import cupy as cp
    import tensorrt as trt

    gpu = gpu_info(cp.cuda.Device().id)
    return Target(gpu.name, gpu.compute_capability, trt.__version__)


def engine_name(target: Target, precision: str, min_batch: int, max_batch: int) -> str:
    return f"{ENGINE_DIR}/{target.slug}-{precision}-b{min_batch}-{max_batch}.plan"


def engine_precisions(bundle: Bundle) -> list[str]:
    """Precisions with an engine built for this GPU and TensorRT version."""
    target = current_target()
    return sorted({e["precision"] for e in bundle.manifest.get("engines", {}).values()
                   if e["target"] == target.slug})


def find_engine(bundle: Bundle, precision: str) -> tuple[str, dict]:
    engines = {k: v for k, v in bundle.manifest.get("engines", {}).items() if v["precision"] == precision}
    target = current_target()
    for name, info in engines.items():
        if info["target"] == target.slug:
            return name, info
    rebuild = f"cfnc-edge build-engine --bundle {bundle.path} --precision {precision}"
    if engines:
        built = ", ".join(sorted({v["target"] for v in engines.values()}))
        raise BundleError(f"the {precision} engine in {bundle.path} was built for {built}; this machine is "
                          f"{target.slug}. Engines only run where they were built: `{rebuild}`")
    raise BundleError(f"{bundle.path} has no {precision} TensorRT engine: `{rebuild}`")
