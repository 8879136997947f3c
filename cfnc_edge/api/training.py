"""Training side of the API: train a bundle (model, scorer, threshold), refit it, the demo.

Two scorers: "gaussian" (per-position Gaussian on the projection head, the
paper's) and "knn" (a memory bank of good patches on the pooled head,
PatchCore's). Both set their threshold for a target false-alarm rate from
cross-fitted scores: every good image scored by a scorer fitted without it.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from cfnc_edge.api.combined import fit_combined, write_combined_model
from cfnc_edge.api.validation import check
from cfnc_edge.bundle import BANK, GAUSSIAN, WEIGHTS, Bundle, holds_lock
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
from cfnc_edge.report.training_curves import TRAINING_PLOT, angle_summary, plot_training
from cfnc_edge.resources import peak_rss_mib
from cfnc_edge.runtime.inspector import Inspector
from cfnc_edge.runtime.knn import CpuNearestNeighbour
from cfnc_edge.runtime.postprocess import anomaly_maps
from cfnc_edge.runtime.scoring import CpuScoring
from cfnc_edge.scoring import crossfit
from cfnc_edge.scoring.fit import (
    GaussianFit,
    ScoreFn,
    crossfit_scores,
    fit_gaussian,
    model_batches,
    write_model,
)
from cfnc_edge.scoring.memory_bank import (
    MAX_BANK,
    fit_memory_bank,
    split_parts,
    write_bank_model,
)
from cfnc_edge.scoring.threshold import threshold_for_fpr

SCORERS = ("gaussian", "knn", "combined")
# the feature head each scorer reads by default (model/coarse_to_fine.py)
SCORER_HEADS = {"gaussian": "projection", "knn": "pooled", "combined": "combined"}


def cpu_score_fn(image_size: int) -> ScoreFn:
    """Score features exactly as CPU inference does (float32 Gaussian as in the bundle)."""
    def score(mean, factor, feats, thetas):
        sc = CpuScoring({"mean": mean.astype(np.float32), "factor": factor.astype(np.float32)})
        dist = sc.distance(feats)
        maps = sc.maps(dist, thetas, image_size)
        return maps.reshape(len(maps), -1).max(1), dist.reshape(len(dist), -1).mean(1)
    return score


def _with_user_value(info: dict, scores: np.ndarray, value: float | None) -> dict:
    """A hand-set threshold replaces the computed one; what the good images say about
    it is their fraction above it (the promise for the target rate no longer applies)."""
    if value is None:
        return info
    for k in ("rank", "expected_fpr", "fpr_std", "fpr_upper95", "warning"):
        info.pop(k, None)
    return {**info, "value": float(value), "user_set": True, "good_above": float((scores > value).mean())}


def _fit_and_threshold(bundle: Bundle, model: CoarseToFine, images: np.ndarray, covariance: str, eps: float,
                       folds: int, target_fpr: float, threshold: float | None, batch_size: int,
                       progress: bool, **manifest) -> GaussianFit:
    """Gaussian of all good images; threshold and compactness from cross-fitted scores."""
    t0 = time.perf_counter()
    batches = model_batches(model, images, batch_size, progress)
    s = model.cfg.feature_size
    fit = fit_gaussian(batches, len(images), s * s, model.cfg.feature_channels, covariance, eps, folds)
    scores, dists = crossfit_scores(batches, fit, cpu_score_fn(model.cfg.image_size))
    info = _with_user_value(threshold_for_fpr(scores, target_fpr), scores, threshold)
    compact = {"heldout_mean_distance": float(dists.mean()), "heldout_mean_score": float(scores.mean()),
               "ica_angles": angle_summary(fit.ica_angles)}
    if "timing" in manifest:
        manifest["timing"]["fit_seconds"] = round(time.perf_counter() - t0, 1)
        manifest["timing"]["peak_rss_mib"] = round(peak_rss_mib(), 1)
    write_model(bundle, model, fit, threshold=info, compactness=compact, **manifest)
    return fit


@holds_lock("out")  # a second writer to `out` is refused at its start
def train(data_root: Path | str, out: Path | str, model_cfg: ModelConfig | None = None,
          train_cfg: TrainConfig | None = None, covariance: str = "ledoit-wolf", eps: float = 0.01,
          folds: int = 5, target_fpr: float = 0.01, threshold: float | None = None, resume: bool = False,
          weights: Path | None = None, progress: bool = True, scorer: str = "gaussian",
          bank_size: float = 0.1, max_bank: int | None = MAX_BANK) -> Bundle:
    """Train the coarse-to-fine model on train/good, fit the Gaussian (shrinkage
    covariance by default), set the threshold for `target_fpr` from cross-fitted
    scores of every good image, and write a complete bundle (plus training.png) to `out`.
    `scorer="knn"`: a memory bank of `bank_size` (fraction or count of patches,
    at most `max_bank` rows) instead of the Gaussian."""
    out = Path(out)
    ckpt = out / CHECKPOINT
    if resume:
        if not (ckpt / "train_state.json").is_file():
            raise CfncError(f"nothing to resume: {ckpt} holds no checkpoint")
        m, t = read_checkpoint_config(ckpt)
        m.pop("channels", None)
        model_cfg, train_cfg = ModelConfig(**m), TrainConfig(**t)
    model_cfg = model_cfg or ModelConfig(head=SCORER_HEADS.get(scorer, "projection"))
    train_cfg = train_cfg or TrainConfig()
    check(feature_dim=model_cfg.feature_dim, image_size=model_cfg.image_size, epochs=train_cfg.epochs,
          steps=train_cfg.steps, batch_size=train_cfg.batch_size, lr=train_cfg.lr, lr_ica=train_cfg.lr_ica,
          lr_heads=train_cfg.lr_heads, seed=train_cfg.seed, covariance=covariance, eps=eps, folds=folds,
          target_fpr=target_fpr, threshold=threshold, scorer=scorer)
    paths = MVTecDataset(data_root).train_images()
    if len(paths) < 2:
        raise CfncError(f"{data_root}: need at least 2 good training images, found {len(paths)}")

    t0 = time.perf_counter()
    model = CoarseToFine(model_cfg, pretrained=True, weights=weights)
    images = load_images(paths, model_cfg.image_size, progress)
    trainer = Trainer(model, train_cfg)
    if resume:
        trainer.load_checkpoint(ckpt)
    history = trainer.fit(torch.from_numpy(images), ckpt if trainer.trainable else None, progress)
    t_train = time.perf_counter() - t0

    bundle = Bundle(out)
    manifest = dict(train=train_cfg.to_dict(), history=history, data={"root": str(data_root), "fit_images": len(paths)},
                    timing={"train_seconds": round(t_train, 1)})
    with bundle.transaction():  # model, scorer and threshold become current together
        if scorer == "knn":
            fit_knn(bundle, model, images, bank_size, max_bank, train_cfg.seed, target_fpr, threshold,
                    train_cfg.batch_size, progress, **manifest)
        elif scorer == "combined":
            fit_and_write_combined(bundle, model, images, covariance, eps, folds, bank_size, max_bank,
                                   train_cfg.seed, target_fpr, threshold, train_cfg.batch_size, progress, **manifest)
        else:
            _fit_and_threshold(bundle, model, images, covariance, eps, folds, target_fpr, threshold,
                               train_cfg.batch_size, progress, **manifest)
    plot_training(bundle.manifest, out / TRAINING_PLOT)
    return bundle


def fit_knn(bundle: Bundle, model: CoarseToFine, images: np.ndarray, bank_size: float = 0.1,
            max_bank: int | None = MAX_BANK, seed: int = 0, target_fpr: float = 0.01,
            threshold: float | None = None, batch_size: int = 32, progress: bool = True, **manifest) -> dict:
    """Fit the memory bank on good images, write it with the model, and set the
    threshold for `target_fpr` from cross-fitted scores (each image scored by a
    bank built without its part). Returns the threshold record."""
    tensors, info = fit_memory_bank(model, images, bank_size, seed, max_bank, batch_size=batch_size,
                                    progress=progress)
    parts = split_parts(len(images), info["part_images"], info["seed"])
    size = model.cfg.image_size
    angles = np.zeros(len(images))

    @torch.inference_mode()
    def score_fold(j: int, idx: np.ndarray) -> np.ndarray:
        nn = CpuNearestNeighbour(**{k: v for k, v in crossfit.leave_part_out(tensors, j).items() if k != "part"})
        out = []
        for s in range(0, len(idx), 16):
            feats, thetas = model(torch.from_numpy(images[idx[s:s + 16]]))
            maps = anomaly_maps(nn(feats.numpy()), thetas.numpy(), size)
            out.append(maps.reshape(len(maps), -1).max(1))
            angles[idx[s:s + 16]] = np.degrees(np.arctan2(thetas[:, 1, 0].numpy(), thetas[:, 0, 0].numpy()))
        return np.concatenate(out)

    scores = crossfit.crossfit_scores(parts, score_fold)
    record = {**_with_user_value(threshold_for_fpr(scores, target_fpr), scores, threshold),
              "method": "cross-fit", "folds": len(parts)}
    compact = {"heldout_mean_score": float(scores.mean()), "ica_angles": angle_summary(angles)}
    if "timing" in manifest:
        manifest["timing"]["peak_rss_mib"] = round(peak_rss_mib(), 1)
    write_bank_model(bundle, model, tensors, info, threshold=record, compactness=compact, **manifest)
    return record


def fit_and_write_combined(bundle: Bundle, model: CoarseToFine, images: np.ndarray, covariance: str, eps: float,
                           folds: int, bank_size: float, max_bank: int | None, seed: int, target_fpr: float,
                           threshold: float | None, batch_size: int, progress: bool, **manifest) -> dict:
    """The combined scorer (api/combined.py) with its threshold for `target_fpr` from
    cross-fitted fused scores, written with the model. Returns the threshold record."""
    if model.cfg.head != "combined":
        raise CfncError(f"the combined scorer reads the combined feature head, not {model.cfg.head!r}: drop --head")
    t0 = time.perf_counter()
    fit, tensors, info, scores, angles = fit_combined(model, images, covariance, eps, folds, bank_size, max_bank,
                                                      seed, batch_size, progress)
    record = {**_with_user_value(threshold_for_fpr(scores, target_fpr), scores, threshold), "method": "cross-fit"}
    compact = {"heldout_mean_score": float(scores.mean()), "ica_angles": angle_summary(angles)}
    if "timing" in manifest:
        manifest["timing"]["fit_seconds"] = round(time.perf_counter() - t0, 1)
        manifest["timing"]["peak_rss_mib"] = round(peak_rss_mib(), 1)
    write_combined_model(bundle, model, fit, tensors, info, threshold=record, compactness=compact, **manifest)
    return record


def set_threshold(bundle: Bundle, good_paths: list[Path], target_fpr: float = 0.01,
                  value: float | None = None) -> dict:
    """Threshold from good images the bundle's Gaussian did not see (e.g. a
    validation folder), for `target_fpr`; or the user's value."""
    insp = Inspector(bundle, backend="torch")
    scores = np.array([r.score for i in range(0, len(good_paths), 16)
                       for r in insp([read_image(p) for p in good_paths[i:i + 16]])])
    info = _with_user_value(threshold_for_fpr(scores, target_fpr), scores, value)
    with bundle.transaction():
        bundle.manifest["threshold"] = info
        bundle.write_manifest()
    return info


