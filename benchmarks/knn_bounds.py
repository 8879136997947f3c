"""Can an exact bank search skip rows? Lower bounds from the bank's principal axes, on a real bank.

    python -m benchmarks.knn_bounds --bundle B --data DATA [--images 15]

The exact nearest-neighbour search is the combined and bank scorers' whole
distance cost on the CPU (compute-bound: knn-cpu.md). An exact search can
still do less work if it can prove rows cannot win: in the bank's principal
axes V (an orthogonal rotation, so distances are unchanged), the squared
distance over the first r axes is a lower bound of the full one. The search
would rank rows by that bound (an r/C share of the product), compute the
exact distance of the k best candidates, and stop for a patch when the
(k+1)-th bound is at least the best exact distance found: provably the exact
nearest row. Patches that cannot be certified need the full product.

For a bundle with a memory bank (knn or combined), this script takes the
pooled features of every `--step`-th test image (at most `--images`), and
reports per (r, k): the share of patches certified, and (what an
approximate search would get) the share whose k candidates hold the exact
nearest row. All in float64 against an exhaustive search. Results:
benchmarks/results/knn-bounds.{md,json}.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from benchmarks.common import machine

RESULTS = Path(__file__).resolve().parent / "results"
AXES, CANDIDATES = (16, 32, 48, 64), (1, 4, 8, 16)


def pooled_queries(bundle: Path, data: Path, images: int, step: int) -> tuple[np.ndarray, np.ndarray]:
    """Centred pooled features (N, C) of test images, as the bank search receives them, and the bank (M, C)."""
    from cfnc_edge.bundle import Bundle
    from cfnc_edge.data.mvtec import MVTecDataset
    from cfnc_edge.images import preprocess, read_image
    from cfnc_edge.model.combined_head import split_combined
    from cfnc_edge.runtime.combined import is_combined
    from cfnc_edge.runtime.inspector import Inspector
    from cfnc_edge.scoring.loading import load_scorer

    b = Bundle.open(bundle)
    scorer = load_scorer(b)
    insp = Inspector(b, "torch")
    out = []
    for sample in MVTecDataset(data).test_samples()[::step][:images]:
        feats, _ = insp.backend(preprocess([read_image(sample.path)], insp.image_size))
        feats = np.asarray(feats)
        if is_combined(scorer):  # the combined head: the bank reads the pooled half
            feats = split_combined(feats, int(scorer["mean"].shape[1]), tuple(int(v) for v in scorer["pooled_shape"]))[1]
        out.append(feats[0].reshape(feats.shape[1], -1).T - scorer["center"])
    return np.concatenate(out).astype(np.float64), scorer["bank"].astype(np.float64)


def study(q: np.ndarray, bank: np.ndarray) -> dict:
    centred = bank - bank.mean(0)
    eigval, axes = np.linalg.eigh(centred.T @ centred / len(bank))
    order = eigval.argsort()[::-1]
    eigval, axes = eigval[order], axes[:, order]
    exact = ((q * q).sum(1)[:, None] + (bank * bank).sum(1)[None] - 2 * q @ bank.T).min(1)
    qv, bv = q @ axes, bank @ axes
    rows = []
    for r in AXES:
        bound = (qv[:, :r] ** 2).sum(1)[:, None] + (bv[:, :r] ** 2).sum(1)[None] - 2 * qv[:, :r] @ bv[:, :r].T
        ranked = np.sort(bound, 1)
        for k in CANDIDATES:
            cand = np.argpartition(bound, k, 1)[:, :k]
            best = ((q[:, None, :] - bank[cand]) ** 2).sum(2).min(1)
            rows.append({"axes": r, "candidates": k, "certified": float((ranked[:, k] >= best).mean()),
                         "holds_nearest": float(np.isclose(best, exact, rtol=1e-9, atol=1e-9).mean())})
    explained = np.cumsum(eigval) / eigval.sum()
    return {"patches": len(q), "bank_rows": len(bank), "channels": bank.shape[1],
            "explained": {r: float(explained[r - 1]) for r in (8, *AXES, 96)}, "rows": rows}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bundle", type=Path, required=True)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--images", type=int, default=15)
    ap.add_argument("--step", type=int, default=40)
    a = ap.parse_args()
    q, bank = pooled_queries(a.bundle, a.data, a.images, a.step)
    res = {"machine": machine(), "bundle": str(a.bundle), "data": str(a.data), **study(q, bank),
           "command": f"python -m benchmarks.knn_bounds --bundle {a.bundle} --data {a.data} --images {a.images} "
                      f"--step {a.step}"}
    (RESULTS / "knn-bounds.json").write_text(json.dumps(res, indent=1) + "\n")
    lines = ["# Exact bank search with principal-axis lower bounds: how many patches can be certified", "",
             f"Machine: {res['machine']}. Command: `{res['command']}`.", "",
             f"{res['patches']} test patches ({a.images} images, every {a.step}th) against a {res['bank_rows']}-row "
             f"bank of {res['channels']} channels. Variance held by the first r principal axes: "
             + ", ".join(f"{r}: {100 * v:.0f}%" for r, v in res["explained"].items()) + ".", "",
             "| axes r | candidates k | certified exact | k candidates hold the nearest row |", "|---|---|---|---|"]
    lines += [f"| {r['axes']} | {r['candidates']} | {100 * r['certified']:.1f}% | {100 * r['holds_nearest']:.2f}% |"
              for r in res["rows"]]
    lines += ["", "Certified: the (k+1)-th lower bound is at least the best exact distance among the k candidates, "
              "so no other row can be nearer. Uncertified patches would need the full product; the last column is "
              "what an approximate search that trusts the candidates would get right."]
    (RESULTS / "knn-bounds.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
