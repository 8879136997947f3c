"""Nearest-neighbour distance to a memory bank on the CPU.

The search ranks bank rows by ||b||^2 - 2 x.b (one matrix product per bank
chunk, a running arg-minimum); the distance to the row found is then
recomputed from the difference itself. The expansion alone loses about
sqrt(eps * ||x||^2) near zero distance (cancellation, ~0.04 in fp32 on real
features), the recomputation keeps float64-level agreement, and the rank
order of near-ties only matters when their distances are equal to that same
rounding. Every backend (here, the exported graph, the GPU) does the same.

The ranking is the whole cost (a 784 x M x C product per 224 px frame); it
runs in OpenVINO where it is installed (runtime/knn_openvino.py: its
product with the add and the minimum compiled together was 1.1-2.2x the
NumPy search in 5 of the 6 sizes measured, 0.5x in the smallest at 320 px,
and FAISS's exact IndexFlatL2 was slower than both;
benchmarks/results/knn-cpu.md), else in NumPy. Approximate indexes (HNSW,
IVF) were measured too and are not used: the image score is the largest
distance, that of the patch farthest from every good one, which is exactly
where they miss the nearest row (up to 6% on the image score at 99% recall).
"""

from __future__ import annotations

import numpy as np

from cfnc_edge.runtime import knn_openvino

# bank rows per product: keeps the (patches x rows) block of a 224 px frame
# (784 x 2048 fp32, 6 MiB) near the cache; with 8192 the passes over it after
# the product (add, arg-minimum) were memory-bound (benchmarks/results/knn-cpu.md)
BANK_CHUNK = 2048
SEARCHES = ("auto", "openvino", "numpy")


def nearest_rows(x: np.ndarray, bank_t2: np.ndarray, bank_sq: np.ndarray, chunk: int = BANK_CHUNK,
                 skip: tuple[int, int] | None = None) -> np.ndarray:
    """Index of the nearest bank row for each row of x (N, C), the bank given as
    bank_t2 = -2 bank^T (C, M) and its squared row norms (M,); never one of the
    rows skip = (lo, hi) (cross-fitting: the rows a held-out image contributed)."""
    n, m = len(x), bank_t2.shape[1]
    best = np.full(n, np.inf, np.float32)
    idx = np.zeros(n, np.int64)
    rows = np.arange(n)
    block = np.empty((n, min(chunk, m)), np.float32)  # reused: a fresh 6 MiB array per chunk costs page faults
    for s in range(0, m, chunk):
        d = block[:, :min(chunk, m - s)]
        np.matmul(x, bank_t2[:, s:s + chunk], out=d)
        d += bank_sq[s:s + chunk]
        if skip is not None:
            lo, hi = max(skip[0] - s, 0), min(skip[1] - s, d.shape[1])
            d[:, lo:max(lo, hi)] = np.inf
        j = d.argmin(1)
        v = d[rows, j]
        better = v < best
        best[better], idx[better] = v[better], j[better] + s
    return idx


class CpuNearestNeighbour:
    """d(x) = min_b ||(x - center) - b|| over the bank's (centred) rows, per feature-map position.

    `search`: "auto" (OpenVINO where installed, else NumPy), "openvino" or
    "numpy". A search leaving rows out (`skip`) always runs in NumPy: the
    compiled OpenVINO product holds the whole bank.
    """

    def __init__(self, bank: np.ndarray, center: np.ndarray, search: str = "auto"):
        if search not in SEARCHES:
            raise ValueError(f"search must be one of {SEARCHES}, got {search!r}")
        self.bank = np.ascontiguousarray(bank, dtype=np.float32)
        self.center = np.asarray(center, dtype=np.float32)
        self.bank_sq = (self.bank * self.bank).sum(1)
        self.bank_t2 = np.ascontiguousarray(-2.0 * self.bank.T)
        self.dim = self.bank.shape[1]
        use_openvino = search == "openvino" or (search == "auto" and knn_openvino.available())
        self.compiled = knn_openvino.OpenVinoSearch(self.bank_t2, self.bank_sq) if use_openvino else None
        self.search = "openvino" if use_openvino else "numpy"

    def __call__(self, features: np.ndarray, skip: tuple[int, int] | None = None) -> np.ndarray:
        """features (B, C, h, w) -> distances (B, h, w), float32; `skip`: bank rows
        (lo, hi) to leave out, as if the bank had been built without them."""
        b, c, h, w = features.shape
        if c != self.dim:
            raise ValueError(f"features have {c} channels, the memory bank {self.dim}")
        x = np.asarray(features, np.float32).transpose(0, 2, 3, 1).reshape(-1, c) - self.center
        if self.compiled is not None and skip is None:
            idx = self.compiled(x)
        else:
            idx = nearest_rows(x, self.bank_t2, self.bank_sq, skip=skip)
        diff = x - self.bank[idx]
        return np.sqrt((diff * diff).sum(1)).reshape(b, h, w)
