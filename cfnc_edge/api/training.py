"""Training side of the API: train a bundle (model, scorer, threshold), refit it, the demo.

Two scorers: "gaussian" (per-position Gaussian on the projection head, the
paper's) and "knn" (a memory bank of good patches on the pooled head,
PatchCore's). Both set their threshold for a target false-alarm rate from
cross-fitted scores: every good image scored by a scorer fitted without it.
"""

from __future__ import annotations

import dataclasses
import json
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from cfnc_edge.api.selection import DEFAULT_BUDGET
from cfnc_edge.api.selection import select as select_recipe
from cfnc_edge.api.train_config import TRAIN_CONFIG, config_text
from cfnc_edge.api.validation import check, check_levels
from cfnc_edge.bundle import BANK, GAUSSIAN, WEIGHTS, Bundle, atomic_write, holds_lock
from cfnc_edge.bundle.schema import dumps as strict_json
from cfnc_edge.data.tiling import Tiling
from cfnc_edge.data.training_set import data_record, good_paths, input_size_for, training_images
from cfnc_edge.errors import CfncError
from cfnc_edge.images import read_image
from cfnc_edge.model.backbones import MAX_STRIDE
from cfnc_edge.model.coarse_to_fine import CoarseToFine, ModelConfig
from cfnc_edge.model.checkpoint import CHECKPOINT
from cfnc_edge.model.loading import load_model
from cfnc_edge.model.train import TrainConfig, Trainer, read_checkpoint_config, resolve_device
from cfnc_edge.report.training_curves import TRAINING_PLOT, has_training_evidence, plot_training
from cfnc_edge.runtime.inspector import Inspector
from cfnc_edge.runtime.scoring import CPU_INFERENCE
from cfnc_edge.scoring.fitted import finish
from cfnc_edge.scoring.fitters import fit_scorer
from cfnc_edge.scoring.memory_bank import MAX_BANK
from cfnc_edge.scoring.threshold import threshold_record

SCORERS = ("gaussian", "knn", "combined")
TILING_STATE = "tiling.json"
# the feature head each scorer reads by default (model/coarse_to_fine.py)
SCORER_HEADS = {"gaussian": "projection", "knn": "pooled", "combined": "combined"}
HEAD_SCORERS = {head: scorer for scorer, head in SCORER_HEADS.items()}

# What `train` does when the user names no method. "pretrained" (the default):
# ImageNet features, no training, the Gaussian and the bank fused. Measured
# (benchmarks/results/gpu/knn-magnetic-tile-gpu.md, combined-magnetic-tile.md):
# the paper's training, run to convergence on a GPU, lost to its own PaDiM
# baseline on 50 magnetic-tile images (image AUROC -2.9, PRO -10.1) and on
# their disturbed variant (-4.6, -16.3); on the two unseen real sets it
# lost pixel AUROC and PRO. The fusion matched or beat the better single
# scorer's image AUROC on the four magnetic-tile sets measured.
# "paper": ICA + FCA + dense non-contrastive training, Gaussian.
# "auto" (the default): the features and the scorer chosen per dataset on
# synthetic defects of its good images (api/selection.py); nothing trains.
RECIPES = {
    "auto": {"ica": False, "fca": False, "noncontrastive": False, "scorer": None},
    "pretrained": {"ica": False, "fca": False, "noncontrastive": False, "scorer": "combined"},
    "paper": {"ica": True, "fca": True, "noncontrastive": True, "scorer": "gaussian"},
}
DEFAULT_RECIPE = "auto"


def recipe(name: str = DEFAULT_RECIPE, **given) -> dict:
    """The recipe's ica, fca, noncontrastive and scorer, with the values in `given`
    that are not None in their place (what a user sets by flag wins)."""
    check(recipe=name)
    return {k: v if given.get(k) is None else given[k] for k, v in RECIPES[name].items()}


