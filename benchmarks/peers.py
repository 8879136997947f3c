"""This project against anomalib and AnomaVision PaDiM, side by side, on the CPU.

    python -m benchmarks.peers [--rounds 3] [--calls 30] [--warmup 5] [--work /tmp/cfnc-peers]

The unit of work is the same for all: one 224 x 224 uint8 frame in, the
anomaly map at input size (upsampled and Gaussian-blurred) and the image
score out, batch 1. Every implementation runs at ResNet-18 with random
weights (torchvision's ImageNet weights cannot be downloaded here, and the
timing does not depend on them), d = 100 features, fitted on the same
random good images:

- anomalib 2.7 `PadimModel` (layers 1-3, 100 random channels, its own
  upsampling + blur);
- AnomaVision 3.6 `Padim.predict` (layers 1-3, feat_dim 100) plus its
  `adaptive_gaussian_blur` (kernel 33, sigma 4, as its detect.py does);
- this project's Inspector, PaDiM configuration (ResNet-18, --no-ica
  --no-fca --no-noncontrastive, d = 100), on each CPU backend; and what the
  default recipe (`--recipe auto`) deploys, one row per configuration it
  chose on the sets measured (selection-study.md): Lite0 at 224 px with the
  Gaussian or the combined scorer (magnetic-tile), Lite0 at 320 px with the
  memory bank (screw; the 224 px frame is resized to 320 as any frame is);
  each bank with the rows it gets on that set (an exact search costs in
  proportion to them, so a bank of the 24 random frames' 10% would flatter
  it): 16384 (the cap, MAX_BANK) for the combined scorer on magnetic-tile's
  762 images and for the bank on screw's 320, and 5040 for a 50-image
  magnetic-tile set (10% of 50 x 1008 patches when its images' aspect makes
  the input 224 x 288, 3920 at 224 x 224; mt50, where the search chose the Gaussian: the row
  shows what the combined scorer costs at that size);
  the bank is searched by OpenVINO wherever it is installed (runtime/knn.py),
  so also on the onnxruntime rows of the combined scorer, and in the graph
  for the memory bank alone; with OpenVINO also with the int8 whitening factor, and with OpenVINO's INT8 (NNCF) features plus the
  int8 factor (calibrated on the same random frames; the peers stay fp32,
  so those rows trade accuracy for speed: accuracy-precisions.md gives the
  cost on real data).

Each peer runs in its own virtual environment, made here on first use from
benchmarks/requirements-peers-*.txt with --system-site-packages (so torch is
the project's and nothing is installed into the project's environment).
Every implementation is a long-lived worker process (models built and
fitted once); the timing runs in interleaved rounds, each round asking
every worker in turn for `--warmup` untimed then `--calls` timed calls, so a
shared machine's load falls on all alike. The table gives the p50 of each
round and the ratio of medians.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import venv
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SIZE, DIM, N_FIT = 224, 100, 24
VENVS = Path(os.environ.get("CFNC_PEERS_VENVS", Path.home() / ".cache" / "cfnc-peers"))
MT50_BANK = 5040  # rows a 50-image magnetic-tile set's bank gets at 224 x 288 (10% of 50 x 1008 patches)


def bank_rows() -> tuple[int, int]:
    """The combined scorer's bank rows measured: the cap (magnetic-tile's 762 images), a 50-image set's.
    Imported here, not at the top: the peers' workers import this module in their own environments."""
    from cfnc_edge.scoring.memory_bank import MAX_BANK

    return MAX_BANK, MT50_BANK


def fit_images(rng: np.random.Generator) -> np.ndarray:
    """The same random 'good' frames for every implementation: uint8 (N, 224, 224, 3)."""
    base = rng.integers(60, 200, size=(1, SIZE, SIZE, 3))
    return np.clip(base + rng.normal(0, 12, size=(N_FIT, SIZE, SIZE, 3)), 0, 255).astype(np.uint8)


# ---- workers: each reads "N_WARMUP N_CALLS" lines and answers a JSON list of seconds ----

def _to_tensor(frame):
    """uint8 HWC RGB -> normalised float (1, 3, H, W), as the peers' own loaders do."""
    import torch

    x = torch.from_numpy(frame).permute(2, 0, 1)[None].float() / 255
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    return (x - mean) / std


