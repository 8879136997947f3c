"""The memory-bank scorer against the Gaussian, on magnetic-tile and a 50-image subset.

    python -m benchmarks.knn_magnetic_tile [--data ../shared/data/magnetic-tile] [--sets full subset50 disturbed50]
        [--rows padim patchcore full-gaussian full-knn] [--steps 300] [--jobs 1] [--name knn-magnetic-tile]
        [--latency]

Rows (EfficientNet-Lite0, 224 px, same backbone everywhere):
  padim          no training, projection head (d = 100, stride 4), per-position Gaussian
  patchcore      no training, pooled head (stride-8/16 taps, 3x3 pool), memory bank (knn)
  full-gaussian  ICA + FCA + non-contrastive training (--steps at batch 32, on a GPU when there is one), Gaussian
  full-knn       the full-gaussian row's trained weights, pooled head, memory bank
  default        `train` as a user runs it without naming a method (the combined scorer, no training)
Sets: `full` (762 good images), `subset50` (50 of them, seeded) and
`disturbed50` (the subset and the test set under the paper's Table 3
spatial protocol, written as an MVTec folder once). Each (set, row) runs in its own process and is saved as it finishes in
<work>/rows/<set>-<row>.json, so a run can be split and resumed; the tables
in benchmarks/results/knn-magnetic-tile.{md,json} are rebuilt from all saved
rows. `--latency` exports each bundle (ONNX, bank in the graph for knn) and
adds p50 latency at batch 1 of the torch and onnxruntime backends.
"""

from __future__ import annotations

import argparse
import json
import os
import multiprocessing as mp
import resource
import shutil
import time
from pathlib import Path

import numpy as np

from benchmarks.common import machine, write_keeping_reading

RESULTS = Path(__file__).resolve().parent / "results"
ROWS = {
    "padim": "PaDiM (no training, Gaussian)",
    "patchcore": "PatchCore (no training, memory bank)",
    "full-gaussian": "full method, Gaussian",
    "full-knn": "full method's features, memory bank",
    "default": "the default (`train` with no method named: combined, no training)",
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


def make_disturbed(data: Path, dest: Path, seed: int = 1) -> Path:
    """Every train and test image (and mask alike) of `data` under Table 3's zoom, rotation and flips."""
    if (dest / "train" / "good").is_dir():
        return dest
    import cv2

    from benchmarks.accuracy_magnetic_tile import disturb
    from cfnc_edge.data.mvtec import MVTecDataset
    from cfnc_edge.images import read_image

    rng = np.random.default_rng(seed)
    ds = MVTecDataset(data)
    tmp = dest.with_name(dest.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    for i, p in enumerate(ds.train_images()):
        frame = read_image(p)
        frame, _ = disturb(frame, np.zeros(frame.shape[:2], bool), rng)
        (tmp / "train" / "good").mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(tmp / "train" / "good" / f"{i:04d}.png"), frame)
    for i, smp in enumerate(ds.test_samples()):
        frame, mask = smp.load()
        frame, mask = disturb(frame, mask, rng)
        (tmp / "test" / smp.defect).mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(tmp / "test" / smp.defect / f"{i:04d}.png"), frame)
        if smp.is_anomalous:
            (tmp / "ground_truth" / smp.defect).mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(tmp / "ground_truth" / smp.defect / f"{i:04d}_mask.png"), mask.astype(np.uint8) * 255)
    tmp.rename(dest)
    return dest


