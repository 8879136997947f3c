"""Evaluation on an MVTec-layout test set: metrics, overlays, Markdown report."""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib.util import find_spec
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from cfnc_edge.bundle.schema import dumps as strict_json
from cfnc_edge.bundle.schema import json_safe
from cfnc_edge.data.mvtec import MVTecDataset, Sample, usable_samples
from cfnc_edge.images import preprocess
from cfnc_edge.report.metrics import image_auroc, pixel_auroc, pro_score
from cfnc_edge.report.selection_table import selection_lines
from cfnc_edge.report.training_curves import TRAINING_PLOT, has_training_evidence, plot_training
from cfnc_edge.report.visualize import heat_scale, panel
from cfnc_edge.runtime.inspector import Inspector
from cfnc_edge.runtime.postprocess import to_frame_size
from cfnc_edge.scoring.threshold import normalized

ALIGNMENT_PLOT = "ica-alignment.png"


@dataclass
class EvalResult:
    metrics: dict[str, float]
    per_defect: dict[str, dict[str, float]]
    threshold: dict = field(default_factory=dict)
    examples: list[str] = field(default_factory=list)
    seconds_per_image: float = 0.0
    skipped: list[dict] = field(default_factory=list)  # unusable images: {"path", "error"}
    images: list[dict] = field(default_factory=list)  # per image: path, defect, score, normalized_score, anomalous

    def to_dict(self) -> dict:
        """JSON-ready (undefined metrics such as PRO without masks are null, not NaN)."""
        return json_safe({"metrics": self.metrics, "per_defect": self.per_defect, "threshold": self.threshold,
                          "seconds_per_image": self.seconds_per_image, "skipped": self.skipped,
                          "images": self.images})


def _metrics(scores, labels, maps, masks) -> dict[str, float]:
    return {"image_auroc": image_auroc(scores, labels), "pixel_auroc": pixel_auroc(maps, masks),
            "pro": pro_score(maps, masks) if masks.any() else float("nan")}


