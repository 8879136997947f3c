"""The Inspector on NVIDIA Triton Inference Server, through PyTriton.

PyTriton runs the `tritonserver` binary that ships with it and binds one
Triton model per bundle to a Python callable here: Triton does the network
(HTTP, gRPC), the dynamic batching across clients, the health and readiness
endpoints and the Prometheus metrics; the callable runs the Inspector on
each batch Triton hands it.
"""

from __future__ import annotations

import os
import re
import sysconfig
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cfnc_edge.bundle import MANIFEST, Bundle, sha256
from cfnc_edge.errors import CfncError
from cfnc_edge.runtime.inspector import Inspector
from cfnc_edge.serve import protocol as p

MODEL_NAME = re.compile(r"^[A-Za-z0-9._-]+$")  # what Triton accepts as a model name


@dataclass
class ServeOptions:
    """How the bundles are served; ports are Triton's defaults."""

    backend: str = "auto"
    precision: str = "fp32"
    max_batch: int = 8  # largest batch Triton hands one model instance
    queue_delay_ms: float = 2.0  # longest a request waits for the batch to fill
    instances: int = 1  # model instances (Inspectors) per bundle, run concurrently
    http_port: int = 8000
    grpc_port: int = 8001
    metrics_port: int = 8002
    max_side: int = 4096  # frames larger than this on either side are refused
    exit_timeout_s: int = 30  # on SIGTERM, how long in-flight requests may take to finish


def pytriton_problem() -> str | None:
    """Why a Triton server cannot run in this environment, or None when it can."""
    try:
        import pytriton  # noqa: F401
    except ImportError:
        return "serving needs NVIDIA PyTriton: pip install 'cfnc-edge[serve]'"
    if int(np.__version__.split(".")[0]) >= 2:
        # PyTriton 0.7 declares numpy<2; with numpy 2 its responses come back empty
        return (f"PyTriton needs numpy<2 but numpy {np.__version__} is installed: install the serve extra "
                "in its own environment (pip install 'cfnc-edge[serve]' resolves numpy<2)")
    return None


def use_interpreter_libpython() -> None:
    """Make Triton's Python backend load this interpreter's libpython.

    Where Python is not the system's (pyenv, conda) the backend's stub
    otherwise loads the system libpython and every model fails to load
    (`'_thread.RLock' object has no attribute '_recursion_count'`).
    PyTriton starts the server with a copy of this process's environment,
    so setting it here, before the start, is enough.
    """
    libdir = sysconfig.get_config_var("LIBDIR")
    lib = sysconfig.get_config_var("LDLIBRARY")
    if not libdir or not lib or not (Path(libdir) / lib).is_file():
        return  # a static interpreter: the stub's own libpython is the only choice
    paths = os.environ.get("LD_LIBRARY_PATH", "").split(os.pathsep)
    if libdir not in paths:
        os.environ["LD_LIBRARY_PATH"] = os.pathsep.join([libdir, *filter(None, paths)])


def bundle_id(bundle: Bundle) -> str:
    """The bundle's identity: the checksum of its manifest (which holds every file's checksum)."""
    return sha256(bundle.path / MANIFEST)


class InspectorModel:
    """One Triton model instance: an Inspector answering the batches Triton forms.

    Triton has already checked the dtype (uint8), the rank and the channel
    count, and the batch size against `max_batch`, and PyTriton's proxy
    refuses zero-sized frames; what neither checks, the frame size limit,
    is checked here. Because the dynamic batcher only merges
    requests of one frame size, a batch is either all valid or all invalid,
    so refusing it never fails a good request that was batched with a bad one.
    """

    def __init__(self, bundle: Bundle, options: ServeOptions):
        self.inspector = Inspector(bundle, options.backend, options.precision)
        self.max_side = options.max_side
        self.bundle_id = np.bytes_(bundle_id(bundle))
        self.threshold = np.nan if self.inspector.threshold is None else self.inspector.threshold
        # warm up before the server starts: it is not ready until this first (slow) inference is done
        h, w = self.inspector.image_size
        for n in sorted({1, options.max_batch}):
            self.inspector([np.full((h, w, 3), 128, np.uint8)] * n)
        from pytriton.decorators import batch

        # PyTriton's @batch joins the requests' frames into one array and splits the outputs back
        self._batched = batch(self.infer)

    def __call__(self, requests):
        return self._batched(requests)

    def infer(self, frames: np.ndarray) -> dict[str, np.ndarray]:
        n, h, w = frames.shape[:3]
        if max(h, w) > self.max_side:
            raise ValueError(f"frames of {h}x{w} exceed the server's limit of {self.max_side} pixels a side: "
                             "resize them or start the server with a larger --max-side")
        results = self.inspector(list(frames))
        return {p.SCORE: np.array([[r.score] for r in results], np.float64),
                p.NORMALIZED: np.array([[np.nan if r.normalized_score is None else r.normalized_score]
                                        for r in results], np.float64),
                p.ANOMALOUS: np.array([[bool(r.anomalous)] for r in results]),
                p.THRESHOLD: np.full((n, 1), self.threshold, np.float64),
                p.BUNDLE_ID: np.full((n, 1), self.bundle_id, dtype=object),
                p.MAP: np.stack([r.map for r in results]).astype(np.float32)}


