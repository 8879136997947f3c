"""Training (ICA + FCA + dense non-contrastive fine alignment) and resume.

The loss is lambda1 * L_ICA + lambda2 * L_FAS (paper Eq. 5), momentum SGD,
weight decay 1e-5, one cosine cycle over all steps. Learning rates come in
three groups:

- the pretrained backbone and FCA keep the paper's small lr (1e-4);
- ICA keeps the paper's 0.01;
- the randomly initialised SimSiam heads get SimSiam's base lr 0.05, with
  the predictor at a fixed lr (no decay) as in SimSiam. At the paper's 1e-4 the heads barely move in a few hundred steps:
  the dense loss stays near 0 (cosine near 0) and the backbone receives no
  useful gradient (issue 9).

The budget is a number of optimisation steps, not epochs: a factory dataset
of 50 images is 1 step per epoch at batch 32. `epochs` is still accepted and
converted. Progress is recorded every `steps / REPORTS` steps: the fine loss,
the std of the l2-normalised encoder outputs (about 1/sqrt(width) when
healthy, 0 when collapsed) and the ICA angles of the batches. A collapse
(std under COLLAPSE_STD of its healthy value) stops training and restores the
weights of the last healthy report.

Checkpoints (model/checkpoint.py) are written at every report and on Ctrl-C;
the shuffle of pass e over the data is seeded by (seed, e), so a resumed run
sees the same batches it would have seen.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from cfnc_edge.errors import CfncError
from cfnc_edge.model import checkpoint
from cfnc_edge.model.alignment import ica_angle_degrees
from cfnc_edge.model.coarse_to_fine import CoarseToFine, ModelConfig
from cfnc_edge.model.losses import DenseSimSiam, ica_loss, partner_permutation

REPORTS = 20  # progress records (and checkpoints) per run
COLLAPSE_STD = 0.1  # fraction of the healthy 1/sqrt(width) below which the encoder has collapsed
# SimSiam's base lr. Not scaled by batch/256 as SimSiam does: that rule is for
# ~100k steps at batch 512; at batch 4-32 and a few hundred steps it leaves the
# heads where they started (fine loss -0.02 after 60 steps at 0.05*4/256 on
# the tiny synthetic set, test_fine_loss_falls_on_a_tiny_synthetic_run).
HEAD_LR = 0.05
DEFAULT_STEPS = 300  # GPU default; `--steps 60 --batch-size 16` is the 2-core CPU setting


@dataclass
class TrainConfig:
    steps: int = DEFAULT_STEPS
    epochs: int | None = None  # if set, overrides steps: epochs * (images // batch)
    batch_size: int = 32
    lr_ica: float = 0.01
    lr: float = 1e-4  # pretrained backbone and FCA
    lr_backbone: float | None = None  # the backbone's own lr (None: lr); 0 freezes it: only the alignment trains
    lr_heads: float = HEAD_LR  # SimSiam heads
    fixed_predictor_lr: bool = True
    momentum: float = 0.9
    weight_decay: float = 1e-5
    lambda_ica: float = 1.0
    lambda_fine: float = 1.0
    noncontrastive: bool = True
    fine_levels: tuple[int, ...] = (0, 1, 2)  # pyramid levels (strides 4, 8, 16) the fine loss is applied at
    seed: int = 0

    def __post_init__(self):
        self.fine_levels = tuple(self.fine_levels)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["fine_levels"] = list(self.fine_levels)
        return d

    def total_steps(self, n_images: int) -> int:
        if self.epochs is None:
            return self.steps
        return self.epochs * max(1, n_images // min(self.batch_size, n_images))


# the configs a checkpoint's state records, checked on resume
_CONFIGS = {"model": ModelConfig, "train": TrainConfig}


def resolve_device(device: str = "auto") -> torch.device:
    """"auto": the first CUDA GPU when PyTorch sees one, else the CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise CfncError(f"--device {device}: PyTorch sees no CUDA GPU here (torch {torch.__version__}, "
                        f"built for CUDA {torch.version.cuda}); use --device cpu, or `cfnc-edge doctor` for why")
    dev = torch.device(device)
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise CfncError(f"--device {device}: PyTorch sees {torch.cuda.device_count()} CUDA GPU(s), numbered from 0")
    return dev


