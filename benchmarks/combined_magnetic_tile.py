"""Study: the per-position Gaussian, the memory bank, and their fusion, on the same features.

    python -m benchmarks.combined_magnetic_tile [--sets 50 disturbed50 disturbed] [--test-subset 100 50]
    python -m benchmarks.combined_magnetic_tile --latency BUNDLE   # a `train --scorer combined` bundle

Both scorers read the plain ImageNet EfficientNet-Lite0 at 224 px (PaDiM:
projection head, d = 100, stride 4, Ledoit-Wolf; PatchCore: pooled head,
stride 8, 10% coreset capped at 16384 rows), computed in ONE forward pass per
image and cached under --cache, so every fusion variant is cheap.

Every good training image is scored by models that did not see it: the
Gaussian of the other 4 folds (scoring/gaussian_fit.py) and the bank without its part
(scoring/crossfit.py). Those held-out good maps are the only thing any
fusion constant comes from (no defect, no test image sets a constant):

  gaussian, bank        one scorer alone (the map as inference makes it)
  sum/threshold         G / t_G + K / t_K, t = each scorer's cross-fitted threshold (1% target)
  sum/mean              G / m_G + K / m_K, m = mean held-out good image score
  sum/z-image           (G - m_G) / s_G + (K - m_K) / s_K, m, s = mean, std of held-out good image scores
  max/z-image           max of the two z-maps
  sum/z-pixel           as z-image with the mean, std of all held-out good map pixels
  sum/z-position        as z-image with a mean, std per map pixel (position-dependent)

The image score is the maximum of the (fused) map, as in inference; the
threshold of each row is set for 1% false alarms from the same rule applied
to the held-out good maps. Sets: `50` = 50 seeded train/good images of
magnetic-tile; `disturbed50` / `disturbed` = the paper's Table 3 protocol
(rotation +-30, zoom 0.8-1.2, flips; benchmarks/accuracy_magnetic_tile.py)
with the same 50 images / all 762: the posed-part proxy, where
position-free scoring should matter. Test: the full test set, or a seeded
--test-subset (good, defective) as in the accuracy benchmark.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from benchmarks.accuracy_magnetic_tile import dataset
from benchmarks.common import machine, write_keeping_reading
from cfnc_edge.model.coarse_to_fine import CoarseToFine, ModelConfig
from cfnc_edge.report.metrics import image_auroc, pixel_auroc, pro_score
from cfnc_edge.resources import peak_rss_mib
from cfnc_edge.runtime.distance import CpuMahalanobis
from cfnc_edge.runtime.knn import CpuNearestNeighbour
from cfnc_edge.runtime.postprocess import anomaly_maps
from cfnc_edge.scoring.crossfit import leave_part_out
from cfnc_edge.scoring.gaussian_fit import fit_gaussian, heldout_gaussians
from cfnc_edge.scoring.memory_bank import fit_bank, split_parts
from cfnc_edge.scoring.threshold import threshold_for_fpr

RESULTS = Path(__file__).resolve().parent / "results"
NAME = "combined-magnetic-tile"
SIZE = 224
VARIANTS = ("gaussian", "bank", "sum/threshold", "sum/mean", "sum/z-image", "max/z-image", "sum/z-pixel",
            "sum/z-position")


def load_set(kind: str, data: Path, work: Path, test_subset) -> dict[str, np.ndarray]:
    d = dataset(kind, data, work)
    if test_subset:
        rng = np.random.default_rng(2)
        good, bad = np.flatnonzero(~d["labels"]), np.flatnonzero(d["labels"])
        keep = np.sort(np.concatenate([rng.choice(good, min(test_subset[0], good.size), replace=False),
                                       rng.choice(bad, min(test_subset[1], bad.size), replace=False)]))
        d = {**d, **{k: d[k][keep] for k in ("test", "masks", "labels", "defects")}}
    return d


@torch.inference_mode()
def both_heads(model: CoarseToFine, images: np.ndarray, batch: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """One forward pass per batch -> (projection features fp16, pooled features fp16)."""
    proj, pooled = [], []
    for i in range(0, len(images), batch):
        x, _ = model.align_image(model.normalise(torch.from_numpy(images[i:i + batch])))
        taps = model.pyramid(x)
        proj.append(model.project(taps).numpy().astype(np.float16))
        pooled.append(model.pool(taps).numpy().astype(np.float16))
    return np.concatenate(proj), np.concatenate(pooled)


def cached_features(kind: str, split: str, model, images, cache: Path):
    f = cache / f"{label(kind, model.cfg.backbone)}-{split}-{len(images)}.npz"
    if f.is_file():
        z = np.load(f)
        return z["proj"], z["pooled"]
    proj, pooled = both_heads(model, images)
    np.savez(f, proj=proj, pooled=pooled)
    return proj, pooled


def batched(fn, x: np.ndarray, batch: int = 32) -> np.ndarray:
    return np.concatenate([fn(x[i:i + batch].astype(np.float32)) for i in range(0, len(x), batch)])


def identity(n: int) -> np.ndarray:
    """ICA transforms of a model without ICA."""
    return np.broadcast_to(np.eye(2, 3, dtype=np.float32), (n, 2, 3))


def maps_of(dist: np.ndarray) -> np.ndarray:
    return anomaly_maps(dist, identity(len(dist)), SIZE)


def gaussian_maps(tr: np.ndarray, te: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """(held-out good maps of the training images, test maps, fit seconds)."""
    t0 = time.perf_counter()

    def batches(idx):
        for i in range(0, len(idx), 32):
            sel = idx[i:i + 32]
            yield sel, tr[sel].astype(np.float32), identity(len(sel))

    s = tr.shape[-1]
    fit = fit_gaussian(batches, len(tr), s * s, tr.shape[1], "ledoit-wolf", 0.01, 5)
    held = np.empty((len(tr), s, s), np.float32)
    for idx, mean, factor in heldout_gaussians(fit):
        held[idx] = batched(CpuMahalanobis(mean, factor.astype(np.float32)), tr[idx])
    t_fit = time.perf_counter() - t0
    test = batched(CpuMahalanobis(fit.mean, fit.factor.astype(np.float32)), te)
    return maps_of(held), maps_of(test), t_fit


def bank_maps(tr: np.ndarray, te: np.ndarray) -> tuple[np.ndarray, np.ndarray, float, int]:
    t0 = time.perf_counter()
    flat = lambda x: x.astype(np.float32).transpose(0, 2, 3, 1).reshape(-1, x.shape[1])
    tensors, info = fit_bank(lambda idx: flat(tr[idx]), len(tr), tr.shape[-1] ** 2, progress=False)
    parts = split_parts(len(tr), info["part_images"], info["seed"])

    def fold(j, idx):
        t = leave_part_out(tensors, j)
        return batched(CpuNearestNeighbour(t["bank"], t["center"]), tr[idx])

    held = np.empty((len(tr),) + tr.shape[-2:], np.float32)
    for j, idx in enumerate(parts):
        held[idx] = fold(j, idx)
    t_fit = time.perf_counter() - t0
    test = batched(CpuNearestNeighbour(tensors["bank"], tensors["center"]), te)
    return maps_of(held), maps_of(test), t_fit, info["bank_size"]


def fuse(variant: str, g_held, g_test, k_held, k_test) -> tuple[np.ndarray, np.ndarray]:
    """(fused held-out good maps, fused test maps): constants from the held-out good maps only."""
    if variant == "gaussian":
        return g_held, g_test
    if variant == "bank":
        return k_held, k_test

    def stats(held):
        s = held.reshape(len(held), -1).max(1)
        if variant == "sum/threshold":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return 0.0, threshold_for_fpr(s, 0.01)["value"]
        if variant == "sum/mean":
            return 0.0, s.mean()
        if variant.endswith("z-image"):
            return s.mean(), s.std()
        if variant == "sum/z-pixel":
            return held.mean(), held.std()
        return held.mean(0), held.std(0) + 1e-6  # z-position

    (mg, sg), (mk, sk) = stats(g_held), stats(k_held)
    z = lambda m, mu, sd: (m - mu) / sd
    op = np.maximum if variant.startswith("max") else np.add
    return op(z(g_held, mg, sg), z(k_held, mk, sk)), op(z(g_test, mg, sg), z(k_test, mk, sk))


def evaluate(held, test, d) -> dict:
    labels, masks = d["labels"], d["masks"]
    scores = test.reshape(len(test), -1).max(1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        thr = threshold_for_fpr(held.reshape(len(held), -1).max(1), 0.01)["value"]
    flagged = scores > thr
    per = {}
    for dn in sorted(set(d["defects"]) - {"good"}):
        sel = (d["defects"] == "good") | (d["defects"] == dn)
        per[str(dn)] = image_auroc(scores[sel], labels[sel])  # pixel metrics per defect cost 2x the total
    return {"image_auroc": image_auroc(scores, labels), "pixel_auroc": pixel_auroc(test, masks),
            "pro": pro_score(test, masks), "good_flagged": float(flagged[~labels].mean()),
            "defect_flagged": float(flagged[labels].mean()), "per_defect": per}


def label(kind: str, backbone: str) -> str:
    """A set's name in the tables: the backbone is named unless it is the default."""
    return kind if backbone == ModelConfig.backbone else f"{kind}@{backbone}"