# what a recipe chooses and a user may set in its place (`train`'s overrides, the CLI's option names)
RECIPE_OPTIONS = ("backbone", "image_size", "feature_dim", "ica", "fca", "noncontrastive", "head")
# options that act only on training: given under a recipe that trains nothing, they are named as ignored
TRAINING_OPTIONS = ("steps", "epochs", "lr", "lr_backbone", "lr_ica", "lr_heads", "fixed_predictor_lr", "fine_levels")


def _flags(names) -> str:
    return ", ".join("--" + n.replace("_", "-") for n in names)


def _recipe_configs(name: str, given: dict, train_cfg: TrainConfig, scorer: str | None, weights: Path | None,
                    tile) -> tuple[ModelConfig, TrainConfig, str | None, dict | None, str | None]:
    """(model config, train config, scorer, the search's fixed choices or None, a warning
    naming the training options that have no effect, or None) of recipe `name` with the
    user's `given` options (RECIPE_OPTIONS, TRAINING_OPTIONS) in place of its own;
    CfncError for what the recipe cannot honour, before any work."""
    check(recipe=name)
    ignored = [n for n in TRAINING_OPTIONS if n in given]
    if name == "auto":
        note = (f"nothing trains with recipe 'auto', so {_flags(ignored)} have no effect (--recipe paper trains)"
                if ignored else None)
        if tile is not None or any(k in given for k in ("ica", "fca", "noncontrastive", "head")):
            raise CfncError("--recipe auto chooses the alignment and the head itself, and does not tile: "
                            "name --recipe pretrained or paper with --ica/--fca/--noncontrastive/--head/--tile")
        short = given.get("image_size")
        if short is not None and not isinstance(short, int):
            raise CfncError("--image-size: --recipe auto keeps the images' aspect ratio: give the short side S")
        # the search's fixed choices; a weights file is for the default backbone when none is named
        fixed = {"backbone": given.get("backbone", ModelConfig.backbone if weights else None), "short_side": short}
        # checked as the baseline candidate, chosen in `train` once every option has been checked
        model_cfg = ModelConfig(backbone=given.get("backbone", ModelConfig.backbone),
                                image_size=given.get("image_size", ModelConfig.image_size),
                                feature_dim=given.get("feature_dim", ModelConfig.feature_dim),
                                ica=False, fca=False, head=SCORER_HEADS.get(scorer or "combined"))
        return model_cfg, dataclasses.replace(train_cfg, noncontrastive=False), scorer, fixed, note
    r = recipe(name, ica=given.get("ica"), fca=given.get("fca"), noncontrastive=given.get("noncontrastive"),
               scorer=scorer)
    note = None
    if ignored and not (r["ica"] or r["noncontrastive"]):  # FCA alone has no loss (Trainer.trainable)
        note = (f"nothing trains with recipe {name!r} and neither --ica nor --noncontrastive, so "
                f"{_flags(ignored)} have no effect (--recipe paper trains)")
    model_cfg = ModelConfig(backbone=given.get("backbone", ModelConfig.backbone),
                            image_size=given.get("image_size", ModelConfig.image_size),
                            feature_dim=given.get("feature_dim", ModelConfig.feature_dim), ica=r["ica"], fca=r["fca"],
                            head=given.get("head") or SCORER_HEADS.get(r["scorer"], "projection"))
    return model_cfg, dataclasses.replace(train_cfg, noncontrastive=r["noncontrastive"]), r["scorer"], None, note


def _device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


