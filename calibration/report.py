"""Calibrate a bundle to INT8 and write the Markdown report committed here.

    python calibration/report.py BUNDLE DATA OUT.md [--method percentile] [--n 64] [--keep stages.0]

Exports the bundle first (so the ONNX is that of this code). The report gives the
feature error of INT8 against FP32 and image AUROC, pixel AUROC and PRO of
both on DATA's test set (ONNX Runtime, CPU).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from common import machine  # noqa: E402

from cfnc_edge.bundle import Bundle  # noqa: E402
from cfnc_edge.deploy.calibrate import calibrate  # noqa: E402
from cfnc_edge.deploy.export import export  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("bundle")
    ap.add_argument("data")
    ap.add_argument("out")
    ap.add_argument("--method", default="percentile")
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--keep", default="stages.0")
    a = ap.parse_args()
    b = Bundle.open(a.bundle)
    export(b)  # always fresh: the ONNX must be that of this code
    keep = tuple(k for k in a.keep.split(",") if k)
    r = calibrate(b, Path(a.data) / "train" / "good", a.n, a.method, keep, Path(a.data))
    acc, err = r["accuracy"], r["feature_error"]
    lines = [f"# INT8 calibration report: `{Path(a.data).name}`", "",
             f"Machine: {machine()}.", "",
             f"Command: `python calibration/report.py {a.bundle} {a.data} {a.out} --method {a.method} --n {a.n} "
             f"--keep '{a.keep}'`", "",
             f"Recipe: {r['method']} calibration on {r['images']} images of train/good, symmetric int8 "
             f"(zero point 0), per-channel weight scales; kept in float: {', '.join(r['keep_float']) or 'nothing'} "
             "(plus the spatial transformers and the projection, always).", "",
             f"Feature error, INT8 vs FP32 on {r['check_images']} other good images: max |diff| {err['max_abs']:.3g}, "
             f"mean |diff| {err['mean_abs']:.3g}, mean relative {100 * err['mean_rel']:.1f}%.", "",
             "| | image AUROC | pixel AUROC | PRO |", "|---|---|---|---|"]
    for k in ("fp32", "int8"):
        m = acc[k]
        lines.append(f"| {k.upper()} (ONNX Runtime) | {100 * m['image_auroc']:.2f} | {100 * m['pixel_auroc']:.2f} | "
                     f"{100 * m['pro']:.2f} |")
    d = acc["delta_points"]
    lines.append(f"| INT8 - FP32 (points) | {d['image_auroc']:+.2f} | {d['pixel_auroc']:+.2f} | {d['pro']:+.2f} |")
    Path(a.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
