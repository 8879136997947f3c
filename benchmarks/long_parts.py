"""Long parts: squashed square input vs aspect-kept input vs tiling, on 1:2.5 strips.

    python -m benchmarks.long_parts [--data /work/shared/data/magnetic-tile] [--work /tmp/cfnc-long-parts]
        [--train 50] [--configs square aspect tiled] [--scorers gaussian knn]

The set: magnetic-tile images put side by side, three to a 200 x 500 frame
(each part resized to 200 x 167, so a thin crack keeps its width); a
defective frame holds one defective image (its mask in place, the other
two parts good), a good frame three good test images. `--train` good
frames (3 train/good images each), 30 good and 50 defective test frames
(10 per defect type), all seeded. PaDiM flags (no ICA, no FCA, no
non-contrastive training: pretrained EfficientNet-Lite0 features) with the
per-position Gaussian (d = 100) or the memory bank (10% coreset):

  square  --image-size 224x224: every frame squashed to a square
  aspect  --image-size 224: short side 224, the 1:2.5 ratio kept -> 224 x 560
  tiled   --image-size 224x224 --tile 200: 200 x 200 frame-pixel tiles, each
          scaled to 224 (the aspect row's pixel density), 3 tiles per frame
          (the last one shifted to the border), Gaussian over tile positions

Image AUROC, pixel AUROC and PRO from `evaluate` (maps compared with the
masks at the map's size), good frames flagged at the cross-fitted threshold,
and latency per frame at batch 1 on ONNX Runtime (fp32 graph; the tiled row
runs its 3 tiles as one batch). Each row is saved as it finishes in
<work>/rows/, so a run can be resumed; the table is rebuilt from all rows.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import cv2
import numpy as np

from benchmarks.common import machine

RESULTS = Path(__file__).resolve().parent / "results"
FOLDS = 3  # cross-fitting folds of the Gaussian: each fold's sums hold positions x d^2 doubles (0.6 GB at 224 x 560)
FRAME_H, PART_W = 200, (167, 167, 166)  # 200 x 500: 1 to 2.5
DEFECTS = ("blowhole", "break", "crack", "fray", "uneven")
CONFIGS = {
    "square": ("224x224 (squashed)", [224, 224], None),
    "aspect": ("224 (aspect kept)", 224, None),
    "tiled": ("224x224, --tile 200", [224, 224], 200),
}


def _strip(parts: list[np.ndarray], interp: int) -> np.ndarray:
    return np.concatenate([cv2.resize(p, (w, FRAME_H), interpolation=interp) for p, w in zip(parts, PART_W)], axis=1)


def build(data: Path, dest: Path, n_train: int, seed: int = 0) -> Path:
    """The strip set in the MVTec layout (kept if already there)."""
    if (dest / "done").is_file():
        return dest
    from cfnc_edge.images import list_images, read_image

    rng = np.random.default_rng(seed)
    good = list_images(data / "train" / "good")
    pick = rng.choice(len(good), 3 * n_train, replace=False)
    (dest / "train" / "good").mkdir(parents=True, exist_ok=True)
    for i in range(n_train):
        frame = _strip([read_image(good[j]) for j in pick[3 * i:3 * i + 3]], cv2.INTER_AREA)
        cv2.imwrite(str(dest / "train" / "good" / f"{i:03d}.png"), frame)
    test_good = [read_image(p) for p in np.array(list_images(data / "test" / "good"))[rng.permutation(190)]]
    (dest / "test" / "good").mkdir(parents=True, exist_ok=True)
    for i in range(30):
        cv2.imwrite(str(dest / "test" / "good" / f"{i:03d}.png"), _strip(test_good[3 * i:3 * i + 3], cv2.INTER_AREA))
    spare = iter(test_good[90:])
    for d in DEFECTS:
        imgs = list_images(data / "test" / d)
        (dest / "test" / d).mkdir(parents=True, exist_ok=True)
        (dest / "ground_truth" / d).mkdir(parents=True, exist_ok=True)
        for i, j in enumerate(rng.choice(len(imgs), 10, replace=False)):
            img = read_image(imgs[j])
            mask = cv2.imread(str(data / "ground_truth" / d / f"{imgs[j].stem}_mask.png"), cv2.IMREAD_GRAYSCALE)
            slot = int(rng.integers(3))
            parts = [next(spare) for _ in range(2)]
            blank = [np.zeros(p.shape[:2], np.uint8) for p in parts]
            parts.insert(slot, img)
            blank.insert(slot, mask)
            cv2.imwrite(str(dest / "test" / d / f"{i:03d}.png"), _strip(parts, cv2.INTER_AREA))
            m = _strip(blank, cv2.INTER_NEAREST)
            cv2.imwrite(str(dest / "ground_truth" / d / f"{i:03d}_mask.png"), ((m > 127) * 255).astype(np.uint8))
    (dest / "done").write_text("ok")
    return dest


def latency_ms(bundle, frames: list[np.ndarray], warmup: int = 3) -> float:
    """p50 wall time of one frame, batch 1, ONNX Runtime fp32 (tiles as one batch)."""
    from cfnc_edge.runtime.inspector import Inspector

    insp = Inspector(bundle, "onnxruntime")
    times = []
    for i, f in enumerate([*frames[:warmup], *frames]):
        t0 = time.perf_counter()
        insp([f])
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return 1e3 * float(np.median(times))


def frame_metrics(bundle_path: Path, data: Path) -> dict:
    """Image AUROC, pixel AUROC and PRO with every map at the frame's own size
    (200 x 500) against the untouched masks: the same ground truth for every
    row (at the map's size, a squashed square also squashes the thin masks)."""
    from cfnc_edge.data.mvtec import MVTecDataset
    from cfnc_edge.report.metrics import image_auroc, pixel_auroc, pro_score
    from cfnc_edge.runtime.inspector import Inspector

    insp = Inspector(bundle_path, "onnxruntime")
    maps, masks, scores, labels = [], [], [], []
    for smp in MVTecDataset(data).test_samples():
        frame, mask = smp.load()
        r = insp([frame])[0]
        maps.append(r.full_map())
        masks.append(mask)
        scores.append(r.score)
        labels.append(smp.is_anomalous)
    maps, masks = np.stack(maps), np.stack(masks)
    return {"image_auroc": image_auroc(np.array(scores), np.array(labels)), "pixel_auroc": pixel_auroc(maps, masks),
            "pro": pro_score(maps, masks)}


def run_row(data: Path, work: Path, config: str, scorer: str, folds: int) -> dict:
    import warnings

    from cfnc_edge.api import InspectOptions, evaluate, train
    from cfnc_edge.deploy.export import export
    from cfnc_edge.images import list_images, read_image
    from cfnc_edge.model.coarse_to_fine import ModelConfig
    from cfnc_edge.model.train import TrainConfig

    label, size, tile = CONFIGS[config]
    head = "pooled" if scorer == "knn" else "projection"
    out = work / "bundles" / f"{config}-{scorer}"
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the small set's false-alarm-rate warning: reported as a column instead
        b = train(data, out, ModelConfig(image_size=size, ica=False, fca=False, head=head),
                  TrainConfig(steps=0, noncontrastive=False), folds=folds, scorer=scorer, progress=False,
                  tile=tile)
    fit_s = time.perf_counter() - t0
    export(b, n_check=4, log=lambda m: None)
    r = evaluate(out, data, inspection=InspectOptions(backend="onnxruntime"), progress=False)
    frames = [read_image(p) for p in list_images(data / "test" / "good")[:20]]
    return {"config": config, "label": label, "scorer": scorer, "input": b.model_config["image_size"],
            "tiling": b.manifest.get("tiling"), **{k: r.metrics[k] for k in ("image_auroc", "pixel_auroc", "pro")},
            "at_frame_size": frame_metrics(out, data),
            "good_flagged": r.threshold.get("false_positive_rate"), "fit_s": round(fit_s, 1),
            "latency_ms": round(latency_ms(b, frames), 1)}


def render(rows: list[dict], n_train: int) -> str:
    head = ("| input | scorer | model input | image AUROC | pixel AUROC | PRO | pixel AUROC, PRO at the map's size | "
            "good frames flagged | fit s | ms / frame (ORT, batch 1) |\n|---|---|---|---|---|---|---|---|---|---|\n")
    body = "".join(
        f"| {r['label']} | {r['scorer']} | {r['input']} | {100 * f['image_auroc']:.1f} | {100 * f['pixel_auroc']:.1f} "
        f"| {100 * f['pro']:.1f} | {100 * r['pixel_auroc']:.1f}, {100 * r['pro']:.1f} | {100 * r['good_flagged']:.1f}% "
        f"| {r['fit_s']} | {r['latency_ms']} |\n"
        for r in rows for f in [r["at_frame_size"]])
    return (f"# Long parts: squashed vs aspect-kept vs tiled input\n\n"
            f"`python -m benchmarks.long_parts` on {machine()}. **The machine was shared** with other helpers' jobs "
            f"(2 cores for 3-4 processes): latencies are pessimistic and noisy; compare rows with each other.\n\n"
            f"Set: magnetic-tile images three to a 200 x 500 frame (1:2.5), {n_train} good training frames "
            f"(few, so that the run finishes on this machine: {3 * n_train} source images), 30 good and 50 "
            f"defective test frames (10 per defect type, one defective part per frame, its mask in place). "
            f"PaDiM flags (`--no-ica --no-fca --no-noncontrastive`), EfficientNet-Lite0; Gaussian d = 100 "
            f"(Ledoit-Wolf, {FOLDS} cross-fitting folds) or memory bank (10%, pooled stride-8/16 taps). "
            f"Image AUROC, pixel AUROC and PRO with every map resized to the frame (200 x 500) against the "
            f"original masks, the same ground truth for every row; `eval`'s own figures, at each row's map size "
            f"(masks resized to it: 224 x 224 squashes thin cracks in the masks too), in the next column.\n\n" + head + body)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path("/work/shared/data/magnetic-tile"))
    ap.add_argument("--work", type=Path, default=Path("/tmp/cfnc-long-parts"))
    ap.add_argument("--train", type=int, default=50)
    ap.add_argument("--folds", type=int, default=FOLDS, help="cross-fitting folds (fewer: less memory at 224 x 560)")
    ap.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    ap.add_argument("--scorers", nargs="+", default=["gaussian", "knn"], choices=["gaussian", "knn"])
    a = ap.parse_args(argv)
    data = build(a.data, a.work / "data", a.train)
    (a.work / "rows").mkdir(parents=True, exist_ok=True)
    for config in a.configs:
        for scorer in a.scorers:
            path = a.work / "rows" / f"{config}-{scorer}.json"
            if not path.is_file():
                row = run_row(data, a.work, config, scorer, a.folds)
            else:  # rows saved before frame-size metrics: add them from the saved bundle
                row = json.loads(path.read_text())
                if "at_frame_size" in row:
                    continue
                row["at_frame_size"] = frame_metrics(a.work / "bundles" / f"{config}-{scorer}", data)
            path.write_text(json.dumps(row))
            print(json.dumps(row), flush=True)
    rows = [json.loads((a.work / "rows" / f"{c}-{s}.json").read_text())
            for c in CONFIGS for s in ("gaussian", "knn") if (a.work / "rows" / f"{c}-{s}.json").is_file()]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "long-parts.md").write_text(render(rows, a.train))
    (RESULTS / "long-parts.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
