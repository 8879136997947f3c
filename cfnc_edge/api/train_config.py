"""`train --config FILE`: the options of a training as a TOML file, and that file in the bundle.

Keys are `train`'s option names as typed on the command line, without the
dashes (`steps`, `image-size`, `dim`, `recipe`, ...), plus `data` for the
dataset root. What a training was asked with (the file's options and those
given on the command line) is written into the bundle as `train-config.toml`,
listed with its hash like every other file (so covered by a signature), and
`cfnc-edge train --config BUNDLE/train-config.toml` asks for the same
training again. Options not in it take the command's defaults, as they did.

TOML only: tomllib is in the standard library, and PyYAML is not a
dependency of the package.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

from cfnc_edge.errors import CfncError

TRAIN_CONFIG = "train-config.toml"


def read_config(path: Path) -> dict:
    """The table of a TOML config file; CfncError (one line) if it cannot be read or parsed."""
    try:
        return tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise CfncError(f"--config {path}: cannot be read ({exc.strerror or exc})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise CfncError(f"--config {path} is not TOML: {exc}") from None


def _value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    return json.dumps(str(v), ensure_ascii=False)  # a JSON string is a TOML basic string


def config_text(options: dict) -> str:
    """TOML for flat options {key: str | int | float | bool | list} (tomllib reads, it does not write)."""
    head = ("# cfnc-edge train: the options this bundle was trained with (a file's and the command line's);\n"
            "# `cfnc-edge train --config THIS_FILE` asks for the same training. Others: the defaults.\n")
    return head + "".join(f"{k} = {_value(v)}\n" for k, v in options.items())
