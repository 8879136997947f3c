"""Bundle care: `bundle verify`, `bundle rollback`, `bundle keygen`, `sign`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from cfnc_edge.cli.app import BundleOpt, app

bundle_app = typer.Typer(no_args_is_help=True, help="Check, roll back and sign model bundles.")
app.add_typer(bundle_app, name="bundle")


@bundle_app.command()
def verify(
    bundle: Path = BundleOpt,
    public_key: Optional[Path] = typer.Option(None, "--public-key", help="Also check the signature with this PEM key."),
):
    """Check everything: schema, checksums, unlisted files, signature, ONNX provenance."""
    from cfnc_edge import api

    rows = api.verify_bundle(bundle, public_key)
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        typer.echo(f"{k:<{width}}  {v}")


@bundle_app.command()
def rollback(bundle: Path = BundleOpt):
    """Make the previous version of the bundle current again."""
    from cfnc_edge import api

    b = api.rollback_bundle(bundle)
    typer.echo(f"{bundle} is back at revision {b.manifest['revision']['number']}", err=True)


@bundle_app.command()
def keygen(
    private_key: Path = typer.Option(..., "--private-key", help="Where to write the private key (PEM, mode 600)."),
    public_key: Path = typer.Option(..., "--public-key", help="Where to write the public key (PEM)."),
):
    """Make an EC P-256 key pair for `cfnc-edge sign`."""
    from cfnc_edge import api

    api.make_keys(private_key, public_key)
    typer.echo(f"wrote {private_key} (keep it secret) and {public_key} (give it to devices)", err=True)


@app.command()
def sign(bundle: Path = BundleOpt, key: Path = typer.Option(..., "--key", help="PEM EC private key.")):
    """Sign every file of a bundle; devices check it with --public-key or $CFNC_EDGE_PUBLIC_KEY."""
    from cfnc_edge import api

    b = api.sign_bundle(bundle, key)
    typer.echo(f"signed {bundle} (revision {b.manifest['revision']['number']})", err=True)
