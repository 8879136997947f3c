"""Inspection side of the API: score images, evaluate on a labelled set."""

from __future__ import annotations

import os
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import cv2

from cfnc_edge.api.validation import check, check_folder
from cfnc_edge.bundle import Bundle
from cfnc_edge.errors import CfncError, DataError
from cfnc_edge.images import list_images, read_image
from cfnc_edge.report.evaluate import EvalResult
from cfnc_edge.report.evaluate import evaluate as _evaluate
from cfnc_edge.report.visualize import heat_scale, panel
from cfnc_edge.runtime.backends import export_hint
from cfnc_edge.runtime.inspector import Inspector


def _stderr(message: str) -> None:
    print(message, file=sys.stderr)


@dataclass(frozen=True)
class InspectOptions:
    """How a bundle inspects, as evaluate, infer_paths, stream, review and set_threshold
    take it. `backend`: auto (the fastest this machine and bundle support) | tensorrt |
    torch-cuda | torch-cuda-graphs | openvino | onnxruntime | torch; `precision`: fp32 |
    fp16 | int8; `threshold`: instead of the bundle's; `tile` ("auto", S or "HxW" frame
    pixels), `tile_overlap`: tile large frames, one map and verdict each (default: the
    bundle's tiling; see `Inspector`). Checked when made."""

    backend: str = "auto"
    precision: str = "fp32"
    threshold: float | None = None
    tile: str | int | None = None
    tile_overlap: float = 0.0

    def __post_init__(self):
        check(backend=self.backend, precision=self.precision, threshold=self.threshold, tile_overlap=self.tile_overlap)

    def inspector(self, bundle: Bundle | Path | str, log: Callable[[str], None] | None = None) -> Inspector:
        """The Inspector these options make; `log` gets a one-line hint when `auto`
        runs on PyTorch for want of an export (runtime/backends.export_hint)."""
        insp = Inspector(bundle, self.backend, self.precision, self.threshold, self.tile, self.tile_overlap)
        hint = export_hint(insp.bundle, self.backend, insp.backend) if log else None
        if hint:
            log(hint)
        return insp


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


def heatmap_names(paths: list[Path]) -> dict[Path, Path]:
    """A heatmap file name per input, unique per input path: the inputs' folder
    structure below their common folder (good/000.png -> good/000_heatmap.png),
    so nothing lands outside the output folder and no two images share a file."""
    absolute = [Path(os.path.abspath(p)) for p in paths]
    root = Path(os.path.commonpath([a.parent for a in absolute]))
    names = {p: a.relative_to(root).with_name(f"{a.stem}_heatmap.png") for p, a in zip(paths, absolute)}
    uses = Counter(names.values())
    # a.png and a.jpg in one folder: keep the suffix in the name
    return {p: n.with_name(f"{a.name}_heatmap.png") if uses[n] > 1 else n
            for (p, n), a in zip(names.items(), absolute)}


def infer_paths(inputs: list[Path], bundle: Path | str | None, out: Path | None = None,
                inspection: InspectOptions | None = None, batch_size: int = 8, on_error: str = "skip",
                server: str | None = None, model: str | None = None,
                log: Callable[[str], None] = _stderr):
    """Yield one dict per image: path, score, verdict (and heatmap file if out is set),
    inspected as `inspection` says (backend, precision, threshold, tiling; default InspectOptions()).

    An unreadable image yields {"path", "error"} and the run goes on
    (`on_error="fail"` raises instead). `server` (grpc://HOST:PORT): score on
    a `cfnc-edge serve` server (`model`: its model name)."""
    check(batch_size=batch_size, on_error=on_error)
    check_folder(out, "--out")
    paths = expand_inputs(inputs)
    if server is not None:
        from cfnc_edge.api.serving import connect

        insp = connect(server, model, maps=out is not None)
    elif bundle is None:
        raise CfncError("give --bundle PATH, or --server grpc://HOST:PORT to score on a server")
    else:
        insp = (inspection or InspectOptions()).inspector(bundle, log)
    heatmaps = heatmap_names(paths) if out is not None else {}
    for i in range(0, len(paths), batch_size):
        chunk, frames = [], []
        for p in paths[i:i + batch_size]:
            try:
                frames.append(read_image(p))
                chunk.append(p)
            except DataError as exc:
                if on_error == "fail":
                    raise
                yield {"path": str(p), "error": str(exc)}
        for p, f, r in zip(chunk, frames, insp(frames) if frames else []):
            line = {"path": str(p), "score": round(r.score, 4), "normalized_score": _round(r.normalized_score),
                    "anomalous": r.anomalous,
                    "threshold": insp.threshold}
            if out is not None:
                dest = Path(out) / heatmaps[p]
                dest.parent.mkdir(parents=True, exist_ok=True)
                cv2.imwrite(str(dest), panel(f, r.full_map(), r.score, r.anomalous,
                                             heat_scale(insp.threshold, r.score)))
                line["heatmap"] = str(dest)
            yield line


def evaluate(bundle: Bundle | Path | str, data_root: Path | str, out: Path | str | None = None,
             inspection: InspectOptions | None = None, batch_size: int = 8, progress: bool = True,
             on_error: str = "skip", log: Callable[[str], None] = _stderr) -> EvalResult:
    """Image AUROC, pixel AUROC and PRO of a bundle on an MVTec-layout test set (report in `out`),
    inspected as `inspection` says (default InspectOptions()); tiled, masks are compared at the map's size.

    Every image and mask is read before anything is computed; unusable ones are
    skipped and listed in `result.skipped` (`on_error="fail"` raises instead).
    `log` gets a one-line hint when `auto` runs on PyTorch for want of an export."""
    check(batch_size=batch_size, on_error=on_error)
    check_folder(out, "--out")
    return _evaluate((inspection or InspectOptions()).inspector(bundle, log), data_root, out, batch_size,
                     progress=progress, on_error=on_error)
