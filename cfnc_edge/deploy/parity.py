"""How far one backend's features are from another's: the check every
exported, quantised or compiled model passes before it is written."""

from __future__ import annotations

import numpy as np


def feature_error(ref: np.ndarray, got: np.ndarray) -> dict[str, float]:
    diff = np.abs(ref.astype(np.float64) - got)
    return {"max_abs": float(diff.max()), "mean_abs": float(diff.mean()),
            "max_rel": float(diff.max() / np.abs(ref).max()), "mean_rel": float(diff.mean() / np.abs(ref).mean())}


def run_session(data: bytes | str, batch: np.ndarray, chunk: int = 8) -> np.ndarray:
    import onnxruntime as ort

    sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    return np.concatenate([sess.run(["features"], {"images": batch[i:i + chunk]})[0]
                           for i in range(0, len(batch), chunk)])