def _tensors():
    from pytriton.model_config import Tensor

    inputs = [Tensor(name=p.FRAMES, dtype=np.uint8, shape=(-1, -1, 3))]
    outputs = [Tensor(name=p.SCORE, dtype=np.float64, shape=(1,)),
               Tensor(name=p.NORMALIZED, dtype=np.float64, shape=(1,)),
               Tensor(name=p.ANOMALOUS, dtype=np.bool_, shape=(1,)),
               Tensor(name=p.THRESHOLD, dtype=np.float64, shape=(1,)),
               Tensor(name=p.BUNDLE_ID, dtype=np.bytes_, shape=(1,)),
               Tensor(name=p.MAP, dtype=np.float32, shape=(-1, -1))]
    return inputs, outputs


def serve(bundles: dict[str, Bundle | Path | str], options: ServeOptions | None = None, log=print) -> None:
    """Serve each bundle as the Triton model of its name until interrupted.

    Blocks; returns after SIGINT (KeyboardInterrupt: map SIGTERM to it to
    stop from a supervisor), once Triton has let in-flight requests finish.
    Every model is warmed up before the server starts, so a model's readiness
    endpoint (/v2/models/NAME/ready) turns ready only when its inference is
    warm. (The server's own /v2/health/ready can turn ready a moment before
    the models are loaded: PyTriton loads them into a running Triton.)
    """
    opt = options or ServeOptions()
    if (problem := pytriton_problem()) is not None:
        raise CfncError(problem)
    if not bundles:
        raise CfncError("give at least one --bundle PATH or --bundle NAME=PATH")
    for name in bundles:
        if not MODEL_NAME.match(name):
            raise CfncError(f"model name {name!r}: use letters, digits, '.', '_' and '-' only (--bundle NAME=PATH)")
    if opt.max_batch < 1 or opt.instances < 1:
        raise CfncError("--max-batch and --instances must be at least 1")
    from pytriton.model_config import DynamicBatcher, ModelConfig
    from pytriton.triton import Triton, TritonConfig

    instances = {}
    for name, b in bundles.items():
        bundle = b if isinstance(b, Bundle) else Bundle.open(b)
        instances[name] = [InspectorModel(bundle, opt) for _ in range(opt.instances)]
        log(f"model {name}: bundle {bundle.path} (id {instances[name][0].bundle_id.decode()[:12]}), "
            f"backend {instances[name][0].inspector.backend.name}, warmed up")
    use_interpreter_libpython()
    config = TritonConfig(http_port=opt.http_port, grpc_port=opt.grpc_port, metrics_port=opt.metrics_port,
                          exit_timeout_secs=opt.exit_timeout_s, strict_readiness=True)
    batcher = DynamicBatcher(max_queue_delay_microseconds=int(opt.queue_delay_ms * 1000))
    inputs, outputs = _tensors()
    with Triton(config=config) as triton:
        for name, funcs in instances.items():
            triton.bind(model_name=name, infer_func=funcs, inputs=inputs, outputs=outputs,
                        config=ModelConfig(max_batch_size=opt.max_batch, batcher=batcher), strict=True)
        log(f"serving {', '.join(instances)}: gRPC :{opt.grpc_port}, HTTP :{opt.http_port}, "
            f"metrics :{opt.metrics_port}/metrics")
        triton.serve()
