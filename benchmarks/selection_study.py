"""Study: `--recipe auto` (label-free selection) against each fixed scorer, on unseen-style sets.

    python -m benchmarks.selection_study [--sets mt50 screw mt762] [--configs auto pretrained gaussian knn]

Each row is what a user gets from `cfnc-edge train DATA --out B [flags]` then
`cfnc-edge eval DATA --bundle B`, run as those commands (subprocesses, timed
as wholes): image AUROC, pixel AUROC, PRO, and at the bundle's threshold the
share of good test images flagged, of defective ones caught, and the oracle
(the best catch rate at the same false-alarm level: report/operating point).
Configurations: `auto` (the default now), `pretrained` (the previous default:
Lite0 at 224 px, combined scorer), each scorer alone at Lite0/224
(`--recipe pretrained --scorer gaussian|knn`), and the two with ICA's
template search and no training (`--ica --steps 0`: the paper's Table 5
direction, with and without image alignment). Every threshold uses the same
cross-fit (the bank less the image's own rows, 10 Gaussian folds).
Also per row: the cross-fitted good scores of training against the scores of
test/good under the same bundle (two-sample Kolmogorov-Smirnov and
Mann-Whitney p-values): whether the threshold's evidence is distributed as new
good parts are.

Sets (MVTec layout, built as symlinks under --work): `mt50` = 50 seeded
train/good images of magnetic-tile; `mt762` = all 762; both tested on a seeded
subset of its test set (100 good, 150 defective: eval on the CPU is the
study's cost); `screw` = mvtec-screw (320 training images, its full test set).
Rows are appended to benchmarks/results/selection-study.json as they finish;
the Markdown table is rebuilt from it, keeping a hand-written "## Reading" section at its end.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from scipy import stats

from benchmarks.common import machine

RESULTS = Path(__file__).resolve().parent / "results"
NAME = "selection-study"
SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
CONFIGS = {"auto": [], "pretrained": ["--recipe", "pretrained"],
           "gaussian": ["--recipe", "pretrained", "--scorer", "gaussian"],
           "knn": ["--recipe", "pretrained", "--scorer", "knn"],
           # Table 5's direction without training: the same scorers after ICA's template search
           "gaussian+ica": ["--recipe", "pretrained", "--scorer", "gaussian", "--ica", "--steps", "0"],
           "knn+ica": ["--recipe", "pretrained", "--scorer", "knn", "--ica", "--steps", "0"]}
TEST_SUBSET = (100, 150)


def _link_test(src: Path, dst: Path, subset) -> None:
    from cfnc_edge.data.mvtec import MVTecDataset

    samples = MVTecDataset(src).test_samples()
    if subset:
        rng = np.random.default_rng(2)
        good = [s for s in samples if not s.is_anomalous]
        bad = [s for s in samples if s.is_anomalous]
        samples = [good[i] for i in sorted(rng.choice(len(good), min(subset[0], len(good)), replace=False))] + \
                  [bad[i] for i in sorted(rng.choice(len(bad), min(subset[1], len(bad)), replace=False))]
    for s in samples:
        t = dst / "test" / s.defect / s.path.name
        t.parent.mkdir(parents=True, exist_ok=True)
        t.symlink_to(s.path.resolve())
    (dst / "ground_truth").symlink_to((src / "ground_truth").resolve())


def build_set(name: str, work: Path) -> Path:
    from cfnc_edge.data.mvtec import MVTecDataset

    dst = work / name
    if dst.is_dir():
        return dst
    src = SHARED / ("mvtec-screw" if name == "screw" else "magnetic-tile")
    paths = MVTecDataset(src).train_images()
    if name == "mt50":
        paths = [paths[i] for i in sorted(np.random.default_rng(0).choice(len(paths), 50, replace=False))]
    (dst / "train" / "good").mkdir(parents=True)
    for p in paths:
        (dst / "train" / "good" / p.name).symlink_to(p.resolve())
    _link_test(src, dst, None if name == "screw" else TEST_SUBSET)
    return dst


def _cli(*args: str) -> float:
    t0 = time.perf_counter()
    quiet = subprocess.DEVNULL if os.environ.get("QUIET") else None
    subprocess.run([sys.executable, "-m", "cfnc_edge", *args], check=True, stdout=subprocess.DEVNULL, stderr=quiet)
    return time.perf_counter() - t0


def run(set_name: str, config: str, work: Path) -> dict:
    data = build_set(set_name, work)
    bundle, report = work / "bundles" / f"{set_name}-{config}", work / "reports" / f"{set_name}-{config}"
    train_s = _cli("train", str(data), "--out", str(bundle), *CONFIGS[config])
    eval_s = _cli("eval", str(data), "--bundle", str(bundle), "--out", str(report))
    metrics = json.loads((report / "metrics.json").read_text())
    manifest = json.loads((bundle / "manifest.json").read_text())
    thr = manifest["threshold"]
    test_good = np.array([im["score"] for im in metrics["images"] if im["defect"] == "good"])
    crossfit = np.array(thr["good_scores"])
    scores = np.array([im["score"] for im in metrics["images"]])
    bad = np.array([im["defect"] != "good" for im in metrics["images"]])
    good_flagged, caught = float((test_good > thr["value"]).mean()), float((scores[bad] > thr["value"]).mean())
    # the oracle: the best catch rate of any threshold flagging no more good test images than this one
    cut = np.sort(test_good)[::-1][int(np.floor(good_flagged * len(test_good) + 1e-9))] \
        if good_flagged < 1 else -np.inf
    oracle = float((scores[bad] > cut).mean())
    sel = manifest.get("selection")
    row = {"set": set_name, "config": config, **{k: metrics["metrics"][k] for k in ("image_auroc", "pixel_auroc", "pro")},
           "good_flagged": good_flagged, "defects_caught": caught, "oracle_caught": oracle,
           "target_fpr": thr["target_fpr"], "expected_fpr": thr.get("expected_fpr"),
           "threshold_model": thr.get("tail", {}).get("model", "rank"),
           "ks_p": float(stats.ks_2samp(crossfit, test_good).pvalue),
           "mannwhitney_p": float(stats.mannwhitneyu(crossfit, test_good).pvalue),
           "crossfit_good_median": float(np.median(crossfit)), "test_good_median": float(np.median(test_good)),
           "train_seconds": round(train_s, 1), "eval_seconds": round(eval_s, 1),
           "model": {k: manifest["model"][k] for k in ("backbone", "image_size", "ica")},
           "scorer": manifest["scorer"]["kind"], "fit_images": manifest["data"]["fit_images"]}
    if sel:
        row["selection"] = {"chosen": sel["candidate"]["name"], "scorer": sel["scorer"], "weight": sel["weight"],
                            "seconds": sel["seconds"], "scored": len(sel["rows"]),
                            "skipped": [s["name"] for s in sel["skipped"]],
                            "pose_spread_degrees": sel["pose_spread_degrees"], "rows": sel["rows"]}
    return row


def correlation(set_name: str, work: Path) -> dict:
    """Every (candidate, scorer) the auto bundle's search scored, scored again on the real test set
    by models fitted on the same good subset: how well synthetic scores rank the candidates."""
    import cv2

    from cfnc_edge.api.selection import SELECT_IMAGES
    from cfnc_edge.data.aspect import keep_aspect, median_aspect
    from cfnc_edge.data.mvtec import MVTecDataset
    from cfnc_edge.images import preprocess, read_image
    from cfnc_edge.model.backbones import MAX_STRIDE
    from cfnc_edge.model.coarse_to_fine import CoarseToFine, ModelConfig
    from cfnc_edge.selection.evaluate import score_on_test

    data = build_set(set_name, work)
    sel = json.loads((work / "bundles" / f"{set_name}-auto" / "manifest.json").read_text())["selection"]
    paths = MVTecDataset(data).train_images()
    rng = np.random.default_rng(0)  # the search's subset (api/selection.py, seed 0)
    subset = [paths[i] for i in sorted(rng.choice(len(paths), min(len(paths), SELECT_IMAGES), replace=False))]
    frames = [read_image(p) for p in subset]
    ratio = median_aspect(subset)
    samples = MVTecDataset(data).test_samples()
    loaded = [smp.load() for smp in samples]
    labels = np.array([smp.is_anomalous for smp in samples])
    pairs = []
    for name in dict.fromkeys(r["candidate"]["name"] for r in sel["rows"]):
        c = next(r["candidate"] for r in sel["rows"] if r["candidate"]["name"] == name)
        hw = keep_aspect(c["short_side"], ratio, MAX_STRIDE, log=lambda _m: None)
        model = CoarseToFine(ModelConfig(backbone=c["backbone"], image_size=list(hw), ica=c["ica"], fca=False,
                                         head="combined"))
        good = preprocess(frames, hw)
        if c["ica"]:
            model.fit_template(good)
        masks = np.stack([cv2.resize(m.astype(np.uint8), (hw[1], hw[0]), interpolation=cv2.INTER_NEAREST) > 0
                          for _, m in loaded])
        real = score_on_test(model, good, preprocess([f for f, _ in loaded], hw), labels, masks,
                             gaussian=any(r["scorer"] == "gaussian" for r in sel["rows"]
                                          if r["candidate"]["name"] == name))
        for r in sel["rows"]:
            if r["candidate"]["name"] != name:
                continue
            t = next(x for x in real if (x["scorer"], x.get("weight")) == (r["scorer"], r.get("weight")))
            pairs.append({"candidate": name, "scorer": r["scorer"], "weight": r.get("weight"),
                          "synthetic_image_auroc": r["synthetic_image_auroc"], "synthetic_pro": r["synthetic_pro"],
                          "test_image_auroc": t["test_image_auroc"], "test_pro": t["test_pro"]})
    col = {k: np.array([p[k] for p in pairs]) for k in pairs[0] if k.endswith(("auroc", "pro"))}
    best_synth = max(pairs, key=lambda p: p["synthetic_image_auroc"])
    return {"set": set_name, "config": "correlation", "pairs": pairs,
            "spearman_image_auroc": float(stats.spearmanr(col["synthetic_image_auroc"], col["test_image_auroc"])[0]),
            "spearman_pro": float(stats.spearmanr(col["synthetic_pro"], col["test_pro"])[0]),
            "best_test_image_auroc": float(col["test_image_auroc"].max()),
            "test_image_auroc_of_best_synthetic": best_synth["test_image_auroc"]}


def render(rows: list[dict], header: str) -> str:
    corr = [r for r in rows if r["config"] == "correlation"]
    rows = [r for r in rows if r["config"] != "correlation"]
    lines = [f"# {NAME}", "", header, "",
             "| set | config | chosen | image AUROC | pixel AUROC | PRO | good flagged | caught | oracle | "
             "KS p (crossfit vs test good) | train s | eval s |", "|" + "---|" * 12]
    for r in rows:
        chosen = (f"{r['selection']['chosen']} {r['selection']['scorer']}"
                  + (f" w={r['selection']['weight']:g}" if r['selection']['scorer'] == "combined" else "")
                  if "selection" in r else f"{r['model']['backbone'].removeprefix('efficientnet-')}@{r['model']['image_size']} {r['scorer']}")
        lines.append(f"| {r['set']} | {r['config']} | {chosen} | {100 * r['image_auroc']:.1f} | "
                     f"{100 * r['pixel_auroc']:.1f} | {100 * r['pro']:.1f} | {100 * r['good_flagged']:.1f}% | "
                     f"{100 * r['defects_caught']:.1f}% | {100 * r['oracle_caught']:.1f}% | {r['ks_p']:.2f} | "
                     f"{r['train_seconds']:.0f} | {r['eval_seconds']:.0f} |")
    if corr:
        lines += ["", "## Do synthetic scores predict real ones?", "",
                  "Every (candidate, scorer) the search scored, scored again on the set's real test images by "
                  "models fitted on the same good subset; Spearman rank correlation across them.", "",
                  "| set | pairs | Spearman image AUROC | Spearman PRO | best real image AUROC | real image AUROC "
                  "of the best synthetic |", "|---|---|---|---|---|---|"]
        lines += [f"| {r['set']} | {len(r['pairs'])} | {r['spearman_image_auroc']:.2f} | {r['spearman_pro']:.2f} | "
                  f"{100 * r['best_test_image_auroc']:.1f} | {100 * r['test_image_auroc_of_best_synthetic']:.1f} |"
                  for r in corr]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sets", nargs="+", default=["mt50", "screw", "mt762"])
    ap.add_argument("--configs", nargs="+", default=[*CONFIGS, "correlation"])
    ap.add_argument("--work", type=Path, default=Path("/tmp/cfnc-selection-study"))
    a = ap.parse_args()
    out = RESULTS / f"{NAME}.json"
    doc = json.loads(out.read_text()) if out.is_file() else {"machine": machine(), "rows": []}
    for s in a.sets:
        for c in a.configs:
            row = correlation(s, a.work) if c == "correlation" else run(s, c, a.work)
            doc = json.loads(out.read_text()) if out.is_file() else doc  # rows another run added meanwhile
            doc["rows"] = [r for r in doc["rows"] if (r["set"], r["config"]) != (s, c)] + [row]
            out.write_text(json.dumps(doc, indent=1))
            md = RESULTS / f"{NAME}.md"
            old = md.read_text() if md.is_file() else ""
            reading = old[old.index("## Reading"):] if "## Reading" in old else ""  # hand-written: kept
            md.write_text(render(doc["rows"], f"Machine: {doc['machine']}.") + ("\n" + reading if reading else ""))
            print(f"{s} {c}: done", flush=True)


if __name__ == "__main__":
    main()
