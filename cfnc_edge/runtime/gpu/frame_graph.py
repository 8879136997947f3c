"""The frame path (runtime/frame_path.py) on the GPU, captured as one CUDA graph
per (batch, frame size) and replayed per call.

    host frames -> pinned buffer -> static device input  (copy on the backend's stream)
    graph: resize + RGB, model, distance, upsample, un-rotate, blur, max
    static scores (and maps, when asked) -> pinned host buffers -> the caller

What makes the capture safe:

- Every step is PyTorch on the backend's stream, whose allocations during a
  capture come from the graph's private pool, except the Mahalanobis step,
  the CUDA kernel of runtime/gpu/mahalanobis.py launched through CuPy on the
  same stream (runtime/gpu/interop.shared_stream). CuPy allocates nothing
  there: its inputs and output are PyTorch tensors viewed in place
  (interop.capture_view), the output allocated by PyTorch.
- Before a capture the same call runs eagerly three times: cuDNN picks its
  algorithms, the kernel module is loaded, and the frame path makes its
  resize and blur matrices; the capture itself runs inside `frozen()`, so a
  matrix it would still need is an error, not a host copy in the graph.
- Inputs and outputs are static per (batch, frame size): each call writes
  the frames into that entry's pinned buffer, copies it into the static
  input, replays, and copies the static outputs back, all on one stream,
  then waits for it. Frames of other sizes in the same call run through
  their own entries.

The first call at a new (batch, frame size) pays the warm-up and the capture
(a few hundred milliseconds). Batches are rounded up to a power of two (the
padding rows are computed and dropped), so a stream whose batches vary
with the frames' arrival captures at most seven graphs per frame size up to
batch 64, at most twice the work of the batch itself.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from cfnc_edge.runtime.frame_path import FramePath
from cfnc_edge.runtime.gpu.interop import capture_view
from cfnc_edge.runtime.gpu.mahalanobis import GpuMahalanobis

WARMUP = 3


def bucket(batch: int) -> int:
    """The captured batch size a batch runs at: the next power of two."""
    return 1 << (batch - 1).bit_length()
STAGES = ("staging", "graph")  # host copy into the pinned buffer; upload, replay, download and wait


class KernelGaussian:
    """The Mahalanobis step of the GPU frame path: the CUDA kernel on PyTorch memory."""

    def __init__(self, scorer: dict[str, np.ndarray], stream, cupy):
        self.stream, self.cupy = stream, cupy
        with stream:
            self.kernel = GpuMahalanobis(scorer["mean"], scorer["factor"], scale=scorer.get("factor_scale"))

    def __call__(self, feats: torch.Tensor) -> torch.Tensor:
        out = torch.empty((feats.shape[0], *feats.shape[2:]), dtype=torch.float32, device=feats.device)
        with self.stream:
            self.kernel(capture_view(feats, self.cupy), out=capture_view(out, self.cupy))
        return out


@dataclass
class Entry:
    """One (captured batch, frame size): its buffers, and its graph (None when not captured)."""

    pinned: torch.Tensor  # (B, H, W, 3) uint8, host
    static: torch.Tensor  # the same on the device
    scores: torch.Tensor | None  # the captured outputs on the device
    maps: torch.Tensor | None
    host_scores: torch.Tensor  # pinned
    host_maps: torch.Tensor  # pinned
    graph: torch.cuda.CUDAGraph | None


class FrameGraphs:
    """BGR uint8 frames of any sizes -> (maps (B, h, w), scores (B,)) on the host,
    everything between on the GPU of a torch-cuda backend (TorchCudaBackend).
    `capture=False` runs the same steps eagerly (for the stage split, and to
    tell a capture problem from a numerical one)."""

    def __init__(self, backend, scorer: dict[str, np.ndarray], size: tuple[int, int], capture: bool = True):
        self.backend, self.size, self.capture = backend, tuple(size), capture
        self.torch_stream = backend.torch_stream
        gaussian = KernelGaussian(scorer, backend.stream, backend.cupy) if "mean" in scorer else None
        with torch.cuda.stream(self.torch_stream):
            self.path = FramePath(backend.forward, scorer, self.size, backend.gpu, gaussian, torch.float16)
        self.pool = torch.cuda.graph_pool_handle()
        self.entries: dict[tuple[int, int, int], Entry] = {}

    def _entry(self, batch: int, hw: tuple[int, int]) -> Entry:
        key = (batch, *hw)
        if key in self.entries:
            return self.entries[key]
        gpu = self.backend.gpu
        static = torch.zeros((batch, *hw, 3), dtype=torch.uint8, device=gpu)
        for _ in range(WARMUP):
            self.path(static)
        scores = maps = graph = None
        if self.capture:
            graph = torch.cuda.CUDAGraph()
            with self.path.frozen(), torch.cuda.graph(graph, pool=self.pool, stream=self.torch_stream):
                scores, maps = self.path(static)
        entry = Entry(torch.empty((batch, *hw, 3), dtype=torch.uint8).pin_memory(), static, scores, maps,
                      torch.empty(batch, dtype=torch.float32).pin_memory(),
                      torch.empty((batch, *self.size), dtype=torch.float32).pin_memory(), graph)
        self.entries[key] = entry
        return entry

    def _run(self, frames: list[np.ndarray], timings, want_maps: bool) -> tuple[np.ndarray, np.ndarray | None]:
        n, hw = len(frames), frames[0].shape[:2]
        e = self._entry(bucket(n), hw)
        t0 = time.perf_counter()
        host = e.pinned.numpy()
        for i, f in enumerate(frames):
            host[i] = f  # rows past n keep older frames: computed, never returned
        t1 = time.perf_counter()
        e.static.copy_(e.pinned, non_blocking=True)
        if e.graph is not None:
            e.graph.replay()
            scores, maps = e.scores, e.maps
        else:
            scores, maps = self.path(e.static)
        e.host_scores[:n].copy_(scores[:n], non_blocking=True)
        if want_maps:
            e.host_maps[:n].copy_(maps[:n], non_blocking=True)
        self.torch_stream.synchronize()
        timings["staging"].append(t1 - t0)
        timings["graph"].append(time.perf_counter() - t1)
        # copies: the pinned buffers are the next call's
        return e.host_scores[:n].numpy().copy(), e.host_maps[:n].numpy().copy() if want_maps else None

    @torch.inference_mode()
    def __call__(self, frames: list[np.ndarray], timings, want_maps: bool = True):
        """BGR uint8 (H, W, 3) frames -> (maps (B, h, w) or None, scores (B,)); `timings` gets STAGES."""
        groups: dict[tuple[int, int], list[int]] = {}
        for i, f in enumerate(frames):
            groups.setdefault(f.shape[:2], []).append(i)
        scores = np.empty(len(frames), np.float32)
        maps = np.empty((len(frames), *self.size), np.float32) if want_maps else None
        with torch.cuda.stream(self.torch_stream):
            for idx in groups.values():
                s, m = self._run([frames[i] for i in idx], timings, want_maps)
                scores[idx] = s
                if want_maps:
                    maps[idx] = m
        return maps, scores
