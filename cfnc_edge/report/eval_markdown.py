"""The evaluation report in Markdown: what the threshold does first (good parts
flagged, defects caught, the oracle, the mistakes pictured), then how well the
scores rank, how the bundle was trained, and examples."""

from __future__ import annotations

from importlib.util import find_spec

from cfnc_edge.report.eval_result import EvalResult
from cfnc_edge.report.roc_plot import ROC_PLOT
from cfnc_edge.report.selection_table import selection_lines
from cfnc_edge.report.training_curves import TRAINING_PLOT, angles_spread, has_training_evidence, training_state
from cfnc_edge.runtime.inspector import Inspector


ALIGNMENT_PLOT = "ica-alignment.png"


def draws_alignment(inspector: Inspector) -> bool:
    """ICA bundles get the alignment picture, drawn by the PyTorch model: the
    torch-free runtime evaluates without it."""
    return bool(inspector.bundle.model_config.get("ica")) and find_spec("torch") is not None


def _pct(v: float) -> str:
    return "n/a" if v != v else f"{100 * v:.1f}"


def render_markdown(result: EvalResult, inspector: Inspector) -> str:
    m = result.metrics
    lines = ["# Evaluation report", "",
             f"Bundle: `{inspector.bundle.path}`, backend `{inspector.backend.name}` "
             f"({inspector.backend.precision}), {result.seconds_per_image * 1000:.1f} ms per image in evaluation."]
    lines += _threshold_section(result)
    lines += ["", "## Ranking", "", "How well the scores separate defective from good images at any threshold.", "",
              "| | image AUROC | pixel AUROC | PRO (FPR<=0.3) | images |", "|---|---|---|---|---|",
              f"| **all** | {_pct(m['image_auroc'])} | {_pct(m['pixel_auroc'])} | {_pct(m['pro'])} | |"]
    for d, v in result.per_defect.items():
        lines.append(f"| {d} | {_pct(v['image_auroc'])} | {_pct(v['pixel_auroc'])} | {_pct(v['pro'])} | {v['n']} |")
    lines += ["", *selection_lines(inspector.bundle.manifest.get("selection"))]
    lines += _training_section(inspector.bundle.manifest)
    if draws_alignment(inspector):
        lines += ["", "## Coarse alignment (ICA)", "", "Test images (top) and as ICA aligned them (bottom).", "",
                  f"![ICA alignment]({ALIGNMENT_PLOT})"]
    if result.examples:
        lines += ["", "## Examples", "", "Highest- and lowest-scoring images of each type "
                  "(input, ground truth in red, anomaly heatmap).", ""]
        lines += [f"![{e}]({e})" for e in result.examples]
    return "\n".join(lines) + "\n"


def _threshold_section(result: EvalResult) -> list[str]:
    """What the line will see at the bundle's threshold, first: good parts flagged,
    defects caught, and how many more a threshold chosen with the labels (the
    oracle) would catch at no more false alarms."""
    op, t = result.operating_point, result.threshold
    if not op:
        return ["", "No decision threshold: the bundle has none and none was given, so no image is flagged."]
    promised = (f" (set for {_pct(t['target_fpr'])}% false alarms, expected {_pct(t['expected_fpr'])}% "
                f"+- {_pct(t['fpr_std'])}% from the training images)" if "expected_fpr" in t else "")
    gap = 100 * op["oracle_gap"]
    oracle = (f"flagging scores of {op['oracle_threshold']:.3f} or more" if op["oracle_threshold"] is not None
              else "flagging nothing")
    verdict = (f"this threshold catches **{gap:.1f} points fewer** than the ranking allows at its false-alarm level"
               if gap > 0 else "no threshold catches more at this false-alarm level")
    lines = ["", "## At the decision threshold", "", f"Threshold {t['value']:.3f}{promised}:", "",
             f"- **good parts flagged: {round(op['good_flagged'] * op['good_images'])} of {op['good_images']} "
             f"({_pct(op['good_flagged'])}%)**",
             f"- **defects caught: {round(op['defects_caught'] * op['defective_images'])} of "
             f"{op['defective_images']} ({_pct(op['defects_caught'])}%)**",
             f"- the best possible at no more false alarms (the oracle: a threshold chosen with the test labels, "
             f"{oracle}): {_pct(op['oracle_caught'])}% caught, {_pct(op['oracle_good_flagged'])}% flagged; "
             f"{verdict}",
             "", f"![ROC: defects caught against good parts flagged, the threshold and the oracle marked]({ROC_PLOT})"]
    for title, names in (("Defects let through (lowest scores first)", result.missed),
                         ("Good parts flagged (highest scores first)", result.false_alarms)):
        if names:
            lines += ["", f"{title}:", ""] + [f"![{e}]({e})" for e in names]
    lines += ["", "Each image's `normalized_score` in metrics.json puts the threshold at 0.5 (0 = a perfect "
                  "match, 1 = twice the threshold or more); `operating_point` holds the figures above."]
    return lines


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
    state = training_state(manifest)
    if state != "trained":
        lines.append("- no training: the features are the backbone's ImageNet features" if state == "untrained"
                     else "- no training history recorded in this bundle")
    if "heldout_mean_distance" in compact:
        lines.append(f"- compactness: held-out good images' mean per-position Mahalanobis distance "
                     f"{compact['heldout_mean_distance']:.3f} (about sqrt(d) for a well-estimated Gaussian)")
    else:
        lines.append(f"- compactness: held-out good images' mean image score {compact['heldout_mean_score']:.3f}")
    a = compact["ica_angles"]
    if angles_spread(a):
        lines.append(f"- ICA angles of the good images: {a['min']:.2f} .. {a['max']:.2f} degrees, std {a['std']:.2f}")
    elif manifest.get("model", {}).get("ica"):
        lines.append(f"- ICA angles of the good images: all {a['min']:.2f} degrees (the alignment turned no image)")
    lines += ["", f"![training]({TRAINING_PLOT})"]
    return lines
