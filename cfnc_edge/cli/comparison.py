"""`cfnc-edge compare`: which scorer to deploy for a dataset."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from cfnc_edge.cli.app import app


@app.command()
def compare(
    data: Path = typer.Argument(..., help="Dataset root in the MVTec AD layout (train/good, test/, ground_truth/)."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder for both bundles and compare.md."),
    backbone: str = typer.Option("efficientnet-lite0"),
    image_size: str = typer.Option("224", help="S (short side, aspect kept) or HxW, as for train."),
    epochs: int = typer.Option(10, help="Training epochs (0 with --no-ica --no-fca --no-noncontrastive: none)."),
    ica: bool = typer.Option(True, "--ica/--no-ica"),
    fca: bool = typer.Option(True, "--fca/--no-fca"),
    noncontrastive: bool = typer.Option(True, "--noncontrastive/--no-noncontrastive"),
    bank_size: float = typer.Option(0.1, help="knn: bank size, fraction or count of good patches."),
    seed: int = typer.Option(0),
):
    """Fit the Gaussian and the memory bank on the same model, evaluate and time both, recommend one."""
    from cfnc_edge import api
    from cfnc_edge.api.validation import parse_image_size
    from cfnc_edge.model.coarse_to_fine import ModelConfig
    from cfnc_edge.model.train import TrainConfig

    r = api.compare(data, out, ModelConfig(backbone=backbone, image_size=parse_image_size(image_size), ica=ica, fca=fca),
                    TrainConfig(epochs=epochs, noncontrastive=noncontrastive, seed=seed), bank_size=bank_size,
                    log=lambda m: typer.echo(m, err=True))
    typer.echo(json.dumps({k: r[k] for k in ("recommended", "reason", "bundle")}, indent=2))
    typer.echo(f"report: {out / 'compare.md'}", err=True)
