"""`compare`: fit every scorer on the same features, evaluate them, time them, recommend one."""

from __future__ import annotations

import os
import platform
import shutil
from pathlib import Path

from cfnc_edge.api.training import SCORERS, refit, train
from cfnc_edge.api.validation import check
from cfnc_edge.bundle import BANK, GAUSSIAN, SCORER_FILES, Bundle
from cfnc_edge.model.coarse_to_fine import ModelConfig
from cfnc_edge.model.train import TrainConfig
from cfnc_edge.report.bench import run_bench
from cfnc_edge.report.compare import recommend, render
from cfnc_edge.report.evaluate import evaluate
from cfnc_edge.runtime.inspector import Inspector


def compare(data_root: Path | str, out: Path | str, model_cfg: ModelConfig | None = None,
            train_cfg: TrainConfig | None = None, bank_size: float = 0.1, repeats: int = 20,
            progress: bool = True, log=print) -> dict:
    """Train once (model_cfg, train_cfg), fit the Gaussian, the memory bank and
    both combined on that model's features (each with its own feature head),
    evaluate them on test/, time them at batch 1 on this machine, and write <out>/compare.md.
    Returns {"rows": [...], "recommended": scorer, "reason": ..., "bundle": path}."""
    out = Path(out)
    first = out / SCORERS[0]
    train_cfg = train_cfg or TrainConfig()
    # train checks these too, but only after this line: a refused value would follow "training on"
    check(steps=train_cfg.steps, epochs=train_cfg.epochs, seed=train_cfg.seed, bank_size=bank_size, repeats=repeats)
    log(f"training on {data_root} -> {first}")
    train(data_root, first, model_cfg, train_cfg, progress=progress, scorer=SCORERS[0])
    rows = []
    for scorer in SCORERS:
        path = out / scorer
        if scorer != SCORERS[0]:
            shutil.rmtree(path, ignore_errors=True)
            shutil.copytree(first, path, ignore=shutil.ignore_patterns("checkpoint"))
            log(f"fitting {scorer} on the same weights -> {path}")
            refit(path, data_root, scorer=scorer, bank_size=bank_size, progress=progress)
        bundle = Bundle.open(path)
        files = (GAUSSIAN, BANK) if scorer == "combined" else (SCORER_FILES[scorer],)
        r = evaluate(Inspector(bundle, "torch"), data_root, path / "report", progress=progress)
        lat = run_bench(path, batch_sizes=(1,), warmup=3, repeats=repeats, combos=[("torch", "fp32")],
                        progress=False)[0]
        rows.append({"scorer": scorer, "bundle": str(path), **r.metrics,
                     "good_flagged": r.threshold.get("false_positive_rate"),
                     "defects_flagged": r.threshold.get("true_positive_rate"),
                     "p50_ms": lat["p50_ms"], "distance_ms": lat["distance_ms"],
                     "scorer_mb": sum((path / f).stat().st_size for f in files) / 2**20})
        log(f"{scorer}: image AUROC {100 * r.metrics['image_auroc']:.1f}, PRO {100 * r.metrics['pro']:.1f}, "
            f"{lat['p50_ms']:.1f} ms")
    chosen, reason = recommend(rows)
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    (out / "compare.md").write_text(render(rows, chosen, reason, machine))
    return {"rows": rows, "recommended": chosen["scorer"], "reason": reason, "bundle": chosen["bundle"]}
