"""A picture of the synthetic defect families on real good images, for a human to judge.

    python -m benchmarks.defect_gallery [--data /work/shared/data] [--out benchmarks/results/defect-gallery.png]

Six train/good images of magnetic-tile and six of mvtec-screw, resized to
224 x 224 as the model sees them (`preprocess`), get one defect of each
family (rows: families; columns: images; donors are the other images of the
same set); the mask's outline is drawn in green beside each defective image,
with the estimated foreground's outline in blue on the clean image in the
first row. Also prints the mean time per defect.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np

from cfnc_edge.data.defects import FAMILIES, add_defect, estimate_foreground
from cfnc_edge.images import list_images, preprocess, read_image

ROOT = Path(__file__).resolve().parent
SETS = ("magnetic-tile", "mvtec-screw")


def _outline(rgb: np.ndarray, mask: np.ndarray, colour) -> np.ndarray:
    bgr = np.ascontiguousarray(rgb.transpose(1, 2, 0)[:, :, ::-1])
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(bgr, contours, -1, colour, 1)
    return bgr


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent.parent / "shared" / "data")
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "defect-gallery.png")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--scale", type=float, default=0.5, help="of the written picture (1: full resolution)")
    args = ap.parse_args()

    rng = np.random.default_rng(args.seed)
    times, panels = [], []
    for name in SETS:
        images = preprocess([read_image(p) for p in list_images(args.data / name / "train" / "good")[:6]], 224)
        fgs = estimate_foreground(images)
        rows = [("clean, foreground outlined", [np.hstack([_outline(im, fg, (255, 80, 0)),
                                                           np.full_like(_outline(im, fg, 0), 255)])
                                                for im, fg in zip(images, fgs)])]
        for family in FAMILIES:
            row = []
            for i, (im, fg) in enumerate(zip(images, fgs)):
                donor = images[(i + 1 + rng.integers(len(images) - 1)) % len(images)]
                t = time.perf_counter()
                out, mask, _ = add_defect(im, rng, donor, family, fg)
                times.append(time.perf_counter() - t)
                row.append(np.hstack([out.transpose(1, 2, 0)[:, :, ::-1], _outline(out, mask, (0, 200, 0))]))
            rows.append((family, row))
        for label, cells in rows:
            line = np.hstack([np.pad(c, ((2, 2), (4, 4), (0, 0)), constant_values=255) for c in cells])
            band = np.full((20, line.shape[1], 3), 255, np.uint8)
            cv2.putText(band, f"{name}: {label}", (6, 15), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
            panels += [band, line]
    grid = cv2.resize(np.vstack(panels), None, fx=args.scale, fy=args.scale, interpolation=cv2.INTER_AREA)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.out), grid, [cv2.IMWRITE_PNG_COMPRESSION, 9])
    print(f"{args.out}: {grid.shape[1]}x{grid.shape[0]}, {args.out.stat().st_size / 1e6:.2f} MB; "
          f"{1e3 * np.mean(times):.2f} ms per defect (median {1e3 * np.median(times):.2f})")


if __name__ == "__main__":
    main()
