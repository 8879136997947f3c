"""The Typer application every command module registers with."""

from __future__ import annotations

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Coarse-to-fine non-contrastive anomaly detection: train, fit, evaluate, inspect.")

BundleOpt = typer.Option(..., "--bundle", "-b", help="Model bundle folder.")
