"""Evaluation on an MVTec-layout test set: metrics, the threshold's operating point, overlays, ROC and
training pictures, and the Markdown report (report/eval_markdown.py)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from cfnc_edge.bundle.schema import dumps as strict_json
from cfnc_edge.data.mvtec import MVTecDataset, Sample, usable_samples
from cfnc_edge.images import preprocess
from cfnc_edge.report.eval_markdown import ALIGNMENT_PLOT, draws_alignment, render_markdown
from cfnc_edge.report.eval_result import EvalResult
from cfnc_edge.report.metrics import image_auroc, operating_point, pixel_auroc, pro_score
from cfnc_edge.report.roc_plot import ROC_PLOT, plot_roc
from cfnc_edge.report.training_curves import TRAINING_PLOT, has_training_evidence, plot_training
from cfnc_edge.report.visualize import heat_scale, panel
from cfnc_edge.runtime.inspector import Inspector
from cfnc_edge.runtime.postprocess import to_frame_size
from cfnc_edge.scoring.threshold import normalized


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
    thr, norm, op = {}, [None] * n, {}
    if inspector.threshold is not None:
        op = operating_point(scores, labels, inspector.threshold)
        # the good-image false-alarm rate is what the training threshold promised (its target_fpr)
        thr = {"value": inspector.threshold, **_promised(inspector.bundle.manifest.get("threshold", {}),
                                                         inspector.threshold),
               "true_positive_rate": op["defects_caught"], "false_positive_rate": op["good_flagged"],
               "good_images": int((~labels).sum()), "good_flagged": int(verdicts[~labels].sum())}
        norm = normalized(scores, inspector.threshold).tolist()
    t = inspector.timings
    per_image = sum(sum(v) for v in t.values()) / n
    images = [{"path": str(smp.path), "defect": smp.defect, "score": float(sc), "normalized_score": nz,
               "anomalous": bool(v) if inspector.threshold is not None else None}
              for smp, sc, nz, v in zip(samples, scores, norm, verdicts)]
    result = EvalResult(overall, per_defect, thr, op, seconds_per_image=per_image, images=images, skipped=skipped)
    if out_dir is not None:
        _write_report(Path(out_dir), inspector, samples, scores, labels, verdicts, maps, result, examples_per_type)
    return result


def _promised(manifest_threshold: dict, value: float) -> dict:
    """What training promised about the bundle's threshold (nothing if another threshold is in use)."""
    if manifest_threshold.get("value") != value:
        return {}
    keys = ("target_fpr", "expected_fpr", "fpr_std", "user_set")
    return {k: manifest_threshold[k] for k in keys if k in manifest_threshold}


def _decision_examples(scores: np.ndarray, labels: np.ndarray, verdicts: np.ndarray, k: int = 3
                       ) -> tuple[list[int], list[int]]:
    """The k lowest-scoring defects the threshold let through and the k highest-scoring
    good images it flagged: the mistakes an operator will meet first."""
    missed = [i for i in np.argsort(scores, kind="stable") if labels[i] and not verdicts[i]][:k]
    false_alarms = [i for i in np.argsort(-scores, kind="stable") if not labels[i] and verdicts[i]][:k]
    return missed, false_alarms


def _write_report(out: Path, inspector: Inspector, samples: list[Sample], scores: np.ndarray, labels: np.ndarray,
                  verdicts: np.ndarray, maps: np.ndarray, result: EvalResult, per_type: int) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "examples").mkdir(exist_ok=True)

    def example(i: int) -> str:
        smp = samples[i]
        frame, mask = smp.load()
        full = to_frame_size(maps[i], frame.shape)
        anomalous = bool(verdicts[i]) if inspector.threshold is not None else None
        name = f"examples/{smp.defect}_{smp.path.stem}.png"
        cv2.imwrite(str(out / name), panel(frame, full, float(scores[i]), anomalous,
                                           heat_scale(inspector.threshold, float(scores[i])), mask))
        return name

    result.examples += [example(i) for i in _pick_examples(samples, scores, per_type)]
    if result.operating_point:
        missed, false_alarms = _decision_examples(scores, labels, verdicts)
        result.missed += [example(i) for i in missed]
        result.false_alarms += [example(i) for i in false_alarms]
        plot_roc(scores, labels, result.operating_point, out / ROC_PLOT)
    if has_training_evidence(inspector.bundle.manifest):
        plot_training(inspector.bundle.manifest, out / TRAINING_PLOT)
    if draws_alignment(inspector):  # posed parts should land in one pose: shown, not only told
        from cfnc_edge.model.loading import load_model
        from cfnc_edge.report.alignment_plot import plot_alignment

        frames = [smp.load()[0] for smp in samples[::max(1, len(samples) // 8)][:8]]
        plot_alignment(load_model(inspector.bundle), preprocess(frames, inspector.bundle.model_config["image_size"]),
                       out / ALIGNMENT_PLOT)
    (out / "metrics.json").write_text(strict_json(result.to_dict(), indent=2))
    (out / "report.md").write_text(render_markdown(result, inspector))