def run_set(kind: str, a) -> list[dict]:
    cache = Path(a.cache)
    cache.mkdir(parents=True, exist_ok=True)
    d = load_set(kind, Path(a.data), Path(a.work), a.test_subset)
    model = CoarseToFine(ModelConfig(backbone=a.backbone, ica=False, fca=False)).eval()
    t0 = time.perf_counter()
    ptr, ktr = cached_features(kind, "train", model, d["train"], cache)
    pte, kte = cached_features(kind, "test", model, d["test"], cache)
    t_feat = time.perf_counter() - t0
    g_held, g_test, tg = gaussian_maps(ptr, pte)
    k_held, k_test, tk, bank = bank_maps(ktr, kte)
    print(f"{label(kind, a.backbone)}: features {t_feat:.0f}s, gaussian {tg:.0f}s, bank {tk:.0f}s ({bank} rows)", flush=True)
    rows = []
    for v in VARIANTS:
        held, test = fuse(v, g_held, g_test, k_held, k_test)
        r = {"set": label(kind, a.backbone), "backbone": a.backbone, "variant": v, "train_images": int(len(d["train"])),
             "test_good": int((~d["labels"]).sum()),
             "test_defective": int(d["labels"].sum()), "bank_rows": bank, "features_s": round(t_feat, 1),
             "gaussian_fit_s": round(tg, 1), "bank_fit_s": round(tk, 1), "peak_rss_mib": round(peak_rss_mib()),
             **evaluate(held, test, d)}
        print(f"  {v}: image {r['image_auroc']:.4f} pixel {r['pixel_auroc']:.4f} pro {r['pro']:.4f} "
              f"good flagged {r['good_flagged']:.3f}", flush=True)
        rows.append(r)
    return rows


