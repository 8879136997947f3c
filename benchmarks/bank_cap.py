"""Accuracy and CPU latency of the combined scorer against the memory-bank cap (--max-bank).

    nice -n 5 timeout 6000 python -m benchmarks.bank_cap [--caps 16384 8192 4096 2048] [--work /tmp/bank-cap]

Why: on a 2-core CPU the exact nearest-neighbour search over the bank is most
of the default recipe's frame time (issue 20), and it grows with the bank's
rows; the full magnetic-tile training set (762 images) fills the 16384-row
cap. This measures what a smaller cap costs in accuracy, through the commands
a user runs, for each cap S (largest first):

    cfnc-edge train DATA -o WORK/cap-S --recipe pretrained --scorer combined --head combined
        --no-ica --no-fca --no-noncontrastive --max-bank S
    cfnc-edge eval DATA --bundle WORK/cap-S --out WORK/eval-S      (the whole test set)

Each cap's figures are saved as it finishes (WORK/rows/S.json) and a rerun
skips the caps already there. Then every bundle is exported once
(`cfnc-edge export`) and timed with Inspector(bundle, "openvino") on one real
test frame at batch 1: rounds interleaved across the bundles so all see the
same load, warm-up calls first, frame-to-verdict time and the `distance`
stage of Inspector.timings. Results: results/bank-cap.md and .json.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from benchmarks.common import machine, write_keeping_reading
from cfnc_edge.scoring.memory_bank import MAX_BANK

RESULTS = Path(__file__).resolve().parent / "results"
NAME = "bank-cap"
CAPS = (MAX_BANK, MAX_BANK // 2, MAX_BANK // 4, MAX_BANK // 8)  # the default, then halvings


def run(cmd: list[str], timeout: float) -> float:
    """Run a CLI command (its output to our stderr/stdout) -> wall seconds; raise on failure."""
    print("$ " + shlex.join(cmd), flush=True)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, timeout=timeout, stdout=subprocess.DEVNULL)  # eval's JSON is in metrics.json
    return time.perf_counter() - t0


def commands(cli: str, data: Path, work: Path, cap: int) -> dict[str, list[str]]:
    bundle = str(work / f"cap-{cap}")
    return {"train": [cli, "train", str(data), "-o", bundle, "--recipe", "pretrained", "--scorer", "combined",
                      "--head", "combined", "--no-ica", "--no-fca", "--no-noncontrastive", "--max-bank", str(cap)],
            "eval": [cli, "eval", str(data), "--bundle", bundle, "--out", str(work / f"eval-{cap}")],
            "export": [cli, "export", "--bundle", bundle]}


def accuracy_row(cli: str, data: Path, work: Path, cap: int, timeout: float) -> dict:
    """Train and evaluate one cap -> its row (metrics as fractions)."""
    cmds = commands(cli, data, work, cap)
    bundle = work / f"cap-{cap}"
    if bundle.exists():  # a run killed mid-training: start that cap afresh
        shutil.rmtree(bundle)
    t_train = run(cmds["train"], timeout)
    t_eval = run(cmds["eval"], timeout)
    ev = json.loads((work / f"eval-{cap}" / "metrics.json").read_text())
    manifest = json.loads((bundle / "manifest.json").read_text())
    op, thr = ev["operating_point"], ev["threshold"]
    return {"cap": cap, "bank_rows": manifest["scorer"]["bank"]["bank_size"],
            "patches": manifest["scorer"]["bank"]["patches"], "train_images": manifest["data"]["fit_images"],
            **ev["metrics"],
            "good_flagged": op["good_flagged"], "defects_caught": op["defects_caught"],
            "threshold": thr["value"], "test_images": len(ev["images"]), "skipped": len(ev["skipped"]),
            "train_s": round(t_train, 1), "eval_s": round(t_eval, 1),
            "commands": {k: shlex.join(v) for k, v in cmds.items()}}


def test_frame(data: Path) -> Path:
    """One real test frame, the same every run: the first good one by name."""
    return sorted((data / "test" / "good").glob("*.*"))[0]


def latency(rows: list[dict], work: Path, frame_path: Path, rounds: int, warmup: int, calls: int,
            cli: str, timeout: float) -> dict:
    """p50 frame-to-verdict and distance-stage ms per bundle, rounds interleaved across bundles."""
    from cfnc_edge.runtime.inspector import Inspector

    for r in rows:
        run(commands(cli, Path(), work, r["cap"])["export"], timeout)
    frame = cv2.imread(str(frame_path))  # BGR, as a camera loop would hand it
    insps = {r["cap"]: Inspector(work / f"cap-{r['cap']}", "openvino") for r in rows}
    total: dict[int, list[float]] = {c: [] for c in insps}
    dist: dict[int, list[float]] = {c: [] for c in insps}
    load_before = os.getloadavg()
    for _ in range(rounds):
        for cap, insp in insps.items():
            for _ in range(warmup):
                insp([frame])[0].anomalous
            insp.reset_timings()
            for _ in range(calls):
                t0 = time.perf_counter()
                insp([frame])[0].anomalous
                total[cap].append(1000 * (time.perf_counter() - t0))
            dist[cap] += [1000 * s for s in insp.timings["distance"]]
    load_after = os.getloadavg()
    return {"frame": str(frame_path), "frame_hw": list(frame.shape[:2]), "rounds": rounds, "warmup": warmup,
            "calls": calls, "load_before": [round(x, 2) for x in load_before],
            "load_after": [round(x, 2) for x in load_after],
            "p50_ms": {c: float(np.median(v)) for c, v in total.items()},
            "distance_p50_ms": {c: float(np.median(v)) for c, v in dist.items()}}


def _pt(v) -> str:
    return "n/a" if v is None else f"{100 * v:.2f}"


def _delta(v, ref) -> str:
    return "n/a" if v is None or ref is None else f"{100 * (v - ref):+.2f}"


def write(rows: list[dict], lat: dict | None, a, missing: list[int], out: Path) -> None:
    ref = next((r for r in rows if r["cap"] == MAX_BANK), None)  # the default cap
    mach = machine()
    (out / f"{NAME}.json").write_text(json.dumps({"machine": mach, "rows": rows, "latency": lat,
                                                  "missing_caps": missing}, indent=1))
    lines = ["# Combined scorer: accuracy and CPU latency against the bank cap (--max-bank)", "",
             f"Machine: {mach}; shared with other sessions' jobs (run under `nice -n 5`).",
             f"Data: `{a.data}` (train/good {rows[0]['train_images'] if rows else '?'} images; "
             f"test {rows[0]['test_images'] if rows else '?'} images, all of them).",
             f"Command: `python -m benchmarks.bank_cap {shlex.join(sys.argv[1:])}` (under `nice -n 5` and "
             "`timeout`), which runs per cap S:", ""]
    if rows:
        c = rows[0]["commands"]
        lines += ["    " + c["train"].replace(str(rows[0]["cap"]), "S"),
                  "    " + c["eval"].replace(str(rows[0]["cap"]), "S"),
                  "    " + c["export"].replace(str(rows[0]["cap"]), "S"), ""]
    lines += [f"Metrics in points (AUROC x 100); change = this cap minus the {MAX_BANK} row. Good flagged / defects "
              "caught: at the bundle's own threshold (cross-fitted on the training set for 1% false alarms). "
              "`eval` runs before `export`, so on the PyTorch backend (the CLI says so); the latency columns are "
              "OpenVINO. One training per cap (seed 0). Train / eval seconds ran under whatever load the machine "
              "had at the time, so they compare across caps only roughly.", "",
              "| cap | bank rows | image AUROC | pixel AUROC | PRO | change image / pixel / PRO | good flagged % "
              "| defects caught % | threshold | p50 ms | distance ms | train s | eval s |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        p50 = lat["p50_ms"].get(r["cap"]) if lat else None
        dms = lat["distance_p50_ms"].get(r["cap"]) if lat else None
        ch = " / ".join(_delta(r[k], ref and ref[k]) for k in ("image_auroc", "pixel_auroc", "pro"))
        lines.append(f"| {r['cap']} | {r['bank_rows']} | {_pt(r['image_auroc'])} | {_pt(r['pixel_auroc'])} | "
                     f"{_pt(r['pro'])} | {ch} | {_pt(r['good_flagged'])} | {_pt(r['defects_caught'])} | "
                     f"{r['threshold']:.4f} | {'n/a' if p50 is None else f'{p50:.1f}'} | "
                     f"{'n/a' if dms is None else f'{dms:.1f}'} | {r['train_s']:.0f} | {r['eval_s']:.0f} |")
    lines.append("")
    if missing:
        lines += [f"**Missing caps** (not finished in the time given): {', '.join(map(str, missing))}.", ""]
    if lat:
        lines += [f"Latency: `Inspector(bundle, \"openvino\")` on one test frame (`{lat['frame']}`, "
                  f"{lat['frame_hw'][1]}x{lat['frame_hw'][0]} px, BGR from cv2.imread) at batch 1; "
                  f"{lat['rounds']} rounds interleaved across the bundles, each {lat['warmup']} warm-up + "
                  f"{lat['calls']} timed calls per bundle; p50 of the {lat['rounds'] * lat['calls']} timed calls. "
                  "p50 ms = frame to verdict (preprocess, features, distance, maps); distance ms = the `distance` "
                  "stage of `Inspector.timings`. Load average (1, 5, 15 min) before the latency part "
                  f"{', '.join(map(str, lat['load_before']))}, after {', '.join(map(str, lat['load_after']))}.", ""]
    write_keeping_reading(out / f"{NAME}.md", "\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="/work/shared/data/magnetic-tile")
    ap.add_argument("--work", default="/tmp/bank-cap", help="bundles, eval reports and saved rows")
    ap.add_argument("--caps", nargs="+", type=int, default=list(CAPS))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--calls", type=int, default=15)
    ap.add_argument("--timeout", type=float, default=3600, help="seconds per CLI command")
    ap.add_argument("--results", default=str(RESULTS), help="folder for bank-cap.md/.json")
    ap.add_argument("--skip-latency", action="store_true")
    a = ap.parse_args()
    a.caps = sorted(set(a.caps), reverse=True)
    data, work, out = Path(a.data), Path(a.work), Path(a.results)
    cli = shutil.which("cfnc-edge") or "cfnc-edge"
    (work / "rows").mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for cap in a.caps:
        f = work / "rows" / f"{cap}.json"
        if not f.is_file():
            f.write_text(json.dumps(accuracy_row(cli, data, work, cap, a.timeout), indent=1))
        rows.append(json.loads(f.read_text()))
        print(f"cap {cap}: " + ", ".join(f"{k} {rows[-1][k]}" for k in
                                         ("bank_rows", "image_auroc", "pixel_auroc", "pro", "train_s", "eval_s")),
              flush=True)
        write(rows, None, a, [c for c in a.caps if c < cap], out)
    lat = None if a.skip_latency else latency(rows, work, test_frame(data), a.rounds, a.warmup, a.calls, cli,
                                              a.timeout)
    if lat:
        print(json.dumps(lat, indent=1))
    write(rows, lat, a, [], out)


if __name__ == "__main__":
    main()
