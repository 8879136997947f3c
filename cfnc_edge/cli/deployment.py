"""Deployment commands: export, calibrate, factor-precision, bench, build-engine, doctor."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from cfnc_edge.bundle.schema import dumps as strict_json
from cfnc_edge.cli.app import BundleOpt, app


def _log(message: str) -> None:
    typer.echo(message, err=True)


@app.command()
def export(
    bundle: Path = BundleOpt,
    images: Optional[Path] = typer.Option(None, help="Good images to check parity on (default: the training data)."),
):
    """Export ICA + backbone + FCA + projection to ONNX (fp32 and fp16), checked against PyTorch."""
    from cfnc_edge import api

    api.export(bundle, images, log=_log)


@app.command()
def calibrate(
    bundle: Path = BundleOpt,
    images: Optional[Path] = typer.Option(None, help="Good images to calibrate on (default: train/good)."),
    n: int = typer.Option(64, help="Number of calibration images."),
    method: str = typer.Option("percentile", help="entropy | percentile | minmax"),
    keep: str = typer.Option("stages.0", help="Comma-separated backbone stages kept in float ('' for none)."),
    eval_data: Optional[Path] = typer.Option(None, "--eval", help="MVTec-layout data: compare INT8 and FP32 accuracy."),
):
    """INT8: write a Q/DQ ONNX model calibrated on good images, and report its cost."""
    from cfnc_edge import api

    report = api.calibrate(bundle, images, n, method, tuple(k for k in keep.split(",") if k), eval_data, log=_log)
    typer.echo(strict_json(report, indent=2))


@app.command()
def bench(
    bundle: Path = BundleOpt,
    images: Optional[Path] = typer.Option(None, help="Images to run on (default: the training data)."),
    batch: list[int] = typer.Option([1, 8], help="Batch sizes (repeatable)."),
    repeats: int = typer.Option(30), warmup: int = typer.Option(3),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Folder for bench.md/.csv/.json."),
):
    """Latency, throughput, memory and stage split of every backend and precision present."""
    from cfnc_edge import api
    from cfnc_edge.report.bench import markdown_table

    typer.echo(markdown_table(api.bench(bundle, images, batch, warmup, repeats, out)))


@app.command("factor-precision")
def factor_precision(
    precision: str = typer.Argument(..., help="fp32 | fp16 | int8 (per-row scales)"),
    bundle: Path = BundleOpt,
    images: Optional[Path] = typer.Option(None, help="Good images to check on (default: the training data)."),
    eval_data: Optional[Path] = typer.Option(None, "--eval", help="MVTec-layout data: compare accuracy with fp32."),
):
    """Store the distance step's whitening factor in fewer bytes (checked against fp32 first)."""
    from cfnc_edge import api

    typer.echo(strict_json(api.set_factor_precision(bundle, precision, images, eval_data, log=_log), indent=2))


@app.command("build-engine")
def build_engine(
    bundle: Path = BundleOpt,
    precision: str = typer.Option("fp16", help="fp32 | fp16 | int8 (from model.onnx, model-fp16.onnx, model-int8.onnx)"),
    min_batch: int = typer.Option(1), opt_batch: int = typer.Option(8), max_batch: int = typer.Option(32),
    workspace_mib: int = typer.Option(1024, help="Builder workspace limit."),
):
    """Build a TensorRT engine on this GPU (kept in <bundle>/engines/ with its timing cache)."""
    from cfnc_edge import api

    info = api.build_engine(bundle, precision, min_batch, opt_batch, max_batch, workspace_mib, log=_log)
    typer.echo(strict_json(info, indent=2))


@app.command()
def doctor(bundle: Optional[Path] = typer.Option(None, "--bundle", "-b", help="Also say what auto picks for it.")):
    """What this machine can run: GPU, CUDA, TensorRT, CuPy, ONNX Runtime, and the kernel check."""
    from cfnc_edge import api

    rows = api.doctor(bundle)
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        typer.echo(f"{k:<{width}}  {v}")
