"""The CUDA kernel compiled ahead of time with nvcc: the one command line and
target list behind the register/spill report (benchmarks/kernel_compile.py)
and its test. At run time CuPy compiles the same source with NVRTC on the
device; this is the offline check that it fits every target without spills.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from cfnc_edge.runtime.gpu.mahalanobis import KERNEL_SOURCE

TARGETS = {"72": "Jetson Xavier", "75": "Turing (T4)", "86": "Ampere (RTX 30xx, A10)", "87": "Jetson Orin",
           "89": "Ada (RTX 40xx, L4)", "90": "Hopper (H100/H200)"}
FLAGS = ("-std=c++17", "-DCFNC_INSTANTIATE", "-cubin", "-Xptxas", "-v")  # -v: ptxas reports registers and spills


def find_nvcc() -> str | None:
    return shutil.which("nvcc")


def nvcc_version(nvcc: str) -> str:
    return subprocess.run([nvcc, "--version"], capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]


def supported_archs(nvcc: str) -> set[str]:
    """sm numbers this nvcc can target ("90", ...); CUDA 13 dropped sm_72."""
    out = subprocess.run([nvcc, "--list-gpu-arch"], capture_output=True, text=True, check=True).stdout
    return {a.split("_")[1] for a in out.split()}


def compile_kernel(nvcc: str, arch: str, out_dir: Path, source: Path = KERNEL_SOURCE) -> subprocess.CompletedProcess:
    """Compile every instance of the kernel for sm_`arch`; ptxas' report is in stderr."""
    return subprocess.run([nvcc, *FLAGS, f"-arch=sm_{arch}", "-o", str(Path(out_dir) / "k.cubin"), str(source)],
                          capture_output=True, text=True)


def ptxas_report(stderr: str) -> list[dict]:
    """Per compiled instance: its template arguments, registers, spill bytes and shared memory."""
    rows, name, spills = [], "?", (None, None)
    for line in stderr.splitlines():
        m = re.search(r"Compiling entry function '(\w+)'", line)
        if m:
            inst = re.search(r"I(\w+?)Li(\d+)E", m.group(1))
            # Itanium mangling of the factor type: f float, 6__half half, a signed char (int8)
            ctype = {"f": "float", "6__half": "half", "a": "int8"}.get(inst.group(1), "?") if inst else "?"
            name = f"{ctype}, {inst.group(2) if inst else '?'}"
        spill = re.search(r"(\d+) bytes spill stores, (\d+) bytes spill loads", line)
        if spill:
            spills = (int(spill.group(1)), int(spill.group(2)))
        regs = re.search(r"Used (\d+) registers.*?(\d+) bytes smem", line)
        if regs:
            rows.append({"instance": name, "registers": int(regs.group(1)), "spill_stores": spills[0],
                         "spill_loads": spills[1], "smem_bytes": int(regs.group(2))})
    return rows
