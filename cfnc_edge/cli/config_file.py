"""`--config FILE`: a TOML file's options for a command, under the command line's.

Keys are the command's option names as typed, without the dashes
(`--image-size` -> `image-size`; a flag pair `--ica/--no-ica` -> `ica`,
true or false), and its arguments' names (`data`). An unknown key or a value
of the wrong type is refused in one line naming the key; ranges are checked
by the API's RULES as for the command line. An option given on the command
line wins over the file.
"""

from __future__ import annotations

import inspect
import typing
from pathlib import Path

import typer

from cfnc_edge.api.train_config import read_config
from cfnc_edge.errors import CfncError


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


# a parameter's annotated type -> (what the file must hold, the check, the conversion)
_TYPES = {bool: ("true or false", lambda v: isinstance(v, bool), bool),
          int: ("an integer", lambda v: _number(v) and isinstance(v, int), int),
          float: ("a number", _number, float),
          # a number is taken for a text option too (image-size = 224 as well as "224x560")
          str: ("a string", lambda v: isinstance(v, str) or (_number(v) and isinstance(v, int)), str),
          Path: ("a path (a string)", lambda v: isinstance(v, str), Path)}


def _types(ctx: typer.Context) -> dict[str, type]:
    """Each parameter's type, from the command function's annotations (Optional[X] -> X):
    Typer's parameters do not all carry a click type."""
    hints = typing.get_type_hints(inspect.unwrap(ctx.command.callback))
    return {name: next((a for a in typing.get_args(t) if a is not type(None)), t) for name, t in hints.items()}


def option_key(param) -> str:
    """The key a command's parameter has in a config file."""
    longs = [o for o in getattr(param, "opts", []) if o.startswith("--")]
    return longs[0][2:] if longs and param.param_type_name == "option" else param.name


def given_on_command_line(ctx: typer.Context, name: str) -> bool:
    # compared by name: the ParameterSource enum is Typer's own click's, not necessarily the installed click's
    return getattr(ctx.get_parameter_source(name), "name", None) == "COMMANDLINE"


def with_config(ctx: typer.Context, path: Path | None) -> tuple[dict, set[str]]:
    """The command's values (by parameter name) with the file's in place of those the
    command line did not give, and the names given on either."""
    values = dict(ctx.params)
    given = {name for name in values if given_on_command_line(ctx, name)}
    if path is None:
        return values, given
    params, types = {option_key(p): p for p in ctx.command.params if p.name != "config"}, _types(ctx)
    for key, value in read_config(path).items():
        param = params.get(key)
        if param is None:
            raise CfncError(f"--config {path}: unknown key {key!r}; the keys are the command's option names "
                            "without the dashes, e.g. steps, image-size, dim")
        what, ok, convert = _TYPES.get(types.get(param.name), _TYPES[str])
        if not ok(value):
            raise CfncError(f"--config {path}: {key} must be {what}, got {value!r}")
        if param.name not in given:
            values[param.name] = convert(value)
            given.add(param.name)
    return values, given


def as_config(ctx: typer.Context, values: dict, names: set[str]) -> dict:
    """The values of `names` as config keys and file values (in the command's own order)."""
    return {option_key(p): str(values[p.name]) if isinstance(values[p.name], Path) else values[p.name]
            for p in ctx.command.params if p.name in names and p.name != "config" and values[p.name] is not None}
