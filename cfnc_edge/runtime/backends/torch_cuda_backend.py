"""PyTorch on CUDA: the GPU path where TensorRT is not installed, and the
baseline a TensorRT engine has to beat.

Frames go up once through a pinned uint8 buffer (a quarter of the bytes of
float input); the model runs on its own CUDA stream, which CuPy shares
(runtime/gpu/interop.py), and its outputs are handed to the CUDA distance
kernel through DLPack: features never visit the host. fp16 runs under
autocast, so grid sampling and the normalisation stay fp32 as PyTorch's
autocast lists decide. With `cuda_graphs`, each batch size is captured once
as a CUDA graph and replayed: one launch instead of a few hundred, which is
what dominates at batch 1. That is the model alone, between a host resize
and the GPU distance and maps; the Inspector runs the whole frame as one
graph instead (`frame_path`, runtime/gpu/frame_graph.py) wherever it does not tile.
"""

from __future__ import annotations

import numpy as np
import torch

from cfnc_edge.bundle import Bundle
from cfnc_edge.errors import CfncError
from cfnc_edge.images import as_hw
from cfnc_edge.model.loading import load_model
from cfnc_edge.runtime.gpu.interop import hand_off, shared_stream

PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16}


def ieee_fp32() -> None:
    """cuDNN convolutions in true FP32: PyTorch lets them use TF32 on sm_80+
    by default, so "fp32" would not be FP32 (the same fix as the TensorRT
    builder's TF32 flag). The newer per-backend API is used where it exists:
    PyTorch refuses a mix of the old and new flags."""
    conv = getattr(torch.backends.cudnn, "conv", None)
    if hasattr(conv, "fp32_precision"):
        conv.fp32_precision = "ieee"
    else:
        torch.backends.cudnn.allow_tf32 = False


class TorchCudaBackend:
    """The bundle's PyTorch model on a CUDA device; features stay on the device."""

    name = "torch-cuda"
    device = "cuda"

    def __init__(self, bundle: Bundle, precision: str = "fp32", cuda_graphs: bool = False, device_id: int = 0):
        import cupy

        if precision not in PRECISIONS:
            raise CfncError(f"the torch-cuda backend runs {' or '.join(PRECISIONS)}; "
                            "use --backend tensorrt or onnxruntime for int8")
        if precision == "fp32":
            ieee_fp32()
        self.precision = precision
        self.cuda_graphs = cuda_graphs
        self.cupy = cupy
        self.gpu = torch.device("cuda", device_id)
        self.model = load_model(bundle).to(self.gpu).eval()
        self.torch_stream = torch.cuda.Stream(self.gpu)
        self.stream = shared_stream(self.torch_stream, cupy)
        self.input_shape = (3, *as_hw(bundle.model_config["image_size"]))
        self.pinned = torch.empty((8, *self.input_shape), dtype=torch.uint8).pin_memory()  # grows on demand
        self.uploaded = torch.cuda.Event()
        self.graphs: dict[int, tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor], torch.cuda.CUDAGraph]] = {}
        self.pool = torch.cuda.graph_pool_handle() if cuda_graphs else None
        self.provider = (f"PyTorch {torch.__version__} (CUDA {torch.version.cuda}"
                         f"{', CUDA graphs' if cuda_graphs else ''})")

    def scoring(self, gaussian: dict[str, np.ndarray]):
        from cfnc_edge.runtime.gpu.scoring import GpuScoring

        return GpuScoring(gaussian, self.stream)

    def frame_path(self, scorer: dict[str, np.ndarray], size: tuple[int, int]):
        """The whole frame on this GPU, captured per (batch, frame size) (runtime/gpu/frame_graph.py)."""
        from cfnc_edge.runtime.gpu.frame_graph import FrameGraphs

        return FrameGraphs(self, scorer, size)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # cache_enabled=False: autocast's weight cache must not outlive a graph capture
        with torch.autocast("cuda", dtype=torch.float16, enabled=self.precision == "fp16", cache_enabled=False):
            feats, theta = self.model(images)
        return feats.float(), theta.float().contiguous()

    def _graph(self, b: int):
        """Capture the model at batch b (once): warm-up runs on the backend's
        stream first, so cuDNN's algorithm choice and the allocator's first
        allocations happen outside the capture."""
        if b not in self.graphs:
            static = torch.zeros((b, *self.input_shape), dtype=torch.uint8, device=self.gpu)
            for _ in range(3):
                self.forward(static)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, pool=self.pool, stream=self.torch_stream):
                out = self.forward(static)
            self.graphs[b] = static, out, graph
        return self.graphs[b]

    @torch.inference_mode()
    def __call__(self, batch: np.ndarray):
        b = len(batch)
        with torch.cuda.stream(self.torch_stream), self.stream:
            # the pinned buffer is rewritten only once the previous upload has read it
            self.uploaded.synchronize()
            if len(self.pinned) < b:
                self.pinned = torch.empty((b, *self.input_shape), dtype=torch.uint8).pin_memory()
            self.pinned[:b].numpy()[...] = batch
            images = self.pinned[:b].to(self.gpu, non_blocking=True)
            self.uploaded.record(self.torch_stream)
            if self.cuda_graphs:
                static, (feats, theta), graph = self._graph(b)
                static.copy_(images)
                graph.replay()
            else:
                feats, theta = self.forward(images)
            return hand_off(feats, self.cupy), hand_off(theta, self.cupy)