def anomalib_worker(images):
    import torch
    from anomalib.models.image.padim.torch_model import PadimModel

    torch.manual_seed(0)
    model = PadimModel(backbone="resnet18", layers=["layer1", "layer2", "layer3"], pre_trained=False,
                       n_features=DIM)
    model.train()
    with torch.inference_mode():
        for i in range(0, len(images), 8):
            model(torch.cat([_to_tensor(f) for f in images[i:i + 8]]))
    model.fit()
    model.eval()

    def unit(frame):
        with torch.inference_mode():
            out = model(_to_tensor(frame))
            return float(out.pred_score[0]), out.anomaly_map
    return unit


def anomavision_worker(images):
    import torch
    import torchvision
    from anomavision.algorithm.common import feature_extraction
    from anomavision.algorithm.padim.padim import Padim
    from anomavision.utils import adaptive_gaussian_blur

    torch.manual_seed(0)
    # its extractor downloads ImageNet weights; random weights instead (offline)
    feature_extraction.BACKBONES["resnet18"] = (torchvision.models.resnet18, None)
    model = Padim(backbone="resnet18", layer_indices=[0, 1, 2], feat_dim=DIM)
    model.fit([torch.cat([_to_tensor(f) for f in images[i:i + 8]]) for i in range(0, len(images), 8)])
    model.eval()

    def unit(frame):
        with torch.inference_mode():
            scores, maps = model.predict(_to_tensor(frame))
            return float(scores[0]), adaptive_gaussian_blur(maps, kernel_size=33, sigma=4)
    return unit


def cfnc_worker(bundle, backend, precision="fp32", factor="fp32"):
    from cfnc_edge.bundle import Bundle
    from cfnc_edge.runtime.inspector import Inspector

    b = Bundle.open(bundle)
    b.manifest.setdefault("gaussian", {})["factor_precision"] = factor  # in memory: what the Inspector loads
    insp = Inspector(b, backend, precision)

    def unit(frame):
        r = insp([frame[:, :, ::-1]])[0]  # the Inspector takes BGR frames, as OpenCV reads them
        return r.score, r.map
    return unit


def backbone_worker(runtime):
    """ResNet-18's stem and layers 1-3 alone (random weights), what every PaDiM row
    runs first: in PyTorch, or in OpenVINO as this project's backend compiles it
    (f32 hint, static shape). Not a peer: the floor of any fp32 ResNet-18 row."""
    import torch
    import torchvision

    torch.manual_seed(0)
    r = torchvision.models.resnet18(weights=None).eval()
    net = torch.nn.Sequential(r.conv1, r.bn1, r.relu, r.maxpool, r.layer1, r.layer2, r.layer3).eval()
    if runtime == "torch":
        def unit(frame):
            with torch.inference_mode():
                return net(_to_tensor(frame))
        return unit
    import tempfile

    from cfnc_edge.runtime.backends.openvino_backend import OpenVinoModel

    path = Path(tempfile.mkdtemp()) / "resnet18-layer3.onnx"
    torch.onnx.export(net, _to_tensor(np.zeros((SIZE, SIZE, 3), np.uint8)), path, dynamo=False)
    request = OpenVinoModel(path).request(1)

    def unit(frame):
        request.infer({0: _to_tensor(frame).numpy()})
        return request.get_output_tensor(0).data
    return unit


def serve(unit, frame, proto) -> None:
    for line in sys.stdin:
        warmup, calls = map(int, line.split())
        for _ in range(warmup):
            unit(frame)
        times = []
        for _ in range(calls):
            t0 = time.perf_counter()
            unit(frame)
            times.append(time.perf_counter() - t0)
        print(json.dumps(times), file=proto, flush=True)


def worker_main(kind: str, args: list[str]) -> None:
    # the protocol gets its own copy of stdout; fd 1 goes to stderr, since
    # the peers print logs to stdout (AnomaVision does, and the reader would block on them)
    proto = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    rng = np.random.default_rng(0)
    images = fit_images(rng)
    frame = images[0]
    unit = {"anomalib": lambda: anomalib_worker(images), "anomavision": lambda: anomavision_worker(images),
            "cfnc": lambda: cfnc_worker(*args), "backbone": lambda: backbone_worker(*args)}[kind]()
    unit(frame)
    print("ready", file=proto, flush=True)
    serve(unit, frame, proto)


