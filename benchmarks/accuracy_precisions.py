"""Accuracy cost of each precision on real data: feature backends (ONNX
Runtime fp32, OpenVINO fp32 and its NNCF int8 by default) x factor storage (fp32,
fp16, int8 with per-row scales).

    python -m benchmarks.accuracy_precisions --bundle B [--data ../shared/data/magnetic-tile]

Features are computed once per feature backend on every test image and
scored with each factor precision, so the factor rows differ only by the
factor. Writes benchmarks/results/accuracy-precisions.md with image AUROC,
pixel AUROC and PRO, and the change in points against ONNX Runtime fp32
with the fp32 factor, or the first of --features (goals: at most 0.1 point for a factor variant, 0.5
for INT8 features).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from benchmarks.common import machine
from cfnc_edge.bundle import GAUSSIAN, Bundle
from cfnc_edge.data.mvtec import MVTecDataset
from cfnc_edge.images import as_hw, preprocess
from cfnc_edge.report.metrics import image_auroc, pixel_auroc, pro_score
from cfnc_edge.runtime.backends import create_backend
from cfnc_edge.runtime.distance import CpuMahalanobis
from cfnc_edge.runtime.postprocess import anomaly_maps
from cfnc_edge.scoring.factor import FACTOR_PRECISIONS, compress


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bundle", required=True)
    ap.add_argument("--data", default="../shared/data/magnetic-tile")
    ap.add_argument("--features", default="onnxruntime:fp32,openvino:fp32,openvino:int8",
                    help="feature backends as backend:precision, comma-separated; the first is the baseline")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "accuracy-precisions.md"))
    a = ap.parse_args()
    bundle = Bundle.open(a.bundle)
    h, w = as_hw(bundle.model_config["image_size"])
    samples = MVTecDataset(a.data).test_samples()
    frames, masks = [], []
    for smp in samples:
        f, gt = smp.load()
        frames.append(f)
        masks.append(cv2.resize(gt.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST) > 0)
    masks = np.stack(masks)
    labels = np.array([smp.is_anomalous for smp in samples])
    g = bundle.tensors(GAUSSIAN)
    scorers = {p: CpuMahalanobis(g["mean"], (f := compress(g["factor"], p)).values, scale=f.scale)
               for p in FACTOR_PRECISIONS}
    features = [tuple(f.split(":")) for f in a.features.split(",")]
    rows, base = [], None
    for backend, precision in features:
        try:
            be = create_backend(bundle, backend, precision)
        except Exception as exc:  # noqa: BLE001 - a backend not installed or not built is a row that says so
            rows.append(f"| {backend} {precision} | - | not measured: {exc} | | | |")
            continue
        feats, thetas = zip(*(be(preprocess(frames[i:i + 8], (h, w))) for i in range(0, len(frames), 8)))
        feats, thetas = np.concatenate(feats), np.concatenate(thetas)
        for p, scorer in scorers.items():
            maps = np.concatenate([anomaly_maps(scorer(feats[i:i + 8]), thetas[i:i + 8], (h, w))
                                   for i in range(0, len(feats), 8)])
            m = {"image": image_auroc(maps.reshape(len(maps), -1).max(1), labels),
                 "pixel": pixel_auroc(maps, masks), "pro": pro_score(maps, masks)}
            base = base or m
            delta = ", ".join(f"{100 * (m[k] - base[k]):+.2f}" for k in m)
            rows.append(f"| {backend} {precision} | {p} | {100 * m['image']:.2f} | {100 * m['pixel']:.2f} | "
                        f"{100 * m['pro']:.2f} | {delta} |")
            print(rows[-1], flush=True)
    lines = ["# Accuracy of each precision on magnetic-tile", "", f"Machine: {machine()}.", "",
             f"Bundle `{a.bundle}` ({bundle.model_config.get('backbone')}, d = {g['mean'].shape[1]}), "
             f"{len(samples)} test images of `{a.data}`. Command: `python -m benchmarks.accuracy_precisions "
             f"--bundle {a.bundle} --data {a.data} --features {a.features}`.", "",
             f"Baseline for the changes: {features[0][0]} {features[0][1]} features with the fp32 factor.", "",
             "| features | factor | image AUROC | pixel AUROC | PRO | change in points (image, pixel, PRO) |",
             "|---|---|---|---|---|---|", *rows]
    Path(a.out).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
