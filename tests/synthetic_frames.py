"""Test helper: in-memory frames of the synthetic parts, for the stream and
serve tests (which feed frames, not a dataset folder)."""

import numpy as np

from cfnc_edge.data.synthetic import render_defective, render_good


def synthetic_frames(n, seed=3, size=96):
    """n uint8 BGR frames, every 4th with a scratch (the rest good), reproducible from `seed`."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        img = render_defective(rng, "scratch", size)[0] if i % 4 == 3 else render_good(rng, size)[0]
        out.append(np.clip(img, 0, 255).astype(np.uint8))
    return out