# ---- setup: virtual environments and this project's bundles ----

def peer_python(name: str, log) -> Path:
    env = VENVS / name
    py = env / "bin" / "python"
    if not py.exists():
        log(f"creating {env} (system site packages: torch is shared, nothing installed in the project's env)")
        venv.create(env, with_pip=True, system_site_packages=True)
    req = HERE / f"requirements-peers-{name}.txt"
    marker = env / "requirements.done"
    if not marker.exists() or marker.read_text() != req.read_text():
        log(f"installing {req.name} into {env}")
        subprocess.run([str(py), "-m", "pip", "install", "-q", "-r", str(req)], check=True)
        marker.write_text(req.read_text())
    return py


def cfnc_bundles(work: Path, log) -> dict[str, Path]:
    """ResNet-18 PaDiM (d = 100) and the default configuration, fitted on the
    same random frames, exported (ONNX; OpenVINO checked when installed) and,
    with NNCF installed, calibrated for OpenVINO INT8 on those frames."""
    import cv2

    from cfnc_edge.api import calibrate, export, train
    from cfnc_edge.deploy.openvino_int8 import nncf_available
    from cfnc_edge.model.coarse_to_fine import ModelConfig
    from cfnc_edge.model.train import TrainConfig

    data = work / "data"
    good = data / "train" / "good"
    if not good.is_dir():
        good.mkdir(parents=True)
        for i, f in enumerate(fit_images(np.random.default_rng(0))):
            cv2.imwrite(str(good / f"{i:03d}.png"), f[:, :, ::-1])
    # what --recipe auto deploys, each configuration fixed (the search itself would
    # choose on random frames): (model, scorer, bank rows); nothing trains
    configs = {name: (cfg, scorer, rows) for name, cfg, scorer, rows in (
        ("resnet18-padim", ModelConfig(backbone="resnet18", feature_dim=DIM, ica=False, fca=False), "gaussian", None),
        ("lite0-224-gaussian", ModelConfig(ica=False, fca=False), "gaussian", None),
        *((f"lite0-224-combined-{rows}", ModelConfig(ica=False, fca=False, head="combined"), "combined", rows)
          for rows in bank_rows()),
        ("lite0-320-knn", ModelConfig(ica=False, fca=False, head="pooled", image_size=320), "knn", bank_rows()[0]))}
    random_r18 = work / "resnet18-random.pth"  # "ImageNet weights" that are random, as the peers get
    if not random_r18.exists():
        import torch
        import torchvision

        torch.manual_seed(0)
        torch.save(torchvision.models.resnet18(weights=None).state_dict(), random_r18)
    out = {}
    for name, (mcfg, scorer, rows) in configs.items():
        path = work / name
        if not (path / "model.onnx").exists():
            log(f"building the {name} bundle in {path}")
            bundle = train(data, path, mcfg, TrainConfig(epochs=0, noncontrastive=False), progress=False,
                           scorer=scorer, weights=random_r18 if mcfg.backbone == "resnet18" else None,
                           bank_size=rows or 0.1)
            export(bundle, log=log)
        if name == "resnet18-padim" and nncf_available() and not (path / "openvino-int8.xml").exists():
            calibrate(path, n=N_FIT, log=log)
        out[name] = path
    return out