class Trainer:
    """Trains `model` where its weights are (move it first: `model.to(device)`);
    the images stay in host memory and go over one batch at a time."""

    def __init__(self, model: CoarseToFine, cfg: TrainConfig):
        self.model, self.cfg = model, cfg
        self.device = model.mean.device
        torch.manual_seed(cfg.seed)
        self.heads = (torch.nn.ModuleList(DenseSimSiam(model.cfg.channels[i]) for i in cfg.fine_levels).to(self.device)
                      if cfg.noncontrastive else None)
        ica_params = list(model.ica.parameters()) if model.ica is not None else []
        lr_backbone = cfg.lr if cfg.lr_backbone is None else cfg.lr_backbone
        backbone = {id(p) for p in model.stages.parameters()}
        for p in model.stages.parameters():  # frozen: gradients still flow through it to the FCA modules below
            p.requires_grad_(lr_backbone > 0)
        ica_ids = {id(p) for p in ica_params}
        rest = [p for p in model.parameters() if id(p) not in ica_ids]
        if lr_backbone == cfg.lr:  # one group in parameter order, as checkpoints before lr_backbone hold it
            split = [(rest, cfg.lr)]
        else:
            split = [([p for p in rest if id(p) not in backbone], cfg.lr),
                     ([p for p in rest if id(p) in backbone], lr_backbone)]
        groups = [{"params": g, "lr": lr, "base_lr": lr, "decay": True} for g, lr in split if g and lr > 0]
        if ica_params:
            groups.append({"params": ica_params, "lr": cfg.lr_ica, "base_lr": cfg.lr_ica, "decay": True})
        if self.heads is not None:
            hl = cfg.lr_heads
            groups.append({"params": [p for h in self.heads for p in h.f.parameters()],
                           "lr": hl, "base_lr": hl, "decay": True})
            groups.append({"params": [p for h in self.heads for p in h.g.parameters()],
                           "lr": hl, "base_lr": hl, "decay": not cfg.fixed_predictor_lr})
        self.opt = torch.optim.SGD(groups, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
        self.step, self.history = 0, []
        # the current report's running sums (kept across a resume, so a resumed
        # report averages all of its steps, not only those after the resume)
        self.window: dict = {"sums": {}, "count": 0, "angles": []}
        self._healthy: tuple[int, dict] | None = None  # (step, weights) of the last healthy report

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

    @staticmethod
    def _lr_scale(step: int, total: int) -> float:
        return 0.5 * (1 + math.cos(math.pi * step / max(1, total)))

    def loss(self, batch_u8: torch.Tensor, step: int = 0) -> tuple[torch.Tensor, dict[str, float]]:
        perm = partner_permutation(batch_u8.shape[0], torch.Generator().manual_seed(self.cfg.seed * 7919 + step))
        perm = perm.to(batch_u8.device)
        x, theta = self.model.align_image(self.model.normalise(batch_u8))
        parts: dict[str, torch.Tensor] = {}
        stats: dict[str, float] = {}
        if self.model.ica is not None:
            parts["ica"] = self.cfg.lambda_ica * ica_loss(x, perm)
            stats["ica_angle_deg"] = ica_angle_degrees(theta.detach().cpu().numpy())
        if self.heads is not None:
            taps = self.model.pyramid(x)
            fine, std = 0.0, 0.0
            for h, lvl in zip(self.heads, self.cfg.fine_levels):
                loss_l, z = h(taps[lvl], perm, return_z=True)
                fine = fine + loss_l
                std += encoder_std(z) * math.sqrt(z.shape[1])  # 1 when healthy, 0 when collapsed
            parts["fine"] = self.cfg.lambda_fine * fine / len(self.heads)
            stats["encoder_std"] = std / len(self.heads)
        total = sum(parts.values())
        return total, {**{k: v.item() for k, v in parts.items()}, **stats}

    def fit(self, images: torch.Tensor, checkpoint_dir: Path | None = None, progress: bool = True) -> list[dict]:
        """images: uint8 (N, 3, h, w). Returns the progress history (one record per report)."""
        n = images.shape[0]
        total = self.cfg.total_steps(n)
        if not self.trainable or total == 0:
            return self.history
        if n < 2:
            raise ValueError("training needs at least 2 images")
        bs = min(self.cfg.batch_size, n)
        # the weights training (or a resumed run) starts from are healthy by definition: a
        # collapse at the first report restores them
        self._healthy = self._healthy or (self.step, self._snapshot())
        per_pass = n // bs  # drop the last partial batch: pairs need a full batch
        every = max(1, math.ceil(total / REPORTS))
        self._set_modes()
        w, t0 = self.window, time.perf_counter()
        bar = tqdm(total=total, initial=self.step, desc="training", disable=not progress, unit="step", leave=False)
        try:
            while self.step < total:
                epoch, s = divmod(self.step, per_pass)
                order = torch.randperm(n, generator=torch.Generator().manual_seed(self.cfg.seed * 1000 + epoch))
                scale = self._lr_scale(self.step, total)
                for g in self.opt.param_groups:
                    g["lr"] = g["base_lr"] * (scale if g["decay"] else 1.0)
                batch = images[order[s * bs:(s + 1) * bs]].to(self.device, non_blocking=True)
                loss, parts = self.loss(batch, self.step)
                self.opt.zero_grad(set_to_none=True)
                loss.backward()
                self.opt.step()
                self.step += 1
                if "ica_angle_deg" in parts:
                    w["angles"] += parts.pop("ica_angle_deg").tolist()
                for k, v in parts.items():
                    w["sums"][k] = w["sums"].get(k, 0.0) + v
                w["count"] += 1
                bar.update(1)
                if self.step % every == 0 or self.step == total:
                    record = self._record(epoch, w["sums"], w["count"], w["angles"], time.perf_counter() - t0)
                    w = self.window = {"sums": {}, "count": 0, "angles": []}
                    t0 = time.perf_counter()
                    if progress:
                        tqdm.write("step {step}: ".format(**record) + ", ".join(
                            f"{k} {record[k]:.4f}" for k in ("ica", "fine", "encoder_std") if k in record))
                    if self._collapsed(record):
                        break
                    if checkpoint_dir is not None:
                        self.save_checkpoint(checkpoint_dir)
        except KeyboardInterrupt:
            if checkpoint_dir is not None:
                self.save_checkpoint(checkpoint_dir)
                tqdm.write(f"interrupted: checkpoint saved in {checkpoint_dir}; continue with --resume")
            raise
        finally:
            bar.close()
            self.model.eval()
        return self.history

    def _record(self, epoch: int, sums: dict, count: int, angles: list, seconds: float) -> dict:
        record = {"step": self.step, "epoch": epoch + 1, "seconds": round(seconds, 2),
                  **{k: v / count for k, v in sums.items()}}
        if angles:
            a = torch.tensor(angles)
            record["ica_angle_mean"], record["ica_angle_std"] = float(a.mean()), float(a.std(unbiased=False))
        self.history.append(record)
        return record

    def _collapsed(self, record: dict) -> bool:
        """Stop and restore the last healthy weights if the encoder collapsed."""
        if record.get("encoder_std", 1.0) >= COLLAPSE_STD:
            self._healthy = (self.step, self._snapshot())
            return False
        step, weights = self._healthy
        record["collapsed"], record["restored_step"] = True, step
        warnings.warn(f"the fine-alignment encoder collapsed at step {self.step} (normalised std "
                      f"{record['encoder_std']:.3f}); training stopped and the weights of step {step} restored. "
                      "Lower --lr-heads or --steps.", RuntimeWarning, stacklevel=3)
        self.model.load_state_dict(weights)
        return True

    def _snapshot(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in self.model.state_dict().items()}

    # ---- checkpoints ---------------------------------------------------
    def _tensors(self) -> dict[str, torch.Tensor]:
        out = {f"model.{k}": v for k, v in self.model.state_dict().items()}
        if self.heads is not None:
            out.update({f"heads.{k}": v for k, v in self.heads.state_dict().items()})
        for i, st in self.opt.state_dict()["state"].items():
            if st.get("momentum_buffer") is not None:
                out[f"opt.{i}"] = st["momentum_buffer"]
        return {k: v.detach().cpu().contiguous().clone() for k, v in out.items()}

    def save_checkpoint(self, folder: Path) -> None:
        checkpoint.write(folder, self._tensors(), {
            "step": self.step, "history": self.history, "window": self.window,
            "train": self.cfg.to_dict(), "model": self.model.cfg.to_dict()})

    def load_checkpoint(self, folder: Path) -> None:
        state = checkpoint.read_state(folder, _CONFIGS)
        tensors = checkpoint.load_tensors(folder)
        self.model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        if self.heads is not None:
            self.heads.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("heads.")})
        opt_state = self.opt.state_dict()
        for k, v in tensors.items():
            if k.startswith("opt."):
                opt_state["state"][int(k[4:])] = {"momentum_buffer": v}
        self.opt.load_state_dict(opt_state)
        self.step, self.history = state["step"], state["history"]
        self.window = state.get("window") or {"sums": {}, "count": 0, "angles": []}


def encoder_std(z: torch.Tensor) -> float:
    """Std over images and positions of the l2-normalised encoder outputs,
    averaged over channels: about 1/sqrt(channels) for spread-out outputs,
    0 when every position of every image maps to the same vector (collapse)."""
    zn = torch.nn.functional.normalize(z.detach(), dim=1).transpose(0, 1).flatten(1)
    return float(zn.std(dim=1).mean())


def read_checkpoint_config(folder: Path) -> tuple[dict, dict]:
    """(model config, train config) a checkpoint was started with; CheckpointError if it is corrupt."""
    state = checkpoint.read_state(folder, _CONFIGS)
    return state["model"], state["train"]