def _p(v) -> str:
    return "n/a" if v is None or v != v else f"{100 * v:.1f}"


def write(rows: list[dict], a) -> None:
    (RESULTS / f"{NAME}.json").write_text(json.dumps(rows, indent=1))
    lines = ["# Gaussian, memory bank and their fusion on magnetic-tile", "",
             f"Machine: {machine()}; **shared** with 2-3 other sessions' jobs, so times are upper bounds.",
             f"Data: `{a.data}`. Plain ImageNet EfficientNet-Lite0 (no training; a set named `@backbone` uses that backbone), 224 px; Gaussian = PaDiM "
             "(projection head d = 100, Ledoit-Wolf, 5-fold cross-fit), bank = PatchCore (pooled head, 10% "
             "coreset, cap 16384, leave-part-out cross-fit). Fusion constants come from the held-out good "
             "training maps only. Threshold of every row: 1% target from its held-out good maps. Command: "
             "`python -m benchmarks.combined_magnetic_tile`.", ""]
    for kind in dict.fromkeys(r["set"] for r in rows):
        sel = [r for r in rows if r["set"] == kind]
        r0 = sel[0]
        lines += [f"## {kind} ({r0['train_images']} training images; test {r0['test_good']} good, "
                  f"{r0['test_defective']} defective; bank {r0['bank_rows']} rows; features {r0['features_s']} s, "
                  f"Gaussian fit + cross-fit {r0['gaussian_fit_s']} s, bank {r0['bank_fit_s']} s; "
                  + (f"process peak RSS {r0['peak_rss_mib']} MiB)" if "peak_rss_mib" in r0 else "peak RSS not recorded)"), "",
                  "| variant | image AUROC | pixel AUROC | PRO | good flagged % | defects flagged % |",
                  "|---|---|---|---|---|---|"]
        lines += [f"| {r['variant']} | {_p(r['image_auroc'])} | {_p(r['pixel_auroc'])} | {_p(r['pro'])} | "
                  f"{_p(r['good_flagged'])} | {_p(r['defect_flagged'])} |" for r in sel]
        defects = list(r0["per_defect"])
        lines += ["", "Per defect (image AUROC, that defect's images against all good ones):", "",
                  "| variant | " + " | ".join(defects) + " |", "|---|" + "---|" * len(defects)]
        lines += [f"| {r['variant']} | " + " | ".join(_p(r["per_defect"][dn]) for dn in defects) + " |" for r in sel]
        lines.append("")
    write_keeping_reading(RESULTS / f"{NAME}.md", "\n".join(lines))


