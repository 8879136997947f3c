"""The memory bank's ranking step compiled by OpenVINO for the CPU.

One small graph per bank: scores = x (N, C) @ (-2 bank^T) + ||b||^2, then
TopK(1, min) along the bank; only the indices come back, and the distance
to the row found is recomputed in float32 from the difference by the caller
(runtime/knn.py), so the result does not depend on how OpenVINO rounds the
product. The precision hint is f32 explicitly: on a CPU with AVX512-BF16
the plugin would otherwise run the product in bf16, whose 8-bit mantissa
swaps near neighbours.

Queries go in blocks of at most QUERY_BLOCK_SCORES / M rows, so the (rows x
bank) score matrix OpenVINO materialises stays at 64 MiB whatever the batch;
each block length is compiled once (static shapes are OpenVINO's fast path).
"""

from __future__ import annotations

import numpy as np

QUERY_BLOCK_SCORES = 1 << 24  # fp32 scores per call: 64 MiB
CONFIG = {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY"}


def available() -> bool:
    try:
        import openvino  # noqa: F401

        return True
    except ImportError:
        return False


class OpenVinoSearch:
    """x (N, C) float32 -> index of the row minimising ||b||^2 - 2 x.b, per row of x."""

    def __init__(self, bank_t2: np.ndarray, bank_sq: np.ndarray):
        import openvino as ov
        import openvino.opset13 as ops

        c, m = bank_t2.shape
        x = ops.parameter([-1, c], np.float32, name="x")
        scores = ops.add(ops.matmul(x, ops.constant(bank_t2), False, False), ops.constant(bank_sq[None, :]))
        nearest = ops.topk(scores, ops.constant(np.int64(1)), 1, "min", "none", "i64")
        self.model = ov.Model([nearest.output(1)], [x], "bank_search")
        self.core = ov.Core()
        self.block = max(1, QUERY_BLOCK_SCORES // m)
        self.requests: dict[int, object] = {}

    def _request(self, rows: int):
        if rows not in self.requests:
            m = self.model.clone()
            m.reshape({"x": [rows, m.input(0).get_partial_shape()[1]]})
            self.requests[rows] = self.core.compile_model(m, "CPU", CONFIG).create_infer_request()
        return self.requests[rows]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        out = np.empty(len(x), np.int64)
        for s in range(0, len(x), self.block):
            q = np.ascontiguousarray(x[s:s + self.block])
            req = self._request(len(q))
            req.infer({0: q})
            out[s:s + len(q)] = req.get_output_tensor(0).data[:, 0]
        return out
