"""Deployment side of the API: export, INT8 calibration, TensorRT engines,
benchmarks and the machine report. Each takes a bundle path or Bundle."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from cfnc_edge.bundle import Bundle
from cfnc_edge.errors import CfncError

Log = Callable[[str], None]


def _open(bundle: Bundle | Path | str) -> Bundle:
    return bundle if isinstance(bundle, Bundle) else Bundle.open(bundle)


def export(bundle: Bundle | Path | str, images: Path | None = None, log: Log = print) -> dict:
    """Write model.onnx and model-fp16.onnx into the bundle, checked against PyTorch."""
    from cfnc_edge.deploy.export import export as run

    return run(_open(bundle), images, log=log)


def calibrate(bundle: Bundle | Path | str, images: Path | None = None, n: int = 64, method: str = "percentile",
              keep: tuple[str, ...] = ("stages.0",), eval_data: Path | None = None, log: Log = print) -> dict:
    """INT8: a Q/DQ ONNX model calibrated on good images, with its accuracy cost."""
    from cfnc_edge.deploy.calibrate import calibrate as run

    return run(_open(bundle), images, n, method, keep, eval_data, log=log)


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
    from cfnc_edge.runtime.backends import tensorrt_available

    if not tensorrt_available():
        raise CfncError("build-engine needs an NVIDIA GPU with TensorRT and CuPy (pip install 'cfnc-edge[gpu]'); "
                        "`cfnc-edge doctor` says what is missing")
    from cfnc_edge.deploy.engine import build_engine as run

    return run(_open(bundle), precision, min_batch, opt_batch, max_batch, workspace_mib, log=log)


def bench(bundle: Bundle | Path | str, images: Path | None = None, batch_sizes=(1, 8), warmup: int = 3,
          repeats: int = 30, out: Path | None = None) -> list[dict]:
    """Latency, throughput, memory and stage split of every backend and precision present."""
    from cfnc_edge.report.bench import run_bench, write_results

    rows = run_bench(_open(bundle).path, images, batch_sizes, warmup, repeats)
    if out is not None:
        write_results(rows, Path(out))
    return rows


def doctor(bundle: Bundle | Path | str | None = None) -> list[tuple[str, str]]:
    """What this machine can run, as (item, finding) rows."""
    from cfnc_edge.deploy.doctor import report

    return report(_open(bundle) if bundle is not None else None)
