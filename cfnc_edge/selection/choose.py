"""The rule that picks one (candidate, scorer) from the synthetic scores.

1. the highest synthetic image AUROC, where anything within AUROC_TIE of it
   counts as a tie (on tens of images a 0.5-point difference is a pair or
   two of images, not evidence);
2. among the ties, the highest synthetic PRO within PRO_TIE;
3. among those, the cheapest at inference (relative cost of the candidate's
   features, then the scorer: the Gaussian alone is the fastest, the
   fusion does both searches).
"""

from __future__ import annotations

AUROC_TIE = 0.005
PRO_TIE = 0.01
SCORER_COST = {"gaussian": 0, "knn": 1, "combined": 2}
RULE = (f"highest synthetic image AUROC (ties within {100 * AUROC_TIE:g} points), then synthetic PRO "
        f"(within {100 * PRO_TIE:g}), then the cheapest inference")


def choose(rows: list[dict]) -> dict:
    """rows: {"candidate": {..., "cost"}, "scorer", "synthetic_image_auroc", "synthetic_pro", ...} -> the chosen row."""
    if not rows:
        raise ValueError("no candidate was scored")
    best = max(r["synthetic_image_auroc"] for r in rows)
    tied = [r for r in rows if r["synthetic_image_auroc"] >= best - AUROC_TIE]
    best_pro = max(r["synthetic_pro"] for r in tied)
    tied = [r for r in tied if r["synthetic_pro"] >= best_pro - PRO_TIE]
    return min(tied, key=lambda r: (r["candidate"]["cost"], SCORER_COST[r["scorer"]], abs(r.get("weight", 0.5) - 0.5)))
