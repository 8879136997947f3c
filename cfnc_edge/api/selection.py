"""`--recipe auto`: choose the features and the scorer for this dataset from its good images alone.

A seeded subset of the good images (at most SELECT_IMAGES) gets one synthetic
defect each (data/defects.py), drawn once on the frames as captured and
resized with them, so every candidate is scored on the same defects, seen
through its own preprocessing as a real defect would be. Inputs larger than
the frames are not searched.
Candidates are tried in selection/candidates.py's order while the budget
lasts: `budget` is a multiple of the time the first candidate (Lite0 at 224
px, what `--recipe pretrained` extracts) took, so the search costs the same
share of a training on a slow CPU as on a GPU; a candidate whose predicted
time (its relative cost x the measured time per unit) does not fit is
skipped, and the record says so. selection/choose.py picks the winner; every
row, the skipped candidates and the rule go into the bundle's manifest.
"""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np

from cfnc_edge.data.aspect import keep_aspect, median_aspect
from cfnc_edge.data.defects import defects_on_images
from cfnc_edge.images import preprocess, read_image
from cfnc_edge.model.alignment import ica_angle_degrees
from cfnc_edge.model.backbones import MAX_STRIDE
from cfnc_edge.model.coarse_to_fine import CoarseToFine, ModelConfig
from cfnc_edge.selection.candidates import ICA_SEARCHED, Candidate, search_order
from cfnc_edge.selection.choose import RULE, choose
from cfnc_edge.selection.evaluate import score_candidate

SELECT_IMAGES = 32
DEFAULT_BUDGET = 4.0
# ICA variants are tried only when the fitted template turns the parts by more than this (std, degrees)
POSE_SPREAD = 3.0


def _resize_masks(masks: list[np.ndarray], hw: tuple[int, int]) -> np.ndarray:
    """Masks of frames of any size at the model input (a pixel touched by a defect stays marked)."""
    return np.stack([cv2.resize(m.astype(np.uint8), (hw[1], hw[0]), interpolation=cv2.INTER_AREA) > 0
                     for m in masks])


def _at_most(frame: np.ndarray, short: int) -> np.ndarray:
    """The frame with its short side at most `short` (area resize, as preprocess shrinks)."""
    h, w = frame.shape[:2]
    f = short / min(h, w)
    return frame if f >= 1 else cv2.resize(frame, (round(w * f), round(h * f)), interpolation=cv2.INTER_AREA)


def _pose_spread(frames: list[np.ndarray], hw: tuple[int, int]) -> float:
    """Std of the angles (degrees) the image alignment, fitted on these frames, turns them by
    (0 when its fit found no pose to correct: model/template_alignment.py)."""
    model = CoarseToFine(ModelConfig(image_size=list(hw), ica=True, fca=False, head="projection"))
    images = preprocess(frames, hw)
    if not model.fit_template(images)["fitted"]:
        return 0.0
    return float(np.std(ica_angle_degrees(model.run(images)[1])))


def select(paths: list[Path], budget: float = DEFAULT_BUDGET, seed: int = 0, scorer: str | None = None,
           fixed: dict | None = None, feature_dim: int = 100, weights: Path | None = None, log=print) -> dict:
    """Score the candidates on synthetic defects of a subset of `paths`; return the choice:
    {"candidate", "scorer", "weight", "rows", "skipped", "rule", "seconds", "images", "budget"}.
    `scorer` fixes the scorer; `fixed` ({"backbone", "short_side"}: values not None) the features;
    `weights`: the backbone's weights file (with a fixed backbone)."""
    t_start = time.perf_counter()
    rng = np.random.default_rng(seed)
    subset = [paths[i] for i in sorted(rng.choice(len(paths), min(len(paths), SELECT_IMAGES), replace=False))]
    frames = [read_image(p) for p in subset]
    ratio = median_aspect(subset)
    # the pose is only worth measuring when aligned candidates are searched (selection/candidates.py)
    spread = _pose_spread(frames, keep_aspect(224, ratio, MAX_STRIDE, log=lambda _m: None)) if ICA_SEARCHED else None
    posed = spread is not None and spread > POSE_SPREAD
    fixed = {k: v for k, v in (fixed or {}).items() if v is not None and k in ("backbone", "short_side")}
    # a fixed scorer with a Gaussian in it cannot use the inputs too large for the Gaussian
    order = [c for c in search_order(posed) if all(getattr(c, k) == v for k, v in fixed.items())
             and (c.gaussian or scorer in (None, "knn"))]
    order = order or [Candidate(**fixed), *([Candidate(**fixed, ica=True)] if posed else [])]
    # an input larger than the frames adds no pixels, only interpolation: not searched
    native = int(np.median([min(f.shape[:2]) for f in frames]))
    larger = [c for c in order[1:] if c.short_side > max(native, order[0].short_side) and "short_side" not in fixed]
    skipped = [{**c.to_dict(), "why": f"the frames' short side is {native} px"} for c in larger]
    order = [c for c in order if c not in larger]
    hw_of = {c.short_side: keep_aspect(c.short_side, ratio, MAX_STRIDE, log=lambda _m: None) for c in order}
    # the defects are drawn once on the frames as captured (data/defects.py says why), at most
    # twice the largest input tried, and reach every candidate through its own preprocessing
    frames = [_at_most(f, 2 * max(c.short_side for c in order)) for f in frames]
    bad, masks, families = defects_on_images([np.ascontiguousarray(f[:, :, ::-1].transpose(2, 0, 1)) for f in frames],
                                             seed)
    bad_frames = [b.transpose(1, 2, 0)[:, :, ::-1] for b in bad]  # back to BGR frames for preprocess
    rows, unit, allowance = [], None, None
    for cand in order:
        left = None if allowance is None else allowance - (time.perf_counter() - t_start)
        if left is not None and cand.cost * unit > left:
            why = f"predicted {cand.cost * unit:.0f} s, {max(left, 0):.0f} s of the budget left"
            skipped.append({**cand.to_dict(), "why": why})
            continue
        hw = hw_of[cand.short_side]
        t0 = time.perf_counter()
        model = CoarseToFine(ModelConfig(backbone=cand.backbone, image_size=list(hw), feature_dim=feature_dim,
                                         ica=cand.ica, fca=False, head="combined"), weights=weights)
        good = preprocess(frames, hw)
        if cand.ica:
            model.fit_template(good)
        got = score_candidate(model, good, preprocess(bad_frames, hw), _resize_masks(masks, hw),
                              gaussian=cand.gaussian and scorer != "knn", seed=seed)
        seconds = time.perf_counter() - t0
        if unit is None:  # the baseline's time sets the unit and the budget
            unit, allowance = seconds, budget * seconds
        else:  # measured per unit of cost so far, for the next prediction
            unit = max(unit, seconds / cand.cost)
        rows += [{**r, "candidate": cand.to_dict()} for r in got
                 if scorer is None or r["scorer"] == scorer]
        best = max(r["synthetic_image_auroc"] for r in got)
        log(f"  {cand.name}: best synthetic image AUROC {100 * best:.1f} ({seconds:.0f} s)")
    chosen = choose(rows)
    return {"candidate": chosen["candidate"], "scorer": chosen["scorer"], "weight": chosen.get("weight", 0.5),
            "rows": rows, "skipped": skipped, "rule": RULE, "seconds": round(time.perf_counter() - t_start, 1),
            "images": len(subset), "budget": budget, "pose_spread_degrees": spread,
            "defect_families": sorted(set(families))}
