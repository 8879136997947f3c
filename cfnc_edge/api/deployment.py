"""Deployment side of the API: export, INT8 calibration, TensorRT engines,
benchmarks and the machine report. Each takes a bundle path or Bundle; each
writing step is one bundle transaction (all of its files and reports become
current together, or none)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from cfnc_edge.api.validation import check, check_folder
from cfnc_edge.bundle import Bundle

Log = Callable[[str], None]


def _open(bundle: Bundle | Path | str) -> Bundle:
    return bundle if isinstance(bundle, Bundle) else Bundle.open(bundle)


def export(bundle: Bundle | Path | str, images: Path | None = None, log: Log = print) -> dict:
    """Write model.onnx and model-fp16.onnx into the bundle, checked against PyTorch."""
    from cfnc_edge.deploy.export import export as run

    with _open(bundle).transaction() as b:
        return run(b, images, log=log)


def calibrate(bundle: Bundle | Path | str, images: Path | None = None, n: int = 64, method: str = "percentile",
              keep: tuple[str, ...] = ("stages.0",), eval_data: Path | None = None, log: Log = print) -> dict:
    """INT8: a Q/DQ ONNX model calibrated on good images, with its accuracy cost."""
    check(n=n, method=method)
    from cfnc_edge.deploy.calibrate import calibrate as run

    with _open(bundle).transaction() as b:
        return run(b, images, n, method, keep, eval_data, log=log)


def set_factor_precision(bundle: Bundle | Path | str, precision: str, images: Path | None = None,
                         eval_data: Path | None = None, log: Log = print) -> dict:
    """Store the whitening factor in fp32, fp16 or int8 (per-row scales) at run
    time, after checking its distances (and with eval_data its accuracy)
    against fp32."""
    from cfnc_edge.deploy.factor_precision import set_factor_precision as run

    return run(_open(bundle), precision, images, eval_data, log=log)


def build_engine(bundle: Bundle | Path | str, precision: str = "fp16", min_batch: int = 1, opt_batch: int = 8,
                 max_batch: int = 32, workspace_mib: int = 1024, log: Log = print) -> dict:
    """Build a TensorRT engine for this GPU into <bundle>/engines/, checked against ONNX Runtime."""
    from cfnc_edge.runtime.gpu.device import require

    check(precision=precision, min_batch=min_batch, opt_batch=opt_batch, max_batch=max_batch,
          workspace_mib=workspace_mib)
    require("tensorrt", "build-engine")
    from cfnc_edge.deploy.engine import build_engine as run

    with _open(bundle).transaction() as b:
        return run(b, precision, min_batch, opt_batch, max_batch, workspace_mib, log=log)


def bench(bundle: Bundle | Path | str, images: Path | None = None, batch_sizes=(1, 8), warmup: int = 3,
          repeats: int = 30, out: Path | None = None) -> list[dict]:
    """Latency, throughput, memory and stage split of every backend and precision present."""
    check(batch=list(batch_sizes), warmup=warmup, repeats=repeats)
    check_folder(out, "--out")
    from cfnc_edge.report.bench import run_bench, write_results

    rows = run_bench(_open(bundle).path, images, batch_sizes, warmup, repeats)
    if out is not None:
        write_results(rows, Path(out))
    return rows


def doctor(bundle: Bundle | Path | str | None = None) -> list[tuple[str, str]]:
    """What this machine can run, as (item, finding) rows."""
    from cfnc_edge.deploy.doctor import report

    return report(_open(bundle) if bundle is not None else None)
