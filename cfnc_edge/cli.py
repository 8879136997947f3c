"""`cfnc-edge`: a thin Typer CLI over the Python API."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

from .errors import CfncError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Coarse-to-fine non-contrastive anomaly detection: train, fit, evaluate, inspect.")

BundleOpt = typer.Option(..., "--bundle", "-b", help="Model bundle folder.")


def _model_cfg(backbone: str, image_size: int, feature_dim: int, ica: bool, fca: bool):
    from .model import ModelConfig

    return ModelConfig(backbone=backbone, image_size=image_size, feature_dim=feature_dim, ica=ica, fca=fca)


@app.command()
def train(
    data: Path = typer.Argument(..., help="Dataset root in the MVTec AD layout (reads train/good)."),
    out: Path = typer.Option(..., "--out", "-o", help="Bundle folder to write."),
    backbone: str = typer.Option("efficientnet-lite0", help="efficientnet-lite0 | resnet18 | wide_resnet50_2"),
    weights: Optional[Path] = typer.Option(None, help="ImageNet weights file for the backbone (offline)."),
    image_size: int = typer.Option(224, help="Model input size (square)."),
    feature_dim: int = typer.Option(100, "--dim", help="Feature dimension d after projection."),
    epochs: int = typer.Option(10),
    batch_size: int = typer.Option(32),
    lr: float = typer.Option(1e-4, help="Learning rate of backbone, FCA and heads."),
    lr_ica: float = typer.Option(0.01, help="Learning rate of ICA."),
    ica: bool = typer.Option(True, "--ica/--no-ica", help="Image-level coarse alignment."),
    fca: bool = typer.Option(True, "--fca/--no-fca", help="Feature-level coarse alignment."),
    noncontrastive: bool = typer.Option(True, "--noncontrastive/--no-noncontrastive",
                                        help="Dense non-contrastive fine alignment."),
    eps: float = typer.Option(0.01, help="Covariance regulariser."),
    holdout: float = typer.Option(0.1, help="Fraction of good images held out to set the threshold."),
    quantile: float = typer.Option(0.99, help="Threshold = this quantile of held-out good scores."),
    threshold: Optional[float] = typer.Option(None, help="Set the decision threshold yourself."),
    seed: int = typer.Option(0),
    resume: bool = typer.Option(False, help="Continue from <out>/checkpoint (settings come from it)."),
):
    """Train the model, fit the per-position Gaussian and write a bundle."""
    from . import api
    from .train import TrainConfig

    b = api.train(data, out, _model_cfg(backbone, image_size, feature_dim, ica, fca),
                  TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, lr_ica=lr_ica,
                              noncontrastive=noncontrastive, seed=seed),
                  eps=eps, holdout=holdout, quantile=quantile, threshold=threshold, resume=resume, weights=weights)
    t = b.manifest["threshold"]
    typer.echo(f"bundle written to {out} (threshold {t['value']:.3f})", err=True)


@app.command()
def fit(
    bundle: Path = BundleOpt,
    data: Path = typer.Argument(..., help="Dataset root in the MVTec AD layout (reads train/good)."),
    eps: Optional[float] = typer.Option(None, help="Covariance regulariser (default: the bundle's)."),
    holdout: float = typer.Option(0.1),
    quantile: float = typer.Option(0.99),
    threshold: Optional[float] = typer.Option(None),
):
    """Refit the Gaussian and threshold of a trained bundle on good images."""
    from . import api

    b = api.refit(bundle, data, eps, holdout, quantile, threshold)
    typer.echo(f"refitted {bundle} (threshold {b.threshold:.3f})", err=True)


@app.command("eval")
def eval_(
    bundle: Path = BundleOpt,
    data: Path = typer.Argument(..., help="Dataset root in the MVTec AD layout (reads test/, ground_truth/)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Report folder (Markdown + PNG)."),
    backend: str = typer.Option("auto"),
    precision: str = typer.Option("fp32"),
    threshold: Optional[float] = typer.Option(None),
    batch_size: int = typer.Option(8),
):
    """Image AUROC, pixel AUROC and PRO, overall and per defect type."""
    from .evaluate import evaluate
    from .inspector import Inspector

    r = evaluate(Inspector(bundle, backend, precision, threshold), data, out, batch_size)
    typer.echo(json.dumps(r.to_dict(), indent=2))
    if out is not None:
        typer.echo(f"report: {out / 'report.md'}", err=True)


@app.command()
def infer(
    inputs: list[Path] = typer.Argument(..., help="Image files or folders."),
    bundle: Path = BundleOpt,
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Folder for heatmap PNGs."),
    backend: str = typer.Option("auto"),
    precision: str = typer.Option("fp32"),
    threshold: Optional[float] = typer.Option(None, help="Override the bundle's threshold."),
    batch_size: int = typer.Option(8),
):
    """Score images: one JSON line per image (score, verdict) on stdout."""
    from .api import infer_paths

    for line in infer_paths(inputs, bundle, out, backend, precision, threshold, batch_size):
        typer.echo(json.dumps(line))


@app.command()
def generate(
    out: Path = typer.Argument(..., help="Folder to write (MVTec AD layout)."),
    n_train: int = typer.Option(200), n_test_good: int = typer.Option(20),
    n_per_defect: int = typer.Option(10), size: int = typer.Option(256), seed: int = typer.Option(0),
):
    """Write the synthetic inspection dataset."""
    from .data import generate_dataset

    generate_dataset(out, n_train, n_test_good, n_per_defect, size, seed)


@app.command()
def demo(
    out: Path = typer.Option(Path("demo-output"), "--out", "-o"),
    epochs: int = typer.Option(3),
    n_train: int = typer.Option(200, help="Good training images (fewer than ~d = 100 makes the Gaussian unreliable)."),
    n_per_defect: int = typer.Option(10),
    image_size: int = typer.Option(224),
    batch_size: int = typer.Option(32),
):
    """Synthetic data -> train -> fit -> evaluate -> report, in a few minutes on a CPU."""
    from .api import run_demo

    result = run_demo(out, epochs=epochs, n_train=n_train, n_per_defect=n_per_defect,
                      image_size=image_size, batch_size=batch_size)
    m = result.metrics
    typer.echo(f"image AUROC {100 * m['image_auroc']:.1f}  pixel AUROC {100 * m['pixel_auroc']:.1f}  "
               f"PRO {100 * m['pro']:.1f}")
    typer.echo(f"report: {out / 'report' / 'report.md'}")


@app.command()
def export(
    bundle: Path = BundleOpt,
    images: Optional[Path] = typer.Option(None, help="Good images to check parity on (default: the training data)."),
):
    """Export ICA + backbone + FCA + projection to ONNX (fp32 and fp16), checked against PyTorch."""
    from .bundle import Bundle
    from .export import export as run

    run(Bundle.open(bundle), images, log=lambda m: typer.echo(m, err=True))


@app.command()
def calibrate(
    bundle: Path = BundleOpt,
    images: Optional[Path] = typer.Option(None, help="Good images to calibrate on (default: train/good)."),
    n: int = typer.Option(64, help="Number of calibration images."),
    method: str = typer.Option("percentile", help="entropy | percentile | minmax"),
    keep: str = typer.Option("stages.0", help="Comma-separated backbone stages kept in float ('' for none)."),
    eval_data: Optional[Path] = typer.Option(None, "--eval", help="MVTec-layout data: compare INT8 and FP32 accuracy."),
):
    """INT8: write a Q/DQ ONNX model calibrated on good images, and report its cost."""
    from .bundle import Bundle
    from .calibrate import calibrate as run

    b = Bundle.open(bundle)
    report = run(b, images, n, method, tuple(k for k in keep.split(",") if k), eval_data,
                 log=lambda m: typer.echo(m, err=True))
    typer.echo(json.dumps(report, indent=2))


@app.command()
def bench(
    bundle: Path = BundleOpt,
    images: Optional[Path] = typer.Option(None, help="Images to run on (default: the training data)."),
    batch: list[int] = typer.Option([1, 8], help="Batch sizes (repeatable)."),
    repeats: int = typer.Option(30), warmup: int = typer.Option(3),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Folder for bench.md/.csv/.json."),
):
    """Latency, throughput, memory and stage split of every backend and precision present."""
    from .bench import markdown_table, run_bench, write_results

    rows = run_bench(bundle, images, batch, warmup, repeats)
    typer.echo(markdown_table(rows))
    if out is not None:
        write_results(rows, out)


@app.command("build-engine")
def build_engine(
    bundle: Path = BundleOpt,
    precision: str = typer.Option("fp16", help="fp32 | fp16 | int8 (from model.onnx, model-fp16.onnx, model-int8.onnx)"),
    min_batch: int = typer.Option(1), opt_batch: int = typer.Option(8), max_batch: int = typer.Option(32),
    workspace_mib: int = typer.Option(1024, help="Builder workspace limit."),
):
    """Build a TensorRT engine on this GPU (kept in <bundle>/engines/ with its timing cache)."""
    from .backends import tensorrt_available
    from .bundle import Bundle
    from .engine import build_engine as run

    if not tensorrt_available():
        raise CfncError("build-engine needs an NVIDIA GPU with TensorRT and CuPy (pip install 'cfnc-edge[gpu]'); "
                        "`cfnc-edge doctor` says what is missing")
    info = run(Bundle.open(bundle), precision, min_batch, opt_batch, max_batch, workspace_mib,
               log=lambda m: typer.echo(m, err=True))
    typer.echo(json.dumps(info, indent=2))


@app.command()
def doctor(bundle: Optional[Path] = typer.Option(None, "--bundle", "-b", help="Also say what auto picks for it.")):
    """What this machine can run: GPU, CUDA, TensorRT, CuPy, ONNX Runtime, and the kernel check."""
    from .bundle import Bundle
    from .doctor import report

    rows = report(Bundle.open(bundle) if bundle else None)
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        typer.echo(f"{k:<{width}}  {v}")


@app.command()
def stream(
    bundle: Path = BundleOpt,
    camera: list[int] = typer.Option([], "--camera", "-c", help="Camera index (repeatable)."),
    source: list[str] = typer.Option([], "--source", "-s", help="Video file, RTSP/HTTP URL or image folder (repeatable)."),
    backend: str = typer.Option("auto"),
    precision: str = typer.Option("fp32"),
    threshold: Optional[float] = typer.Option(None),
    output: Optional[Path] = typer.Option(None, "--output", help="JSON lines file (default: stdout)."),
    save: Optional[Path] = typer.Option(None, help="Write annotated video / images here."),
    save_anomalies: Optional[Path] = typer.Option(None, help="Save frames judged anomalous, with heatmaps."),
    show: bool = typer.Option(False, help="Show frames in a window (needs a display)."),
    max_batch: int = typer.Option(4, help="Largest batch of frames per backend call."),
    max_wait_ms: float = typer.Option(5.0, help="Longest a frame waits for a batch to fill."),
    max_frames: Optional[int] = typer.Option(None, help="Stop after this many frames."),
):
    """Inspect live: cameras, video files, streams or image folders; one JSON line per frame."""
    import signal

    from .inspector import Inspector
    from .sources import make_source
    from .stream import StreamOptions, StreamRunner

    specs: list = list(camera) + list(source)
    if not specs:
        raise CfncError("give at least one --camera N or --source PATH|URL")
    insp = Inspector(bundle, backend, precision, threshold)
    out = open(output, "w") if output else sys.stdout
    try:
        runner = StreamRunner(insp, [make_source(s) for s in specs],
                              StreamOptions(max_batch=max_batch, max_wait_ms=max_wait_ms, save=save,
                                            save_anomalies=save_anomalies, show=show, max_frames=max_frames),
                              out=out, status=sys.stderr)
        signal.signal(signal.SIGTERM, lambda *_: runner.stop())
        summary = runner.run()
    finally:
        if output:
            out.close()
    typer.echo("\nsummary: " + json.dumps(summary), err=True)


def main() -> None:
    try:
        app()
    except CfncError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
