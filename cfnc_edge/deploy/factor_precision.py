"""Set the storage precision of a bundle's whitening factor, and show its cost.

The bundle keeps the fp32 factor; `gaussian.factor_precision` in the
manifest says what the runtime converts it to at load (scoring/loading.py),
so the setting can be changed back without loss. Before it is written, the
new precision is checked on the bundle's good images: distances against
fp32 (max relative difference of the anomaly maps' inputs and of the image
scores), and with `eval_data` the accuracy (image/pixel AUROC, PRO) of both.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cfnc_edge.bundle import GAUSSIAN, Bundle
from cfnc_edge.data.bundle_images import sample_images
from cfnc_edge.runtime.backends import create_backend
from cfnc_edge.runtime.distance import CpuMahalanobis
from cfnc_edge.scoring.factor import check_precision, compress
from cfnc_edge.scoring.loading import bundle_precision


def distance_change(bundle: Bundle, precision: str, images: Path | None = None, n: int = 16) -> dict:
    """Distances with the factor in `precision` against fp32, on n good images."""
    g = bundle.tensors(GAUSSIAN)
    feats, _ = create_backend(bundle, "auto")(sample_images(bundle, images, n))
    feats = feats[:, :g["mean"].shape[1]]  # a combined head's projection channels come first (no-op otherwise)
    f = compress(g["factor"], precision)
    ref = CpuMahalanobis(g["mean"], g["factor"])(feats).astype(np.float64)
    got = CpuMahalanobis(g["mean"], f.values, scale=f.scale)(feats)
    rel = np.abs(got - ref) / ref
    scores_ref, scores = ref.reshape(len(ref), -1).max(1), got.reshape(len(got), -1).max(1)
    return {"images": len(feats), "max_rel_distance": float(rel.max()), "mean_rel_distance": float(rel.mean()),
            "max_rel_score": float(np.max(np.abs(scores - scores_ref) / scores_ref))}


def set_factor_precision(bundle: Bundle, precision: str, images: Path | None = None, eval_data: Path | None = None,
                         log=print) -> dict:
    check_precision(precision)
    report = {"from": bundle_precision(bundle), "to": precision,
              "vs_fp32": distance_change(bundle, precision, images)}
    c = report["vs_fp32"]
    log(f"{precision} factor vs fp32 on {c['images']} good images: max rel. distance change "
        f"{c['max_rel_distance']:.2e}, max rel. image score change {c['max_rel_score']:.2e}")
    if eval_data is not None:
        report["accuracy"] = compare_accuracy(bundle, precision, eval_data, log)
    gaussian = dict(bundle.manifest.get("gaussian", {}), factor_precision=precision, factor_check=report)
    bundle.manifest["gaussian"] = gaussian
    bundle.write_manifest()
    return report


def compare_accuracy(bundle: Bundle, precision: str, data: Path, log=print) -> dict:
    from cfnc_edge.report.evaluate import evaluate
    from cfnc_edge.runtime.inspector import Inspector

    out = {}
    for p in dict.fromkeys(("fp32", precision)):
        bundle.manifest.setdefault("gaussian", {})["factor_precision"] = p  # in memory: what Inspector loads
        r = evaluate(Inspector(bundle, "auto"), data, progress=False)
        out[p] = r.metrics
        log(f"{p} factor: image AUROC {100 * r.metrics['image_auroc']:.2f}, pixel AUROC "
            f"{100 * r.metrics['pixel_auroc']:.2f}, PRO {100 * r.metrics['pro']:.2f}")
    out["delta_points"] = {k: 100 * (out[precision][k] - out["fp32"][k]) for k in out["fp32"]}
    return out
