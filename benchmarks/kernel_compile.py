"""Compile kernels/mahalanobis.cu with nvcc for every target and keep the
register / spill report: benchmarks/results/kernel-compile.md."""

from __future__ import annotations

import re
import subprocess
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGETS = {"72": "Jetson Xavier", "75": "Turing (T4)", "86": "Ampere (RTX 30xx, A10)", "87": "Jetson Orin",
           "89": "Ada (RTX 40xx, L4)", "90": "Hopper (H100/H200)"}


def main() -> None:
    version = subprocess.run(["nvcc", "--version"], capture_output=True, text=True).stdout.strip().splitlines()[-1]
    archs = subprocess.run(["nvcc", "--list-gpu-arch"], capture_output=True, text=True).stdout.split()
    lines = ["# CUDA kernel compile report", "", f"`nvcc` {version}; `-std=c++17 -Xptxas -v`, "
             "instances `mahalanobis_packed<T, MAX_B>` for T in {float, __half, signed char (int8, per-row scales)}, "
             "MAX_B in {1, 8, 32}.", "",
             "| target | GPU | instance | registers | spill stores/loads (bytes) | shared memory |",
             "|---|---|---|---|---|---|"]
    for arch, gpu in TARGETS.items():
        if f"compute_{arch}" not in archs:
            lines.append(f"| sm_{arch} | {gpu} | - | not supported by this nvcc (CUDA 13 dropped sm_72); "
                         "compiled at run time by CuPy/NVRTC on the device | | |")
            continue
        with tempfile.TemporaryDirectory() as tmp:
            r = subprocess.run(["nvcc", "-std=c++17", "-DCFNC_INSTANTIATE", "-cubin", f"-arch=sm_{arch}", "-Xptxas",
                                "-v", "-o", f"{tmp}/k.cubin", str(ROOT / "kernels" / "mahalanobis.cu")],
                               capture_output=True, text=True, check=True)
        name = None
        for line in r.stderr.splitlines():
            m = re.search(r"Compiling entry function '(\w+)'", line)
            if m:
                name = m.group(1)
                inst = re.search(r"I(\w+?)Li(\d+)E", name)
                ctype = {"f": "float", "6__half": "half", "a": "int8"}.get(inst.group(1), "?") if inst else "?"
                name = f"{ctype}, {inst.group(2) if inst else '?'}"
            spill = re.search(r"(\d+) bytes spill stores, (\d+) bytes spill loads", line)
            if spill:
                spills = f"{spill.group(1)} / {spill.group(2)}"
            regs = re.search(r"Used (\d+) registers.*?(\d+) bytes smem", line)
            if regs:
                lines.append(f"| sm_{arch} | {gpu} | {name} | {regs.group(1)} | {spills} | {regs.group(2)} B |")
    out = ROOT / "benchmarks" / "results" / "kernel-compile.md"
    out.write_text("\n".join(lines) + "\n")
    print(out.read_text())


if __name__ == "__main__":
    main()
