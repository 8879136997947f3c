"""Inspection commands: eval, infer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from cfnc_edge.bundle.schema import dumps as strict_json
from cfnc_edge.cli.app import BackendOpt, BundleOpt, PrecisionOpt, TileOpt, TileOverlapOpt, app


@app.command("eval")
def eval_(
    bundle: Path = BundleOpt,
    data: Path = typer.Argument(..., help="Dataset root in the MVTec AD layout (reads test/, ground_truth/)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Report folder (Markdown + PNG)."),
    backend: str = BackendOpt,
    precision: str = PrecisionOpt,
    threshold: Optional[float] = typer.Option(None),
    batch_size: int = typer.Option(8),
    on_error: str = typer.Option("skip", help="skip | fail: what an unreadable image or mask does."),
    tile: Optional[str] = TileOpt,
    tile_overlap: float = TileOverlapOpt,
):
    """Image AUROC, pixel AUROC and PRO, overall and per defect type (exit 1 if images were skipped)."""
    from cfnc_edge import api

    r = api.evaluate(bundle, data, out, api.InspectOptions(backend, precision, threshold, tile, tile_overlap),
                     batch_size, on_error=on_error)
    typer.echo(strict_json(r.to_dict(), indent=2))
    if out is not None:
        typer.echo(f"report: {out / 'report.md'}", err=True)
    _exit_if_skipped(len(r.skipped), [s["error"] for s in r.skipped])


@app.command()
def infer(
    inputs: list[Path] = typer.Argument(..., help="Image files or folders."),
    bundle: Optional[Path] = typer.Option(None, "--bundle", "-b", help="Model bundle folder (or use --server)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Folder for heatmap PNGs."),
    backend: str = BackendOpt,
    precision: str = PrecisionOpt,
    threshold: Optional[float] = typer.Option(None, help="Override the bundle's threshold."),
    batch_size: int = typer.Option(8),
    on_error: str = typer.Option("skip", help="skip | fail: what an unreadable image does."),
    server: Optional[str] = typer.Option(None, help="Score on a `cfnc-edge serve` server: grpc://HOST:PORT."),
    model: Optional[str] = typer.Option(None, help="The server's model to use (default: cfnc)."),
    tile: Optional[str] = TileOpt,
    tile_overlap: float = TileOverlapOpt,
):
    """Score images: one JSON line per image (score, verdict, or error) on stdout; exit 1 if any was skipped."""
    from cfnc_edge.api import InspectOptions, infer_paths

    counts, errors = {"images": 0, "skipped": 0}, []
    for line in infer_paths(inputs, bundle, out, InspectOptions(backend, precision, threshold, tile, tile_overlap),
                            batch_size, on_error, server, model):
        typer.echo(strict_json(line))
        counts["images"] += 1
        if "error" in line:
            counts["skipped"] += 1
            errors.append(line["error"])
    typer.echo("summary: " + json.dumps(counts), err=True)
    _exit_if_skipped(counts["skipped"], errors)


def _exit_if_skipped(n: int, errors: list[str]) -> None:
    """Skipped images are reported on stderr and make the exit code 1 (2 is a usage error)."""
    if n:
        typer.secho(f"warning: {n} unreadable image(s) skipped, first: {errors[0]}", fg=typer.colors.YELLOW,
                    err=True)
        raise typer.Exit(1)
