"""Training side of the API: train a bundle (model, Gaussian, threshold), refit it, the demo."""

from __future__ import annotations

import resource
import time
from pathlib import Path

import numpy as np
import torch

from cfnc_edge.api.validation import check
from cfnc_edge.bundle import Bundle, holds_lock
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
from cfnc_edge.scoring.fit import fit_gaussian, write_model
from cfnc_edge.scoring.threshold import threshold_from_scores


def split_holdout(paths: list[Path], fraction: float, seed: int) -> tuple[list[Path], list[Path]]:
    """Hold out good training images to set the threshold on images the
    Gaussian has not seen (scores of fitted images are optimistically low)."""
    n_hold = int(round(len(paths) * fraction))
    if n_hold == 0:
        return paths, []
    idx = np.random.default_rng(seed).permutation(len(paths))
    held = set(idx[:n_hold].tolist())
    return [p for i, p in enumerate(paths) if i not in held], [p for i, p in enumerate(paths) if i in held]


@holds_lock("out")  # a second writer to `out` is refused at its start
def train(data_root: Path | str, out: Path | str, model_cfg: ModelConfig | None = None,
          train_cfg: TrainConfig | None = None, eps: float = 0.01, holdout: float = 0.1,
          quantile: float = 0.99, threshold: float | None = None, resume: bool = False,
          weights: Path | None = None, progress: bool = True) -> Bundle:
    """Train the coarse-to-fine model on train/good, fit the Gaussian, set the
    threshold, and write a complete bundle to `out`."""
    out = Path(out)
    ckpt = out / CHECKPOINT
    if resume:
        if not (ckpt / "train_state.json").is_file():
            raise CfncError(f"nothing to resume: {ckpt} holds no checkpoint")
        m, t = read_checkpoint_config(ckpt)
        m.pop("channels", None)
        model_cfg, train_cfg = ModelConfig(**m), TrainConfig(**t)
    model_cfg = model_cfg or ModelConfig()
    train_cfg = train_cfg or TrainConfig()
    check(feature_dim=model_cfg.feature_dim, image_size=model_cfg.image_size, epochs=train_cfg.epochs,
          batch_size=train_cfg.batch_size, lr=train_cfg.lr, lr_ica=train_cfg.lr_ica, seed=train_cfg.seed, eps=eps,
          holdout=holdout, quantile=quantile, threshold=threshold)
    paths = MVTecDataset(data_root).train_images()
    fit_paths, held = split_holdout(paths, holdout, train_cfg.seed)
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

    mean, factor = fit_gaussian(model, images, train_cfg.batch_size, eps, progress)
    bundle = Bundle(out)
    with bundle.transaction():  # model, Gaussian and threshold become current together
        write_model(bundle, model, mean, factor, eps, train=train_cfg.to_dict(), history=history,
                    data={"root": str(data_root), "fit_images": len(fit_paths), "holdout_images": len(held)},
                    timing={"train_seconds": round(t_train, 1),
                            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)})
        set_threshold(bundle, held or fit_paths, quantile, threshold)
    return bundle


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
          progress: bool = True) -> Bundle:
    """Refit the Gaussian and threshold of a trained bundle on (other) good images."""
    check(eps=eps, holdout=holdout, quantile=quantile, threshold=threshold, batch_size=batch_size)
    bundle = Bundle.open(bundle_path)
    eps = bundle.manifest["gaussian"]["eps"] if eps is None else eps
    model = load_model(bundle)
    fit_paths, held = split_holdout(MVTecDataset(data_root).train_images(), holdout, 0)
    images = load_images(fit_paths, model.cfg.image_size, progress)
    mean, factor = fit_gaussian(model, images, batch_size, eps, progress)
    with bundle.transaction():  # Gaussian and threshold become current together
        write_model(bundle, model, mean, factor, eps,
                    data={"root": str(data_root), "fit_images": len(fit_paths), "holdout_images": len(held)})
        set_threshold(bundle, held or fit_paths, quantile, threshold)
    return bundle


def run_demo(out: Path | str, epochs: int = 3, n_train: int = 200, n_per_defect: int = 10,
             image_size: int = 224, batch_size: int = 32, progress: bool = True):
    """The embedded default: synthetic data, full training, evaluation report."""
    check(epochs=epochs, image_size=image_size, batch_size=batch_size)
    from cfnc_edge.data import generate_dataset
    from cfnc_edge.report.evaluate import evaluate

    out = Path(out)
    data = generate_dataset(out / "data", n_train=n_train, n_test_good=max(4, n_per_defect * 2),
                            n_per_defect=n_per_defect, progress=progress)
    bundle = train(data, out / "bundle", ModelConfig(image_size=image_size),
                   TrainConfig(epochs=epochs, batch_size=batch_size), progress=progress)
    return evaluate(Inspector(bundle), data, out / "report", progress=progress)