@holds_lock("out")  # a second writer to `out` is refused at its start
def train(data_root: Path | str, out: Path | str, model_cfg: ModelConfig | None = None,
          train_cfg: TrainConfig | None = None, covariance: str = "ledoit-wolf", eps: float = 0.01,
          folds: int | None = None, target_fpr: float = 0.01, threshold: float | None = None, resume: bool = False,
          weights: Path | None = None, progress: bool = True, scorer: str | None = None,
          bank_size: float = 0.1, max_bank: int | None = MAX_BANK, factor_precision: str = "fp32",
          device: str = "auto", tile=None, tile_overlap: float = 0.0, recipe_name: str = DEFAULT_RECIPE,
          budget: float | None = None, fusion_weight: float = 0.5, overrides: dict | None = None,
          config: dict | None = None) -> Bundle:
    """Train the model on train/good (if its configuration has anything to train),
    fit the scorer, set the threshold for `target_fpr` from cross-fitted scores of
    every good image, and write a complete bundle (plus training.png) to `out`.
    Without `model_cfg`: the recipe `recipe_name` (default "auto": backbone, input
    size, alignment and scorer chosen on synthetic defects within `budget`, see
    api/selection.py); `scorer` defaults to the recipe's (auto: fixes the scorer it
    searches), or with a `model_cfg` to the one its feature head serves
    (projection: the Gaussian). `fusion_weight`: the combined scorer's Gaussian share.
    `overrides`: what the user set in place of the recipe's choice, by option name
    (RECIPE_OPTIONS; TRAINING_OPTIONS given are named as ignored where nothing trains):
    under "auto" backbone, image_size (the short side S) and feature_dim restrict the
    search and the rest is refused; under "pretrained" and "paper" they replace the recipe's.
    `config`: the options the training was asked with (`train --config`'s keys), written
    into the bundle as train-config.toml (api/train_config.py) in the same commit.
    `scorer="knn"`: a memory bank of `bank_size` (fraction or count of patches,
    at most `max_bank` rows) instead of the Gaussian. `factor_precision`: how
    the runtime stores the whitening factor (fp32, fp16, int8), checked against
    fp32 and recorded with the threshold. `device`: where training and feature
    extraction run ("auto": a CUDA GPU when PyTorch sees one).
    `tile` ("auto", S, "HxW" frame pixels; see data/tiling.py): train and fit on
    tiles of the good images (the Gaussian is then over tile positions, and
    the model input is S x S for S); the bundle keeps the tiling, so
    inspection tiles frames the same way. The threshold is set on whole-frame
    scores (the maximum over a frame's tiles, each scored without itself)."""
    out = Path(out)
    ckpt = out / CHECKPOINT
    if resume:
        if not (ckpt / "train_state.json").is_file():
            raise CfncError(f"nothing to resume: {ckpt} holds no checkpoint")
        m, t = read_checkpoint_config(ckpt)
        m.pop("channels", None)
        model_cfg, train_cfg = ModelConfig(**m), TrainConfig(**t)
    auto = model_cfg is None and recipe_name == "auto"
    fixed = ignored = None
    if model_cfg is None:
        # the recipe decides what trains, also when only a TrainConfig (budget, lr) was given
        model_cfg, train_cfg, scorer, fixed, ignored = _recipe_configs(recipe_name, overrides or {},
                                                                       train_cfg or TrainConfig(), scorer, weights, tile)
    train_cfg = train_cfg or TrainConfig()
    check(feature_dim=model_cfg.feature_dim, image_size=model_cfg.image_size, epochs=train_cfg.epochs,
          steps=train_cfg.steps, batch_size=train_cfg.batch_size, lr=train_cfg.lr, lr_ica=train_cfg.lr_ica,
          lr_heads=train_cfg.lr_heads, lr_backbone=train_cfg.lr_backbone, seed=train_cfg.seed,
          covariance=covariance, eps=eps, folds=folds, budget=budget,
          target_fpr=target_fpr, threshold=threshold, scorer=scorer, factor_precision=factor_precision,
          device=device, bank_size=bank_size, max_bank=max_bank, tile_overlap=tile_overlap)
    if ignored:  # said once every option is known to be valid: a refused value is the only line then
        warnings.warn(ignored, UserWarning, stacklevel=2)
    selection = None
    if auto:
        if factor_precision != "fp32" and scorer is None:  # a compressed factor is the Gaussian's alone
            scorer = "gaussian"
        _check_factor_scorer(scorer or "gaussian", factor_precision)
        resolve_device(device)  # a wrong device is one line before the search, not after it
        selection = select_recipe(good_paths(data_root), DEFAULT_BUDGET if budget is None else budget,
                                  train_cfg.seed, scorer=scorer, fixed=fixed, feature_dim=model_cfg.feature_dim,
                                  weights=weights,
                                  log=print if progress else (lambda _m: None))
        c, scorer, fusion_weight = selection["candidate"], selection["scorer"], selection["weight"]
        train_cfg = dataclasses.replace(train_cfg, steps=0, epochs=None)  # auto trains nothing, ICA's residual neither
        model_cfg = dataclasses.replace(model_cfg, backbone=c["backbone"], image_size=c["short_side"], ica=c["ica"],
                                        head=SCORER_HEADS[scorer])
    scorer = scorer or HEAD_SCORERS.get(model_cfg.head, "gaussian")
    _check_head(scorer, model_cfg.head, resumed=resume)
    _check_factor_scorer(scorer, factor_precision)
    if train_cfg.noncontrastive:
        check_levels(train_cfg.fine_levels)
    torch_device = resolve_device(device)
    if torch_device.type == "cuda":  # the peak recorded below is this run's, not an earlier one's in this process
        torch.cuda.reset_peak_memory_stats(torch_device)
    paths = good_paths(data_root)
    tiling = Tiling.parse(tile, tile_overlap)
    tiling_file = ckpt / TILING_STATE  # the checkpoint's model and train configs do not hold the tiling
    if resume and tiling is None and tiling_file.is_file():
        tiling = Tiling.from_dict(json.loads(tiling_file.read_text()))
    if not resume:
        size = model_cfg.image_size if tiling is None or not isinstance(model_cfg.image_size, int) else \
            [model_cfg.image_size] * 2
        model_cfg = dataclasses.replace(model_cfg, image_size=input_size_for(size, paths, MAX_STRIDE))

    t0 = time.perf_counter()
    model = CoarseToFine(model_cfg, pretrained=True, weights=weights).to(torch_device)
    images, frame_of = training_images(paths, model_cfg.input_size, tiling, progress)
    if model.ica is not None and not resume:  # a resumed run has its template in the checkpoint
        model.fit_template(images, train_cfg.batch_size)
    trainer = Trainer(model, train_cfg)
    if resume:
        trainer.load_checkpoint(ckpt)
    elif tiling is not None and trainer.trainable:
        atomic_write(tiling_file, strict_json(tiling.to_dict()).encode())
    history = trainer.fit(torch.from_numpy(images), ckpt if trainer.trainable else None, progress)
    t_train = time.perf_counter() - t0
    if threshold is None:
        _warn_if_threshold_optimistic(history, train_cfg.to_dict(), model_cfg.to_dict(), out)

    bundle = Bundle(out)
    timing = {"train_seconds": round(t_train, 1), "device": _device_name(torch_device)}
    if torch_device.type == "cuda":  # the host's peak RSS (recorded after fitting) does not see GPU memory
        timing["peak_gpu_mib"] = round(torch.cuda.max_memory_allocated(torch_device) / 2**20, 1)
    manifest = dict(train=train_cfg.to_dict(), history=history, data={"root": str(data_root), "fit_images": len(paths)},
                    timing=timing)
    if selection is not None:
        manifest["selection"] = selection
        timing["selection_seconds"] = selection["seconds"]
    if tiling is not None:
        manifest.update(tiling=tiling.to_dict())
        manifest["data"]["fit_tiles"] = len(images)
    with bundle.transaction():  # model, scorer and threshold become current together
        _fit_scorer(bundle, scorer, model, images, frame_of, covariance=covariance, eps=eps, folds=folds,
                    bank_size=bank_size, max_bank=max_bank, seed=train_cfg.seed, target_fpr=target_fpr,
                    threshold=threshold, batch_size=train_cfg.batch_size, progress=progress,
                    factor_precision=factor_precision, fusion_weight=fusion_weight, **manifest)
        if config is not None:
            bundle.write({TRAIN_CONFIG: config_text(config).encode()})
        elif TRAIN_CONFIG in bundle.manifest.get("files", {}):  # an earlier training's: it no longer describes this one
            bundle.remove([TRAIN_CONFIG])
    plot_training(bundle.manifest, out / TRAINING_PLOT)
    return bundle


