"""`cfnc-edge`: a thin Typer CLI over the Python API (`cfnc_edge.api`).

Each command parses its options, calls one API function and prints; user
errors (`CfncError`) become one `error:` line and exit code 2.
"""

from __future__ import annotations

import sys
import warnings

import typer

from cfnc_edge.cli import (  # noqa: F401 - registers the commands
    bundles,
    comparison,
    deployment,
    inspection,
    serving,
    streaming,
    training,
)
from cfnc_edge.cli.app import app
from cfnc_edge.errors import CfncError


def _warning_line(message, category, filename, lineno, file=None, line=None) -> None:
    # the API warns through `warnings`; a CLI user wants the sentence, not the source line that raised it
    typer.secho(f"warning: {message}", fg=typer.colors.YELLOW, err=True)


def main() -> None:
    warnings.showwarning = _warning_line
    try:
        app()
    except CfncError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
