"""Compile kernels/mahalanobis.cu with nvcc for every target and keep the
register / spill report: benchmarks/results/kernel-compile.md."""

from __future__ import annotations

import tempfile
from pathlib import Path

from cfnc_edge.errors import CfncError
from cfnc_edge.runtime.gpu.nvcc import (
    FLAGS,
    TARGETS,
    compile_kernel,
    find_nvcc,
    nvcc_version,
    ptxas_report,
    supported_archs,
)

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    nvcc = find_nvcc()
    if nvcc is None:
        raise CfncError("nvcc is not on PATH: install the CUDA toolkit to compile the kernel report")
    archs = supported_archs(nvcc)
    lines = ["# CUDA kernel compile report", "", f"`nvcc` {nvcc_version(nvcc)}; `{' '.join(FLAGS)}`, "
             "instances `mahalanobis_packed<T, MAX_B>` for T in {float, __half, signed char (int8, per-row scales)}, "
             "MAX_B in {1, 8, 32}.", "",
             "| target | GPU | instance | registers | spill stores/loads (bytes) | shared memory |",
             "|---|---|---|---|---|---|"]
    for arch, gpu in TARGETS.items():
        if arch not in archs:
            lines.append(f"| sm_{arch} | {gpu} | - | not supported by this nvcc (CUDA 13 dropped sm_72); "
                         "compiled at run time by CuPy/NVRTC on the device | | |")
            continue
        with tempfile.TemporaryDirectory() as tmp:
            r = compile_kernel(nvcc, arch, Path(tmp))
        if r.returncode != 0:
            raise CfncError(f"nvcc failed for sm_{arch}: {r.stderr.strip()}")
        lines += [f"| sm_{arch} | {gpu} | {x['instance']} | {x['registers']} | {x['spill_stores']} / "
                  f"{x['spill_loads']} | {x['smem_bytes']} B |" for x in ptxas_report(r.stderr)]
    out = ROOT / "benchmarks" / "results" / "kernel-compile.md"
    out.write_text("\n".join(lines) + "\n")
    print(out.read_text())


if __name__ == "__main__":
    main()
