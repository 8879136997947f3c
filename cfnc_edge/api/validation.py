"""Options checked before any work starts.

Every API entry point passes its options through `check` first, so a bad
value fails in the first second with one line naming the option (as the CLI
spells it) and what it accepts, not after an hour of training or halfway
through a dataset.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from dataclasses import dataclass
from typing import Callable

from cfnc_edge.bundle.schema import MAX_SIDE
from cfnc_edge.data.tiling import MAX_OVERLAP
from cfnc_edge.errors import CfncError
from cfnc_edge.images import parse_size
from cfnc_edge.runtime.backends import BACKENDS
from cfnc_edge.scoring.factor import FACTOR_PRECISIONS


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _integer(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


@dataclass(frozen=True)
class Rule:
    flag: str
    ok: Callable[[object], bool]
    accepts: str


def _int_at_least(flag: str, low: int) -> Rule:
    return Rule(flag, lambda v: _integer(v) and v >= low, f"an integer of at least {low}")


def _positive(flag: str) -> Rule:
    return Rule(flag, lambda v: _number(v) and v > 0, "a finite number above 0")


def _choice(flag: str, options: tuple[str, ...]) -> Rule:
    return Rule(flag, lambda v: v in options, "one of " + ", ".join(options))


RULES = {
    "feature_dim": _int_at_least("--dim", 1),
    # checked side by side for [h, w] (check() walks lists)
    "image_size": Rule("--image-size", lambda v: _integer(v) and 16 <= v <= MAX_SIDE and v % 4 == 0,
                       f"S or HxW, each side an integer from 16 to {MAX_SIDE} and a multiple of 4 (features are at "
                       "stride 4; larger frames: --tile)"),
    "epochs": _int_at_least("--epochs", 0),
    "batch_size": _int_at_least("--batch-size", 1),
    "batch": _int_at_least("--batch", 1),
    "lr": _positive("--lr"),
    # also where no --tile is given: a bad value is a typo, not something to ignore
    "tile_overlap": Rule("--tile-overlap", lambda v: _number(v) and 0 <= v <= MAX_OVERLAP,
                         f"a fraction from 0 to {MAX_OVERLAP}"),
    "bank_size": _positive("--bank-size"),
    "max_bank": _int_at_least("--max-bank", 0),
    "lr_ica": _positive("--lr-ica"),
    "eps": _positive("--eps"),
    "steps": _int_at_least("--steps", 0),
    "lr_heads": _positive("--lr-heads"),
    "lr_backbone": Rule("--lr-backbone", lambda v: _number(v) and v >= 0,
                        "a finite number of at least 0 (0 freezes the backbone)"),
    "fine_levels": Rule("--fine-levels", lambda v: _integer(v) and 0 <= v <= 2,
                        "pyramid levels among 0, 1, 2 (strides 4, 8, 16), comma-separated, e.g. 0,1,2"),
    "folds": _int_at_least("--folds", 2),
    "target_fpr": Rule("--target-fpr", lambda v: _number(v) and 0 < v < 1, "a fraction in (0, 1), e.g. 0.01"),
    "covariance": _choice("--covariance", ("ledoit-wolf", "oas", "eps")),
    "scorer": _choice("--scorer", ("gaussian", "knn", "combined")),
    "recipe": _choice("--recipe", ("auto", "pretrained", "paper")),
    "budget": Rule("--budget", lambda v: _number(v) and v >= 1, "a number of at least 1 (the baseline alone)"),
    "head": _choice("--head", ("projection", "pooled", "combined")),
    "threshold": _positive("--threshold"),
    "seed": _int_at_least("--seed", 0),
    "n": _int_at_least("--n", 1),
    "method": _choice("--method", ("entropy", "percentile", "minmax")),
    "precision": _choice("--precision", ("fp32", "fp16", "int8")),
    "backend": _choice("--backend", BACKENDS),
    "factor_precision": _choice("--factor-precision", FACTOR_PRECISIONS),
    "min_batch": _int_at_least("--min-batch", 1),
    "opt_batch": _int_at_least("--opt-batch", 1),
    "max_batch": _int_at_least("--max-batch", 1),
    "workspace_mib": _int_at_least("--workspace-mib", 1),
    "max_frames": _int_at_least("--max-frames", 1),
    "drift_alarm": Rule("--drift-alarm", lambda v: v == 0 or (_number(v) and v > 1),
                        "a level above 1 (false alarms at most 1/level), or 0 to turn the drift alarm off"),
    "max_wait_ms": Rule("--max-wait-ms", lambda v: _number(v) and v >= 0, "a finite number of at least 0"),
    # as --web takes it: 0 asks the system for a free port
    "metrics_port": Rule("--metrics-port", lambda v: _integer(v) and 0 <= v <= 65535, "a port from 0 to 65535"),
    "repeats": _int_at_least("--repeats", 1),
    "warmup": _int_at_least("--warmup", 0),
    "on_error": _choice("--on-error", ("skip", "fail")),
    "device": Rule("--device", lambda v: isinstance(v, str) and re.fullmatch(r"auto|cpu|cuda(:\d+)?", v) is not None,
                   "auto, cpu, cuda or cuda:N"),
}


def parse_image_size(text: str | int) -> int | list[int]:
    """`--image-size`: "S" (short side S, the training images' aspect ratio kept:
    data/aspect.py) -> S; "HxW" (as given; "SxS" forces a square) -> [H, W]. Checked."""
    values = parse_size(text)
    if values is None:
        raise CfncError(f"--image-size must be S or HxW (e.g. 224 or 224x560), got {text!r}")
    check(image_size=values)
    return values[0] if len(values) == 1 else values


def parse_levels(text: str) -> tuple[int, ...]:
    """`--fine-levels`: "0,1,2" -> (0, 1, 2). Checked (check_levels)."""
    try:
        levels = tuple(int(v) for v in str(text).split(","))
    except ValueError:
        levels = ()
    check_levels(levels, text)
    return levels


def check_levels(levels, given=None) -> None:
    """Pyramid levels of the fine loss: each of 0, 1, 2 at most once, at least one."""
    if not levels or len(set(levels)) != len(levels):
        raise CfncError(f"--fine-levels must be distinct pyramid levels among 0, 1, 2, comma-separated "
                        f"(e.g. 0,1,2), got {given if given is not None else levels!r}")
    check(fine_levels=levels)


def check(**values) -> None:
    """CfncError for the first value its rule refuses; None means 'not given'."""
    for name, value in values.items():
        if value is None:
            continue
        for v in value if isinstance(value, (list, tuple)) else (value,):
            rule = RULES[name]
            if not rule.ok(v):
                raise CfncError(f"{rule.flag} must be {rule.accepts}, got {v!r}")


def check_folder(path, flag: str) -> None:
    """An output folder that may not exist yet, but is not a file: found first, not
    when the report is written after the whole run (a FileExistsError traceback)."""
    if path is not None and Path(path).exists() and not Path(path).is_dir():
        raise CfncError(f"{flag} {path} is a file; give a folder (it is made if missing)")
