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

from cfnc_edge.bundle import Bundle
from cfnc_edge.data.bundle_images import sample_images
from cfnc_edge.deploy.export import onnx_path
from cfnc_edge.deploy.parity import feature_error, run_session
from cfnc_edge.errors import CfncError
from cfnc_edge.images import as_hw
from cfnc_edge.runtime.gpu.engines import ENGINE_DIR, current_target, engine_name


def _logger():
    import tensorrt as trt

    return trt.Logger(trt.Logger.WARNING)


def engine_shapes(bundle: Bundle, min_batch: int, opt_batch: int, max_batch: int) -> list[tuple[int, ...]]:
    """The (min, opt, max) input shapes of the engine's profile: only the batch varies."""
    h, w = as_hw(bundle.model_config["image_size"])
    return [(b, 3, h, w) for b in (min_batch, opt_batch, max_batch)]


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
    if precision == "fp32":
        # TF32 is on by default (sm_80+: Orin, Ampere, Hopper); an FP32 engine computes in FP32
        config.clear_flag(trt.BuilderFlag.TF32)
    profile = builder.create_optimization_profile()
    profile.set_shape("images", *engine_shapes(bundle, min_batch, opt_batch, max_batch))
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
    from cfnc_edge.runtime.backends.tensorrt_backend import TensorRTBackend

    batch = sample_images(bundle, None, 8)
    ref = run_session(str(onnx_path(bundle, precision)), batch)
    backend = TensorRTBackend(bundle, precision)
    features = backend(batch)[0]
    # copied on the engine's (non-blocking) stream, so after execute_async_v3, and waited
    # for while `backend` still owns the device buffers the features live in
    got = features.get(stream=backend.stream)
    backend.stream.synchronize()
    err = feature_error(ref, got)
    log(f"{precision} engine vs ONNX Runtime on {len(batch)} images: max |diff| {err['max_abs']:.3g}, "
        f"mean |diff| {err['mean_abs']:.3g} (mean_rel {err['mean_rel']:.2e})")
    return err
