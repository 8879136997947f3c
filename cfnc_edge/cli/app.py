"""The Typer application every command module registers with."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer

from cfnc_edge.bundle import PUBLIC_KEY_ENV
from cfnc_edge.errors import CfncError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Coarse-to-fine non-contrastive anomaly detection: train, fit, evaluate, inspect.")

BundleOpt = typer.Option(..., "--bundle", "-b", help="Model bundle folder.")
TileOpt = typer.Option(None, "--tile", help="Cut frames into tiles, one map and verdict per frame: auto (tiles of "
                                            "the model input size) | S | HxW (frame pixels). Default: the bundle's.")
BackendOpt = typer.Option("auto", "--backend", help="auto (the fastest this machine and bundle support) | tensorrt "
                                                   "| torch-cuda | torch-cuda-graphs | openvino | onnxruntime | torch.")
PrecisionOpt = typer.Option("fp32", "--precision", help="fp32 | fp16 | int8 (the exported graph or engine of that "
                                                       "precision; fp32 for torch).")
TileOverlapOpt = typer.Option(0.0, "--tile-overlap", help="Fraction of a tile that neighbouring tiles share (0-0.9).")


@app.callback()
def _settings(public_key: Optional[Path] = typer.Option(
        None, "--public-key", envvar=PUBLIC_KEY_ENV,
        help="Require every bundle this run loads to be signed by this PEM public key.")):
    if public_key is not None:
        if not public_key.is_file():
            raise CfncError(f"--public-key {public_key} does not exist: pass the PEM public key of the signer")
        os.environ[PUBLIC_KEY_ENV] = str(public_key)  # every Bundle.open in this process checks it
