"""A fitted scorer, and the one step that finishes every fit: threshold, timing, write.

A fitter (scoring/fitters.py) returns a `FittedScorer`: the bundle files it
adds beside the weights, its manifest entries, and every good image's
held-out score (each scored by a scorer fitted without it). `finish` sets
the threshold from those scores (of whole frames when the images were
tiles), or records the user's value against them, records the fit's time
and memory, and writes weights, scorer and manifest in one bundle write.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from cfnc_edge.bundle import WEIGHTS, Bundle
from cfnc_edge.model.alignment import angle_summary
from cfnc_edge.model.coarse_to_fine import CoarseToFine
from cfnc_edge.resources import peak_rss_mib
from cfnc_edge.scoring.threshold import threshold_record


@dataclass
class FittedScorer:
    files: dict[str, dict[str, np.ndarray]]  # bundle file name -> its tensors (the weights aside)
    manifest: dict  # the scorer's manifest entries ("scorer", and "gaussian" for a Gaussian)
    heldout: np.ndarray  # (N,) each good image's (or tile's) score by a scorer fitted without it
    angles: np.ndarray  # (N,) ICA angles in degrees (0 without ICA)
    heldout_distance: float | None = None  # held-out mean per-position Mahalanobis distance (with a Gaussian)
    threshold: dict = field(default_factory=dict)  # how the held-out scores were made, for the threshold record
    seconds: float = 0.0  # how long fitting and held-out scoring took (fit_scorer measures it)


def frame_max(tile_scores: np.ndarray, frame_of: np.ndarray) -> np.ndarray:
    """Per-tile scores -> per-frame scores (the maximum over each frame's tiles):
    what a tiled frame's verdict is taken on (exactly so without overlap)."""
    out = np.full(int(frame_of.max()) + 1, -np.inf)
    np.maximum.at(out, frame_of, tile_scores)
    return out


def write_scorer(bundle: Bundle, model: CoarseToFine, fitted: FittedScorer, **manifest) -> None:
    """The model's weights and the scorer's files into the bundle, with their manifest entries."""
    weights = {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}
    files = {WEIGHTS: weights, **fitted.files}
    bundle.write({name: Bundle.tensor_bytes(tensors) for name, tensors in files.items()},
                 model=model.cfg.to_dict(), **fitted.manifest, **manifest)


def finish(bundle: Bundle, model: CoarseToFine, fitted: FittedScorer, target_fpr: float,
           threshold: float | None = None, frame_of: np.ndarray | None = None, **manifest) -> dict:
    """Set the threshold for `target_fpr` from the held-out scores (of whole frames when
    `frame_of` gives each tile's frame), or to the user's `threshold`; record the fit's
    seconds and peak memory in `manifest["timing"]` if given; write it all (inside the
    caller's transaction). Returns the threshold record."""
    scores = fitted.heldout if frame_of is None else frame_max(fitted.heldout, frame_of)
    record = {**threshold_record(scores, target_fpr, threshold), **fitted.threshold}
    distance = {} if fitted.heldout_distance is None else {"heldout_mean_distance": fitted.heldout_distance}
    compact = {**distance, "heldout_mean_score": float(scores.mean()), "ica_angles": angle_summary(fitted.angles)}
    if "timing" in manifest:
        manifest["timing"]["fit_seconds"] = round(fitted.seconds, 1)
        manifest["timing"]["peak_rss_mib"] = round(peak_rss_mib(), 1)
    write_scorer(bundle, model, fitted, threshold=record, compactness=compact, **manifest)
    return record