def _warn_if_threshold_optimistic(history: list[dict], train: dict, model: dict, bundle_path: Path | str) -> None:
    """Cross-fitting holds each good image out of the scorer, not out of training.
    Measured on magnetic-tile (accuracy-magnetic-tile.md): with the backbone and the
    alignment modules trained together the threshold let through 8.4% of good parts
    for 2.0% promised; either one trained alone kept it (0.5%)."""
    fine = any("fine" in h for h in history)
    restored_start = bool(history) and history[-1].get("restored_step") == 0  # collapsed: the start restored
    warps = model.get("ica") or model.get("fca")
    if fine and warps and train.get("lr_backbone") != 0 and not restored_start:
        warnings.warn("the backbone and the alignment modules were trained on these good images, and cross-fitting "
                      "holds them out of the scorer, not out of training: the threshold may let through more false "
                      "alarms than it promises (8.4% for 2.0% measured on magnetic-tile). Set it on good images "
                      f"training did not see: cfnc-edge threshold --bundle {bundle_path} GOOD_IMAGES",
                      RuntimeWarning, stacklevel=3)


def _bundle_target_fpr(bundle: Bundle, given: float | None) -> float:
    """The rate asked for, or the one the bundle's threshold was set for (1% if it records none)."""
    return bundle.manifest.get("threshold", {}).get("target_fpr", 0.01) if given is None else given