def _pick_examples(samples: list[Sample], scores: np.ndarray, per_type: int) -> list[int]:
    """The highest- and lowest-scoring images of every type: what worked and what did not."""
    chosen: list[int] = []
    for defect in sorted({s.defect for s in samples}):
        idx = [i for i, s in enumerate(samples) if s.defect == defect]
        idx.sort(key=lambda i: scores[i])
        half = max(1, per_type // 2)
        chosen += list(dict.fromkeys(idx[-half:][::-1] + idx[:per_type - half]))
    return chosen


def evaluate(inspector: Inspector, data_root: Path | str, out_dir: Path | str | None = None,
             batch_size: int = 8, examples_per_type: int = 2, progress: bool = True,
             on_error: str = "skip") -> EvalResult:
    samples, skipped = usable_samples(MVTecDataset(data_root).test_samples(), on_error)
    n = len(samples)
    maps = masks = None  # at the first map's size: the model input's, or a tiled frame's stitched map
    scores = np.empty(n, np.float64)
    verdicts = np.zeros(n, bool)
    inspector.reset_timings()
    for i in tqdm(range(0, n, batch_size), desc="evaluating", disable=not progress, unit="batch", leave=False):
        frames, gts = zip(*(smp.load() for smp in samples[i:i + batch_size]))
        for j, (res, gt) in enumerate(zip(inspector(list(frames)), gts)):
            if maps is None:
                h, w = res.map.shape
                maps, masks = np.empty((n, h, w), np.float32), np.empty((n, h, w), bool)
            # frames of another size (tiled: another stitched size) are compared at the first one's
            maps[i + j] = res.map if res.map.shape == (h, w) else to_frame_size(res.map, (h, w))
            scores[i + j] = res.score
            verdicts[i + j] = bool(res.anomalous)
            masks[i + j] = cv2.resize(gt.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST) > 0
    labels = np.array([smp.is_anomalous for smp in samples])
    defects = np.array([smp.defect for smp in samples])

    overall = _metrics(scores, labels, maps, masks)
    per_defect = {}
    good = defects == "good"
    for d in sorted(set(defects) - {"good"}):
        sel = good | (defects == d)
        per_defect[str(d)] = _metrics(scores[sel], labels[sel], maps[sel], masks[sel])
        per_defect[str(d)]["n"] = int((defects == d).sum())
    thr, norm = {}, [None] * n
    if inspector.threshold is not None:
        # the good-image false-alarm rate is what the training threshold promised (its target_fpr)
        thr = {"value": inspector.threshold, **_promised(inspector.bundle.manifest.get("threshold", {}),
                                                         inspector.threshold),
               "true_positive_rate": float(verdicts[labels].mean()) if labels.any() else float("nan"),
               "false_positive_rate": float(verdicts[~labels].mean()) if (~labels).any() else float("nan"),
               "good_images": int((~labels).sum()), "good_flagged": int(verdicts[~labels].sum())}
        norm = normalized(scores, inspector.threshold).tolist()
    t = inspector.timings
    per_image = sum(sum(v) for v in t.values()) / n
    images = [{"path": str(smp.path), "defect": smp.defect, "score": float(sc), "normalized_score": nz,
               "anomalous": bool(v) if inspector.threshold is not None else None}
              for smp, sc, nz, v in zip(samples, scores, norm, verdicts)]
    result = EvalResult(overall, per_defect, thr, seconds_per_image=per_image, images=images, skipped=skipped)
    if out_dir is not None:
        _write_report(Path(out_dir), inspector, samples, scores, verdicts, maps, result, examples_per_type)
    return result


def _promised(manifest_threshold: dict, value: float) -> dict:
    """What training promised about the bundle's threshold (nothing if another threshold is in use)."""
    if manifest_threshold.get("value") != value:
        return {}
    keys = ("target_fpr", "expected_fpr", "fpr_std", "user_set")
    return {k: manifest_threshold[k] for k in keys if k in manifest_threshold}


def _write_report(out: Path, inspector: Inspector, samples: list[Sample], scores: np.ndarray,
                  verdicts: np.ndarray, maps: np.ndarray, result: EvalResult, per_type: int) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "examples").mkdir(exist_ok=True)
    for i in _pick_examples(samples, scores, per_type):
        smp = samples[i]
        frame, mask = smp.load()
        full = to_frame_size(maps[i], frame.shape)
        anomalous = bool(verdicts[i]) if inspector.threshold is not None else None
        name = f"examples/{smp.defect}_{smp.path.stem}.png"
        cv2.imwrite(str(out / name), panel(frame, full, float(scores[i]), anomalous,
                                           heat_scale(inspector.threshold, float(scores[i])), mask))
        result.examples.append(name)
    if has_training_evidence(inspector.bundle.manifest):
        plot_training(inspector.bundle.manifest, out / TRAINING_PLOT)
    if _draws_alignment(inspector):  # posed parts should land in one pose: shown, not only told
        from cfnc_edge.model.loading import load_model
        from cfnc_edge.report.alignment_plot import plot_alignment

        frames = [smp.load()[0] for smp in samples[::max(1, len(samples) // 8)][:8]]
        plot_alignment(load_model(inspector.bundle), preprocess(frames, inspector.bundle.model_config["image_size"]),
                       out / ALIGNMENT_PLOT)
    (out / "metrics.json").write_text(strict_json(result.to_dict(), indent=2))
    (out / "report.md").write_text(render_markdown(result, inspector))


def _draws_alignment(inspector: Inspector) -> bool:
    """ICA bundles get the alignment picture, drawn by the PyTorch model: the
    torch-free runtime evaluates without it."""
    return bool(inspector.bundle.model_config.get("ica")) and find_spec("torch") is not None


def _pct(v: float) -> str:
    return "n/a" if v != v else f"{100 * v:.1f}"


def render_markdown(result: EvalResult, inspector: Inspector) -> str:
    m = result.metrics
    lines = ["# Evaluation report", "",
             f"Bundle: `{inspector.bundle.path}`, backend `{inspector.backend.name}` "
             f"({inspector.backend.precision}), {result.seconds_per_image * 1000:.1f} ms per image in evaluation.", "",
             "| | image AUROC | pixel AUROC | PRO (FPR<=0.3) | images |", "|---|---|---|---|---|",
             f"| **all** | {_pct(m['image_auroc'])} | {_pct(m['pixel_auroc'])} | {_pct(m['pro'])} | |"]
    for d, v in result.per_defect.items():
        lines.append(f"| {d} | {_pct(v['image_auroc'])} | {_pct(v['pixel_auroc'])} | {_pct(v['pro'])} | {v['n']} |")
    if result.threshold:
        t = result.threshold
        promised = (f" (set for {_pct(t['target_fpr'])}% false alarms, expected {_pct(t['expected_fpr'])}% "
                    f"+- {_pct(t['fpr_std'])}% from the training images)" if "expected_fpr" in t else "")
        lines += ["", f"Decision threshold {t['value']:.3f}{promised}: {_pct(t['true_positive_rate'])}% of defective "
                      f"images flagged; false alarms: {t['good_flagged']} of {t['good_images']} good images "
                      f"({_pct(t['false_positive_rate'])}%).",
                  "", "Each image's `normalized_score` in metrics.json puts the threshold at 0.5 (0 = a perfect "
                      "match, 1 = twice the threshold or more)."]
    lines += ["", *selection_lines(inspector.bundle.manifest.get("selection"))]
    lines += _training_section(inspector.bundle.manifest)
    if _draws_alignment(inspector):
        lines += ["", "## Coarse alignment (ICA)", "", "Test images (top) and as ICA aligned them (bottom).", "",
                  f"![ICA alignment]({ALIGNMENT_PLOT})"]
    if result.examples:
        lines += ["", "## Examples", "", "Highest- and lowest-scoring images of each type "
                  "(input, ground truth in red, anomaly heatmap).", ""]
        lines += [f"![{e}]({e})" for e in result.examples]
    return "\n".join(lines) + "\n"


def _training_section(manifest: dict) -> list[str]:
    """How the bundle was trained, beside how it performs: a defect missed on a
    collapsed or untrained model reads differently from one missed on a healthy one."""
    if not has_training_evidence(manifest):
        return []
    hist, compact = manifest.get("history") or [], manifest["compactness"]
    lines = ["", "## Training", ""]
    names = {"fine": "fine (dense non-contrastive)", "ica": "coarse alignment (ICA)"}
    for key, name in names.items():
        values = [h[key] for h in hist if key in h]
        if values:
            lines.append(f"- {name} loss {values[0]:.4f} -> {values[-1]:.4f} over {hist[-1]['step']} steps")
    std = [h["encoder_std"] for h in hist if "encoder_std" in h]
    if hist and hist[-1].get("collapsed"):
        restored = hist[-1].get("restored_step", "(last healthy)")
        lines.append(f"- **the encoder collapsed at step {hist[-1]['step']}** (std x sqrt(width) {std[-1]:.3f}): "
                     f"training stopped and the weights of step {restored} were restored")
    elif std:
        lines.append(f"- encoder std x sqrt(width) at the end {std[-1]:.2f} (about 1 healthy, 0 collapsed)")
    if not hist:  # an empty history is "nothing trained" only if the configuration had nothing to train
        model, train = manifest.get("model", {}), manifest.get("train", {})
        lines.append("- no training history recorded in this bundle" if model.get("ica") or train.get("noncontrastive")
                     else "- no training: the features are the backbone's ImageNet features")
    if "heldout_mean_distance" in compact:
        lines.append(f"- compactness: held-out good images' mean per-position Mahalanobis distance "
                     f"{compact['heldout_mean_distance']:.3f} (about sqrt(d) for a well-estimated Gaussian)")
    else:
        lines.append(f"- compactness: held-out good images' mean image score {compact['heldout_mean_score']:.3f}")
    a = compact["ica_angles"]
    lines += [f"- ICA angles of the good images: {a['min']:.2f} .. {a['max']:.2f} degrees, std {a['std']:.2f}",
              "", f"![training]({TRAINING_PLOT})"]
    return lines