def refit(bundle_path: Path | str, data_root: Path | str, covariance: str | None = None, eps: float | None = None,
          folds: int = 5, target_fpr: float = 0.01, threshold: float | None = None, batch_size: int = 32,
          progress: bool = True, scorer: str | None = None, bank_size: float = 0.1,
          max_bank: int | None = MAX_BANK, head: str | None = None) -> Bundle:
    """Refit the scorer and threshold of a trained bundle on (other) good images.

    `scorer` switches the scorer (default: the bundle's); the feature head
    follows it unless `head` is given. The trained weights do not depend on
    the head, so a trained bundle can be given either scorer without training again."""
    check(covariance=covariance, eps=eps, folds=folds, target_fpr=target_fpr, threshold=threshold,
          batch_size=batch_size)
    bundle = Bundle.open(bundle_path)
    scorer = scorer or bundle.scorer
    check(scorer=scorer)
    previous = bundle.manifest.get("gaussian", {"eps": 0.01})
    covariance = previous.get("covariance", "eps") if covariance is None else covariance
    eps = previous["eps"] if eps is None else eps
    model = load_model(bundle)
    new_head = head or (model.cfg.head if scorer == bundle.scorer else SCORER_HEADS[scorer])
    paths = MVTecDataset(data_root).train_images()
    if len(paths) < 2:
        raise CfncError(f"{data_root}: need at least 2 good training images, found {len(paths)}")
    images = load_images(paths, model.cfg.image_size, progress)
    with bundle.transaction():  # scorer and threshold become current together
        if new_head != model.cfg.head:
            _drop_exports(bundle)
        model.cfg.head = new_head
        data = {"root": str(data_root), "fit_images": len(paths)}
        if scorer == "knn":
            fit_knn(bundle, model, images, bank_size, max_bank, 0, target_fpr, threshold, batch_size, progress,
                    data=data)
        elif scorer == "combined":
            fit_and_write_combined(bundle, model, images, covariance, eps, folds, bank_size, max_bank, 0,
                                   target_fpr, threshold, batch_size, progress, data=data)
        else:
            _fit_and_threshold(bundle, model, images, covariance, eps, folds, target_fpr, threshold, batch_size,
                               progress, data=data)
    return bundle


def _drop_exports(bundle: Bundle) -> None:
    """Forget graphs and engines made for another feature head: the weights are
    the same bytes, so their checksum alone would not reveal them as stale."""
    keep = {WEIGHTS, GAUSSIAN, BANK}
    for key in ("onnx", "calibration", "engines", "cpu_backends"):
        bundle.manifest.pop(key, None)
    bundle.remove([name for name in bundle.manifest["files"] if name not in keep])


def run_demo(out: Path | str, steps: int = 20, n_train: int = 200, n_per_defect: int = 10,
             image_size: int = 224, batch_size: int = 32, progress: bool = True):
    """The embedded default: synthetic data, full training, evaluation report."""
    check(steps=steps, image_size=image_size, batch_size=batch_size)
    from cfnc_edge.data import generate_dataset
    from cfnc_edge.report.evaluate import evaluate

    out = Path(out)
    data = generate_dataset(out / "data", n_train=n_train, n_test_good=max(4, n_per_defect * 2),
                            n_per_defect=n_per_defect, progress=progress)
    bundle = train(data, out / "bundle", ModelConfig(image_size=image_size),
                   TrainConfig(steps=steps, batch_size=batch_size), progress=progress)
    return evaluate(Inspector(bundle), data, out / "report", progress=progress)
