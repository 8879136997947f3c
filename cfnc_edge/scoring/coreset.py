"""Greedy k-center coreset selection (Gonzalez), exact and batched.

The greedy rule: start from one seeded random point, then repeatedly add the
point farthest from everything selected so far. The result covers every
point within twice the optimal radius for its size. Distances are taken in a
seeded Gaussian random projection (Johnson-Lindenstrauss, as PatchCore
does), which keeps each step's work independent of the channel count.

Why batched: one step of the plain algorithm is a matrix-vector product over
all N points (memory-bound, ~N*k*4 bytes read per selected point). Here each
round takes the M points with the largest current distances as candidates
and runs the greedy rule among them on their own small distance matrix; a
candidate is accepted while its updated distance still exceeds the largest
distance of any non-candidate (distances only ever shrink, so no outside
point can be farther): every accepted point is exactly the one the plain
algorithm would pick. The accepted batch then updates all N distances in one
matrix-matrix product on precomputed squared norms, which a CPU runs at
compute speed rather than memory speed.
"""

from __future__ import annotations

import numpy as np

PROJECTION_DIM = 128
BATCH = 64  # points accepted per round at most
CANDIDATES = 4 * BATCH
ROW_CHUNK = 65536  # rows per distance-update block: bounds temporary memory


def random_projection(x: np.ndarray, dim: int, seed: int) -> np.ndarray:
    """(N, C) -> (N, dim) float32 with a seeded Gaussian matrix (identity if C <= dim)."""
    x = np.asarray(x, np.float32)
    if x.shape[1] <= dim:
        return x
    g = np.random.default_rng(seed).standard_normal((x.shape[1], dim)).astype(np.float32) / np.sqrt(dim)
    return x @ g


def _sq_dist(x: np.ndarray, sq: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Squared distances (N, K) of rows of x (squared norms sq) to rows of c, clipped at 0."""
    d = sq[:, None] - 2.0 * (x @ c.T) + (c * c).sum(1)[None, :]
    return np.maximum(d, 0.0, out=d)


def bank_count(n: int, size: float) -> int:
    """A bank size given as a fraction (< 1) of n or as a count (>= 1), within [1, n]."""
    if size <= 0:
        raise ValueError(f"bank size must be positive, got {size}")
    k = int(round(size * n)) if size < 1 else int(size)
    return max(1, min(n, k))


def greedy_coreset(x: np.ndarray, count: int, seed: int = 0, projection_dim: int = PROJECTION_DIM
                   ) -> tuple[np.ndarray, float]:
    """Indices of `count` rows of x chosen by greedy k-center, and the covering radius
    (in the projected space): the largest distance of any row to its nearest selected row."""
    n = len(x)
    count = min(count, n)
    rng = np.random.default_rng(seed)
    p = random_projection(x, projection_dim, seed)
    sq = (p * p).sum(1)
    first = int(rng.integers(n))
    selected = [first]
    mind = np.empty(n, np.float32)
    _update(p, sq, np.array([first]), mind, initial=True)
    while len(selected) < count:
        if CANDIDATES < n:
            order = np.argpartition(-mind, CANDIDATES)  # the CANDIDATES largest first, then the next largest
            cand, outside = order[:CANDIDATES], float(mind[order[CANDIDATES]])
        else:
            cand, outside = np.arange(n), -np.inf
        cd = mind[cand].copy()
        pc = p[cand]
        pair = _sq_dist(pc, sq[cand], pc)
        picks = []
        while len(picks) < BATCH and len(selected) + len(picks) < count:
            j = int(np.argmax(cd))
            if picks and not cd[j] > outside:
                break  # an unseen point may now be the farthest: update all distances first
            picks.append(j)
            np.minimum(cd, pair[j], out=cd)
            cd[j] = -np.inf  # rounding can leave a chosen point a tiny distance from itself
        chosen = cand[picks]
        selected += chosen.tolist()
        _update(p, sq, chosen, mind)
    return np.asarray(selected, np.int64), float(np.sqrt(mind.max()))


def _update(p: np.ndarray, sq: np.ndarray, chosen: np.ndarray, mind: np.ndarray, initial: bool = False) -> None:
    c = p[chosen]
    for s in range(0, len(p), ROW_CHUNK):
        d = _sq_dist(p[s:s + ROW_CHUNK], sq[s:s + ROW_CHUNK], c).min(1)
        if initial:
            mind[s:s + ROW_CHUNK] = d
        else:
            np.minimum(mind[s:s + ROW_CHUNK], d, out=mind[s:s + ROW_CHUNK])
