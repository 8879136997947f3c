"""Training checkpoints: safetensors + JSON (no pickle) in <bundle>/checkpoint/.

The tensors file holds the model's, the heads' and the optimiser's tensors;
the state file the step, the progress history, the configs the run was
started with and the sha256 of the tensors file it belongs to. Both are
written atomically, tensors first: a crash between the two writes leaves a
state naming other tensors, which is refused on resume, never a silent
mismatch. Every way a checkpoint can be damaged is one CheckpointError that
says to train without --resume.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import fields
from pathlib import Path

import torch
from safetensors.torch import load_file, save

from cfnc_edge.bundle import atomic_write, sha256
from cfnc_edge.bundle.schema import dumps as strict_json
from cfnc_edge.errors import CheckpointError

CHECKPOINT = "checkpoint"  # the folder in the bundle
TENSORS = "train.safetensors"
STATE = "train_state.json"


def write(folder: Path, tensors: dict[str, torch.Tensor], state: dict) -> None:
    """Write `tensors` and `state` (JSON-able) as the checkpoint in `folder`."""
    folder = Path(folder)
    data = save(tensors)
    atomic_write(folder / TENSORS, data)
    atomic_write(folder / STATE, strict_json({**state, "tensors_sha256": hashlib.sha256(data).hexdigest()},
                                             indent=2).encode())


def read_state(folder: Path, configs: dict[str, type]) -> dict:
    """The checkpoint's state, checked: parseable, complete, matching its
    tensors file, and each `configs` entry (state key -> config dataclass)
    holding only that dataclass's fields."""
    folder = Path(folder)
    fix = f"delete {folder} and train without --resume"
    try:
        state = json.loads((folder / STATE).read_text())
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"checkpoint {folder / STATE} is unreadable ({exc}); {fix}") from None
    need = {"step": int, "history": list, **{key: dict for key in configs}}
    bad = [k for k, t in need.items() if not isinstance(state, dict) or not isinstance(state.get(k), t)]
    if bad:
        raise CheckpointError(f"checkpoint {folder} is incomplete or corrupt (field {bad[0]}); {fix}")
    for key, cls in configs.items():
        unknown = set(state[key]) - {f.name for f in fields(cls)}
        if unknown:
            raise CheckpointError(f"checkpoint {folder}: unknown {key} setting(s) {sorted(unknown)}; {fix}")
    tensors = folder / TENSORS
    if not tensors.is_file():
        raise CheckpointError(f"checkpoint {folder} has no {TENSORS}; {fix}")
    if "tensors_sha256" in state and sha256(tensors) != state["tensors_sha256"]:
        raise CheckpointError(f"checkpoint {tensors} does not match its state (corrupt or written by an "
                              f"interrupted save); {fix}")
    return state


def load_tensors(folder: Path) -> dict[str, torch.Tensor]:
    path = Path(folder) / TENSORS
    try:
        return load_file(str(path))
    except Exception as exc:  # safetensors raises its own error type on a damaged header
        raise CheckpointError(f"checkpoint {path} is corrupt ({exc}); delete {Path(folder)} "
                              "and train without --resume") from None