def run_row(args) -> dict:
    set_name, row, data, work, steps, eval_backend = args
    from cfnc_edge.api import refit, train
    from cfnc_edge.bundle import Bundle
    from cfnc_edge.model.coarse_to_fine import ModelConfig
    from cfnc_edge.model.train import TrainConfig
    from cfnc_edge.report.evaluate import evaluate
    from cfnc_edge.runtime.inspector import Inspector

    out = Path(work) / set_name / row
    t0 = time.perf_counter()
    if row == "default":
        bundle = train(data, out, progress=False)
    elif row in ("padim", "patchcore"):
        scorer = "knn" if row == "patchcore" else "gaussian"
        head = "pooled" if scorer == "knn" else "projection"
        bundle = train(data, out, ModelConfig(ica=False, fca=False, head=head),
                       TrainConfig(epochs=0, noncontrastive=False), scorer=scorer, progress=False)
    elif row == "full-gaussian":
        bundle = train(data, out, ModelConfig(), TrainConfig(steps=steps), progress=False)
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
    r = evaluate(Inspector(bundle, eval_backend), data, progress=False)
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
            "train_steps": (bundle.manifest["history"][-1]["step"] if bundle.manifest.get("history") else 0)
            if row == "full-gaussian" else 0,
            "fine_loss": [round(h["fine"], 4) for h in bundle.manifest.get("history", []) if "fine" in h],
            "train_device": bundle.manifest.get("timing", {}).get("device"), "eval_backend": eval_backend,
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
    ap.add_argument("--sets", nargs="*", default=["subset50", "full"], choices=["full", "subset50", "disturbed50"])
    ap.add_argument("--rows", nargs="*", default=list(ROWS))
    ap.add_argument("--steps", type=int, default=300, help="training steps (batch 32) of the full-method rows")
    ap.add_argument("--jobs", type=int, default=1, help="rows run at the same time")
    ap.add_argument("--name", default="knn-magnetic-tile", help="results file name in benchmarks/results/")
    ap.add_argument("--eval-backend", default="torch", help="backend of the evaluation (torch-cuda on a GPU)")
    ap.add_argument("--latency", action="store_true", help="export and time the saved rows instead of fitting")
    ap.add_argument("--repeats", type=int, default=20)
    a = ap.parse_args()
    data, work = Path(a.data), Path(a.work)
    saved = work / "rows"
    saved.mkdir(parents=True, exist_ok=True)
    a.load_at_start = os.getloadavg()[0]
    sets = {"full": data}
    if {"subset50", "disturbed50"} & set(a.sets):
        sets["subset50"] = make_subset(data, work / "magnetic-tile-50", 50)
    if "disturbed50" in a.sets:
        sets["disturbed50"] = make_disturbed(sets["subset50"], work / "magnetic-tile-50-disturbed")

    def report(path: Path, res: dict) -> None:
        path.write_text(json.dumps(res, indent=2))
        print(f"{res['set']} {res['row']}: image {res['image_auroc']:.4f} pixel {res['pixel_auroc']:.4f} "
              f"pro {res['pro']:.4f} good flagged {res['good_flagged']} bank {res['bank_size']} "
              f"train {res['train_s']}s fit {res['fit_s']}s {res.get('latency', '')}", flush=True)

    todo = [(s, row) for s in a.sets for row in a.rows]
    if a.latency:
        for s, row in todo:
            path = saved / f"{s}-{row}.json"
            if path.is_file():
                report(path, add_latency(json.loads(path.read_text()), a.repeats))  # bench spawns its own processes
    else:
        # full-knn reuses full-gaussian's weights, so it waits for the first round
        for round_ in ([t for t in todo if t[1] != "full-knn"], [t for t in todo if t[1] == "full-knn"]):
            with mp.get_context("spawn").Pool(max(1, min(a.jobs, len(round_) or 1))) as pool:
                args = [(s, row, sets[s], str(work), a.steps, a.eval_backend) for s, row in round_]
                for res in pool.imap_unordered(run_row, args):
                    report(saved / f"{res['set']}-{res['row']}.json", res)
    write(sorted((json.loads(p.read_text()) for p in saved.glob("*.json")),
                 key=lambda r: (list(sets).index(r["set"]) if r["set"] in sets else 9, list(ROWS).index(r["row"]))), a)


def _pct(v) -> str:
    return "n/a" if v is None or v != v else f"{100 * v:.1f}"


def write(rows: list[dict], a) -> None:
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{a.name}.json").write_text(json.dumps(rows, indent=2))
    backends = sorted({k for r in rows for k in r.get("latency", {})})
    lines = ["# Memory bank vs Gaussian on magnetic-tile", "",
             f"Machine: {machine()}; load average {a.load_at_start:.1f} at the start, {a.jobs} row(s) at a time "
             "(times are only comparable within a column).",
             f"Data: `{a.data}` (full: 762 train/good; subset50: 50 train/good chosen with seed 0; disturbed50: "
             "subset50 and the test set under Table 3's zoom/rotation/flips; all with the full test set, 190 good "
             f"+ 392 defective). EfficientNet-Lite0, 224 px; trained rows: {a.steps} steps at batch 32. Command: "
             f"`python -m benchmarks.knn_magnetic_tile --sets {' '.join(a.sets)} --steps {a.steps} --name {a.name}` "
             "(then `--latency`).", "",
             "| set | configuration | image AUROC | pixel AUROC | PRO | good flagged % | defective flagged % "
             "| bank rows | train s | fit s |" + "".join(f" {b} p50 ms |" for b in backends),
             "|---|---|---|---|---|---|---|---|---|---|" + "---|" * len(backends)]
    for r in rows:
        lat = [str(r.get("latency", {}).get(b, {}).get("p50_ms", "n/a")) for b in backends]
        lines.append(f"| {r['set']} | {r['config']} | {_pct(r['image_auroc'])} | {_pct(r['pixel_auroc'])} | "
                     f"{_pct(r['pro'])} | {_pct(r['good_flagged'])} | {_pct(r['defects_flagged'])} | "
                     f"{r['bank_size'] or '-'} | {r['train_s']} | {r['fit_s']} |" + "".join(f" {v} |" for v in lat))
    defects = list(rows[0]["per_defect"]) if rows else []
    lines += ["", "Per defect type (image AUROC / pixel AUROC / PRO):", "",
              "| set | configuration | " + " | ".join(defects) + " |", "|---|---|" + "---|" * len(defects)]
    for r in rows:
        cells = [f"{_pct(v['image_auroc'])} / {_pct(v['pixel_auroc'])} / {_pct(v['pro'])}"
                 for v in r["per_defect"].values()]
        lines.append(f"| {r['set']} | {r['config']} | " + " | ".join(cells) + " |")
    write_keeping_reading(RESULTS / f"{a.name}.md", "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
