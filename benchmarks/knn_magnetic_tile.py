"""The memory-bank scorer against the Gaussian, on magnetic-tile and a 50-image subset.

    python -m benchmarks.knn_magnetic_tile [--data ../shared/data/magnetic-tile] [--sets full subset50]
        [--rows padim patchcore full-gaussian full-knn] [--epochs 1] [--latency]

Rows (EfficientNet-Lite0, 224 px, same backbone everywhere):
  padim          no training, projection head (d = 100, stride 4), per-position Gaussian
  patchcore      no training, pooled head (stride-8/16 taps, 3x3 pool), memory bank (knn)
  full-gaussian  ICA + FCA + non-contrastive training (small step budget), Gaussian
  full-knn       the full-gaussian row's trained weights, pooled head, memory bank
Each (set, row) runs in its own process and is saved as it finishes in
<work>/rows/<set>-<row>.json, so a run can be split and resumed; the tables
in benchmarks/results/knn-magnetic-tile.{md,json} are rebuilt from all saved
rows. `--latency` exports each bundle (ONNX, bank in the graph for knn) and
adds p50 latency at batch 1 of the torch and onnxruntime backends.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import shutil
import time
from pathlib import Path

import numpy as np

from benchmarks.common import machine

RESULTS = Path(__file__).resolve().parent / "results"
ROWS = {
    "padim": "PaDiM (no training, Gaussian)",
    "patchcore": "PatchCore (no training, memory bank)",
    "full-gaussian": "full method, Gaussian",
    "full-knn": "full method's features, memory bank",
}


def make_subset(data: Path, dest: Path, n: int, seed: int = 0) -> Path:
    """train/good reduced to n images (seeded), test/ and ground_truth/ linked unchanged."""
    if (dest / "train" / "good").is_dir():
        return dest
    from cfnc_edge.images import list_images

    good = list_images(data / "train" / "good")
    pick = sorted(np.random.default_rng(seed).choice(len(good), n, replace=False))
    (dest / "train" / "good").mkdir(parents=True)
    for i in pick:
        (dest / "train" / "good" / good[i].name).symlink_to(good[i].resolve())
    for d in ("test", "ground_truth"):
        (dest / d).symlink_to((data / d).resolve())
    return dest


def run_row(args) -> dict:
    set_name, row, data, work, epochs = args
    from cfnc_edge.api import refit, train
    from cfnc_edge.bundle import Bundle
    from cfnc_edge.model.coarse_to_fine import ModelConfig
    from cfnc_edge.model.train import TrainConfig
    from cfnc_edge.report.evaluate import evaluate
    from cfnc_edge.runtime.inspector import Inspector

    out = Path(work) / set_name / row
    t0 = time.perf_counter()
    if row in ("padim", "patchcore"):
        scorer = "knn" if row == "patchcore" else "gaussian"
        head = "pooled" if scorer == "knn" else "projection"
        bundle = train(data, out, ModelConfig(ica=False, fca=False, head=head),
                       TrainConfig(epochs=0, noncontrastive=False), scorer=scorer, progress=False)
    elif row == "full-gaussian":
        bundle = train(data, out, ModelConfig(), TrainConfig(epochs=epochs), progress=False)
    else:
        src = Path(work) / set_name / "full-gaussian"
        if not (src / "manifest.json").is_file():
            raise SystemExit(f"{row} needs the full-gaussian row of {set_name} first")
        shutil.rmtree(out, ignore_errors=True)
        shutil.copytree(src, out, ignore=shutil.ignore_patterns("checkpoint"))
        bundle = refit(out, data, scorer="knn", progress=False)
    fit_wall = time.perf_counter() - t0
    bundle = Bundle.open(out)
    t1 = time.perf_counter()
    r = evaluate(Inspector(bundle, "torch"), data, progress=False)
    eval_s = time.perf_counter() - t1
    scorer = bundle.manifest.get("scorer", {})
    train_s = bundle.manifest.get("timing", {}).get("train_seconds", 0.0) if row != "full-knn" else 0.0
    return {"set": set_name, "row": row, "config": ROWS[row], "bundle": str(out),
            "image_auroc": r.metrics["image_auroc"], "pixel_auroc": r.metrics["pixel_auroc"], "pro": r.metrics["pro"],
            "good_flagged": r.threshold.get("false_positive_rate"),
            "defects_flagged": r.threshold.get("true_positive_rate"),
            "threshold": bundle.manifest["threshold"],
            "bank_size": scorer.get("bank_size"), "patches": scorer.get("patches"),
            "train_s": train_s, "fit_s": round(fit_wall - train_s, 1), "eval_s": round(eval_s, 1),
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            "train_steps": (bundle.manifest.get("train", {}).get("epochs", 0) *
                            ((bundle.manifest["data"]["fit_images"]) // 32)) if row == "full-gaussian" else 0,
            "per_defect": r.per_defect}


def add_latency(row: dict, repeats: int) -> dict:
    from cfnc_edge.api import bench, export

    export(row["bundle"], log=lambda m: None)
    lat = {}
    for r in bench(row["bundle"], batch_sizes=(1,), warmup=3, repeats=repeats):
        if r["precision"] in ("fp32", "fp16"):
            lat[f"{r['backend']}-{r['precision']}"] = {"p50_ms": round(r["p50_ms"], 1),
                                                       "distance_ms": round(r["distance_ms"], 1),
                                                       "features_ms": round(r["features_ms"], 1)}
    row["latency"] = lat
    return row


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="../shared/data/magnetic-tile")
    ap.add_argument("--work", default="/tmp/cfnc-knn")
    ap.add_argument("--sets", nargs="*", default=["subset50", "full"])
    ap.add_argument("--rows", nargs="*", default=list(ROWS))
    ap.add_argument("--epochs", type=int, default=1, help="training epochs of the full-method rows")
    ap.add_argument("--latency", action="store_true", help="export and time the saved rows instead of fitting")
    ap.add_argument("--repeats", type=int, default=20)
    a = ap.parse_args()
    data, work = Path(a.data), Path(a.work)
    saved = work / "rows"
    saved.mkdir(parents=True, exist_ok=True)
    sets = {"full": data, "subset50": make_subset(data, work / "magnetic-tile-50", 50)}
    ctx = mp.get_context("spawn")
    for s in a.sets:
        for row in a.rows:
            path = saved / f"{s}-{row}.json"
            if a.latency:
                if not path.is_file():
                    continue
                res = add_latency(json.loads(path.read_text()), a.repeats)  # bench spawns its own processes
            else:
                epochs = a.epochs if s == "full" else a.epochs * 8  # 50 images: ~3 steps an epoch
                with ctx.Pool(1) as pool:
                    res = pool.map(run_row, [(s, row, sets[s], str(work), epochs)])[0]
            path.write_text(json.dumps(res, indent=2))
            print(f"{s} {row}: image {res['image_auroc']:.4f} pixel {res['pixel_auroc']:.4f} pro {res['pro']:.4f} "
                  f"good flagged {res['good_flagged']} bank {res['bank_size']} fit {res['fit_s']}s "
                  f"{res.get('latency', '')}", flush=True)
    write(sorted((json.loads(p.read_text()) for p in saved.glob("*.json")),
                 key=lambda r: (r["set"] != "full", list(ROWS).index(r["row"]))), a)


def _pct(v) -> str:
    return "n/a" if v is None or v != v else f"{100 * v:.1f}"


def write(rows: list[dict], a) -> None:
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "knn-magnetic-tile.json").write_text(json.dumps(rows, indent=2))
    backends = sorted({k for r in rows for k in r.get("latency", {})})
    lines = ["# Memory bank vs Gaussian on magnetic-tile", "",
             f"Machine: {machine()}. **Shared**: six other jobs ran on the same two cores, so times are "
             "upper bounds and only comparable within a column.",
             f"Data: `{a.data}` (full: 762 train/good; subset50: 50 train/good chosen with seed 0; both with the "
             "full test set, 190 good + 392 defective). EfficientNet-Lite0, 224 px. Command: "
             "`python -m benchmarks.knn_magnetic_tile` (then `--latency`).", "",
             "| set | configuration | image AUROC | pixel AUROC | PRO | good flagged % | defective flagged % "
             "| bank rows | train s | fit s | " + " | ".join(f"{b} p50 ms" for b in backends) + " |",
             "|---|---|---|---|---|---|---|---|---|---|" + "---|" * len(backends)]
    for r in rows:
        lat = [str(r.get("latency", {}).get(b, {}).get("p50_ms", "n/a")) for b in backends]
        lines.append(f"| {r['set']} | {r['config']} | {_pct(r['image_auroc'])} | {_pct(r['pixel_auroc'])} | "
                     f"{_pct(r['pro'])} | {_pct(r['good_flagged'])} | {_pct(r['defects_flagged'])} | "
                     f"{r['bank_size'] or '-'} | {r['train_s']} | {r['fit_s']} | " + " | ".join(lat) + " |")
    defects = list(rows[0]["per_defect"]) if rows else []
    lines += ["", "Per defect type (image AUROC / pixel AUROC / PRO):", "",
              "| set | configuration | " + " | ".join(defects) + " |", "|---|---|" + "---|" * len(defects)]
    for r in rows:
        cells = [f"{_pct(v['image_auroc'])} / {_pct(v['pixel_auroc'])} / {_pct(v['pro'])}"
                 for v in r["per_defect"].values()]
        lines.append(f"| {r['set']} | {r['config']} | " + " | ".join(cells) + " |")
    md = RESULTS / "knn-magnetic-tile.md"
    reading = md.read_text().partition("\n## Reading")[2] if md.is_file() else ""
    md.write_text("\n".join(lines) + "\n" + ("\n## Reading" + reading if reading else ""))


if __name__ == "__main__":
    main()