def set_threshold(bundle_path: Bundle | Path | str, good: list[Path | str], target_fpr: float | None = None,
                  value: float | None = None, inspection=None, progress: bool = True) -> dict:
    """Set the bundle's threshold from good images that neither training nor the
    scorer saw (files or folders; e.g. a held-back set of good parts), for
    `target_fpr` (default: the bundle's); or the user's `value`.

    Cross-fitting holds each good training image out of the scorer, not out of
    training: after the backbone and the alignment modules were trained on them
    their held-out scores are too low, and the threshold lets through more false
    alarms than it promises (accuracy-magnetic-tile.md). Images nobody saw are scored by the bundle
    exactly as inspection scores frames (`inspection`'s backend, precision and tiling;
    an InspectOptions, default InspectOptions(); its threshold plays no part in a score)."""
    from cfnc_edge.api.inspection import InspectOptions, expand_inputs

    check(target_fpr=target_fpr, threshold=value)
    bundle = bundle_path if isinstance(bundle_path, Bundle) else Bundle.open(bundle_path)
    paths = expand_inputs([Path(g) for g in good])
    target_fpr = _bundle_target_fpr(bundle, target_fpr)
    insp = (inspection or InspectOptions()).inspector(bundle)
    scores = np.array([r.score for i in tqdm(range(0, len(paths), 16), desc="scoring good images", unit="batch",
                                             disable=not progress, leave=False)
                       for r in insp([read_image(p) for p in paths[i:i + 16]])])
    info = {**threshold_record(scores, target_fpr, value), "method": "held-out images"}
    with bundle.transaction():
        bundle.manifest["threshold"] = info
        bundle.write_manifest()
    if has_training_evidence(bundle.manifest):
        plot_training(bundle.manifest, bundle.path / TRAINING_PLOT)
    return info


