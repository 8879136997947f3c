"""Does the bank search's implementation change any result? One bundle evaluated with each.

    python -m benchmarks.search_parity --bundle B --data DATA [--backend torch]

runtime/knn.py searches the bank in OpenVINO's compiled product where
OpenVINO is installed, else in NumPy (issue 20, item 3). Both rank rows by
||b||^2 - 2 x.b and recompute the distance of the row found from the
difference; they can differ only where two rows tie to within rounding. This
evaluates the same bundle (a knn or combined one) on the whole test set once
per search, same backend for the features, and compares every image score
and the metrics. Results: benchmarks/results/search-parity.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from benchmarks.common import machine

RESULTS = Path(__file__).resolve().parent / "results"


def evaluate_with(search: str, bundle: Path, data: Path, backend: str) -> dict:
    from cfnc_edge.report.evaluate import evaluate
    from cfnc_edge.runtime import knn_openvino
    from cfnc_edge.runtime.inspector import Inspector

    installed = knn_openvino.available
    knn_openvino.available = lambda: search == "openvino" and installed()  # what "auto" then picks
    try:
        insp = Inspector(bundle, backend)
    finally:
        knn_openvino.available = installed
    scoring = insp.scoring.distance
    bank = getattr(scoring, "bank", scoring)  # the combined scorer holds its bank search
    if getattr(bank, "search", None) != search:
        raise SystemExit(f"{bundle}: the {backend} backend does not search the bank on the host with {search}")
    t0 = time.perf_counter()
    r = evaluate(insp, data, None, progress=False)
    return {"search": search, "metrics": {k: float(v) for k, v in r.metrics.items()},
            "scores": [im["score"] for im in r.images], "seconds": round(time.perf_counter() - t0, 1)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bundle", type=Path, required=True)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--backend", default="torch")
    a = ap.parse_args()
    runs = [evaluate_with(s, a.bundle, a.data, a.backend) for s in ("openvino", "numpy")]
    ov, npy = (np.asarray(r["scores"]) for r in runs)
    diff = float(np.abs(ov - npy).max())
    cmd = f"python -m benchmarks.search_parity --bundle {a.bundle} --data {a.data} --backend {a.backend}"
    res = {"machine": machine(), "command": cmd, "images": len(ov), "max_abs_score_diff": diff,
           "max_rel_score_diff": diff / float(np.abs(npy).max()), "runs": runs}
    (RESULTS / "search-parity.json").write_text(json.dumps(res, indent=1) + "\n")
    lines = ["# The bank search's implementation against the results", "",
             f"Machine: {res['machine']}. Command: `{cmd}`.", "",
             f"{len(ov)} test images, features on the {a.backend} backend, the bank searched by each implementation.",
             "", "| search | image AUROC | pixel AUROC | PRO | eval s |", "|---|---|---|---|---|"]
    lines += [f"| {r['search']} | {100 * r['metrics']['image_auroc']:.4f} | {100 * r['metrics']['pixel_auroc']:.4f} | "
              f"{100 * r['metrics']['pro']:.4f} | {r['seconds']} |" for r in runs]
    lines += ["", f"Largest difference of an image score between the two: {diff:.3g} "
              f"({res['max_rel_score_diff']:.3g} of the largest score)."]
    (RESULTS / "search-parity.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
