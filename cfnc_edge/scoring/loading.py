"""A bundle's scorer, back as the runtime scores with it (the Inspector's
`backend.scoring(load_scorer(bundle))`)."""

from __future__ import annotations

import numpy as np

from cfnc_edge.bundle import BANK, GAUSSIAN, Bundle
from cfnc_edge.scoring.factor import gaussian_tensors


def bundle_precision(bundle: Bundle) -> str:
    """The factor precision a bundle is set to run with (fp32 unless set)."""
    return bundle.manifest.get("gaussian", {}).get("factor_precision", "fp32")


def load_gaussian(bundle: Bundle) -> dict[str, np.ndarray]:
    """The bundle's Gaussian as the runtime scores with it: the factor in the
    precision recorded in the manifest."""
    return gaussian_tensors(bundle.tensors(GAUSSIAN), bundle_precision(bundle))


def load_scorer(bundle: Bundle) -> dict[str, np.ndarray]:
    """The bundle's scorer tensors as the runtime scores with them: a memory
    bank as stored, a Gaussian with its factor in the recorded precision, or
    (combined scorer) both, with the bank file's fusion constants."""
    if bundle.scorer == "combined":
        return {**load_gaussian(bundle), **bundle.tensors(BANK)}
    return bundle.scorer_tensors() if bundle.scorer == "knn" else load_gaussian(bundle)