def refit(bundle_path: Path | str, data_root: Path | str, covariance: str | None = None, eps: float | None = None,
          folds: int | None = None, target_fpr: float | None = None, threshold: float | None = None, batch_size: int = 32,
          progress: bool = True, scorer: str | None = None, bank_size: float = 0.1,
          max_bank: int | None = MAX_BANK, head: str | None = None, factor_precision: str | None = None,
          device: str = "auto") -> Bundle:
    """Refit the scorer and threshold of a trained bundle on (other) good images.

    `scorer` switches the scorer (default: the bundle's); the feature head
    follows it unless `head` is given. The trained weights do not depend on
    the head, so a trained bundle can be given either scorer without training again.
    `factor_precision` and `target_fpr` default to the bundle's; the factor is checked again.
    training.png is redrawn with the new threshold and compactness."""
    check(covariance=covariance, eps=eps, folds=folds, target_fpr=target_fpr, threshold=threshold,
          batch_size=batch_size, factor_precision=factor_precision, device=device, head=head,
          bank_size=bank_size, max_bank=max_bank)
    torch_device = resolve_device(device)
    bundle = Bundle.open(bundle_path)
    scorer = scorer or bundle.scorer
    check(scorer=scorer)
    target_fpr = _bundle_target_fpr(bundle, target_fpr)
    # a bundle without a Gaussian (knn) gets the default estimator; an old Gaussian bundle keeps its eps
    previous = bundle.manifest.get("gaussian", {"eps": 0.01, "covariance": "ledoit-wolf"})
    if factor_precision is None:  # keep the bundle's setting, or fp32 for a scorer without a factor
        factor_precision = previous.get("factor_precision", "fp32") if scorer == "gaussian" else "fp32"
        if scorer == "combined" and previous.get("factor_precision", "fp32") != "fp32":
            warnings.warn(f"the refitted factor is stored in fp32 (it was {previous['factor_precision']}); set it "
                          "again with `cfnc-edge factor-precision`", RuntimeWarning, stacklevel=2)
    _check_factor_scorer(scorer, factor_precision)
    covariance = previous.get("covariance", "eps") if covariance is None else covariance
    eps = previous["eps"] if eps is None else eps
    model = load_model(bundle).to(torch_device)
    new_head = head or (model.cfg.head if scorer == bundle.scorer else SCORER_HEADS[scorer])
    _check_head(scorer, new_head)
    paths = good_paths(data_root)
    tiling = Tiling.from_dict(bundle.manifest["tiling"]) if "tiling" in bundle.manifest else None
    images, frame_of = training_images(paths, model.cfg.input_size, tiling, progress)
    # a refitted fusion keeps the weight the bundle's was chosen with
    weight = bundle.manifest["scorer"].get("weight", 0.5) if bundle.scorer == "combined" else 0.5
    with bundle.transaction():  # scorer and threshold become current together
        if new_head != model.cfg.head:
            _drop_exports(bundle)
        model.cfg.head = new_head
        _fit_scorer(bundle, scorer, model, images, frame_of, covariance=covariance, eps=eps, folds=folds,
                    bank_size=bank_size, max_bank=max_bank, seed=0, target_fpr=target_fpr, threshold=threshold,
                    batch_size=batch_size, progress=progress, factor_precision=factor_precision,
                    fusion_weight=weight, data=data_record(data_root, len(paths)))
    plot_training(bundle.manifest, Path(bundle_path) / TRAINING_PLOT)
    if threshold is None:
        _warn_if_threshold_optimistic(bundle.manifest.get("history") or [], bundle.manifest.get("train", {}),
                                  bundle.manifest.get("model", {}), bundle_path)
    return bundle


