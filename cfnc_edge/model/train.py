"""Training (ICA + FCA + dense non-contrastive fine alignment) and resume.

The loss is lambda1 * L_ICA + lambda2 * L_FAS (paper Eq. 5). Optimiser as in
the paper's appendix: momentum SGD, lr 0.01 for ICA and 1e-4 for the rest,
weight decay 1e-5, one cosine cycle over all steps.

Checkpoints are safetensors + JSON (no pickle) in <bundle>/checkpoint/, written
after every epoch and on Ctrl-C; the shuffle of epoch e is seeded by
(seed, e), so a resumed run sees the same batches it would have seen.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save
from tqdm import tqdm

from cfnc_edge.bundle import atomic_write, sha256
from cfnc_edge.bundle.schema import dumps as strict_json
from cfnc_edge.errors import CheckpointError
from cfnc_edge.model.coarse_to_fine import CoarseToFine, ModelConfig
from cfnc_edge.model.losses import DenseSimSiam, ica_loss, partner_permutation

CHECKPOINT = "checkpoint"


@dataclass
class TrainConfig:
    epochs: int = 10
    batch_size: int = 32
    lr_ica: float = 0.01
    lr: float = 1e-4
    momentum: float = 0.9
    weight_decay: float = 1e-5
    lambda_ica: float = 1.0
    lambda_fine: float = 1.0
    noncontrastive: bool = True
    seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


class Trainer:
    def __init__(self, model: CoarseToFine, cfg: TrainConfig):
        self.model, self.cfg = model, cfg
        torch.manual_seed(cfg.seed)
        self.heads = (torch.nn.ModuleList(DenseSimSiam(c) for c in model.cfg.channels)
                      if cfg.noncontrastive else None)
        ica_params = list(model.ica.parameters()) if model.ica is not None else []
        ica_ids = {id(p) for p in ica_params}
        rest = [p for p in model.parameters() if id(p) not in ica_ids]
        if self.heads is not None:
            rest += list(self.heads.parameters())
        groups = [{"params": rest, "lr": cfg.lr, "base_lr": cfg.lr}]
        if ica_params:
            groups.append({"params": ica_params, "lr": cfg.lr_ica, "base_lr": cfg.lr_ica})
        self.opt = torch.optim.SGD(groups, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
        self.epoch, self.step_in_epoch, self.history = 0, 0, []
        self.epoch_sums: dict[str, float] = {}  # loss sums of the current epoch so far (kept across a resume)

    @property
    def trainable(self) -> bool:
        """Without ICA and without the fine alignment nothing has a loss: that is
        the PaDiM baseline (pretrained features, no training)."""
        return self.model.ica is not None or self.heads is not None

    def _set_modes(self) -> None:
        self.model.train()
        # Frozen BN statistics in the pretrained backbone: batches are small and
        # the features must stay those the Gaussian is later fitted on.
        self.model.stages.eval()
        if self.heads is not None:
            self.heads.train()

    def _lr_scale(self, step: int, total: int) -> float:
        return 0.5 * (1 + math.cos(math.pi * step / max(1, total)))

    def loss(self, batch_u8: torch.Tensor, step: int = 0) -> tuple[torch.Tensor, dict[str, float]]:
        perm = partner_permutation(batch_u8.shape[0], torch.Generator().manual_seed(self.cfg.seed * 7919 + step))
        x, _ = self.model.align_image(self.model.normalise(batch_u8))
        parts: dict[str, torch.Tensor] = {}
        if self.model.ica is not None:
            parts["ica"] = self.cfg.lambda_ica * ica_loss(x, perm)
        if self.heads is not None:
            taps = self.model.pyramid(x)
            fine = sum(h(t, perm) for h, t in zip(self.heads, taps)) / len(taps)
            parts["fine"] = self.cfg.lambda_fine * fine
        total = sum(parts.values())
        return total, {k: v.item() for k, v in parts.items()}

    def fit(self, images: torch.Tensor, checkpoint_dir: Path | None = None, progress: bool = True) -> list[dict]:
        """images: uint8 (N, 3, S, S). Returns the per-epoch loss history."""
        if not self.trainable or self.cfg.epochs == 0:
            return self.history
        n, bs = images.shape[0], min(self.cfg.batch_size, images.shape[0])
        if n < 2:
            raise ValueError("training needs at least 2 images")
        steps_per_epoch = n // bs  # drop the last partial batch: pairs need a full batch
        total = steps_per_epoch * self.cfg.epochs
        self._set_modes()
        try:
            while self.epoch < self.cfg.epochs:
                order = torch.randperm(n, generator=torch.Generator().manual_seed(self.cfg.seed * 1000 + self.epoch))
                sums = self.epoch_sums
                bar = tqdm(range(self.step_in_epoch, steps_per_epoch), desc=f"epoch {self.epoch + 1}/{self.cfg.epochs}",
                           disable=not progress, unit="batch", leave=False)
                t0 = time.perf_counter()
                for s in bar:
                    step = self.epoch * steps_per_epoch + s
                    scale = self._lr_scale(step, total)
                    for g in self.opt.param_groups:
                        g["lr"] = g["base_lr"] * scale
                    loss, parts = self.loss(images[order[s * bs:(s + 1) * bs]], step)
                    self.opt.zero_grad(set_to_none=True)
                    loss.backward()
                    self.opt.step()
                    self.step_in_epoch = s + 1
                    for k, v in parts.items():
                        sums[k] = sums.get(k, 0.0) + v
                    bar.set_postfix({k: f"{v:.4f}" for k, v in parts.items()})
                done = max(1, steps_per_epoch)
                record = {"epoch": self.epoch + 1, "seconds": round(time.perf_counter() - t0, 2),
                          **{k: v / done for k, v in sums.items()}}
                self.history.append(record)
                if progress:
                    tqdm.write(f"epoch {record['epoch']} ({record['seconds']:.1f} s): " +
                               ", ".join(f"{k} loss {record[k]:.4f}" for k in sums))
                self.epoch, self.step_in_epoch, self.epoch_sums = self.epoch + 1, 0, {}
                if checkpoint_dir is not None:
                    self.save_checkpoint(checkpoint_dir)
        except KeyboardInterrupt:
            if checkpoint_dir is not None:
                self.save_checkpoint(checkpoint_dir)
                tqdm.write(f"interrupted: checkpoint saved in {checkpoint_dir}; continue with --resume")
            raise
        finally:
            self.model.eval()
        return self.history

    # ---- checkpoints ---------------------------------------------------
    def _tensors(self) -> dict[str, torch.Tensor]:
        out = {f"model.{k}": v for k, v in self.model.state_dict().items()}
        if self.heads is not None:
            out.update({f"heads.{k}": v for k, v in self.heads.state_dict().items()})
        for i, st in self.opt.state_dict()["state"].items():
            if st.get("momentum_buffer") is not None:
                out[f"opt.{i}"] = st["momentum_buffer"]
        return {k: v.detach().contiguous().clone() for k, v in out.items()}

    def save_checkpoint(self, folder: Path) -> None:
        folder = Path(folder)
        data = save(self._tensors())
        atomic_write(folder / "train.safetensors", data)
        # the state names the tensors it belongs to: a crash between the two
        # writes is then refused on resume, never a silent mismatch
        state = {"epoch": self.epoch, "step_in_epoch": self.step_in_epoch, "history": self.history,
                 "epoch_sums": self.epoch_sums, "tensors_sha256": hashlib.sha256(data).hexdigest(),
                 "train": self.cfg.to_dict(), "model": self.model.cfg.to_dict()}
        atomic_write(folder / "train_state.json", strict_json(state, indent=2).encode())

    def load_checkpoint(self, folder: Path) -> None:
        folder = Path(folder)
        state = _read_state(folder)
        try:
            tensors = load_file(str(folder / "train.safetensors"))
        except Exception as exc:  # safetensors raises its own error type on a damaged header
            raise CheckpointError(f"checkpoint {folder / 'train.safetensors'} is corrupt ({exc}); delete {folder} "
                                  "and train without --resume") from None
        self.model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        if self.heads is not None:
            self.heads.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("heads.")})
        opt_state = self.opt.state_dict()
        for k, v in tensors.items():
            if k.startswith("opt."):
                opt_state["state"][int(k[4:])] = {"momentum_buffer": v}
        self.opt.load_state_dict(opt_state)
        self.epoch, self.step_in_epoch = state["epoch"], state["step_in_epoch"]
        self.history, self.epoch_sums = state["history"], dict(state.get("epoch_sums", {}))


def _read_state(folder: Path) -> dict:
    """The checkpoint's state, checked: parseable, complete, and matching its tensors file."""
    fix = f"delete {folder} and train without --resume"
    try:
        state = json.loads((folder / "train_state.json").read_text())
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"checkpoint {folder / 'train_state.json'} is unreadable ({exc}); {fix}") from None
    need = {"epoch": int, "step_in_epoch": int, "history": list, "train": dict, "model": dict}
    bad = [k for k, t in need.items() if not isinstance(state, dict) or not isinstance(state.get(k), t)]
    if bad:
        raise CheckpointError(f"checkpoint {folder} is incomplete or corrupt (field {bad[0]}); {fix}")
    for key, cls in (("model", ModelConfig), ("train", TrainConfig)):
        unknown = set(state[key]) - {f.name for f in fields(cls)}
        if unknown:
            raise CheckpointError(f"checkpoint {folder}: unknown {key} setting(s) {sorted(unknown)}; {fix}")
    tensors = folder / "train.safetensors"
    if not tensors.is_file():
        raise CheckpointError(f"checkpoint {folder} has no train.safetensors; {fix}")
    if "tensors_sha256" in state and sha256(tensors) != state["tensors_sha256"]:
        raise CheckpointError(f"checkpoint {tensors} does not match its state (corrupt or written by an "
                              f"interrupted save); {fix}")
    return state


def read_checkpoint_config(folder: Path) -> tuple[dict, dict]:
    """(model config, train config) a checkpoint was started with; CheckpointError if it is corrupt."""
    state = _read_state(Path(folder))
    return state["model"], state["train"]


def load_images(paths: list[Path], size: int, progress: bool = True) -> np.ndarray:
    from cfnc_edge.images import preprocess, read_image

    out = np.empty((len(paths), 3, size, size), dtype=np.uint8)
    for i, p in enumerate(tqdm(paths, desc="loading images", disable=not progress, unit="img", leave=False)):
        out[i] = preprocess([read_image(p)], size)[0]
    return out