def latency(bundle_path: str, repeats: int = 30) -> None:
    """Distance step at batch 1 on one real frame's features: the Gaussian alone, the bank
    alone and the combined scorer (both + fusion), interleaved so all see the same load;
    written to results/combined-latency-cpu.md."""
    from cfnc_edge.bundle import Bundle
    from cfnc_edge.data.bundle_images import sample_images
    from cfnc_edge.model.loading import load_model
    from cfnc_edge.model.combined_head import split_combined
    from cfnc_edge.runtime.combined import CpuCombined
    from cfnc_edge.scoring.loading import load_scorer

    bundle = Bundle.open(bundle_path)
    t = load_scorer(bundle)
    with torch.inference_mode():
        feats = load_model(bundle)(torch.from_numpy(sample_images(bundle, None, 1)))[0].numpy()
    combined = CpuCombined(**{k: t[k] for k in ("mean", "factor", "bank", "center", "fusion", "pooled_shape")})
    proj, pooled = split_combined(feats, combined.dim, combined.pooled_shape)
    runs = {"gaussian": (combined.gaussian, proj), "bank": (combined.bank, pooled), "combined": (combined, feats)}
    ms: dict[str, list[float]] = {k: [] for k in runs}
    for r in range(repeats + 2):  # two warm-up rounds
        for k, (fn, x) in runs.items():
            t0 = time.perf_counter()
            fn(x)
            if r >= 2:
                ms[k].append(1000 * (time.perf_counter() - t0))
    p50 = {k: float(np.median(v)) for k, v in ms.items()}
    line = (f"Distance step at batch 1, p50 of {repeats} interleaved calls ({machine()}, shared): "
            + ", ".join(f"{k} {v:.1f} ms" for k, v in p50.items())
            + f" (bank {len(t['bank'])} rows, Gaussian {t['mean'].shape[0]} positions x d = {t['mean'].shape[1]}).")
    print(line)
    (RESULTS / "combined-latency-cpu.md").write_text(
        "# Distance step of the combined scorer vs each scorer alone\n\n"
        f"Command: `python -m benchmarks.combined_magnetic_tile --latency {bundle_path}` (a `cfnc-edge train "
        "--scorer combined` bundle of the 50-image magnetic-tile set, no training, 224 px).\n\n" + line + "\n")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="/work/shared/data/magnetic-tile")
    ap.add_argument("--work", default="/tmp/combo-cache",
                    help="preprocessed datasets (benchmarks.accuracy_magnetic_tile)")
    ap.add_argument("--cache", default="/tmp/combo-cache/features")
    ap.add_argument("--sets", nargs="+", default=["50", "disturbed50"])
    ap.add_argument("--test-subset", nargs=2, type=int, metavar=("GOOD", "DEFECTIVE"))
    ap.add_argument("--backbone", default=ModelConfig.backbone, help="e.g. efficientnet-lite1, efficientnet-lite2")
    ap.add_argument("--latency", metavar="BUNDLE", help="time the distance steps of a combined bundle instead")
    a = ap.parse_args()
    if a.latency:
        latency(a.latency)
        return
    f = RESULTS / f"{NAME}.json"
    ran = {label(k, a.backbone) for k in a.sets}
    rows = [r for r in (json.loads(f.read_text()) if f.is_file() else []) if r["set"] not in ran]
    for kind in a.sets:
        rows += run_set(kind, a)
        write(rows, a)


if __name__ == "__main__":
    main()
