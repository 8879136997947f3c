"""Serving side of the API: serve bundles on Triton, inspect through a server."""

from __future__ import annotations

from pathlib import Path

from cfnc_edge.api.validation import check
from cfnc_edge.errors import CfncError
from cfnc_edge.serve.client import RemoteInspector
from cfnc_edge.serve.protocol import DEFAULT_MODEL
from cfnc_edge.serve.server import MODEL_NAME, ServeOptions
from cfnc_edge.serve.server import serve as _serve


def parse_bundles(specs: list[str]) -> dict[str, Path]:
    """`NAME=PATH` or `PATH` (served as the default model, `cfnc`) -> {model name: bundle path}."""
    named: dict[str, Path] = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep or not MODEL_NAME.match(name) or Path(spec).exists():
            name, path = DEFAULT_MODEL, spec
        if name in named:
            raise CfncError(f"two bundles would be served as {name!r}: name them with --bundle NAME=PATH")
        named[name] = Path(path)
    return named


def serve(bundles: dict[str, Path | str] | list[str], options: ServeOptions | None = None, log=print) -> None:
    """Serve bundles ({model name: path}, or `NAME=PATH` / `PATH` strings) on
    Triton Inference Server until SIGINT; see `cfnc_edge.serve.server.serve`."""
    if options is not None:  # a bad backend or precision is one line before Triton starts
        check(backend=options.backend, precision=options.precision)
    _serve(parse_bundles(bundles) if isinstance(bundles, list) else bundles, options, log)


def connect(server: str, model: str | None = None, maps: bool = False, **kwargs) -> RemoteInspector:
    """A client for a `cfnc-edge serve` server that is called like an Inspector
    (`grpc://HOST:PORT`; `model` defaults to `cfnc`, the model of a bundle served without a name)."""
    return RemoteInspector(server, model, maps, **kwargs)
