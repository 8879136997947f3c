"""Training side of the API: train a bundle (model, scorer, threshold), refit it, the demo.

Two scorers: "gaussian" (per-position Gaussian on the projection head, the
paper's) and "knn" (a memory bank of good patches on the pooled head,
PatchCore's), each with its own way to a threshold: held-out images for the
Gaussian, cross-fitted scores for the bank.
"""

from __future__ import annotations

import resource
import time
from pathlib import Path

import numpy as np
import torch

from cfnc_edge.bundle import BANK, GAUSSIAN, WEIGHTS, Bundle
from cfnc_edge.data.mvtec import MVTecDataset
from cfnc_edge.errors import CfncError
from cfnc_edge.images import read_image
from cfnc_edge.model.coarse_to_fine import CoarseToFine, ModelConfig
from cfnc_edge.model.loading import load_model
from cfnc_edge.model.train import (
    CHECKPOINT,
    TrainConfig,
    Trainer,
    load_images,
    read_checkpoint_config,
)
from cfnc_edge.runtime.inspector import Inspector
from cfnc_edge.runtime.knn import CpuNearestNeighbour
from cfnc_edge.runtime.postprocess import anomaly_maps
from cfnc_edge.scoring.crossfit import crossfit_scores, crossfit_threshold, leave_part_out
from cfnc_edge.scoring.fit import fit_gaussian, write_model
from cfnc_edge.scoring.memory_bank import MAX_BANK, fit_memory_bank, split_parts, write_bank_model
from cfnc_edge.scoring.threshold import threshold_from_scores

SCORERS = ("gaussian", "knn")
# the feature head each scorer reads by default (model/coarse_to_fine.py)
SCORER_HEADS = {"gaussian": "projection", "knn": "pooled"}


def _check_scorer(scorer: str) -> None:
    if scorer not in SCORERS:
        raise CfncError(f"unknown scorer {scorer!r}; choose from {', '.join(SCORERS)}")


def split_holdout(paths: list[Path], fraction: float, seed: int) -> tuple[list[Path], list[Path]]:
    """Hold out good training images to set the threshold on images the
    Gaussian has not seen (scores of fitted images are optimistically low)."""
    n_hold = int(round(len(paths) * fraction))
    if n_hold == 0:
        return paths, []
    idx = np.random.default_rng(seed).permutation(len(paths))
    held = set(idx[:n_hold].tolist())
    return [p for i, p in enumerate(paths) if i not in held], [p for i, p in enumerate(paths) if i in held]


