"""TensorRT feature backend: name-based tensors, execute_async_v3 on a CuPy stream.

Device buffers for the largest batch of the engine's profile are allocated
once and reused; frames go through one pinned host buffer (uint8, a quarter
of the bytes of float input). Outputs stay on the device as CuPy arrays, for
the CUDA distance kernel. CUDA context: CuPy's, the primary context.
"""

from __future__ import annotations

import numpy as np

from cfnc_edge.bundle import Bundle
from cfnc_edge.errors import CfncError
from cfnc_edge.images import as_hw
from cfnc_edge.runtime.gpu.engines import find_engine


class TensorRTBackend:
    name = "tensorrt"
    device = "cuda"

    def __init__(self, bundle: Bundle, precision: str = "fp16"):
        import cupy as cp
        import cupyx
        import tensorrt as trt

        self.precision = precision
        name, info = find_engine(bundle, precision)
        plan = bundle.verify(name).read_bytes()
        self.runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self.engine = self.runtime.deserialize_cuda_engine(plan)
        if self.engine is None:
            raise CfncError(f"TensorRT could not load {name}: rebuild it with cfnc-edge build-engine")
        self.context = self.engine.create_execution_context()
        self.stream = cp.cuda.Stream(non_blocking=True)
        self.min_batch, _, self.max_batch = info["batch"]
        self.input_shape = (3, *as_hw(bundle.model_config["image_size"]))
        io = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.buffers = {}
        for n in io:
            shape = tuple(self.engine.get_tensor_shape(n))[1:]
            dtype = np.dtype(trt.nptype(self.engine.get_tensor_dtype(n)))
            self.buffers[n] = cp.empty((self.max_batch, *shape), dtype=dtype)
        if self.buffers["images"].dtype != np.uint8:
            raise CfncError(f"{name} does not take uint8 frames: re-export the bundle and rebuild")
        self.pinned = cupyx.empty_pinned((self.max_batch, *self.input_shape), dtype=np.uint8)
        self.provider = f"TensorRT {trt.__version__}"

    def scoring(self, scorer: dict[str, np.ndarray]):
        from cfnc_edge.runtime.gpu.scoring import GpuScoring

        return GpuScoring(scorer, self.stream)

    @staticmethod
    def frame_path(scorer: dict[str, np.ndarray], size: tuple[int, int]) -> None:
        return None  # frames are resized on the host; the captured frame path is torch-cuda's

    def __call__(self, batch: np.ndarray):
        b = len(batch)
        if not self.min_batch <= b <= self.max_batch:
            raise CfncError(f"batch {b} is outside the engine's profile {self.min_batch}..{self.max_batch}")
        self.pinned[:b] = batch
        images = self.buffers["images"]
        images[:b].set(self.pinned[:b], stream=self.stream)
        self.context.set_input_shape("images", (b, *self.input_shape))
        for n, buf in self.buffers.items():
            self.context.set_tensor_address(n, buf.data.ptr)
        if not self.context.execute_async_v3(self.stream.ptr):
            raise CfncError("TensorRT execution failed")
        return self.buffers["features"][:b], self.buffers["theta"][:b]
