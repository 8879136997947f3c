"""`cfnc-edge compare`: which scorer to deploy for a dataset."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from cfnc_edge.cli.app import app
from cfnc_edge.cli.training import FcaOpt, IcaOpt, NcOpt, RecipeOpt


@app.command()
def compare(
    data: Path = typer.Argument(..., help="Dataset root in the MVTec AD layout (train/good, test/, ground_truth/)."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder for both bundles and compare.md."),
    backbone: str = typer.Option("efficientnet-lite0"),
    image_size: str = typer.Option("224", help="S (short side, aspect kept) or HxW, as for train."),
    steps: int = typer.Option(300, help="Training steps, where the recipe trains."),
    recipe: str = RecipeOpt,
    ica: Optional[bool] = IcaOpt,
    fca: Optional[bool] = FcaOpt,
    noncontrastive: Optional[bool] = NcOpt,
    bank_size: float = typer.Option(0.1, help="knn: bank size, fraction or count of good patches."),
    seed: int = typer.Option(0),
):
    """Fit the Gaussian and the memory bank on the same model, evaluate and time both, recommend one."""
    from cfnc_edge import api
    from cfnc_edge.api.validation import parse_image_size
    from cfnc_edge.model.coarse_to_fine import ModelConfig
    from cfnc_edge.model.train import TrainConfig

    rc = api.recipe(recipe, ica=ica, fca=fca, noncontrastive=noncontrastive)
    r = api.compare(data, out, ModelConfig(backbone=backbone, image_size=parse_image_size(image_size), ica=rc["ica"],
                                           fca=rc["fca"]),
                    TrainConfig(steps=steps, noncontrastive=rc["noncontrastive"], seed=seed), bank_size=bank_size,
                    log=lambda m: typer.echo(m, err=True))
    typer.echo(json.dumps({k: r[k] for k in ("recommended", "reason", "bundle")}, indent=2))
    typer.echo(f"report: {out / 'compare.md'}", err=True)
