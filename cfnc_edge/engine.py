"""`cfnc-edge build-engine`: TensorRT engines from the bundle's ONNX models.

One path for TensorRT 10.x (JetPack 6 ships 10.3) and 11.x: precision lives
in the ONNX model (fp32 graph -> FP32 engine, fp16 graph -> FP16, Q/DQ graph
-> INT8) and the network is strongly typed, so neither the calibrator API
nor the FP16/INT8 builder flags (both gone in 11) are needed.

Engines are tied to a GPU and a TensorRT version. They are named by both,
listed in the manifest with a checksum, and an engine built elsewhere is
refused with the command that rebuilds it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .bundle import Bundle
from .errors import BundleError, CfncError
from .export import feature_error, onnx_path, run_session, sample_images

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

    dev = cp.cuda.Device()
    props = cp.cuda.runtime.getDeviceProperties(dev.id)
    name = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
    return Target(name, f"{props['major']}{props['minor']}", trt.__version__)


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


def _logger():
    import tensorrt as trt

    return trt.Logger(trt.Logger.WARNING)


def build_engine(bundle: Bundle, precision: str = "fp16", min_batch: int = 1, opt_batch: int = 8,
                 max_batch: int = 32, workspace_mib: int = 1024, log=print) -> dict:
    import tensorrt as trt

    if not min_batch <= opt_batch <= max_batch:
        raise CfncError("batch range must satisfy min <= opt <= max")
    src = onnx_path(bundle, precision)
    target = current_target()
    logger = _logger()
    builder = trt.Builder(logger)
    flags = 0
    if int(trt.__version__.split(".")[0]) < 11:
        # 11.x networks are always strongly typed; 10.x must be asked
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(src.read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise CfncError(f"TensorRT could not parse {src.name}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_mib << 20)
    size = int(bundle.model_config["image_size"])
    profile = builder.create_optimization_profile()
    profile.set_shape("images", (min_batch, 3, size, size), (opt_batch, 3, size, size), (max_batch, 3, size, size))
    config.add_optimization_profile(profile)
    cache_name = f"{ENGINE_DIR}/{target.slug}.timing-cache"
    cache_path = bundle.path / cache_name
    cache = config.create_timing_cache(cache_path.read_bytes() if cache_path.is_file() else b"")
    config.set_timing_cache(cache, ignore_mismatch=False)
    log(f"building {precision} engine for {target.gpu} (sm{target.compute_capability}, TensorRT "
        f"{target.tensorrt}), batch {min_batch}..{max_batch}")
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise CfncError("TensorRT failed to build the engine (see its log above)")
    name = engine_name(target, precision, min_batch, max_batch)
    info = {"precision": precision, "target": target.slug, "gpu": target.gpu,
            "compute_capability": target.compute_capability, "tensorrt": target.tensorrt,
            "batch": [min_batch, opt_batch, max_batch], "workspace_mib": workspace_mib, "onnx": src.name}
    engines = dict(bundle.manifest.get("engines", {}), **{name: info})
    bundle.write({name: bytes(plan), cache_name: bytes(config.get_timing_cache().serialize())}, engines=engines)
    info["check"] = check_engine(bundle, precision, log)
    bundle.manifest["engines"][name] = info
    bundle.write_manifest()
    return info


def check_engine(bundle: Bundle, precision: str, log=print) -> dict:
    """Engine features against ONNX Runtime (same ONNX) on the bundle's own images."""
    from .backends.tensorrt_backend import TensorRTBackend

    import cupy as cp

    batch = sample_images(bundle, None, 8)
    ref = run_session(str(onnx_path(bundle, precision)), batch)
    got = cp.asnumpy(TensorRTBackend(bundle, precision)(batch)[0])
    err = feature_error(ref, got)
    log(f"{precision} engine vs ONNX Runtime on {len(batch)} images: max |diff| {err['max_abs']:.3g}, "
        f"mean |diff| {err['mean_abs']:.3g} (mean_rel {err['mean_rel']:.2e})")
    return err
