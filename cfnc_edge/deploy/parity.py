"""How far one backend's features are from another's: the check every
exported, quantised or compiled model passes before it is written."""

from __future__ import annotations

import numpy as np


def feature_error(ref: np.ndarray, got: np.ndarray) -> dict[str, float]:
    diff = np.abs(ref.astype(np.float64) - got)
    return {"max_abs": float(diff.max()), "mean_abs": float(diff.mean()),
            "max_rel": float(diff.max() / np.abs(ref).max()), "mean_rel": float(diff.mean() / np.abs(ref).mean())}


def run_session(data: bytes | str, batch: np.ndarray, chunk: int = 8, outputs: tuple[str, ...] = ("features",)):
    """The graph's outputs on a batch, run in chunks: one array, or a list for several outputs."""
    import onnxruntime as ort

    sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    runs = [sess.run(list(outputs), {"images": batch[i:i + chunk]}) for i in range(0, len(batch), chunk)]
    got = [np.concatenate([r[k] for r in runs]) for k in range(len(outputs))]
    return got[0] if len(outputs) == 1 else got


def brute_force_distances(features: np.ndarray, bank: np.ndarray, center: np.ndarray,
                          chunk: int = 4096) -> np.ndarray:
    """Float64 reference: (B, C, h, w) features -> (B, h, w) distance to the nearest bank row,
    over every row (exhaustive). In float64 the norm expansion loses ~1e-16 of the
    squared norms, far below any tolerance checked against it."""
    b, c, h, w = features.shape
    x = features.astype(np.float64).transpose(0, 2, 3, 1).reshape(-1, c) - center.astype(np.float64)
    bank = bank.astype(np.float64)
    best = np.full(len(x), np.inf)
    for s in range(0, len(bank), chunk):
        part = bank[s:s + chunk]
        d = (part * part).sum(1)[None, :] - 2.0 * (x @ part.T)
        np.minimum(best, d.min(1), out=best)
    return np.sqrt(np.maximum(best + (x * x).sum(1), 0.0)).reshape(b, h, w)
