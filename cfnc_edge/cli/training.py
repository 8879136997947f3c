"""Training commands: train, fit, generate, demo."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from cfnc_edge.cli.app import BackendOpt, BundleOpt, PrecisionOpt, TileOverlapOpt, app
from cfnc_edge.errors import CfncError
from cfnc_edge.scoring.crossfit import FOLDS

_LEVELS = "0,1,2"
FoldsOpt = typer.Option(None, help="Folds of the Gaussian's cross-fit for the threshold (default: each image "
                                   f"left out alone; {FOLDS} folds for tiles or an fp16/int8 factor). The bank "
                                   "always leaves out one image (or one frame's tiles) at a time.")


ImageSizeOpt = typer.Option("224", help="Model input size: S = short side S, keeping the training images' "
                                        "aspect ratio (square within 0.8-1.25); HxW as given (SxS: a square).")


ScorerOpt = typer.Option(None, help="gaussian (per-position Gaussian, the paper's) | knn (memory bank "
                                    "of good patches, nearest-neighbour distance: PatchCore's) | combined "
                                    "(both, each normalised by held-out good scores, summed). Default: the recipe's.")
RecipeOpt = typer.Option("auto", help="auto (default: backbone, input size, image alignment and scorer chosen "
                                      "for this dataset on synthetic defects of its good images; nothing trains; "
                                      "--backbone/--image-size/--scorer given fix that choice) | pretrained "
                                      "(ImageNet Lite0 at 224, combined scorer) | paper (ICA + FCA + dense "
                                      "non-contrastive training, Gaussian). --ica/--fca/--noncontrastive/--scorer "
                                      "override pretrained and paper.")
BudgetOpt = typer.Option(None, help="--recipe auto: search time as a multiple of the first candidate's "
                                    "(Lite0 at 224 px); candidates that would not fit are skipped and listed "
                                    "(default 4).")
IcaOpt = typer.Option(None, "--ica/--no-ica", help="Image-level coarse alignment (default: the recipe's).")
FcaOpt = typer.Option(None, "--fca/--no-fca", help="Feature-level coarse alignment (default: the recipe's).")
NcOpt = typer.Option(None, "--noncontrastive/--no-noncontrastive",
                     help="Dense non-contrastive fine alignment (default: the recipe's).")
BankSizeOpt = typer.Option(0.1, help="knn, combined: memory bank size, a fraction (< 1) or a count (>= 1) of good patches.")
MaxBankOpt = typer.Option(16384, help="knn, combined: at most this many bank rows (0: no cap); bounds latency and memory.")
HeadOpt = typer.Option(None, help="Feature head: projection (d channels, stride 4) | pooled (stride-8/16 taps, "
                                  "3x3 pooled) | combined (both). Default: the scorer's (gaussian: projection, "
                                  "knn: pooled, combined: combined).")
_FACTOR_HELP = ("gaussian: store the whitening factor in fp32 | fp16 | int8 (per-row scales) for a faster "
                "distance step, checked against fp32 first.")
DeviceOpt = typer.Option("auto", help="Where training and feature extraction run: auto (a CUDA GPU if PyTorch "
                                      "sees one, else the CPU) | cpu | cuda | cuda:N.")


def _threshold_line(t: dict) -> str:
    if t.get("user_set"):
        return f"threshold {t['value']:.3f} set by hand; {100 * t['good_above']:.1f}% of the good images above it"
    return (f"threshold {t['value']:.3f}: expected false alarms {100 * t['expected_fpr']:.1f}% "
            f"+- {100 * t['fpr_std']:.1f}% on {t['n']} good images")


def _selection_line(sel: dict) -> str:
    c = sel["candidate"]
    weight = f", Gaussian weight {sel['weight']:g}" if sel["scorer"] == "combined" else ""
    return (f"chose {c['name']} with the {sel['scorer']} scorer{weight} from {len(sel['rows'])} scored "
            f"({len(sel['skipped'])} skipped for the budget) in {sel['seconds']:.0f} s")


@app.command()
def train(
    ctx: typer.Context,
    data: Optional[Path] = typer.Argument(None, help="Dataset root in the MVTec AD layout (reads train/good); "
                                                     "or `data` in --config."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Bundle folder to write (or `out` in --config)."),
    config: Optional[Path] = typer.Option(None, "--config", help="A TOML file of train's options: keys are the "
                                          "option names without the dashes (steps, image-size, dim, recipe, data, "
                                          "...); the command line wins over it. Written into the bundle as "
                                          "train-config.toml: `--config BUNDLE/train-config.toml` trains again the "
                                          "same way. TOML only (tomllib; PyYAML is not a dependency)."),
    backbone: str = typer.Option("efficientnet-lite0", help="efficientnet-lite0 | -lite1 | -lite2 (larger and slower; "
                                 "not always more accurate: README, Results) | resnet18 | wide_resnet50_2"),
    weights: Optional[Path] = typer.Option(None, help="ImageNet weights file for the backbone (offline)."),
    image_size: str = ImageSizeOpt,
    feature_dim: int = typer.Option(100, "--dim", help="Feature dimension d after projection."),
    steps: int = typer.Option(300, help="Optimisation steps (GPU default). On a 2-core CPU: --steps 60 --batch-size 16."),
    epochs: Optional[int] = typer.Option(None, help="Budget in passes over the data instead of --steps."),
    batch_size: int = typer.Option(32),
    lr: float = typer.Option(1e-4, help="Learning rate of the pretrained backbone and FCA (the paper's)."),
    lr_backbone: Optional[float] = typer.Option(None, help="The backbone's own learning rate (default: --lr); 0 "
                                                           "freezes it, so only ICA, FCA and the heads train."),
    lr_ica: float = typer.Option(0.01, help="Learning rate of ICA."),
    lr_heads: float = typer.Option(0.05, help="Learning rate of the SimSiam heads (SimSiam's base lr)."),
    fixed_predictor_lr: bool = typer.Option(True, "--fixed-predictor-lr/--decay-predictor-lr",
                                            help="Keep the predictor's lr constant, as SimSiam does."),
    fine_levels: str = typer.Option(_LEVELS, help="Pyramid levels (0,1,2 = strides 4,8,16) the fine loss is applied at."),
    recipe: str = RecipeOpt,
    ica: Optional[bool] = IcaOpt,
    fca: Optional[bool] = FcaOpt,
    noncontrastive: Optional[bool] = NcOpt,
    covariance: str = typer.Option("ledoit-wolf", help="ledoit-wolf | oas (shrinkage) | eps (fixed regulariser)."),
    eps: float = typer.Option(0.01, help="Covariance regulariser of --covariance eps."),
    folds: Optional[int] = FoldsOpt,
    target_fpr: float = typer.Option(0.01, help="False-alarm rate on good parts the threshold is set for."),
    threshold: Optional[float] = typer.Option(None, help="Set the decision threshold yourself."),
    seed: int = typer.Option(0),
    resume: bool = typer.Option(False, help="Continue from <out>/checkpoint (settings come from it)."),
    scorer: Optional[str] = ScorerOpt,
    bank_size: float = BankSizeOpt,
    max_bank: int = MaxBankOpt,
    head: Optional[str] = HeadOpt,
    factor_precision: str = typer.Option("fp32", help=_FACTOR_HELP),
    device: str = DeviceOpt,
    tile: Optional[str] = typer.Option(None, "--tile", help="Train and fit on tiles of the good images: auto "
                                       "(tiles of the model input size) | S | HxW (frame pixels); inspection "
                                       "then tiles frames the same way."),
    tile_overlap: float = TileOverlapOpt,
    budget: Optional[float] = BudgetOpt,
):
    """Train the model (if the recipe trains), fit the scorer and write a bundle."""
    from cfnc_edge import api
    from cfnc_edge.api.training import RECIPE_OPTIONS, TRAINING_OPTIONS
    from cfnc_edge.api.validation import parse_image_size, parse_levels
    from cfnc_edge.cli.config_file import as_config, with_config
    from cfnc_edge.model.train import TrainConfig

    o, given = with_config(ctx, config)
    for name, where in (("data", "DATA"), ("out", "--out")):
        if o[name] is None:
            raise CfncError(f"give {where} (or `{name}` in --config)")
    # built (and so checked) whatever the recipe: a bad value is refused before any work
    train_cfg = TrainConfig(steps=o["steps"], epochs=o["epochs"], batch_size=o["batch_size"], lr=o["lr"],
                            lr_backbone=o["lr_backbone"], lr_ica=o["lr_ica"], lr_heads=o["lr_heads"],
                            fixed_predictor_lr=o["fixed_predictor_lr"], fine_levels=parse_levels(o["fine_levels"]),
                            seed=o["seed"])
    values = {**o, "image_size": parse_image_size(o["image_size"]), "fine_levels": train_cfg.fine_levels}
    # what the user set, for the recipe to honour or refuse
    overrides = {name: values[name] for name in (*RECIPE_OPTIONS, *TRAINING_OPTIONS) if name in given}
    out = o["out"]
    b = api.train(o["data"], out, train_cfg=train_cfg, recipe_name=o["recipe"], overrides=overrides,
                  covariance=o["covariance"], eps=o["eps"], folds=o["folds"], target_fpr=o["target_fpr"],
                  threshold=o["threshold"], resume=o["resume"], weights=o["weights"], scorer=o["scorer"],
                  bank_size=o["bank_size"], max_bank=o["max_bank"] or None, factor_precision=o["factor_precision"],
                  device=o["device"], tile=o["tile"], tile_overlap=o["tile_overlap"], budget=o["budget"],
                  config=as_config(ctx, o, given | {"data", "out"}))
    done = (_selection_line(b.manifest["selection"]) if "selection" in b.manifest
            else f"training plot {out / 'training.png'}")
    typer.echo(f"bundle written to {out} ({_threshold_line(b.manifest['threshold'])}; {done})", err=True)


@app.command()
def fit(
    bundle: Path = BundleOpt,
    data: list[Path] = typer.Argument(..., help="Dataset root in the MVTec AD layout (reads train/good); more roots "
                                                "or folders of good images (a review folder's good/) add theirs."),
    covariance: Optional[str] = typer.Option(None, help="ledoit-wolf | oas | eps (default: the bundle's)."),
    eps: Optional[float] = typer.Option(None, help="Covariance regulariser (default: the bundle's)."),
    folds: Optional[int] = FoldsOpt,
    target_fpr: Optional[float] = typer.Option(None, help="False-alarm rate on good parts the threshold is set for "
                                                          "(default: the bundle's)."),
    threshold: Optional[float] = typer.Option(None),
    scorer: Optional[str] = typer.Option(None, help="Switch scorer: gaussian | knn | combined (default: the "
                                                    "bundle's)."),
    bank_size: float = BankSizeOpt,
    max_bank: int = MaxBankOpt,
    head: Optional[str] = HeadOpt,
    factor_precision: Optional[str] = typer.Option(None, help=_FACTOR_HELP + " Default: the bundle's."),
    device: str = DeviceOpt,
):
    """Refit the scorer and threshold of a trained bundle on good images (or switch its scorer)."""
    from cfnc_edge import api

    b = api.refit(bundle, data, covariance, eps, folds, target_fpr, threshold, scorer=scorer, bank_size=bank_size,
                  max_bank=max_bank or None, head=head, factor_precision=factor_precision, device=device)
    typer.echo(f"refitted {bundle} ({_threshold_line(b.manifest['threshold'])})", err=True)


@app.command()
def threshold(
    good: list[Path] = typer.Argument(..., help="Good images (files or folders) that training did not see."),
    bundle: Path = BundleOpt,
    target_fpr: Optional[float] = typer.Option(None, help="False-alarm rate on good parts the threshold is set for "
                                                          "(default: the bundle's)."),
    value: Optional[float] = typer.Option(None, "--threshold", help="Set the threshold yourself instead."),
    backend: str = BackendOpt,
    precision: str = PrecisionOpt,
):
    """Set the threshold from good images that training did not see: what a trained
    backbone needs (its cross-fitted threshold promises fewer false alarms than it gives)."""
    from cfnc_edge import api

    # scored as inspection will score frames: give the backend and precision inspection uses
    info = api.set_threshold(bundle, good, target_fpr, value, api.InspectOptions(backend, precision))
    typer.echo(f"{bundle}: {_threshold_line(info)}", err=True)


@app.command()
def generate(
    out: Path = typer.Argument(..., help="Folder to write (MVTec AD layout)."),
    n_train: int = typer.Option(200), n_test_good: int = typer.Option(20),
    n_per_defect: int = typer.Option(10), size: int = typer.Option(256), seed: int = typer.Option(0),
):
    """Write the synthetic inspection dataset."""
    from cfnc_edge.data import generate_dataset

    generate_dataset(out, n_train, n_test_good, n_per_defect, size, seed)


@app.command()
def demo(
    out: Path = typer.Option(Path("demo-output"), "--out", "-o"),
    steps: int = typer.Option(20, help="Training steps of --recipe paper (a few minutes on a CPU)."),
    recipe: str = RecipeOpt,
    n_train: int = typer.Option(200, help="Good training images (fewer than ~d = 100 makes the Gaussian unreliable)."),
    n_per_defect: int = typer.Option(10),
    image_size: int = typer.Option(224),
    batch_size: int = typer.Option(32),
):
    """Synthetic data -> train -> fit -> evaluate -> report, in a few minutes on a CPU."""
    from cfnc_edge.api import run_demo

    result = run_demo(out, steps=steps, n_train=n_train, n_per_defect=n_per_defect,
                      image_size=image_size, batch_size=batch_size, recipe_name=recipe)
    m = result.metrics
    typer.echo(f"image AUROC {100 * m['image_auroc']:.1f}  pixel AUROC {100 * m['pixel_auroc']:.1f}  "
               f"PRO {100 * m['pro']:.1f}")
    typer.echo(f"report: {out / 'report' / 'report.md'}")