def train(data_root: Path | str, out: Path | str, model_cfg: ModelConfig | None = None,
          train_cfg: TrainConfig | None = None, eps: float = 0.01, holdout: float = 0.1,
          quantile: float = 0.99, threshold: float | None = None, resume: bool = False,
          weights: Path | None = None, progress: bool = True, scorer: str = "gaussian",
          bank_size: float = 0.1, max_bank: int | None = MAX_BANK) -> Bundle:
    """Train the coarse-to-fine model on train/good, fit the scorer ("gaussian" or
    "knn", a memory bank of `bank_size`: fraction or count of patches, at most
    `max_bank` rows), set the
    threshold, and write a complete bundle to `out`.

    The knn scorer uses every good image for the bank and cross-fits its
    threshold, so `holdout` applies to the Gaussian only."""
    _check_scorer(scorer)
    out = Path(out)
    ckpt = out / CHECKPOINT
    if resume:
        if not (ckpt / "train_state.json").is_file():
            raise CfncError(f"nothing to resume: {ckpt} holds no checkpoint")
        m, t = read_checkpoint_config(ckpt)
        m.pop("channels", None)
        model_cfg, train_cfg = ModelConfig(**m), TrainConfig(**t)
    model_cfg = model_cfg or ModelConfig(head=SCORER_HEADS[scorer])
    train_cfg = train_cfg or TrainConfig()
    paths = MVTecDataset(data_root).train_images()
    fit_paths, held = split_holdout(paths, holdout if scorer == "gaussian" else 0.0, train_cfg.seed)
    if len(fit_paths) < 2:
        raise CfncError(f"{data_root}: need at least 2 training images after holding out {len(held)}")

    t0 = time.perf_counter()
    model = CoarseToFine(model_cfg, pretrained=True, weights=weights)
    images = load_images(fit_paths, model_cfg.image_size, progress)
    trainer = Trainer(model, train_cfg)
    if resume:
        trainer.load_checkpoint(ckpt)
    history = trainer.fit(torch.from_numpy(images), ckpt if trainer.trainable else None, progress)
    t_train = time.perf_counter() - t0

    bundle = Bundle(out)
    manifest = dict(train=train_cfg.to_dict(), history=history,
                    data={"root": str(data_root), "fit_images": len(fit_paths), "holdout_images": len(held)},
                    timing={"train_seconds": round(t_train, 1)})
    if scorer == "knn":
        fit_knn(bundle, model, images, bank_size, max_bank, train_cfg.seed, quantile, threshold,
                train_cfg.batch_size, progress, **manifest)
    else:
        mean, factor = fit_gaussian(model, images, train_cfg.batch_size, eps, progress)
        write_model(bundle, model, mean, factor, eps, **manifest)
        set_threshold(bundle, held or fit_paths, quantile, threshold)
    bundle.manifest["timing"]["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    bundle.write_manifest()
    return bundle


def fit_knn(bundle: Bundle, model: CoarseToFine, images: np.ndarray, bank_size: float = 0.1,
            max_bank: int | None = MAX_BANK, seed: int = 0, quantile: float = 0.99,
            threshold: float | None = None, batch_size: int = 32, progress: bool = True, **manifest) -> dict:
    """Fit the memory bank on good images, write it with the model, and set the
    threshold from cross-fitted scores (each image scored by a bank built
    without its part). Returns the threshold record."""
    tensors, info = fit_memory_bank(model, images, bank_size, seed, max_bank, batch_size=batch_size,
                                    progress=progress)
    write_bank_model(bundle, model, tensors, info, **manifest)
    parts = split_parts(len(images), info["part_images"], info["seed"])
    size = model.cfg.image_size

    @torch.inference_mode()
    def score_fold(j: int, idx: np.ndarray) -> np.ndarray:
        nn = CpuNearestNeighbour(**{k: v for k, v in leave_part_out(tensors, j).items() if k != "part"})
        out = []
        for s in range(0, len(idx), 16):
            feats, thetas = model(torch.from_numpy(images[idx[s:s + 16]]))
            maps = anomaly_maps(nn(feats.numpy()), thetas.numpy(), size)
            out.append(maps.reshape(len(maps), -1).max(1))
        return np.concatenate(out)

    info = crossfit_threshold(crossfit_scores(parts, score_fold), quantile, len(parts))
    if threshold is not None:
        info.update(value=float(threshold), quantile=None, user_set=True)
    bundle.manifest["threshold"] = info
    bundle.write_manifest()
    return info


def set_threshold(bundle: Bundle, good_paths: list[Path], quantile: float = 0.99,
                  value: float | None = None) -> dict:
    """Threshold = quantile of the scores of good images (or the user's value)."""
    insp = Inspector(bundle, backend="torch")
    scores = np.array([r.score for i in range(0, len(good_paths), 16)
                       for r in insp([read_image(p) for p in good_paths[i:i + 16]])])
    info = threshold_from_scores(scores, quantile)
    if value is not None:
        info.update(value=float(value), quantile=None, user_set=True)
    bundle.manifest["threshold"] = info
    bundle.write_manifest()
    return info


def refit(bundle_path: Path | str, data_root: Path | str, eps: float | None = None, holdout: float = 0.1,
          quantile: float = 0.99, threshold: float | None = None, batch_size: int = 32,
          progress: bool = True, scorer: str | None = None, bank_size: float = 0.1,
          max_bank: int | None = MAX_BANK, head: str | None = None) -> Bundle:
    """Refit the scorer and threshold of a trained bundle on (other) good images.

    `scorer` switches the scorer (default: the bundle's); the feature head
    follows it unless `head` is given. The trained weights do not depend on
    the head, so a trained bundle can be given either scorer without training again."""
    bundle = Bundle.open(bundle_path)
    scorer = scorer or bundle.scorer
    _check_scorer(scorer)
    eps = bundle.manifest.get("gaussian", {}).get("eps", 0.01) if eps is None else eps
    model = load_model(bundle)
    new_head = head or (model.cfg.head if scorer == bundle.scorer else SCORER_HEADS[scorer])
    if new_head != model.cfg.head:
        _drop_exports(bundle)
    model.cfg.head = new_head
    fit_paths, held = split_holdout(MVTecDataset(data_root).train_images(), holdout if scorer == "gaussian" else 0.0, 0)
    images = load_images(fit_paths, model.cfg.image_size, progress)
    data = {"root": str(data_root), "fit_images": len(fit_paths), "holdout_images": len(held)}
    if scorer == "knn":
        fit_knn(bundle, model, images, bank_size, max_bank, 0, quantile, threshold, batch_size, progress, data=data)
    else:
        mean, factor = fit_gaussian(model, images, batch_size, eps, progress)
        write_model(bundle, model, mean, factor, eps, data=data)
        set_threshold(bundle, held or fit_paths, quantile, threshold)
    return bundle


def _drop_exports(bundle: Bundle) -> None:
    """Forget graphs and engines made for another feature head: the weights are
    the same bytes, so their checksum alone would not reveal them as stale."""
    keep = {WEIGHTS, GAUSSIAN, BANK}
    bundle.manifest["files"] = {k: v for k, v in bundle.manifest["files"].items() if k in keep}
    for key in ("onnx", "calibration", "engines"):
        bundle.manifest.pop(key, None)
    bundle.write_manifest()


def run_demo(out: Path | str, epochs: int = 3, n_train: int = 200, n_per_defect: int = 10,
             image_size: int = 224, batch_size: int = 32, progress: bool = True):
    """The embedded default: synthetic data, full training, evaluation report."""
    from cfnc_edge.data import generate_dataset
    from cfnc_edge.report.evaluate import evaluate

    out = Path(out)
    data = generate_dataset(out / "data", n_train=n_train, n_test_good=max(4, n_per_defect * 2),
                            n_per_defect=n_per_defect, progress=progress)
    bundle = train(data, out / "bundle", ModelConfig(image_size=image_size),
                   TrainConfig(epochs=epochs, batch_size=batch_size), progress=progress)
    return evaluate(Inspector(bundle), data, out / "report", progress=progress)
