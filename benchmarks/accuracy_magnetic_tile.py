"""Accuracy on real data: the PaDiM baseline, the full method and its ablations.

    python -m benchmarks.accuracy_magnetic_tile [--data ../shared/data/magnetic-tile] [--epochs 5]

Each configuration runs in its own process (so peak memory is its own),
trains on train/good, evaluates on test/ and writes one row to
benchmarks/results/accuracy-magnetic-tile.{md,csv,json}. `--only` re-runs
some configurations and keeps the other rows; a hand-written "## Reading"
section at the end of the Markdown is kept.
"""

from __future__ import annotations

import argparse
import csv
import json
import multiprocessing as mp
import resource
import time
from pathlib import Path

from benchmarks.common import machine

CONFIGS = {
    # name: (ica, fca, noncontrastive)
    "PaDiM baseline (no training)": (False, False, False),
    "full method (ICA + FCA + non-contrastive)": (True, True, True),
    "without ICA": (False, True, True),
    "without FCA": (True, False, True),
    "without non-contrastive stage (ICA only)": (True, True, False),
}


def run_one(args) -> dict:
    name, (ica, fca, nc), data, work, epochs = args
    from cfnc_edge.api import train
    from cfnc_edge.model.coarse_to_fine import ModelConfig
    from cfnc_edge.model.train import TrainConfig
    from cfnc_edge.report.evaluate import evaluate
    from cfnc_edge.runtime.inspector import Inspector

    out = Path(work) / name.split(" ")[0].replace("(", "")
    t0 = time.perf_counter()
    bundle = train(data, out / f"bundle-{int(ica)}{int(fca)}{int(nc)}", ModelConfig(ica=ica, fca=fca),
                   TrainConfig(epochs=epochs if (ica or nc) else 0, noncontrastive=nc), progress=False)
    t_total = time.perf_counter() - t0
    report = out / f"report-{int(ica)}{int(fca)}{int(nc)}"
    r = evaluate(Inspector(bundle, "torch"), data, report, progress=False)
    return {"config": name, "image_auroc": r.metrics["image_auroc"], "pixel_auroc": r.metrics["pixel_auroc"],
            "pro": r.metrics["pro"], "train_s": bundle.manifest["timing"]["train_seconds"],
            "train_fit_s": round(t_total, 1),
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            "per_defect": r.per_defect}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="../shared/data/magnetic-tile")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--work", default="/tmp/cfnc-accuracy")
    ap.add_argument("--only", nargs="*", help="run only configs whose name starts with these words")
    a = ap.parse_args()
    configs = [(n, c) for n, c in CONFIGS.items() if not a.only or any(n.startswith(o) for o in a.only)]
    rows = []
    ctx = mp.get_context("spawn")
    for name, cfg in configs:
        with ctx.Pool(1) as pool:
            row = pool.map(run_one, [(name, cfg, a.data, a.work, a.epochs)])[0]
        print(f"{name}: image {row['image_auroc']:.4f} pixel {row['pixel_auroc']:.4f} pro {row['pro']:.4f} "
              f"train {row['train_s']}s peak {row['peak_rss_mib']} MiB", flush=True)
        rows.append(row)
    if a.only:  # keep the rows of configurations not re-run, from the last full run
        previous = json.loads((RESULTS / "accuracy-magnetic-tile.json").read_text())
        fresh = {r["config"]: r for r in rows}
        rows = [fresh.get(r["config"], r) for r in previous]
    write(rows, a)


RESULTS = Path(__file__).resolve().parent / "results"


def write(rows: list[dict], a) -> None:
    res = RESULTS
    res.mkdir(exist_ok=True)
    (res / "accuracy-magnetic-tile.json").write_text(json.dumps(rows, indent=2))
    keys = ["config", "image_auroc", "pixel_auroc", "pro", "train_s", "train_fit_s", "peak_rss_mib"]
    with open(res / "accuracy-magnetic-tile.csv", "w", newline="") as f:
        w = csv.DictWriter(f, keys, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    lines = [
        "# Accuracy on magnetic-tile", "",
        f"Machine: {machine()}.",
        f"Data: `{a.data}` (762 train/good, 190 test/good, 392 defective). EfficientNet-Lite0, 224 px, "
        f"d = 100, {a.epochs} epochs, batch 32, the paper's optimiser settings; 10% of train/good held out "
        "for the threshold. Command: `python -m benchmarks.accuracy_magnetic_tile"
        f" --epochs {a.epochs}`.", "",
        "| configuration | image AUROC | pixel AUROC | PRO | train s | train+fit s | peak RSS MiB |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['config']} | {100 * r['image_auroc']:.1f} | {100 * r['pixel_auroc']:.1f} | "
                     f"{100 * r['pro']:.1f} | {r['train_s']} | {r['train_fit_s'] or 'n/a'} | {r['peak_rss_mib']} |")
    lines += ["", "Per defect type (image AUROC / pixel AUROC / PRO):", "",
              "| configuration | " + " | ".join(rows[0]["per_defect"]) + " |",
              "|---|" + "---|" * len(rows[0]["per_defect"])]
    for r in rows:
        cells = [f"{100 * v['image_auroc']:.1f} / {100 * v['pixel_auroc']:.1f} / {100 * v['pro']:.1f}"
                 for v in r["per_defect"].values()]
        lines.append(f"| {r['config']} | " + " | ".join(cells) + " |")
    md = res / "accuracy-magnetic-tile.md"
    reading = md.read_text().partition("\n## Reading")[2] if md.is_file() else ""
    md.write_text("\n".join(lines) + "\n" + ("\n## Reading" + reading if reading else ""))


if __name__ == "__main__":
    main()
