"""Shared by the benchmark scripts: a description of the machine a result ran on."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path


def machine() -> str:
    from cfnc_edge.runtime.backends.openvino_backend import cpu_name

    cpu = cpu_name()
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    gpu = "no GPU"
    try:
        gpu = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=10).stdout.strip() or gpu
    except (OSError, subprocess.SubprocessError):
        pass
    import torch

    return (f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GiB RAM, {gpu}; Python {platform.python_version()}, "
            f"torch {torch.__version__} ({torch.get_num_threads()} threads)")


def write_keeping_reading(md: Path, text: str) -> None:
    """Write a results page, keeping the hand-written "## Reading" section of the
    page it replaces (the tables are regenerated, the reading of them is not)."""
    reading = md.read_text().partition("\n## Reading")[2] if md.is_file() else ""
    md.write_text(text + ("\n## Reading" + reading if reading else ""))