class Worker:
    def __init__(self, label: str, cmd: list[str]):
        self.label = label
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT)
        line = self.proc.stdout.readline()
        if line.strip() != "ready":
            raise RuntimeError(f"{label} did not start (exit code {self.proc.wait()})")

    def run(self, warmup: int, calls: int) -> list[float]:
        self.proc.stdin.write(f"{warmup} {calls}\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--calls", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--work", type=Path, default=Path("/tmp/cfnc-peers"))
    ap.add_argument("--out", type=Path, default=HERE / "results" / "peers-cpu.md")
    ap.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        return worker_main(a.worker[0], a.worker[1:])
    from benchmarks.common import machine
    from cfnc_edge.runtime.backends.openvino_backend import openvino_available

    log = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    a.work.mkdir(parents=True, exist_ok=True)
    bundles = cfnc_bundles(a.work, log)
    me = [sys.executable, "-m", "benchmarks.peers", "--worker"]
    specs, problems = [], []
    for name in ("anomalib", "anomavision"):
        try:
            specs.append((f"{name} PaDiM (PyTorch)", [str(peer_python(name, log)), "-m", "benchmarks.peers",
                                                      "--worker", name]))
        except subprocess.CalledProcessError as exc:
            problems.append(f"{name}: installing into its virtual environment failed ({exc})")
    specs += [(f"ResNet-18 layers 1-3 alone, {rt} (no peer: the convolutions' floor)", me + ["backbone", rt])
              for rt in ("torch", "openvino")[:1 + openvino_available()]]
    # (backend, feature precision, factor precision)
    runs = [("torch", "fp32", "fp32"), ("onnxruntime", "fp32", "fp32")]
    if openvino_available():
        runs += [("openvino", "fp32", "fp32"), ("openvino", "fp32", "int8")]
    cap = bank_rows()[0]
    labels = {"resnet18-padim": "ResNet-18 PaDiM", "lite0-224-gaussian": "auto: Lite0@224 gaussian",
              **{f"lite0-224-combined-{r}": f"auto: Lite0@224 combined, {r}-row bank" for r in bank_rows()},
              "lite0-320-knn": f"auto: Lite0@320 knn, {cap}-row bank"}
    for name, label in labels.items():
        bundle = bundles[name]
        for be, precision, factor in runs + ([("openvino", "int8", "int8")]
                                             if (bundle / "openvino-int8.xml").exists() else []):
            # the factor precision is the Gaussian's: no such rows for the bank alone
            if (name != "resnet18-padim" and be == "torch") or (name == "lite0-320-knn" and factor != "fp32"):
                continue
            extra = f", {precision} features" * (precision != "fp32") + f", {factor} factor" * (factor != "fp32")
            specs.append((f"cfnc-edge {label}, {be}{extra}", me + ["cfnc", str(bundle), be, precision, factor]))
    workers = []
    for label, cmd in specs:
        log(f"starting {label}")
        try:
            workers.append(Worker(label, cmd))
        except RuntimeError as exc:
            problems.append(str(exc))
    p50 = {w.label: [] for w in workers}
    for r in range(a.rounds):
        for w in workers:
            p50[w.label].append(1000 * float(np.median(w.run(a.warmup, a.calls))))
            log(f"round {r + 1}: {w.label} p50 {p50[w.label][-1]:.1f} ms")
    for w in workers:
        w.close()

    med = {k: float(np.median(v)) for k, v in p50.items()}
    ref = {k: med.get(f"{k} PaDiM (PyTorch)") for k in ("anomalib", "anomavision")}
    lines = ["# Peers on the CPU: anomalib and AnomaVision PaDiM against cfnc-edge", "",
             # the timed calls themselves keep both cores busy: a load near 2 is this run's own
             f"Machine: {machine()}; load average {os.getloadavg()[0]:.1f} at the end of the run "
             "(the timed calls use 2 threads: up to 2 is this run's own).", "",
             f"Unit of work: one {SIZE} x {SIZE} frame -> anomaly map at input size (upsampled, Gaussian blur) + "
             f"image score, batch 1. ResNet-18 with random weights, d = {DIM}, fitted on {N_FIT} random frames. "
             f"{a.rounds} interleaved rounds; per round {a.warmup} warm-up then {a.calls} timed calls, p50. "
             f"Command: `python -m benchmarks.peers --rounds {a.rounds} --calls {a.calls} --warmup {a.warmup}`.", "",
             "| implementation | p50 ms per round | median ms | anomalib / this | AnomaVision / this |",
             "|---|---|---|---|---|"]
    for k, v in p50.items():
        ratios = [f"{ref[n] / med[k]:.2f}x" if ref[n] else "n/a" for n in ("anomalib", "anomavision")]
        lines.append(f"| {k} | {', '.join(f'{x:.1f}' for x in v)} | {med[k]:.1f} | {' | '.join(ratios)} |")
    scorers = {n: json.loads((bundles[n] / "manifest.json").read_text())["scorer"] for n in bundles}
    banks = {n: s.get("bank_size", s.get("bank", {}).get("bank_size")) for n, s in scorers.items()}  # knn, combined
    lines += ["", "Bank rows: " + ", ".join(f"{n} {m}" for n, m in banks.items() if m) + "."]
    if problems:
        lines += ["", "Not measured:", *[f"- {p}" for p in problems]]
    a.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