def _fit_scorer(bundle: Bundle, scorer: str, model: CoarseToFine, images: np.ndarray, frame_of: np.ndarray | None,
                *, covariance: str, eps: float, folds: int, bank_size: float, max_bank: int | None, seed: int,
                target_fpr: float, threshold: float | None, batch_size: int, progress: bool,
                factor_precision: str, fusion_weight: float = 0.5, **manifest) -> None:
    """Fit `scorer` on the good images and write it, with the model and its threshold
    (inside the caller's transaction): the one sequence `train` and `refit` share."""
    fitted = fit_scorer(scorer, model, images, CPU_INFERENCE, groups=frame_of, covariance=covariance, eps=eps,
                        folds=folds, bank_size=bank_size, max_bank=max_bank, seed=seed, batch_size=batch_size,
                        progress=progress, factor_precision=factor_precision, fusion_weight=fusion_weight)
    finish(bundle, model, fitted, target_fpr, threshold, frame_of, **manifest)
    if scorer == "gaussian":  # set inside the transaction, so it becomes current with the threshold
        _record_factor_precision(bundle, factor_precision, progress)


def _check_factor_scorer(scorer: str, factor_precision: str) -> None:
    if scorer != "gaussian" and factor_precision != "fp32":
        after = ("; for the combined scorer set it after training: `cfnc-edge factor-precision`"
                 if scorer == "combined" else "")
        raise CfncError(f"--factor-precision {factor_precision} at fit time needs the gaussian scorer: drop "
                        f"--factor-precision or use --scorer gaussian{after}")


def _check_head(scorer: str, head: str, resumed: bool = False) -> None:
    """Before any work: the combined scorer reads the combined head, and only it does
    (a Gaussian on the combined head would be d + C wide; a bank would hold repeated rows)."""
    if (scorer == "combined") != (head == "combined"):
        why = (f"the resumed checkpoint has the {head} head: resume with --scorer {HEAD_SCORERS.get(head, 'gaussian')}"
               if resumed else "drop --head, or choose the scorer that reads it")
        raise CfncError(f"--scorer {scorer} does not read the {head} feature head; {why}")


def _record_factor_precision(bundle: Bundle, precision: str, progress: bool) -> None:
    """Called inside the open transaction, so the setting becomes current with
    the threshold: the same check against fp32 and the same manifest record as
    `cfnc-edge factor-precision` (fp32, the default, needs neither)."""
    if precision != "fp32":
        from cfnc_edge.deploy.factor_precision import set_factor_precision

        set_factor_precision(bundle, precision, log=print if progress else (lambda _message: None))


def _drop_exports(bundle: Bundle) -> None:
    """Forget graphs and engines made for another feature head: the weights are
    the same bytes, so their checksum alone would not reveal them as stale."""
    keep = {WEIGHTS, GAUSSIAN, BANK, TRAIN_CONFIG}
    for key in ("onnx", "calibration", "engines", "cpu_backends"):
        bundle.manifest.pop(key, None)
    bundle.remove([name for name in bundle.manifest["files"] if name not in keep])


def run_demo(out: Path | str, steps: int = 20, n_train: int = 200, n_per_defect: int = 10,
             image_size: int = 224, batch_size: int = 32, progress: bool = True, recipe_name: str = DEFAULT_RECIPE):
    """The embedded default: synthetic data, train (the recipe's), evaluation report."""
    check(steps=steps, image_size=image_size, batch_size=batch_size)
    r = recipe(recipe_name)
    from cfnc_edge.data import generate_dataset
    from cfnc_edge.report.evaluate import evaluate

    out = Path(out)
    data = generate_dataset(out / "data", n_train=n_train, n_test_good=max(4, n_per_defect * 2),
                            n_per_defect=n_per_defect, progress=progress)
    if recipe_name == "auto":  # the search at the demo's input size (its parts are drawn at 256 px)
        bundle = train(data, out / "bundle", train_cfg=TrainConfig(batch_size=batch_size), recipe_name="auto",
                       overrides={"image_size": image_size}, progress=progress)
    else:
        bundle = train(data, out / "bundle",
                       ModelConfig(image_size=image_size, ica=r["ica"], fca=r["fca"], head=SCORER_HEADS[r["scorer"]]),
                       TrainConfig(steps=steps, batch_size=batch_size, noncontrastive=r["noncontrastive"]),
                       scorer=r["scorer"], progress=progress)
    return evaluate(Inspector(bundle), data, out / "report", progress=progress)
