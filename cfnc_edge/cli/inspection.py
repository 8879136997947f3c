"""Inspection commands: eval, infer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from cfnc_edge.cli.app import BundleOpt, app


@app.command("eval")
def eval_(
    bundle: Path = BundleOpt,
    data: Path = typer.Argument(..., help="Dataset root in the MVTec AD layout (reads test/, ground_truth/)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Report folder (Markdown + PNG)."),
    backend: str = typer.Option("auto"),
    precision: str = typer.Option("fp32"),
    threshold: Optional[float] = typer.Option(None),
    batch_size: int = typer.Option(8),
):
    """Image AUROC, pixel AUROC and PRO, overall and per defect type."""
    from cfnc_edge import api

    r = api.evaluate(bundle, data, out, backend, precision, threshold, batch_size)
    typer.echo(json.dumps(r.to_dict(), indent=2))
    if out is not None:
        typer.echo(f"report: {out / 'report.md'}", err=True)


@app.command()
def infer(
    inputs: list[Path] = typer.Argument(..., help="Image files or folders."),
    bundle: Optional[Path] = typer.Option(None, "--bundle", "-b", help="Model bundle folder (or use --server)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Folder for heatmap PNGs."),
    backend: str = typer.Option("auto"),
    precision: str = typer.Option("fp32"),
    threshold: Optional[float] = typer.Option(None, help="Override the bundle's threshold."),
    batch_size: int = typer.Option(8),
    server: Optional[str] = typer.Option(None, help="Score on a `cfnc-edge serve` server: grpc://HOST:PORT."),
    model: Optional[str] = typer.Option(None, help="The server's model to use (default: cfnc)."),
):
    """Score images: one JSON line per image (score, verdict) on stdout."""
    from cfnc_edge.api import infer_paths

    for line in infer_paths(inputs, bundle, out, backend, precision, threshold, batch_size, server, model):
        typer.echo(json.dumps(line))
