"""Inspection side of the API: score images, evaluate on a labelled set."""

from __future__ import annotations

from pathlib import Path

import cv2

from cfnc_edge.bundle import Bundle
from cfnc_edge.errors import CfncError
from cfnc_edge.images import list_images, read_image
from cfnc_edge.report.evaluate import EvalResult
from cfnc_edge.report.evaluate import evaluate as _evaluate
from cfnc_edge.report.visualize import panel
from cfnc_edge.runtime.inspector import Inspector


def expand_inputs(inputs: list[Path]) -> list[Path]:
    paths: list[Path] = []
    for p in map(Path, inputs):
        if p.is_dir():
            found = list_images(p)
            if not found:
                raise CfncError(f"{p} holds no images")
            paths += found
        elif p.is_file():
            paths.append(p)
        else:
            raise CfncError(f"{p} does not exist")
    return paths


def _round(v: float | None) -> float | None:
    return None if v is None else round(v, 4)


def infer_paths(inputs: list[Path], bundle: Path | str | None, out: Path | None = None, backend: str = "auto",
                precision: str = "fp32", threshold: float | None = None, batch_size: int = 8,
                server: str | None = None, model: str | None = None):
    """Yield one dict per image: path, score, verdict (and heatmap file if out is set).

    `server` (grpc://HOST:PORT): score on a `cfnc-edge serve` server (`model`: its model name).
    """
    paths = expand_inputs(inputs)
    if server is not None:
        from cfnc_edge.api.serving import connect

        insp = connect(server, model, maps=out is not None)
    elif bundle is None:
        raise CfncError("give --bundle PATH, or --server grpc://HOST:PORT to score on a server")
    else:
        insp = Inspector(bundle, backend, precision, threshold)
    scale = 2 * insp.threshold if insp.threshold else None
    if out is not None:
        Path(out).mkdir(parents=True, exist_ok=True)
    for i in range(0, len(paths), batch_size):
        chunk = paths[i:i + batch_size]
        frames = [read_image(p) for p in chunk]
        for p, f, r in zip(chunk, frames, insp(frames)):
            line = {"path": str(p), "score": round(r.score, 4), "normalized_score": _round(r.normalized_score),
                    "anomalous": r.anomalous,
                    "threshold": insp.threshold}
            if out is not None:
                dest = Path(out) / f"{p.stem}_heatmap.png"
                cv2.imwrite(str(dest), panel(f, r.full_map(), r.score, r.anomalous, scale or 2 * r.score))
                line["heatmap"] = str(dest)
            yield line


def evaluate(bundle: Bundle | Path | str, data_root: Path | str, out: Path | str | None = None,
             backend: str = "auto", precision: str = "fp32", threshold: float | None = None,
             batch_size: int = 8, progress: bool = True) -> EvalResult:
    """Image AUROC, pixel AUROC and PRO of a bundle on an MVTec-layout test set (report in `out`)."""
    return _evaluate(Inspector(bundle, backend, precision, threshold), data_root, out, batch_size,
                     progress=progress)
